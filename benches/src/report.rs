//! Results of one measurement (what a child process prints) and the final table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::plan::Family;

/// One worker's figures over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerFigures {
    /// Worker index.
    pub worker: usize,
    /// Packets this worker processed in the window (handoffs counted once, by the owner).
    pub packets: u64,
    /// Millions of packets per second.
    pub mpps: f64,
    /// TSC cycles per packet (the worker's core polls all the time: elapsed cycles / packets).
    pub cycles_per_packet: f64,
    /// Drops by reason in the window (pipeline reasons, plus `tx` for tx-queue/ring drops).
    pub drops: BTreeMap<String, u64>,
    /// New sessions per second (new-connection test).
    pub sessions_per_sec: f64,
    /// Sessions in the table at the end.
    pub sessions: u64,
    /// New-connection test: new sessions per second by table fill band (fraction of the
    /// table's capacity at the band's middle, rate).
    #[serde(default)]
    pub fill_rates: Vec<(f64, f64)>,
}

/// One measurement: the I/O floor, the lookup floor, established flows, or new
/// connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// `floor`, `lookup-floor`, `established` or `new-conn`.
    pub test: String,
    /// Forwarding mode.
    pub mode: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Address family of the flows (`ipv4` in results written before it was recorded).
    #[serde(default)]
    pub family: Family,
    /// Flows in the capture.
    pub flows: u64,
    /// Frame size on the wire (FCS included) of the family's frames: `--frame-size`
    /// for IPv4, 20 bytes more (the same payload) for IPv6.
    pub frame_size: usize,
    /// Worker lcores.
    pub workers: usize,
    /// Measured window in seconds.
    pub seconds: f64,
    /// TSC frequency.
    pub tsc_hz: u64,
    /// The core clock measured just before the run ([`crate::clock::core_hz`]; 0 in
    /// results written before it was measured).
    #[serde(default)]
    pub core_hz: f64,
    /// Total packets per second over all workers, in millions.
    pub mpps_total: f64,
    /// Per worker.
    pub per_worker: Vec<WorkerFigures>,
    /// Session table capacity per worker.
    pub conn_capacity: u32,
    /// Bytes held by all workers' session tables.
    pub conn_memory_bytes: u64,
    /// Live sessions over all workers at the end.
    pub sessions: u64,
    /// Table bytes per session at capacity (`memory_bytes / capacity`).
    pub bytes_per_session: f64,
    /// Whether EAL ran on hugepages (false: the `--no-huge` fallback).
    pub hugepages: bool,
    /// Packets sent by the sink port in the window.
    pub sink_packets: u64,
    /// Problems seen (empty when the run was clean).
    pub problems: Vec<String>,
    /// `--proxy-protocol` (established runs): the warm-up's settling and the window's
    /// header count.
    #[serde(default)]
    pub proxy: Option<ProxyFigures>,
    /// CPU time the worker threads actually ran in the window, summed over the workers
    /// (the scheduler's count, `/proc/self/task/*/schedstat`; 0 where unavailable). On a
    /// machine shared with other work, a poll-mode worker waits for its core part of the
    /// window: the figures per on-CPU second leave that wait out.
    #[serde(default)]
    pub worker_cpu_seconds: f64,
    /// `synflood` and `synflood-mixed`: what the window saw of the SYN proxy.
    #[serde(default)]
    pub synflood: Option<SynFloodFigures>,
}

/// A run offering SYNs of new flows to a SYN-proxied service (`synflood`), alone or
/// mixed with established flows (`synflood-mixed`): the cookies answered and the
/// established packets forwarded and dropped in the window, per second over all workers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SynFloodFigures {
    /// SYN-ACKs with a cookie sent per second.
    pub cookies_per_sec: f64,
    /// Established packets forwarded toward the real servers per second.
    pub established_per_sec: f64,
    /// Packets dropped per second (every reason).
    pub dropped_per_sec: f64,
    /// Sessions created in the window (a proxied SYN creates none).
    pub sessions_created: u64,
    /// `synflood-mixed`: the NIC model's phases (without the flood, with it, with it and
    /// the shedding off).
    #[serde(default)]
    pub nic: Vec<NicPhase>,
}

