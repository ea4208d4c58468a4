//! The Prometheus metrics endpoint of rvsd: the text exposition format (version 0.0.4)
//! rendered from what the daemon gathers, and a small HTTP/1.1 server for it.
//!
//! Two groups of series:
//!
//! - the IPVS series under the names, help texts, types and labels of node_exporter's
//!   `ipvs` collector (`node_ipvs_*`), so dashboards and alerts written for kernel IPVS
//!   directors keep working against rvs. The totals (`node_ipvs_*_total`) are the
//!   workers' own counts of everything they forwarded, as the kernel's
//!   `/proc/net/ip_vs_stats`: deleting a service or a real server does not lower them.
//!   Unlike the kernel's, `ipvsadm -Z` does not zero them either: `-Z` zeroes what
//!   `ipvsadm -L --stats` shows, never an exported counter, so `rate()` and `increase()`
//!   see no reset. The per-real-server gauges (`node_ipvs_backend_*`) are the table as
//!   `ipvsadm -Ln` lists it: local address and port (empty and `0` for a fwmark service),
//!   `local_mark` as `/proc/net/ip_vs` prints it (`%08X`, empty for an address service),
//!   `proto` `TCP`, `UDP`, `SCTP` or `FWM`, and addresses printed as Go prints them;
//! - rvs's own under `rvs_`: per worker, per port, per LIP, sync, build information.
//!
//! Every `*_total` series only grows while rvsd runs: a worker that does not answer in
//! time contributes the values it last reported (and `rvs_scrape_workers_stale` counts
//! such workers), a port whose driver does not answer keeps its last reading, and the sync
//! daemons' counters survive their restarts.
//!
//! The server runs on its own threads (on the control plane's core, never a worker's):
//! it takes the daemon's lock only to gather (the workers answer between bursts, as for
//! `ipvsadm -L`), then renders and writes without it. It answers `GET` and `HEAD` of
//! `/metrics` (and `/`); other methods get 405, a request head over
//! [`Limits::max_request`] bytes 431, a request with a body 413, a client slower than
//! [`Limits::timeout`] 408, and connections beyond [`Limits::max_connections`] 503.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{EngineMetrics, PortCounters, SyncWorkerMetrics, WorkerMetrics};
use crate::ipvs::{Protocol, ServiceKey};
use crate::proto::ServiceView;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scrape renders, gathered under the daemon's lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    /// The services as `ipvsadm -Ln` lists them (real servers newest first).
    pub services: Vec<ServiceView>,
    /// The dataplane's own state (`None`: rvsd runs without a dataplane).
    pub engine: Option<EngineMetrics>,
    /// The health checks' rows (see [`crate::checks`]).
    pub checks: Vec<crate::checks::Row>,
}

/// Values kept from one scrape to the next, so that a worker or port that does not
/// answer in time does not make a counter go down.
#[derive(Debug, Default)]
struct Carry {
    workers: HashMap<usize, WorkerMetrics>,
    sync_workers: HashMap<usize, SyncWorkerMetrics>,
    ports: HashMap<String, PortCounters>,
}

/// Renders scrapes; keeps what a missing answer is replaced with.
#[derive(Debug, Default)]
pub struct Exporter {
    carry: Mutex<Carry>,
}

impl Exporter {
    /// A new exporter.
    pub fn new() -> Exporter {
        Exporter::default()
    }

    /// The exposition text of `g`, completed with the last values of the workers and
    /// ports that did not answer this time.
    pub fn render(&self, mut g: Gathered) -> String {
        let mut stale = 0;
        if let Some(e) = g.engine.as_mut() {
            let mut c = self.carry.lock().unwrap_or_else(|p| p.into_inner());
            stale = complete(&mut c, e);
        }
        render(&g, stale)
    }
}

/// Fills in the workers, sync workers and ports missing from `e` from `c`, and remembers
/// what `e` has. Returns how many workers were filled in.
fn complete(c: &mut Carry, e: &mut EngineMetrics) -> usize {
    for w in &e.workers {
        c.workers.insert(w.worker, w.clone());
    }
    for w in &e.sync_workers {
        c.sync_workers.insert(w.worker, *w);
    }
    let mut stale = 0;
    for i in 0..e.workers_expected {
        if !e.workers.iter().any(|w| w.worker == i) {
            if let Some(w) = c.workers.get(&i) {
                e.workers.push(w.clone());
                stale += 1;
            }
        }
        if !e.sync_workers.iter().any(|w| w.worker == i) {
            if let Some(w) = c.sync_workers.get(&i) {
                e.sync_workers.push(*w);
            }
        }
    }
    e.workers.sort_by_key(|w| w.worker);
    e.sync_workers.sort_by_key(|w| w.worker);
    for (name, p) in &mut e.ports {
        match p {
            Some(now) => {
                c.ports.insert(name.clone(), *now);
            }
            None => *p = c.ports.get(name).copied(),
        }
    }
    stale
}

