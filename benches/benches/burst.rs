//! The engine's packet core without a NIC: [`Core::process_burst`] over bursts of 32
//! `VecBuf` frames, in each forwarding mode, for established IPv4 and IPv6 flows whose
//! sessions fit in the cache (1,000 flows) and for new sessions over IPv4 and IPv6 (SYNs
//! of flows never seen, the table cleared between rounds).
//!
//! rvs-bench measures the real engine on DPDK devices, with the I/O floor and the memory
//! of a large table; this measures the core's compute alone, in a process that runs
//! nothing else, so that a change of a few cycles per packet shows; under
//! `valgrind --tool=callgrind` its instruction counts per packet compare two builds
//! exactly (BENCHMARKS.md, "The performance issue, seventh session").
//!
//! Each iteration refills the burst's buffers with their frames (a 64-byte copy each, as
//! a NIC's receive writes them) and processes the burst; the refill alone is measured as
//! the baseline to subtract.

#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rvs_benches::capture::{build_frame, Kind, DIRECTOR_MAC, L4};
use rvs_benches::plan::{self, Family, Mode, REAL_SERVERS};
use rvs_dataplane::buf::VecBuf;
use rvs_dataplane::conn::ConnConfig;
use rvs_dataplane::neigh::NeighConfig;
use rvs_dataplane::pipeline::{Core, Emit, LocalKind, NetConfig, Out, PortNet, Snapshot};
use rvs_dataplane::route::{Route, Route6, RouteTable};

const BURST: usize = 32;
const HEADROOM: usize = VecBuf::DEFAULT_HEADROOM;

/// A one-worker core with the benchmark's service in `mode` and `family` (rvs-bench's
/// network: clients on port 0, real servers and LIPs on port 1, servers as static
/// neighbours), room for `capacity` sessions.
fn core(mode: Mode, family: Family, capacity: u32) -> Core<VecBuf> {
    let published = plan::services_of(family, mode, L4::Tcp, 4, 0).expect("service");
    let mut net = NetConfig::new(1);
    net.ports = vec![
        PortNet {
            mac: DIRECTOR_MAC,
            mtu: 1500,
            vlan: None,
        },
        PortNet {
            mac: [0x02, 0, 0, 0, 1, 0xfe],
            mtu: 1500,
            vlan: None,
        },
    ];
    for vip in &published.vips {
        match vip {
            IpAddr::V4(a) => net.local.insert(*a, (LocalKind::Vip, 0)),
            IpAddr::V6(a) => net.local6.insert(*a, (LocalKind::Vip, 0)),
        };
    }
    for lips in published.laddrs.values() {
        for lip in lips {
            match lip {
                IpAddr::V4(a) => net.local.insert(*a, (LocalKind::Lip, 1)),
                IpAddr::V6(a) => net.local6.insert(*a, (LocalKind::Lip, 1)),
            };
        }
    }
    let (dip_c, dip_s) = (plan::DIP_CLIENT, plan::DIP_SERVER);
    let (dip_c6, dip_s6) = (plan::DIP_CLIENT6, plan::DIP_SERVER6);
    net.local.insert(dip_c.0, (LocalKind::Dip, 0));
    net.local.insert(dip_s.0, (LocalKind::Dip, 1));
    net.local6.insert(dip_c6.0, (LocalKind::Dip, 0));
    net.local6.insert(dip_s6.0, (LocalKind::Dip, 1));
    let route = |(a, len): (std::net::Ipv4Addr, u8), port| Route {
        prefix: a,
        len,
        port,
        gateway: None,
    };
    let route6 = |(a, len): (std::net::Ipv6Addr, u8), port| Route6 {
        prefix: a,
        len,
        port,
        gateway: None,
    };
    net.routes = RouteTable::new(vec![
        route(dip_c, 0),
        route(dip_s, 1),
        route((plan::LIP_BASE, 24), 1),
    ])
    .with_v6(vec![
        route6(dip_c6, 0),
        route6(dip_s6, 1),
        route6((plan::LIP_BASE6, 64), 1),
    ]);
    net.laddrs = published.laddrs.into_iter().collect();
    let mut c = Core::new(0, ConnConfig::new(capacity), NeighConfig::default());
    c.adopt(Snapshot {
        generation: 1,
        services: published.services,
        net: Arc::new(net),
    });
    for i in 0..REAL_SERVERS {
        c.add_static_neighbour(plan::real_server_of(family, i), plan::real_server_mac(i));
    }
    c
}

