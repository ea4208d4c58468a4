use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::backend::{
    Backend, BackendError, BackendMetrics, ConnRow, DataplaneCounters, DestCounterEntry,
    DestCounters, EngineMetrics, LaddrCounterEntry, ServiceCounters, Stats, SyncDaemonMetrics,
    WorkerMetrics,
};
use crate::daemon::Daemon;
use crate::ipvs::{DestConf, IpvsTable, Laddr, Op, Protocol, ServiceConf, ServiceKey};

/// What the fake dataplane reports: per service counters that vanish with the service
/// (as the real dataplane's do) and worker totals that do not.
#[derive(Default)]
struct State {
    counters: DataplaneCounters,
    workers: Vec<WorkerMetrics>,
    sync_backup: SyncDaemonMetrics,
    sync_peers: Vec<rvs_dataplane::sync::group::PeerReport>,
}

struct Fake(Arc<Mutex<State>>);

impl Backend for Fake {
    fn apply(&mut self, t: &IpvsTable) -> Result<(), BackendError> {
        let mut s = self.0.lock().unwrap();
        s.counters
            .services
            .retain(|c| t.services.iter().any(|x| x.conf.key == c.key));
        Ok(())
    }
    fn counters(&self) -> DataplaneCounters {
        self.0.lock().unwrap().counters.clone()
    }
    fn connections(&self) -> Vec<ConnRow> {
        Vec::new()
    }
    fn metrics(&self) -> BackendMetrics {
        let s = self.0.lock().unwrap();
        BackendMetrics {
            counters: s.counters.clone(),
            engine: Some(EngineMetrics {
                workers_expected: 2,
                workers: s.workers.clone(),
                ports: vec![("dpdk0".into(), None)],
                mbufs_in_use: 10,
                mbuf_pool_size: 4096,
                sync_backup: s.sync_backup.clone(),
                sync_peers: s.sync_peers.clone(),
                sync_held_lips: vec![(
                    "10.20.0.103".parse().unwrap(),
                    "10.99.0.3".parse().unwrap(),
                )],
                ..Default::default()
            }),
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn web() -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: ip("10.10.0.100"),
        port: 80,
    }
}

fn dns6() -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Udp,
        addr: ip("2001:db8::1"),
        port: 53,
    }
}

fn mark() -> ServiceKey {
    ServiceKey::Fwmark {
        mark: 26,
        ipv6: false,
    }
}

fn dest(addr: &str, port: u16, active: u32, inact: u32, inpkts: u64) -> DestCounterEntry {
    DestCounterEntry {
        addr: ip(addr),
        port,
        counters: DestCounters {
            active_conns: active,
            inact_conns: inact,
            persist_conns: 0,
            stats: Stats {
                conns: 1,
                inpkts,
                ..Default::default()
            },
        },
    }
}

fn worker(i: usize, conns: u64, inp: u64) -> WorkerMetrics {
    WorkerMetrics {
        worker: i,
        conns,
        in_packets: inp,
        in_bytes: inp * 100,
        out_packets: inp / 2,
        out_bytes: inp * 50,
        drops: vec![("no-session".into(), 3)],
        busy_ratio: 0.25,
        ..Default::default()
    }
}

/// A daemon with a TCP service (two real servers, one quiesced), a fwmark service and an
/// IPv6 UDP service, and the fake dataplane's state.
fn daemon() -> (Daemon, Arc<Mutex<State>>) {
    let state = Arc::new(Mutex::new(State::default()));
    let mut d = Daemon::new(IpvsTable::new(), Box::new(Fake(state.clone()))).unwrap();
    let mut ops = vec![
        Op::AddService(ServiceConf::new(web())),
        Op::AddDest(web(), DestConf::new(ip("10.20.0.11"), 8080)),
        Op::AddDest(
            web(),
            DestConf {
                weight: 0,
                ..DestConf::new(ip("10.20.0.12"), 8080)
            },
        ),
        Op::AddService(ServiceConf::new(mark())),
        Op::AddDest(
            mark(),
            DestConf {
                weight: 3,
                ..DestConf::new(ip("10.20.0.13"), 0)
            },
        ),
        Op::AddService(ServiceConf::new(dns6())),
        Op::AddDest(dns6(), DestConf::new(ip("2001:db8::10"), 5353)),
    ];
    ops.push(Op::AddLaddr(
        web(),
        Laddr {
            addr: ip("10.20.0.2"),
            ifname: None,
        },
    ));
    for op in &ops {
        assert_eq!(d.apply(op), crate::proto::Response::Ok, "{op:?}");
    }
    {
        let mut s = state.lock().unwrap();
        s.counters.services = vec![
            ServiceCounters {
                key: web(),
                stats: Stats::default(),
                dests: vec![
                    dest("10.20.0.11", 8080, 3, 4, 500),
                    dest("10.20.0.12", 8080, 0, 1, 20),
                ],
                laddrs: vec![LaddrCounterEntry {
                    addr: ip("10.20.0.2"),
                    conflicts: 2,
                    conns: 5,
                }],
            },
            ServiceCounters {
                key: mark(),
                stats: Stats::default(),
                dests: vec![dest("10.20.0.13", 0, 1, 0, 7)],
                laddrs: vec![],
            },
            ServiceCounters {
                key: dns6(),
                stats: Stats::default(),
                dests: vec![dest("2001:db8::10", 5353, 0, 2, 9)],
                laddrs: vec![],
            },
        ];
        s.workers = vec![worker(0, 5, 600), worker(1, 2, 200)];
    }
    (d, state)
}

