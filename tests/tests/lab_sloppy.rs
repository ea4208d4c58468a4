//! `[sessions] sloppy_tcp` end to end: a director that never saw a flow's SYN takes it
//! on from its next segment, to the real server `mh` chose before. The director here is
//! the same rvsd restarted (its sessions gone, as a director that ECMP newly sends a flow
//! to would have none): NAT service VIP 10.10.0.100:80, `mh` with `mh-port` over two real
//! servers, the director their gateway. Six long connections stream from the servers
//! (1000 bytes every 50 ms) while the client sends a line every 100 ms.
//!
//! rvsd is killed hard and started again with `sloppy_tcp = 0`: the client's segments are
//! dropped as `no-session` and nothing flows. The configuration is changed to
//! `sloppy_tcp = 1` and reloaded (SIGHUP): each connection's next segment from the
//! client opens an ESTABLISHED session to the very server it had (each is checked against
//! the session listing from before the restart), the servers' retransmissions reach the
//! client again, and every connection goes on without a reset.
//!
//! Topology (prefix `rsl`): `topo::two_port`, the director the servers' gateway.
//! Needs root; skipped where network namespaces cannot be made.

use std::time::{Duration, Instant};

use rvs_tests::failover::{status, wait_for, STREAM_CLIENT, STREAM_SERVER};
use rvs_tests::topo::{two_port, two_port_director_with, VIP2 as VIP};
use rvs_tests::{can_build_labs, Director, Lab};

/// Connections of the client: enough that mh-port puts some on each server whatever
/// source ports the kernel picks (with 6, all on one server had a chance of 1 in 32,
/// and a CI run met it; with 16, 1 in 32,768).
const CONNS: usize = 16;

fn config(sloppy: u8) -> String {
    format!(
        "[sessions]\nsloppy_tcp = {sloppy}\n\n\
         [[services]]\nproto = \"tcp\"\nvip = \"{VIP}:80\"\nscheduler = \"mh\"\nsched_flags = [\"mh-port\"]\n\
         [[services.real]]\naddress = \"10.20.0.11:9000\"\nforward = \"masq\"\n\
         [[services.real]]\naddress = \"10.20.0.12:9000\"\nforward = \"masq\"\n"
    )
}

/// The ESTABLISHED sessions as (client port, real server), sorted.
fn sessions(d: &Director) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = d
        .rvsadm(&["-Lnc"])
        .lines()
        .filter(|l| l.contains("ESTABLISHED"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let cport = w.get(3)?.rsplit(':').next()?.parse().ok()?;
            Some((cport, w.get(5)?.to_string()))
        })
        .collect();
    v.sort();
    v
}

fn total(path: &std::path::Path) -> u64 {
    status(path).iter().map(|c| c.bytes).sum()
}

#[test]
fn sloppy_tcp_takes_on_flows_a_restarted_director_never_saw() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let started = Instant::now();
    let mut lab: Lab = two_port("rsl", true, 53, 53);
    for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        lab.spawn(ns, &["python3", "-c", STREAM_SERVER, ip, "9000"]);
        lab.wait_tcp(ns, ip.parse().unwrap(), 9000);
    }
    let mut first = two_port_director_with(&lab, "rsl", 1, &config(0));
    let path = std::env::temp_dir().join(format!("rsl-status-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_string_lossy().into_owned();
    let n = CONNS.to_string();
    lab.spawn(
        "c",
        &["python3", "-c", STREAM_CLIENT, VIP, "80", &n, &p, "40"],
    );
    wait_for("every connection streaming", 15, || {
        let s = status(&path);
        s.len() == CONNS && s.iter().all(|c| c.bytes > 5000 && c.err.is_none())
    });
    let before = sessions(&first);
    eprintln!("sessions before the restart: {before:?}");
    assert_eq!(before.len(), CONNS);
    let servers: std::collections::BTreeSet<&str> =
        before.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(servers.len(), 2, "mh-port spreads them over both servers");

    // Restarted without sloppy_tcp: no session, nothing flows, the client's segments
    // are counted as no-session.
    first.kill_hard();
    drop(first); // its files go first: the new one uses the same directory
    let dir = two_port_director_with(&lab, "rsl", 1, &config(0));
    wait_for("the client's segments dropped as no-session", 10, || {
        dir.drops("no-session") >= 5
    });
    let stalled = total(&path);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        total(&path) < stalled + 2000,
        "nothing flows without a session"
    );
    assert!(sessions(&dir).is_empty());

    // sloppy_tcp = 1 by a reload: the flows go on, each to its server.
    let cfg = dir.dir().join("rvsd.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace("sloppy_tcp = 0", "sloppy_tcp = 1")).expect("config");
    let reloaded = Instant::now();
    rvs_tests::run("kill", &["-HUP", &dir.pid().to_string()]);
    wait_for("every connection's session again", 15, || {
        sessions(&dir).len() == CONNS
    });
    let after = sessions(&dir);
    eprintln!(
        "sessions {:?} after the reload: {after:?}",
        reloaded.elapsed()
    );
    assert_eq!(after, before, "each flow to the server it had");
    let resumed = total(&path);
    wait_for("every connection streaming again", 20, || {
        let s = status(&path);
        total(&path) > resumed + CONNS as u64 * 10_000 && s.iter().all(|c| c.err.is_none())
    });
    eprintln!("streaming again {:?} after the reload", reloaded.elapsed());
    assert!(
        dir.log().contains("sloppy_tcp"),
        "the reload names the change"
    );
    for c in status(&path) {
        assert!(c.err.is_none(), "connection {}: {:?}", c.local, c.err);
    }
    drop(dir);
    let _ = std::fs::remove_file(&path);
    eprintln!("lab_sloppy took {:?}", started.elapsed());
}
