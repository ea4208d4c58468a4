//! One packet through the director: classify → find or schedule a session → plan its
//! forwarding → rewrite → egress port and next-hop MAC.
//!
//! Pure: it sees a [`PacketBuf`], never DPDK, so it is unit-tested on `Vec`s and
//! benchmarked alone. The worker loop ([`crate::engine`]) feeds it bursts of mbufs and
//! acts on what it hands back. Per packet there is no allocation, lock, syscall or log
//! line: side outputs (ARP requests to send, held packets released by an ARP reply, ICMP
//! errors the director originates, sync records) go into buffers of [`Core`] whose
//! capacity is reserved up front.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`Core`] (a worker's state), the configuration snapshot it adopts, its side outputs |
//! | [`counters`] | drop reasons, per-worker and per-server counters |
//! | `burst.rs` | [`Core::process_burst`]: the prefetching software pipeline and the established fast path |
//! | `general.rs` | the general path: every packet the fast path does not take |
//! | `frag.rs` | IP fragments forwarded without reassembly: the first decides, the rest follow its verdict |
//! | `cip.rs` | FULLNAT's client address: a session's PROXY header and TOA option, the sequence shift |
//! | `host.rs` | ARP and ICMP echo for the director's own addresses; ARP frames it originates |
//! | `ipv6.rs` | IPv6: neighbour discovery, ICMPv6 echo and errors, sessions with IPv6 ends in every mode (NAT64 included) |
//! | `probe.rs` | health checks of TUN servers through the VIP: the kernel's probes to a probe MAC, encapsulated |
//! | `synproxy.rs` | the SYN proxy: cookies for SYNs, sessions opened by valid ACKs, the real server's handshake, `auto`'s pressure |
//! | `replica.rs` | the sync master's records after a client packet, the standby's installation |
//!
//! Ownership (which worker handles a packet) is decided by [`crate::steer`]; how a
//! session's packet is rewritten by [`crate::forward::Plan`]. Both paths use them.

mod budget;
mod burst;
mod cip;
pub mod counters;
mod frag;
#[cfg(test)]
mod frag_tests;
mod general;
mod host;
mod ipv6;
mod ndtx;
mod pools;
mod probe;
mod replica;
mod synproxy;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;
#[cfg(test)]
mod tests_sync6;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::buf::PacketBuf;
use crate::conn::{ConnConfig, ConnTable, Session};
use crate::conn::{SyncConn, SyncRules};
use crate::flow::FwdMethod;
use crate::laddr::{LaddrPool, LocalEndpoint, DEFAULT_PORT_RANGE};
use crate::neigh::{NeighConfig, NeighTable};
use crate::route::RouteTable;
use crate::sched::CoreSched;
use crate::service::{self, ServiceKey};
use crate::wire::{self, Classified};

use self::budget::NewSessionBudget;
use self::burst::RING;
use self::host::{set_dst_mac, ConflictLog, IcmpBudget};

pub use self::burst::Emit;
pub use self::counters::{Counters, DestTraffic, DropReason, SyncCounters};
pub use self::host::{build_arp_request, build_gratuitous_arp, ArpConflict};
pub use self::ndtx::{build_neighbor_solicit, build_unsolicited_na, ND_FRAME_LEN};
pub use self::probe::{probe_mac, probe_target, probe_tunnels, PROBE_MAC_PREFIX};
pub use self::synproxy::{
    DEFAULT_FILL as SYN_PROXY_DEFAULT_FILL, DEFAULT_RATE as SYN_PROXY_DEFAULT_RATE,
    HELD_MAX as SYN_PROXY_HELD_MAX,
};

/// A random secret for worker `id`'s SYN cookies (from the OS's randomness, through
/// the standard library's hash keys).
fn cookie_secret(id: usize) -> [u64; 2] {
    use std::hash::BuildHasher;
    let s = std::collections::hash_map::RandomState::new();
    [s.hash_one(id), s.hash_one(!id)]
}

/// What an address owned by the director is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// A director address (DIP): answers ARP and ping.
    Dip,
    /// A virtual service address: answers ARP and ping; services are matched on it.
    Vip,
    /// A FULLNAT local address: answers ARP and ping; replies to it are FULLNAT replies.
    Lip,
}

