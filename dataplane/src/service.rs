//! Virtual services and real servers: the immutable snapshot the workers read.
//!
//! The control plane edits a [`ServiceTable`] (the `ipvsadm -A/-E/-D/-a/-e/-d/-C` operations,
//! with the kernel's checks and error cases) and publishes a [`ServiceSet`] with
//! [`ServiceTable::snapshot`]. A snapshot is immutable and shared between the workers behind
//! an `Arc`; a worker adopts a new one between bursts (see `conn::ConnTable::adopt`).
//!
//! Identity across snapshots: every service has a stable [`ServiceId`] and every real server a
//! stable [`DestId`]. Per-core mutable state (ActiveConn/InActConn counters, overload flags,
//! scheduler cursors and tables) lives outside the snapshot, keyed by these ids, so it survives
//! a swap; sessions reference their real server by it.
//!
//! The trash (`ip_vs_trash_get_dest`): a real server removed from the table (`-d`, or with
//! its service by `-D` or `-C`) goes to the table's trash with its id. Added again to a
//! service of the same key (protocol, VIP and port, or firewall mark) with the same address
//! and port, it gets its old id back, so the sessions still bound to it on the workers
//! resume. [`ServiceTable::expire_trash`] forgets a trashed server once no worker
//! references it for [`TRASH_PERIOD_MS`] (`ip_vs_dest_trash_expire`); added after that, it
//! is a new server.
//!
//! Order of real servers: like the kernel (`list_add_rcu` in `__ip_vs_update_dest`), a new real
//! server is put at the **head** of its service's list, so [`Service::dests`] is newest-first
//! and schedulers iterate it in that order.
//!
//! Lookup of the service for a packet ([`ServiceSet::find`]) is O(1) and follows
//! `ip_vs_service_find`: firewall mark first, then `<proto, vip, vport>`, then `<proto, vip, 0>`.

use std::sync::Arc;

use hashbrown::HashMap;

use crate::acl::Acl;
use crate::flow::{Addr, FwdMethod, Proto, Tunnel};

/// The scheduler algorithms (`ipvsadm -s name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (the default).
    #[default]
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Weighted random twos choice.
    Twos,
}

impl SchedKind {
    /// All schedulers.
    pub const ALL: [SchedKind; 14] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Fo,
        SchedKind::Ovf,
        SchedKind::Mh,
        SchedKind::Twos,
    ];

    /// The `-s` name.
    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Mh => "mh",
            SchedKind::Twos => "twos",
        }
    }

    /// The scheduler for a `-s` name (`None`: "Scheduler or persistence engine not found").
    pub fn from_name(name: &str) -> Option<SchedKind> {
        SchedKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Service flags (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    /// `-p`: persistent service.
    pub const PERSISTENT: u32 = 0x0001;
    /// `-o`: one-packet scheduling (UDP).
    pub const ONEPACKET: u32 = 0x0004;
    /// Scheduler flag 1 (`sh-fallback`, `mh-fallback`, `flag-1`).
    pub const SCHED1: u32 = 0x0008;
    /// Scheduler flag 2 (`sh-port`, `mh-port`, `flag-2`).
    pub const SCHED2: u32 = 0x0010;
    /// Scheduler flag 3 (`flag-3`).
    pub const SCHED3: u32 = 0x0020;
    /// sh: probe other buckets when the hashed dest is unavailable.
    pub const SH_FALLBACK: u32 = SCHED1;
    /// sh: hash the source port too.
    pub const SH_PORT: u32 = SCHED2;
    /// mh: probe other slots when the hashed dest is unavailable.
    pub const MH_FALLBACK: u32 = SCHED1;
    /// mh: hash the source port too.
    pub const MH_PORT: u32 = SCHED2;
    /// rvs: FULLNAT sessions insert a PROXY protocol v1 header (`--proxy-protocol v1`).
    /// rvs's own bits sit above the kernel's (`IP_VS_SVC_F_*` end at 0x0020).
    pub const PROXY_V1: u32 = 0x0001_0000;
    /// rvs: FULLNAT sessions insert a PROXY protocol v2 header (`--proxy-protocol v2`).
    pub const PROXY_V2: u32 = 0x0002_0000;
    /// rvs: FULLNAT TCP sessions carry the client's address in a TOA option (`--toa`).
    pub const TOA: u32 = 0x0004_0000;
    /// rvs: NAT and FULLNAT TCP connections are SYN-proxied (`-j enable`): the director
    /// answers a SYN with a cookie and opens the session on the client's ACK.
    pub const SYNPROXY: u32 = 0x0008_0000;
    /// rvs: SYN-proxied only while the worker is under pressure (`-j auto`).
    pub const SYNPROXY_AUTO: u32 = 0x0010_0000;
    /// rvs's private bits: never reported to ipvsadm as kernel flags.
    pub const PRIVATE: u32 = PROXY_V1 | PROXY_V2 | TOA | SYNPROXY | SYNPROXY_AUTO;
}

/// Whether a NAT or FULLNAT TCP service's connections go through the SYN proxy
/// (`-j`, `syn_proxy`): the director answers SYNs with cookies and opens a session
/// only on a client's valid ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SynProxy {
    /// Plain forwarding (the default).
    #[default]
    Off,
    /// Every connection.
    On,
    /// Only while the worker is under pressure (new connections per second above
    /// `[sessions] syn_proxy_rate`, or the table fuller than `syn_proxy_fill`).
    Auto,
}

