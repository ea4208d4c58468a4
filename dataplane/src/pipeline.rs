//! One packet through the director: classify → find or schedule a session → rewrite by
//! mode → egress port and next-hop MAC.
//!
//! Pure: it sees a [`PacketBuf`], never DPDK, so it is unit-tested on `Vec`s and
//! benchmarked alone. The worker loop (`worker`, DPDK) feeds it mbufs and acts on the
//! [`Out`] it returns. Per packet there is no allocation, lock, syscall or log line: side
//! outputs (ARP requests to send, held packets released by an ARP reply, ICMP errors the
//! director originates) go into buffers of [`Core`] whose capacity is reserved up front.
//!
//! # Ownership
//! Every session has one owning worker, which alone touches it ([`Core::owner_of`]):
//! - a FULLNAT reply (to a LIP) belongs to the worker owning its destination port
//!   ([`crate::laddr::owner_of_port`]); the owner allocated that port from its own slice;
//! - everything else belongs to `hash(client address)`: the source of a request, the
//!   destination of a NAT reply. The client *address* (not port) is hashed so that a
//!   persistence template, which pins a client address, lives on the same worker as all
//!   of that client's sessions.
//!
//! A packet received by another worker is returned as [`Out::Handoff`]; the worker loop
//! passes it to the owner over a ring.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::buf::PacketBuf;
use crate::conn::SyncRefuse;
use crate::conn::{
    ConnConfig, ConnId, ConnTable, Direction, LookupHint, PacketMeta, Refuse, Scheduled, CADDR,
    DADDR, LADDR, VADDR,
};
use crate::conn::{SyncConn, SyncRules};
use crate::flow::{Addr, FlowKey, FwdMethod, Proto, TcpFlags};
use crate::forward::{self, icmp, MacRewrite, Params, Verdict};
use crate::laddr::{owner_of_port, LaddrPool, LocalEndpoint, DEFAULT_PORT_RANGE};
use crate::neigh::{Lookup, NeighConfig, NeighTable};
use crate::route::{NextHop, RouteTable};
use crate::sched::CoreSched;
use crate::service::{self, RealServer, ServiceKey};
use crate::wire::{
    self, classify, ArpOperation, ArpPacket, ArpRepr, ChecksumMode, Classified, EthernetAddress,
    IpMeta, IpProtocol, IpVersion, V4Flow,
};

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
    /// Who fills checksums on transmit from this port.
    pub csum: ChecksumMode,
}

/// The network half of a configuration snapshot: ports, owned addresses, routes and the
/// FULLNAT LIP pools. Immutable; workers read it through an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// Ports by rvs port index.
    pub ports: Vec<PortNet>,
    /// Addresses the director owns: what they are and on which port they live.
    pub local: HashMap<Ipv4Addr, (LocalKind, u16)>,
    /// The routing table (connected subnets, static routes, default).
    pub routes: RouteTable,
    /// FULLNAT local addresses per service.
    pub laddrs: HashMap<ServiceKey, Vec<Ipv4Addr>>,
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
    /// Port addresses that move with the active role (every port address after the
    /// first): answered and announced only while active, like VIPs.
    pub floating: Vec<Ipv4Addr>,
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

/// Why a packet was dropped. Every reason has a counter slot ([`DropReason::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The frame failed validation (truncated, bad IHL, bad length, bad checksum,
    /// fragment, …): the wire layer's reason.
    Malformed(wire::Error),
    /// The rewrite refused the packet (TTL expired, oversize, no headroom, …).
    Rewrite(wire::Error),
    /// Neither for a service, nor for the director, nor a reply of a session.
    NotForUs,
    /// TCP without SYN and no session.
    NoSession,
    /// The session table is full.
    TableFull,
    /// No real server available (IPVS answers ICMP port-unreachable).
    NoDest,
    /// FULLNAT: no local address/port free.
    NoLocalAddr,
    /// The session's real server was removed.
    DestUnavailable,
    /// No route to the next hop.
    NoRoute,
    /// The next hop does not resolve: table full or hold queue full.
    Unresolved,
    /// Not IPv4 (IPv6 forwarding is not there yet), or another EtherType.
    Unsupported,
}

impl DropReason {
    /// Slots in a counter array: one per wire error twice (malformed, rewrite) plus the
    /// other reasons.
    pub const COUNT: usize = 2 * wire::Error::COUNT + 9;

    /// The counter slot.
    pub fn index(self) -> usize {
        let w = wire::Error::COUNT;
        match self {
            DropReason::Malformed(e) => e.index(),
            DropReason::Rewrite(e) => w + e.index(),
            DropReason::NotForUs => 2 * w,
            DropReason::NoSession => 2 * w + 1,
            DropReason::TableFull => 2 * w + 2,
            DropReason::NoDest => 2 * w + 3,
            DropReason::NoLocalAddr => 2 * w + 4,
            DropReason::DestUnavailable => 2 * w + 5,
            DropReason::NoRoute => 2 * w + 6,
            DropReason::Unresolved => 2 * w + 7,
            DropReason::Unsupported => 2 * w + 8,
        }
    }

    /// The reason of a counter slot (inverse of [`DropReason::index`]).
    pub fn from_index(i: usize) -> Option<DropReason> {
        let w = wire::Error::COUNT;
        Some(match i {
            i if i < w => DropReason::Malformed(wire::Error::ALL[i]),
            i if i < 2 * w => DropReason::Rewrite(wire::Error::ALL[i - w]),
            i => match i - 2 * w {
                0 => DropReason::NotForUs,
                1 => DropReason::NoSession,
                2 => DropReason::TableFull,
                3 => DropReason::NoDest,
                4 => DropReason::NoLocalAddr,
                5 => DropReason::DestUnavailable,
                6 => DropReason::NoRoute,
                7 => DropReason::Unresolved,
                8 => DropReason::Unsupported,
                _ => return None,
            },
        })
    }

    /// A stable name for listings, e.g. `malformed:truncated`.
    pub fn name(self) -> String {
        match self {
            DropReason::Malformed(e) => format!("malformed:{}", e.as_str()),
            DropReason::Rewrite(e) => format!("rewrite:{}", e.as_str()),
            DropReason::NotForUs => "not-for-us".into(),
            DropReason::NoSession => "no-session".into(),
            DropReason::TableFull => "table-full".into(),
            DropReason::NoDest => "no-dest".into(),
            DropReason::NoLocalAddr => "no-laddr".into(),
            DropReason::DestUnavailable => "dest-unavailable".into(),
            DropReason::NoRoute => "no-route".into(),
            DropReason::Unresolved => "unresolved".into(),
            DropReason::Unsupported => "unsupported".into(),
        }
    }
}

/// What to do with a packet after [`Core::process`].
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
    /// [`Core::take_arp_requests`]).
    Held,
}

/// Per-worker counters (only the owning worker writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Packets processed by this worker (after handoff).
    pub packets: u64,
    /// Packets forwarded toward real servers (client → RS).
    pub in_packets: u64,
    /// Bytes of those.
    pub in_bytes: u64,
    /// Replies forwarded toward clients (RS → client, NAT/FULLNAT).
    pub out_packets: u64,
    /// Bytes of those.
    pub out_bytes: u64,
    /// Packets handed to other workers.
    pub handoff_out: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// ICMP errors about sessions translated.
    pub icmp_translated: u64,
    /// ICMP fragmentation-needed errors originated (TUN).
    pub frag_needed_sent: u64,
    /// Drops by reason ([`DropReason::index`]).
    pub drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            packets: 0,
            in_packets: 0,
            in_bytes: 0,
            out_packets: 0,
            out_bytes: 0,
            handoff_out: 0,
            arp_replies: 0,
            echo_replies: 0,
            icmp_translated: 0,
            frag_needed_sent: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Total drops.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops of one reason.
    pub fn drops_of(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }
}

/// Traffic of one real server on one worker (ipvsadm's --stats columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestTraffic {
    /// Sessions scheduled to it.
    pub conns: u64,
    /// Packets client -> server.
    pub inpkts: u64,
    /// Packets server -> client (seen by the director: NAT, FULLNAT).
    pub outpkts: u64,
    /// Bytes client -> server.
    pub inbytes: u64,
    /// Bytes server -> client.
    pub outbytes: u64,
}

/// A learned neighbour to share with the other workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighUpdate {
    /// The address.
    pub ip: Ipv4Addr,
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
    laddrs: HashMap<ServiceKey, LaddrPool>,
    neigh: NeighTable<(P, u16)>,
    arp_requests: Vec<(u16, Ipv4Addr)>,
    released: Vec<(P, u16)>,
    learned: Vec<NeighUpdate>,
    generated: Vec<(u16, usize)>,
    scratch: [u8; SCRATCH_LEN],
    counters: Counters,
    traffic: Vec<DestTraffic>,
    sync_rules: Option<SyncRules>,
    sync_out: Vec<SyncConn>,
    sync_stats: SyncCounters,
    /// [`Core::process_burst`]'s classifications ([`RING`] slots, reused).
    burst_cls: Vec<wire::Result<Classified>>,
    /// TUN: the outer source address per egress port ([`tunnel_sources`]).
    tun_src: Vec<Ipv4Addr>,
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

/// Per-worker connection-sync counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Records emitted for the sync thread (master).
    pub emitted: u64,
    /// Records lost because the per-burst buffer or the queue to the sync thread was full.
    pub dropped: u64,
    /// Sessions installed from the standby's sync messages.
    pub installed: u64,
    /// Existing sessions updated from sync messages.
    pub updated: u64,
    /// Synced records refused (bad protocol/state, table full, local port busy).
    pub refused: u64,
}

/// The session tuple of a classified IPv4 TCP or UDP packet.
#[inline]
fn flow_key(meta: &IpMeta) -> Option<FlowKey> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (meta.tuple.src.addr, meta.tuple.dst.addr) else {
        return None;
    };
    let proto = match meta.tuple.protocol {
        IpProtocol::TCP => Proto::Tcp,
        IpProtocol::UDP => Proto::Udp,
        _ => return None,
    };
    Some(FlowKey {
        proto,
        saddr: Addr::from(IpAddr::V4(src)),
        daddr: Addr::from(IpAddr::V4(dst)),
        sport: meta.tuple.src.port,
        dport: meta.tuple.dst.port,
    })
}