/// The exposition text being written.
struct Out {
    text: String,
}

impl Out {
    /// `# HELP` and `# TYPE` of a family.
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        value.write(&mut self.text);
        self.text.push('\n');
    }

    /// A family of one sample per item of `items`, labelled and valued by `f`.
    fn each<T>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        items: &[T],
        mut f: impl FnMut(&mut Out, &str, &T),
    ) {
        if items.is_empty() {
            return;
        }
        self.family(name, help, kind);
        for it in items {
            f(self, name, it);
        }
    }
}

/// A sample value.
trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// A label value escaped as the text format wants (backslash, quote, newline).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An address as Go's `net.IP.String` prints it (node_exporter's label values): dotted
/// quad for IPv4 and IPv4-mapped IPv6, RFC 5952 for the rest.
pub fn go_ip(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(m) => m.to_string(),
            None => v.to_string(),
        },
    }
}

/// node_exporter's labels of a service: `local_address`, `local_mark`, `local_port`,
/// `proto`, as it reads them from `/proc/net/ip_vs`.
fn service_labels(k: &ServiceKey) -> [String; 4] {
    match *k {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let proto = match protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
            };
            [go_ip(addr), String::new(), port.to_string(), proto.into()]
        }
        ServiceKey::Fwmark { mark, .. } => [
            String::new(),
            format!("{mark:08X}"),
            "0".into(),
            "FWM".into(),
        ],
    }
}

/// The exposition text of `g`; `stale` workers answered with earlier values.
pub fn render(g: &Gathered, stale: usize) -> String {
    let mut out = Out {
        text: String::with_capacity(16 * 1024),
    };
    ipvs(&mut out, g);
    build(&mut out, g, stale);
    if let Some(e) = &g.engine {
        workers(&mut out, e);
        ports(&mut out, e);
        sync(&mut out, e);
    }
    laddrs(&mut out, g);
    checks(&mut out, g);
    // Health checks, the SYN proxy and ACLs add their sections here, each a function
    // writing its `rvs_<subsystem>_*` families from what `Gathered` carries for it.
    out.text
}

/// The health checks: `rvs_check_up`, `rvs_check_transitions_total`,
/// `rvs_check_latency_seconds`, labelled with the service and server as `ipvsadm -Ln`
/// prints them and keepalived's checker name.
fn checks(out: &mut Out, g: &Gathered) {
    if g.checks.is_empty() {
        return;
    }
    let labels: Vec<[String; 3]> = g
        .checks
        .iter()
        .map(|r| {
            [
                crate::format::service_label(&r.service),
                crate::format::server_label(&r.service, &r.addr, r.port),
                rvs_config::check::kind_name(r.kind).to_string(),
            ]
        })
        .collect();
    let l = |i: usize| {
        [
            ("service", labels[i][0].as_str()),
            ("server", labels[i][1].as_str()),
            ("check", labels[i][2].as_str()),
        ]
    };
    out.family(
        "rvs_check_up",
        "Whether a real server's health check passes (1) or has failed (0).",
        "gauge",
    );
    for (i, r) in g.checks.iter().enumerate() {
        let up = r.state != crate::checks::State::Down;
        out.sample("rvs_check_up", &l(i), u64::from(up));
    }
    out.family(
        "rvs_check_transitions_total",
        "Transitions of a health check between up and down.",
        "counter",
    );
    for (i, r) in g.checks.iter().enumerate() {
        out.sample("rvs_check_transitions_total", &l(i), r.transitions);
    }
    out.family(
        "rvs_check_latency_seconds",
        "Duration of a health check's last attempt.",
        "gauge",
    );
    for (i, r) in g.checks.iter().enumerate() {
        out.sample("rvs_check_latency_seconds", &l(i), r.latency.as_secs_f64());
    }
}

