//! Forwards every frame between two DPDK ports unchanged, for a bounded time: the bare
//! I/O loop, used to check virtual devices (e.g. `net_af_packet` on veths) end to end.
//! Usage: l2fwd SECONDS DEVARGS0 DEVARGS1

use std::time::{Duration, Instant};

use rvs_dataplane::dpdk::{default_eal_args, Eal, MbufBatch, Mempool, Port, PortConf, QueueId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let v0 = args.get(2).ok_or("DEVARGS0 missing")?;
    let v1 = args.get(3).ok_or("DEVARGS1 missing")?;
    let prefix = format!("rvs-l2fwd-{}", std::process::id());
    Eal::init(&default_eal_args(&prefix, 0, 256, &[v0, v1]))?;
    let pool = Mempool::new("l2fwd", 4095, 128, Mempool::DEFAULT_DATA_ROOM)?;
    let name0 = v0.split(',').next().unwrap_or(v0);
    let name1 = v1.split(',').next().unwrap_or(v1);
    let mut p0 = Port::by_name(name0)?;
    let mut p1 = Port::by_name(name1)?;
    for p in [&mut p0, &mut p1] {
        p.configure(&PortConf::default(), &pool)?;
        p.start()?;
    }
    let mut b = MbufBatch::new();
    let (mut n01, mut n10) = (0usize, 0usize);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        p0.rx_burst(QueueId(0), &mut b);
        n01 += p1.tx_burst(QueueId(0), &mut b).0;
        p1.rx_burst(QueueId(0), &mut b);
        n10 += p0.tx_burst(QueueId(0), &mut b).0;
    }
    println!("l2fwd: {n01} frames {name0}->{name1}, {n10} frames {name1}->{name0}");
    Ok(())
}