/// One phase of `synflood-mixed`'s NIC model: packets offered at a fixed rate into a
/// bounded receive ring; what overflowed it is the NIC's drop. Counts over the phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NicPhase {
    /// Whether the workers shed SYNs when overloaded in this phase.
    pub shedding: bool,
    /// Seconds of the phase (offering, then serving what was still queued).
    pub secs: f64,
    /// Established packets offered.
    pub offered_est: u64,
    /// The flood's SYNs offered.
    pub offered_syn: u64,
    /// Established packets the full ring dropped (the NIC's drop).
    pub nic_dropped_est: u64,
    /// SYNs the full ring dropped.
    pub nic_dropped_syn: u64,
    /// Established packets forwarded toward the real servers.
    pub est_forwarded: u64,
    /// SYN-ACK cookies sent.
    pub cookies: u64,
    /// SYNs shed by the worker (`syn-shed`).
    pub shed: u64,
    /// Packets the worker dropped (every reason, `syn-shed` included).
    pub worker_dropped: u64,
    /// Sessions created.
    pub sessions_created: u64,
}

/// An established run with `--proxy-protocol`: what the warm-up did to settle every
/// session (header sent and acknowledged) and what the window saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProxyFigures {
    /// `v1` or `v2`.
    pub version: String,
    /// Sessions that got their header during warm-up (first sends:
    /// `proxy_headers - proxy_resent`).
    pub headers_sent: u64,
    /// Header segments sent again during warm-up (the client's first byte came again
    /// before the real server's acknowledgement).
    pub headers_resent: u64,
    /// Real-server acknowledgements of the header the harness injected (one per session)
    /// and the pipeline forwarded to the client.
    pub acks_forwarded: u64,
    /// Sessions the listing showed with the sequence shift (`IN_SEQ`).
    pub shifted_sessions: u64,
    /// Header segments sent during the measured window (0 when every session was
    /// settled: the window ran on the fast path).
    pub headers_in_window: u64,
}

impl RunResult {
    /// Share of the window the workers were on a CPU (1.0 on dedicated cores; `None`
    /// when not measured).
    pub fn cpu_share(&self) -> Option<f64> {
        let wall = self.seconds * self.per_worker.len() as f64;
        (self.worker_cpu_seconds > 0.0 && wall > 0.0).then(|| self.worker_cpu_seconds / wall)
    }

    /// Packets per on-CPU second of a worker, in millions (`None` when not measured).
    pub fn mpps_per_cpu_second(&self) -> Option<f64> {
        let packets: u64 = self.per_worker.iter().map(|w| w.packets).sum();
        (self.worker_cpu_seconds > 0.0).then(|| packets as f64 / self.worker_cpu_seconds / 1e6)
    }

    /// TSC cycles per packet counting only the time the workers were on a CPU (`None`
    /// when not measured).
    pub fn cpu_cycles_per_packet(&self) -> Option<f64> {
        let packets: u64 = self.per_worker.iter().map(|w| w.packets).sum();
        (self.worker_cpu_seconds > 0.0 && packets > 0)
            .then(|| self.tsc_hz as f64 * self.worker_cpu_seconds / packets as f64)
    }

    /// Mean Mpps per worker.
    pub fn mpps_per_worker(&self) -> f64 {
        if self.per_worker.is_empty() {
            return 0.0;
        }
        self.mpps_total / self.per_worker.len() as f64
    }

    /// Core cycles per TSC cycle in this run (`None` when the core clock was not
    /// measured).
    pub fn core_per_tsc(&self) -> Option<f64> {
        crate::clock::core_per_tsc(self.core_hz, self.tsc_hz)
    }

    /// Mean cycles per packet over the workers.
    pub fn cycles_per_packet(&self) -> f64 {
        let v: Vec<f64> = self
            .per_worker
            .iter()
            .map(|w| w.cycles_per_packet)
            .filter(|c| c.is_finite() && *c > 0.0)
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }

