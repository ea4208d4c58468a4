//! The benchmark's network: addresses, flows and their owning workers, the service table
//! and the engine configuration, built the way `rvsd`'s DPDK backend builds them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rvs_dataplane::engine::{EngineConfig, PortSpec};
use rvs_dataplane::flow::{Addr, FwdMethod, Proto};
use rvs_dataplane::laddr::DEFAULT_PORT_RANGE;
use rvs_dataplane::service::{
    DestConfig, SchedKind, ServiceConfig, ServiceError, ServiceKey, ServiceSet, ServiceTable,
};
use rvs_dataplane::steer::{owner_of_client, owner_of_port};

use crate::capture::{Flow, L4};

/// Forwarding mode under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// NAT (masquerading, `-m`).
    Nat,
    /// Direct routing (`-g`).
    Dr,
    /// IP-in-IP tunnel (`-i`).
    Tun,
    /// Full NAT (`-b`).
    Fullnat,
}

impl Mode {
    /// Parses `nat`, `dr`, `tun`, `fullnat` (any case).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.to_ascii_lowercase().as_str() {
            "nat" | "masq" => Some(Mode::Nat),
            "dr" | "route" => Some(Mode::Dr),
            "tun" | "tunnel" => Some(Mode::Tun),
            "fullnat" | "fnat" => Some(Mode::Fullnat),
            _ => None,
        }
    }

    /// The IPVS forwarding method.
    pub fn fwd(self) -> FwdMethod {
        match self {
            Mode::Nat => FwdMethod::Masq,
            Mode::Dr => FwdMethod::Route,
            Mode::Tun => FwdMethod::Tunnel,
            Mode::Fullnat => FwdMethod::FullNat,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tun => "tun",
            Mode::Fullnat => "fullnat",
        }
    }
}

/// The virtual service address.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// The virtual service port.
pub const VPORT: u16 = 80;
/// Real-server port in the modes that map ports (NAT, FULLNAT).
pub const RPORT: u16 = 8080;
/// Number of real servers.
pub const REAL_SERVERS: u8 = 8;
/// Clients live in 100.64.0.0/10 behind port 0; this many client addresses are used.
pub const CLIENT_ADDRS: u32 = 1 << 18;
/// First client address.
pub const CLIENT_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// Director address on the client-side port.
pub const DIP_CLIENT: (Ipv4Addr, u8) = (Ipv4Addr::new(100, 127, 255, 254), 10);
/// Director address on the server-side port (real servers are 10.2.0.1..).
pub const DIP_SERVER: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 2, 0, 254), 24);
/// First FULLNAT local address (10.3.0.1, 10.3.0.2, ...).
pub const LIP_BASE: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 1);

/// Real server `i` (0-based).
pub fn real_server(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 2, 0, 1 + i)
}

/// The MAC the benchmark gives real server `i` (a static neighbour: no ARP).
pub fn real_server_mac(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 2, 0, 1 + i]
}

/// Flow number `i` of a set starting at `offset` (so the new-connection set does not
/// overlap the established set): the client address varies fastest, so the owner hash
/// spreads any prefix of the set evenly over the workers.
pub fn flow(i: u64, offset: u64) -> Flow {
    let n = i + offset;
    let a = (n % u64::from(CLIENT_ADDRS)) as u32;
    let p = n / u64::from(CLIENT_ADDRS);
    Flow {
        caddr: Ipv4Addr::from(u32::from(CLIENT_BASE) + a),
        cport: 1024u16.wrapping_add(p as u16),
        vaddr: VIP,
        vport: VPORT,
    }
}

/// Most flows one client address may carry (client ports 1024..65535).
pub const MAX_FLOWS: u64 = CLIENT_ADDRS as u64 * 64_000;

/// The worker that owns a request of `flow` when `workers` workers run
/// (`steer::owner_of_client`, as the engine computes it).
pub fn owner(flow: &Flow, workers: usize) -> usize {
    owner_of_client(flow.caddr, workers)
}

/// Splits flows `0..n` (from `offset`) by owning worker.
pub fn partition(n: u64, offset: u64, workers: usize) -> Vec<Vec<Flow>> {
    let mut out: Vec<Vec<Flow>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
    for i in 0..n {
        let f = flow(i, offset);
        out[owner(&f, workers)].push(f);
    }
    out
}

/// FULLNAT local addresses needed so that every worker can hold `per_worker` sessions:
/// each worker owns the ports `p % workers == w` of every LIP (`steer::owner_of_port`).
pub fn lips_needed(per_worker: u64, workers: usize) -> u32 {
    let (lo, hi) = DEFAULT_PORT_RANGE;
    let slice = (lo..=hi)
        .filter(|&p| owner_of_port(p, workers) == 0)
        .count() as u64;
    let slice = slice.max(1);
    (per_worker.div_ceil(slice) + 1).min(60_000) as u32
}

/// LIP number `i`.
pub fn lip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(LIP_BASE) + i)
}

/// The port of the SYN-proxied service `synflood-mixed` floods (on the same VIP).
pub const FLOOD_VPORT: u16 = 81;

