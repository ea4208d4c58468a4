//! The pipeline's classifier over arbitrary frames: a typed error or offsets that fit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{classify, ChecksumMode, Classified};

fuzz_target!(|data: &[u8]| {
    for mode in [ChecksumMode::Software, ChecksumMode::Offload] {
        match classify(data, mode) {
            Ok(Classified::Ip(m)) => {
                assert!(m.l3_offset() < m.l4_offset && m.l4_offset <= m.ip_end);
                assert!(m.ip_end <= data.len());
                if let Some(inner) = m.icmp.and_then(|i| i.inner) {
                    assert!(inner.l4_offset + 8 <= m.ip_end);
                }
            }
            Ok(Classified::Arp(l2) | Classified::Other(l2)) => assert!(l2.l3_offset <= data.len()),
            Err(e) => assert!(e.index() < rvs_dataplane::wire::Error::COUNT),
        }
    }
});
