//! `rvs-config`: the rvs TOML configuration file.
//!
//! The file has these sections (all optional except what a given deployment needs):
//!
//! | section | purpose |
//! |---|---|
//! | `[eal]` | DPDK EAL arguments, file prefix, `no_huge`/`in_memory` |
//! | `[[ports]]` | DPDK ports: device (vdev string or PCI address), queues, addresses, MTU, offloads |
//! | `[workers]` | worker lcores: an explicit list or a count |
//! | `[[routes]]` | static routes: prefix, gateway, port |
//! | `[[services]]` | virtual services with `[[services.real]]` real servers and FULLNAT `laddrs` |
//! | `[timeouts]` | `tcp tcpfin udp` as `ipvsadm --set` (900 120 300) |
//! | `[sessions]` | session-table capacity per core; the sysctls `expire_nodest_conn`, `expire_quiescent_template`, `sloppy_tcp`; the new-session budget per worker `new_per_second` |
//! | `[control]` | the control socket path (default `/run/rvs/rvsd.sock`), an `ipvsadm -S` rules file, an operator's keepalived.conf ([`keepalived`]) |
//! | `[sync]` | the connection-sync daemon (master/backup/none, multicast or unicast, the sync group's key file; `group` with `peers`: active/active among N directors) |
//! | `[metrics]` | the Prometheus metrics endpoint (off unless `listen` is given) |
//! | `[[marks]]` | firewall-mark rules for fwmark services (the `iptables -t mangle ... -j MARK` of rvs) |
//! | `[bgp]` | the routes BIRD announces for this director: the files of `/32` (IPv6: `/128`, `routes6_file`) routes rvsd writes for BIRD `protocol static`s, and how it runs `birdc configure` (off unless `routes_file` is given) |
//! | `[acl]` | the global access control list: `deny` and `allow` prefixes of clients (a service's own lists are its `deny` and `allow`) |
//!
//! [`Config::from_str`] parses and validates; every validation error names the field with
//! its path and the offending value, e.g.
//! `services[1].real[0].weight: 70000 is out of range 0..=65535`.
//!
//! Numeric fields that have a documented range are kept as wide integers (`i64`) in the
//! serde types so that an out-of-range value reaches validation (and its field-naming
//! message) instead of failing inside the TOML deserializer; after [`Config::validate`]
//! succeeds every such value is inside its range and can be narrowed with `as`/`try_from`.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod check;
pub mod keepalived;

/// The 14 scheduler names IPVS knows (`ipvsadm -s`).
pub const SCHEDULERS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf", "twos",
];

/// The scheduler of a service that names none (ipvsadm's default).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// The longest timeout (`MAX_TIMEOUT` of ipvsadm: 31 days), for `[timeouts]` and
/// `persistent`.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// The longest interface name (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// The sync interface when none is given (ipvsadm's default).
pub const DEFAULT_MCAST_INTERFACE: &str = "eth0";

/// The largest sync message: an IPv4 UDP datagram's payload (65535 - 20 - 8).
pub const MAX_SYNC_MAXLEN: u16 = 65535 - 28;

/// Default `[timeouts] tcp` (ipvsadm `--set`'s first value).
pub const DEFAULT_TCP_TIMEOUT: u32 = 900;
/// Default `[timeouts] tcpfin`.
pub const DEFAULT_TCPFIN_TIMEOUT: u32 = 120;
/// Default `[timeouts] udp`.
pub const DEFAULT_UDP_TIMEOUT: u32 = 300;

/// Default port MTU.
pub const DEFAULT_MTU: u16 = 1500;
/// Smallest port MTU (IPv4's minimum).
pub const MIN_MTU: u16 = 68;
/// Largest port MTU (jumbo frames).
pub const MAX_MTU: u16 = 9216;
/// Smallest 802.1Q VLAN id of a port (0 is a priority tag, not a VLAN).
pub const MIN_VLAN: u16 = 1;
/// Largest 802.1Q VLAN id of a port (4095 is reserved).
pub const MAX_VLAN: u16 = 4094;
/// Most RX or TX queues of a port.
pub const MAX_QUEUES: i64 = 1024;
/// Most workers.
pub const MAX_WORKERS: i64 = 1024;
/// Highest lcore id.
pub const MAX_LCORE: i64 = 1023;
/// Default sessions per core.
pub const DEFAULT_SESSIONS_PER_CORE: i64 = 1 << 20;
/// Most sessions per core.
pub const MAX_SESSIONS_PER_CORE: i64 = 1 << 30;
/// Largest `[sessions] new_per_second`: a billion new sessions per worker per second,
/// beyond what any worker creates (a larger value is a typo, not a budget).
pub const MAX_NEW_PER_SECOND: i64 = 1_000_000_000;

/// Largest real-server weight.
pub const MAX_WEIGHT: u16 = u16::MAX;
/// Largest connection threshold.
pub const MAX_THRESHOLD: i64 = i32::MAX as i64;
/// The longest IPv4 prefix.
pub const IPV4_PREFIX_MAX: u8 = 32;
/// The longest IPv6 prefix.
pub const IPV6_PREFIX_MAX: u8 = 128;

/// Default sync multicast group (the kernel's `IP_VS_SYNC_GROUP`).
pub const DEFAULT_SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// Default sync UDP port (the kernel's `IP_VS_SYNC_PORT`).
pub const DEFAULT_SYNC_PORT: u16 = 8848;
/// Default sync message length (an Ethernet MTU less the IPv4 and UDP headers).
pub const DEFAULT_SYNC_MAXLEN: u16 = 1500 - 28;

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// An error loading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown or mistyped key).
    #[error("{0}")]
    Parse(String),
    /// A value is invalid; `field` is the path of the field (`services[1].real[0].weight`).
    #[error("{field}: {message}")]
    Invalid {
        /// The field path.
        field: String,
        /// What is wrong, naming the value.
        message: String,
    },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// DPDK EAL settings.
    #[serde(default)]
    pub eal: Eal,
    /// DPDK ports.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Worker lcores.
    #[serde(default)]
    pub workers: Workers,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Virtual services.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Connection timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Session tables.
    #[serde(default)]
    pub sessions: Sessions,
    /// Control socket.
    #[serde(default)]
    pub control: Control,
    /// Connection sync.
    #[serde(default)]
    pub sync: Sync,
    /// The Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: Metrics,
    /// Firewall-mark rules, tried in order.
    #[serde(default)]
    pub marks: Vec<MarkRule>,
    /// The global access control list.
    #[serde(default)]
    pub acl: Acl,
    /// The routes BIRD announces for this director.
    #[serde(default)]
    pub bgp: Bgp,
}

/// `[bgp]`: BGP announcements through an unmodified BIRD. rvsd writes `routes_file`, one
/// `route A/32 <route>;` line per VIP and FULLNAT local address the dataplane answers for
/// (none while the dataplane is unhealthy or rvsd stops), for BIRD's configuration to
/// `include` inside a `protocol static`, and runs `birdc configure` whenever the set
/// changes. Off unless `routes_file` is given. The IPv6 VIPs and LIPs go as
/// `route A/128 <route>;` lines into `routes6_file` (BIRD 2 needs a `protocol static` of
/// its own per channel, `ipv4` and `ipv6`); without it they are not announced. A change
/// needs a restart.
///
/// ```toml
/// [bgp]
/// routes_file = "/run/rvs/bird-routes.conf"
/// routes6_file = "/run/rvs/bird-routes6.conf"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bgp {
    /// The file rvsd writes (an absolute path; written to a temporary file in the same
    /// directory, then renamed over it); absent: no announcements.
    pub routes_file: Option<PathBuf>,
    /// The file of the IPv6 routes (`route A/128 <route>;`), for a `protocol static` with
    /// an `ipv6` channel; an absolute path other than `routes_file`, given only with it;
    /// absent: IPv6 addresses are not announced.
    pub routes6_file: Option<PathBuf>,
    /// The program that reconfigures BIRD (default `birdc`, found on `PATH`).
    pub birdc: String,
    /// BIRD's control socket (`birdc -s`); absent: birdc's default.
    pub socket: Option<PathBuf>,
    /// The kind of each static route: `blackhole` (default) or `unreachable` (BIRD needs
    /// a kind; the route is never installed in a kernel table by this protocol).
    pub route: String,
    /// The longest wait, in milliseconds after rvsd is ready, before the first
    /// announcement (default 10 000): a director of an active/active group announces
    /// once the peers it sees up have completed their bulk syncs to it (its peers'
    /// sessions; about 7 s per million), or when this has passed, whichever is first; a
    /// director outside a group announces at once; 0: at once in a group too.
    /// 0..=[`MAX_BGP_ANNOUNCE_DELAY_MS`].
    pub announce_delay_ms: i64,
}

/// The default `[bgp] announce_delay_ms` (10 s).
pub const DEFAULT_BGP_ANNOUNCE_DELAY_MS: i64 = 10_000;

/// The longest `[bgp] announce_delay_ms` (10 minutes).
pub const MAX_BGP_ANNOUNCE_DELAY_MS: i64 = 600_000;

/// The route kinds of `[bgp] route`.
pub const BGP_ROUTE_KINDS: [&str; 2] = ["blackhole", "unreachable"];

impl Default for Bgp {
    fn default() -> Self {
        Bgp {
            routes_file: None,
            routes6_file: None,
            birdc: "birdc".into(),
            socket: None,
            route: "blackhole".into(),
            announce_delay_ms: DEFAULT_BGP_ANNOUNCE_DELAY_MS,
        }
    }
}

impl Bgp {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, file) in [
            ("bgp.routes_file", &self.routes_file),
            ("bgp.routes6_file", &self.routes6_file),
        ] {
            if let Some(f) = file {
                if !f.is_absolute() || f.file_name().is_none() {
                    return Err(ConfigError::invalid(
                        name,
                        format!(
                            "{:?} is not an absolute path of a file",
                            f.display().to_string()
                        ),
                    ));
                }
            }
        }
        match (&self.routes_file, &self.routes6_file) {
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "bgp.routes6_file",
                    "needs bgp.routes_file (the IPv4 routes' file) too",
                ))
            }
            (Some(a), Some(b)) if a == b => {
                return Err(ConfigError::invalid(
                    "bgp.routes6_file",
                    "must not be bgp.routes_file: BIRD reads the IPv6 routes in a protocol static of their own",
                ))
            }
            _ => {}
        }
        if self.birdc.trim().is_empty() {
            return Err(ConfigError::invalid("bgp.birdc", "must not be empty"));
        }
        if let Some(s) = &self.socket {
            if !s.is_absolute() {
                return Err(ConfigError::invalid(
                    "bgp.socket",
                    format!("{:?} is not an absolute path", s.display().to_string()),
                ));
            }
        }
        range(
            "bgp.announce_delay_ms".into(),
            self.announce_delay_ms,
            0,
            MAX_BGP_ANNOUNCE_DELAY_MS,
        )?;
        if !BGP_ROUTE_KINDS.contains(&self.route.as_str()) {
            return Err(ConfigError::invalid(
                "bgp.route",
                format!("{:?} is not one of blackhole, unreachable", self.route),
            ));
        }
        Ok(())
    }
}