impl SynProxy {
    /// The service flags of this mode.
    pub fn flags(self) -> u32 {
        match self {
            SynProxy::Off => 0,
            SynProxy::On => svc_flags::SYNPROXY,
            SynProxy::Auto => svc_flags::SYNPROXY_AUTO,
        }
    }

    /// The mode service flags name.
    pub fn of_flags(flags: u32) -> SynProxy {
        if flags & svc_flags::SYNPROXY != 0 {
            SynProxy::On
        } else if flags & svc_flags::SYNPROXY_AUTO != 0 {
            SynProxy::Auto
        } else {
            SynProxy::Off
        }
    }

    /// The spelling of `-j` (`disable`, `enable`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            SynProxy::Off => "disable",
            SynProxy::On => "enable",
            SynProxy::Auto => "auto",
        }
    }
}

/// How a FULLNAT service tells its real servers the client's address in the stream
/// (`--proxy-protocol`): the PROXY protocol of HAProxy (v1 text or v2 binary), inserted
/// before the first byte the client sends (TCP) or in front of every datagram (UDP, v2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// No header (`disable`, the default).
    #[default]
    Off,
    /// Version 1: one text line, `PROXY TCP4 <client> <vip> <cport> <vport>\r\n` (TCP only).
    V1,
    /// Version 2: the binary header with the addresses and ports (TCP and UDP).
    V2,
}

impl ProxyProtocol {
    /// The service flag of this version (0 for `Off`).
    pub fn flag(self) -> u32 {
        match self {
            ProxyProtocol::Off => 0,
            ProxyProtocol::V1 => svc_flags::PROXY_V1,
            ProxyProtocol::V2 => svc_flags::PROXY_V2,
        }
    }

    /// The version a service's flags name (v2 if both bits are set).
    pub fn of_flags(flags: u32) -> ProxyProtocol {
        if flags & svc_flags::PROXY_V2 != 0 {
            ProxyProtocol::V2
        } else if flags & svc_flags::PROXY_V1 != 0 {
            ProxyProtocol::V1
        } else {
            ProxyProtocol::Off
        }
    }

    /// The spelling of `--proxy-protocol` (`disable`, `v1`, `v2`).
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocol::Off => "disable",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }
}

/// The persistence timeout `-p` uses when no value is given (`IP_VS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSIST_TIMEOUT: u32 = 360;

/// The largest weight of a real server (`-w`).
pub const MAX_WEIGHT: u32 = 65535;

/// How long a removed real server that no session references stays in the trash before it
/// is forgotten (the kernel's `IP_VS_DEST_TRASH_PERIOD`, 60 s).
pub const TRASH_PERIOD_MS: u64 = 60_000;

