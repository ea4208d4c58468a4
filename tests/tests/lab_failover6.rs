//! Active/standby over IPv6, end to end: two rvsd processes (own DPDK `--file-prefix`,
//! own namespace) in front of the same IPv6 real servers, IPv6 sessions synced between
//! them (the sync messages over IPv4), the active one killed, the standby taking over with
//! its synced sessions and moving the IPv6 addresses to itself with unsolicited neighbour
//! advertisements.
//!
//! Topology (prefix `rs6`; every kernel address `nodad`):
//! ```text
//!  c  c0 2001:db8:10::2 ── sw:brc ──┬── da d0 [dpdk0 2001:db8:10::3 + floating ::1, VIP 2001:db8:10::100]
//!                                   └── db d0 [dpdk0 2001:db8:10::4 + floating ::1]
//!  r1 2001:db8:20::11, r2 ::12 (gateway 2001:db8:20::1) ── sw:brs ──┬── da d1 [2001:db8:20::3 + ::1, LIP ::200]
//!                                                                   └── db d1 [2001:db8:20::4 + ::1]
//!  da s0 10.99.0.1 ──── db s0 10.99.0.2      (kernel veth: the sync network, IPv4)
//! ```
//! Two services on the VIP, rr over r1 and r2 port 9000: NAT (:80) and FULLNAT (:81, LIP
//! 2001:db8:20::200). The real servers' default route is the floating gateway address,
//! which moves with the active role. The directors' kernels have IPv6 off on the DPDK
//! ports' interfaces: rvs answers neighbour discovery itself, the standby for its own
//! first addresses only. The takeover is what keepalived's `notify_master` would run:
//! `rvsadm --start-daemon master`, after which the new active director advertises the
//! VIP, the LIP and the floating addresses (override set).
//! Needs root; skipped where network namespaces cannot be made.

use std::net::Ipv6Addr;
use std::time::Instant;

use rvs_tests::failover::{
    established, mac, status, wait_for, ConnStatus, STREAM_CLIENT, STREAM_SERVER,
};
use rvs_tests::{can_build_labs, Director, Lab};

const VIP: &str = "2001:db8:10::100";
const LIP: &str = "2001:db8:20::200";
const SERVERS: [&str; 2] = ["2001:db8:20::11", "2001:db8:20::12"];
const GATEWAY: &str = "2001:db8:20::1";
/// The services' ports: NAT, FULLNAT.
const PORTS: [&str; 2] = ["80", "81"];
/// Long-lived connections per service.
const PER_PORT: usize = 4;
const CONNS: usize = PORTS.len() * PER_PORT;
/// Bytes a connection must receive after the takeover (a second of streaming).
const PROGRESS: u64 = 20_000;

/// `ip -6 neigh show <ip>` in `ns`.
fn neigh6(lab: &Lab, ns: &str, ip: &str) -> String {
    String::from_utf8_lossy(&lab.exec(ns, &["ip", "-6", "neigh", "show", ip]).stdout).into_owned()
}

/// A director: ports d0 (2001:db8:10::`own`, plus the floating ::1) and d1
/// (2001:db8:20::`own`, plus the floating ::1), two workers pausing when idle (two
/// directors share the cores), and the given `[sync]` section.
fn start_director(lab: &Lab, ns: &str, own: u8, sync: &str) -> Director {
    for dev in ["d0", "d1"] {
        lab.kernel_off6(ns, dev);
        lab.kernel_off(ns, dev);
    }
    let tag = format!("rs6{ns}");
    Director::start_toml(
        lab,
        ns,
        &tag,
        &format!(
            r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_{tag}0,iface=d0"
addresses = ["2001:db8:10::{own}/64", "2001:db8:10::1/64"]

[[ports]]
name = "dpdk1"
device = "net_af_packet_{tag}1,iface=d1"
addresses = ["2001:db8:20::{own}/64", "{GATEWAY}/64"]

[workers]
count = 2
idle_sleep_max_us = 200

{sync}
"#
        ),
    )
}

