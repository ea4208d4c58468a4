//! The client-address pieces against frames built and re-parsed by etherparse, and the
//! PROXY headers against their specification's examples.

use super::*;
use crate::buf::VecBuf;
use crate::forward::rewrite::testutil::check_v4;
use etherparse::{PacketBuilder, TcpOptionElement, TransportSlice};

const C: [u8; 4] = [198, 51, 100, 7];
const LIP: [u8; 4] = [10, 0, 1, 100];
const RIP: [u8; 4] = [10, 0, 1, 11];

/// A TCP frame LIP → RIP built by etherparse, with timestamps and `payload`.
fn tcp_frame(seq: u32, ack: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(LIP, RIP, 63)
        .tcp(40000, 80, seq, 64000)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(1, 2),
        ])
        .unwrap();
    if syn {
        b = b.syn();
    }
    let b = b.ack(ack).psh();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A real server's segment RIP → LIP acknowledging 1000 bytes past a 28-byte header,
/// with `options`, built by etherparse.
fn server_ack(options: &[TcpOptionElement]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(RIP, LIP, 64)
        .tcp(80, 40000, 9000, 64000)
        .ack(5001 + 28 + 1000)
        .options(options)
        .unwrap()
        .write(&mut v, b"")
        .unwrap();
    v
}

fn tcp_of(frame: &[u8]) -> etherparse::TcpSlice<'_> {
    match check_v4(frame).transport {
        Some(TransportSlice::Tcp(t)) => t,
        _ => panic!("not TCP"),
    }
}

#[test]
fn v1_line_is_haproxys_format() {
    let h = ProxyHeader::v1(
        Addr::v4(198, 51, 100, 7),
        56324,
        Addr::v4(192, 0, 2, 1),
        443,
    )
    .unwrap();
    assert_eq!(
        h.bytes(),
        b"PROXY TCP4 198.51.100.7 192.0.2.1 56324 443\r\n"
    );
    // The longest IPv4 line fits.
    let h = ProxyHeader::v1(
        Addr::v4(255, 255, 255, 255),
        65535,
        Addr::v4(255, 255, 255, 255),
        65535,
    )
    .unwrap();
    assert_eq!(h.len(), 56);
    assert_eq!(&h.bytes()[h.len() - 2..], b"\r\n");
}

#[test]
fn v2_header_layout() {
    let h = ProxyHeader::v2(
        Addr::v4(198, 51, 100, 7),
        56324,
        Addr::v4(192, 0, 2, 1),
        443,
        false,
    );
    let b = h.bytes();
    assert_eq!(b.len(), V2_LEN_V4);
    assert_eq!(&b[..12], &V2_SIG);
    assert_eq!(b[12], 0x21, "version 2, command PROXY");
    assert_eq!(b[13], 0x11, "AF_INET, STREAM");
    assert_eq!(&b[14..16], &[0, 12]);
    assert_eq!(&b[16..20], &[198, 51, 100, 7]);
    assert_eq!(&b[20..24], &[192, 0, 2, 1]);
    assert_eq!(&b[24..26], &56324u16.to_be_bytes());
    assert_eq!(&b[26..28], &443u16.to_be_bytes());
    let u = ProxyHeader::v2(Addr::v4(1, 2, 3, 4), 5, Addr::v4(6, 7, 8, 9), 53, true);
    assert_eq!(u.bytes()[13], 0x12, "AF_INET, DGRAM");
    let a6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    let v6 = ProxyHeader::v2(Addr::from(a6), 1, Addr::from(a6), 2, false);
    assert_eq!(v6.len(), V2_LEN_V6);
    assert_eq!(v6.bytes()[13], 0x21);
    assert!(ProxyHeader::v1(Addr::from(a6), 1, Addr::v4(1, 1, 1, 1), 2).is_none());
}

