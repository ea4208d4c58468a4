//! The pipeline's classifier over arbitrary frames: a typed error or offsets that fit; and
//! the established lane's readings (`classify_v4_flow`, `classify_v6_flow`), wherever
//! they answer, are exactly the classifier's.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::{
    classify, classify_v4_flow, classify_v6_flow, ChecksumMode, Classified, IpProtocol,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    if let Some(v) = classify_v4_flow(data) {
        let Ok(Classified::Ip(m)) = classify(data, ChecksumMode::Software) else {
            panic!("v4 flow {v:?} of a frame the classifier refuses");
        };
        assert_eq!(usize::from(v.l3), m.l3_offset());
        assert_eq!(usize::from(v.l4), m.l4_offset);
        assert_eq!(usize::from(v.ip_end), m.ip_end);
        let proto = if v.udp {
            IpProtocol::UDP
        } else {
            IpProtocol::TCP
        };
        assert_eq!(m.tuple.protocol, proto);
        assert_eq!(m.tuple.src.addr, IpAddr::V4(Ipv4Addr::from(v.src)));
        assert_eq!(m.tuple.dst.addr, IpAddr::V4(Ipv4Addr::from(v.dst)));
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (v.sport, v.dport));
        assert_eq!(m.tcp_flags.0 as u8, v.tcp_flags);
    }
    if let Some(v) = classify_v6_flow(data) {
        let Ok(Classified::Ip(m)) = classify(data, ChecksumMode::Software) else {
            panic!("v6 flow {v:?} of a frame the classifier refuses");
        };
        assert_eq!(usize::from(v.l3), m.l3_offset());
        assert_eq!(usize::from(v.l4), m.l4_offset);
        assert_eq!(usize::from(v.ip_end), m.ip_end);
        let proto = if v.udp {
            IpProtocol::UDP
        } else {
            IpProtocol::TCP
        };
        assert_eq!(m.tuple.protocol, proto);
        assert_eq!(m.tuple.src.addr, IpAddr::V6(Ipv6Addr::from(v.src)));
        assert_eq!(m.tuple.dst.addr, IpAddr::V6(Ipv6Addr::from(v.dst)));
        assert_eq!((m.tuple.src.port, m.tuple.dst.port), (v.sport, v.dport));
        assert_eq!(m.tcp_flags.0 as u8, v.tcp_flags);
    }
});
