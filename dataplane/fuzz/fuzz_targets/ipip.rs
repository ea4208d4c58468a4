//! IPIP view: `new_checked` then the outer header and the inner packet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::IpipPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = IpipPacket::new_checked(data) {
        let _ = (p.outer().src_addr(), p.inner_version(), p.inner().len());
    }
});