/// node_exporter's `ipvs` collector's series.
fn ipvs(out: &mut Out, g: &Gathered) {
    struct Backend {
        labels: [String; 6],
        active: u64,
        inactive: u64,
        weight: u64,
    }
    let mut backends = Vec::new();
    for s in &g.services {
        let [la, lm, lp, proto] = service_labels(&s.conf.key);
        for d in &s.dests {
            backends.push(Backend {
                labels: [
                    la.clone(),
                    lm.clone(),
                    lp.clone(),
                    proto.clone(),
                    go_ip(d.conf.addr),
                    d.conf.port.to_string(),
                ],
                active: u64::from(d.counters.active_conns),
                inactive: u64::from(d.counters.inact_conns),
                weight: u64::try_from(d.conf.weight).unwrap_or(0),
            });
        }
    }
    let names = [
        "local_address",
        "local_mark",
        "local_port",
        "proto",
        "remote_address",
        "remote_port",
    ];
    type Gauge = (&'static str, &'static str, fn(&Backend) -> u64);
    let gauges: [Gauge; 3] = [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            |b| b.active,
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            |b| b.inactive,
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            |b| b.weight,
        ),
    ];
    for (name, help, value) in gauges {
        out.each(name, help, "gauge", &backends, |o, n, b| {
            let labels: Vec<(&str, &str)> = names
                .iter()
                .zip(&b.labels)
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            o.sample(n, &labels, value(b));
        });
    }
    // The totals: the workers' counts (they survive a service's deletion), or with no
    // dataplane the services' (all zero).
    let t = match &g.engine {
        Some(e) => e.workers.iter().fold([0u64; 5], |a, w| {
            [
                a[0] + w.conns,
                a[1] + w.in_bytes,
                a[2] + w.in_packets,
                a[3] + w.out_bytes,
                a[4] + w.out_packets,
            ]
        }),
        None => g.services.iter().fold([0u64; 5], |a, s| {
            [
                a[0] + s.stats.conns,
                a[1] + s.stats.inbytes,
                a[2] + s.stats.inpkts,
                a[3] + s.stats.outbytes,
                a[4] + s.stats.outpkts,
            ]
        }),
    };
    let totals = [
        (
            "node_ipvs_connections_total",
            "The total number of connections made.",
        ),
        (
            "node_ipvs_incoming_bytes_total",
            "The total amount of incoming data.",
        ),
        (
            "node_ipvs_incoming_packets_total",
            "The total number of incoming packets.",
        ),
        (
            "node_ipvs_outgoing_bytes_total",
            "The total amount of outgoing data.",
        ),
        (
            "node_ipvs_outgoing_packets_total",
            "The total number of outgoing packets.",
        ),
    ];
    for ((name, help), v) in totals.iter().zip(t) {
        out.family(name, help, "counter");
        out.sample(name, &[], v);
    }
}

/// Build information and the scrape's own state.
fn build(out: &mut Out, g: &Gathered, stale: usize) {
    out.family(
        "rvs_build_info",
        "rvsd's version; the value is always 1.",
        "gauge",
    );
    out.sample(
        "rvs_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1u64,
    );
    out.family(
        "rvs_dataplane_running",
        "Whether rvsd runs the DPDK dataplane (0: started with --no-dataplane).",
        "gauge",
    );
    out.sample("rvs_dataplane_running", &[], u64::from(g.engine.is_some()));
    if let Some(e) = &g.engine {
        out.family("rvs_workers", "Dataplane workers.", "gauge");
        out.sample("rvs_workers", &[], e.workers_expected as u64);
        out.family(
            "rvs_scrape_workers_stale",
            "Workers that did not answer this scrape in time; their series carry the values they last reported.",
            "gauge",
        );
        out.sample("rvs_scrape_workers_stale", &[], stale as u64);
        out.family(
            "rvs_mbufs_in_use",
            "Mbufs allocated from the pool.",
            "gauge",
        );
        out.sample("rvs_mbufs_in_use", &[], e.mbufs_in_use);
        out.family("rvs_mbuf_pool_size", "Mbufs in the pool.", "gauge");
        out.sample("rvs_mbuf_pool_size", &[], e.mbuf_pool_size);
    }
}

/// A worker's counter, by name, help and field.
type WorkerField = (&'static str, &'static str, fn(&WorkerMetrics) -> u64);

