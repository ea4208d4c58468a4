//! The bytes of forwarding IP fragments without reassembly: the NAT/FULLNAT rewrite of a
//! fragment that carries no L4 header (`rewrite_v4_fragment`: addresses, TTL, header
//! checksum; the first fragment's L4 checksum, which covers the whole datagram, is
//! updated by `rewrite::rewrite_v4` as for a whole packet), and the split of
//! an encapsulated (TUN) packet too big for the egress MTU into two outer fragments
//! (`split_outer_v4`), as the kernel fragments an IPVS tunnel packet without DF. For
//! IPv6: `rewrite_v6_fragment` (addresses and hop limit: IPv6 has no header checksum)
//! and `split_outer_v6`, the tunnel entry point fragmenting its own ip6ip6 packet with
//! a Fragment header (RFC 2473 §7.2).

use crate::buf::PacketBuf;
use crate::wire::ipv4::{self, Packet as Ipv4Packet};
use crate::wire::ipv6;
use crate::wire::{Error, Result};

use super::rewrite::{set_macs, MacRewrite};

/// The IPv4 MF flag in the flags/offset word.
const MF: u16 = 0x2000;

/// Rewrites a non-first IPv4 fragment (header at `l3` of `frame`) for NAT or FULLNAT:
/// TTL − 1, the new source and/or destination address, the header checksum, the MACs.
/// Nothing past the IP header is touched. On `Err` nothing was changed.
pub(crate) fn rewrite_v4_fragment(
    frame: &mut [u8],
    l3: usize,
    src: Option<[u8; 4]>,
    dst: Option<[u8; 4]>,
    macs: &MacRewrite,
) -> Result<()> {
    if l3 < 12 {
        return Err(Error::Truncated);
    }
    let ip = frame.get(l3..).ok_or(Error::Truncated)?;
    let hl = Ipv4Packet::new_checked(ip)?.header_len();
    let ttl = ip[ipv4::TTL_OFFSET];
    if ttl <= 1 {
        return Err(Error::TtlExpired);
    }
    let mut p = Ipv4Packet::new_unchecked(&mut frame[l3..l3 + hl]);
    p.set_ttl(ttl - 1);
    if let Some(a) = src {
        p.set_src_addr(a.into());
    }
    if let Some(a) = dst {
        p.set_dst_addr(a.into());
    }
    p.fill_checksum();
    set_macs(frame, macs)
}

/// Splits the IPv4 packet at `l3` of `first` (a frame just encapsulated, its outer
/// header without options or DF) into two fragments of identification `ident`: `first`
/// keeps the first `mtu`-fitting part (offset 0, MF), `second` (a copy of the same frame)
/// becomes the rest. On `Err` neither was changed.
pub(crate) fn split_outer_v4<B: PacketBuf>(
    first: &mut B,
    second: &mut B,
    l3: usize,
    mtu: u16,
    ident: u16,
) -> Result<()> {
    let hl = ipv4::HEADER_LEN;
    let data = first.data();
    let ip = Ipv4Packet::new_checked(data.get(l3..).ok_or(Error::Truncated)?)?;
    let total = usize::from(ip.total_len());
    if ip.header_len() != hl || ip.dont_frag() || ip.is_fragment() || second.data() != data {
        return Err(Error::Oversize);
    }
    let payload = total - hl;
    let cut = (usize::from(mtu).saturating_sub(hl)) & !7;
    if cut == 0 || payload <= cut {
        return Err(Error::Oversize);
    }
    let end = l3 + total;
    if end > data.len() {
        return Err(Error::Truncated);
    }
    // The second: its headers moved up to just before the rest, the front cut off.
    let head = l3 + hl;
    let d = second.data_mut();
    d.copy_within(0..head, cut);
    second.adj(cut).map_err(|_| Error::Truncated)?;
    let tail = second.len() - (head + payload - cut);
    second.trim(tail).map_err(|_| Error::Truncated)?;
    let mut p = Ipv4Packet::new_unchecked(&mut second.data_mut()[l3..]);
    p.set_total_len((hl + payload - cut) as u16);
    p.set_ident(ident);
    let flags = &mut p.into_inner()[ipv4::FLAGS_OFFSET..ipv4::FLAGS_OFFSET + 2];
    flags.copy_from_slice(&((cut / 8) as u16).to_be_bytes());
    Ipv4Packet::new_unchecked(&mut second.data_mut()[l3..]).fill_checksum();
    // The first: cut after `cut` bytes of payload, MF set.
    let tail = first.len() - (head + cut);
    first.trim(tail).map_err(|_| Error::Truncated)?;
    let mut p = Ipv4Packet::new_unchecked(&mut first.data_mut()[l3..]);
    p.set_total_len((hl + cut) as u16);
    p.set_ident(ident);
    let flags = &mut p.into_inner()[ipv4::FLAGS_OFFSET..ipv4::FLAGS_OFFSET + 2];
    flags.copy_from_slice(&MF.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut first.data_mut()[l3..]).fill_checksum();
    Ok(())
}

