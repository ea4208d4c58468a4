//! Ethernet (+ 802.1Q) view: `new_checked` then every getter, and `Repr::parse`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.ethertype(),
            f.vlan_tci(),
            f.vlan_id(),
        );
        let _ = (f.header_len(), f.payload_ethertype(), f.payload().len());
        let r = EthernetRepr::parse(&f).expect("checked frame parses");
        let mut out = [0u8; 18];
        r.emit(&mut out).expect("18 bytes fit any header");
    }
});
