//! Real-server health checks, with keepalived's checkers and semantics (see
//! docs/operations.md, "Health checks").
//!
//! Probes go from the host's kernel (real sockets through the exception path of the
//! server-side port), never from the workers. One scheduler thread keeps a timer queue and
//! hands due attempts to a bounded pool of probe threads; results come back to it, it
//! moves the checks' and servers' states, runs the notify scripts (bounded, on their own
//! threads) and hands the table effect, an [`Overlay`], to the daemon, which applies it in
//! one table change. The daemon's lock is never held while probing.

pub mod dns;
pub mod http;
pub mod probe;
pub mod via;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_config::check::{kind_name, CheckKind};
use rvs_config::Config;

use crate::daemon::Daemon;
use crate::format::{server_label, service_label};
use crate::ipvs::{DestConf, ServiceKey};

/// Probe threads: attempts running at once.
pub const POOL: usize = 64;
/// Bound of a notify or quorum script.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A real server of a service: (service, address, port).
pub type ServerKey = (ServiceKey, IpAddr, u16);

/// What the health state does to one real server in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// As configured.
    Up,
    /// Removed (`inhibit = false`) or kept with weight 0 (`inhibit = true`).
    Down {
        /// `inhibit_on_failure`.
        inhibit: bool,
    },
    /// Up with this weight (`MISC_CHECK` with `misc_dynamic`).
    Weight(i32),
}

/// The table effect of the health state: every real server of the services that have
/// checks or a sorry server, and the sorry servers in the table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    /// Per real server: its configured entry and the effect.
    pub servers: HashMap<ServerKey, (DestConf, Effect)>,
    /// The sorry servers that are in the table (quorum lost).
    pub sorry: HashMap<ServiceKey, DestConf>,
}

/// A check's state as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Passing.
    Up,
    /// Failed (`retry + 1` failed attempts in a row), or not yet passed with `alpha`.
    Down,
    /// Failing, retries left (still up for the table).
    Retrying,
}

impl State {
    fn text(self) -> &'static str {
        match self {
            State::Up => "UP",
            State::Down => "DOWN",
            State::Retrying => "RETRY",
        }
    }
}

/// One checker's row in `rvsadm --list-checks` and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The service.
    pub service: ServiceKey,
    /// The real server.
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
    /// Which checker (`HTTP_GET`).
    pub kind: CheckKind,
    /// Where it probes.
    pub target: SocketAddr,
    /// The state.
    pub state: State,
    /// Whether an attempt has ended yet.
    pub checked: bool,
    /// The last attempt's text.
    pub last: String,
    /// The last attempt's duration.
    pub latency: Duration,
    /// Transitions between up and down.
    pub transitions: u64,
    /// When the state last changed (or the check started).
    pub since: Instant,
}

/// Formats seconds as `1s`, `0.5s`.
pub fn secs_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}s", (s * 1000.0).round() / 1000.0)
    }
}

/// `rvsadm --list-checks`: one line per checker.
pub fn list_text(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no health checks\n".into();
    }
    let now = Instant::now();
    let mut out = format!(
        "{:<28} {:<24} {:<11} {:<6} {:>9} {:>5} {:>8}  {}\n",
        "Service", "Server", "Check", "State", "Latency", "Trans", "Since", "Last result"
    );
    for r in rows {
        let svc = service_label(&r.service);
        let srv = server_label(&r.service, &r.addr, r.port);
        let latency = if r.checked {
            format!("{:.1}ms", r.latency.as_secs_f64() * 1000.0)
        } else {
            "-".into()
        };
        let last = if r.checked {
            r.last.as_str()
        } else {
            "not checked yet"
        };
        out.push_str(&format!(
            "{:<28} {:<24} {:<11} {:<6} {:>9} {:>5} {:>7}s  {}\n",
            svc,
            srv,
            kind_name(r.kind),
            r.state.text(),
            latency,
            r.transitions,
            now.saturating_duration_since(r.since).as_secs(),
            last
        ));
    }
    out
}

/// The running checker's handle: its rows for listings and metrics, and its inbox.
#[derive(Clone)]
pub struct Handle {
    rows: Arc<Mutex<Vec<Row>>>,
    tx: Sender<Msg>,
    omega: Arc<Mutex<Vec<String>>>,
}

