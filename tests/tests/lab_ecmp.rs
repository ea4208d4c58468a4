//! Three active directors behind ECMP, announced by BIRD: clients behind a router
//! namespace running BIRD (one eBGP session per director, `merge paths`: one multipath
//! kernel route per VIP, L4 hashing with `fib_multipath_hash_policy=1`), three director
//! namespaces each running rvsd on a DPDK port (`[sync] state = "group"`, `[bgp]`
//! routes file, idle workers that sleep) and BIRD on the exception tap, two real servers
//! (Python HTTP) on the same LAN. BGP timers: hold 3 s, keepalive 1 s; BFD on the BGP
//! sessions (200 ms, multiplier 5), carried like BGP through the exception taps.
//!
//! What it checks, as an operator would:
//! - the router's table has each VIP with three next hops (the directors' tap
//!   addresses) and each director's LIP with its own;
//! - 30 rate-limited downloads from 30 client addresses, a third each to a DR service
//!   (`mh`), a FULLNAT service (`mh`, one LIP per director) and a NAT service (`mh`),
//!   spread over the three directors (the flows each director's port receives, an
//!   nftables set, and each director's `in` counter; the FULLNAT ones also by the LIPs the
//!   servers see);
//! - the sync traffic of 1000 new connections (messages and records from the sync
//!   counters, bytes on the sync links);
//! - stopping one director's rvsd cleanly withdraws its routes: the router shows two
//!   next hops within the hold time; it is started again at once (within the 3 s that
//!   make a peer down: its peers see its new incarnation) and announces only after its
//!   peers' bulk syncs (its log says so) with the session of every running download;
//! - killing another director hard (rvsd and BIRD, SIGKILL): the router withdraws it
//!   within the hold time (BFD does in about 1 s); new connections to the three
//!   services work; it comes back, again announcing only with every running download's
//!   session;
//! - a rolling restart of the three directors one by one under the downloads (clean
//!   stop, routes withdrawn, start, announced again once its peers sent it their
//!   sessions);
//! - every download ends byte-exact (sha256), DR, FULLNAT and NAT, through the director
//!   that stopped, the one killed and the rolling restart (synced sessions, LIP takeover
//!   by a survivor, NAT replies routed by the real servers to the director that forwarded
//!   the connection last: [`rvs_tests::ecmp::nat_return_by_mac`]);
//! - the DR downloads through the killed director continue on the survivors from their
//!   synced sessions (the next byte within 10 s of the kill: hold time plus TCP's
//!   retransmission).
//!
//! For each download, the longest pause in its bytes (its time to recovery) from the
//! stop to the kill, in the 10 s after the kill and during the rolling restart, is
//! printed.
//!
//! Topology: see [`rvs_tests::ecmp`] (prefix `ecm`). Needs root and BIRD (`bird2`);
//! skipped where network namespaces cannot be made.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_tests::bird::{self, Bird};
use rvs_tests::ecmp::{self, DIRS};
use rvs_tests::{blob_dir, can_build_labs, sha256, Director, Lab};

/// The DR service's VIP (port 80; `mh`).
const VIP_DR: &str = "10.80.0.100";
/// The FULLNAT service's VIP (port 80 to the servers' 8080; `mh`).
const VIP_FN: &str = "10.80.0.101";
/// The NAT service's VIP (port 80 to the servers' 8081; `mh`).
const VIP_NAT: &str = "10.80.0.102";
/// The real servers' port of the NAT service.
const NAT_PORT: u16 = 8081;
/// Downloads: a third to each service ([`kind`]).
const TRANSFERS: usize = 30;

/// The service of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dr,
    FullNat,
    Nat,
}

/// Download `i`'s service: DR, FULLNAT and NAT in turn.
fn kind(i: usize) -> Kind {
    [Kind::Dr, Kind::FullNat, Kind::Nat][i % 3]
}

fn vip_of(k: Kind) -> &'static str {
    match k {
        Kind::Dr => VIP_DR,
        Kind::FullNat => VIP_FN,
        Kind::Nat => VIP_NAT,
    }
}
/// The downloaded file and the rate the servers send it at (bytes per second): about
/// 100 s each.
const BLOB: u32 = 4_000_000;
const RATE: u32 = 40_000;

