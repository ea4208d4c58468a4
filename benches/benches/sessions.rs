//! Session-table micro-benchmarks: lookup hit/miss at 1M and 10M sessions, a new session
//! (schedule + insert + first transition), and expiry cost per session. Prints the memory
//! per session.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rvs_dataplane::conn::{
    memory_per_session, ConnConfig, ConnTable, Direction, PacketMeta, Resolved,
};
use rvs_dataplane::flow::{Addr, FlowKey, FwdMethod, Proto, TcpFlags};
use rvs_dataplane::sched::CoreSched;
use rvs_dataplane::service::{
    DestConfig, SchedKind, ServiceConfig, ServiceKey, ServiceSet, ServiceTable,
};

const VIP: Addr = Addr::v4(192, 168, 1, 100);

fn snapshot(sched: SchedKind) -> Arc<ServiceSet> {
    let mut st = ServiceTable::new();
    let key = ServiceKey::Addr {
        proto: Proto::Tcp,
        addr: VIP,
        port: 80,
    };
    st.add_service(ServiceConfig::new(key, sched)).unwrap();
    for i in 1..=8u8 {
        st.add_dest(
            &key,
            DestConfig::new(Addr::v4(10, 1, 1, i), 8080, FwdMethod::Masq).weight(u32::from(i)),
        )
        .unwrap();
    }
    st.snapshot()
}

/// Client tuple number `i`: 16M addresses x 4096 ports, ports from 1024.
fn flow(i: u64) -> FlowKey {
    FlowKey {
        proto: Proto::Tcp,
        saddr: Addr::from_v4_bits(0x0a00_0000 | (i >> 12) as u32),
        daddr: VIP,
        sport: 1024 + (i & 0xfff) as u16,
        dport: 80,
    }
}

/// A tuple that is never inserted (source port below 1024).
fn miss_flow(i: u64) -> FlowKey {
    FlowKey {
        sport: (i & 0x3ff) as u16,
        ..flow(i)
    }
}

fn syn(i: u64) -> PacketMeta {
    PacketMeta {
        flow: flow(i),
        fwmark: 0,
        tcp_flags: TcpFlags::SYN,
    }
}

struct Filled {
    table: ConnTable,
}

fn filled(n: u64, cap: u32) -> Filled {
    let mut table = ConnTable::new(ConnConfig::new(cap));
    let mut core = CoreSched::new(1);
    table.adopt(&mut core, snapshot(SchedKind::Wlc));
    let t0 = Instant::now();
    for i in 0..n {
        let id = table
            .resolve_in(&mut core, &syn(i), 0, None)
            .expect("insert")
            .id;
        table.state_transition(id, Direction::Input, TcpFlags::SYN, 0);
    }
    println!(
        "sessions: {n} inserted in {:.2} s; memory {:.1} bytes/session (slab + both indexes, \
         formula {:.1}); size_of::<Session>() = {}",
        t0.elapsed().as_secs_f64(),
        (table.memory_bytes() as f64) / f64::from(cap),
        memory_per_session(cap),
        std::mem::size_of::<rvs_dataplane::conn::Session>()
    );
    Filled { table }
}

fn rng_keys(n: u64, count: usize, f: fn(u64) -> FlowKey) -> Vec<FlowKey> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f(x % n)
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    for &n in &[1_000_000u64, 10_000_000] {
        let f = filled(n, n as u32);
        let hits = rng_keys(n, 1 << 16, flow);
        let misses = rng_keys(n, 1 << 16, miss_flow);
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 0xffff;
                black_box(f.table.lookup_in(black_box(&hits[k])))
            })
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 0xffff;
                black_box(f.table.lookup_in(black_box(&misses[k])))
            })
        });
        drop(f);
    }
    g.finish();
}

fn new_session(c: &mut Criterion) {
    const CAP: u32 = 1 << 20;
    let mut g = c.benchmark_group("new_session");
    for sched in [SchedKind::Wlc, SchedKind::Rr, SchedKind::Mh] {
        let mut table = ConnTable::new(ConnConfig::new(CAP));
        let mut core = CoreSched::new(1);
        table.adopt(&mut core, snapshot(sched));
        let mut next: u64 = 0;
        let mut now: u64 = 0;
        g.bench_function(BenchmarkId::new("schedule_insert", sched.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let room = u64::from(CAP - table.len()).min(left);
                    if room == 0 {
                        // Untimed: empty the table (SYN_RECV lasts 60 s).
                        now += 61_000;
                        table.expire(now, |_, _| {});
                        continue;
                    }
                    let t0 = Instant::now();
                    for _ in 0..room {
                        let p = syn(next);
                        next = (next + 1) % (1 << 36);
                        if let Ok(Resolved { id, .. }) = table.resolve_in(&mut core, &p, now, None)
                        {
                            table.state_transition(id, Direction::Input, TcpFlags::SYN, now);
                        }
                    }
                    total += t0.elapsed();
                    left -= room;
                }
                total
            })
        });
    }
    g.finish();
}

fn expiry(c: &mut Criterion) {
    const CAP: u32 = 1 << 20;
    let mut table = ConnTable::new(ConnConfig::new(CAP));
    let mut core = CoreSched::new(1);
    table.adopt(&mut core, snapshot(SchedKind::Rr));
    let mut now: u64 = 0;
    let mut next: u64 = 0;
    let mut g = c.benchmark_group("expire");
    g.bench_function("per_session", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(u64::from(CAP));
                // Untimed: insert `batch` sessions spread over 10 s.
                for j in 0..batch {
                    let t = now + j * 10_000 / batch;
                    if let Ok(Resolved { id, .. }) =
                        table.resolve_in(&mut core, &syn(next), t, None)
                    {
                        table.state_transition(id, Direction::Input, TcpFlags::SYN, t);
                    }
                    next = (next + 1) % (1 << 36);
                }
                now += 10_000 + 60_000;
                let t0 = Instant::now();
                let n = table.expire(now, |_, s| {
                    black_box(s);
                });
                total += t0.elapsed();
                debug_assert_eq!(n as u64, batch);
                left -= batch;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, lookups, new_session, expiry);
criterion_main!(benches);
