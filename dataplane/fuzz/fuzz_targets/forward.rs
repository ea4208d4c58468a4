//! classify, then every rewrite on a copy of the frame: errors are fine, panics are not,
//! a failed rewrite changed nothing, and a successful NAT-family rewrite of an IPv4
//! TCP/UDP packet still classifies (its lengths are intact).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::forward::{icmp, Egress, Encap, Layout, MacRewrite, Plan};
use rvs_dataplane::flow::FwdMethod;
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, IpProtocol, IpVersion};
use std::net::Ipv4Addr;

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
});