/// The part of a scrape before rvs's own series.
fn ipvs_part(text: &str) -> &str {
    &text[..text.find("# HELP rvs_").unwrap()]
}

/// node_exporter's `ipvs` collector prints these for the same table read from
/// `/proc/net/ip_vs` (fwmark 26 is `0000001A` there, its local address empty and port 0;
/// IPv6 addresses as Go prints them; real servers in the kernel's order, newest first).
const GOLDEN_IPVS: &str = r#"# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.
# TYPE node_ipvs_backend_connections_active gauge
node_ipvs_backend_connections_active{local_address="10.10.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.20.0.12",remote_port="8080"} 0
node_ipvs_backend_connections_active{local_address="10.10.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.20.0.11",remote_port="8080"} 3
node_ipvs_backend_connections_active{local_address="",local_mark="0000001A",local_port="0",proto="FWM",remote_address="10.20.0.13",remote_port="0"} 1
node_ipvs_backend_connections_active{local_address="2001:db8::1",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::10",remote_port="5353"} 0
# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.
# TYPE node_ipvs_backend_connections_inactive gauge
node_ipvs_backend_connections_inactive{local_address="10.10.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.20.0.12",remote_port="8080"} 1
node_ipvs_backend_connections_inactive{local_address="10.10.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.20.0.11",remote_port="8080"} 4
node_ipvs_backend_connections_inactive{local_address="",local_mark="0000001A",local_port="0",proto="FWM",remote_address="10.20.0.13",remote_port="0"} 0
node_ipvs_backend_connections_inactive{local_address="2001:db8::1",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::10",remote_port="5353"} 2
# HELP node_ipvs_backend_weight The current backend weight by local and remote address.
# TYPE node_ipvs_backend_weight gauge
node_ipvs_backend_weight{local_address="10.10.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.20.0.12",remote_port="8080"} 0
node_ipvs_backend_weight{local_address="10.10.0.100",local_mark="",local_port="80",proto="TCP",remote_address="10.20.0.11",remote_port="8080"} 1
node_ipvs_backend_weight{local_address="",local_mark="0000001A",local_port="0",proto="FWM",remote_address="10.20.0.13",remote_port="0"} 3
node_ipvs_backend_weight{local_address="2001:db8::1",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::10",remote_port="5353"} 1
# HELP node_ipvs_connections_total The total number of connections made.
# TYPE node_ipvs_connections_total counter
node_ipvs_connections_total 7
# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.
# TYPE node_ipvs_incoming_bytes_total counter
node_ipvs_incoming_bytes_total 80000
# HELP node_ipvs_incoming_packets_total The total number of incoming packets.
# TYPE node_ipvs_incoming_packets_total counter
node_ipvs_incoming_packets_total 800
# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.
# TYPE node_ipvs_outgoing_bytes_total counter
node_ipvs_outgoing_bytes_total 40000
# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.
# TYPE node_ipvs_outgoing_packets_total counter
node_ipvs_outgoing_packets_total 400
"#;

#[test]
fn ipvs_series_are_node_exporters() {
    let (d, _) = daemon();
    let text = Exporter::new().render(d.gather_metrics());
    assert_eq!(ipvs_part(&text), GOLDEN_IPVS);
}

#[test]
fn addresses_print_as_go_prints_them() {
    assert_eq!(go_ip(ip("10.0.0.1")), "10.0.0.1");
    assert_eq!(go_ip(ip("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
    assert_eq!(go_ip(ip("2001:db8:0:1:1:1:1:1")), "2001:db8:0:1:1:1:1:1");
    assert_eq!(go_ip(ip("::ffff:10.1.2.3")), "10.1.2.3");
    assert_eq!(go_ip(ip("::")), "::");
    assert_eq!(go_ip(ip("FE80::A")), "fe80::a");
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn totals_survive_deleted_services_and_zeroing() {
    let (mut d, _) = daemon();
    let ex = Exporter::new();
    let before = ex.render(d.gather_metrics());
    assert_eq!(value(&before, "node_ipvs_incoming_packets_total"), 800.0);
    assert_eq!(d.apply(&Op::DelService(web())), crate::proto::Response::Ok);
    assert_eq!(d.apply(&Op::Zero(None)), crate::proto::Response::Ok);
    let after = ex.render(d.gather_metrics());
    for t in [
        "node_ipvs_connections_total",
        "node_ipvs_incoming_packets_total",
        "node_ipvs_incoming_bytes_total",
        "node_ipvs_outgoing_packets_total",
        "node_ipvs_outgoing_bytes_total",
    ] {
        assert_eq!(value(&after, t), value(&before, t), "{t}");
    }
    // The deleted service's real servers are gone from the gauges.
    assert!(!after.contains("remote_address=\"10.20.0.11\""));
    assert!(after.contains("remote_address=\"10.20.0.13\""));
}

#[test]
fn a_worker_that_does_not_answer_keeps_its_last_values() {
    let (d, state) = daemon();
    let ex = Exporter::new();
    let first = ex.render(d.gather_metrics());
    assert_eq!(value(&first, "rvs_scrape_workers_stale"), 0.0);
    // Worker 1 does not answer this time; worker 0 moved on.
    state.lock().unwrap().workers = vec![worker(0, 6, 700)];
    let second = ex.render(d.gather_metrics());
    assert_eq!(value(&second, "rvs_scrape_workers_stale"), 1.0);
    assert_eq!(value(&second, "node_ipvs_incoming_packets_total"), 900.0);
    assert_eq!(value(&second, "node_ipvs_connections_total"), 8.0);
    assert_eq!(
        value(
            &second,
            "rvs_worker_forwarded_packets_total{worker=\"1\",direction=\"in\"}"
        ),
        200.0
    );
    // Without the carry, a fresh exporter sees only worker 0: the total would drop.
    let fresh = Exporter::new().render(d.gather_metrics());
    assert_eq!(value(&fresh, "node_ipvs_incoming_packets_total"), 700.0);
}

#[test]
fn a_port_that_does_not_answer_keeps_its_last_reading() {
    let mut c = Carry::default();
    let mut e = EngineMetrics {
        ports: vec![(
            "dpdk0".into(),
            Some(PortCounters {
                rx_packets: 9,
                ..Default::default()
            }),
        )],
        ..Default::default()
    };
    complete(&mut c, &mut e);
    let mut next = EngineMetrics {
        ports: vec![("dpdk0".into(), None)],
        ..Default::default()
    };
    complete(&mut c, &mut next);
    assert_eq!(next.ports[0].1.map(|p| p.rx_packets), Some(9));
    let text = render(
        &Gathered {
            services: vec![],
            engine: Some(next),
            checks: vec![],
        },
        0,
    );
    assert_eq!(
        value(&text, "rvs_port_rx_packets_total{port=\"dpdk0\"}"),
        9.0
    );
}

#[test]
fn rvs_series_are_there() {
    let (d, _) = daemon();
    let text = Exporter::new().render(d.gather_metrics());
    for (series, v) in [
        ("rvs_dataplane_running", 1.0),
        ("rvs_workers", 2.0),
        ("rvs_mbufs_in_use", 10.0),
        ("rvs_mbuf_pool_size", 4096.0),
        ("rvs_worker_busy_ratio{worker=\"0\"}", 0.25),
        (
            "rvs_worker_drops_total{worker=\"1\",reason=\"no-session\"}",
            3.0,
        ),
        (
            "rvs_worker_handoffs_total{worker=\"0\",direction=\"out\"}",
            0.0,
        ),
        (
            "rvs_laddr_ports_in_use{local_address=\"10.10.0.100\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",laddr=\"10.20.0.2\"}",
            5.0,
        ),
        (
            "rvs_laddr_conflicts_total{local_address=\"10.10.0.100\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",laddr=\"10.20.0.2\"}",
            2.0,
        ),
        ("rvs_sync_daemon_running{role=\"master\"}", 0.0),
        ("rvs_sync_backlog_records{role=\"backup\"}", 0.0),
        ("rvs_sync_messages_sent_total", 0.0),
    ] {
        assert_eq!(value(&text, series), v, "{series}");
    }
    assert!(text.contains(&format!(
        "rvs_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    // No port reading yet: no port series rather than zeros.
    assert!(!text.contains("rvs_port_"));
}

#[test]
fn sync_refusals_are_counted_by_reason() {
    let (d, state) = daemon();
    let text = Exporter::new().render(d.gather_metrics());
    for reason in ["no-mac", "bad-mac", "replayed", "too-old", "unexpected-mac"] {
        let series = format!("rvs_sync_messages_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&text, &series), 0.0, "{series}");
    }
    assert_eq!(value(&text, "rvs_sync_authenticated{role=\"backup\"}"), 0.0);
    state.lock().unwrap().sync_backup = SyncDaemonMetrics {
        running: true,
        authenticated: true,
        counters: vec![
            ("recv_msgs", 20),
            ("auth_missing", 4),
            ("auth_bad_mac", 3),
            ("auth_replayed", 2),
            ("auth_too_old", 1),
            ("auth_unexpected", 0),
        ],
        ..Default::default()
    };
    let text = Exporter::new().render(d.gather_metrics());
    for (reason, v) in [
        ("no-mac", 4.0),
        ("bad-mac", 3.0),
        ("replayed", 2.0),
        ("too-old", 1.0),
        ("unexpected-mac", 0.0),
    ] {
        let series = format!("rvs_sync_messages_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&text, &series), v, "{series}");
    }
    assert_eq!(value(&text, "rvs_sync_authenticated{role=\"backup\"}"), 1.0);
    assert_eq!(value(&text, "rvs_sync_authenticated{role=\"master\"}"), 0.0);
    assert_eq!(value(&text, "rvs_sync_messages_received_total"), 20.0);
}

#[test]
fn sync_group_peers_have_their_series() {
    use rvs_dataplane::sync::group::PeerReport;
    let (d, state) = daemon();
    let text = Exporter::new().render(d.gather_metrics());
    assert!(!text.contains("rvs_sync_peer_"), "no group, no peer series");
    state.lock().unwrap().sync_peers = vec![
        PeerReport {
            addr: "10.99.0.2".parse().unwrap(),
            up: true,
            msgs: 4,
            conns: 120,
            heartbeats: 9,
            refused: 1,
            last_age_ms: Some(400),
            bulk_records: 300,
            bulk_syncs: 1,
            layout: None,
            lips: Vec::new(),
            refused_layout: 0,
        },
        PeerReport {
            addr: "10.99.0.3".parse().unwrap(),
            up: false,
            msgs: 0,
            conns: 0,
            heartbeats: 0,
            refused: 0,
            last_age_ms: None,
            bulk_records: 0,
            bulk_syncs: 0,
            layout: Some("port-range"),
            lips: Vec::new(),
            refused_layout: 3,
        },
    ];
    let text = Exporter::new().render(d.gather_metrics());
    for (series, v) in [
        ("rvs_sync_peer_up{peer=\"10.99.0.2\"}", 1.0),
        ("rvs_sync_peer_up{peer=\"10.99.0.3\"}", 0.0),
        ("rvs_sync_peer_messages_total{peer=\"10.99.0.2\"}", 4.0),
        (
            "rvs_sync_peer_records_received_total{peer=\"10.99.0.2\"}",
            120.0,
        ),
        ("rvs_sync_peer_heartbeats_total{peer=\"10.99.0.2\"}", 9.0),
        (
            "rvs_sync_peer_messages_refused_total{peer=\"10.99.0.2\"}",
            1.0,
        ),
        (
            "rvs_sync_peer_last_message_age_seconds{peer=\"10.99.0.2\"}",
            0.4,
        ),
        (
            "rvs_sync_messages_refused_total{reason=\"unknown-peer\"}",
            0.0,
        ),
        (
            "rvs_sync_peer_bulk_records_sent_total{peer=\"10.99.0.2\"}",
            300.0,
        ),
        ("rvs_sync_peer_bulk_syncs_total{peer=\"10.99.0.2\"}", 1.0),
        ("rvs_sync_peer_bulk_syncs_total{peer=\"10.99.0.3\"}", 0.0),
        (
            "rvs_sync_peer_records_refused_layout_total{peer=\"10.99.0.3\"}",
            3.0,
        ),
        ("rvs_sync_peer_layout_mismatch{peer=\"10.99.0.3\"}", 1.0),
        ("rvs_sync_peer_layout_mismatch{peer=\"10.99.0.2\"}", 0.0),
        ("rvs_sync_lips_held", 1.0),
        (
            "rvs_sync_lip_held{lip=\"10.20.0.103\",peer=\"10.99.0.3\"}",
            1.0,
        ),
    ] {
        assert_eq!(value(&text, series), v, "{series}");
    }
    assert!(!text.contains("rvs_sync_peer_last_message_age_seconds{peer=\"10.99.0.3\"}"));
}

/// The text format's rules a scraper relies on: each family's HELP and TYPE once, before
/// its samples, its samples together; `_total` families are counters; names and label
/// names are valid; every value parses.
#[test]
fn the_exposition_is_well_formed() {
    let (d, _) = daemon();
    let text = Exporter::new().render(d.gather_metrics());
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut seen: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name), "{line}");
            assert!(!seen.contains(&name.to_string()), "{name} twice");
            seen.push(name.into());
            current = name.into();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, k) = rest.split_once(' ').unwrap();
            assert_eq!(name, current);
            assert!(["counter", "gauge"].contains(&k), "{line}");
            if name.ends_with("_total") {
                assert_eq!(k, "counter", "{name}");
            }
            kind = k.into();
            continue;
        }
        let (series, v) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert_eq!(name, current, "{line}: sample outside its family");
        assert!(!kind.is_empty());
        let v: f64 = v.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(v >= 0.0, "{line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels.strip_prefix('{').unwrap().strip_suffix('}').unwrap();
                for pair in inner.split("\",") {
                    let (k, _) = pair.split_once("=\"").unwrap();
                    assert!(name_ok(k), "{line}");
                }
            }
        }
    }
    assert!(seen.len() > 40, "{} families", seen.len());
}

#[test]
fn label_values_are_escaped() {
    let mut o = Out {
        text: String::new(),
    };
    o.sample("x", &[("a", "q\"b\\n\nl")], 1u64);
    assert_eq!(o.text, "x{a=\"q\\\"b\\\\n\\nl\"} 1\n");
}

#[test]
fn without_a_dataplane_the_ipvs_series_are_zero_and_rvs_says_so() {
    let d = Daemon::new(IpvsTable::new(), Box::new(crate::backend::ControlOnly)).unwrap();
    let text = Exporter::new().render(d.gather_metrics());
    assert_eq!(value(&text, "node_ipvs_connections_total"), 0.0);
    assert_eq!(value(&text, "rvs_dataplane_running"), 0.0);
    assert!(!text.contains("node_ipvs_backend_weight"));
    assert!(!text.contains("rvs_worker_"));
}

// The HTTP server.

fn server(limits: Limits) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    spawn(l, limits, Arc::new(|| "up 1\n".to_string())).unwrap();
    addr
}

/// Sends `req` and returns the whole answer (the server closes after it).
fn exchange(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or("")
}

#[test]
fn get_metrics_answers_the_exposition() {
    let addr = server(Limits::default());
    let a = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(status(&a), "200", "{a}");
    assert!(a.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(a.contains("\r\nContent-Length: 5\r\n"));
    assert!(a.ends_with("\r\n\r\nup 1\n"), "{a}");
    let h = exchange(addr, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status(&h), "200");
    assert!(h.ends_with("\r\n\r\n"), "{h}");
    assert_eq!(status(&exchange(addr, b"GET / HTTP/1.1\r\n\r\n")), "200");
    assert_eq!(status(&exchange(addr, b"GET /x HTTP/1.1\r\n\r\n")), "404");
}

#[test]
fn bad_requests_are_refused_cheaply() {
    let addr = server(Limits::default());
    let post = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_eq!(status(&post), "405", "{post}");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"));
    for m in ["PUT", "DELETE", "OPTIONS", "TRACE"] {
        let a = exchange(addr, format!("{m} /metrics HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(status(&a), "405", "{m}");
    }
    let body = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nContent-Length: 100\r\n\r\n",
    );
    assert_eq!(status(&body), "413");
    let chunked = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(status(&chunked), "413");
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend(b"\r\n\r\n");
    assert_eq!(status(&exchange(addr, &big)), "431");
    assert_eq!(status(&exchange(addr, b"GARBAGE\r\n\r\n")), "400");
    assert_eq!(
        status(&exchange(addr, b"GET /metrics SPDY/3\r\n\r\n")),
        "505"
    );
}

#[test]
fn a_slow_client_is_cut_off_and_connections_are_bounded() {
    let limits = Limits {
        max_request: 1024,
        timeout: Duration::from_millis(300),
        max_connections: 2,
    };
    let addr = server(limits);
    // Two idle clients hold both slots; a third is refused at once.
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let third = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status(&third), "503", "{third}");
    // The idle ones are answered 408 after the timeout, which frees the slots.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert_eq!(status(&String::from_utf8_lossy(&out)), "408");
    }
    let mut ok = String::new();
    for _ in 0..50 {
        ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        if status(&ok) == "200" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&ok), "200", "{ok}");
}
