//! `ipvsadm -C` then `ipvsadm -R` of the saved table while a transfer runs, in the
//! two-port NAT lab (client 10.10.0.2 — director — rs1 10.20.0.11, rs2 10.20.0.12, real
//! kernel TCP peers, curl against python's http.server).
//!
//! IPVS keeps a removed real server in its trash while connections reference it, drops
//! their packets meanwhile (`expire_nodest_conn` = 0), and takes the server back when the
//! same one is added again to the same service: the connections resume. With
//! `expire_nodest_conn` = 1 the connections of a removed server end instead.
//!
//! Needs root; each test skips (with a message) where namespaces cannot be made.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rvs_tests::topo::{two_port, two_port_director_with, VIP2};
use rvs_tests::{blob_dir, can_build_labs, sha256, Director, Lab};

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

/// Size of the transferred file: 4 MB at 1 MB/s, about four seconds.
const BLOB_LEN: u32 = 4 * 1024 * 1024;

/// The two-port NAT lab with both real servers serving `blob.bin` on port 80, and rvsd
/// (two workers, `extra` TOML appended) with `-A -t VIP:80 -s rr`, both servers `-m`.
/// Returns the lab, the director, the web root and the blob's sha256.
fn nat_lab(prefix: &str, extra: &str) -> (Lab, Director, PathBuf, String) {
    let (www, want) = blob_dir(prefix, BLOB_LEN);
    let mut lab = two_port(prefix, true, 8081, 8081);
    // A small receive window: curl's --limit-rate then paces the transfer on the wire
    // too (with the default window the whole body can sit in the client's socket
    // buffer within a second, and a table change would meet no transfer at all).
    lab.exec(
        "c",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 131072"],
    );
    for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
    }
    let d = two_port_director_with(&lab, prefix, 2, extra);
    let svc = format!("{VIP2}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:80", "-m"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-m"]);
    (lab, d, www, want)
}

/// Starts curl of the blob through the VIP at 1 MB/s (bounded by `max_secs`) and waits
/// (bounded) until the first megabyte has arrived.
fn start_transfer(lab: &Lab, out: &Path, max_secs: u32) -> Child {
    let _ = std::fs::remove_file(out);
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            "curl",
            "-s",
            "--max-time",
            &max_secs.to_string(),
            "--limit-rate",
            "1M",
            "-o",
        ])
        .arg(out)
        .arg(format!("http://{VIP2}/blob.bin"))
        .spawn()
        .expect("curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(out).map_or(0, |m| m.len()) < 1024 * 1024 {
        assert!(Instant::now() < deadline, "the transfer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Waits for curl, at most `secs` seconds (curl's own `--max-time` ends it before).
fn finish(mut curl: Child, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = curl.try_wait().expect("curl") {
            return st.success();
        }
        if Instant::now() > deadline {
            let _ = curl.kill();
            let _ = curl.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clear_then_restore_of_the_same_table_resumes_established_connections() {
    if skip() {
        return;
    }
    let (lab, d, www, want) = nat_lab("rrsr", "");
    let out = std::env::temp_dir().join(format!("rrsr-blob-{}.out", std::process::id()));
    let curl = start_transfer(&lab, &out, 25);

    let saved = d.rvsadm(&["-Sn"]);
    assert!(
        saved.contains("-a -t 10.10.0.100:80 -r 10.20.0.11:80 -m -w 1"),
        "{saved}"
    );
    d.rvsadm(&["-C"]);
    assert!(
        !d.rvsadm(&["-Ln"]).contains("TCP"),
        "the table is empty after -C"
    );
    // While the table is empty the client's segments are dropped, as IPVS does (as
    // dest-unavailable by the worker holding the session; a worker that would hand one
    // over no longer knows the VIP and drops it as not-for-us).
    let dropped = d.counter("dropped");
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.counter("dropped") == dropped {
        assert!(
            Instant::now() < deadline,
            "no packet was dropped while the table was empty:\n{}",
            d.rvsadm(&["--dataplane"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, o, e) = d.rvsadm_input(&["-R"], &saved);
    assert_eq!(code, 0, "rvsadm -R: {o}{e}");
    assert_eq!(d.rvsadm(&["-Sn"]), saved, "-R restored the saved table");

    let ok = finish(curl, 30);
    let got = std::fs::metadata(&out).map_or(0, |m| m.len());
    assert!(
        ok,
        "the transfer did not complete after -R ({got} of {BLOB_LEN} bytes):\n{}",
        d.rvsadm(&["--dataplane"])
    );
    assert_eq!(sha256(&out), want, "the body arrived intact");
    let _ = std::fs::remove_file(&out);
    drop(d);
    drop(lab);
    let _ = std::fs::remove_dir_all(&www);
}

#[test]
fn expire_nodest_conn_in_the_config_ends_a_removed_servers_connections() {
    if skip() {
        return;
    }
    let (lab, d, www, _) = nat_lab("rrse", "[sessions]\nexpire_nodest_conn = 1\n");
    let out = std::env::temp_dir().join(format!("rrse-blob-{}.out", std::process::id()));
    let curl = start_transfer(&lab, &out, 12);
    let open_sessions = |d: &Director| {
        d.rvsadm(&["-Lnc"])
            .lines()
            // The transfer's session: ESTABLISHED, or FIN_WAIT once the server has
            // written the whole body into its socket and closed (the client still reads).
            .filter(|l| {
                (l.contains("ESTABLISHED") || l.contains("FIN_WAIT")) && l.contains("10.10.0.2:")
            })
            .count()
    };
    assert_eq!(open_sessions(&d), 1, "{}", d.rvsadm(&["-Lnc"]));
    let saved = d.rvsadm(&["-Sn"]);
    d.rvsadm(&["-C"]);
    // The removed servers' sessions are expired at once, not kept for a re-add.
    let deadline = Instant::now() + Duration::from_secs(3);
    while open_sessions(&d) != 0 {
        assert!(
            Instant::now() < deadline,
            "the session outlived its server: {}",
            d.rvsadm(&["-Lnc"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, o, e) = d.rvsadm_input(&["-R"], &saved);
    assert_eq!(code, 0, "rvsadm -R: {o}{e}");
    assert!(
        !finish(curl, 20),
        "the connection ended with its server; it cannot complete after -R"
    );
    let got = std::fs::metadata(&out).map_or(0, |m| m.len());
    assert!(u64::from(BLOB_LEN) > got, "{got} bytes arrived");
    let _ = std::fs::remove_file(&out);
    drop(d);
    drop(lab);
    let _ = std::fs::remove_dir_all(&www);
}