    /// Total drops by reason over the workers.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for w in &self.per_worker {
            for (k, v) in &w.drops {
                *out.entry(k.clone()).or_insert(0) += v;
            }
        }
        out
    }

    /// New sessions per second per worker (mean).
    pub fn sessions_per_sec_per_worker(&self) -> f64 {
        if self.per_worker.is_empty() {
            return 0.0;
        }
        self.per_worker
            .iter()
            .map(|w| w.sessions_per_sec)
            .sum::<f64>()
            / self.per_worker.len() as f64
    }
}

/// One line of the final table: a worker count with its floors, established and
/// new-connection runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// Worker lcores.
    pub workers: usize,
    /// The I/O floor run.
    pub floor: Option<RunResult>,
    /// The lookup floor run: the I/O floor plus, per packet, the two dependent memory
    /// reads of a session lookup (index bucket, session) in tables of the engine's size.
    #[serde(default)]
    pub lookup_floor: Option<RunResult>,
    /// Established flows through the engine.
    pub established: Option<RunResult>,
    /// New connections through the engine.
    pub new_conn: Option<RunResult>,
}

impl Row {
    /// Engine Mpps per worker divided by the floor's, when both ran.
    pub fn ratio_to_floor(&self) -> Option<f64> {
        let (f, e) = (self.floor.as_ref()?, self.established.as_ref()?);
        let fm = f.mpps_per_worker();
        (fm > 0.0).then(|| e.mpps_per_worker() / fm)
    }

    /// The core clock of the established run against the TSC, and the established
    /// packet's cost in core cycles (`None` without an established run whose clock was
    /// measured). Cycles per packet elsewhere are TSC cycles: on a core that boosts
    /// above the TSC's rate the same work shows fewer of them than on one that does not.
    pub fn clock_line(&self) -> Option<String> {
        let e = self.established.as_ref()?;
        let k = e.core_per_tsc()?;
        let engine = e.cycles_per_packet() * k;
        let compute = self
            .floor
            .as_ref()
            .map(|f| {
                let floor = f.cycles_per_packet() * f.core_per_tsc().unwrap_or(k);
                format!(", compute {:.0}", engine - floor)
            })
            .unwrap_or_default();
        Some(format!(
            "core clock ({} workers): {:.2} GHz before the established run, TSC {:.2} GHz \
             ({k:.2} core cycles per TSC cycle); in core cycles per packet: engine {engine:.0}{compute}",
            self.workers,
            e.core_hz / 1e9,
            e.tsc_hz as f64 / 1e9,
        ))
    }

    /// Engine Mpps per worker divided by the lookup floor's, when both ran.
    pub fn ratio_to_lookup_floor(&self) -> Option<f64> {
        let (f, e) = (self.lookup_floor.as_ref()?, self.established.as_ref()?);
        let fm = f.mpps_per_worker();
        (fm > 0.0).then(|| e.mpps_per_worker() / fm)
    }
}

/// The whole run: what `--json` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Date (UTC, `YYYY-MM-DD`).
    pub date: String,
    /// CPU model.
    pub cpu: String,
    /// The command line.
    pub command: String,
    /// Per worker count.
    pub rows: Vec<Row>,
    /// Established total Mpps with the largest worker count over the smallest.
    pub scaling: Option<f64>,
    /// Session-table bytes per session at capacity (largest table measured).
    pub bytes_per_session: Option<f64>,
    /// Target checks (informational: never asserted).
    pub targets: Vec<(String, bool)>,
}

fn fmt_drops(d: &BTreeMap<String, u64>) -> String {
    let v: Vec<String> = d
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if v.is_empty() {
        "0".into()
    } else {
        v.join(",")
    }
}

