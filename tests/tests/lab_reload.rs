//! Reloading rvsd's configuration under load (FULLNAT, two workers): a long download and
//! a stream of curls run while the file gains a real server, quiesces another (weight 0)
//! and then drops it, changes a weight and adds a LIP. No curl fails, the download
//! arrives byte-exact although its own real server is quiesced under it, and new
//! connections follow the new table within a second of the reload. A file that needs a
//! restart, or that is not valid, is refused by name and changes nothing.
//!
//! A server removed from the file is removed as `ipvsadm -d` removes it: its established
//! connections stop (IPVS drops their packets, or ends them with `expire_nodest_conn`),
//! so operators quiesce first (weight 0) and remove once ActiveConn is 0, as here.
//!
//! Topology: the two-port lab (client 10.10.0.2 — director, VIP 10.10.0.100 — rs1
//! 10.20.0.11, rs2 10.20.0.12) plus rs3 10.20.0.13 on the servers' segment. Service
//! VIP:80 serves a 4 MB file (python's http.server, curl at 1 MB/s), service VIP:8080
//! answers `rsN client=LIP:lport` (port 8081 on the servers).
//!
//! Needs root; skips (with a message) where namespaces cannot be made.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rvs_tests::topo::{two_port, two_port_director_with, VIP2};
use rvs_tests::{blob_dir, can_build_labs, sha256, Director, Lab};

const BLOB_LEN: u32 = 4 * 1024 * 1024;
const LIP1: &str = "10.20.0.200";
const LIP2: &str = "10.20.0.201";

/// The services part of the configuration: `blob` and `names` are (server, weight) lists
/// for VIP:80 and VIP:8080, `lips` the LIP pool of VIP:8080.
fn services(blob: &[(&str, u32)], names: &[(&str, u32)], lips: &[&str]) -> String {
    let reals = |v: &[(&str, u32)], port: u16| {
        v.iter()
            .map(|(a, w)| {
                format!("  {{ address = \"{a}:{port}\", forward = \"fullnat\", weight = {w} }},\n")
            })
            .collect::<String>()
    };
    let lips: Vec<String> = lips.iter().map(|l| format!("\"{l}\"")).collect();
    format!(
        "# services\n\
         [[services]]\nproto = \"tcp\"\nvip = \"{VIP2}:80\"\nscheduler = \"wrr\"\n\
         laddrs = [\"{LIP1}\"]\nreal = [\n{}]\n\n\
         [[services]]\nproto = \"tcp\"\nvip = \"{VIP2}:8080\"\nscheduler = \"wrr\"\n\
         laddrs = [{}]\nreal = [\n{}]\n",
        reals(blob, 80),
        lips.join(", "),
        reals(names, 8081)
    )
}

/// rvsd's configuration file up to its services (the `[eal]`, `[control]`, ports and
/// workers the lab wrote).
fn head(d: &Director) -> String {
    let text = std::fs::read_to_string(d.dir().join("rvsd.toml")).expect("config");
    text.split("# services").next().expect("head").to_string()
}

/// Rewrites rvsd's configuration file: `head`, then `extra`, then `services`.
fn rewrite(d: &Director, head: &str, extra: &str, services: &str) {
    std::fs::write(
        d.dir().join("rvsd.toml"),
        format!("{head}{extra}{services}"),
    )
    .expect("config");
}

/// Sets the flag when dropped: the curl stream stops even when an assertion fails.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `n` sequential curls of VIP:8080: the answering server of each (`rs1`, …) and the
/// LIPs they saw; panics if one fails.
fn names(lab: &Lab, n: usize) -> (Vec<String>, Vec<String>) {
    let mut who = Vec::new();
    let mut lips = Vec::new();
    for _ in 0..n {
        let body = lab
            .curl("c", &format!("http://{VIP2}:8080/"))
            .expect("a curl of VIP:8080 failed");
        let mut f = body.split_whitespace();
        who.push(f.next().unwrap_or_default().to_string());
        let client = f.next().unwrap_or_default();
        let lip = client
            .trim_start_matches("client=")
            .split(':')
            .next()
            .unwrap_or_default();
        lips.push(lip.to_string());
    }
    (who, lips)
}

fn count(v: &[String], s: &str) -> usize {
    v.iter().filter(|x| *x == s).count()
}