/// Per-worker series.
fn workers(out: &mut Out, e: &EngineMetrics) {
    let ws = &e.workers;
    let counters: [WorkerField; 34] = [
        (
            "rvs_worker_packets_total",
            "Packets a worker processed (received, or handed over by another worker).",
            |w| w.packets,
        ),
        (
            "rvs_worker_new_sessions_total",
            "Sessions a worker created (connections and persistence templates).",
            |w| w.sessions_created,
        ),
        (
            "rvs_worker_connections_total",
            "New connections a worker scheduled to a real server.",
            |w| w.conns,
        ),
        (
            "rvs_worker_tx_dropped_total",
            "Packets a worker could not send (tx queue full) or hand over (ring full).",
            |w| w.tx_dropped,
        ),
        (
            "rvs_worker_arp_replies_total",
            "ARP requests a worker answered.",
            |w| w.arp_replies,
        ),
        (
            "rvs_worker_echo_replies_total",
            "ICMP echo requests a worker answered.",
            |w| w.echo_replies,
        ),
        (
            "rvs_worker_icmp_translated_total",
            "ICMP errors about sessions a worker translated (NAT, FULLNAT) or relayed (DR, TUN).",
            |w| w.icmp_translated,
        ),
        (
            "rvs_worker_time_exceeded_sent_total",
            "ICMP time-exceeded errors a worker originated.",
            |w| w.time_exceeded_sent,
        ),
        (
            "rvs_worker_frag_needed_sent_total",
            "ICMP fragmentation-needed errors a worker originated (TUN).",
            |w| w.frag_needed_sent,
        ),
        (
            "rvs_worker_icmp_rate_limited_total",
            "ICMP errors a worker did not originate because of its rate limit.",
            |w| w.icmp_rate_limited,
        ),
        (
            "rvs_worker_proxy_headers_total",
            "PROXY protocol headers a worker sent to FULLNAT real servers (TCP header segments, resent ones included, and UDP datagrams).",
            |w| w.proxy_headers,
        ),
        (
            "rvs_worker_proxy_resent_total",
            "PROXY protocol header segments a worker sent again (unacknowledged when the client's first byte came again).",
            |w| w.proxy_resent,
        ),
        (
            "rvs_worker_toa_added_total",
            "TOA options (the client's address) a worker added to FULLNAT segments.",
            |w| w.toa_added,
        ),
        (
            "rvs_worker_toa_no_room_total",
            "TOA options a worker could not add (TCP options full, or the segment at the MTU).",
            |w| w.toa_no_room,
        ),
        (
            "rvs_worker_syn_cookies_sent_total",
            "SYN-ACKs with a SYN cookie a worker sent for SYN-proxied services (no session created).",
            |w| w.syn_cookies_sent,
        ),
        (
            "rvs_worker_syn_options_clamped_total",
            "SYNs to SYN-proxied services whose absurd options (MSS 0, window scale above 14) a worker clamped.",
            |w| w.syn_options_clamped,
        ),
        (
            "rvs_worker_syn_proxy_acks_total",
            "Clients' ACKs with a valid SYN cookie a worker accepted (stale or forged ones are the drop reason syn-proxy-bad-cookie).",
            |w| w.syn_proxy_acks,
        ),
        (
            "rvs_worker_syn_proxy_sessions_total",
            "Sessions a worker opened on a valid SYN-cookie ACK (a SYN sent to a real server).",
            |w| w.syn_proxy_sessions,
        ),
        (
            "rvs_worker_syn_proxy_established_total",
            "SYN-proxied sessions whose real server answered the director's SYN.",
            |w| w.syn_proxy_established,
        ),
        (
            "rvs_worker_syn_proxy_retries_total",
            "SYNs a worker sent to a real server again (unanswered 1 s, then 3 s, after the first).",
            |w| w.syn_proxy_retries,
        ),
        (
            "rvs_worker_syn_proxy_refused_total",
            "SYN-proxied connections a real server refused with a reset (passed to the client).",
            |w| w.syn_proxy_refused,
        ),
        (
            "rvs_worker_syn_proxy_timeouts_total",
            "SYN-proxied connections whose real server never answered three SYNs (the client was reset).",
            |w| w.syn_proxy_timeouts,
        ),
        (
            "rvs_worker_syn_proxy_client_resets_total",
            "SYN-proxied connections the client reset before the real server answered.",
            |w| w.syn_proxy_client_resets,
        ),
        (
            "rvs_worker_syn_proxy_held_total",
            "Client data segments of SYN-proxied connections held until the real server's handshake completed.",
            |w| w.syn_proxy_held,
        ),
        (
            "rvs_worker_syn_proxy_held_sent_total",
            "Held client data segments sent on to the real server after its handshake.",
            |w| w.syn_proxy_held_sent,
        ),
        (
            "rvs_worker_syn_proxy_held_freed_total",
            "Held client data segments freed because the connection failed during setup.",
            |w| w.syn_proxy_held_freed,
        ),
        (
            "rvs_worker_syn_proxy_held_full_total",
            "Client data segments during setup not held (the worker's table full, or one already held): dropped for the client to send again.",
            |w| w.syn_proxy_held_full,
        ),
        (
            "rvs_worker_frags_forwarded_total",
            "IP fragments a worker forwarded without reassembly (first fragments included).",
            |w| w.frags_forwarded,
        ),
        (
            "rvs_worker_frags_held_total",
            "IP fragments a worker held until their datagram's first fragment arrived.",
            |w| w.frags_held,
        ),
        (
            "rvs_worker_tun_outer_fragmented_total",
            "TUN packets without DF too big for the tunnel, sent as two outer fragments.",
            |w| w.tun_outer_fragmented,
        ),
        (
            "rvs_worker_to_kernel_packets_total",
            "Packets a worker passed to a port's kernel tap (exception path).",
            |w| w.to_kernel,
        ),
        (
            "rvs_worker_from_kernel_packets_total",
            "Packets the kernel sent on a tap that a worker transmitted (exception path).",
            |w| w.from_kernel,
        ),
        (
            "rvs_worker_busy_cycles_total",
            "TSC cycles of a worker's poll-loop turns that received packets; rate() of it over rate(rvs_worker_poll_cycles_total) is the busy ratio.",
            |w| w.busy_cycles,
        ),
        (
            "rvs_worker_idle_sleeps_total",
            "Pauses a worker took while its polls found every queue empty ([workers] idle_sleep_max_us; 0 under pure polling).",
            |w| w.idle_sleeps,
        ),
    ];
    let idx: Vec<String> = ws.iter().map(|w| w.worker.to_string()).collect();
    let mut per = |name: &str, help: &str, kind: &str, v: &dyn Fn(&WorkerMetrics) -> u64| {
        out.family(name, help, kind);
        for (w, i) in ws.iter().zip(&idx) {
            out.sample(name, &[("worker", i)], v(w));
        }
    };
    for (name, help, v) in counters {
        per(name, help, "counter", &v);
    }
    per(
        "rvs_worker_poll_cycles_total",
        "TSC cycles a worker's poll loop ran.",
        "counter",
        &|w| w.poll_cycles,
    );
    per(
        "rvs_worker_sessions",
        "Sessions (and persistence templates) in a worker's table.",
        "gauge",
        &|w| w.sessions,
    );
    per(
        "rvs_worker_session_capacity",
        "Sessions a worker's table holds at most.",
        "gauge",
        &|w| w.session_capacity,
    );
    out.family(
        "rvs_worker_busy_ratio",
        "Share of a worker's poll-loop cycles spent in turns that received packets, over the last full second.",
        "gauge",
    );
    for (w, i) in ws.iter().zip(&idx) {
        out.sample("rvs_worker_busy_ratio", &[("worker", i)], w.busy_ratio);
    }
    let dir = [
        (
            "rvs_worker_forwarded_packets_total",
            "Packets a worker forwarded, toward real servers (in) or clients (out).",
            [
                ("in", (|w| w.in_packets) as fn(&WorkerMetrics) -> u64),
                ("out", |w| w.out_packets),
            ],
        ),
        (
            "rvs_worker_forwarded_bytes_total",
            "Bytes a worker forwarded, toward real servers (in) or clients (out).",
            [("in", |w| w.in_bytes), ("out", |w| w.out_bytes)],
        ),
        (
            "rvs_worker_handoffs_total",
            "Packets a worker handed to the worker owning their session (out) or received so (in).",
            [("out", |w| w.handoff_out), ("in", |w| w.handoff_in)],
        ),
    ];
    for (name, help, ways) in dir {
        out.family(name, help, "counter");
        for (w, i) in ws.iter().zip(&idx) {
            for (d, v) in ways {
                out.sample(name, &[("worker", i), ("direction", d)], v(w));
            }
        }
    }
    out.family(
        "rvs_worker_drops_total",
        "Packets a worker dropped, by reason (as rvsadm --dataplane names them).",
        "counter",
    );
    for (w, i) in ws.iter().zip(&idx) {
        for (reason, n) in &w.drops {
            out.sample(
                "rvs_worker_drops_total",
                &[("worker", i), ("reason", reason)],
                *n,
            );
        }
    }
}

