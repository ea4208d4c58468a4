//! The dataplane on DPDK: ports, mempool, handoff rings, and one run-to-completion
//! worker per lcore.
//!
//! Each worker loop: adopt a new configuration snapshot if one was published (between
//! bursts), answer control commands from its inbox, take neighbours learned by other
//! workers, then rx burst from each of its queues → [`Core::process_burst`] → buffered tx
//! per port (flushed every loop); packets another worker owns go into per-pair SP/SC rings
//! and the owner processes them after its own queues. Slow work (session expiry, neighbour
//! aging) runs every 10 ms. Nothing on the per-packet path allocates, locks or logs.
//!
//! The control plane ([`Engine`]) publishes snapshots and asks workers for counters and
//! session listings through their inboxes; the workers answer between bursts, so a
//! listing never stops forwarding.
//!
//! - this module: the API rvsd uses ([`Engine`] and its configuration, reports, errors)
//!   and the state the control plane shares with the workers;
//! - `setup`: DPDK bring-up (EAL, mempool, ports and exception taps, handoff rings);
//! - `worker`: the poll loop of one worker.
//!
//! [`Core::process_burst`]: crate::pipeline::Core::process_burst

mod setup;
mod worker;

/// Hooks for the dataplane's own tests: nothing an operator sets, and idle (one relaxed
/// load a worker turn) unless a test sets them.
#[doc(hidden)]
pub mod testing {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// The pause of [`set_turn_gap`], µs.
    static TURN_GAP_US: AtomicU64 = AtomicU64::new(0);

    /// Has every worker pause for `gap`, each turn, between adopting the published
    /// configuration and serving its inbox (zero, the default: no pause). A preempted
    /// worker pauses there too; the tests of commands that must act on the configuration
    /// published with them (gratuitous ARP for a LIP just taken over) widen the window
    /// with it.
    pub fn set_turn_gap(gap: Duration) {
        let us = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
        TURN_GAP_US.store(us, Ordering::Relaxed);
    }

    /// The worker's pause (see [`set_turn_gap`]).
    #[inline]
    pub(super) fn turn_gap() {
        let us = TURN_GAP_US.load(Ordering::Relaxed);
        if us != 0 {
            std::thread::sleep(Duration::from_micros(us));
        }
    }
}

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{bounded, Sender};
use crossbeam::queue::ArrayQueue;

use crate::conn::ConnListing;
use crate::conn::{SyncConn, SyncRules};
use crate::dpdk::{self, lcore, Eal, LcoreId, Mempool, Port, Ring};
use crate::pipeline::{
    Counters, DestTraffic, LocalKind, NeighUpdate, NetConfig, Snapshot, SyncCounters,
};
use crate::route::{Route, Route6};
use crate::service::{self, DestId, ServiceKey};
use crate::steer::sync_owner;
use crate::sync::group::{self as sync_group, PeerReport, PeerTable};
use crate::sync::net::{self as sync_net, Stats as SyncStats, SyncNetConfig};

/// A port of the director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// rvs's name for it (e.g. `dpdk0`).
    pub name: String,
    /// DPDK devargs: a vdev such as `net_af_packet0,iface=veth0` or a PCI address.
    pub devargs: String,
    /// Addresses the director owns on this port (DIPs), with prefix lengths; each makes
    /// a connected route.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// The port's IPv6 addresses (DIPs) with prefix lengths, as `addrs`: each makes a
    /// connected IPv6 route; all but the first are floating (answered and announced only
    /// while active). The first is the source of the port's neighbour solicitations
    /// (without one, the link-local address of the port's MAC, [`link_local`]).
    pub addrs6: Vec<(Ipv6Addr, u8)>,
    /// L3 MTU.
    pub mtu: u16,
    /// The port's 802.1Q VLAN (1..=4094): frames of that VID are accepted, every frame
    /// leaving the port is tagged with it, and frames with no tag or another are dropped
    /// (`drop vlan`). The exception tap sees the frames untagged. `None`: untagged frames
    /// only.
    pub vlan: Option<u16>,
    /// Exception path: the name of a kernel tap interface (DPDK `net_tap`, created with
    /// the port's MAC) that receives what the pipeline does not own on this port (ARP not
    /// answered by the dataplane, traffic for no VIP/LIP/DIP and no session, other
    /// protocols: VRRP, BGP, SSH to a host address, ...) and whose output leaves through
    /// this port unchanged. `None`: such packets are dropped.
    pub kernel_iface: Option<String>,
}

/// How to start the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// EAL arguments (see [`dpdk::default_eal_args`]); vdevs of `ports` are hot-plugged
    /// after EAL starts, so they need not be listed here.
    pub eal_args: Vec<String>,
    /// The ports, in rvs's order (index = port number in routes and snapshots).
    pub ports: Vec<PortSpec>,
    /// Worker lcores.
    pub workers: usize,
    /// Sessions per worker.
    pub conn_capacity: u32,
    /// The sysctl `expire_nodest_conn` (see [`crate::conn::ConnConfig`]).
    pub expire_nodest_conn: bool,
    /// The sysctl `expire_quiescent_template` (see [`crate::conn::ConnConfig`]).
    pub expire_quiescent_template: bool,
    /// New sessions each worker may create per second (0: no budget); above it a packet
    /// that would open a session is dropped as `new-session-budget`. Fixed for the
    /// engine's life (`[sessions]` changes need a restart).
    pub new_sessions_per_second: u32,
    /// Each worker's fragment table: datagrams tracked, fragments held, timeout
    /// (`[sessions] frag_*`).
    pub frag: crate::frag::FragConfig,
    /// The sysctl `sloppy_tcp` ([`crate::conn::ConnConfig::sloppy_tcp`]); changed later
    /// with [`Engine::set_sloppy_tcp`].
    pub sloppy_tcp: bool,
    /// The SYN proxy's `auto` thresholds: TCP SYNs per second and
    /// worker, and percent of the session table, above which `auto` services are
    /// proxied (`[sessions] syn_proxy_rate`, `syn_proxy_fill`).
    pub syn_proxy_auto: (u32, u32),
    /// Idle workers that sleep: the longest pause (µs) of a worker whose polls keep
    /// finding every queue empty (pauses of 4 µs after 256 empty turns, doubling up to
    /// this bound; back to full polling on the first packet); 0: pure polling.
    pub idle_sleep_max_us: u32,
    /// Shed SYNs to SYN-proxied services while a worker is overloaded (its receive
    /// bursts keep coming back full; see [`crate::pipeline::Core::set_overloaded`]).
    /// `rvsd` always sheds; the benchmark's cookie measurement, whose source is an
    /// always-full queue, turns it off.
    pub syn_shed: bool,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// Static routes (connected routes of the port addresses are added automatically).
    pub routes: Vec<Route>,
    /// Static IPv6 routes (connected routes of the ports' IPv6 addresses are added
    /// automatically); a gateway may be link-local (it is resolved on the route's port).
    pub routes6: Vec<Route6>,
    /// FULLNAT local port range.
    pub lport_range: (u16, u16),
    /// Static neighbours (address of either family, MAC): never resolved by ARP or
    /// neighbour discovery, never aged (benchmarks, and next hops that do not answer).
    pub static_neighbours: Vec<(IpAddr, [u8; 6])>,
    /// Firewall-mark rules for packets without a session (`[[marks]]`); every snapshot
    /// carries them. A rule's single-host destination (`/32`) is answered as a VIP while
    /// a fwmark service of its mark exists.
    pub marks: crate::mark::MarkRules,
}

