//! classify, then every rewrite on a copy of the frame: errors are fine, panics are not,
//! a failed rewrite changed nothing, and a successful NAT-family rewrite of an IPv4
//! TCP/UDP packet still classifies (its lengths are intact). The same for the plans of
//! sessions with IPv6 ends (NAT, FULLNAT, DR, ip6ip6, NAT64 both ways, their ICMP
//! errors) and ICMPv6 echo.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::flow::FwdMethod;
use rvs_dataplane::forward::{
    icmp, icmp6, At6, Egress, Egress6, Encap, Layout, MacRewrite, Plan, Plan6,
};
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, IpProtocol, IpVersion};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(Classified::Ip(m)) = classify(data, ChecksumMode::Offload) else {
        return;
    };
    let addr = |n: u8| [10, 0, 0, n];
    let (virt, real) = ((addr(1), 80), (addr(2), 8080));
    let (client, local) = ((addr(3), 1234), (addr(4), 40000));
    let plan = |fwd, src, dst, toward: [u8; 4]| Plan {
        fwd,
        src,
        dst,
        toward: Ipv4Addr::from(toward),
        encap: Encap::Ipip,
    };
    let tunnel = |encap| Plan {
        encap,
        ..plan(FwdMethod::Tunnel, None, None, real.0)
    };
    let gue = |csum| Encap::Gue {
        sport: 40000,
        dport: 6080,
        csum,
    };
    let nat_request = plan(FwdMethod::Masq, None, Some(real), real.0);
    let nat_reply = plan(FwdMethod::Masq, Some(virt), None, client.0);
    let fullnat_request = plan(FwdMethod::FullNat, Some(local), Some(real), real.0);
    let fullnat_reply = plan(FwdMethod::FullNat, Some(virt), Some(client), client.0);
    let all = [
        nat_request,
        nat_reply,
        plan(FwdMethod::Route, None, None, real.0),
        plan(FwdMethod::Tunnel, None, None, real.0),
        tunnel(gue(false)),
        tunnel(gue(true)),
        tunnel(Encap::Gre { csum: false }),
        tunnel(Encap::Gre { csum: true }),
        fullnat_request,
        fullnat_reply,
    ];
    let eg = Egress {
        macs: MacRewrite::default(),
        tunnel_src: Ipv4Addr::new(10, 0, 0, 9),
        mtu: 1500,
    };
    // The pipeline applies plans to IPv4 TCP and UDP packets only; on anything else
    // `apply` must still neither panic nor change the buffer when it fails.
    let v4_l4 = m.version == IpVersion::V4
        && (m.tuple.protocol == IpProtocol::TCP || m.tuple.protocol == IpProtocol::UDP);
    let at = Layout::of(&m);
    for p in &all {
        let mut b = VecBuf::new(64, data);
        match p.apply(&mut b, &at, &eg) {
            Ok(()) => {
                if v4_l4 && matches!(p.fwd, FwdMethod::Masq | FwdMethod::FullNat) {
                    assert!(classify(b.data(), ChecksumMode::Offload).is_ok());
                }
            }
            Err(_) => assert_eq!(b.data(), data, "a failed rewrite changed the frame"),
        }
    }
    for p in [nat_reply, nat_request, fullnat_reply, fullnat_request] {
        let mut b = VecBuf::new(0, data);
        let _ = icmp::translate(&mut b, &m, &p, &eg.macs);
    }
    // Sessions with IPv6 ends.
    let a6 = |n: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n));
    let a4 = |n: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
    let p6 = |fwd, src, dst, toward| Plan6 {
        fwd,
        src,
        dst,
        toward,
    };
    let plans6 = [
        p6(FwdMethod::Masq, None, Some((a6(2), 8080)), a6(2)),
        p6(FwdMethod::Masq, Some((a6(1), 80)), None, a6(3)),
        p6(
            FwdMethod::FullNat,
            Some((a6(4), 40000)),
            Some((a6(2), 80)),
            a6(2),
        ),
        p6(
            FwdMethod::FullNat,
            Some((a6(1), 80)),
            Some((a6(3), 1234)),
            a6(3),
        ),
        p6(FwdMethod::Route, None, None, a6(2)),
        p6(FwdMethod::Tunnel, None, None, a6(2)),
        p6(FwdMethod::Tunnel, None, None, a4(2)),
        // NAT64: toward the IPv4 server, and back to the IPv6 client.
        p6(
            FwdMethod::FullNat,
            Some((a4(4), 40000)),
            Some((a4(2), 80)),
            a4(2),
        ),
        p6(
            FwdMethod::FullNat,
            Some((a6(1), 80)),
            Some((a6(3), 1234)),
            a6(3),
        ),
    ];
    let at6 = At6::of(&m);
    for p in &plans6 {
        for src in [a6(9), a4(9)] {
            let eg6 = Egress6 {
                macs: MacRewrite::default(),
                tunnel_src: src,
                mtu: 1500,
            };
            let mut b = VecBuf::new(64, data);
            if p.apply(&mut b, &at6, &eg6).is_err() {
                assert_eq!(b.data(), data, "a failed IPv6 rewrite changed the frame");
            }
            let mut b = VecBuf::new(64, data);
            if p.translate_error(&mut b, m.version, &eg6).is_err() {
                assert_eq!(
                    b.data(),
                    data,
                    "a failed NAT64 error translation changed the frame"
                );
            }
            let mut b = VecBuf::new(0, data);
            let _ = icmp6::translate(&mut b, &m, p, &eg6.macs);
        }
    }
    let mut b = VecBuf::new(0, data);
    if icmp6::echo_reply(&mut b, &m).is_err() {
        assert_eq!(b.data(), data, "a refused echo changed the frame");
    }
    let mut out = [0u8; 1600];
    let msg = (rvs_dataplane::wire::icmpv6::Message::PKT_TOO_BIG, 0, 1280);
    let _ = icmp6::originate(data, &m, Ipv6Addr::LOCALHOST, msg, &mut out);
});