/// Per-port series from DPDK's port counters.
fn ports(out: &mut Out, e: &EngineMetrics) {
    let ps: Vec<(&str, PortCounters)> = e
        .ports
        .iter()
        .filter_map(|(n, c)| c.map(|c| (n.as_str(), c)))
        .collect();
    type Field = (&'static str, &'static str, fn(&PortCounters) -> u64);
    let fields: [Field; 8] = [
        (
            "rvs_port_rx_packets_total",
            "Packets a port received.",
            |p| p.rx_packets,
        ),
        ("rvs_port_tx_packets_total", "Packets a port sent.", |p| {
            p.tx_packets
        }),
        ("rvs_port_rx_bytes_total", "Bytes a port received.", |p| {
            p.rx_bytes
        }),
        ("rvs_port_tx_bytes_total", "Bytes a port sent.", |p| {
            p.tx_bytes
        }),
        (
            "rvs_port_rx_missed_total",
            "Packets a port dropped for lack of receive descriptors (the workers did not keep up).",
            |p| p.rx_missed,
        ),
        (
            "rvs_port_rx_errors_total",
            "Receive errors of a port.",
            |p| p.rx_errors,
        ),
        (
            "rvs_port_tx_errors_total",
            "Transmit errors of a port.",
            |p| p.tx_errors,
        ),
        (
            "rvs_port_rx_nombuf_total",
            "Receive buffer allocation failures of a port.",
            |p| p.rx_nombuf,
        ),
    ];
    for (name, help, v) in fields {
        out.each(name, help, "counter", &ps, |o, n, (port, c)| {
            o.sample(n, &[("port", port)], v(c));
        });
    }
}