/// One director port as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortNet {
    /// The port's MAC.
    pub mac: [u8; 6],
    /// L3 MTU (1500 by default).
    pub mtu: u16,
    /// The port's 802.1Q VLAN (`[[ports]] vlan`, 1..=4094): frames of this VID are
    /// accepted and every frame leaving the port is tagged with it. `None`: the port
    /// carries untagged frames only. A frame whose tag does not match its port is
    /// dropped as [`DropReason::Vlan`].
    pub vlan: Option<u16>,
}

/// The network half of a configuration snapshot: ports, owned addresses, routes and the
/// FULLNAT LIP pools. Immutable; workers read it through an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// Ports by rvs port index.
    pub ports: Vec<PortNet>,
    /// IPv4 addresses the director owns: what they are and on which port they live.
    pub local: HashMap<Ipv4Addr, (LocalKind, u16)>,
    /// IPv6 addresses the director owns (VIPs, DIPs, LIPs), as [`NetConfig::local`]:
    /// neighbour solicitations for them are answered, services matched on them.
    pub local6: HashMap<Ipv6Addr, (LocalKind, u16)>,
    /// The routing table (connected subnets, static routes, default).
    pub routes: RouteTable,
    /// FULLNAT local addresses per service (IPv4 or IPv6; an IPv6 service with IPv4
    /// LIPs is NAT64).
    pub laddrs: HashMap<ServiceKey, Vec<IpAddr>>,
    /// FULLNAT local port range (inclusive).
    pub lport_range: (u16, u16),
    /// Number of workers (port slices, client hash buckets).
    pub workers: usize,
    /// Per port: how its NIC spreads received packets over rx queues (RSS), when it does.
    /// FULLNAT prefers local ports whose replies land on the owner's own queue.
    pub rss: Vec<Option<crate::laddr::RssSteer>>,
    /// Standby director: ARP for VIPs, LIPs and `floating` addresses is not answered
    /// (the active director answers; see [`crate::sync`]).
    pub passive: bool,
    /// Former VIPs: addresses no service has any more, whose real servers are in the
    /// trash, so that their sessions may still run. Not answered (ARP, ping); packets to
    /// them are owned as requests to a VIP (the client's worker), so that they find their
    /// sessions.
    pub former_vips: Vec<Ipv4Addr>,
    /// Former IPv6 VIPs, as [`NetConfig::former_vips`].
    pub former_vips6: Vec<Ipv6Addr>,
    /// Port addresses that move with the active role (every port address after the
    /// first): answered and announced only while active, like VIPs.
    pub floating: Vec<Ipv4Addr>,
    /// IPv6 port addresses that move with the active role, as [`NetConfig::floating`]
    /// (announced with unsolicited neighbour advertisements).
    pub floating6: Vec<Ipv6Addr>,
    /// The firewall-mark rules a packet without a session is matched against before its
    /// service is looked up (`[[marks]]`).
    pub marks: crate::mark::MarkRules,
    /// The TUN real servers the host's health checks reach through a VIP, by (VIP, RIP),
    /// with their tunnels ([`probe_tunnels`]): a probe the kernel sends to such a
    /// server's probe MAC is encapsulated to it (see the `probe` module).
    pub probe_tunnels: HashMap<(Ipv4Addr, Ipv4Addr), crate::flow::Tunnel>,
    /// The global ACL (`rvsadm --add-blklst`/`--add-whtlst` without a service, `[acl]`):
    /// a packet that would open a session from a client it denies is dropped as
    /// [`DropReason::AclDeny`], before its service's ACL is looked at. Empty: no check.
    pub acl: Arc<crate::acl::Acl>,
    /// `[sessions] sloppy_tcp`: a TCP segment without RST and without a session may open
    /// one (see [`crate::conn::ConnConfig::sloppy_tcp`]); every snapshot carries it.
    pub sloppy_tcp: bool,
    /// The director is a member of an active/active sync group: a synced session of a
    /// service it does not have is refused ([`crate::conn::SyncRefuse::NoService`]) rather
    /// than installed without its server, as a kernel standby does.
    pub sync_group: bool,
}

