//! The benchmark's network: addresses, flows and their owning workers, the service table
//! and the engine configuration, built the way `rvsd`'s DPDK backend builds them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rvs_dataplane::engine::{EngineConfig, PortSpec};
use rvs_dataplane::flow::{Addr, FwdMethod, Proto};
use rvs_dataplane::laddr::DEFAULT_PORT_RANGE;
use rvs_dataplane::service::{
    DestConfig, SchedKind, ServiceConfig, ServiceError, ServiceKey, ServiceSet, ServiceTable,
};
use rvs_dataplane::steer::{owner_of_client_ip, owner_of_port};

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

/// The address family of the benchmark's network (`rvs-bench --ipv6`, `--families`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// IPv4 everywhere (the default).
    #[default]
    #[serde(rename = "ipv4")]
    V4,
    /// IPv6 everywhere: VIP, clients, real servers, DIPs and LIPs.
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    /// Parses `4`, `ipv4`, `6`, `ipv6` (any case).
    pub fn parse(s: &str) -> Option<Family> {
        match s.to_ascii_lowercase().as_str() {
            "4" | "ipv4" | "v4" => Some(Family::V4),
            "6" | "ipv6" | "v6" => Some(Family::V6),
            _ => None,
        }
    }

    /// `ipv4` or `ipv6`.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// `4` or `6` (what `--families` takes).
    pub fn digit(self) -> &'static str {
        match self {
            Family::V4 => "4",
            Family::V6 => "6",
        }
    }

    /// Bytes an IP header of this family adds over IPv4's: the IPv6 frame carrying the
    /// payload of an IPv4 frame of size `n` is `n + extra_header()` bytes.
    pub fn extra_header(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 20,
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

/// The IPv6 virtual service address.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// IPv6 clients live in 2001:db8:64::/64 (the client number in the low 32 bits).
pub const CLIENT_BASE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0);
/// Director IPv6 address on the client-side port.
pub const DIP_CLIENT6: (Ipv6Addr, u8) = (
    Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0xffff, 0, 0, 0xfe),
    64,
);
/// Director IPv6 address on the server-side port (real servers are 2001:db8:2::1..).
pub const DIP_SERVER6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0xfe), 64);
/// First FULLNAT IPv6 local address (2001:db8:3::1, 2001:db8:3::2, ...).
pub const LIP_BASE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);

/// The virtual service address of `family`.
pub fn vip(family: Family) -> IpAddr {
    match family {
        Family::V4 => VIP.into(),
        Family::V6 => VIP6.into(),
    }
}

/// Real server `i` (0-based).
pub fn real_server(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 2, 0, 1 + i)
}

/// IPv6 real server `i` (0-based): 2001:db8:2::1, 2001:db8:2::2, ...
pub fn real_server6(i: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1 + u16::from(i))
}

/// Real server `i` of `family`.
pub fn real_server_of(family: Family, i: u8) -> IpAddr {
    match family {
        Family::V4 => real_server(i).into(),
        Family::V6 => real_server6(i).into(),
    }
}

/// The MAC the benchmark gives real server `i` (a static neighbour: no ARP).
pub fn real_server_mac(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 2, 0, 1 + i]
}

/// Flow number `i` of a set starting at `offset` (so the new-connection set does not
/// overlap the established set): the client address varies fastest, so the owner hash
/// spreads any prefix of the set evenly over the workers.
pub fn flow(i: u64, offset: u64) -> Flow {
    flow_of(Family::V4, i, offset)
}

/// [`flow`] in `family`: the same client numbers and ports, the client number in the
/// last 32 bits of an address of 2001:db8:64::/64 for IPv6.
pub fn flow_of(family: Family, i: u64, offset: u64) -> Flow {
    let n = i + offset;
    let a = (n % u64::from(CLIENT_ADDRS)) as u32;
    let p = n / u64::from(CLIENT_ADDRS);
    let caddr = match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::from(CLIENT_BASE) + a)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(u128::from(CLIENT_BASE6) + u128::from(a))),
    };
    Flow {
        caddr,
        cport: 1024u16.wrapping_add(p as u16),
        vaddr: vip(family),
        vport: VPORT,
    }
}

