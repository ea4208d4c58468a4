//! `rvs-bench`: the line-rate harness. Runs the real engine on DPDK devices and, on the
//! same devices, an I/O floor (receive and transmit, no processing) and a lookup floor
//! (the I/O floor plus the two memory reads any session lookup makes); prints Mpps per
//! worker, the ratios to both floors, cycles per packet, drops by reason, new sessions per
//! second and bytes per session. See BENCHMARKS.md.
//!
//! Every measurement runs in its own child process (EAL can start only once per process,
//! and each run needs fresh ports and hugepages): the parent re-executes itself with
//! `--child TEST --child-workers N` and reads `PROGRESS`/`RESULT` lines from its stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use rvs_benches::capture::{build_frame, Flow, Kind, PcapWriter, CLIENT_ISN, L4};
use rvs_benches::clock;
use rvs_benches::plan::{self, Family, Mode};
use rvs_benches::report::{
    Families, NicPhase, ProxyFigures, Row, RunResult, Summary, SynFloodFigures, WorkerFigures,
};
use rvs_benches::sweep::{Point, Sweep};
use rvs_dataplane::conn::{flags as conn_flags, ConnListing};
use rvs_dataplane::dpdk::{
    self, default_eal_args, lcore, Eal, HugePageAlloc, MbufBatch, Mempool, Port, PortConf,
    PortStats, QueueId, Ring, RING_SP_SC,
};
use rvs_dataplane::engine::{Engine, WorkerReport};
use rvs_dataplane::forward::cip::ProxyHeader;
use rvs_dataplane::pipeline::DropReason;
use rvs_dataplane::service::ProxyProtocol;
use rvs_dataplane::steer::owner_of_port;

/// Command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "rvs-bench",
    about = "rvs line-rate benchmark: the real engine on DPDK devices, with the I/O floor of the same devices"
)]
struct Opts {
    /// Forwarding mode: nat, dr, tun, fullnat.
    #[arg(long, default_value = "fullnat")]
    mode: String,
    /// Flow protocol: tcp or udp.
    #[arg(long, default_value = "tcp")]
    proto: String,
    /// Established flows (= sessions) in the capture (1000 to 10000000).
    #[arg(long, default_value_t = 1_000_000)]
    flows: u64,
    /// Flows of the new-connection test (every packet a new flow's SYN); default
    /// min(flows, 1000000).
    #[arg(long)]
    new_flows: Option<u64>,
    /// Frame size on the wire, FCS included (64 to 1518); with IPv6 the size of the IPv4
    /// frame whose payload the IPv6 frames carry (they are 20 bytes longer; 64 to 1498).
    #[arg(long, default_value_t = 64)]
    frame_size: usize,
    /// IPv6 flows: VIP 2001:db8:1::1, clients in 2001:db8:64::/64, real servers
    /// 2001:db8:2::N, LIPs 2001:db8:3::N (the same as `--families 6`).
    #[arg(long)]
    ipv6: bool,
    /// Address families to measure, comma-separated: 4, 6 or 4,6 (both in the same run,
    /// alternating test by test, with a table of both side by side).
    #[arg(long, value_delimiter = ',')]
    families: Vec<String>,
    /// Worker counts to measure, comma-separated (each gets its own runs).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Seconds measured per run (after warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Tests, comma-separated: floor, lookup-floor, established, new-conn; and (not in
    /// the default list) synflood (SYNs of new flows to a SYN-proxied service: cookies
    /// answered per second) and synflood-mixed (the established flows with one such SYN
    /// after each of their packets: established packets forwarded and dropped).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "floor,lookup-floor,established,new-conn"
    )]
    tests: Vec<String>,
    /// Print the summary as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Sweep: repeat the tests for every session count of `--sweep-flows` (the
    /// new-connection test creates that many sessions) and every worker count, print one
    /// line per point and write the plot (`--plot`).
    #[arg(long)]
    sweep: bool,
    /// Session counts of the sweep, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,1000,10000,100000,1000000,10000000"
    )]
    sweep_flows: Vec<u64>,
    /// Where the sweep writes its SVG plot.
    #[arg(long, default_value = "rvs-bench-sweep.svg")]
    plot: PathBuf,
    /// Smoke run for CI: checks that packets flow, sessions are made and nothing is
    /// dropped; exits non-zero otherwise. Speed is never checked.
    #[arg(long)]
    smoke: bool,
    /// Real NIC instead of virtual devices: the client-facing port (PCI address, e.g.
    /// 0000:3b:00.0). Traffic comes from an external generator (see --write-pcap).
    #[arg(long)]
    client_dev: Option<String>,
    /// Real NIC: the server-facing port (PCI address). Without it the client port is
    /// used both ways (one-armed).
    #[arg(long)]
    server_dev: Option<String>,
    /// Extra EAL arguments (repeatable), e.g. --eal=--socket-mem=2048.
    #[arg(long, allow_hyphen_values = true)]
    eal: Vec<String>,
    /// FULLNAT over TCP: the service sends each session's real server a PROXY protocol
    /// header (`v1` or `v2`; `disable` = none). The warm-up settles every session (the
    /// client's handshake ACK makes the header go, an acknowledgement of it from the real
    /// server follows), so the established window measures the fast path with its shift.
    #[arg(long)]
    proxy_protocol: Option<String>,
    /// Idle workers that sleep: the longest pause in microseconds of a worker whose polls
    /// find every queue empty (rvsd's `[workers] idle_sleep_max_us`, 0..=10000); 0, the
    /// default, is pure polling as for line rate.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    idle_sleep_max_us: u32,
    /// Write the captures for an external generator into this directory and exit:
    /// first.pcap (each flow's SYN), established.pcap, new.pcap.
    #[arg(long)]
    write_pcap: Option<PathBuf>,
    /// `synflood-mixed`: established packets per second (millions) the NIC model
    /// offers the worker's receive queue, at a fixed rate, in both phases.
    #[arg(long, default_value_t = 2.0)]
    offer_established: f64,
    /// `synflood-mixed`: the flood's SYNs per second (millions) the NIC model offers in
    /// its second phase, on top of the established packets.
    #[arg(long, default_value_t = 8.0)]
    offer_syn: f64,
    /// Internal: run one measurement (one of the tests) in this process.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: workers of the child measurement.
    #[arg(long, hide = true, default_value_t = 1)]
    child_workers: usize,
}

/// The measurements, in the order a run makes them.
const TESTS: [&str; 4] = ["floor", "lookup-floor", "established", "new-conn"];

/// The SYN proxy's measurements (asked for by name).
const SYN_TESTS: [&str; 2] = ["synflood", "synflood-mixed"];