impl NetConfig {
    /// An empty configuration for `workers` workers.
    pub fn new(workers: usize) -> NetConfig {
        NetConfig {
            lport_range: DEFAULT_PORT_RANGE,
            workers: workers.max(1),
            ..NetConfig::default()
        }
    }
}

/// A configuration snapshot: services and network. Workers adopt a new one between bursts.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Generation (increasing).
    pub generation: u64,
    /// Services and real servers.
    pub services: Arc<service::ServiceSet>,
    /// Ports, addresses, routes, LIP pools.
    pub net: Arc<NetConfig>,
}

/// What to do with a packet after [`Core::process_burst`].
#[derive(Debug)]
pub enum Out<P> {
    /// Transmit on this port (rewritten, MACs set).
    Tx(P, u16),
    /// Another worker owns it (its index): hand it over unchanged. (A `u32`, not a
    /// `usize`, keeps `Out<Mbuf>` at 16 bytes: returned in two registers, not memory.)
    Handoff(P, u32),
    /// Drop it and count the reason.
    Drop(P, DropReason),
    /// Done with it, nothing to count (e.g. an ARP reply that was learned).
    Consumed(P),
    /// Held until its next hop resolves (the ARP request is queued in
    /// [`Core::take_arp_requests`]), or by the SYN proxy until the real server's
    /// handshake completes (then sent from [`Core::take_released`]).
    Held,
}

/// A learned neighbour to share with the other workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighUpdate {
    /// The address (IPv4: from ARP; IPv6: from neighbour discovery).
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: [u8; 6],
}

/// Size of the scratch buffer for frames the director originates.
pub const SCRATCH_LEN: usize = 1600;
/// Capacity of each side-output queue per burst.
const SIDE_CAP: usize = 256;

/// A worker's state: its sessions, schedulers, LIP slices, neighbours and counters.
#[derive(Debug)]
pub struct Core<P> {
    id: usize,
    snap: Option<Snapshot>,
    conns: ConnTable,
    sched: CoreSched,
    laddrs: pools::LipPools,
    neigh: NeighTable<(P, u16)>,
    /// IPv6 neighbours (neighbour discovery).
    neigh6: NeighTable<(P, u16), Ipv6Addr>,
    arp_requests: Vec<(u16, Ipv4Addr)>,
    /// Neighbour solicitations to send: (port, target).
    ns_requests: Vec<(u16, Ipv6Addr)>,
    released: Vec<(P, u16)>,
    learned: Vec<NeighUpdate>,
    generated: Vec<(u16, usize)>,
    arp_conflicts: Vec<ArpConflict>,
    conflict_log: ConflictLog,
    icmp_budget: IcmpBudget,
    /// `[sessions] new_per_second`: what a packet opening a session draws from.
    new_budget: NewSessionBudget,
    /// The SYN proxy's cookie keys.
    cookies: crate::forward::synproxy::Cookies,
    /// The SYN proxy's `auto`: TCP SYNs per second, thresholds.
    pressure: self::synproxy::Pressure,
    /// The SYN proxy's kept client segments (SYN retries, data held during setup).
    held: self::synproxy::Held<P>,
    /// The worker cannot keep up (set by the worker loop): SYNs to SYN-proxied services
    /// are shed.
    overloaded: bool,
    scratch: [u8; SCRATCH_LEN],
    counters: Counters,
    traffic: Vec<(crate::service::DestId, DestTraffic)>,
    sync_rules: Option<SyncRules>,
    sync_out: Vec<SyncConn>,
    sync_stats: SyncCounters,
    /// [`Core::process_burst`]'s classifications ([`RING`] slots, reused).
    burst_cls: Vec<wire::Result<Classified>>,
    /// [`Core::process_burst`]'s IPv6 lane readings ([`RING`] slots, reused).
    burst_lanes6: Vec<Option<wire::V6Flow>>,
    /// TUN: the outer source address per egress port ([`tunnel_sources`]).
    tun_src: Vec<Ipv4Addr>,
    /// The IPv6 source per port ([`tunnel_sources6`]): ip6ip6 tunnels, neighbour
    /// solicitations, ICMPv6 errors.
    tun_src6: Vec<Ipv6Addr>,
    /// Some port of the snapshot has a `vlan`: the fast path then checks every frame's
    /// tag against its port (else only that it has none).
    vlans: bool,
    /// Some port of the snapshot has RSS ([`NetConfig::rss`]): a FULLNAT local port is
    /// then chosen for the queue its replies reach ([`general::pick_local`]).
    rss: bool,
    /// The fragment table (datagrams by source, destination, protocol and ID).
    frags: self::frag::Frags<P>,
    /// Fragments released beside the packet being processed ([`Core::take_frag_out`]).
    frag_out: Vec<Out<P>>,
    /// A first fragment is taking the general path as a whole packet would.
    frag_deciding: bool,
    /// The last outer identification of a TUN packet split in two.
    tun_ident: u16,
}

