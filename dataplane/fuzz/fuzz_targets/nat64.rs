//! NAT64 (RFC 7915): the frame through all four translations (IPv6 → IPv4, IPv4 → IPv6,
//! and the ICMP errors both ways) with the headroom and the TTL decrement the first byte
//! picks. Errors are fine, panics are not; a failed translation changed nothing; a
//! successful one gives a frame the other direction translates back (its headers,
//! lengths and checksums are those of a well-formed packet).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::forward::nat64::{
    icmp4_error_to_v6, icmp6_error_to_v4, v4_to_v6, v6_to_v4, V4Ends, V6Ends,
};
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, frame)) = data.split_first() else {
        return;
    };
    let decrement = ctl & 1 != 0;
    let headroom = [0, 20, 40, 128][usize::from(ctl >> 1 & 3)];
    let v4 = V4Ends {
        src: Ipv4Addr::new(10, 0, 1, 100),
        dst: Ipv4Addr::new(10, 0, 1, 11),
        sport: 50000,
        dport: 8080,
    };
    let v6 = V6Ends {
        src: Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x80),
        dst: Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7),
        sport: 80,
        dport: 40001,
    };
    let outer4 = (Ipv4Addr::new(10, 0, 1, 254), v4.dst);
    let outer6 = (v6.src, v6.dst);

    for which in 0..4 {
        let mut b = VecBuf::new(headroom, frame);
        let r = match which {
            0 => v6_to_v4(&mut b, &v4, decrement),
            1 => v4_to_v6(&mut b, &v6, decrement),
            2 => icmp6_error_to_v4(&mut b, outer4, &v4, decrement, 1500),
            _ => icmp4_error_to_v6(&mut b, outer6, &v6, decrement, 1500),
        };
        if r.is_err() {
            assert_eq!(b.data(), frame, "a refusal changes nothing");
            continue;
        }
        // what one direction produced, the other takes back
        let back = match which {
            0 => v4_to_v6(&mut b, &v6, false),
            1 => v6_to_v4(&mut b, &v4, false),
            2 => icmp4_error_to_v6(&mut b, outer6, &v6, false, 1500),
            _ => icmp6_error_to_v4(&mut b, outer4, &v4, false, 1500),
        };
        assert_eq!(
            back,
            Ok(()),
            "translation {which} gave a frame that does not translate back"
        );
    }
});