/// The service key of the benchmark's virtual service.
pub fn service_key(l4: L4) -> ServiceKey {
    ServiceKey::Addr {
        proto: match l4 {
            L4::Tcp => Proto::Tcp,
            L4::Udp => Proto::Udp,
        },
        addr: Addr::from(IpAddr::V4(VIP)),
        port: VPORT,
    }
}

/// What [`rvs_dataplane::engine::Engine::publish`] takes.
pub struct Published {
    /// The services snapshot.
    pub services: Arc<ServiceSet>,
    /// VIPs.
    pub vips: Vec<IpAddr>,
    /// FULLNAT LIP pools.
    pub laddrs: HashMap<ServiceKey, Vec<IpAddr>>,
}

/// Builds the service (rr over [`REAL_SERVERS`] servers, service flags `flags`, e.g.
/// `svc_flags::PROXY_V2`) with [`ServiceTable`], as `control/src/dpdk_backend.rs` does
/// from an IPVS table, plus `lips` LIPs in FULLNAT.
pub fn services(mode: Mode, l4: L4, lips: u32, flags: u32) -> Result<Published, ServiceError> {
    services_with_flood(mode, l4, lips, flags, None)
}

/// [`services`], and with `flood` a second service on [`FLOOD_VPORT`] of the same VIP
/// and servers with service flags `flood` (e.g. `svc_flags::SYNPROXY`).
pub fn services_with_flood(
    mode: Mode,
    l4: L4,
    lips: u32,
    flags: u32,
    flood: Option<u32>,
) -> Result<Published, ServiceError> {
    let key = service_key(l4);
    let mut keys = vec![(key, flags)];
    if let Some(f) = flood {
        let ServiceKey::Addr { proto, addr, .. } = key else {
            unreachable!("an address service");
        };
        let port = FLOOD_VPORT;
        keys.push((ServiceKey::Addr { proto, addr, port }, f));
    }
    let mut table = ServiceTable::new();
    let rport = match mode {
        Mode::Nat | Mode::Fullnat => RPORT,
        Mode::Dr | Mode::Tun => VPORT,
    };
    let mut laddrs = HashMap::new();
    for (key, flags) in keys {
        table.add_service(ServiceConfig::new(key, SchedKind::Rr).flags(flags))?;
        for i in (0..REAL_SERVERS).rev() {
            table.add_dest(
                &key,
                DestConfig::new(Addr::from(IpAddr::V4(real_server(i))), rport, mode.fwd())
                    .weight(1),
            )?;
        }
        if mode == Mode::Fullnat {
            laddrs.insert(key, (0..lips).map(|i| lip(i).into()).collect());
        }
    }
    Ok(Published {
        services: table.snapshot(),
        vips: vec![VIP.into()],
        laddrs,
    })
}

/// The engine's ports: 0 faces the clients (the traffic source), 1 the real servers (the
/// sink), 2 the warm-up port through which the harness injects each flow's first packet.
pub fn engine_config(
    eal_args: Vec<String>,
    client_dev: &str,
    server_dev: Option<&str>,
    warm_dev: &str,
    workers: usize,
    conn_capacity: u32,
    mbufs: u32,
) -> EngineConfig {
    let mut ports = vec![PortSpec {
        name: "clients".into(),
        devargs: client_dev.to_owned(),
        addrs: vec![DIP_CLIENT],
        addrs6: Vec::new(),
        mtu: 1500,
        kernel_iface: None,
        vlan: None,
    }];
    match server_dev {
        Some(dev) => ports.push(PortSpec {
            name: "servers".into(),
            devargs: dev.to_owned(),
            addrs: vec![DIP_SERVER],
            addrs6: Vec::new(),
            mtu: 1500,
            kernel_iface: None,
            vlan: None,
        }),
        // One-armed: real servers on the client port.
        None => ports[0].addrs.push(DIP_SERVER),
    }
    ports.push(PortSpec {
        name: "warmup".into(),
        devargs: warm_dev.to_owned(),
        addrs: Vec::new(),
        addrs6: Vec::new(),
        mtu: 1500,
        kernel_iface: None,
        vlan: None,
    });
    EngineConfig {
        eal_args,
        ports,
        workers,
        conn_capacity,
        expire_nodest_conn: false,
        expire_quiescent_template: false,
        new_sessions_per_second: 0,
        frag: Default::default(),
        sloppy_tcp: false,
        syn_proxy_auto: (
            rvs_dataplane::pipeline::SYN_PROXY_DEFAULT_RATE,
            rvs_dataplane::pipeline::SYN_PROXY_DEFAULT_FILL,
        ),
        // Pure polling unless the harness asks (`rvs-bench --idle-sleep-max-us`).
        idle_sleep_max_us: 0,
        syn_shed: true,
        mbufs,
        routes: Vec::new(),
        routes6: Vec::new(),
        lport_range: DEFAULT_PORT_RANGE,
        static_neighbours: (0..REAL_SERVERS)
            .map(|i| (real_server(i), real_server_mac(i)))
            .collect(),
        marks: Default::default(),
    }
}
