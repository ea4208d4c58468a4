//! FULLNAT (DPVS/Alibaba LVS `-b`): the director rewrites both ends, so the real
//! server talks only to the director's local address (LIP) and needs no special route.
//!
//! * request: src CIP:cport → LIP:lport, dst VIP:vport → RIP:rport
//! * reply: src RIP:rport → VIP:vport, dst LIP:lport → CIP:cport
//!
//! Both directions are routed: TTL − 1 ([`Error::TtlExpired`] at ≤ 1), MACs of the next
//! hop. (TCP option handling such as TOA and sequence-number adjustment are not part
//! of the rewrite.)

use crate::buf::PacketBuf;
use crate::wire::{ChecksumMode, Endpoint, IpMeta, Result};

use super::{rewrite_l3l4, MacRewrite, Verdict};

#[cfg(doc)]
use crate::wire::Error;

/// A FULLNAT session's rewrite parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullNatParams {
    /// The client, CIP:cport.
    pub client: Endpoint,
    /// The virtual service, VIP:vport.
    pub virt: Endpoint,
    /// The director's local address and port for this session, LIP:lport.
    pub local: Endpoint,
    /// The real server, RIP:rport.
    pub real: Endpoint,
    /// The MACs of the frame to transmit.
    pub macs: MacRewrite,
    /// Software checksums or NIC offload.
    pub csum: ChecksumMode,
}

/// Rewrite a client → VIP packet: src → LIP:lport, dst → RIP:rport.
pub fn request<B: PacketBuf + ?Sized>(
    buf: &mut B,
    meta: &IpMeta,
    p: &FullNatParams,
) -> Result<Verdict> {
    rewrite_l3l4(
        buf.data_mut(),
        meta,
        Some(&p.local),
        Some(&p.real),
        &p.macs,
        p.csum,
    )
    .map(Verdict::Forward)
}

/// Rewrite a real server → LIP reply: src → VIP:vport, dst → CIP:cport.
pub fn reply<B: PacketBuf + ?Sized>(
    buf: &mut B,
    meta: &IpMeta,
    p: &FullNatParams,
) -> Result<Verdict> {
    rewrite_l3l4(
        buf.data_mut(),
        meta,
        Some(&p.virt),
        Some(&p.client),
        &p.macs,
        p.csum,
    )
    .map(Verdict::Forward)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{L4Offload, TxOffload};
    use super::*;
    use crate::buf::VecBuf;
    use crate::wire::{checksum, Error, EthernetAddress};
    use etherparse::TransportSlice;

    pub(crate) fn params() -> FullNatParams {
        FullNatParams {
            client: ep(CIP, CPORT),
            virt: ep(VIP, VPORT),
            local: ep(LIP, LPORT),
            real: ep(RIP, RPORT),
            macs: MacRewrite {
                src: EthernetAddress(DIRECTOR_MAC),
                dst: EthernetAddress(RS_MAC),
            },
            csum: ChecksumMode::Software,
        }
    }

    #[test]
    fn request_tcp_and_udp() {
        for udp in [false, true] {
            let orig = frame4(CIP, CPORT, VIP, VPORT, udp, 64, b"hello fullnat");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            let v = request(&mut b, &m, &params()).unwrap();
            assert_eq!(
                v,
                Verdict::Forward(TxOffload::new(14, 20, true, false, None))
            );
            let p = check_v4(b.data());
            assert_eq!(endpoints(&p), (ep(LIP, LPORT), ep(RIP, RPORT)));
            assert_eq!(macs(&p), (DIRECTOR_MAC, RS_MAC));
            assert_eq!(ipv4_header(b.data()).time_to_live, 63);
            match &p.transport {
                Some(TransportSlice::Tcp(t)) => {
                    assert_eq!(t.payload(), b"hello fullnat");
                    assert_eq!(t.sequence_number(), 0x0102_0304);
                }
                Some(TransportSlice::Udp(u)) => assert_eq!(u.payload(), b"hello fullnat"),
                _ => panic!(),
            }
        }
    }

    #[test]
    fn reply_tcp_and_udp() {
        for udp in [false, true] {
            let orig = frame4(RIP, RPORT, LIP, LPORT, udp, 64, b"answer");
            let m = meta(&orig);
            let mut b = VecBuf::new(0, &orig);
            let p = FullNatParams {
                macs: MacRewrite {
                    src: EthernetAddress(DIRECTOR_MAC),
                    dst: EthernetAddress(GW_MAC),
                },
                ..params()
            };
            reply(&mut b, &m, &p).unwrap();
            let sp = check_v4(b.data());
            assert_eq!(endpoints(&sp), (ep(VIP, VPORT), ep(CIP, CPORT)));
            assert_eq!(macs(&sp), (DIRECTOR_MAC, GW_MAC));
            assert_eq!(ipv4_header(b.data()).time_to_live, 63);
        }
    }

    #[test]
    fn offload_request() {
        let orig = frame4(CIP, CPORT, VIP, VPORT, false, 64, b"o");
        let m = meta(&orig);
        let mut b = VecBuf::new(0, &orig);
        let p = FullNatParams {
            csum: ChecksumMode::Offload,
            ..params()
        };
        let Verdict::Forward(off) = request(&mut b, &m, &p).unwrap() else {
            panic!()
        };
        assert_eq!(off.l4(), Some(L4Offload::Tcp));
        assert!(off.ipv4_checksum());
        let f = b.data();
        assert_eq!(&f[24..26], &[0, 0]);
        let want =
            checksum::pseudo_header_v4(LIP.into(), RIP.into(), 6, (m.ip_end - m.l4_offset) as u16);
        assert_eq!(u16::from_be_bytes([f[50], f[51]]), want);
    }

    #[test]
    fn ttl_expiry() {
        let orig = frame4(CIP, CPORT, VIP, VPORT, true, 1, b"");
        let m = meta(&orig);
        let mut b = VecBuf::new(0, &orig);
        assert_eq!(request(&mut b, &m, &params()), Err(Error::TtlExpired));
        assert_eq!(reply(&mut b, &m, &params()), Err(Error::TtlExpired));
        assert_eq!(b.data(), &orig[..]);
    }
}