impl Handle {
    /// The rows, in configuration order.
    pub fn rows(&self) -> Vec<Row> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The configuration changed (a reload): checks whose server and settings did not
    /// change keep their state, the others start again.
    pub fn reconfigure(&self, cfg: &Config) {
        let _ = self.tx.send(Msg::Config(Box::new(cfg.clone())));
    }

    /// At shutdown: runs the `notify_down` of every server up in the services with
    /// `omega`, waiting for them at most [`SCRIPT_TIMEOUT`].
    pub fn omega(&self) {
        let cmds = self.omega.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let threads: Vec<_> = cmds
            .into_iter()
            .map(|c| std::thread::spawn(move || run_notify("omega notify_down", &c)))
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

enum Msg {
    Result(usize, u64, probe::Outcome, Duration),
    Config(Box<Config>),
}

struct Job {
    id: usize,
    generation: u64,
    spec: Arc<probe::Spec>,
}

/// One checker of one server.
struct Check {
    server: usize,
    spec: Arc<probe::Spec>,
    /// Identity across reloads: the server and the resolved settings.
    ident: String,
    interval: Duration,
    retry: u32,
    delay_before_retry: Duration,
    up: bool,
    failures: u32,
    weight: Option<i32>,
    in_flight: bool,
    generation: u64,
    row: Row,
}

struct Server {
    key: ServerKey,
    conf: DestConf,
    inhibit: bool,
    notify_up: Option<String>,
    notify_down: Option<String>,
    checks: Vec<usize>,
    up: bool,
    omega: bool,
}

struct ServiceState {
    key: ServiceKey,
    quorum: u64,
    hysteresis: u64,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
    sorry: Option<DestConf>,
    up: bool,
    servers: Vec<usize>,
}

struct Scheduler {
    checks: Vec<Check>,
    servers: Vec<Server>,
    services: Vec<ServiceState>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_generation: u64,
}

fn f2d(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// A pseudo-random fraction in [0, 1) for `warmup`.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Scheduler {
    /// Builds the checks of `cfg`; `old` keeps the state of identical checks.
    fn build(cfg: &Config, old: Option<Scheduler>) -> Scheduler {
        let mut old_checks: HashMap<String, Check> = HashMap::new();
        let mut old_quorum: HashMap<ServiceKey, bool> = HashMap::new();
        let mut next_generation = 1;
        if let Some(o) = old {
            next_generation = o.next_generation;
            for s in &o.services {
                old_quorum.insert(s.key, s.up);
            }
            for c in o.checks {
                old_checks.insert(c.ident.clone(), c);
            }
        }
        let mut s = Scheduler {
            checks: Vec::new(),
            servers: Vec::new(),
            services: Vec::new(),
            timers: BinaryHeap::new(),
            next_generation,
        };
        let Ok(table) = crate::ipvs::table_from_config(cfg) else {
            return s;
        };
        let now = Instant::now();
        for (i, svc) in cfg.services.iter().enumerate() {
            let has_checks = svc.real.iter().any(|r| !r.checks.is_empty());
            if !has_checks && svc.sorry_server.is_none() {
                continue;
            }
            let Ok(key) = crate::ipvs::config_key(i, svc) else {
                continue;
            };
            let Some(tsvc) = table.service(&key) else {
                continue;
            };
            let port = key_port(&key);
            let mut st = ServiceState {
                key,
                quorum: svc.quorum.unwrap_or(1).max(0) as u64,
                hysteresis: svc.hysteresis.unwrap_or(0).max(0) as u64,
                quorum_up: svc.quorum_up.clone(),
                quorum_down: svc.quorum_down.clone(),
                sorry: None,
                up: true,
                servers: Vec::new(),
            };
            if let Some(a) = &svc.sorry_server {
                let forward = svc
                    .sorry_server_forward
                    .or_else(|| svc.real.first().map(|r| r.forward))
                    .unwrap_or_default();
                let r = rvs_config::Real::new(a.clone(), forward);
                st.sorry = crate::ipvs::config_dest((i, 0), key, &r).ok();
            }
            for r in &svc.real {
                let Some(ep) = r.endpoint(port) else { continue };
                let Some(conf) = tsvc
                    .dests
                    .iter()
                    .find(|d| d.addr == ep.ip() && d.port == ep.port())
                    .cloned()
                else {
                    continue;
                };
                let sid = s.servers.len();
                let mut server = Server {
                    key: (key, conf.addr, conf.port),
                    conf: conf.clone(),
                    inhibit: r.inhibit_on_failure.unwrap_or(svc.inhibit_on_failure),
                    notify_up: r.notify_up.clone(),
                    notify_down: r.notify_down.clone(),
                    checks: Vec::new(),
                    up: true,
                    omega: svc.omega,
                };
                for c in &r.checks {
                    let spec = resolve(svc, &conf, c);
                    let interval = f2d(c.delay_loop.or(svc.delay_loop).unwrap_or(60.0));
                    let ident = format!(
                        "{:?}|{:?}|{:?}|{interval:?}|{:?}|{:?}|{:?}",
                        server.key, spec, c.retry, c.delay_before_retry, svc.alpha, c.warmup
                    );
                    let cid = s.checks.len();
                    let check = match old_checks.remove(&ident) {
                        Some(mut o) => {
                            o.server = sid;
                            o.in_flight = false;
                            o.generation = s.next_generation;
                            o
                        }
                        None => Check {
                            server: sid,
                            spec: Arc::new(spec.clone()),
                            ident,
                            interval,
                            retry: c.retry.unwrap_or(1).max(0) as u32,
                            delay_before_retry: f2d(c.delay_before_retry.unwrap_or(1.0)),
                            up: !svc.alpha,
                            failures: 0,
                            weight: None,
                            in_flight: false,
                            generation: s.next_generation,
                            row: Row {
                                service: key,
                                addr: conf.addr,
                                port: conf.port,
                                kind: c.kind,
                                target: spec.target,
                                state: if svc.alpha { State::Down } else { State::Up },
                                checked: false,
                                last: String::new(),
                                latency: Duration::ZERO,
                                transitions: 0,
                                since: now,
                            },
                        },
                    };
                    s.next_generation += 1;
                    let first = now + f2d(c.warmup.unwrap_or(0.0) * random_fraction());
                    s.timers.push(Reverse((first, cid, check.generation)));
                    server.checks.push(cid);
                    s.checks.push(check);
                }
                server.up = server.checks.iter().all(|&c| s.checks[c].up);
                st.servers.push(sid);
                s.servers.push(server);
            }
            st.up = old_quorum
                .get(&key)
                .copied()
                .unwrap_or_else(|| s.quorum_sum(&st) >= st.quorum.max(1));
            s.services.push(st);
        }
        // The routes of checks through a VIP that are gone go.
        let used = s
            .checks
            .iter()
            .filter_map(|c| match (c.spec.target.ip(), c.spec.via) {
                (IpAddr::V4(vip), Some(v)) => Some((vip, v.rip)),
                _ => None,
            })
            .collect();
        via::retain(&used);
        s
    }

    fn server_weight(&self, sv: &Server) -> i32 {
        sv.checks
            .iter()
            .filter_map(|&c| self.checks[c].weight)
            .min()
            .unwrap_or(sv.conf.weight)
    }

    fn quorum_sum(&self, st: &ServiceState) -> u64 {
        st.servers
            .iter()
            .map(|&i| &self.servers[i])
            .filter(|sv| sv.up)
            .map(|sv| self.server_weight(sv).max(0) as u64)
            .sum()
    }

    fn overlay(&self) -> Overlay {
        let mut o = Overlay::default();
        for st in &self.services {
            let sorry = !st.up && st.sorry.is_some();
            if let (true, Some(d)) = (sorry, &st.sorry) {
                o.sorry.insert(st.key, d.clone());
            }
            for &i in &st.servers {
                let sv = &self.servers[i];
                let w = self.server_weight(sv);
                let e = if !sv.up {
                    Effect::Down {
                        inhibit: sv.inhibit,
                    }
                } else if sorry {
                    // keepalived takes the servers still alive out while the sorry
                    // server serves.
                    Effect::Down { inhibit: false }
                } else if w != sv.conf.weight {
                    Effect::Weight(w)
                } else {
                    Effect::Up
                };
                o.servers.insert(sv.key, (sv.conf.clone(), e));
            }
        }
        o
    }

    fn rows(&self) -> Vec<Row> {
        self.checks.iter().map(|c| c.row.clone()).collect()
    }

    fn omega_cmds(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|s| s.omega && s.up)
            .filter_map(|s| s.notify_down.clone())
            .collect()
    }

    /// An attempt ended: moves the check, its server and its service.
    fn result(&mut self, id: usize, generation: u64, o: probe::Outcome, took: Duration) {
        let Some(c) = self.checks.get_mut(id) else {
            return;
        };
        if c.generation != generation {
            return;
        }
        c.in_flight = false;
        c.row.checked = true;
        c.row.last = o.text.clone();
        c.row.latency = took;
        let now = Instant::now();
        let was_up = c.up;
        let next;
        if o.ok {
            c.failures = 0;
            c.up = true;
            c.weight = o.weight;
            next = c.interval;
        } else {
            c.failures += 1;
            if c.up && c.failures <= c.retry {
                next = c.delay_before_retry;
            } else {
                c.up = false;
                next = c.interval;
            }
        }
        let state = if c.up && c.failures > 0 {
            State::Retrying
        } else if c.up {
            State::Up
        } else {
            State::Down
        };
        if c.up != was_up {
            c.row.transitions += 1;
            c.row.since = now;
        }
        c.row.state = state;
        self.timers.push(Reverse((now + next, id, generation)));
        let (kind, sid) = (c.row.kind, c.server);
        if c.up != was_up {
            let sv = &self.servers[sid];
            tracing::warn!(
                service = %service_label(&sv.key.0),
                server = %server_label(&sv.key.0, &sv.key.1, sv.key.2),
                check = kind_name(kind),
                result = %o.text,
                "health check {}",
                if o.ok { "succeeded: check UP" } else { "failed: check DOWN" }
            );
        }
        let up = self.servers[sid].checks.iter().all(|&i| self.checks[i].up);
        let sv = &mut self.servers[sid];
        if up != sv.up {
            sv.up = up;
            let label = format!(
                "{} -> {}",
                service_label(&sv.key.0),
                server_label(&sv.key.0, &sv.key.1, sv.key.2)
            );
            if up {
                tracing::warn!(server = %label, "real server UP: back in the table");
            } else {
                tracing::warn!(
                    server = %label,
                    inhibit_on_failure = sv.inhibit,
                    "real server DOWN: {}",
                    if sv.inhibit { "weight 0" } else { "out of the table" }
                );
            }
            let cmd = if up { &sv.notify_up } else { &sv.notify_down };
            if let Some(cmd) = cmd.clone() {
                spawn_notify(if up { "notify_up" } else { "notify_down" }, cmd);
            }
            self.quorum(sid);
        } else if self.checks[id].weight.is_some() {
            self.quorum(sid);
        }
    }

    /// keepalived's quorum rule: lost when the weight of the servers up is 0 or below
    /// `quorum - hysteresis`, gained again at `quorum + hysteresis`.
    fn quorum(&mut self, sid: usize) {
        let Some(i) = self.services.iter().position(|s| s.servers.contains(&sid)) else {
            return;
        };
        let sum = self.quorum_sum(&self.services[i]);
        let st = &mut self.services[i];
        let label = service_label(&st.key);
        if st.up && (sum == 0 || sum < st.quorum.saturating_sub(st.hysteresis)) {
            st.up = false;
            tracing::warn!(service = %label, weight = sum, quorum = st.quorum, "quorum lost{}", if st.sorry.is_some() { ": sorry server in the table" } else { "" });
            if let Some(c) = st.quorum_down.clone() {
                spawn_notify("quorum_down", c);
            }
        } else if !st.up && sum > 0 && sum >= st.quorum + st.hysteresis {
            st.up = true;
            tracing::warn!(service = %label, weight = sum, quorum = st.quorum, "quorum gained");
            if let Some(c) = st.quorum_up.clone() {
                spawn_notify("quorum_up", c);
            }
        }
    }
}

fn key_port(k: &ServiceKey) -> u16 {
    match k {
        ServiceKey::Inet { port, .. } => *port,
        ServiceKey::Fwmark { .. } => 0,
    }
}

/// Resolves a configured check of a server into what its attempts need.
fn resolve(svc: &rvs_config::Service, d: &DestConf, c: &rvs_config::check::Check) -> probe::Spec {
    let ip = c
        .connect_ip
        .as_deref()
        .and_then(|a| a.parse().ok())
        .unwrap_or(d.addr);
    let port = c.connect_port.map(|p| p as u16).unwrap_or(d.port);
    let target = SocketAddr::new(ip, port);
    // `connect_ip` = the VIP on a DR or TUN server: through that server (as DR or TUN
    // forwards).
    let dr_or_tun = matches!(
        d.forward,
        crate::ipvs::Forward::Route | crate::ipvs::Forward::Tunnel
    );
    let via = match (svc.endpoint().map(|e| e.ip()), ip, d.addr) {
        (Some(IpAddr::V4(vip)), IpAddr::V4(to), IpAddr::V4(rip))
            if dr_or_tun && c.connect_ip.is_some() && to == vip =>
        {
            Some(via::Via {
                rip,
                tun: d.forward == crate::ipvs::Forward::Tunnel,
            })
        }
        _ => None,
    };
    let bind = match (
        c.bindto.as_deref().and_then(|a| a.parse::<IpAddr>().ok()),
        c.bind_port,
    ) {
        (None, None) => None,
        (Some(a), p) => Some(SocketAddr::new(a, p.unwrap_or(0) as u16)),
        (None, Some(p)) => Some(SocketAddr::new(
            if ip.is_ipv6() {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            },
            p as u16,
        )),
    };
    let interval = c.delay_loop.or(svc.delay_loop).unwrap_or(60.0);
    let timeout = if c.kind == CheckKind::Misc {
        f2d(c.misc_timeout.unwrap_or(interval))
    } else {
        f2d(c.connect_timeout.unwrap_or(5.0))
    };
    let host = c
        .virtualhost
        .clone()
        .or_else(|| svc.virtualhost.clone())
        .unwrap_or_else(|| match target {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        });
    probe::Spec {
        kind: c.kind,
        target,
        bind,
        via,
        timeout,
        urls: c
            .url
            .iter()
            .map(|u| {
                let codes = u
                    .status_code
                    .as_ref()
                    .and_then(|c| c.ranges().ok())
                    .unwrap_or_default();
                (u.path.clone(), codes, u.digest.clone())
            })
            .collect(),
        host,
        dns: (
            c.dns_name.clone().unwrap_or_else(|| ".".into()),
            c.dns_type
                .as_deref()
                .and_then(rvs_config::check::dns_type)
                .unwrap_or(6),
        ),
        misc: (c.misc_path.clone().unwrap_or_default(), c.misc_dynamic),
        udp: (
            c.payload
                .as_deref()
                .and_then(rvs_config::check::decode_hex)
                .unwrap_or_default(),
            c.require_reply
                .as_deref()
                .and_then(rvs_config::check::decode_hex),
        ),
    }
}

fn run_notify(what: &str, cmd: &str) {
    match probe::run_script(cmd, SCRIPT_TIMEOUT) {
        Ok(Some(0)) => tracing::info!(command = cmd, "{what} ran"),
        Ok(Some(s)) => tracing::warn!(command = cmd, status = s, "{what} failed"),
        Ok(None) => tracing::warn!(command = cmd, "{what} was killed by a signal"),
        Err(e) => tracing::warn!(command = cmd, error = %e, "{what} failed"),
    }
}

fn spawn_notify(what: &'static str, cmd: String) {
    let _ = std::thread::Builder::new()
        .name("rvs-notify".into())
        .spawn(move || run_notify(what, &cmd));
}

fn lock(d: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the checks of `cfg` against `daemon`'s table: the scheduler thread and the
/// probe pool. The initial overlay (`alpha` servers down) is applied before it returns.
pub fn start(cfg: &Config, daemon: Arc<Mutex<Daemon>>) -> std::io::Result<Handle> {
    let (tx, rx) = channel::<Msg>();
    let (job_tx, job_rx) = channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for n in 0..POOL {
        let rx = job_rx.clone();
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("rvs-probe{n}"))
            .spawn(move || loop {
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(j) => j,
                    Err(_) => return,
                };
                let (o, took) = probe::run(&job.spec);
                if tx
                    .send(Msg::Result(job.id, job.generation, o, took))
                    .is_err()
                {
                    return;
                }
            })?;
    }
    let sched = Scheduler::build(cfg, None);
    let rows = Arc::new(Mutex::new(sched.rows()));
    let omega = Arc::new(Mutex::new(sched.omega_cmds()));
    let overlay = sched.overlay();
    if let Err(e) = lock(&daemon).set_health(overlay.clone()) {
        tracing::warn!(error = %e, "health checks: the table change was refused");
    }
    let handle = Handle {
        rows: rows.clone(),
        tx,
        omega: omega.clone(),
    };
    if !sched.checks.is_empty() {
        tracing::info!(checks = sched.checks.len(), "health checks started");
    }
    std::thread::Builder::new()
        .name("rvs-checks".into())
        .spawn(move || run(sched, rx, job_tx, daemon, rows, omega, overlay))?;
    Ok(handle)
}

