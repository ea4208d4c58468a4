//! `rvs-selfcheck`: starts DPDK on virtual devices and moves packets between them,
//! printing what it did. Proves on a fresh machine that rvs's DPDK build, drivers,
//! hugepages (or the `--no-huge` fallback) and the safe wrapper all work.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rvs_dataplane::dpdk::{
    self, default_eal_args, Eal, MbufBatch, Mempool, Port, PortConf, QueueId, Ring, RING_SP_SC,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-selfcheck: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let prefix = format!("rvs-selfcheck-{}", std::process::id());
    let args = default_eal_args(&prefix, 0, 256, &["net_null0", "net_null1"]);
    println!("rvs-selfcheck: DPDK {} ", dpdk::version());
    println!("  EAL arguments: {}", args.join(" "));
    Eal::init(&args)?;
    let huge = if args.iter().any(|a| a == "--no-huge") {
        "no (--no-huge fallback)".to_owned()
    } else {
        format!(
            "yes ({} MiB free before start)",
            dpdk::hugepages_free_bytes() >> 20
        )
    };
    println!(
        "  EAL started: TSC {} MHz, hugepages {huge}",
        dpdk::tsc_hz() / 1_000_000
    );

    let pool = Mempool::new("selfcheck", 8191, 256, Mempool::DEFAULT_DATA_ROOM)?;

    // 1. Two net_ring ports wired back to back: a burst sent on one arrives on the other.
    let a2b = Ring::new("selfcheck_a2b", 1024, RING_SP_SC)?;
    let b2a = Ring::new("selfcheck_b2a", 1024, RING_SP_SC)?;
    let mut a = Port::from_rings("chk_a", &[&b2a], &[&a2b])?;
    let mut b = Port::from_rings("chk_b", &[&a2b], &[&b2a])?;
    for p in [&mut a, &mut b] {
        p.configure(&PortConf::default(), &pool)?;
        p.start()?;
    }
    let mut tx = MbufBatch::new();
    let frames: Vec<Vec<u8>> = (0..32u8)
        .map(|i| {
            (0..(60 + usize::from(i) * 40))
                .map(|j| (j as u8) ^ i)
                .collect()
        })
        .collect();
    for f in &frames {
        let m = pool.alloc_with(f).ok_or("mempool exhausted")?;
        tx.push(m).map_err(|_| "batch full")?;
    }
    let (sent, dropped) = a.tx_burst(QueueId(0), &mut tx);
    let mut rx = MbufBatch::new();
    let got = b.rx_burst(QueueId(0), &mut rx);
    let same = rx
        .drain()
        .zip(&frames)
        .filter(|(m, f)| m.data() == &f[..])
        .count();
    println!(
        "  net_ring {} -> {}: sent {sent}, dropped {dropped}, received {got}, identical {same}/{}",
        a.name()?,
        b.name()?,
        frames.len()
    );
    if same != frames.len() {
        return Err("packets changed or went missing between the ring ports".into());
    }

    // 2. net_null -> net_null for one second: the bare I/O loop.
    let mut nul0 = Port::by_name("net_null0")?;
    let mut nul1 = Port::by_name("net_null1")?;
    for p in [&mut nul0, &mut nul1] {
        p.configure(&PortConf::default(), &pool)?;
        p.start()?;
    }
    let info = nul0.info()?;
    let (mut moved, mut lost) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..1024 {
            nul0.rx_burst(QueueId(0), &mut rx);
            let (s, d) = nul1.tx_burst(QueueId(0), &mut rx);
            moved += s as u64;
            lost += d as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  {} ({}) -> net_null1: {moved} packets in {secs:.2} s = {:.1} Mpps, {lost} dropped",
        info.name,
        info.driver,
        moved as f64 / secs / 1e6
    );

    for p in [a, b, nul0, nul1] {
        p.stop()?;
        p.close()?;
    }
    drop((a2b, b2a));
    let in_use = pool.in_use();
    println!("  mempool in use after stop: {in_use} (must be 0)");
    if in_use != 0 {
        return Err(format!("{in_use} mbufs leaked").into());
    }
    println!("rvs-selfcheck: ok");
    Ok(())
}
