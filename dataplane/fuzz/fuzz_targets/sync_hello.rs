//! The sync group's hello block (a heartbeat's worker count, port range and LIPs) over
//! arbitrary datagrams: a typed error, nothing, or a hello, never a panic; a decoded hello
//! re-encoded with room for all its LIPs decodes to the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::sync::wire::{decode_hello, encode_hello, MAX_UDP_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(h)) = decode_hello(data) {
        assert!(h.workers > 0 && h.lport_range.0 <= h.lport_range.1);
        assert!(
            h.lips.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicate"
        );
        let again = encode_hello(data[1], &h, MAX_UDP_PAYLOAD);
        assert_eq!(decode_hello(&again), Ok(Some(h)));
    }
});