impl Opts {
    /// The families to measure, in order (`--families`, else `--ipv6`, else IPv4).
    fn families(&self) -> Vec<Family> {
        if !self.families.is_empty() {
            return self
                .families
                .iter()
                .filter_map(|f| Family::parse(f))
                .collect();
        }
        vec![if self.ipv6 { Family::V6 } else { Family::V4 }]
    }
    /// The family of a child's measurement (the first asked).
    fn family(&self) -> Family {
        self.families().first().copied().unwrap_or_default()
    }
    /// The opts of one family's runs.
    fn of_family(&self, family: Family) -> Opts {
        Opts {
            ipv6: false,
            families: vec![family.digit().into()],
            ..self.clone()
        }
    }
    /// The frame size on the wire of this family's frames.
    fn wire_size(&self) -> usize {
        (self.frame_size + self.family().extra_header()).min(rvs_benches::capture::MAX_FRAME)
    }
    fn mode(&self) -> Mode {
        Mode::parse(&self.mode).unwrap_or(Mode::Fullnat)
    }
    fn l4(&self) -> L4 {
        if self.proto.eq_ignore_ascii_case("udp") {
            L4::Udp
        } else {
            L4::Tcp
        }
    }
    fn proxy(&self) -> ProxyProtocol {
        match self
            .proxy_protocol
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("v1") => ProxyProtocol::V1,
            Some("v2") => ProxyProtocol::V2,
            _ => ProxyProtocol::Off,
        }
    }
    fn new_flows(&self) -> u64 {
        self.new_flows.unwrap_or(self.flows.min(1_000_000)).max(1)
    }
    fn real_nic(&self) -> bool {
        self.client_dev.is_some()
    }
    /// The arguments a child needs (everything but the test list and output flags).
    fn child_args(&self, test: &str, workers: usize) -> Vec<String> {
        let mut a = vec![
            "--child".into(),
            test.into(),
            "--child-workers".into(),
            workers.to_string(),
            "--mode".into(),
            self.mode.clone(),
            "--proto".into(),
            self.proto.clone(),
            "--flows".into(),
            self.flows.to_string(),
            "--new-flows".into(),
            self.new_flows().to_string(),
            "--frame-size".into(),
            self.frame_size.to_string(),
            "--families".into(),
            self.family().digit().into(),
            "--duration".into(),
            self.duration.to_string(),
            "--offer-established".into(),
            self.offer_established.to_string(),
            "--offer-syn".into(),
            self.offer_syn.to_string(),
        ];

        if let Some(p) = &self.proxy_protocol {
            a.push(format!("--proxy-protocol={p}"));
        }
        if self.idle_sleep_max_us > 0 {
            a.push(format!("--idle-sleep-max-us={}", self.idle_sleep_max_us));
        }
        if let Some(d) = &self.client_dev {
            a.push(format!("--client-dev={d}"));
        }
        if let Some(d) = &self.server_dev {
            a.push(format!("--server-dev={d}"));
        }
        for e in &self.eal {
            a.push(format!("--eal={e}"));
        }
        a
    }
}

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let opts = Opts::parse();
    let res = if let Some(test) = opts.child.clone() {
        child(&opts, &test).map(|r| {
            println!("RESULT {}", serde_json::to_string(&r).unwrap_or_default());
            true
        })
    } else if let Some(dir) = &opts.write_pcap {
        write_generator_pcaps(&opts, dir).map(|_| true)
    } else if opts.sweep {
        sweep(&opts)
    } else {
        parent(&opts)
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rvs-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- parent

fn validate(opts: &Opts) -> Result<(), Error> {
    if Mode::parse(&opts.mode).is_none() {
        return Err(format!("--mode {:?}: use nat, dr, tun or fullnat", opts.mode).into());
    }
    if !["tcp", "udp"].contains(&opts.proto.to_ascii_lowercase().as_str()) {
        return Err(format!("--proto {:?}: use tcp or udp", opts.proto).into());
    }
    if opts.flows == 0 || opts.flows > plan::MAX_FLOWS.min(10_000_000) {
        return Err("--flows: 1 to 10000000".into());
    }
    if !(64..=1518).contains(&opts.frame_size) {
        return Err("--frame-size: 64 to 1518".into());
    }
    if opts.ipv6 && !opts.families.is_empty() {
        return Err("--ipv6 and --families: give one (--ipv6 is --families 6)".into());
    }
    for f in &opts.families {
        if Family::parse(f).is_none() {
            return Err(format!("--families: {f:?}: use 4, 6 or 4,6").into());
        }
    }
    let families = opts.families();
    let mut seen = families.clone();
    seen.dedup();
    if seen.len() != families.len() || families.len() > 2 {
        return Err("--families: each family once: 4, 6, 4,6 or 6,4".into());
    }
    let v6 = families.contains(&Family::V6);
    if v6 {
        if opts.frame_size > 1498 {
            return Err(
                "--frame-size with IPv6 (--ipv6, --families): 64 to 1498 (the IPv6 frame \
                 carries the payload of the IPv4 frame of that size, 20 bytes more)"
                    .into(),
            );
        }
        if let Some(t) = opts.tests.iter().find(|t| SYN_TESTS.contains(&t.as_str())) {
            return Err(format!(
                "--tests {t} with IPv6 (--ipv6, --families): the SYN proxy does not \
                 carry IPv6 sessions (its sequence translation skips them)"
            )
            .into());
        }
        if opts.proxy() != ProxyProtocol::Off {
            return Err(
                "--proxy-protocol with IPv6 (--ipv6, --families): the PROXY header segment \
                 is built over IPv4 only"
                    .into(),
            );
        }
    }
    if opts.workers.is_empty() || opts.workers.iter().any(|&w| w == 0 || w > 64) {
        return Err("--workers: a list of 1 to 64".into());
    }
    for t in &opts.tests {
        if !TESTS.contains(&t.as_str()) && !SYN_TESTS.contains(&t.as_str()) {
            return Err(format!("--tests: unknown test {t:?}").into());
        }
    }
    if opts.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    if !(opts.offer_established > 0.0 && opts.offer_established <= 100.0) {
        return Err("--offer-established: 0 to 100 (Mpps), above 0".into());
    }
    if !(opts.offer_syn >= 0.0 && opts.offer_syn <= 100.0) {
        return Err("--offer-syn: 0 to 100 (Mpps)".into());
    }
    if let Some(pp) = &opts.proxy_protocol {
        if !["v1", "v2", "disable"].contains(&pp.to_ascii_lowercase().as_str()) {
            return Err(format!("--proxy-protocol {pp:?}: use v1, v2 or disable").into());
        }
    }
    if opts.proxy() != ProxyProtocol::Off {
        if opts.mode() != Mode::Fullnat {
            return Err(format!(
                "--proxy-protocol: FULLNAT only (--mode fullnat), not --mode {}",
                opts.mode
            )
            .into());
        }
        if opts.l4() != L4::Tcp {
            return Err("--proxy-protocol: TCP flows only (--proto tcp)".into());
        }
        if opts.real_nic() {
            return Err(
                "--proxy-protocol: virtual devices only (the harness answers for \
                        the real servers through its warm-up port)"
                    .into(),
            );
        }
    }
    Ok(())
}

fn parent(opts: &Opts) -> Result<bool, Error> {
    validate(opts)?;
    let exe = std::env::current_exe()?;
    let families = opts.families();
    let per_family: Vec<Opts> = families.iter().map(|&f| opts.of_family(f)).collect();
    let mut summaries: Vec<Summary> = families
        .iter()
        .map(|_| Summary {
            date: today(),
            cpu: cpu_model(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            ..Summary::default()
        })
        .collect();
    let mut ok = true;
    let mut syn_lines = Vec::new();
    for &w in &opts.workers {
        let mut rows: Vec<Row> = families
            .iter()
            .map(|_| Row {
                workers: w,
                ..Row::default()
            })
            .collect();
        for test in &opts.tests {
            // The families alternate test by test: machine noise meets both.
            for (o, row) in per_family.iter().zip(&mut rows) {
                eprintln!("== {test}, {w} worker(s), {}", o.family().name());
                let r = run_child(&exe, o, test, w)?;
                if opts.smoke {
                    ok &= smoke_check(o, &r);
                }
                match test.as_str() {
                    "floor" => row.floor = Some(r),
                    "lookup-floor" => row.lookup_floor = Some(r),
                    "established" => row.established = Some(r),
                    "synflood" | "synflood-mixed" => syn_lines.push(synflood_line(&r)),
                    _ => row.new_conn = Some(r),
                }
            }
        }
        if opts.tests.iter().any(|t| TESTS.contains(&t.as_str())) {
            for (summary, row) in summaries.iter_mut().zip(rows) {
                summary.rows.push(row);
            }
        }
    }
    for s in &mut summaries {
        s.finish(opts.mode().name());
    }
    for l in &syn_lines {
        eprintln!("{l}");
    }
    let both = match (summaries.first(), summaries.get(1)) {
        (Some(a), Some(b)) => {
            let v4_first = families.first() == Some(&Family::V4);
            let (v4, v6) = if v4_first { (a, b) } else { (b, a) };
            Some(Families::pair(v4.clone(), v6.clone()))
        }
        _ => None,
    };
    match (&both, opts.json) {
        (Some(b), true) => println!("{}", serde_json::to_string_pretty(b)?),
        (Some(b), false) => print!("{}", b.table()),
        (None, true) => println!("{}", serde_json::to_string_pretty(&summaries[0])?),
        (None, false) => print!("{}", summaries[0].table()),
    }
    if opts.smoke {
        eprintln!("smoke: {}", if ok { "ok" } else { "FAILED" });
    }
    Ok(ok)
}

/// `--sweep`: the run of [`parent`] for each session count, gathered into points.
fn sweep(opts: &Opts) -> Result<bool, Error> {
    validate(opts)?;
    if opts.smoke || opts.real_nic() {
        return Err("--sweep runs on the virtual devices, without --smoke".into());
    }
    if opts.families().len() > 1 {
        return Err("--sweep: one family (--ipv6, or --families 4 or 6)".into());
    }
    for &n in &opts.sweep_flows {
        if n == 0 || n > plan::MAX_FLOWS.min(10_000_000) {
            return Err(format!("--sweep-flows: {n}: 1 to 10000000").into());
        }
    }
    let exe = std::env::current_exe()?;
    let mut out = Sweep {
        date: today(),
        cpu: cpu_model(),
        mode: opts.mode().name().into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        points: Vec::new(),
    };
    for &n in &opts.sweep_flows {
        let mut o = opts.clone();
        o.flows = n;
        o.new_flows = Some(n);
        for &w in &opts.workers {
            if (w as u64) > n {
                // Fewer flows than workers: a worker without flows would halve the
                // per-worker figures; the point says nothing.
                eprintln!("== {n} sessions: skipped for {w} workers (fewer flows than workers)");
                continue;
            }
            let mut row = Row {
                workers: w,
                ..Row::default()
            };
            for test in &opts.tests {
                eprintln!("== {n} sessions: {test}, {w} worker(s)");
                let r = run_child(&exe, &o, test, w)?;
                match test.as_str() {
                    "floor" => row.floor = Some(r),
                    "lookup-floor" => row.lookup_floor = Some(r),
                    "established" => row.established = Some(r),
                    _ => row.new_conn = Some(r),
                }
            }
            out.points.push(Point::of_row(n, &row));
        }
    }
    std::fs::write(&opts.plot, out.svg()?)?;
    eprintln!("plot written to {}", opts.plot.display());
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", out.table());
    }
    Ok(true)
}

fn run_child(exe: &Path, opts: &Opts, test: &str, workers: usize) -> Result<RunResult, Error> {
    let mut child = Command::new(exe)
        .args(opts.child_args(test, workers))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child.stdout.take().ok_or("no child stdout")?;
    let mut result = None;
    for line in BufReader::new(out).lines() {
        let line = line?;
        if let Some(p) = line.strip_prefix("PROGRESS ") {
            eprintln!("  {p}");
        } else if let Some(j) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<RunResult>(j)?);
        } else if !line.trim().is_empty() {
            eprintln!("  {line}");
        }
    }
    let status = child.wait()?;
    match result {
        Some(r) if status.success() => Ok(r),
        _ => Err(format!("{test} with {workers} worker(s) failed ({status})").into()),
    }
}

