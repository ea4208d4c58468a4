//! The IPVS table as ipvsadm sees it: services, real servers (dests), timeouts, sync daemons
//! and FULLNAT local-address (LIP) pools, with the kernel's command semantics.
//!
//! [`IpvsTable::apply`] implements `net/netfilter/ipvs/ip_vs_ctl.c`'s checks and error
//! codes (mapped to libipvs' `ipvs_strerror` texts by [`IpvsError`]'s `Display`); on error
//! the table is unchanged. Dests are kept in the kernel's list order: each new dest is
//! added at the head, so `dests[0]` is the newest (what `--nosort` shows).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

pub use rvs_config::ProxyProtocol;
pub use rvs_config::SynProxy;

/// IPVS version reported in the listing header (1.2.1).
pub const IPVS_VERSION: u32 = 0x010201;
/// Connection hash table size reported in the listing header.
pub const CONN_TAB_SIZE: u32 = 4096;
/// Default persistence timeout for `-p` without a value (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
/// The netmask of an IPv6 service that keeps every bit (a prefix length).
pub const IPV6_FULL_NETMASK: u32 = rvs_config::IPV6_PREFIX_MAX as u32;
/// The scheduler of a service when none is given.
pub const DEFAULT_SCHEDULER: &str = rvs_config::DEFAULT_SCHEDULER;
/// The schedulers rvs implements (the kernel's 14).
pub const SCHEDULERS: [&str; 14] = rvs_config::SCHEDULERS;

/// `IP_VS_SVC_F_SCHED1`: `flag-1`, `sh-fallback`, `mh-fallback`.
pub const SCHED_FLAG_1: u32 = 0x0008;
/// `IP_VS_SVC_F_SCHED2`: `flag-2`, `sh-port`, `mh-port`.
pub const SCHED_FLAG_2: u32 = 0x0010;
/// `IP_VS_SVC_F_SCHED3`: `flag-3`.
pub const SCHED_FLAG_3: u32 = 0x0020;

/// A service protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
    /// SCTP (`--sctp-service`).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The name in listings (`TCP`, `UDP`, `SCTP`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// The ipvsadm option (`-t`, `-u`, `--sctp-service`).
    pub fn option(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        }
    }

    /// The protocol name used for `/etc/services` lookups.
    pub fn services_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceKey {
    /// `<protocol, VIP, port>`.
    Inet {
        /// Protocol.
        protocol: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port (0: all ports, persistent services only).
        port: u16,
    },
    /// A firewall mark (`-f`), IPv4 or IPv6 (`-6`).
    Fwmark {
        /// The mark, 1..=u32::MAX.
        mark: u32,
        /// IPv6 service.
        ipv6: bool,
    },
}

impl ServiceKey {
    /// Whether the service is IPv6.
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Inet { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    /// The fwmark, 0 for a non-fwmark service.
    pub fn fwmark(&self) -> u32 {
        match self {
            ServiceKey::Fwmark { mark, .. } => *mark,
            ServiceKey::Inet { .. } => 0,
        }
    }

    /// The service port, 0 for fwmark services.
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Inet { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }
}

/// A forwarding method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Forward {
    /// NAT (`-m`).
    Masq,
    /// Local node.
    Local,
    /// IP tunnel (`-i`).
    Tunnel,
    /// Direct routing (`-g`, the default).
    Route,
    /// FULLNAT (`-b` on a real server, as DPVS).
    FullNat,
}

impl Forward {
    /// The name in the `Forward` column.
    pub fn label(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
            Forward::FullNat => "FullNat",
        }
    }

    /// The ipvsadm option in `-S` output.
    pub fn option(self) -> &'static str {
        match self {
            Forward::Masq => "-m",
            Forward::Local | Forward::Route => "-g",
            Forward::Tunnel => "-i",
            Forward::FullNat => "-b",
        }
    }
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TunType {
    /// IP in IP (default).
    #[default]
    Ipip,
    /// Generic UDP encapsulation.
    Gue,
    /// GRE.
    Gre,
}

/// Tunnel checksum mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TunCsum {
    /// No checksum (default).
    #[default]
    NoCsum,
    /// Checksum.
    Csum,
    /// Remote checksum offload.
    RemCsum,
}

impl TunCsum {
    /// The ipvsadm option name.
    pub fn option(self) -> &'static str {
        match self {
            TunCsum::NoCsum => "--tun-nocsum",
            TunCsum::Csum => "--tun-csum",
            TunCsum::RemCsum => "--tun-remcsum",
        }
    }
}

/// Tunnel parameters of a `-i` real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Tunnel {
    /// Encapsulation.
    pub tun_type: TunType,
    /// GUE destination port.
    pub port: u16,
    /// Checksum mode.
    pub csum: TunCsum,
}

/// A virtual service's settings (what `-A`/`-E` set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConf {
    /// Which service.
    pub key: ServiceKey,
    /// Scheduler name.
    pub scheduler: String,
    /// Persistence timeout in seconds; `None`: not persistent.
    pub persistent: Option<u32>,
    /// Persistence granularity: an IPv4 mask (host order, e.g. `0xffffff00`) or an IPv6
    /// prefix length. Default all-ones (`0xffffffff` / 128).
    pub netmask: u32,
    /// Scheduler flags ([`SCHED_FLAG_1`] | [`SCHED_FLAG_2`] | [`SCHED_FLAG_3`]).
    pub sched_flags: u32,
    /// One-packet scheduling.
    pub ops: bool,
    /// Persistence engine (`--pe`).
    pub pe: Option<String>,
    /// FULLNAT: the PROXY protocol header its real servers get (`--proxy-protocol`; rvs
    /// and DPVS). Absent in what an older rvsadm sends: `disable`.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// FULLNAT TCP: the client's address in a TOA option (`--toa`; rvs). Absent: off.
    #[serde(default)]
    pub toa: bool,
    /// NAT and FULLNAT TCP: the SYN proxy (`-j`, DPVS's spelling, with rvs's `auto`).
    /// Absent: off.
    #[serde(default)]
    pub syn_proxy: SynProxy,
}