/// Most flows one client address may carry (client ports 1024..65535).
pub const MAX_FLOWS: u64 = CLIENT_ADDRS as u64 * 64_000;

/// The worker that owns a request of `flow` when `workers` workers run
/// (`steer::owner_of_client_ip`, as the engine computes it for either family).
pub fn owner(flow: &Flow, workers: usize) -> usize {
    owner_of_client_ip(flow.caddr, workers)
}

/// Splits flows `0..n` (from `offset`) by owning worker.
pub fn partition(n: u64, offset: u64, workers: usize) -> Vec<Vec<Flow>> {
    partition_of(Family::V4, n, offset, workers)
}

/// [`partition`] of the flows of `family` ([`flow_of`]).
pub fn partition_of(family: Family, n: u64, offset: u64, workers: usize) -> Vec<Vec<Flow>> {
    let mut out: Vec<Vec<Flow>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
    for i in 0..n {
        let f = flow_of(family, i, offset);
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

/// LIP number `i` of `family` (2001:db8:3::1 + `i` for IPv6).
pub fn lip_of(family: Family, i: u32) -> IpAddr {
    match family {
        Family::V4 => lip(i).into(),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(u128::from(LIP_BASE6) + u128::from(i))),
    }
}

/// The port of the SYN-proxied service `synflood-mixed` floods (on the same VIP).
pub const FLOOD_VPORT: u16 = 81;

/// The service key of the benchmark's virtual service.
pub fn service_key(l4: L4) -> ServiceKey {
    service_key_of(Family::V4, l4)
}

/// The service key of the benchmark's virtual service in `family`.
pub fn service_key_of(family: Family, l4: L4) -> ServiceKey {
    ServiceKey::Addr {
        proto: match l4 {
            L4::Tcp => Proto::Tcp,
            L4::Udp => Proto::Udp,
        },
        addr: Addr::from(vip(family)),
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

/// [`services`] in `family`: VIP, real servers and LIPs all of that family.
pub fn services_of(
    family: Family,
    mode: Mode,
    l4: L4,
    lips: u32,
    flags: u32,
) -> Result<Published, ServiceError> {
    services_in(family, mode, l4, lips, flags, None)
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
    services_in(Family::V4, mode, l4, lips, flags, flood)
}

fn services_in(
    family: Family,
    mode: Mode,
    l4: L4,
    lips: u32,
    flags: u32,
    flood: Option<u32>,
) -> Result<Published, ServiceError> {
    let key = service_key_of(family, l4);
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
                DestConfig::new(Addr::from(real_server_of(family, i)), rport, mode.fwd()).weight(1),
            )?;
        }
        if mode == Mode::Fullnat {
            laddrs.insert(key, (0..lips).map(|i| lip_of(family, i)).collect());
        }
    }
    Ok(Published {
        services: table.snapshot(),
        vips: vec![vip(family)],
        laddrs,
    })
}

/// The engine's ports: 0 faces the clients (the traffic source), 1 the real servers (the
/// sink), 2 the warm-up port through which the harness injects each flow's first packet.
/// The ports have the addresses of both families ([`DIP_CLIENT`], [`DIP_CLIENT6`], ...)
/// and the real servers of both are static neighbours.
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
        addrs6: vec![DIP_CLIENT6],
        mtu: 1500,
        kernel_iface: None,
        vlan: None,
    }];
    match server_dev {
        Some(dev) => ports.push(PortSpec {
            name: "servers".into(),
            devargs: dev.to_owned(),
            addrs: vec![DIP_SERVER],
            addrs6: vec![DIP_SERVER6],
            mtu: 1500,
            kernel_iface: None,
            vlan: None,
        }),
        // One-armed: real servers on the client port.
        None => {
            ports[0].addrs.push(DIP_SERVER);
            ports[0].addrs6.push(DIP_SERVER6);
        }
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
        mbufs,
        static_neighbours: (0..REAL_SERVERS)
            .flat_map(|i| {
                [Family::V4, Family::V6].map(|f| (real_server_of(f, i), real_server_mac(i)))
            })
            .collect(),
        // Pure polling (the default) unless the harness asks (`rvs-bench
        // --idle-sleep-max-us`).
        ..EngineConfig::new(eal_args, ports, workers, conn_capacity)
    }
}
