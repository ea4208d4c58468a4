//! rvsd's Prometheus endpoint scraped by the real Prometheus server (Debian's
//! `prometheus`) during NAT traffic in the two-port lab (client 10.10.0.2 — director —
//! rs1 10.20.0.11, rs2 10.20.0.12, Python's http.server on port 80).
//!
//! Prometheus runs in the director's namespace (rvsd's endpoint is on its loopback),
//! scraping every second; the test asks its HTTP API what an operator's dashboard would
//! and compares with `ipvsadm -Ln` and `ipvsadm -Ln --stats --exact` read at about the
//! same time: the gauges equal, the counters between the readings before and after a
//! scrape. Deleting the service does not lower the IPVS totals (no counter reset in
//! Prometheus' eyes), and the endpoint refuses what it should.
//!
//! Needs root; skipped (with a message) where namespaces cannot be made or Prometheus is
//! not installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_tests::failover::wait_for;
use rvs_tests::topo::{two_port, two_port_director_with, VIP2};
use rvs_tests::{blob_dir, can_build_labs, Director, Lab};

/// rvsd's metrics endpoint, on the director namespace's loopback.
const METRICS: &str = "127.0.0.1:9578";
/// Prometheus' web listener, on the same loopback.
const PROM: &str = "127.0.0.1:9590";
/// The transfer that keeps one connection active: 2 MB at 128 kB/s.
const BLOB_LEN: u32 = 2 * 1024 * 1024;
/// Short requests through the VIP.
const REQUESTS: usize = 12;

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn skip() -> bool {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return true;
    }
    if !Path::new(PROMETHEUS).exists() {
        eprintln!("skipped: {PROMETHEUS} is not installed (scripts/setup installs it)");
        return true;
    }
    false
}

/// Prometheus in namespace `d`, scraping rvsd every second, its data in `dir`.
fn start_prometheus(lab: &mut Lab, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("prometheus dir");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: rvs\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .expect("prometheus.yml");
    let data = dir.join("data");
    lab.spawn(
        "d",
        &[
            PROMETHEUS,
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={PROM}"),
        ],
    );
    wait_for("prometheus to be ready", 30, || {
        curl(lab, &format!("http://{PROM}/-/ready")).is_some()
    });
}

/// `curl` in the director's namespace (bounded); the body on success.
fn curl(lab: &Lab, url: &str) -> Option<String> {
    let out = lab.try_exec("d", &["curl", "-sf", "--max-time", "5", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The HTTP status rvsd's endpoint gives to curl with `args`.
fn status(lab: &Lab, args: &[&str]) -> String {
    let url = format!("http://{METRICS}/metrics");
    let mut a = vec!["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"];
    a.extend_from_slice(&["--max-time", "5"]);
    a.extend_from_slice(args);
    a.push(&url);
    String::from_utf8_lossy(&lab.try_exec("d", &a).stdout).into_owned()
}

/// One instant query through Prometheus' HTTP API: each series' labels and value.
fn query(lab: &Lab, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let out = lab.try_exec(
        "d",
        &[
            "curl",
            "-sf",
            "--max-time",
            "5",
            "-G",
            &format!("http://{PROM}/api/v1/query"),
            "--data-urlencode",
            &format!("query={q}"),
        ],
    );
    assert!(out.status.success(), "query {q} failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("prometheus json");
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"]
        .as_array()
        .expect("vector")
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect();
            let value = r["value"][1].as_str().expect("value").parse().expect("f64");
            (labels, value)
        })
        .collect()
}

/// The single value of a query that yields one series.
fn scalar(lab: &Lab, q: &str) -> f64 {
    let r = query(lab, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0].1
}

/// `ipvsadm -Ln`: per real server (`RIP:port`) of the TCP services its Weight,
/// ActiveConn and InActConn.
fn listing(d: &Director) -> BTreeMap<String, [f64; 3]> {
    let mut tcp = false;
    let mut m = BTreeMap::new();
    for l in d.rvsadm(&["-Ln"]).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.first().copied() {
            Some("TCP") => tcp = true,
            Some("UDP" | "FWM") => tcp = false,
            Some("->") if tcp && f.len() == 6 => {
                let n = |i: usize| f[i].parse::<f64>().expect("number");
                m.insert(f[1].to_string(), [n(3), n(4), n(5)]);
            }
            _ => {}
        }
    }
    m
}

/// The same from Prometheus' latest scrape, keyed as `ipvsadm -Ln` prints them.
fn scraped(lab: &Lab) -> BTreeMap<String, [f64; 3]> {
    let mut m: BTreeMap<String, [f64; 3]> = BTreeMap::new();
    for (i, name) in [
        "node_ipvs_backend_weight",
        "node_ipvs_backend_connections_active",
        "node_ipvs_backend_connections_inactive",
    ]
    .iter()
    .enumerate()
    {
        for (l, v) in query(lab, &format!("{name}{{proto=\"TCP\"}}")) {
            let k = format!("{}:{}", l["remote_address"], l["remote_port"]);
            m.entry(k).or_default()[i] = v;
        }
    }
    m
}

/// `ipvsadm -Ln --stats --exact` summed over the services: Conns, InPkts, OutPkts,
/// InBytes, OutBytes.
fn stats(d: &Director) -> [f64; 5] {
    let mut t = [0f64; 5];
    for l in d.rvsadm(&["-Ln", "--stats", "--exact"]).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 7 && ["TCP", "UDP", "FWM"].contains(&f[0]) {
            for (i, x) in f[2..].iter().enumerate() {
                t[i] += x.parse::<f64>().expect("number");
            }
        }
    }
    t
}

