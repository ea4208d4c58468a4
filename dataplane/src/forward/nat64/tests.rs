//! NAT64 translation against frames built and re-parsed by etherparse: every header
//! field, every checksum recomputed by etherparse, ICMP errors with their quotes, and
//! refusals that leave the frame as it was.

use super::*;
use crate::buf::VecBuf;
use crate::forward::rewrite::testutil::check_v4;
use etherparse::{
    icmpv4, icmpv6, IcmpEchoHeader, Icmpv4Type, Icmpv6Type, IpNumber, Ipv4Header, Ipv4HeaderSlice,
    Ipv6Header, Ipv6HeaderSlice, LinkSlice, NetSlice, PacketBuilder, SlicedPacket, TcpHeader,
    TcpOptionElement, TransportSlice, UdpHeader,
};

const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const VIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
const ROUTER6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const LIP4: [u8; 4] = [10, 0, 1, 100];
const RIP4: [u8; 4] = [10, 0, 1, 11];
const ROUTER4: [u8; 4] = [10, 0, 1, 254];
const CPORT: u16 = 40001;
const VPORT: u16 = 80;
const LPORT: u16 = 50000;
const RPORT: u16 = 8080;

/// The ends of a client packet translated to IPv4: LIP4:lport → RIP4:rport.
fn to_rs() -> V4Ends {
    V4Ends {
        src: LIP4.into(),
        dst: RIP4.into(),
        sport: LPORT,
        dport: RPORT,
    }
}

/// The ends of a server packet translated to IPv6: VIP6:vport → CIP6:cport.
fn to_client() -> V6Ends {
    V6Ends {
        src: VIP6.into(),
        dst: CIP6.into(),
        sport: VPORT,
        dport: CPORT,
    }
}

/// Inserts an 802.1Q tag of VID `vid` after the MACs.
fn tag(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00]);
    v.extend_from_slice(&vid.to_be_bytes());
    v.extend_from_slice(&frame[12..]);
    v
}

/// Sets the IPv6 traffic class and flow label of an untagged frame (not covered by
/// any checksum).
fn set_tc_flow(frame: &mut [u8], tc: u8, flow: u32) {
    let w = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0xfffff);
    frame[14..18].copy_from_slice(&w.to_be_bytes());
}

/// Sets the IPv4 TOS of an untagged frame and fixes the header checksum (etherparse's).
fn set_tos(frame: &mut [u8], tos: u8) {
    frame[15] = tos;
    let mut h = Ipv4HeaderSlice::from_slice(&frame[14..])
        .unwrap()
        .to_header();
    h.header_checksum = h.calc_header_checksum();
    frame[24..26].copy_from_slice(&h.header_checksum.to_be_bytes());
}

/// A client's IPv6 TCP segment CIP6:cport → VIP6:vport.
fn tcp6(syn: bool, payload: &[u8], hop: u8) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(CIP6, VIP6, hop)
        .tcp(CPORT, VPORT, 0x1234_5678, 65000);
    b = if syn {
        b.syn()
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1440),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(7, 0),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap()
    } else {
        b.ack(0x9abc_def0).psh()
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A server's IPv4 TCP segment RIP4:rport → LIP4:lport.
fn tcp4(payload: &[u8], ttl: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4(RIP4, LIP4, ttl)
        .tcp(RPORT, LPORT, 77, 29200)
        .ack(0x1234_5679)
        .options(&[TcpOptionElement::Timestamp(100, 7)])
        .unwrap()
        .write(&mut v, payload)
        .unwrap();
    v
}

fn udp6(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(CIP6, VIP6, 64)
        .udp(CPORT, VPORT)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn udp4(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4(RIP4, LIP4, 64)
        .udp(RPORT, LPORT)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// The Ethernet header as etherparse reads it: MACs and EtherType.
fn eth(p: &SlicedPacket<'_>) -> ([u8; 6], [u8; 6], u16) {
    let Some(LinkSlice::Ethernet2(e)) = &p.link else {
        panic!("ethernet")
    };
    (e.source(), e.destination(), e.ether_type().0)
}

/// The IPv4 header of a translated frame, checked: checksum (and the transport's, by
/// `check_v4`), identification 0, DF, not a fragment, no options.
fn ipv4_of(frame: &[u8]) -> (SlicedPacket<'_>, Ipv4Header) {
    let p = check_v4(frame);
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.identification, 0);
    assert!(h.dont_fragment);
    assert!(!h.more_fragments);
    assert_eq!(h.fragment_offset.value(), 0);
    assert_eq!(h.options.len(), 0);
    (p, h)
}

/// The IPv6 header of a translated frame, checked with every transport checksum
/// recomputed by etherparse (a UDP checksum must not be 0); flow label 0.
fn ipv6_of(frame: &[u8]) -> (SlicedPacket<'_>, Ipv6Header) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the result");
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("ipv6")
    };
    let h = ip.header().to_header();
    assert_eq!(h.flow_label.value(), 0);
    assert_eq!(ip.extensions().first_header(), None, "no extension headers");
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.calc_checksum_ipv6(h.source, h.destination).unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
        }
        Some(TransportSlice::Udp(u)) => {
            assert_ne!(u.checksum(), 0, "IPv6 UDP has a checksum");
            let want = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let want = i
                .icmp_type()
                .calc_checksum(h.source, h.destination, i.payload())
                .unwrap();
            assert_eq!(i.checksum(), want, "ICMPv6 checksum");
        }
        other => panic!("transport {other:?}"),
    }
    (p, h)
}

fn tcp_of<'a>(p: &'a SlicedPacket<'a>) -> &'a etherparse::TcpSlice<'a> {
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("tcp")
    };
    t
}

#[test]
fn mtu_helpers() {
    assert_eq!(GROWTH, 20);
    assert_eq!(ptb_mtu(1400, 1500), 1420);
    assert_eq!(ptb_mtu(1480, 1500), 1500);
    assert_eq!(ptb_mtu(1500, 1500), 1500, "never above the IPv6 link");
    assert_eq!(ptb_mtu(1000, 1500), 1280, "never below the IPv6 minimum");
    assert_eq!(ptb_mtu(68, 9000), 1280);
    assert_eq!(ptb_mtu(u16::MAX, u32::MAX), 65555);
    assert_eq!(frag_needed_mtu(1400, 1500), 1380);
    assert_eq!(
        frag_needed_mtu(1500, 1400),
        1400,
        "never above the IPv4 link"
    );
    assert_eq!(frag_needed_mtu(1280, 1500), 1260);
    assert_eq!(frag_needed_mtu(10, 1500), 68);
    assert_eq!(frag_needed_mtu(u32::MAX, u16::MAX), u16::MAX);
    assert_eq!(plateau(1500), 1492);
    assert_eq!(plateau(1492), 1006);
    assert_eq!(plateau(20), 68);
    assert_eq!(Nat64Error::HopLimit.to_string(), "hop_limit");
}