fn run(
    mut s: Scheduler,
    rx: Receiver<Msg>,
    jobs: Sender<Job>,
    daemon: Arc<Mutex<Daemon>>,
    rows: Arc<Mutex<Vec<Row>>>,
    omega: Arc<Mutex<Vec<String>>>,
    mut applied: Overlay,
) {
    loop {
        // Dispatch what is due.
        let now = Instant::now();
        while let Some(Reverse((at, id, generation))) = s.timers.peek().copied() {
            if at > now {
                break;
            }
            s.timers.pop();
            let Some(c) = s.checks.get_mut(id) else {
                continue;
            };
            if c.generation != generation || c.in_flight {
                continue;
            }
            c.in_flight = true;
            let _ = jobs.send(Job {
                id,
                generation,
                spec: c.spec.clone(),
            });
        }
        let wait = s
            .timers
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(1));
        let mut changed = false;
        match rx.recv_timeout(wait) {
            Ok(Msg::Result(id, g, o, took)) => {
                s.result(id, g, o, took);
                // Take what else has arrived before publishing.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Result(id, g, o, took) => s.result(id, g, o, took),
                        Msg::Config(cfg) => s = Scheduler::build(&cfg, Some(s)),
                    }
                }
                changed = true;
            }
            Ok(Msg::Config(cfg)) => {
                s = Scheduler::build(&cfg, Some(s));
                changed = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if changed {
            *rows.lock().unwrap_or_else(|e| e.into_inner()) = s.rows();
            *omega.lock().unwrap_or_else(|e| e.into_inner()) = s.omega_cmds();
            let o = s.overlay();
            if o != applied {
                match lock(&daemon).set_health(o.clone()) {
                    Ok(()) => applied = o,
                    Err(e) => {
                        tracing::warn!(error = %e, "health checks: the table change was refused")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[ports]]
name = "p0"
device = "net_null0"
addresses = ["10.10.0.1/24"]

[[services]]
proto = "tcp"
vip = "10.10.0.100:80"
delay_loop = 1
quorum = 2
hysteresis = 1
sorry_server = "10.20.0.99:80"
[[services.real]]
address = "10.20.0.11:80"
forward = "masq"
[[services.real.checks]]
type = "TCP_CHECK"
retry = 1
[[services.real]]
address = "10.20.0.12:80"
forward = "masq"
inhibit_on_failure = true
[[services.real.checks]]
type = "TCP_CHECK"
retry = 0
"#;

    fn outcome(ok: bool) -> probe::Outcome {
        probe::Outcome {
            ok,
            weight: None,
            text: String::new(),
        }
    }

    fn effect(s: &Scheduler, i: usize) -> Effect {
        s.overlay().servers[&s.servers[i].key].1
    }

    #[test]
    fn retries_inhibit_quorum_and_hysteresis() {
        let cfg = Config::from_str(CFG).unwrap();
        let mut s = Scheduler::build(&cfg, None);
        assert_eq!(s.checks.len(), 2);
        assert!(s.services[0].up);
        let g0 = s.checks[0].generation;
        let g1 = s.checks[1].generation;
        // retry = 1: the first failure retries, the second fails the check.
        s.result(0, g0, outcome(false), Duration::ZERO);
        assert_eq!(s.checks[0].row.state, State::Retrying);
        assert_eq!(effect(&s, 0), Effect::Up);
        s.result(0, g0, outcome(false), Duration::ZERO);
        assert_eq!(effect(&s, 0), Effect::Down { inhibit: false });
        assert_eq!(s.checks[0].row.transitions, 1);
        // Weight 1 up, quorum 2 - hysteresis 1 = 1: still held.
        assert!(s.services[0].up);
        assert!(s.overlay().sorry.is_empty());
        // retry = 0 with inhibit: weight 0 at once; all down: quorum lost, sorry in.
        s.result(1, g1, outcome(false), Duration::ZERO);
        assert_eq!(effect(&s, 1), Effect::Down { inhibit: true });
        assert!(!s.services[0].up);
        assert_eq!(
            s.overlay().sorry[&s.services[0].key].addr.to_string(),
            "10.20.0.99"
        );
        // One up (weight 1) is below quorum 2 + hysteresis 1: still lost, and the
        // server alive is kept out while the sorry server serves.
        s.result(0, g0, outcome(true), Duration::ZERO);
        assert!(!s.services[0].up);
        assert_eq!(effect(&s, 0), Effect::Down { inhibit: false });
        s.result(1, g1, outcome(true), Duration::ZERO);
        // 2 < 3: still lost (hysteresis).
        assert!(!s.services[0].up);
        // A stale generation is ignored.
        s.result(1, g1 + 100, outcome(false), Duration::ZERO);
        assert_eq!(s.checks[1].row.state, State::Up);
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_checks() {
        let cfg = Config::from_str(CFG).unwrap();
        let mut s = Scheduler::build(&cfg, None);
        let g = s.checks[1].generation;
        s.result(1, g, outcome(false), Duration::ZERO);
        assert!(!s.servers[1].up);
        let cfg2 = Config::from_str(&CFG.replace("retry = 1", "retry = 2")).unwrap();
        let s2 = Scheduler::build(&cfg2, Some(s));
        assert!(!s2.servers[1].up, "unchanged check keeps its state");
        assert_eq!(s2.checks[0].row.transitions, 0);
        assert!(s2.servers[0].up);
    }

    #[test]
    fn alpha_starts_down_and_misc_dynamic_sets_the_weight() {
        let text = CFG.replace("quorum = 2", "alpha = true\nquorum = 2");
        let s = Scheduler::build(&Config::from_str(&text).unwrap(), None);
        assert_eq!(effect(&s, 0), Effect::Down { inhibit: false });
        assert!(!s.services[0].up);
        let text = CFG.replace(
            "type = \"TCP_CHECK\"\nretry = 1",
            "type = \"MISC_CHECK\"\nmisc_path = \"exit 5\"\nmisc_dynamic = true",
        );
        let mut s = Scheduler::build(&Config::from_str(&text).unwrap(), None);
        let g = s.checks[0].generation;
        s.result(
            0,
            g,
            probe::misc("exit 5", true, Duration::from_secs(5)),
            Duration::ZERO,
        );
        assert_eq!(effect(&s, 0), Effect::Weight(3));
    }

    #[test]
    fn the_listing_names_service_and_server_as_ipvsadm() {
        let s = Scheduler::build(&Config::from_str(CFG).unwrap(), None);
        let t = list_text(&s.rows());
        let line = t.lines().nth(1).unwrap();
        assert!(line.starts_with("TCP  10.10.0.100:80"), "{t}");
        assert!(
            line.contains("10.20.0.11:80") && line.contains("TCP_CHECK") && line.contains("UP"),
            "{t}"
        );
        assert!(line.ends_with("not checked yet"), "{t}");
    }
}
