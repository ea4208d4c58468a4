//! TUN (IPVS "Tunnel", `-i`): the director puts an outer IPv4 header DIP → RIP in
//! front of the untouched client packet, with the real server's encapsulation
//! ([`Encap`], ipvsadm's `--tun-type`) between them; the real server decapsulates and
//! answers the client directly. As `ip_vs_tunnel_xmit`:
//!
//! * IPIP: the outer header's protocol is 4 (41 around an IPv6 packet);
//! * GUE: protocol 17, a UDP header from a port of the flow's hash (in 32768..=60998, as
//!   `udp_flow_src_port` with the default local port range) to the server's
//!   `--tun-port`, length, and the UDP checksum with `--tun-csum` and `--tun-remcsum`
//!   (0 with `--tun-nocsum`); then the 4-byte GUE header ([`crate::wire::gue`]: version
//!   0, protocol 4 or 41). The remote-checksum-offload option IPVS adds only to a packet
//!   whose own checksum is still to be computed, which a forwarded packet never is;
//! * GRE: protocol 47, the GRE header ([`crate::wire::gre`]: protocol 0x0800 or 0x86DD)
//!   with the checksum bit and a checksum over the GRE packet with `--tun-csum`.
//!
//! The outer header copies the inner TOS (IPv6: traffic class), DF (IPv6: always set,
//! as with `pmtu_disc`) and identification; its TTL is the inner TTL minus one, since
//! the director routes the tunnel packet (inner TTL ≤ 1 is [`Error::TtlExpired`]). The
//! inner packet is not modified. The Ethernet header (and VLAN tag) is kept in front,
//! with the EtherType set to IPv4 and the MACs of the real server's next hop.
//!
//! When the encapsulated packet would exceed the egress MTU:
//! * inner IPv4 with DF: the packet is refused and an ICMP "fragmentation needed"
//!   (type 3 code 4) advertising the MTU less the encapsulation's overhead is built for
//!   the client into the caller's reply buffer ([`frag_needed`]) — what IPVS does via
//!   `icmp_send`;
//! * otherwise [`Error::Oversize`]: rvs does not fragment; the general path answers an
//!   IPv6 packet with Packet Too Big ([`super::icmp6`]).
//!
//! Toward an IPv6 real server ([`encapsulate6`]) the outer header is IPv6 (ip6ip6,
//! next header 41, or 4 around an IPv4 packet), 40 bytes: traffic class copied, flow
//! label 0, hop limit the inner TTL (hop limit) minus one. Only IPIP-style tunnels are
//! built to IPv6 servers (`ip6_tunnel`); GUE and GRE over IPv6 are refused by the
//! control plane.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::flow::{TunCsum, TunKind, Tunnel};
use crate::wire::icmpv4::{dst_unreachable, Message};
use crate::wire::{
    checksum, ethernet, gre, gue, ipv4, udp, ChecksumMode, Error, EtherType, IpMeta, IpProtocol,
    IpVersion, Result,
};

use super::rewrite::{check_ttl, set_macs, MacRewrite};

/// The encapsulation of a TUN packet, as the plan carries it: the real server's
/// [`Tunnel`] with, for GUE, the flow's UDP source port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encap {
    /// IP in IP.
    #[default]
    Ipip,
    /// GUE in UDP `sport → dport`, with the UDP checksum when `csum`.
    Gue {
        /// The UDP source port (from the flow's hash).
        sport: u16,
        /// The UDP destination port (`--tun-port`).
        dport: u16,
        /// Compute the UDP checksum (else 0).
        csum: bool,
    },
    /// GRE, with its checksum when `csum`.
    Gre {
        /// Write the checksum field.
        csum: bool,
    },
}

impl Encap {
    /// The encapsulation toward a server with tunnel `t`; `sport` is the GUE source
    /// port of the flow ([`flow_src_port`]).
    #[inline]
    pub fn of(t: Tunnel, sport: u16) -> Encap {
        match t.kind {
            TunKind::Ipip => Encap::Ipip,
            TunKind::Gue => Encap::Gue {
                sport,
                dport: t.port,
                csum: t.csum != TunCsum::NoCsum,
            },
            TunKind::Gre => Encap::Gre {
                csum: t.csum == TunCsum::Csum,
            },
        }
    }

