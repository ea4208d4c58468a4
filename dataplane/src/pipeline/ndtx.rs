//! The neighbour-discovery frames the director originates (IPv6's counterpart of the
//! ARP requests and gratuitous ARP of `host.rs`): a neighbour solicitation for a next
//! hop to resolve, and the unsolicited neighbour advertisement that announces an address
//! when the director becomes active. Both are whole Ethernet frames written into a
//! caller's buffer; the IPv6 and ICMPv6 bytes come from [`crate::wire::icmpv6`].

use std::net::Ipv6Addr;

use crate::wire::ethernet::{self, EtherType};
use crate::wire::icmpv6::{
    self, emit_neighbor_advert, emit_neighbor_solicit, multicast_mac, solicited_node_mac, ALL_NODES,
};

/// Length of a neighbour solicitation or advertisement frame (Ethernet, IPv6, the
/// ICMPv6 message with one link-layer address option): 86 bytes, above the Ethernet
/// minimum.
pub const ND_FRAME_LEN: usize = ethernet::HEADER_LEN + icmpv6::NS_PACKET_LEN;

/// Writes the Ethernet header (`dst`, `src`, IPv6) into `frame`.
fn ethernet_header(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    frame[ethernet::field::DESTINATION].copy_from_slice(&dst);
    frame[ethernet::field::SOURCE].copy_from_slice(&src);
    frame[ethernet::field::ETHERTYPE].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
}