/// The session tuple of an IPv4 TCP or UDP packet read by [`wire::classify_v4_flow`]: the
/// same as [`flow_key`] of its classification.
#[inline(always)]
fn v4_flow_key(v: &V4Flow) -> FlowKey {
    FlowKey {
        proto: if v.udp { Proto::Udp } else { Proto::Tcp },
        saddr: Addr::v4(v.src[0], v.src[1], v.src[2], v.src[3]),
        daddr: Addr::v4(v.dst[0], v.dst[1], v.dst[2], v.dst[3]),
        sport: v.sport,
        dport: v.dport,
    }
}

/// A packet's session tuple in [`Core::process_burst`]: its hash, the index entry its
/// session prefetch saw, and the lane's reading of the packet when it has one (the packet
/// is then not classified unless it leaves the fast path).
#[derive(Clone, Copy)]
struct Flow {
    hash: u64,
    key: FlowKey,
    hint: Option<LookupHint>,
    v4: Option<V4Flow>,
}

/// Prefetch distance of [`Core::process_burst`], in packets: how far the bucket prefetch
/// runs ahead of the session prefetch, and that ahead of the processing. About twice
/// the memory latency of this machine (~180 ns) in packets at full speed.
const AHEAD: usize = 8;

/// Slots for the packets in flight in [`Core::process_burst`] (at least `2 * AHEAD + 1`).
const RING: usize = 32;
const _: () = assert!(RING > 2 * AHEAD);

/// The outcome of [`Core::fast_path`].
enum Fast {
    /// Rewritten: transmit on this port.
    Tx(u16),
    /// The session's packet, refused by the rewrite (after its state transition).
    Drop(DropReason),
    /// Not a case of the fast path; nothing was changed.
    Slow,
}

/// What [`Core::process_burst`] hands back, packet by packet.
#[derive(Debug)]
pub enum Emit<'a, P> {
    /// A packet's verdict, as [`Core::process`] returns it.
    Packet(Out<P>),
    /// A frame the director originated while processing the packet before (an ICMP
    /// fragmentation-needed error): send it on the port.
    Generated(u16, &'a [u8]),
}

impl<P: PacketBuf> Core<P> {
    /// Worker `id`'s state with a session table of `conn` settings.
    pub fn new(id: usize, conn: ConnConfig, neigh: NeighConfig) -> Core<P> {
        Core {
            id,
            snap: None,
            conns: ConnTable::new(conn),
            sched: CoreSched::new(0x5eed ^ id as u64),
            laddrs: HashMap::new(),
            neigh: NeighTable::new(neigh),
            arp_requests: Vec::with_capacity(SIDE_CAP),
            released: Vec::with_capacity(SIDE_CAP),
            learned: Vec::with_capacity(SIDE_CAP),
            generated: Vec::with_capacity(SIDE_CAP),
            scratch: [0; SCRATCH_LEN],
            counters: Counters::default(),
            traffic: Vec::new(),
            sync_rules: None,
            sync_out: Vec::with_capacity(SIDE_CAP),
            sync_stats: SyncCounters::default(),
            burst_cls: Vec::with_capacity(RING),
            tun_src: Vec::new(),
        }
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
        let mut pools = HashMap::with_capacity(net.laddrs.len());
        for (key, lips) in &net.laddrs {
            let same = self
                .laddrs
                .get(key)
                .is_some_and(|p| p.addrs().eq(lips.iter().copied()));
            let pool = if same { self.laddrs.remove(key) } else { None };
            let pool =
                pool.unwrap_or_else(|| LaddrPool::new(lips, net.lport_range, self.id, net.workers));
            pools.insert(*key, pool);
        }
        self.laddrs = pools;
        self.tun_src = tunnel_sources(net);
        self.snap = Some(snap);
        // Traffic counters are indexed by the core's dest slots; a slot freed by a removed
        // server and reused by a new one starts from zero.
        let slots = self.conns.dests().slots();
        self.traffic.resize(slots.len(), DestTraffic::default());
        for (t, rt) in self.traffic.iter_mut().zip(slots) {
            if rt.id == crate::service::DestId(u32::MAX) {
                *t = DestTraffic::default();
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

    /// Counts a drop decided outside [`Core::process`] (e.g. a full tx queue).
    pub fn count_drop(&mut self, r: DropReason) {
        self.counters.drops[r.index()] += 1;
    }

    /// Counts a packet handed to another worker.
    pub fn count_handoff(&mut self) {
        self.counters.handoff_out += 1;
    }

    /// Per-server traffic: (server id, traffic) for every server this worker knows.
    pub fn dest_traffic(&self) -> impl Iterator<Item = (crate::service::DestId, DestTraffic)> + '_ {
        self.conns
            .dests()
            .slots()
            .iter()
            .zip(self.traffic.iter())
            .filter(|(rt, _)| rt.id != crate::service::DestId(u32::MAX))
            .map(|(rt, t)| (rt.id, *t))
    }

    fn traffic_of(&mut self, id: ConnId) -> Option<&mut DestTraffic> {
        let slot = self.conns.dest_slot(id)?;
        self.traffic.get_mut(slot as usize)
    }

    /// Counts a forwarded packet of `len` bytes of session `id`: the worker's in/out
    /// counters and its real server's traffic.
    #[inline]
    fn count_forwarded(&mut self, id: ConnId, dir: Direction, len: u64) {
        let input = dir == Direction::Input;
        if input {
            self.counters.in_packets += 1;
            self.counters.in_bytes += len;
        } else {
            self.counters.out_packets += 1;
            self.counters.out_bytes += len;
        }
        if let Some(t) = self.traffic_of(id) {
            if input {
                t.inpkts += 1;
                t.inbytes += len;
            } else {
                t.outpkts += 1;
                t.outbytes += len;
            }
        }
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

    /// Packets whose next hop resolved: ready to transmit on the port.
    pub fn take_released(&mut self) -> std::vec::Drain<'_, (P, u16)> {
        self.released.drain(..)
    }

    /// Neighbours learned here, to share with the other workers.
    pub fn take_learned(&mut self) -> std::vec::Drain<'_, NeighUpdate> {
        self.learned.drain(..)
    }

    /// Frames the director originated (in the scratch buffer, one at a time): the worker
    /// calls this after each packet and copies `scratch()[..len]` out for port `port`.
    pub fn take_generated(&mut self) -> Option<(u16, usize)> {
        self.generated.pop()
    }

    /// The scratch buffer holding the last originated frame.
    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }

    /// Installs a neighbour that never ages (see [`NeighTable::add_static`]).
    pub fn add_static_neighbour(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        self.neigh.add_static(ip, mac);
    }

    /// Learns a neighbour another worker resolved; releases packets held for it.
    pub fn learn_neighbour(&mut self, u: NeighUpdate, now_ms: u64) {
        let released = &mut self.released;
        self.neigh.learn(u.ip, u.mac, now_ms, |(mut p, port), mac| {
            set_dst_mac(&mut p, mac);
            released.push((p, port));
        });
    }

    /// Expires sessions and ages neighbours: the slow path, called every few
    /// milliseconds. Ports of expired FULLNAT sessions return to their slices; held
    /// packets of unresolved neighbours go to `drop_held`.
    pub fn tick(&mut self, now_ms: u64, mut drop_held: impl FnMut(P)) -> usize {
        let laddrs = &mut self.laddrs;
        let n = self.conns.expire(now_ms, |_, s| {
            if s.fwd() == FwdMethod::FullNat && !s.is_template() {
                if let IpAddr::V4(lip) = s.laddr().to_ip() {
                    let ep = LocalEndpoint {
                        addr: lip,
                        port: s.lport(),
                    };
                    for pool in laddrs.values_mut() {
                        if pool.contains(lip) {
                            pool.release(ep);
                            break;
                        }
                    }
                }
            }
        });
        let mut dropped = 0;
        self.neigh.age(now_ms, |(p, _)| {
            dropped += 1;
            drop_held(p)
        });
        self.counters.drops[DropReason::Unresolved.index()] += dropped;
        n
    }

    /// Turns this worker into a sync master (`Some(rules)`) or stops emitting (`None`).
    pub fn set_sync_master(&mut self, rules: Option<SyncRules>) {
        self.sync_rules = rules;
    }