/// The outer source of TUN packets leaving each port: the port's own address (the
/// lowest that does not move with the active role, else the lowest), as the kernel
/// takes the preferred source of the route; `0.0.0.0` for a port without one.
fn tunnel_sources(net: &NetConfig) -> Vec<Ipv4Addr> {
    (0..net.ports.len())
        .map(|port| {
            net.local
                .iter()
                .filter(|(_, (k, p))| *k == LocalKind::Dip && usize::from(*p) == port)
                .map(|(a, _)| (net.floating.contains(a), *a))
                .min()
                .map_or(Ipv4Addr::UNSPECIFIED, |(_, a)| a)
        })
        .collect()
}

/// The IPv6 source of what leaves each port (ip6ip6 tunnels, solicitations, errors):
/// the port's own global address (the lowest that does not move with the active role,
/// else the lowest); `::` for a port without one.
fn tunnel_sources6(net: &NetConfig) -> Vec<Ipv6Addr> {
    (0..net.ports.len())
        .map(|port| {
            net.local6
                .iter()
                .filter(|(_, (k, p))| *k == LocalKind::Dip && usize::from(*p) == port)
                .map(|(a, _)| (net.floating6.contains(a), *a))
                .min()
                .map_or(Ipv6Addr::UNSPECIFIED, |(_, a)| a)
        })
        .collect()
}

impl<P: PacketBuf> Core<P> {
    /// Worker `id`'s state with a session table of `conn` settings.
    pub fn new(id: usize, conn: ConnConfig, neigh: NeighConfig) -> Core<P> {
        Core {
            id,
            snap: None,
            conns: ConnTable::new(conn),
            sched: CoreSched::new(0x5eed ^ id as u64),
            laddrs: pools::LipPools::default(),
            neigh: NeighTable::new(neigh),
            neigh6: NeighTable::new(neigh),
            arp_requests: Vec::with_capacity(SIDE_CAP),
            ns_requests: Vec::with_capacity(SIDE_CAP),
            released: Vec::with_capacity(SIDE_CAP),
            learned: Vec::with_capacity(SIDE_CAP),
            generated: Vec::with_capacity(SIDE_CAP),
            arp_conflicts: Vec::with_capacity(SIDE_CAP),
            conflict_log: ConflictLog::default(),
            icmp_budget: IcmpBudget::default(),
            new_budget: NewSessionBudget::default(),
            cookies: crate::forward::synproxy::Cookies::new(cookie_secret(id)),
            pressure: self::synproxy::Pressure::default(),
            held: self::synproxy::Held::default(),
            overloaded: false,
            scratch: [0; SCRATCH_LEN],
            counters: Counters::default(),
            traffic: Vec::new(),
            sync_rules: None,
            sync_out: Vec::with_capacity(SIDE_CAP),
            sync_stats: SyncCounters::default(),
            burst_cls: Vec::with_capacity(RING),
            burst_lanes6: Vec::with_capacity(RING),
            tun_src: Vec::new(),
            tun_src6: Vec::new(),
            vlans: false,
            rss: false,
            frags: crate::frag::FragTable::new(crate::frag::FragConfig::default()),
            frag_out: Vec::with_capacity(SIDE_CAP),
            frag_deciding: false,
            tun_ident: 0,
        }
    }