/// The line a `synflood` or `synflood-mixed` run prints.
fn synflood_line(r: &RunResult) -> String {
    let f = r.synflood.clone().unwrap_or_default();
    if !f.nic.is_empty() {
        let phases: Vec<String> = f.nic.iter().map(nic_line).collect();
        return format!(
            "{} {} worker(s), {} {}: {}",
            r.test,
            r.workers,
            r.mode,
            r.proto,
            phases.join("; ")
        );
    }
    format!(
        "{} {} worker(s), {} {}: {:.3} M SYN-ACK cookies/s, {:.3} M established packets \
         forwarded/s, {:.3} M dropped/s, {} sessions created in the window, {:.3} Mpps \
         processed ({:.1} s, {:.1} worker CPU s)",
        r.test,
        r.workers,
        r.mode,
        r.proto,
        f.cookies_per_sec / 1e6,
        f.established_per_sec / 1e6,
        f.dropped_per_sec / 1e6,
        f.sessions_created,
        r.mpps_total,
        r.seconds,
        r.worker_cpu_seconds
    )
}

fn smoke_check(opts: &Opts, r: &RunResult) -> bool {
    let mut ok = r.problems.is_empty();
    if let Some(f) = &r.synflood {
        let shed: u64 = f.nic.iter().map(|p| p.shed).sum();
        if f.cookies_per_sec <= 0.0 && shed == 0 {
            eprintln!("smoke: {}: no SYN-ACK cookie sent", r.test);
            ok = false;
        }
        if f.sessions_created > 0 {
            eprintln!(
                "smoke: {}: {} sessions created by the flood",
                r.test, f.sessions_created
            );
            ok = false;
        }
        if r.test == "synflood-mixed" && f.established_per_sec <= 0.0 {
            eprintln!("smoke: synflood-mixed: no established packet forwarded");
            ok = false;
        }
        if r.test == "synflood-mixed" && f.nic.iter().any(|p| p.est_forwarded == 0) {
            eprintln!("smoke: synflood-mixed: a phase of the NIC model forwarded nothing");
            ok = false;
        }
        return ok;
    }
    for p in &r.problems {
        eprintln!("smoke: {} {} workers: {p}", r.test, r.workers);
    }
    let packets: u64 = r.per_worker.iter().map(|w| w.packets).sum();
    if r.test != "new-conn" && packets == 0 {
        eprintln!("smoke: {}: no packets moved", r.test);
        ok = false;
    }
    if r.test == "established" {
        let dropped: u64 = r.drops().values().sum();
        if dropped > 0 {
            eprintln!("smoke: established: drops {:?}", r.drops());
            ok = false;
        }
        if r.sessions < opts.flows {
            eprintln!(
                "smoke: established: {} sessions, want {}",
                r.sessions, opts.flows
            );
            ok = false;
        }
        if r.sink_packets == 0 {
            eprintln!("smoke: established: nothing reached the server-side port");
            ok = false;
        }
    }
    ok
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {n} cores")
}

// ---------------------------------------------------------------- captures

/// Bytes of data room per mbuf: headroom plus the frame rounded up (at least 128).
fn data_room(frame_size: usize) -> u16 {
    (128 + frame_size.div_ceil(64).max(2) * 64) as u16
}

fn write_captures(
    dir: &Path,
    name: &str,
    sets: &[Vec<rvs_benches::capture::Flow>],
    l4: L4,
    kind: Kind,
    frame_size: usize,
) -> Result<Vec<PathBuf>, Error> {
    let mut paths = Vec::new();
    for (w, flows) in sets.iter().enumerate() {
        let path = dir.join(format!("{name}-{w}.pcap"));
        let mut pw = PcapWriter::create(&path)?;
        for (i, f) in flows.iter().enumerate() {
            pw.write(&build_frame(f, l4, kind, frame_size, i as u32))?;
        }
        pw.finish()?;
        paths.push(path);
    }
    Ok(paths)
}

fn write_generator_pcaps(opts: &Opts, dir: &Path) -> Result<(), Error> {
    validate(opts)?;
    if opts.families().len() > 1 {
        return Err("--write-pcap: one family (--ipv6, or --families 4 or 6)".into());
    }
    std::fs::create_dir_all(dir)?;
    let family = opts.family();
    let est = plan::partition_of(family, opts.flows, 0, 1);
    let new = plan::partition_of(family, opts.new_flows(), opts.flows, 1);
    for (name, set, kind) in [
        ("first", &est, Kind::First),
        ("established", &est, Kind::Established),
        ("new", &new, Kind::First),
    ] {
        let p = write_captures(dir, name, set, opts.l4(), kind, opts.frame_size)?;
        let dst = dir.join(format!("{name}.pcap"));
        std::fs::rename(&p[0], &dst)?;
        println!("wrote {}", dst.display());
    }
    Ok(())
}

// ---------------------------------------------------------------- child

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn progress(msg: String) {
    println!("PROGRESS {msg}");
}

struct Devices {
    eal_args: Vec<String>,
    client: String,
    server: Option<String>,
    /// Packets the client captures hold (kept in mbufs by net_pcap's infinite_rx).
    capture_packets: u64,
    hugepages: bool,
}

fn devices(
    opts: &Opts,
    test: &str,
    workers: usize,
    sets: &[Vec<rvs_benches::capture::Flow>],
    dir: &Path,
) -> Result<Devices, Error> {
    let prefix = format!("rvs-bench-{}", std::process::id());
    let room = u64::from(data_room(opts.wire_size()));
    let mut capture_packets = 0;
    let (client, server, vdev) = match &opts.client_dev {
        Some(c) => (c.clone(), opts.server_dev.clone(), false),
        None => {
            let kind = if test == "new-conn" || test == "synflood" {
                Kind::First
            } else {
                Kind::Established
            };
            let dev = if test == "synflood-mixed" {
                // The NIC model feeds the warm-up port's rings at a fixed rate; the
                // client port receives nothing.
                "net_null1,no-rx=1".to_owned()
            } else {
                capture_packets = sets.iter().map(|s| s.len() as u64).sum();
                let paths = write_captures(dir, "client", sets, opts.l4(), kind, opts.frame_size)?;
                let mut dev = "net_pcap0".to_owned();
                for p in &paths {
                    dev.push_str(&format!(",rx_pcap={}", p.display()));
                }
                dev.push_str(",infinite_rx=1");
                dev
            };
            (dev, Some("net_null0,no-rx=1".to_owned()), true)
        }
    };
    // Pool: the capture, plus queues, rings and bursts.
    let mbufs = capture_packets + 3 * 4096 * workers as u64 + 65536;
    let mem_mb = ((mbufs * (room + 128 + 64) * 5 / 4) >> 20) + 256;
    let mut eal_args = default_eal_args(&prefix, workers, mem_mb, &[]);
    if !vdev {
        eal_args.retain(|a| a != "--no-pci");
        for d in [Some(&client), server.as_ref()].into_iter().flatten() {
            eal_args.push("-a".into());
            eal_args.push(d.clone());
        }
    }
    eal_args.extend(opts.eal.iter().cloned());
    let hugepages = !eal_args.iter().any(|a| a == "--no-huge");
    Ok(Devices {
        eal_args,
        client,
        server,
        capture_packets,
        hugepages,
    })
}

