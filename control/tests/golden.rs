//! Golden tests for every listing format. The expected files under `tests/golden/` were
//! written by hand from ipvsadm 1.31's printf formats (spec §2), padding counted by hand;
//! the IPv4 ones were then checked byte for byte against the real ipvsadm 1.31 binary
//! (Debian 1:1.31-1+b1) running over a fake kernel table holding the same data.

use std::net::{IpAddr, SocketAddr};

use rvs_control::backend::{ConnProtocol, ConnRow, ConnState, DestCounters, Rates, Stats};
use rvs_control::cli::ListOpts;
use rvs_control::format;
use rvs_control::ipvs::{
    DaemonConf, DestConf, Forward, IpvsTable, Laddr, Op, Protocol, ServiceConf, ServiceKey,
    SyncState, Timeouts, SCHED_FLAG_2,
};
use rvs_control::proto::{DestView, Info, LaddrView, ServiceView};

fn golden(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn inet(p: Protocol, a: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: p,
        addr: ip(a),
        port,
    }
}

fn st(c: [u64; 5]) -> Stats {
    Stats {
        conns: c[0],
        inpkts: c[1],
        outpkts: c[2],
        inbytes: c[3],
        outbytes: c[4],
    }
}

fn dest(a: &str, port: u16, fwd: Forward, w: i32, act: u32, inact: u32) -> DestView {
    let mut conf = DestConf::new(ip(a), port);
    conf.forward = fwd;
    conf.weight = w;
    DestView {
        conf,
        counters: DestCounters {
            active_conns: act,
            inact_conns: inact,
            persist_conns: 0,
            stats: Stats::default(),
        },
        rates: Rates::default(),
    }
}

fn svc(conf: ServiceConf, dests: Vec<DestView>) -> ServiceView {
    ServiceView {
        conf,
        stats: Stats::default(),
        rates: Rates::default(),
        dests,
        laddrs: vec![],
    }
}

/// The spec §2 example table plus `TCP 10.0.0.1:443`, in the kernel's order (newest dest
/// first; services in insertion order).
fn table() -> Vec<ServiceView> {
    let mut http = svc(
        ServiceConf::new(inet(Protocol::Tcp, "192.168.1.100", 80)),
        vec![
            dest("10.1.1.3", 8080, Forward::Masq, 2, 5, 20),
            dest("10.1.1.2", 80, Forward::Masq, 1, 3, 12),
        ],
    );
    http.stats = st([42, 310, 0, 25120, 2_500_000_000]);
    http.rates = Rates {
        cps: 1,
        inpps: 2,
        outpps: 3,
        inbps: 123_456_789,
        outbps: 1_215_752_191,
    };
    http.dests[0].counters.stats = st([20, 150, 0, 12000, 123_456_000]);
    http.dests[1].counters.stats = st([22, 160, 0, 13120, 2_376_544_000]);
    http.dests[1].counters.persist_conns = 7;
    http.dests[1].conf.u_threshold = 100;
    http.dests[1].conf.l_threshold = 50;

    let mut dns = ServiceConf::new(inet(Protocol::Udp, "192.168.1.100", 53));
    dns.scheduler = "rr".into();
    dns.persistent = Some(360);
    let dns = svc(dns, vec![dest("10.1.1.2", 53, Forward::Route, 1, 0, 4)]);

    let mut fwm = ServiceConf::new(ServiceKey::Fwmark {
        mark: 1,
        ipv6: false,
    });
    fwm.scheduler = "sh".into();
    fwm.persistent = Some(600);
    fwm.netmask = 0xffff_ff00;
    fwm.sched_flags = SCHED_FLAG_2;
    let fwm = svc(fwm, vec![dest("10.1.1.4", 0, Forward::Tunnel, 1, 0, 0)]);

    let mut https = ServiceConf::new(inet(Protocol::Tcp, "10.0.0.1", 443));
    https.scheduler = "wrr".into();
    let mut https = svc(https, vec![]);
    https.stats = st([
        99_999_999,
        100_000_000,
        999_999_999,
        1_000_000_000,
        100_000_000_000_000,
    ]);
    vec![http, dns, fwm, https]
}

fn info() -> Info {
    Info {
        version: 0x010201,
        conn_tab_size: 4096,
        num_services: 4,
    }
}

fn opts(f: impl FnOnce(&mut ListOpts)) -> ListOpts {
    let mut o = ListOpts {
        numeric: true,
        ..Default::default()
    };
    f(&mut o);
    o
}

#[test]
fn list_numeric_nat_dr_tun_persistence_mask_fwmark() {
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|_| {})),
        golden("Ln.txt")
    );
}

#[test]
fn list_names() {
    // Needs Debian's /etc/services (http, https, domain, http-alt).
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.numeric = false)),
        golden("L.txt")
    );
    assert_eq!(format::save(&table(), false), golden("S.txt"));
}

#[test]
fn list_nosort_is_kernel_order() {
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.nosort = true)),
        golden("Ln_nosort.txt")
    );
}

#[test]
fn stats_and_rate_with_large_numbers() {
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.stats = true)),
        golden("Ln_stats.txt")
    );
    assert_eq!(
        format::list_all(
            &info(),
            &table(),
            &opts(|o| {
                o.stats = true;
                o.exact = true
            })
        ),
        golden("Ln_stats_exact.txt")
    );
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.rate = true)),
        golden("Ln_rate.txt")
    );
}

#[test]
fn thresholds_persistent_conn_tun_info() {
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.thresholds = true)),
        golden("Ln_thresholds.txt")
    );
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.persistent_conn = true)),
        golden("Ln_persistent_conn.txt")
    );
    assert_eq!(
        format::list_all(&info(), &table(), &opts(|o| o.tun_info = true)),
        golden("Ln_tun_info.txt")
    );
}

