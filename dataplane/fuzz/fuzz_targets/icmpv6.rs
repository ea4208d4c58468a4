//! ICMPv6 / neighbour-discovery view: `new_checked`, every getter, the checksum, the ND
//! option walk and `link_layer_option`; then the emitters with addresses from the input.
#![no_main]
use core::net::Ipv6Addr;
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::icmpv6::{self, NdOptions};
use rvs_dataplane::wire::Icmpv6Packet;

fuzz_target!(|data: &[u8]| {
    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
    if let Ok(p) = Icmpv6Packet::new_checked(data) {
        let t = p.msg_type();
        let _ = (
            t.is_error(),
            t.is_nd(),
            t.is_router_nd(),
            t.has_target(),
            t.min_len(),
        );
        let _ = (p.msg_code(), p.checksum(), p.rest_of_header());
        let _ = (
            p.echo_ident(),
            p.echo_seq_no(),
            p.mtu(),
            p.mtu_below_minimum(),
        );
        let _ = (p.pointer(), p.data().len(), p.na_flags(), p.target_addr());
        let opts = p.nd_options();
        let mut walked = 0;
        for o in NdOptions::new(opts) {
            match o {
                Ok((_, opt)) => {
                    assert!(opt.len() >= 8 && opt.len() % 8 == 0);
                    walked += opt.len();
                }
                Err(_) => break,
            }
        }
        assert!(walked <= opts.len());
        let _ = icmpv6::link_layer_option(opts, icmpv6::nd_option::SOURCE_LL_ADDR);
        let _ = icmpv6::link_layer_option(opts, icmpv6::nd_option::TARGET_LL_ADDR);
        let _ = p.verify_checksum(&src, &dst);

        let mut copy = data.to_vec();
        let mut q = Icmpv6Packet::new_checked(&mut copy[..]).unwrap();
        q.fill_checksum(&src, &dst);
        assert!(q.verify_checksum(&src, &dst));

        if let Some(target) = p.target_addr() {
            let mut buf = [0u8; icmpv6::NA_PACKET_LEN];
            let n = icmpv6::emit_neighbor_advert(&mut buf, &src, &target, [2, 0, 0, 0, 0, 1]);
            assert_eq!(n, Ok(icmpv6::NA_PACKET_LEN));
            let na = Icmpv6Packet::new_checked(&buf[40..]).unwrap();
            assert!(na.verify_checksum(&target, &src));
            assert_eq!(na.target_addr(), Some(target));
            let n = icmpv6::emit_neighbor_solicit(&mut buf, &src, &target, [2, 0, 0, 0, 0, 1]);
            assert_eq!(n, Ok(icmpv6::NS_PACKET_LEN));
        }
    }
    // the option walk on the raw bytes too
    let _ = icmpv6::link_layer_option(data, icmpv6::nd_option::SOURCE_LL_ADDR);
});