    /// Sets the new-session budget (`[sessions] new_per_second`): at most `per_second`
    /// sessions created per second by packets, one second's worth at once; above it a
    /// packet that would open a session is dropped as [`DropReason::NewSessionBudget`].
    /// 0 is no budget (the default). Packets of existing sessions are never charged.
    pub fn set_new_session_budget(&mut self, per_second: u32) {
        self.new_budget = NewSessionBudget::new(per_second);
    }

    /// This worker's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Adopts a configuration snapshot (between bursts). Scheduler state and counters of
    /// servers that remain carry over; LIP slices are kept for LIPs that remain (ports in
    /// use stay reserved) and created for new ones.
    pub fn adopt(&mut self, snap: Snapshot) {
        self.conns.adopt(&mut self.sched, snap.services.clone());
        let net = &snap.net;
        self.conns.set_sloppy_tcp(net.sloppy_tcp);
        let mut pools = HashMap::with_capacity(net.laddrs.len());
        let mut added = Vec::new();
        let mut old = std::mem::take(&mut self.laddrs).into_map();
        for (key, lips) in &net.laddrs {
            let mut pool = old
                .remove(key)
                .unwrap_or_else(|| LaddrPool::new(&[], net.lport_range, self.id, net.workers));
            added.extend(pool.set_addrs(lips).into_iter().map(|lip| (*key, lip)));
            pools.insert(*key, pool);
        }
        // A LIP in several pools: each pool's sessions hold ports the others do not
        // account, so their allocations ask the session table.
        let mut seen: HashMap<IpAddr, usize> = HashMap::new();
        for lips in net.laddrs.values() {
            for lip in lips {
                *seen.entry(*lip).or_default() += 1;
            }
        }
        for pool in pools.values_mut() {
            for (lip, _) in seen.iter().filter(|(_, n)| **n > 1) {
                pool.check_held(*lip);
            }
        }
        self.laddrs = pools::LipPools::new(pools, snap.services.services());
        if !added.is_empty() {
            self.reserve_held_ports(&added);
        }
        self.tun_src = tunnel_sources(net);
        self.tun_src6 = tunnel_sources6(net);
        self.vlans = net.ports.iter().any(|p| p.vlan.is_some());
        self.rss = net.rss.iter().any(Option::is_some);
        self.snap = Some(snap);
        // Traffic counters are indexed by the core's dest slots and remember whose they
        // are: a slot that now holds another server (one freed by a removed server's
        // last session and taken by a new one) starts from zero.
        let slots = self.conns.dests().slots();
        let vacant = (crate::service::DestId(u32::MAX), DestTraffic::default());
        self.traffic.resize(slots.len(), vacant);
        for (t, rt) in self.traffic.iter_mut().zip(slots) {
            if t.0 != rt.id {
                *t = (rt.id, DestTraffic::default());
            }
        }
    }

