//! 802.1Q tags on egress: a port with a `vlan` carries every frame tagged with its VID,
//! a port without one carries untagged frames ([`crate::pipeline::PortNet::vlan`]).
//!
//! The pipeline accepts a frame only when its tag matches the port it arrived on (see
//! [`crate::pipeline::DropReason::Vlan`]) and leaves the tag in place while it works on
//! the frame; [`retag`] then makes the frame's tag that of the port it leaves by:
//! nothing to do when both agree (the common untagged case), the VID rewritten (the
//! priority bits kept) between two VLAN ports, the tag removed (the MACs moved 4 bytes
//! on, the front trimmed) toward an untagged port, or a tag inserted (4 bytes prepended
//! into the headroom, the MACs moved in front of it) toward a VLAN port.

use crate::buf::PacketBuf;
use crate::wire::{ethernet, Error, EtherType, Result};

/// Length of an 802.1Q tag.
pub const TAG_LEN: usize = 4;

/// The VID of a frame's 802.1Q tag, `None` when it has none (a priority tag is VID 0).
/// `frame` must hold an Ethernet header (the caller has classified it).
#[inline(always)]
pub fn vid_of(frame: &[u8]) -> Option<u16> {
    match frame.get(ethernet::field::ETHERTYPE) {
        Some(t) if t == EtherType::VLAN.0.to_be_bytes() => frame
            .get(ethernet::field::VLAN_TCI)
            .map(|t| u16::from_be_bytes([t[0], t[1]]) & 0x0fff),
        _ => None,
    }
}

/// Gives the Ethernet frame in `buf` the 802.1Q tag of VID `vid`, or no tag (`None`):
/// see the module docs. [`Error::NoHeadroom`] when a tag does not fit in front,
/// [`Error::Truncated`] for a frame shorter than its Ethernet header; nothing is changed
/// then.
#[inline]
pub fn retag<B: PacketBuf + ?Sized>(buf: &mut B, vid: Option<u16>) -> Result<()> {
    let data = buf.data();
    if data.len() < ethernet::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let tagged = data[ethernet::field::ETHERTYPE] == EtherType::VLAN.0.to_be_bytes();
    const MACS: usize = 12;
    match (tagged, vid) {
        (false, None) => Ok(()),
        (true, Some(vid)) => {
            let data = buf.data_mut();
            let tci = data
                .get_mut(ethernet::field::VLAN_TCI)
                .ok_or(Error::Truncated)?;
            let pcp = u16::from_be_bytes([tci[0], tci[1]]) & 0xf000;
            tci.copy_from_slice(&(pcp | (vid & 0x0fff)).to_be_bytes());
            Ok(())
        }
        (true, None) => {
            if data.len() < ethernet::VLAN_HEADER_LEN {
                return Err(Error::Truncated);
            }
            buf.data_mut().copy_within(..MACS, TAG_LEN);
            buf.adj(TAG_LEN).map_err(|_| Error::Truncated)
        }
        (false, Some(vid)) => {
            let data = buf.prepend(TAG_LEN).map_err(|_| Error::NoHeadroom)?;
            data.copy_within(TAG_LEN..TAG_LEN + MACS, 0);
            data[MACS..MACS + 2].copy_from_slice(&EtherType::VLAN.0.to_be_bytes());
            data[MACS + 2..MACS + 4].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use etherparse::{LinkSlice, PacketBuilder, SlicedPacket, VlanId};

    const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const DST: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn frame(vid: Option<u16>) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(SRC, DST);
        let payload = [1, 2, 3, 4, 5];
        let mut out = Vec::new();
        match vid {
            Some(v) => eth
                .single_vlan(VlanId::try_new(v).unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1000, 2000)
                .write(&mut out, &payload),
            None => eth
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1000, 2000)
                .write(&mut out, &payload),
        }
        .unwrap();
        out
    }

    /// (VID of the outer tag, MACs, UDP payload) as etherparse reads the frame.
    fn read(f: &[u8]) -> (Option<u16>, [u8; 6], [u8; 6], Vec<u8>) {
        let p = SlicedPacket::from_ethernet(f).expect("parses");
        let Some(LinkSlice::Ethernet2(e)) = p.link else {
            panic!("ethernet")
        };
        let vid = p.vlan.map(|v| match v {
            etherparse::VlanSlice::SingleVlan(s) => s.vlan_identifier().value(),
            etherparse::VlanSlice::DoubleVlan(_) => panic!("one tag at most"),
        });
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
            panic!("udp")
        };
        (vid, e.source(), e.destination(), u.payload().to_vec())
    }

    #[test]
    fn retag_adds_removes_rewrites_or_leaves_the_tag() {
        for from in [None, Some(10), Some(4094)] {
            for to in [None, Some(10), Some(20)] {
                let mut b = VecBuf::with_default_headroom(&frame(from));
                retag(&mut b, to).unwrap();
                assert_eq!(b.to_vec(), frame(to), "{from:?} -> {to:?}");
                assert_eq!(read(b.data()), (to, SRC, DST, vec![1, 2, 3, 4, 5]));
                assert_eq!(vid_of(b.data()), to);
            }
        }
    }

    #[test]
    fn retag_keeps_the_priority_bits_and_refuses_without_headroom() {
        let mut f = frame(Some(10));
        f[14] |= 0xa0; // PCP 5
        let mut b = VecBuf::with_default_headroom(&f);
        retag(&mut b, Some(20)).unwrap();
        assert_eq!(&b.data()[14..16], &[0xa0, 20]);
        let plain = frame(None);
        let mut b = VecBuf::new(3, &plain);
        assert_eq!(retag(&mut b, Some(10)), Err(Error::NoHeadroom));
        assert_eq!(b.to_vec(), plain, "unchanged");
        let mut short = VecBuf::new(8, &plain[..10]);
        assert_eq!(retag(&mut short, Some(10)), Err(Error::Truncated));
    }
}
