//! The SYN proxy on a running director, against real Linux TCP stacks: a client doing
//! curls and a long download through a NAT and a FULLNAT service while another
//! namespace floods the VIP with random-source SYNs (`hping3 --flood --rand-source -S`,
//! bounded by `timeout`).
//!
//! - Proxy on (`-j enable`, NAT then FULLNAT): every curl succeeds, the download is
//!   byte-exact (sha256), the session table (`rvsadm -Lnc`) holds no session of the
//!   flood; the SYN-ACK cookies are counted.
//! - The client's options reach the real server: a raw-socket capture in both real
//!   servers' namespaces prints the SYN they receive; it has the client's MSS, window
//!   scale, SACK-permitted and timestamps (the client's own SYN captured too).
//! - With 1 % loss each way in the client's namespace (nftables `numgen`, as lab_proxy),
//!   a multi-MB download through the proxied FULLNAT service is byte-exact.
//! - `auto` (`[sessions] syn_proxy_rate = 2000`): the flood's sessions are bounded by
//!   the rate (those of the moment before the pressure is seen), every curl succeeds.
//! - Off: the same flood fills the table (capacity 2048 per core) within a second or so;
//!   the rate is reported.
//! - Takeover (`proxied_downloads_survive_a_takeover_during_a_flood`, the active/standby
//!   topology of `topo::active_standby_one_server`, a proxied FULLNAT service): two
//!   rate-limited downloads (small client receive buffers, so that they cross the
//!   director at curl's rate) through the active director while the client's namespace
//!   floods the VIP; the active director is killed and the standby made master: both
//!   downloads end byte-exact (their sessions were synced with the proxy's translation)
//!   and the new active director holds no session of the flood.
//!
//! Topology of the first test: client `c` 10.10.0.2, flooder `f` 10.10.0.3 and the director's `d0`
//! (10.10.0.1, VIP 10.10.0.100) on bridge `brc` in `sw`; the director's `d1` (10.20.0.1,
//! LIP 10.20.0.100) and real servers `r1` 10.20.0.11, `r2` 10.20.0.12 (Python's
//! http.server on port 80, default route via the director) on bridge `brs`. One worker.
//!
//! Needs root, hping3, nftables, curl and python3 (`scripts/setup` installs them); skips
//! (with a message) where namespaces cannot be made. Every wait is bounded.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_tests::{blob_dir, can_build_labs, sha256, DirPort, Director, Lab};

const VIP: &str = "10.10.0.100";
const CLIENT: &str = "10.10.0.2";
const CAPACITY: usize = 2048;

/// The two tests run one after the other: each floods and busy-polls the machine's CPUs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const RATE: u32 = 2000;

/// The raw-socket capture: the options (hex) of the first TCP SYN to port 80 seen on
/// `dev` (outgoing ones included), then exit; nothing within `secs`.
const CAPTURE: &str = r#"
import socket, struct, sys
dev, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((dev, 0))
s.settimeout(secs)
print("ready", flush=True)
try:
    while True:
        f = s.recv(4096)
        ip = f[14:]
        if f[12:14] != b"\x08\x00" or len(ip) < 20 or ip[9] != 6:
            continue
        t = ip[(ip[0] & 15) * 4:]
        if len(t) < 20:
            continue
        if struct.unpack("!H", t[2:4])[0] in (80, 81) and t[13] & 0x12 == 0x02:
            print(t[20:(t[12] >> 4) * 4].hex(), flush=True)
            break
except socket.timeout:
    pass
"#;

/// What a SYN's options say: MSS, window scale, SACK-permitted, timestamps.
#[derive(Debug, Default, PartialEq, Eq)]
struct SynOpts {
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    ts: bool,
}

fn parse_opts(hex: &str) -> SynOpts {
    let b: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let mut o = SynOpts::default();
    let mut p = 0;
    while p < b.len() {
        match b[p] {
            0 => break,
            1 => p += 1,
            k => {
                let len = usize::from(*b.get(p + 1).unwrap_or(&2)).max(2);
                match k {
                    2 => o.mss = Some(u16::from_be_bytes([b[p + 2], b[p + 3]])),
                    3 => o.wscale = Some(b[p + 2]),
                    4 => o.sack = true,
                    8 => o.ts = true,
                    _ => {}
                }
                p += len;
            }
        }
    }
    o
}