impl ServiceConf {
    /// A service with ipvsadm's defaults (wlc, not persistent, full netmask).
    pub fn new(key: ServiceKey) -> Self {
        ServiceConf {
            key,
            scheduler: DEFAULT_SCHEDULER.to_string(),
            persistent: None,
            netmask: if key.is_ipv6() {
                IPV6_FULL_NETMASK
            } else {
                u32::MAX
            },
            sched_flags: 0,
            ops: false,
            pe: None,
            proxy_protocol: ProxyProtocol::Disable,
            toa: false,
            syn_proxy: SynProxy::Disable,
        }
    }

    /// The client-address options it has, as the refusals name them: `PROXY protocol`,
    /// `TOA`, `PROXY protocol and TOA`; `None` without either.
    pub fn client_address_options(&self) -> Option<&'static str> {
        match (self.proxy_protocol.is_on(), self.toa) {
            (true, true) => Some("PROXY protocol and TOA"),
            (true, false) => Some("PROXY protocol"),
            (false, true) => Some("TOA"),
            (false, false) => None,
        }
    }
}

/// A real server's settings (what `-a`/`-e` set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestConf {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight (0 quiesces).
    pub weight: i32,
    /// Upper connection threshold (0: none).
    pub u_threshold: u32,
    /// Lower connection threshold (0: none).
    pub l_threshold: u32,
    /// Tunnel parameters (meaningful for [`Forward::Tunnel`]).
    pub tunnel: Tunnel,
}

impl DestConf {
    /// A dest with ipvsadm's defaults (`-g`, weight 1).
    pub fn new(addr: IpAddr, port: u16) -> Self {
        DestConf {
            addr,
            port,
            forward: Forward::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        }
    }
}

/// A FULLNAT local address (LIP) of a service's pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Laddr {
    /// The address.
    pub addr: IpAddr,
    /// The port (interface) it lives on (`-F ifname`).
    pub ifname: Option<String>,
}

/// Which list of an ACL an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AclKind {
    /// Denied clients (`--add-blklst -k`, `deny`).
    Deny,
    /// Allowed clients (`--add-whtlst -2`, `allow`).
    Allow,
}

impl AclKind {
    /// DPVS's name of the list (`blklst`, `whtlst`), as the options spell it.
    pub fn option(self) -> &'static str {
        match self {
            AclKind::Deny => "blklst",
            AclKind::Allow => "whtlst",
        }
    }

    /// The heading of the list in `-B`/`-W` (`Deny`, `Allow`).
    pub fn label(self) -> &'static str {
        match self {
            AclKind::Deny => "Deny",
            AclKind::Allow => "Allow",
        }
    }
}

/// An ACL entry: a prefix of client addresses (no bits set beyond its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclPrefix {
    /// The prefix's first address.
    pub addr: IpAddr,
    /// Its length (0..=32, 0..=128).
    pub len: u8,
}

impl AclPrefix {
    /// Parses `a.b.c.d[/len]` (or an IPv6 prefix); see [`rvs_config::parse_acl_prefix`].
    pub fn parse(s: &str) -> Result<AclPrefix, String> {
        rvs_config::parse_acl_prefix(s).map(|p| AclPrefix {
            addr: p.addr,
            len: p.prefix_len,
        })
    }
}

impl fmt::Display for AclPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An access control list: the deny and allow entries, each in insertion order. Which
/// clients may open sessions: the longest matching prefix decides; a client no entry
/// matches is allowed unless the list has allow entries (see `rvs_dataplane::acl`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclLists {
    /// Denied prefixes.
    #[serde(default)]
    pub deny: Vec<AclPrefix>,
    /// Allowed prefixes.
    #[serde(default)]
    pub allow: Vec<AclPrefix>,
}

impl AclLists {
    /// The list of `kind`.
    pub fn list(&self, kind: AclKind) -> &Vec<AclPrefix> {
        match kind {
            AclKind::Deny => &self.deny,
            AclKind::Allow => &self.allow,
        }
    }

    fn list_mut(&mut self, kind: AclKind) -> &mut Vec<AclPrefix> {
        match kind {
            AclKind::Deny => &mut self.deny,
            AclKind::Allow => &mut self.allow,
        }
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }

    /// Every entry: (list, prefix), deny first.
    pub fn entries(&self) -> impl Iterator<Item = (AclKind, AclPrefix)> + '_ {
        let deny = self.deny.iter().map(|p| (AclKind::Deny, *p));
        deny.chain(self.allow.iter().map(|p| (AclKind::Allow, *p)))
    }
}

/// A service in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Settings.
    pub conf: ServiceConf,
    /// Real servers, newest first (the kernel's list order).
    pub dests: Vec<DestConf>,
    /// LIP pool, in insertion order.
    pub laddrs: Vec<Laddr>,
    /// The service's ACL.
    #[serde(default)]
    pub acl: AclLists,
}

/// Connection timeouts in seconds (`--set tcp tcpfin udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP ESTABLISHED.
    pub tcp: u32,
    /// TCP FIN_WAIT.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: rvs_config::DEFAULT_TCP_TIMEOUT,
            tcp_fin: rvs_config::DEFAULT_TCPFIN_TIMEOUT,
            udp: rvs_config::DEFAULT_UDP_TIMEOUT,
        }
    }
}

/// Sync daemon role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncState {
    /// Sends.
    Master,
    /// Receives.
    Backup,
}

impl SyncState {
    /// `master` / `backup`.
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        }
    }
}

/// `--start-daemon` parameters as given (absent values take the kernel defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonConf {
    /// Role.
    pub state: SyncState,
    /// Interface (`--mcast-interface`, ipvsadm default `eth0`).
    pub mcast_ifn: String,
    /// `--syncid` (0: no filtering).
    pub syncid: u8,
    /// `--sync-maxlen`.
    pub sync_maxlen: Option<u16>,
    /// `--mcast-group`.
    pub mcast_group: Option<IpAddr>,
    /// `--mcast-port`.
    pub mcast_port: Option<u16>,
    /// `--mcast-ttl`.
    pub mcast_ttl: Option<u8>,
}

/// A running sync daemon with every value resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemon {
    /// Role.
    pub state: SyncState,
    /// Interface.
    pub mcast_ifn: String,
    /// Sync id.
    pub syncid: u8,
    /// Maximum message length (default 1472 = 1500 - 28).
    pub sync_maxlen: u16,
    /// Multicast group (default 224.0.0.81).
    pub mcast_group: IpAddr,
    /// UDP port (default 8848).
    pub mcast_port: u16,
    /// TTL (default 1).
    pub mcast_ttl: u8,
}