impl EngineConfig {
    /// An engine of `workers` workers with `conn_capacity` sessions each on `ports`, and
    /// everything else at the engine's defaults: no expiry sysctls, no new-session
    /// budget, the default fragment table, strict TCP, the SYN proxy's default `auto`
    /// thresholds, pure polling, SYN shedding on, as many mbufs as the queues need, no
    /// static routes, neighbours or mark rules, the default FULLNAT port range.
    pub fn new(
        eal_args: Vec<String>,
        ports: Vec<PortSpec>,
        workers: usize,
        conn_capacity: u32,
    ) -> EngineConfig {
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
                crate::pipeline::SYN_PROXY_DEFAULT_RATE,
                crate::pipeline::SYN_PROXY_DEFAULT_FILL,
            ),
            idle_sleep_max_us: 0,
            syn_shed: true,
            mbufs: 0,
            routes: Vec::new(),
            routes6: Vec::new(),
            lport_range: crate::laddr::DEFAULT_PORT_RANGE,
            static_neighbours: Vec::new(),
            marks: Default::default(),
        }
    }
}

/// What one worker reports when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// Packet counters and drops by reason.
    pub counters: Counters,
    /// Packets this worker received from other workers' handoffs.
    pub handoff_in: u64,
    /// Packets that could not be handed off (ring full) or sent (tx queue full).
    pub tx_dropped: u64,
    /// Exception path: packets passed to a port's kernel tap (also counted as drops of
    /// their reason, `not-for-us` or `unsupported`, or as consumed ARP).
    pub to_kernel: u64,
    /// Exception path: packets the kernel sent on a tap, transmitted on its port.
    pub from_kernel: u64,
    /// Per real server: ActiveConn, InActConn, PersistConn and traffic.
    pub dests: Vec<(DestId, [u32; 3], DestTraffic)>,
    /// Sessions (and templates) in the table.
    pub sessions: u32,
    /// FULLNAT: per service and LIP, ports in use and conflicts (ports passed over
    /// because a live session held them toward the real server: [`crate::laddr::LaddrPool::alloc`]).
    pub laddrs: Vec<(ServiceKey, IpAddr, u32, u64)>,
    /// Sessions created since the worker started (benchmarks: new sessions per second).
    pub sessions_created: u64,
    /// Session table capacity of this worker.
    pub conn_capacity: u32,
    /// Bytes the session table holds (slab, session index, timer wheel).
    pub conn_memory_bytes: usize,
    /// TSC cycles the poll loop has run (every turn).
    pub poll_cycles: u64,
    /// TSC cycles of the turns that received packets (from a port, a tap or another
    /// worker); `busy_cycles / poll_cycles` over an interval is the busy ratio.
    pub busy_cycles: u64,
    /// TSC cycles of the turns that made at least one session (except a turn that also
    /// adopted a configuration, and a turn of 100 µs or more, in which the thread was
    /// preempted): with `making_sessions`, the rate at which the worker made sessions
    /// while it was making them, however short that was (benchmarks of a few thousand
    /// sessions).
    pub making_cycles: u64,
    /// Sessions made in the turns `making_cycles` counts.
    pub making_sessions: u64,
    /// The busy ratio of the last full second, in parts per million.
    pub busy_ppm: u32,
    /// Pauses the worker took while idle (`[workers] idle_sleep_max_us`).
    pub idle_sleeps: u64,
}

/// A control command for one worker, answered between bursts.
enum Command {
    /// Send the worker's [`WorkerReport`].
    Report(Sender<WorkerReport>),
    /// Send every session of the worker.
    Connections(Sender<Vec<ConnListing>>),
    /// `ipvsadm --set tcp tcpfin udp` (0 keeps a value).
    SetTimeouts(u32, u32, u32),
    /// Start (`Some`) or stop emitting sync records.
    SyncMaster(Option<SyncRules>),
    /// Send the worker's index and sync counters.
    SyncCounters(Sender<(usize, SyncCounters)>),
    /// Send gratuitous ARP for the announced addresses, those of the configuration
    /// published before the command (the worker adopts it first).
    Announce,
    /// Bulk sync: the sync records of the next chunk of the session table from the
    /// cursor (a slab slot), in the buffer given, and the cursor to go on from (`None`:
    /// the end of the table).
    BulkChunk(u32, Vec<SyncConn>, Sender<(Vec<SyncConn>, Option<u32>)>),
}

/// Bulk sync: records a worker puts in one chunk at most.
const BULK_CHUNK_RECORDS: usize = 256;
/// Bulk sync: session slots a worker looks at for one chunk at most (a sparse table
/// answers in several chunks rather than stalling its loop).
const BULK_CHUNK_SLOTS: usize = 4096;
/// How often the bulk sync thread looks for peers that came up.
const BULK_POLL: Duration = Duration::from_millis(50);