#[test]
fn error_indices_are_dense_and_names_unique() {
    let mut names = Vec::new();
    for (i, e) in Nat64Error::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert_eq!(e.to_string(), e.as_str());
        names.push(e.as_str());
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Nat64Error::COUNT);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
    /// Random IPv6 TCP/UDP/echo packets (ports, hop limit, traffic class, payload,
    /// tag or not): translated to IPv4 with random ends they carry those ends and
    /// etherparse's checksums; translated back with the original ends and without
    /// decrement they are the original frame (its flow label 0).
    #[test]
    fn v6_to_v4_and_back_is_the_identity(
        kind in 0u8..3,
        ports in proptest::prelude::any::<(u16, u16, u16, u16)>(),
        hop in 2u8..=255,
        tc in proptest::prelude::any::<u8>(),
        addrs in proptest::prelude::any::<([u8; 4], [u8; 4])>(),
        vid in proptest::option::of(1u16..4095),
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        let (cp, vp, lp, rp) = ports;
        let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ipv6(CIP6, VIP6, hop);
        let mut f = Vec::new();
        match kind {
            0 => b.tcp(cp, vp, 1, 100).ack(2).write(&mut f, &payload).unwrap(),
            1 => b.udp(cp, vp).write(&mut f, &payload).unwrap(),
            _ => b.icmpv6_echo_request(cp, vp).write(&mut f, &payload).unwrap(),
        }
        set_tc_flow(&mut f, tc, 0);
        let f = match vid {
            Some(v) => tag(&f, v),
            None => f,
        };
        let ends = V4Ends { src: addrs.0.into(), dst: addrs.1.into(), sport: lp, dport: rp };
        let mut buf = VecBuf::with_default_headroom(&f);
        v6_to_v4(&mut buf, &ends, true).unwrap();
        let (p, h) = ipv4_of(buf.data());
        proptest::prop_assert_eq!((h.source, h.destination), addrs);
        proptest::prop_assert_eq!(h.time_to_live, hop - 1);
        proptest::prop_assert_eq!((h.dscp.value() << 2) | h.ecn.value(), tc);
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                proptest::prop_assert_eq!((t.source_port(), t.destination_port()), (lp, rp));
                proptest::prop_assert_eq!(t.payload(), &payload[..]);
            }
            Some(TransportSlice::Udp(u)) => {
                proptest::prop_assert_eq!((u.source_port(), u.destination_port()), (lp, rp));
                proptest::prop_assert_eq!(u.payload(), &payload[..]);
            }
            Some(TransportSlice::Icmpv4(i)) => {
                proptest::prop_assert_eq!(
                    i.icmp_type(),
                    Icmpv4Type::EchoRequest(IcmpEchoHeader { id: lp, seq: vp })
                );
                proptest::prop_assert_eq!(i.payload(), &payload[..]);
            }
            other => panic!("{other:?}"),
        }
        let back = V6Ends { src: CIP6.into(), dst: VIP6.into(), sport: cp, dport: vp };
        v4_to_v6(&mut buf, &back, false).unwrap();
        let mut want = f.clone();
        let l3 = if vid.is_some() { 18 } else { 14 };
        want[l3 + 7] = hop - 1;
        proptest::prop_assert_eq!(buf.to_vec(), want);
    }
}

#[test]
fn tagged_icmp_errors() {
    let f = tag(&frag_needed_frame(1400, &tcp4_seen_from_client(), 100), 42);
    let mut b = VecBuf::with_default_headroom(&f);
    icmp4_error_to_v6(
        &mut b,
        (VIP6.into(), CIP6.into()),
        &quoted_client_v6(),
        true,
        1500,
    )
    .unwrap();
    let (_, t, q, _) = icmp6_result(b.data());
    assert_eq!(t, Icmpv6Type::PacketTooBig { mtu: 1420 });
    assert_eq!((q.source, q.destination), (CIP6, VIP6));
    assert_eq!(&b.data()[12..16], &[0x81, 0, 0, 42]);
    // and back
    icmp6_error_to_v4(&mut b, (ROUTER4.into(), LIP4.into()), &to_rs(), false, 1500).unwrap();
    let (_, t, q, l4) = icmp4_result(b.data());
    assert_eq!(
        t,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400
        })
    );
    assert_eq!((q.source, q.destination, q.total_len), (LIP4, RIP4, 1492));
    assert_eq!(&l4[..], &tcp4_seen_from_client()[20..100]);
    assert_eq!(&b.data()[12..16], &[0x81, 0, 0, 42]);
}

#[test]
fn tcp_syn_with_options_to_v4() {
    let mut f = tcp6(true, b"", 64);
    set_tc_flow(&mut f, 0xb8, 0x12345);
    let orig = f.clone();
    let mut b = VecBuf::with_default_headroom(&f);
    v6_to_v4(&mut b, &to_rs(), true).unwrap();
    assert_eq!(b.len(), orig.len() - 20);
    let (p, h) = ipv4_of(b.data());
    assert_eq!(eth(&p), (SRC_MAC, DST_MAC, 0x0800), "MACs kept");
    assert_eq!((h.source, h.destination), (LIP4, RIP4));
    assert_eq!((h.dscp.value() << 2) | h.ecn.value(), 0xb8, "TOS from TC");
    assert_eq!(h.time_to_live, 63);
    assert_eq!(h.protocol, IpNumber::TCP);
    assert_eq!(usize::from(h.total_len), b.len() - 14);
    let t = tcp_of(&p);
    let op = SlicedPacket::from_ethernet(&orig).unwrap();
    let ot = tcp_of(&op);
    assert_eq!((t.source_port(), t.destination_port()), (LPORT, RPORT));
    let (mut a, mut o) = (t.to_header(), ot.to_header());
    (a.source_port, a.destination_port, a.checksum) = (0, 0, 0);
    (o.source_port, o.destination_port, o.checksum) = (0, 0, 0);
    assert_eq!(a, o, "sequence, flags, window and options unchanged");
    assert!(t.syn());
}

