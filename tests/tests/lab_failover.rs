//! Active/standby end to end: two rvsd processes (own DPDK `--file-prefix`, own
//! namespace) in front of the same real servers, connection sync between them, the active
//! one killed, the standby taking over with its synced sessions.
//!
//! Topology (prefix `rsy`):
//! ```text
//!  c  c0 10.10.0.2 ── sw:brc ──┬── da d0 [dpdk0 10.10.0.3 + floating 10.10.0.1, VIP 10.10.0.100]
//!                              └── db d0 [dpdk0 10.10.0.4 + floating 10.10.0.1]
//!  r1 10.20.0.11, r2 10.20.0.12 (gateway 10.20.0.1) ── sw:brs ──┬── da d1 [10.20.0.3 + 10.20.0.1, LIP .200]
//!                                                               └── db d1 [10.20.0.4 + 10.20.0.1]
//!  da s0 10.99.0.1 ──── db s0 10.99.0.2      (kernel veth: the sync network)
//! ```
//! The sync daemon uses kernel UDP sockets, so the directors also share a kernel link for
//! it (here a dedicated veth pair). The director with only a backup daemon is the standby:
//! it answers ARP for neither the VIP, the LIP nor the floating gateway address; the
//! takeover is what keepalived's `notify_master` would run: `rvsadm --start-daemon master`,
//! after which the new active director sends gratuitous ARP for those addresses.
//! Needs root; skipped where network namespaces cannot be made.

use std::time::Instant;

use rvs_tests::failover::{
    configure, established, mac, neigh, status, wait_for, ConnStatus, STREAM_CLIENT, STREAM_SERVER,
};
use rvs_tests::{can_build_labs, Director, Lab};

const VIP: &str = "10.10.0.100";

fn start_rvsd(lab: &Lab, ns: &str, own: u8, sync: &str) -> Director {
    rvs_tests::failover::start_director(lab, ns, &format!("rsy{ns}"), own, sync)
}

#[test]
fn standby_takes_over_established_nat_and_fullnat_connections() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = Lab::new("rsy");
    for ns in ["c", "sw", "da", "db", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "sw", "c0p");
    lab.veth("da", "d0", "sw", "a0p");
    lab.veth("db", "d0", "sw", "b0p");
    lab.veth("da", "d1", "sw", "a1p");
    lab.veth("db", "d1", "sw", "b1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.veth("da", "s0", "db", "s1");
    lab.bridge("sw", "brc", &["c0p", "a0p", "b0p"]);
    lab.bridge("sw", "brs", &["a1p", "b1p", "r1p", "r2p"]);
    lab.addr("c", "c0", "10.10.0.2/24");
    lab.addr("r1", "r0", "10.20.0.11/24");
    lab.addr("r2", "r0", "10.20.0.12/24");
    lab.default_route("r1", "10.20.0.1".parse().unwrap());
    lab.default_route("r2", "10.20.0.1".parse().unwrap());
    lab.addr("da", "s0", "10.99.0.1/24");
    lab.addr("db", "s1", "10.99.0.2/24");
    lab.spawn("r1", &["python3", "-c", STREAM_SERVER, "10.20.0.11"]);
    lab.spawn("r2", &["python3", "-c", STREAM_SERVER, "10.20.0.12"]);
    lab.wait_tcp("r1", "10.20.0.11".parse().unwrap(), 9000);
    lab.wait_tcp("r2", "10.20.0.12".parse().unwrap(), 9000);

    // The standby's sync daemon comes from its configuration file; the active one's from
    // rvsadm.
    let mut a = start_rvsd(&lab, "da", 3, "");
    let b = start_rvsd(
        &lab,
        "db",
        4,
        "[sync]\nstate = \"backup\"\nmcast_interface = \"s1\"\nsyncid = 7\n",
    );
    configure(&a);
    configure(&b);
    a.rvsadm(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s0",
        "--syncid",
        "7",
    ]);
    let ad = a.rvsadm(&["-L", "--daemon"]);
    assert!(
        ad.starts_with("master sync daemon (mcast=s0, syncid=7"),
        "{ad}"
    );
    let bd = b.rvsadm(&["-L", "--daemon"]);
    assert!(
        bd.starts_with("backup sync daemon (mcast=s1, syncid=7"),
        "{bd}"
    );

    // Only the active director answers for the VIP.
    let ping = lab.try_exec("c", &["ping", "-c", "2", "-W", "2", VIP]);
    assert!(ping.status.success(), "ping VIP");
    let (mac_a, mac_b) = (mac(&lab, "da", "d0"), mac(&lab, "db", "d0"));
    assert!(
        neigh(&lab, "c", VIP).contains(&mac_a),
        "{}",
        neigh(&lab, "c", VIP)
    );

    // Long-lived transfers: 4 connections per mode.
    let status_path = std::env::temp_dir().join(format!("rsy-status-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&status_path);
    let sp = status_path.to_string_lossy().into_owned();
    lab.spawn(
        "c",
        &["python3", "-c", STREAM_CLIENT, VIP, "80,81", "4", &sp, "60"],
    );
    wait_for("8 transferring connections", 20, || {
        let s = status(&status_path);
        s.len() == 8 && s.iter().all(|c| c.bytes > 5000)
    });
    // The standby holds them all (sent at packet 3; a partial message waits ≤ 2 s).
    wait_for("the standby's synced sessions", 10, || {
        established(&b).len() >= 8
    });
    let on_a = established(&a);
    let on_b = established(&b);
    for row in &on_a {
        assert!(on_b.contains(row), "{row} synced: {on_b:?}");
    }
    let dp_b = b.rvsadm(&["--dataplane"]);
    eprintln!("standby before takeover:\n{dp_b}");
    assert!(dp_b.contains("passive"), "{dp_b}");

    // Failover: the active director dies; the standby becomes active.
    let before: Vec<ConnStatus> = status(&status_path);
    a.kill_hard();
    let t0 = Instant::now();
    b.rvsadm(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s1",
        "--syncid",
        "7",
    ]);
    wait_for("the client to follow the gratuitous ARP", 10, || {
        neigh(&lab, "c", VIP).contains(&mac_b)
    });
    // Every connection transfers again, without reset.
    wait_for("every connection to resume", 30, || {
        let now = status(&status_path);
        now.len() == 8
            && now
                .iter()
                .zip(&before)
                .all(|(n, b)| n.bytes > b.bytes + 20_000 || n.err.is_some())
    });
    let resumed_after = t0.elapsed();
    let after = status(&status_path);
    let survived = after
        .iter()
        .zip(&before)
        .filter(|(n, b)| n.err.is_none() && n.bytes > b.bytes + 20_000)
        .count();
    for (n, b) in after.iter().zip(&before) {
        eprintln!(
            "port {} local {}: {} -> {} bytes, err {:?}",
            n.port, n.local, b.bytes, n.bytes, n.err
        );
    }
    eprintln!(
        "takeover: {survived}/8 established connections kept transferring (resumed within {:.1}s)",
        resumed_after.as_secs_f64()
    );
    assert_eq!(survived, 8, "{after:?}");
    assert!(after.iter().all(|c| c.err.is_none()), "{after:?}");
    // New connections work through the new active director, both modes.
    for port in ["80", "81"] {
        let out = lab.try_exec(
            "c",
            &[
                "python3",
                "-c",
                "import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print(len(s.recv(1000)))",
                VIP,
                port,
            ],
        );
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() != "0",
            "new connection to {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(b
        .rvsadm(&["-L", "--daemon"])
        .starts_with("master sync daemon (mcast=s1, syncid=7"));
    let _ = std::fs::remove_file(&status_path);
}