fn topology(prefix: &str) -> Lab {
    let mut lab = Lab::new(prefix);
    for ns in ["c", "f", "d", "sw", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "sw", "c0p");
    lab.veth("f", "f0", "sw", "f0p");
    lab.veth("d", "d0", "sw", "d0p");
    lab.veth("d", "d1", "sw", "d1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.bridge("sw", "brc", &["c0p", "f0p", "d0p"]);
    lab.bridge("sw", "brs", &["d1p", "r1p", "r2p"]);
    lab.addr("c", "c0", "10.10.0.2/24");
    lab.addr("f", "f0", "10.10.0.3/24");
    lab.addr("r1", "r0", "10.20.0.11/24");
    lab.addr("r2", "r0", "10.20.0.12/24");
    for ns in ["r1", "r2"] {
        lab.default_route(ns, "10.20.0.1".parse().expect("gw"));
    }
    lab
}

/// The sessions `rvsadm -Lnc` lists: (all, those of the real client).
fn sessions(d: &Director) -> (usize, usize) {
    let text = d.rvsadm(&["-Lnc"]);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .collect();
    let mine = rows
        .iter()
        .filter(|l| l.contains(&format!(" {CLIENT}:")))
        .count();
    (rows.len(), mine)
}

/// `hping3 --flood --rand-source -S` to `VIP:port` from `f` for `secs` seconds.
fn flood(lab: &Lab, port: u16, secs: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns("f")])
        .args(["timeout", &secs.to_string(), "hping3", "-q", "--flood"])
        .args(["--rand-source", "-S", "-p", &port.to_string(), VIP])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3")
}

/// Curls in a loop from the client to `VIP:port/` for each port until `stop`: (answered,
/// failed).
fn curl_loop(
    lab: &Lab,
    ports: &[u16],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    let ns = lab.ns("c");
    let ports = ports.to_vec();
    std::thread::spawn(move || {
        let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
        while !stop.load(Ordering::Relaxed) {
            for p in &ports {
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns, "curl", "-s", "-o", "/dev/null"])
                    .args(["--max-time", "15", &format!("http://{VIP}:{p}/")])
                    .output()
                    .expect("curl");
                if out.status.success() {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        (ok.into_inner(), failed.into_inner())
    })
}

/// Downloads blob.bin from `VIP:port` in the client's namespace (bounded by `secs`, at
/// `rate` when given); its sha256, or `None` when curl failed.
fn download(lab: &Lab, port: u16, secs: u32, rate: Option<&str>) -> Option<String> {
    let out = std::env::temp_dir().join(format!("rsp-{}-{port}.out", std::process::id()));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns("c"), "curl", "-s"])
        .args(["--max-time", &secs.to_string()]);
    if let Some(r) = rate {
        cmd.args(["--limit-rate", r]);
    }
    let status = cmd
        .arg("-o")
        .arg(&out)
        .arg(format!("http://{VIP}:{port}/blob.bin"))
        .status()
        .expect("curl");
    let ok = status.success();
    if !ok {
        eprintln!("download from :{port}: curl {status}");
    }
    let sha = ok.then(|| sha256(&out));
    let _ = std::fs::remove_file(&out);
    sha
}

