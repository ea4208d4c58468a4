//! The DPDK dataplane behind rvsd: turns the IPVS table into dataplane snapshots and
//! gathers counters and sessions from the workers.
//!
//! The dataplane's service table keeps stable ids for services and real servers, so the
//! backend applies each new IPVS table as a difference (add, edit, delete): per-core
//! scheduler state and ActiveConn/InActConn counts of servers that stay survive every
//! change, as in the kernel. A removed real server waits in the service table's trash
//! while the workers' sessions reference it; added back (`-C` then `-R`, or `-d` then
//! `-a`), it keeps its id and its sessions resume. Each change first empties the trash of
//! the servers no worker has referenced for the trash period (`ServiceTable::expire_trash`).

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use rvs_config::{AddrPrefix, Config, PrefixError};
use rvs_dataplane::acl::{Acl, AclAction, AclRule};
use rvs_dataplane::dpdk::default_eal_args;
use rvs_dataplane::engine::{Engine, EngineConfig, EngineError, PortSpec, WorkerReport};
use rvs_dataplane::flow::{self as dp_flow, Addr, FwdMethod, Proto};
use rvs_dataplane::mark::{MarkRule, MarkRules, Prefix4};
use rvs_dataplane::route::Route;
use rvs_dataplane::service::{
    self as dp, DestConfig, DestId, SchedKind, ServiceConfig, ServiceTable,
};

use crate::backend::{
    Backend, BackendError, BackendMetrics, ConnProtocol, ConnRow, ConnState, DataplaneCounters,
    DestCounterEntry, DestCounters, EngineMetrics, LaddrCounterEntry, PortCounters,
    ServiceCounters, Stats, SyncDaemonMetrics, SyncWorkerMetrics, WorkerMetrics,
};
use crate::ipvs::{
    AclKind, AclLists, Forward, IpvsTable, Protocol, ServiceConf, ServiceKey, SyncDaemon,
    SyncState, Timeouts, TunCsum, TunType, IPV6_FULL_NETMASK,
};
use rvs_dataplane::conn::{SessionState, SyncRules, TcpState};

/// The DPDK backend.
pub struct DpdkBackend {
    engine: Engine,
    table: ServiceTable,
    timeouts: Timeouts,
    daemons: Vec<SyncDaemon>,
    sync_peer: Option<Ipv4Addr>,
    /// The sync group's key (`[sync] key_file`), for every daemon started.
    sync_key: Option<rvs_dataplane::sync::auth::SyncKey>,
    /// `[sync] peers` of a group member (`None`: not in a group).
    sync_group: Option<Vec<Ipv4Addr>>,
    /// The sync address the engine's peer table was made for (one table for both
    /// daemons, made when the first starts).
    sync_group_own: Option<Ipv4Addr>,
    /// The clock of the trash periods.
    started: Instant,
    /// The dataplane ACLs built so far, by service (`None`: the global list), with the
    /// lists they were built from: rebuilt only when a list changes.
    acls: HashMap<Option<ServiceKey>, (AclLists, Arc<Acl>)>,
}

impl std::fmt::Debug for DpdkBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkBackend")
            .field("engine", &self.engine)
            .finish()
    }
}

/// EAL memory (MB) when the configuration gives no EAL arguments, and with `no_huge`.
const EAL_MEMORY_MB: u64 = 512;
/// The smallest session table per worker.
const MIN_CONN_CAPACITY: i64 = 1024;

/// Why the configuration cannot drive the dataplane. `Display` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineConfigError {
    /// No `[[ports]]`.
    #[error("ports: the dataplane needs at least one [[ports]] entry (or start rvsd with --no-dataplane)")]
    NoPorts,
    /// A port address or route prefix is not an IPv4 address (`field` is its path).
    #[error("{field}: {value:?} is not an IPv4 address")]
    NotIpv4 {
        /// `ports[i].addresses` or `routes[i].prefix`.
        field: String,
        /// The text given.
        value: String,
    },
    /// A port address or route prefix has a bad prefix length.
    #[error("{field}: {value:?} has a bad prefix length")]
    BadPrefixLength {
        /// `ports[i].addresses` or `routes[i].prefix`.
        field: String,
        /// The text given.
        value: String,
    },
    /// A route names no configured port.
    #[error("routes[{route}].port: no port named {port:?}")]
    NoSuchPort {
        /// The route's index.
        route: usize,
        /// The port name given.
        port: String,
    },
    /// A key the dataplane does not do (yet) (`field` is its path).
    #[error("{field}: {what} not supported by the rvs dataplane{hint}")]
    Unsupported {
        /// The field's path, e.g. `services[0].proto`.
        field: String,
        /// What is not supported, e.g. `sctp is`.
        what: String,
        /// What to do instead, as ` (...)`, or empty.
        hint: String,
    },
    /// A mark rule's `dports` is not a port list (validation catches it first).
    #[error("marks[{rule}].dports: invalid")]
    BadPorts {
        /// The rule's index.
        rule: usize,
    },
    /// A mark rule names no configured port.
    #[error("marks[{rule}].port: no port named {port:?}")]
    NoSuchMarkPort {
        /// The rule's index.
        rule: usize,
        /// The port name given.
        port: String,
    },
    /// A route's gateway is not an IPv4 address.
    #[error("routes[{route}].via: {via:?} is not an IPv4 address")]
    BadGateway {
        /// The route's index.
        route: usize,
        /// The gateway given.
        via: String,
    },
}

/// An IPv4 `addr[/len]` (a bare address is a /32) of configuration field `field`.
fn ipv4_prefix(field: String, s: &str) -> Result<(Ipv4Addr, u8), EngineConfigError> {
    let value = s.to_string();
    match AddrPrefix::parse(s, true) {
        Ok(AddrPrefix {
            addr: IpAddr::V4(a),
            prefix_len,
        }) => Ok((a, prefix_len)),
        Err(PrefixError::BadLength) => Err(EngineConfigError::BadPrefixLength { field, value }),
        _ => Err(EngineConfigError::NotIpv4 { field, value }),
    }
}

/// The EAL arguments: the configured ones (or rvs's defaults), the file prefix, `no_huge`.
fn eal_args(cfg: &Config, workers: usize) -> Vec<String> {
    let prefix = cfg
        .eal
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("rvsd-{}", std::process::id()));
    let mut eal_args = if cfg.eal.args.is_empty() {
        default_eal_args(&prefix, workers, EAL_MEMORY_MB, &[])
    } else {
        let mut a = cfg.eal.args.clone();
        a.push(format!("--file-prefix={prefix}"));
        if cfg.eal.in_memory {
            a.push("--in-memory".into());
        }
        a
    };
    if cfg.eal.no_huge && !eal_args.iter().any(|a| a == "--no-huge") {
        // EAL refuses `--in-memory` with `--no-huge` (legacy memory).
        eal_args.retain(|a| a != "--in-memory");
        eal_args.push("--no-huge".into());
        eal_args.push(format!("-m{EAL_MEMORY_MB}"));
    }
    eal_args
}