/// Writes into `buf` (at least [`ND_FRAME_LEN`] bytes) a neighbour solicitation from
/// `src` at `mac` for `target`: to the target's solicited-node group
/// (`ff02::1:ffXX:XXXX`, MAC `33:33:ff:XX:XX:XX`), hop limit 255, with the source
/// link-layer address option. Returns the frame length, or `None` when `buf` is short or
/// `src` is unspecified (the director never probes for duplicates).
pub fn build_neighbor_solicit(
    buf: &mut [u8],
    mac: [u8; 6],
    src: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<usize> {
    if src.is_unspecified() {
        return None;
    }
    let frame = buf.get_mut(..ND_FRAME_LEN)?;
    ethernet_header(frame, solicited_node_mac(&target), mac);
    let n = emit_neighbor_solicit(&mut frame[ethernet::HEADER_LEN..], &src, &target, mac).ok()?;
    Some(ethernet::HEADER_LEN + n)
}

/// Writes into `buf` (at least [`ND_FRAME_LEN`] bytes) the unsolicited neighbour
/// advertisement that announces `ip` at `mac` (RFC 4861 §7.2.6): from `ip` to all-nodes
/// `ff02::1` (MAC `33:33:00:00:00:01`), hop limit 255, override set, solicited clear,
/// with the target link-layer address option. Returns the frame length.
pub fn build_unsolicited_na(buf: &mut [u8], mac: [u8; 6], ip: Ipv6Addr) -> Option<usize> {
    let frame = buf.get_mut(..ND_FRAME_LEN)?;
    ethernet_header(frame, multicast_mac(&ALL_NODES), mac);
    // An advertisement "answering" the unspecified address goes to all-nodes with S
    // clear and O set: the unsolicited advertisement.
    let n = emit_neighbor_advert(
        &mut frame[ethernet::HEADER_LEN..],
        &Ipv6Addr::UNSPECIFIED,
        &ip,
        mac,
    )
    .ok()?;
    Some(ethernet::HEADER_LEN + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Type, LinkSlice, NetSlice, SlicedPacket, TransportSlice};

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    /// The frame parsed by etherparse: Ethernet destination, IPv6 source, destination
    /// and hop limit, the ICMPv6 type and its bytes (after the 4-byte type/code/checksum).
    fn parse(frame: &[u8]) -> ([u8; 6], Ipv6Addr, Ipv6Addr, u8, Icmpv6Type, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(frame).expect("a frame etherparse reads");
        let Some(LinkSlice::Ethernet2(eth)) = p.link else {
            panic!("not Ethernet II")
        };
        assert_eq!(eth.ether_type(), etherparse::EtherType::IPV6);
        assert_eq!(eth.source(), MAC);
        let Some(NetSlice::Ipv6(ip)) = p.net else {
            panic!("not IPv6")
        };
        let h = ip.header();
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6")
        };
        // The checksum is right (etherparse computes it over the pseudo-header).
        let want = icmp
            .icmp_type()
            .calc_checksum(h.source(), h.destination(), icmp.payload())
            .unwrap();
        assert_eq!(icmp.checksum(), want, "checksum");
        (
            eth.destination(),
            h.source_addr(),
            h.destination_addr(),
            h.hop_limit(),
            icmp.icmp_type(),
            icmp.slice()[4..].to_vec(),
        )
    }

    #[test]
    fn a_solicitation_goes_to_the_targets_solicited_node_group_with_our_mac() {
        let src: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let target: Ipv6Addr = "2001:db8:1::ab:cdef".parse().unwrap();
        let mut buf = [0u8; 128];
        let n = build_neighbor_solicit(&mut buf, MAC, src, target).unwrap();
        assert_eq!(n, ND_FRAME_LEN);
        let (dmac, s, d, hop, t, body) = parse(&buf[..n]);
        assert_eq!(dmac, [0x33, 0x33, 0xff, 0xab, 0xcd, 0xef]);
        assert_eq!((s, hop), (src, 255));
        assert_eq!(d, "ff02::1:ffab:cdef".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            t,
            Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4]
            }
        );
        // Reserved, target, then the source link-layer address option (type 1, 8 bytes).
        assert_eq!(&body[4..20], &target.octets());
        assert_eq!(&body[20..28], &[1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        // A link-local source (a port without an IPv6 address) is fine; none is not.
        let ll: Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
        assert!(build_neighbor_solicit(&mut buf, MAC, ll, "fe80::1".parse().unwrap()).is_some());
        assert_eq!(
            build_neighbor_solicit(&mut buf, MAC, Ipv6Addr::UNSPECIFIED, target),
            None
        );
        assert_eq!(
            build_neighbor_solicit(&mut buf[..ND_FRAME_LEN - 1], MAC, src, target),
            None
        );
    }

    #[test]
    fn vips_lips_and_floating_addresses_are_announced_the_first_dip_is_not() {
        use crate::pipeline::{announced_addresses6, LocalKind, NetConfig};
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let mut net = NetConfig::new(1);
        net.local6.insert(a("2001:db8:1::1"), (LocalKind::Dip, 0));
        net.local6.insert(a("2001:db8:1::2"), (LocalKind::Dip, 0));
        net.floating6.push(a("2001:db8:1::2"));
        net.local6.insert(a("2001:db8::1"), (LocalKind::Vip, 0));
        net.local6.insert(a("2001:db8:2::200"), (LocalKind::Lip, 1));
        net.local
            .insert("10.0.0.100".parse().unwrap(), (LocalKind::Vip, 0));
        assert_eq!(
            announced_addresses6(&net),
            [
                (0, a("2001:db8::1")),
                (0, a("2001:db8:1::2")),
                (1, a("2001:db8:2::200")),
            ]
        );
    }

    #[test]
    fn an_unsolicited_advertisement_overrides_at_all_nodes() {
        let vip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut buf = [0u8; ND_FRAME_LEN];
        let n = build_unsolicited_na(&mut buf, MAC, vip).unwrap();
        let (dmac, s, d, hop, t, body) = parse(&buf[..n]);
        assert_eq!(dmac, [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!((s, d, hop), (vip, "ff02::1".parse().unwrap(), 255));
        // R clear, S clear, O set.
        assert_eq!(
            t,
            Icmpv6Type::Unknown {
                type_u8: 136,
                code_u8: 0,
                bytes5to8: [0x20, 0, 0, 0]
            }
        );
        assert_eq!(&body[4..20], &vip.octets());
        // The target link-layer address option (type 2) carries the port's MAC.
        assert_eq!(&body[20..28], &[2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        assert_eq!(build_unsolicited_na(&mut buf[..40], MAC, vip), None);
    }
}