/// Rewrites a non-first IPv6 fragment (header at `l3` of `frame`) for NAT or FULLNAT:
/// hop limit − 1, the new source and/or destination address, the MACs. Nothing past
/// the fixed header is touched. On `Err` nothing was changed.
pub(crate) fn rewrite_v6_fragment(
    frame: &mut [u8],
    l3: usize,
    src: Option<[u8; 16]>,
    dst: Option<[u8; 16]>,
    macs: &MacRewrite,
) -> Result<()> {
    if l3 < 12 {
        return Err(Error::Truncated);
    }
    let ip = frame
        .get_mut(l3..l3 + ipv6::HEADER_LEN)
        .ok_or(Error::Truncated)?;
    let hops = ip[ipv6::HOP_LIMIT_OFFSET];
    if hops <= 1 {
        return Err(Error::TtlExpired);
    }
    ip[ipv6::HOP_LIMIT_OFFSET] = hops - 1;
    if let Some(a) = src {
        ip[ipv6::SRC_ADDR_OFFSET..ipv6::SRC_ADDR_OFFSET + 16].copy_from_slice(&a);
    }
    if let Some(a) = dst {
        ip[ipv6::DST_ADDR_OFFSET..ipv6::DST_ADDR_OFFSET + 16].copy_from_slice(&a);
    }
    set_macs(frame, macs)
}

/// The length of an IPv6 Fragment header.
const FRAG_HDR: usize = 8;