/// The ports, and their indexes by name.
fn port_specs(cfg: &Config) -> Result<(Vec<PortSpec>, HashMap<String, u16>), EngineConfigError> {
    let mut ports = Vec::new();
    let mut names = HashMap::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let addrs = p
            .addresses
            .iter()
            .map(|a| ipv4_prefix(format!("ports[{i}].addresses"), a))
            .collect::<Result<Vec<_>, _>>()?;
        names.insert(p.name.clone(), i as u16);
        ports.push(PortSpec {
            name: p.name.clone(),
            devargs: p.device.clone(),
            addrs,
            // IPv6 port addresses are not configurable yet.
            addrs6: Vec::new(),
            mtu: if p.mtu > 0 {
                p.mtu as u16
            } else {
                rvs_config::DEFAULT_MTU
            },
            kernel_iface: p.exception_iface.clone(),
            // Validated 1..=4094 by the configuration.
            vlan: p.vlan.and_then(|v| u16::try_from(v).ok()),
        });
    }
    Ok((ports, names))
}

/// The static routes, their ports resolved by name.
fn routes(cfg: &Config, names: &HashMap<String, u16>) -> Result<Vec<Route>, EngineConfigError> {
    let mut routes = Vec::new();
    for (i, r) in cfg.routes.iter().enumerate() {
        let (prefix, len) = ipv4_prefix(format!("routes[{i}].prefix"), &r.prefix)?;
        let port = *names
            .get(&r.port)
            .ok_or_else(|| EngineConfigError::NoSuchPort {
                route: i,
                port: r.port.clone(),
            })?;
        let gateway = match &r.via {
            Some(v) => Some(
                v.parse::<Ipv4Addr>()
                    .map_err(|_| EngineConfigError::BadGateway {
                        route: i,
                        via: v.clone(),
                    })?,
            ),
            None => None,
        };
        routes.push(Route {
            prefix,
            len,
            port,
            gateway,
        });
    }
    Ok(routes)
}

/// The keys the configuration crate accepts and the dataplane does not do, refused by
/// name: per-port queue counts and checksum offload, lcore lists, and the services' SCTP
/// and IPv6 (vip, `ipv6`, real servers, LIPs).
fn unsupported(cfg: &Config) -> Result<(), EngineConfigError> {
    let no = |field: String, what: &str| {
        let (what, hint) = match what.split_once(" (") {
            Some((w, h)) => (w.to_string(), format!(" ({h}")),
            None => (what.to_string(), String::new()),
        };
        Err(EngineConfigError::Unsupported { field, what, hint })
    };
    for (i, p) in cfg.ports.iter().enumerate() {
        if p.rx_queues.is_some() {
            return no(format!("ports[{i}].rx_queues"), "queue counts are (it opens one rx and one tx queue per worker: set workers.count and remove the key)");
        }
        if p.tx_queues.is_some() {
            return no(format!("ports[{i}].tx_queues"), "queue counts are (it opens one rx and one tx queue per worker: set workers.count and remove the key)");
        }
        if p.checksum_offload == Some(true) {
            return no(
                format!("ports[{i}].checksum_offload"),
                "checksum offload is (checksums are computed in software: remove the key or set it to false)",
            );
        }
    }
    if !cfg.workers.lcores.is_empty() {
        return no(
            "workers.lcores".into(),
            "lcore lists are (use workers.count; eal.args places the lcores)",
        );
    }
    for (i, s) in cfg.services.iter().enumerate() {
        if s.proto == rvs_config::Proto::Sctp {
            return no(format!("services[{i}].proto"), "sctp is");
        }
        if s.is_ipv6() {
            let field = if s.ipv6 { "ipv6" } else { "vip" };
            return no(format!("services[{i}].{field}"), "IPv6 is");
        }
        for (j, r) in s.real.iter().enumerate() {
            if r.endpoint(0).is_some_and(|e| e.is_ipv6()) {
                return no(format!("services[{i}].real[{j}].address"), "IPv6 is");
            }
        }
        for (j, l) in s.laddrs.iter().enumerate() {
            if l.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) {
                return no(format!("services[{i}].laddrs[{j}]"), "IPv6 is");
            }
        }
        for (name, list) in [("deny", &s.deny), ("allow", &s.allow)] {
            if let Some(j) = list.iter().position(|p| p.contains(':')) {
                return no(format!("services[{i}].{name}[{j}]"), "IPv6 is");
            }
        }
    }
    for (name, list) in [("deny", &cfg.acl.deny), ("allow", &cfg.acl.allow)] {
        if let Some(j) = list.iter().position(|p| p.contains(':')) {
            return no(format!("acl.{name}[{j}]"), "IPv6 is");
        }
    }
    Ok(())
}

/// The compiled `[[marks]]` rules, their ports resolved by name.
fn mark_rules(cfg: &Config, names: &HashMap<String, u16>) -> Result<MarkRules, EngineConfigError> {
    let mut rules = Vec::new();
    for (i, m) in cfg.marks.iter().enumerate() {
        let prefix = |name: &str, v: &Option<String>| match v {
            Some(v) => {
                ipv4_prefix(format!("marks[{i}].{name}"), v).map(|(a, l)| Prefix4::new(a, l))
            }
            None => Ok(Prefix4::ANY),
        };
        let dports = match &m.dports {
            Some(d) => {
                rvs_config::parse_port_ranges(d).ok_or(EngineConfigError::BadPorts { rule: i })?
            }
            None => Vec::new(),
        };
        let in_port = match &m.port {
            Some(p) => Some(
                *names
                    .get(p)
                    .ok_or_else(|| EngineConfigError::NoSuchMarkPort {
                        rule: i,
                        port: p.clone(),
                    })?,
            ),
            None => None,
        };
        rules.push(MarkRule {
            proto: match m.proto {
                rvs_config::MarkProto::Any => None,
                rvs_config::MarkProto::Tcp => Some(Proto::Tcp),
                rvs_config::MarkProto::Udp => Some(Proto::Udp),
            },
            src: prefix("src", &m.src)?,
            dst: prefix("dst", &m.dst)?,
            dports,
            in_port,
            mark: m.mark as u32,
        });
    }
    Ok(MarkRules::new(rules))
}

/// Builds the engine configuration from the rvsd configuration file; a key the dataplane
/// does not do is refused by name.
pub fn engine_config(cfg: &Config) -> Result<EngineConfig, EngineConfigError> {
    if cfg.ports.is_empty() {
        return Err(EngineConfigError::NoPorts);
    }
    unsupported(cfg)?;
    let workers = match cfg.workers.count {
        Some(n) if n > 0 => n as usize,
        _ => 1,
    };
    let (ports, names) = port_specs(cfg)?;
    Ok(EngineConfig {
        eal_args: eal_args(cfg, workers),
        ports,
        workers,
        conn_capacity: cfg
            .sessions
            .capacity_per_core
            .clamp(MIN_CONN_CAPACITY, i64::from(u32::MAX)) as u32,
        expire_nodest_conn: cfg.sessions.expire_nodest_conn != 0,
        expire_quiescent_template: cfg.sessions.expire_quiescent_template != 0,
        new_sessions_per_second: cfg.sessions.new_per_second.clamp(0, i64::from(u32::MAX)) as u32,
        sloppy_tcp: cfg.sessions.sloppy_tcp != 0,
        syn_proxy_auto: (
            cfg.sessions.syn_proxy_rate.clamp(1, i64::from(u32::MAX)) as u32,
            cfg.sessions.syn_proxy_fill.clamp(1, 100) as u32,
        ),
        idle_sleep_max_us: cfg.workers.idle_sleep_max_us.clamp(0, i64::from(u32::MAX)) as u32,
        syn_shed: true,
        mbufs: 0,
        routes: routes(cfg, &names)?,
        routes6: Vec::new(),
        lport_range: rvs_dataplane::laddr::DEFAULT_PORT_RANGE,
        static_neighbours: Vec::new(),
        marks: mark_rules(cfg, &names)?,
    })
}

