//! IPv6 view: `new_checked` then every getter and the extension-header walk.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{ipv6, IpProtocol, Ipv6Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
        );
        let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr());
        if let Ok((_, off)) = p.upper_layer() {
            assert!(off <= 40 + usize::from(p.payload_len()));
        }
    }
    if let Some((&first, rest)) = data.split_first() {
        let _ = ipv6::skip_ext_headers(IpProtocol(first), rest);
    }
});