/// Stable identity of a virtual service across snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

/// Stable identity of a real server across snapshots (per service).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// Index of a service inside one [`ServiceSet`] (valid for that snapshot only).
pub type SvcIdx = u32;

/// How a virtual service is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t/-u vip:port`.
    Addr {
        /// Protocol.
        proto: Proto,
        /// Virtual IP.
        addr: Addr,
        /// Virtual port (0: all ports, persistent services only).
        port: u16,
    },
    /// `-f mark` (with `-6` for an IPv6 fwmark service).
    Fwmark {
        /// IPv6 service.
        v6: bool,
        /// Firewall mark.
        mark: u32,
    },
}

/// A real server of a service, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Stable identity (assigned by [`ServiceTable`]).
    pub id: DestId,
    /// Real server address.
    pub addr: Addr,
    /// Real server port (0 for fwmark services: use the packet's port).
    pub port: u16,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Weight 0..=65535; 0 quiesces (no new sessions).
    pub weight: u32,
    /// The last non-zero weight (the kernel's `last_weight`, used by mh to keep a quiesced
    /// server's slots).
    pub last_weight: u32,
    /// Upper connection threshold `-x` (0: none).
    pub u_threshold: u32,
    /// Lower connection threshold `-y` (0: none).
    pub l_threshold: u32,
    /// The tunnel of a TUN server.
    pub tunnel: Tunnel,
}

/// A virtual service in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Stable identity.
    pub id: ServiceId,
    /// Address or firewall mark.
    pub key: ServiceKey,
    /// Scheduler.
    pub sched: SchedKind,
    /// `svc_flags::*`.
    pub flags: u32,
    /// Persistence timeout in seconds (meaningful with `svc_flags::PERSISTENT`).
    pub timeout: u32,
    /// Persistence netmask (`-M`); all ones by default.
    pub netmask: Addr,
    /// Real servers, newest first.
    pub dests: Vec<RealServer>,
    /// The service's ACL (`rvsadm --add-blklst -t ...`, a service's `deny`/`allow`): which
    /// clients may open sessions of it, checked after the global one. `None`: no list.
    pub acl: Option<Arc<Acl>>,
}

impl Service {
    /// True with `-p`.
    pub fn is_persistent(&self) -> bool {
        self.flags & svc_flags::PERSISTENT != 0
    }

    /// The PROXY protocol its FULLNAT sessions insert.
    pub fn proxy_protocol(&self) -> ProxyProtocol {
        ProxyProtocol::of_flags(self.flags)
    }

    /// Whether its TCP connections are SYN-proxied: always, never, or under pressure.
    pub fn syn_proxy(&self) -> SynProxy {
        SynProxy::of_flags(self.flags)
    }

    /// Whether its FULLNAT TCP sessions carry the client's address in a TOA option.
    pub fn toa(&self) -> bool {
        self.flags & svc_flags::TOA != 0
    }

    /// The firewall mark, for a fwmark service.
    pub fn fwmark(&self) -> Option<u32> {
        match self.key {
            ServiceKey::Fwmark { mark, .. } => Some(mark),
            ServiceKey::Addr { .. } => None,
        }
    }

    /// The virtual port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self.key {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// True for an IPv6 service.
    pub fn is_v6(&self) -> bool {
        match self.key {
            ServiceKey::Addr { addr, .. } => !addr.is_v4(),
            ServiceKey::Fwmark { v6, .. } => v6,
        }
    }
}

/// An immutable view of all services, built by the control plane and shared by the workers.
#[derive(Debug, Default)]
pub struct ServiceSet {
    generation: u64,
    services: Vec<Service>,
    by_addr: HashMap<(Proto, Addr, u16), SvcIdx>,
    by_mark: HashMap<(bool, u32), SvcIdx>,
    dest_loc: HashMap<DestId, (SvcIdx, u32)>,
    /// Some service has a non-empty ACL: a packet opening a session looks its service up.
    acls: bool,
    /// Some TCP service is SYN-proxied (always or under pressure).
    syn_proxy: bool,
}