/// One change to the table: what the kernel's set commands do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `-A`.
    AddService(ServiceConf),
    /// `-E`.
    EditService(ServiceConf),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Flush,
    /// `-a`.
    AddDest(ServiceKey, DestConf),
    /// `-e`.
    EditDest(ServiceKey, DestConf),
    /// `-d` (dest address and port).
    DelDest(ServiceKey, IpAddr, u16),
    /// `-Z` (all services, or one).
    Zero(Option<ServiceKey>),
    /// `--set` (a 0 keeps the current value).
    SetTimeouts(Timeouts),
    /// `--start-daemon`.
    StartDaemon(DaemonConf),
    /// `--stop-daemon`.
    StopDaemon(SyncState),
    /// `--add-laddr` / `-P`.
    AddLaddr(ServiceKey, Laddr),
    /// `--del-laddr` / `-Q`.
    DelLaddr(ServiceKey, IpAddr),
    /// `--add-blklst`/`-U` (`Deny`), `--add-whtlst`/`-O` (`Allow`): an entry of a
    /// service's ACL, or of the global one (`None`).
    AddAcl(Option<ServiceKey>, AclKind, AclPrefix),
    /// `--del-blklst`/`-V`, `--del-whtlst`/`-Y`.
    DelAcl(Option<ServiceKey>, AclKind, AclPrefix),
}

/// A kernel-side error. `Display` gives ipvsadm's text for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IpvsError {
    /// EEXIST on add-service.
    #[error("Service already exists")]
    ServiceExists,
    /// ESRCH on edit/delete/zero service and listing one service.
    #[error("No such service")]
    NoSuchService,
    /// ESRCH on dest commands.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// EEXIST on add-dest.
    #[error("Destination already exists")]
    DestExists,
    /// ENOENT on edit/delete dest.
    #[error("No such destination")]
    NoSuchDest,
    /// ENOENT: unknown scheduler or persistence engine.
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// EEXIST on start-daemon.
    #[error("Daemon has already run")]
    DaemonRunning,
    /// ESRCH on stop-daemon.
    #[error("No daemon is running")]
    NoDaemon,
    /// ERANGE (weight < 0, l_threshold > u_threshold).
    #[error("Numerical result out of range")]
    Range,
    /// EINVAL (e.g. a real server address that is not unicast).
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    Invalid,
    /// The LIP is already in the service's pool.
    #[error("Local address already exists")]
    LaddrExists,
    /// The LIP is not in the service's pool.
    #[error("No such local address")]
    NoSuchLaddr,
    /// `--proxy-protocol` on a service of a protocol that version does not carry (v1: TCP
    /// only; v2: TCP and UDP). Fwmark services may have either.
    #[error("PROXY protocol {} is only for {} virtual services", .0.name(), if *.0 == ProxyProtocol::V1 { "TCP" } else { "TCP and UDP" })]
    ProxyProtocolProto(ProxyProtocol),
    /// `--toa` on a UDP or SCTP service.
    #[error("TOA is only for TCP virtual services")]
    ToaProto,
    /// `-j enable|auto` on a UDP or SCTP service.
    #[error("SYN proxy is only for TCP virtual services")]
    SynProxyProto,
    /// `-j enable|auto` on a service with a DR or TUN real server.
    #[error("SYN proxy is allowed only with NAT and FULLNAT servers ({server} is {forward})")]
    ServiceNotProxiable {
        /// The first real server that is neither, as `-Ln` names it.
        server: String,
        /// Its forwarding method as `-Ln` lists it.
        forward: String,
    },
    /// A DR or TUN real server added to (or edited in) a service with `-j enable|auto`.
    #[error("Only NAT and FULLNAT servers are allowed in a service with SYN proxy")]
    DestNotProxiable,
    /// `--proxy-protocol` or `--toa` on a service with a real server that is not FULLNAT.
    #[error("{options} {} allowed only with FULLNAT servers ({server} is {forward})", if options.contains(" and ") { "are" } else { "is" })]
    ServiceNotFullnat {
        /// `PROXY protocol`, `TOA` or both ([`ServiceConf::client_address_options`]).
        options: String,
        /// The first real server that is not FULLNAT, as `-Ln` names it.
        server: String,
        /// Its forwarding method as `-Ln` lists it (`Masq`, `Route`, ...).
        forward: String,
    },
    /// A real server that is not FULLNAT added to (or edited in) a service that has
    /// `--proxy-protocol` or `--toa`.
    #[error("Only FULLNAT servers are allowed in a service with {0}")]
    DestNotFullnat(String),
    /// The prefix is already on that ACL list.
    #[error("ACL entry already exists")]
    AclExists,
    /// The prefix is not on that ACL list.
    #[error("No such ACL entry")]
    NoSuchAcl,
    /// The dataplane refused the change; the table was rolled back.
    #[error("{0}")]
    Backend(String),
}

/// The whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsTable {
    /// Services in insertion order.
    pub services: Vec<Service>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Running sync daemons (at most one master and one backup).
    pub daemons: Vec<SyncDaemon>,
    /// The global ACL (checked before a service's).
    #[serde(default)]
    pub acl: AclLists,
}

fn unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_unspecified() || v.is_multicast() || v.is_broadcast()),
        IpAddr::V6(v) => !(v.is_unspecified() || v.is_multicast()),
    }
}

/// Whether the kernel knows this scheduler.
pub fn scheduler_known(name: &str) -> bool {
    SCHEDULERS.contains(&name)
}

