//! DPDK on virtual devices: ports move bursts byte for byte, mbufs never leak.
//!
//! EAL can be initialised once per process, so every test in this binary shares one
//! initialisation through `eal()`; each test uses its own mempool, rings and ports, so
//! they run in parallel safely. Needs root (or hugepage/VFIO rights) and DPDK installed.

#![cfg(feature = "dpdk")]

use std::sync::OnceLock;

use rvs_dataplane::dpdk::{
    default_eal_args, Eal, Mbuf, MbufBatch, Mempool, Port, PortConf, QueueId, Ring, MAX_BURST,
    RING_SP_SC,
};

fn eal() -> &'static Eal {
    static ONCE: OnceLock<&'static Eal> = OnceLock::new();
    ONCE.get_or_init(|| {
        let prefix = format!("rvs-test-ports-{}", std::process::id());
        let args = default_eal_args(&prefix, 0, 256, &["net_null0", "net_null1"]);
        Eal::init_or_get(&args).unwrap_or_else(|e| panic!("EAL init with {args:?}: {e}"))
    })
}

/// A frame whose bytes say which packet it is.
fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|b| (b as u8) ^ (i as u8).wrapping_mul(31))
        .collect()
}

/// Two net_ring ports wired back to back through two rings of `slots` slots.
fn wire(tag: &str, slots: u32, pool: &Mempool) -> (Port, Port, Ring, Ring) {
    let a2b = Ring::new(&format!("{tag}_a2b"), slots, RING_SP_SC).expect("ring a2b");
    let b2a = Ring::new(&format!("{tag}_b2a"), slots, RING_SP_SC).expect("ring b2a");
    let mut a = Port::from_rings(&format!("{tag}_a"), &[&b2a], &[&a2b]).expect("port a");
    let mut b = Port::from_rings(&format!("{tag}_b"), &[&a2b], &[&b2a]).expect("port b");
    for p in [&mut a, &mut b] {
        p.configure(&PortConf::default(), pool).expect("configure");
        p.start().expect("start");
    }
    (a, b, a2b, b2a)
}

fn stop(ports: &[Port]) {
    for p in ports {
        p.stop().expect("stop");
        p.close().expect("close");
    }
}