    /// Sync records emitted since the last call (master); the worker moves them into its
    /// queue to the sync thread after each burst.
    pub fn take_sync(&mut self) -> std::vec::Drain<'_, SyncConn> {
        self.sync_out.drain(..)
    }

    /// Counts sync records the worker could not queue.
    pub fn count_sync_dropped(&mut self, n: u64) {
        self.sync_stats.dropped += n;
    }

    /// This worker's sync counters.
    pub fn sync_counters(&self) -> SyncCounters {
        self.sync_stats
    }

    /// Standby: installs a session received from the master on this worker (which must be
    /// its owner: [`sync_owner`]). A FULLNAT session's local port is reserved in this
    /// worker's slice of the service's LIP pool. Returns whether the session is new.
    pub fn install_synced(&mut self, c: &SyncConn, now_ms: u64) -> Result<bool, SyncRefuse> {
        let laddrs = &mut self.laddrs;
        let threshold = SyncRules::default().threshold;
        let res = self
            .conns
            .install_synced(&mut self.sched, c, threshold, now_ms, |lip, lport| {
                let IpAddr::V4(lip) = lip.to_ip() else {
                    return false;
                };
                let Some(proto) = Proto::from_number(c.protocol) else {
                    return false;
                };
                let key = ServiceKey::Addr {
                    proto,
                    addr: c.vaddr,
                    port: c.vport,
                };
                let key0 = ServiceKey::Addr {
                    proto,
                    addr: c.vaddr,
                    port: 0,
                };
                let k = if laddrs.contains_key(&key) { key } else { key0 };
                laddrs.get_mut(&k).is_some_and(|pool| {
                    pool.reserve(LocalEndpoint {
                        addr: lip,
                        port: lport,
                    })
                })
            });
        match res {
            Ok((_, true)) => self.sync_stats.installed += 1,
            Ok((_, false)) => self.sync_stats.updated += 1,
            Err(_) => self.sync_stats.refused += 1,
        }
        res.map(|(_, new)| new)
    }

    /// Master: after a client packet, applies the sync rules to its session.
    fn sync_after_input(&mut self, id: ConnId, now_ms: u64) {
        let Some(rules) = self.sync_rules else {
            return;
        };
        let (out, st) = (&mut self.sync_out, &mut self.sync_stats);
        self.conns.sync_check(id, &rules, now_ms, |c| {
            if out.len() < SIDE_CAP {
                out.push(c);
                st.emitted += 1;
            } else {
                st.dropped += 1;
            }
        });
    }

    /// Processes a burst: the packets of `pkts` in order, each exactly as
    /// [`Core::process`] would, handing every verdict, and every frame originated on the
    /// way, to `emit`. `in_port` names the rvs port a packet arrived on; it is asked only
    /// for the packets that take the full path.
    ///
    /// The packets run through a software pipeline, so that their cache misses overlap
    /// instead of each packet stalling on its own: a packet is classified and its
    /// session-index bucket prefetched; [`AHEAD`] packets later the session that bucket
    /// points at is prefetched; [`AHEAD`] more later the packet is processed, with its
    /// classification and tuple hash at hand. The common IPv4 TCP or UDP packet is
    /// read by [`wire::classify_v4_flow`] (its tuple and offsets only), and classified
    /// in full only if it leaves the fast path. The pipeline runs on across the whole of
    /// `pkts`, which may receive more packets as it is read (the engine's receive stream
    /// does): the prefetches for the packets in flight overlap that receive too. An
    /// established packet of a NAT, FULLNAT, DR or TUN session takes a fast path (the same
    /// effects without the generic steps); any other the full one.
    pub fn process_burst<I, F, E>(
        &mut self,
        pkts: I,
        now_ms: u64,
        check_owner: bool,
        mut in_port: F,
        mut emit: E,
    ) where
        I: IntoIterator<Item = P>,
        F: FnMut(&P) -> u16,
        E: FnMut(Emit<'_, P>),
    {
        let mut pkts = pkts.into_iter();
        // Packets in flight, by sequence number modulo `RING`. Classifications stay in
        // place (168 bytes each): kept in a buffer owned by the core, taken out for the
        // call so that packets can borrow them. A packet with a `v4` reading is not
        // classified until it leaves the fast path.
        let mut ring: [Option<P>; RING] = std::array::from_fn(|_| None);
        let mut flows = [None::<Flow>; RING];
        let mut cls = std::mem::take(&mut self.burst_cls);
        cls.resize(RING, Err(wire::Error::Truncated));
        // Sequence number of the first packet `pkts` did not have.
        let mut end = usize::MAX;
        for i in 0.. {
            if i < end {
                match pkts.next() {
                    Some(p) => {
                        let r = i % RING;
                        let v4 = wire::classify_v4_flow(p.data());
                        let key = match &v4 {
                            Some(v) => Some(v4_flow_key(v)),
                            None => {
                                let c = &mut cls[r];
                                wire::classify_into(p.data(), ChecksumMode::Software, c);
                                match c {
                                    Ok(Classified::Ip(m)) => flow_key(m),
                                    _ => None,
                                }
                            }
                        };
                        flows[r] = key.map(|key| {
                            let hash = self.conns.flow_hash(&key);
                            self.conns.prefetch_flow(hash);
                            Flow {
                                hash,
                                key,
                                hint: None,
                                v4,
                            }
                        });
                        ring[r] = Some(p);
                    }
                    None => end = i,
                }
            }
            if let Some(j) = i.checked_sub(AHEAD).filter(|j| *j < end) {
                if let Some(f) = &mut flows[j % RING] {
                    f.hint = self.conns.prefetch_session(f.hash, &f.key);
                }
            }
            let Some(j) = i.checked_sub(2 * AHEAD) else {
                continue;
            };
            if j >= end {
                break;
            }
            let r = j % RING;
            let Some(mut p) = ring[r].take() else {
                continue;
            };
            if let Some(f @ Flow { v4: Some(v), .. }) = &flows[r] {
                match self.fast_path(&mut p, v, f, now_ms, check_owner) {
                    Fast::Tx(port) => {
                        emit(Emit::Packet(Out::Tx(p, port)));
                        continue;
                    }
                    Fast::Drop(reason) => {
                        let out = self.drop(p, reason);
                        emit(Emit::Packet(out));
                        continue;
                    }
                    Fast::Slow => {}
                }
                wire::classify_into(p.data(), ChecksumMode::Software, &mut cls[r]);
            }
            let port = in_port(&p);
            let hash = flows[r].as_ref().map(|f| f.hash);
            let out = self.process_classified(p, &cls[r], hash, port, now_ms, check_owner);
            emit(Emit::Packet(out));
            if let Some((port, len)) = self.generated.pop() {
                emit(Emit::Generated(port, &self.scratch[..len]));
            }
        }
        self.burst_cls = cls;
        self.conns.flush_pending();
    }

    /// The established fast path: a TCP or UDP packet over IPv4 of a NAT, FULLNAT, DR or
    /// TUN session of this worker, whose next hop is resolved and whose egress port
    /// computes checksums in software. It has exactly the effects [`Core::process_classified`] has
    /// on such a packet (counters, TCP state and timer, sync, rewrite, traffic per real
    /// server) without the generic steps (local-address map, rewrite parameters, verdicts
    /// moved through the call chain). [`Fast::Slow`] when anything is out of the
    /// ordinary (no session, a SYN, a packet of another worker, an unresolved next hop,
    /// offload, a TTL about to expire, a TUN packet too big for the tunnel, ...): nothing
    /// has been changed then.
    #[inline(always)]
    fn fast_path(
        &mut self,
        pkt: &mut P,
        v4: &V4Flow,
        f: &Flow,
        now_ms: u64,
        check_owner: bool,
    ) -> Fast {
        let Some(snap) = self.snap.as_ref() else {
            return Fast::Slow;
        };
        let flow = &f.key;
        let flags = TcpFlags(v4.tcp_flags);
        // A SYN may reuse or reschedule a session (conn_reuse_mode).
        if flow.proto == Proto::Tcp && flags.0 & TcpFlags::SYN.0 != 0 {
            return Fast::Slow;
        }
        let Some((id, reply)) = self.conns.lookup_hinted(f.hash, flow, f.hint) else {
            return Fast::Slow;
        };
        let Some(s) = self.conns.get(id) else {
            return Fast::Slow;
        };
        let fwd = s.fwd();
        let workers = snap.net.workers;
        if check_owner && workers > 1 {
            // Who owns it, as `owner_with` decides for the address the packet is sent to:
            // the client's worker for a request (to a VIP) or a NAT reply (to the client),
            // the lport's for a FULLNAT reply (to a LIP).
            let owner = match (reply, fwd) {
                (false, _) => flow
                    .saddr
                    .v4_bits()
                    .map(|a| owner_of_client(a.into(), workers)),
                (true, FwdMethod::FullNat) => Some(owner_of_port(flow.dport, workers)),
                (true, _) => flow
                    .daddr
                    .v4_bits()
                    .map(|a| owner_of_client(a.into(), workers)),
            };
            if owner != Some(self.id) {
                return Fast::Slow;
            }
        }
        // The new ends of the packet and the address routed toward, from the session's
        // first line (IPv4 addresses only).
        let end = |k: usize, port: u16| s.v4(k).map(|a| Some((a, port)));
        let (src, dst, toward) = match (reply, fwd) {
            (false, FwdMethod::FullNat) => (end(LADDR, s.lport), end(DADDR, s.dport), s.v4(DADDR)),
            (false, FwdMethod::Masq) => (Some(None), end(DADDR, s.dport), s.v4(DADDR)),
            (false, FwdMethod::Route | FwdMethod::Tunnel) => (Some(None), Some(None), s.v4(DADDR)),
            (true, FwdMethod::FullNat) => (end(VADDR, s.vport), end(CADDR, s.cport), s.v4(CADDR)),
            (true, FwdMethod::Masq) => (end(VADDR, s.vport), Some(None), s.v4(CADDR)),
            _ => return Fast::Slow,
        };
        let (Some(src), Some(dst), Some(toward)) = (src, dst, toward) else {
            return Fast::Slow;
        };
        if !reply && !self.conns.dest_usable(id) {
            return Fast::Slow;
        }
        let toward = Ipv4Addr::from(toward);
        let Some((nh, port)) = egress(snap, toward, fwd) else {
            return Fast::Slow;
        };
        if port.csum != ChecksumMode::Software {
            return Fast::Slow;
        }
        let Some(mac) = self.neigh.get(nh.addr) else {
            return Fast::Slow;
        };
        let macs = MacRewrite {
            src: EthernetAddress(port.mac),
            dst: EthernetAddress(mac),
        };
        let (l3, l4, ip_end) = (
            usize::from(v4.l3),
            usize::from(v4.l4),
            usize::from(v4.ip_end),
        );
        if fwd != FwdMethod::Route && pkt.data().get(l3 + 8).is_none_or(|ttl| *ttl <= 1) {
            return Fast::Slow; // dropped as TtlExpired, after the state transition
        }
        // TUN: a packet too big once encapsulated is refused (with a frag-needed error
        // for the client when it has DF) by the general path.
        let mtu = port.mtu;
        if fwd == FwdMethod::Tunnel && ip_end - l3 + wire::ipip::OUTER_HEADER_LEN > usize::from(mtu)
        {
            return Fast::Slow;
        }
        // Decided: from here on the packet is this session's.
        self.counters.packets += 1;
        let dir = if reply {
            Direction::Output
        } else {
            Direction::Input
        };
        self.conns.state_transition(id, dir, flags, now_ms);
        if !reply {
            self.sync_after_input(id, now_ms);
        }
        let len = pkt.len() as u64;
        let res = match fwd {
            FwdMethod::Route => forward::set_macs(pkt.data_mut(), &macs),
            FwdMethod::Tunnel => {
                let tun = forward::TunParams {
                    local: self
                        .tun_src
                        .get(usize::from(nh.port))
                        .copied()
                        .unwrap_or(Ipv4Addr::UNSPECIFIED),
                    real: toward,
                    mtu,
                    macs,
                    csum: ChecksumMode::Software,
                };
                let data = pkt.data();
                let inner = forward::tun::Inner {
                    l3,
                    end: ip_end,
                    version: IpVersion::V4,
                    tos: data[l3 + 1],
                    dont_frag: data[l3 + 6] & 0x40 != 0,
                };
                forward::tun::encapsulate(pkt, &inner, &tun).map(|_| ())
            }
            _ => {
                let data = pkt.data_mut();
                let udp = flow.proto == Proto::Udp;
                forward::rewrite_v4(data, l3, l4, ip_end, udp, src, dst, &macs)
            }
        };
        if let Err(e) = res {
            return Fast::Drop(DropReason::Rewrite(e));
        }
        self.count_forwarded(id, dir, len);
        Fast::Tx(nh.port)
    }

    /// The worker that owns a classified packet (see the module docs).
    pub fn owner_of(&self, meta: &IpMeta) -> usize {
        match &self.snap {
            Some(snap) => self.owner_in(snap, meta),
            None => self.id,
        }
    }

    /// [`Core::owner_of`] under snapshot `snap`.
    fn owner_in(&self, snap: &Snapshot, meta: &IpMeta) -> usize {
        let IpAddr::V4(dst) = meta.tuple.dst.addr else {
            return self.id;
        };
        let local = snap.net.local.get(&dst).copied();
        self.owner_with(snap, meta, local)
    }

    /// [`Core::owner_in`] with the destination's [`LocalKind`] (if local) already known.
    fn owner_with(&self, snap: &Snapshot, meta: &IpMeta, local: Option<(LocalKind, u16)>) -> usize {
        let workers = snap.net.workers;
        if workers <= 1 {
            return 0;
        }
        let t = &meta.tuple;
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (t.src.addr, t.dst.addr) else {
            return self.id;
        };
        match local {
            Some((LocalKind::Lip, _)) if t.protocol.has_ports() => {
                owner_of_port(t.dst.port, workers)
            }
            Some((LocalKind::Lip, _)) => self.id,
            Some((LocalKind::Vip, _)) => owner_of_client(src, workers),
            Some((LocalKind::Dip, _)) => self.id,
            None => {
                // ICMP errors travel toward the client too; their inner packet names the
                // session: owner by the inner tuple's source (the client or the LIP).
                if let Some(inner) = meta.icmp.and_then(|i| i.inner) {
                    if let IpAddr::V4(isrc) = inner.tuple.src.addr {
                        if let Some((LocalKind::Lip, _)) = snap.net.local.get(&isrc) {
                            return owner_of_port(inner.tuple.src.port, workers);
                        }
                        if let IpAddr::V4(idst) = inner.tuple.dst.addr {
                            if let Some((LocalKind::Vip, _)) = snap.net.local.get(&idst) {
                                return owner_of_client(isrc, workers);
                            }
                            return owner_of_client(idst, workers);
                        }
                    }
                }
                owner_of_client(dst, workers)
            }
        }
    }

    /// Processes one received packet that arrived on port `in_port`.
    ///
    /// `check_owner`: when true, a packet owned by another worker comes back as
    /// [`Out::Handoff`]; a packet received from a handoff ring is processed with false.
    pub fn process(&mut self, pkt: P, in_port: u16, now_ms: u64, check_owner: bool) -> Out<P> {
        let cls = classify(pkt.data(), ChecksumMode::Software);
        self.process_classified(pkt, &cls, None, in_port, now_ms, check_owner)
    }

    /// [`Core::process`] of a packet already classified (and, for TCP/UDP over IPv4, its
    /// tuple's [`ConnTable::flow_hash`] computed).
    fn process_classified(
        &mut self,
        pkt: P,
        cls: &wire::Result<Classified>,
        hash: Option<u64>,
        in_port: u16,
        now_ms: u64,
        check_owner: bool,
    ) -> Out<P> {
        self.counters.packets += 1;
        // The snapshot is moved out for the packet and put back (borrowed by the handlers:
        // no reference counting per packet).
        let Some(snap) = self.snap.take() else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let out = self.process_with(&snap, pkt, cls, hash, in_port, now_ms, check_owner);
        self.snap = Some(snap);
        out
    }

    /// [`Core::process_classified`] under snapshot `snap`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn process_with(
        &mut self,
        snap: &Snapshot,
        pkt: P,
        cls: &wire::Result<Classified>,
        hash: Option<u64>,
        in_port: u16,
        now_ms: u64,
        check_owner: bool,
    ) -> Out<P> {
        let meta = match cls {
            Err(e) => return self.drop(pkt, DropReason::Malformed(*e)),
            Ok(Classified::Arp(l2)) => return self.arp(pkt, l2.l3_offset, in_port, snap, now_ms),
            Ok(Classified::Other(_)) => return self.drop(pkt, DropReason::Unsupported),
            Ok(Classified::Ip(m)) => m,
        };
        if meta.version != IpVersion::V4 {
            return self.drop(pkt, DropReason::Unsupported);
        }
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (meta.tuple.src.addr, meta.tuple.dst.addr) else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        let local = snap.net.local.get(&dst).copied();
        if check_owner {
            let owner = self.owner_with(snap, meta, local);
            if owner != self.id {
                self.counters.handoff_out += 1;
                return Out::Handoff(pkt, owner as u32);
            }
        }
        // ICMP: echo to our addresses, errors about sessions.
        if meta.tuple.protocol == IpProtocol::ICMP {
            if let Some(icmp) = meta.icmp {
                if icmp.msg_type == 8 && local.is_some() {
                    return self.echo_reply(pkt, meta, in_port, snap);
                }
                if icmp.inner.is_some() {
                    return self.icmp_error(pkt, meta, snap, now_ms);
                }
            }
            return self.drop(pkt, DropReason::NotForUs);
        }
        let proto = match meta.tuple.protocol {
            IpProtocol::TCP => Proto::Tcp,
            IpProtocol::UDP => Proto::Udp,
            _ => return self.drop(pkt, DropReason::NotForUs),
        };
        let flags = TcpFlags(meta.tcp_flags.0 as u8);
        // Built once, in place (copying a freshly written key costs store-forwarding stalls).
        let pm = PacketMeta {
            flow: FlowKey {
                proto,
                saddr: Addr::from(IpAddr::V4(src)),
                daddr: Addr::from(IpAddr::V4(dst)),
                sport: meta.tuple.src.port,
                dport: meta.tuple.dst.port,
            },
            fwmark: 0,
            tcp_flags: flags,
        };
        let flow = &pm.flow;
        let hash = hash.unwrap_or_else(|| self.conns.flow_hash(flow));
        match local {
            Some((LocalKind::Lip, _)) => {
                // FULLNAT reply: RIP:rport -> LIP:lport.
                match self.conns.lookup_out_hashed(hash, flow) {
                    Some(id) => self.reply(pkt, meta, id, flags, snap, now_ms),
                    None => self.drop(pkt, DropReason::NotForUs),
                }
            }
            Some((LocalKind::Dip, _)) => {
                // A NAT reply cannot be addressed to a DIP; nothing else is served here.
                self.drop(pkt, DropReason::NotForUs)
            }
            _ => {
                // A request to a service (VIP), or a NAT reply (RS -> client).
                if local.is_none() {
                    if let Some(id) = self.conns.lookup_out_hashed(hash, flow) {
                        return self.reply(pkt, meta, id, flags, snap, now_ms);
                    }
                }
                let net = &snap.net;
                let me = self.id as u16;
                let res = match self.conns.schedule(&mut self.sched, &pm, hash, now_ms) {
                    Ok(Scheduled::Existing(id)) => Ok(id),
                    Ok(Scheduled::New(new)) => {
                        let local = if new.needs_local() {
                            fullnat_local(&mut self.laddrs, net, me, new.dest(), new.flow())
                        } else {
                            None
                        };
                        let res = new.create(local);
                        if let Ok(id) = res {
                            if let Some(t) = self.traffic_of(id) {
                                t.conns += 1;
                            }
                        }
                        res
                    }
                    Err(e) => Err(e),
                };
                match res {
                    Ok(id) => self.request(pkt, meta, id, flags, in_port, snap, now_ms),
                    Err(Refuse::NoService) => self.drop(pkt, DropReason::NotForUs),
                    Err(Refuse::NotSyn) => self.drop(pkt, DropReason::NoSession),
                    Err(Refuse::TableFull) => self.drop(pkt, DropReason::TableFull),
                    Err(Refuse::NoDest) => self.drop(pkt, DropReason::NoDest),
                    Err(Refuse::NoLocalAddr) => self.drop(pkt, DropReason::NoLocalAddr),
                    Err(Refuse::DestUnavailable) => self.drop(pkt, DropReason::DestUnavailable),
                }
            }
        }
    }

    #[inline]
    fn drop(&mut self, pkt: P, r: DropReason) -> Out<P> {
        self.counters.drops[r.index()] += 1;
        Out::Drop(pkt, r)
    }

    /// Client → RS.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn request(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        flags: TcpFlags,
        in_port: u16,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        self.conns
            .state_transition(id, Direction::Input, flags, now_ms);
        self.sync_after_input(id, now_ms);
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        let (daddr, fwd) = (s.daddr(), s.fwd());
        let IpAddr::V4(rip) = daddr.to_ip() else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        let Some((nh, port)) = egress(snap, rip, fwd) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let mac = self.neigh_mac(nh.addr, nh.port, now_ms);
        let macs = MacRewrite {
            src: EthernetAddress(port.mac),
            dst: EthernetAddress(mac.unwrap_or([0; 6])),
        };
        let params = match fwd {
            FwdMethod::Masq | FwdMethod::FullNat => {
                match self
                    .conns
                    .get(id)
                    .and_then(|s| nat_params(s, macs, port.csum))
                {
                    Some(p) => p,
                    None => return self.drop(pkt, DropReason::NoSession),
                }
            }
            FwdMethod::Tunnel => {
                let dip = self.tun_src.get(usize::from(nh.port)).copied();
                Params::Tun(forward::TunParams {
                    local: dip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    real: rip,
                    mtu: port.mtu,
                    macs,
                    csum: port.csum,
                })
            }
            FwdMethod::Route | FwdMethod::Local => Params::Dr(forward::DrParams { macs }),
        };
        let len = pkt.len() as u64;
        match params.request(&mut pkt, meta, &mut self.scratch) {
            Ok(Verdict::Forward(off)) => {
                self.count_forwarded(id, Direction::Input, len);
                let _ = off; // checksum offload flags: software checksums on every port for now
                self.emit(pkt, nh.port, nh.addr, mac)
            }
            Ok(Verdict::IcmpReply { len }) => {
                // TUN refused an oversize DF packet: send frag-needed back to the client.
                self.counters.frag_needed_sent += 1;
                if self.generated.len() < SIDE_CAP {
                    self.generated.push((in_port, len));
                }
                self.drop(pkt, DropReason::Rewrite(wire::Error::Oversize))
            }
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// RS → client (NAT, FULLNAT).
    #[inline]
    fn reply(
        &mut self,
        mut pkt: P,
        meta: &IpMeta,
        id: ConnId,
        flags: TcpFlags,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Out<P> {
        self.conns
            .state_transition(id, Direction::Output, flags, now_ms);
        let Some(s) = self.conns.get(id) else {
            return self.drop(pkt, DropReason::NoSession);
        };
        let IpAddr::V4(cip) = s.caddr().to_ip() else {
            return self.drop(pkt, DropReason::Unsupported);
        };
        let Some((nh, port)) = egress(snap, cip, FwdMethod::Masq) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let mac = self.neigh_mac(nh.addr, nh.port, now_ms);
        let macs = MacRewrite {
            src: EthernetAddress(port.mac),
            dst: EthernetAddress(mac.unwrap_or([0; 6])),
        };
        let csum = port.csum;
        let Some(params) = self.conns.get(id).and_then(|s| nat_params(s, macs, csum)) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let len = pkt.len() as u64;
        match params.reply(&mut pkt, meta) {
            Ok(Verdict::Forward(off)) => {
                self.count_forwarded(id, Direction::Output, len);
                let _ = off; // checksum offload flags: software checksums on every port for now
                self.emit(pkt, nh.port, nh.addr, mac)
            }
            Ok(Verdict::IcmpReply { .. }) => self.drop(pkt, DropReason::NotForUs),
            Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
        }
    }

    /// An ICMP error about a session: translate and forward it.
    fn icmp_error(&mut self, mut pkt: P, meta: &IpMeta, snap: &Snapshot, now_ms: u64) -> Out<P> {
        let Some(inner) = meta.icmp.and_then(|i| i.inner) else {
            return self.drop(pkt, DropReason::NotForUs);
        };
        let t = inner.tuple;
        let proto = match t.protocol {
            IpProtocol::TCP => Proto::Tcp,
            IpProtocol::UDP => Proto::Udp,
            _ => return self.drop(pkt, DropReason::NotForUs),
        };
        // The embedded packet went the other way: client->VIP (error from the client side
        // about a reply? no: errors about requests come from the RS side and embed
        // LIP/CIP -> RIP) — look it up as a server-side tuple first, then client-side.
        let inner_flow = FlowKey {
            proto,
            saddr: Addr::from(t.src.addr),
            daddr: Addr::from(t.dst.addr),
            sport: t.src.port,
            dport: t.dst.port,
        };
        // Error from the server side about a request we forwarded: the embedded packet is
        // (LIP|CIP):port -> RIP:rport, i.e. the session's out tuple reversed.
        let reversed = FlowKey {
            proto,
            saddr: inner_flow.daddr,
            daddr: inner_flow.saddr,
            sport: inner_flow.dport,
            dport: inner_flow.sport,
        };
        if let Some(id) = self.conns.lookup_out(&reversed) {
            let Some(s) = self.conns.get(id) else {
                return self.drop(pkt, DropReason::NoSession);
            };
            let IpAddr::V4(cip) = s.caddr().to_ip() else {
                return self.drop(pkt, DropReason::Unsupported);
            };
            let Some((nh, port)) = egress(snap, cip, FwdMethod::Masq) else {
                return self.drop(pkt, DropReason::NoRoute);
            };
            let mac = self.neigh_mac(nh.addr, nh.port, now_ms);
            let macs = MacRewrite {
                src: EthernetAddress(port.mac),
                dst: EthernetAddress(mac.unwrap_or([0; 6])),
            };
            let res = match self
                .conns
                .get(id)
                .and_then(|s| nat_params(s, macs, port.csum))
            {
                Some(Params::Nat(p)) => icmp::nat_reply(&mut pkt, meta, &p),
                Some(Params::FullNat(p)) => icmp::fullnat_reply(&mut pkt, meta, &p),
                _ => return self.drop(pkt, DropReason::NotForUs),
            };
            return match res {
                Ok(Verdict::Forward(_)) => {
                    self.counters.icmp_translated += 1;
                    self.emit(pkt, nh.port, nh.addr, mac)
                }
                Ok(Verdict::IcmpReply { .. }) => self.drop(pkt, DropReason::NotForUs),
                Err(e) => self.drop(pkt, DropReason::Rewrite(e)),
            };
        }
        self.drop(pkt, DropReason::NotForUs)
    }

    /// Resolves the next hop's MAC; on a miss queues an ARP request when one is due.
    #[inline]
    fn neigh_mac(&mut self, nh: Ipv4Addr, port: u16, now_ms: u64) -> Option<[u8; 6]> {
        match self.neigh.lookup(nh, now_ms) {
            Lookup::Hit(mac) => Some(mac),
            Lookup::Miss { send_request } => {
                if send_request && self.arp_requests.len() < SIDE_CAP {
                    self.arp_requests.push((port, nh));
                }
                None
            }
            Lookup::Full => None,
        }
    }

    /// Sends a rewritten packet, or holds it until the next hop resolves.
    #[inline]
    fn emit(&mut self, pkt: P, port: u16, nh: Ipv4Addr, mac: Option<[u8; 6]>) -> Out<P> {
        if mac.is_some() {
            return Out::Tx(pkt, port);
        }
        match self.neigh.hold(nh, (pkt, port)) {
            Ok(()) => Out::Held,
            Err((pkt, _)) => self.drop(pkt, DropReason::Unresolved),
        }
    }

    /// ARP: answer requests for our addresses, learn senders.
    fn arp(&mut self, mut pkt: P, l3: usize, in_port: u16, snap: &Snapshot, now_ms: u64) -> Out<P> {
        let Some(body) = pkt.data().get(l3..) else {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        };
        let repr = match ArpPacket::new_checked(body).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(e) => return self.drop(pkt, DropReason::Malformed(e)),
        };
        let ours = snap.net.local.get(&repr.target_protocol_addr).copied();
        let sender = repr.source_protocol_addr;
        // Learn the sender when the packet is for us or when we already track it.
        if (ours.is_some() || self.neigh.contains(sender)) && sender != Ipv4Addr::UNSPECIFIED {
            let mac = repr.source_hardware_addr.0;
            let released = &mut self.released;
            self.neigh.learn(sender, mac, now_ms, |(mut p, port), mac| {
                set_dst_mac(&mut p, mac);
                released.push((p, port));
            });
            if self.learned.len() < SIDE_CAP {
                self.learned.push(NeighUpdate { ip: sender, mac });
            }
        }
        let silent = |(kind, _): (LocalKind, u16)| {
            snap.net.passive
                && (kind != LocalKind::Dip
                    || snap.net.floating.contains(&repr.target_protocol_addr))
        };
        match (repr.operation, ours.filter(|o| !silent(*o))) {
            (ArpOperation::Request, Some((_, port)))
                if port == in_port || snap.net.ports.len() == 1 =>
            {
                let Some(pn) = snap.net.ports.get(usize::from(in_port)) else {
                    return self.drop(pkt, DropReason::NoRoute);
                };
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(pn.mac),
                    source_protocol_addr: repr.target_protocol_addr,
                    target_hardware_addr: repr.source_hardware_addr,
                    target_protocol_addr: repr.source_protocol_addr,
                };
                let data = pkt.data_mut();
                let Some(arp) = data.get_mut(l3..) else {
                    return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
                };
                if let Err(e) = reply.emit(arp) {
                    return self.drop(pkt, DropReason::Rewrite(e));
                }
                data[..6].copy_from_slice(&repr.source_hardware_addr.0);
                data[6..12].copy_from_slice(&pn.mac);
                self.counters.arp_replies += 1;
                Out::Tx(pkt, in_port)
            }
            _ => Out::Consumed(pkt),
        }
    }

    /// ICMP echo request to one of our addresses: answer in place.
    fn echo_reply(&mut self, mut pkt: P, meta: &IpMeta, in_port: u16, snap: &Snapshot) -> Out<P> {
        let Some(pn) = snap.net.ports.get(usize::from(in_port)) else {
            return self.drop(pkt, DropReason::NoRoute);
        };
        let mac = pn.mac;
        let l3 = meta.l3_offset();
        let l4 = meta.l4_offset;
        let end = meta.ip_end;
        let data = pkt.data_mut();
        if data.len() < end || l4 + 4 > end {
            return self.drop(pkt, DropReason::Malformed(wire::Error::Truncated));
        }
        // Ethernet: back to the sender.
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&data[6..12]);
        data[..6].copy_from_slice(&src_mac);
        data[6..12].copy_from_slice(&mac);
        // IPv4: swap addresses, fresh TTL, recomputed header checksum.
        {
            let mut ip = wire::Ipv4Packet::new_unchecked(&mut data[l3..end]);
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(d);
            ip.set_dst_addr(s);
            ip.set_ttl(64);
            ip.fill_checksum();
        }
        // ICMP: type 8 -> 0, checksum adjusted.
        let old = u16::from_be_bytes([data[l4], data[l4 + 1]]);
        data[l4] = 0;
        let new = u16::from_be_bytes([data[l4], data[l4 + 1]]);
        let ck = u16::from_be_bytes([data[l4 + 2], data[l4 + 3]]);
        let ck = wire::checksum::update_u16(ck, old, new);
        data[l4 + 2..l4 + 4].copy_from_slice(&ck.to_be_bytes());
        self.counters.echo_replies += 1;
        Out::Tx(pkt, in_port)
    }
}