impl Summary {
    /// Fills [`Summary::scaling`], [`Summary::bytes_per_session`] and the target checks.
    pub fn finish(&mut self, mode: &str) {
        let est: Vec<(usize, f64)> = self
            .rows
            .iter()
            .filter_map(|r| r.established.as_ref().map(|e| (r.workers, e.mpps_total)))
            .collect();
        let one = est.iter().find(|(w, _)| *w == 1).map(|x| x.1);
        let two = est.iter().find(|(w, _)| *w == 2).map(|x| x.1);
        self.scaling = match (est.first(), est.last()) {
            (Some(a), Some(b)) if b.0 > a.0 && a.1 > 0.0 => Some(b.1 / a.1),
            _ => None,
        };
        self.bytes_per_session = self
            .rows
            .iter()
            .filter_map(|r| r.established.as_ref())
            .max_by_key(|e| e.conn_capacity)
            .map(|e| e.bytes_per_session);
        self.targets.clear();
        if mode == "fullnat" {
            if let Some(r) = self.rows.iter().find(|r| r.workers == 1) {
                if let Some(e) = &r.established {
                    if e.flows >= 1_000_000 {
                        self.targets.push((
                            "established FULLNAT, 1M sessions, 1 worker >= 15 Mpps".into(),
                            e.mpps_total >= 15.0,
                        ));
                    }
                }
                if let Some(x) = r.ratio_to_floor() {
                    self.targets
                        .push(("1 worker >= 0.25 of the I/O floor".into(), x >= 0.25));
                }
                if let Some(n) = &r.new_conn {
                    self.targets.push((
                        "new sessions >= 1M/s per core".into(),
                        n.sessions_per_sec_per_worker() >= 1e6,
                    ));
                }
            }
        }
        if let Some(b) = self.bytes_per_session {
            self.targets
                .push(("<= 160 bytes per session".into(), b <= 160.0));
        }
        if let (Some(a), Some(b)) = (one, two) {
            if a > 0.0 {
                self.targets
                    .push(("2 workers >= 1.8x 1 worker".into(), b / a >= 1.8));
            }
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "rvs-bench {} on {}", self.date, self.cpu);
        let _ = writeln!(s, "command: {}", self.command);
        let first = self
            .rows
            .iter()
            .find_map(|r| r.established.as_ref().or(r.floor.as_ref()));
        if let Some(f) = first {
            let _ = writeln!(
                s,
                "mode {} {} over {}, {} flows, {}-byte frames, {} s windows, hugepages: {}",
                f.mode,
                f.proto,
                f.family.name(),
                f.flows,
                f.frame_size,
                f.seconds.round(),
                if f.hugepages { "yes" } else { "no (--no-huge)" }
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:>7} | {:>10} | {:>11} | {:>11} | {:>5} | {:>9} | {:>10} | {:>10} | {:>10} | drops (engine)",
            "workers",
            "floor Mpps",
            "lookup Mpps",
            "engine Mpps",
            "ratio",
            "of lookup",
            "cycles/pkt",
            "total Mpps",
            "new sess/s"
        );
        let _ = writeln!(s, "{}", "-".repeat(118));
        let mpps = |f: &Option<RunResult>| {
            f.as_ref()
                .map_or("-".into(), |f| format!("{:.2}", f.mpps_per_worker()))
        };
        for r in &self.rows {
            let (floor, lookup) = (mpps(&r.floor), mpps(&r.lookup_floor));
            let (eng, cyc, tot, drops) = match &r.established {
                Some(e) => (
                    format!("{:.2}", e.mpps_per_worker()),
                    format!("{:.0}", e.cycles_per_packet()),
                    format!("{:.2}", e.mpps_total),
                    fmt_drops(&e.drops()),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            let ratio = r.ratio_to_floor().map_or("-".into(), |x| format!("{x:.2}"));
            let of_lookup = r
                .ratio_to_lookup_floor()
                .map_or("-".into(), |x| format!("{x:.2}"));
            let newc = r.new_conn.as_ref().map_or("-".into(), |n| {
                let x = n.sessions_per_sec_per_worker();
                if x > 0.0 {
                    format!("{x:.0}")
                } else {
                    "n/a".into()
                }
            });
            let _ = writeln!(
                s,
                "{:>7} | {:>10} | {:>11} | {:>11} | {:>5} | {:>9} | {:>10} | {:>10} | {:>10} | {}",
                r.workers, floor, lookup, eng, ratio, of_lookup, cyc, tot, newc, drops
            );
        }
        let _ = writeln!(
            s,
            "(Mpps and new sessions/s are per worker; ratio = engine / floor, of lookup = engine /\n \
             lookup floor, in this run; lookup floor = the I/O floor plus each packet's index\n \
             bucket and session read from tables of the engine's size, nothing else done)"
        );
        if let Some(b) = self.bytes_per_session {
            let _ = writeln!(
                s,
                "memory: {b:.1} bytes per session (session table at capacity)"
            );
        }
        if let Some(x) = self.scaling {
            let _ = writeln!(
                s,
                "scaling: {x:.2}x total established Mpps, most workers over fewest"
            );
        }
        for r in &self.rows {
            let on_cpu: Vec<String> = [("floor", &r.floor), ("engine", &r.established)]
                .into_iter()
                .filter_map(|(name, run)| {
                    let run = run.as_ref()?;
                    Some(format!(
                        "{name} {:.2} Mpps, {:.0} cycles/pkt (on a CPU {:.0} % of the window)",
                        run.mpps_per_cpu_second()?,
                        run.cpu_cycles_per_packet()?,
                        run.cpu_share()? * 100.0
                    ))
                })
                .collect();
            if !on_cpu.is_empty() {
                let _ = writeln!(
                    s,
                    "per on-CPU second ({} workers): {}",
                    r.workers,
                    on_cpu.join("; ")
                );
            }
        }
        for r in &self.rows {
            if let Some(line) = r.clock_line() {
                let _ = writeln!(s, "{line}");
            }
        }
        for r in &self.rows {
            if let Some((e, p)) = r
                .established
                .as_ref()
                .and_then(|e| Some((e, e.proxy.as_ref()?)))
            {
                let _ = writeln!(
                    s,
                    "proxy protocol {} ({} workers): warm-up sent {} headers ({} resent), \
                     forwarded {} server acks, {} sessions shifted; {} headers in the window",
                    p.version,
                    e.workers,
                    p.headers_sent,
                    p.headers_resent,
                    p.acks_forwarded,
                    p.shifted_sessions,
                    p.headers_in_window
                );
            }
        }
        for r in &self.rows {
            for run in [&r.floor, &r.lookup_floor, &r.established, &r.new_conn]
                .into_iter()
                .flatten()
            {
                for p in &run.problems {
                    let _ = writeln!(s, "problem ({} {} workers): {p}", run.test, run.workers);
                }
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(s, "targets (informational):");
            for (t, ok) in &self.targets {
                let _ = writeln!(s, "  [{}] {t}", if *ok { "met" } else { "MISSED" });
            }
        }
        s
    }
}

/// One test of one worker count measured in both families in the same run
/// (`rvs-bench --families 4,6`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FamilyLine {
    /// Worker lcores.
    pub workers: usize,
    /// `floor`, `lookup-floor`, `established` or `new-conn`.
    pub test: String,
    /// IPv4: Mpps per worker.
    pub v4_mpps: f64,
    /// IPv6: Mpps per worker.
    pub v6_mpps: f64,
    /// IPv4: cycles per packet (mean over the workers).
    pub v4_cycles: f64,
    /// IPv6: cycles per packet (mean over the workers).
    pub v6_cycles: f64,
    /// IPv6 cycles per packet over IPv4's (`None` when either is missing).
    pub cycles_ratio: Option<f64>,
    /// IPv4: cycles per packet counting only the time the workers were on a CPU
    /// ([`RunResult::cpu_cycles_per_packet`]; `None` when not measured).
    #[serde(default)]
    pub v4_cpu_cycles: Option<f64>,
    /// IPv6: cycles per packet on a CPU.
    #[serde(default)]
    pub v6_cpu_cycles: Option<f64>,
    /// IPv6 on-CPU cycles per packet over IPv4's: on a machine shared with other work,
    /// the figure that leaves the workers' waits for their cores out.
    #[serde(default)]
    pub cpu_cycles_ratio: Option<f64>,
    /// `new-conn`: IPv4 new sessions per second per worker.
    pub v4_sessions_per_sec: f64,
    /// `new-conn`: IPv6 new sessions per second per worker.
    pub v6_sessions_per_sec: f64,
}

/// A run of both families: what `--json` prints with `--families 4,6`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Families {
    /// The IPv4 summary, then the IPv6 one (whatever order the runs went in).
    pub summaries: Vec<Summary>,
    /// The tests of both families side by side.
    pub compare: Vec<FamilyLine>,
}

impl Row {
    /// The run of `test` (`floor`, `lookup-floor`, `established`, `new-conn`).
    pub fn run(&self, test: &str) -> Option<&RunResult> {
        match test {
            "floor" => self.floor.as_ref(),
            "lookup-floor" => self.lookup_floor.as_ref(),
            "established" => self.established.as_ref(),
            "new-conn" => self.new_conn.as_ref(),
            _ => None,
        }
    }
}

impl Families {
    /// Pairs the rows of the IPv4 summary `v4` with those of the IPv6 summary `v6` (same
    /// worker count, same test, both with a measured window) into [`Families::compare`].
    pub fn pair(v4: Summary, v6: Summary) -> Families {
        let mut compare = Vec::new();
        for a in &v4.rows {
            let Some(b) = v6.rows.iter().find(|b| b.workers == a.workers) else {
                continue;
            };
            for test in ["floor", "lookup-floor", "established", "new-conn"] {
                let (Some(x), Some(y)) = (a.run(test), b.run(test)) else {
                    continue;
                };
                // A run without a window (a new-connection test of too few flows).
                if x.mpps_total <= 0.0 || y.mpps_total <= 0.0 {
                    continue;
                }
                let (cx, cy) = (x.cycles_per_packet(), y.cycles_per_packet());
                let (px, py) = (x.cpu_cycles_per_packet(), y.cpu_cycles_per_packet());
                compare.push(FamilyLine {
                    workers: a.workers,
                    test: test.into(),
                    v4_mpps: x.mpps_per_worker(),
                    v6_mpps: y.mpps_per_worker(),
                    v4_cycles: cx,
                    v6_cycles: cy,
                    cycles_ratio: (cx > 0.0 && cy > 0.0).then(|| cy / cx),
                    v4_cpu_cycles: px,
                    v6_cpu_cycles: py,
                    cpu_cycles_ratio: px.zip(py).map(|(a, b)| b / a),
                    v4_sessions_per_sec: x.sessions_per_sec_per_worker(),
                    v6_sessions_per_sec: y.sessions_per_sec_per_worker(),
                });
            }
        }
        Families {
            summaries: vec![v4, v6],
            compare,
        }
    }