#[test]
fn tcp_data_both_ways_and_back_again() {
    // client data to the server
    let f = tcp6(false, b"GET / HTTP/1.1\r\n\r\n", 64);
    let mut b = VecBuf::with_default_headroom(&f);
    v6_to_v4(&mut b, &to_rs(), false).unwrap();
    let (p, h) = ipv4_of(b.data());
    assert_eq!(h.time_to_live, 64, "not decremented");
    assert_eq!(tcp_of(&p).payload(), b"GET / HTTP/1.1\r\n\r\n");
    // and back with the client's ends: the original frame (traffic class and flow
    // label 0 in both)
    let back = V6Ends {
        src: CIP6.into(),
        dst: VIP6.into(),
        sport: CPORT,
        dport: VPORT,
    };
    v4_to_v6(&mut b, &back, false).unwrap();
    assert_eq!(b.to_vec(), f);

    // the server's answer to the client
    let mut f = tcp4(b"HTTP/1.1 200 OK\r\n\r\n", 64);
    set_tos(&mut f, 0x2a);
    let mut b = VecBuf::with_default_headroom(&f);
    v4_to_v6(&mut b, &to_client(), true).unwrap();
    assert_eq!(b.len(), f.len() + 20);
    assert_eq!(b.headroom(), VecBuf::DEFAULT_HEADROOM - 20);
    let (p, h) = ipv6_of(b.data());
    assert_eq!(eth(&p), (SRC_MAC, DST_MAC, 0x86dd));
    assert_eq!((h.source, h.destination), (VIP6, CIP6));
    assert_eq!(h.traffic_class, 0x2a);
    assert_eq!(h.hop_limit, 63);
    assert_eq!(h.next_header, IpNumber::TCP);
    assert_eq!(usize::from(h.payload_length), b.len() - 14 - 40);
    let t = tcp_of(&p);
    assert_eq!((t.source_port(), t.destination_port()), (VPORT, CPORT));
    assert_eq!(t.payload(), b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(t.acknowledgment_number(), 0x1234_5679);
    let op = SlicedPacket::from_ethernet(&f).unwrap();
    assert_eq!(t.options(), tcp_of(&op).options());
    assert_eq!(t.options().len(), 12);
}

#[test]
fn udp_both_ways_and_zero_checksum() {
    let f = udp6(b"query");
    let mut b = VecBuf::with_default_headroom(&f);
    v6_to_v4(&mut b, &to_rs(), true).unwrap();
    let (p, h) = ipv4_of(b.data());
    assert_eq!(h.protocol, IpNumber::UDP);
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!()
    };
    assert_ne!(u.checksum(), 0);
    assert_eq!((u.source_port(), u.destination_port()), (LPORT, RPORT));
    assert_eq!(u.payload(), b"query");
    assert_eq!(u.length(), 13);

    for zero in [false, true] {
        let mut f = udp4(b"answer!");
        if zero {
            f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
        }
        let mut b = VecBuf::with_default_headroom(&f);
        v4_to_v6(&mut b, &to_client(), true).unwrap();
        // ipv6_of checks that the checksum is there and right
        let (p, h) = ipv6_of(b.data());
        assert_eq!(h.next_header, IpNumber::UDP);
        let Some(TransportSlice::Udp(u)) = &p.transport else {
            panic!()
        };
        assert_eq!((u.source_port(), u.destination_port()), (VPORT, CPORT));
        assert_eq!(u.payload(), b"answer!");
    }
}

#[test]
fn ethernet_padding_and_ipv4_options_are_dropped() {
    // a 1-byte UDP datagram: 43 bytes, padded to 60 on the wire
    let mut f = udp4(b"x");
    f.resize(60, 0xee);
    let mut b = VecBuf::with_default_headroom(&f);
    v4_to_v6(&mut b, &to_client(), true).unwrap();
    assert_eq!(b.len(), 14 + 40 + 9);
    let (p, _) = ipv6_of(b.data());
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!()
    };
    assert_eq!(u.payload(), b"x");

    // IPv4 options (8 bytes: a record-route-like option and padding)
    let mut h = Ipv4Header::new(8 + 4, 64, IpNumber::UDP, RIP4, LIP4).unwrap();
    h.options = [7u8, 7, 4, 0, 0, 0, 0, 0][..].try_into().unwrap();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        .udp(RPORT, LPORT)
        .write(&mut f, b"opts")
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&f);
    v4_to_v6(&mut b, &to_client(), true).unwrap();
    assert_eq!(b.len(), f.len() + 12);
    let (p, _) = ipv6_of(b.data());
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        panic!()
    };
    assert_eq!(u.payload(), b"opts");
}

#[test]
fn icmp_echo_both_ways() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(CIP6, VIP6, 64)
        .icmpv6_echo_request(0x4242, 9)
        .write(&mut f, b"ping payload")
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&f);
    v6_to_v4(&mut b, &to_rs(), true).unwrap();
    let (p, h) = ipv4_of(b.data()); // the ICMP checksum is checked there
    assert_eq!(h.protocol, IpNumber::ICMP);
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(
        i.icmp_type(),
        Icmpv4Type::EchoRequest(IcmpEchoHeader { id: LPORT, seq: 9 }),
        "a request's identifier is the source port"
    );
    assert_eq!(i.payload(), b"ping payload");

    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4(RIP4, LIP4, 64)
        .icmpv4_echo_reply(LPORT, 9)
        .write(&mut f, b"ping payload")
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&f);
    v4_to_v6(&mut b, &to_client(), true).unwrap();
    let (p, h) = ipv6_of(b.data());
    assert_eq!(h.next_header, IpNumber::IPV6_ICMP);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(
        i.icmp_type(),
        Icmpv6Type::EchoReply(IcmpEchoHeader { id: CPORT, seq: 9 }),
        "a reply's identifier is the destination port"
    );
    assert_eq!(i.payload(), b"ping payload");
}

#[test]
fn vlan_tag_is_kept() {
    let f = tag(&tcp6(false, b"tagged", 64), 100);
    let mut b = VecBuf::with_default_headroom(&f);
    v6_to_v4(&mut b, &to_rs(), true).unwrap();
    let (p, h) = ipv4_of(b.data());
    let Some(etherparse::VlanSlice::SingleVlan(v)) = &p.vlan else {
        panic!("tag")
    };
    assert_eq!(v.vlan_identifier().value(), 100);
    assert_eq!(v.ether_type().0, 0x0800);
    assert_eq!(eth(&p), (SRC_MAC, DST_MAC, 0x8100));
    assert_eq!((h.source, h.destination), (LIP4, RIP4));
    assert_eq!(tcp_of(&p).payload(), b"tagged");

    let f = tag(&tcp4(b"tagged too", 64), 4094);
    let mut b = VecBuf::with_default_headroom(&f);
    v4_to_v6(&mut b, &to_client(), true).unwrap();
    let (p, _) = ipv6_of(b.data());
    let Some(etherparse::VlanSlice::SingleVlan(v)) = &p.vlan else {
        panic!("tag")
    };
    assert_eq!(v.vlan_identifier().value(), 4094);
    assert_eq!(tcp_of(&p).payload(), b"tagged too");
}

