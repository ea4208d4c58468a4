//! The dataplane end to end: real kernel TCP stacks in network namespaces, real HTTP
//! servers, curl, and rvsd on DPDK `net_af_packet` ports attached to the lab's veths.
//!
//! Topology (one lab per test, own prefix):
//! ```text
//!  client ns        director ns (rvsd)          switch ns (bridge)      rs1 / rs2 ns
//!  c0 10.10.0.2 ─── d0 [dpdk0 10.10.0.1, VIP 10.10.0.100]
//!                   d1 [dpdk1 10.20.0.1, LIP 10.20.0.200] ─── br0 ─── r0 10.20.0.11 / .12
//! ```
//! Needs root; skipped (with a message) where network namespaces cannot be made.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::topo::{two_port, two_port_director};
use rvs_tests::{can_build_labs, Lab};

const VIP: &str = "10.10.0.100";

/// curl the VIP `n` times; returns the bodies.
fn curl_n(lab: &Lab, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            lab.curl("c", &format!("http://{VIP}/"))
                .unwrap_or_else(|| panic!("curl #{i} to the VIP failed"))
                .trim()
                .to_owned()
        })
        .collect()
}

fn counter(text: &str, worker: usize, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(&format!("worker {worker} ")))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn nat_round_robin_with_port_mapping_and_arp_ping() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let lab = two_port("rvn", true, 8080, 80);
    let d = two_port_director(&lab, "rvn", 1);
    d.rvsadm(&["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    d.rvsadm(&[
        "-a",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        "10.20.0.11:8080",
        "-m",
    ]);
    d.rvsadm(&[
        "-a",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        "10.20.0.12:80",
        "-m",
    ]);

    // ARP and ping: the client resolves the VIP to the director's MAC and gets answers.
    let ping = lab.try_exec("c", &["ping", "-c", "2", "-W", "2", VIP]);
    assert!(
        ping.status.success(),
        "ping VIP: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let neigh =
        String::from_utf8_lossy(&lab.exec("c", &["ip", "neigh", "show", VIP]).stdout).into_owned();
    let mac = String::from_utf8_lossy(&lab.exec("d", &["cat", "/sys/class/net/d0/address"]).stdout)
        .trim()
        .to_owned();
    assert!(
        neigh.contains(&mac),
        "VIP resolves to the director port's MAC {mac}: {neigh}"
    );

    let bodies = curl_n(&lab, 6);
    let names: Vec<&str> = bodies
        .iter()
        .map(|b| b.split_whitespace().next().unwrap_or(""))
        .collect();
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "rr alternates: {names:?}");
    }
    assert!(
        names.contains(&"rs1") && names.contains(&"rs2"),
        "{names:?}"
    );
    for b in &bodies {
        assert!(
            b.contains("client=10.10.0.2:"),
            "NAT keeps the client address: {b}"
        );
    }
    let listing = d.rvsadm(&["-Ln"]);
    assert!(listing.contains("TCP  10.10.0.100:80 rr"), "{listing}");
    assert!(
        listing.contains("  -> 10.20.0.11:8080              Masq    1"),
        "{listing}"
    );
    let conns = d.rvsadm(&["-Lnc"]);
    assert!(
        conns.lines().filter(|l| l.starts_with("TCP ")).count() >= 6,
        "{conns}"
    );
    let stats = d.rvsadm(&["--dataplane"]);
    assert!(counter(&stats, 0, "echo_replies") >= 2, "{stats}");
    assert!(counter(&stats, 0, "arp_replies") >= 1, "{stats}");
}

#[test]
fn fullnat_servers_see_a_lip_and_two_workers_hand_off_to_owners() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let lab = two_port("rvf", false, 8080, 80);
    let d = two_port_director(&lab, "rvf", 2);
    let svc = format!("{VIP}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:8080", "-b"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-b"]);
    d.rvsadm(&["--add-laddr", "-z", "10.20.0.200", "-t", &svc]);
    let bodies = curl_n(&lab, 8);
    let names: Vec<&str> = bodies
        .iter()
        .map(|b| b.split_whitespace().next().unwrap_or(""))
        .collect();
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "rr alternates: {names:?}");
    }
    for b in &bodies {
        assert!(
            b.contains("client=10.20.0.200:"),
            "FULLNAT: servers see the LIP: {b}"
        );
    }
    let listing = d.rvsadm(&["-Ln"]);
    assert!(listing.contains("FullNat"), "{listing}");
    // A worker counts a handoff when it passes the packet on, the owner when it takes it
    // in: the connections' last packets (the servers' ACKs of the client's FIN) may
    // still be between the two when curl has returned, longer on a loaded machine. Wait
    // (bounded) until the two counts meet, then check them.
    let handoff_counts = |stats: &str| {
        (
            counter(stats, 0, "handoff_out") + counter(stats, 1, "handoff_out"),
            counter(stats, 0, "handoff_in") + counter(stats, 1, "handoff_in"),
        )
    };
    rvs_tests::failover::poll_until(5, || {
        let (out, inn) = handoff_counts(&d.rvsadm(&["--dataplane"]));
        out == inn
    });
    let stats = d.rvsadm(&["--dataplane"]);
    let (handoffs, handed_in) = handoff_counts(&stats);
    eprintln!("{stats}");
    assert!(
        handoffs > 0,
        "replies arrived on the non-owner worker and were handed over: {stats}"
    );
    assert_eq!(
        handoffs, handed_in,
        "every handed-off packet reached its owner: {stats}"
    );
    let sessions = counter(&stats, 0, "sessions") + counter(&stats, 1, "sessions");
    assert_eq!(
        sessions, 8,
        "each session lives on exactly one worker: {stats}"
    );
}