/// Capacity of each worker's queue to the sync thread and from the receiving thread.
const SYNC_QUEUE: usize = 16384;
/// Capacity of each worker's command inbox.
const INBOX_CAPACITY: usize = 64;
/// Capacity of each worker's queue of neighbours learned by the other workers.
const NEIGH_QUEUE: usize = 4096;
/// How long [`Engine`] waits for a worker's answer to a command.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// One sync daemon's state for metrics: its counters (kept across restarts of the
/// daemon, so they only grow while rvsd runs), whether it runs, and its backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemonReport {
    /// Whether the daemon is running.
    pub running: bool,
    /// Its counters by name ([`SyncStats::snapshot`]).
    pub counters: Vec<(&'static str, u64)>,
    /// Records waiting in the workers' queues: for the master, records the workers emitted
    /// that the sync thread has not sent yet; for the backup, records received that the
    /// workers have not installed yet.
    pub backlog: u64,
    /// Backup: milliseconds since the Unix epoch of the last message received (`None`:
    /// none yet).
    pub last_message_unix_ms: Option<u64>,
    /// Whether the running daemon has the sync group's key (signs or checks messages).
    pub authenticated: bool,
}

/// The sync daemons and the workers' sync counters, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The master (sending) daemon.
    pub master: SyncDaemonReport,
    /// The backup (receiving) daemon.
    pub backup: SyncDaemonReport,
    /// Per worker, by worker index (a worker that did not answer in time is absent).
    pub workers: Vec<(usize, SyncCounters)>,
    /// Whether the director is a standby (VIPs and LIPs not answered).
    pub passive: bool,
    /// Active/active sync: the group's peers, in the list's order (empty outside a
    /// group).
    pub peers: Vec<PeerReport>,
    /// Active/active sync: the dead peers' LIPs this director holds, with the peer each
    /// belongs to ([`Engine::group_tick`]).
    pub held_lips: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// A dead peer's LIP this director holds, and that peer: (LIP, peer).
pub type HeldLip = (Ipv4Addr, Ipv4Addr);

/// A running sync thread.
struct SyncThread {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    stats: Arc<SyncStats>,
    cfg: SyncNetConfig,
}