/// Splices IPv6 extension headers (`ext`, first one `first`, each with its next
/// header already set, the last pointing at the old first) after the fixed header of
/// an untagged frame.
fn with_ext(frame: &[u8], first: u8, ext: &[u8]) -> Vec<u8> {
    let mut v = frame[..54].to_vec();
    v[20] = first;
    let plen = u16::from_be_bytes([v[18], v[19]]) + ext.len() as u16;
    v[18..20].copy_from_slice(&plen.to_be_bytes());
    v.extend_from_slice(ext);
    v.extend_from_slice(&frame[54..]);
    v
}

#[test]
fn extension_headers_are_dropped_or_refused() {
    let f = tcp6(false, b"with extensions", 64);
    // hop-by-hop (8, PadN) → routing (24, segments left 0) → destination options
    // (16) → TCP
    let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[60, 2, 0, 0, 0, 0, 0, 0]);
    ext.extend_from_slice(&[0; 16]);
    ext.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let x = with_ext(&f, 0, &ext);
    assert!(SlicedPacket::from_ethernet(&x).is_ok());
    let mut b = VecBuf::with_default_headroom(&x);
    v6_to_v4(&mut b, &to_rs(), true).unwrap();
    assert_eq!(b.len(), x.len() - 20 - 48);
    let (p, h) = ipv4_of(b.data());
    assert_eq!(h.protocol, IpNumber::TCP);
    assert_eq!(tcp_of(&p).payload(), b"with extensions");

    // routing header with segments left
    let mut r = ext.clone();
    r[8 + 3] = 1;
    let x = with_ext(&f, 0, &r);
    let mut b = VecBuf::with_default_headroom(&x);
    assert_eq!(
        v6_to_v4(&mut b, &to_rs(), true),
        Err(Nat64Error::SegmentsLeft)
    );
    assert_eq!(b.to_vec(), x);
    // a fragment header, even an atomic one
    for frag in [[6u8, 0, 0, 0, 0, 0, 0, 1], [6, 0, 0, 1, 0, 0, 0, 1]] {
        let x = with_ext(&f, 44, &frag);
        let mut b = VecBuf::with_default_headroom(&x);
        assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::Fragment));
        assert_eq!(b.to_vec(), x);
    }
    // hop-by-hop not first
    let x = with_ext(&f, 60, &[0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0]);
    let mut b = VecBuf::with_default_headroom(&x);
    assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::ExtHeader));
    // AH is not skipped
    let x = with_ext(&f, 51, &[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut b = VecBuf::with_default_headroom(&x);
    assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::ExtHeader));
    // an IPv4 fragment
    let mut f4 = udp4(b"frag");
    f4[14 + 6] |= 0x20; // MF
    set_tos(&mut f4, 0);
    let mut b = VecBuf::with_default_headroom(&f4);
    assert_eq!(
        v4_to_v6(&mut b, &to_client(), true),
        Err(Nat64Error::Fragment)
    );
}

#[test]
fn hop_limit_one_is_refused_when_decrementing() {
    let f = tcp6(false, b"", 1);
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::HopLimit));
    assert_eq!(b.to_vec(), f, "unchanged");
    v6_to_v4(&mut b, &to_rs(), false).unwrap();
    assert_eq!(ipv4_of(b.data()).1.time_to_live, 1);
    let f = tcp6(false, b"", 0);
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::HopLimit));

    let f = tcp4(b"", 1);
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(
        v4_to_v6(&mut b, &to_client(), true),
        Err(Nat64Error::HopLimit)
    );
    assert_eq!(b.to_vec(), f);
    let f = tcp4(b"", 2);
    let mut b = VecBuf::with_default_headroom(&f);
    v4_to_v6(&mut b, &to_client(), true).unwrap();
    assert_eq!(ipv6_of(b.data()).1.hop_limit, 1);
}

#[test]
fn refusals_leave_the_frame_unchanged() {
    // no headroom
    let f = tcp4(b"x", 64);
    let mut b = VecBuf::new(19, &f);
    assert_eq!(
        v4_to_v6(&mut b, &to_client(), true),
        Err(Nat64Error::NoHeadroom)
    );
    assert_eq!(b.to_vec(), f);
    // wrong family each way
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::NotIp));
    let f6 = tcp6(false, b"", 64);
    let mut b = VecBuf::with_default_headroom(&f6);
    assert_eq!(v4_to_v6(&mut b, &to_client(), true), Err(Nat64Error::NotIp));
    // a bad IPv4 header checksum
    let mut bad = f.clone();
    bad[14 + 10] ^= 1;
    let mut b = VecBuf::with_default_headroom(&bad);
    assert_eq!(
        v4_to_v6(&mut b, &to_client(), true),
        Err(Nat64Error::BadChecksum)
    );
    assert_eq!(b.to_vec(), bad);
    // not TCP, UDP or ICMP
    let mut gre = f6.clone();
    gre[20] = 47;
    let mut b = VecBuf::with_default_headroom(&gre);
    assert_eq!(
        v6_to_v4(&mut b, &to_rs(), true),
        Err(Nat64Error::UnsupportedProto)
    );
    // neighbour discovery and ICMP errors
    let mut ns = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(CIP6, VIP6, 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut ns, &[0; 16])
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&ns);
    assert_eq!(
        v6_to_v4(&mut b, &to_rs(), true),
        Err(Nat64Error::Untranslatable)
    );
    let err = ptb_frame(1400, &udp6_seen_from_server());
    let mut b = VecBuf::with_default_headroom(&err);
    assert_eq!(v6_to_v4(&mut b, &to_rs(), true), Err(Nat64Error::IcmpError));
    assert_eq!(b.to_vec(), err);
    // and an echo given to the error function
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(CIP6, VIP6, 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut echo, b"")
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&echo);
    assert_eq!(
        icmp6_error_to_v4(&mut b, (LIP4.into(), RIP4.into()), &to_rs(), true, 1500),
        Err(Nat64Error::BadIcmp)
    );
}