/// Processes `bufs` (refilled from `frames`) as one burst; returns them afterwards.
/// Panics (in the benchmark only) if a packet is not transmitted.
fn burst(c: &mut Core<VecBuf>, bufs: &mut Vec<VecBuf>, frames: &[Vec<u8>], out: &mut Vec<VecBuf>) {
    for (b, f) in bufs.iter_mut().zip(frames) {
        b.refill(HEADROOM, f);
    }
    c.process_burst(
        bufs.drain(..),
        0,
        false,
        |_| 0,
        |e| match e {
            Emit::Packet(Out::Tx(p, _)) => out.push(p),
            Emit::Packet(o) => panic!("not forwarded: {o:?}"),
            Emit::Generated(..) => {}
        },
    );
    std::mem::swap(bufs, out);
}

fn frames(family: Family, flows: u64, kind: Kind) -> Vec<Vec<u8>> {
    plan::partition_of(family, flows, 0, 1)[0]
        .iter()
        .map(|f| build_frame(f, L4::Tcp, kind, 64, 1))
        .collect()
}

fn bench_established(c: &mut Criterion) {
    let mut g = c.benchmark_group("burst_established_1k");
    g.throughput(Throughput::Elements(BURST as u64));
    let refill_frames = frames(Family::V4, BURST as u64, Kind::Established);
    let mut bufs: Vec<VecBuf> = refill_frames
        .iter()
        .map(|f| VecBuf::new(HEADROOM, f))
        .collect();
    g.bench_function("refill_baseline", |b| {
        b.iter(|| {
            for (buf, f) in bufs.iter_mut().zip(&refill_frames) {
                buf.refill(HEADROOM, f);
            }
            black_box(&bufs);
        })
    });
    for family in [Family::V4, Family::V6] {
        for mode in [Mode::Nat, Mode::Fullnat, Mode::Dr, Mode::Tun] {
            let mut core = core(mode, family, 4096);
            let first = frames(family, 1000, Kind::First);
            let est = frames(family, 1000, Kind::Established);
            let mut bufs: Vec<VecBuf> = Vec::new();
            let mut out = Vec::with_capacity(BURST);
            for chunk in first.chunks(BURST) {
                bufs.extend(chunk.iter().map(|f| VecBuf::new(HEADROOM, f)));
                bufs.truncate(chunk.len());
                burst(&mut core, &mut bufs, chunk, &mut out);
                out.clear();
            }
            let mut bufs: Vec<VecBuf> =
                (0..BURST).map(|i| VecBuf::new(HEADROOM, &est[i])).collect();
            let mut at = 0;
            let name = format!(
                "{}_{}",
                mode.name(),
                if family == Family::V4 { "v4" } else { "v6" }
            );
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let chunk = &est[at..at + BURST];
                    at = (at + BURST) % (est.len() - est.len() % BURST);
                    burst(&mut core, &mut bufs, chunk, &mut out);
                })
            });
        }
    }
    g.finish();
}

fn bench_new_sessions(c: &mut Criterion) {
    let mut g = c.benchmark_group("burst_new_sessions");
    g.throughput(Throughput::Elements(BURST as u64));
    const FLOWS: usize = 64 * 1024;
    for family in [Family::V4, Family::V6] {
        let first = frames(family, FLOWS as u64, Kind::First);
        for mode in [Mode::Nat, Mode::Fullnat, Mode::Dr, Mode::Tun] {
            let mut bufs: Vec<VecBuf> = (0..BURST)
                .map(|i| VecBuf::new(HEADROOM, &first[i]))
                .collect();
            let mut out = Vec::with_capacity(BURST);
            // IPv4's names are the modes' alone (as before IPv6 was measured here).
            let name = match family {
                Family::V4 => mode.name().to_string(),
                Family::V6 => format!("{}_v6", mode.name()),
            };
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    // Every burst makes 32 new sessions; a fresh table (made outside the
                    // timed part) each time every flow has its session.
                    let mut timed = std::time::Duration::ZERO;
                    let mut at = FLOWS;
                    let mut core = None;
                    for _ in 0..iters {
                        if at == FLOWS {
                            core = Some(self::core(mode, family, FLOWS as u32 + 1024));
                            at = 0;
                        }
                        let c = core.as_mut().expect("core");
                        let chunk = &first[at..at + BURST];
                        at += BURST;
                        let t = std::time::Instant::now();
                        burst(c, &mut bufs, chunk, &mut out);
                        timed += t.elapsed();
                    }
                    timed
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_established, bench_new_sessions);
criterion_main!(benches);