/// A flood of `secs` seconds at `VIP:flood_port` while the client curls both services
/// and downloads the blob through `dl_port`: (curls answered, failed, download sha).
fn under_flood(
    lab: &Lab,
    flood_port: u16,
    dl_port: u16,
    secs: u32,
) -> (usize, usize, Option<String>) {
    let mut f = flood(lab, flood_port, secs);
    std::thread::sleep(Duration::from_millis(500));
    let stop = Arc::new(AtomicBool::new(false));
    let curls = curl_loop(lab, &[80, 81], stop.clone());
    let t = Instant::now();
    let sha = download(lab, dl_port, 60, None);
    eprintln!(
        "download under the flood: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let _ = f.wait();
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = curls.join().expect("curls");
    (ok, failed, sha)
}

#[test]
fn syn_proxy_keeps_the_table_for_real_clients_under_a_random_source_flood() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let have = |c: &str| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    assert!(
        have("hping3"),
        "hping3 is missing: scripts/setup installs it"
    );
    let t0 = Instant::now();
    let (www, want) = blob_dir("rsp", 4 * 1024 * 1024);
    let mut lab = topology("rsp");
    for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
    }
    let extra = format!(
        "[sessions]\ncapacity_per_core = {CAPACITY}\nsyn_proxy_rate = {RATE}\n\n\
         [[services]]\nproto = \"tcp\"\nvip = \"{VIP}:80\"\nscheduler = \"rr\"\nsyn_proxy = \"on\"\n\
         real = [\n  {{ address = \"10.20.0.11:80\", forward = \"masq\" }},\n  \
         {{ address = \"10.20.0.12:80\", forward = \"masq\" }},\n]\n\n\
         [[services]]\nproto = \"tcp\"\nvip = \"{VIP}:81\"\nscheduler = \"rr\"\nsyn_proxy = \"on\"\n\
         laddrs = [\"10.20.0.100\"]\n\
         real = [\n  {{ address = \"10.20.0.11:80\", forward = \"fullnat\" }},\n  \
         {{ address = \"10.20.0.12:80\", forward = \"fullnat\" }},\n]\n"
    );
    let d = Director::start(
        &lab,
        "d",
        "rsp",
        &[
            DirPort {
                name: "dpdk0",
                iface: "d0",
                addrs: &["10.10.0.1/24"],
            },
            DirPort {
                name: "dpdk1",
                iface: "d1",
                addrs: &["10.20.0.1/24"],
            },
        ],
        1,
        &extra,
    );
    let listing = d.rvsadm(&["-Ln"]);
    assert!(
        listing.contains(&format!("TCP  {VIP}:80 rr synproxy\n")),
        "{listing}"
    );
    // The first connections (the neighbours resolve).
    let mut first = None;
    for _ in 0..20 {
        first = lab.curl("c", &format!("http://{VIP}:80/"));
        if first.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(first.is_some(), "a curl through the proxy: {}", d.log());
    assert!(lab.curl("c", &format!("http://{VIP}:81/")).is_some());
    assert!(d.counter("syn_cookies_sent") >= 2);
    assert_eq!(
        d.counter("syn_proxy_established"),
        d.counter("syn_proxy_sessions")
    );

    // The client's options at the real servers.
    let cap_path = std::env::temp_dir().join(format!("rsp-{}-cap.py", std::process::id()));
    std::fs::write(&cap_path, CAPTURE).expect("capture script");
    let cap = cap_path.display().to_string();
    let capture = |ns: &str, dev: &str| {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(ns), "python3", &cap, dev, "8"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("capture");
        let mut out = child.stdout.take().expect("stdout");
        let mut ready = [0u8; 6];
        let _ = std::io::Read::read_exact(&mut out, &mut ready);
        (child, out)
    };
    let caps = [capture("c", "c0"), capture("r1", "r0"), capture("r2", "r0")];
    for port in [80, 81] {
        assert!(lab.curl("c", &format!("http://{VIP}:{port}/")).is_some());
    }
    let mut seen = Vec::new();
    for (mut child, mut out) in caps {
        let _ = child.wait();
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        seen.push(s.trim().to_string());
    }
    let _ = std::fs::remove_file(&cap_path);
    let client = parse_opts(&seen[0]);
    eprintln!(
        "client SYN {client:?}; at r1 {:?}; at r2 {:?}",
        seen[1], seen[2]
    );
    assert!(
        client.ts && client.sack && client.wscale.is_some(),
        "{client:?}"
    );
    let at_server: Vec<SynOpts> = seen[1..]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_opts(s))
        .collect();
    assert!(!at_server.is_empty(), "a real server saw the SYN");
    for o in &at_server {
        assert_eq!(o.mss, client.mss, "MSS");
        assert_eq!(o.wscale, client.wscale, "window scale");
        assert!(o.sack && o.ts, "SACK-permitted and timestamps: {o:?}");
    }

    // Proxy on: the flood at the NAT service, then at the FULLNAT one.
    for (port, secs) in [(80u16, 8u32), (81, 6)] {
        let cookies0 = d.counter("syn_cookies_sent");
        let (ok, failed, sha) = under_flood(&lab, port, port, secs);
        let cookies = d.counter("syn_cookies_sent") - cookies0;
        let (all, mine) = sessions(&d);
        eprintln!(
            "proxy on, flood at :{port} for {secs} s: {cookies} cookies sent ({:.0}/s), \
             {ok} curls answered, {failed} failed; sessions {all} (client's {mine}); \
             bad cookies {}",
            cookies as f64 / f64::from(secs),
            d.drops("syn-proxy-bad-cookie")
        );
        assert!(
            cookies > 1000,
            "the flood was answered with cookies: {cookies}"
        );
        assert_eq!(failed, 0, "every curl succeeded");
        assert!(ok >= 2, "curls went on: {ok}");
        assert_eq!(
            sha.as_deref(),
            Some(want.as_str()),
            "the download is byte-exact"
        );
        assert_eq!(all, mine, "the table holds only the client's sessions");
    }

    // 1 % loss each way at the client: an 4 MB transfer through the FULLNAT proxy.
    let rules = "table inet loss {\n\
                   counter dropped_in {}\n  counter dropped_out {}\n\
                   chain in { type filter hook input priority 0; numgen random mod 100 < 1 counter name \"dropped_in\" drop; }\n\
                   chain out { type filter hook output priority 0; numgen random mod 100 < 1 counter name \"dropped_out\" drop; }\n\
                 }\n";
    let nft_path = std::env::temp_dir().join(format!("rsp-{}-loss.nft", std::process::id()));
    std::fs::write(&nft_path, rules).expect("loss.nft");
    lab.exec("c", &["nft", "-f", &nft_path.display().to_string()]);
    let _ = std::fs::remove_file(&nft_path);
    for port in [81u16, 80] {
        let sha = download(&lab, port, 60, None);
        assert_eq!(
            sha.as_deref(),
            Some(want.as_str()),
            "byte-exact under loss (:{port})"
        );
    }
    let listed = String::from_utf8_lossy(
        &lab.exec("c", &["nft", "list", "table", "inet", "loss"])
            .stdout,
    )
    .into_owned();
    eprintln!(
        "loss: {}",
        listed
            .lines()
            .filter(|l| l.contains("packets"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    lab.exec("c", &["nft", "delete", "table", "inet", "loss"]);

    // Auto: the flood's sessions are bounded by the rate before the pressure shows.
    let svc = format!("{VIP}:80");
    d.rvsadm(&["-E", "-t", &svc, "-s", "rr", "-j", "auto"]);
    assert!(d
        .rvsadm(&["-Ln"])
        .contains(&format!("TCP  {VIP}:80 rr synproxy auto\n")));
    let cookies0 = d.counter("syn_cookies_sent");
    let (ok, failed, sha) = under_flood(&lab, 80, 80, 6);
    let (all, mine) = sessions(&d);
    eprintln!(
        "auto, flood at :80 for 6 s: {} cookies sent, {ok} curls answered, {failed} failed; \
         sessions {all} (client's {mine})",
        d.counter("syn_cookies_sent") - cookies0
    );
    assert_eq!(failed, 0, "every curl succeeded in auto");
    assert_eq!(sha.as_deref(), Some(want.as_str()));
    assert!(
        all - mine <= 2 * RATE as usize,
        "the flood's sessions are bounded in auto: {}",
        all - mine
    );

    // Off: the same flood fills the table.
    d.rvsadm(&["-E", "-t", &svc, "-s", "rr"]);
    assert!(d.rvsadm(&["-Ln"]).contains(&format!("TCP  {VIP}:80 rr\n")));
    let (base, _) = sessions(&d);
    let full0 = d.drops("table-full");
    let mut f = flood(&lab, 80, 4);
    let start = Instant::now();
    let mut filled_at = None;
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(250));
        let (n, _) = sessions(&d);
        samples.push((start.elapsed().as_secs_f64(), n));
        if filled_at.is_none() && n >= CAPACITY * 9 / 10 {
            filled_at = Some(start.elapsed().as_secs_f64());
        }
    }
    let _ = f.wait();
    let full = d.drops("table-full") - full0;
    eprintln!(
        "proxy off, flood at :80: sessions over time {samples:?}; table 90 % full after {filled_at:?} s; \
         table-full drops {full}"
    );
    let (n, _) = sessions(&d);
    assert!(
        n >= CAPACITY * 9 / 10 && n > base,
        "without the proxy the flood fills the table: {n} of {CAPACITY}"
    );
    let _ = std::fs::remove_dir_all(&www);
    eprintln!("lab_synproxy: {:.1} s", t0.elapsed().as_secs_f64());
}