/// Every prefix of valid frames, and every single-byte corruption of their headers,
/// through all four translations: an error or a frame etherparse can parse, never a
/// panic; an error leaves the frame as it was.
#[test]
fn truncated_and_corrupted_frames() {
    let frames6 = [
        tcp6(true, b"", 64),
        udp6(b"abc"),
        ptb_frame(1400, &udp6_seen_from_server()),
        tag(&udp6(b"abc"), 5),
    ];
    let frames4 = [
        tcp4(b"data", 64),
        udp4(b""),
        frag_needed_frame(1400, &tcp4_seen_from_client(), 1000),
    ];
    let run = |f: &[u8]| {
        let r = [
            {
                let mut b = VecBuf::with_default_headroom(f);
                let r = v6_to_v4(&mut b, &to_rs(), true);
                (r, b)
            },
            {
                let mut b = VecBuf::with_default_headroom(f);
                let r = v4_to_v6(&mut b, &to_client(), true);
                (r, b)
            },
            {
                let mut b = VecBuf::with_default_headroom(f);
                let r =
                    icmp6_error_to_v4(&mut b, (ROUTER4.into(), RIP4.into()), &to_rs(), true, 1500);
                (r, b)
            },
            {
                let mut b = VecBuf::with_default_headroom(f);
                let r = icmp4_error_to_v6(
                    &mut b,
                    (ROUTER6.into(), CIP6.into()),
                    &to_client(),
                    true,
                    1500,
                );
                (r, b)
            },
        ];
        for (r, b) in r {
            match r {
                Ok(()) => assert!(SlicedPacket::from_ethernet(b.data()).is_ok()),
                Err(_) => assert_eq!(b.data(), f),
            }
        }
    };
    for f in frames6.iter().chain(frames4.iter()) {
        for n in 0..=f.len() {
            run(&f[..n]);
        }
        for i in 0..f.len().min(140) {
            for x in [0x01u8, 0x80, 0xff] {
                let mut g = f.clone();
                g[i] ^= x;
                run(&g);
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Random bytes behind an IPv6 or IPv4 Ethernet header: no panic, an error leaves
    /// the frame unchanged.
    #[test]
    fn random_frames_never_panic(
        v6 in proptest::prelude::any::<bool>(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
    ) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        f.extend_from_slice(&body);
        if let Some(b0) = f.get_mut(14) {
            *b0 = if v6 { 0x60 | (*b0 & 0x0f) } else { 0x45 };
        }
        for which in 0..4 {
            let mut b = VecBuf::with_default_headroom(&f);
            let r = match which {
                0 => v6_to_v4(&mut b, &to_rs(), true),
                1 => v4_to_v6(&mut b, &to_client(), true),
                2 => {
                    let outer = (ROUTER4.into(), RIP4.into());
                    icmp6_error_to_v4(&mut b, outer, &to_rs(), true, 1500)
                }
                _ => {
                    let outer = (ROUTER6.into(), CIP6.into());
                    icmp4_error_to_v6(&mut b, outer, &to_client(), true, 1500)
                }
            };
            if r.is_err() {
                proptest::prop_assert_eq!(b.data(), &f[..]);
            }
        }
    }
}

// ---- ICMP errors ----

/// The client's packet as the IPv4 side saw it (translated): LIP4:lport → RIP4:rport,
/// 1452 bytes of payload (a 1492-byte packet).
fn tcp4_seen_from_client() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(LIP4, RIP4, 61)
        .tcp(LPORT, RPORT, 1000, 2000)
        .ack(5)
        .write(&mut v, &[0xa5; 1452])
        .unwrap();
    v
}

/// The same packet as the client sent it: CIP6:cport → VIP6:vport.
fn tcp6_seen_from_client() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(CIP6, VIP6, 62)
        .tcp(CPORT, VPORT, 1000, 2000)
        .ack(5)
        .write(&mut v, &[0xa5; 1452])
        .unwrap();
    v
}

/// A reply as the IPv6 side saw it (translated): VIP6:vport → CIP6:cport, UDP.
fn udp6_seen_from_server() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(VIP6, CIP6, 49)
        .udp(VPORT, CPORT)
        .write(&mut v, &[0x77; 1400])
        .unwrap();
    v
}

/// The same reply as the server sent it: RIP4:rport → LIP4:lport.
fn udp4_seen_from_server() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(RIP4, LIP4, 49)
        .udp(RPORT, LPORT)
        .write(&mut v, &[0x77; 1400])
        .unwrap();
    v
}

/// An ICMPv4 fragmentation-needed (MTU `mtu`) from ROUTER4 to LIP4 quoting the first
/// `quote` bytes of `inner`.
fn frag_needed_frame(mtu: u16, inner: &[u8], quote: usize) -> Vec<u8> {
    icmp4_frame(
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: mtu,
        }),
        inner,
        quote,
    )
}

fn icmp4_frame(t: Icmpv4Type, inner: &[u8], quote: usize) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv4(ROUTER4, LIP4, 64)
        .icmpv4(t)
        .write(&mut f, &inner[..quote.min(inner.len())])
        .unwrap();
    f
}

/// An ICMPv6 error from ROUTER6 to VIP6 quoting as much of `inner` as fits in 1280.
fn icmp6_frame(t: Icmpv6Type, inner: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(ROUTER6, VIP6, 64)
        .icmpv6(t)
        .write(&mut f, &inner[..inner.len().min(1280 - 48)])
        .unwrap();
    f
}

fn ptb_frame(mtu: u32, inner: &[u8]) -> Vec<u8> {
    icmp6_frame(Icmpv6Type::PacketTooBig { mtu }, inner)
}

/// The quoted ends: the client's packet as the IPv6 side sent it.
fn quoted_client_v6() -> V6Ends {
    V6Ends {
        src: CIP6.into(),
        dst: VIP6.into(),
        sport: CPORT,
        dport: VPORT,
    }
}

/// The quoted ends: the server's reply as the IPv4 side sent it.
fn quoted_server_v4() -> V4Ends {
    V4Ends {
        src: RIP4.into(),
        dst: LIP4.into(),
        sport: RPORT,
        dport: LPORT,
    }
}

/// The translated ICMPv6 error, checked (outer checksum by `ipv6_of`): its type, the
/// quoted IPv6 header and the quoted transport bytes.
fn icmp6_result(frame: &[u8]) -> (Ipv6Header, Icmpv6Type, Ipv6Header, Vec<u8>) {
    let (p, h) = ipv6_of(frame);
    assert_eq!(h.next_header, IpNumber::IPV6_ICMP);
    let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!("icmpv6")
    };
    let q = Ipv6HeaderSlice::from_slice(i.payload())
        .unwrap()
        .to_header();
    (h, i.icmp_type(), q, i.payload()[40..].to_vec())
}

/// The translated ICMPv4 error, checked: its type, the quoted IPv4 header (its
/// checksum checked) and the quoted transport bytes.
fn icmp4_result(frame: &[u8]) -> (Ipv4Header, Icmpv4Type, Ipv4Header, Vec<u8>) {
    let (p, h) = ipv4_of(frame);
    assert_eq!(h.protocol, IpNumber::ICMP);
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!("icmpv4")
    };
    let q = Ipv4HeaderSlice::from_slice(i.payload())
        .unwrap()
        .to_header();
    assert_eq!(
        q.header_checksum,
        q.calc_header_checksum(),
        "quoted checksum"
    );
    assert_eq!(q.identification, 0);
    assert!(q.dont_fragment);
    (h, i.icmp_type(), q, i.payload()[20..].to_vec())
}