/// The TUN real servers a health check reaches through the VIP (`connect_ip` = the
/// service's IPv4 VIP), as (VIP, RIP): the dataplane encapsulates the host's probes to
/// them ([`rvs_dataplane::engine::Engine::set_probe_servers`]).
pub fn probe_servers(cfg: &Config) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let mut v = Vec::new();
    for s in &cfg.services {
        let Some(SocketAddr::V4(vip)) = s.endpoint() else {
            continue;
        };
        for r in s
            .real
            .iter()
            .filter(|r| r.forward == rvs_config::Forward::Tunnel)
        {
            let Some(SocketAddr::V4(rip)) = r.endpoint(vip.port()) else {
                continue;
            };
            let through = r.checks.iter().any(|c| {
                c.connect_ip
                    .as_deref()
                    .and_then(|a| a.parse::<Ipv4Addr>().ok())
                    == Some(*vip.ip())
            });
            if through && !v.contains(&(*vip.ip(), *rip.ip())) {
                v.push((*vip.ip(), *rip.ip()));
            }
        }
    }
    v
}

/// What the dataplane does not do (yet), refused by name before anything changes: an
/// IPv6 service, real server or local address (the pipeline forwards IPv4 only), an SCTP
/// service. The text is what rvsadm prints, in ipvsadm's style. (Every tunnel type,
/// IPIP, GUE and GRE, with every checksum option, is done.)
pub fn refusal(table: &IpvsTable) -> Result<(), BackendError> {
    let no = |what: &str| {
        Err(BackendError(format!(
            "{what} not supported by the rvs dataplane"
        )))
    };
    for s in &table.services {
        let key = &s.conf.key;
        if key.is_ipv6() {
            return no("IPv6 virtual services are");
        }
        if let ServiceKey::Inet {
            protocol: Protocol::Sctp,
            ..
        } = key
        {
            return no("SCTP virtual services ('sctp-service') are");
        }
        for d in &s.dests {
            if d.addr.is_ipv6() {
                return no("IPv6 real servers are");
            }
        }
        if s.laddrs.iter().any(|l| l.addr.is_ipv6()) {
            return no("IPv6 local addresses ('laddr') are");
        }
        acl_refusal(&s.acl)?;
    }
    acl_refusal(&table.acl)
}

/// An ACL with an IPv6 prefix: refused by name (the pipeline forwards IPv4 only).
fn acl_refusal(acl: &AclLists) -> Result<(), BackendError> {
    match acl.entries().find(|(_, p)| p.addr.is_ipv6()) {
        Some((kind, p)) => Err(BackendError(format!(
            "IPv6 ACL prefixes ('{}' {p}) are not supported by the rvs dataplane",
            kind.option()
        ))),
        None => Ok(()),
    }
}

/// The dataplane's ACL of `lists`.
fn dp_acl(lists: &AclLists) -> Acl {
    let rules: Vec<AclRule> = lists
        .entries()
        .map(|(kind, p)| {
            let action = match kind {
                AclKind::Deny => AclAction::Deny,
                AclKind::Allow => AclAction::Allow,
            };
            AclRule::new(p.addr, p.len, action)
        })
        .collect();
    Acl::new(&rules)
}

/// The dataplane's PROXY protocol of a service's `--proxy-protocol`.
fn proxy_protocol(p: crate::ipvs::ProxyProtocol) -> dp::ProxyProtocol {
    match p {
        crate::ipvs::ProxyProtocol::Disable => dp::ProxyProtocol::Off,
        crate::ipvs::ProxyProtocol::V1 => dp::ProxyProtocol::V1,
        crate::ipvs::ProxyProtocol::V2 => dp::ProxyProtocol::V2,
    }
}

/// The dataplane's settings of a service: scheduler, flags (scheduler flags, `-o`, and
/// rvs's private `--proxy-protocol`/`--toa` bits, [`dp::svc_flags::PRIVATE`]),
/// persistence and its netmask.
///
/// The private bits live only in the dataplane's copy: what rvsadm lists, `-S` saves,
/// the sync daemon sends and the metrics report comes from the IPVS table
/// ([`ServiceConf`]), whose flags are the kernel's (`sched_flags`), never from these.
fn service_config(conf: &ServiceConf) -> Result<ServiceConfig, BackendError> {
    let key = dp_key(&conf.key);
    let sched = SchedKind::from_name(&conf.scheduler)
        .ok_or_else(|| BackendError("Scheduler or persistence engine not found".into()))?;
    let mut sc = ServiceConfig::new(key, sched).flags(conf.sched_flags);
    if conf.ops {
        sc = sc.flags(dp::svc_flags::ONEPACKET);
    }
    sc = sc.flags(proxy_protocol(conf.proxy_protocol).flag());
    if conf.toa {
        sc = sc.flags(dp::svc_flags::TOA);
    }
    sc = sc.flags(match conf.syn_proxy {
        crate::ipvs::SynProxy::Disable => 0,
        crate::ipvs::SynProxy::Enable => dp::svc_flags::SYNPROXY,
        crate::ipvs::SynProxy::Auto => dp::svc_flags::SYNPROXY_AUTO,
    });
    if let Some(t) = conf.persistent {
        sc = sc.persistent(t);
    }
    if !conf.key.is_ipv6() {
        sc = sc.netmask(Addr::from(IpAddr::V4(Ipv4Addr::from(conf.netmask))));
    } else {
        sc = sc.netmask(Addr::v6_prefix(conf.netmask.min(IPV6_FULL_NETMASK) as u8));
    }
    Ok(sc)
}

/// The dataplane's key of a service ([`refusal`] has refused SCTP before).
fn dp_key(k: &ServiceKey) -> dp::ServiceKey {
    match *k {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => dp::ServiceKey::Addr {
            proto: match protocol {
                Protocol::Udp => Proto::Udp,
                Protocol::Tcp | Protocol::Sctp => Proto::Tcp,
            },
            addr: Addr::from(addr),
            port,
        },
        ServiceKey::Fwmark { mark, ipv6 } => dp::ServiceKey::Fwmark { mark, v6: ipv6 },
    }
}

/// The dataplane's tunnel of a real server (meaningful under `-i`): `--tun-type`,
/// `--tun-port`, `--tun-nocsum`/`--tun-csum`/`--tun-remcsum` as given.
fn tunnel(t: &crate::ipvs::Tunnel) -> dp_flow::Tunnel {
    dp_flow::Tunnel {
        kind: match t.tun_type {
            TunType::Ipip => dp_flow::TunKind::Ipip,
            TunType::Gue => dp_flow::TunKind::Gue,
            TunType::Gre => dp_flow::TunKind::Gre,
        },
        port: t.port,
        csum: match t.csum {
            TunCsum::NoCsum => dp_flow::TunCsum::NoCsum,
            TunCsum::Csum => dp_flow::TunCsum::Csum,
            TunCsum::RemCsum => dp_flow::TunCsum::RemCsum,
        },
    }
}

fn fwd(f: Forward) -> FwdMethod {
    match f {
        Forward::Masq => FwdMethod::Masq,
        Forward::Local => FwdMethod::Local,
        Forward::Tunnel => FwdMethod::Tunnel,
        Forward::Route => FwdMethod::Route,
        Forward::FullNat => FwdMethod::FullNat,
    }
}