/// `[acl]` (and a service's `deny`/`allow`): which clients may open sessions. Each entry
/// is an address or prefix (`"203.0.113.0/24"`, `"198.51.100.7"`); the longest matching
/// prefix of the two lists decides; a client no prefix matches is allowed, unless the
/// list has allow entries (then it is an allow-list and the client is denied); the same
/// prefix in both is denied. The global list is checked first, then the service's: a
/// client either denies is refused. Only packets that would open a session are checked;
/// established connections are never cut by a change.
///
/// ```toml
/// [acl]
/// deny = ["203.0.113.0/24"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Prefixes whose clients are denied (`rvsadm --add-blklst -k`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Prefixes whose clients are allowed (`rvsadm --add-whtlst -2`).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// Parses an ACL entry: an address (one host) or `addr/len`, without bits set beyond
/// its length. The error says what is wrong with it.
pub fn parse_acl_prefix(s: &str) -> Result<AddrPrefix, String> {
    let p = AddrPrefix::parse(s, true)
        .map_err(|_| format!("{s:?} is not an address or prefix (e.g. \"203.0.113.0/24\")"))?;
    let net = p.network();
    if net != p.addr {
        return Err(format!(
            "{s:?} has bits set beyond its length (the prefix is \"{net}/{}\")",
            p.prefix_len
        ));
    }
    Ok(p)
}

/// Validates the entries of an ACL list at `field` (`acl.deny`, `services[0].allow`).
fn validate_acl_list(field: &str, list: &[String]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for (j, e) in list.iter().enumerate() {
        let at = || format!("{field}[{j}]");
        let p = parse_acl_prefix(e).map_err(|m| ConfigError::invalid(at(), m))?;
        if !seen.insert((p.addr, p.prefix_len)) {
            return Err(ConfigError::invalid(
                at(),
                format!("{e:?} duplicates an earlier entry"),
            ));
        }
    }
    Ok(())
}

/// `[[marks]]`: one firewall-mark rule. A TCP or UDP packet without a session that meets
/// every condition given gets `mark` (the first matching rule wins; none: no mark), and a
/// fwmark service of that mark is then looked up before the address services, as IPVS does
/// with a mark set by `iptables -t mangle ... -j MARK`. A `dst` that is one address is
/// answered (ARP, ping) as a VIP while a fwmark service of the mark exists.
///
/// ```toml
/// [[marks]]
/// proto = "tcp"
/// dst = "10.10.0.100/32"
/// dports = "80,443"
/// mark = 1
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRule {
    /// `tcp`, `udp` or `any` (default).
    #[serde(default)]
    pub proto: MarkProto,
    /// Source prefix (`"10.0.0.0/8"`; a bare address is one host); absent: any.
    #[serde(default)]
    pub src: Option<String>,
    /// Destination prefix; absent: any.
    #[serde(default)]
    pub dst: Option<String>,
    /// Destination ports and ranges, `"80,443,8000-8100"`; absent: any.
    #[serde(default)]
    pub dports: Option<String>,
    /// The name of the port the packet arrives on (`[[ports]] name`); absent: any.
    #[serde(default)]
    pub port: Option<String>,
    /// The mark, 1..=4294967295.
    pub mark: i64,
}

/// The protocol a mark rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MarkProto {
    /// TCP and UDP.
    #[default]
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Parses a port list: `"80,443,8000-8100"` (ranges inclusive, ports 0..=65535).
pub fn parse_port_ranges(s: &str) -> Option<Vec<(u16, u16)>> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi) = (
                lo.trim().parse::<u16>().ok()?,
                hi.trim().parse::<u16>().ok()?,
            );
            (lo <= hi).then_some((lo, hi))
        })
        .collect()
}

/// `[eal]`: DPDK Environment Abstraction Layer settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eal {
    /// Extra EAL arguments, passed verbatim (e.g. `["-l", "0-1"]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// `--file-prefix`.
    #[serde(default)]
    pub file_prefix: Option<String>,
    /// `--no-huge`.
    #[serde(default)]
    pub no_huge: bool,
    /// `--in-memory`.
    #[serde(default)]
    pub in_memory: bool,
}

/// `[[ports]]`: one DPDK port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Name used by routes, LIPs and logs (e.g. `"wan"`, `"dpdk0"`).
    pub name: String,
    /// A DPDK vdev string (`"net_af_packet0,iface=veth0"`) or a PCI address (`"0000:03:00.0"`).
    pub device: String,
    /// RX queues. The dataplane opens one RX and one TX queue per worker itself, so rvsd
    /// with the dataplane refuses the key (it is kept so that the refusal names it).
    #[serde(default)]
    pub rx_queues: Option<i64>,
    /// TX queues (see `rx_queues`).
    #[serde(default)]
    pub tx_queues: Option<i64>,
    /// Addresses with prefix length, e.g. `"10.0.0.1/24"`, `"2001:db8::1/64"`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Free-form role (`"client"`, `"server"`, `"both"`, ...).
    #[serde(default)]
    pub role: Option<String>,
    /// MTU (default 1500, range 68..=9216).
    #[serde(default = "default_mtu")]
    pub mtu: i64,
    /// The port's 802.1Q VLAN (1..=4094): frames tagged with this VID are accepted (and
    /// handled untagged), every frame leaving the port is tagged with it, and frames with
    /// no tag or another are dropped and counted (`drop vlan`). Unset: the port carries
    /// untagged frames only, and tagged ones are dropped. The exception tap
    /// (`exception_iface`) sees the port's frames untagged.
    #[serde(default)]
    pub vlan: Option<i64>,
    /// NIC checksum offload. rvs computes checksums in software (incrementally) and uses
    /// no offload: `false` says so, `true` is refused by rvsd with the dataplane.
    #[serde(default)]
    pub checksum_offload: Option<bool>,
    /// Exception path: a kernel tap interface of this name (e.g. `"rvs0"`) is created for
    /// the port; what the dataplane does not handle on the port (ARP and traffic for host
    /// addresses, VRRP, routing protocols, ...) goes to the kernel through it, and what
    /// the kernel sends on it leaves through the port. Give the tap the host's addresses.
    #[serde(default)]
    pub exception_iface: Option<String>,
}

fn one() -> i64 {
    1
}
fn default_mtu() -> i64 {
    DEFAULT_MTU.into()
}

/// `[workers]`: which lcores run workers. Either `lcores` or `count`; none means one worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    /// Explicit lcore ids. rvs does not place workers on given lcores (the EAL's
    /// `--lcores`, from `eal.args` or rvs's defaults, does): rvsd with the dataplane refuses
    /// the key; use `count`.
    #[serde(default)]
    pub lcores: Vec<i64>,
    /// Number of workers (lcores picked by the dataplane).
    #[serde(default)]
    pub count: Option<i64>,
    /// Idle workers that sleep: the longest pause, in microseconds, a worker takes when
    /// its polls keep finding every queue empty (0, the default: pure polling, one core
    /// at 100% per worker). The pauses start at 4 µs after 256 empty turns in a row and
    /// double up to this bound; the first packet received brings the worker back to full
    /// polling. 0..=[`MAX_IDLE_SLEEP_US`]. A change needs a restart.
    #[serde(default)]
    pub idle_sleep_max_us: i64,
}

/// The largest `[workers] idle_sleep_max_us`: one slow-path tick (10 ms), so that
/// session expiry, commands and sync records are never later than that.
pub const MAX_IDLE_SLEEP_US: i64 = 10_000;

/// `[[routes]]`: a static route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix, e.g. `"0.0.0.0/0"`.
    pub prefix: String,
    /// Gateway address; absent for an on-link route.
    #[serde(default)]
    pub via: Option<String>,
    /// The port name to send through.
    pub port: String,
}

/// The protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
    /// SCTP (`--sctp-service`).
    Sctp,
    /// A firewall-mark service (`-f`).
    Fwmark,
}

/// A forwarding method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// NAT (`-m`).
    Masq,
    /// Direct routing (`-g`, the default).
    #[default]
    Route,
    /// IP-in-IP tunnel (`-i`).
    Tunnel,
    /// FULLNAT (`-b` on a real server).
    Fullnat,
}

impl Forward {
    /// The spelling in the file (`masq`, `route`, `tunnel`, `fullnat`).
    pub fn name(self) -> &'static str {
        match self {
            Forward::Masq => "masq",
            Forward::Route => "route",
            Forward::Tunnel => "tunnel",
            Forward::Fullnat => "fullnat",
        }
    }
}

/// `[[services]]`: a virtual service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `tcp`, `udp`, `sctp` or `fwmark`.
    pub proto: Proto,
    /// `"vip:port"` (`"[v6]:port"` for IPv6); absent for `fwmark`.
    #[serde(default)]
    pub vip: Option<String>,
    /// The firewall mark, for `proto = "fwmark"` (1..=4294967295).
    #[serde(default)]
    pub fwmark: Option<i64>,
    /// For `fwmark`: the service is IPv6 (`-6`).
    #[serde(default)]
    pub ipv6: bool,
    /// Scheduler name (default `wlc`).
    #[serde(default = "default_sched")]
    pub scheduler: String,
    /// Persistence timeout in seconds (1..=2678400); absent: not persistent.
    #[serde(default)]
    pub persistent: Option<i64>,
    /// Persistence netmask: an IPv4 mask (`"255.255.255.0"`) or an IPv6 prefix length (`"64"`).
    #[serde(default)]
    pub netmask: Option<String>,
    /// Scheduler flags (`flag-1`, `sh-fallback`, `sh-port`, `mh-port`, ...).
    #[serde(default)]
    pub sched_flags: Vec<String>,
    /// One-packet scheduling (UDP or fwmark only).
    #[serde(default)]
    pub ops: bool,
    /// FULLNAT local addresses (LIP pool), e.g. `["192.168.100.200"]`.
    #[serde(default)]
    pub laddrs: Vec<String>,
    /// Real servers.
    #[serde(default)]
    pub real: Vec<Real>,
    /// Health checks (keepalived's `virtual_server` keywords, see [`check`]): the interval
    /// between checks, seconds (default 60, as keepalived).
    #[serde(default)]
    pub delay_loop: Option<f64>,
    /// Minimum total weight of the servers up for the service to be up (default 1).
    #[serde(default)]
    pub quorum: Option<i64>,
    /// Hysteresis of the quorum (default 0): up at `quorum + hysteresis`, down below
    /// `quorum - hysteresis`.
    #[serde(default)]
    pub hysteresis: Option<i64>,
    /// Command run when the quorum is gained.
    #[serde(default)]
    pub quorum_up: Option<String>,
    /// Command run when the quorum is lost.
    #[serde(default)]
    pub quorum_down: Option<String>,
    /// `"ip:port"` put in the table while the quorum is lost.
    #[serde(default)]
    pub sorry_server: Option<String>,
    /// Forwarding method of the sorry server (default: that of the first real server).
    #[serde(default)]
    pub sorry_server_forward: Option<Forward>,
    /// Servers start down until their first successful check (default: up).
    #[serde(default)]
    pub alpha: bool,
    /// At shutdown, run the `notify_down` of every server that is up.
    #[serde(default)]
    pub omega: bool,
    /// A failed server stays in the table with weight 0 (established connections go on)
    /// instead of being removed; the default for the service's servers.
    #[serde(default)]
    pub inhibit_on_failure: bool,
    /// Default Host header (and SNI) of the service's `HTTP_GET`/`SSL_GET` checks.
    #[serde(default)]
    pub virtualhost: Option<String>,
    /// FULLNAT: the PROXY protocol header the real servers get (`"v1"`, `"v2"` or
    /// `"disable"`, the default), as `--proxy-protocol`. A string checked by validation so
    /// that a bad value is named by its field.
    #[serde(default = "default_proxy_protocol")]
    pub proxy_protocol: String,
    /// FULLNAT TCP: the client's address and port in a TOA TCP option (`--toa`).
    #[serde(default)]
    pub toa: bool,
    /// NAT and FULLNAT TCP: the SYN proxy (`"on"`, `"off"`, the default, or `"auto"`:
    /// only while the worker is under pressure), as `-j enable|disable|auto`. A string
    /// checked by validation so that a bad value is named by its field.
    #[serde(default = "default_syn_proxy")]
    pub syn_proxy: String,
    /// The service's ACL: prefixes whose clients may not open sessions of it (see
    /// [`Acl`]; checked after `[acl]`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// The service's ACL: prefixes whose clients may (an allow-list).
    #[serde(default)]
    pub allow: Vec<String>,
}

