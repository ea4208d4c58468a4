//! Hostile and odd frames at the director's client port while a long transfer runs
//! through the VIP: rvsd must stay up, the transfer must arrive intact, every kind of
//! frame must be counted under its reason, nothing but the legitimate flows may reach
//! the real servers, no dropped packet may leave a session behind, and the mbufs in use
//! must come back to their idle level.
//!
//! The frames are built with scapy (`tests/scripts/hostile.py`, Debian's
//! `python3-scapy`) in the client namespace; the real servers capture what reaches them
//! (`tests/scripts/capture.py`). Topology: the two-port NAT lab of
//! `rvs_tests::topo::two_port`. Needs root; skipped where namespaces cannot be made.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::topo::{two_port, two_port_director, VIP2};
use rvs_tests::{blob_dir, can_build_labs, sha256, Director, Lab};

/// Debian's python, which has scapy (the PATH's may be another).
const PYTHON: &str = "/usr/bin/python3";
const CIP: &str = "10.10.0.2";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// `mbufs_in_use` of `rvsadm --dataplane`.
fn mbufs_in_use(d: &Director) -> u64 {
    d.rvsadm(&["--dataplane"])
        .lines()
        .find_map(|l| l.strip_prefix("mbufs_in_use="))
        .and_then(|v| v.trim().parse().ok())
        .expect("mbufs_in_use")
}