impl SyncThread {
    /// Spawns thread `name` running `body` until `stop` is set.
    fn spawn(
        name: &str,
        cfg: SyncNetConfig,
        stats: Arc<SyncStats>,
        body: impl FnOnce(&SyncNetConfig, &AtomicBool, &SyncStats) + Send + 'static,
    ) -> Result<SyncThread, EngineError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stt) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&cfg, &st, &stt))
            .map_err(EngineError::SyncThread)?;
        Ok(SyncThread {
            stop,
            handle: Some(handle),
            stats,
            cfg,
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What the control plane shares with the workers.
struct Shared {
    stop: AtomicBool,
    generation: AtomicU64,
    snapshot: Mutex<Option<Snapshot>>,
    inboxes: Vec<ArrayQueue<Command>>,
    neigh: Vec<ArrayQueue<NeighUpdate>>,
    /// rings[src * workers + dst]
    rings: Vec<Ring>,
    /// DPDK port id -> rvs port index (indexed by port id; `None`: not ours).
    port_index: Vec<Option<u16>>,
    ports: Vec<Port>,
    rx_queues: Vec<u16>,
    /// Exception-path taps; output index of tap `k` is `ports.len() + k`.
    taps: Vec<Port>,
    /// Per tap: its RX queues and the rvs port it belongs to.
    tap_rx_queues: Vec<u16>,
    tap_port: Vec<u16>,
    /// Per rvs port: the output index of its tap.
    tap_of: Vec<Option<usize>>,
    /// Source address of ARP requests per port.
    arp_src: Mutex<Vec<Option<Ipv4Addr>>>,
    /// Source address of neighbour solicitations per port: its first IPv6 address, or
    /// the link-local address of its MAC.
    ns_src: Vec<Ipv6Addr>,
    workers: usize,
    conn_capacity: u32,
    expire_nodest_conn: bool,
    expire_quiescent_template: bool,
    new_sessions_per_second: u32,
    frag: crate::frag::FragConfig,
    syn_proxy_auto: (u32, u32),
    idle_sleep_max_us: u32,
    /// [`EngineConfig::syn_shed`], changed with [`Engine::set_syn_shed`].
    syn_shed: AtomicBool,
    static_neighbours: Vec<(IpAddr, [u8; 6])>,
    /// Per worker: sync records for the sync thread (master).
    sync_out: Arc<Vec<ArrayQueue<SyncConn>>>,
    /// Per worker: received sessions to install (backup).
    sync_in: Vec<ArrayQueue<SyncConn>>,
}

impl Shared {
    /// Output `i`: a port, or (from `ports.len()` on) an exception tap.
    #[inline]
    fn out_port(&self, i: usize) -> Option<&Port> {
        self.ports
            .get(i)
            .or_else(|| self.taps.get(i.wrapping_sub(self.ports.len())))
    }

    /// The rvs port index of DPDK port `id`, if it is one of ours.
    #[inline]
    fn port_of(&self, id: u16) -> Option<u16> {
        self.port_index.get(usize::from(id)).copied().flatten()
    }
}

/// The running dataplane.
pub struct Engine {
    shared: Arc<Shared>,
    lcores: Vec<LcoreId>,
    pool: Arc<Mempool>,
    base: NetConfig,
    /// The TUN servers checked through a VIP (VIP, RIP): [`NetConfig::probe_tunnels`].
    probe_servers: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// The ports' connected routes (one per address), kept to rebuild the route table
    /// when the static routes change ([`Engine::set_network`]).
    connected: Vec<Route>,
    /// The ports' connected IPv6 routes (one per IPv6 address).
    connected6: Vec<Route6>,
    /// rvs's port names, by port index.
    port_names: Vec<String>,
    generation: u64,
    stopped: bool,
    sync_master: Option<SyncThread>,
    sync_backup: Option<SyncThread>,
    /// Active/active sync: the thread sending bulk syncs to peers that come up (runs with
    /// the master).
    sync_bulk: Option<SyncThread>,
    /// The sync daemons' counters, kept across their restarts.
    master_stats: Arc<SyncStats>,
    backup_stats: Arc<SyncStats>,
    /// Active/active sync: the group's peers, used by the daemons started while it is set.
    sync_group: Option<Arc<PeerTable>>,
    /// The LIPs of this director's own pools (the last [`Engine::publish`]).
    own_lips: Vec<Ipv4Addr>,
    /// The dead peers' LIPs this director holds, with their peers ([`Engine::group_tick`]).
    held_lips: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.lcores.len())
            .finish()
    }
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// DPDK refused something.
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    /// EAL has fewer worker lcores than the configuration asks workers.
    #[error(
        "{workers} workers need {workers} worker lcores; EAL has {lcores} (give EAL more lcores)"
    )]
    NotEnoughLcores {
        /// Workers asked for.
        workers: usize,
        /// Worker lcores EAL has.
        lcores: usize,
    },
    /// A port's driver has fewer tx queues than there are workers (each needs its own).
    #[error("{port}: {workers} workers need {workers} tx queues, the driver has {max}")]
    NotEnoughTxQueues {
        /// The port, as rvs names it (with its devargs or tap interface).
        port: String,
        /// Workers asked for.
        workers: usize,
        /// Tx queues the driver has.
        max: u16,
    },
    /// A sync daemon of this role (master or backup) is already running.
    #[error("Daemon has already run")]
    SyncRunning,
    /// The sync daemon's socket could not be made.
    #[error("sync {role} socket: {source}")]
    SyncSocket {
        /// `master` or `backup`.
        role: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The sync daemon's thread could not be spawned.
    #[error("sync thread: {0}")]
    SyncThread(#[source] std::io::Error),
}

impl Engine {
    /// Starts EAL (unless already started in this process), the ports and the workers.
    pub fn start(cfg: &EngineConfig) -> Result<Engine, EngineError> {
        Engine::start_with_data_room(cfg, Mempool::DEFAULT_DATA_ROOM)
    }

    /// [`Engine::start`] with `data_room` bytes per mbuf (headroom included) instead of
    /// [`Mempool::DEFAULT_DATA_ROOM`]. For the throughput benchmark: `net_pcap` with
    /// `infinite_rx=1` keeps its whole capture in mbufs of the engine's pool, so small
    /// frames with a small data room let a million-flow capture fit in hugepages.
    pub fn start_with_data_room(cfg: &EngineConfig, data_room: u16) -> Result<Engine, EngineError> {
        let workers = cfg.workers.max(1);
        Eal::init_or_get(&cfg.eal_args)?;
        let lcores = setup::worker_lcores(workers)?;
        let pool = Arc::new(setup::mempool(cfg, workers, data_room)?);
        let setup = setup::Setup {
            cfg,
            workers,
            pool: &pool,
        };
        let ports = setup.open_ports()?;
        let taps = setup.open_taps(&ports)?;
        let rings = setup::handoff_rings(workers)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            snapshot: Mutex::new(None),
            inboxes: queues(workers, INBOX_CAPACITY),
            neigh: queues(workers, NEIGH_QUEUE),
            rings,
            port_index: ports.port_index,
            ports: ports.ports,
            rx_queues: ports.rx_queues,
            taps: taps.taps,
            tap_rx_queues: taps.rx_queues,
            tap_port: taps.port,
            tap_of: taps.of_port,
            arp_src: Mutex::new(ports.arp_src),
            ns_src: ports.ns_src,
            workers,
            conn_capacity: cfg.conn_capacity,
            expire_nodest_conn: cfg.expire_nodest_conn,
            expire_quiescent_template: cfg.expire_quiescent_template,
            new_sessions_per_second: cfg.new_sessions_per_second,
            frag: cfg.frag,
            syn_proxy_auto: cfg.syn_proxy_auto,
            idle_sleep_max_us: cfg.idle_sleep_max_us,
            syn_shed: AtomicBool::new(cfg.syn_shed),
            static_neighbours: cfg.static_neighbours.clone(),
            sync_out: Arc::new(queues(workers, SYNC_QUEUE)),
            sync_in: queues(workers, SYNC_QUEUE),
        });
        for (w, &lc) in lcores.iter().enumerate() {
            let sh = shared.clone();
            let pool = pool.clone();
            lcore::launch(lc, move || {
                worker::run(w, &sh, &pool);
                0
            })?;
        }
        let mut base = ports.net;
        base.sloppy_tcp = cfg.sloppy_tcp;
        Ok(Engine {
            shared,
            lcores,
            pool,
            base,
            probe_servers: Vec::new(),
            connected: connected_routes(cfg),
            connected6: connected_routes6(cfg),
            port_names: cfg.ports.iter().map(|p| p.name.clone()).collect(),
            generation: 0,
            stopped: false,
            sync_master: None,
            sync_backup: None,
            sync_bulk: None,
            master_stats: Arc::new(SyncStats::default()),
            backup_stats: Arc::new(SyncStats::default()),
            sync_group: None,
            own_lips: Vec::new(),
            held_lips: Vec::new(),
        })
    }

    /// The ports' MACs, by rvs port index.
    pub fn port_macs(&self) -> Vec<[u8; 6]> {
        self.base.ports.iter().map(|p| p.mac).collect()
    }

    /// Mbufs currently allocated from the pool (in queues, rings, held, in flight).
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use()
    }

    /// Buffers in the mbuf pool.
    pub fn mbuf_pool_size(&self) -> u32 {
        self.pool.size()
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// rvs's port names, by port index.
    pub fn port_names(&self) -> &[String] {
        &self.port_names
    }

    /// Port counters by rvs port index, `None` for a port whose driver did not answer
    /// (for metrics, where a missing reading must not look like a reset to zero).
    pub fn port_stats_read(&self) -> Vec<Option<dpdk::PortStats>> {
        self.shared.ports.iter().map(|p| p.stats().ok()).collect()
    }

    /// Every worker's report, with its sync counters, and the sync daemons' state: what
    /// metrics are made of, asked of the workers in one round.
    pub fn sync_report(&self) -> SyncReport {
        let backlog = |qs: &[ArrayQueue<SyncConn>]| qs.iter().map(|q| q.len() as u64).sum();
        let daemon = |t: &Option<SyncThread>, stats: &SyncStats, backlog: u64| {
            let last = stats.last_recv_unix_ms.load(Ordering::Relaxed);
            SyncDaemonReport {
                running: t.is_some(),
                counters: stats.snapshot(),
                backlog,
                last_message_unix_ms: (last != 0).then_some(last),
                authenticated: t.as_ref().is_some_and(|t| t.cfg.key.is_some()),
            }
        };
        let workers = self.ask(Command::SyncCounters);
        SyncReport {
            master: daemon(
                &self.sync_master,
                &self.master_stats,
                backlog(&self.shared.sync_out),
            ),
            backup: daemon(
                &self.sync_backup,
                &self.backup_stats,
                backlog(&self.shared.sync_in),
            ),
            workers,
            passive: self.base.passive,
            peers: self.sync_peers(),
            held_lips: self.held_lips.clone(),
        }
    }

    /// Whether this director has received its sync group's sessions
    /// ([`PeerTable::joined`]: it has listened long enough to hear every peer up, and each
    /// of them has completed its bulk sync to it); true outside a group.
    pub fn sync_joined(&self) -> bool {
        let now = sync_net::unix_ms(std::time::SystemTime::now());
        self.sync_group
            .as_ref()
            .is_none_or(|g| g.joined(std::time::Instant::now(), now))
    }

    /// The sync group's peers up whose bulk sync to this director is not complete.
    pub fn sync_bulk_pending(&self) -> Vec<Ipv4Addr> {
        let now = sync_net::unix_ms(std::time::SystemTime::now());
        self.sync_group
            .as_ref()
            .map(|g| g.bulk_pending(now))
            .unwrap_or_default()
    }

    /// The group's peers and their state now (empty outside a group).
    pub fn sync_peers(&self) -> Vec<PeerReport> {
        let now = sync_net::unix_ms(std::time::SystemTime::now());
        self.sync_group
            .as_ref()
            .map(|g| g.report(now))
            .unwrap_or_default()
    }

    /// Active/active sync ([`crate::sync::group`]): sync daemons started from now on send
    /// to every peer of `group` (a heartbeat when idle) and accept messages only from
    /// them; `None` (the default): the kernel's master and backup. Daemons already
    /// running keep what they had.
    pub fn set_sync_group(&mut self, group: Option<PeerTable>) {
        self.sync_group = group.map(Arc::new);
        self.tell_group_layout();
        let member = self.sync_group.is_some();
        if self.base.sync_group != member {
            self.base.sync_group = member;
            if let Some(snap) = read_locked(&self.shared.snapshot) {
                let mut net = (*snap.net).clone();
                net.sync_group = member;
                self.install(snap.services, Arc::new(net));
            }
        }
    }

    /// This director's hello for its group: worker count, port range, own LIPs.
    fn tell_group_layout(&self) {
        if let Some(g) = &self.sync_group {
            g.set_local(crate::sync::wire::Hello {
                workers: u16::try_from(self.shared.workers).unwrap_or(u16::MAX),
                lport_range: self.base.lport_range,
                lips: self.own_lips.clone(),
                incarnation: sync_group::incarnation(),
                bulk_done_for: 0,
            });
        }
    }

    /// The dead peers' LIPs this director holds, with the peer each belongs to.
    pub fn held_lips(&self) -> &[(Ipv4Addr, Ipv4Addr)] {
        &self.held_lips
    }

    /// Active/active sync: takes over the LIPs of the peers that went down and releases
    /// those of the peers that came back ([`PeerTable::lips_to_hold`]); call every few
    /// hundred milliseconds. A change is published at once (the held LIPs are answered
    /// for, ARP and replies, as local LIPs; no session is opened on them) and newly held
    /// LIPs are announced with gratuitous ARP. Returns the LIPs taken and released.
    pub fn group_tick(&mut self) -> (Vec<HeldLip>, Vec<HeldLip>) {
        let Some(g) = &self.sync_group else {
            return (Vec::new(), Vec::new());
        };
        let now = sync_net::unix_ms(std::time::SystemTime::now());
        let want = g.lips_to_hold(now);
        if want == self.held_lips {
            return (Vec::new(), Vec::new());
        }
        let taken: Vec<_> = want
            .iter()
            .filter(|x| !self.held_lips.contains(x))
            .copied()
            .collect();
        let released: Vec<_> = self
            .held_lips
            .iter()
            .filter(|x| !want.contains(x))
            .copied()
            .collect();
        self.held_lips = want;
        if let Some(snap) = read_locked(&self.shared.snapshot) {
            let mut net = (*snap.net).clone();
            for (l, _) in &released {
                if !self.own_lips.contains(l)
                    && matches!(net.local.get(l), Some((LocalKind::Lip, _)))
                {
                    net.local.remove(l);
                }
            }
            self.add_held(&mut net);
            self.install(snap.services, Arc::new(net));
        }
        if !taken.is_empty() && !self.base.passive {
            self.announce();
        }
        (taken, released)
    }

    /// Adds the held LIPs to `net`'s local addresses (as LIPs, on the port their route
    /// leaves by) where nothing else has them.
    fn add_held(&self, net: &mut NetConfig) {
        for (l, _) in &self.held_lips {
            let port = net.routes.lookup(*l).map_or(0, |nh| nh.port);
            net.local.entry(*l).or_insert((LocalKind::Lip, port));
        }
    }

    /// Port counters, by rvs port index.
    pub fn port_stats(&self) -> Vec<dpdk::PortStats> {
        self.shared
            .ports
            .iter()
            .map(|p| p.stats().unwrap_or_default())
            .collect()
    }

    /// Publishes a new configuration: services, the VIPs to answer for (with the
    /// single-host destinations of the mark rules of its fwmark services), and the FULLNAT
    /// LIP pools. Workers adopt it between bursts.
    pub fn publish(
        &mut self,
        services: Arc<service::ServiceSet>,
        vips: &[IpAddr],
        former_vips: &[IpAddr],
        laddrs: HashMap<ServiceKey, Vec<IpAddr>>,
    ) {
        let mut net = self.base.clone();
        let v4 = |a: &IpAddr| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        };
        let v6 = |a: &IpAddr| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        };
        net.former_vips = former_vips
            .iter()
            .filter(|v| !vips.contains(v))
            .filter_map(v4)
            .collect();
        net.former_vips6 = former_vips
            .iter()
            .filter(|v| !vips.contains(v))
            .filter_map(v6)
            .collect();
        let port_for = |a: IpAddr| -> u16 {
            match a {
                IpAddr::V4(a) => net.routes.lookup(a).map_or(0, |nh| nh.port),
                IpAddr::V6(a) => net.routes.lookup6(a).map_or(0, |nh| nh.port),
            }
        };
        let mut extra = Vec::new();
        for &v in vips {
            extra.push((v, (LocalKind::Vip, port_for(v))));
        }
        for v in net.marks.vips(&services) {
            extra.push((v.into(), (LocalKind::Vip, port_for(v.into()))));
        }
        for lips in laddrs.values() {
            for &l in lips {
                extra.push((l, (LocalKind::Lip, port_for(l))));
            }
        }
        for (a, k) in extra {
            match a {
                IpAddr::V4(a) => net.local.entry(a).or_insert(k),
                IpAddr::V6(a) => net.local6.entry(a).or_insert(k),
            };
        }
        // The group's LIP takeover knows IPv4 LIPs only.
        let mut own: Vec<Ipv4Addr> = laddrs.values().flatten().filter_map(v4).collect();
        own.sort();
        own.dedup();
        self.own_lips = own;
        self.tell_group_layout();
        self.add_held(&mut net);
        net.laddrs = laddrs.into_iter().collect();
        net.probe_tunnels = crate::pipeline::probe_tunnels(&services, &self.probe_servers);
        self.install(services, Arc::new(net));
    }

    /// Replaces the static routes (IPv4 and IPv6) and the mark rules (a configuration
    /// reload). Workers see them with the next [`Engine::publish`], together with its
    /// services.
    pub fn set_network(
        &mut self,
        routes: Vec<Route>,
        routes6: Vec<Route6>,
        marks: crate::mark::MarkRules,
    ) {
        let mut all = routes;
        all.extend(self.connected.iter().cloned());
        let mut all6 = routes6;
        all6.extend(self.connected6.iter().cloned());
        self.base.routes = crate::route::RouteTable::new(all).with_v6(all6);
        self.base.marks = marks;
    }

    /// Turns the shedding of SYNs to SYN-proxied services by overloaded workers on or off
    /// ([`EngineConfig::syn_shed`]); workers see it at their next poll.
    pub fn set_syn_shed(&self, on: bool) {
        self.shared.syn_shed.store(on, Ordering::Relaxed);
    }

    /// Sets the sysctl `sloppy_tcp` (a configuration reload). Workers see it with the next
    /// [`Engine::publish`].
    pub fn set_sloppy_tcp(&mut self, on: bool) {
        self.base.sloppy_tcp = on;
    }

    /// Sets the global ACL ([`NetConfig::acl`]). Workers see it with the next
    /// [`Engine::publish`], together with its services (and their ACLs): one snapshot.
    pub fn set_acl(&mut self, acl: Arc<crate::acl::Acl>) {
        self.base.acl = acl;
    }

    /// Sets the TUN real servers the host's health checks reach through a VIP, as (VIP,
    /// RIP): the probes the kernel sends to their probe MACs are encapsulated to them
    /// ([`crate::pipeline::probe_mac`]). Workers see them with the next
    /// [`Engine::publish`].
    pub fn set_probe_servers(&mut self, servers: Vec<(Ipv4Addr, Ipv4Addr)>) {
        self.probe_servers = servers;
    }

    /// The name of the port the routes send `addr` out of (where a local address on it
    /// answers ARP or neighbour solicitations), if any.
    pub fn port_name_toward(&self, addr: IpAddr) -> Option<&str> {
        let port = match addr {
            IpAddr::V4(a) => self.base.routes.lookup(a)?.port,
            IpAddr::V6(a) => self.base.routes.lookup6(a)?.port,
        };
        self.port_names.get(usize::from(port)).map(String::as_str)
    }

    /// Stores the next generation's snapshot of `services` and `net` for the workers.
    fn install(&mut self, services: Arc<service::ServiceSet>, net: Arc<NetConfig>) {
        self.generation += 1;
        let snap = Snapshot {
            generation: self.generation,
            services,
            net,
        };
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(snap);
        self.shared
            .generation
            .store(self.generation, Ordering::Release);
    }

    /// Puts a command made by `make` in every worker's inbox (dropped where it is full).
    fn tell_all(&self, make: impl Fn() -> Command) {
        for inbox in &self.shared.inboxes {
            let _ = inbox.push(make());
        }
    }

    fn ask<T: Send + 'static>(&self, make: impl Fn(Sender<T>) -> Command) -> Vec<T> {
        let mut rxs = Vec::new();
        for inbox in &self.shared.inboxes {
            let (tx, rx) = bounded(1);
            if inbox.push(make(tx)).is_ok() {
                rxs.push(rx);
            }
        }
        rxs.into_iter()
            .filter_map(|rx| rx.recv_timeout(ASK_TIMEOUT).ok())
            .collect()
    }

    /// The service addresses the workers answer for: every VIP and FULLNAT local
    /// address among the local addresses of the published snapshot (whoever put them
    /// there: services, mark rules, LIP pools), sorted; none while passive (a standby
    /// answers none of them). What a director announces to its routers.
    pub fn service_addresses(&self) -> Vec<IpAddr> {
        let Some(snap) = read_locked(&self.shared.snapshot) else {
            return Vec::new();
        };
        if snap.net.passive {
            return Vec::new();
        }
        let service = |k: &LocalKind| matches!(k, LocalKind::Vip | LocalKind::Lip);
        let mut v: Vec<IpAddr> = snap
            .net
            .local
            .iter()
            .filter(|(_, (k, _))| service(k))
            .map(|(a, _)| IpAddr::V4(*a))
            .chain(
                snap.net
                    .local6
                    .iter()
                    .filter(|(_, (k, _))| service(k))
                    .map(|(a, _)| IpAddr::V6(*a)),
            )
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether the dataplane is healthy: not stopped, and every worker answers a
    /// command within 2 s (a worker stuck in its loop, or gone, does not).
    pub fn healthy(&self) -> bool {
        !self.stopped && self.reports().len() == self.shared.workers
    }

    /// Every worker's report.
    pub fn reports(&self) -> Vec<WorkerReport> {
        self.ask(Command::Report)
    }

    /// Every session of every worker (`ipvsadm -Lnc`).
    pub fn connections(&self) -> Vec<ConnListing> {
        self.ask(Command::Connections)
            .into_iter()
            .flatten()
            .collect()
    }

    /// `ipvsadm --set tcp tcpfin udp` on every worker (0 keeps a value).
    pub fn set_timeouts(&self, tcp: u32, tcpfin: u32, udp: u32) {
        self.tell_all(|| Command::SetTimeouts(tcp, tcpfin, udp));
    }

    /// Starts the sync master: workers emit records by the IPVS rules into their queues,
    /// a thread batches them into messages and sends them (see [`crate::sync`]).
    pub fn start_sync_master(
        &mut self,
        cfg: SyncNetConfig,
        rules: SyncRules,
    ) -> Result<(), EngineError> {
        if self.sync_master.is_some() {
            return Err(EngineError::SyncRunning);
        }
        let (sock, dest) =
            sync_net::master_socket(&cfg).map_err(|source| EngineError::SyncSocket {
                role: "master",
                source,
            })?;
        let (dests, heartbeat) = match &self.sync_group {
            Some(g) => (
                g.peers()
                    .iter()
                    .map(|p| std::net::SocketAddr::from((p.addr, cfg.port)))
                    .collect(),
                Some(sync_group::HEARTBEAT),
            ),
            None => (vec![dest], None),
        };
        let queues = self.shared.sync_out.clone();
        let stats = self.master_stats.clone();
        let group = self.sync_group.clone();
        let signer = sync_net::shared_signer(&cfg).map(Arc::new);
        let bulk = match &self.sync_group {
            Some(g) => {
                let (bsock, _) =
                    sync_net::master_socket(&cfg).map_err(|source| EngineError::SyncSocket {
                        role: "master",
                        source,
                    })?;
                let (g, sh, sg) = (g.clone(), self.shared.clone(), signer.clone());
                Some(SyncThread::spawn(
                    "rvs-sync-bulk",
                    cfg,
                    stats.clone(),
                    move |cfg, stop, stats| {
                        run_bulk_syncs(&bsock, cfg, &g, &sh, sg.as_deref(), stop, stats);
                    },
                )?)
            }
            None => None,
        };
        let master = SyncThread::spawn("rvs-sync-master", cfg, stats, move |cfg, stop, stats| {
            sync_net::run_master_signed(
                &sock,
                &dests,
                cfg,
                &queues,
                stop,
                stats,
                heartbeat,
                signer.as_deref(),
                group.as_deref(),
            )
        });
        let thread = match master {
            Ok(t) => t,
            Err(e) => {
                if let Some(mut b) = bulk {
                    b.stop();
                }
                return Err(e);
            }
        };
        self.tell_all(|| Command::SyncMaster(Some(rules)));
        self.sync_master = Some(thread);
        self.sync_bulk = bulk;
        Ok(())
    }

    /// Stops the sync master (workers stop emitting; queued records are sent) and, in a
    /// group, its bulk syncs.
    pub fn stop_sync_master(&mut self) {
        self.tell_all(|| Command::SyncMaster(None));
        if let Some(mut t) = self.sync_bulk.take() {
            t.stop();
        }
        if let Some(mut t) = self.sync_master.take() {
            t.stop();
        }
    }

    /// Starts the sync backup: a thread receives messages and hands each session to the
    /// worker that owns it here ([`crate::steer::sync_owner`]), which installs it.
    pub fn start_sync_backup(&mut self, cfg: SyncNetConfig) -> Result<(), EngineError> {
        if self.sync_backup.is_some() {
            return Err(EngineError::SyncRunning);
        }
        let group = self.sync_group.clone();
        let sock = sync_net::backup_socket(&cfg, group.is_some()).map_err(|source| {
            EngineError::SyncSocket {
                role: "backup",
                source,
            }
        })?;
        let sh = self.shared.clone();
        let stats = self.backup_stats.clone();
        let thread = SyncThread::spawn("rvs-sync-backup", cfg, stats, move |cfg, stop, stats| {
            let n = sh.workers;
            sync_net::run_backup(&sock, cfg, group.as_deref(), stop, stats, |c| {
                sh.sync_in[sync_owner(&c, n)].push(c).is_ok()
            })
        })?;
        self.sync_backup = Some(thread);
        Ok(())
    }

    /// Stops the sync backup; sessions already installed stay.
    pub fn stop_sync_backup(&mut self) {
        if let Some(mut t) = self.sync_backup.take() {
            t.stop();
        }
    }

    /// Standby (`true`: VIPs, LIPs and floating addresses are not answered) or active. On
    /// becoming active, gratuitous ARP (IPv4) and unsolicited neighbour advertisements
    /// (IPv6) announce those addresses.
    pub fn set_passive(&mut self, passive: bool) {
        if self.base.passive == passive {
            return;
        }
        self.base.passive = passive;
        if let Some(snap) = read_locked(&self.shared.snapshot) {
            let mut net = (*snap.net).clone();
            net.passive = passive;
            self.install(snap.services, Arc::new(net));
        }
        if !passive {
            self.announce();
        }
    }

    /// Sends gratuitous ARP for the IPv4 VIPs, LIPs and floating addresses and
    /// unsolicited neighbour advertisements for the IPv6 ones (worker 0).
    pub fn announce(&self) {
        if let Some(inbox) = self.shared.inboxes.first() {
            let _ = inbox.push(Command::Announce);
        }
    }

    /// The sync daemons and their counters, as text (`rvsadm --dataplane`).
    pub fn sync_describe(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (role, t) in [("master", &self.sync_master), ("backup", &self.sync_backup)] {
            if let Some(t) = t {
                let _ = write!(
                    out,
                    "sync {role} group={} port={} syncid={} maxlen={} peer={} auth={}",
                    t.cfg.group,
                    t.cfg.port,
                    t.cfg.syncid,
                    t.cfg.maxlen,
                    t.cfg.peer.map_or("-".to_string(), |p| p.to_string()),
                    if t.cfg.key.is_some() {
                        "hmac-sha256"
                    } else {
                        "none"
                    }
                );
                for (k, v) in t.stats.snapshot() {
                    let _ = write!(out, " {k}={v}");
                }
                out.push('\n');
            }
        }
        let mut per: Vec<(usize, SyncCounters)> = self.ask(Command::SyncCounters);
        per.sort_by_key(|(w, _)| *w);
        for (w, c) in &per {
            let _ = writeln!(
                out,
                "sync worker {w} emitted={} dropped={} installed={} updated={} refused={} no_service={}",
                c.emitted, c.dropped, c.installed, c.updated, c.refused, c.no_service
            );
        }
        if self.base.passive {
            out.push_str("passive (standby: VIPs and LIPs not answered)\n");
        }
        out
    }

    /// Stops the workers and the ports. Mbufs held anywhere are freed.
    pub fn stop(&mut self) -> Result<(), EngineError> {
        if self.stopped {
            return Ok(());
        }
        self.stop_sync_master();
        self.stop_sync_backup();
        self.stopped = true;
        self.shared.stop.store(true, Ordering::Release);
        for &lc in &self.lcores {
            lcore::wait(lc);
        }
        for p in self.shared.ports.iter().chain(&self.shared.taps) {
            p.stop()?;
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The bulk sync thread of a group member: every [`BULK_POLL`], each peer that came up
/// ([`crate::sync::group::Peer::take_bulk_due`]) is sent every session and template of
/// every worker, by unicast to it alone, paced at [`sync_group::BULK_MSGS_PER_MS`]
/// messages per millisecond; the workers give their tables a chunk at a time between
/// bursts. One line is logged at the start and at the end of each.
fn run_bulk_syncs(
    sock: &std::net::UdpSocket,
    cfg: &SyncNetConfig,
    group: &PeerTable,
    sh: &Shared,
    signer: Option<&Mutex<crate::sync::auth::Signer>>,
    stop: &AtomicBool,
    stats: &SyncStats,
) {
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(BULK_POLL);
        for p in group.peers() {
            if stop.load(Ordering::Acquire) || !p.take_bulk_due() {
                continue;
            }
            let t0 = std::time::Instant::now();
            // The incarnation of the peer this bulk sync is for (its hello came before
            // the message that made it due).
            let incarnation = p.hello().map(|h| h.incarnation).unwrap_or(0);
            tracing::info!(peer = %p.addr, "sync group: peer came up; bulk sync of every session to it");
            let dest = std::net::SocketAddr::from((p.addr, cfg.port));
            let mut buffer = Some(Vec::with_capacity(BULK_CHUNK_RECORDS));
            let fetch = |w: usize, cursor: u32, out: &mut Vec<SyncConn>| {
                let (chunk, next) = ask_chunk(sh, w, cursor, buffer.take().unwrap_or_default())?;
                out.extend_from_slice(&chunk);
                buffer = Some(chunk);
                Some(next)
            };
            let r = sync_net::run_bulk(
                sock,
                dest,
                cfg,
                signer,
                sh.workers,
                fetch,
                stop,
                stats,
                sync_group::BULK_MSGS_PER_MS,
            );
            p.bulk_records.fetch_add(r.records, Ordering::Relaxed);
            if r.complete {
                p.bulk_syncs.fetch_add(1, Ordering::Relaxed);
                sync_net::send_bulk_done(sock, group, p, incarnation, cfg, signer, stats);
            }
            let ms = t0.elapsed().as_millis() as u64;
            if r.complete {
                tracing::info!(peer = %p.addr, sessions = r.records, messages = r.messages, duration_ms = ms, "sync group: bulk sync done");
            } else {
                tracing::warn!(peer = %p.addr, sessions = r.records, messages = r.messages, duration_ms = ms, "sync group: bulk sync cut short (stopping, or a worker did not answer)");
            }
        }
    }
}

/// Asks worker `w` for the chunk of its table from `cursor` ([`Command::BulkChunk`]),
/// in `buf`; `None` when it does not answer within [`ASK_TIMEOUT`].
fn ask_chunk(
    sh: &Shared,
    w: usize,
    cursor: u32,
    buf: Vec<SyncConn>,
) -> Option<(Vec<SyncConn>, Option<u32>)> {
    let deadline = std::time::Instant::now() + ASK_TIMEOUT;
    let (tx, rx) = bounded(1);
    let mut cmd = Command::BulkChunk(cursor, buf, tx);
    // A full inbox (a burst of commands) is waited out.
    while let Err(back) = sh.inboxes[w].push(cmd) {
        if std::time::Instant::now() >= deadline {
            return None;
        }
        cmd = back;
        std::thread::sleep(Duration::from_millis(1));
    }
    rx.recv_deadline(deadline).ok()
}

/// A copy of what `m` holds (a poisoned lock is read all the same: it holds plain values).
fn read_locked<T: Clone>(m: &Mutex<T>) -> T {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// One queue of `capacity` per worker.
fn queues<T>(workers: usize, capacity: usize) -> Vec<ArrayQueue<T>> {
    (0..workers).map(|_| ArrayQueue::new(capacity)).collect()
}

/// The connected route of every port address (as [`setup`] makes them at start).
fn connected_routes(cfg: &EngineConfig) -> Vec<Route> {
    cfg.ports
        .iter()
        .enumerate()
        .flat_map(|(i, spec)| {
            spec.addrs.iter().map(move |&(prefix, len)| Route {
                prefix,
                len,
                port: i as u16,
                gateway: None,
            })
        })
        .collect()
}

/// The connected IPv6 route of every port IPv6 address.
fn connected_routes6(cfg: &EngineConfig) -> Vec<Route6> {
    cfg.ports
        .iter()
        .enumerate()
        .flat_map(|(i, spec)| {
            spec.addrs6.iter().map(move |&(prefix, len)| Route6 {
                prefix,
                len,
                port: i as u16,
                gateway: None,
            })
        })
        .collect()
}

/// The link-local address (`fe80::/64`) of a port with MAC `mac`: its modified EUI-64
/// interface identifier (RFC 4291 appendix A: the universal/local bit flipped, `ff:fe`
/// in the middle), as the kernel gives an interface.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

#[cfg(test)]
mod tests {
    use super::EngineError;

    #[test]
    fn link_local_is_the_modified_eui64_of_the_mac() {
        // As `ip -6 addr` shows for an interface of MAC 52:54:00:12:34:56.
        assert_eq!(
            super::link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            "fe80::5054:ff:fe12:3456"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(
            super::link_local([0x02, 0, 0, 0, 0, 1]),
            "fe80::ff:fe00:1".parse::<std::net::Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn error_messages_keep_their_words() {
        let lcores = EngineError::NotEnoughLcores {
            workers: 4,
            lcores: 2,
        };
        assert_eq!(
            lcores.to_string(),
            "4 workers need 4 worker lcores; EAL has 2 (give EAL more lcores)"
        );
        let txq = EngineError::NotEnoughTxQueues {
            port: "port dpdk0 (net_null0)".into(),
            workers: 4,
            max: 1,
        };
        assert_eq!(
            txq.to_string(),
            "port dpdk0 (net_null0): 4 workers need 4 tx queues, the driver has 1"
        );
        assert_eq!(
            EngineError::SyncRunning.to_string(),
            "Daemon has already run"
        );
        let io = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let sock = EngineError::SyncSocket {
            role: "master",
            source: io(),
        };
        assert_eq!(sock.to_string(), format!("sync master socket: {}", io()));
        let thread = EngineError::SyncThread(io());
        assert_eq!(thread.to_string(), format!("sync thread: {}", io()));
    }
}