#[test]
fn a_reload_under_load_changes_the_table_and_drops_no_flow() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let (www, want) = blob_dir("rrld", BLOB_LEN);
    std::fs::write(www.join("small.txt"), "small\n").expect("small");
    let mut lab = two_port("rrld", false, 8081, 8081);
    lab.add_ns("r3");
    lab.veth("r3", "r0", "sw", "r3p");
    lab.exec("sw", &["ip", "link", "set", "r3p", "master", "br0"]);
    lab.addr("r3", "r0", "10.20.0.13/24");
    lab.name_server("r3", "10.20.0.13".parse().unwrap(), 8081, "rs3");
    // A small receive window, so that --limit-rate paces the download on the wire.
    lab.exec(
        "c",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 131072"],
    );
    for ip in ["10.20.0.11", "10.20.0.12"] {
        let ns = if ip.ends_with("11") { "r1" } else { "r2" };
        lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
    }
    let rs = |n: u8| format!("10.20.0.1{n}");
    let (r1, r2, r3) = (rs(1), rs(2), rs(3));
    let d = two_port_director_with(
        &lab,
        "rrld",
        2,
        &services(&[(&r1, 1), (&r2, 1)], &[(&r1, 1), (&r2, 1)], &[LIP1]),
    );
    let (before, _) = names(&lab, 4);
    assert_eq!(
        (count(&before, "rs1"), count(&before, "rs2")),
        (2, 2),
        "{before:?}"
    );

    // The long download, and which real server carries it.
    let out = std::env::temp_dir().join(format!("rrld-blob-{}.out", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let curl = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            "curl",
            "-s",
            "--max-time",
            "30",
            "--limit-rate",
            "600K",
            "-o",
        ])
        .arg(&out)
        .arg(format!("http://{VIP2}/blob.bin"))
        .spawn()
        .expect("curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 512 * 1024 {
        assert!(Instant::now() < deadline, "the download did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let conns = d.rvsadm(&["-Lnc"]);
    let carrier = [&r1, &r2]
        .into_iter()
        .find(|r| {
            conns
                .lines()
                .any(|l| l.contains(&format!("{VIP2}:80 ")) && l.contains(&format!("{r}:80")))
        })
        .unwrap_or_else(|| panic!("no session of the download: {conns}"))
        .clone();
    let other = if carrier == r1 {
        r2.clone()
    } else {
        r1.clone()
    };

    let stop = AtomicBool::new(false);
    let (done, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // A stream of short connections to VIP:80 for the whole test (at most a minute).
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match lab.curl("c", &format!("http://{VIP2}/small.txt")) {
                    Some(b) if b == "small\n" => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });

        // Refused reloads change nothing: a field that needs a restart, a syntax error.
        let head = head(&d);
        let saved = d.rvsadm(&["-Sn"]);
        let bad = services(&[(&r1, 5)], &[(&r1, 5)], &[LIP1]);
        rewrite(&d, &head, "[sessions]\ncapacity_per_core = 70000\n\n", &bad);
        let (code, o, e) = d.rvsadm_status(&["--reload"]);
        assert_eq!(code, 1, "{o}{e}");
        assert!(
            e.contains("sessions.capacity_per_core changes only with a restart"),
            "{e}"
        );
        rewrite(&d, &head, "[[services]]\nproto = \n", &bad);
        let (code, _, e) = d.rvsadm_status(&["--reload"]);
        assert_eq!(code, 1, "{e}");
        assert!(e.contains("rvsd.toml: line "), "{e}");
        assert_eq!(
            d.rvsadm(&["-Sn"]),
            saved,
            "a refused reload changed the table"
        );

        // Reload 1 (rvsadm --reload): the download's server and rs2 quiesced, rs3 added,
        // rs1's weight doubled, a second LIP.
        rewrite(
            &d,
            &head,
            "",
            &services(
                &[(&carrier, 0), (&other, 1)],
                &[(&r1, 2), (&r2, 0), (&r3, 1)],
                &[LIP1, LIP2],
            ),
        );
        let report = d.rvsadm(&["--reload"]);
        for line in [
            format!("edit server TCP  {VIP2}:80 -> {carrier}:80 -b -w 0 (was -b -w 1)"),
            format!("edit server TCP  {VIP2}:8080 -> {r1}:8081 -b -w 2 (was -b -w 1)"),
            format!("edit server TCP  {VIP2}:8080 -> {r2}:8081 -b -w 0 (was -b -w 1)"),
            format!("add server TCP  {VIP2}:8080 -> {r3}:8081 -b -w 1"),
            format!("add laddr TCP  {VIP2}:8080 {LIP2}"),
        ] {
            assert!(report.contains(&line), "{line} missing from:\n{report}");
        }
        std::thread::sleep(Duration::from_secs(1));
        let (who, lips) = names(&lab, 30);
        assert_eq!(
            (count(&who, "rs1"), count(&who, "rs2"), count(&who, "rs3")),
            (20, 0, 10),
            "new connections follow weights 2:0:1: {who:?}"
        );
        assert!(
            lips.iter().any(|l| l == LIP2),
            "the new LIP is used: {lips:?}"
        );
        assert!(lips.iter().all(|l| l == LIP1 || l == LIP2), "{lips:?}");

        // Reload 2 (SIGHUP): the quiesced servers are removed.
        rewrite(
            &d,
            &head,
            "",
            &services(
                &[(&carrier, 0), (&other, 1)],
                &[(&r1, 2), (&r3, 1)],
                &[LIP1, LIP2],
            ),
        );
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &d.pid().to_string()])
            .status()
            .expect("kill");
        assert!(hup.success());
        let want_table = format!("-a -t {VIP2}:8080 -r {r2}:8081");
        let deadline = Instant::now() + Duration::from_secs(1);
        while d.rvsadm(&["-Sn"]).contains(&want_table) {
            assert!(
                Instant::now() < deadline,
                "SIGHUP did not remove the server within a second:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (who, _) = names(&lab, 6);
        assert_eq!((count(&who, "rs1"), count(&who, "rs3")), (4, 2), "{who:?}");
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });

    let mut curl = curl;
    let deadline = Instant::now() + Duration::from_secs(35);
    let ok = loop {
        if let Some(st) = curl.try_wait().expect("curl") {
            break st.success();
        }
        if Instant::now() > deadline {
            let _ = curl.kill();
            let _ = curl.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let got = std::fs::metadata(&out).map_or(0, |m| m.len());
    assert!(
        ok,
        "the download did not complete ({got} of {BLOB_LEN} bytes)"
    );
    assert_eq!(sha256(&out), want, "the download arrived intact");
    let (n_ok, n_failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(n_ok >= 10, "only {n_ok} curls ran during the reloads");
    assert_eq!(
        n_failed,
        0,
        "{n_failed} of {} curls failed",
        n_ok + n_failed
    );
    let log = d.log();
    assert!(
        log.contains(&format!(
            "reload: remove server TCP  {VIP2}:8080 -> {r2}:8081"
        )),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in the log file");
    let _ = std::fs::remove_file(&out);
    drop(d);
    drop(lab);
    let _ = std::fs::remove_dir_all(&www);
}
