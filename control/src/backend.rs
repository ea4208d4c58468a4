//! The dataplane seen from the control plane: the [`Backend`] trait rvsd drives, the
//! counter and connection types it reports, and [`ControlOnly`] (no dataplane).
//!
//! rvsd owns the [`IpvsTable`]. After every successful change it calls
//! [`Backend::apply`] with the whole new table (services, dests in kernel order, LIP pools,
//! timeouts, sync daemons); the specific hooks ([`Backend::set_timeouts`],
//! [`Backend::set_laddrs`]) are called as well, before `apply`, for backends that prefer
//! deltas (their default does nothing). If a call fails the change is rolled back and the
//! error text is printed by rvsadm as a kernel error (exit 255).
//!
//! Counters are cumulative since the service/dest was created (as the kernel's); `-Z` is
//! done in rvsd by remembering a baseline, and `--rate` by rvsd's 2-second estimator over
//! these counters, so a backend only has to count.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::ipvs::{IpvsTable, Laddr, ServiceKey, Timeouts};

/// Traffic counters (`ip_vs_stats`): cumulative values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client -> server.
    pub inpkts: u64,
    /// Packets server -> client.
    pub outpkts: u64,
    /// Bytes client -> server.
    pub inbytes: u64,
    /// Bytes server -> client.
    pub outbytes: u64,
}

impl Stats {
    /// `self - base`, saturating (for `-Z` baselines).
    pub fn since(&self, base: &Stats) -> Stats {
        Stats {
            conns: self.conns.saturating_sub(base.conns),
            inpkts: self.inpkts.saturating_sub(base.inpkts),
            outpkts: self.outpkts.saturating_sub(base.outpkts),
            inbytes: self.inbytes.saturating_sub(base.inbytes),
            outbytes: self.outbytes.saturating_sub(base.outbytes),
        }
    }
}

/// Rates from the estimator, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// A real server's live counts and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestCounters {
    /// Connections in an active state (ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK).
    pub active_conns: u32,
    /// Other connections (UDP always counts here).
    pub inact_conns: u32,
    /// Persistence templates pointing at this dest.
    pub persist_conns: u32,
    /// Traffic.
    pub stats: Stats,
}

/// Counters of one dest of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestCounterEntry {
    /// Dest address.
    pub addr: IpAddr,
    /// Dest port.
    pub port: u16,
    /// Counters.
    pub counters: DestCounters,
}

/// Counters of one LIP of a service's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrCounterEntry {
    /// The LIP.
    pub addr: IpAddr,
    /// Port allocation conflicts (DPVS `CONFLICTS`): local ports of this LIP the
    /// dataplane passed over because a live session already held the LIP:lport toward the
    /// chosen real server (the check Alibaba's FULLNAT `ip_vs_laddr_bind` counts as
    /// `port_conflict`).
    pub conflicts: u64,
    /// Connections currently using the LIP.
    pub conns: u64,
}

/// Counters of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounters {
    /// Which service.
    pub key: ServiceKey,
    /// The service's own stats (all its dests together, as the kernel's `svc->stats`).
    pub stats: Stats,
    /// Per-dest counters.
    pub dests: Vec<DestCounterEntry>,
    /// Per-LIP counters.
    pub laddrs: Vec<LaddrCounterEntry>,
}

/// A snapshot of every counter. Missing entries count as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneCounters {
    /// Per service.
    pub services: Vec<ServiceCounters>,
}

impl DataplaneCounters {
    /// The entry of a service.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceCounters> {
        self.services.iter().find(|s| s.key == *key)
    }
}

/// The protocol column of `-c` (`IP` is a fwmark persistence template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// A fwmark template (`IP`).
    Ip,
}