    /// The bytes it adds in front of the packet: the outer IPv4 header and what
    /// follows it (the `max_headroom`, and what `__ip_vs_get_out_rt` takes off the
    /// route's MTU).
    #[inline(always)]
    pub const fn overhead(&self) -> usize {
        ipv4::HEADER_LEN
            + match *self {
                Encap::Ipip => 0,
                Encap::Gue { .. } => udp::HEADER_LEN + gue::HEADER_LEN,
                Encap::Gre { csum } => gre::header_len(csum),
            }
    }
}

/// The GUE source port of a flow, as `udp_flow_src_port(net, skb, 0, 0, …)` spreads the
/// flow hash over the default local port range 32768..61000: from the client's end and
/// the virtual service's (the same for every packet of a session, whichever path).
#[inline]
pub fn flow_src_port(client: [u8; 4], cport: u16, vaddr: [u8; 4], vport: u16) -> u16 {
    let mut h = u32::from_be_bytes(client)
        ^ u32::from_be_bytes(vaddr).rotate_left(16)
        ^ (u32::from(cport) << 16 | u32::from(vport));
    h = h.wrapping_mul(0x9e37_79b1);
    h ^= h >> 15;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h ^= h << 16;
    let (min, max) = (32768u64, 61000u64);
    ((u64::from(h) * (max - min)) >> 32) as u16 + min as u16
}

/// A TUN session's rewrite parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunParams {
    /// The director's address (DIP): the outer source, and the source of the ICMP
    /// fragmentation-needed error.
    pub local: Ipv4Addr,
    /// The real server (RIP): the outer destination.
    pub real: Ipv4Addr,
    /// The egress MTU (L3 bytes, e.g. 1500).
    pub mtu: u16,
    /// The MACs of the tunnel frame (director port → next hop toward the RS).
    pub macs: MacRewrite,
    /// The encapsulation.
    pub encap: Encap,
}

/// What [`encapsulate`] needs to know of the packet it wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// Offset of the end of the IP packet (Ethernet padding after it).
    pub end: usize,
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// Its TOS (traffic class), copied to the outer header.
    pub tos: u8,
    /// Its DF bit (IPv4), copied to the outer header.
    pub dont_frag: bool,
}

impl Inner {
    /// The parts of a classified packet.
    pub fn of(meta: &IpMeta) -> Inner {
        Inner {
            l3: meta.l3_offset(),
            end: meta.ip_end,
            version: meta.version,
            tos: meta.tos,
            dont_frag: meta.dont_frag,
        }
    }
}

/// The Ethernet header of a frame just grown by `extra` bytes in front (its old header
/// `l3` bytes long at `extra`) put at the new front, with EtherType `ether`: the outer
/// headers go into the gap between it and the inner packet. Only an 802.1Q tag moves:
/// the caller writes the MACs anew ([`set_macs`]). Inlined into its callers: a call for
/// two stores (the common untagged frame) cost more than they do.
#[inline(always)]
fn front_header(data: &mut [u8], extra: usize, l3: usize, ether: EtherType) {
    if l3 > ethernet::HEADER_LEN {
        data.copy_within(extra + 12..extra + l3 - 2, 12);
    }
    data[l3 - 2..l3].copy_from_slice(&ether.0.to_be_bytes());
}

