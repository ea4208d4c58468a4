//! ARP view: `new_checked` then every getter, and `Repr::parse`/`emit` round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{ArpPacket, ArpRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArpPacket::new_checked(data) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        if let Ok(r) = ArpRepr::parse(&p) {
            let mut out = [0u8; 28];
            r.emit(&mut out).expect("28 bytes");
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()),
                Ok(r)
            );
        }
    }
});
