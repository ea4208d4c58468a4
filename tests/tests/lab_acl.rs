//! ACLs on a running director: a SYN flood from a denied prefix is dropped and counted
//! (`acl-deny`) and opens no session while an allowed client keeps getting answers; an
//! online change (`rvsadm --del-blklst`) lets the next SYNs of that prefix through, and
//! adding the deny back stops new connections while one established before (a
//! rate-limited download) runs to its end, byte-exact.
//!
//! Topology (two-port lab, see `tests/src/lib.rs`): client 10.10.0.2 (allowed) and
//! 10.10.0.130 (in the denied 10.10.0.128/25) on one interface — director (VIP
//! 10.10.0.100, NAT, two workers) — rs1 10.20.0.11 and rs2 10.20.0.12 serving a blob on
//! port 80. The flood is `hping3 -S` from the denied address: 20,000 SYNs of new flows
//! (a new source port each), one every 50 µs.
//!
//! Needs root and hping3 (`scripts/setup` installs it); skips (with a message) where
//! namespaces cannot be made.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_tests::topo::{two_port, two_port_director, VIP2};
use rvs_tests::{blob_dir, can_build_labs, sha256, Director, Lab};

const ALLOWED: &str = "10.10.0.2";
const DENIED: &str = "10.10.0.130";
const DENIED_PREFIX: &str = "10.10.0.128/25";
const FLOOD: u64 = 20_000;

/// A curl of `path` on the VIP from source address `src` (bounded by `secs`); the body,
/// or `None` on failure.
fn curl_from(lab: &Lab, src: &str, path: &str, secs: u32) -> Option<Vec<u8>> {
    let url = format!("http://{VIP2}{path}");
    let t = secs.to_string();
    let out = lab.try_exec(
        "c",
        &["curl", "-s", "--max-time", &t, "--interface", src, &url],
    );
    out.status.success().then_some(out.stdout)
}

/// The `imissed` of the director's client-side port (frames its NIC dropped before the
/// workers saw them).
fn port0_missed(d: &Director) -> u64 {
    d.rvsadm(&["--dataplane"])
        .lines()
        .find_map(|l| l.strip_prefix("port 0 "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("imissed="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The sessions `rvsadm -Lnc` lists from client address `src`.
fn sessions_from(d: &Director, src: &str) -> usize {
    let from = format!(" {src}:");
    d.rvsadm(&["-Lnc"])
        .lines()
        .filter(|l| l.contains(&from))
        .count()
}

#[test]
fn a_denied_prefix_is_dropped_at_the_floods_rate_and_an_online_change_takes_effect() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let hping = Command::new("hping3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(hping, "hping3 is missing: scripts/setup installs it");
    let t0 = Instant::now();
    let (www, want) = blob_dir("racl", 3 * 1024 * 1024);
    let mut lab = two_port("racl", true, 8081, 8081);
    for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
    }
    lab.addr("c", "c0", &format!("{DENIED}/24"));
    let d = two_port_director(&lab, "racl", 2);
    let svc = format!("{VIP2}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:80", "-m"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-m"]);
    for src in [ALLOWED, DENIED] {
        assert!(
            curl_from(&lab, src, "/", 5).is_some(),
            "{src} gets an answer before any ACL"
        );
    }

    // The deny, global (no service given).
    d.rvsadm(&["--add-blklst", "-k", DENIED_PREFIX]);
    assert!(d.rvsadm(&["-B"]).contains(DENIED_PREFIX));
    assert!(
        curl_from(&lab, DENIED, "/", 2).is_none(),
        "the denied address gets no answer"
    );
    let deny0 = d.drops("acl-deny");
    assert!(deny0 > 0, "its SYNs were counted");
    let sessions_before = sessions_from(&d, DENIED);

    // The flood, while the allowed client curls in a loop.
    let missed0 = port0_missed(&d);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let ns = lab.ns("c");
    let curls = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns, "curl", "-s", "--max-time", "5"])
                    .args(["--interface", ALLOWED, &format!("http://{VIP2}/")])
                    .output()
                    .expect("curl");
                if out.status.success() {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let flood_start = Instant::now();
    let count = FLOOD.to_string();
    let flood = lab.try_exec(
        "c",
        &[
            "timeout", "30", "hping3", "-q", "-S", "-p", "80", "-a", DENIED, "-c", &count, "-i",
            "u50", VIP2,
        ],
    );
    let flood_secs = flood_start.elapsed().as_secs_f64();
    // Let the last SYNs reach the workers (on a loaded machine they may read them well
    // after hping3 has sent them: wait, bounded, until the counts account for the whole
    // flood) and the curls go on a moment.
    rvs_tests::failover::poll_until(10, || {
        d.drops("acl-deny") - deny0 + port0_missed(&d) - missed0 >= FLOOD
    });
    stop.store(true, Ordering::Relaxed);
    curls.join().expect("curl loop");
    let hping_said = String::from_utf8_lossy(&flood.stderr).into_owned()
        + &String::from_utf8_lossy(&flood.stdout);
    let denied = d.drops("acl-deny") - deny0;
    let missed = port0_missed(&d) - missed0;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "flood: {FLOOD} SYNs in {flood_secs:.2} s; acl-deny +{denied}, port 0 imissed +{missed}; \
         allowed client: {ok} curls answered, {failed} failed\n{hping_said}"
    );
    assert!(
        denied <= FLOOD && denied + missed >= FLOOD,
        "every SYN of the flood the NIC passed on was dropped as acl-deny: {denied} + {missed} missed of {FLOOD}\n{hping_said}"
    );
    assert!(
        denied >= FLOOD * 9 / 10,
        "most of the flood reached the workers: {denied} of {FLOOD}"
    );
    assert!(ok >= 3, "the allowed client kept being answered: {ok}");
    assert_eq!(failed, 0, "no curl of the allowed client failed");
    assert_eq!(
        sessions_from(&d, DENIED),
        sessions_before,
        "no session for the denied address"
    );

    // An online change: the deny removed, the next SYNs get through.
    d.rvsadm(&["--del-blklst", "-k", DENIED_PREFIX]);
    let body = curl_from(&lab, DENIED, "/", 5);
    assert!(
        body.is_some(),
        "the address is served once the deny is removed"
    );

    // A download from it in flight (3 MB at 1 MB/s) while the deny comes back: the
    // download goes on to the last byte, a new connection is refused.
    let out_file = std::env::temp_dir().join(format!("racl-{}-blob.out", std::process::id()));
    let mut big = Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args(["curl", "-s", "--max-time", "30", "--limit-rate", "1M"])
        .args(["--interface", DENIED, "-o"])
        .arg(&out_file)
        .arg(format!("http://{VIP2}/blob.bin"))
        .spawn()
        .expect("download");
    std::thread::sleep(Duration::from_millis(800));
    let deny1 = d.drops("acl-deny");
    d.rvsadm(&["-U", "-k", DENIED_PREFIX]);
    assert!(
        curl_from(&lab, DENIED, "/", 2).is_none(),
        "a new connection of the denied address is refused again"
    );
    assert!(d.drops("acl-deny") > deny1, "and counted");
    assert!(
        curl_from(&lab, ALLOWED, "/", 5).is_some(),
        "the allowed client is still served"
    );
    let status = big.wait().expect("download");
    let got = sha256(&out_file);
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_dir_all(&www);
    assert!(status.success(), "the download in flight completed");
    assert_eq!(got, want, "byte-exact");
    eprintln!("lab_acl: {:.1} s", t0.elapsed().as_secs_f64());
}
