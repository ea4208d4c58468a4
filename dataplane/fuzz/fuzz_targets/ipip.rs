//! Tunnel views: IPIP `new_checked` then the outer header and the inner packet; the
//! same bytes as a GRE packet and as a GUE packet (header, options, payload, checksum).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{GrePacket, GuePacket, IpipPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = IpipPacket::new_checked(data) {
        let _ = (p.outer().src_addr(), p.inner_version(), p.inner().len());
    }
    if let Ok(p) = GrePacket::new_checked(data) {
        let _ = (
            p.protocol(),
            p.checksum(),
            p.verify_checksum(),
            p.payload().len(),
        );
    }
    if let Ok(p) = GuePacket::new_checked(data) {
        let _ = (p.is_control(), p.protocol(), p.flags(), p.payload().len());
    }
});