impl ServiceSet {
    /// Builds a snapshot from a list of services (normally done by [`ServiceTable::snapshot`]).
    pub fn new(generation: u64, services: Vec<Service>) -> ServiceSet {
        let mut by_addr = HashMap::with_capacity(services.len());
        let mut by_mark = HashMap::new();
        let mut dest_loc = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            let i = i as SvcIdx;
            match s.key {
                ServiceKey::Addr { proto, addr, port } => {
                    by_addr.insert((proto, addr, port), i);
                }
                ServiceKey::Fwmark { v6, mark } => {
                    by_mark.insert((v6, mark), i);
                }
            }
            for (p, d) in s.dests.iter().enumerate() {
                dest_loc.insert(d.id, (i, p as u32));
            }
        }
        let acls = services
            .iter()
            .any(|s| s.acl.as_ref().is_some_and(|a| !a.is_empty()));
        let syn_proxy = services.iter().any(|s| s.syn_proxy() != SynProxy::Off);
        ServiceSet {
            generation,
            services,
            by_addr,
            by_mark,
            dest_loc,
            acls,
            syn_proxy,
        }
    }

    /// Monotonic number of this snapshot.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// All services.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// One service by index.
    pub fn service(&self, idx: SvcIdx) -> Option<&Service> {
        self.services.get(idx as usize)
    }

    /// Where a real server is: its service index and its position in that service's list.
    pub fn dest_location(&self, id: DestId) -> Option<(SvcIdx, u32)> {
        self.dest_loc.get(&id).copied()
    }

    /// Whether some service is SYN-proxied (always or under pressure).
    #[inline(always)]
    pub fn has_syn_proxy(&self) -> bool {
        self.syn_proxy
    }

    /// Whether some service has a non-empty ACL.
    #[inline(always)]
    pub fn has_acls(&self) -> bool {
        self.acls
    }

    /// The service for a packet, in `ip_vs_service_find`'s order: firewall mark (when the
    /// packet has one), then `<proto, vaddr, vport>`, then the catch-all `<proto, vaddr, 0>`.
    /// (The kernel's FTP-data step is not implemented.)
    pub fn find(&self, proto: Proto, vaddr: Addr, vport: u16, fwmark: u32) -> Option<SvcIdx> {
        if fwmark != 0 {
            if let Some(&i) = self.by_mark.get(&(!vaddr.is_v4(), fwmark)) {
                return Some(i);
            }
        }
        if let Some(&i) = self.by_addr.get(&(proto, vaddr, vport)) {
            return Some(i);
        }
        if vport != 0 {
            return self.by_addr.get(&(proto, vaddr, 0)).copied();
        }
        None
    }
}

/// Errors of service edits (the kernel's answers, as `ipvs_strerror` words them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// `-A` of an existing service.
    #[error("Service already exists")]
    ServiceExists,
    /// `-E/-D/-Z` of an unknown service.
    #[error("No such service")]
    NoSuchService,
    /// `-a/-e/-d` on an unknown service.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// `-a` of an existing real server.
    #[error("Destination already exists")]
    DestExists,
    /// `-e/-d` of an unknown real server.
    #[error("No such destination")]
    NoSuchDest,
    /// Weight above 65535 or lower threshold above the upper one (`-ERANGE`).
    #[error("Numerical result out of range")]
    Range,
}

/// Settings of a service for `-A`/`-E`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Address or firewall mark.
    pub key: ServiceKey,
    /// Scheduler (`-s`, default wlc).
    pub sched: SchedKind,
    /// `svc_flags::*` (PERSISTENT is set by [`ServiceConfig::persistent`]).
    pub flags: u32,
    /// Persistence timeout in seconds.
    pub timeout: u32,
    /// Persistence netmask.
    pub netmask: Addr,
}

impl ServiceConfig {
    /// A non-persistent service with the given scheduler.
    pub fn new(key: ServiceKey, sched: SchedKind) -> ServiceConfig {
        ServiceConfig {
            key,
            sched,
            flags: 0,
            timeout: 0,
            netmask: Addr([0xff; 16]),
        }
    }

