//! FULLNAT's client-address work on any frame: the sequence shift, the acknowledgement
//! and SACK mapping back (a walk of the TCP options), the TOA option, the UDP PROXY
//! header and the header segment. Errors are fine, panics are not; a refused TOA or
//! UDP header changed nothing; an added one leaves a frame that still classifies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::flow::Addr;
use rvs_dataplane::forward::cip;
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, IpProtocol, IpVersion};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let Ok(Classified::Ip(m)) = classify(data, ChecksumMode::Offload) else {
        return;
    };
    // The pipeline gives this work whole IPv4 segments and datagrams only (a fragment of
    // a session with a PROXY header or TOA to add is dropped as proxy-no-room first).
    if m.version != IpVersion::V4 || m.frag.is_some() {
        return;
    }
    let (l3, l4) = (m.l3_offset(), m.l4_offset);
    // The shift parameters come from the frame too, so that every edge case is reached.
    let init = data
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let delta = u32::from(data.get(4).copied().unwrap_or(28));
    let mut f = data.to_vec();
    if m.tuple.protocol == IpProtocol::TCP {
        cip::shift_seq(&mut f, l4, delta);
        let _ = cip::unshift_ack(&mut f, l4, init, delta);
        let mut b = VecBuf::new(64, data);
        match cip::insert_toa(&mut b, l3, l4, Ipv4Addr::new(198, 51, 100, 7), 4321, 1500) {
            Ok(()) => assert!(
                classify(b.data(), ChecksumMode::Software).is_ok()
                    || classify(data, ChecksumMode::Software).is_err()
            ),
            Err(_) => assert_eq!(b.data(), data, "a refused TOA changed the frame"),
        }
        let h = cip::ProxyHeader::v2(Addr::v4(1, 2, 3, 4), 5, Addr::v4(6, 7, 8, 9), 10, false);
        let mut out = [0u8; 1600];
        let _ = cip::header_segment(data, l3, l4, init, h.bytes(), &mut out);
    }
    if m.tuple.protocol == IpProtocol::UDP {
        let h = cip::ProxyHeader::v2(Addr::v4(1, 2, 3, 4), 5, Addr::v4(6, 7, 8, 9), 10, true);
        let mut b = VecBuf::new(64, data);
        match cip::prepend_udp(&mut b, l3, l4, h.bytes(), 1500) {
            Ok(()) => assert!(classify(b.data(), ChecksumMode::Offload).is_ok()),
            Err(_) => assert_eq!(b.data(), data, "a refused header changed the frame"),
        }
    }
});
