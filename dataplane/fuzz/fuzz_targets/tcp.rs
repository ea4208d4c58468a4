//! TCP view: `new_checked` then every getter and the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::TcpPacket;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = TcpPacket::new_checked(data) {
        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
        let _ = (
            p.header_len(),
            p.flags(),
            p.window_len(),
            p.checksum(),
            p.urgent_at(),
        );
        let _ = (p.options().len(), p.payload().len());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let _ = p.verify_checksum(&a, &a);
        let mut copy = data.to_vec();
        let mut q = TcpPacket::new_checked(&mut copy[..]).unwrap();
        q.fill_checksum(&a, &a);
        assert!(q.verify_checksum(&a, &a));
    }
});