/// An active/standby pair (`topo::active_standby_one_server`) with a SYN-proxied FULLNAT
/// service: two rate-limited downloads through the active director while the client's
/// namespace floods the VIP with random-source SYNs (`hping3 -i u200`); the active
/// director is killed midway and the standby started as master: both downloads end
/// byte-exact through it (their sessions were synced with the proxy's translation), and
/// the standby holds no session of the flood.
#[test]
fn proxied_downloads_survive_a_takeover_during_a_flood() {
    use rvs_tests::failover::{established, start_director, wait_for};
    use rvs_tests::topo::active_standby_one_server;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    const LIP: &str = "10.20.0.200";
    const LEN: u64 = 4 * 1024 * 1024;
    let (www, want) = blob_dir("rspf", LEN as u32);
    let mut lab = active_standby_one_server("rspf");
    lab.serve_dir(
        "r1",
        "10.20.0.11",
        "10.20.0.11".parse().expect("ip"),
        80,
        &www,
    );
    let mut a = start_director(&lab, "da", "rspfa", 3, "");
    let b = start_director(
        &lab,
        "db",
        "rspfb",
        4,
        "[sync]\nstate = \"backup\"\nmcast_interface = \"s1\"\nsyncid = 9\n",
    );
    let svc = format!("{VIP}:80");
    for d in [&a, &b] {
        d.rvsadm(&["-A", "-t", &svc, "-s", "rr", "-j", "enable"]);
        d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:80", "-b"]);
        d.rvsadm(&["--add-laddr", "-z", LIP, "-t", &svc]);
    }
    let sync = |d: &Director, dev: &str| {
        d.rvsadm(&[
            "--start-daemon",
            "master",
            "--mcast-interface",
            dev,
            "--syncid",
            "9",
        ]);
    };
    sync(&a, "s0");
    wait_for("the VIP to answer", 30, || {
        lab.try_exec(
            "c",
            &["curl", "-s", "--max-time", "3", &format!("http://{VIP}/")],
        )
        .status
        .success()
    });
    // Small receive buffers: a download curl reads slowly crosses the director at that
    // rate instead of landing in a buffer of megabytes at once.
    lab.exec(
        "c",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 131072"],
    );
    let mut flood = Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            "timeout",
            "40",
            "hping3",
            "-q",
            "-i",
            "u200",
            "--rand-source",
            "-S",
        ])
        .args(["-p", "80", VIP])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3");
    let outs: Vec<_> = [45001u16, 45002]
        .iter()
        .map(|p| std::env::temp_dir().join(format!("rspf-{}-{p}.out", std::process::id())))
        .collect();
    let downloads: Vec<Child> = [45001u16, 45002]
        .iter()
        .zip(&outs)
        .map(|(p, out)| {
            Command::new("ip")
                .args(["netns", "exec", &lab.ns("c"), "curl", "-s"])
                .args(["--limit-rate", "200K", "--max-time", "90", "--local-port"])
                .arg(p.to_string())
                .arg("-o")
                .arg(out)
                .arg(format!("http://{VIP}/blob.bin"))
                .stdin(Stdio::null())
                .spawn()
                .expect("curl")
        })
        .collect();
    wait_for("1 MiB of each download", 30, || {
        outs.iter()
            .all(|o| std::fs::metadata(o).is_ok_and(|m| m.len() > 1024 * 1024))
    });
    let synced = || {
        let on_b = established(&b);
        [45001, 45002]
            .iter()
            .all(|p| on_b.iter().any(|r| r.contains(&format!("{CLIENT}:{p}"))))
    };
    let t = Instant::now();
    while !synced() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        synced(),
        "the downloads' sessions on the standby\nactive:\n{}\n{}\nstandby:\n{}\n{}",
        a.rvsadm(&["-Lnc"]),
        a.rvsadm(&["--dataplane"]),
        b.rvsadm(&["-Lnc"]),
        b.rvsadm(&["--dataplane"])
    );
    let sizes: Vec<u64> = outs
        .iter()
        .map(|o| std::fs::metadata(o).map_or(0, |m| m.len()))
        .collect();
    assert!(
        sizes.iter().all(|n| *n < LEN),
        "the downloads are still running at the takeover: {sizes:?}"
    );
    let cookies_a = a.counter("syn_cookies_sent");
    a.kill_hard();
    sync(&b, "s1");
    eprintln!(
        "takeover at {sizes:?} of {LEN} bytes; the first director had sent {cookies_a} cookies"
    );
    for (mut c, o) in downloads.into_iter().zip(&outs) {
        let ok = c.wait().expect("curl").success();
        let sha = sha256(o);
        let _ = std::fs::remove_file(o);
        assert!(
            ok,
            "a download survives the takeover\n{}",
            b.rvsadm(&["--dataplane"])
        );
        assert_eq!(sha, want, "byte-exact");
    }
    let (all, mine) = sessions(&b);
    let cookies_b = b.counter("syn_cookies_sent");
    let _ = flood.kill();
    let _ = flood.wait();
    eprintln!(
        "the new active director: {cookies_b} cookies sent, sessions {all} (client's {mine})"
    );
    assert!(
        cookies_a > 100 && cookies_b > 100,
        "the flood was answered by both"
    );
    assert_eq!(
        all, mine,
        "no session of the flood on the new active director"
    );
    let _ = std::fs::remove_dir_all(&www);
}
