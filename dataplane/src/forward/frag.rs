//! The bytes of forwarding IP fragments without reassembly: the NAT/FULLNAT rewrite of a
//! fragment that carries no L4 header (`rewrite_v4_fragment`: addresses, TTL, header
//! checksum; the first fragment's L4 checksum, which covers the whole datagram, is
//! updated by `rewrite::rewrite_v4` as for a whole packet), and the split of
//! an encapsulated (TUN) packet too big for the egress MTU into two outer fragments
//! (`split_outer_v4`), as the kernel fragments an IPVS tunnel packet without DF.

use crate::buf::PacketBuf;
use crate::wire::ipv4::{self, Packet as Ipv4Packet};
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
