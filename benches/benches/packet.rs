//! Packet-core micro-benchmarks: ns per packet for classify + rewrite in each forwarding
//! mode, on 64-byte TCP frames (Ethernet 14 + IPv4 20 + TCP 20 + 10 bytes of payload)
//! built with etherparse.
//!
//! Every iteration refills a `VecBuf` with the frame (a 64-byte copy; `refill` alone is
//! measured as the baseline to subtract), classifies it and applies the rewrite
//! ([`Plan::apply`]). Checksums are always computed in software.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::flow::FwdMethod;
use rvs_dataplane::forward::{Egress, Layout, MacRewrite, Plan};
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, EthernetAddress};

const CIP: [u8; 4] = [203, 0, 113, 5];
const VIP: [u8; 4] = [192, 168, 1, 100];
const RIP: [u8; 4] = [10, 1, 1, 2];
const LIP: [u8; 4] = [10, 1, 1, 250];
const HEADROOM: usize = 128;

/// A 64-byte TCP frame.
fn frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 65535)
        .ack(1)
        .write(&mut v, &[0x55; 10])
        .expect("build frame");
    assert_eq!(v.len(), 64);
    v
}

/// classify + rewrite one frame; panics (in the benchmark only) if the rewrite fails.
#[inline]
fn run(buf: &mut VecBuf, frame: &[u8], plan: &Plan, eg: &Egress) {
    buf.refill(HEADROOM, frame);
    let Ok(Classified::Ip(meta)) = classify(buf.data(), ChecksumMode::Software) else {
        panic!("bench frame does not classify")
    };
    plan.apply(buf, &Layout::of(&meta), eg).expect("rewrite")
}

fn bench_packet(c: &mut Criterion) {
    let eg = Egress {
        macs: MacRewrite {
            src: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst: EthernetAddress([2, 0, 0, 0, 0, 3]),
        },
        tunnel_src: [10, 1, 1, 1].into(),
        mtu: 1500,
    };
    let plan = |fwd, src, dst, toward: [u8; 4]| Plan {
        fwd,
        src,
        dst,
        toward: toward.into(),
        encap: Default::default(),
    };
    let nat_in = plan(FwdMethod::Masq, None, Some((RIP, 8080)), RIP);
    let nat_out = plan(FwdMethod::Masq, Some((VIP, 80)), None, CIP);
    let dr = plan(FwdMethod::Route, None, None, RIP);
    let tun = plan(FwdMethod::Tunnel, None, None, RIP);
    let fnat_in = plan(
        FwdMethod::FullNat,
        Some((LIP, 40001)),
        Some((RIP, 8080)),
        RIP,
    );
    let fnat_out = plan(FwdMethod::FullNat, Some((VIP, 80)), Some((CIP, 51234)), CIP);
    let request = frame(CIP, 51234, VIP, 80);
    let nat_reply = frame(RIP, 8080, CIP, 51234);
    let fnat_reply = frame(RIP, 8080, LIP, 40001);

    let cases: Vec<(&str, Plan, &[u8])> = vec![
        ("nat_in", nat_in, &request),
        ("nat_out", nat_out, &nat_reply),
        ("dr", dr, &request),
        ("tun", tun, &request),
        ("fullnat_in", fnat_in, &request),
        ("fullnat_out", fnat_out, &fnat_reply),
    ];

    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Elements(1));
    let mut buf = VecBuf::new(HEADROOM, &request);

    g.bench_function("refill_baseline", |b| {
        b.iter(|| {
            buf.refill(HEADROOM, black_box(&request));
            black_box(buf.data().len())
        })
    });
    g.bench_function("classify", |b| {
        b.iter(|| {
            buf.refill(HEADROOM, black_box(&request));
            black_box(classify(buf.data(), ChecksumMode::Software).is_ok())
        })
    });
    for (name, plan, frame) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                run(&mut buf, black_box(frame), black_box(plan), black_box(&eg));
                black_box(buf.data().len())
            })
        });
    }
    g.finish();
}

/// The ACL check of a packet opening a session: one lookup in a list of 10,000 random
/// IPv4 prefixes (/8 to /32, a quarter of them allow entries), for addresses that hit
/// and miss them, next to the empty list's cost. 1,024 addresses are looked up per
/// iteration, so the figure per element is one lookup.
fn bench_acl(c: &mut Criterion) {
    use rvs_dataplane::acl::{Acl, AclAction, AclRule};
    use std::net::{IpAddr, Ipv4Addr};
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rules: Vec<AclRule> = (0..10_000)
        .map(|_| {
            let r = next();
            let action = if r % 4 == 0 {
                AclAction::Allow
            } else {
                AclAction::Deny
            };
            let a = Ipv4Addr::from((r >> 32) as u32);
            AclRule::new(IpAddr::V4(a), 8 + (r % 25) as u8, action)
        })
        .collect();
    let acl = Acl::new(&rules);
    let empty = Acl::empty();
    // Half the addresses inside a prefix of the list, half anywhere.
    let addrs: Vec<Ipv4Addr> = (0..1024)
        .map(|i| {
            let r = next();
            if i % 2 == 0 {
                let IpAddr::V4(p) = rules[(r % 10_000) as usize].addr else {
                    unreachable!()
                };
                Ipv4Addr::from(u32::from(p) ^ (r >> 40) as u32 & 0xff)
            } else {
                Ipv4Addr::from(r as u32)
            }
        })
        .collect();
    let mut g = c.benchmark_group("acl");
    g.throughput(Throughput::Elements(addrs.len() as u64));
    g.bench_function("lookup_10k_prefixes", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for a in &addrs {
                n += u32::from(black_box(&acl).denies_v4(*a));
            }
            n
        })
    });
    g.bench_function("lookup_empty", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for a in &addrs {
                n += u32::from(black_box(&empty).denies_v4(*a));
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench_packet, bench_acl);
criterion_main!(benches);
