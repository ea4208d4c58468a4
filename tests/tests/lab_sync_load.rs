//! Session sync under load: two rvsd processes (own DPDK `--file-prefix`, own namespace)
//! as in `lab_failover.rs`; a client creates thousands of short UDP sessions per second
//! through the active director; the standby's session count must follow the active one's.
//! The test prints the measured lag (how long after the load stops the standby reaches
//! the active director's count) and the loss (sessions the standby never got).
//!
//! Topology (prefix `rsl`):
//! ```text
//!  c  c0 10.10.0.2 ── sw:brc ──┬── da d0 [dpdk0 10.10.0.3 + 10.10.0.1, VIP 10.10.0.100]
//!                              └── db d0 [dpdk0 10.10.0.4 + 10.10.0.1]
//!  r1 10.20.0.11 (gateway 10.20.0.1) ── sw:brs ──┬── da d1 [10.20.0.3 + 10.20.0.1]
//!                                                └── db d1 [10.20.0.4 + 10.20.0.1]
//!  da s0 10.99.0.1 ──── db s0 10.99.0.2      (kernel veth: the sync network)
//! ```
//! Needs root; skipped where network namespaces cannot be made.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::{can_build_labs, topo, Director, Lab};

const VIP: &str = "10.10.0.100";

fn start_rvsd(lab: &Lab, ns: &str, own: u8, sync: &str) -> Director {
    rvs_tests::failover::start_director(lab, ns, &format!("rsl{ns}"), own, sync)
}

/// The client: `rate` new UDP flows per second to `vip:port` for `secs` seconds; prints
/// the flows sent. Each flow is a socket bound to its own source port (10000 + n: random
/// ephemeral ports would collide, and a collision is the same session) and sends three
/// datagrams: IPVS's sync rules send a UDP session to the standby at its third packet
/// (`sync_threshold` 3), so a one-datagram flow is never synced (by design).
const FLOOD: &str = r#"
import socket, sys, time
vip, port, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
start = time.time(); sent = 0
while True:
    now = time.time()
    if now - start >= secs: break
    due = int((now - start) * rate)
    while sent < due:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", 10000 + sent))
            for _ in range(3):
                s.sendto(b"q", (vip, port))
        except OSError:
            pass
        sent += 1
        s.close()
    time.sleep(0.001)
print(sent)
"#;

fn configure(d: &Director) {
    let svc = format!("{VIP}:53");
    d.rvsadm(&["-A", "-u", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &svc, "-r", "10.20.0.11:5353", "-m"]);
}

#[test]
fn standby_session_count_follows_under_load() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let lab = topo::active_standby_one_server("rsl");
    lab.default_route("r1", "10.20.0.1".parse().unwrap());

    let a = start_rvsd(&lab, "da", 3, "");
    let b = start_rvsd(
        &lab,
        "db",
        4,
        "[sync]\nstate = \"backup\"\nmcast_interface = \"s1\"\nsyncid = 9\n",
    );
    configure(&a);
    configure(&b);
    a.rvsadm(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s0",
        "--syncid",
        "9",
    ]);
    // Resolve the VIP first so no flow waits for ARP.
    let ping = lab.try_exec("c", &["ping", "-c", "1", "-W", "2", VIP]);
    assert!(ping.status.success(), "ping VIP");

    let (rate, secs) = (3000u64, 6u64);
    let ns = lab.ns("c");
    let flood = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", FLOOD, VIP, "53"])
        .arg(rate.to_string())
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("flood client");
    // Sample both directors during the load.
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        let (na, nb) = (a.counter("sessions"), b.counter("sessions"));
        samples.push((t0.elapsed().as_secs_f64(), na, nb));
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = flood.wait_with_output().expect("flood client");
    let sent: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let load_end = Instant::now();
    // After the load: the standby catches up (bounded: 10 s).
    let active = a.counter("sessions");
    let mut standby = b.counter("sessions");
    let mut lag = None;
    while load_end.elapsed() < Duration::from_secs(10) {
        standby = b.counter("sessions");
        if standby >= active {
            lag = Some(load_end.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = load_end.elapsed();
    for (t, na, nb) in &samples {
        eprintln!("t={t:5.1}s active={na:6} standby={nb:6}");
    }
    let loss = active.saturating_sub(standby);
    eprintln!(
        "sync under load: {sent} UDP flows in {secs} s ({} flows/s offered); active {active} sessions, standby {standby}; lag after the load: {}; loss {loss} ({:.2}%)",
        sent / secs.max(1),
        match lag {
            Some(l) => format!("{:.2} s", l.as_secs_f64()),
            None => format!("> {:.1} s (not caught up)", after.as_secs_f64()),
        },
        100.0 * loss as f64 / active.max(1) as f64
    );
    eprintln!("active:\n{}", a.rvsadm(&["--dataplane"]));
    eprintln!("standby:\n{}", b.rvsadm(&["--dataplane"]));
    assert!(sent >= rate * secs / 2, "the client sent only {sent} flows");
    assert!(
        active >= sent * 9 / 10,
        "the active director holds {active} of {sent} flows"
    );
    assert!(
        standby * 100 >= active * 95,
        "the standby holds {standby} of the active director's {active} sessions"
    );
    // During the load the standby followed (not only at the end).
    let mid = samples
        .iter()
        .filter(|(_, na, _)| *na > 1000)
        .all(|(_, na, nb)| nb * 100 >= na * 50);
    assert!(mid, "the standby lagged during the load: {samples:?}");
}