/// FULLNAT: a local endpoint for a new session of flow `fk` to real server `rs`, from the
/// service's LIP pool, preferring an lport whose reply hashes (RSS) to worker `me`'s queue.
fn fullnat_local(
    laddrs: &mut HashMap<ServiceKey, LaddrPool>,
    net: &NetConfig,
    me: u16,
    rs: &RealServer,
    fk: &FlowKey,
) -> Option<(Addr, u16)> {
    let key = ServiceKey::Addr {
        proto: fk.proto,
        addr: fk.daddr,
        port: fk.dport,
    };
    let key0 = ServiceKey::Addr {
        proto: fk.proto,
        addr: fk.daddr,
        port: 0,
    };
    let k = if laddrs.contains_key(&key) { key } else { key0 };
    let pool = laddrs.get_mut(&k)?;
    let rip = match rs.addr.to_ip() {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let rport = if rs.port == 0 { fk.dport } else { rs.port };
    // Prefer an lport whose reply hashes (RSS) to this worker's queue.
    pool.alloc(|lip, lport| {
        let steer = net
            .local
            .get(&lip)
            .and_then(|(_, port)| net.rss.get(usize::from(*port)))
            .and_then(Option::as_ref);
        steer.is_none_or(|r| r.reply_queue(rip, lip, rport, lport) == me)
    })
    .map(|ep| (Addr::from(IpAddr::V4(ep.addr)), ep.port))
}

/// The worker that owns a synced session on this director: the owner of the FULLNAT
/// local port (rvs's option), else the owner of the client address — the functions the
/// data path uses, so the session's packets find it.
pub fn sync_owner(c: &SyncConn, workers: usize) -> usize {
    if let Some((_, lport)) = c.local {
        return owner_of_port(lport, workers);
    }
    match c.caddr.to_ip() {
        IpAddr::V4(a) => owner_of_client(a, workers),
        IpAddr::V6(_) => 0,
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

/// The next hop toward `toward` and the port it is on; under DR (`Route`) the real server
/// itself is the next hop (it must be on-link). `None`: no route, or a route to a port the
/// snapshot does not have.
#[inline]
fn egress(snap: &Snapshot, toward: Ipv4Addr, fwd: FwdMethod) -> Option<(NextHop, &PortNet)> {
    let mut nh = snap.net.routes.lookup(toward)?;
    if fwd == FwdMethod::Route {
        nh.addr = toward;
    }
    Some((nh, snap.net.ports.get(usize::from(nh.port))?))
}

/// The NAT or FULLNAT rewrite parameters of a session (`None` for the other modes): the
/// same for requests, replies and ICMP errors about the session.
#[inline(always)]
fn nat_params(s: &crate::conn::Session, macs: MacRewrite, csum: ChecksumMode) -> Option<Params> {
    let virt = wire::Endpoint::new(s.vaddr().to_ip(), s.vport());
    let real = wire::Endpoint::new(s.daddr().to_ip(), s.dport());
    match s.fwd() {
        FwdMethod::Masq => Some(Params::Nat(forward::NatParams {
            virt,
            real,
            macs,
            csum,
        })),
        FwdMethod::FullNat => Some(Params::FullNat(forward::FullNatParams {
            client: wire::Endpoint::new(s.caddr().to_ip(), s.cport()),
            virt,
            local: wire::Endpoint::new(s.laddr().to_ip(), s.lport()),
            real,
            macs,
            csum,
        })),
        _ => None,
    }
}

/// The worker owning a client address.
#[inline]
pub fn owner_of_client(addr: Ipv4Addr, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let h = u32::from(addr).wrapping_mul(0x9E37_79B1);
    ((u64::from(h) * workers as u64) >> 32) as usize
}

fn set_dst_mac<P: PacketBuf>(p: &mut P, mac: [u8; 6]) {
    if let Some(d) = p.data_mut().get_mut(..6) {
        d.copy_from_slice(&mac);
    }
}

/// Writes an ARP request (broadcast) from `src_mac`/`src_ip` for `target` into `buf`
/// (at least 42 bytes; 60 with padding); returns the frame length.
pub fn build_arp_request(
    buf: &mut [u8],
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    let frame = buf.get_mut(..60)?;
    frame.fill(0);
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&src_mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    repr.emit(&mut frame[14..]).ok()?;
    Some(60)
}

/// Writes a gratuitous ARP (a request for `ip` from `ip`) into `buf`; returns the length.
pub fn build_gratuitous_arp(buf: &mut [u8], mac: [u8; 6], ip: Ipv4Addr) -> Option<usize> {
    build_arp_request(buf, mac, ip, ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::route::Route;
    use crate::service::SchedKind;
    use crate::service::{DestConfig, ServiceConfig, ServiceTable};
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
    const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd0];
    const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];
    const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x12];
    const CIP: [u8; 4] = [10, 10, 0, 2];
    const VIP: [u8; 4] = [10, 10, 0, 100];
    const DIP0: [u8; 4] = [10, 10, 0, 1];
    const DIP1: [u8; 4] = [10, 20, 0, 1];
    const RS1: [u8; 4] = [10, 20, 0, 11];
    const RS2: [u8; 4] = [10, 20, 0, 12];
    const LIP: [u8; 4] = [10, 20, 0, 200];

    fn a(x: [u8; 4]) -> Addr {
        Addr::from(IpAddr::V4(Ipv4Addr::from(x)))
    }

    fn snapshot(fwd: FwdMethod, workers: usize) -> Snapshot {
        let key = ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: a(VIP),
            port: 80,
        };
        let mut t = ServiceTable::new();
        t.add_service(ServiceConfig::new(key, SchedKind::Rr))
            .expect("service");
        let rport = if fwd == FwdMethod::Masq { 8080 } else { 80 };
        t.add_dest(&key, DestConfig::new(a(RS1), rport, fwd))
            .expect("rs1");
        t.add_dest(&key, DestConfig::new(a(RS2), 80, fwd))
            .expect("rs2");
        let mut net = NetConfig::new(workers);
        net.ports = vec![
            PortNet {
                mac: PORT0_MAC,
                mtu: 1500,
                csum: ChecksumMode::Software,
            },
            PortNet {
                mac: PORT1_MAC,
                mtu: 1500,
                csum: ChecksumMode::Software,
            },
        ];
        net.local.insert(Ipv4Addr::from(DIP0), (LocalKind::Dip, 0));
        net.local.insert(Ipv4Addr::from(VIP), (LocalKind::Vip, 0));
        net.local.insert(Ipv4Addr::from(DIP1), (LocalKind::Dip, 1));
        net.local.insert(Ipv4Addr::from(LIP), (LocalKind::Lip, 1));
        net.routes = RouteTable::new(vec![
            Route {
                prefix: Ipv4Addr::new(10, 10, 0, 0),
                len: 24,
                port: 0,
                gateway: None,
            },
            Route {
                prefix: Ipv4Addr::new(10, 20, 0, 0),
                len: 24,
                port: 1,
                gateway: None,
            },
        ]);
        if fwd == FwdMethod::FullNat {
            net.laddrs.insert(key, vec![Ipv4Addr::from(LIP)]);
        }
        Snapshot {
            generation: 1,
            services: t.snapshot(),
            net: Arc::new(net),
        }
    }

    fn core(fwd: FwdMethod, id: usize, workers: usize) -> Core<VecBuf> {
        let mut c = Core::new(id, ConnConfig::new(1024), NeighConfig::default());
        c.adopt(snapshot(fwd, workers));
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        s: [u8; 4],
        sp: u16,
        d: [u8; 4],
        dp: u16,
        syn: bool,
        ack: bool,
    ) -> VecBuf {
        let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(s, d, 64)
            .tcp(sp, dp, 1000, 65535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        let payload = b"GET / HTTP/1.0\r\n\r\n";
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("build");
        VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
    }

    fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> VecBuf {
        let mut f = vec![0u8; 42];
        f[..6].copy_from_slice(if op == 1 { &[0xff; 6] } else { &tha });
        f[6..12].copy_from_slice(&sha);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, op as u8]);
        f[22..28].copy_from_slice(&sha);
        f[28..32].copy_from_slice(&spa);
        f[32..38].copy_from_slice(&tha);
        f[38..42].copy_from_slice(&tpa);
        VecBuf::new(64, &f)
    }

    /// Parses a frame with etherparse and returns (src ip, sport, dst ip, dport) after
    /// checking the IPv4 and TCP checksums.
    fn check(frame: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
        let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses it");
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let h = ip.header();
        let hdr = h.to_header();
        assert_eq!(
            hdr.calc_header_checksum(),
            hdr.header_checksum,
            "IPv4 checksum"
        );
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("not TCP")
        };
        let want = t
            .to_header()
            .calc_checksum_ipv4(&hdr, t.payload())
            .expect("checksum");
        assert_eq!(want, t.checksum(), "TCP checksum");
        (
            h.source(),
            t.source_port(),
            h.destination(),
            t.destination_port(),
        )
    }

    fn tx(out: Out<VecBuf>) -> (VecBuf, u16) {
        match out {
            Out::Tx(p, port) => (p, port),
            other => panic!("expected Tx, got {other:?}"),
        }
    }

    #[test]
    fn arp_for_the_vip_is_answered_and_the_client_learned() {
        let mut c = core(FwdMethod::Masq, 0, 1);
        let (p, port) = tx(c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true));
        assert_eq!(port, 0);
        let f = p.data();
        assert_eq!(&f[..6], &CLIENT_MAC);
        assert_eq!(&f[6..12], &PORT0_MAC);
        assert_eq!(&f[20..22], &[0, 2], "ARP reply");
        assert_eq!(&f[22..28], &PORT0_MAC, "sender MAC is the director's");
        assert_eq!(&f[28..32], &VIP);
        assert_eq!(&f[32..38], &CLIENT_MAC);
        assert_eq!(c.neigh().get(Ipv4Addr::from(CIP)), Some(CLIENT_MAC));
        // Not ours: consumed, not answered.
        assert!(matches!(
            c.process(arp(1, CLIENT_MAC, CIP, [0; 6], [10, 10, 0, 77]), 0, 0, true),
            Out::Consumed(_)
        ));
    }

    #[test]
    fn nat_request_and_reply_walk_through_arp_resolution() {
        let mut c = core(FwdMethod::Masq, 0, 1);
        tx(c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true));
        // SYN: RS unresolved -> held, ARP request queued on port 1.
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
        assert!(matches!(c.process(syn, 0, 1, true), Out::Held));
        let reqs: Vec<_> = c.take_arp_requests().collect();
        // rr over the newest-first list: RS2 (added last) is first.
        assert_eq!(reqs, vec![(1, Ipv4Addr::from(RS2))]);
        let mut buf = [0u8; 64];
        let n = build_arp_request(
            &mut buf,
            PORT1_MAC,
            Ipv4Addr::from(DIP1),
            Ipv4Addr::from(RS2),
        )
        .expect("arp");
        assert_eq!(n, 60);
        // The RS answers: the held SYN is released toward it.
        assert!(matches!(
            c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 2, true),
            Out::Consumed(_)
        ));
        let rel: Vec<_> = c.take_released().collect();
        assert_eq!(rel.len(), 1);
        let (p, port) = &rel[0];
        assert_eq!(*port, 1);
        assert_eq!(&p.data()[..6], &RS2_MAC);
        assert_eq!(&p.data()[6..12], &PORT1_MAC);
        assert_eq!(check(p.data()), (CIP, 40000, RS2, 80));
        // The reply SYN-ACK from RS2 goes back as from the VIP.
        let synack = tcp(RS2_MAC, PORT1_MAC, RS2, 80, CIP, 40000, true, true);
        let (p, port) = tx(c.process(synack, 1, 3, true));
        assert_eq!(port, 0);
        assert_eq!(&p.data()[..6], &CLIENT_MAC);
        assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
        // Second connection goes to RS1 (rr) on port 8080.
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 4, true);
        let syn2 = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40001, VIP, 80, true, false);
        let (p, _) = tx(c.process(syn2, 0, 5, true));
        assert_eq!(check(p.data()), (CIP, 40001, RS1, 8080));
        let ctr = c.counters();
        assert_eq!((ctr.in_packets, ctr.out_packets), (2, 1));
        assert_eq!(c.conns().len(), 2);
        // Per-server traffic, as --stats shows it: one session each.
        let traffic: Vec<DestTraffic> = c.dest_traffic().map(|(_, t)| t).collect();
        assert_eq!(traffic.iter().map(|t| t.conns).sum::<u64>(), 2);
        assert_eq!(traffic.iter().map(|t| t.inpkts).sum::<u64>(), 2);
        assert_eq!(traffic.iter().map(|t| t.outpkts).sum::<u64>(), 1);
    }

    #[test]
    fn fullnat_rewrites_both_ends_and_replies_find_their_owner() {
        // Two workers: the client's owner schedules and picks an lport of its own slice.
        let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
        let mut c = core(FwdMethod::FullNat, owner, 2);
        let mut other = core(FwdMethod::FullNat, 1 - owner, 2);
        c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, false);
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, false);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, false);
        // The other worker received the SYN: it hands it over.
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
        let syn = match other.process(syn, 0, 1, true) {
            Out::Handoff(p, w) => {
                assert_eq!(w as usize, owner);
                p
            }
            o => panic!("expected handoff, got {o:?}"),
        };
        let (p, port) = tx(c.process(syn, 0, 1, false));
        assert_eq!(port, 1);
        let (src, lport, dst, dport) = check(p.data());
        assert_eq!(src, LIP);
        assert_eq!((dst, dport), (RS2, 80));
        assert_eq!(owner_of_port(lport, 2), owner, "the lport names the owner");
        // The reply to LIP:lport: the non-owner hands it over, the owner maps it back.
        let reply = tcp(RS2_MAC, PORT1_MAC, RS2, 80, LIP, lport, true, true);
        let reply = match other.process(reply, 1, 2, true) {
            Out::Handoff(p, w) => {
                assert_eq!(w as usize, owner);
                p
            }
            o => panic!("expected handoff, got {o:?}"),
        };
        let (p, port) = tx(c.process(reply, 1, 2, true));
        assert_eq!(port, 0);
        assert_eq!(check(p.data()), (VIP, 80, CIP, 40000));
        assert_eq!(other.counters().handoff_out, 2);
    }

    #[test]
    fn malformed_and_sessionless_packets_are_counted_by_reason() {
        let mut c = core(FwdMethod::Masq, 0, 1);
        // Truncated IPv4.
        let mut syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false)
            .data()
            .to_vec();
        syn.truncate(30);
        let out = c.process(VecBuf::new(64, &syn), 0, 0, true);
        assert!(matches!(out, Out::Drop(_, DropReason::Malformed(_))));
        // Bad IPv4 header checksum.
        let mut bad = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false)
            .data()
            .to_vec();
        bad[24] ^= 0xff;
        let out = c.process(VecBuf::new(64, &bad), 0, 0, true);
        assert!(matches!(
            out,
            Out::Drop(_, DropReason::Malformed(wire::Error::BadChecksum))
        ));
        // ACK without a session.
        let ack = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, false, true);
        assert!(matches!(
            c.process(ack, 0, 0, true),
            Out::Drop(_, DropReason::NoSession)
        ));
        // A fragment.
        let mut frag = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false)
            .data()
            .to_vec();
        frag[20] |= 0x20; // MF
        let ck = crate::wire::checksum::data(&{
            let mut h = frag[14..34].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        });
        frag[24..26].copy_from_slice(&(!ck).to_be_bytes());
        let out = c.process(VecBuf::new(64, &frag), 0, 0, true);
        assert!(
            matches!(
                out,
                Out::Drop(_, DropReason::Malformed(wire::Error::Fragment))
            ),
            "{out:?}"
        );
        let ctr = c.counters();
        assert_eq!(ctr.drops_of(DropReason::NoSession), 1);
        assert_eq!(
            ctr.drops_of(DropReason::Malformed(wire::Error::BadChecksum)),
            1
        );
        assert_eq!(
            ctr.drops_of(DropReason::Malformed(wire::Error::Fragment)),
            1
        );
        assert_eq!(ctr.dropped(), 4);
        for i in 0..DropReason::COUNT {
            assert_eq!(DropReason::from_index(i).map(DropReason::index), Some(i));
        }
    }

    /// A verdict reduced to what can be compared across two cores: the kind, the port /
    /// owner / reason, and the frame's bytes.
    fn verdict(out: Out<VecBuf>) -> (u8, String, Vec<u8>) {
        match out {
            Out::Tx(p, port) => (0, port.to_string(), p.data().to_vec()),
            Out::Handoff(p, w) => (1, w.to_string(), p.data().to_vec()),
            Out::Drop(p, r) => (2, r.name(), p.data().to_vec()),
            Out::Consumed(p) => (3, String::new(), p.data().to_vec()),
            Out::Held => (4, String::new(), Vec::new()),
        }
    }

    #[test]
    fn a_burst_is_processed_exactly_as_packet_by_packet() {
        // 90 packets (three chunks of the pipeline's 32): neighbours, new and established
        // flows of one client (ours) and of another (handed over), malformed frames, a
        // sessionless ACK, a ping. One core takes them one by one, the other as a burst.
        let owner = owner_of_client(Ipv4Addr::from(CIP), 2);
        let other_client = (1..=250u8)
            .map(|i| [10, 10, 0, i])
            .find(|a| owner_of_client(Ipv4Addr::from(*a), 2) != owner)
            .expect("a client of the other worker");
        let mut pkts: Vec<(VecBuf, u16)> = vec![
            (arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0),
            (arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1),
            (arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1),
        ];
        for port in 40000..40030u16 {
            pkts.push((
                tcp(CLIENT_MAC, PORT0_MAC, CIP, port, VIP, 80, true, false),
                0,
            ));
        }
        for port in 40000..40030u16 {
            pkts.push((
                tcp(CLIENT_MAC, PORT0_MAC, CIP, port, VIP, 80, false, true),
                0,
            ));
        }
        for port in 50000..50010u16 {
            let p = tcp(
                CLIENT_MAC,
                PORT0_MAC,
                other_client,
                port,
                VIP,
                80,
                true,
                false,
            );
            pkts.push((p, 0));
        }
        let mut bad = tcp(CLIENT_MAC, PORT0_MAC, CIP, 41000, VIP, 80, true, false)
            .data()
            .to_vec();
        bad[24] ^= 0xff;
        let mut short = bad.clone();
        short.truncate(30);
        for _ in 0..5 {
            pkts.push((VecBuf::new(64, &bad), 0));
            pkts.push((VecBuf::new(64, &short), 0));
            pkts.push((
                tcp(CLIENT_MAC, PORT0_MAC, CIP, 42000, VIP, 80, false, true),
                0,
            ));
        }
        let mut ping = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CIP, VIP, 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut ping, b"ping")
            .expect("build");
        pkts.push((VecBuf::new(64, &ping), 0));
        for port in 40000..40001u16 {
            pkts.push((
                tcp(CLIENT_MAC, PORT0_MAC, CIP, port, VIP, 80, false, true),
                0,
            ));
        }
        assert_eq!(pkts.len(), 90);

        let mut one = core(FwdMethod::FullNat, owner, 2);
        let mut burst = core(FwdMethod::FullNat, owner, 2);
        let want = same_by_burst(&mut one, &mut burst, pkts, 5);
        // The outcomes are the interesting ones, not all drops.
        let kinds = |k: u8| want.iter().filter(|v| v.0 == k).count();
        assert_eq!(
            kinds(0),
            63,
            "ARP and ping answered, 30 SYNs and 31 ACKs forwarded"
        );
        assert_eq!(kinds(1), 10, "the other client's SYNs handed over");
        assert_eq!(one.counters(), burst.counters());
        assert_eq!(one.conns().len(), burst.conns().len());
        assert_eq!(burst.conns().len(), 30);
    }

    /// A TCP segment with any flags and TTL, built with etherparse.
    #[allow(clippy::too_many_arguments)]
    fn segment(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        s: ([u8; 4], u16),
        d: ([u8; 4], u16),
        flags: &str,
        ttl: u8,
        payload: &[u8],
    ) -> VecBuf {
        let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(s.0, d.0, ttl)
            .tcp(s.1, d.1, 7000, 65535);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'A' => b.ack(9000),
                'F' => b.fin(),
                'R' => b.rst(),
                'P' => b.psh(),
                _ => panic!("flag {f}"),
            };
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("build");
        VecBuf::new(VecBuf::DEFAULT_HEADROOM, &v)
    }

    /// Runs `pkts` (frame, in-port) through `one` packet by packet and through `burst` in
    /// one burst; asserts the same verdicts and output bytes, and the same frames
    /// originated on the way (kind 9, after their packet's verdict); returns the verdicts.
    fn same_by_burst(
        one: &mut Core<VecBuf>,
        burst: &mut Core<VecBuf>,
        pkts: Vec<(VecBuf, u16)>,
        now: u64,
    ) -> Vec<(u8, String, Vec<u8>)> {
        let generated = |port: u16, frame: &[u8]| (9, format!("to port {port}"), frame.to_vec());
        let mut want = Vec::new();
        for (p, port) in &pkts {
            want.push(verdict(one.process(p.clone(), *port, now, true)));
            if let Some((port, len)) = one.take_generated() {
                want.push(generated(port, &one.scratch()[..len]));
            }
        }
        let mut got = Vec::new();
        let ports: Vec<u16> = pkts.iter().map(|(_, port)| *port).collect();
        let frames: Vec<Vec<u8>> = pkts.iter().map(|(p, _)| p.data().to_vec()).collect();
        burst.process_burst(
            pkts.into_iter().map(|(p, _)| p),
            now,
            true,
            // Called only for the packets the full path takes: find the frame's port.
            |p| {
                let i = frames
                    .iter()
                    .position(|f| f == p.data())
                    .expect("a frame of the burst");
                ports[i]
            },
            |e| match e {
                Emit::Packet(out) => got.push(verdict(out)),
                Emit::Generated(port, frame) => got.push(generated(port, frame)),
            },
        );
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "packet {i}");
        }
        want
    }

    #[test]
    fn tunnel_source_is_the_ports_own_address() {
        let mut net = NetConfig::new(1);
        for _ in 0..3 {
            net.ports.push(PortNet {
                mac: PORT0_MAC,
                mtu: 1500,
                csum: ChecksumMode::Software,
            });
        }
        let a = |d: u8| Ipv4Addr::new(10, 20, 0, d);
        // Port 0: a floating address sorting first and the port's own one.
        net.local.insert(a(5), (LocalKind::Dip, 0));
        net.local.insert(a(9), (LocalKind::Dip, 0));
        net.floating.push(a(5));
        // Port 1: two own addresses (the lowest is taken); a VIP on it does not count.
        net.local.insert(a(30), (LocalKind::Dip, 1));
        net.local.insert(a(20), (LocalKind::Dip, 1));
        net.local.insert(a(1), (LocalKind::Vip, 1));
        // Port 2: none.
        assert_eq!(
            tunnel_sources(&net),
            vec![a(9), a(20), Ipv4Addr::UNSPECIFIED]
        );
    }

    #[test]
    fn established_fast_path_has_the_full_paths_effects_in_every_mode() {
        // Whole TCP conversations (handshake, data both ways, FIN, RST, a TTL-1 packet, an
        // unknown flow, a packet of another worker's client) in NAT, FULLNAT, DR and TUN,
        // with one worker and with two, with sync on: one core packet by packet (the full
        // path only), the other in bursts (the fast path wherever it applies). Verdicts,
        // output bytes, counters, per-server traffic, session states and timers and the
        // sync messages must be the same.
        for fwd in [
            FwdMethod::Masq,
            FwdMethod::FullNat,
            FwdMethod::Route,
            FwdMethod::Tunnel,
        ] {
            for workers in [1usize, 2] {
                let me = owner_of_client(Ipv4Addr::from(CIP), workers);
                let mut one = core(fwd, me, workers);
                let mut burst = core(fwd, me, workers);
                for c in [&mut one, &mut burst] {
                    c.set_sync_master(Some(SyncRules::default()));
                }
                let cl = |sp: u16, flags: &str, ttl: u8| {
                    let p = segment(
                        CLIENT_MAC,
                        PORT0_MAC,
                        (CIP, sp),
                        (VIP, 80),
                        flags,
                        ttl,
                        b"GET /",
                    );
                    (p, 0u16)
                };
                let mut pkts = vec![
                    (arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0),
                    (arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1),
                    (arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1),
                ];
                let ports = 40000..40012u16;
                pkts.extend(ports.clone().map(|sp| cl(sp, "S", 64)));
                same_by_burst(&mut one, &mut burst, pkts, 10);

                // The real servers' side of each session (as the full path set it up).
                let sessions: Vec<_> = one
                    .conns()
                    .iter()
                    .map(|(_, s)| (s.cport(), s.out_key()))
                    .collect();
                assert_eq!(sessions.len(), 12, "{fwd:?}/{workers}");
                let rs = |sp: u16, flags: &str| {
                    let k = sessions.iter().find(|(c, _)| *c == sp).expect("session").1;
                    let (IpAddr::V4(s), IpAddr::V4(d)) = (k.saddr.to_ip(), k.daddr.to_ip()) else {
                        panic!("v4")
                    };
                    let mac = if s.octets() == RS1 { RS1_MAC } else { RS2_MAC };
                    let p = segment(
                        mac,
                        PORT1_MAC,
                        (s.octets(), k.sport),
                        (d.octets(), k.dport),
                        flags,
                        64,
                        b"200 OK",
                    );
                    (p, 1u16)
                };
                let replies = matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat);
                let mut pkts = Vec::new();
                for sp in ports.clone() {
                    if replies {
                        pkts.push(rs(sp, "SA"));
                    }
                    pkts.push(cl(sp, "A", 64));
                    pkts.push(cl(sp, "PA", 64));
                    if replies {
                        pkts.push(rs(sp, "PA"));
                    }
                }
                // Endings: FIN from the client, from the server, an RST, a TTL-1 packet.
                pkts.push(cl(40000, "FA", 64));
                if replies {
                    pkts.push(rs(40000, "FA"));
                    pkts.push(rs(40001, "R"));
                }
                pkts.push(cl(40000, "A", 64));
                pkts.push(cl(40002, "R", 64));
                pkts.push(cl(40003, "A", 1));
                pkts.push(cl(45000, "A", 64)); // no session
                if fwd == FwdMethod::Tunnel {
                    // Too big once encapsulated (1500 + 20 > MTU 1500), with DF: refused
                    // with a frag-needed error for the client.
                    let p = segment(
                        CLIENT_MAC,
                        PORT0_MAC,
                        (CIP, 40004),
                        (VIP, 80),
                        "PA",
                        64,
                        &[b'x'; 1460],
                    );
                    pkts.push((p, 0));
                }
                if workers == 2 {
                    let other = (1..=250u8)
                        .map(|i| [10, 10, 0, i])
                        .find(|a| owner_of_client(Ipv4Addr::from(*a), 2) != me)
                        .expect("a client of the other worker");
                    let p = segment(
                        CLIENT_MAC,
                        PORT0_MAC,
                        (other, 40000),
                        (VIP, 80),
                        "A",
                        64,
                        b"x",
                    );
                    pkts.push((p, 0));
                }
                let v = same_by_burst(&mut one, &mut burst, pkts, 20);
                let forwarded = v.iter().filter(|v| v.0 == 0).count();
                let frag_needed = v.iter().filter(|v| v.0 == 9).count();
                assert_eq!(
                    frag_needed,
                    usize::from(fwd == FwdMethod::Tunnel),
                    "{fwd:?}"
                );
                let (want, sent) = match fwd {
                    FwdMethod::Masq | FwdMethod::FullNat => (
                        12 * 4 + 5,
                        "every segment but the TTL-1 one and the strangers'",
                    ),
                    // DR leaves the TTL alone (the packet is delivered, not routed).
                    FwdMethod::Route => (12 * 2 + 4, "every client segment but the stranger's"),
                    _ => (
                        12 * 2 + 3,
                        "every client segment but the TTL-1 one and the stranger's",
                    ),
                };
                assert_eq!(forwarded, want, "{fwd:?}/{workers}: {sent}");
                assert_eq!(one.counters(), burst.counters(), "{fwd:?}/{workers}");
                let traffic = |c: &Core<VecBuf>| c.dest_traffic().collect::<Vec<_>>();
                assert_eq!(traffic(&one), traffic(&burst), "{fwd:?}/{workers}");
                let rows = |c: &Core<VecBuf>| {
                    let mut r: Vec<_> = c.conns().list(30_000).map(|e| e.format_row()).collect();
                    r.sort();
                    r
                };
                assert_eq!(rows(&one), rows(&burst), "{fwd:?}/{workers}");
                assert!(rows(&one).iter().any(|r| r.contains("ESTABLISHED")));
                let sync = |c: &mut Core<VecBuf>| c.take_sync().collect::<Vec<_>>();
                let (s1, s2) = (sync(&mut one), sync(&mut burst));
                assert!(!s1.is_empty(), "sync messages were sent");
                assert_eq!(s1, s2, "{fwd:?}/{workers}");
            }
        }
    }

    #[test]
    fn ping_to_the_vip_is_answered() {
        let mut c = core(FwdMethod::Masq, 0, 1);
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CIP, VIP, 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut v, b"ping")
            .expect("build");
        let (p, port) = tx(c.process(VecBuf::new(64, &v), 0, 0, true));
        assert_eq!(port, 0);
        let s = SlicedPacket::from_ethernet(p.data()).expect("parse");
        let Some(NetSlice::Ipv4(ip)) = s.net else {
            panic!()
        };
        let hdr = ip.header().to_header();
        assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
        assert_eq!(
            (ip.header().source(), ip.header().destination()),
            (VIP, CIP)
        );
        let Some(TransportSlice::Icmpv4(icmp)) = s.transport else {
            panic!()
        };
        assert!(matches!(
            icmp.icmp_type(),
            etherparse::Icmpv4Type::EchoReply(_)
        ));
        let want = icmp.header().icmp_type.calc_checksum(icmp.payload());
        assert_eq!(icmp.checksum(), want, "ICMP checksum");
        assert_eq!(c.counters().echo_replies, 1);
    }

    #[test]
    fn dr_changes_only_the_macs() {
        let mut c = core(FwdMethod::Route, 0, 1);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
        let before = syn.data().to_vec();
        let (p, port) = tx(c.process(syn, 0, 1, true));
        assert_eq!(port, 1);
        assert_eq!(&p.data()[..6], &RS2_MAC);
        assert_eq!(&p.data()[6..12], &PORT1_MAC);
        assert_eq!(&p.data()[12..], &before[12..], "L3 and up untouched");
    }

    #[test]
    fn expiry_returns_fullnat_ports() {
        let mut c = core(FwdMethod::FullNat, 0, 1);
        c.process(arp(2, RS2_MAC, RS2, PORT1_MAC, DIP1), 1, 0, true);
        c.process(arp(2, RS1_MAC, RS1, PORT1_MAC, DIP1), 1, 0, true);
        c.process(arp(1, CLIENT_MAC, CIP, [0; 6], VIP), 0, 0, true);
        let free0: usize = c.laddr_pools().map(|(_, p)| p.free()).sum();
        let syn = tcp(CLIENT_MAC, PORT0_MAC, CIP, 40000, VIP, 80, true, false);
        tx(c.process(syn, 0, 0, true));
        let free1: usize = c.laddr_pools().map(|(_, p)| p.free()).sum();
        assert_eq!(free1 + 1, free0);
        // SYN_RECV lasts 60 s.
        c.tick(61_000, drop);
        let free2: usize = c.laddr_pools().map(|(_, p)| p.free()).sum();
        assert_eq!(free2, free0, "the port came back");
        assert_eq!(c.conns().len(), 0);
    }
}
