//! IPv4 view: `new_checked` then every getter, checksum, `Repr::parse`, TTL decrement.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{Ipv4Packet, Ipv4Repr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (
            p.version(),
            p.header_len(),
            p.tos(),
            p.total_len(),
            p.ident(),
        );
        let _ = (
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
        );
        let _ = (
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = (p.verify_checksum(), p.options().len(), p.payload().len());
        let _ = Ipv4Repr::parse(&p, true);
        let mut copy = data.to_vec();
        let mut q = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
        let ok = q.verify_checksum();
        if q.decrement_ttl().is_ok() {
            assert_eq!(
                q.verify_checksum(),
                ok,
                "incremental TTL update keeps validity"
            );
        }
    }
});