/// NAT on [VIP]:80 and FULLNAT (IPv6 LIP) on [VIP]:81, rr over both servers' port 9000.
fn configure(d: &Director) {
    let nat = format!("[{VIP}]:80");
    let fnat = format!("[{VIP}]:81");
    d.rvsadm(&["-A", "-t", &nat, "-s", "rr"]);
    d.rvsadm(&["-A", "-t", &fnat, "-s", "rr"]);
    for rs in SERVERS {
        let rs = format!("[{rs}]:9000");
        d.rvsadm(&["-a", "-t", &nat, "-r", &rs, "-m"]);
        d.rvsadm(&["-a", "-t", &fnat, "-r", &rs, "-b"]);
    }
    d.rvsadm(&["--add-laddr", "-z", LIP, "-t", &fnat]);
}

/// The InPkts column of service [VIP]:`port` (`rvsadm -Ln --stats --exact`).
fn in_pkts(d: &Director, port: &str) -> u64 {
    let text = d.rvsadm(&["-Ln", "--stats", "--exact"]);
    let vs = format!("[{VIP}]:{port}");
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "TCP" && f[1] == vs)
        .and_then(|f| f[3].parse().ok())
        .unwrap_or_else(|| panic!("no stats for {vs}: {text}"))
}

#[test]
fn standby_takes_over_ipv6_nat_and_fullnat_connections() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::new("rs6");
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
    lab.addr6("c", "c0", "2001:db8:10::2/64");
    lab.addr("da", "s0", "10.99.0.1/24");
    lab.addr("db", "s1", "10.99.0.2/24");
    for (ns, rip) in [("r1", SERVERS[0]), ("r2", SERVERS[1])] {
        lab.addr6(ns, "r0", &format!("{rip}/64"));
        lab.route6(ns, "default", GATEWAY);
        lab.spawn(ns, &["python3", "-c", STREAM_SERVER, rip]);
    }
    for (ns, rip) in [("r1", SERVERS[0]), ("r2", SERVERS[1])] {
        lab.wait_tcp6(ns, rip.parse::<Ipv6Addr>().unwrap(), 9000);
    }

    // The standby's sync daemon comes from its configuration file; the active one's from
    // rvsadm.
    let mut a = start_director(&lab, "da", 3, "");
    let b = start_director(
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
    let bd = b.rvsadm(&["-L", "--daemon"]);
    assert!(
        bd.starts_with("backup sync daemon (mcast=s1, syncid=7"),
        "{bd}"
    );

    // Long-lived transfers: 4 connections per service.
    let ports = PORTS.join(",");
    let per_port = PER_PORT.to_string();
    let status_path = std::env::temp_dir().join(format!("rs6-status-{}.json", std::process::id()));
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
    wait_for("8 transferring IPv6 connections", 20, || {
        let s = status(&status_path);
        s.len() == CONNS && s.iter().all(|c| c.bytes > 5000)
    });
    // Only the active director answered the client's solicitation for the VIP.
    let (mac_a, mac_b) = (mac(&lab, "da", "d0"), mac(&lab, "db", "d0"));
    let n = neigh6(&lab, "c", VIP);
    assert!(n.contains(&mac_a), "the client's neighbour entry: {n}");
    // The standby holds them all (sent at packet 3; a partial message waits ≤ 2 s), as
    // the active one lists them.
    wait_for("the standby's synced IPv6 sessions", 10, || {
        established(&b).len() >= CONNS
    });
    let on_a = established(&a);
    let on_b = established(&b);
    assert_eq!(on_a.len(), CONNS, "{on_a:?}");
    for row in &on_a {
        assert!(row.contains(&format!("[{VIP}]:")), "{row}");
        assert!(on_b.contains(row), "{row} synced: {on_b:?}");
    }
    let listing = b.rvsadm(&["-Lnc"]);
    eprintln!("standby's sessions before takeover:\n{listing}");
    let fullnat_rows = on_b
        .iter()
        .filter(|r| r.contains(&format!("[{VIP}]:81")))
        .count();
    assert_eq!(fullnat_rows, PER_PORT, "{on_b:?}");
    let dp_b = b.rvsadm(&["--dataplane"]);
    assert!(dp_b.contains("passive"), "{dp_b}");
    // The standby answered no solicitation (the client's for the VIP, the servers' for
    // the gateway and the LIP reached both directors); the active one did.
    assert_eq!(b.counter("arp_replies"), 0, "the standby's answers");
    assert!(
        a.counter("arp_replies") > 0,
        "the active director's answers"
    );
    let in_b_before = PORTS.map(|p| in_pkts(&b, p));

    // Failover: the active director dies; the standby becomes active.
    let before: Vec<ConnStatus> = status(&status_path);
    assert!(before.iter().all(|c| c.err.is_none()), "{before:?}");
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
    // The unsolicited advertisement moves the VIP in the client's cache, and the gateway
    // and the LIP in the servers'.
    wait_for(
        "the client's neighbour entry of the VIP to follow the NA",
        10,
        || neigh6(&lab, "c", VIP).contains(&mac_b),
    );
    let mac_b1 = mac(&lab, "db", "d1");
    for ns in ["r1", "r2"] {
        wait_for(
            &format!("{ns}'s entry of the gateway to follow the NA"),
            10,
            || neigh6(&lab, ns, GATEWAY).contains(&mac_b1),
        );
    }
    // Every connection transfers again, without error.
    let resumed = |now: &[ConnStatus]| {
        now.len() == CONNS
            && now
                .iter()
                .zip(&before)
                .all(|(n, b)| n.bytes > b.bytes + PROGRESS || n.err.is_some())
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut after = status(&status_path);
    while !resumed(&after) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        after = status(&status_path);
    }
    let resumed_after = t0.elapsed();
    for (n, b) in after.iter().zip(&before) {
        eprintln!(
            "port {} local {}: {} -> {} bytes, err {:?}",
            n.port, n.local, b.bytes, n.bytes, n.err
        );
    }
    for port in PORTS {
        let port: u16 = port.parse().unwrap();
        let kept = after
            .iter()
            .zip(&before)
            .filter(|(n, b)| n.port == port && n.err.is_none() && n.bytes > b.bytes + PROGRESS)
            .count();
        assert_eq!(
            kept,
            PER_PORT,
            "port {port} (NAT 80, FULLNAT 81) after the takeover: {after:?}\nnew active's log:\n{}",
            b.log()
        );
    }
    assert!(after.iter().all(|c| c.err.is_none()), "{after:?}");
    eprintln!(
        "takeover: {CONNS}/{CONNS} IPv6 connections kept transferring (resumed within {:.1}s)",
        resumed_after.as_secs_f64()
    );
    // The new active director forwarded the client's packets of both services' synced
    // sessions.
    let in_b_after = PORTS.map(|p| in_pkts(&b, p));
    for ((port, before), after) in PORTS.iter().zip(in_b_before).zip(in_b_after) {
        eprintln!("[{VIP}]:{port} InPkts on the new active director: {before} -> {after}");
        assert!(
            after >= before + 40,
            "[{VIP}]:{port} InPkts on the new active director: {before} -> {after}"
        );
    }
    // The FULLNAT servers' entry of the LIP moved too.
    for ns in ["r1", "r2"] {
        let n = neigh6(&lab, ns, LIP);
        assert!(
            n.contains(&mac_b1),
            "{ns}'s neighbour entry of the LIP: {n}"
        );
    }
    // New connections work through the new active director, both services; the client
    // solicits the VIP afresh, and the new active director answers.
    lab.exec("c", &["ip", "-6", "neigh", "del", VIP, "dev", "c0"]);
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
            "new connection to [{VIP}]:{port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let n = neigh6(&lab, "c", VIP);
    assert!(n.contains(&mac_b), "the client's neighbour entry: {n}");
    assert!(
        b.counter("arp_replies") > 0,
        "the new active director's answers"
    );
    assert!(b
        .rvsadm(&["-L", "--daemon"])
        .starts_with("master sync daemon (mcast=s1, syncid=7"));
    let _ = std::fs::remove_file(&status_path);
    eprintln!("lab took {:.1}s", started.elapsed().as_secs_f64());
}
