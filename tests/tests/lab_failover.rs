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
//!  sw: a kernel router between the bridges (brc 10.10.0.254, brs 10.20.0.254)
//! ```
//! Four services on the VIP, rr over r1 and r2: NAT (:80 → :9000), FULLNAT (:81 → :9000,
//! LIP 10.20.0.200), DR (:82) and TUN (:83). The real servers hold the VIP (on the TUN
//! device of the user-space IPIP decapsulator, see `lab_modes`; they answer no ARP for
//! it) and send what leaves from the VIP — the DR and TUN replies, which bypass the
//! director — through the router `sw` (a source rule), the rest through the director.
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
use rvs_tests::topo::tun_real_server;
use rvs_tests::{can_build_labs, Director, Lab};

const VIP: &str = "10.10.0.100";
/// The services' ports: NAT, FULLNAT, DR, TUN.
const PORTS: [&str; 4] = ["80", "81", "82", "83"];
/// Long-lived connections per service.
const PER_PORT: usize = 4;
const CONNS: usize = PORTS.len() * PER_PORT;

fn start_rvsd(lab: &Lab, ns: &str, own: u8, sync: &str) -> Director {
    rvs_tests::failover::start_director(lab, ns, &format!("rsy{ns}"), own, sync)
}

/// The failover lab's services: NAT and FULLNAT ([`configure`]), DR on VIP:82 and TUN on
/// VIP:83 (rr over r1 and r2, same port).
fn configure_all(d: &Director) {
    configure(d);
    for (port, flag) in [("82", "-g"), ("83", "-i")] {
        let vs = format!("{VIP}:{port}");
        d.rvsadm(&["-A", "-t", &vs, "-s", "rr"]);
        for rs in ["10.20.0.11", "10.20.0.12"] {
            d.rvsadm(&["-a", "-t", &vs, "-r", &format!("{rs}:{port}"), flag]);
        }
    }
}

/// The InPkts column of service VIP:`port` (`rvsadm -Ln --stats --exact`).
fn in_pkts(d: &Director, port: &str) -> u64 {
    let text = d.rvsadm(&["-Ln", "--stats", "--exact"]);
    let vs = format!("{VIP}:{port}");
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "TCP" && f[1] == vs)
        .and_then(|f| f[3].parse().ok())
        .unwrap_or_else(|| panic!("no stats for {vs}: {text}"))
}

#[test]
fn standby_takes_over_established_connections_in_every_mode() {
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
    // The router for the DR and TUN replies.
    lab.addr("sw", "brc", "10.10.0.254/24");
    lab.addr("sw", "brs", "10.20.0.254/24");
    for k in [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.brc.rp_filter=0",
        "net.ipv4.conf.brs.rp_filter=0",
    ] {
        lab.exec("sw", &["sysctl", "-qw", k]);
    }
    for (ns, rip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        tun_real_server(&mut lab, ns, VIP);
        lab.exec(ns, &["ip", "rule", "add", "from", VIP, "lookup", "100"]);
        lab.exec(
            ns,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                "10.20.0.254",
                "table",
                "100",
            ],
        );
        lab.spawn(ns, &["python3", "-c", STREAM_SERVER, rip]);
        lab.spawn(ns, &["python3", "-c", STREAM_SERVER, VIP, "82"]);
        lab.spawn(ns, &["python3", "-c", STREAM_SERVER, VIP, "83"]);
        lab.wait_tcp(ns, rip.parse().unwrap(), 9000);
        lab.wait_tcp(ns, VIP.parse().unwrap(), 82);
        lab.wait_tcp(ns, VIP.parse().unwrap(), 83);
    }

    // The standby's sync daemon comes from its configuration file; the active one's from
    // rvsadm.
    let mut a = start_rvsd(&lab, "da", 3, "");
    let b = start_rvsd(
        &lab,
        "db",
        4,
        "[sync]\nstate = \"backup\"\nmcast_interface = \"s1\"\nsyncid = 7\n",
    );
    configure_all(&a);
    configure_all(&b);
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
    let ports = PORTS.join(",");
    let per_port = PER_PORT.to_string();
    let status_path = std::env::temp_dir().join(format!("rsy-status-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&status_path);
    let sp = status_path.to_string_lossy().into_owned();
    lab.spawn(
        "c",
        &[
            "python3",
            "-c",
            STREAM_CLIENT,
            VIP,
            &ports,
            &per_port,
            &sp,
            "60",
        ],
    );
    wait_for("16 transferring connections", 20, || {
        let s = status(&status_path);
        s.len() == CONNS && s.iter().all(|c| c.bytes > 5000)
    });
    // The standby holds them all (sent at packet 3; a partial message waits ≤ 2 s).
    wait_for("the standby's synced sessions", 10, || {
        established(&b).len() >= CONNS
    });
    let on_a = established(&a);
    let on_b = established(&b);
    for row in &on_a {
        assert!(on_b.contains(row), "{row} synced: {on_b:?}");
    }
    let dp_b = b.rvsadm(&["--dataplane"]);
    eprintln!("standby before takeover:\n{dp_b}");
    assert!(dp_b.contains("passive"), "{dp_b}");

    let in_b_before = PORTS.map(|p| in_pkts(&b, p));
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
        now.len() == CONNS
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
        "takeover: {survived}/{CONNS} established connections kept transferring (resumed within {:.1}s)",
        resumed_after.as_secs_f64()
    );
    for port in PORTS {
        let port: u16 = port.parse().unwrap();
        let kept = after
            .iter()
            .zip(&before)
            .filter(|(n, b)| n.port == port && n.err.is_none() && n.bytes > b.bytes + 20_000)
            .count();
        assert_eq!(
            kept, PER_PORT,
            "port {port} (NAT, FULLNAT, DR, TUN: 80..83): {after:?}"
        );
    }
    assert_eq!(survived, CONNS, "{after:?}");
    assert!(after.iter().all(|c| c.err.is_none()), "{after:?}");
    // The new active director forwarded the client's packets of every service's synced
    // sessions (for DR and TUN the only packets it sees).
    let in_b_after = PORTS.map(|p| in_pkts(&b, p));
    for ((port, before), after) in PORTS.iter().zip(in_b_before).zip(in_b_after) {
        eprintln!("VIP:{port} InPkts on the new active director: {before} -> {after}");
        assert!(
            after >= before + 40,
            "VIP:{port} InPkts on the new active director: {before} -> {after}"
        );
    }
    // New connections work through the new active director, every mode.
    for port in PORTS {
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