const TOTALS: [&str; 5] = [
    "node_ipvs_connections_total",
    "node_ipvs_incoming_packets_total",
    "node_ipvs_outgoing_packets_total",
    "node_ipvs_incoming_bytes_total",
    "node_ipvs_outgoing_bytes_total",
];

/// A slow download through the VIP: one connection stays active meanwhile.
fn start_transfer(out: &Path, lab: &Lab) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            "curl",
            "-s",
            "--max-time",
            "40",
            "--limit-rate",
            "128K",
            "-o",
        ])
        .arg(out)
        .arg(format!("http://{VIP2}/blob.bin"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl")
}

#[test]
fn prometheus_scrapes_what_ipvsadm_shows() {
    if skip() {
        return;
    }
    let started = Instant::now();
    let prefix = "rvm";
    let (www, _) = blob_dir(prefix, BLOB_LEN);
    let mut lab = two_port(prefix, true, 8080, 8080);
    lab.exec(
        "c",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 131072"],
    );
    for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
        lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
    }
    let d = two_port_director_with(
        &lab,
        prefix,
        2,
        &format!("[metrics]\nlisten = \"{METRICS}\"\n"),
    );
    let svc = format!("{VIP2}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:80", "-m", "-w", "2"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-m", "-w", "3"]);
    // A fwmark service (no traffic): node_exporter's labels for it.
    d.rvsadm(&["-A", "-f", "1", "-s", "wlc"]);
    d.rvsadm(&["-a", "-f", "1", "-r", "10.20.0.12:80", "-m", "-w", "4"]);

    // The endpoint's text passes Prometheus' own linter.
    let text = curl(&lab, &format!("http://{METRICS}/metrics")).expect("scrape");
    let lint = Command::new("sh")
        .arg("-c")
        .arg("promtool check metrics")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("promtool");
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let prom_dir: PathBuf =
        std::env::temp_dir().join(format!("{prefix}-prom-{}", std::process::id()));
    start_prometheus(&mut lab, &prom_dir);
    wait_for("the first scrape of rvsd", 15, || {
        query(&lab, "up{job=\"rvs\"}")
            .first()
            .is_some_and(|(_, v)| *v == 1.0)
    });

    // Traffic: one slow transfer held open, and short requests.
    let blob_out = prom_dir.join("blob.out");
    let mut transfer = start_transfer(&blob_out, &lab);
    for i in 0..REQUESTS {
        assert!(
            lab.curl("c", &format!("http://{VIP2}/")).is_some(),
            "request {i} through the VIP failed"
        );
    }
    wait_for("the transfer to be under way", 10, || {
        std::fs::metadata(&blob_out).is_ok_and(|m| m.len() > 64 * 1024)
    });

    // The gauges: what Prometheus scraped equals ipvsadm -Ln (within a scrape or two).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (a, p) = (listing(&d), scraped(&lab));
        if a == p && a.values().any(|v| v[1] == 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ipvsadm -Ln {a:?} vs Prometheus {p:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Weights as configured, every short request's connection inactive now, the
    // transfer's active.
    let l = listing(&d);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l["10.20.0.11:80"][0] + l["10.20.0.12:80"][0], 5.0);
    assert_eq!(
        l.values().map(|v| v[1] + v[2]).sum::<f64>(),
        (REQUESTS + 1) as f64,
        "{l:?}"
    );

    // The counters: Prometheus' latest scrape lies between ipvsadm's readings before
    // and after it.
    let before = stats(&d);
    let read_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    // Prometheus scrapes every second, but on a loaded machine a scrape can start late:
    // wait (bounded) for one that began after the reading above (a scrape's samples carry
    // its start time; 50 ms for Prometheus' alignment of scrape timestamps).
    wait_for("a scrape after ipvsadm's first reading", 10, || {
        scalar(&lab, "timestamp(up{job=\"rvs\"})") > read_at + 0.05
    });
    let scraped_totals: Vec<f64> = TOTALS.iter().map(|t| scalar(&lab, t)).collect();
    let after = stats(&d);
    for (i, t) in TOTALS.iter().enumerate() {
        assert!(
            before[i] <= scraped_totals[i] && scraped_totals[i] <= after[i],
            "{t}: ipvsadm {} then {}, Prometheus {}",
            before[i],
            after[i],
            scraped_totals[i]
        );
    }
    // No new connection meanwhile: the connection count is exact.
    assert_eq!(scraped_totals[0], (REQUESTS + 1) as f64);
    // Rates: the transfer is moving.
    assert!(scalar(&lab, "sum(rate(node_ipvs_outgoing_bytes_total[5s]))") > 0.0);
    assert!(scalar(&lab, "sum(rate(rvs_worker_packets_total[5s]))") > 0.0);

    // A dashboard query as IPVS dashboards for node_exporter write it: active and
    // inactive connections per virtual service.
    let per_service = query(
        &lab,
        "sum by (local_address, local_port, proto) (node_ipvs_backend_connections_active + node_ipvs_backend_connections_inactive)",
    );
    let tcp: Vec<_> = per_service
        .iter()
        .filter(|(l, _)| l["proto"] == "TCP")
        .collect();
    assert_eq!(tcp.len(), 1, "{per_service:?}");
    assert_eq!(tcp[0].0["local_address"], VIP2);
    assert_eq!(tcp[0].0["local_port"], "80");
    assert_eq!(tcp[0].1, (REQUESTS + 1) as f64, "{per_service:?}");
    // The fwmark service as node_exporter labels it from /proc/net/ip_vs (Prometheus
    // stores an empty label as no label).
    let fwm = query(&lab, "node_ipvs_backend_weight{proto=\"FWM\"}");
    assert_eq!(fwm.len(), 1, "{fwm:?}");
    let (l, w) = &fwm[0];
    let label = |k: &str| l.get(k).map_or("", String::as_str);
    assert_eq!(
        (
            label("local_address"),
            label("local_port"),
            label("local_mark"),
            label("remote_address"),
            *w
        ),
        ("", "0", "00000001", "10.20.0.12", 4.0)
    );

    // Deleting the service keeps the totals (the kernel's ip_vs_stats keeps deleted
    // services' traffic too): no drop, no counter reset in Prometheus' eyes.
    let _ = transfer.kill();
    let _ = transfer.wait();
    let kept = stats(&d);
    d.rvsadm(&["-D", "-t", &svc]);
    d.rvsadm(&["-Z"]);
    // Gone from the next scrape on; on a loaded machine that scrape can come late: wait
    // (bounded) for it rather than a fixed pause.
    rvs_tests::failover::poll_until(10, || {
        query(&lab, "node_ipvs_backend_weight{proto=\"TCP\"}").is_empty()
    });
    assert!(
        query(&lab, "node_ipvs_backend_weight{proto=\"TCP\"}").is_empty(),
        "the deleted service's servers are still scraped"
    );
    for (i, t) in TOTALS.iter().enumerate() {
        assert!(
            scalar(&lab, t) >= kept[i],
            "{t} dropped below {} after the service was deleted",
            kept[i]
        );
        assert_eq!(scalar(&lab, &format!("resets({t}[1m])")), 0.0, "{t}");
    }

    // What the endpoint refuses.
    assert_eq!(status(&lab, &[]), "200");
    assert_eq!(status(&lab, &["-X", "POST", "-d", "x=1"]), "405");
    assert_eq!(status(&lab, &["-X", "DELETE"]), "405");
    let pad = format!("X-Pad: {}", "a".repeat(16 * 1024));
    assert_eq!(status(&lab, &["-H", &pad]), "431");

    let _ = std::fs::remove_dir_all(&prom_dir);
    let _ = std::fs::remove_dir_all(&www);
    eprintln!("lab_metrics took {:?}", started.elapsed());
}