    /// The adopted snapshot.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snap.as_ref()
    }

    /// The session table.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// The session table, mutably (timeouts, sysctls).
    pub fn conns_mut(&mut self) -> &mut ConnTable {
        &mut self.conns
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The LIP pools of this worker.
    pub fn laddr_pools(&self) -> impl Iterator<Item = (&ServiceKey, &LaddrPool)> {
        self.laddrs.iter()
    }

    /// The neighbour cache.
    pub fn neigh(&self) -> &NeighTable<(P, u16)> {
        &self.neigh
    }

    /// ARP requests to send: (port, target address). Drained by the worker after a burst.
    pub fn take_arp_requests(&mut self) -> std::vec::Drain<'_, (u16, Ipv4Addr)> {
        self.arp_requests.drain(..)
    }

    /// Neighbour solicitations to send: (port, target address). Drained by the worker
    /// after a burst, as ARP requests are.
    pub fn take_ns_requests(&mut self) -> std::vec::Drain<'_, (u16, Ipv6Addr)> {
        self.ns_requests.drain(..)
    }

    /// The IPv6 neighbour cache.
    pub fn neigh6(&self) -> &NeighTable<(P, u16), Ipv6Addr> {
        &self.neigh6
    }

    /// Packets whose next hop resolved: ready to transmit on the port.
    pub fn take_released(&mut self) -> std::vec::Drain<'_, (P, u16)> {
        self.released.drain(..)
    }

    /// ARP conflicts to report (at most one per address per minute): the worker logs
    /// them after the burst.
    pub fn take_arp_conflicts(&mut self) -> std::vec::Drain<'_, ArpConflict> {
        self.arp_conflicts.drain(..)
    }

    /// Neighbours learned here, to share with the other workers.
    pub fn take_learned(&mut self) -> std::vec::Drain<'_, NeighUpdate> {
        self.learned.drain(..)
    }

    /// Frames the director originated (in the scratch buffer, one at a time): the tests'
    /// packet-by-packet reference takes them after each packet
    /// ([`Core::process_burst`] hands them out as [`Emit::Generated`]).
    #[cfg(any(test, feature = "reference"))]
    pub fn take_generated(&mut self) -> Option<(u16, usize)> {
        self.generated.pop()
    }

    /// The scratch buffer holding the last originated frame.
    #[cfg(any(test, feature = "reference"))]
    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }

    /// Installs a neighbour that never ages (see [`NeighTable::add_static`]).
    pub fn add_static_neighbour(&mut self, ip: IpAddr, mac: [u8; 6]) {
        match ip {
            IpAddr::V4(a) => self.neigh.add_static(a, mac),
            IpAddr::V6(a) => self.neigh6.add_static(a, mac),
        }
    }

    /// Learns a neighbour another worker resolved; releases packets held for it.
    pub fn learn_neighbour(&mut self, u: NeighUpdate, now_ms: u64) {
        let released = &mut self.released;
        let release = |(mut p, port): (P, u16), mac| {
            set_dst_mac(&mut p, mac);
            released.push((p, port));
        };
        match u.ip {
            IpAddr::V4(a) => self.neigh.learn(a, u.mac, now_ms, release),
            IpAddr::V6(a) => self.neigh6.learn(a, u.mac, now_ms, release),
        };
    }

    /// After a LIP joined a pool (`added`: service and LIP): ports that live FULLNAT
    /// sessions of the service hold on that LIP (sessions from before the LIP left the
    /// pool, or synced ones) are reserved in its new slice, so that they are not handed
    /// out again and return to the slice when their sessions expire. A live session on
    /// the LIP that cannot be reserved so (one of another service, or of a service no
    /// longer configured) makes the new slices of that LIP check every port against the
    /// session table ([`LaddrPool::check_held`]). A walk of the session table, on a
    /// configuration change only.
    fn reserve_held_ports(&mut self, added: &[(ServiceKey, IpAddr)]) {
        let mut unaccounted: Vec<IpAddr> = Vec::new();
        for (_, s) in self.conns.iter() {
            let Some((r, ep)) = local_endpoint(s) else {
                continue;
            };
            if !added.iter().any(|(_, lip)| *lip == ep.addr) {
                continue;
            }
            let k = pool_key(&self.laddrs, r);
            let reserved = match k.filter(|k| added.contains(&(*k, ep.addr))) {
                Some(k) => self.laddrs.get_mut(&k).is_some_and(|p| p.reserve(ep)),
                None => false,
            };
            if !reserved && !unaccounted.contains(&ep.addr) {
                unaccounted.push(ep.addr);
            }
        }
        for (k, lip) in added {
            if unaccounted.contains(lip) {
                if let Some(pool) = self.laddrs.get_mut(k) {
                    pool.check_held(*lip);
                }
            }
        }
    }

    /// Expires sessions and ages neighbours: the slow path, called every few
    /// milliseconds. Ports of expired FULLNAT sessions return to their slices; held
    /// packets of unresolved neighbours go to `drop_held`. The SYN proxy's timers run
    /// here (SYNs sent again to silent servers, clients reset: in
    /// [`Core::take_released`]).
    pub fn tick(&mut self, now_ms: u64, mut drop_held: impl FnMut(P)) -> usize {
        let laddrs = &mut self.laddrs;
        let (held, counters) = (&mut self.held, &mut self.counters);
        let n = self.conns.expire(now_ms, |id, s| {
            if let Some((r, ep)) = local_endpoint(s) {
                if let Some(pool) = pool_of(laddrs, r) {
                    pool.release(ep);
                }
            }
            if held.len() > 0 {
                Self::held_expired(held, counters, id);
            }
        });
        self.syn_proxy_tick(now_ms);
        let mut dropped = 0;
        self.neigh.age(now_ms, |(p, _)| {
            dropped += 1;
            drop_held(p)
        });
        self.neigh6.age(now_ms, |(p, _)| {
            dropped += 1;
            drop_held(p)
        });
        self.counters.drops[DropReason::Unresolved.index()] += dropped;
        self.frag_tick(now_ms, &mut drop_held);
        n
    }
}