#[test]
fn ack_mapping_around_the_header() {
    let (init, d) = (1000u32, 28u32);
    // Before and at the client's first byte: unchanged (the SYN-ACK's ack is init + 1).
    assert_eq!(map_ack(1001, init, d), 1001);
    assert_eq!(map_ack(900, init, d), 900);
    // Inside the header: the client's first byte.
    assert_eq!(map_ack(1002, init, d), 1001);
    assert_eq!(map_ack(1028, init, d), 1001);
    // Past it: shifted down.
    assert_eq!(map_ack(1029, init, d), 1001);
    assert_eq!(map_ack(1529, init, d), 1501);
    assert!(!header_acked(1028, init, d));
    assert!(header_acked(1029, init, d));
    // Across the wrap of the sequence space.
    let init = u32::MAX - 10;
    assert_eq!(
        map_ack(init.wrapping_add(1 + 28 + 100), init, d),
        init.wrapping_add(101)
    );
    assert_eq!(map_ack(init.wrapping_add(5), init, d), init.wrapping_add(1));
    assert!(header_acked(init.wrapping_add(29), init, d));
}

#[test]
fn seq_shift_keeps_the_checksum_right() {
    let mut f = tcp_frame(5001, 77, false, b"GET / HTTP/1.0\r\n\r\n");
    shift_seq(&mut f, 34, 28);
    let t = tcp_of(&f);
    assert_eq!(t.sequence_number(), 5029);
    assert_eq!(t.acknowledgment_number(), 77);
}

#[test]
fn server_ack_and_sack_blocks_are_mapped_back() {
    let init = 5000u32;
    let mut v = server_ack(&[
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::SelectiveAcknowledgement(
            (5001 + 28 + 2000, 5001 + 28 + 3000),
            [Some((5010, 5020)), Some((4000, 4500)), None],
        ),
    ]);
    assert_eq!(unshift_ack(&mut v, 34, init, 28), Some(5001 + 28 + 1000));
    let t = tcp_of(&v);
    assert_eq!(t.acknowledgment_number(), 5001 + 1000);
    let sack = t
        .options_iterator()
        .find_map(|o| match o {
            Ok(TcpOptionElement::SelectiveAcknowledgement(a, rest)) => Some((a, rest)),
            _ => None,
        })
        .unwrap();
    // Above the header: shifted; inside it: the first byte; below it: unchanged.
    assert_eq!(sack.0, (5001 + 2000, 5001 + 3000));
    assert_eq!(sack.1[0], Some((5001, 5001)));
    assert_eq!(sack.1[1], Some((4000, 4500)));
    // Without ACK nothing but SACK is touched.
    let mut r = tcp_frame(1, 0, true, b"");
    r[34 + 13] = 0x02;
    assert_eq!(unshift_ack(&mut r, 34, init, 28), None);
}

#[test]
fn sack_edges_at_odd_offsets_keep_the_checksum_right() {
    // One NOP before the SACK option: its edges sit at odd offsets of the TCP header
    // (options need no alignment), so each spans three 16-bit words of the sum.
    let mut v = server_ack(&[
        TcpOptionElement::Noop,
        TcpOptionElement::SelectiveAcknowledgement((5001 + 28 + 2000, 5001 + 28 + 3000), [None; 3]),
    ]);
    assert_eq!(v[34 + 21], 5, "the SACK option starts at an odd offset");
    unshift_ack(&mut v, 34, 5000, 28);
    // tcp_of checks the TCP checksum against etherparse's.
    let sack = tcp_of(&v)
        .options_iterator()
        .find_map(|o| match o {
            Ok(TcpOptionElement::SelectiveAcknowledgement(a, _)) => Some(a),
            _ => None,
        })
        .unwrap();
    assert_eq!(sack, (5001 + 2000, 5001 + 3000));
}

#[test]
fn options_running_past_the_header_are_left_alone() {
    let mut f = tcp_frame(1, 5001 + 28 + 1, false, b"x");
    // Timestamp option claiming 40 bytes: past the header's end.
    f[34 + 20 + 3] = 40;
    let before = f.clone();
    unshift_sack(&mut f, 34, 32, 5000, 28);
    assert_eq!(f, before);
}

