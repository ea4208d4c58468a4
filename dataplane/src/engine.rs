//! The dataplane on DPDK: ports, mempool, handoff rings, and one run-to-completion
//! worker per lcore.
//!
//! Each worker loop: adopt a new configuration snapshot if one was published (between
//! bursts), answer control commands from its inbox, take neighbours learned by other
//! workers, then rx burst from each of its queues → [`Core::process`] → buffered tx per
//! port (flushed every loop); packets another worker owns go into per-pair SP/SC rings and
//! the owner processes them after its own queues. Slow work (session expiry, neighbour
//! aging) runs every 10 ms. Nothing on the per-packet path allocates, locks or logs.
//!
//! The control plane ([`Engine`]) publishes snapshots and asks workers for counters and
//! session listings through their inboxes; the workers answer between bursts, so a
//! listing never stops forwarding.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::{bounded, Sender};
use crossbeam::queue::ArrayQueue;

use crate::conn::{ConnConfig, ConnListing};
use crate::conn::{SyncConn, SyncRules};
use crate::dpdk::{
    self, lcore, Eal, LcoreId, Mbuf, MbufBatch, Mempool, Port, PortConf, QueueId, Ring, RING_SP_SC,
    RSS_KEY,
};
use crate::neigh::NeighConfig;
use crate::pipeline::{
    announced_addresses, build_arp_request, build_gratuitous_arp, sync_owner, Core, Counters,
    DestTraffic, DropReason, Emit, LocalKind, NeighUpdate, NetConfig, Out, PortNet, Snapshot,
    SyncCounters,
};
use crate::route::{Route, RouteTable};
use crate::service::{self, DestId, ServiceKey};
use crate::sync::net::{self as sync_net, Stats as SyncStats, SyncNetConfig};
use crate::wire::ChecksumMode;

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
    /// L3 MTU.
    pub mtu: u16,
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
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// Static routes (connected routes of the port addresses are added automatically).
    pub routes: Vec<Route>,
    /// FULLNAT local port range.
    pub lport_range: (u16, u16),
    /// Static neighbours (address, MAC): never resolved by ARP, never aged (benchmarks,
    /// and next hops that do not answer ARP).
    pub static_neighbours: Vec<(Ipv4Addr, [u8; 6])>,
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
    /// FULLNAT: per service and LIP, ports in use.
    pub laddrs: Vec<(ServiceKey, Ipv4Addr, u32)>,
    /// Sessions created since the worker started (benchmarks: new sessions per second).
    pub sessions_created: u64,
    /// Session table capacity of this worker.
    pub conn_capacity: u32,
    /// Bytes the session table holds (slab, session index, timer wheel).
    pub conn_memory_bytes: usize,
}

enum Command {
    Report(Sender<WorkerReport>),
    Connections(Sender<Vec<ConnListing>>),
    SetTimeouts(u32, u32, u32),
    SyncMaster(Option<SyncRules>),
    SyncCounters(Sender<SyncCounters>),
    Announce,
}

/// Capacity of each worker's queue to the sync thread and from the receiving thread.
pub const SYNC_QUEUE: usize = 16384;
/// Synced sessions a worker installs per loop at most (forwarding goes on meanwhile).
const SYNC_INSTALL_BURST: usize = 512;
/// Receive bursts a worker reads from one queue per loop after the first, as its pipeline
/// gets to them (so up to `(1 + RX_MORE) * MAX_BURST` packets before it polls anything
/// else): the packets of one burst are in flight while the next is received.
const RX_MORE: usize = 3;

/// A running sync thread.
struct SyncThread {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    stats: Arc<SyncStats>,
    cfg: SyncNetConfig,
}

impl SyncThread {
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

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
    workers: usize,
    conn_capacity: u32,
    static_neighbours: Vec<(Ipv4Addr, [u8; 6])>,
    /// Per worker: sync records for the sync thread (master).
    sync_out: Arc<Vec<ArrayQueue<SyncConn>>>,
    /// Per worker: received sessions to install (backup).
    sync_in: Vec<ArrayQueue<SyncConn>>,
}