fn default_sched() -> String {
    "wlc".to_string()
}

fn default_syn_proxy() -> String {
    "off".to_string()
}

/// The SYN proxy of a NAT or FULLNAT TCP service (`-j`, `syn_proxy`): the director
/// answers SYNs with cookies and opens a session only on a client's valid ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynProxy {
    /// Plain forwarding (the default).
    #[default]
    Disable,
    /// Every connection.
    Enable,
    /// Only while the worker is under pressure (`[sessions] syn_proxy_rate`,
    /// `syn_proxy_fill`).
    Auto,
}

impl SynProxy {
    /// The spelling of `-j` (`disable`, `enable`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            SynProxy::Disable => "disable",
            SynProxy::Enable => "enable",
            SynProxy::Auto => "auto",
        }
    }

    /// The spelling of the TOML's `syn_proxy` (`off`, `on`, `auto`).
    pub fn config_name(self) -> &'static str {
        match self {
            SynProxy::Disable => "off",
            SynProxy::Enable => "on",
            SynProxy::Auto => "auto",
        }
    }

    /// Reads `-j`'s value (`enable`, `disable`, `auto`; case as DPVS: `strcasecmp`).
    pub fn parse_cli(s: &str) -> Option<SynProxy> {
        match s.to_ascii_lowercase().as_str() {
            "enable" => Some(SynProxy::Enable),
            "disable" => Some(SynProxy::Disable),
            "auto" => Some(SynProxy::Auto),
            _ => None,
        }
    }

    /// Reads `syn_proxy` (`on`, `off`, `auto`).
    pub fn parse_config(s: &str) -> Option<SynProxy> {
        match s {
            "on" => Some(SynProxy::Enable),
            "off" => Some(SynProxy::Disable),
            "auto" => Some(SynProxy::Auto),
            _ => None,
        }
    }

    /// Whether the proxy may answer (always or under pressure).
    pub fn is_on(self) -> bool {
        self != SynProxy::Disable
    }
}

fn default_proxy_protocol() -> String {
    ProxyProtocol::Disable.name().to_string()
}

/// How a FULLNAT service tells its real servers the client's address in the stream: the
/// PROXY protocol header (`--proxy-protocol`, `proxy_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header (the default).
    #[default]
    Disable,
    /// Version 1, the text line (TCP only).
    V1,
    /// Version 2, the binary header (TCP and UDP).
    V2,
}

/// Why a `--proxy-protocol` value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolError {
    /// DPVS's `v1-insecure`/`v2-insecure` (which let a client's own header through): rvs
    /// always puts its own header first.
    Insecure,
    /// Anything else that is not `v1`, `v2` or `disable`.
    Unknown,
}

impl ProxyProtocol {
    /// The spelling of `--proxy-protocol` and `proxy_protocol` (`disable`, `v1`, `v2`).
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocol::Disable => "disable",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }

    /// Reads `v1`, `v2` or `disable` (exactly; see [`ProxyProtocol::parse_nocase`]).
    pub fn parse(s: &str) -> Result<ProxyProtocol, ProxyProtocolError> {
        match s {
            "disable" => Ok(ProxyProtocol::Disable),
            "v1" => Ok(ProxyProtocol::V1),
            "v2" => Ok(ProxyProtocol::V2),
            "v1-insecure" | "v2-insecure" => Err(ProxyProtocolError::Insecure),
            _ => Err(ProxyProtocolError::Unknown),
        }
    }

    /// Reads a value as DPVS's ipvsadm and keepalived do (`strcasecmp`: `V2` is `v2`).
    pub fn parse_nocase(s: &str) -> Result<ProxyProtocol, ProxyProtocolError> {
        Self::parse(&s.to_ascii_lowercase())
    }

    /// Whether a header is inserted.
    pub fn is_on(self) -> bool {
        self != ProxyProtocol::Disable
    }
}

/// The one-line reason rvs gives for refusing DPVS's insecure PROXY protocol modes.
pub const PROXY_INSECURE_REASON: &str = "rvs always puts its own header first";

/// `[[services.real]]`: a real server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Real {
    /// `"rip:port"` or `"rip"` (port = service port).
    pub address: String,
    /// Forwarding method (default `route`).
    #[serde(default)]
    pub forward: Forward,
    /// Weight 0..=65535 (default 1).
    #[serde(default = "one")]
    pub weight: i64,
    /// Upper connection threshold (0 = none).
    #[serde(default)]
    pub u_threshold: i64,
    /// Lower connection threshold (0 = none).
    #[serde(default)]
    pub l_threshold: i64,
    /// Overrides the service's `inhibit_on_failure` for this server.
    #[serde(default)]
    pub inhibit_on_failure: Option<bool>,
    /// Command run when the server goes up.
    #[serde(default)]
    pub notify_up: Option<String>,
    /// Command run when the server goes down.
    #[serde(default)]
    pub notify_down: Option<String>,
    /// Health checks; the server is up while all of them are (none: always up).
    #[serde(default)]
    pub checks: Vec<check::Check>,
}

/// `[timeouts]`: as `ipvsadm --set tcp tcpfin udp`. A missing key takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// ESTABLISHED timeout (default 900).
    pub tcp: i64,
    /// FIN_WAIT timeout (default 120).
    pub tcpfin: i64,
    /// UDP timeout (default 300).
    pub udp: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: DEFAULT_TCP_TIMEOUT.into(),
            tcpfin: DEFAULT_TCPFIN_TIMEOUT.into(),
            udp: DEFAULT_UDP_TIMEOUT.into(),
        }
    }
}

/// `[sessions]`: session tables, and the IPVS sysctls about sessions
/// (`/proc/sys/net/ipv4/vs/*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// Sessions per core (default 1048576).
    #[serde(default = "default_capacity")]
    pub capacity_per_core: i64,
    /// The sysctl `expire_nodest_conn`, 0 or 1 (default 0): with 1 a session whose real
    /// server was removed is expired when its next packet arrives (a SYN is then scheduled
    /// afresh); with 0 its packets are dropped until the server is added back.
    #[serde(default)]
    pub expire_nodest_conn: i64,
    /// The sysctl `expire_quiescent_template`, 0 or 1 (default 0): with 1 a persistence
    /// template whose real server is quiesced (weight 0) is invalid, so the client is
    /// scheduled afresh.
    #[serde(default)]
    pub expire_quiescent_template: i64,
    /// New sessions each worker may create per second (default 0: no budget). Above it a
    /// packet that would open a session is dropped and counted (`new-session-budget`);
    /// packets of existing sessions are never charged. The budget holds at most one
    /// second's worth, so a quiet worker may take that many at once.
    #[serde(default)]
    pub new_per_second: i64,
    /// Datagrams each worker's fragment table tracks at once (default 4096, 1..=1000000):
    /// fragments of more are dropped as `frag-table-full`.
    #[serde(default = "default_frag_datagrams")]
    pub frag_datagrams: i64,
    /// Fragments each worker holds at once for datagrams whose first fragment has not
    /// come yet (default 4096, 0..=1000000; at most 16 per datagram).
    #[serde(default = "default_frag_held")]
    pub frag_held: i64,
    /// How long a datagram's fragments are tracked after the first of them arrived, in
    /// milliseconds (default 3000, 100..=60000); fragments still held then are dropped
    /// as `frag-timeout`.
    #[serde(default = "default_frag_timeout_ms")]
    pub frag_timeout_ms: i64,
    /// The sysctl `sloppy_tcp`, 0 or 1 (default 0): with 1 a TCP segment without RST of a
    /// flow without a session may open one, not only a SYN, in the state the segment
    /// implies (ESTABLISHED for an ACK). For several directors behind ECMP: a flow that
    /// moves to a director that never saw it goes on there. The server is scheduled as
    /// for a SYN, so with `mh` it is the one the first director chose; FULLNAT servers
    /// are never given such a session. A reload applies it.
    #[serde(default)]
    pub sloppy_tcp: i64,
    /// The SYN proxy's `auto` services are proxied while a worker sees more TCP SYNs per
    /// second than this (default 20000).
    #[serde(default = "default_syn_proxy_rate")]
    pub syn_proxy_rate: i64,
    /// ... or while a worker's session table is fuller than this percentage (default 50).
    #[serde(default = "default_syn_proxy_fill")]
    pub syn_proxy_fill: i64,
}

fn default_frag_datagrams() -> i64 {
    4096
}

fn default_frag_held() -> i64 {
    4096
}

fn default_frag_timeout_ms() -> i64 {
    3000
}

fn default_syn_proxy_rate() -> i64 {
    20_000
}

fn default_syn_proxy_fill() -> i64 {
    50
}

fn default_capacity() -> i64 {
    DEFAULT_SESSIONS_PER_CORE
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            capacity_per_core: default_capacity(),
            expire_nodest_conn: 0,
            expire_quiescent_template: 0,
            new_per_second: 0,
            frag_datagrams: default_frag_datagrams(),
            frag_held: default_frag_held(),
            frag_timeout_ms: default_frag_timeout_ms(),
            sloppy_tcp: 0,
            syn_proxy_rate: default_syn_proxy_rate(),
            syn_proxy_fill: default_syn_proxy_fill(),
        }
    }
}

/// `[control]`: the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Unix socket path (default `/run/rvs/rvsd.sock`).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// An `ipvsadm -S` rules file applied on top of `[[services]]` at start and at every
    /// reload, as the distributions' `ipvsadm.service` restores `/etc/ipvsadm.rules`
    /// (absent: none).
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// An operator's keepalived.conf whose `virtual_server`s (with their groups, real
    /// servers and checkers) are appended to `[[services]]` at start and at every reload,
    /// read as keepalived reads it ([`keepalived`]); its `vrrp_*` blocks are left to
    /// keepalived running `--vrrp` (absent: none).
    #[serde(default)]
    pub keepalived_conf: Option<PathBuf>,
}

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: default_socket(),
            rules: None,
            keepalived_conf: None,
        }
    }
}

/// `[metrics]`: the Prometheus metrics endpoint (HTTP, text exposition format, path
/// `/metrics`). Off unless `listen` is given.
///
/// ```toml
/// [metrics]
/// listen = "127.0.0.1:9578"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `address:port` to listen on (IPv6 as `[::1]:9578`); absent: no endpoint.
    pub listen: Option<String>,
}

impl Metrics {
    /// The address to listen on, if any. Valid after [`Config::validate`].
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(l) = &self.listen {
            if l.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::invalid(
                    "metrics.listen",
                    format!("{l:?} is not an address:port (e.g. \"127.0.0.1:9578\")"),
                ));
            }
        }
        Ok(())
    }
}

/// Sync daemon state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// No sync daemon.
    #[default]
    None,
    /// Send our sessions.
    Master,
    /// Receive sessions.
    Backup,
    /// Active/active: send our sessions to every peer of `peers` and install theirs (a
    /// master and a backup daemon at once, unicast to each peer).
    Group,
}

