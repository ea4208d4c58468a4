//! FULLNAT across directors: a survivor takes over a dead director's LIP. Three rvsd
//! directors (own DPDK `--file-prefix`, own namespace) in one sync group, one FULLNAT
//! service (VIP 10.10.0.100:80 → 10.20.0.11:8000, `mh`), each with its own LIP (da
//! 10.20.0.201, db .202, dc .203). A client downloads 8 MB (the server paces it at about
//! 640 KB/s) through da; its session is synced to db and dc (with da's LIP and port). da
//! is killed hard in the middle of the transfer.
//!
//! What a router doing ECMP would do (withdraw da's routes, send the client's packets to
//! another director) is simulated here: the client's neighbour entry for the VIP points at
//! da's port, then at db's (BGP announcements are another part of rvs). What rvs does
//! itself is checked: db and dc see da down (3 s without a message) and exactly one of
//! them (the rendezvous choice) takes da's LIP: `rvsadm --list-group` and the metrics
//! show it held there and nowhere else, the real server's neighbour entry for the LIP
//! moves to that director's MAC (gratuitous ARP, ARP replies), and the download ends
//! byte-exact (SHA-256 of the 8 MB) with no reset. When da comes back, the LIP is
//! released within seconds. The time from the kill to the first byte received after it
//! and to the LIP's takeover is printed.
//!
//! Topology (prefix `rlt`):
//! ```text
//!  cl c0 10.10.0.21 ── sw:brc ── da/db/dc d0 [dpdk0 10.10.0.3/4/5, VIP 10.10.0.100]
//!  r1 r0 10.20.0.11 ── sw:brs ── da/db/dc d1 [dpdk1 10.20.0.3/4/5, LIP 10.20.0.201/2/3]
//!  da/db/dc s0 10.99.0.1/2/3 ── sw:bsync                           (kernel: sync)
//! ```
//! Needs root; skipped where network namespaces cannot be made.

use std::path::Path;
use std::time::{Duration, Instant};

use rvs_tests::failover::{mac, neigh, wait_for};
use rvs_tests::{can_build_labs, Director, Lab};

const VIP: &str = "10.10.0.100";
const SERVER: &str = "10.20.0.11";
/// The directors' namespaces, sync addresses and LIPs, in order.
const DIRS: [&str; 3] = ["da", "db", "dc"];
const SYNC: [&str; 3] = ["10.99.0.1", "10.99.0.2", "10.99.0.3"];
const LIPS: [&str; 3] = ["10.20.0.201", "10.20.0.202", "10.20.0.203"];
/// Each director's metrics endpoint, on its namespace's loopback.
const METRICS: &str = "127.0.0.1:9583";
/// The download's length.
const LEN: u32 = 8 << 20;

/// The real server: sends the first `n` bytes of the blob (the number is the client's
/// request line), 32 KiB every 50 ms, then closes. Arguments: blob, address, port.
const SERVER_PY: &str = r#"
import socket, threading, time, sys
data = open(sys.argv[1], "rb").read()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(16)
def serve(c):
    try:
        req = b""
        while not req.endswith(b"\n"):
            d = c.recv(64)
            if not d: return
            req += d
        n = min(int(req), len(data))
        for i in range(0, n, 32768):
            c.sendall(data[i:min(i + 32768, n)]); time.sleep(0.05)
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The client: asks `vip:port` for `n` bytes and writes what it receives to `out` as it
/// arrives; exits 0 at the server's close, 1 on an error (a reset) or after 90 s.
const CLIENT_PY: &str = r#"
import socket, sys
vip, port, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.create_connection((vip, port), timeout=90)
s.sendall(b"%d\n" % n)
with open(out, "wb", buffering=0) as f:
    while True:
        try:
            d = s.recv(65536)
        except OSError as e:
            print(e, file=sys.stderr); sys.exit(1)
        if not d: break
        f.write(d)
"#;

fn start_rvsd(lab: &Lab, i: usize) -> Director {
    let ns = DIRS[i];
    let own = 3 + i;
    let peers = SYNC.map(|a| format!("{a:?}")).join(", ");
    Director::start_toml(
        lab,
        ns,
        &format!("rlt{ns}"),
        &format!(
            r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_rlt{ns}0,iface=d0"
addresses = ["10.10.0.{own}/24"]

[[ports]]
name = "dpdk1"
device = "net_af_packet_rlt{ns}1,iface=d1"
addresses = ["10.20.0.{own}/24"]

[workers]
count = 1

[sync]
state = "group"
mcast_interface = "s0"
syncid = 11
peers = [{peers}]

[metrics]
listen = "{METRICS}"
"#
        ),
    )
}

/// The FULLNAT service, with the director's own LIP.
fn configure(d: &Director, i: usize) {
    let svc = format!("{VIP}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "mh"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", &format!("{SERVER}:8000"), "-b"]);
    d.rvsadm(&["--add-laddr", "-z", LIPS[i], "-t", &svc]);
}