fn state(s: SessionState) -> ConnState {
    match s {
        SessionState::Tcp(t) => match t {
            TcpState::None => ConnState::None,
            TcpState::Established => ConnState::Established,
            TcpState::SynSent => ConnState::SynSent,
            TcpState::SynRecv => ConnState::SynRecv,
            TcpState::FinWait => ConnState::FinWait,
            TcpState::TimeWait => ConnState::TimeWait,
            TcpState::Close => ConnState::Close,
            TcpState::CloseWait => ConnState::CloseWait,
            TcpState::LastAck => ConnState::LastAck,
            TcpState::Listen => ConnState::Listen,
            TcpState::SynAck => ConnState::SynAck,
        },
        SessionState::Udp => ConnState::Udp,
        SessionState::Template { .. } | SessionState::Other => ConnState::None,
    }
}

impl DpdkBackend {
    /// The refusal of a LIP whose `-F ifname` is not the port its route sends it out of
    /// (where it answers ARP): rvs takes the port from the routes, so another name would
    /// be listed and not done.
    fn ifname_refusal(&self, table: &IpvsTable) -> Result<(), BackendError> {
        for l in table.services.iter().flat_map(|s| s.laddrs.iter()) {
            let (Some(name), IpAddr::V4(a)) = (&l.ifname, l.addr) else {
                continue;
            };
            let port = self.engine.port_name_toward(a);
            if port != Some(name.as_str()) {
                return Err(BackendError(format!(
                    "local address {a} is on port {} by the routes, not on '{name}' (ifname)",
                    port.unwrap_or("(none)")
                )));
            }
        }
        Ok(())
    }

    /// Starts DPDK, the ports and the workers.
    pub fn start(cfg: &EngineConfig) -> Result<DpdkBackend, EngineError> {
        let engine = Engine::start(cfg)?;
        Ok(DpdkBackend {
            engine,
            table: ServiceTable::new(),
            timeouts: Timeouts::default(),
            daemons: Vec::new(),
            sync_peer: None,
            sync_key: None,
            sync_group: None,
            sync_group_own: None,
            started: Instant::now(),
            acls: HashMap::new(),
        })
    }

    /// Sets the TUN real servers `cfg`'s health checks reach through the VIP
    /// ([`probe_servers`]); published with the next table.
    pub fn set_probe_servers(&mut self, cfg: &Config) {
        self.engine.set_probe_servers(probe_servers(cfg));
    }

    /// Active/active sync (`[sync] state = "group"`, `peers`): the group's addresses, this
    /// director's own among them or not; sync daemons started from now on send to every
    /// other and accept only them, and the director is never a standby.
    pub fn set_sync_group(&mut self, peers: Option<Vec<Ipv4Addr>>) {
        self.sync_group = peers;
    }

    /// Sends the master's sync messages to this unicast peer instead of the group
    /// (`[sync] unicast_peer`).
    pub fn set_sync_peer(&mut self, peer: Option<Ipv4Addr>) {
        self.sync_peer = peer;
    }

    /// The sync group's key (`[sync] key_file`, read when rvsd starts): daemons started
    /// from now on sign (master) or check (backup) every message with it.
    pub fn set_sync_key(&mut self, key: Option<rvs_dataplane::sync::auth::SyncKey>) {
        self.sync_key = key;
    }

    /// Starts and stops sync daemons to match the table's, then sets the role (standby
    /// when only a backup runs).
    fn sync_daemons(&mut self, wanted: &[SyncDaemon]) -> Result<(), BackendError> {
        let running = self.daemons.clone();
        for d in &running {
            if !wanted.contains(d) {
                match d.state {
                    SyncState::Master => self.engine.stop_sync_master(),
                    SyncState::Backup => self.engine.stop_sync_backup(),
                }
                self.daemons.retain(|x| x != d);
            }
        }
        for d in wanted {
            if self.daemons.contains(d) {
                continue;
            }
            let iface = crate::sync::iface_addr(&d.mcast_ifn)?;
            if let Some(list) = self
                .sync_group
                .as_ref()
                .filter(|_| self.sync_group_own != Some(iface))
            {
                self.sync_group_own = Some(iface);
                self.engine
                    .set_sync_group(Some(rvs_dataplane::sync::group::PeerTable::new(
                        iface, list,
                    )));
            }
            let cfg = crate::sync::net_config(d, iface, self.sync_peer, self.sync_key)?;
            let r = match d.state {
                SyncState::Master => self.engine.start_sync_master(cfg, SyncRules::default()),
                SyncState::Backup => self.engine.start_sync_backup(cfg),
            };
            r.map_err(|e| BackendError(e.to_string()))?;
            tracing::info!(role = %d.state, ifn = %d.mcast_ifn, %iface, syncid = d.syncid, authenticated = self.sync_key.is_some(), "sync daemon started");
            self.daemons.push(d.clone());
        }
        self.engine
            .set_passive(self.sync_group.is_none() && crate::sync::is_passive(&self.daemons));
        Ok(())
    }

    /// The engine (for diagnostics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Forgets the trashed real servers that no worker has referenced for the trash
    /// period: a worker keeps a removed server's slot while sessions are bound to it, and
    /// reports the ids of the slots it keeps.
    fn expire_trash(&mut self) {
        if self.table.trashed().next().is_none() {
            return;
        }
        let in_use: HashSet<DestId> = self
            .engine
            .reports()
            .iter()
            .flat_map(|r| r.dests.iter().map(|d| d.0))
            .collect();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let n = self.table.expire_trash(|id| in_use.contains(&id), now_ms);
        if n > 0 {
            tracing::debug!(forgotten = n, "real servers left the trash");
        }
    }

    /// The dataplane ACL of `lists`, the ACL of service `key` (`None`: the global one):
    /// the one built before if the lists did not change.
    fn acl_of(&mut self, key: Option<ServiceKey>, lists: &AclLists) -> Arc<Acl> {
        if let Some((l, acl)) = self.acls.get(&key) {
            if l == lists {
                return acl.clone();
            }
        }
        let acl = Arc::new(dp_acl(lists));
        self.acls.insert(key, (lists.clone(), acl.clone()));
        acl
    }

    /// Sets the global ACL and every service's on the dataplane's tables (seen by the
    /// workers with the next publish, all in one snapshot); forgets the ACLs of
    /// services that are gone.
    fn sync_acls(&mut self, table: &IpvsTable) -> Result<(), BackendError> {
        let err = |e: dp::ServiceError| BackendError(e.to_string());
        let global = self.acl_of(None, &table.acl);
        self.engine.set_acl(global);
        for s in &table.services {
            let acl = (!s.acl.is_empty()).then(|| self.acl_of(Some(s.conf.key), &s.acl));
            if acl.is_none() {
                self.acls.remove(&Some(s.conf.key));
            }
            self.table.set_acl(&dp_key(&s.conf.key), acl).map_err(err)?;
        }
        self.acls
            .retain(|k, _| k.is_none_or(|k| table.service(&k).is_some()));
        Ok(())
    }