/// The addresses the active director announces with gratuitous ARP: VIPs, LIPs and
/// floating port addresses, with their ports.
pub fn announced_addresses(net: &NetConfig) -> Vec<(u16, Ipv4Addr)> {
    let mut v: Vec<(u16, Ipv4Addr)> = net
        .local
        .iter()
        .filter(|(a, (k, _))| *k != LocalKind::Dip || net.floating.contains(a))
        .map(|(a, (_, p))| (*p, *a))
        .collect();
    v.sort();
    v
}

/// The IPv6 addresses the active director announces with unsolicited neighbour
/// advertisements: IPv6 VIPs, LIPs and floating port addresses, with their ports.
pub fn announced_addresses6(net: &NetConfig) -> Vec<(u16, Ipv6Addr)> {
    let mut v: Vec<(u16, Ipv6Addr)> = net
        .local6
        .iter()
        .filter(|(a, (k, _))| *k != LocalKind::Dip || net.floating6.contains(a))
        .map(|(a, (_, p))| (*p, *a))
        .collect();
    v.sort();
    v
}

/// What a FULLNAT session's LIP pool is found by when only the session is at hand (its
/// expiry, a reservation, a synced record: [`pool_key`]): the firewall mark its first
/// packet had (0: none) and its address service's key. At creation the pool is that of
/// the service that scheduled it ([`general::pick_local`]), the one this finds again.
#[derive(Clone, Copy, Debug)]
struct PoolRef {
    fwmark: u32,
    key: ServiceKey,
}

impl PoolRef {
    /// The pool key of the fwmark service of this mark (none without a mark).
    fn fwmark_key(&self) -> Option<ServiceKey> {
        match (self.fwmark, self.key) {
            (0, _) => None,
            (mark, ServiceKey::Addr { addr, .. }) => Some(ServiceKey::Fwmark {
                v6: !addr.is_v4(),
                mark,
            }),
            _ => None,
        }
    }
}

/// The pool reference of a FULLNAT session and its local endpoint; `None` for other
/// sessions and templates.
fn local_endpoint(s: &Session) -> Option<(PoolRef, LocalEndpoint)> {
    if s.fwd() != FwdMethod::FullNat || s.is_template() {
        return None;
    }
    let addr = s.laddr().to_ip();
    let key = ServiceKey::Addr {
        proto: s.proto(),
        addr: s.vaddr(),
        port: s.vport(),
    };
    let fwmark = s.fwmark();
    Some((
        PoolRef { fwmark, key },
        LocalEndpoint {
            addr,
            port: s.lport(),
        },
    ))
}

/// The key of the LIP pool of a session's service, in the order the service lookup goes
/// (`ip_vs_service_find`): the fwmark service of the session's mark, else its address
/// service, else the port-0 service of that address.
fn pool_key(laddrs: &pools::LipPools, r: PoolRef) -> Option<ServiceKey> {
    if let Some(k) = r.fwmark_key().filter(|k| laddrs.contains_key(k)) {
        return Some(k);
    }
    laddrs.pool_key(r.key)
}

/// The LIP pool of a session's service (see [`pool_key`]).
fn pool_of(laddrs: &mut pools::LipPools, r: PoolRef) -> Option<&mut LaddrPool> {
    let k = pool_key(laddrs, r)?;
    laddrs.get_mut(&k)
}

/// The key of the port-0 service of an address service's address, whose LIP pool the
/// service uses when it has none of its own ([`pool_key`]).
fn port0_key(key: ServiceKey) -> Option<ServiceKey> {
    match key {
        ServiceKey::Addr { proto, addr, .. } => Some(ServiceKey::Addr {
            proto,
            addr,
            port: 0,
        }),
        _ => None,
    }
}