#[test]
fn toa_goes_after_the_options() {
    let f = tcp_frame(5001, 9001, false, b"");
    let mut b = VecBuf::with_default_headroom(&f);
    insert_toa(&mut b, 14, 34, Ipv4Addr::from(C), 56324, 1500).unwrap();
    let t = tcp_of(b.data());
    assert_eq!(t.data_offset(), 10);
    let toa = &t.options()[12..20];
    assert_eq!(toa, &[254, 8, 0xdc, 0x04, 198, 51, 100, 7]);
    assert_eq!(t.sequence_number(), 5001);
    // With a payload: the payload follows the option, intact.
    let f = tcp_frame(5001, 9001, false, b"hello");
    let mut b = VecBuf::with_default_headroom(&f);
    insert_toa(&mut b, 14, 34, Ipv4Addr::from(C), 1, 1500).unwrap();
    assert_eq!(tcp_of(b.data()).payload(), b"hello");
}

#[test]
fn toa_refused_without_room() {
    // A full-size segment: the option would exceed the MTU.
    let f = tcp_frame(5001, 9001, false, &[7u8; 1448]);
    let mut b = VecBuf::with_default_headroom(&f);
    assert_eq!(
        insert_toa(&mut b, 14, 34, Ipv4Addr::from(C), 1, 1500),
        Err(NoRoom::Mtu)
    );
    assert_eq!(b.data(), &f[..]);
    // 36 bytes of options already: no room for 8 more.
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [3; 6])
        .ipv4(LIP, RIP, 63)
        .tcp(1, 2, 3, 4)
        .options_raw(&[1u8; 36])
        .unwrap()
        .write(&mut v, b"")
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&v);
    assert_eq!(
        insert_toa(&mut b, 14, 34, Ipv4Addr::from(C), 1, 1500),
        Err(NoRoom::Options)
    );
    // No headroom.
    let mut b = VecBuf::new(4, &f[..100]);
    let r = insert_toa(&mut b, 14, 34, Ipv4Addr::from(C), 1, 1500);
    assert!(r.is_err());
}

#[test]
fn udp_datagram_gets_the_header_in_front() {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [3; 6])
        .ipv4(LIP, RIP, 63)
        .udp(40000, 53)
        .write(&mut v, b"query")
        .unwrap();
    let h = ProxyHeader::v2(
        Addr::from(std::net::IpAddr::from(C)),
        1234,
        Addr::v4(192, 0, 2, 1),
        53,
        true,
    );
    let mut b = VecBuf::with_default_headroom(&v);
    prepend_udp(&mut b, 14, 34, h.bytes(), 1500).unwrap();
    let p = check_v4(b.data());
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!()
    };
    assert_eq!(&u.payload()[..28], h.bytes());
    assert_eq!(&u.payload()[28..], b"query");
    assert_eq!(u.length(), 8 + 28 + 5);
    // Too big for the MTU: refused, unchanged.
    let mut big = Vec::new();
    PacketBuilder::ethernet2([2; 6], [3; 6])
        .ipv4(LIP, RIP, 63)
        .udp(40000, 53)
        .write(&mut big, &[0u8; 1460])
        .unwrap();
    let mut b = VecBuf::with_default_headroom(&big);
    assert_eq!(
        prepend_udp(&mut b, 14, 34, h.bytes(), 1500),
        Err(NoRoom::Mtu)
    );
    assert_eq!(b.data(), &big[..]);
}

#[test]
fn header_segment_copies_the_clients_headers() {
    let f = tcp_frame(5001 + 28, 9001, false, b"GET / HTTP/1.1\r\n\r\n");
    let h = ProxyHeader::v1(
        Addr::from(std::net::IpAddr::from(C)),
        56324,
        Addr::v4(192, 0, 2, 1),
        80,
    )
    .unwrap();
    let mut out = [0u8; 1600];
    let n = header_segment(&f, 14, 34, 5001, h.bytes(), &mut out).unwrap();
    let t = tcp_of(&out[..n]);
    assert_eq!(t.sequence_number(), 5001);
    assert_eq!(t.acknowledgment_number(), 9001);
    assert!(t.ack() && t.psh() && !t.fin() && !t.rst() && !t.syn());
    assert_eq!(t.payload(), h.bytes());
    // The timestamps came along.
    assert!(t
        .options_iterator()
        .any(|o| matches!(o, Ok(TcpOptionElement::Timestamp(1, 2)))));
    assert!(header_segment(&f, 14, 34, 5001, h.bytes(), &mut [0u8; 40]).is_none());
}