impl ConnProtocol {
    /// `TCP`, `UDP`, `SCTP`, `IP`.
    pub fn label(self) -> &'static str {
        match self {
            ConnProtocol::Tcp => "TCP",
            ConnProtocol::Udp => "UDP",
            ConnProtocol::Sctp => "SCTP",
            ConnProtocol::Ip => "IP",
        }
    }

    /// `/etc/services` protocol name for port names.
    pub fn services_name(self) -> &'static str {
        match self {
            ConnProtocol::Udp => "udp",
            ConnProtocol::Sctp => "sctp",
            _ => "tcp",
        }
    }
}

/// A connection state, named as the kernel's `/proc/net/ip_vs_conn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnState {
    /// `NONE` (also every persistence template).
    None,
    /// `ESTABLISHED`.
    Established,
    /// `SYN_SENT`.
    SynSent,
    /// `SYN_RECV`.
    SynRecv,
    /// `FIN_WAIT`.
    FinWait,
    /// `TIME_WAIT`.
    TimeWait,
    /// `CLOSE`.
    Close,
    /// `CLOSE_WAIT`.
    CloseWait,
    /// `LAST_ACK`.
    LastAck,
    /// `LISTEN`.
    Listen,
    /// `SYNACK`.
    SynAck,
    /// `UDP`.
    Udp,
}

impl ConnState {
    /// The kernel's state name.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }
}

/// One connection entry for `ipvsadm -Lc`.
///
/// A persistence template has `client` port 0, state [`ConnState::None`] and, for a
/// fwmark service, protocol [`ConnProtocol::Ip`] with `virtual_addr` =
/// `0.0.0.<mark>` style `Ipv4Addr::from(mark)` and port 0 (what the kernel shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRow {
    /// Protocol.
    pub protocol: ConnProtocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// State.
    pub state: ConnState,
    /// Seconds until expiry.
    pub expires: u32,
}

/// One worker's counters, for the metrics endpoint. Every count is cumulative since the
/// worker started (workers run as long as rvsd).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerMetrics {
    /// Worker index.
    pub worker: usize,
    /// Packets processed (after handoff).
    pub packets: u64,
    /// New connections scheduled to a real server.
    pub conns: u64,
    /// Packets forwarded toward real servers, and their bytes.
    pub in_packets: u64,
    /// Bytes of `in_packets`.
    pub in_bytes: u64,
    /// Replies forwarded toward clients, and their bytes.
    pub out_packets: u64,
    /// Bytes of `out_packets`.
    pub out_bytes: u64,
    /// Packets handed to other workers.
    pub handoff_out: u64,
    /// Packets received from other workers.
    pub handoff_in: u64,
    /// Sessions (and templates) in the table now.
    pub sessions: u64,
    /// Session table capacity.
    pub session_capacity: u64,
    /// Sessions created (connections and templates, not synced ones).
    pub sessions_created: u64,
    /// Packets that could not be sent (tx queue full) or handed off (ring full).
    pub tx_dropped: u64,
    /// Exception path: packets passed to the kernel tap, and received from it.
    pub to_kernel: u64,
    /// Exception path: packets the kernel sent on a tap.
    pub from_kernel: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// ICMP errors about sessions translated or relayed.
    pub icmp_translated: u64,
    /// ICMP time-exceeded errors originated.
    pub time_exceeded_sent: u64,
    /// ICMP fragmentation-needed errors originated.
    pub frag_needed_sent: u64,
    /// ICMP errors not originated because of the rate limit.
    pub icmp_rate_limited: u64,
    /// PROXY protocol headers sent to real servers (TCP segments, resent ones included,
    /// and UDP datagrams).
    pub proxy_headers: u64,
    /// PROXY header segments sent again.
    pub proxy_resent: u64,
    /// TOA options added.
    pub toa_added: u64,
    /// TOA options not added for want of room.
    pub toa_no_room: u64,
    /// SYN proxy: SYN-ACKs with a cookie sent (no session created).
    pub syn_cookies_sent: u64,
    /// SYN proxy: SYNs whose absurd options were clamped.
    pub syn_options_clamped: u64,
    /// SYN proxy: clients' ACKs with a valid cookie.
    pub syn_proxy_acks: u64,
    /// SYN proxy: sessions opened by a valid ACK.
    pub syn_proxy_sessions: u64,
    /// SYN proxy: sessions whose real server answered (translated from then on).
    pub syn_proxy_established: u64,
    /// SYN proxy: SYNs sent to a real server again.
    pub syn_proxy_retries: u64,
    /// SYN proxy: real servers that refused (reset).
    pub syn_proxy_refused: u64,
    /// SYN proxy: real servers that never answered (the client was reset).
    pub syn_proxy_timeouts: u64,
    /// SYN proxy: clients that reset before the real server answered.
    pub syn_proxy_client_resets: u64,
    /// SYN proxy: client data segments held until the real server's handshake.
    pub syn_proxy_held: u64,
    /// SYN proxy: held segments sent on after the handshake.
    pub syn_proxy_held_sent: u64,
    /// SYN proxy: held segments freed because the connection failed.
    pub syn_proxy_held_freed: u64,
    /// SYN proxy: data segments not held (table full or one already held), dropped.
    pub syn_proxy_held_full: u64,
    /// IP fragments forwarded (first fragments included).
    pub frags_forwarded: u64,
    /// IP fragments held until their datagram's first fragment arrived.
    pub frags_held: u64,
    /// TUN packets without DF too big for the tunnel, sent as two outer fragments.
    pub tun_outer_fragmented: u64,
    /// Drops by reason (every reason, zeros included), named as `rvsadm --dataplane`.
    pub drops: Vec<(String, u64)>,
    /// TSC cycles the poll loop ran.
    pub poll_cycles: u64,
    /// TSC cycles of the loop's turns that received packets.
    pub busy_cycles: u64,
    /// Busy share of the last full second, 0..=1.
    pub busy_ratio: f64,
    /// Pauses the worker took while idle (`[workers] idle_sleep_max_us`).
    pub idle_sleeps: u64,
}