    fn sync_services(&mut self, table: &IpvsTable) -> Result<(), BackendError> {
        self.expire_trash();
        let err = |e: dp::ServiceError| BackendError(e.to_string());
        let wanted: Vec<dp::ServiceKey> =
            table.services.iter().map(|s| dp_key(&s.conf.key)).collect();
        let stale: Vec<dp::ServiceKey> = self
            .table
            .services()
            .iter()
            .map(|s| s.key)
            .filter(|k| !wanted.contains(k))
            .collect();
        for k in stale {
            self.table.del_service(&k).map_err(err)?;
        }
        for s in &table.services {
            let key = dp_key(&s.conf.key);
            let sc = service_config(&s.conf)?;
            let exists = self.table.services().iter().any(|x| x.key == key);
            if exists {
                self.table.edit_service(sc).map_err(err)?;
            } else {
                self.table.add_service(sc).map_err(err)?;
            }
            // Dests: remove the gone, edit the kept, add the new (oldest first, so the
            // dataplane's newest-first list matches the kernel's).
            let have: Vec<(Addr, u16)> = self
                .table
                .services()
                .iter()
                .find(|x| x.key == key)
                .map(|x| x.dests.iter().map(|d| (d.addr, d.port)).collect())
                .unwrap_or_default();
            let want: Vec<(Addr, u16)> = s
                .dests
                .iter()
                .map(|d| (Addr::from(d.addr), d.port))
                .collect();
            for (a, p) in &have {
                if !want.contains(&(*a, *p)) {
                    self.table.del_dest(&key, *a, *p).map_err(err)?;
                }
            }
            for d in s.dests.iter().rev() {
                let dc = DestConfig::new(Addr::from(d.addr), d.port, fwd(d.forward))
                    .weight(d.weight.max(0) as u32)
                    .thresholds(d.u_threshold, d.l_threshold)
                    .tunnel(tunnel(&d.tunnel));
                if have.contains(&(Addr::from(d.addr), d.port)) {
                    self.table.edit_dest(&key, dc).map_err(err)?;
                } else {
                    self.table.add_dest(&key, dc).map_err(err)?;
                }
            }
        }
        Ok(())
    }

    /// Service, real-server and LIP counters summed over the workers' reports.
    fn counters_of(&self, reports: &[WorkerReport]) -> DataplaneCounters {
        let index = self.dest_index();
        let mut services: Vec<ServiceCounters> = Vec::new();
        let mut by_dest: HashMap<DestId, DestCounters> = HashMap::new();
        let mut lips: HashMap<(ServiceKey, IpAddr), (u64, u64)> = HashMap::new();
        for r in reports {
            for &(id, c, t) in &r.dests {
                let e = by_dest.entry(id).or_default();
                e.active_conns += c[0];
                e.inact_conns += c[1];
                e.persist_conns += c[2];
                e.stats.conns += t.conns;
                e.stats.inpkts += t.inpkts;
                e.stats.outpkts += t.outpkts;
                e.stats.inbytes += t.inbytes;
                e.stats.outbytes += t.outbytes;
            }
            for &(k, a, n, conflicts) in &r.laddrs {
                let e = lips.entry((control_key(&k), a)).or_default();
                e.0 += u64::from(n);
                e.1 += conflicts;
            }
        }
        for s in self.table.services() {
            let key = control_key(&s.key);
            let mut sc = ServiceCounters {
                key,
                stats: Stats::default(),
                dests: Vec::new(),
                laddrs: Vec::new(),
            };
            for d in &s.dests {
                let c = by_dest.get(&d.id).copied().unwrap_or_default();
                sc.stats.conns += c.stats.conns;
                sc.stats.inpkts += c.stats.inpkts;
                sc.stats.outpkts += c.stats.outpkts;
                sc.stats.inbytes += c.stats.inbytes;
                sc.stats.outbytes += c.stats.outbytes;
                let (_, addr, port) =
                    index
                        .get(&d.id)
                        .copied()
                        .unwrap_or((key, d.addr.to_ip(), d.port));
                sc.dests.push(DestCounterEntry {
                    addr,
                    port,
                    counters: c,
                });
            }
            for ((k, a), (n, conflicts)) in &lips {
                if *k == key {
                    sc.laddrs.push(LaddrCounterEntry {
                        addr: *a,
                        conflicts: *conflicts,
                        conns: *n,
                    });
                }
            }
            services.push(sc);
        }
        DataplaneCounters { services }
    }

    fn dest_index(&self) -> HashMap<DestId, (ServiceKey, IpAddr, u16)> {
        let mut m = HashMap::new();
        for s in self.table.services() {
            let key = control_key(&s.key);
            for d in &s.dests {
                m.insert(d.id, (key, d.addr.to_ip(), d.port));
            }
        }
        m
    }
}

/// A worker's report as metrics: its counters, every drop reason by name.
fn worker_metrics(r: &WorkerReport) -> WorkerMetrics {
    use rvs_dataplane::pipeline::DropReason;
    let c = &r.counters;
    WorkerMetrics {
        worker: r.worker,
        packets: c.packets,
        conns: c.conns,
        in_packets: c.in_packets,
        in_bytes: c.in_bytes,
        out_packets: c.out_packets,
        out_bytes: c.out_bytes,
        handoff_out: c.handoff_out,
        handoff_in: r.handoff_in,
        sessions: u64::from(r.sessions),
        session_capacity: u64::from(r.conn_capacity),
        sessions_created: r.sessions_created,
        tx_dropped: r.tx_dropped,
        to_kernel: r.to_kernel,
        from_kernel: r.from_kernel,
        arp_replies: c.arp_replies,
        echo_replies: c.echo_replies,
        icmp_translated: c.icmp_translated,
        time_exceeded_sent: c.time_exceeded_sent,
        frag_needed_sent: c.frag_needed_sent,
        icmp_rate_limited: c.icmp_rate_limited,
        proxy_headers: c.proxy_headers,
        proxy_resent: c.proxy_resent,
        toa_added: c.toa_added,
        toa_no_room: c.toa_no_room,
        syn_cookies_sent: c.syn_cookies_sent,
        syn_options_clamped: c.syn_options_clamped,
        syn_proxy_acks: c.syn_proxy_acks,
        syn_proxy_sessions: c.syn_proxy_sessions,
        syn_proxy_established: c.syn_proxy_established,
        syn_proxy_retries: c.syn_proxy_retries,
        syn_proxy_refused: c.syn_proxy_refused,
        syn_proxy_timeouts: c.syn_proxy_timeouts,
        syn_proxy_client_resets: c.syn_proxy_client_resets,
        syn_proxy_held: c.syn_proxy_held,
        syn_proxy_held_sent: c.syn_proxy_held_sent,
        syn_proxy_held_freed: c.syn_proxy_held_freed,
        syn_proxy_held_full: c.syn_proxy_held_full,
        drops: c
            .drops
            .iter()
            .enumerate()
            .filter_map(|(i, n)| DropReason::from_index(i).map(|d| (d.name(), *n)))
            .collect(),
        poll_cycles: r.poll_cycles,
        busy_cycles: r.busy_cycles,
        busy_ratio: f64::from(r.busy_ppm) / 1e6,
        idle_sleeps: r.idle_sleeps,
    }
}