#[test]
fn frag_needed_becomes_packet_too_big() {
    // (advertised MTU, IPv6 link MTU, expected PTB MTU); 0: the plateau below 1492
    for (mtu, link, want) in [
        (1400u16, 1500u32, 1420u32),
        (1000, 1500, 1280),
        (1480, 1400, 1400),
        (0, 9000, 1280), // the plateau below 1492 is 1006
    ] {
        let inner = tcp4_seen_from_client();
        let f = frag_needed_frame(mtu, &inner, 548);
        let mut b = VecBuf::with_default_headroom(&f);
        icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            link,
        )
        .unwrap();
        assert_eq!(b.len(), f.len() + 40);
        let (h, t, q, l4) = icmp6_result(b.data());
        assert_eq!((h.source, h.destination, h.hop_limit), (VIP6, CIP6, 63));
        assert_eq!(
            t,
            Icmpv6Type::PacketTooBig { mtu: want },
            "MTU {mtu} link {link}"
        );
        // the quoted packet is the client's as it sent it
        assert_eq!((q.source, q.destination), (CIP6, VIP6));
        assert_eq!(q.hop_limit, 61, "the quoted TTL is kept");
        assert_eq!(q.next_header, IpNumber::TCP);
        assert_eq!(usize::from(q.payload_length), 1472, "the original's length");
        // ports, and the TCP checksum a full computation over the client's whole
        // segment gives (the quote is cut short; the update is exact anyway)
        let orig = tcp6_seen_from_client();
        assert_eq!(&l4[..4], &orig[40..44]);
        assert_eq!(&l4[16..18], &orig[40 + 16..40 + 18]);
        assert_eq!(&l4[..], &orig[40..40 + l4.len()]);
    }
    // an old router's fragmentation-needed without MTU about a 4000-byte packet: the
    // plateau below it, 2002, and 20 more
    let mut inner = tcp4_seen_from_client();
    inner[2..4].copy_from_slice(&4000u16.to_be_bytes());
    let f = frag_needed_frame(0, &inner, 28);
    for (link, want) in [(9000, 2022), (1500, 1500)] {
        let mut b = VecBuf::with_default_headroom(&f);
        icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            link,
        )
        .unwrap();
        let (_, t, q, _) = icmp6_result(b.data());
        assert_eq!(t, Icmpv6Type::PacketTooBig { mtu: want });
        assert_eq!(q.payload_length, 3980);
    }
}

#[test]
fn packet_too_big_becomes_frag_needed() {
    for (mtu, link, want) in [
        (1400u32, 1500u16, 1380u16),
        (1500, 1400, 1400),
        (1280, 1500, 1260),
    ] {
        let inner = udp6_seen_from_server();
        let f = ptb_frame(mtu, &inner);
        let mut b = VecBuf::with_default_headroom(&f);
        icmp6_error_to_v4(
            &mut b,
            (LIP4.into(), RIP4.into()),
            &quoted_server_v4(),
            true,
            link,
        )
        .unwrap();
        assert_eq!(b.len(), 14 + 576, "cut to 576 bytes");
        let (h, t, q, l4) = icmp4_result(b.data());
        assert_eq!((h.source, h.destination, h.time_to_live), (LIP4, RIP4, 63));
        assert_eq!(
            t,
            Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: want }
            )
        );
        assert_eq!((q.source, q.destination, q.time_to_live), (RIP4, LIP4, 49));
        assert_eq!(q.protocol, IpNumber::UDP);
        assert_eq!(q.total_len, 1428, "the original's length");
        // the quoted UDP header is the server's as it sent it, checksum included
        let orig = udp4_seen_from_server();
        assert_eq!(&l4[..8], &orig[20..28]);
        assert_eq!(&l4[..], &orig[20..20 + l4.len()]);
    }
}

#[test]
fn time_exceeded_both_ways() {
    // a router on the IPv4 side expired the client's translated packet, quoted whole
    let mut inner = Vec::new();
    PacketBuilder::ipv4(LIP4, RIP4, 1)
        .udp(LPORT, RPORT)
        .write(&mut inner, b"expired")
        .unwrap();
    let f = icmp4_frame(
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &inner,
        usize::MAX,
    );
    let mut b = VecBuf::with_default_headroom(&f);
    icmp4_error_to_v6(
        &mut b,
        (VIP6.into(), CIP6.into()),
        &quoted_client_v6(),
        false,
        1500,
    )
    .unwrap();
    let (h, t, q, l4) = icmp6_result(b.data());
    assert_eq!(h.hop_limit, 64);
    assert_eq!(
        t,
        Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded)
    );
    assert_eq!((q.source, q.destination, q.hop_limit), (CIP6, VIP6, 1));
    // the whole quoted datagram verifies with the client's addresses
    let (uh, payload) = UdpHeader::from_slice(&l4).unwrap();
    assert_eq!((uh.source_port, uh.destination_port), (CPORT, VPORT));
    assert_eq!(payload, b"expired");
    assert_eq!(uh.checksum, uh.calc_checksum_ipv6(&q, payload).unwrap());

    // a router on the IPv6 side expired a reply, TCP quoted whole, with an extension
    // header in the quote
    let mut inner = Vec::new();
    PacketBuilder::ipv6(VIP6, CIP6, 1)
        .tcp(VPORT, CPORT, 10, 1000)
        .write(&mut inner, b"late")
        .unwrap();
    let with_opts = {
        let mut v = inner[..40].to_vec();
        v[6] = 60;
        let plen = u16::from_be_bytes([v[4], v[5]]) + 8;
        v[4..6].copy_from_slice(&plen.to_be_bytes());
        v.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&inner[40..]);
        v
    };
    let f = icmp6_frame(
        Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::FragmentReassemblyTimeExceeded),
        &with_opts,
    );
    let mut b = VecBuf::with_default_headroom(&f);
    icmp6_error_to_v4(
        &mut b,
        (LIP4.into(), RIP4.into()),
        &quoted_server_v4(),
        true,
        1500,
    )
    .unwrap();
    let (_, t, q, l4) = icmp4_result(b.data());
    assert_eq!(
        t,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::FragmentReassemblyTimeExceeded)
    );
    assert_eq!((q.source, q.destination), (RIP4, LIP4));
    assert_eq!(q.total_len, 20 + 24, "the extension header is not counted");
    let (th, payload) = TcpHeader::from_slice(&l4).unwrap();
    assert_eq!((th.source_port, th.destination_port), (RPORT, LPORT));
    assert_eq!(payload, b"late");
    assert_eq!(th.checksum, th.calc_checksum_ipv4(&q, payload).unwrap());
}