/// FULLNAT local addresses: ports in use and conflicts, per service and LIP.
fn laddrs(out: &mut Out, g: &Gathered) {
    let mut rows = Vec::new();
    for s in &g.services {
        let [la, lm, lp, proto] = service_labels(&s.conf.key);
        for l in &s.laddrs {
            let labels = [
                la.clone(),
                lm.clone(),
                lp.clone(),
                proto.clone(),
                go_ip(l.laddr.addr),
            ];
            rows.push((labels, l.conns, l.conflicts));
        }
    }
    let names = [
        "local_address",
        "local_mark",
        "local_port",
        "proto",
        "laddr",
    ];
    let lab = |l: &[String; 5]| -> Vec<(&'static str, String)> {
        names.iter().zip(l).map(|(k, v)| (*k, v.clone())).collect()
    };
    out.each(
        "rvs_laddr_ports_in_use",
        "FULLNAT: local ports of a service's local address in use by connections.",
        "gauge",
        &rows,
        |o, n, (l, conns, _)| {
            let v = lab(l);
            let r: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
            o.sample(n, &r, *conns);
        },
    );
    out.each(
        "rvs_laddr_conflicts_total",
        "FULLNAT: local ports passed over because a live session held the local address and port toward the chosen real server.",
        "counter",
        &rows,
        |o, n, (l, _, conflicts)| {
            let v = lab(l);
            let r: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
            o.sample(n, &r, *conflicts);
        },
    );
}

/// Active/active sync: per peer of the group (`peer` label), its state and what was
/// received from it. No series outside a group.
fn sync_peers(
    out: &mut Out,
    peers: &[rvs_dataplane::sync::group::PeerReport],
    held: &[(std::net::Ipv4Addr, std::net::Ipv4Addr)],
) {
    use rvs_dataplane::sync::group::PeerReport;
    if peers.is_empty() {
        return;
    }
    type Field = (
        &'static str,
        &'static str,
        &'static str,
        fn(&PeerReport) -> u64,
    );
    let fields: [Field; 9] = [
        (
            "rvs_sync_peer_up",
            "Whether a message of the sync group's peer was accepted within the last 3 s (peers send a heartbeat each second when idle).",
            "gauge",
            |p| u64::from(p.up),
        ),
        (
            "rvs_sync_peer_messages_total",
            "Sync messages with sessions accepted from the peer.",
            "counter",
            |p| p.msgs,
        ),
        (
            "rvs_sync_peer_records_received_total",
            "Session records received from the peer and handed to the workers.",
            "counter",
            |p| p.conns,
        ),
        (
            "rvs_sync_peer_heartbeats_total",
            "Heartbeats (empty sync messages) accepted from the peer.",
            "counter",
            |p| p.heartbeats,
        ),
        (
            "rvs_sync_peer_messages_refused_total",
            "Sync messages from the peer refused (MAC, replay, syncid, size).",
            "counter",
            |p| p.refused,
        ),
        (
            "rvs_sync_peer_bulk_records_sent_total",
            "Session records sent to the peer in bulk syncs (every session and template of this director, sent when the peer comes up).",
            "counter",
            |p| p.bulk_records,
        ),
        (
            "rvs_sync_peer_bulk_syncs_total",
            "Bulk syncs to the peer completed.",
            "counter",
            |p| p.bulk_syncs,
        ),
        (
            "rvs_sync_peer_records_refused_layout_total",
            "FULLNAT session records from the peer refused because its worker count or local port range is not this director's.",
            "counter",
            |p| p.refused_layout,
        ),
        (
            "rvs_sync_peer_layout_mismatch",
            "Whether the peer's last heartbeat names another worker count or local port range than this director's (its FULLNAT records are refused, its LIPs never taken over).",
            "gauge",
            |p| u64::from(p.layout.is_some()),
        ),
    ];
    for (name, help, kind, f) in fields {
        out.family(name, help, kind);
        for p in peers {
            out.sample(name, &[("peer", &p.addr.to_string())], f(p));
        }
    }
    out.family(
        "rvs_sync_lips_held",
        "Local addresses of dead peers this director holds (answers ARP and replies for, opens no session on).",
        "gauge",
    );
    out.sample("rvs_sync_lips_held", &[], held.len() as u64);
    out.family(
        "rvs_sync_lip_held",
        "A dead peer's local address this director holds (1), by address and peer.",
        "gauge",
    );
    for (lip, peer) in held {
        out.sample(
            "rvs_sync_lip_held",
            &[("lip", &lip.to_string()), ("peer", &peer.to_string())],
            1u64,
        );
    }
    out.family(
        "rvs_sync_peer_last_message_age_seconds",
        "Seconds since the last message accepted from the peer (absent: none yet).",
        "gauge",
    );
    for p in peers {
        if let Some(ms) = p.last_age_ms {
            out.sample(
                "rvs_sync_peer_last_message_age_seconds",
                &[("peer", &p.addr.to_string())],
                ms as f64 / 1000.0,
            );
        }
    }
}

