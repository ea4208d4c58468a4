//! Packet-core micro-benchmarks: ns per packet for classify + rewrite in each forwarding
//! mode, on 64-byte TCP frames (Ethernet 14 + IPv4 20 + TCP 20 + 10 bytes of payload)
//! built with etherparse.
//!
//! Every iteration refills a `VecBuf` with the frame (a 64-byte copy; `refill` alone is
//! measured as the baseline to subtract), classifies it and applies the rewrite.
//! Software checksums unless the name says `offload`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use rvs_dataplane::buf::{PacketBuf, VecBuf};
use rvs_dataplane::forward::{
    DrParams, FullNatParams, MacRewrite, NatParams, Params, TunParams, Verdict,
};
use rvs_dataplane::wire::{classify, ChecksumMode, Classified, Endpoint, EthernetAddress};

const CIP: [u8; 4] = [203, 0, 113, 5];
const VIP: [u8; 4] = [192, 168, 1, 100];
const RIP: [u8; 4] = [10, 1, 1, 2];
const LIP: [u8; 4] = [10, 1, 1, 250];
const HEADROOM: usize = 128;

fn ep(a: [u8; 4], port: u16) -> Endpoint {
    Endpoint::new(IpAddr::from(a), port)
}

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
fn run(
    buf: &mut VecBuf,
    frame: &[u8],
    params: &Params,
    reply: bool,
    icmp_out: &mut [u8],
) -> Verdict {
    buf.refill(HEADROOM, frame);
    let Ok(Classified::Ip(meta)) = classify(buf.data(), ChecksumMode::Software) else {
        panic!("bench frame does not classify")
    };
    let v = if reply {
        params.reply(buf, &meta)
    } else {
        params.request(buf, &meta, icmp_out)
    };
    v.expect("rewrite")
}

fn bench_packet(c: &mut Criterion) {
    let macs = MacRewrite {
        src: EthernetAddress([2, 0, 0, 0, 0, 2]),
        dst: EthernetAddress([2, 0, 0, 0, 0, 3]),
    };
    let nat = NatParams {
        virt: ep(VIP, 80),
        real: ep(RIP, 8080),
        macs,
        csum: ChecksumMode::Software,
    };
    let fnat = FullNatParams {
        client: ep(CIP, 51234),
        virt: ep(VIP, 80),
        local: ep(LIP, 40001),
        real: ep(RIP, 8080),
        macs,
        csum: ChecksumMode::Software,
    };
    let tun = TunParams {
        local: [10, 1, 1, 1].into(),
        real: RIP.into(),
        mtu: 1500,
        macs,
        csum: ChecksumMode::Software,
    };
    let request = frame(CIP, 51234, VIP, 80);
    let nat_reply = frame(RIP, 8080, CIP, 51234);
    let fnat_reply = frame(RIP, 8080, LIP, 40001);

    let cases: Vec<(&str, Params, &[u8], bool)> = vec![
        ("nat_in", Params::Nat(nat), &request, false),
        ("nat_out", Params::Nat(nat), &nat_reply, true),
        ("dr", Params::Dr(DrParams { macs }), &request, false),
        ("tun", Params::Tun(tun), &request, false),
        ("fullnat_in", Params::FullNat(fnat), &request, false),
        ("fullnat_out", Params::FullNat(fnat), &fnat_reply, true),
        (
            "nat_in_offload",
            Params::Nat(NatParams {
                csum: ChecksumMode::Offload,
                ..nat
            }),
            &request,
            false,
        ),
    ];

    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Elements(1));
    let mut buf = VecBuf::new(HEADROOM, &request);
    let mut icmp_out = [0u8; 128];

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
    for (name, params, frame, reply) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                black_box(run(
                    &mut buf,
                    black_box(frame),
                    black_box(params),
                    *reply,
                    &mut icmp_out,
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_packet);
criterion_main!(benches);