/// One worker's sync counters, for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncWorkerMetrics {
    /// Worker index.
    pub worker: usize,
    /// Records emitted for the master's thread.
    pub emitted: u64,
    /// Records lost because a queue to the master's thread was full.
    pub dropped: u64,
    /// Sessions installed from sync messages.
    pub installed: u64,
    /// Sessions updated from sync messages.
    pub updated: u64,
    /// Synced records refused.
    pub refused: u64,
    /// Of those, in a sync group: sessions of a service this director does not have.
    pub no_service: u64,
}

/// One sync daemon, for the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncDaemonMetrics {
    /// Whether it runs.
    pub running: bool,
    /// Its counters by name (`sent_msgs`, `recv_msgs`, ...), kept across restarts.
    pub counters: Vec<(&'static str, u64)>,
    /// Records queued between the workers and the daemon's thread.
    pub backlog: u64,
    /// Backup: seconds since the last message was received (`None`: none yet).
    pub last_message_age_seconds: Option<f64>,
    /// Whether it runs with the sync group's key (`[sync] key_file`).
    pub authenticated: bool,
}

/// A DPDK port's counters, for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the NIC dropped for lack of receive descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Receive buffer allocation failures.
    pub rx_nombuf: u64,
}

/// The dataplane's own state, for the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineMetrics {
    /// Workers the dataplane runs.
    pub workers_expected: usize,
    /// The workers that answered in time, by index.
    pub workers: Vec<WorkerMetrics>,
    /// Per port: its name and counters (`None`: the driver did not answer).
    pub ports: Vec<(String, Option<PortCounters>)>,
    /// Mbufs allocated now.
    pub mbufs_in_use: u64,
    /// Mbufs in the pool.
    pub mbuf_pool_size: u64,
    /// The sync master.
    pub sync_master: SyncDaemonMetrics,
    /// The sync backup.
    pub sync_backup: SyncDaemonMetrics,
    /// Per worker sync counters (the workers that answered).
    pub sync_workers: Vec<SyncWorkerMetrics>,
    /// Whether the director is a standby.
    pub passive: bool,
    /// Active/active sync: the group's peers (empty outside a group).
    pub sync_peers: Vec<rvs_dataplane::sync::group::PeerReport>,
    /// Active/active sync: the dead peers' LIPs this director holds, with their peers.
    pub sync_held_lips: Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
}