impl IpvsTable {
    /// An empty table with default timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The service with this key.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| s.conf.key == *key)
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.conf.key == *key)
    }

    /// The ACL of service `key` (`None`: the global one); an unknown service is
    /// "Service not defined", as for its real servers.
    fn acl_mut(&mut self, key: Option<&ServiceKey>) -> Result<&mut AclLists, IpvsError> {
        match key {
            None => Ok(&mut self.acl),
            Some(k) => self
                .service_mut(k)
                .map(|s| &mut s.acl)
                .ok_or(IpvsError::ServiceNotDefined),
        }
    }

    /// The ACL of service `key` (`None`: the global one).
    pub fn acl(&self, key: Option<&ServiceKey>) -> Option<&AclLists> {
        match key {
            None => Some(&self.acl),
            Some(k) => self.service(k).map(|s| &s.acl),
        }
    }

    fn check_service_conf(conf: &ServiceConf) -> Result<(), IpvsError> {
        if !scheduler_known(&conf.scheduler) || conf.pe.is_some() {
            return Err(IpvsError::SchedulerNotFound);
        }
        if conf.key.is_ipv6() && !(1..=IPV6_FULL_NETMASK).contains(&conf.netmask) {
            return Err(IpvsError::Invalid);
        }
        let protocol = match conf.key {
            ServiceKey::Inet { protocol, .. } => Some(protocol),
            ServiceKey::Fwmark { .. } => None,
        };
        let pp = conf.proxy_protocol;
        let not_carried = matches!(
            (pp, protocol),
            (ProxyProtocol::V1, Some(Protocol::Udp | Protocol::Sctp))
                | (ProxyProtocol::V2, Some(Protocol::Sctp))
        );
        if not_carried {
            return Err(IpvsError::ProxyProtocolProto(pp));
        }
        if conf.toa && matches!(protocol, Some(Protocol::Udp | Protocol::Sctp)) {
            return Err(IpvsError::ToaProto);
        }
        if conf.syn_proxy.is_on() && matches!(protocol, Some(Protocol::Udp | Protocol::Sctp)) {
            return Err(IpvsError::SynProxyProto);
        }
        Ok(())
    }

    /// `--proxy-protocol` and `--toa` need every real server FULLNAT (the sorry server
    /// too, while it is in the table).
    pub(crate) fn check_fullnat_dests(
        conf: &ServiceConf,
        dests: &[DestConf],
    ) -> Result<(), IpvsError> {
        let proxiable = |f: Forward| matches!(f, Forward::Masq | Forward::FullNat);
        if conf.syn_proxy.is_on() {
            if let Some(d) = dests.iter().find(|d| !proxiable(d.forward)) {
                return Err(IpvsError::ServiceNotProxiable {
                    server: crate::names::addrport(&d.addr, d.port, "tcp", true),
                    forward: d.forward.label().into(),
                });
            }
        }
        let Some(options) = conf.client_address_options() else {
            return Ok(());
        };
        match dests.iter().find(|d| d.forward != Forward::FullNat) {
            Some(d) => Err(IpvsError::ServiceNotFullnat {
                options: options.into(),
                server: crate::names::addrport(&d.addr, d.port, "tcp", true),
                forward: d.forward.label().into(),
            }),
            None => Ok(()),
        }
    }

    /// A real server of a service with `--proxy-protocol` or `--toa` must be FULLNAT.
    fn check_dest_fullnat(conf: &ServiceConf, d: &DestConf) -> Result<(), IpvsError> {
        if conf.syn_proxy.is_on() && !matches!(d.forward, Forward::Masq | Forward::FullNat) {
            return Err(IpvsError::DestNotProxiable);
        }
        match conf.client_address_options() {
            Some(options) if d.forward != Forward::FullNat => {
                Err(IpvsError::DestNotFullnat(options.into()))
            }
            _ => Ok(()),
        }
    }

    fn check_dest(d: &DestConf) -> Result<(), IpvsError> {
        if d.weight < 0 || d.l_threshold > d.u_threshold {
            return Err(IpvsError::Range);
        }
        if !unicast(&d.addr) {
            return Err(IpvsError::Invalid);
        }
        Ok(())
    }

    /// Applies one change with the kernel's semantics; on error nothing changes.
    pub fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        match op {
            Op::AddService(conf) => {
                if self.service(&conf.key).is_some() {
                    return Err(IpvsError::ServiceExists);
                }
                Self::check_service_conf(conf)?;
                self.services.push(Service {
                    conf: conf.clone(),
                    dests: Vec::new(),
                    laddrs: Vec::new(),
                    acl: AclLists::default(),
                });
            }
            Op::EditService(conf) => {
                if self.service(&conf.key).is_none() {
                    return Err(IpvsError::NoSuchService);
                }
                Self::check_service_conf(conf)?;
                if let Some(s) = self.service_mut(&conf.key) {
                    Self::check_fullnat_dests(conf, &s.dests)?;
                    s.conf = conf.clone();
                }
            }
            Op::DelService(key) => {
                let before = self.services.len();
                self.services.retain(|s| s.conf.key != *key);
                if self.services.len() == before {
                    return Err(IpvsError::NoSuchService);
                }
            }
            // The whole table: the global ACL too (so that `-C` then `-R` of a saved
            // table gives it back).
            Op::Flush => {
                self.services.clear();
                self.acl = AclLists::default();
            }
            Op::AddDest(key, d) => {
                let s = self.service_mut(key).ok_or(IpvsError::ServiceNotDefined)?;
                Self::check_dest(d)?;
                Self::check_dest_fullnat(&s.conf, d)?;
                if s.dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                    return Err(IpvsError::DestExists);
                }
                s.dests.insert(0, d.clone());
            }
            Op::EditDest(key, d) => {
                let s = self.service_mut(key).ok_or(IpvsError::ServiceNotDefined)?;
                Self::check_dest(d)?;
                Self::check_dest_fullnat(&s.conf, d)?;
                let x = s
                    .dests
                    .iter_mut()
                    .find(|x| x.addr == d.addr && x.port == d.port)
                    .ok_or(IpvsError::NoSuchDest)?;
                *x = d.clone();
            }
            Op::DelDest(key, addr, port) => {
                let s = self.service_mut(key).ok_or(IpvsError::ServiceNotDefined)?;
                let before = s.dests.len();
                s.dests.retain(|x| !(x.addr == *addr && x.port == *port));
                if s.dests.len() == before {
                    return Err(IpvsError::NoSuchDest);
                }
            }
            Op::Zero(key) => {
                if let Some(k) = key {
                    if self.service(k).is_none() {
                        return Err(IpvsError::NoSuchService);
                    }
                }
            }
            Op::SetTimeouts(t) => {
                if t.tcp != 0 {
                    self.timeouts.tcp = t.tcp;
                }
                if t.tcp_fin != 0 {
                    self.timeouts.tcp_fin = t.tcp_fin;
                }
                if t.udp != 0 {
                    self.timeouts.udp = t.udp;
                }
            }
            Op::StartDaemon(c) => {
                if self.daemons.iter().any(|d| d.state == c.state) {
                    return Err(IpvsError::DaemonRunning);
                }
                let d = SyncDaemon {
                    state: c.state,
                    mcast_ifn: c.mcast_ifn.clone(),
                    syncid: c.syncid,
                    sync_maxlen: c.sync_maxlen.unwrap_or(rvs_config::DEFAULT_SYNC_MAXLEN),
                    mcast_group: c
                        .mcast_group
                        .unwrap_or(IpAddr::V4(rvs_config::DEFAULT_SYNC_GROUP)),
                    mcast_port: c.mcast_port.unwrap_or(rvs_config::DEFAULT_SYNC_PORT),
                    mcast_ttl: c.mcast_ttl.unwrap_or(rvs_config::DEFAULT_SYNC_TTL),
                };
                self.daemons.push(d);
                self.daemons.sort_by_key(|d| d.state != SyncState::Master);
            }
            Op::StopDaemon(state) => {
                let before = self.daemons.len();
                self.daemons.retain(|d| d.state != *state);
                if self.daemons.len() == before {
                    return Err(IpvsError::NoDaemon);
                }
            }
            Op::AddLaddr(key, l) => {
                let s = self.service_mut(key).ok_or(IpvsError::ServiceNotDefined)?;
                if !unicast(&l.addr) {
                    return Err(IpvsError::Invalid);
                }
                if s.laddrs.iter().any(|x| x.addr == l.addr) {
                    return Err(IpvsError::LaddrExists);
                }
                s.laddrs.push(l.clone());
            }
            Op::DelLaddr(key, addr) => {
                let s = self.service_mut(key).ok_or(IpvsError::ServiceNotDefined)?;
                let before = s.laddrs.len();
                s.laddrs.retain(|x| x.addr != *addr);
                if s.laddrs.len() == before {
                    return Err(IpvsError::NoSuchLaddr);
                }
            }
            Op::AddAcl(key, kind, p) => {
                let list = self.acl_mut(key.as_ref())?.list_mut(*kind);
                if list.contains(p) {
                    return Err(IpvsError::AclExists);
                }
                list.push(*p);
            }
            Op::DelAcl(key, kind, p) => {
                let list = self.acl_mut(key.as_ref())?.list_mut(*kind);
                let before = list.len();
                list.retain(|x| x != p);
                if list.len() == before {
                    return Err(IpvsError::NoSuchAcl);
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a (validated) configuration does not make a table. `Display` names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableConfigError {
    /// A service's `vip` is not an endpoint.
    #[error("services[{service}].vip: invalid")]
    Vip {
        /// The service's index.
        service: usize,
    },
    /// A service's `laddrs` holds something that is not an address.
    #[error("services[{service}].laddrs: invalid")]
    Laddr {
        /// The service's index.
        service: usize,
    },
    /// A real server's `address` is not an endpoint.
    #[error("services[{service}].real[{real}].address: invalid")]
    RealAddress {
        /// The service's index.
        service: usize,
        /// The real server's index.
        real: usize,
    },
    /// The table refused a service or one of its LIPs.
    #[error("services[{service}]: {source}")]
    Service {
        /// The service's index.
        service: usize,
        /// The table's error.
        source: IpvsError,
    },
    /// The table refused a real server.
    #[error("services[{service}].real[{real}]: {source}")]
    Real {
        /// The service's index.
        service: usize,
        /// The real server's index.
        real: usize,
        /// The table's error.
        source: IpvsError,
    },
    /// The table refused the sync daemon.
    #[error("sync: {0}")]
    Sync(IpvsError),
}

impl Protocol {
    /// The protocol of a configured service; `None` for a fwmark service.
    pub fn from_config(p: rvs_config::Proto) -> Option<Protocol> {
        match p {
            rvs_config::Proto::Tcp => Some(Protocol::Tcp),
            rvs_config::Proto::Udp => Some(Protocol::Udp),
            rvs_config::Proto::Sctp => Some(Protocol::Sctp),
            rvs_config::Proto::Fwmark => None,
        }
    }
}

impl From<rvs_config::Forward> for Forward {
    fn from(f: rvs_config::Forward) -> Self {
        match f {
            rvs_config::Forward::Masq => Forward::Masq,
            rvs_config::Forward::Route => Forward::Route,
            rvs_config::Forward::Tunnel => Forward::Tunnel,
            rvs_config::Forward::Fullnat => Forward::FullNat,
        }
    }
}

/// The key of configured service `i`.
pub(crate) fn config_key(
    i: usize,
    s: &rvs_config::Service,
) -> Result<ServiceKey, TableConfigError> {
    let Some(protocol) = Protocol::from_config(s.proto) else {
        return Ok(ServiceKey::Fwmark {
            mark: s.fwmark.unwrap_or(0) as u32,
            ipv6: s.ipv6,
        });
    };
    let ep = s.endpoint().ok_or(TableConfigError::Vip { service: i })?;
    Ok(ServiceKey::Inet {
        protocol,
        addr: ep.ip(),
        port: ep.port(),
    })
}

/// The settings of a configured service.
fn config_service(key: ServiceKey, s: &rvs_config::Service) -> ServiceConf {
    let mut conf = ServiceConf::new(key);
    conf.scheduler = s.scheduler.clone();
    conf.persistent = s.persistent.map(|p| p as u32);
    if let Some(m) = &s.netmask {
        conf.netmask = if key.is_ipv6() {
            m.parse::<u32>().unwrap_or(IPV6_FULL_NETMASK)
        } else {
            m.parse::<Ipv4Addr>().map(u32::from).unwrap_or(u32::MAX)
        };
    }
    for f in &s.sched_flags {
        conf.sched_flags |= match f.as_str() {
            "flag-1" | "sh-fallback" | "mh-fallback" => SCHED_FLAG_1,
            "flag-2" | "sh-port" | "mh-port" => SCHED_FLAG_2,
            _ => SCHED_FLAG_3,
        };
    }
    conf.ops = s.ops;
    conf.proxy_protocol = s.proxy_protocol();
    conf.toa = s.toa;
    conf.syn_proxy = s.syn_proxy();
    conf
}

/// Real server `j` of configured service `i`.
pub(crate) fn config_dest(
    (i, j): (usize, usize),
    key: ServiceKey,
    r: &rvs_config::Real,
) -> Result<DestConf, TableConfigError> {
    let ep = r
        .endpoint(key.port())
        .ok_or(TableConfigError::RealAddress {
            service: i,
            real: j,
        })?;
    let forward = Forward::from(r.forward);
    // Direct routing and tunnels cannot change the port.
    let port = match (forward, key) {
        (Forward::Route | Forward::Tunnel, ServiceKey::Inet { port, .. }) => port,
        _ => ep.port(),
    };
    let mut d = DestConf::new(ep.ip(), port);
    d.forward = forward;
    d.weight = r.weight as i32;
    d.u_threshold = r.u_threshold as u32;
    d.l_threshold = r.l_threshold as u32;
    Ok(d)
}

/// Adds configured service `i` with its LIPs and real servers.
fn add_config_service(
    t: &mut IpvsTable,
    i: usize,
    s: &rvs_config::Service,
) -> Result<(), TableConfigError> {
    let key = config_key(i, s)?;
    let err = |source| TableConfigError::Service { service: i, source };
    t.apply(&Op::AddService(config_service(key, s)))
        .map_err(err)?;
    for l in &s.laddrs {
        let addr = l
            .parse()
            .map_err(|_| TableConfigError::Laddr { service: i })?;
        t.apply(&Op::AddLaddr(key, Laddr { addr, ifname: None }))
            .map_err(err)?;
    }
    if let Some(svc) = t.service_mut(&key) {
        svc.acl = config_acl(&s.deny, &s.allow);
    }
    for (j, r) in s.real.iter().enumerate() {
        let d = config_dest((i, j), key, r)?;
        t.apply(&Op::AddDest(key, d))
            .map_err(|source| TableConfigError::Real {
                service: i,
                real: j,
                source,
            })?;
    }
    Ok(())
}

/// The ACL of validated `deny` and `allow` lists (`[acl]`, a service's keys).
pub fn config_acl(deny: &[String], allow: &[String]) -> AclLists {
    let list = |v: &[String]| v.iter().filter_map(|p| AclPrefix::parse(p).ok()).collect();
    AclLists {
        deny: list(deny),
        allow: list(allow),
    }
}

/// The sync daemons of the configuration: none, a master, a backup, or both (a group
/// member runs both, as IPVS lets a host do; `-L --daemon` lists them as ipvsadm does).
fn config_daemons(sync: &rvs_config::Sync) -> Vec<DaemonConf> {
    let states: &[SyncState] = match sync.state {
        rvs_config::SyncState::None => &[],
        rvs_config::SyncState::Master => &[SyncState::Master],
        rvs_config::SyncState::Backup => &[SyncState::Backup],
        rvs_config::SyncState::Group => &[SyncState::Master, SyncState::Backup],
    };
    states
        .iter()
        .map(|&state| DaemonConf {
            state,
            mcast_ifn: sync.mcast_interface.clone(),
            syncid: sync.syncid as u8,
            sync_maxlen: Some(sync.maxlen as u16),
            mcast_group: sync.group.parse().ok(),
            mcast_port: Some(sync.port as u16),
            mcast_ttl: Some(sync.ttl as u8),
        })
        .collect()
}

/// Builds the table from a validated configuration.
pub fn table_from_config(cfg: &rvs_config::Config) -> Result<IpvsTable, TableConfigError> {
    let mut t = IpvsTable::new();
    t.timeouts = Timeouts {
        tcp: cfg.timeouts.tcp as u32,
        tcp_fin: cfg.timeouts.tcpfin as u32,
        udp: cfg.timeouts.udp as u32,
    };
    t.acl = config_acl(&cfg.acl.deny, &cfg.acl.allow);
    for (i, s) in cfg.services.iter().enumerate() {
        add_config_service(&mut t, i, s)?;
    }
    for d in config_daemons(&cfg.sync) {
        t.apply(&Op::StartDaemon(d))
            .map_err(TableConfigError::Sync)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(a: &str, port: u16) -> ServiceKey {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        }
    }

    fn dest(a: &str, port: u16) -> DestConf {
        DestConf::new(a.parse().unwrap(), port)
    }

    #[test]
    fn kernel_semantics_and_errors() {
        let mut t = IpvsTable::new();
        let k = tcp("1.2.3.4", 80);
        let mut c = ServiceConf::new(k);
        c.scheduler = "foo".into();
        assert_eq!(
            t.apply(&Op::AddService(c.clone())),
            Err(IpvsError::SchedulerNotFound)
        );
        c.scheduler = "rr".into();
        t.apply(&Op::AddService(c.clone())).unwrap();
        assert_eq!(
            t.apply(&Op::AddService(c.clone())),
            Err(IpvsError::ServiceExists)
        );
        assert_eq!(
            t.apply(&Op::EditService(ServiceConf::new(tcp("1.2.3.4", 81)))),
            Err(IpvsError::NoSuchService)
        );
        assert_eq!(
            t.apply(&Op::AddDest(tcp("9.9.9.9", 80), dest("10.0.0.1", 80))),
            Err(IpvsError::ServiceNotDefined)
        );
        t.apply(&Op::AddDest(k, dest("10.0.0.1", 80))).unwrap();
        t.apply(&Op::AddDest(k, dest("10.0.0.2", 80))).unwrap();
        // Newest first, as the kernel's list_add_rcu at the head.
        let s = t.service(&k).unwrap();
        assert_eq!(s.dests[0].addr, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            t.apply(&Op::AddDest(k, dest("10.0.0.1", 80))),
            Err(IpvsError::DestExists)
        );
        assert_eq!(
            t.apply(&Op::EditDest(k, dest("10.0.0.3", 80))),
            Err(IpvsError::NoSuchDest)
        );
        let mut bad = dest("10.0.0.3", 80);
        bad.l_threshold = 5;
        assert_eq!(t.apply(&Op::AddDest(k, bad)), Err(IpvsError::Range));
        assert_eq!(
            t.apply(&Op::AddDest(k, dest("0.0.0.0", 80))),
            Err(IpvsError::Invalid)
        );
        let before = t.clone();
        assert!(t
            .apply(&Op::DelDest(k, "10.0.0.9".parse().unwrap(), 80))
            .is_err());
        assert_eq!(t, before);
        assert_eq!(
            t.apply(&Op::StopDaemon(SyncState::Master)),
            Err(IpvsError::NoDaemon)
        );
        let dc = DaemonConf {
            state: SyncState::Master,
            mcast_ifn: "eth0".into(),
            syncid: 1,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        t.apply(&Op::StartDaemon(dc.clone())).unwrap();
        assert_eq!(t.apply(&Op::StartDaemon(dc)), Err(IpvsError::DaemonRunning));
        assert_eq!(t.daemons[0].sync_maxlen, 1472);
        t.apply(&Op::SetTimeouts(Timeouts {
            tcp: 0,
            tcp_fin: 60,
            udp: 0,
        }))
        .unwrap();
        assert_eq!(
            t.timeouts,
            Timeouts {
                tcp: 900,
                tcp_fin: 60,
                udp: 300
            }
        );
        assert_eq!(
            t.apply(&Op::Zero(Some(tcp("1.1.1.1", 1)))),
            Err(IpvsError::NoSuchService)
        );
        t.apply(&Op::Flush).unwrap();
        assert!(t.services.is_empty());
        assert_eq!(t.apply(&Op::DelService(k)), Err(IpvsError::NoSuchService));
    }

    fn fnat(a: &str, port: u16) -> DestConf {
        let mut d = dest(a, port);
        d.forward = Forward::FullNat;
        d
    }

    fn inet(protocol: Protocol, port: u16) -> ServiceKey {
        ServiceKey::Inet {
            protocol,
            addr: "1.2.3.4".parse().unwrap(),
            port,
        }
    }

    fn with(key: ServiceKey, pp: ProxyProtocol, toa: bool) -> ServiceConf {
        let mut c = ServiceConf::new(key);
        c.proxy_protocol = pp;
        c.toa = toa;
        c
    }

    fn refused(t: &mut IpvsTable, op: Op) -> String {
        let before = t.clone();
        let e = t.apply(&op).unwrap_err().to_string();
        assert_eq!(*t, before, "a refusal changes nothing");
        e
    }

    #[test]
    fn proxy_protocol_and_toa_go_with_fullnat_servers_only() {
        let mut t = IpvsTable::new();
        let k = tcp("1.2.3.4", 80);
        t.apply(&Op::AddService(ServiceConf::new(k))).unwrap();
        t.apply(&Op::AddDest(k, fnat("10.0.0.1", 8080))).unwrap();
        t.apply(&Op::AddDest(k, dest("10.0.0.2", 80))).unwrap();
        // -E with the options while a real server forwards otherwise.
        assert_eq!(
            refused(&mut t, Op::EditService(with(k, ProxyProtocol::V2, false))),
            "PROXY protocol is allowed only with FULLNAT servers (10.0.0.2:80 is Route)"
        );
        assert_eq!(
            refused(
                &mut t,
                Op::EditService(with(k, ProxyProtocol::Disable, true))
            ),
            "TOA is allowed only with FULLNAT servers (10.0.0.2:80 is Route)"
        );
        assert_eq!(
            refused(&mut t, Op::EditService(with(k, ProxyProtocol::V1, true))),
            "PROXY protocol and TOA are allowed only with FULLNAT servers (10.0.0.2:80 is Route)"
        );
        t.apply(&Op::DelDest(k, "10.0.0.2".parse().unwrap(), 80))
            .unwrap();
        t.apply(&Op::EditService(with(k, ProxyProtocol::V2, true)))
            .unwrap();
        assert_eq!(t.services[0].conf.proxy_protocol, ProxyProtocol::V2);
        // -a/-e of a server that is not FULLNAT into such a service.
        let mut nat = dest("10.0.0.3", 80);
        nat.forward = Forward::Masq;
        assert_eq!(
            refused(&mut t, Op::AddDest(k, nat.clone())),
            "Only FULLNAT servers are allowed in a service with PROXY protocol and TOA"
        );
        let mut back = fnat("10.0.0.1", 8080);
        back.forward = Forward::Tunnel;
        assert_eq!(
            refused(&mut t, Op::EditDest(k, back)),
            "Only FULLNAT servers are allowed in a service with PROXY protocol and TOA"
        );
        t.apply(&Op::AddDest(k, fnat("10.0.0.4", 80))).unwrap();
        // -E without the options turns them off (ipvsadm's -E: what is not given
        // reverts); then any server may come in again.
        t.apply(&Op::EditService(with(k, ProxyProtocol::V1, false)))
            .unwrap();
        assert_eq!(
            refused(&mut t, Op::AddDest(k, nat.clone())),
            "Only FULLNAT servers are allowed in a service with PROXY protocol"
        );
        t.apply(&Op::EditService(with(k, ProxyProtocol::Disable, true)))
            .unwrap();
        assert_eq!(
            refused(&mut t, Op::AddDest(k, nat.clone())),
            "Only FULLNAT servers are allowed in a service with TOA"
        );
        t.apply(&Op::EditService(ServiceConf::new(k))).unwrap();
        t.apply(&Op::AddDest(k, nat)).unwrap();
    }

    #[test]
    fn v1_and_toa_are_tcp_only_and_v2_tcp_or_udp() {
        let mut t = IpvsTable::new();
        let udp = inet(Protocol::Udp, 53);
        let sctp = inet(Protocol::Sctp, 9);
        assert_eq!(
            refused(&mut t, Op::AddService(with(udp, ProxyProtocol::V1, false))),
            "PROXY protocol v1 is only for TCP virtual services"
        );
        assert_eq!(
            refused(
                &mut t,
                Op::AddService(with(udp, ProxyProtocol::Disable, true))
            ),
            "TOA is only for TCP virtual services"
        );
        assert_eq!(
            refused(&mut t, Op::AddService(with(sctp, ProxyProtocol::V2, false))),
            "PROXY protocol v2 is only for TCP and UDP virtual services"
        );
        assert_eq!(
            refused(
                &mut t,
                Op::AddService(with(sctp, ProxyProtocol::Disable, true))
            ),
            "TOA is only for TCP virtual services"
        );
        t.apply(&Op::AddService(with(udp, ProxyProtocol::V2, false)))
            .unwrap();
        assert_eq!(
            refused(&mut t, Op::EditService(with(udp, ProxyProtocol::V1, false))),
            "PROXY protocol v1 is only for TCP virtual services"
        );
        // A fwmark service may carry TCP and UDP: the dataplane puts the session's own
        // VIP and port in the header.
        for mark in [1, 2] {
            let fwm = ServiceKey::Fwmark { mark, ipv6: false };
            let pp = if mark == 1 {
                ProxyProtocol::V1
            } else {
                ProxyProtocol::V2
            };
            t.apply(&Op::AddService(with(fwm, pp, true))).unwrap();
        }
        t.apply(&Op::AddService(with(
            tcp("1.2.3.4", 80),
            ProxyProtocol::V1,
            true,
        )))
        .unwrap();
    }

    #[test]
    fn a_service_saved_by_an_older_rvs_loads_with_the_options_off() {
        let old = r#"{"key":{"Inet":{"protocol":"Tcp","addr":"1.2.3.4","port":80}},"scheduler":"wlc","persistent":null,"netmask":4294967295,"sched_flags":0,"ops":false,"pe":null}"#;
        let c: ServiceConf = serde_json::from_str(old).unwrap();
        assert_eq!(c, ServiceConf::new(tcp("1.2.3.4", 80)));
        let mut c = with(tcp("1.2.3.4", 80), ProxyProtocol::V2, true);
        c.scheduler = "rr".into();
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            text.contains(r#""proxy_protocol":"v2","toa":true"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ServiceConf>(&text).unwrap(), c);
    }

    #[test]
    fn the_options_come_from_the_configuration() {
        let cfg = rvs_config::Config::from_str(
            "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nproxy_protocol = \"v1\"\ntoa = true\n\
             laddrs = [\"10.0.0.200\"]\nreal = [{ address = \"10.0.0.1:80\", forward = \"fullnat\" }]\n",
        )
        .unwrap();
        let t = table_from_config(&cfg).unwrap();
        let c = &t.services[0].conf;
        assert_eq!((c.proxy_protocol, c.toa), (ProxyProtocol::V1, true));
    }

    #[test]
    fn a_sync_group_member_runs_a_master_and_a_backup() {
        let cfg = rvs_config::Config::from_str(
            "[sync]\nstate = \"group\"\nmcast_interface = \"s0\"\nsyncid = 7\npeers = [\"10.99.0.1\", \"10.99.0.2\"]\n",
        )
        .unwrap();
        let t = table_from_config(&cfg).unwrap();
        let roles: Vec<(SyncState, u8, &str)> = t
            .daemons
            .iter()
            .map(|d| (d.state, d.syncid, d.mcast_ifn.as_str()))
            .collect();
        assert_eq!(
            roles,
            [(SyncState::Master, 7, "s0"), (SyncState::Backup, 7, "s0")]
        );
    }

    #[test]
    fn acl_entries_per_service_and_global() {
        let mut t = IpvsTable::new();
        let k = tcp("10.0.0.100", 80);
        let p = |s: &str| AclPrefix::parse(s).unwrap();
        assert_eq!(
            t.apply(&Op::AddAcl(Some(k), AclKind::Deny, p("10.0.0.0/8"))),
            Err(IpvsError::ServiceNotDefined)
        );
        t.apply(&Op::AddService(ServiceConf::new(k))).unwrap();
        t.apply(&Op::AddAcl(Some(k), AclKind::Deny, p("10.0.0.0/8")))
            .unwrap();
        t.apply(&Op::AddAcl(Some(k), AclKind::Allow, p("10.0.0.0/8")))
            .unwrap();
        t.apply(&Op::AddAcl(None, AclKind::Deny, p("192.0.2.7")))
            .unwrap();
        assert_eq!(
            t.apply(&Op::AddAcl(None, AclKind::Deny, p("192.0.2.7/32"))),
            Err(IpvsError::AclExists)
        );
        assert_eq!(
            t.apply(&Op::DelAcl(None, AclKind::Allow, p("192.0.2.7"))),
            Err(IpvsError::NoSuchAcl)
        );
        assert_eq!(t.acl.deny, vec![p("192.0.2.7")]);
        assert_eq!(t.service(&k).unwrap().acl.entries().count(), 2);
        t.apply(&Op::DelAcl(Some(k), AclKind::Allow, p("10.0.0.0/8")))
            .unwrap();
        assert!(t.service(&k).unwrap().acl.allow.is_empty());
        // -C clears the whole table, the global list too.
        t.apply(&Op::Flush).unwrap();
        assert!(t.acl.is_empty());
        assert!(AclPrefix::parse("10.1.2.3/8").is_err());
        assert_eq!(p("10.1.2.0/24").to_string(), "10.1.2.0/24");
    }

    #[test]
    fn laddrs() {
        let mut t = IpvsTable::new();
        let k = tcp("10.0.0.100", 80);
        let l = Laddr {
            addr: "192.168.100.200".parse().unwrap(),
            ifname: Some("dpdk0".into()),
        };
        assert_eq!(
            t.apply(&Op::AddLaddr(k, l.clone())),
            Err(IpvsError::ServiceNotDefined)
        );
        t.apply(&Op::AddService(ServiceConf::new(k))).unwrap();
        t.apply(&Op::AddLaddr(k, l.clone())).unwrap();
        assert_eq!(
            t.apply(&Op::AddLaddr(k, l.clone())),
            Err(IpvsError::LaddrExists)
        );
        t.apply(&Op::DelLaddr(k, l.addr)).unwrap();
        assert_eq!(
            t.apply(&Op::DelLaddr(k, l.addr)),
            Err(IpvsError::NoSuchLaddr)
        );
    }

    #[test]
    fn from_config_examples() {
        for e in ["nat.toml", "dr.toml", "tun.toml", "fullnat.toml"] {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config/examples")
                .join(e);
            let cfg = rvs_config::Config::from_file(p).unwrap();
            let t = table_from_config(&cfg).unwrap();
            assert_eq!(t.services.len(), cfg.services.len(), "{e}");
        }
    }
}