/// The line of `rvsadm --list-group` that starts with `prefix`, if there is one (the
/// "Peer LIPs:" line appears with the first heartbeat that names a LIP).
fn group_line_if(d: &Director, prefix: &str) -> Option<String> {
    let text = d.rvsadm(&["--list-group"]);
    text.lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_owned)
}

/// The line of `rvsadm --list-group` that starts with `prefix`.
fn group_line(d: &Director, prefix: &str) -> String {
    group_line_if(d, prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", d.rvsadm(&["--list-group"])))
}

/// Whether every director in `on` lists the others up.
fn all_up(ds: &[Option<Director>]) -> bool {
    ds.iter().enumerate().all(|(i, d)| {
        let Some(d) = d else { return true };
        let text = d.rvsadm(&["--list-group"]);
        SYNC.iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .all(|(_, a)| {
                text.lines().any(|l| {
                    l.starts_with(&format!("{a} ")) && l.split_whitespace().nth(1) == Some("up")
                })
            })
    })
}

/// Director `i` (running).
fn d(ds: &[Option<Director>], i: usize) -> &Director {
    ds[i].as_ref().expect("running")
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

#[test]
fn a_survivor_takes_over_a_dead_directors_lip_and_its_fullnat_transfer_goes_on() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::new("rlt");
    for ns in ["cl", "sw", "da", "db", "dc", "r1"] {
        lab.add_ns(ns);
    }
    lab.veth("cl", "c0", "sw", "clp");
    lab.veth("r1", "r0", "sw", "r1p");
    for (i, d) in DIRS.iter().enumerate() {
        lab.veth(d, "d0", "sw", &format!("{d}0p"));
        lab.veth(d, "d1", "sw", &format!("{d}1p"));
        lab.veth(d, "s0", "sw", &format!("{d}sp"));
        lab.addr(d, "s0", &format!("{}/24", SYNC[i]));
    }
    lab.bridge("sw", "brc", &["clp", "da0p", "db0p", "dc0p"]);
    lab.bridge("sw", "brs", &["r1p", "da1p", "db1p", "dc1p"]);
    lab.bridge("sw", "bsync", &["dasp", "dbsp", "dcsp"]);
    lab.addr("cl", "c0", "10.10.0.21/24");
    lab.addr("r1", "r0", &format!("{SERVER}/24"));

    let (www, sha) = rvs_tests::blob_dir("rlt", LEN);
    let blob = www.join("blob.bin");
    lab.spawn(
        "r1",
        &[
            "python3",
            "-c",
            SERVER_PY,
            &blob.to_string_lossy(),
            SERVER,
            "8000",
        ],
    );
    lab.wait_tcp("r1", SERVER.parse().unwrap(), 8000);

    let mut ds: Vec<Option<Director>> = (0..3).map(|i| Some(start_rvsd(&lab, i))).collect();
    for (i, d) in ds.iter().enumerate() {
        configure(d.as_ref().unwrap(), i);
    }
    wait_for("every peer up", 15, || all_up(&ds));
    // Each survivor-to-be knows da's LIP from da's heartbeats (the first heartbeats may
    // have left before the LIP was configured: no line yet).
    wait_for("da's LIP known to db and dc", 10, || {
        (1..3).all(|i| {
            group_line_if(d(&ds, i), "Peer LIPs:")
                .is_some_and(|l| l.contains(&format!("10.99.0.1 {}", LIPS[0])))
        })
    });
    for i in 0..3 {
        assert_eq!(group_line(d(&ds, i), "LIPs held:"), "LIPs held: none");
    }

    // The "router": the client's packets for the VIP go to da.
    let set_vip_neigh = |ns_of: &str| {
        let m = mac(&lab, ns_of, "d0");
        lab.exec(
            "cl",
            &[
                "ip",
                "neigh",
                "replace",
                VIP,
                "lladdr",
                &m,
                "dev",
                "c0",
                "nud",
                "permanent",
            ],
        );
    };
    set_vip_neigh("da");
    let out = std::env::temp_dir().join(format!("rlt-download-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let out_s = out.to_string_lossy().into_owned();
    let full = lab.ns("cl");
    let mut client = std::process::Command::new("ip")
        .args([
            "netns", "exec", &full, "timeout", "100", "python3", "-c", CLIENT_PY,
        ])
        .args([VIP, "80", &LEN.to_string(), &out_s])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("client");

    // The session is established on da with da's LIP, and synced to db and dc.
    let session_of = |dd: &Director| -> Option<String> {
        dd.rvsadm(&["-Lnc"])
            .lines()
            .find(|l| l.contains("ESTABLISHED") && l.contains("10.10.0.21:"))
            .map(str::to_owned)
    };
    wait_for("the download's session on all three", 10, || {
        (0..3).all(|i| session_of(d(&ds, i)).is_some())
    });
    wait_for("a quarter of the download", 20, || {
        file_len(&out) > u64::from(LEN) / 4
    });
    let on_da = session_of(d(&ds, 0)).unwrap();
    eprintln!("da: {on_da}");
    assert!(
        neigh(&lab, "r1", LIPS[0]).contains(&mac(&lab, "da", "d1")),
        "the server reaches da's LIP at da"
    );

    // Kill da; the router sends the client's packets to db from now on.
    let at_kill = file_len(&out);
    ds[0].as_mut().unwrap().kill_hard();
    let killed = Instant::now();
    set_vip_neigh("db");
    let mut resumed = None;
    let mut holder = None;
    while (resumed.is_none() || holder.is_none()) && killed.elapsed() < Duration::from_secs(20) {
        if resumed.is_none() && file_len(&out) > at_kill + 256 * 1024 {
            resumed = Some(killed.elapsed());
        }
        if holder.is_none() {
            holder = (1..3).find(|&i| group_line(d(&ds, i), "LIPs held:").contains(LIPS[0]));
            if holder.is_some() {
                eprintln!("da's LIP taken over after {:?}", killed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let holder = holder.expect("a survivor holds da's LIP");
    let Some(resumed) = resumed else {
        // What the server's and the survivors' sides looked like, to tell a lost reply
        // from a lost request.
        let sh = |ns: &str, args: &[&str]| {
            String::from_utf8_lossy(&lab.exec(ns, args).stdout).into_owned()
        };
        panic!(
            "the download did not resume within 20 s of the kill (LIP held by {}); \
             the server's neighbours:\n{}\nits socket:\n{}\nthe client's socket:\n{}\n\
             db: {}\ndc: {}",
            DIRS[holder],
            sh("r1", &["ip", "neigh", "show"]),
            sh("r1", &["ss", "-tni", "state", "established"]),
            sh("cl", &["ss", "-tni", "state", "established"]),
            d(&ds, 1).rvsadm(&["--dataplane"]),
            d(&ds, 2).rvsadm(&["--dataplane"]),
        );
    };
    eprintln!(
        "kill to resumed download (256 KiB more than at the kill): {resumed:?}; LIP held by {}",
        DIRS[holder]
    );
    // Exactly one survivor holds it.
    let other = 3 - holder;
    assert_eq!(
        group_line(d(&ds, holder), "LIPs held:"),
        format!("LIPs held: {} (of 10.99.0.1)", LIPS[0])
    );
    assert_eq!(group_line(d(&ds, other), "LIPs held:"), "LIPs held: none");
    let scrape = |i: usize| {
        lab.curl(DIRS[i], &format!("http://{METRICS}/metrics"))
            .expect("metrics")
    };
    let held_line = format!(
        "rvs_sync_lip_held{{lip=\"{}\",peer=\"10.99.0.1\"}} 1",
        LIPS[0]
    );
    assert!(scrape(holder).lines().any(|l| l == held_line));
    assert!(scrape(holder).lines().any(|l| l == "rvs_sync_lips_held 1"));
    assert!(scrape(other).lines().any(|l| l == "rvs_sync_lips_held 0"));
    assert!(d(&ds, holder)
        .log()
        .contains("taking over its local address"));

    // The download ends, byte-exact, without a reset.
    let status = client.wait().expect("client");
    let mut err = String::new();
    if let Some(mut e) = client.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "the client failed: {err}");
    assert_eq!(file_len(&out), u64::from(LEN));
    assert_eq!(rvs_tests::sha256(&out), sha, "byte-exact");
    // The server's replies to da's LIP went to the holder's port.
    assert!(
        neigh(&lab, "r1", LIPS[0]).contains(&mac(&lab, DIRS[holder], "d1")),
        "the server's neighbour entry for {} is the holder's: {}",
        LIPS[0],
        neigh(&lab, "r1", LIPS[0])
    );
    // A new connection through db during da's absence: db's own LIP.
    let small = std::env::temp_dir().join(format!("rlt-small-{}", std::process::id()));
    lab.exec(
        "cl",
        &[
            "timeout",
            "20",
            "python3",
            "-c",
            CLIENT_PY,
            VIP,
            "80",
            "65536",
            &small.to_string_lossy(),
        ],
    );
    assert_eq!(file_len(&small), 65536);
    let _ = std::fs::remove_file(&small);

    // da comes back: the holder releases its LIP.
    ds[0] = None; // its files go first: the new one uses the same directory
    ds[0] = Some(start_rvsd(&lab, 0));
    configure(d(&ds, 0), 0);
    let back = Instant::now();
    wait_for("every peer up again", 15, || all_up(&ds));
    wait_for("da's LIP released", 10, || {
        group_line(d(&ds, holder), "LIPs held:") == "LIPs held: none"
    });
    eprintln!("da's LIP released {:?} after da restarted", back.elapsed());
    assert!(d(&ds, holder)
        .log()
        .contains("releasing a local address taken over"));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&www);
    drop(ds);
    eprintln!("lab_lip_takeover took {:?}", started.elapsed());
}