#[test]
fn one_service_has_no_header() {
    assert_eq!(
        format::list_one(&table()[0], &opts(|_| {})),
        golden("Ln_one.txt")
    );
}

#[test]
fn save_numeric() {
    assert_eq!(format::save(&table(), true), golden("Sn.txt"));
}

fn fullnat_v6() -> Vec<ServiceView> {
    let mut fnat = ServiceConf::new(inet(Protocol::Tcp, "10.0.0.100", 80));
    fnat.scheduler = "rr".into();
    let mut fnat = svc(
        fnat,
        vec![
            dest("192.168.100.3", 8080, Forward::FullNat, 2, 0, 0),
            dest("192.168.100.2", 80, Forward::FullNat, 1, 0, 0),
        ],
    );
    fnat.laddrs = vec![LaddrView {
        laddr: Laddr {
            addr: ip("192.168.100.200"),
            ifname: Some("dpdk0".into()),
        },
        conflicts: 0,
        conns: 0,
    }];
    let mut v6 = ServiceConf::new(inet(Protocol::Tcp, "2001:db8::100", 80));
    v6.scheduler = "mh".into();
    v6.sched_flags = SCHED_FLAG_2;
    let v6 = svc(v6, vec![dest("2001:db8::10", 80, Forward::Tunnel, 1, 0, 0)]);
    let mut f6 = ServiceConf::new(ServiceKey::Fwmark {
        mark: 2,
        ipv6: true,
    });
    f6.persistent = Some(300);
    f6.netmask = 64;
    vec![svc(f6, vec![]), v6, fnat]
}

#[test]
fn fullnat_and_ipv6() {
    assert_eq!(
        format::list_all(&info(), &fullnat_v6(), &opts(|_| {})),
        golden("Ln_fullnat_v6.txt")
    );
    assert_eq!(
        format::save(&fullnat_v6(), true),
        golden("Sn_fullnat_v6.txt")
    );
    assert_eq!(format::laddrs(&fullnat_v6()), golden("G.txt"));
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn conn(p: ConnProtocol, c: &str, v: &str, d: &str, s: ConnState, e: u32) -> ConnRow {
    ConnRow {
        protocol: p,
        client: sa(c),
        virtual_addr: sa(v),
        dest: sa(d),
        state: s,
        expires: e,
    }
}

#[test]
fn connections_tcp_states_udp_templates() {
    use ConnProtocol::*;
    let conns = vec![
        conn(
            Tcp,
            "203.0.113.5:51234",
            "192.168.1.100:80",
            "10.1.1.2:80",
            ConnState::Established,
            899,
        ),
        conn(
            Tcp,
            "203.0.113.6:40001",
            "192.168.1.100:80",
            "10.1.1.3:8080",
            ConnState::SynRecv,
            58,
        ),
        conn(
            Tcp,
            "192.168.1.188:53751",
            "192.168.1.200:80",
            "192.168.1.193:80",
            ConnState::FinWait,
            111,
        ),
        conn(
            Tcp,
            "203.0.113.6:40002",
            "192.168.1.100:80",
            "10.1.1.3:8080",
            ConnState::TimeWait,
            119,
        ),
        conn(
            Udp,
            "203.0.113.9:40000",
            "192.168.1.100:53",
            "10.1.1.2:53",
            ConnState::Udp,
            298,
        ),
        conn(
            Udp,
            "203.0.113.9:0",
            "192.168.1.100:53",
            "10.1.1.2:53",
            ConnState::None,
            359,
        ),
        conn(
            Ip,
            "203.0.113.7:0",
            "0.0.0.1:0",
            "10.1.1.4:0",
            ConnState::None,
            599,
        ),
    ];
    assert_eq!(format::connections(&conns, true, false), golden("Lnc.txt"));
    assert_eq!(
        format::connections(&[conns[0].clone(), conns[4].clone()], false, false),
        golden("Lc.txt")
    );
}

#[test]
fn timeout_and_daemon() {
    assert_eq!(
        format::timeouts(&Timeouts::default()),
        golden("timeout.txt")
    );
    let mut t = IpvsTable::new();
    t.apply(&Op::StartDaemon(DaemonConf {
        state: SyncState::Backup,
        mcast_ifn: "dpdk0".into(),
        syncid: 7,
        sync_maxlen: Some(1400),
        mcast_group: Some(ip("224.0.0.82")),
        mcast_port: Some(9000),
        mcast_ttl: Some(2),
    }))
    .unwrap();
    t.apply(&Op::StartDaemon(DaemonConf {
        state: SyncState::Master,
        mcast_ifn: "eth0".into(),
        syncid: 1,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    }))
    .unwrap();
    assert_eq!(format::daemons(&t.daemons), golden("daemon.txt"));
}

#[test]
fn largenum_thresholds() {
    let cases: &[(u64, &str)] = &[
        (0, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "     100T"),
    ];
    for (n, s) in cases {
        assert_eq!(format::largenum(*n, false), *s, "{n}");
    }
    assert_eq!(format::largenum(12345, true), "    12345");
    assert_eq!(format::largenum(123_456_789, true), " 123456789");
}

#[test]
fn sort_quirk_matches_libipvs() {
    // ntohl(a) - ntohl(b) into an int: 192.168.1.100 sorts before 10.0.0.1.
    let a = inet(Protocol::Tcp, "192.168.1.100", 80);
    let b = inet(Protocol::Tcp, "10.0.0.1", 443);
    assert!(format::cmp_services(&a, &b) < 0);
    let c = inet(Protocol::Tcp, "10.0.0.2", 1);
    assert!(format::cmp_services(&b, &c) < 0);
}