/// Encapsulate a packet for the real server (see the module docs). [`Error::Oversize`] (buffer unchanged) when it would not fit `p.mtu`.
/// Inlined into its callers, so that `p` and `inner` stay in registers; the established
/// path calls it from one out-of-line step (`Plan::encapsulate`), not from its loop.
#[inline(always)]
pub fn encapsulate<B: PacketBuf + ?Sized>(buf: &mut B, inner: &Inner, p: &TunParams) -> Result<()> {
    let frame = buf.data();
    let (l3, end) = (inner.l3, inner.end);
    let min_ip = match inner.version {
        IpVersion::V4 => ipv4::HEADER_LEN,
        IpVersion::V6 => crate::wire::ipv6::HEADER_LEN,
    };
    if l3 < 14 || end > frame.len() || l3 + min_ip > end {
        return Err(Error::Truncated);
    }
    let inner_len = end - l3;
    let ttl = check_ttl(&frame[l3..], inner.version)?;
    let extra = p.encap.overhead();
    if inner_len + extra > usize::from(p.mtu) {
        return Err(Error::Oversize);
    }
    if buf.headroom() < extra {
        return Err(Error::NoHeadroom);
    }
    let (ident, dont_frag) = match inner.version {
        IpVersion::V4 => (
            u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]),
            inner.dont_frag,
        ),
        IpVersion::V6 => (0, true),
    };
    let (ip_proto, ether) = match inner.version {
        IpVersion::V4 => (IpProtocol::IPIP, EtherType::IPV4),
        IpVersion::V6 => (IpProtocol::IPV6, EtherType::IPV6),
    };
    let outer = ipv4::Repr {
        src_addr: p.local,
        dst_addr: p.real,
        protocol: match p.encap {
            Encap::Ipip => ip_proto,
            Encap::Gue { .. } => IpProtocol::UDP,
            Encap::Gre { .. } => IpProtocol::GRE,
        },
        payload_len: inner_len + extra - ipv4::HEADER_LEN,
        ttl: ttl - 1,
        tos: inner.tos,
        ident,
        dont_frag,
    };

    let pad = frame.len() - end;
    buf.trim(pad).map_err(|_| Error::Truncated)?;
    let data = buf.prepend(extra).map_err(|_| Error::NoHeadroom)?;
    front_header(data, extra, l3, EtherType::IPV4);
    outer.emit(&mut data[l3..], ChecksumMode::Software)?;
    let at = l3 + ipv4::HEADER_LEN;
    match p.encap {
        Encap::Ipip => {}
        Encap::Gue { sport, dport, csum } => {
            let len = inner_len + udp::HEADER_LEN + gue::HEADER_LEN;
            let dgram = &mut data[at..at + len];
            dgram[0..2].copy_from_slice(&sport.to_be_bytes());
            dgram[2..4].copy_from_slice(&dport.to_be_bytes());
            dgram[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            dgram[6..8].fill(0);
            gue::emit(&mut dgram[udp::HEADER_LEN..], ip_proto);
            if csum {
                let pseudo = checksum::pseudo_header_v4(p.local, p.real, 17, len as u16);
                let c = !checksum::combine(&[pseudo, checksum::data(dgram)]);
                let c = if c == 0 { 0xffff } else { c };
                dgram[6..8].copy_from_slice(&c.to_be_bytes());
            }
        }
        Encap::Gre { csum } => {
            let packet = &mut data[at..at + gre::header_len(csum) + inner_len];
            gre::emit(packet, ether, csum);
            if csum {
                gre::fill_checksum(packet);
            }
        }
    }
    set_macs(data, &p.macs)
}

/// The bytes [`encapsulate6`] adds: the outer IPv6 header.
pub const OVERHEAD6: usize = crate::wire::ipv6::HEADER_LEN;

/// Encapsulates a packet for an IPv6 real server: an outer IPv6 header `local` →
/// `real` (see the module docs), MACs `macs`. [`Error::Oversize`] (buffer unchanged)
/// when it would not fit `mtu`.
pub fn encapsulate6<B: PacketBuf + ?Sized>(
    buf: &mut B,
    inner: &Inner,
    local: Ipv6Addr,
    real: Ipv6Addr,
    mtu: u16,
    macs: &MacRewrite,
) -> Result<()> {
    use crate::wire::ipv6;
    let frame = buf.data();
    let (l3, end) = (inner.l3, inner.end);
    let min_ip = match inner.version {
        IpVersion::V4 => ipv4::HEADER_LEN,
        IpVersion::V6 => ipv6::HEADER_LEN,
    };
    if l3 < 14 || end > frame.len() || l3 + min_ip > end {
        return Err(Error::Truncated);
    }
    let inner_len = end - l3;
    let ttl = check_ttl(&frame[l3..], inner.version)?;
    if inner_len + OVERHEAD6 > usize::from(mtu) {
        return Err(Error::Oversize);
    }
    if buf.headroom() < OVERHEAD6 {
        return Err(Error::NoHeadroom);
    }
    let next = match inner.version {
        IpVersion::V4 => IpProtocol::IPIP,
        IpVersion::V6 => IpProtocol::IPV6,
    };
    let pad = frame.len() - end;
    buf.trim(pad).map_err(|_| Error::Truncated)?;
    let data = buf.prepend(OVERHEAD6).map_err(|_| Error::NoHeadroom)?;
    front_header(data, OVERHEAD6, l3, EtherType::IPV6);
    let mut outer = ipv6::Packet::new_unchecked(&mut data[l3..l3 + OVERHEAD6]);
    outer.set_version_tc_flow(inner.tos, 0);
    outer.set_payload_len(inner_len as u16);
    outer.set_next_header(next);
    outer.set_hop_limit(ttl - 1);
    outer.set_src_addr(&local);
    outer.set_dst_addr(&real);
    set_macs(data, macs)
}