/// What the metrics endpoint asks a backend: the counters and, with a dataplane, its
/// own state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendMetrics {
    /// Service, real-server and LIP counters (as [`Backend::counters`]).
    pub counters: DataplaneCounters,
    /// The dataplane's own state (`None`: no dataplane).
    pub engine: Option<EngineMetrics>,
}

/// An error from the dataplane; its text is shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

impl From<crate::sync::SyncError> for BackendError {
    fn from(e: crate::sync::SyncError) -> Self {
        BackendError(e.to_string())
    }
}

/// What rvsd drives. The DPDK backend implements this; [`ControlOnly`] is the no-op one.
pub trait Backend: Send {
    /// Installs a whole new table (called after every successful change).
    fn apply(&mut self, table: &IpvsTable) -> Result<(), BackendError>;
    /// Timeouts changed (`--set`); also part of the next `apply`.
    fn set_timeouts(&mut self, _timeouts: &Timeouts) -> Result<(), BackendError> {
        Ok(())
    }
    /// A service's LIP pool changed; also part of the next `apply`.
    fn set_laddrs(&mut self, _service: &ServiceKey, _laddrs: &[Laddr]) -> Result<(), BackendError> {
        Ok(())
    }
    /// A reload brings new `[[routes]]` and `[[marks]]` (`cfg` is the whole new file);
    /// they take effect with the next `apply`. An error changes nothing.
    fn set_network(&mut self, _cfg: &rvs_config::Config) -> Result<(), BackendError> {
        Ok(())
    }
    /// Cumulative counters, summed over the workers.
    fn counters(&self) -> DataplaneCounters;
    /// The connection table, for `-Lc`.
    fn connections(&self) -> Vec<ConnRow>;

    /// Active/active sync: takes over the LIPs of peers that went down and releases those
    /// of peers that came back (called every few hundred milliseconds).
    fn group_tick(&mut self) {}
    /// The addresses this director announces to its routers ([`crate::bgp`]): the VIPs
    /// and FULLNAT local addresses the dataplane answers for, and none while it is
    /// unhealthy or standing by. The default (no dataplane): none, since nothing would
    /// forward their traffic.
    fn announced(&self) -> Vec<std::net::IpAddr> {
        Vec::new()
    }

    /// Whether this director has received its sync group's sessions: every peer it sees
    /// up has completed its bulk sync to it, after listening long enough to hear them all
    /// (true outside a group, and without a dataplane).
    fn sync_joined(&self) -> bool {
        true
    }

    /// The sync group's peers and their state as text (`rvsadm --list-group`).
    fn group(&self) -> String {
        String::from("no dataplane (rvsd --no-dataplane): no sync group\n")
    }

    /// The dataplane's own counters as text (`rvsadm --dataplane`).
    fn describe(&self) -> String {
        String::from("no dataplane (rvsd --no-dataplane)\n")
    }

    /// Counters and the dataplane's state for the metrics endpoint, gathered in one go.
    /// The default: [`Backend::counters`] and no dataplane state.
    fn metrics(&self) -> BackendMetrics {
        BackendMetrics {
            counters: self.counters(),
            engine: None,
        }
    }
}

/// No dataplane: the table is kept and listed, every counter is zero.
#[derive(Debug, Default)]
pub struct ControlOnly;

impl Backend for ControlOnly {
    fn apply(&mut self, _table: &IpvsTable) -> Result<(), BackendError> {
        Ok(())
    }
    fn counters(&self) -> DataplaneCounters {
        DataplaneCounters::default()
    }
    fn connections(&self) -> Vec<ConnRow> {
        Vec::new()
    }
}