#[test]
fn quoted_echo_and_zero_checksum_udp() {
    // the client's echo request, translated, was refused by the server's host
    let mut inner = Vec::new();
    PacketBuilder::ipv4(LIP4, RIP4, 63)
        .icmpv4_echo_request(LPORT, 3)
        .write(&mut inner, b"ping")
        .unwrap();
    let f = icmp4_frame(
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host),
        &inner,
        usize::MAX,
    );
    let mut b = VecBuf::with_default_headroom(&f);
    let client_echo = V6Ends {
        src: CIP6.into(),
        dst: VIP6.into(),
        sport: 0x4242,
        dport: 0,
    };
    icmp4_error_to_v6(&mut b, (VIP6.into(), CIP6.into()), &client_echo, true, 1500).unwrap();
    let (_, t, q, l4) = icmp6_result(b.data());
    assert_eq!(
        t,
        Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::NoRoute)
    );
    assert_eq!(q.next_header, IpNumber::IPV6_ICMP);
    let e = etherparse::Icmpv6Slice::from_slice(&l4).unwrap();
    assert_eq!(
        e.icmp_type(),
        Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 0x4242, seq: 3 })
    );
    let want = e
        .icmp_type()
        .calc_checksum(q.source, q.destination, e.payload())
        .unwrap();
    assert_eq!(e.checksum(), want, "quoted echo checksum");

    // a quoted IPv4 UDP datagram without checksum gets one when it is all there
    for (quote, summed) in [(usize::MAX, true), (28, false)] {
        let mut inner = Vec::new();
        PacketBuilder::ipv4(LIP4, RIP4, 63)
            .udp(LPORT, RPORT)
            .write(&mut inner, b"no checksum")
            .unwrap();
        inner[26..28].copy_from_slice(&[0, 0]);
        let f = icmp4_frame(
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
            &inner,
            quote,
        );
        let mut b = VecBuf::with_default_headroom(&f);
        icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            1500,
        )
        .unwrap();
        let (_, t, q, l4) = icmp6_result(b.data());
        assert_eq!(
            t,
            Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port)
        );
        let uh = UdpHeader::from_slice(&l4[..8]).unwrap().0;
        if summed {
            let want = uh.calc_checksum_ipv6(&q, b"no checksum").unwrap();
            assert_eq!(uh.checksum, want);
        } else {
            assert_eq!(uh.checksum, 0);
        }
    }
}

#[test]
fn icmpv6_errors_are_cut_to_1280() {
    let inner = tcp4_seen_from_client(); // 1492 bytes, quoted whole
    let f = frag_needed_frame(1400, &inner, usize::MAX);
    let mut b = VecBuf::with_default_headroom(&f);
    icmp4_error_to_v6(
        &mut b,
        (VIP6.into(), CIP6.into()),
        &quoted_client_v6(),
        true,
        1500,
    )
    .unwrap();
    assert_eq!(b.len(), 14 + 1280);
    let (_, _, q, l4) = icmp6_result(b.data());
    assert_eq!(q.payload_length, 1472);
    assert_eq!(&l4[..], &tcp6_seen_from_client()[40..40 + 1280 - 88]);
}

#[test]
fn error_types_and_codes_map_as_rfc_7915_says() {
    use icmpv4::DestUnreachableHeader as D4;
    use icmpv6::DestUnreachableCode as D6;
    let inner = tcp4_seen_from_client();
    let v4_to_v6_cases: [(Icmpv4Type, Option<Icmpv6Type>); 10] = [
        (
            Icmpv4Type::DestinationUnreachable(D4::Network),
            Some(Icmpv6Type::DestinationUnreachable(D6::NoRoute)),
        ),
        (
            Icmpv4Type::DestinationUnreachable(D4::Port),
            Some(Icmpv6Type::DestinationUnreachable(D6::Port)),
        ),
        (
            Icmpv4Type::DestinationUnreachable(D4::FilterProhibited),
            Some(Icmpv6Type::DestinationUnreachable(D6::Prohibited)),
        ),
        (
            Icmpv4Type::DestinationUnreachable(D4::Protocol),
            Some(Icmpv6Type::ParameterProblem(
                icmpv6::ParameterProblemHeader {
                    code: icmpv6::ParameterProblemCode::UnrecognizedNextHeader,
                    pointer: 6,
                },
            )),
        ),
        (
            Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::PointerIndicatesError(9)),
            Some(Icmpv6Type::ParameterProblem(
                icmpv6::ParameterProblemHeader {
                    code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                    pointer: 6,
                },
            )),
        ),
        (
            Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::BadLength),
            Some(Icmpv6Type::ParameterProblem(
                icmpv6::ParameterProblemHeader {
                    code: icmpv6::ParameterProblemCode::ErroneousHeaderField,
                    pointer: 0,
                },
            )),
        ),
        // the identification has no IPv6 counterpart
        (
            Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::PointerIndicatesError(4)),
            None,
        ),
        (
            Icmpv4Type::ParameterProblem(icmpv4::ParameterProblemHeader::MissingRequiredOption),
            None,
        ),
        (
            Icmpv4Type::DestinationUnreachable(D4::HostPrecedenceViolation),
            None,
        ),
        (
            Icmpv4Type::Redirect(icmpv4::RedirectHeader {
                code: icmpv4::RedirectCode::RedirectForHost,
                gateway_internet_address: ROUTER4,
            }),
            None,
        ),
    ];
    for (t4, want) in v4_to_v6_cases {
        let f = icmp4_frame(t4.clone(), &inner, 28);
        let mut b = VecBuf::with_default_headroom(&f);
        let r = icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            1500,
        );
        match want {
            Some(t6) => {
                assert_eq!(r, Ok(()), "{t4:?}");
                assert_eq!(icmp6_result(b.data()).1, t6, "{t4:?}");
            }
            None => {
                assert_eq!(r, Err(Nat64Error::Untranslatable), "{t4:?}");
                assert_eq!(b.to_vec(), f);
            }
        }
    }

    let inner = udp6_seen_from_server();
    let pp6 = |code, pointer| {
        Icmpv6Type::ParameterProblem(icmpv6::ParameterProblemHeader { code, pointer })
    };
    let v6_to_v4_cases: [(Icmpv6Type, Option<Icmpv4Type>); 9] = [
        (
            Icmpv6Type::DestinationUnreachable(D6::NoRoute),
            Some(Icmpv4Type::DestinationUnreachable(D4::Host)),
        ),
        (
            Icmpv6Type::DestinationUnreachable(D6::Address),
            Some(Icmpv4Type::DestinationUnreachable(D4::Host)),
        ),
        (
            Icmpv6Type::DestinationUnreachable(D6::Prohibited),
            Some(Icmpv4Type::DestinationUnreachable(D4::HostProhibited)),
        ),
        (
            Icmpv6Type::DestinationUnreachable(D6::Port),
            Some(Icmpv4Type::DestinationUnreachable(D4::Port)),
        ),
        (
            pp6(icmpv6::ParameterProblemCode::UnrecognizedNextHeader, 40),
            Some(Icmpv4Type::DestinationUnreachable(D4::Protocol)),
        ),
        (
            pp6(icmpv6::ParameterProblemCode::ErroneousHeaderField, 24),
            Some(Icmpv4Type::ParameterProblem(
                icmpv4::ParameterProblemHeader::PointerIndicatesError(16),
            )),
        ),
        (
            pp6(icmpv6::ParameterProblemCode::ErroneousHeaderField, 7),
            Some(Icmpv4Type::ParameterProblem(
                icmpv4::ParameterProblemHeader::PointerIndicatesError(8),
            )),
        ),
        // the flow label has no IPv4 counterpart
        (
            pp6(icmpv6::ParameterProblemCode::ErroneousHeaderField, 2),
            None,
        ),
        (
            pp6(icmpv6::ParameterProblemCode::UnrecognizedIpv6Option, 40),
            None,
        ),
    ];
    for (t6, want) in v6_to_v4_cases {
        let f = icmp6_frame(t6, &inner);
        let mut b = VecBuf::with_default_headroom(&f);
        let r = icmp6_error_to_v4(
            &mut b,
            (LIP4.into(), RIP4.into()),
            &quoted_server_v4(),
            true,
            1500,
        );
        match want {
            Some(t4) => {
                assert_eq!(r, Ok(()), "{t6:?}");
                assert_eq!(icmp4_result(b.data()).1, t4, "{t6:?}");
            }
            None => {
                assert_eq!(r, Err(Nat64Error::Untranslatable), "{t6:?}");
                assert_eq!(b.to_vec(), f);
            }
        }
    }
}