/// Build the ICMP fragmentation-needed frame for the client into `out`; its length:
/// type 3 code 4 from the tunnel's source, advertising the MTU less the
/// encapsulation's overhead ([`Encap::overhead`]; [`super::icmp::originate`]).
pub fn frag_needed(frame: &[u8], meta: &IpMeta, p: &TunParams, out: &mut [u8]) -> Result<usize> {
    let mtu = p.mtu.saturating_sub(p.encap.overhead() as u16);
    let msg = (Message::DST_UNREACHABLE, dst_unreachable::FRAG_NEEDED, mtu);
    super::icmp::originate(frame, meta, p.local, msg, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::forward::rewrite::testutil::*;
    use crate::wire::EthernetAddress;
    use etherparse::{
        Icmpv4Type, IpNumber, Ipv4HeaderSlice, LinkSlice, NetSlice, PacketBuilder, SlicedPacket,
        TransportSlice,
    };

    fn params(mtu: u16) -> TunParams {
        TunParams {
            local: DIP.into(),
            real: RIP.into(),
            mtu,
            macs: MacRewrite {
                src: EthernetAddress(DIRECTOR_MAC),
                dst: EthernetAddress(RS_MAC),
            },
            encap: Encap::Ipip,
        }
    }

    fn client_frame(len: usize, df: bool, ttl: u8) -> Vec<u8> {
        let mut h = etherparse::Ipv4Header::new(0, ttl, IpNumber::TCP, CIP, VIP).unwrap();
        h.dont_fragment = df;
        h.identification = 0x4242;
        h.dscp = etherparse::Ipv4Dscp::try_new(10).unwrap();
        let b = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
            .tcp(CPORT, VPORT, 77, 1000)
            .ack(5);
        let payload = vec![0x5a; len - 14 - 40];
        let mut v = Vec::new();
        b.write(&mut v, &payload).unwrap();
        v
    }

    #[test]
    fn encapsulation() {
        let orig = client_frame(200, true, 64);
        let m = meta(&orig);
        let mut b = VecBuf::new(64, &orig);
        encapsulate(&mut b, &Inner::of(&m), &params(1500)).unwrap();
        let out = b.data();
        assert_eq!(out.len(), orig.len() + 20);
        let p = SlicedPacket::from_ethernet(out).unwrap();
        let Some(LinkSlice::Ethernet2(e)) = &p.link else {
            panic!()
        };
        assert_eq!((e.source(), e.destination()), (DIRECTOR_MAC, RS_MAC));
        assert_eq!(e.ether_type(), etherparse::EtherType::IPV4);
        // etherparse reads the outer header, then the inner one (IPIP)
        let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
        assert_eq!(outer.source, DIP);
        assert_eq!(outer.destination, RIP);
        assert_eq!(outer.protocol, IpNumber::IPV4);
        assert_eq!(outer.time_to_live, 63);
        assert_eq!(outer.dscp.value(), 10);
        assert!(outer.dont_fragment);
        assert_eq!(outer.identification, 0x4242);
        assert_eq!(usize::from(outer.total_len), orig.len() - 14 + 20);
        assert_eq!(outer.header_checksum, outer.calc_header_checksum());
        // the inner packet is byte-identical
        assert_eq!(&out[34..], &orig[14..]);
        let inner = SlicedPacket::from_ip(&out[34..]).unwrap();
        let Some(NetSlice::Ipv4(ii)) = &inner.net else {
            panic!()
        };
        assert_eq!(ii.header().ttl(), 64);
        assert!(matches!(inner.transport, Some(TransportSlice::Tcp(_))));
        // our own IPIP view agrees
        let ipip = crate::wire::IpipPacket::new_checked(&out[14..]).unwrap();
        assert_eq!(ipip.inner(), &orig[14..]);
    }

    /// ip6ip6, untagged and with an 802.1Q tag (which stays in front of the outer header).
    #[test]
    fn ip6ip6_encapsulation() {
        let (c6, v6, d6, r6) = ([0x20; 16], [0x21; 16], [0x22; 16], [0x23; 16]);
        for vlan in [None, Some(300)] {
            let mut orig = Vec::new();
            let eth = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC);
            let ip = match vlan {
                Some(v) => eth
                    .single_vlan(etherparse::VlanId::try_new(v).unwrap())
                    .ipv6(c6, v6, 64),
                None => eth.ipv6(c6, v6, 64),
            };
            ip.tcp(CPORT, VPORT, 1, 100)
                .write(&mut orig, &[7; 100])
                .unwrap();
            let l3 = if vlan.is_some() { 18 } else { 14 };
            let m = meta(&orig);
            let macs = MacRewrite {
                src: EthernetAddress(DIRECTOR_MAC),
                dst: EthernetAddress(RS_MAC),
            };
            let mut b = VecBuf::new(64, &orig);
            let too_small = encapsulate6(&mut b, &Inner::of(&m), d6.into(), r6.into(), 199, &macs);
            assert_eq!(too_small, Err(Error::Oversize));
            assert_eq!(b.data(), &orig[..]);
            encapsulate6(&mut b, &Inner::of(&m), d6.into(), r6.into(), 1500, &macs).unwrap();
            let out = b.data();
            assert_eq!(out.len(), orig.len() + 40);
            let p = SlicedPacket::from_ethernet(out).unwrap();
            let Some(LinkSlice::Ethernet2(e)) = &p.link else {
                panic!()
            };
            assert_eq!((e.source(), e.destination()), (DIRECTOR_MAC, RS_MAC));
            let tag = match &p.vlan {
                Some(etherparse::VlanSlice::SingleVlan(t)) => Some(t.vlan_identifier().value()),
                _ => None,
            };
            assert_eq!(tag, vlan);
            let outer = etherparse::Ipv6HeaderSlice::from_slice(&out[l3..]).unwrap();
            assert_eq!((outer.source(), outer.destination()), (d6, r6));
            assert_eq!(outer.next_header(), IpNumber::IPV6);
            assert_eq!(outer.hop_limit(), 63);
            assert_eq!(usize::from(outer.payload_length()), orig.len() - l3);
            assert_eq!(
                &out[l3 + 40..],
                &orig[l3..],
                "the inner packet is untouched"
            );
            assert_eq!(&out[l3 - 2..l3], &[0x86, 0xdd]);
        }
    }

    #[test]
    fn encapsulation_padding() {
        // 60-byte minimum frame: a 54-byte packet plus 6 bytes of padding
        let mut orig = client_frame(54, false, 64);
        orig.extend_from_slice(&[0; 6]);
        let m = meta(&orig);
        let mut b = VecBuf::new(20, &orig);
        encapsulate(&mut b, &Inner::of(&m), &params(1500)).unwrap();
        let out = b.data();
        assert_eq!(out.len(), 54 + 20, "padding trimmed");
        let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
        assert!(!outer.dont_fragment());
    }

    #[test]
    fn no_headroom_changes_nothing() {
        let orig = client_frame(100, true, 64);
        let m = meta(&orig);
        let mut b = VecBuf::new(19, &orig);
        assert_eq!(
            encapsulate(&mut b, &Inner::of(&m), &params(1500)),
            Err(Error::NoHeadroom)
        );
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn ttl_expiry() {
        let orig = client_frame(100, true, 1);
        let m = meta(&orig);
        let mut b = VecBuf::new(64, &orig);
        assert_eq!(
            encapsulate(&mut b, &Inner::of(&m), &params(1500)),
            Err(Error::TtlExpired)
        );
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn frag_needed_for_df_packets() {
        // 1500-byte IP packet + 20 > 1500 with DF set
        let orig = client_frame(14 + 1500, true, 64);
        let m = meta(&orig);
        let mut b = VecBuf::new(64, &orig);
        let mut out = [0u8; 128];
        // What the pipeline does: encapsulation refused, frag-needed for the client.
        assert!(m.dont_frag);
        assert_eq!(
            encapsulate(&mut b, &Inner::of(&m), &params(1500)),
            Err(Error::Oversize)
        );
        let len = frag_needed(b.data(), &m, &params(1500), &mut out).unwrap();
        assert_eq!(len, 14 + 20 + 8 + 20 + 8);
        assert_eq!(b.data(), &orig[..], "the refused packet is untouched");
        let p = check_v4(&out[..len]);
        assert_eq!(macs(&p), (DIRECTOR_MAC, CLIENT_MAC));
        let h = ipv4_header(&out[..len]);
        assert_eq!((h.source, h.destination), (DIP, CIP));
        assert_eq!(h.protocol, IpNumber::ICMP);
        let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
            panic!()
        };
        assert_eq!(
            i.icmp_type(),
            Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1480
                }
            )
        );
        // the embedded original IP header + 8 bytes
        assert_eq!(i.payload(), &orig[14..14 + 28]);
        check_icmp(i);

        // a reply buffer too small
        let mut tiny = [0u8; 40];
        assert_eq!(
            frag_needed(b.data(), &m, &params(1500), &mut tiny),
            Err(Error::BufferTooSmall)
        );
        // exactly fitting: 1480 + 20 = 1500 passes
        let fits = client_frame(14 + 1480, true, 64);
        let mf = meta(&fits);
        let mut b = VecBuf::new(64, &fits);
        assert!(matches!(
            encapsulate(&mut b, &Inner::of(&mf), &params(1500)),
            Ok(())
        ));
    }

    #[test]
    fn oversize_without_df_is_dropped() {
        let orig = client_frame(14 + 1500, false, 64);
        let m = meta(&orig);
        let mut b = VecBuf::new(64, &orig);
        assert_eq!(
            encapsulate(&mut b, &Inner::of(&m), &params(1500)),
            Err(Error::Oversize)
        );
    }

    #[test]
    fn ipv6_inner_uses_protocol_41() {
        let mut orig = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv6([0x20; 16], [0x21; 16], 40)
            .udp(1000, 53)
            .write(&mut orig, b"v6")
            .unwrap();
        let m = meta(&orig);
        let mut b = VecBuf::new(32, &orig);
        encapsulate(&mut b, &Inner::of(&m), &params(1500)).unwrap();
        let out = b.data();
        assert_eq!(&out[12..14], &[0x81, 0x00]);
        assert_eq!(
            &out[14..16],
            &[0x00, 0x07],
            "the tag's VLAN 7 moved to the front"
        );
        assert_eq!(&out[..6], &RS_MAC);
        assert_eq!(&out[6..12], &DIRECTOR_MAC);
        assert_eq!(&out[16..18], &[0x08, 0x00], "EtherType now IPv4");
        let outer = Ipv4HeaderSlice::from_slice(&out[18..]).unwrap().to_header();
        assert_eq!(outer.protocol, IpNumber::IPV6);
        assert_eq!(outer.time_to_live, 39);
        assert!(outer.dont_fragment);
        assert_eq!(outer.header_checksum, outer.calc_header_checksum());
        assert_eq!(&out[38..], &orig[18..]);
    }

    /// The GUE and GRE tunnels of the tests (GUE to port 6080).
    fn with(encap: Encap, mtu: u16) -> TunParams {
        TunParams {
            encap,
            ..params(mtu)
        }
    }

    /// RFC 1071 sum of `b`, written here apart from `wire::checksum`: a region with a
    /// right checksum sums to 0xffff.
    fn ones_sum(b: &[u8]) -> u16 {
        let mut acc: u32 = b
            .chunks(2)
            .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
            .sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// GUE, with and without the UDP checksum: outer IPv4 DIP → RIP protocol 17 (its
    /// checksum right, TTL − 1, TOS, DF and ID copied), UDP from the flow's port to
    /// 6080 with the right length and (with `csum`) the checksum etherparse computes,
    /// else 0; the GUE header version 0, protocol 4; then the untouched packet.
    #[test]
    fn gue_encapsulation() {
        for csum in [false, true] {
            let orig = client_frame(300, true, 64);
            let m = meta(&orig);
            let mut b = VecBuf::new(64, &orig);
            let sport = flow_src_port(CIP, CPORT, VIP, VPORT);
            let encap = Encap::Gue {
                sport,
                dport: 6080,
                csum,
            };
            encapsulate(&mut b, &Inner::of(&m), &with(encap, 1500)).unwrap();
            let out = b.data();
            assert_eq!(out.len(), orig.len() + 32);
            let p = SlicedPacket::from_ethernet(out).unwrap();
            let Some(LinkSlice::Ethernet2(e)) = &p.link else {
                panic!()
            };
            assert_eq!((e.source(), e.destination()), (DIRECTOR_MAC, RS_MAC));
            let Some(NetSlice::Ipv4(ip)) = &p.net else {
                panic!()
            };
            let outer = ip.header().to_header();
            assert_eq!((outer.source, outer.destination), (DIP, RIP));
            assert_eq!(outer.protocol, IpNumber::UDP);
            assert_eq!(outer.time_to_live, 63);
            assert_eq!(outer.dscp.value(), 10);
            assert!(outer.dont_fragment);
            assert_eq!(outer.identification, 0x4242);
            assert_eq!(usize::from(outer.total_len), orig.len() - 14 + 32);
            assert_eq!(outer.header_checksum, outer.calc_header_checksum());
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                panic!("UDP")
            };
            assert_eq!((u.source_port(), u.destination_port()), (sport, 6080));
            assert!((32768..61000).contains(&sport));
            assert_eq!(usize::from(u.length()), orig.len() - 14 + 12);
            let payload = u.payload();
            if csum {
                let want = u.to_header().calc_checksum_ipv4(&outer, payload).unwrap();
                assert_eq!(u.checksum(), want);
                assert_ne!(u.checksum(), 0);
            } else {
                assert_eq!(u.checksum(), 0);
            }
            assert_eq!(&payload[..4], &[0, 4, 0, 0], "GUE v0, IPIP inside");
            assert_eq!(&payload[4..], &orig[14..], "the inner packet untouched");
            let gue = crate::wire::GuePacket::new_checked(payload).unwrap();
            assert_eq!(gue.payload(), &orig[14..]);
        }
    }

    /// GRE, with and without its checksum: outer protocol 47, the GRE header (C bit and
    /// a checksum over the GRE packet only with `csum`), protocol 0x0800, the untouched
    /// packet.
    #[test]
    fn gre_encapsulation() {
        for csum in [false, true] {
            let orig = client_frame(301, false, 9);
            let m = meta(&orig);
            let mut b = VecBuf::new(64, &orig);
            encapsulate(&mut b, &Inner::of(&m), &with(Encap::Gre { csum }, 1500)).unwrap();
            let out = b.data();
            let hl = if csum { 8 } else { 4 };
            assert_eq!(out.len(), orig.len() + 20 + hl);
            let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
            assert_eq!((outer.source, outer.destination), (DIP, RIP));
            assert_eq!(outer.protocol, IpNumber::GRE);
            assert_eq!(outer.time_to_live, 8);
            assert!(!outer.dont_fragment);
            assert_eq!(usize::from(outer.total_len), orig.len() - 14 + 20 + hl);
            assert_eq!(outer.header_checksum, outer.calc_header_checksum());
            let gre = &out[34..];
            if csum {
                assert_eq!(&gre[..4], &[0x80, 0, 0x08, 0x00]);
                assert_eq!(&gre[6..8], &[0, 0], "reserved");
                assert_ne!(&gre[4..6], &[0, 0]);
                assert_eq!(ones_sum(gre), 0xffff, "GRE checksum right");
            } else {
                assert_eq!(&gre[..4], &[0, 0, 0x08, 0x00]);
            }
            assert_eq!(&gre[hl..], &orig[14..], "the inner packet untouched");
            let view = crate::wire::GrePacket::new_checked(gre).unwrap();
            assert!(view.verify_checksum());
            assert_eq!(view.payload(), &orig[14..]);
        }
    }

    /// An IPv6 packet goes into GUE with protocol 41 and into GRE with 0x86DD.
    #[test]
    fn ipv6_inner_in_gue_and_gre() {
        let mut orig = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ipv6([0x20; 16], [0x21; 16], 40)
            .udp(1000, 53)
            .write(&mut orig, b"v6")
            .unwrap();
        let m = meta(&orig);
        let gue = Encap::Gue {
            sport: 40000,
            dport: 6080,
            csum: true,
        };
        let mut b = VecBuf::new(64, &orig);
        encapsulate(&mut b, &Inner::of(&m), &with(gue, 1500)).unwrap();
        assert_eq!(&b.data()[42..46], &[0, 41, 0, 0]);
        assert_eq!(&b.data()[46..], &orig[14..]);
        let mut b = VecBuf::new(64, &orig);
        encapsulate(
            &mut b,
            &Inner::of(&m),
            &with(Encap::Gre { csum: false }, 1500),
        )
        .unwrap();
        assert_eq!(&b.data()[34..38], &[0, 0, 0x86, 0xdd]);
        assert_eq!(&b.data()[38..], &orig[14..]);
    }

    /// Each encapsulation's overhead counts against the MTU: a packet of exactly
    /// `mtu − overhead` goes, one byte more is `Oversize` (unchanged), and frag-needed
    /// advertises `mtu − overhead`.
    #[test]
    fn the_mtu_allows_for_each_encapsulation() {
        let gue = Encap::Gue {
            sport: 40000,
            dport: 6080,
            csum: false,
        };
        for (encap, overhead) in [
            (Encap::Ipip, 20u16),
            (gue, 32),
            (Encap::Gre { csum: false }, 24),
            (Encap::Gre { csum: true }, 28),
        ] {
            assert_eq!(encap.overhead(), usize::from(overhead));
            let fits = client_frame(14 + usize::from(1500 - overhead), true, 64);
            let mut b = VecBuf::new(64, &fits);
            encapsulate(&mut b, &Inner::of(&meta(&fits)), &with(encap, 1500)).unwrap();
            assert_eq!(b.data().len(), 14 + 1500);
            let big = client_frame(14 + usize::from(1501 - overhead), true, 64);
            let m = meta(&big);
            let mut b = VecBuf::new(64, &big);
            assert_eq!(
                encapsulate(&mut b, &Inner::of(&m), &with(encap, 1500)),
                Err(Error::Oversize),
                "{encap:?}"
            );
            assert_eq!(b.data(), &big[..]);
            let mut out = [0u8; 1600];
            let n = frag_needed(&big, &m, &with(encap, 1500), &mut out).unwrap();
            let p = SlicedPacket::from_ethernet(&out[..n]).unwrap();
            let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
                panic!()
            };
            let Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
            ) = icmp.icmp_type()
            else {
                panic!("{:?}", icmp.icmp_type())
            };
            assert_eq!(next_hop_mtu, 1500 - overhead, "{encap:?}");
        }
    }

    /// The GUE source port is the flow's: the same for every packet of a flow, spread
    /// over 32768..61000 across flows.
    #[test]
    fn gue_source_port_is_per_flow() {
        let ports: Vec<u16> = (0..2000u16)
            .map(|p| flow_src_port(CIP, 1024 + p, VIP, 80))
            .collect();
        assert!(ports.iter().all(|p| (32768..61000).contains(p)));
        assert_eq!(ports[7], flow_src_port(CIP, 1031, VIP, 80));
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert!(distinct.len() > 1900, "{}", distinct.len());
        let lo = ports.iter().filter(|p| **p < 46884).count();
        assert!((800..1200).contains(&lo), "spread: {lo} in the lower half");
    }

    /// `Encap::of` maps a real server's tunnel: GUE's checksum with `--tun-csum` and
    /// `--tun-remcsum`, GRE's with `--tun-csum`.
    #[test]
    fn encap_of_a_tunnel() {
        let t = |kind, csum| Tunnel {
            kind,
            port: 6080,
            csum,
        };
        let gue = |csum| Encap::Gue {
            sport: 5,
            dport: 6080,
            csum,
        };
        assert_eq!(Encap::of(Tunnel::IPIP, 5), Encap::Ipip);
        assert_eq!(Encap::of(t(TunKind::Gue, TunCsum::NoCsum), 5), gue(false));
        assert_eq!(Encap::of(t(TunKind::Gue, TunCsum::Csum), 5), gue(true));
        assert_eq!(Encap::of(t(TunKind::Gue, TunCsum::RemCsum), 5), gue(true));
        assert_eq!(
            Encap::of(t(TunKind::Gre, TunCsum::NoCsum), 5),
            Encap::Gre { csum: false }
        );
        assert_eq!(
            Encap::of(t(TunKind::Gre, TunCsum::Csum), 5),
            Encap::Gre { csum: true }
        );
    }
}