fn control_key(k: &dp::ServiceKey) -> ServiceKey {
    match *k {
        dp::ServiceKey::Addr { proto, addr, port } => ServiceKey::Inet {
            protocol: if proto == Proto::Udp {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            addr: addr.to_ip(),
            port,
        },
        dp::ServiceKey::Fwmark { mark, v6 } => ServiceKey::Fwmark { mark, ipv6: v6 },
    }
}

impl Backend for DpdkBackend {
    fn apply(&mut self, table: &IpvsTable) -> Result<(), BackendError> {
        refusal(table)?;
        self.ifname_refusal(table)?;
        self.sync_services(table)?;
        self.sync_acls(table)?;
        if table.timeouts != self.timeouts {
            let t = table.timeouts;
            self.engine.set_timeouts(t.tcp, t.tcp_fin, t.udp);
            self.timeouts = t;
        }
        let snap = self.table.snapshot();
        let mut vips = Vec::new();
        let mut laddrs = HashMap::new();
        for s in &table.services {
            if let ServiceKey::Inet { addr: v, .. } = s.conf.key {
                if !vips.contains(&v) {
                    vips.push(v);
                }
            }
            let lips: Vec<IpAddr> = s.laddrs.iter().map(|l| l.addr).collect();
            if !lips.is_empty() {
                laddrs.insert(dp_key(&s.conf.key), lips);
            }
        }
        let former: Vec<IpAddr> = self.table.trashed_vips().map(|a| a.to_ip()).collect();
        self.engine.publish(snap, &vips, &former, laddrs);
        self.sync_daemons(&table.daemons)
    }

    fn set_network(&mut self, cfg: &Config) -> Result<(), BackendError> {
        let err = |e: EngineConfigError| BackendError(e.to_string());
        let (_, names) = port_specs(cfg).map_err(err)?;
        let routes = routes(cfg, &names).map_err(err)?;
        let marks = mark_rules(cfg, &names).map_err(err)?;
        self.engine.set_network(routes, marks);
        self.engine.set_sloppy_tcp(cfg.sessions.sloppy_tcp != 0);
        self.engine.set_probe_servers(probe_servers(cfg));
        Ok(())
    }

    fn counters(&self) -> DataplaneCounters {
        self.counters_of(&self.engine.reports())
    }

    fn metrics(&self) -> BackendMetrics {
        let reports = self.engine.reports();
        let counters = self.counters_of(&reports);
        let workers = reports.iter().map(worker_metrics).collect();
        let ports = self
            .engine
            .port_names()
            .iter()
            .cloned()
            .zip(self.engine.port_stats_read())
            .map(|(name, s)| {
                let c = s.map(|s| PortCounters {
                    rx_packets: s.ipackets,
                    tx_packets: s.opackets,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    tx_errors: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                });
                (name, c)
            })
            .collect();
        let sync = self.engine.sync_report();
        let now_ms = rvs_dataplane::sync::net::unix_ms(std::time::SystemTime::now());
        let daemon = |d: &rvs_dataplane::engine::SyncDaemonReport| SyncDaemonMetrics {
            running: d.running,
            counters: d.counters.clone(),
            backlog: d.backlog,
            last_message_age_seconds: d
                .last_message_unix_ms
                .map(|t| now_ms.saturating_sub(t) as f64 / 1000.0),
            authenticated: d.authenticated,
        };
        let engine = EngineMetrics {
            workers_expected: self.engine.workers(),
            workers,
            ports,
            mbufs_in_use: u64::from(self.engine.mbufs_in_use()),
            mbuf_pool_size: u64::from(self.engine.mbuf_pool_size()),
            sync_master: daemon(&sync.master),
            sync_backup: daemon(&sync.backup),
            sync_workers: sync
                .workers
                .iter()
                .map(|(w, c)| SyncWorkerMetrics {
                    worker: *w,
                    emitted: c.emitted,
                    dropped: c.dropped,
                    installed: c.installed,
                    updated: c.updated,
                    refused: c.refused,
                    no_service: c.no_service,
                })
                .collect(),
            passive: sync.passive,
            sync_peers: sync.peers,
            sync_held_lips: sync.held_lips,
        };
        BackendMetrics {
            counters,
            engine: Some(engine),
        }
    }

    fn group_tick(&mut self) {
        let (taken, released) = self.engine.group_tick();
        for (lip, peer) in taken {
            tracing::warn!(%lip, %peer, "sync group: peer down; taking over its local address (answered, announced, no new sessions on it)");
        }
        for (lip, peer) in released {
            tracing::info!(%lip, %peer, "sync group: releasing a local address taken over (its peer is up, or another member holds it)");
        }
    }

    fn group(&self) -> String {
        let mut text = crate::sync::group_text(
            self.sync_group.is_some(),
            self.sync_group_own,
            &self.engine.sync_report(),
        );
        if self.sync_group.is_some() && self.sync_group_own.is_some() {
            text.push_str(&crate::sync::joined_line(
                self.engine.sync_joined(),
                &self.engine.sync_bulk_pending(),
            ));
        }
        text
    }

    fn sync_joined(&self) -> bool {
        self.engine.sync_joined()
    }

    fn announced(&self) -> Vec<Ipv4Addr> {
        if self.engine.healthy() {
            self.engine.service_addresses()
        } else {
            Vec::new()
        }
    }

    fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut reports = self.engine.reports();
        reports.sort_by_key(|r| r.worker);
        for r in &reports {
            let c = &r.counters;
            let _ = writeln!(
                out,
                "worker {} packets={} in={} out={} handoff_out={} handoff_in={} sessions={} arp_replies={} echo_replies={} icmp_translated={} tx_dropped={} dropped={} to_kernel={} from_kernel={} time_exceeded_sent={} frag_needed_sent={} icmp_rate_limited={} proxy_headers={} proxy_resent={} toa_added={} toa_no_room={} syn_cookies_sent={} syn_options_clamped={} syn_proxy_acks={} syn_proxy_sessions={} syn_proxy_established={} syn_proxy_retries={} syn_proxy_refused={} syn_proxy_timeouts={} syn_proxy_client_resets={} syn_proxy_held={} syn_proxy_held_sent={} syn_proxy_held_freed={} syn_proxy_held_full={} idle_sleeps={}",
                r.worker,
                c.packets,
                c.in_packets,
                c.out_packets,
                c.handoff_out,
                r.handoff_in,
                r.sessions,
                c.arp_replies,
                c.echo_replies,
                c.icmp_translated,
                r.tx_dropped,
                c.dropped(),
                r.to_kernel,
                r.from_kernel,
                c.time_exceeded_sent,
                c.frag_needed_sent,
                c.icmp_rate_limited,
                c.proxy_headers,
                c.proxy_resent,
                c.toa_added,
                c.toa_no_room,
                c.syn_cookies_sent,
                c.syn_options_clamped,
                c.syn_proxy_acks,
                c.syn_proxy_sessions,
                c.syn_proxy_established,
                c.syn_proxy_retries,
                c.syn_proxy_refused,
                c.syn_proxy_timeouts,
                c.syn_proxy_client_resets,
                c.syn_proxy_held,
                c.syn_proxy_held_sent,
                c.syn_proxy_held_freed,
                c.syn_proxy_held_full,
                r.idle_sleeps,
            );
            for (i, n) in c.drops.iter().enumerate() {
                if *n > 0 {
                    if let Some(reason) = rvs_dataplane::pipeline::DropReason::from_index(i) {
                        let _ = writeln!(out, "  drop {} {}", reason.name(), n);
                    }
                }
            }
        }
        let _ = writeln!(out, "mbufs_in_use={}", self.engine.mbufs_in_use());
        out.push_str(&self.engine.sync_describe());
        for (i, s) in self.engine.port_stats().iter().enumerate() {
            let _ = writeln!(
                out,
                "port {i} ipackets={} opackets={} imissed={} ierrors={} oerrors={}",
                s.ipackets, s.opackets, s.imissed, s.ierrors, s.oerrors
            );
        }
        out
    }

    fn connections(&self) -> Vec<ConnRow> {
        self.engine
            .connections()
            .into_iter()
            .map(|c| ConnRow {
                protocol: match c.proto {
                    Proto::Tcp => ConnProtocol::Tcp,
                    Proto::Udp => ConnProtocol::Udp,
                    Proto::Ip => ConnProtocol::Ip,
                },
                client: SocketAddr::new(c.caddr.to_ip(), c.cport),
                virtual_addr: SocketAddr::new(c.vaddr.to_ip(), c.vport),
                dest: SocketAddr::new(c.daddr.to_ip(), c.dport),
                state: state(c.state),
                expires: c.expire_secs.min(u64::from(u32::MAX)) as u32,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{DestConf, Laddr, Op, Tunnel};

    fn table(ops: &[Op]) -> IpvsTable {
        let mut t = IpvsTable::new();
        for op in ops {
            t.apply(op).unwrap();
        }
        t
    }

    fn inet(protocol: Protocol, addr: &str, port: u16) -> ServiceKey {
        ServiceKey::Inet {
            protocol,
            addr: addr.parse().unwrap(),
            port,
        }
    }

    fn refused(ops: &[Op]) -> String {
        refusal(&table(ops)).unwrap_err().0
    }

    #[test]
    fn acls_become_the_dataplanes_and_ipv6_prefixes_are_refused() {
        use crate::ipvs::{AclKind, AclPrefix};
        let v4 = inet(Protocol::Tcp, "10.0.0.100", 80);
        let p = |s: &str| AclPrefix::parse(s).unwrap();
        let add = |k: Option<ServiceKey>, kind, s: &str| Op::AddAcl(k, kind, p(s));
        assert_eq!(
            refused(&[add(None, AclKind::Deny, "2001:db8::/32")]),
            "IPv6 ACL prefixes ('blklst' 2001:db8::/32) are not supported by the rvs dataplane"
        );
        assert_eq!(
            refused(&[
                Op::AddService(ServiceConf::new(v4)),
                add(Some(v4), AclKind::Allow, "2001:db8::1"),
            ]),
            "IPv6 ACL prefixes ('whtlst' 2001:db8::1/128) are not supported by the rvs dataplane"
        );
        let t = table(&[
            Op::AddService(ServiceConf::new(v4)),
            add(Some(v4), AclKind::Deny, "10.0.0.0/8"),
            add(Some(v4), AclKind::Allow, "10.1.0.0/16"),
        ]);
        assert!(refusal(&t).is_ok());
        let acl = dp_acl(&t.services[0].acl);
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(acl.denies_v4(a("10.2.0.1")));
        assert!(!acl.denies_v4(a("10.1.0.1")));
        assert!(acl.denies_v4(a("192.0.2.1")), "an allow-list");
        assert!(dp_acl(&t.acl).is_empty());
    }

    #[test]
    fn what_the_dataplane_does_not_do_is_refused_by_name() {
        let v4 = inet(Protocol::Tcp, "10.0.0.100", 80);
        let add = |k| Op::AddService(ServiceConf::new(k));
        assert_eq!(refusal(&table(&[add(v4)])), Ok(()));
        assert_eq!(
            refused(&[add(inet(Protocol::Tcp, "2001:db8::1", 80))]),
            "IPv6 virtual services are not supported by the rvs dataplane"
        );
        assert_eq!(
            refused(&[add(ServiceKey::Fwmark {
                mark: 1,
                ipv6: true
            })]),
            "IPv6 virtual services are not supported by the rvs dataplane"
        );
        assert_eq!(
            refused(&[add(inet(Protocol::Sctp, "10.0.0.100", 80))]),
            "SCTP virtual services ('sctp-service') are not supported by the rvs dataplane"
        );
        let mut d6 = DestConf::new("2001:db8::10".parse().unwrap(), 80);
        d6.forward = Forward::Tunnel;
        assert_eq!(
            refused(&[add(v4), Op::AddDest(v4, d6)]),
            "IPv6 real servers are not supported by the rvs dataplane"
        );
        // Every tunnel type is done: accepted, and carried to the dataplane's real server.
        for (tun_type, port, csum) in [
            (TunType::Ipip, 0, TunCsum::NoCsum),
            (TunType::Gue, 6080, TunCsum::Csum),
            (TunType::Gue, 6080, TunCsum::RemCsum),
            (TunType::Gre, 0, TunCsum::Csum),
        ] {
            let mut d = DestConf::new("10.0.0.11".parse().unwrap(), 80);
            d.forward = Forward::Tunnel;
            d.tunnel = Tunnel {
                tun_type,
                port,
                csum,
            };
            let t = table(&[add(v4), Op::AddDest(v4, d.clone())]);
            assert_eq!(refusal(&t), Ok(()), "{tun_type:?}");
            let dt = tunnel(&d.tunnel);
            assert_eq!(
                (dt.kind as u8, dt.port, dt.csum as u8),
                (tun_type as u8, port, csum as u8)
            );
        }
        let l6 = Laddr {
            addr: "2001:db8::200".parse().unwrap(),
            ifname: None,
        };
        assert_eq!(
            refused(&[add(v4), Op::AddLaddr(v4, l6)]),
            "IPv6 local addresses ('laddr') are not supported by the rvs dataplane"
        );
    }

    #[test]
    fn one_packet_scheduling_reaches_the_dataplane() {
        let mut c = ServiceConf::new(inet(Protocol::Udp, "10.0.0.100", 53));
        assert_eq!(
            service_config(&c).unwrap().flags & dp::svc_flags::ONEPACKET,
            0
        );
        c.ops = true;
        assert_ne!(
            service_config(&c).unwrap().flags & dp::svc_flags::ONEPACKET,
            0
        );
    }

    #[test]
    fn proxy_protocol_and_toa_reach_the_dataplane_as_private_flags() {
        use crate::ipvs::ProxyProtocol;
        let mut c = ServiceConf::new(inet(Protocol::Tcp, "10.0.0.100", 80));
        c.sched_flags = crate::ipvs::SCHED_FLAG_2;
        let sc = service_config(&c).unwrap();
        assert_eq!(sc.flags & dp::svc_flags::PRIVATE, 0, "off by default");
        for (p, want) in [
            (ProxyProtocol::Disable, dp::ProxyProtocol::Off),
            (ProxyProtocol::V1, dp::ProxyProtocol::V1),
            (ProxyProtocol::V2, dp::ProxyProtocol::V2),
        ] {
            c.proxy_protocol = p;
            c.toa = p == ProxyProtocol::V1;
            let sc = service_config(&c).unwrap();
            assert_eq!(dp::ProxyProtocol::of_flags(sc.flags), want);
            assert_eq!(sc.flags & dp::svc_flags::TOA != 0, c.toa);
            // The kernel's bits are what they were: the private ones sit apart.
            assert_eq!(
                sc.flags & !dp::svc_flags::PRIVATE,
                crate::ipvs::SCHED_FLAG_2
            );
        }
    }

    #[test]
    fn engine_config_carries_the_session_sysctls() {
        let port = "[[ports]]\nname = \"dpdk0\"\ndevice = \"net_null0\"\n";
        let e = engine_config(&Config::from_str(port).unwrap()).unwrap();
        assert!(!e.expire_nodest_conn && !e.expire_quiescent_template);
        let cfg =
            format!("{port}[sessions]\nexpire_nodest_conn = 1\nexpire_quiescent_template = 1\n");
        let e = engine_config(&Config::from_str(&cfg).unwrap()).unwrap();
        assert!(e.expire_nodest_conn && e.expire_quiescent_template);
        assert_eq!(e.new_sessions_per_second, 0, "no budget unless asked");
        let cfg = format!("{port}[sessions]\nnew_per_second = 20000\n");
        let e = engine_config(&Config::from_str(&cfg).unwrap()).unwrap();
        assert_eq!(e.new_sessions_per_second, 20000);
        assert!(!e.sloppy_tcp);
        let cfg = format!("{port}[sessions]\nsloppy_tcp = 1\n");
        let e = engine_config(&Config::from_str(&cfg).unwrap()).unwrap();
        assert!(e.sloppy_tcp);
    }

    #[test]
    fn engine_config_carries_the_port_vlan() {
        let port = |v: &str| format!("[[ports]]\nname = \"dpdk0\"\ndevice = \"net_null0\"\n{v}");
        let e = engine_config(&Config::from_str(&port("")).unwrap()).unwrap();
        assert_eq!(e.ports[0].vlan, None);
        let e = engine_config(&Config::from_str(&port("vlan = 10\n")).unwrap()).unwrap();
        assert_eq!(e.ports[0].vlan, Some(10));
    }

    #[test]
    fn engine_config_errors_name_the_field() {
        let f = || "ports[0].addresses".to_string();
        assert_eq!(
            ipv4_prefix(f(), "10.0.0.1/24"),
            Ok((Ipv4Addr::new(10, 0, 0, 1), 24))
        );
        assert_eq!(
            ipv4_prefix(f(), "10.0.0.1"),
            Ok((Ipv4Addr::new(10, 0, 0, 1), 32))
        );
        let text = |s: &str| ipv4_prefix(f(), s).unwrap_err().to_string();
        assert_eq!(
            text("10.0.0.1/33"),
            "ports[0].addresses: \"10.0.0.1/33\" has a bad prefix length"
        );
        assert_eq!(
            text("2001:db8::1/64"),
            "ports[0].addresses: \"2001:db8::1/64\" is not an IPv4 address"
        );
        assert_eq!(
            text("x/24"),
            "ports[0].addresses: \"x/24\" is not an IPv4 address"
        );
        assert_eq!(
            engine_config(&Config::default()).unwrap_err(),
            EngineConfigError::NoPorts
        );
    }

    const PORT: &str =
        "[[ports]]\nname = \"wan\"\ndevice = \"net_null0\"\naddresses = [\"10.0.0.1/24\"]\n";

    fn engine_err(body: &str) -> String {
        let cfg = Config::from_str(&format!("{PORT}{body}")).unwrap();
        engine_config(&cfg).unwrap_err().to_string()
    }

    #[test]
    fn config_keys_the_dataplane_does_not_do_are_refused_by_name() {
        let svc = |s: &str| format!("[[services]]\n{s}\n");
        for (body, text) in [
            (
                "rx_queues = 2".to_string(),
                "ports[0].rx_queues: queue counts are not supported by the rvs dataplane (it opens one rx and one tx queue per worker: set workers.count and remove the key)",
            ),
            (
                "tx_queues = 1".to_string(),
                "ports[0].tx_queues: queue counts are not supported by the rvs dataplane (it opens one rx and one tx queue per worker: set workers.count and remove the key)",
            ),
            (
                "checksum_offload = true".to_string(),
                "ports[0].checksum_offload: checksum offload is not supported by the rvs dataplane (checksums are computed in software: remove the key or set it to false)",
            ),
            (
                "[workers]\nlcores = [1]".to_string(),
                "workers.lcores: lcore lists are not supported by the rvs dataplane (use workers.count; eal.args places the lcores)",
            ),
            (
                svc("proto = \"sctp\"\nvip = \"10.0.0.100:80\""),
                "services[0].proto: sctp is not supported by the rvs dataplane",
            ),
            (
                svc("proto = \"tcp\"\nvip = \"[2001:db8::1]:80\""),
                "services[0].vip: IPv6 is not supported by the rvs dataplane",
            ),
            (
                svc("proto = \"fwmark\"\nfwmark = 1\nipv6 = true"),
                "services[0].ipv6: IPv6 is not supported by the rvs dataplane",
            ),
            (
                svc("proto = \"tcp\"\nvip = \"10.0.0.100:80\"\n[[services.real]]\naddress = \"10.0.0.11\"\nforward = \"tunnel\"\n[[services.real]]\naddress = \"[2001:db8::11]:80\"\nforward = \"tunnel\""),
                "services[0].real[1].address: IPv6 is not supported by the rvs dataplane",
            ),
            (
                "[[marks]]\ndst = \"2001:db8::/32\"\nmark = 1".to_string(),
                "marks[0].dst: \"2001:db8::/32\" is not an IPv4 address",
            ),
            (
                "[acl]\ndeny = [\"10.0.0.0/8\", \"2001:db8::/32\"]".to_string(),
                "acl.deny[1]: IPv6 is not supported by the rvs dataplane",
            ),
            (
                svc("proto = \"tcp\"\nvip = \"10.0.0.100:80\"\nallow = [\"2001:db8::1\"]"),
                "services[0].allow[0]: IPv6 is not supported by the rvs dataplane",
            ),
        ] {
            assert_eq!(engine_err(&body), text, "{body}");
        }
        // What the dataplane does: checksum_offload = false, workers.count, IPv4 services.
        let ok = "checksum_offload = false\n[workers]\ncount = 2\n\
                  [[services]]\nproto = \"udp\"\nvip = \"10.0.0.100:53\"\nops = true\n";
        let cfg = Config::from_str(&format!("{PORT}{ok}")).unwrap();
        assert_eq!(engine_config(&cfg).unwrap().workers, 2);
    }

    #[test]
    fn mark_rules_are_compiled_in_order_with_their_ports() {
        let body = "[[ports]]\nname = \"lan\"\ndevice = \"net_null1\"\n\
                    [[marks]]\nproto = \"tcp\"\ndst = \"10.0.0.100\"\ndports = \"80,443\"\nport = \"lan\"\nmark = 1\n\
                    [[marks]]\nsrc = \"192.168.0.0/16\"\ndports = \"5000-5010\"\nmark = 2\n";
        let cfg = Config::from_str(&format!("{PORT}{body}")).unwrap();
        let e = engine_config(&cfg).unwrap();
        let vip = Ipv4Addr::new(10, 0, 0, 100);
        let c = Ipv4Addr::new(192, 168, 1, 2);
        assert_eq!(e.marks.rules().len(), 2);
        assert_eq!(e.marks.rules()[0].in_port, Some(1));
        assert_eq!(e.marks.mark(Proto::Tcp, c, vip, 443, 1), 1);
        assert_eq!(e.marks.mark(Proto::Tcp, c, vip, 443, 0), 0);
        assert_eq!(e.marks.mark(Proto::Udp, c, vip, 5005, 0), 2);
        assert_eq!(
            e.marks
                .mark(Proto::Udp, Ipv4Addr::new(10, 0, 0, 2), vip, 5005, 0),
            0
        );
    }
}