/// `[sync]`: connection synchronisation (`ipvsadm --start-daemon`). A missing key takes
/// its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sync {
    /// `master`, `backup`, `group` or `none` (default).
    pub state: SyncState,
    /// Interface (port name) to send/receive on (default `eth0` as ipvsadm).
    pub mcast_interface: String,
    /// Sync id 0..=255 (0: no filtering).
    pub syncid: i64,
    /// Multicast group (default 224.0.0.81).
    pub group: String,
    /// UDP port 1..=65535 (default 8848).
    pub port: i64,
    /// Multicast TTL 1..=255 (default 1).
    pub ttl: i64,
    /// Maximum message length 1..=65507 (default 1472).
    pub maxlen: i64,
    /// Unicast peer address instead of multicast.
    pub unicast_peer: Option<String>,
    /// `state = "group"`: the IPv4 sync addresses of the group's directors (this
    /// director's own may be in the list: it is skipped, so that every director can
    /// share one list). Messages from any other address are refused.
    pub peers: Vec<String>,
    /// The file holding the sync group's shared key (at least [`MIN_SYNC_KEY_LEN`]
    /// bytes, a final newline not counted; not readable by others): the master
    /// authenticates every message with it and the backup refuses messages without a
    /// valid MAC and replays. Read when rvsd starts ([`Sync::read_key`]); a change needs
    /// a restart.
    pub key_file: Option<PathBuf>,
}

/// The shortest sync key, in bytes.
pub const MIN_SYNC_KEY_LEN: usize = 16;

/// The sync multicast TTL when none is given (the local link only).
pub const DEFAULT_SYNC_TTL: u8 = 1;

impl Default for Sync {
    fn default() -> Self {
        Sync {
            state: SyncState::None,
            mcast_interface: DEFAULT_MCAST_INTERFACE.to_string(),
            syncid: 0,
            group: DEFAULT_SYNC_GROUP.to_string(),
            port: DEFAULT_SYNC_PORT.into(),
            ttl: DEFAULT_SYNC_TTL.into(),
            maxlen: DEFAULT_SYNC_MAXLEN.into(),
            unicast_peer: None,
            peers: Vec::new(),
            key_file: None,
        }
    }
}

/// An address with its prefix length (`"10.0.0.1/24"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPrefix {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl fmt::Display for AddrPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a text is not an [`AddrPrefix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// No `/len`.
    #[error("has no prefix length")]
    NoLength,
    /// The part before `/` is not an address.
    #[error("is not an address")]
    BadAddress,
    /// The length is not a number or is longer than the address.
    #[error("has a bad prefix length")]
    BadLength,
}

impl AddrPrefix {
    /// The prefix's first address (`addr` with the bits beyond the length cleared).
    pub fn network(&self) -> IpAddr {
        let host = u32::from(Self::max_len(self.addr) - self.prefix_len);
        match self.addr {
            IpAddr::V4(a) => {
                let m = u32::MAX.checked_shl(host).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
            }
            IpAddr::V6(a) => {
                let m = u128::MAX.checked_shl(host).unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) & m))
            }
        }
    }

    /// The longest prefix of the family of `addr` (32 or 128).
    pub fn max_len(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            IPV4_PREFIX_MAX
        } else {
            IPV6_PREFIX_MAX
        }
    }

    /// Parses `"addr/len"`; with `bare_is_host`, a bare `"addr"` is the host prefix
    /// (`/32`, `/128`).
    pub fn parse(s: &str, bare_is_host: bool) -> Result<AddrPrefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None if bare_is_host => (s, None),
            None => return Err(PrefixError::NoLength),
        };
        let addr: IpAddr = a.parse().map_err(|_| PrefixError::BadAddress)?;
        let max = Self::max_len(addr);
        let prefix_len = match l {
            None => max,
            Some(l) => l.parse().map_err(|_| PrefixError::BadLength)?,
        };
        if prefix_len > max {
            return Err(PrefixError::BadLength);
        }
        Ok(AddrPrefix { addr, prefix_len })
    }
}

/// Parses `"addr/len"`.
pub fn parse_prefix(s: &str) -> Option<AddrPrefix> {
    AddrPrefix::parse(s, false).ok()
}

/// Parses `"1.2.3.4:80"`, `"[::1]:80"`, or with `default_port`, `"1.2.3.4"` / `"::1"`.
pub fn parse_endpoint(s: &str, default_port: Option<u16>) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let port = default_port?;
    let ip: IpAddr = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s)
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

pub(crate) fn range(field: String, v: i64, lo: i64, hi: i64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        Err(ConfigError::invalid(
            field,
            format!("{v} is out of range {lo}..={hi}"),
        ))
    } else {
        Ok(())
    }
}

/// Whether `name` is a valid scheduler flag for `sched`, following ipvsadm's `-b` parsing.
fn flag_ok(sched: &str, flag: &str) -> bool {
    match flag {
        "flag-1" | "flag-2" | "flag-3" => true,
        "sh-fallback" | "sh-port" => sched == "sh",
        "mh-fallback" | "mh-port" => sched == "mh",
        _ => false,
    }
}

impl Service {
    /// The service endpoint (`None` for fwmark services). Valid after [`Config::validate`].
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.vip.as_deref().and_then(|v| parse_endpoint(v, None))
    }

    /// Whether the service is IPv6.
    pub fn is_ipv6(&self) -> bool {
        match self.endpoint() {
            Some(sa) => sa.is_ipv6(),
            None => self.ipv6,
        }
    }

    /// Its PROXY protocol (`Disable` for a value validation refuses).
    pub fn proxy_protocol(&self) -> ProxyProtocol {
        ProxyProtocol::parse(&self.proxy_protocol).unwrap_or_default()
    }

    /// The SYN proxy's mode (`syn_proxy`; off when invalid, which validation refuses).
    pub fn syn_proxy(&self) -> SynProxy {
        SynProxy::parse_config(&self.syn_proxy).unwrap_or_default()
    }

    /// The forwarding method of its sorry server, if it has one: `sorry_server_forward`,
    /// else that of the first real server, else direct routing (as the table gets it).
    pub fn sorry_forward(&self) -> Option<Forward> {
        self.sorry_server.as_ref()?;
        Some(
            self.sorry_server_forward
                .or_else(|| self.real.first().map(|r| r.forward))
                .unwrap_or_default(),
        )
    }
}

impl Real {
    /// A real server at `address` forwarded with `forward`, every other key at its
    /// default (weight 1, no thresholds, no checks): what a bare `[[services.real]]` gives.
    pub fn new(address: String, forward: Forward) -> Real {
        Real {
            address,
            forward,
            weight: one(),
            u_threshold: 0,
            l_threshold: 0,
            inhibit_on_failure: None,
            notify_up: None,
            notify_down: None,
            checks: Vec::new(),
        }
    }

    /// The real server endpoint; the port defaults to `service_port`.
    pub fn endpoint(&self, service_port: u16) -> Option<SocketAddr> {
        parse_endpoint(&self.address, Some(service_port))
    }
}