    /// The human-readable tables: each family's, then both side by side.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for sum in &self.summaries {
            s.push_str(&sum.table());
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "IPv4 and IPv6 in the same run (the two alternate, test by test)"
        );
        let _ = writeln!(
            s,
            "{:>7} | {:>12} | {:>9} | {:>9} | {:>10} | {:>10} | {:>7} | {:>10} | {:>10} | {:>7} | {:>10} | {:>10}",
            "workers",
            "test",
            "v4 Mpps",
            "v6 Mpps",
            "v4 cyc/pkt",
            "v6 cyc/pkt",
            "v6 / v4",
            "v4 on-CPU",
            "v6 on-CPU",
            "v6 / v4",
            "v4 sess/s",
            "v6 sess/s"
        );
        let _ = writeln!(s, "{}", "-".repeat(145));
        for l in &self.compare {
            let sess = |x: f64| {
                if l.test == "new-conn" && x > 0.0 {
                    format!("{x:.0}")
                } else {
                    "-".into()
                }
            };
            let opt =
                |x: Option<f64>, digits: usize| x.map_or("-".into(), |x| format!("{x:.digits$}"));
            let _ = writeln!(
                s,
                "{:>7} | {:>12} | {:>9.2} | {:>9.2} | {:>10.0} | {:>10.0} | {:>7} | {:>10} | {:>10} | {:>7} | {:>10} | {:>10}",
                l.workers,
                l.test,
                l.v4_mpps,
                l.v6_mpps,
                l.v4_cycles,
                l.v6_cycles,
                opt(l.cycles_ratio, 2),
                opt(l.v4_cpu_cycles, 0),
                opt(l.v6_cpu_cycles, 0),
                opt(l.cpu_cycles_ratio, 2),
                sess(l.v4_sessions_per_sec),
                sess(l.v6_sessions_per_sec)
            );
        }
        let _ = writeln!(
            s,
            "(per worker; cyc/pkt = TSC cycles of the window per packet, on-CPU = the same \
             counting only the\n time the workers were on a CPU; v6 / v4 = IPv6's over \
             IPv4's: 1.15 is 15 % dearer; a test\n without a window in either family, \
             new-conn of too few flows, has no line)"
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(test: &str, family: Family, packets: u64, sessions_per_sec: f64) -> RunResult {
        RunResult {
            test: test.into(),
            family,
            seconds: 1.0,
            tsc_hz: 1_000_000_000,
            mpps_total: packets as f64 / 1e6,
            // On a CPU half the window: twice fewer cycles per packet on a CPU.
            worker_cpu_seconds: 0.5,
            per_worker: vec![WorkerFigures {
                packets,
                mpps: packets as f64 / 1e6,
                cycles_per_packet: 1e9 / packets as f64,
                sessions_per_sec,
                ..WorkerFigures::default()
            }],
            ..RunResult::default()
        }
    }

    fn summary(family: Family, est: u64, newc: f64) -> Summary {
        Summary {
            rows: vec![Row {
                workers: 1,
                established: Some(run("established", family, est, 0.0)),
                new_conn: Some(run("new-conn", family, est / 4, newc)),
                ..Row::default()
            }],
            ..Summary::default()
        }
    }

    #[test]
    fn both_families_pair_by_test_with_the_cycles_ratio() {
        // IPv4 4 Mpps (250 cycles), IPv6 2.5 Mpps (400 cycles): IPv6 1.6x dearer.
        let f = Families::pair(
            summary(Family::V4, 4_000_000, 2e6),
            summary(Family::V6, 2_500_000, 1.5e6),
        );
        assert_eq!(f.compare.len(), 2);
        let est = &f.compare[0];
        assert_eq!((est.workers, est.test.as_str()), (1, "established"));
        assert!((est.v4_cycles - 250.0).abs() < 1e-9);
        assert!((est.v6_cycles - 400.0).abs() < 1e-9);
        assert!((est.cycles_ratio.unwrap() - 1.6).abs() < 1e-9);
        assert!((est.v6_cpu_cycles.unwrap() - 200.0).abs() < 1e-9);
        assert!((est.cpu_cycles_ratio.unwrap() - 1.6).abs() < 1e-9);
        assert_eq!(f.compare[1].test, "new-conn");
        assert_eq!(f.compare[1].v6_sessions_per_sec, 1.5e6);
        let t = f.table();
        assert!(t.contains("1.60"), "{t}");
        assert!(t.contains("1500000"), "{t}");
        // A worker count measured in one family only has no line.
        let mut v6 = summary(Family::V6, 1, 1.0);
        v6.rows[0].workers = 2;
        assert!(Families::pair(summary(Family::V4, 1, 1.0), v6)
            .compare
            .is_empty());
        // Nor a test whose run had no window (no packets counted).
        let mut v4 = summary(Family::V4, 4_000_000, 2e6);
        v4.rows[0].new_conn.as_mut().unwrap().mpps_total = 0.0;
        let f = Families::pair(v4, summary(Family::V6, 2_500_000, 1.5e6));
        let tests: Vec<&str> = f.compare.iter().map(|l| l.test.as_str()).collect();
        assert_eq!(tests, ["established"]);
    }

    #[test]
    fn the_clock_line_gives_the_packet_in_core_cycles() {
        // 4 Mpps on a 1 GHz TSC: 250 TSC cycles; I/O floor 10 Mpps: 100. A core at 1.5 GHz
        // runs 1.5 core cycles per TSC cycle: 375 and 150, compute 225.
        let mut s = summary(Family::V4, 4_000_000, 2e6);
        assert_eq!(s.rows[0].clock_line(), None, "no clock measured, no line");
        assert!(!s.table().contains("core clock"));
        s.rows[0].established.as_mut().unwrap().core_hz = 1.5e9;
        s.rows[0].floor = Some(run("floor", Family::V4, 10_000_000, 0.0));
        let line = s.rows[0].clock_line().expect("a line");
        assert!(line.contains("1.50 GHz"), "{line}");
        assert!(line.contains("1.50 core cycles per TSC cycle"), "{line}");
        assert!(line.contains("engine 375, compute 225"), "{line}");
        assert!(s.table().contains(&line));
    }
}