/// Connection sync: the daemons' messages and records, the workers' records, the
/// standby's lag.
fn sync(out: &mut Out, e: &EngineMetrics) {
    let roles = [("master", &e.sync_master), ("backup", &e.sync_backup)];
    out.family(
        "rvs_sync_daemon_running",
        "Whether the sync daemon of a role runs.",
        "gauge",
    );
    for (role, d) in roles {
        out.sample(
            "rvs_sync_daemon_running",
            &[("role", role)],
            u64::from(d.running),
        );
    }
    // (name in the daemon's counters, series, help, role that counts it)
    let families = [
        (
            "sent_msgs",
            "rvs_sync_messages_sent_total",
            "Sync messages the master sent.",
            "master",
        ),
        (
            "sent_conns",
            "rvs_sync_records_sent_total",
            "Session records the master sent.",
            "master",
        ),
        (
            "send_errors",
            "rvs_sync_send_errors_total",
            "Sync messages the master could not send (lost).",
            "master",
        ),
        (
            "recv_msgs",
            "rvs_sync_messages_received_total",
            "Sync messages the backup received.",
            "backup",
        ),
        (
            "recv_conns",
            "rvs_sync_records_received_total",
            "Session records the backup handed to its workers.",
            "backup",
        ),
        (
            "recv_dropped",
            "rvs_sync_messages_dropped_total",
            "Sync messages the backup dropped (bad size, another syncid, undecodable header).",
            "backup",
        ),
        (
            "decode_errors",
            "rvs_sync_decode_errors_total",
            "Sync messages with a malformed record (it and the rest of its message are lost).",
            "backup",
        ),
        (
            "skipped",
            "rvs_sync_records_skipped_total",
            "Well-formed records the backup skipped (unknown mandatory option, persistence engine).",
            "backup",
        ),
        (
            "queue_full",
            "rvs_sync_records_queue_full_total",
            "Records the backup could not queue for their worker (queue full).",
            "backup",
        ),
    ];
    for (key, name, help, role) in families {
        let d = if role == "master" {
            &e.sync_master
        } else {
            &e.sync_backup
        };
        let v = d
            .counters
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, v)| *v);
        out.family(name, help, "counter");
        out.sample(name, &[], v);
    }
    out.family(
        "rvs_sync_backlog_records",
        "Session records queued between the workers and a sync daemon: the master's not yet sent, the backup's received and not yet installed (the standby's lag, in records).",
        "gauge",
    );
    for (role, d) in roles {
        out.sample("rvs_sync_backlog_records", &[("role", role)], d.backlog);
    }
    if let Some(age) = e.sync_backup.last_message_age_seconds {
        out.family(
            "rvs_sync_last_message_age_seconds",
            "Seconds since the backup received its last sync message.",
            "gauge",
        );
        out.sample("rvs_sync_last_message_age_seconds", &[], age);
    }
    out.family(
        "rvs_sync_authenticated",
        "Whether the sync daemon of a role runs with the sync group's key ([sync] key_file).",
        "gauge",
    );
    for (role, d) in roles {
        out.sample(
            "rvs_sync_authenticated",
            &[("role", role)],
            u64::from(d.authenticated),
        );
    }
    // (name in the backup's counters, reason label)
    let refusals = [
        ("auth_missing", "no-mac"),
        ("auth_bad_mac", "bad-mac"),
        ("auth_replayed", "replayed"),
        ("auth_too_old", "too-old"),
        ("auth_unexpected", "unexpected-mac"),
        ("peer_own", "own"),
        ("peer_unknown", "unknown-peer"),
    ];
    out.family(
        "rvs_sync_messages_refused_total",
        "Sync messages the backup refused before decoding, by reason: with a key, no-mac (no authentication trailer), bad-mac (wrong MAC: forged, altered or another key), replayed (sequence number seen before), too-old (more than 64 behind the sender's highest); without a key, unexpected-mac (a master with a key); in a sync group, own (this director's own message) and unknown-peer (a source not in [sync] peers).",
        "counter",
    );
    for (key, reason) in refusals {
        let v = e
            .sync_backup
            .counters
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, v)| *v);
        out.sample("rvs_sync_messages_refused_total", &[("reason", reason)], v);
    }
    sync_peers(out, &e.sync_peers, &e.sync_held_lips);
    out.family(
        "rvs_sync_passive",
        "Whether the director is a standby (VIPs and LIPs not answered).",
        "gauge",
    );
    out.sample("rvs_sync_passive", &[], u64::from(e.passive));
    type Field = (&'static str, &'static str, fn(&SyncWorkerMetrics) -> u64);
    let per: [Field; 6] = [
        (
            "rvs_sync_worker_records_emitted_total",
            "Session records a worker emitted for the sync master.",
            |w| w.emitted,
        ),
        (
            "rvs_sync_worker_records_dropped_total",
            "Session records a worker lost because the queue to the sync master was full.",
            |w| w.dropped,
        ),
        (
            "rvs_sync_worker_sessions_installed_total",
            "Sessions a worker installed from sync messages.",
            |w| w.installed,
        ),
        (
            "rvs_sync_worker_sessions_updated_total",
            "Sessions a worker updated from sync messages.",
            |w| w.updated,
        ),
        (
            "rvs_sync_worker_records_refused_total",
            "Synced records a worker refused (bad protocol or state, table full, local port busy, no such service in a sync group).",
            |w| w.refused,
        ),
        (
            "rvs_sync_worker_records_refused_no_service_total",
            "In a sync group: synced sessions a worker refused because this director has no such service.",
            |w| w.no_service,
        ),
    ];
    for (name, help, v) in per {
        out.each(name, help, "counter", &e.sync_workers, |o, n, w| {
            o.sample(n, &[("worker", &w.worker.to_string())], v(w));
        });
    }
}