/// The real servers' HTTP server: `/blob.bin` is the file sent at a steady rate (the
/// server paces itself, so the client always reads and its acknowledgements keep
/// flowing through the directors), anything else a short answer. Arguments: the file,
/// the port, the rate.
const SERVER: &str = r#"
import http.server, socketserver, sys, time
data = open(sys.argv[1], "rb").read()
port, rate = int(sys.argv[2]), int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = data if self.path.startswith("/blob") else b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        t = time.time()
        for i in range(0, len(body), 4096):
            chunk = body[i:i + 4096]
            self.wfile.write(chunk)
            if len(body) > 4096:
                t += len(chunk) / rate
                d = t - time.time()
                if d > 0:
                    time.sleep(d)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256
S(("0.0.0.0", port), H).serve_forever()
"#;
/// Client source ports: download `i` from `SPORT + i`.
const SPORT: u16 = 41000;
/// The longest pause of an idle worker in this lab (three directors, BIRD, a router
/// and the clients share two cores).
const IDLE_SLEEP_US: u32 = 200;
/// The BGP hold time the lab configures ([`ecmp::BGP_TIMERS`]).
const HOLD: Duration = Duration::from_secs(3);

#[test]
fn three_directors_behind_ecmp_announce_withdraw_and_keep_transfers() {
    if !can_build_labs() || !has_bird() {
        eprintln!("skipped: needs root, ip netns and bird2");
        return;
    }
    ecmp_lab();
}

fn has_bird() -> bool {
    rvs_tests::run("sh", &["-c", "command -v bird && command -v birdc"])
        .status
        .success()
}

/// One director: its rvsd (while running) and BIRD, and BIRD's directory (rvsd's
/// routes file is in it).
struct Dir {
    rvsd: Option<Director>,
    bird: Option<Bird>,
    bird_dir: PathBuf,
}

fn rvsd_config(i: usize, bird_dir: &Path) -> String {
    let ns = DIRS[i];
    let peers: Vec<String> = (0..3).map(|j| format!("{:?}", ecmp::sync(j))).collect();
    format!(
        r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_ecm{ns}0,iface=d0"
addresses = ["{dip}/24"]
exception_iface = "rvs0"

[workers]
count = 1
idle_sleep_max_us = {IDLE_SLEEP_US}

[[routes]]
prefix = "10.40.0.0/24"
via = "{router}"
port = "dpdk0"

[sync]
state = "group"
mcast_interface = "s0"
syncid = 7
peers = [{peers}]

[bgp]
routes_file = "{routes}"
socket = "{ctl}"
announce_delay_ms = 10000

[[services]]
proto = "tcp"
vip = "{VIP_DR}:80"
scheduler = "mh"
real = [{{ address = "{r1}:80", forward = "route" }}, {{ address = "{r2}:80", forward = "route" }}]

[[services]]
proto = "tcp"
vip = "{VIP_FN}:80"
scheduler = "mh"
laddrs = ["{lip}"]
real = [{{ address = "{r1}:8080", forward = "fullnat" }}, {{ address = "{r2}:8080", forward = "fullnat" }}]

[[services]]
proto = "tcp"
vip = "{VIP_NAT}:80"
scheduler = "mh"
real = [{{ address = "{r1}:{NAT_PORT}", forward = "masq" }}, {{ address = "{r2}:{NAT_PORT}", forward = "masq" }}]
"#,
        dip = ecmp::dip(i),
        router = ecmp::ROUTER,
        peers = peers.join(", "),
        routes = bird_dir.join("routes.conf").display(),
        ctl = bird_dir.join("bird.ctl").display(),
        r1 = ecmp::SERVERS[0],
        r2 = ecmp::SERVERS[1],
        lip = ecmp::lip(i),
    )
}