    /// `-p secs` (use [`DEFAULT_PERSIST_TIMEOUT`] for a bare `-p`).
    pub fn persistent(mut self, secs: u32) -> ServiceConfig {
        self.flags |= svc_flags::PERSISTENT;
        self.timeout = secs;
        self
    }

    /// `-M mask`.
    pub fn netmask(mut self, mask: Addr) -> ServiceConfig {
        self.netmask = mask;
        self
    }

    /// Adds scheduler or service flags (`-b sh-port`, `-o`, ...).
    pub fn flags(mut self, flags: u32) -> ServiceConfig {
        self.flags |= flags;
        self
    }
}

/// Settings of a real server for `-a`/`-e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestConfig {
    /// Address.
    pub addr: Addr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Weight (default 1).
    pub weight: u32,
    /// `-x`.
    pub u_threshold: u32,
    /// `-y`.
    pub l_threshold: u32,
    /// The tunnel of a TUN server (`--tun-type`, `--tun-port`, `--tun-*csum`).
    pub tunnel: Tunnel,
}

impl DestConfig {
    /// A real server with weight 1 and no thresholds.
    pub fn new(addr: Addr, port: u16, fwd: FwdMethod) -> DestConfig {
        DestConfig {
            addr,
            port,
            fwd,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::IPIP,
        }
    }

    /// Sets the tunnel (meaningful with [`FwdMethod::Tunnel`]).
    pub fn tunnel(mut self, t: Tunnel) -> DestConfig {
        self.tunnel = t;
        self
    }

    /// Sets the weight.
    pub fn weight(mut self, w: u32) -> DestConfig {
        self.weight = w;
        self
    }

    /// Sets the upper and lower thresholds.
    pub fn thresholds(mut self, upper: u32, lower: u32) -> DestConfig {
        self.u_threshold = upper;
        self.l_threshold = lower;
        self
    }
}

/// The control plane's editable service table; [`ServiceTable::snapshot`] publishes it.
#[derive(Debug, Default)]
pub struct ServiceTable {
    services: Vec<Service>,
    next_svc: u32,
    next_dest: u32,
    generation: u64,
    trash: HashMap<(ServiceKey, Addr, u16), Trashed>,
}

/// A removed real server kept for a re-add (the kernel's dest trash).
#[derive(Debug, Clone, Copy)]
struct Trashed {
    id: DestId,
    last_weight: u32,
    /// Since when (ms) no worker references it; `None` while one does or not yet looked.
    idle_since: Option<u64>,
}

impl ServiceTable {
    /// An empty table.
    pub fn new() -> ServiceTable {
        ServiceTable::default()
    }