fn child(opts: &Opts, test: &str) -> Result<RunResult, Error> {
    let workers = opts.child_workers.max(1);
    let dir = TempDir(std::env::temp_dir().join(format!("rvs-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let family = opts.family();
    let sets = if test == "new-conn" || test == "synflood" {
        plan::partition_of(family, opts.new_flows(), opts.flows, workers)
    } else {
        plan::partition_of(family, opts.flows, 0, workers)
    };
    let dev = devices(opts, test, workers, &sets, &dir.0)?;
    Eal::init(&dev.eal_args)?;
    // The warm-up port: a net_ring port whose rx rings the harness fills with each flow's
    // first packet once the service is published.
    let rx_rings: Vec<Ring> = (0..workers)
        .map(|w| Ring::new(&format!("wu_rx{w}"), 4096, RING_SP_SC))
        .collect::<Result<_, _>>()?;
    let tx_rings: Vec<Ring> = (0..workers)
        .map(|w| Ring::new(&format!("wu_tx{w}"), 4096, RING_SP_SC))
        .collect::<Result<_, _>>()?;
    let warm = Port::from_rings(
        "warm",
        &rx_rings.iter().collect::<Vec<_>>(),
        &tx_rings.iter().collect::<Vec<_>>(),
    )?;
    let warm_name = warm.info()?.name;
    // The core clock now, on this thread's core, before any worker polls: the workers'
    // cores run at about the same clock (a whole VM boosts alike), and a probe during
    // the window would share a core with a worker.
    let core_hz = clock::core_hz(20);
    let mut r = match test {
        "floor" => floor(opts, workers, &dev, warm, None)?,
        "lookup-floor" => {
            let capacity = capacity_per_worker(opts, test, &sets);
            floor(opts, workers, &dev, warm, Some(capacity))?
        }
        _ => engine_run(
            opts, test, workers, &dev, &warm_name, &rx_rings, &tx_rings, &sets,
        )?,
    };
    r.test = test.into();
    r.mode = opts.mode().name().into();
    r.proto = format!("{:?}", opts.l4()).to_lowercase();
    r.family = family;
    r.flows = if test == "new-conn" {
        opts.new_flows()
    } else {
        opts.flows
    };
    r.frame_size = opts.wire_size();
    r.workers = workers;
    r.tsc_hz = dpdk::tsc_hz();
    r.core_hz = core_hz;
    r.hugepages = dev.hugepages;
    Ok(r)
}

fn figures(
    w: usize,
    packets: u64,
    secs: f64,
    hz: u64,
    drops: BTreeMap<String, u64>,
) -> WorkerFigures {
    WorkerFigures {
        worker: w,
        packets,
        mpps: packets as f64 / secs / 1e6,
        cycles_per_packet: if packets > 0 {
            hz as f64 * secs / packets as f64
        } else {
            0.0
        },
        drops,
        ..WorkerFigures::default()
    }
}

/// Flows of a test over all workers.
fn flows_of(opts: &Opts, test: &str) -> u64 {
    if test == "new-conn" || test == "synflood" {
        opts.new_flows()
    } else {
        opts.flows
    }
}

/// Sessions each worker's table holds: every flow of a worker, plus slack (real NICs:
/// any worker may get any flow, spread by RSS).
fn capacity_per_worker(opts: &Opts, test: &str, sets: &[Vec<rvs_benches::capture::Flow>]) -> u32 {
    let per_worker_max = sets.iter().map(|s| s.len() as u64).max().unwrap_or(0);
    let per_worker_cap = if opts.real_nic() {
        flows_of(opts, test)
    } else {
        per_worker_max
    };
    (per_worker_cap + per_worker_cap / 16 + 1024).min(u64::from(u32::MAX)) as u32
}

// ---- the I/O floor and the lookup floor

/// Bursts the lookup floor receives per poll before it processes them, as the engine
/// does (one burst and up to `RX_MORE` more).
const LOOKUP_BURSTS: usize = 4;
/// Prefetch distance of the lookup floor, in packets: the engine's.
const LOOKUP_AHEAD: usize = 8;

type HugeVec<T> = allocator_api2::vec::Vec<T, HugePageAlloc>;

/// The lookup floor's tables for one worker, the sizes of the engine's session table for
/// the same number of sessions and on huge pages like it: an index of one-line buckets,
/// each naming a session at random, and a slab of two-line sessions.
struct LookupTables {
    buckets: HugeVec<[u64; 8]>,
    sessions: HugeVec<[u64; 16]>,
}

impl LookupTables {
    fn new(capacity: u32) -> LookupTables {
        let (slab, index) = rvs_dataplane::conn::table_bytes(capacity);
        let (nb, ns) = ((index / 64).max(1), (slab / 128).max(1));
        let mut buckets = HugeVec::with_capacity_in(nb, HugePageAlloc);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..nb {
            // xorshift64: a session named at random by each bucket.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buckets.push([x % ns as u64, 0, 0, 0, 0, 0, 0, 0]);
        }
        let mut sessions = HugeVec::with_capacity_in(ns, HugePageAlloc);
        sessions.resize(ns, [1u64; 16]);
        LookupTables { buckets, sessions }
    }

    /// The home bucket of a packet: a hash of its addresses and ports (IPv4), or of the
    /// low halves of its addresses and its ports (IPv6), mapped onto the buckets as the
    /// engine's index maps its hashes.
    fn home(&self, frame: &[u8]) -> usize {
        let word = |at: usize| {
            frame
                .get(at..at + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        let (a, b) = if frame.get(12..14) == Some(&[0x86, 0xdd]) {
            (word(30) ^ word(46), word(54))
        } else {
            (word(26), word(30))
        };
        let h = (a ^ b.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (((h >> 32) * self.buckets.len() as u64) >> 32) as usize
    }

    /// Looks up the packets of `batches`, pipelined as the engine pipelines its lookups:
    /// a packet's bucket is prefetched, [`LOOKUP_AHEAD`] packets later the session it
    /// names, [`LOOKUP_AHEAD`] more later a word of the session is read. Returns the sum
    /// of the words read (so that nothing is optimized away).
    fn lookup(&self, batches: &[MbufBatch]) -> u64 {
        let mut slot = [0usize; LOOKUP_BURSTS * 32];
        let mut n = 0;
        for m in batches.iter().flat_map(|b| b.as_slice()) {
            if let Some(s) = slot.get_mut(n) {
                *s = self.home(m.data());
                n += 1;
            }
        }
        let mut sum = 0u64;
        for i in 0..n + 2 * LOOKUP_AHEAD {
            if let Some(&b) = slot[..n].get(i) {
                dpdk::prefetch0(&self.buckets[b]);
            }
            if let Some(j) = i.checked_sub(LOOKUP_AHEAD).filter(|j| *j < n) {
                let s = self.buckets[slot[j]][0] as usize;
                dpdk::prefetch0(&self.sessions[s]);
                slot[j] = s;
            }
            if let Some(j) = i.checked_sub(2 * LOOKUP_AHEAD).filter(|j| *j < n) {
                sum = sum.wrapping_add(self.sessions[slot[j]][1]);
            }
        }
        sum
    }
}

#[repr(align(64))]
struct Padded(AtomicU64);

/// The I/O floor: the devices' receive and transmit with no processing. With `lookup`,
/// the lookup floor: each packet also reads the index bucket and the session its
/// addresses hash to, in tables the size of the engine's (see [`LookupTables`]).
fn floor(
    opts: &Opts,
    workers: usize,
    dev: &Devices,
    warm: Port,
    lookup: Option<u32>,
) -> Result<RunResult, Error> {
    let room = data_room(opts.wire_size());
    let mbufs = (dev.capture_packets + 3 * 4096 * workers as u64 + 65536) as u32;
    let pool = Arc::new(Mempool::new("floor_pool", mbufs, 256, room)?);
    let mut ports = Vec::new();
    let mut devs = vec![dev.client.clone()];
    devs.extend(dev.server.clone());
    for d in &devs {
        let name = d.split(',').next().unwrap_or(d).to_owned();
        let p = match Port::by_name(&name) {
            Ok(p) => p,
            Err(_) => Port::attach(d)?,
        };
        ports.push(p);
    }
    ports.push(warm);
    let mut rxq = Vec::new();
    for p in &mut ports {
        let info = p.info()?;
        let n = (workers as u16).min(info.max_rx_queues.max(1));
        p.configure(
            &PortConf {
                rx_queues: n,
                tx_queues: workers as u16,
                ..PortConf::default()
            },
            &pool,
        )?;
        p.start()?;
        rxq.push(n);
    }
    // Transmit toward the servers (the sink), like the engine does with requests.
    let sink = ports[if dev.server.is_some() { 1 } else { 0 }];
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<Padded>> =
        Arc::new((0..workers).map(|_| Padded(AtomicU64::new(0))).collect());
    let lcores: Vec<_> = lcore::workers().into_iter().take(workers).collect();
    if lcores.len() < workers {
        return Err("not enough lcores".into());
    }
    // Workers that have made their tables and started polling.
    let ready = Arc::new(AtomicU64::new(0));
    for (w, &lc) in lcores.iter().enumerate() {
        let (stop, counts, ports, rxq) = (stop.clone(), counts.clone(), ports.clone(), rxq.clone());
        let ready = ready.clone();
        lcore::launch(lc, move || {
            let q = QueueId(w as u16);
            let mut b: [MbufBatch; LOOKUP_BURSTS] = std::array::from_fn(|_| MbufBatch::new());
            let tables = lookup.map(LookupTables::new);
            ready.fetch_add(1, Ordering::Relaxed);
            let (mut total, mut sum) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                for (p, port) in ports.iter().enumerate() {
                    if (w as u16) >= rxq[p] {
                        continue;
                    }
                    let Some(t) = &tables else {
                        if port.rx_burst(q, &mut b[0]) > 0 {
                            total += b[0].len() as u64;
                            sink.tx_burst(q, &mut b[0]);
                        }
                        continue;
                    };
                    let mut got = 0;
                    while got < LOOKUP_BURSTS && port.rx_burst(q, &mut b[got]) > 0 {
                        got += 1;
                    }
                    sum = sum.wrapping_add(t.lookup(&b[..got]));
                    for batch in &mut b[..got] {
                        total += batch.len() as u64;
                        sink.tx_burst(q, batch);
                    }
                }
                counts[w].0.store(total, Ordering::Relaxed);
            }
            std::hint::black_box(sum);
            0
        })?;
    }
    let read = || -> Vec<u64> { counts.iter().map(|c| c.0.load(Ordering::Relaxed)).collect() };
    while ready.load(Ordering::Relaxed) < workers as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let hz = dpdk::tsc_hz();
    let (t0, base, s0) = (Instant::now(), read(), sink.stats().unwrap_or_default());
    let cpu0 = worker_cpu_seconds();
    let mut last = (t0, base.clone());
    while t0.elapsed().as_secs_f64() < opts.duration {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs_f64(opts.duration)));
        let now = (Instant::now(), read());
        let dt = now.0.duration_since(last.0).as_secs_f64();
        let rates: Vec<String> = now
            .1
            .iter()
            .zip(&last.1)
            .map(|(a, b)| format!("{:.2}", (a - b) as f64 / dt / 1e6))
            .collect();
        progress(format!(
            "{} {:>4.1}s  Mpps per worker: {}",
            if lookup.is_some() {
                "lookup floor"
            } else {
                "floor"
            },
            t0.elapsed().as_secs_f64(),
            rates.join(" ")
        ));
        last = now;
    }
    let secs = t0.elapsed().as_secs_f64();
    let end = read();
    let cpu = worker_cpu_seconds() - cpu0;
    let s1 = sink.stats().unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    for &lc in &lcores {
        lcore::wait(lc);
    }
    for p in &ports {
        let _ = p.stop();
    }
    let per_worker: Vec<WorkerFigures> = end
        .iter()
        .zip(&base)
        .enumerate()
        .map(|(w, (a, b))| figures(w, a - b, secs, hz, BTreeMap::new()))
        .collect();
    Ok(RunResult {
        seconds: secs,
        mpps_total: per_worker.iter().map(|w| w.mpps).sum(),
        per_worker,
        sink_packets: s1.opackets - s0.opackets,
        worker_cpu_seconds: cpu,
        ..RunResult::default()
    })
}

// ---- the engine

struct Sample {
    at: Instant,
    reports: Vec<WorkerReport>,
}

fn sample(engine: &Engine) -> Sample {
    let mut reports = engine.reports();
    reports.sort_by_key(|r| r.worker);
    Sample {
        at: Instant::now(),
        reports,
    }
}

fn processed(r: &WorkerReport) -> u64 {
    r.counters.packets - r.counters.handoff_out
}

#[allow(clippy::too_many_arguments)]
fn engine_run(
    opts: &Opts,
    test: &str,
    workers: usize,
    dev: &Devices,
    warm_name: &str,
    warm_rx: &[Ring],
    warm_tx: &[Ring],
    sets: &[Vec<rvs_benches::capture::Flow>],
) -> Result<RunResult, Error> {
    let mode = opts.mode();
    let l4 = opts.l4();
    let expected: Vec<u64> = if opts.real_nic() {
        vec![0; workers]
    } else {
        sets.iter().map(|s| s.len() as u64).collect()
    };
    let capacity = capacity_per_worker(opts, test, sets);
    let total_flows = flows_of(opts, test);
    let mut cfg = plan::engine_config(
        dev.eal_args.clone(),
        &dev.client,
        dev.server.as_deref(),
        warm_name,
        workers,
        capacity,
        (dev.capture_packets + 65536) as u32,
    );
    cfg.idle_sleep_max_us = opts.idle_sleep_max_us;
    // synflood measures what a cookie costs: its source is an always-full queue, which
    // would have every SYN shed.
    cfg.syn_shed = test != "synflood";
    // Declared before the engine so it outlives it (mbufs from it may be in flight).
    let warm_pool = Mempool::new("warm_pool", 32767, 256, data_room(opts.wire_size()))?;
    let mut engine = Engine::start_with_data_room(&cfg, data_room(opts.wire_size()))?;
    let lips = plan::lips_needed(u64::from(capacity), workers);
    // synflood: the service is SYN-proxied; synflood-mixed: a second service on
    // FLOOD_VPORT is, which the flood's SYNs go to.
    let syn_proxy = rvs_dataplane::service::svc_flags::SYNPROXY;
    let p = match test {
        "synflood" => plan::services(mode, l4, lips, opts.proxy().flag() | syn_proxy)?,
        "synflood-mixed" => {
            plan::services_with_flood(mode, l4, lips, opts.proxy().flag(), Some(syn_proxy))?
        }
        _ => plan::services_of(opts.family(), mode, l4, lips, opts.proxy().flag())?,
    };
    engine.publish(p.services, &p.vips, &[], p.laddrs);
    // Two report round trips: the second is answered by a loop iteration that began after
    // the first answer, so every worker has adopted the snapshot before warm-up starts.
    engine.reports();
    engine.reports();
    let hz = dpdk::tsc_hz();
    let mut problems = Vec::new();

    if test == "new-conn" {
        return new_conn(opts, &engine, &expected, hz, capacity).map(|mut r| {
            let s = engine.port_stats();
            r.sink_packets = s.get(1).map_or(0, |s| s.opackets);
            r
        });
    }

    // Warm-up: each flow's first packet through the warm-up port; with a PROXY header,
    // the client's ACK ending the handshake right after it (the header goes with it).
    let mut proxy = None;
    if !opts.real_nic() && test != "synflood" {
        let pool = &warm_pool;
        let t = Instant::now();
        let pp = opts.proxy() != ProxyProtocol::Off;
        for (w, flows) in sets.iter().enumerate() {
            let frames = flows.iter().enumerate().flat_map(|(i, f)| {
                let syn = build_frame(f, l4, Kind::First, opts.frame_size, i as u32);
                let ack = pp.then(|| build_frame(f, l4, Kind::Ack, opts.frame_size, i as u32));
                std::iter::once(syn).chain(ack)
            });
            inject(pool, &warm_rx[w], frames);
        }
        // Wait for the sessions.
        let want: u64 = expected.iter().sum();
        loop {
            let s = sample(&engine);
            let have: u64 = s.reports.iter().map(|r| u64::from(r.sessions)).sum();
            if have >= want {
                progress(format!(
                    "warm-up: {have} sessions in {:.1}s",
                    t.elapsed().as_secs_f64()
                ));
                break;
            }
            // Generous: warm-up runs at the new-session rate, on a possibly busy machine.
            let limit = 120 + want / 10_000;
            if t.elapsed() > Duration::from_secs(limit) {
                problems.push(format!(
                    "warm-up: {have} of {want} sessions after {limit} s"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if opts.proxy() != ProxyProtocol::Off && problems.is_empty() {
            let (p, mut bad) = settle_proxy(opts, &engine, pool, warm_rx, sets);
            problems.append(&mut bad);
            proxy = Some(p);
        }
    } else if test == "synflood" {
        progress("synflood: no warm-up (a proxied SYN makes no session)".into());
    } else {
        progress(format!(
            "real NIC: waiting for traffic ({} flows expected); port 0 MAC {:02x?}",
            total_flows,
            engine.port_macs().first().copied().unwrap_or_default()
        ));
        let t = Instant::now();
        loop {
            let s = sample(&engine);
            let have: u64 = s.reports.iter().map(|r| u64::from(r.sessions)).sum();
            if have >= total_flows || t.elapsed() > Duration::from_secs(600) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    std::thread::sleep(Duration::from_millis(300));

    if test == "synflood-mixed" && !opts.real_nic() && problems.is_empty() {
        let r = nic_model(opts, &engine, &warm_pool, warm_rx, warm_tx, sets, hz);
        engine.stop()?;
        // What the worker sent back on the port (SYN-ACKs) or had not taken yet: freed
        // while their pool lives.
        let mut b = MbufBatch::new();
        for ring in warm_rx.iter().chain(warm_tx) {
            while ring.dequeue_burst(&mut b) > 0 {
                b.clear();
            }
        }
        return Ok(r);
    }

    let p0 = engine.port_stats();
    let first = sample(&engine);
    let cpu0 = worker_cpu_seconds();
    let mut last = sample(&engine);
    let t0 = first.at;
    while t0.elapsed().as_secs_f64() < opts.duration {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs_f64(opts.duration)));
        let now = sample(&engine);
        let dt = now.at.duration_since(last.at).as_secs_f64();
        let rates: Vec<String> = now
            .reports
            .iter()
            .zip(&last.reports)
            .map(|(a, b)| format!("{:.2}", (processed(a) - processed(b)) as f64 / dt / 1e6))
            .collect();
        progress(format!(
            "{test} {:>4.1}s  Mpps per worker: {}",
            t0.elapsed().as_secs_f64(),
            rates.join(" ")
        ));
        last = now;
    }
    let end = sample(&engine);
    let cpu = worker_cpu_seconds() - cpu0;
    let p1 = engine.port_stats();
    let secs = end.at.duration_since(t0).as_secs_f64();
    let per_worker = window(&first, &end, secs, hz);
    if let Some(p) = &mut proxy {
        let headers =
            |s: &Sample| -> u64 { s.reports.iter().map(|r| r.counters.proxy_headers).sum() };
        p.headers_in_window = headers(&end) - headers(&first);
        if p.headers_in_window > 0 {
            problems.push(format!(
                "{} PROXY headers sent in the window: sessions not settled (general path)",
                p.headers_in_window
            ));
        }
    }
    let synflood = SYN_TESTS.contains(&test).then(|| {
        let sum =
            |s: &Sample, f: &dyn Fn(&WorkerReport) -> u64| -> u64 { s.reports.iter().map(f).sum() };
        let delta = |f: &dyn Fn(&WorkerReport) -> u64| sum(&end, f) - sum(&first, f);
        SynFloodFigures {
            cookies_per_sec: delta(&|r| r.counters.syn_cookies_sent) as f64 / secs,
            established_per_sec: delta(&|r| r.counters.in_packets) as f64 / secs,
            dropped_per_sec: delta(&|r| r.counters.dropped()) as f64 / secs,
            sessions_created: delta(&|r| r.sessions_created),
            nic: Vec::new(),
        }
    });
    let mut r = RunResult {
        seconds: secs,
        mpps_total: per_worker.iter().map(|w| w.mpps).sum(),
        per_worker,
        problems,
        proxy,
        worker_cpu_seconds: cpu,
        synflood,
        ..RunResult::default()
    };
    fill_tables(&mut r, &end, capacity);
    r.sink_packets = sink_delta(&p0, &p1, dev.server.is_some());
    engine.stop()?;
    Ok(r)
}

/// `synflood-mixed`'s model of a NIC receive queue: packets are offered at a fixed rate
/// (`--offer-established`, and `--offer-syn` in the second phase) into a bounded ring
/// the worker polls (the warm-up port's receive ring, 4095 slots, as a NIC's descriptor
/// ring); what does not fit is the NIC's drop, counted per class. Three phases of
/// `--duration` seconds each, in the same run: established flows alone; with the
/// flood's SYNs (new flows to the SYN-proxied service on [`plan::FLOOD_VPORT`]); the
/// same with the workers' shedding turned off ([`Engine::set_syn_shed`]). Worker 0's
/// queue only (the figures are one worker's).
fn nic_model(
    opts: &Opts,
    engine: &Engine,
    pool: &Mempool,
    rx: &[Ring],
    tx: &[Ring],
    sets: &[Vec<rvs_benches::capture::Flow>],
    hz: u64,
) -> RunResult {
    let l4 = opts.l4();
    let est: Vec<Vec<u8>> = sets[0]
        .iter()
        .take(65536)
        .enumerate()
        .map(|(i, f)| build_frame(f, l4, Kind::Established, opts.frame_size, i as u32))
        .collect();
    let flood = plan::partition_of(opts.family(), opts.new_flows(), opts.flows, sets.len());
    let syns: Vec<Vec<u8>> = flood[0]
        .iter()
        .take(65536)
        .enumerate()
        .map(|(i, f)| {
            let f = rvs_benches::capture::Flow {
                vport: plan::FLOOD_VPORT,
                ..*f
            };
            build_frame(&f, l4, Kind::First, opts.frame_size, i as u32)
        })
        .collect();
    let e = opts.offer_established * 1e6;
    let s = opts.offer_syn * 1e6;
    let first = sample(engine);
    let cpu0 = worker_cpu_seconds();
    let fr = (&est[..], &syns[..]);
    let quiet = feed(
        engine,
        pool,
        &rx[0],
        &tx[0],
        fr,
        (e, 0.0),
        opts.duration,
        true,
    );
    let flooded = feed(
        engine,
        pool,
        &rx[0],
        &tx[0],
        fr,
        (e, s),
        opts.duration,
        true,
    );
    engine.set_syn_shed(false);
    let unshed = feed(
        engine,
        pool,
        &rx[0],
        &tx[0],
        fr,
        (e, s),
        opts.duration,
        false,
    );
    engine.set_syn_shed(true);
    let cpu = worker_cpu_seconds() - cpu0;
    let end = sample(engine);
    for p in [&quiet, &flooded, &unshed] {
        progress(nic_line(p));
    }
    let secs = end.at.duration_since(first.at).as_secs_f64();
    let per_worker = window(&first, &end, secs, hz);
    let f = &flooded;
    let synflood = SynFloodFigures {
        cookies_per_sec: f.cookies as f64 / f.secs,
        established_per_sec: f.est_forwarded as f64 / f.secs,
        dropped_per_sec: (f.worker_dropped + f.nic_dropped_est + f.nic_dropped_syn) as f64 / f.secs,
        sessions_created: quiet.sessions_created + f.sessions_created + unshed.sessions_created,
        nic: vec![quiet, flooded, unshed],
    };
    let mut r = RunResult {
        seconds: secs,
        mpps_total: per_worker.iter().map(|w| w.mpps).sum(),
        per_worker,
        worker_cpu_seconds: cpu,
        synflood: Some(synflood),
        ..RunResult::default()
    };
    fill_tables(&mut r, &end, 0);
    r
}

/// One phase of the NIC model: offers established frames at `rates.0` and SYNs at
/// `rates.1` per second for `secs`, interleaved in proportion, into `rx` (frames the
/// worker sends back on the port, the SYN-ACKs, are taken from `tx` and freed).
#[allow(clippy::too_many_arguments)]
fn feed(
    engine: &Engine,
    pool: &Mempool,
    rx: &Ring,
    tx: &Ring,
    frames: (&[Vec<u8>], &[Vec<u8>]),
    rates: (f64, f64),
    secs: f64,
    shedding: bool,
) -> NicPhase {
    let (est, syns) = frames;
    let (re, rs) = rates;
    let first = sample(engine);
    let t0 = Instant::now();
    let (mut oe, mut os, mut de, mut ds) = (0u64, 0u64, 0u64, 0u64);
    let mut batch = MbufBatch::new();
    let mut back = MbufBatch::new();
    let mut syn_at = [false; dpdk::MAX_BURST];
    loop {
        let t = t0.elapsed().as_secs_f64();
        if t >= secs {
            break;
        }
        while tx.dequeue_burst(&mut back) > 0 {
            back.clear();
        }
        let (want_e, want_s) = ((t * re) as u64, (t * rs) as u64);
        let mut n = 0;
        while n < dpdk::MAX_BURST && (oe < want_e || os < want_s) {
            // The class furthest behind its rate goes next.
            let syn = os < want_s && (oe >= want_e || os as f64 * re <= oe as f64 * rs);
            let frame = if syn {
                &syns[(os % syns.len() as u64) as usize]
            } else {
                &est[(oe % est.len() as u64) as usize]
            };
            let Some(m) = pool.alloc_with(frame) else {
                break;
            };
            if syn {
                os += 1;
            } else {
                oe += 1;
            }
            let _ = batch.push(m);
            syn_at[n] = syn;
            n += 1;
        }
        if n == 0 {
            std::hint::spin_loop();
            continue;
        }
        let k = rx.enqueue_burst(&mut batch);
        // The queue is full: the NIC drops the rest.
        for &syn in &syn_at[k..n] {
            if syn {
                ds += 1;
            } else {
                de += 1;
            }
        }
        batch.clear();
    }
    // What is still queued is served before the phase's counters are read.
    let drain = Instant::now();
    while rx.count() > 0 && drain.elapsed() < Duration::from_secs(2) {
        while tx.dequeue_burst(&mut back) > 0 {
            back.clear();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t0.elapsed().as_secs_f64();
    let end = sample(engine);
    let delta = |f: &dyn Fn(&WorkerReport) -> u64| -> u64 {
        let sum = |s: &Sample| -> u64 { s.reports.iter().map(f).sum() };
        sum(&end) - sum(&first)
    };
    let shed = delta(&|r| r.counters.drops_of(DropReason::SynShed));
    NicPhase {
        shedding,
        secs,
        offered_est: oe,
        offered_syn: os,
        nic_dropped_est: de,
        nic_dropped_syn: ds,
        est_forwarded: delta(&|r| r.counters.in_packets),
        cookies: delta(&|r| r.counters.syn_cookies_sent),
        shed,
        worker_dropped: delta(&|r| r.counters.dropped()),
        sessions_created: delta(&|r| r.sessions_created),
    }
}

/// The progress line of one phase of the NIC model.
fn nic_line(p: &NicPhase) -> String {
    let m = |n: u64| n as f64 / p.secs / 1e6;
    format!(
        "NIC model, {}: established offered {:.3} M/s, forwarded {:.3} M/s, NIC-dropped \
         {:.3} M/s; SYNs offered {:.3} M/s, cookies {:.3} M/s, shed {:.3} M/s, NIC-dropped \
         {:.3} M/s; worker drops {:.3} M/s ({:.1} s)",
        match (p.offered_syn, p.shedding) {
            (0, _) => "no flood",
            (_, true) => "flood",
            (_, false) => "flood, shedding off",
        },
        m(p.offered_est),
        m(p.est_forwarded),
        m(p.nic_dropped_est),
        m(p.offered_syn),
        m(p.cookies),
        m(p.shed),
        m(p.nic_dropped_syn),
        m(p.worker_dropped),
        p.secs
    )
}

/// Puts `frames` into the warm-up port's receive ring `ring` (one worker's queue), as
/// mbufs of `pool`, waiting while the pool or the ring is full.
fn inject(pool: &Mempool, ring: &Ring, frames: impl Iterator<Item = Vec<u8>>) {
    let mut batch = MbufBatch::new();
    for frame in frames {
        let m = loop {
            match pool.alloc_with(&frame) {
                Some(m) => break m,
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        };
        let _ = batch.push(m);
        while batch.is_full() {
            if ring.enqueue_burst(&mut batch) == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    while !batch.is_empty() {
        if ring.enqueue_burst(&mut batch) == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Waits until `done` holds for the engine's reports, or `limit` passes (then false).
fn wait_for(
    engine: &Engine,
    limit: Duration,
    mut done: impl FnMut(&[WorkerReport]) -> bool,
) -> bool {
    let t = Instant::now();
    loop {
        if done(&sample(engine).reports) {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The PROXY header a session's real server gets (its length is the session's shift).
fn proxy_header_len(version: ProxyProtocol, c: &ConnListing) -> Option<u32> {
    let h = match version {
        ProxyProtocol::V2 => ProxyHeader::v2(c.caddr, c.cport, c.vaddr, c.vport, false),
        ProxyProtocol::V1 => ProxyHeader::v1(c.caddr, c.cport, c.vaddr, c.vport)?,
        ProxyProtocol::Off => return None,
    };
    u32::try_from(h.len()).ok()
}

/// `--proxy-protocol`, after the warm-up (each flow's SYN, then the client's ACK ending
/// its handshake: the pipeline forwards that ACK shifted and sends the header segment
/// after it; the capture's own packets, already flowing, may do it first): settles every
/// session so that the window runs on the established fast path with its shift. Once
/// every session's header went, each session's real server acknowledges the header
/// (RS:rport -> LIP:lport, ACK, ack = ISN + 1 + the header's length), injected through
/// the warm-up ring of the worker that owns the local port. The local endpoints and real
/// servers come from `Engine::connections` (what `ipvsadm -Lnc` lists). A session whose
/// header went and was acknowledged has nothing left but the shift and takes the fast
/// path. Returns the figures and the problems seen.
fn settle_proxy(
    opts: &Opts,
    engine: &Engine,
    pool: &Mempool,
    warm_rx: &[Ring],
    sets: &[Vec<Flow>],
) -> (ProxyFigures, Vec<String>) {
    let version = opts.proxy();
    let workers = sets.len();
    let want: u64 = sets.iter().map(|s| s.len() as u64).sum();
    let limit = Duration::from_secs(60 + want / 10_000);
    let mut p = ProxyFigures {
        version: version.name().into(),
        ..ProxyFigures::default()
    };
    let mut problems = Vec::new();
    let t = Instant::now();
    let first_sends = |r: &[WorkerReport]| -> u64 {
        r.iter()
            .map(|r| r.counters.proxy_headers - r.counters.proxy_resent)
            .sum()
    };
    if !wait_for(engine, limit, |r| first_sends(r) >= want) {
        problems.push(format!(
            "proxy warm-up: {} of {want} headers sent after {} s",
            first_sends(&sample(engine).reports),
            limit.as_secs()
        ));
    }
    let conns: Vec<ConnListing> = engine
        .connections()
        .into_iter()
        .filter(|c| c.flags & conn_flags::TEMPLATE == 0)
        .collect();
    p.shifted_sessions = conns
        .iter()
        .filter(|c| c.flags & conn_flags::IN_SEQ != 0)
        .count() as u64;
    if (conns.len() as u64) < want || p.shifted_sessions < want {
        problems.push(format!(
            "proxy warm-up: the listing has {} sessions, {} shifted, of {want}",
            conns.len(),
            p.shifted_sessions
        ));
    }
    let out = |r: &[WorkerReport]| -> u64 { r.iter().map(|r| r.counters.out_packets).sum() };
    let out0 = out(&sample(engine).reports);
    let mut acks = 0u64;
    for (w, ring) in warm_rx.iter().enumerate().take(workers) {
        let mine = conns
            .iter()
            .filter(|c| owner_of_port(c.lport, workers) == w);
        let frames = mine.filter_map(|c| {
            let ack = CLIENT_ISN + 1 + proxy_header_len(version, c)?;
            let reply = Flow {
                caddr: c.daddr.to_ip(),
                cport: c.dport,
                vaddr: c.laddr.to_ip(),
                vport: c.lport,
            };
            acks += 1;
            Some(build_frame(
                &reply,
                L4::Tcp,
                Kind::ServerAck(ack),
                opts.frame_size,
                0,
            ))
        });
        inject(pool, ring, frames);
    }
    if !wait_for(engine, limit, |r| out(r) - out0 >= acks) || acks < want {
        problems.push(format!(
            "proxy warm-up: {} of {want} server acknowledgements forwarded",
            out(&sample(engine).reports) - out0
        ));
    }
    let r = sample(engine).reports;
    p.acks_forwarded = out(&r) - out0;
    p.headers_sent = first_sends(&r);
    p.headers_resent = r.iter().map(|r| r.counters.proxy_resent).sum();
    progress(format!(
        "proxy protocol {}: {} headers sent ({} resent), {} acknowledged by the servers, \
         {} sessions shifted, in {:.1}s",
        p.version,
        p.headers_sent,
        p.headers_resent,
        p.acks_forwarded,
        p.shifted_sessions,
        t.elapsed().as_secs_f64()
    ));
    (p, problems)
}

/// Seconds the EAL worker threads of this process (`rte-worker-N`, `lcore-worker-N` in
/// older DPDK) have run on a CPU: the first field of their `schedstat` (0 where the
/// kernel does not provide it).
fn worker_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if !(comm.starts_with("rte-worker") || comm.starts_with("lcore-worker")) {
                return None;
            }
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    ns as f64 / 1e9
}

fn sink_delta(p0: &[PortStats], p1: &[PortStats], two_arms: bool) -> u64 {
    let i = usize::from(two_arms);
    match (p0.get(i), p1.get(i)) {
        (Some(a), Some(b)) => b.opackets - a.opackets,
        _ => 0,
    }
}

fn window(first: &Sample, end: &Sample, secs: f64, hz: u64) -> Vec<WorkerFigures> {
    end.reports
        .iter()
        .zip(&first.reports)
        .map(|(a, b)| {
            let mut drops = BTreeMap::new();
            for (i, (x, y)) in a.counters.drops.iter().zip(&b.counters.drops).enumerate() {
                if x > y {
                    let name = DropReason::from_index(i).map_or(format!("slot{i}"), |d| d.name());
                    drops.insert(name, x - y);
                }
            }
            if a.tx_dropped > b.tx_dropped {
                drops.insert("tx".into(), a.tx_dropped - b.tx_dropped);
            }
            let mut f = figures(a.worker, processed(a) - processed(b), secs, hz, drops);
            f.sessions = u64::from(a.sessions);
            f
        })
        .collect()
}

fn fill_tables(r: &mut RunResult, end: &Sample, capacity: u32) {
    r.conn_capacity = capacity;
    r.conn_memory_bytes = end.reports.iter().map(|x| x.conn_memory_bytes as u64).sum();
    r.sessions = end.reports.iter().map(|x| u64::from(x.sessions)).sum();
    let cap_total: u64 = end.reports.iter().map(|x| u64::from(x.conn_capacity)).sum();
    r.bytes_per_session = if cap_total > 0 {
        r.conn_memory_bytes as f64 / cap_total as f64
    } else {
        0.0
    };
}

/// How often the new-connection test samples the workers' counters: every 10 ms, and
/// every millisecond when no worker has more than [`FEW_NEW_FLOWS`] flows to make — at
/// 4M sessions/s a worker makes 100k in 25 ms, which left the 5-90 % window without two
/// 10 ms samples in it and the sweep's 100k point without a figure.
fn new_conn_interval(expected: &[u64]) -> Duration {
    if expected.iter().all(|&n| n <= FEW_NEW_FLOWS) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    }
}

/// The most flows per worker for which the new-connection test samples every millisecond.
const FEW_NEW_FLOWS: u64 = 500_000;

/// The most flows per worker for which the new-connection test's rate is the worker's
/// whole run ([`making_rate`]) rather than a window between samples: two workers make 5k
/// sessions each in about 1.3 ms (50k in 13 ms), and the harness, which shares their
/// vCPUs, is not scheduled often enough to sample inside that. The sweep's 100k point
/// (100k flows on one worker, about 50k on each of two) is timed so with either count.
const VERY_FEW_NEW_FLOWS: u64 = 100_000;

/// New connections: every packet of the capture is a new flow's SYN until the capture
/// wraps. Each worker's rate is [`worker_rate`]'s: the slope of sessions created while
/// between 5% and 90% of its flows exist (sampled as [`new_conn_interval`] says), or for a
/// short run the sessions it made over the turns that made them.
fn new_conn(
    opts: &Opts,
    engine: &Engine,
    expected: &[u64],
    hz: u64,
    capacity: u32,
) -> Result<RunResult, Error> {
    let t = Instant::now();
    let limit = Duration::from_secs_f64(opts.duration + 60.0);
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_progress = Instant::now();
    let interval = new_conn_interval(expected);
    loop {
        let s = sample(engine);
        // Done when every worker made its flows' sessions; a worker given no flows (fewer
        // flows than workers) has nothing to wait for. With a real NIC nothing is
        // expected: the run ends at its time limit.
        let real_nic = expected.iter().all(|&n| n == 0);
        let done = !real_nic
            && s.reports
                .iter()
                .zip(expected)
                .all(|(r, &n)| n == 0 || r.sessions_created >= n);
        let total: u64 = s.reports.iter().map(|r| r.sessions_created).sum();
        samples.push(s);
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress(format!("new-conn: {total} sessions created"));
            last_progress = Instant::now();
        }
        if done || t.elapsed() > limit {
            break;
        }
        std::thread::sleep(interval);
    }
    let mut problems = Vec::new();
    let end = samples.last().ok_or("no samples")?;
    let mut per_worker = Vec::new();
    for (w, &n) in expected.iter().enumerate() {
        let (mut f, rate) = match worker_rate(&samples, w, n, hz) {
            Some(t) => {
                let mut f = figures(w, t.packets, t.secs, hz, BTreeMap::new());
                let before = |i: usize| t.from.map_or(0, |a| a.reports[w].counters.drops[i]);
                for (i, x) in t.to.reports[w].counters.drops.iter().enumerate() {
                    if *x > before(i) {
                        let name =
                            DropReason::from_index(i).map_or(format!("slot{i}"), |d| d.name());
                        f.drops.insert(name, x - before(i));
                    }
                }
                (f, t.rate)
            }
            None => (figures(w, 0, 1.0, hz, BTreeMap::new()), 0.0),
        };
        f.sessions_per_sec = rate;
        f.fill_rates = fill_rates(&samples, w, n, capacity, hz);
        f.sessions = end.reports.get(w).map_or(0, |r| u64::from(r.sessions));
        if end.reports.get(w).map_or(0, |r| r.sessions_created) < n {
            problems.push(format!(
                "worker {w}: {} of {n} sessions created",
                end.reports.get(w).map_or(0, |r| r.sessions_created)
            ));
        }
        per_worker.push(f);
    }
    let mut r = RunResult {
        seconds: end.at.duration_since(samples[0].at).as_secs_f64(),
        mpps_total: per_worker.iter().map(|w| w.mpps).sum(),
        per_worker,
        problems,
        ..RunResult::default()
    };
    fill_tables(&mut r, end, capacity);
    Ok(r)
}

/// Seconds between samples `a` and `b` of worker `w` by the worker's own clock: the TSC
/// cycles its poll loop ran between the two reports it wrote (each written in one turn
/// of the loop, with the counters of that moment), over `hz`. The harness's own sample
/// times would count the delay before a worker answers, which is long and uneven while
/// a worker shares the harness's vCPU. Those times only when a report lacks the clock.
fn worker_secs(a: &Sample, b: &Sample, w: usize, hz: u64) -> f64 {
    let cycles = |s: &Sample| s.reports.get(w).map(|r| r.poll_cycles);
    match (cycles(a), cycles(b)) {
        (Some(x), Some(y)) if y > x && hz > 0 => (y - x) as f64 / hz as f64,
        _ => b.at.duration_since(a.at).as_secs_f64(),
    }
}

/// A new-connection rate of one worker: over the samples `from` (`None`: since the worker
/// started) to `to`, `rate` sessions per second, over `secs` of the worker's time in
/// which it processed `packets`.
struct Timed<'s> {
    from: Option<&'s Sample>,
    to: &'s Sample,
    rate: f64,
    secs: f64,
    packets: u64,
}

/// The new-connection rate of worker `w`, given `n` flows: the slope of sessions created
/// while between 5% and 90% of them exist; for a run of at most [`VERY_FEW_NEW_FLOWS`],
/// whose samples may all come after it (the harness shares the workers' vCPUs), the
/// whole run timed by the turns that made sessions ([`making_rate`]). `None` without
/// two samples in the window.
fn worker_rate(samples: &[Sample], w: usize, n: u64, hz: u64) -> Option<Timed<'_>> {
    let created = |s: &Sample| s.reports.get(w).map_or(0, |r| r.sessions_created);
    if n <= VERY_FEW_NEW_FLOWS {
        let to = samples.last()?;
        let (rate, secs) = making_rate(to, w, hz)?;
        return Some(Timed {
            from: None,
            to,
            rate,
            secs,
            // A SYN per session made, in those turns.
            packets: to.reports.get(w)?.making_sessions,
        });
    }
    let a = samples.iter().find(|s| created(s) >= n / 20)?;
    let b = samples.iter().rev().find(|s| created(s) <= n * 9 / 10)?;
    if b.at <= a.at || created(b) <= created(a) {
        return None;
    }
    let secs = worker_secs(a, b, w, hz);
    Some(Timed {
        from: Some(a),
        to: b,
        rate: (created(b) - created(a)) as f64 / secs,
        secs,
        packets: processed(&b.reports[w]) - processed(&a.reports[w]),
    })
}

/// Sessions worker `w` made up to sample `b` per second of the turns in which it made
/// them (the report's `making_cycles`, over `hz`), and those seconds; `None` without
/// sessions made or cycles counted. Used for runs too short to sample inside
/// ([`VERY_FEW_NEW_FLOWS`]): the rate while the worker was making sessions, whenever the
/// harness got to look.
fn making_rate(b: &Sample, w: usize, hz: u64) -> Option<(f64, f64)> {
    let y = b.reports.get(w)?;
    let (made, cycles) = (y.making_sessions, y.making_cycles);
    if made == 0 || cycles == 0 || hz == 0 {
        return None;
    }
    let secs = cycles as f64 / hz as f64;
    Some((made as f64 / secs, secs))
}

/// New sessions per second of worker `w` (of `n` flows, table `capacity`) in fill bands:
/// the slope of sessions created between 5-25%, 25-50%, 50-75% and 75-90% of its flows,
/// each with the band's middle as a fraction of the table's capacity.
fn fill_rates(samples: &[Sample], w: usize, n: u64, capacity: u32, hz: u64) -> Vec<(f64, f64)> {
    let created = |s: &Sample| s.reports.get(w).map_or(0, |r| r.sessions_created);
    let mut out = Vec::new();
    for (a, b) in [(5u64, 25u64), (25, 50), (50, 75), (75, 90)] {
        let lo = samples.iter().find(|s| created(s) >= n * a / 100);
        let hi = samples.iter().rev().find(|s| created(s) <= n * b / 100);
        if let (Some(x), Some(y)) = (lo, hi) {
            if y.at > x.at && created(y) > created(x) {
                let secs = worker_secs(x, y, w, hz);
                let rate = (created(y) - created(x)) as f64 / secs;
                let mid = (created(x) + created(y)) as f64 / 2.0 / f64::from(capacity.max(1));
                out.push((mid, rate));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker's report at poll-loop cycle `cycles`, having made `created` sessions.
    fn report(cycles: u64, created: u64) -> WorkerReport {
        WorkerReport {
            worker: 0,
            counters: Default::default(),
            handoff_in: 0,
            tx_dropped: 0,
            to_kernel: 0,
            from_kernel: 0,
            dests: Vec::new(),
            sessions: created as u32,
            laddrs: Vec::new(),
            sessions_created: created,
            conn_capacity: 1 << 20,
            conn_memory_bytes: 0,
            poll_cycles: cycles,
            busy_cycles: cycles,
            making_cycles: cycles,
            making_sessions: created,
            busy_ppm: 0,
            idle_sleeps: 0,
        }
    }

    /// The rate counts the worker's time between its two reports, not the harness's
    /// (which includes how late the worker answered): 30k sessions in 10 ms of the
    /// worker's loop are 3M/s however far apart the harness took the samples.
    #[test]
    fn new_session_rates_use_the_workers_own_clock() {
        let hz = 2_000_000_000u64;
        let t0 = Instant::now();
        let a = Sample {
            at: t0,
            reports: vec![report(hz, 10_000)],
        };
        let b = Sample {
            at: t0 + Duration::from_millis(25),
            reports: vec![report(hz + hz / 100, 40_000)],
        };
        let secs = worker_secs(&a, &b, 0, hz);
        assert!((secs - 0.010).abs() < 1e-9, "{secs}");
        let rates = fill_rates(&[a, b], 0, 200_000, 1 << 20, hz);
        assert_eq!(rates.len(), 1, "{rates:?}");
        assert!((rates[0].1 - 3e6).abs() < 1.0, "{rates:?}");
    }

    /// The sweep's 10k point with two workers: each makes its 5k sessions in about 1.3 ms,
    /// and the harness's only sample comes after that. The rate is then the sessions the
    /// worker made over the cycles of the turns that made them: 5,000 sessions in
    /// 1.25 ms of such turns are 4M/s, however late the sample. A run of 200k has no
    /// rate from one sample (its window needs two).
    #[test]
    fn a_run_too_short_to_sample_is_timed_by_the_turns_that_made_sessions() {
        let hz = 2_000_000_000u64;
        let mut r = report(hz * 3, 5_000);
        r.making_cycles = hz / 800;
        r.making_sessions = 4_968;
        let only = [Sample {
            at: Instant::now(),
            reports: vec![r],
        }];
        let t = worker_rate(&only, 0, 5_000, hz).expect("a rate from one sample");
        assert!((t.rate - 4_968.0 * 800.0).abs() < 1.0, "{}", t.rate);
        assert!((t.secs - 0.00125).abs() < 1e-12, "{}", t.secs);
        assert_eq!(t.packets, 4_968);
        assert!(t.from.is_none());
        assert!(worker_rate(&only, 0, 200_000, hz).is_none());
        // Nothing made (or no cycles counted): no rate rather than a division by zero.
        let mut idle = report(hz, 0);
        idle.making_cycles = 0;
        idle.making_sessions = 0;
        let idle = [Sample {
            at: Instant::now(),
            reports: vec![idle],
        }];
        assert!(worker_rate(&idle, 0, 5_000, hz).is_none());
    }

    /// A run just over [`VERY_FEW_NEW_FLOWS`] is timed by its samples: at 4M sessions/s a
    /// worker makes 100k in 25 ms, and the 5-90 % window (85 % of that) must still hold
    /// several samples to give a rate.
    #[test]
    fn a_short_new_connection_run_is_sampled_often_enough_for_a_rate() {
        let window = Duration::from_secs_f64(100_000.0 * 0.85 / 4e6);
        let samples = window.as_secs_f64() / new_conn_interval(&[100_000]).as_secs_f64();
        assert!(samples >= 10.0, "{samples} samples in the window");
        // Long runs keep the 10 ms period that disturbs the workers least.
        assert_eq!(
            new_conn_interval(&[1_000_000, 1_000_000]),
            Duration::from_millis(10)
        );
    }
}