/// Frames a broken or hostile client sends, built by hand (Python, raw AF_PACKET socket):
/// truncated IPv4, a bad IPv4 header checksum, a TCP ACK without a session, and a
/// fragment. Each must be counted under its reason (fragments: see the test) and running
/// connections must go on.
const INJECT: &str = r#"
import socket, struct, sys
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("c0", 0))
src = s.getsockname()[4]
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
def ip(payload, proto=6, flags_frag=0, bad=False):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, flags_frag, 64, proto, 0,
                    socket.inet_aton("10.10.0.2"), socket.inet_aton("10.10.0.100"))
    c = csum(h) ^ (0xffff if bad else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload
def tcp(flags):
    h = struct.pack("!HHIIBBHHH", 45678, 80, 1, 1, 5 << 4, flags, 65535, 0, 0)
    ph = socket.inet_aton("10.10.0.2") + socket.inet_aton("10.10.0.100") + struct.pack("!BBH", 0, 6, len(h))
    return h[:16] + struct.pack("!H", csum(ph + h)) + h[18:]
eth = dst + src + b"\x08\x00"
for _ in range(3):
    s.send(eth + ip(tcp(0x10))[:10])                 # truncated
    s.send(eth + ip(tcp(0x02), bad=True))            # bad IPv4 checksum
    s.send(eth + ip(tcp(0x10)))                      # ACK, no session
    s.send(eth + ip(tcp(0x02), flags_frag=0x2000))   # fragment (MF)
"#;

#[test]
fn malformed_client_packets_are_counted_and_do_not_disturb_connections() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let lab = two_port("rvm", true, 8080, 80);
    let d = two_port_director(&lab, "rvm", 1);
    let svc = format!("{VIP}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:8080", "-m"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-m"]);
    let idle = mbufs(&d.rvsadm(&["--dataplane"]));
    // A connection stays open across the garbage: a slow HTTP client.
    let slow = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("c"),
            "curl",
            "-s",
            "--max-time",
            "20",
            "--limit-rate",
            "1",
            &format!("http://{VIP}/"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("slow curl");
    assert_eq!(curl_n(&lab, 2).len(), 2);
    let mac = String::from_utf8_lossy(&lab.exec("d", &["cat", "/sys/class/net/d0/address"]).stdout)
        .trim()
        .to_owned();
    lab.exec("c", &["python3", "-c", INJECT, &mac]);
    let after = curl_n(&lab, 4);
    assert!(after.iter().all(|b| b.starts_with("rs")), "{after:?}");
    let out = slow.wait_with_output().expect("slow curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("rs"),
        "the open connection completed"
    );
    let stats = d.rvsadm(&["--dataplane"]);
    let drop = |reason: &str| -> u64 {
        stats
            .lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("drop {reason} ")))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    assert!(
        drop("malformed:truncated") >= 3 || drop("malformed:bad_total_len") >= 3,
        "{stats}"
    );
    assert!(drop("malformed:bad_checksum") >= 3, "{stats}");
    assert!(drop("no-session") >= 3, "{stats}");
    // Fragments: DPDK's net_af_packet joins its sockets with PACKET_FANOUT_FLAG_DEFRAG, so
    // the kernel holds (and would reassemble) them before rvs sees anything; on a NIC they
    // reach the pipeline and are counted as `malformed:fragment` (pipeline unit test).
    // Here they must simply change nothing, which the curls above and below show.
    // After traffic stops the mempool returns to its idle level.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = mbufs(&d.rvsadm(&["--dataplane"]));
        if now <= idle {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mbufs in use {now} > idle {idle}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mbufs(stats: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix("mbufs_in_use="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX)
}
