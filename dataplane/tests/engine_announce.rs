//! Gratuitous ARP announces the configuration published with the request: a survivor
//! that takes over a dead director's LIP publishes a configuration holding it and asks
//! worker 0 to announce; a worker that had adopted the configuration before that
//! publication, and served its inbox after it, announced the old addresses, and the real
//! servers kept sending the LIP's replies to the dead director (`lab_lip_takeover`,
//! about once in twenty runs). The worker here pauses between the two steps of every
//! turn ([`testing::set_turn_gap`]), as a preempted worker does, so the publication
//! falls between them.
//!
//! An engine with one worker and one net_ring port, whose transmit ring the test reads.
//! Needs root (or hugepage rights) and DPDK installed.

#![cfg(feature = "dpdk")]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_dataplane::dpdk::{default_eal_args, Eal, MbufBatch, Port, Ring, RING_SP_SC};
use rvs_dataplane::engine::{testing, Engine, EngineConfig, PortSpec};
use rvs_dataplane::service::ServiceSet;

/// The addresses of the gratuitous ARP requests (sender address = target address) among
/// the frames on `ring`, read for up to `wait` or until `want` is among them.
fn garps(ring: &Ring, want: Ipv4Addr, wait: Duration) -> Vec<Ipv4Addr> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + wait;
    let mut batch = MbufBatch::new();
    while Instant::now() < deadline && !seen.contains(&want) {
        if ring.dequeue_burst(&mut batch) == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for m in batch.as_slice() {
            let frame = m.data();
            let Ok((eth, arp)) = etherparse::Ethernet2Header::from_slice(frame) else {
                continue;
            };
            // An IPv4-over-Ethernet ARP request: sender at 14, target at 24 of its body.
            if eth.ether_type != etherparse::EtherType::ARP || arp.len() < 28 || arp[6..8] != [0, 1]
            {
                continue;
            }
            let ip = |at: usize| Ipv4Addr::new(arp[at], arp[at + 1], arp[at + 2], arp[at + 3]);
            if ip(14) == ip(24) {
                seen.push(ip(14));
            }
        }
        batch.clear();
    }
    seen
}

#[test]
fn gratuitous_arp_names_the_addresses_published_with_the_request() {
    let prefix = format!("rvs-test-announce-{}", std::process::id());
    let args = default_eal_args(&prefix, 1, 256, &[]);
    Eal::init_or_get(&args).unwrap_or_else(|e| panic!("EAL init with {args:?}: {e}"));
    let rx = Ring::new("ann_rx", 1024, RING_SP_SC).expect("rx ring");
    let tx = Ring::new("ann_tx", 1024, RING_SP_SC).expect("tx ring");
    let port = Port::from_rings("ann", &[&rx], &[&tx]).expect("port");
    let name = port.info().expect("info").name;
    let ports = vec![PortSpec {
        name: "dpdk0".into(),
        devargs: name,
        addrs: vec![(Ipv4Addr::new(10, 7, 0, 1), 24)],
        addrs6: Vec::new(),
        mtu: 1500,
        kernel_iface: None,
        vlan: None,
    }];
    let cfg = EngineConfig {
        mbufs: 4095,
        ..EngineConfig::new(args, ports, 1, 1024)
    };
    let mut engine = Engine::start(&cfg).expect("engine");
    let old = Ipv4Addr::new(10, 7, 0, 100);
    let services = || Arc::new(ServiceSet::default());
    engine.publish(services(), &[IpAddr::V4(old)], &[], HashMap::new());
    // Two report round trips: the worker has adopted the first configuration.
    engine.reports();
    engine.reports();
    // Whatever the start sent, out of the way.
    let _ = garps(&tx, Ipv4Addr::UNSPECIFIED, Duration::from_millis(100));

    testing::set_turn_gap(Duration::from_millis(20));
    // Each round: a new address published, then announced at once, as a takeover does.
    for round in 0..5u8 {
        let vip = Ipv4Addr::new(10, 7, 1, round);
        engine.publish(
            services(),
            &[IpAddr::V4(old), IpAddr::V4(vip)],
            &[],
            HashMap::new(),
        );
        engine.announce();
        let seen = garps(&tx, vip, Duration::from_secs(2));
        assert!(
            seen.contains(&vip),
            "round {round}: gratuitous ARP for {vip} just published; announced: {seen:?}"
        );
    }
    testing::set_turn_gap(Duration::ZERO);
    drop(engine);
}