/// Starts rvsd in director `i`'s namespace and gives its exception tap the host address
/// (as the host's network configuration would when the tap appears).
fn start_rvsd(lab: &Lab, i: usize, bird_dir: &Path) -> Director {
    let ns = DIRS[i];
    let d = Director::start_toml(lab, ns, &format!("ecm{ns}"), &rvsd_config(i, bird_dir));
    wait_for(
        &format!("tap rvs0 in {ns}"),
        Duration::from_secs(15),
        || {
            lab.try_exec(ns, &["ip", "link", "show", "rvs0"])
                .status
                .success()
        },
    );
    lab.exec(ns, &["ip", "link", "set", "rvs0", "up"]);
    lab.addr(ns, "rvs0", &format!("{}/24", ecmp::host(i)));
    d
}

fn start_bird(lab: &mut Lab, i: usize, bird_dir: &Path) -> Bird {
    let glob = bird_dir.join("routes*.conf").display().to_string();
    Bird::start(lab, DIRS[i], bird_dir, &ecmp::director_bird_conf(i, &glob))
}

/// Waits (bounded by `limit`) until `ok` holds; returns how long it took.
fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "timed out ({limit:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The directors (by index) whose tap addresses are next hops of `addr` on the router.
fn hops(lab: &Lab, addr: &str) -> Vec<usize> {
    bird::next_hops(lab, "rt", addr)
        .iter()
        .filter_map(|h| (0..3).find(|&i| ecmp::host(i) == h.to_string()))
        .collect()
}

/// Whether the router has every VIP with the next hops of directors `want` (sorted).
fn vips_via(lab: &Lab, want: &[usize]) -> bool {
    [VIP_DR, VIP_FN, VIP_NAT]
        .iter()
        .all(|v| hops(lab, v) == want)
}

