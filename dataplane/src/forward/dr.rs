//! DR (IPVS "Route", `-g`, direct routing): the real server owns the VIP on a
//! non-ARPing interface, so the director only re-addresses the frame: destination MAC
//! → the RS's, source MAC → the director's port. L3 and L4 are untouched (no TTL
//! change: the packet was delivered to the director's VIP, not routed through it), and
//! the RS answers the client directly.

use crate::buf::PacketBuf;
use crate::wire::{IpMeta, Result};

use super::{set_macs, MacRewrite, TxOffload, Verdict};

/// A DR session's rewrite parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrParams {
    /// Source: the director's port MAC; destination: the real server's MAC.
    pub macs: MacRewrite,
}

/// Re-address the frame to the real server. Never needs checksum offload.
pub fn request<B: PacketBuf + ?Sized>(buf: &mut B, meta: &IpMeta, p: &DrParams) -> Result<Verdict> {
    let _ = meta;
    set_macs(buf.data_mut(), &p.macs)?;
    Ok(Verdict::Forward(TxOffload::NONE))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::buf::VecBuf;
    use crate::wire::{Error, EthernetAddress};

    #[test]
    fn only_the_macs_change() {
        for udp in [false, true] {
            let orig = frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"direct");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            let p = DrParams {
                macs: MacRewrite {
                    src: EthernetAddress(DIRECTOR_MAC),
                    dst: EthernetAddress(RS_MAC),
                },
            };
            assert_eq!(
                request(&mut b, &m, &p),
                Ok(Verdict::Forward(TxOffload::NONE))
            );
            let out = b.data();
            let sp = check_v4(out);
            assert_eq!(macs(&sp), (DIRECTOR_MAC, RS_MAC));
            assert_eq!(endpoints(&sp), (ep(CIP, CPORT), ep(VIP, VPORT)));
            assert_eq!(&out[12..], &orig[12..], "L3 and up byte-identical");
            assert_eq!(ipv4_header(out).time_to_live, 64);
        }
    }

    #[test]
    fn short_buffer_is_an_error() {
        let orig = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"");
        let m = meta(&orig);
        let mut short: &mut [u8] = &mut [0u8; 11];
        let p = DrParams {
            macs: MacRewrite::default(),
        };
        assert_eq!(request(&mut short, &m, &p), Err(Error::Truncated));
    }
}
