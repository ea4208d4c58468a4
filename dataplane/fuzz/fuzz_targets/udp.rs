//! UDP view: `new_checked` then every getter and the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::UdpPacket;
use std::net::{IpAddr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload().len(),
        );
        let a = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let _ = p.verify_checksum(&a, &a);
        let mut copy = data.to_vec();
        let mut q = UdpPacket::new_checked(&mut copy[..]).unwrap();
        q.fill_checksum(&a, &a);
        assert!(q.verify_checksum(&a, &a));
        assert_ne!(q.checksum(), 0);
    }
});