/// The director each download goes through now (from the flows each director's port
/// receives; `None`: no packet of it in the last second).
fn paths(lab: &Lab) -> Vec<Option<usize>> {
    for d in DIRS {
        ecmp::forget_flows(lab, d);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let seen: Vec<Vec<(String, u16)>> = DIRS.iter().map(|d| ecmp::flows_seen(lab, d)).collect();
    (0..TRANSFERS)
        .map(|i| {
            let f = (ecmp::client(i), SPORT + i as u16);
            (0..3).find(|&d| seen[d].contains(&f))
        })
        .collect()
}

/// A sync master counter of a director (`rvsadm --dataplane`, `sync master ... key=n`).
fn sync_counter(d: &Director, key: &str) -> u64 {
    let text = d.rvsadm(&["--dataplane"]);
    text.lines()
        .find(|l| l.starts_with("sync master "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn tx_bytes(lab: &Lab, ns: &str, dev: &str) -> u64 {
    String::from_utf8_lossy(
        &lab.try_exec(
            ns,
            &["cat", &format!("/sys/class/net/{dev}/statistics/tx_bytes")],
        )
        .stdout,
    )
    .trim()
    .parse()
    .unwrap_or(0)
}

/// `n` new connections to `vip:80` from the client's main address, one after the other,
/// each a complete HTTP/1.0 request; prints how many failed.
const CONNECT: &str = r#"
import socket, sys
vip, n = sys.argv[1], int(sys.argv[2])
bad = 0
for k in range(n):
    try:
        s = socket.create_connection((vip, 80), timeout=3, source_address=("10.40.0.2", 0))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
    except OSError:
        bad += 1
print(bad)
"#;

/// The sizes of the download files over time (sampled every 100 ms).
type Samples = Arc<Mutex<Vec<(Instant, Vec<u64>)>>>;

fn sampler(files: Vec<PathBuf>, stop: Arc<AtomicBool>) -> (Samples, std::thread::JoinHandle<()>) {
    let samples: Samples = Arc::new(Mutex::new(Vec::new()));
    let s = samples.clone();
    let h = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let sizes = files
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .collect();
            s.lock().unwrap().push((Instant::now(), sizes));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (samples, h)
}

/// For each download: the longest time its file did not grow within `window` after
/// `t0` (`None`: it did not grow at all in the window, or it had ended by `t0`).
fn longest_pause(samples: &Samples, t0: Instant, window: Duration) -> Vec<Option<Duration>> {
    let s = samples.lock().unwrap();
    let start = s.iter().rev().find(|(t, _)| *t <= t0);
    (0..TRANSFERS)
        .map(|i| {
            let (mut last_t, mut last_v) = start.map_or((t0, 0), |(t, v)| (*t, v[i]));
            if last_v >= u64::from(BLOB) {
                return None;
            }
            let mut longest = Duration::ZERO;
            let mut grew = false;
            for (t, v) in s.iter().filter(|(t, _)| *t > t0 && *t <= t0 + window) {
                if v[i] > last_v {
                    longest = longest.max(t.duration_since(last_t));
                    last_t = *t;
                    last_v = v[i];
                    grew = true;
                }
            }
            grew.then_some(longest)
        })
        .collect()
}

/// For each download: when its file last grew, from `t0`.
fn last_byte(samples: &Samples, t0: Instant) -> Vec<Duration> {
    let s = samples.lock().unwrap();
    (0..TRANSFERS)
        .map(|i| {
            let mut at = t0;
            let mut size = 0;
            for (t, v) in s.iter() {
                if v[i] > size {
                    size = v[i];
                    at = *t;
                }
            }
            at.saturating_duration_since(t0)
        })
        .collect()
}

/// Director `k` has just been announced again after a restart: it waited for its
/// peers' bulk syncs (its log says so, not that `announce_delay_ms` passed first), each
/// peer logged a complete bulk sync, and it lists the session of every download still
/// running (they all came from its peers: it had none of its own).
fn assert_joined_before_announcing(dirs: &[Dir], k: usize, files: &[PathBuf]) {
    let me = dirs[k].rvsd.as_ref().unwrap();
    let log = me.log();
    let line = log
        .lines()
        .find(|l| l.contains("bgp: sessions of the sync group received"))
        .unwrap_or_else(|| {
            panic!(
                "{} announced without its peers' bulk syncs:\n{log}",
                DIRS[k]
            )
        });
    eprintln!("{}: {line}", DIRS[k]);
    let group = me.rvsadm(&["--list-group"]);
    assert!(
        group.contains("Joined: yes"),
        "{} announced but does not list itself joined:\n{group}",
        DIRS[k]
    );
    let running: Vec<usize> = (0..TRANSFERS)
        .filter(|i| !Path::new(&format!("{}.rc", files[*i].display())).exists())
        .collect();
    let l = me.rvsadm(&["-Lnc"]);
    let missing: Vec<usize> = running
        .iter()
        .copied()
        .filter(|&i| !l.contains(&format!("{}:{}", ecmp::client(i), SPORT + i as u16)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} announced without the sessions of downloads {missing:?}",
        DIRS[k]
    );
}

/// A peer's state in a director's `rvsadm --list-group` (`up`, `down`, ...).
fn peer_state(d: &Director, addr: &str) -> String {
    d.rvsadm(&["--list-group"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(addr))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_owned()
}

fn ecmp_lab() {
    let started = Instant::now();
    let mut lab = ecmp::lab("ecm", &[VIP_DR], TRANSFERS);
    let last_port = SPORT + TRANSFERS as u16 - 1;
    for d in DIRS {
        ecmp::watch_flows(&lab, d, "d0", (SPORT, last_port));
    }
    let (www, sha) = blob_dir("ecm", BLOB);
    for (i, r) in ["r1", "r2"].iter().enumerate() {
        let a = ecmp::SERVERS[i].parse().unwrap();
        let blob = www.join("blob.bin").display().to_string();
        for port in ["80", "8080", "8081"] {
            lab.spawn(
                r,
                &["python3", "-c", SERVER, &blob, port, &RATE.to_string()],
            );
        }
        lab.wait_tcp(r, a, 80);
        lab.wait_tcp(r, a, 8080);
        lab.wait_tcp(r, a, NAT_PORT);
    }
    // NAT replies back through the director that forwarded the connection last.
    let macs: Vec<String> = DIRS.iter().map(|d| ecmp::mac(&lab, d, "d0")).collect();
    for r in ["r1", "r2"] {
        ecmp::nat_return_by_mac(&lab, r, "r0", NAT_PORT, &macs);
    }
    let router = Bird::start(
        &mut lab,
        "rt",
        &bird::dir("ecm", "rt"),
        &ecmp::router_bird_conf(),
    );
    let mut dirs: Vec<Dir> = Vec::new();
    for (i, ns) in DIRS.iter().enumerate() {
        let bird_dir = bird::dir("ecm", ns);
        let rvsd = start_rvsd(&lab, i, &bird_dir);
        let b = start_bird(&mut lab, i, &bird_dir);
        dirs.push(Dir {
            rvsd: Some(rvsd),
            bird: Some(b),
            bird_dir,
        });
    }
    let logs = |dirs: &[Dir]| -> String {
        let mut s = router.birdc(&lab, &["show", "protocols"]);
        for d in dirs {
            if let Some(r) = &d.rvsd {
                s.push_str(&r.log());
            }
        }
        s
    };

    // Steady state: each VIP with three next hops, each LIP with its director's.
    let t = Instant::now();
    while [VIP_DR, VIP_FN, VIP_NAT]
        .iter()
        .any(|v| hops(&lab, v) != [0, 1, 2])
    {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "the router has no three next hops for the VIPs:\n{}\n{}",
            String::from_utf8_lossy(&lab.exec("rt", &["ip", "route"]).stdout),
            logs(&dirs)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "router: three next hops for the three VIPs {:?} after start; routes:\n{}",
        t.elapsed(),
        String::from_utf8_lossy(&lab.exec("rt", &["ip", "route"]).stdout)
    );
    for (i, ns) in DIRS.iter().enumerate() {
        assert_eq!(hops(&lab, &ecmp::lip(i)), [i], "the LIP of {ns}");
    }
    let dp = dirs[0].rvsd.as_ref().unwrap().rvsadm(&["--dataplane"]);
    for a in [VIP_DR, VIP_FN, VIP_NAT, &ecmp::lip(0)] {
        assert!(dp.contains(&format!("bgp route {a}/32\n")), "{dp}");
    }
    assert!(
        !dp.contains(&format!("bgp route {}/32", ecmp::lip(1))),
        "{dp}"
    );

    // 30 downloads from 30 client addresses.
    let out = std::env::temp_dir().join(format!("rvs-ecm-dl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let files: Vec<PathBuf> = (0..TRANSFERS)
        .map(|i| out.join(format!("dl{i}.bin")))
        .collect();
    let in_before: Vec<u64> = dirs
        .iter()
        .map(|d| d.rvsd.as_ref().unwrap().counter("in"))
        .collect();
    for (i, f) in files.iter().enumerate() {
        let vip = vip_of(kind(i));
        let cmd = format!(
            "curl -s --interface {src} --local-port {port} \
             --speed-limit 1 --speed-time 30 --max-time 170 -o {f} http://{vip}/blob.bin; \
             echo $? > {f}.rc",
            src = ecmp::client(i),
            port = SPORT + i as u16,
            f = f.display(),
        );
        lab.spawn("cl", &["sh", "-c", &cmd]);
    }
    let t_dl = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (samples, sampler_thread) = sampler(files.clone(), stop.clone());
    let size = |f: &PathBuf| std::fs::metadata(f).map_or(0, |m| m.len());
    let t = Instant::now();
    while !files.iter().all(|f| size(f) > 30_000) {
        if t.elapsed() > Duration::from_secs(30) {
            let slow: Vec<String> = (0..TRANSFERS)
                .filter(|&i| size(&files[i]) <= 30_000)
                .map(|i| format!("{i} ({:?}, {} bytes)", kind(i), size(&files[i])))
                .collect();
            let seen = paths(&lab);
            let mut diag = String::new();
            for (d, ns) in DIRS.iter().enumerate() {
                let r = dirs[d].rvsd.as_ref().unwrap();
                diag.push_str(&format!(
                    "{ns}:\n{}{}",
                    r.rvsadm(&["-Lnc"]),
                    r.rvsadm(&["--dataplane"])
                ));
            }
            for r in ["r1", "r2"] {
                let ct = lab.try_exec(r, &["cat", "/proc/net/nf_conntrack"]);
                let ss = lab.try_exec(r, &["ss", "-tni"]);
                diag.push_str(&format!(
                    "{r}:\n{}{}",
                    String::from_utf8_lossy(&ct.stdout),
                    String::from_utf8_lossy(&ss.stdout)
                ));
            }
            panic!("downloads not started within 30 s: {slow:?}; paths {seen:?}\n{diag}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The spread: the router's choice per flow, the directors' packet counters, and the
    // LIPs the servers see for the FULLNAT downloads.
    let first_path: Vec<usize> = paths(&lab)
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.unwrap_or_else(|| panic!("download {i} seen by no director")))
        .collect();
    let per_dir: Vec<usize> = (0..3)
        .map(|d| first_path.iter().filter(|&&p| p == d).count())
        .collect();
    let in_now: Vec<u64> = dirs
        .iter()
        .map(|d| d.rvsd.as_ref().unwrap().counter("in"))
        .collect();
    let per_kind = |k: Kind| -> Vec<usize> {
        (0..3)
            .map(|d| {
                (0..TRANSFERS)
                    .filter(|&i| kind(i) == k && first_path[i] == d)
                    .count()
            })
            .collect()
    };
    let mut by_lip = [0usize; 3];
    for r in ["r1", "r2"] {
        let ss = lab.exec(
            r,
            &["ss", "-tnH", "state", "established", "( sport = :8080 )"],
        );
        for l in String::from_utf8_lossy(&ss.stdout).lines() {
            for (d, n) in by_lip.iter_mut().enumerate() {
                if l.contains(&format!("{}:", ecmp::lip(d))) {
                    *n += 1;
                }
            }
        }
    }
    eprintln!(
        "spread: downloads per director by the router {per_dir:?} (DR {:?}, FULLNAT {:?}, NAT {:?}); FULLNAT by LIP at the servers {by_lip:?}; packets in per director {:?}",
        per_kind(Kind::Dr),
        per_kind(Kind::FullNat),
        per_kind(Kind::Nat),
        in_now.iter().zip(&in_before).map(|(a, b)| a - b).collect::<Vec<_>>(),
    );
    for d in 0..3 {
        assert!(
            per_dir[d] > 0,
            "no download through {}: {per_dir:?}",
            DIRS[d]
        );
        assert!(in_now[d] > in_before[d], "{} received nothing", DIRS[d]);
        let fn_here = per_kind(Kind::FullNat)[d];
        assert_eq!(
            by_lip[d], fn_here,
            "FULLNAT downloads through {} by the router's hash and by its LIP",
            DIRS[d]
        );
    }

    // Sync traffic of 1000 new connections (to the DR service, from one address).
    let sync_of = |dirs: &[Dir]| -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for (i, d) in dirs.iter().enumerate() {
            let r = d.rvsd.as_ref().unwrap();
            t.0 += sync_counter(r, "sent_msgs");
            t.1 += sync_counter(r, "sent_conns");
            t.2 += sync_counter(r, "heartbeats_sent");
            t.3 += tx_bytes(&lab, DIRS[i], "s0");
        }
        t
    };
    let s0 = sync_of(&dirs);
    let t = Instant::now();
    let bad = lab.exec(
        "cl",
        &["timeout", "120", "python3", "-c", CONNECT, VIP_DR, "1000"],
    );
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let s1 = sync_of(&dirs);
    let failed: u64 = String::from_utf8_lossy(&bad.stdout)
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    eprintln!(
        "sync traffic for 1000 new connections in {took:?} (failed {failed}), all three directors: {} messages, {} session records, {} bytes on the sync links ({} of them heartbeat messages)",
        s1.0 - s0.0,
        s1.1 - s0.1,
        s1.3 - s0.3,
        s1.2 - s0.2
    );
    assert_eq!(failed, 0, "new connections failed");
    assert!(
        s1.1 - s0.1 >= 1000,
        "every new session synced at least once"
    );

    // Stop dc's rvsd cleanly: its routes are withdrawn (BIRD keeps running).
    let t_stop = Instant::now();
    drop(dirs[2].rvsd.take());
    wait_for("dc withdrawn after a clean stop", HOLD, || {
        vips_via(&lab, &[0, 1])
    });
    eprintln!(
        "clean stop of dc at {:?}: two next hops {:?} after the SIGTERM",
        t_stop.duration_since(t_dl),
        t_stop.elapsed()
    );
    // dc no longer announces its LIP (a survivor that takes it over may, later).
    assert!(
        !hops(&lab, &ecmp::lip(2)).contains(&2),
        "dc's LIP withdrawn"
    );
    // dc comes back at once, well within the 3 s that make a peer down: its peers see
    // its new incarnation and send it every session (bulk sync) before it announces.
    assert_eq!(
        peer_state(dirs[0].rvsd.as_ref().unwrap(), &ecmp::sync(2)),
        "up",
        "dc restarted before its peers count it down"
    );
    let t_back = Instant::now();
    let bd = dirs[2].bird_dir.clone();
    dirs[2].rvsd = Some(start_rvsd(&lab, 2, &bd));
    let w = wait_for("dc announced again", Duration::from_secs(30), || {
        vips_via(&lab, &[0, 1, 2])
    });
    eprintln!(
        "dc restarted at {:?}: three next hops {w:?} after its start",
        t_back.duration_since(t_dl)
    );
    assert_joined_before_announcing(&dirs, 2, &files);

    // Kill db hard (rvsd and BIRD): the router withdraws it within the hold time.
    let t_kill = Instant::now();
    let before_kill: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    dirs[1].rvsd.as_mut().unwrap().kill_hard();
    dirs[1].bird.as_ref().unwrap().kill_hard();
    let w = wait_for("db withdrawn after a kill", HOLD, || {
        vips_via(&lab, &[0, 2])
    });
    eprintln!(
        "kill of db at {:?}: the router has two next hops after {w:?} (hold time {HOLD:?}, BFD 1 s)",
        t_kill.duration_since(t_dl)
    );
    // New connections work through the survivors, to both services.
    for vip in [VIP_DR, VIP_FN, VIP_NAT] {
        let bad = lab.exec(
            "cl",
            &["timeout", "60", "python3", "-c", CONNECT, vip, "20"],
        );
        assert_eq!(
            String::from_utf8_lossy(&bad.stdout).trim(),
            "0",
            "new connections to {vip} after the kill"
        );
    }
    std::thread::sleep(Duration::from_secs(4));
    // db comes back.
    dirs[1].rvsd = None;
    let bd = dirs[1].bird_dir.clone();
    dirs[1].rvsd = Some(start_rvsd(&lab, 1, &bd));
    dirs[1].bird = Some(start_bird(&mut lab, 1, &bd));
    let t = Instant::now();
    wait_for("db announced again", Duration::from_secs(30), || {
        vips_via(&lab, &[0, 1, 2])
    });
    eprintln!(
        "db restarted at {:?}: three next hops after {:?}",
        t.duration_since(t_dl),
        t.elapsed()
    );
    assert_joined_before_announcing(&dirs, 1, &files);
    // The sessions of the downloads each director has after the rejoin (its own, synced,
    // and from the bulk syncs).
    for (k, d) in dirs.iter().enumerate() {
        let l = d.rvsd.as_ref().unwrap().rvsadm(&["-Lnc"]);
        let have: Vec<usize> = (0..TRANSFERS)
            .filter(|&i| l.contains(&format!("{}:{}", ecmp::client(i), SPORT + i as u16)))
            .collect();
        eprintln!(
            "after the rejoin {} lists the sessions of downloads {have:?}",
            DIRS[k]
        );
    }
    let running = (0..TRANSFERS)
        .filter(|i| !Path::new(&format!("{}.rc", files[*i].display())).exists())
        .count();
    eprintln!("downloads still running after the rejoin: {running}");

    // Rolling restart under load: each director in turn stopped cleanly (its routes
    // withdrawn), started again, announced once its peers have sent it their sessions.
    let t_roll = Instant::now();
    for k in 0..3 {
        let others: Vec<usize> = (0..3).filter(|&j| j != k).collect();
        let at = t_dl.elapsed();
        drop(dirs[k].rvsd.take());
        let down = wait_for(
            &format!("{} withdrawn in the rolling restart", DIRS[k]),
            HOLD,
            || vips_via(&lab, &others),
        );
        let bd = dirs[k].bird_dir.clone();
        dirs[k].rvsd = Some(start_rvsd(&lab, k, &bd));
        let up = wait_for(
            &format!("{} announced again in the rolling restart", DIRS[k]),
            Duration::from_secs(30),
            || vips_via(&lab, &[0, 1, 2]),
        );
        eprintln!(
            "rolling restart of {} at {:?}: withdrawn {down:?} after its stop, announced again {up:?} after its start",
            DIRS[k],
            at
        );
        assert_joined_before_announcing(&dirs, k, &files);
    }
    let roll = t_roll.elapsed();

    // Every download ends (bounded by curl's own limits).
    wait_for("every download ended", Duration::from_secs(180), || {
        (0..TRANSFERS).all(|i| Path::new(&format!("{}.rc", files[i].display())).exists())
    });
    stop.store(true, Ordering::Relaxed);
    let _ = sampler_thread.join();

    // Each window ends before the next event (or 10 s after the kill).
    let after_stop = longest_pause(&samples, t_stop, t_kill.duration_since(t_stop));
    let after_kill = longest_pause(&samples, t_kill, Duration::from_secs(10));
    let in_roll = longest_pause(&samples, t_roll, roll + Duration::from_secs(5));
    let last = last_byte(&samples, t_dl);
    for (i, d) in dirs.iter().enumerate() {
        let r = d.rvsd.as_ref().unwrap();
        for l in r
            .log()
            .lines()
            .filter(|l| l.contains("bulk") || l.contains("bgp"))
        {
            eprintln!("{}: {l}", DIRS[i]);
        }
        for l in r
            .rvsadm(&["--dataplane"])
            .lines()
            .filter(|l| l.contains("drop"))
        {
            eprintln!("{}: {l}", DIRS[i]);
        }
    }
    let mut failures = Vec::new();
    for i in 0..TRANSFERS {
        let k = kind(i);
        let rc = std::fs::read_to_string(format!("{}.rc", files[i].display()))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let ok = rc == "0" && sha256(&files[i]) == sha;
        let via = first_path[i];
        let ms =
            |d: Option<Duration>| d.map_or("(no byte)".into(), |d| format!("{}", d.as_millis()));
        eprintln!(
            "download {i:2} {} from {} via {}: curl rc {rc}, {} bytes, {}, last byte at {:.1} s; longest pause from the stop of dc to the kill of db {} ms, in the 10 s after the kill {} ms, in the rolling restart {} ms",
            match k {
                Kind::Dr => "DR     ",
                Kind::FullNat => "FULLNAT",
                Kind::Nat => "NAT    ",
            },
            ecmp::client(i),
            DIRS[via],
            std::fs::metadata(&files[i]).map_or(0, |m| m.len()),
            if ok { "byte-exact" } else { "NOT byte-exact" },
            last[i].as_secs_f64(),
            ms(after_stop[i]),
            ms(after_kill[i]),
            ms(in_roll[i]),
        );
        // Every download, DR, FULLNAT and NAT, through the director that stopped, the one
        // killed, the one whose flows the router never moved, and through the rolling
        // restart: byte-exact.
        if !ok {
            failures.push(i);
        }
        // DR through the killed director: the survivors forward it from its synced
        // session (no pause longer than the hold time plus TCP's retransmission). A NAT
        // one waits for the real server's retransmission backoff (its replies go to the
        // dead director until a client packet through a survivor re-marks the
        // connection): 6.5 s or, now and then, more than the 10 s window; it must end
        // byte-exact, above.
        if k == Kind::Dr && via == 1 && before_kill[i] < u64::from(BLOB) {
            match after_kill[i] {
                Some(d) if d < Duration::from_secs(10) => {}
                _ => failures.push(i),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "downloads that should have ended byte-exact did not: {failures:?}"
    );
    eprintln!("lab_ecmp took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&www);
}