    fn find(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.key == *key)
    }

    /// `-A`.
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<ServiceId, ServiceError> {
        if self.find(&cfg.key).is_some() {
            return Err(ServiceError::ServiceExists);
        }
        let id = ServiceId(self.next_svc);
        self.next_svc = self.next_svc.wrapping_add(1);
        self.services.push(Service {
            id,
            key: cfg.key,
            sched: cfg.sched,
            flags: cfg.flags,
            timeout: cfg.timeout,
            netmask: cfg.netmask,
            dests: Vec::new(),
            acl: None,
        });
        Ok(id)
    }

    /// `-E`: scheduler, flags, persistence; the real servers stay.
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), ServiceError> {
        let i = self.find(&cfg.key).ok_or(ServiceError::NoSuchService)?;
        let s = &mut self.services[i];
        s.sched = cfg.sched;
        s.flags = cfg.flags;
        s.timeout = cfg.timeout;
        s.netmask = cfg.netmask;
        Ok(())
    }

    /// Sets the ACL of service `key` (`None` or an empty list: no check).
    pub fn set_acl(&mut self, key: &ServiceKey, acl: Option<Arc<Acl>>) -> Result<(), ServiceError> {
        let i = self.find(key).ok_or(ServiceError::NoSuchService)?;
        self.services[i].acl = acl.filter(|a| !a.is_empty());
        Ok(())
    }

    /// `-D`: its real servers go to the trash.
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), ServiceError> {
        let i = self.find(key).ok_or(ServiceError::NoSuchService)?;
        let svc = self.services.remove(i);
        for d in &svc.dests {
            self.retire(svc.key, d);
        }
        Ok(())
    }

    /// `-C`: every real server goes to the trash.
    pub fn clear(&mut self) {
        for svc in std::mem::take(&mut self.services) {
            for d in &svc.dests {
                self.retire(svc.key, d);
            }
        }
    }

    /// Puts a removed real server of service `key` into the trash (`__ip_vs_del_dest`).
    fn retire(&mut self, key: ServiceKey, d: &RealServer) {
        self.trash.insert(
            (key, d.addr, d.port),
            Trashed {
                id: d.id,
                last_weight: d.last_weight,
                idle_since: None,
            },
        );
    }

    /// `ip_vs_dest_trash_expire`: forgets the trashed real servers that no worker has
    /// referenced (`in_use` false) for [`TRASH_PERIOD_MS`] up to `now_ms` (a monotonic
    /// clock); the first call that finds one unreferenced starts its period. Returns how
    /// many were forgotten.
    pub fn expire_trash(&mut self, in_use: impl Fn(DestId) -> bool, now_ms: u64) -> usize {
        let before = self.trash.len();
        self.trash.retain(|_, t| {
            if in_use(t.id) {
                t.idle_since = None;
                return true;
            }
            let since = *t.idle_since.get_or_insert(now_ms);
            now_ms.saturating_sub(since) < TRASH_PERIOD_MS
        });
        before - self.trash.len()
    }

    /// The IPv4 addresses of services whose real servers are in the trash: sessions to
    /// them may still run (the service may come back with `-R`).
    pub fn trashed_vips(&self) -> impl Iterator<Item = Addr> + '_ {
        self.trash.keys().filter_map(|(k, _, _)| match k {
            ServiceKey::Addr { addr, .. } if addr.is_v4() => Some(*addr),
            _ => None,
        })
    }

    /// The ids of the real servers in the trash.
    pub fn trashed(&self) -> impl Iterator<Item = DestId> + '_ {
        self.trash.values().map(|t| t.id)
    }

    fn check(cfg: &DestConfig) -> Result<(), ServiceError> {
        if cfg.weight > MAX_WEIGHT || cfg.l_threshold > cfg.u_threshold {
            return Err(ServiceError::Range);
        }
        Ok(())
    }

    /// `-a`: the new real server goes to the head of the list.
    pub fn add_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<DestId, ServiceError> {
        Self::check(&cfg)?;
        let i = self.find(key).ok_or(ServiceError::ServiceNotDefined)?;
        if self.services[i]
            .dests
            .iter()
            .any(|d| d.addr == cfg.addr && d.port == cfg.port)
        {
            return Err(ServiceError::DestExists);
        }
        // ip_vs_trash_get_dest: the same service key, address and port take the id back.
        let (id, last) = match self.trash.remove(&(*key, cfg.addr, cfg.port)) {
            Some(t) => (t.id, t.last_weight),
            None => {
                let id = DestId(self.next_dest);
                self.next_dest = self.next_dest.wrapping_add(1);
                (id, 0)
            }
        };
        let last_weight = if cfg.weight > 0 { cfg.weight } else { last };
        self.services[i].dests.insert(
            0,
            RealServer {
                id,
                addr: cfg.addr,
                port: cfg.port,
                fwd: cfg.fwd,
                weight: cfg.weight,
                last_weight,
                u_threshold: cfg.u_threshold,
                l_threshold: cfg.l_threshold,
                tunnel: cfg.tunnel,
            },
        );
        Ok(id)
    }

    /// `-e`: weight, thresholds, forwarding method, tunnel; the position in the list is
    /// kept.
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), ServiceError> {
        Self::check(&cfg)?;
        let i = self.find(key).ok_or(ServiceError::ServiceNotDefined)?;
        let d = self.services[i]
            .dests
            .iter_mut()
            .find(|d| d.addr == cfg.addr && d.port == cfg.port)
            .ok_or(ServiceError::NoSuchDest)?;
        d.fwd = cfg.fwd;
        d.weight = cfg.weight;
        if cfg.weight > 0 {
            d.last_weight = cfg.weight;
        }
        d.u_threshold = cfg.u_threshold;
        d.l_threshold = cfg.l_threshold;
        d.tunnel = cfg.tunnel;
        Ok(())
    }

    /// `-d`.
    pub fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: Addr,
        port: u16,
    ) -> Result<(), ServiceError> {
        let i = self.find(key).ok_or(ServiceError::ServiceNotDefined)?;
        let dests = &mut self.services[i].dests;
        let p = dests
            .iter()
            .position(|d| d.addr == addr && d.port == port)
            .ok_or(ServiceError::NoSuchDest)?;
        let d = dests.remove(p);
        self.retire(*key, &d);
        Ok(())
    }

    /// The services as edited so far, in creation order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Publishes the current configuration as a new immutable snapshot.
    pub fn snapshot(&mut self) -> Arc<ServiceSet> {
        self.generation += 1;
        Arc::new(ServiceSet::new(self.generation, self.services.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1000;

    fn tcp(a: Addr, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Proto::Tcp,
            addr: a,
            port,
        }
    }

    #[test]
    fn lookup_order_fwmark_then_port_then_port_zero() {
        let vip = Addr::v4(10, 0, 0, 1);
        let mut t = ServiceTable::new();
        t.add_service(ServiceConfig::new(tcp(vip, 80), SchedKind::Wlc))
            .unwrap();
        t.add_service(ServiceConfig::new(tcp(vip, 0), SchedKind::Rr).persistent(360))
            .unwrap();
        t.add_service(ServiceConfig::new(
            ServiceKey::Fwmark { v6: false, mark: 7 },
            SchedKind::Sh,
        ))
        .unwrap();
        let s = t.snapshot();
        let name = |i: Option<SvcIdx>| i.map(|i| s.service(i).unwrap().sched.name());
        assert_eq!(name(s.find(Proto::Tcp, vip, 80, 0)), Some("wlc"));
        assert_eq!(name(s.find(Proto::Tcp, vip, 443, 0)), Some("rr"));
        assert_eq!(name(s.find(Proto::Tcp, vip, 80, 7)), Some("sh"));
        assert_eq!(name(s.find(Proto::Tcp, vip, 80, 8)), Some("wlc"));
        assert_eq!(s.find(Proto::Udp, vip, 80, 0), None);
        assert_eq!(s.find(Proto::Tcp, Addr::v4(10, 0, 0, 2), 80, 0), None);
    }

    #[test]
    fn servers_removed_with_their_service_come_back_from_the_trash() {
        let vip = Addr::v4(10, 0, 0, 1);
        let k = tcp(vip, 80);
        let rs = |a: u8, port: u16| DestConfig::new(Addr::v4(10, 1, 1, a), port, FwdMethod::Masq);
        let mut t = ServiceTable::new();
        t.add_service(ServiceConfig::new(k, SchedKind::Rr)).unwrap();
        let a = t.add_dest(&k, rs(1, 80).weight(3)).unwrap();
        let b = t.add_dest(&k, rs(2, 80)).unwrap();
        // -C then the same table again (-R): same ids, in any order.
        t.clear();
        assert_eq!(t.trashed().count(), 2);
        t.add_service(ServiceConfig::new(k, SchedKind::Wlc))
            .unwrap();
        assert_eq!(t.add_dest(&k, rs(2, 80)), Ok(b));
        assert_eq!(t.add_dest(&k, rs(1, 80).weight(0)), Ok(a));
        assert_eq!(t.services()[0].dests[0].last_weight, 3);
        assert_eq!(t.trashed().count(), 0);
        // -D too; a different port or another service is another server.
        t.del_service(&k).unwrap();
        t.add_service(ServiceConfig::new(k, SchedKind::Rr)).unwrap();
        let other = tcp(vip, 81);
        t.add_service(ServiceConfig::new(other, SchedKind::Rr))
            .unwrap();
        let a81 = t.add_dest(&other, rs(1, 80)).unwrap();
        let a8080 = t.add_dest(&k, rs(1, 8080)).unwrap();
        assert!(a81 != a && a81 != b && a8080 != a && a8080 != b && a81 != a8080);
        assert_eq!(t.add_dest(&k, rs(1, 80)), Ok(a));
    }

    #[test]
    fn the_trash_forgets_a_server_unreferenced_for_the_period() {
        let k = tcp(Addr::v4(10, 0, 0, 1), 80);
        let rs = |a: u8| DestConfig::new(Addr::v4(10, 1, 1, a), 80, FwdMethod::Masq);
        let mut t = ServiceTable::new();
        t.add_service(ServiceConfig::new(k, SchedKind::Rr)).unwrap();
        let a = t.add_dest(&k, rs(1)).unwrap();
        let b = t.add_dest(&k, rs(2)).unwrap();
        t.clear();
        // a still has sessions on a worker; b has none from 1 s on.
        let busy = |id: DestId| id == a;
        assert_eq!(t.expire_trash(busy, SEC), 0);
        assert_eq!(t.expire_trash(busy, SEC + TRASH_PERIOD_MS - 1), 0);
        assert_eq!(t.expire_trash(busy, SEC + TRASH_PERIOD_MS), 1);
        assert_eq!(t.trashed().collect::<Vec<_>>(), vec![a]);
        // a's sessions end at 100 s: it goes a period later.
        assert_eq!(t.expire_trash(|_| false, 100 * SEC), 0);
        assert_eq!(t.expire_trash(|_| false, 100 * SEC + TRASH_PERIOD_MS), 1);
        // Added again, both are new servers.
        t.add_service(ServiceConfig::new(k, SchedKind::Rr)).unwrap();
        let a2 = t.add_dest(&k, rs(1)).unwrap();
        let b2 = t.add_dest(&k, rs(2)).unwrap();
        assert!(![a, b].contains(&a2) && ![a, b].contains(&b2));
    }

    #[test]
    fn dests_newest_first_and_ids_stable() {
        let vip = Addr::v4(10, 0, 0, 1);
        let k = tcp(vip, 80);
        let mut t = ServiceTable::new();
        t.add_service(ServiceConfig::new(k, SchedKind::Wrr))
            .unwrap();
        let a = t
            .add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 1), 80, FwdMethod::Masq).weight(4),
            )
            .unwrap();
        let b = t
            .add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 2), 80, FwdMethod::Masq),
            )
            .unwrap();
        assert_eq!(
            t.add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 2), 80, FwdMethod::Masq)
            ),
            Err(ServiceError::DestExists)
        );
        let ids: Vec<DestId> = t.services()[0].dests.iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![b, a]);
        // Quiesce keeps last_weight; delete then re-add returns the same id.
        t.edit_dest(
            &k,
            DestConfig::new(Addr::v4(10, 1, 1, 1), 80, FwdMethod::Masq).weight(0),
        )
        .unwrap();
        assert_eq!(t.services()[0].dests[1].last_weight, 4);
        t.del_dest(&k, Addr::v4(10, 1, 1, 1), 80).unwrap();
        let a2 = t
            .add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 1), 80, FwdMethod::Masq),
            )
            .unwrap();
        assert_eq!(a2, a);
        assert_eq!(
            t.add_dest(
                &k,
                DestConfig::new(Addr::v4(10, 1, 1, 9), 80, FwdMethod::Masq).thresholds(5, 6)
            ),
            Err(ServiceError::Range)
        );
        assert_eq!(
            t.del_dest(&k, Addr::v4(10, 9, 9, 9), 80),
            Err(ServiceError::NoSuchDest)
        );
        assert_eq!(
            t.add_service(ServiceConfig::new(k, SchedKind::Rr)),
            Err(ServiceError::ServiceExists)
        );
        let s = t.snapshot();
        assert_eq!(s.dest_location(a), Some((0, 0)));
        assert_eq!(s.dest_location(b), Some((0, 1)));
    }
}