/// A process in a namespace, stdout to `out`.
fn spawn_in(lab: &Lab, ns: &str, args: &[&str], out: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns(ns)])
        .args(args)
        .stdout(std::fs::File::create(out).expect("capture file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// What each kind of frame must add to rvs's counters: (drop reason or counter, at least).
fn expected(kind: &str, n: u64) -> Vec<(&'static str, u64)> {
    match kind {
        "martian" => vec![("drop martian", n)],
        "ttl" => vec![
            ("drop rewrite:ttl_expired", n),
            ("counter time_exceeded_sent", n),
        ],
        "arp-conflict" => vec![("drop arp-conflict", n)],
        "bad-checksum" => vec![("drop malformed:bad_checksum", n)],
        "bad-ihl" => vec![("drop malformed:bad_ihl", n)],
        // A total length beyond the frame: the frame is short of its packet.
        "bad-total-len" => vec![("drop malformed:truncated", n)],
        "bad-udp-len" => vec![("drop malformed:bad_udp_len", n)],
        "udp-len-beyond" => vec![("drop malformed:truncated", n)],
        "bad-data-offset" => vec![("drop malformed:bad_data_offset", n)],
        "odd-flags" | "ip-options" => vec![("drop no-session", n)],
        "icmp-garbage" => vec![("counter dropped", n)],
        // The QinQ frame carries a tag (its outer one, which the kernel takes into the
        // packet's metadata and DPDK's af_packet puts back as 802.1Q) on a port without
        // `vlan`: `drop vlan`. The unknown EtherType: `drop unsupported`.
        "other-ethertype" => vec![("drop vlan", 1), ("drop unsupported", n - 1)],
        "arp-odd" => vec![
            ("drop malformed:bad_arp", 1),
            ("drop malformed:truncated", 1),
        ],
        "runts" => vec![("drop malformed:truncated", n)],
        // Larger than the port's receive buffers: cut short, dropped as malformed.
        "jumbo" => vec![("counter dropped", n)],
        // Random bytes: some happen to be ARP the director consumes without a count.
        "random" => vec![("counter dropped", n * 9 / 10)],
        other => panic!("unknown kind {other}"),
    }
}

/// Every drop reason and counter of `rvsadm --dataplane`, summed over the workers.
fn snapshot(d: &Director) -> std::collections::HashMap<String, u64> {
    let mut m = std::collections::HashMap::new();
    for line in d.rvsadm(&["--dataplane"]).lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("drop ") {
            if let Some((reason, n)) = rest.rsplit_once(' ') {
                *m.entry(format!("drop {reason}")).or_insert(0) += n.parse::<u64>().unwrap_or(0);
            }
        } else if line.starts_with("worker ") {
            for (k, v) in line.split_whitespace().filter_map(|kv| kv.split_once('=')) {
                *m.entry(format!("counter {k}")).or_insert(0) += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    m
}

#[test]
fn hostile_frames_hurt_no_flow() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and network namespaces");
        return;
    }
    let scapy = Command::new(PYTHON)
        .args(["-c", "import scapy"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        scapy,
        "scapy is missing: scripts/setup installs python3-scapy"
    );

    let (www, want) = blob_dir("rhs", 3 * 1024 * 1024);

    let mut lab = two_port("rhs", true, 8081, 8081);
    for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
    }
    // Jumbo frames can reach the director's port.
    lab.exec("c", &["ip", "link", "set", "c0", "mtu", "9000"]);
    lab.exec("d", &["ip", "link", "set", "d0", "mtu", "9000"]);
    let d = two_port_director(&lab, "rhs", 2);
    let svc = format!("{VIP2}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:80", "-m"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-m"]);
    for i in 0..4 {
        assert!(
            lab.curl("c", &format!("http://{VIP2}/")).is_some(),
            "warm-up curl #{i}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle_mbufs = mbufs_in_use(&d);

    // The real servers watch what reaches them.
    let tmp = std::env::temp_dir();
    let caps: Vec<(PathBuf, Child)> = ["r1", "r2"]
        .iter()
        .map(|ns| {
            let out = tmp.join(format!("rhs-{}-{ns}.cap", std::process::id()));
            let cap = script("capture.py");
            let child = spawn_in(
                &lab,
                ns,
                &[PYTHON, cap.to_str().expect("path"), "r0", "60"],
                &out,
            );
            (out, child)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !caps
        .iter()
        .all(|(p, _)| std::fs::read_to_string(p).is_ok_and(|s| s.starts_with("ready")))
    {
        assert!(Instant::now() < deadline, "the captures did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The long transfer (about 6 s).
    let out_file = tmp.join(format!("rhs-{}-blob.out", std::process::id()));
    let mut big = Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            "curl",
            "-s",
            "--max-time",
            "60",
            "--limit-rate",
            "500K",
            "-o",
        ])
        .arg(&out_file)
        .arg(format!("http://{VIP2}/blob.bin"))
        .spawn()
        .expect("long transfer");

    // The hostile frames, kind by kind, the counters read in between.
    // The director's MAC on the client side, as the client learned it for its gateway.
    let neigh = rvs_tests::failover::neigh(&lab, "c", "10.10.0.1");
    let dmac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| rvs_tests::failover::mac(&lab, "d", "d0"));
    let hostile = script("hostile.py");
    let mut h = Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            PYTHON,
            hostile.to_str().expect("path"),
            "c0",
            &dmac,
            CIP,
            VIP2,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hostile.py");
    let mut to_h = h.stdin.take().expect("stdin");
    let mut from_h = BufReader::new(h.stdout.take().expect("stdout"));
    let mut kinds = 0;
    let mut wrong: Vec<String> = Vec::new();
    loop {
        let before = snapshot(&d);
        writeln!(to_h).expect("go");
        let mut line = String::new();
        if from_h.read_line(&mut line).expect("read") == 0 {
            panic!("hostile.py ended early");
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["sent", kind, n] = words.as_slice() else {
            panic!("hostile.py said {line:?}");
        };
        let n: u64 = n.parse().expect("count");
        // Processed within a few milliseconds, but on a loaded machine the worker may
        // read them later: wait (bounded) until every expected count has been reached,
        // then compare (the counters are read between bursts).
        let grown = |m: &std::collections::HashMap<String, u64>, what: &str| {
            m.get(what).copied().unwrap_or(0) - before.get(what).copied().unwrap_or(0)
        };
        rvs_tests::failover::poll_until(5, || {
            let now = snapshot(&d);
            expected(kind, n)
                .iter()
                .all(|(what, least)| grown(&now, what) >= *least)
        });
        let after = snapshot(&d);
        for (what, least) in expected(kind, n) {
            let delta = grown(&after, what);
            // The client's kernel speaks IPv6 (router and neighbour solicitations), which
            // rvs counts as unsupported meanwhile: those counts may only grow more.
            let right = if what == "counter dropped" || what == "drop unsupported" {
                delta >= least
            } else {
                delta == least
            };
            if !right {
                let moved: Vec<String> = after
                    .iter()
                    .filter(|(k, v)| k.starts_with("drop") && before.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k} +{}", v - before.get(k).copied().unwrap_or(0)))
                    .collect();
                wrong.push(format!(
                    "{kind}: {what} +{delta}, want {least} (moved: {moved:?})"
                ));
            }
        }
        kinds += 1;
        if *kind == "random" {
            break;
        }
    }
    assert!(
        wrong.is_empty(),
        "counted under other reasons:\n{}",
        wrong.join("\n")
    );
    writeln!(to_h).expect("end");
    let mut line = String::new();
    from_h.read_line(&mut line).expect("read");
    assert_eq!(
        line.trim(),
        "time-exceeded 2",
        "the client got time-exceeded for TTL 0 and 1"
    );
    let _ = h.wait();
    assert_eq!(kinds, 17, "every kind of frame was sent");

    let st = big.wait().expect("curl");
    assert!(st.success(), "the long transfer failed ({st})");
    assert_eq!(sha256(&out_file), want, "the body arrived intact");
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_dir_all(&www);

    // rvsd is alive and answers.
    assert!(d.rvsadm(&["-Ln"]).contains("TCP  10.10.0.100:80 rr"));
    // No session of a hostile packet: every client is the lab's client on an ordinary
    // port (hostile segments came from ports 61000-61999 or other addresses).
    let conns = d.rvsadm(&["-Lnc"]);
    for row in conns
        .lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
    {
        let client = row.split_whitespace().nth(3).expect("client column");
        let (addr, port) = client.rsplit_once(':').expect("addr:port");
        let port: u16 = port.parse().expect("port");
        assert!(
            addr == CIP && port < 61000,
            "a hostile packet's session: {row}"
        );
    }
    // Nothing but the legitimate flows reached the real servers.
    let mut seen = 0;
    for (path, mut child) in caps {
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [src, sport, dst, dport] = f.as_slice() else {
                continue;
            };
            let (client, cport) = if src.starts_with("10.20.0.") {
                (dst, dport)
            } else {
                (src, sport)
            };
            let cport: u16 = cport.parse().expect("port");
            assert!(
                *client == CIP && cport < 61000,
                "a packet that is not the legitimate flows' reached {}: {line}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(
        seen > 100,
        "the captures saw the legitimate flows ({seen} packets)"
    );
    // Every mbuf back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = mbufs_in_use(&d);
        if now <= idle_mbufs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mbufs in use: {now}, idle level {idle_mbufs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(d);
    drop(lab);
}
