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

    /// The dataplane's own counters as text (`rvsadm --dataplane`).
    fn describe(&self) -> String {
        String::from("no dataplane (rvsd --no-dataplane)\n")
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
