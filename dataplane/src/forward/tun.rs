//! TUN (IPVS "Tunnel", `-i`, IPIP): the director puts an outer IPv4 header DIP → RIP
//! (protocol 4, or 41 around an IPv6 packet) in front of the untouched client packet;
//! the real server decapsulates and answers the client directly.
//!
//! The outer header copies the inner TOS (IPv6: traffic class), DF (IPv6: always set,
//! as with `pmtu_disc`) and identification; its TTL is the inner TTL minus one, since
//! the director routes the tunnel packet (inner TTL ≤ 1 is [`Error::TtlExpired`]). The
//! inner packet is not modified. The Ethernet header (and VLAN tag) is kept in front,
//! with the EtherType set to IPv4 and the MACs of the real server's next hop.
//!
//! When the encapsulated packet would exceed the egress MTU:
//! * inner IPv4 with DF: the packet is refused and an ICMP "fragmentation needed"
//!   (type 3 code 4) advertising `mtu − 20` is built for the client into the caller's
//!   reply buffer ([`frag_needed`]) — what IPVS does via `icmp_send`;
//! * otherwise [`Error::Oversize`]: rvs does not fragment (IPv6's Packet Too Big is not
//!   generated yet).

use core::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::wire::icmpv4::{dst_unreachable, Message};
use crate::wire::{ipip, ipv4, ChecksumMode, Error, EtherType, IpMeta, IpVersion, Result};

use super::rewrite::{check_ttl, set_macs, MacRewrite};

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

/// Encapsulate a packet for the real server (see the module docs). [`Error::Oversize`] (buffer unchanged) when it would not fit `p.mtu`.
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
    if inner_len + ipip::OUTER_HEADER_LEN > usize::from(p.mtu) {
        return Err(Error::Oversize);
    }
    if buf.headroom() < ipip::OUTER_HEADER_LEN {
        return Err(Error::NoHeadroom);
    }
    let (ident, dont_frag) = match inner.version {
        IpVersion::V4 => (
            u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]),
            inner.dont_frag,
        ),
        IpVersion::V6 => (0, true),
    };
    let outer = ipip::outer_repr(
        p.local,
        p.real,
        inner.version,
        inner_len,
        inner.tos,
        ttl - 1,
        ident,
        dont_frag,
    );

    let pad = frame.len() - end;
    buf.trim(pad).map_err(|_| Error::Truncated)?;
    let data = buf
        .prepend(ipip::OUTER_HEADER_LEN)
        .map_err(|_| Error::NoHeadroom)?;
    // Move the Ethernet header (and tag) to the new front; the outer IPv4 header goes
    // into the gap between it and the inner packet.
    data.copy_within(ipip::OUTER_HEADER_LEN..ipip::OUTER_HEADER_LEN + l3, 0);
    data[l3 - 2..l3].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
    outer.emit(&mut data[l3..], ChecksumMode::Software)?;
    set_macs(data, &p.macs)
}

/// Build the ICMP fragmentation-needed frame for the client into `out`; its length:
/// type 3 code 4 from the tunnel's source, advertising `mtu − 20`
/// ([`super::icmp::originate`]).
pub fn frag_needed(frame: &[u8], meta: &IpMeta, p: &TunParams, out: &mut [u8]) -> Result<usize> {
    let mtu = p.mtu.saturating_sub(ipip::OUTER_HEADER_LEN as u16);
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
        assert_eq!(&out[16..18], &[0x08, 0x00], "EtherType now IPv4");
        let outer = Ipv4HeaderSlice::from_slice(&out[18..]).unwrap().to_header();
        assert_eq!(outer.protocol, IpNumber::IPV6);
        assert_eq!(outer.time_to_live, 39);
        assert!(outer.dont_fragment);
        assert_eq!(outer.header_checksum, outer.calc_header_checksum());
        assert_eq!(&out[38..], &orig[18..]);
    }
}
