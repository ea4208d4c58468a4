//! ICMPv4 view: `new_checked` then every getter and the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::Icmpv4Packet;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        let _ = (
            p.msg_type(),
            p.msg_type().is_error(),
            p.msg_code(),
            p.checksum(),
        );
        let _ = (
            p.echo_ident(),
            p.echo_seq_no(),
            p.next_hop_mtu(),
            p.rest_of_header(),
        );
        let _ = (p.data().len(), p.verify_checksum());
        let mut copy = data.to_vec();
        let mut q = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
        q.fill_checksum();
        assert!(q.verify_checksum());
    }
});