/// Splits the ip6ip6 packet at `l3` of `first` (a frame just encapsulated by
/// [`super::tun::encapsulate6`]: the outer header followed directly by the inner packet)
/// into two fragments of identification `ident`, each with a Fragment header: `first`
/// keeps the first `mtu`-fitting part of the inner packet (offset 0, M), `second` (a copy
/// of the same frame) the rest. Each grows by the 8-byte Fragment header into its
/// headroom. On `Err` neither was changed.
pub(crate) fn split_outer_v6<B: PacketBuf>(
    first: &mut B,
    second: &mut B,
    l3: usize,
    mtu: u16,
    ident: u32,
) -> Result<()> {
    let hl = ipv6::HEADER_LEN;
    let data = first.data();
    let ip = data.get(l3..l3 + hl).ok_or(Error::Truncated)?;
    if ip[0] >> 4 != 6 || second.data() != data {
        return Err(Error::Oversize);
    }
    let next = ip[6];
    let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let end = l3 + hl + payload;
    if end > data.len() {
        return Err(Error::Truncated);
    }
    let cut = usize::from(mtu).saturating_sub(hl + FRAG_HDR) & !7;
    if cut == 0 || payload <= cut {
        return Err(Error::Oversize);
    }
    if first.headroom() < FRAG_HDR || second.headroom() < FRAG_HDR {
        return Err(Error::NoHeadroom);
    }
    let head = l3 + hl;
    // The second: the headers moved up to just before the rest, then a Fragment header
    // between them and it.
    {
        let rest = payload - cut;
        let tail = second.len() - end;
        second.trim(tail).map_err(|_| Error::Truncated)?;
        let d = second.data_mut();
        // [l2 | ip6 | inner[..cut] | inner[cut..]] → headers + frag header right before
        // inner[cut..]: move them to start at `cut - FRAG_HDR` (cut ≥ 8).
        d.copy_within(0..head, cut - FRAG_HDR);
        second.adj(cut - FRAG_HDR).map_err(|_| Error::Truncated)?;
        let d = second.data_mut();
        let fh = &mut d[head..head + FRAG_HDR];
        fh[0] = next;
        fh[1] = 0;
        fh[2..4].copy_from_slice(&(cut as u16).to_be_bytes()); // offset (multiple of 8), M = 0
        fh[4..8].copy_from_slice(&ident.to_be_bytes());
        d[l3 + 4..l3 + 6].copy_from_slice(&((FRAG_HDR + rest) as u16).to_be_bytes());
        d[l3 + 6] = 44;
    }
    // The first: the inner packet cut after `cut` bytes, the headers moved down by the
    // Fragment header's length into the headroom.
    {
        let tail = first.len() - (head + cut);
        first.trim(tail).map_err(|_| Error::Truncated)?;
        let d = first.prepend(FRAG_HDR).map_err(|_| Error::NoHeadroom)?;
        d.copy_within(FRAG_HDR..FRAG_HDR + head, 0);
        let fh = &mut d[head..head + FRAG_HDR];
        fh[0] = next;
        fh[1] = 0;
        fh[2..4].copy_from_slice(&1u16.to_be_bytes()); // offset 0, M = 1
        fh[4..8].copy_from_slice(&ident.to_be_bytes());
        d[l3 + 4..l3 + 6].copy_from_slice(&((FRAG_HDR + cut) as u16).to_be_bytes());
        d[l3 + 6] = 44;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use etherparse::{Ipv4HeaderSlice, PacketBuilder};

    fn frame(payload: usize) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut v, &(0..payload).map(|i| i as u8).collect::<Vec<_>>())
            .unwrap();
        v[20] &= !0x40; // no DF
        Ipv4Packet::new_unchecked(&mut v[14..]).fill_checksum();
        v
    }

    #[test]
    fn ipv6_split_gives_two_fragments_that_reassemble() {
        let inner: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([1; 16], [2; 16], 64)
            .udp(1, 2)
            .write(&mut f, &inner[..1460])
            .unwrap();
        // Make it an ip6ip6 frame of 1540 bytes of IP: an outer header around the above.
        let mut outer = f[..14].to_vec();
        let mut h = f[14..54].to_vec();
        h[6] = 41;
        let plen = (f.len() - 14) as u16;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        outer.extend_from_slice(&h);
        outer.extend_from_slice(&f[14..]);
        let mut a = VecBuf::new(64, &outer);
        let mut b = VecBuf::new(64, &outer);
        split_outer_v6(&mut a, &mut b, 14, 1500, 0xdead_beef).unwrap();
        let mut whole = vec![0u8; usize::from(plen)];
        let mut got = 0;
        for (x, more_want) in [(&a, true), (&b, false)] {
            let d = x.data();
            assert!(d.len() - 14 <= 1500, "fits the MTU");
            let p = etherparse::SlicedPacket::from_ethernet(d).unwrap();
            let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
                panic!()
            };
            assert_eq!(
                ip.header().next_header(),
                etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER
            );
            // The Fragment header read by hand (RFC 8200 §4.5: offset in the top 13 bits,
            // M the lowest; etherparse 0.16 reads those bits in another order).
            let fh = &d[54..62];
            let offset_m = u16::from_be_bytes([fh[2], fh[3]]);
            let ident = u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]);
            assert_eq!((ident, offset_m & 1 == 1), (0xdead_beef, more_want));
            assert_eq!(fh[0], 41, "the next header: IPv6");
            let off = usize::from(offset_m & 0xfff8);
            let body = &d[62..14 + 40 + usize::from(ip.header().payload_length())];
            whole[off..off + body.len()].copy_from_slice(body);
            got += body.len();
        }
        assert_eq!(got, usize::from(plen));
        assert_eq!(
            &whole[..],
            &outer[54..],
            "the fragments reassemble to the inner packet"
        );
    }

    #[test]
    fn split_gives_two_fragments_that_reassemble() {
        let f = frame(1600);
        let mut a = VecBuf::new(64, &f);
        let mut b = VecBuf::new(64, &f);
        split_outer_v4(&mut a, &mut b, 14, 1500, 0x4242).unwrap();
        let (ha, hb) = (
            Ipv4HeaderSlice::from_slice(&a.data()[14..]).unwrap(),
            Ipv4HeaderSlice::from_slice(&b.data()[14..]).unwrap(),
        );
        assert_eq!(
            (ha.total_len(), ha.more_fragments(), ha.identification()),
            (1500, true, 0x4242)
        );
        assert_eq!(u16::from(ha.fragments_offset()), 0);
        assert_eq!(u16::from(hb.fragments_offset()) * 8, 1480);
        assert!(!hb.more_fragments() && hb.identification() == 0x4242);
        assert_eq!(usize::from(hb.total_len()), 20 + 8 + 1600 - 1480);
        for h in [&ha, &hb] {
            let mut c = h.to_header();
            c.header_checksum = c.calc_header_checksum();
            assert_eq!(c.header_checksum, h.header_checksum());
        }
        assert_eq!(a.len(), 14 + 1500);
        let mut joined = a.data()[34..].to_vec();
        joined.extend_from_slice(&b.data()[34..]);
        assert_eq!(joined, f[34..]);
        assert_eq!(&b.data()[..14], &f[..14]);
        // Small enough, or DF: not split.
        let f = frame(100);
        let (mut a, mut b) = (VecBuf::new(0, &f), VecBuf::new(0, &f));
        assert_eq!(
            split_outer_v4(&mut a, &mut b, 14, 1500, 1),
            Err(Error::Oversize)
        );
        assert_eq!(a.data(), &f[..]);
    }

    #[test]
    fn fragment_rewrite_changes_addresses_ttl_and_checksum_only() {
        let f = frame(64);
        let mut g = f.clone();
        let macs = MacRewrite::default();
        rewrite_v4_fragment(&mut g, 14, None, Some([10, 9, 9, 9]), &macs).unwrap();
        let h = Ipv4HeaderSlice::from_slice(&g[14..]).unwrap();
        assert_eq!(h.destination(), [10, 9, 9, 9]);
        assert_eq!(h.source(), [10, 0, 0, 1]);
        assert_eq!(h.ttl(), 63);
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        assert_eq!(g[34..], f[34..]);
        let mut t = f.clone();
        t[22] = 1;
        assert_eq!(
            rewrite_v4_fragment(&mut t, 14, None, None, &macs),
            Err(Error::TtlExpired)
        );
    }
}