/// The running dataplane.
pub struct Engine {
    shared: Arc<Shared>,
    lcores: Vec<LcoreId>,
    pool: Arc<Mempool>,
    base: NetConfig,
    generation: u64,
    stopped: bool,
    sync_master: Option<SyncThread>,
    sync_backup: Option<SyncThread>,
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
    /// The configuration cannot run here.
    #[error("{0}")]
    Config(String),
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
        let lcores: Vec<LcoreId> = lcore::workers().into_iter().take(workers).collect();
        if lcores.len() < workers {
            return Err(EngineError::Config(format!(
                "{workers} workers need {workers} worker lcores; EAL has {} (give EAL more lcores)",
                lcores.len()
            )));
        }
        let ntaps = cfg
            .ports
            .iter()
            .filter(|p| p.kernel_iface.is_some())
            .count();
        let nports = (cfg.ports.len() + ntaps).max(1) as u32;
        let mbufs = cfg
            .mbufs
            .max(nports * (2048 + 1024) * workers as u32 + 8191);
        let pool = Arc::new(Mempool::new(
            &format!("rvs_pool_{}", std::process::id()),
            mbufs,
            256,
            data_room,
        )?);

        let mut ports = Vec::new();
        let mut port_index: Vec<Option<u16>> = Vec::new();
        let mut rx_queues = Vec::new();
        let mut base = NetConfig::new(workers);
        base.lport_range = cfg.lport_range;
        let mut routes = cfg.routes.clone();
        let mut arp_src = Vec::new();
        for (i, spec) in cfg.ports.iter().enumerate() {
            let mut devargs = spec.devargs.clone();
            if devargs.starts_with("net_af_packet") && !devargs.contains("qpairs=") {
                devargs.push_str(&format!(",qpairs={workers}"));
            }
            let name = devargs.split(',').next().unwrap_or(&devargs).to_owned();
            let mut port = match Port::by_name(&name) {
                Ok(p) => p,
                Err(_) => Port::attach(&devargs)?,
            };
            let (info, nrx) = start_port(
                &mut port,
                &format!("port {} ({devargs})", spec.name),
                workers,
                1024,
                &pool,
            )?;
            let mac = port.mac()?;
            let pid = usize::from(port.id().0);
            if port_index.len() <= pid {
                port_index.resize(pid + 1, None);
            }
            port_index[pid] = Some(i as u16);
            rx_queues.push(nrx);
            // With RSS over several queues, FULLNAT picks lports whose replies hash to the
            // owner's queue. rvs programs RSS_KEY; the redirection table is taken to be
            // the drivers' default round robin over the rx queues.
            base.rss.push(
                (nrx > 1
                    && info.rss_offloads != 0
                    && usize::from(info.hash_key_size) == RSS_KEY.len())
                .then(|| crate::laddr::RssSteer {
                    key: RSS_KEY,
                    reta: (0..info.reta_size.max(nrx)).map(|i| i % nrx).collect(),
                }),
            );
            ports.push(port);
            base.ports.push(PortNet {
                mac,
                mtu: spec.mtu,
                csum: ChecksumMode::Software,
            });
            base.floating
                .extend(spec.addrs.iter().skip(1).map(|&(a, _)| a));
            for &(addr, len) in &spec.addrs {
                base.local.insert(addr, (LocalKind::Dip, i as u16));
                routes.push(Route {
                    prefix: addr,
                    len,
                    port: i as u16,
                    gateway: None,
                });
            }
            arp_src.push(spec.addrs.first().map(|a| a.0));
        }
        base.routes = RouteTable::new(routes);