#[test]
fn bad_errors_are_refused_unchanged() {
    let inner = tcp4_seen_from_client();
    // a wrong ICMP checksum
    let mut f = frag_needed_frame(1400, &inner, 28);
    f[14 + 20 + 2] ^= 0x10;
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(
        icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            1500
        ),
        Err(Nat64Error::BadChecksum)
    );
    assert_eq!(b.to_vec(), f);
    let mut f = ptb_frame(1400, &udp6_seen_from_server());
    f[14 + 40 + 3] ^= 0x10;
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(
        icmp6_error_to_v4(
            &mut b,
            (LIP4.into(), RIP4.into()),
            &quoted_server_v4(),
            true,
            1500
        ),
        Err(Nat64Error::BadChecksum)
    );
    // a quote shorter than an IP header plus 8 bytes
    for quote in [0, 19, 27] {
        let f = frag_needed_frame(1400, &inner, quote);
        let mut b = VecBuf::with_default_headroom(&f);
        assert_eq!(
            icmp4_error_to_v6(
                &mut b,
                (VIP6.into(), CIP6.into()),
                &quoted_client_v6(),
                true,
                1500
            ),
            Err(Nat64Error::BadIcmp),
            "quote {quote}"
        );
        assert_eq!(b.to_vec(), f);
    }
    // an error quoting an error
    let nested = frag_needed_frame(1400, &inner, 28);
    let f = frag_needed_frame(1400, &nested[14..], 56);
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(
        icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            1500
        ),
        Err(Nat64Error::BadIcmp)
    );
    // no headroom for the 40 more bytes
    let f = frag_needed_frame(1400, &inner, 28);
    let mut b = VecBuf::new(39, &f);
    assert_eq!(
        icmp4_error_to_v6(
            &mut b,
            (VIP6.into(), CIP6.into()),
            &quoted_client_v6(),
            true,
            1500
        ),
        Err(Nat64Error::NoHeadroom)
    );
    assert_eq!(b.to_vec(), f);
    // hop limit
    let mut f = ptb_frame(1400, &udp6_seen_from_server());
    f[14 + 7] = 1;
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(
        icmp6_error_to_v4(
            &mut b,
            (LIP4.into(), RIP4.into()),
            &quoted_server_v4(),
            true,
            1500
        ),
        Err(Nat64Error::HopLimit)
    );
    assert_eq!(b.to_vec(), f);
}

/// The seeds of the `nat64` fuzz target (`dataplane/fuzz/seeds/nat64`): a control byte
/// (decrement, 128 bytes of headroom) and a frame each translation direction takes.
#[test]
fn fuzz_seeds_translate_and_are_current() {
    // RVS_WRITE_FUZZ_SEEDS=1 cargo test -p rvs-dataplane fuzz_seeds  (re)writes them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/nat64");
    let write = std::env::var_os("RVS_WRITE_FUZZ_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut echo6 = Vec::new();
    PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
        .ipv6(CIP6, VIP6, 64)
        .icmpv6_echo_request(7, 1)
        .write(&mut echo6, b"ping")
        .unwrap();
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    let seeds: [(&str, u8, Vec<u8>); 8] = [
        ("tcp6_syn", 0, tcp6(true, b"", 64)),
        ("tcp6_ext", 0, with_ext(&tcp6(false, b"x", 64), 0, &ext)),
        ("udp6_vlan", 0, tag(&udp6(b"query"), 7)),
        ("echo6", 0, echo6),
        ("tcp4", 1, tcp4(b"data", 64)),
        ("udp4", 1, udp4(b"answer")),
        ("ptb6", 2, ptb_frame(1400, &udp6_seen_from_server()[..200])),
        (
            "frag_needed4",
            3,
            frag_needed_frame(1400, &tcp4_seen_from_client(), 60),
        ),
    ];
    for (name, which, frame) in seeds {
        let mut b = VecBuf::with_default_headroom(&frame);
        let r = match which {
            0 => v6_to_v4(&mut b, &to_rs(), true),
            1 => v4_to_v6(&mut b, &to_client(), true),
            2 => icmp6_error_to_v4(
                &mut b,
                (LIP4.into(), RIP4.into()),
                &quoted_server_v4(),
                true,
                1500,
            ),
            _ => icmp4_error_to_v6(
                &mut b,
                (VIP6.into(), CIP6.into()),
                &quoted_client_v6(),
                true,
                1500,
            ),
        };
        assert_eq!(r, Ok(()), "seed {name}");
        let mut seed = vec![0x07];
        seed.extend_from_slice(&frame);
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &seed).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).ok(),
            Some(seed),
            "seed {name} is current"
        );
    }
}
