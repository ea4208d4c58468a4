//! classify, then every rewrite on a copy of the frame: errors are fine, panics are not,
//! and a successful NAT-family rewrite still classifies (its lengths are intact).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::forward::{
    icmp, DrParams, FullNatParams, MacRewrite, NatParams, Params, TunParams, Verdict,
};
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, Endpoint, IpVersion};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(Classified::Ip(m)) = classify(data, ChecksumMode::Offload) else {
        return;
    };
    let addr = |n: u8| -> IpAddr {
        match m.version {
            IpVersion::V4 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
            IpVersion::V6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n))),
        }
    };
    let macs = MacRewrite::default();
    for csum in [ChecksumMode::Software, ChecksumMode::Offload] {
        let nat = NatParams {
            virt: Endpoint::new(addr(1), 80),
            real: Endpoint::new(addr(2), 8080),
            macs,
            csum,
        };
        let fnat = FullNatParams {
            client: Endpoint::new(addr(3), 1234),
            virt: nat.virt,
            local: Endpoint::new(addr(4), 40000),
            real: nat.real,
            macs,
            csum,
        };
        let tun = TunParams {
            local: Ipv4Addr::new(10, 0, 0, 9),
            real: Ipv4Addr::new(10, 0, 0, 2),
            mtu: 1500,
            macs,
            csum,
        };
        let all = [
            Params::Nat(nat),
            Params::Dr(DrParams { macs }),
            Params::Tun(tun),
            Params::FullNat(fnat),
        ];
        let mut out = [0u8; 256];
        for p in &all {
            for reply in [false, true] {
                let mut b = VecBuf::new(64, data);
                let r = if reply {
                    p.reply(&mut b, &m)
                } else {
                    p.request(&mut b, &m, &mut out)
                };
                if let (Ok(Verdict::Forward(_)), Params::Nat(_) | Params::FullNat(_)) = (r, p) {
                    assert!(classify(b.data(), ChecksumMode::Offload).is_ok());
                }
            }
        }
        let mut b = VecBuf::new(0, data);
        let _ = icmp::nat_reply(&mut b, &m, &nat);
        let mut b = VecBuf::new(0, data);
        let _ = icmp::nat_request(&mut b, &m, &nat);
        let mut b = VecBuf::new(0, data);
        let _ = icmp::fullnat_reply(&mut b, &m, &fnat);
        let mut b = VecBuf::new(0, data);
        let _ = icmp::fullnat_request(&mut b, &m, &fnat);
    }
});