/// Bounds of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest request head (request line and headers), in bytes.
    pub max_request: usize,
    /// How long a client has to send its request, and to take the answer.
    pub timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request: 8192,
            timeout: Duration::from_secs(5),
            max_connections: 8,
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 200 with the metrics (no body for HEAD).
    Metrics { head: bool },
    /// 200 with a short page naming `/metrics`.
    Index { head: bool },
    /// An error status.
    Error(u16),
}

/// Reads one request head from `s` within the limits and says what to answer.
fn read_request(s: &mut TcpStream, limits: &Limits) -> Verdict {
    let deadline = Instant::now() + limits.timeout;
    let mut buf = vec![0u8; limits.max_request];
    let mut len = 0;
    let end = loop {
        if let Some(i) = find_end(&buf[..len]) {
            break i;
        }
        if len == buf.len() {
            return Verdict::Error(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Verdict::Error(408);
        }
        match s.read(&mut buf[len..]) {
            Ok(0) => return Verdict::Error(400),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Verdict::Error(408),
        }
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Verdict::Error(400);
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Verdict::Error(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Verdict::Error(505);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Verdict::Error(405),
    };
    for h in lines {
        let Some((k, v)) = h.split_once(':') else {
            return Verdict::Error(400);
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        if k == "transfer-encoding" || (k == "content-length" && v != "0") {
            return Verdict::Error(413);
        }
    }
    match target.split('?').next() {
        Some("/metrics") => Verdict::Metrics { head: head_only },
        Some("/") => Verdict::Index { head: head_only },
        _ => Verdict::Error(404),
    }
}

/// Where the request head ends (the index after the blank line's CRLF CRLF).
fn find_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Writes a whole response and closes the connection.
fn respond(s: &mut TcpStream, code: u16, ctype: &str, body: &str, head: bool) {
    answer(s, code, ctype, body, head);
    linger(s);
}

/// Writes a whole response and shuts the connection's sending side.
fn answer(s: &mut TcpStream, code: u16, ctype: &str, body: &str, head: bool) {
    let mut r = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    if code == 405 {
        r.push_str("Allow: GET, HEAD\r\n");
    }
    r.push_str("\r\n");
    if !head {
        r.push_str(body);
    }
    let _ = s.write_all(r.as_bytes());
    let _ = s.flush();
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// A lingering close: what the client still sends (the rest of a refused request) is
/// read and discarded, briefly and boundedly, so that closing with unread data does not
/// reset the connection before the client has read the answer.
fn linger(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    while left > 0 {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// How long a closing connection waits for the client's remaining bytes.
const LINGER: Duration = Duration::from_millis(200);
/// How many of them it reads at most.
const LINGER_BYTES: usize = 128 * 1024;

/// Serves one connection: one request, one response.
fn serve_one(mut s: TcpStream, limits: &Limits, scrape: &(dyn Fn() -> String + Send + Sync)) {
    let _ = s.set_write_timeout(Some(limits.timeout));
    let _ = s.set_nodelay(true);
    match read_request(&mut s, limits) {
        Verdict::Metrics { head } => respond(&mut s, 200, CONTENT_TYPE, &scrape(), head),
        Verdict::Index { head } => respond(
            &mut s,
            200,
            "text/plain; charset=utf-8",
            "rvsd: metrics at /metrics\n",
            head,
        ),
        Verdict::Error(code) => {
            let body = format!("{code} {}\n", reason(code));
            respond(&mut s, code, "text/plain; charset=utf-8", &body, false)
        }
    }
}

/// Counts a connection being served while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `listener` on a thread of its own: each connection on a thread, at most
/// [`Limits::max_connections`] at once; `scrape` makes the `/metrics` body.
pub fn spawn(
    listener: TcpListener,
    limits: Limits,
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("rvs-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else {
                    continue;
                };
                if active.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    active.fetch_sub(1, Ordering::AcqRel);
                    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                    // No lingering here: the accept loop does not wait on a client.
                    answer(&mut s, 503, "text/plain; charset=utf-8", "busy\n", false);
                    continue;
                }
                let slot = Slot(active.clone());
                let scrape = scrape.clone();
                let r = std::thread::Builder::new()
                    .name("rvs-metrics-conn".into())
                    .spawn(move || {
                        let _slot = slot;
                        serve_one(s, &limits, &*scrape);
                    });
                if let Err(e) = r {
                    tracing::warn!(error = %e, "metrics: cannot start a connection thread");
                }
            }
        })
}

#[cfg(test)]
mod tests;