#[test]
fn burst_arrives_on_the_other_port_with_the_same_bytes() {
    eal();
    let pool = Mempool::new("t_same_bytes", 1023, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let (a, b, _r1, _r2) = wire("same", 1024, &pool);

    let sizes = [60usize, 64, 128, 777, 1514];
    let mut tx = MbufBatch::new();
    for (i, len) in sizes.iter().cycle().take(32).enumerate() {
        let m = pool.alloc_with(&frame(i, *len)).expect("alloc");
        tx.push(m).expect("room");
    }
    assert_eq!(pool.in_use(), 32);
    let (sent, dropped) = a.tx_burst(QueueId(0), &mut tx);
    assert_eq!((sent, dropped), (32, 0));
    assert!(tx.is_empty());

    let mut rx = MbufBatch::new();
    let got = b.rx_burst(QueueId(0), &mut rx);
    assert_eq!(got, 32);
    for (i, m) in rx.drain().enumerate() {
        let len = sizes[i % sizes.len()];
        assert_eq!(
            m.data(),
            &frame(i, len)[..],
            "packet {i} changed on the way"
        );
        assert_eq!(m.pkt_len(), len);
        assert!(m.is_contiguous());
    }
    // Nothing goes the other way.
    assert_eq!(a.rx_burst(QueueId(0), &mut rx), 0);

    let sa = a.stats().expect("stats");
    let sb = b.stats().expect("stats");
    assert_eq!(sa.opackets, 32);
    assert_eq!(sb.ipackets, 32);
    assert_eq!(sa.obytes, sb.ibytes);
    stop(&[a, b]);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}

#[test]
fn partly_accepted_tx_burst_frees_the_rest() {
    eal();
    let pool = Mempool::new("t_partial", 511, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    // A 16-slot ring holds 15: a 40-packet burst is only partly accepted.
    let (a, b, _r1, _r2) = wire("partial", 16, &pool);
    let mut tx = MbufBatch::new();
    for i in 0..40 {
        tx.push(pool.alloc_with(&frame(i, 64)).expect("alloc"))
            .expect("room");
    }
    let (sent, dropped) = a.tx_burst(QueueId(0), &mut tx);
    assert_eq!(sent, 15);
    assert_eq!(dropped, 25);
    assert!(tx.is_empty());
    assert_eq!(
        pool.in_use(),
        15,
        "only the accepted packets may remain in flight"
    );

    let mut rx = MbufBatch::new();
    assert_eq!(b.rx_burst(QueueId(0), &mut rx), 15);
    for (i, m) in rx.drain().enumerate() {
        assert_eq!(m.data(), &frame(i, 64)[..]);
    }
    stop(&[a, b]);
    assert_eq!(pool.in_use(), 0, "mbufs leaked after a partial tx burst");
}

#[test]
fn dropping_a_batch_or_a_ring_frees_its_mbufs() {
    eal();
    let pool = Mempool::new("t_drop", 255, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    {
        let mut batch = MbufBatch::new();
        for i in 0..MAX_BURST {
            batch
                .push(pool.alloc_with(&frame(i, 100)).expect("alloc"))
                .expect("room");
        }
        let extra = pool.alloc().expect("alloc");
        let back = batch
            .push(extra)
            .expect_err("a full batch gives the mbuf back");
        drop(back);
        assert_eq!(pool.in_use(), MAX_BURST as u32);
        // A partly consumed drain frees the rest.
        let first: Vec<Mbuf> = batch.drain().take(3).collect();
        assert_eq!(first.len(), 3);
        assert_eq!(pool.in_use(), 3);
    }
    assert_eq!(pool.in_use(), 0);

    let ring = Ring::new("t_drop_ring", 64, RING_SP_SC).expect("ring");
    let mut batch = MbufBatch::new();
    for i in 0..10 {
        batch
            .push(pool.alloc_with(&frame(i, 64)).expect("alloc"))
            .expect("room");
    }
    assert_eq!(ring.enqueue_burst(&mut batch), 10);
    assert!(batch.is_empty());
    assert_eq!(ring.count(), 10);
    drop(ring);
    assert_eq!(pool.in_use(), 0, "a dropped ring must free what it held");
}

#[test]
fn mbuf_prepend_adj_append_trim() {
    eal();
    let pool = Mempool::new("t_mbuf_ops", 63, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let mut m = pool.alloc_with(&[1, 2, 3, 4]).expect("alloc");
    let head = m.headroom();
    assert!(head >= 20, "default headroom fits an outer IPv4 header");
    m.prepend(2).expect("headroom").copy_from_slice(&[9, 8]);
    assert_eq!(m.data(), &[9, 8, 1, 2, 3, 4]);
    assert_eq!((m.headroom(), m.pkt_len()), (head - 2, 6));
    assert!(m.is_contiguous());
    assert!(m.adj(3));
    assert_eq!(m.data(), &[2, 3, 4]);
    assert_eq!((m.headroom(), m.pkt_len()), (head + 1, 3));
    m.append(2).expect("tailroom").copy_from_slice(&[5, 6]);
    assert_eq!(m.data(), &[2, 3, 4, 5, 6]);
    assert!(m.trim(4));
    assert_eq!(m.data(), &[2]);
    assert_eq!((m.headroom(), m.pkt_len()), (head + 1, 1));
    assert!(m.trim(0));
    assert!(!m.trim(5), "trimming more than there is changes nothing");
    assert!(!m.adj(5));
    assert_eq!(m.data(), &[2]);
    assert_eq!((m.headroom(), m.pkt_len()), (head + 1, 1));
    // The whole headroom can be taken, and not a byte more.
    let room = m.headroom();
    assert!(m.prepend(room + 1).is_none());
    assert_eq!(m.prepend(room).expect("all of the headroom").len(), room);
    assert_eq!((m.headroom(), m.pkt_len()), (0, room + 1));
    assert_eq!(m.data()[room], 2);
    assert!(m.adj(room));
    assert!(
        m.prepend(head + 10_000).is_none(),
        "prepend past the headroom fails"
    );
    m.data_mut()[0] = 7;
    assert_eq!(m.data(), &[7]);
    assert_eq!(m.refcnt(), 1);
    drop(m);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn net_null_ports_receive_and_transmit_without_leaks() {
    eal();
    let pool = Mempool::new("t_null", 1023, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let mut rxp = Port::by_name("net_null0").expect("net_null0 registered by EAL");
    let mut txp = Port::by_name("net_null1").expect("net_null1");
    let info = rxp.info().expect("info");
    assert_eq!(info.driver, "net_null");
    for p in [&mut rxp, &mut txp] {
        p.configure(&PortConf::default(), &pool).expect("configure");
        p.start().expect("start");
        assert!(p.link().expect("link").up);
    }
    let mut batch = MbufBatch::new();
    let mut moved = 0;
    for _ in 0..10 {
        let n = rxp.rx_burst(QueueId(0), &mut batch);
        assert!(n > 0, "net_null always has packets");
        let (sent, dropped) = txp.tx_burst(QueueId(0), &mut batch);
        assert_eq!(sent + dropped, n);
        moved += sent;
    }
    assert!(moved > 0);
    stop(&[rxp, txp]);
    assert_eq!(pool.in_use(), 0, "net_null round trip leaked mbufs");
}

#[test]
fn lcores_and_version_are_reported() {
    eal();
    assert!(rvs_dataplane::dpdk::version().starts_with("22.11"));
    assert!(rvs_dataplane::dpdk::tsc_hz() > 0);
    // The test threads are not EAL threads.
    assert_eq!(rvs_dataplane::dpdk::lcore::current(), None);
}

#[test]
fn rust_toeplitz_equals_dpdk_softrss() {
    eal();
    let key = rvs_dataplane::dpdk::RSS_KEY;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (src, dst) = ((x >> 32) as u32, x as u32);
        let (sp, dp) = ((x >> 16) as u16, (x >> 48) as u16);
        let mut words = [src, dst, (u32::from(sp) << 16) | u32::from(dp)];
        let dpdk = rvs_dataplane::dpdk::softrss(&mut words, &key);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.to_be_bytes());
        bytes.extend_from_slice(&dst.to_be_bytes());
        bytes.extend_from_slice(&sp.to_be_bytes());
        bytes.extend_from_slice(&dp.to_be_bytes());
        assert_eq!(
            rvs_dataplane::laddr::toeplitz(&key, &bytes),
            dpdk,
            "tuple {words:x?}"
        );
    }
}

#[test]
fn a_stream_reads_bursts_in_order_as_they_are_received_and_frees_what_it_leaves() {
    eal();
    let pool = Mempool::new("t_stream", 1023, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let (a, b, _r1, _r2) = wire("stream", 1024, &pool);
    // 150 frames wait on port b: more than two bursts.
    let send = |from: usize, n: usize| {
        let mut tx = MbufBatch::new();
        for i in from..from + n {
            tx.push(pool.alloc_with(&frame(i, 64)).expect("alloc"))
                .expect("room");
        }
        assert_eq!(a.tx_burst(QueueId(0), &mut tx), (n, 0));
    };
    send(0, 64);
    send(64, 64);
    send(128, 22);
    let q = QueueId(0);
    let mut rx = MbufBatch::new();
    assert_eq!(b.rx_burst(q, &mut rx), MAX_BURST);
    let mut refills = 0;
    let got: Vec<Vec<u8>> = rx
        .stream(
            |batch| {
                refills += 1;
                b.rx_burst(q, batch)
            },
            5,
        )
        .map(|m| m.data().to_vec())
        .collect();
    // Every frame once, in order; the third refill found nothing and ended the stream.
    assert_eq!(got.len(), 150);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &frame(i, 64), "frame {i}");
    }
    assert_eq!(refills, 3);
    assert!(rx.is_empty());
    assert_eq!(pool.in_use(), 0);

    // At most `more` refills; what is not read is freed with the stream.
    send(0, 64);
    send(64, 64);
    send(128, 64);
    assert_eq!(b.rx_burst(q, &mut rx), MAX_BURST);
    let taken: Vec<Mbuf> = rx
        .stream(|batch| b.rx_burst(q, batch), 1)
        .take(70)
        .collect();
    assert_eq!(taken.len(), 70);
    assert_eq!(taken[69].data(), &frame(69, 64)[..]);
    // Taken 70, the third burst waiting in the ring: the rest of the second was freed.
    assert_eq!(
        pool.in_use(),
        70 + 64,
        "the rest of the second burst is freed"
    );
    drop(taken);
    // The third burst was never asked for: it still waits on the port.
    assert_eq!(b.rx_burst(q, &mut rx), MAX_BURST);
    assert_eq!(rx.as_slice()[0].data(), &frame(128, 64)[..]);
    rx.clear();
    assert_eq!(pool.in_use(), 0);
    stop(&[a, b]);
}