impl Config {
    /// Reads, parses and validates a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses and validates TOML text.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            });
            ConfigError::Parse(format!("{}{}", at.unwrap_or_default(), e.message()))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value; the first error names its field and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.eal.file_prefix.as_deref() == Some("") {
            return Err(ConfigError::invalid("eal.file_prefix", "must not be empty"));
        }
        for (i, p) in self.ports.iter().enumerate() {
            self.validate_port(i, p)?;
        }
        self.validate_workers()?;
        self.bgp.validate()?;
        for (i, r) in self.routes.iter().enumerate() {
            self.validate_route(i, r)?;
        }
        let mut keys: Vec<(Proto, Option<SocketAddr>, Option<i64>, bool)> = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            self.validate_service(i, s)?;
            let key = (s.proto, s.endpoint(), s.fwmark, s.is_ipv6());
            if keys.contains(&key) {
                return Err(ConfigError::invalid(
                    format!("services[{i}]"),
                    "duplicates an earlier service",
                ));
            }
            keys.push(key);
        }
        let max_timeout = i64::from(MAX_TIMEOUT);
        range("timeouts.tcp".into(), self.timeouts.tcp, 0, max_timeout)?;
        range(
            "timeouts.tcpfin".into(),
            self.timeouts.tcpfin,
            0,
            max_timeout,
        )?;
        range("timeouts.udp".into(), self.timeouts.udp, 0, max_timeout)?;
        range(
            "sessions.capacity_per_core".into(),
            self.sessions.capacity_per_core,
            1,
            MAX_SESSIONS_PER_CORE,
        )?;
        range(
            "sessions.expire_nodest_conn".into(),
            self.sessions.expire_nodest_conn,
            0,
            1,
        )?;
        range(
            "sessions.expire_quiescent_template".into(),
            self.sessions.expire_quiescent_template,
            0,
            1,
        )?;
        range("sessions.sloppy_tcp".into(), self.sessions.sloppy_tcp, 0, 1)?;
        range(
            "sessions.new_per_second".into(),
            self.sessions.new_per_second,
            0,
            MAX_NEW_PER_SECOND,
        )?;
        range(
            "sessions.frag_datagrams".into(),
            self.sessions.frag_datagrams,
            1,
            1_000_000,
        )?;
        range(
            "sessions.frag_held".into(),
            self.sessions.frag_held,
            0,
            1_000_000,
        )?;
        range(
            "sessions.frag_timeout_ms".into(),
            self.sessions.frag_timeout_ms,
            100,
            60_000,
        )?;
        range(
            "sessions.syn_proxy_rate".into(),
            self.sessions.syn_proxy_rate,
            1,
            MAX_NEW_PER_SECOND,
        )?;
        range(
            "sessions.syn_proxy_fill".into(),
            self.sessions.syn_proxy_fill,
            1,
            100,
        )?;
        if self.control.socket.as_os_str().is_empty() {
            return Err(ConfigError::invalid("control.socket", "must not be empty"));
        }
        for (i, m) in self.marks.iter().enumerate() {
            self.validate_mark(i, m)?;
        }
        validate_acl_list("acl.deny", &self.acl.deny)?;
        validate_acl_list("acl.allow", &self.acl.allow)?;
        self.metrics.validate()?;
        self.sync.validate()
    }

    /// `marks[i]`.
    fn validate_mark(&self, i: usize, m: &MarkRule) -> Result<(), ConfigError> {
        let f = |n: &str| format!("marks[{i}].{n}");
        range(f("mark"), m.mark, 1, u32::MAX.into())?;
        for (name, v) in [("src", &m.src), ("dst", &m.dst)] {
            if let Some(v) = v {
                if AddrPrefix::parse(v, true).is_err() {
                    return Err(ConfigError::invalid(
                        f(name),
                        format!("{v:?} is not an address or prefix (e.g. \"10.0.0.0/8\")"),
                    ));
                }
            }
        }
        if let Some(d) = &m.dports {
            if parse_port_ranges(d).is_none() {
                return Err(ConfigError::invalid(
                    f("dports"),
                    format!("{d:?} is not a list of ports and ranges (e.g. \"80,443,8000-8100\")"),
                ));
            }
        }
        if let Some(p) = &m.port {
            if !self.ports.iter().any(|x| &x.name == p) {
                return Err(ConfigError::invalid(
                    f("port"),
                    format!("{p:?} is not a configured port"),
                ));
            }
        }
        Ok(())
    }

    /// `ports[i]`.
    fn validate_port(&self, i: usize, p: &Port) -> Result<(), ConfigError> {
        let f = |n: &str| format!("ports[{i}].{n}");
        if p.name.is_empty() {
            return Err(ConfigError::invalid(f("name"), "must not be empty"));
        }
        if self.ports[..i].iter().any(|o| o.name == p.name) {
            return Err(ConfigError::invalid(
                f("name"),
                format!("{:?} is used by another port", p.name),
            ));
        }
        if p.device.is_empty() {
            return Err(ConfigError::invalid(f("device"), "must not be empty"));
        }
        if let Some(t) = &p.exception_iface {
            if !is_ifname(t) || t.contains([',', '=']) {
                return Err(ConfigError::invalid(
                    f("exception_iface"),
                    format!("{t:?} is not an interface name (1 to 15 bytes, no '/', ',', '=' or spaces)"),
                ));
            }
            if self.ports[..i]
                .iter()
                .any(|o| o.exception_iface.as_deref() == Some(t.as_str()))
            {
                return Err(ConfigError::invalid(
                    f("exception_iface"),
                    format!("{t:?} is used by another port"),
                ));
            }
        }
        if let Some(q) = p.rx_queues {
            range(f("rx_queues"), q, 1, MAX_QUEUES)?;
        }
        if let Some(q) = p.tx_queues {
            range(f("tx_queues"), q, 1, MAX_QUEUES)?;
        }
        range(f("mtu"), p.mtu, MIN_MTU.into(), MAX_MTU.into())?;
        if let Some(v) = p.vlan {
            range(f("vlan"), v, MIN_VLAN.into(), MAX_VLAN.into())?;
        }
        for (j, a) in p.addresses.iter().enumerate() {
            if parse_prefix(a).is_none() {
                return Err(ConfigError::invalid(
                    format!("ports[{i}].addresses[{j}]"),
                    format!("{a:?} is not an address with prefix length (e.g. \"10.0.0.1/24\")"),
                ));
            }
        }
        Ok(())
    }

    /// `[workers]`.
    fn validate_workers(&self) -> Result<(), ConfigError> {
        for (i, l) in self.workers.lcores.iter().enumerate() {
            range(format!("workers.lcores[{i}]"), *l, 0, MAX_LCORE)?;
        }
        if let Some(c) = self.workers.count {
            range("workers.count".into(), c, 1, MAX_WORKERS)?;
            if !self.workers.lcores.is_empty() {
                return Err(ConfigError::invalid(
                    "workers.count",
                    "cannot be combined with workers.lcores",
                ));
            }
        }
        range(
            "workers.idle_sleep_max_us".into(),
            self.workers.idle_sleep_max_us,
            0,
            MAX_IDLE_SLEEP_US,
        )?;
        Ok(())
    }

    /// `routes[i]`.
    fn validate_route(&self, i: usize, r: &Route) -> Result<(), ConfigError> {
        let pre = parse_prefix(&r.prefix).ok_or_else(|| {
            ConfigError::invalid(
                format!("routes[{i}].prefix"),
                format!("{:?} is not a prefix (e.g. \"0.0.0.0/0\")", r.prefix),
            )
        })?;
        if let Some(v) = &r.via {
            match v.parse::<IpAddr>() {
                Ok(a) if a.is_ipv4() == pre.addr.is_ipv4() => {}
                _ => {
                    return Err(ConfigError::invalid(
                        format!("routes[{i}].via"),
                        format!("{v:?} is not an address of the prefix's family"),
                    ))
                }
            }
        }
        if !self.ports.is_empty() && !self.ports.iter().any(|p| p.name == r.port) {
            return Err(ConfigError::invalid(
                format!("routes[{i}].port"),
                format!("{:?} is not a configured port", r.port),
            ));
        }
        Ok(())
    }

    /// `services[i]`'s key (vip or fwmark); gives the service port (0 for fwmark).
    fn validate_service_key(i: usize, s: &Service) -> Result<u16, ConfigError> {
        let f = |n: &str| format!("services[{i}].{n}");
        if s.proto == Proto::Fwmark {
            if s.vip.is_some() {
                return Err(ConfigError::invalid(
                    f("vip"),
                    "a fwmark service has no vip (use fwmark)",
                ));
            }
            let m = s.fwmark.ok_or_else(|| {
                ConfigError::invalid(f("fwmark"), "is required for proto = \"fwmark\"")
            })?;
            range(f("fwmark"), m, 1, u32::MAX.into())?;
            return Ok(0);
        }
        if s.fwmark.is_some() {
            return Err(ConfigError::invalid(
                f("fwmark"),
                "only a fwmark service has a fwmark",
            ));
        }
        if s.ipv6 {
            return Err(ConfigError::invalid(
                f("ipv6"),
                "only for fwmark services (the vip gives the family)",
            ));
        }
        let v = s
            .vip
            .as_deref()
            .ok_or_else(|| ConfigError::invalid(f("vip"), "is required"))?;
        let ep = parse_endpoint(v, None).ok_or_else(|| {
            ConfigError::invalid(
                f("vip"),
                format!("{v:?} is not address:port (IPv6: \"[addr]:port\")"),
            )
        })?;
        if ep.port() == 0 && s.persistent.is_none() {
            return Err(ConfigError::invalid(
                f("vip"),
                format!("{v:?}: zero port specified for non-persistent service"),
            ));
        }
        Ok(ep.port())
    }

    /// `services[i]`'s scheduling: scheduler, persistence, netmask, flags, OPS.
    fn validate_scheduling(i: usize, s: &Service) -> Result<(), ConfigError> {
        let f = |n: &str| format!("services[{i}].{n}");
        if !SCHEDULERS.contains(&s.scheduler.as_str()) {
            return Err(ConfigError::invalid(
                f("scheduler"),
                format!(
                    "{:?} is not a scheduler (one of {})",
                    s.scheduler,
                    SCHEDULERS.join(" ")
                ),
            ));
        }
        if let Some(p) = s.persistent {
            range(f("persistent"), p, 1, MAX_TIMEOUT.into())?;
        }
        if let Some(m) = &s.netmask {
            let ok = if s.is_ipv6() {
                matches!(m.parse::<u8>(), Ok(n) if (1..=IPV6_PREFIX_MAX).contains(&n))
            } else {
                m.parse::<std::net::Ipv4Addr>().is_ok()
            };
            if !ok {
                return Err(ConfigError::invalid(
                    f("netmask"),
                    format!(
                        "{m:?} is not a netmask (IPv4: \"255.255.255.0\", IPv6: prefix 1..128)"
                    ),
                ));
            }
        }
        for (j, fl) in s.sched_flags.iter().enumerate() {
            if !flag_ok(&s.scheduler, fl) {
                return Err(ConfigError::invalid(
                    format!("services[{i}].sched_flags[{j}]"),
                    format!("{fl:?} is not a flag of scheduler {:?}", s.scheduler),
                ));
            }
        }
        if s.ops && !matches!(s.proto, Proto::Udp | Proto::Fwmark) {
            return Err(ConfigError::invalid(
                f("ops"),
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        Ok(())
    }

    /// `services[i]`.
    fn validate_service(&self, i: usize, s: &Service) -> Result<(), ConfigError> {
        let port = Self::validate_service_key(i, s)?;
        Self::validate_scheduling(i, s)?;
        for (j, l) in s.laddrs.iter().enumerate() {
            // An IPv6 service's LIPs may be IPv4: FULLNAT to IPv4 servers (NAT64).
            let ok = match l.parse::<IpAddr>() {
                Ok(a) => s.proto == Proto::Fwmark || s.is_ipv6() || a.is_ipv4(),
                Err(_) => false,
            };
            if !ok {
                return Err(ConfigError::invalid(
                    format!("services[{i}].laddrs[{j}]"),
                    format!("{l:?} is not an address of the service's family"),
                ));
            }
        }
        let mut seen: Vec<SocketAddr> = Vec::new();
        for (j, r) in s.real.iter().enumerate() {
            let key = Self::validate_real((i, j), s, port, r)?;
            if seen.contains(&key) {
                return Err(ConfigError::invalid(
                    format!("services[{i}].real[{j}].address"),
                    format!("{:?} duplicates an earlier real server", r.address),
                ));
            }
            seen.push(key);
        }
        Self::validate_client_address(i, s)?;
        Self::validate_syn_proxy(i, s)?;
        validate_acl_list(&format!("services[{i}].deny"), &s.deny)?;
        validate_acl_list(&format!("services[{i}].allow"), &s.allow)?;
        check::validate_service(i, s, port)
    }

    /// `services[i].syn_proxy`: a known value, a TCP service (or a fwmark one), NAT or
    /// FULLNAT real servers (the sorry server included): a proxy cannot translate for a
    /// server whose replies bypass the director.
    fn validate_syn_proxy(i: usize, s: &Service) -> Result<(), ConfigError> {
        let field = format!("services[{i}].syn_proxy");
        let v = &s.syn_proxy;
        let Some(mode) = SynProxy::parse_config(v) else {
            return Err(ConfigError::invalid(
                field,
                format!("{v:?} is not one of \"on\", \"off\", \"auto\""),
            ));
        };
        if !mode.is_on() {
            return Ok(());
        }
        if matches!(s.proto, Proto::Udp | Proto::Sctp) {
            return Err(ConfigError::invalid(
                field,
                "the SYN proxy is only for TCP services",
            ));
        }
        let proxiable = |f: Forward| matches!(f, Forward::Masq | Forward::Fullnat);
        if let Some((j, r)) = s
            .real
            .iter()
            .enumerate()
            .find(|(_, r)| !proxiable(r.forward))
        {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "the SYN proxy needs NAT or FULLNAT real servers: real[{j}] {:?} forwards by {}",
                    r.address,
                    r.forward.name()
                ),
            ));
        }
        match s.sorry_forward() {
            Some(fw) if !proxiable(fw) => Err(ConfigError::invalid(
                field,
                format!(
                    "the SYN proxy needs NAT or FULLNAT real servers: the sorry server forwards by {}",
                    fw.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `services[i].proxy_protocol` and `.toa`: known values, FULLNAT real servers (the
    /// sorry server included) and a protocol that carries them (v1 and TOA: TCP; v2: TCP
    /// and UDP; a fwmark service may have either).
    fn validate_client_address(i: usize, s: &Service) -> Result<(), ConfigError> {
        let f = |n: &str| format!("services[{i}].{n}");
        let pp = &s.proxy_protocol;
        let proxy = ProxyProtocol::parse(pp).map_err(|e| {
            ConfigError::invalid(
                f("proxy_protocol"),
                match e {
                    ProxyProtocolError::Insecure => {
                        format!("{pp:?} is not supported: {PROXY_INSECURE_REASON}")
                    }
                    ProxyProtocolError::Unknown => {
                        format!("{pp:?} is not one of \"v1\", \"v2\", \"disable\"")
                    }
                },
            )
        })?;
        let only_for = match (proxy, s.proto) {
            (ProxyProtocol::V1, Proto::Udp | Proto::Sctp) => Some("TCP"),
            (ProxyProtocol::V2, Proto::Sctp) => Some("TCP and UDP"),
            _ => None,
        };
        if let Some(what) = only_for {
            return Err(ConfigError::invalid(
                f("proxy_protocol"),
                format!("{pp:?} is only for {what} services"),
            ));
        }
        if s.toa && matches!(s.proto, Proto::Udp | Proto::Sctp) {
            return Err(ConfigError::invalid(
                f("toa"),
                "TOA is only for TCP services",
            ));
        }
        // The field named: the PROXY protocol's when both are set.
        let (field, what) = if proxy.is_on() {
            (f("proxy_protocol"), format!("{pp:?}"))
        } else if s.toa {
            (f("toa"), "TOA".to_string())
        } else {
            return Ok(());
        };
        if let Some((j, r)) = s
            .real
            .iter()
            .enumerate()
            .find(|(_, r)| r.forward != Forward::Fullnat)
        {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "{what} needs FULLNAT real servers: real[{j}] {:?} forwards by {}",
                    r.address,
                    r.forward.name()
                ),
            ));
        }
        match s.sorry_forward() {
            Some(fw) if fw != Forward::Fullnat => Err(ConfigError::invalid(
                field,
                format!(
                    "{what} needs FULLNAT real servers: the sorry server forwards by {} (set sorry_server_forward = \"fullnat\")",
                    fw.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `services[i].real[j]` of service `s` (port `port`); gives the real server's key in
    /// the service (direct routing and tunnels keep the service port).
    fn validate_real(
        (i, j): (usize, usize),
        s: &Service,
        port: u16,
        r: &Real,
    ) -> Result<SocketAddr, ConfigError> {
        let g = |n: &str| format!("services[{i}].real[{j}].{n}");
        let ep = r.endpoint(port).ok_or_else(|| {
            ConfigError::invalid(
                g("address"),
                format!(
                    "{:?} is not address[:port] (IPv6: \"[addr]:port\")",
                    r.address
                ),
            )
        })?;
        // The kernel's rule (only tunnels mix families), and rvs's NAT64: an IPv6
        // service's fullnat servers may be IPv4.
        let nat64 = s.is_ipv6() && ep.is_ipv4() && r.forward == Forward::Fullnat;
        if ep.is_ipv6() != s.is_ipv6() && r.forward != Forward::Tunnel && !nat64 {
            return Err(ConfigError::invalid(
                g("address"),
                format!(
                    "{:?}: Different address family is allowed only for tunneling servers (and an IPv6 service's fullnat servers: NAT64)",
                    r.address
                ),
            ));
        }
        range(g("weight"), r.weight, 0, MAX_WEIGHT.into())?;
        range(g("u_threshold"), r.u_threshold, 0, MAX_THRESHOLD)?;
        range(g("l_threshold"), r.l_threshold, 0, MAX_THRESHOLD)?;
        if r.l_threshold > r.u_threshold && r.u_threshold != 0 {
            return Err(ConfigError::invalid(
                g("l_threshold"),
                format!("{} is above u_threshold {}", r.l_threshold, r.u_threshold),
            ));
        }
        if r.forward == Forward::Fullnat && s.laddrs.is_empty() {
            return Err(ConfigError::invalid(
                g("forward"),
                "fullnat needs local addresses: set laddrs on the service",
            ));
        }
        if r.forward == Forward::Fullnat
            && !s.laddrs.iter().any(|l| {
                l.parse::<IpAddr>()
                    .is_ok_and(|a| a.is_ipv6() == ep.is_ipv6())
            })
        {
            return Err(ConfigError::invalid(
                g("forward"),
                format!(
                    "fullnat needs local addresses of the real server's family: set {} laddrs on the service",
                    if ep.is_ipv6() { "IPv6" } else { "IPv4" }
                ),
            ));
        }
        Ok(match (r.forward, s.proto) {
            (Forward::Route | Forward::Tunnel, p) if p != Proto::Fwmark => {
                SocketAddr::new(ep.ip(), port)
            }
            _ => ep,
        })
    }
}

/// An interface name: 1 to [`MAX_IFNAME_LEN`] bytes, no `/` or whitespace.
fn is_ifname(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_IFNAME_LEN
        && !t.contains(|c: char| c == '/' || c.is_whitespace())
}

impl Sync {
    /// `[sync]`.
    fn validate(&self) -> Result<(), ConfigError> {
        let s = self;
        if s.mcast_interface.is_empty() || s.mcast_interface.len() > MAX_IFNAME_LEN {
            return Err(ConfigError::invalid(
                "sync.mcast_interface",
                format!(
                    "{:?} is not an interface name (1..15 chars)",
                    s.mcast_interface
                ),
            ));
        }
        range("sync.syncid".into(), s.syncid, 0, u8::MAX.into())?;
        range("sync.port".into(), s.port, 1, u16::MAX.into())?;
        range("sync.ttl".into(), s.ttl, 1, u8::MAX.into())?;
        range("sync.maxlen".into(), s.maxlen, 1, MAX_SYNC_MAXLEN.into())?;
        match s.group.parse::<IpAddr>() {
            Ok(a) if a.is_multicast() => {}
            _ => {
                return Err(ConfigError::invalid(
                    "sync.group",
                    format!("{:?} is not a multicast address", s.group),
                ))
            }
        }
        if let Some(p) = &s.unicast_peer {
            if p.parse::<IpAddr>().is_err() {
                return Err(ConfigError::invalid(
                    "sync.unicast_peer",
                    format!("{p:?} is not an address"),
                ));
            }
        }
        if s.state == SyncState::Group {
            if s.unicast_peer.is_some() {
                return Err(ConfigError::invalid(
                    "sync.unicast_peer",
                    "a group sends to each of sync.peers; remove unicast_peer",
                ));
            }
            if s.peers.is_empty() {
                return Err(ConfigError::invalid(
                    "sync.peers",
                    "state = \"group\" needs the group's addresses",
                ));
            }
            let mut seen: Vec<std::net::Ipv4Addr> = Vec::new();
            for p in &s.peers {
                let Ok(a) = p.parse::<std::net::Ipv4Addr>() else {
                    return Err(ConfigError::invalid(
                        "sync.peers",
                        format!("{p:?} is not an IPv4 address"),
                    ));
                };
                if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                    return Err(ConfigError::invalid(
                        "sync.peers",
                        format!("{p} is not a director's unicast address"),
                    ));
                }
                if seen.contains(&a) {
                    return Err(ConfigError::invalid(
                        "sync.peers",
                        format!("{p} is listed twice"),
                    ));
                }
                seen.push(a);
            }
        } else if !s.peers.is_empty() {
            return Err(ConfigError::invalid(
                "sync.peers",
                "only with state = \"group\"",
            ));
        }
        if s.key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid("sync.key_file", "is empty"));
        }
        Ok(())
    }

    /// The sync group's key from `key_file` (`None` without one): the file's bytes, less
    /// one final newline (`\n` or `\r\n`). Refuses, naming `sync.key_file`, a file that
    /// cannot be read, is not a regular file, is readable or writable by others (`chmod
    /// 600` it), is empty, or holds fewer than [`MIN_SYNC_KEY_LEN`] bytes.
    pub fn read_key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let bad =
            |m: String| ConfigError::invalid("sync.key_file", format!("{}: {m}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o006 != 0 {
            return Err(bad(format!(
                "mode {mode:04o}: other users can {} it; chmod 600 {}",
                if mode & 0o004 != 0 { "read" } else { "write" },
                path.display()
            )));
        }
        let mut key = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if key.last() == Some(&b'\n') {
            key.pop();
            if key.last() == Some(&b'\r') {
                key.pop();
            }
        }
        if key.is_empty() {
            return Err(bad("is empty".into()));
        }
        if key.len() < MIN_SYNC_KEY_LEN {
            return Err(bad(format!(
                "the key has {} bytes, fewer than {MIN_SYNC_KEY_LEN} (make one with: openssl rand -hex 32)",
                key.len()
            )));
        }
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: [&str; 4] = ["nat.toml", "dr.toml", "tun.toml", "fullnat.toml"];

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name)
    }

    #[test]
    fn examples_parse_and_validate() {
        for e in EXAMPLES {
            let c = Config::from_file(example(e)).unwrap_or_else(|err| panic!("{e}: {err}"));
            assert!(!c.services.is_empty(), "{e}");
            assert!(!c.ports.is_empty(), "{e}");
        }
    }

    #[test]
    fn metrics_listen_is_an_address_and_port() {
        assert_eq!(Config::from_str("").unwrap().metrics.listen_addr(), None);
        let c = Config::from_str("[metrics]\nlisten = \"127.0.0.1:9578\"\n").unwrap();
        assert_eq!(
            c.metrics.listen_addr(),
            Some("127.0.0.1:9578".parse().unwrap())
        );
        let c = Config::from_str("[metrics]\nlisten = \"[::1]:9578\"\n").unwrap();
        assert_eq!(c.metrics.listen_addr(), Some("[::1]:9578".parse().unwrap()));
        for bad in ["127.0.0.1", "localhost:9578", "127.0.0.1:99999", ""] {
            let e = Config::from_str(&format!("[metrics]\nlisten = {bad:?}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("metrics.listen: "), "{bad}: {e}");
        }
        let e = Config::from_str("[metrics]\nport = 9578\n").unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
    }

    #[test]
    fn idle_sleep_is_off_by_default_and_bounded_by_one_tick() {
        assert_eq!(Config::from_str("").unwrap().workers.idle_sleep_max_us, 0);
        let c = Config::from_str("[workers]\nidle_sleep_max_us = 200\n").unwrap();
        assert_eq!(c.workers.idle_sleep_max_us, 200);
        for bad in [-1, MAX_IDLE_SLEEP_US + 1] {
            let e = Config::from_str(&format!("[workers]\nidle_sleep_max_us = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!("workers.idle_sleep_max_us: {bad} is out of range 0..=10000")
            );
        }
    }

    #[test]
    fn bgp_is_off_by_default_and_every_key_is_checked_by_name() {
        let c = Config::from_str("").unwrap();
        assert_eq!(c.bgp, Bgp::default());
        assert_eq!(c.bgp.routes_file, None);
        let c = Config::from_str(
            "[bgp]\nroutes_file = \"/run/rvs/r.conf\"\nbirdc = \"/usr/sbin/birdc\"\nsocket = \"/run/bird/bird.ctl\"\nroute = \"unreachable\"\n",
        )
        .unwrap();
        assert_eq!(c.bgp.routes_file, Some(PathBuf::from("/run/rvs/r.conf")));
        assert_eq!(c.bgp.route, "unreachable");
        assert_eq!(c.bgp.routes6_file, None);
        let c = Config::from_str(
            "[bgp]\nroutes_file = \"/run/rvs/r.conf\"\nroutes6_file = \"/run/rvs/r6.conf\"\n",
        )
        .unwrap();
        assert_eq!(c.bgp.routes6_file, Some(PathBuf::from("/run/rvs/r6.conf")));
        for (body, field) in [
            ("routes_file = \"r.conf\"", "bgp.routes_file"),
            ("routes_file = \"/\"", "bgp.routes_file"),
            ("routes6_file = \"/run/rvs/r6.conf\"", "bgp.routes6_file"),
            (
                "routes_file = \"/run/rvs/r.conf\"\nroutes6_file = \"r6.conf\"",
                "bgp.routes6_file",
            ),
            (
                "routes_file = \"/run/rvs/r.conf\"\nroutes6_file = \"/run/rvs/r.conf\"",
                "bgp.routes6_file",
            ),
            ("birdc = \" \"", "bgp.birdc"),
            ("socket = \"bird.ctl\"", "bgp.socket"),
            ("route = \"prohibit\"", "bgp.route"),
            ("announce_delay_ms = -1", "bgp.announce_delay_ms"),
            ("announce_delay_ms = 600001", "bgp.announce_delay_ms"),
        ] {
            let e = Config::from_str(&format!("[bgp]\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{body}: {e}");
        }
        let e = Config::from_str("[bgp]\nasn = 65000\n").unwrap_err();
        assert!(e.to_string().contains("asn"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = Config::from_str("").unwrap();
        assert_eq!(c.control.socket, PathBuf::from("/run/rvs/rvsd.sock"));
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.sync.state, SyncState::None);
        assert_eq!(c.sync.maxlen, 1472);
        assert_eq!(c.sessions.expire_nodest_conn, 0);
        assert_eq!(c.sessions.expire_quiescent_template, 0);
        let c =
            Config::from_str("[sessions]\nexpire_nodest_conn = 1\nexpire_quiescent_template = 1\n")
                .unwrap();
        assert_eq!(c.sessions.expire_nodest_conn, 1);
        assert_eq!(c.sessions.expire_quiescent_template, 1);
        let c = Config::from_str(
            "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n[[services.real]]\naddress = \"10.0.0.1\"\n",
        )
        .unwrap();
        let s = &c.services[0];
        assert_eq!(s.scheduler, "wlc");
        assert_eq!(s.real[0].weight, 1);
        assert_eq!(s.real[0].forward, Forward::Route);
        assert_eq!(s.real[0].endpoint(80), Some("10.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn exception_iface_is_an_interface_name() {
        let port = |t: &str| {
            format!("[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\nexception_iface = \"{t}\"\n")
        };
        let c = Config::from_str(&port("rvs0")).unwrap();
        assert_eq!(c.ports[0].exception_iface.as_deref(), Some("rvs0"));
        assert!(
            Config::from_str("[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\n")
                .unwrap()
                .ports[0]
                .exception_iface
                .is_none()
        );
        for bad in ["", "a-very-long-interface", "a,b", "x y", "a/b"] {
            assert!(
                err(&port(bad)).starts_with("ports[0].exception_iface: "),
                "{bad:?}"
            );
        }
        let two = format!(
            "{}[[ports]]\nname = \"b\"\ndevice = \"net_null1\"\nexception_iface = \"rvs0\"\n",
            port("rvs0")
        );
        assert_eq!(
            err(&two),
            "ports[1].exception_iface: \"rvs0\" is used by another port"
        );
    }

    fn err(text: &str) -> String {
        Config::from_str(text).unwrap_err().to_string()
    }

    #[test]
    fn sloppy_tcp_is_0_or_1_and_refused_by_name_otherwise() {
        assert_eq!(Config::from_str("").unwrap().sessions.sloppy_tcp, 0);
        let c = Config::from_str("[sessions]\nsloppy_tcp = 1\n").unwrap();
        assert_eq!(c.sessions.sloppy_tcp, 1);
        for bad in ["2", "-1"] {
            let e = err(&format!("[sessions]\nsloppy_tcp = {bad}\n"));
            assert!(e.starts_with("sessions.sloppy_tcp: "), "{e}");
        }
    }

    #[test]
    fn the_fragment_tables_bounds_have_defaults_and_are_refused_by_name_when_bad() {
        let c = Config::from_str("").unwrap();
        assert_eq!(
            (
                c.sessions.frag_datagrams,
                c.sessions.frag_held,
                c.sessions.frag_timeout_ms
            ),
            (4096, 4096, 3000)
        );
        let f = Config::from_str(
            "[sessions]\nfrag_datagrams = 10\nfrag_held = 0\nfrag_timeout_ms = 500\n",
        )
        .unwrap();
        assert_eq!(
            (
                f.sessions.frag_datagrams,
                f.sessions.frag_held,
                f.sessions.frag_timeout_ms
            ),
            (10, 0, 500)
        );
        assert_eq!(
            err("[sessions]\nfrag_datagrams = 0\n"),
            "sessions.frag_datagrams: 0 is out of range 1..=1000000"
        );
        assert_eq!(
            err("[sessions]\nfrag_timeout_ms = 99\n"),
            "sessions.frag_timeout_ms: 99 is out of range 100..=60000"
        );
    }

    #[test]
    fn the_new_session_budget_is_a_rate_per_worker_refused_by_name_when_bad() {
        let c = Config::from_str("").unwrap();
        assert_eq!(c.sessions.new_per_second, 0, "no budget by default");
        let c = Config::from_str(
            "[sessions]
new_per_second = 50000
",
        )
        .unwrap();
        assert_eq!(c.sessions.new_per_second, 50000);
        let c = Config::from_str(
            "[sessions]
new_per_second = 1000000000
",
        )
        .unwrap();
        assert_eq!(c.sessions.new_per_second, MAX_NEW_PER_SECOND);
        assert_eq!(
            err("[sessions]\nnew_per_second = -1\n"),
            "sessions.new_per_second: -1 is out of range 0..=1000000000"
        );
        assert_eq!(
            err("[sessions]\nnew_per_second = 1000000001\n"),
            "sessions.new_per_second: 1000000001 is out of range 0..=1000000000"
        );
        let e = err("[sessions]\nnew_per_second = \"fast\"\n");
        assert!(e.starts_with("line 2: invalid type"), "{e}");
    }

    #[test]
    fn acl_entries_are_prefixes_refused_by_field_when_bad() {
        let c = Config::from_str(
            "[acl]\ndeny = [\"203.0.113.0/24\", \"198.51.100.7\"]\nallow = [\"0.0.0.0/0\"]\n\
             [[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nallow = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        assert_eq!(c.acl.deny.len(), 2);
        assert_eq!(c.acl.allow, vec!["0.0.0.0/0".to_string()]);
        assert_eq!(c.services[0].allow, vec!["10.0.0.0/8".to_string()]);
        assert!(c.services[0].deny.is_empty());
        assert_eq!(Config::from_str("").unwrap().acl, Acl::default());
        let svc = |k: &str| format!("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n{k}\n");
        for (text, want) in [
            ("[acl]\ndeny = [\"1.2.3.0/24\", \"10.1.2.3/8\"]".to_string(), "acl.deny[1]: \"10.1.2.3/8\" has bits set beyond its length (the prefix is \"10.0.0.0/8\")"),
            ("[acl]\nallow = [\"nonsense\"]".to_string(), "acl.allow[0]: \"nonsense\" is not an address or prefix (e.g. \"203.0.113.0/24\")"),
            ("[acl]\nallow = [\"1.2.3.4/33\"]".to_string(), "acl.allow[0]: \"1.2.3.4/33\" is not an address or prefix (e.g. \"203.0.113.0/24\")"),
            (svc("deny = [\"1.0.0.0/8\", \"2.0.0.0/8\", \"1.0.0.0/8\"]"), "services[0].deny[2]: \"1.0.0.0/8\" duplicates an earlier entry"),
            (svc("allow = [\"2001:db8::1/64\"]"), "services[0].allow[0]: \"2001:db8::1/64\" has bits set beyond its length (the prefix is \"2001:db8::/64\")"),
        ] {
            assert_eq!(err(&text), want, "{text}");
        }
        assert!(
            Config::from_str("[acl]\nblock = []").is_err(),
            "unknown key"
        );
        assert_eq!(parse_acl_prefix("0.0.0.0/0").map(|p| p.prefix_len), Ok(0));
        assert_eq!(
            parse_acl_prefix("2001:db8::/32").map(|p| p.to_string()),
            Ok("2001:db8::/32".to_string())
        );
    }

    #[test]
    fn a_port_vlan_is_a_vid_of_1_to_4094() {
        let port = |v: &str| format!("[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\n{v}");
        assert_eq!(Config::from_str(&port("")).unwrap().ports[0].vlan, None);
        for v in [1, 10, 4094] {
            let c = Config::from_str(&port(&format!("vlan = {v}\n"))).unwrap();
            assert_eq!(c.ports[0].vlan, Some(v));
        }
        for v in [0, 4095, -1, 70000] {
            assert_eq!(
                err(&port(&format!("vlan = {v}\n"))),
                format!("ports[0].vlan: {v} is out of range 1..=4094")
            );
        }
    }

    #[test]
    fn the_sync_key_file_is_read_and_refused_by_name_when_missing_empty_or_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rvs-config-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sync.key");
        let cfg = |p: &Path| {
            Config::from_str(&format!(
                "[sync]\nkey_file = {:?}\n",
                p.display().to_string()
            ))
            .unwrap()
        };
        let write = |bytes: &[u8], mode: u32| {
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        assert_eq!(Config::from_str("").unwrap().sync.read_key().unwrap(), None);
        let shown = path.display().to_string();
        let e = cfg(&dir.join("none"))
            .sync
            .read_key()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("sync.key_file: {}/none: ", dir.display())),
            "{e}"
        );
        write(b"0123456789abcdef0123456789abcdef\n", 0o600);
        assert_eq!(
            cfg(&path).sync.read_key().unwrap().as_deref(),
            Some(&b"0123456789abcdef0123456789abcdef"[..]),
            "the final newline is not part of the key"
        );
        write(b"0123456789abcdef0123456789abcdef\r\n", 0o640);
        assert_eq!(cfg(&path).sync.read_key().unwrap().unwrap().len(), 32);
        write(b"0123456789abcdef0123456789abcdef", 0o644);
        assert_eq!(
            cfg(&path).sync.read_key().unwrap_err().to_string(),
            format!(
                "sync.key_file: {shown}: mode 0644: other users can read it; chmod 600 {shown}"
            )
        );
        write(b"0123456789abcdef0123456789abcdef", 0o602);
        assert!(cfg(&path)
            .sync
            .read_key()
            .unwrap_err()
            .to_string()
            .contains("other users can write it"));
        write(b"", 0o600);
        assert_eq!(
            cfg(&path).sync.read_key().unwrap_err().to_string(),
            format!("sync.key_file: {shown}: is empty")
        );
        write(b"\n", 0o600);
        assert!(cfg(&path).sync.read_key().is_err());
        write(b"short\n", 0o600);
        assert!(cfg(&path)
            .sync
            .read_key()
            .unwrap_err()
            .to_string()
            .starts_with(&format!(
                "sync.key_file: {shown}: the key has 5 bytes, fewer than 16"
            )));
        assert_eq!(
            cfg(&dir).sync.read_key().unwrap_err().to_string(),
            format!("sync.key_file: {}: not a regular file", dir.display())
        );
        assert_eq!(err("[sync]\nkey_file = \"\"\n"), "sync.key_file: is empty");
        let group =
            Config::from_str("[sync]\nstate = \"group\"\npeers = [\"10.0.0.1\", \"10.0.0.2\"]\n")
                .unwrap();
        assert_eq!(
            (group.sync.state, group.sync.peers.len()),
            (SyncState::Group, 2)
        );
        assert_eq!(
            err("[sync]\nstate = \"group\"\n"),
            "sync.peers: state = \"group\" needs the group's addresses"
        );
        assert_eq!(
            err("[sync]\nstate = \"master\"\npeers = [\"10.0.0.1\"]\n"),
            "sync.peers: only with state = \"group\""
        );
        assert_eq!(
            err("[sync]\nstate = \"group\"\npeers = [\"10.0.0.1\", \"10.0.0.1\"]\n"),
            "sync.peers: 10.0.0.1 is listed twice"
        );
        assert_eq!(
            err("[sync]\nstate = \"group\"\npeers = [\"fd00::1\"]\n"),
            "sync.peers: \"fd00::1\" is not an IPv4 address"
        );
        assert_eq!(
            err("[sync]\nstate = \"group\"\npeers = [\"224.0.0.81\"]\n"),
            "sync.peers: 224.0.0.81 is not a director's unicast address"
        );
        assert_eq!(
            err("[sync]\nstate = \"group\"\npeers = [\"10.0.0.1\"]\nunicast_peer = \"10.0.0.2\"\n"),
            "sync.unicast_peer: a group sends to each of sync.peers; remove unicast_peer"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_ipv6_service_may_forward_to_ipv4_fullnat_servers_with_ipv4_laddrs() {
        let svc = |laddrs: &str, real: &str, fwd: &str| {
            format!(
                "[[services]]\nproto = \"tcp\"\nvip = \"[2001:db8::1]:80\"\nladdrs = [{laddrs}]\n\
                 [[services.real]]\naddress = \"{real}\"\nforward = \"{fwd}\"\n"
            )
        };
        // NAT64: IPv4 servers and LIPs behind an IPv6 VIP.
        let c = Config::from_str(&svc("\"10.0.0.200\"", "10.0.0.11:8080", "fullnat")).unwrap();
        assert!(c.services[0].is_ipv6());
        // IPv6 throughout.
        Config::from_str(&svc("\"2001:db8::200\"", "[2001:db8::11]:80", "fullnat")).unwrap();
        assert_eq!(
            err(&svc("\"10.0.0.200\"", "10.0.0.11:8080", "masq")),
            "services[0].real[0].address: \"10.0.0.11:8080\": Different address family is allowed only for tunneling servers (and an IPv6 service's fullnat servers: NAT64)"
        );
        assert_eq!(
            err(&svc("\"2001:db8::200\"", "10.0.0.11:8080", "fullnat")),
            "services[0].real[0].forward: fullnat needs local addresses of the real server's family: set IPv4 laddrs on the service"
        );
        // An IPv4 service's LIPs stay IPv4.
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"10.0.0.100:80\"\nladdrs = [\"2001:db8::200\"]\n"),
            "services[0].laddrs[0]: \"2001:db8::200\" is not an address of the service's family"
        );
    }

    #[test]
    fn errors_name_field_and_value() {
        let two = "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n\
                   [[services]]\nproto = \"udp\"\nvip = \"1.2.3.4:53\"\n\
                   [[services.real]]\naddress = \"10.0.0.1\"\nweight = 70000\n";
        assert_eq!(
            err(two),
            "services[1].real[0].weight: 70000 is out of range 0..=65535"
        );
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nscheduler = \"foo\"\n"),
            "services[0].scheduler: \"foo\" is not a scheduler (one of rr wrr lc wlc sed nq sh dh lblc lblcr mh fo ovf twos)"
        );
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3:80\"\n"),
            "services[0].vip: \"1.2.3:80\" is not address:port (IPv6: \"[addr]:port\")"
        );
        assert!(err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:0\"\n")
            .starts_with("services[0].vip:"));
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\npersistent = 0\n"),
            "services[0].persistent: 0 is out of range 1..=2678400"
        );
        assert_eq!(
            err("[sync]\nsyncid = 300\n"),
            "sync.syncid: 300 is out of range 0..=255"
        );
        assert_eq!(
            err("[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\naddresses = [\"10.0.0.1\"]\n"),
            "ports[0].addresses[0]: \"10.0.0.1\" is not an address with prefix length (e.g. \"10.0.0.1/24\")"
        );
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n[[services.real]]\naddress = \"10.0.0.1\"\nforward = \"fullnat\"\n"),
            "services[0].real[0].forward: fullnat needs local addresses: set laddrs on the service"
        );
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nsched_flags = [\"sh-port\"]\n"),
            "services[0].sched_flags[0]: \"sh-port\" is not a flag of scheduler \"wlc\""
        );
        assert_eq!(
            err("[sessions]\nexpire_nodest_conn = 2\n"),
            "sessions.expire_nodest_conn: 2 is out of range 0..=1"
        );
        assert_eq!(
            err("[sessions]\nexpire_quiescent_template = -1\n"),
            "sessions.expire_quiescent_template: -1 is out of range 0..=1"
        );
        // Unknown keys are refused by the schema.
        assert!(err("[control]\nsockt = \"/x\"\n").contains("sockt"));
        // Duplicate services.
        assert_eq!(
            err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n"),
            "services[1]: duplicates an earlier service"
        );
    }

    #[test]
    fn syn_proxy_is_for_nat_and_fullnat_tcp_services_named_by_its_field() {
        let svc = |proto: &str, vip: &str, extra: &str, fwd: &str| {
            format!(
                "[[services]]\nproto = \"{proto}\"\n{vip}{extra}\
                 real = [\n  {{ address = \"10.0.0.1:80\", forward = \"masq\" }},\n  \
                 {{ address = \"10.0.0.2:80\", forward = \"{fwd}\" }},\n]\n"
            )
        };
        let tcp = |extra: &str, fwd: &str| svc("tcp", "vip = \"1.2.3.4:80\"\n", extra, fwd);
        let c = Config::from_str(&tcp("", "masq")).unwrap();
        assert_eq!(c.services[0].syn_proxy(), SynProxy::Disable);
        assert_eq!(c.sessions.syn_proxy_rate, 20_000);
        assert_eq!(c.sessions.syn_proxy_fill, 50);
        for (v, want) in [
            ("on", SynProxy::Enable),
            ("auto", SynProxy::Auto),
            ("off", SynProxy::Disable),
        ] {
            let c = Config::from_str(&tcp(&format!("syn_proxy = \"{v}\"\n"), "masq")).unwrap();
            assert_eq!(c.services[0].syn_proxy(), want);
            assert_eq!(want.config_name(), v);
        }
        let cases: &[(String, &str)] = &[
            (tcp("syn_proxy = \"yes\"\n", "masq"), "services[0].syn_proxy: \"yes\" is not one of \"on\", \"off\", \"auto\""),
            (tcp("syn_proxy = \"on\"\n", "route"), "services[0].syn_proxy: the SYN proxy needs NAT or FULLNAT real servers: real[1] \"10.0.0.2:80\" forwards by route"),
            (tcp("syn_proxy = \"auto\"\n", "tunnel"), "services[0].syn_proxy: the SYN proxy needs NAT or FULLNAT real servers: real[1] \"10.0.0.2:80\" forwards by tunnel"),
            (svc("udp", "vip = \"1.2.3.4:53\"\n", "syn_proxy = \"on\"\n", "masq"), "services[0].syn_proxy: the SYN proxy is only for TCP services"),
            (format!("{}[sessions]\nsyn_proxy_fill = 0\n", tcp("", "masq")), "sessions.syn_proxy_fill"),
        ];
        for (text, want) in cases {
            assert!(err(text).starts_with(want), "{text}: {}", err(text));
        }
    }

    #[test]
    fn proxy_protocol_and_toa_are_fullnat_settings_named_by_their_field() {
        let svc = |proto: &str, vip: &str, extra: &str, fwd: &str| {
            format!(
                "[[services]]\nproto = \"{proto}\"\n{vip}{extra}laddrs = [\"10.0.0.200\"]\n\
                 real = [\n  {{ address = \"10.0.0.1:80\", forward = \"fullnat\" }},\n  \
                 {{ address = \"10.0.0.2:80\", forward = \"{fwd}\" }},\n]\n"
            )
        };
        let tcp = |extra: &str, fwd: &str| svc("tcp", "vip = \"1.2.3.4:80\"\n", extra, fwd);
        let c = Config::from_str(&tcp("", "fullnat")).unwrap();
        assert_eq!(c.services[0].proxy_protocol, "disable");
        assert_eq!(c.services[0].proxy_protocol(), ProxyProtocol::Disable);
        assert!(!c.services[0].toa);
        let c = Config::from_str(&tcp("proxy_protocol = \"v2\"\ntoa = true\n", "fullnat")).unwrap();
        assert_eq!(c.services[0].proxy_protocol(), ProxyProtocol::V2);
        assert!(c.services[0].toa);
        let c = Config::from_str(&svc(
            "udp",
            "vip = \"1.2.3.4:53\"\n",
            "proxy_protocol = \"v2\"\n",
            "fullnat",
        ))
        .unwrap();
        assert_eq!(c.services[0].proxy_protocol(), ProxyProtocol::V2);
        for (extra, mark) in [
            ("proxy_protocol = \"v1\"\ntoa = true\n", 1),
            ("proxy_protocol = \"v2\"\n", 2),
        ] {
            Config::from_str(&svc(
                "fwmark",
                &format!("fwmark = {mark}\n"),
                extra,
                "fullnat",
            ))
            .unwrap();
        }
        let cases: &[(String, &str)] = &[
            (tcp("proxy_protocol = \"v3\"\n", "fullnat"), "services[0].proxy_protocol: \"v3\" is not one of \"v1\", \"v2\", \"disable\""),
            (tcp("proxy_protocol = \"V2\"\n", "fullnat"), "services[0].proxy_protocol: \"V2\" is not one of \"v1\", \"v2\", \"disable\""),
            (tcp("proxy_protocol = \"v2-insecure\"\n", "fullnat"), "services[0].proxy_protocol: \"v2-insecure\" is not supported: rvs always puts its own header first"),
            (tcp("proxy_protocol = \"v1\"\n", "masq"), "services[0].proxy_protocol: \"v1\" needs FULLNAT real servers: real[1] \"10.0.0.2:80\" forwards by masq"),
            (tcp("toa = true\n", "route"), "services[0].toa: TOA needs FULLNAT real servers: real[1] \"10.0.0.2:80\" forwards by route"),
            (tcp("proxy_protocol = \"v2\"\ntoa = true\n", "tunnel"), "services[0].proxy_protocol: \"v2\" needs FULLNAT real servers: real[1] \"10.0.0.2:80\" forwards by tunnel"),
            (tcp("proxy_protocol = \"v2\"\nsorry_server = \"10.0.0.9:80\"\nsorry_server_forward = \"masq\"\n", "fullnat"), "services[0].proxy_protocol: \"v2\" needs FULLNAT real servers: the sorry server forwards by masq (set sorry_server_forward = \"fullnat\")"),
            (svc("udp", "vip = \"1.2.3.4:53\"\n", "proxy_protocol = \"v1\"\n", "fullnat"), "services[0].proxy_protocol: \"v1\" is only for TCP services"),
            (svc("sctp", "vip = \"1.2.3.4:9\"\n", "proxy_protocol = \"v2\"\n", "fullnat"), "services[0].proxy_protocol: \"v2\" is only for TCP and UDP services"),
            (svc("udp", "vip = \"1.2.3.4:53\"\n", "toa = true\n", "fullnat"), "services[0].toa: TOA is only for TCP services"),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), *want, "{text}");
        }
        // The sorry server follows the first real server's method unless told otherwise.
        Config::from_str(&tcp(
            "toa = true\nsorry_server = \"10.0.0.9:80\"\n",
            "fullnat",
        ))
        .unwrap();
        let e = err("[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\ntoa = \"yes\"\n");
        assert!(e.starts_with("line 4: invalid type"), "{e}");
    }

    #[test]
    fn mark_rules_are_validated_naming_the_field() {
        let c = Config::from_str(
            "[[ports]]\nname = \"wan\"\ndevice = \"net_null0\"\n\
             [[marks]]\nproto = \"tcp\"\ndst = \"10.0.0.100\"\ndports = \"80, 443,8000-8100\"\nport = \"wan\"\nmark = 1\n\
             [[marks]]\nmark = 2\n",
        )
        .unwrap();
        assert_eq!(c.marks.len(), 2);
        assert_eq!(c.marks[0].proto, MarkProto::Tcp);
        assert_eq!(c.marks[1].proto, MarkProto::Any);
        assert_eq!(
            parse_port_ranges("80, 443,8000-8100"),
            Some(vec![(80, 80), (443, 443), (8000, 8100)])
        );
        for (body, text) in [
            ("mark = 0", "marks[0].mark: 0 is out of range 1..=4294967295"),
            (
                "mark = 1\nsrc = \"10.0.0/8\"",
                "marks[0].src: \"10.0.0/8\" is not an address or prefix (e.g. \"10.0.0.0/8\")",
            ),
            (
                "mark = 1\ndst = \"10.0.0.1/40\"",
                "marks[0].dst: \"10.0.0.1/40\" is not an address or prefix (e.g. \"10.0.0.0/8\")",
            ),
            (
                "mark = 1\ndports = \"443-80\"",
                "marks[0].dports: \"443-80\" is not a list of ports and ranges (e.g. \"80,443,8000-8100\")",
            ),
            (
                "mark = 1\ndports = \"80,\"",
                "marks[0].dports: \"80,\" is not a list of ports and ranges (e.g. \"80,443,8000-8100\")",
            ),
            ("mark = 1\nport = \"lan\"", "marks[0].port: \"lan\" is not a configured port"),
        ] {
            assert_eq!(err(&format!("[[marks]]\n{body}\n")), text, "{body}");
        }
        assert!(err("[[marks]]\nmark = 1\nproto = \"sctp\"\n").contains("sctp"));
        assert!(err("[[marks]]\nmark = 1\nsport = \"80\"\n").contains("sport"));
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.0.0.1/24").map(|p| p.to_string()),
            Some("10.0.0.1/24".into())
        );
        assert!(parse_prefix("10.0.0.1/33").is_none());
        assert!(parse_prefix("2001:db8::1/64").is_some());
    }
}