        // Exception path: one kernel tap per port that asks for it, with the port's MAC
        // (the kernel then answers ARP for its host addresses with the port's MAC).
        let mut taps = Vec::new();
        let mut tap_rx_queues = Vec::new();
        let mut tap_port = Vec::new();
        let mut tap_of = vec![None; cfg.ports.len()];
        for (i, spec) in cfg.ports.iter().enumerate() {
            let Some(iface) = &spec.kernel_iface else {
                continue;
            };
            let m = base.ports[i].mac;
            let devargs = format!(
                "net_tap_rvs{i},iface={iface},mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
            let name = devargs.split(',').next().unwrap_or(&devargs).to_owned();
            let mut tap = match Port::by_name(&name) {
                Ok(p) => p,
                Err(_) => Port::attach(&devargs)?,
            };
            let (_, nq) = start_port(
                &mut tap,
                &format!("port {} exception tap {iface}", spec.name),
                workers,
                512,
                &pool,
            )?;
            tap_of[i] = Some(ports.len() + taps.len());
            tap_rx_queues.push(nq);
            tap_port.push(i as u16);
            taps.push(tap);
        }

        let mut rings = Vec::with_capacity(workers * workers);
        for s in 0..workers {
            for d in 0..workers {
                rings.push(Ring::new(
                    &format!("rvs_ho_{}_{s}_{d}", std::process::id() % 100_000),
                    4096,
                    RING_SP_SC,
                )?);
            }
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            snapshot: Mutex::new(None),
            inboxes: (0..workers).map(|_| ArrayQueue::new(64)).collect(),
            neigh: (0..workers).map(|_| ArrayQueue::new(4096)).collect(),
            rings,
            port_index,
            ports,
            rx_queues,
            taps,
            tap_rx_queues,
            tap_port,
            tap_of,
            arp_src: Mutex::new(arp_src),
            workers,
            conn_capacity: cfg.conn_capacity,
            static_neighbours: cfg.static_neighbours.clone(),
            sync_out: Arc::new((0..workers).map(|_| ArrayQueue::new(SYNC_QUEUE)).collect()),
            sync_in: (0..workers).map(|_| ArrayQueue::new(SYNC_QUEUE)).collect(),
        });
        for (w, &lc) in lcores.iter().enumerate() {
            let sh = shared.clone();
            let pool = pool.clone();
            lcore::launch(lc, move || {
                worker_main(w, &sh, &pool);
                0
            })?;
        }
        Ok(Engine {
            shared,
            lcores,
            pool,
            base,
            generation: 0,
            stopped: false,
            sync_master: None,
            sync_backup: None,
        })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.lcores.len()
    }

    /// The ports' MACs, by rvs port index.
    pub fn port_macs(&self) -> Vec<[u8; 6]> {
        self.base.ports.iter().map(|p| p.mac).collect()
    }

    /// Mbufs currently allocated from the pool (in queues, rings, held, in flight).
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use()
    }

    /// Port counters, by rvs port index.
    pub fn port_stats(&self) -> Vec<dpdk::PortStats> {
        self.shared
            .ports
            .iter()
            .map(|p| p.stats().unwrap_or_default())
            .collect()
    }

    /// Publishes a new configuration: services, the VIPs to answer for, and the FULLNAT
    /// LIP pools. Workers adopt it between bursts.
    pub fn publish(
        &mut self,
        services: Arc<service::ServiceSet>,
        vips: &[Ipv4Addr],
        laddrs: HashMap<ServiceKey, Vec<Ipv4Addr>>,
    ) {
        let mut net = self.base.clone();
        let port_for = |a: Ipv4Addr| -> u16 { net.routes.lookup(a).map_or(0, |nh| nh.port) };
        let mut extra = Vec::new();
        for &v in vips {
            extra.push((v, (LocalKind::Vip, port_for(v))));
        }
        for lips in laddrs.values() {
            for &l in lips {
                extra.push((l, (LocalKind::Lip, port_for(l))));
            }
        }
        for (a, k) in extra {
            net.local.entry(a).or_insert(k);
        }
        net.laddrs = laddrs.into_iter().collect();
        self.generation += 1;
        let snap = Snapshot {
            generation: self.generation,
            services,
            net: Arc::new(net),
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

    fn ask<T: Send + 'static>(&self, make: impl Fn(Sender<T>) -> Command) -> Vec<T> {
        let mut rxs = Vec::new();
        for inbox in &self.shared.inboxes {
            let (tx, rx) = bounded(1);
            if inbox.push(make(tx)).is_ok() {
                rxs.push(rx);
            }
        }
        rxs.into_iter()
            .filter_map(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
            .collect()
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
        for inbox in &self.shared.inboxes {
            let _ = inbox.push(Command::SetTimeouts(tcp, tcpfin, udp));
        }
    }

    /// Starts the sync master: workers emit records by the IPVS rules into their queues,
    /// a thread batches them into messages and sends them (see [`crate::sync`]).
    pub fn start_sync_master(
        &mut self,
        cfg: SyncNetConfig,
        rules: SyncRules,
    ) -> Result<(), EngineError> {
        if self.sync_master.is_some() {
            return Err(EngineError::Config("Daemon has already run".into()));
        }
        let (sock, dest) = sync_net::master_socket(&cfg)
            .map_err(|e| EngineError::Config(format!("sync master socket: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SyncStats::default());
        let queues = self.shared.sync_out.clone();
        let (st, stt) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("rvs-sync-master".into())
            .spawn(move || sync_net::run_master(&sock, dest, &cfg, &queues, &st, &stt))
            .map_err(|e| EngineError::Config(format!("sync thread: {e}")))?;
        for inbox in &self.shared.inboxes {
            let _ = inbox.push(Command::SyncMaster(Some(rules)));
        }
        self.sync_master = Some(SyncThread {
            stop,
            handle: Some(handle),
            stats,
            cfg,
        });
        Ok(())
    }

    /// Stops the sync master (workers stop emitting; queued records are sent).
    pub fn stop_sync_master(&mut self) {
        for inbox in &self.shared.inboxes {
            let _ = inbox.push(Command::SyncMaster(None));
        }
        if let Some(mut t) = self.sync_master.take() {
            t.stop();
        }
    }

    /// Starts the sync backup: a thread receives messages and hands each session to the
    /// worker that owns it here ([`crate::pipeline::sync_owner`]), which installs it.
    pub fn start_sync_backup(&mut self, cfg: SyncNetConfig) -> Result<(), EngineError> {
        if self.sync_backup.is_some() {
            return Err(EngineError::Config("Daemon has already run".into()));
        }
        let sock = sync_net::backup_socket(&cfg)
            .map_err(|e| EngineError::Config(format!("sync backup socket: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SyncStats::default());
        let sh = self.shared.clone();
        let (st, stt) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("rvs-sync-backup".into())
            .spawn(move || {
                let n = sh.workers;
                sync_net::run_backup(&sock, &cfg, &st, &stt, |c| {
                    sh.sync_in[sync_owner(&c, n)].push(c).is_ok()
                })
            })
            .map_err(|e| EngineError::Config(format!("sync thread: {e}")))?;
        self.sync_backup = Some(SyncThread {
            stop,
            handle: Some(handle),
            stats,
            cfg,
        });
        Ok(())
    }

    /// Stops the sync backup; sessions already installed stay.
    pub fn stop_sync_backup(&mut self) {
        if let Some(mut t) = self.sync_backup.take() {
            t.stop();
        }
    }

    /// Standby (`true`: VIPs, LIPs and floating addresses are not answered) or active. On
    /// becoming active, gratuitous ARP announces those addresses.
    pub fn set_passive(&mut self, passive: bool) {
        if self.base.passive == passive {
            return;
        }
        self.base.passive = passive;
        let current = self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(mut snap) = current {
            let mut net = (*snap.net).clone();
            net.passive = passive;
            self.generation += 1;
            snap.generation = self.generation;
            snap.net = Arc::new(net);
            *self
                .shared
                .snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(snap);
            self.shared
                .generation
                .store(self.generation, Ordering::Release);
        }
        if !passive {
            self.announce();
        }
    }

    /// Sends gratuitous ARP for the VIPs, LIPs and floating addresses (worker 0).
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
                    "sync {role} group={} port={} syncid={} maxlen={} peer={}",
                    t.cfg.group,
                    t.cfg.port,
                    t.cfg.syncid,
                    t.cfg.maxlen,
                    t.cfg.peer.map_or("-".to_string(), |p| p.to_string())
                );
                for (k, v) in t.stats.snapshot() {
                    let _ = write!(out, " {k}={v}");
                }
                out.push('\n');
            }
        }
        let mut per: Vec<SyncCounters> = self.ask(Command::SyncCounters);
        per.truncate(self.shared.workers);
        for (w, c) in per.iter().enumerate() {
            let _ = writeln!(
                out,
                "sync worker {w} emitted={} dropped={} installed={} updated={} refused={}",
                c.emitted, c.dropped, c.installed, c.updated, c.refused
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

/// Configures and starts a port for `workers` workers: one tx queue per worker (refused,
/// naming `what`, when the driver has fewer), as many rx queues as the driver allows up to
/// one per worker. Returns the driver's info and the rx queue count.
fn start_port(
    port: &mut Port,
    what: &str,
    workers: usize,
    desc: u16,
    pool: &Mempool,
) -> Result<(dpdk::PortInfo, u16), EngineError> {
    let info = port.info()?;
    if usize::from(info.max_tx_queues) < workers {
        return Err(EngineError::Config(format!(
            "{what}: {workers} workers need {workers} tx queues, the driver has {}",
            info.max_tx_queues
        )));
    }
    let nrx = (workers as u16).min(info.max_rx_queues.max(1));
    let conf = PortConf {
        rx_queues: nrx,
        tx_queues: workers as u16,
        rx_desc: desc,
        tx_desc: desc,
        ..PortConf::default()
    };
    port.configure(&conf, pool)?;
    port.start()?;
    Ok((info, nrx))
}

fn now_ms(start: u64, hz: u64) -> u64 {
    dpdk::rdtsc().wrapping_sub(start) / (hz / 1000).max(1)
}

impl Shared {
    /// Output `i`: a port, or (from `ports.len()` on) an exception tap.
    fn out_port(&self, i: usize) -> Option<&Port> {
        self.ports
            .get(i)
            .or_else(|| self.taps.get(i.wrapping_sub(self.ports.len())))
    }
}

fn worker_main(w: usize, sh: &Shared, pool: &Mempool) {
    let n = sh.workers;
    let nports = sh.ports.len() + sh.taps.len();
    let mut core: Core<Mbuf> = Core::new(
        w,
        ConnConfig::new(sh.conn_capacity.max(1024)),
        NeighConfig::default(),
    );
    let mut my_gen = 0u64;
    let mut rx = MbufBatch::new();
    let mut tx: Vec<MbufBatch> = (0..nports).map(|_| MbufBatch::new()).collect();
    let mut handoff: Vec<MbufBatch> = (0..n).map(|_| MbufBatch::new()).collect();
    let mut handoff_in = 0u64;
    let mut tx_dropped = 0u64;
    let mut to_kernel = 0u64;
    let mut from_kernel = 0u64;
    let hz = dpdk::tsc_hz().max(1000);
    let start = dpdk::rdtsc();
    let tick_every = hz / 100;
    let mut last_tick = start;
    let mut arp_src: Vec<Option<Ipv4Addr>> = Vec::new();
    let mut port_macs: Vec<[u8; 6]> = Vec::new();
    for &(ip, mac) in &sh.static_neighbours {
        core.add_static_neighbour(ip, mac);
    }

    // Sends a processed packet where it goes.
    fn route(
        out: Out<Mbuf>,
        tx: &mut [MbufBatch],
        handoff: &mut [MbufBatch],
        sh: &Shared,
        w: usize,
        tx_dropped: &mut u64,
        to_kernel: &mut u64,
    ) {
        // Pushes `m` on output `p` (a port or a tap), flushing a full batch first.
        fn push(m: Mbuf, p: usize, tx: &mut [MbufBatch], sh: &Shared, w: usize, dropped: &mut u64) {
            if let (Some(b), Some(port)) = (tx.get_mut(p), sh.out_port(p)) {
                if b.is_full() {
                    let (_, d) = port.tx_burst(QueueId(w as u16), b);
                    *dropped += d as u64;
                }
                let _ = b.push(m);
            }
        }
        match out {
            Out::Tx(m, port) => push(m, usize::from(port), tx, sh, w, tx_dropped),
            Out::Handoff(m, owner) => {
                let owner = owner as usize;
                if let Some(b) = handoff.get_mut(owner) {
                    if b.is_full() {
                        let ring = &sh.rings[w * sh.workers + owner];
                        ring.enqueue_burst(b);
                        *tx_dropped += b.len() as u64;
                        b.clear();
                    }
                    let _ = b.push(m);
                }
            }
            // Exception path: what the pipeline does not own goes to the port's kernel tap.
            Out::Drop(m, DropReason::NotForUs | DropReason::Unsupported) | Out::Consumed(m) => {
                let tap = sh
                    .port_index
                    .get(usize::from(m.port()))
                    .copied()
                    .flatten()
                    .and_then(|p| sh.tap_of.get(usize::from(p)))
                    .copied()
                    .flatten();
                match tap {
                    Some(t) => {
                        *to_kernel += 1;
                        push(m, t, tx, sh, w, tx_dropped);
                    }
                    None => drop(m),
                }
            }
            Out::Drop(m, _) => drop(m),
            Out::Held => {}
        }
    }

    // One burst of `rx` through the pipeline, every verdict (and every frame the pipeline
    // originated) sent where it goes; `$default_port` for mbufs of an unknown port.
    macro_rules! run_burst {
        ($pkts:expr, $now:expr, $check_owner:expr, $default_port:expr) => {{
            let in_port = |m: &Mbuf| {
                sh.port_index
                    .get(usize::from(m.port()))
                    .copied()
                    .flatten()
                    .unwrap_or($default_port)
            };
            core.process_burst($pkts, $now, $check_owner, in_port, |e| {
                let out = match e {
                    Emit::Packet(out) => out,
                    Emit::Generated(port, frame) => match pool.alloc_with(frame) {
                        Some(m) => Out::Tx(m, port),
                        None => return,
                    },
                };
                route(
                    out,
                    &mut tx,
                    &mut handoff,
                    sh,
                    w,
                    &mut tx_dropped,
                    &mut to_kernel,
                );
            });
        }};
    }

    while !sh.stop.load(Ordering::Acquire) {
        let now = now_ms(start, hz);
        // Configuration and control, between bursts.
        let g = sh.generation.load(Ordering::Acquire);
        if g != my_gen {
            let snap = sh
                .snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(s) = snap {
                port_macs = s.net.ports.iter().map(|p| p.mac).collect();
                core.adopt(s);
            }
            arp_src = sh.arp_src.lock().unwrap_or_else(|p| p.into_inner()).clone();
            my_gen = g;
        }
        while let Some(cmd) = sh.inboxes[w].pop() {
            match cmd {
                Command::Report(reply) => {
                    let _ = reply.try_send(report(
                        &core,
                        w,
                        handoff_in,
                        tx_dropped,
                        [to_kernel, from_kernel],
                    ));
                }
                Command::Connections(reply) => {
                    let _ = reply.try_send(core.conns().list(now).collect());
                }
                Command::SetTimeouts(a, b, c) => core.conns_mut().set_timeouts(a, b, c),
                Command::SyncMaster(r) => core.set_sync_master(r),
                Command::SyncCounters(reply) => {
                    let _ = reply.try_send(core.sync_counters());
                }
                Command::Announce => {
                    let targets = core
                        .snapshot()
                        .map(|s| announced_addresses(&s.net))
                        .unwrap_or_default();
                    for (port, ip) in targets {
                        let Some(mac) = port_macs.get(usize::from(port)) else {
                            continue;
                        };
                        for _ in 0..2 {
                            if let Some(mut m) = pool.alloc() {
                                if let Some(buf) = m.append(60) {
                                    if build_gratuitous_arp(buf, *mac, ip).is_some() {
                                        route(
                                            Out::Tx(m, port),
                                            &mut tx,
                                            &mut handoff,
                                            sh,
                                            w,
                                            &mut tx_dropped,
                                            &mut to_kernel,
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Sessions received by the sync backup thread for this worker.
        for _ in 0..SYNC_INSTALL_BURST {
            let Some(c) = sh.sync_in[w].pop() else { break };
            let _ = core.install_synced(&c, now);
        }
        while let Some(u) = sh.neigh[w].pop() {
            core.learn_neighbour(u, now);
        }

        // Own queues.
        for (p, port) in sh.ports.iter().enumerate() {
            if (w as u16) >= sh.rx_queues[p] {
                continue;
            }
            let q = QueueId(w as u16);
            if port.rx_burst(q, &mut rx) == 0 {
                continue;
            }
            // Up to RX_MORE more bursts as the pipeline gets to them.
            let stream = rx.stream(|b| port.rx_burst(q, b), RX_MORE);
            run_burst!(stream, now, true, p as u16);
        }
        // Exception path: what the kernel sends on a tap leaves through its port unchanged.
        for (k, tap) in sh.taps.iter().enumerate() {
            if (w as u16) >= sh.tap_rx_queues[k] || tap.rx_burst(QueueId(w as u16), &mut rx) == 0 {
                continue;
            }
            let port = sh.tap_port[k];
            for m in rx.drain() {
                from_kernel += 1;
                route(
                    Out::Tx(m, port),
                    &mut tx,
                    &mut handoff,
                    sh,
                    w,
                    &mut tx_dropped,
                    &mut to_kernel,
                );
            }
        }
        // Packets other workers received for us.
        for src in 0..n {
            if src == w {
                continue;
            }
            let ring = &sh.rings[src * n + w];
            if ring.dequeue_burst(&mut rx) == 0 {
                continue;
            }
            handoff_in += rx.len() as u64;
            run_burst!(rx.drain(), now, false, 0);
        }
        // Side outputs: ARP requests, released packets, learned neighbours.
        for (port, target) in core.take_arp_requests() {
            let p = usize::from(port);
            let (Some(mac), Some(Some(src))) = (port_macs.get(p), arp_src.get(p)) else {
                continue;
            };
            if let Some(mut m) = pool.alloc() {
                if let Some(buf) = m.append(60) {
                    if build_arp_request(buf, *mac, *src, target).is_some() {
                        route(
                            Out::Tx(m, port),
                            &mut tx,
                            &mut handoff,
                            sh,
                            w,
                            &mut tx_dropped,
                            &mut to_kernel,
                        );
                    }
                }
            }
        }
        for (m, port) in core.take_released() {
            route(
                Out::Tx(m, port),
                &mut tx,
                &mut handoff,
                sh,
                w,
                &mut tx_dropped,
                &mut to_kernel,
            );
        }
        let mut sync_lost = 0u64;
        for c in core.take_sync() {
            if sh.sync_out[w].push(c).is_err() {
                sync_lost += 1;
            }
        }
        if sync_lost > 0 {
            core.count_sync_dropped(sync_lost);
        }
        for u in core.take_learned() {
            for (o, q) in sh.neigh.iter().enumerate() {
                if o != w {
                    let _ = q.push(u);
                }
            }
        }

        // Flush.
        for (p, b) in tx.iter_mut().enumerate() {
            if let (false, Some(port)) = (b.is_empty(), sh.out_port(p)) {
                let (_, d) = port.tx_burst(QueueId(w as u16), b);
                tx_dropped += d as u64;
            }
        }
        for (o, b) in handoff.iter_mut().enumerate() {
            if !b.is_empty() {
                sh.rings[w * n + o].enqueue_burst(b);
                tx_dropped += b.len() as u64;
                b.clear();
            }
        }

        // Slow path.
        let t = dpdk::rdtsc();
        if t.wrapping_sub(last_tick) >= tick_every {
            last_tick = t;
            core.tick(now, drop);
        }
    }
    // Free what is still held here.
    rx.clear();
    for b in &mut tx {
        b.clear();
    }
    for b in &mut handoff {
        b.clear();
    }
    for src in 0..n {
        while sh.rings[src * n + w].dequeue_burst(&mut rx) > 0 {
            rx.clear();
        }
    }
    drop(core);
}

fn report(
    core: &Core<Mbuf>,
    w: usize,
    handoff_in: u64,
    tx_dropped: u64,
    [to_kernel, from_kernel]: [u64; 2],
) -> WorkerReport {
    let rt = core.conns().dests();
    let dests = core
        .dest_traffic()
        .map(|(id, t)| {
            let c = rt
                .by_id(id)
                .map_or([0; 3], |d| [d.active, d.inactive, d.persist]);
            (id, c, t)
        })
        .collect();
    let laddrs = core
        .laddr_pools()
        .flat_map(|(k, p)| {
            p.addrs()
                .map(move |a| (*k, a, p.in_use_of(a)))
                .collect::<Vec<_>>()
        })
        .collect();
    WorkerReport {
        worker: w,
        counters: core.counters().clone(),
        handoff_in,
        tx_dropped,
        to_kernel,
        from_kernel,
        dests,
        sessions: core.conns().len(),
        laddrs,
        sessions_created: core.conns().stats().created,
        conn_capacity: core.conns().capacity(),
        conn_memory_bytes: core.conns().memory_bytes(),
    }
}
