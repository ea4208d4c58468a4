//! The command builder: ipvsadm's `parse_options` and the checks after it. It reads the
//! options after the command (from the [`Scanner`]) into a [`State`], checks them against
//! the command (`commands_v_options`, the list conflicts, tunnel options) and builds the
//! [`Command`].

use std::net::IpAddr;

use super::options::{
    generic_opt_check, option_bit, tunnel_check, Cmd, Id, OPT_NAMES, O_CONNECTION, O_DAEMON,
    O_EXACT, O_NOSORT, O_NUMERIC, O_PERSISTENTCONN, O_RATE, O_STATS, O_THRESHOLDS, O_TIMEOUT,
    O_TUN_CSUM, O_TUN_INFO, O_TUN_NOCSUM, O_TUN_PORT, O_TUN_REMCSUM, O_TUN_TYPE,
};
use super::values::{
    atoi, parse_fwmark, parse_hostport, parse_laddr, parse_mcast_group, parse_sched_flags,
    string_to_number, HostPort,
};
use super::{CliError, Command, ListOpts, MAX_TIMEOUT};
use crate::ipvs::{
    AclKind, AclPrefix, DaemonConf, DestConf, Forward, Laddr, Protocol, ServiceConf, ServiceKey,
    SyncState, Timeouts, TunCsum, TunType, Tunnel, DEFAULT_PERSISTENT_TIMEOUT, IPV6_FULL_NETMASK,
};
use crate::names;
use crate::popt::{ArgKind, Opt, Scanner};
use rvs_config::{ProxyProtocol, ProxyProtocolError, SynProxy, PROXY_INSECURE_REASON};

/// The largest weight (`-w`).
const MAX_WEIGHT: i64 = u16::MAX as i64;
/// The largest connection threshold (`-x`, `-y`).
const MAX_THRESHOLD: i64 = i32::MAX as i64;
/// The largest `--sync-maxlen`: an IPv4 UDP datagram's payload.
const MAX_SYNC_MAXLEN: i64 = rvs_config::MAX_SYNC_MAXLEN as i64;
/// The tunnel options: any of them needs `-i`.
const TUNNEL_OPTIONS: [usize; 5] = [
    O_TUN_TYPE,
    O_TUN_PORT,
    O_TUN_NOCSUM,
    O_TUN_CSUM,
    O_TUN_REMCSUM,
];

/// What the options after the command said.
#[derive(Default)]
struct State {
    /// The option bits given (`1 << O_*`).
    options: u64,
    svc: Option<ServiceKeyParts>,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Option<u32>,
    ops: bool,
    pe: Option<String>,
    sched_flags: Option<String>,
    dest: Option<HostPort>,
    forward: Option<Forward>,
    weight: Option<i32>,
    u_threshold: u32,
    l_threshold: u32,
    mcast_ifn: Option<String>,
    syncid: u8,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
    sync_maxlen: Option<u16>,
    tun_type: TunType,
    tun_port: u16,
    tun_csum: TunCsum,
    laddr: Option<IpAddr>,
    ifname: Option<String>,
    proxy_protocol: ProxyProtocol,
    toa: bool,
    syn_proxy: SynProxy,
    blklst: Option<AclPrefix>,
    whtlst: Option<AclPrefix>,
}

/// The service as given: `-6` may still turn a fwmark service into an IPv6 one.
#[derive(Debug, Clone, Copy)]
enum ServiceKeyParts {
    Inet(Protocol, HostPort),
    Fwmark(u32, bool),
}

/// `string_to_number` over `min..=max`, or `illegal <what> specified`.
fn number(v: &str, min: i64, max: i64, what: &str) -> Result<i64, CliError> {
    string_to_number(v, min, max).ok_or_else(|| CliError::fail(format!("illegal {what} specified")))
}

/// `-t`/`-u`/`--sctp-service`.
fn inet_service(protocol: Protocol, v: &str) -> Result<ServiceKeyParts, CliError> {
    let hp = parse_hostport(v, protocol.services_name())
        .ok_or_else(|| CliError::fail("illegal virtual server address[:port] specified"))?;
    Ok(ServiceKeyParts::Inet(protocol, hp))
}

/// `-f`.
fn fwmark_service(v: &str) -> Result<ServiceKeyParts, CliError> {
    let mark = parse_fwmark(v)
        .ok_or_else(|| CliError::fail(format!("invalid fwmark value `{v}' specified")))?;
    Ok(ServiceKeyParts::Fwmark(mark, false))
}

/// `-p [timeout]`.
fn persistence_timeout(value: Option<&str>) -> Result<u32, CliError> {
    let Some(t) = value else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(t, 1, i64::from(MAX_TIMEOUT))
        .map(|n| n as u32)
        .ok_or_else(|| CliError::fail(format!("invalid timeout value `{t}' specified")))
}

/// `--tun-type`.
fn tunnel_type(v: &str) -> Result<TunType, CliError> {
    match v {
        "ipip" => Ok(TunType::Ipip),
        "gue" => Ok(TunType::Gue),
        "gre" => Ok(TunType::Gre),
        _ => Err(CliError::fail("illegal tunnel type specified")),
    }
}

/// `-j enable|disable|auto` (`--synproxy`, DPVS's spelling; any case).
fn syn_proxy(v: &str) -> Result<SynProxy, CliError> {
    SynProxy::parse_cli(v)
        .ok_or_else(|| CliError::fail(format!("invalid synproxy value `{v}' specified")))
}

/// `--proxy-protocol v1|v2|disable` (DPVS's spelling; any case, as DPVS's `strcasecmp`).
/// DPVS's `v1-insecure` and `v2-insecure` pass a header the client sent on to the real
/// server; rvs refuses them: its own header always comes first.
fn proxy_protocol(v: &str) -> Result<ProxyProtocol, CliError> {
    ProxyProtocol::parse_nocase(v).map_err(|e| {
        CliError::fail(match e {
            ProxyProtocolError::Insecure => {
                format!("proxy-protocol `{v}' is not supported: {PROXY_INSECURE_REASON}")
            }
            ProxyProtocolError::Unknown => {
                format!("invalid proxy-protocol value `{v}' specified")
            }
        })
    })
}

/// `-k`/`-2`: `a.b.c.d[/len]`, no bit set beyond the length.
fn acl_prefix(kind: AclKind, v: &str) -> Result<AclPrefix, CliError> {
    AclPrefix::parse(v)
        .map_err(|e| CliError::fail(format!("illegal {} prefix specified: {e}", kind.option())))
}

/// `need_key`: the command needs a service.
fn need_key(key: Option<ServiceKey>) -> Result<ServiceKey, CliError> {
    key.ok_or_else(|| CliError::fail("You need to supply the 'service-address' option"))
}

impl State {
    /// Records option `opt`; a second time is an error.
    fn set(&mut self, opt: usize) -> Result<(), CliError> {
        if self.has(opt) {
            return Err(CliError::fail(format!(
                "multiple '{}' options specified",
                OPT_NAMES[opt]
            )));
        }
        self.options |= 1 << opt;
        Ok(())
    }

    fn has(&self, opt: usize) -> bool {
        self.options & (1 << opt) != 0
    }

    /// The `/etc/services` protocol for the real server's port name.
    fn proto_name(&self) -> &'static str {
        match self.svc {
            Some(ServiceKeyParts::Inet(p, _)) => p.services_name(),
            _ => Protocol::Tcp.services_name(),
        }
    }

    fn key(&self) -> Option<ServiceKey> {
        match self.svc? {
            ServiceKeyParts::Inet(protocol, hp) => Some(ServiceKey::Inet {
                protocol,
                addr: hp.addr,
                port: hp.port.unwrap_or(0),
            }),
            ServiceKeyParts::Fwmark(mark, ipv6) => Some(ServiceKey::Fwmark { mark, ipv6 }),
        }
    }

    /// `-6`: only after `-f`.
    fn ipv6(&self) -> Result<ServiceKeyParts, CliError> {
        match self.svc {
            Some(ServiceKeyParts::Fwmark(m, _)) => Ok(ServiceKeyParts::Fwmark(m, true)),
            _ => Err(CliError::fail("-6 used before -f\n")),
        }
    }

    /// `-M`: a prefix length for an IPv6 service, an IPv4 mask otherwise.
    fn netmask_value(&self, v: &str) -> Result<u32, CliError> {
        let v6 = match self.svc {
            Some(ServiceKeyParts::Fwmark(_, ipv6)) => ipv6,
            Some(ServiceKeyParts::Inet(_, hp)) => hp.addr.is_ipv6(),
            None => false,
        };
        if !v6 {
            return names::inet_aton(v)
                .map(u32::from)
                .ok_or_else(|| CliError::fail("illegal virtual server persistent mask specified"));
        }
        let n = atoi(v);
        if !(1..=i64::from(IPV6_FULL_NETMASK)).contains(&n) {
            return Err(CliError::fail("illegal ipv6 netmask specified"));
        }
        Ok(n as u32)
    }

    /// Takes one option (after the command).
    fn take(&mut self, opt: Opt<Id>) -> Result<(), CliError> {
        let Opt { id, value, text } = opt;
        if let Some(bit) = option_bit(id) {
            self.set(bit)?;
        }
        let v = value.clone().unwrap_or_default();
        match id {
            Id::Tcp => self.svc = Some(inet_service(Protocol::Tcp, &v)?),
            Id::Udp => self.svc = Some(inet_service(Protocol::Udp, &v)?),
            Id::Sctp => self.svc = Some(inet_service(Protocol::Sctp, &v)?),
            Id::Fwmark => self.svc = Some(fwmark_service(&v)?),
            Id::Ipv6 => self.svc = Some(self.ipv6()?),
            Id::Scheduler => self.scheduler = Some(v),
            Id::Persistent => self.persistent = Some(persistence_timeout(value.as_deref())?),
            Id::Netmask => self.netmask = Some(self.netmask_value(&v)?),
            Id::B => self.sched_flags = Some(v),
            Id::Ops => self.ops = true,
            Id::Pe => self.pe = Some(v),
            Id::Server => {
                let hp = parse_hostport(&v, self.proto_name());
                let hp = hp.ok_or_else(|| {
                    CliError::fail("illegal real server address[:port] specified")
                })?;
                self.dest = Some(hp);
            }
            Id::Masq => self.forward = Some(Forward::Masq),
            Id::Ipip => self.forward = Some(Forward::Tunnel),
            Id::Gate => self.forward = Some(Forward::Route),
            Id::FullNat => self.forward = Some(Forward::FullNat),
            Id::Weight => self.weight = Some(number(&v, 0, MAX_WEIGHT, "weight")? as i32),
            Id::UThresh => self.u_threshold = number(&v, 0, MAX_THRESHOLD, "u_threshold")? as u32,
            Id::LThresh => self.l_threshold = number(&v, 0, MAX_THRESHOLD, "l_threshold")? as u32,
            Id::TunType => self.tun_type = tunnel_type(&v)?,
            Id::TunPort => self.tun_port = number(&v, 1, u16::MAX.into(), "tunnel port")? as u16,
            Id::TunNoCsum => self.tun_csum = TunCsum::NoCsum,
            Id::TunCsum => self.tun_csum = TunCsum::Csum,
            Id::TunRemCsum => self.tun_csum = TunCsum::RemCsum,
            Id::McastIfn => {
                self.mcast_ifn = Some(v.chars().take(rvs_config::MAX_IFNAME_LEN).collect());
            }
            Id::Syncid => self.syncid = number(&v, 0, u8::MAX.into(), "syncid")? as u8,
            Id::McastGroup => self.mcast_group = Some(parse_mcast_group(&v)?),
            Id::McastPort => {
                self.mcast_port = Some(number(&v, 1, u16::MAX.into(), "mcast-port")? as u16);
            }
            Id::McastTtl => {
                self.mcast_ttl = Some(number(&v, 1, u8::MAX.into(), "mcast-ttl")? as u8)
            }
            Id::SyncMaxlen => {
                self.sync_maxlen = Some(number(&v, 1, MAX_SYNC_MAXLEN, "sync-maxlen")? as u16);
            }
            Id::Laddr => self.laddr = Some(parse_laddr(&v)?),
            Id::Ifname => self.ifname = Some(v),
            Id::ProxyProtocol => self.proxy_protocol = proxy_protocol(&v)?,
            Id::Toa => self.toa = true,
            Id::SynProxy => self.syn_proxy = syn_proxy(&v)?,
            Id::Blklst => self.blklst = Some(acl_prefix(AclKind::Deny, &v)?),
            Id::Whtlst => self.whtlst = Some(acl_prefix(AclKind::Allow, &v)?),
            // The list flags (their bit is all they set) and `--sort` (does nothing).
            Id::Numeric
            | Id::Connection
            | Id::TimeoutOpt
            | Id::DaemonOpt
            | Id::Stats
            | Id::Rate
            | Id::Thresholds
            | Id::PersistConn
            | Id::NoSort
            | Id::Exact
            | Id::TunInfo
            | Id::Sort => {}
            Id::Cmd(_) | Id::SetCmd | Id::Help | Id::Version | Id::StartDaemon | Id::StopDaemon => {
                return Err(CliError::fail(format!("invalid option `{text}'")));
            }
        }
        Ok(())
    }

    /// `options conflicts in the list command`: the columns of `-c`/`--timeout`/`--daemon`
    /// and of `--stats`/`--rate`/`--thresholds` do not mix.
    fn list_conflicts(&self) -> Result<(), CliError> {
        let any = |opts: &[usize]| opts.iter().any(|o| self.has(*o));
        let other_listing = any(&[O_CONNECTION, O_TIMEOUT, O_DAEMON]);
        let counters = any(&[O_STATS, O_RATE, O_THRESHOLDS]);
        let settings = any(&[O_TIMEOUT, O_DAEMON]);
        if other_listing && counters || settings && self.has(O_PERSISTENTCONN) {
            return Err(CliError::fail("options conflicts in the list command"));
        }
        Ok(())
    }

    /// `-A`/`-E`.
    fn service_conf(&self, key: ServiceKey, sched_flags: u32) -> Result<ServiceConf, CliError> {
        if matches!(key, ServiceKey::Inet { port: 0, .. }) && self.persistent.is_none() {
            return Err(CliError::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        let udp_or_fwmark = match key {
            ServiceKey::Fwmark { .. } => true,
            ServiceKey::Inet { protocol, .. } => protocol == Protocol::Udp,
        };
        if self.ops && !udp_or_fwmark {
            return Err(CliError::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        let mut conf = ServiceConf::new(key);
        if let Some(s) = self.scheduler.clone().filter(|s| !s.is_empty()) {
            conf.scheduler = s;
        }
        conf.persistent = self.persistent;
        if let Some(m) = self.netmask {
            conf.netmask = m;
        }
        conf.sched_flags = sched_flags;
        conf.ops = self.ops;
        conf.pe = self.pe.clone();
        // As every option of -E: not given, back to the default (off).
        conf.proxy_protocol = self.proxy_protocol;
        conf.toa = self.toa;
        conf.syn_proxy = self.syn_proxy;
        Ok(conf)
    }

    /// The checks of `-a`/`-e`: address family and tunnel options against the method.
    fn check_dest(
        &self,
        key: &ServiceKey,
        hp: &HostPort,
        forward: Forward,
    ) -> Result<(), CliError> {
        // ipvsadm's rule, and DPVS's NAT64: an IPv6 service's FULLNAT servers may be IPv4.
        let nat64 = key.is_ipv6() && hp.addr.is_ipv4() && forward == Forward::FullNat;
        if hp.addr.is_ipv6() != key.is_ipv6() && forward != Forward::Tunnel && !nat64 {
            return Err(CliError::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_opts = TUNNEL_OPTIONS.iter().any(|o| self.has(*o));
        if tun_opts && forward != Forward::Tunnel {
            return Err(CliError::fail(
                "Tunnel options conflict with forward method",
            ));
        }
        if forward == Forward::Tunnel {
            tunnel_check(self.tun_type, self.options)?;
        }
        Ok(())
    }

    /// `-a`/`-e`/`-d`.
    fn dest_command(&self, cmd: Cmd, key: ServiceKey) -> Result<Command, CliError> {
        let hp = self
            .dest
            .ok_or_else(|| CliError::fail("You need to supply the 'real-server' option"))?;
        let forward = self.forward.unwrap_or(Forward::Route);
        if cmd != Cmd::DelDest {
            self.check_dest(&key, &hp, forward)?;
        }
        // Direct routing and tunnels cannot change the port; as ipvsadm, this is forced on
        // -a/-e only: -d removes the server of the port given (default: the service's).
        let port = match (forward, key) {
            (_, _) if cmd == Cmd::DelDest => hp.port.unwrap_or(key.port()),
            (Forward::Route | Forward::Tunnel, ServiceKey::Inet { port, .. }) => port,
            _ => hp.port.unwrap_or(key.port()),
        };
        if cmd == Cmd::DelDest {
            return Ok(Command::DelDest(key, hp.addr, port));
        }
        let mut d = DestConf::new(hp.addr, port);
        d.forward = forward;
        d.weight = self.weight.unwrap_or(d.weight);
        d.u_threshold = self.u_threshold;
        d.l_threshold = self.l_threshold;
        d.tunnel = Tunnel {
            tun_type: self.tun_type,
            port: self.tun_port,
            csum: self.tun_csum,
        };
        Ok(if cmd == Cmd::AddDest {
            Command::AddDest(key, d)
        } else {
            Command::EditDest(key, d)
        })
    }

    /// `-L`.
    fn list_opts(&self, service: Option<ServiceKey>) -> ListOpts {
        ListOpts {
            service,
            numeric: self.has(O_NUMERIC),
            connections: self.has(O_CONNECTION),
            timeout: self.has(O_TIMEOUT),
            daemon: self.has(O_DAEMON),
            stats: self.has(O_STATS),
            rate: self.has(O_RATE),
            thresholds: self.has(O_THRESHOLDS),
            persistent_conn: self.has(O_PERSISTENTCONN),
            nosort: self.has(O_NOSORT),
            exact: self.has(O_EXACT),
            tun_info: self.has(O_TUN_INFO),
        }
    }

    /// `--start-daemon`.
    fn daemon_conf(&self, state: SyncState) -> DaemonConf {
        DaemonConf {
            state,
            mcast_ifn: self
                .mcast_ifn
                .clone()
                .unwrap_or_else(|| rvs_config::DEFAULT_MCAST_INTERFACE.into()),
            syncid: self.syncid,
            sync_maxlen: self.sync_maxlen,
            mcast_group: self.mcast_group,
            mcast_port: self.mcast_port,
            mcast_ttl: self.mcast_ttl,
        }
    }

    /// `--add-laddr`/`--del-laddr`.
    fn laddr_command(&self, cmd: Cmd, key: ServiceKey) -> Result<Command, CliError> {
        let addr = self
            .laddr
            .ok_or_else(|| CliError::fail("You need to supply the 'laddr' option"))?;
        if cmd == Cmd::DelLaddr {
            return Ok(Command::DelLaddr(key, addr));
        }
        let ifname = self.ifname.clone();
        Ok(Command::AddLaddr(key, Laddr { addr, ifname }))
    }

    /// `--add-blklst`/`--del-blklst`/`--add-whtlst`/`--del-whtlst`.
    fn acl_command(&self, cmd: Cmd, key: Option<ServiceKey>) -> Result<Command, CliError> {
        let (kind, p) = match cmd {
            Cmd::AddBlklst | Cmd::DelBlklst => (AclKind::Deny, self.blklst),
            _ => (AclKind::Allow, self.whtlst),
        };
        let p = p.ok_or_else(|| {
            CliError::fail(format!("You need to supply the '{}' option", kind.option()))
        })?;
        Ok(match cmd {
            Cmd::AddBlklst | Cmd::AddWhtlst => Command::AddAcl(key, kind, p),
            _ => Command::DelAcl(key, kind, p),
        })
    }

    /// The command, once every check has passed.
    fn command(
        &self,
        cmd: Cmd,
        daemon_state: SyncState,
        timeouts: Timeouts,
        sched_flags: u32,
    ) -> Result<Command, CliError> {
        let key = self.key();
        Ok(match cmd {
            Cmd::Add => Command::AddService(self.service_conf(need_key(key)?, sched_flags)?),
            Cmd::Edit => Command::EditService(self.service_conf(need_key(key)?, sched_flags)?),
            Cmd::Del => Command::DelService(need_key(key)?),
            Cmd::Flush => Command::Flush,
            Cmd::Restore => Command::Restore,
            Cmd::Save => Command::Save {
                numeric: self.has(O_NUMERIC),
            },
            Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
                return self.dest_command(cmd, need_key(key)?)
            }
            Cmd::List => Command::List(self.list_opts(key)),
            Cmd::Zero => Command::Zero(key),
            Cmd::Timeout => Command::SetTimeouts(timeouts),
            Cmd::StartD => Command::StartDaemon(self.daemon_conf(daemon_state)),
            Cmd::StopD => Command::StopDaemon(daemon_state),
            Cmd::AddLaddr | Cmd::DelLaddr => return self.laddr_command(cmd, need_key(key)?),
            Cmd::GetLaddr => Command::GetLaddr(key),
            Cmd::AddBlklst | Cmd::DelBlklst | Cmd::AddWhtlst | Cmd::DelWhtlst => {
                return self.acl_command(cmd, key)
            }
            Cmd::GetBlklst => Command::GetAcl(key, AclKind::Deny),
            Cmd::GetWhtlst => Command::GetAcl(key, AclKind::Allow),
        })
    }
}

/// The words that were not options: `--set`'s three timeouts, nothing else.
fn leftover_timeouts(cmd: Cmd, words: Vec<String>) -> Result<Timeouts, CliError> {
    let mut words = words.into_iter();
    let mut timeouts = Timeouts::default();
    if cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (words.next(), words.next(), words.next()) else {
            return Err(CliError::fail("--set option requires 3 timeout values"));
        };
        let t = |s: &str| {
            string_to_number(s, 0, i64::from(MAX_TIMEOUT))
                .map(|v| v as u32)
                .ok_or_else(|| CliError::fail(format!("invalid timeout value `{s}' specified")))
        };
        timeouts = Timeouts {
            tcp: t(&a)?,
            tcp_fin: t(&b)?,
            udp: t(&c)?,
        };
    }
    match words.next() {
        Some(extra) => Err(CliError::fail(format!("unexpected argument {extra}"))),
        None => Ok(timeouts),
    }
}

/// Reads the options after command `cmd` and builds the command. `daemon_state` is the
/// value of `--start-daemon`/`--stop-daemon`.
pub(super) fn build(
    mut sc: Scanner<'_, Id>,
    cmd: Cmd,
    daemon_state: Option<SyncState>,
) -> Result<Command, CliError> {
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        // DPVS: `-b` of a real server is FULLNAT, not `--sched-flags`.
        sc.remap(Id::B, ArgKind::None, Id::FullNat);
    }
    let mut st = State::default();
    while let Some(opt) = sc.next_opt() {
        st.take(opt.map_err(CliError::popt)?)?;
    }
    let timeouts = leftover_timeouts(cmd, sc.take_leftovers())?;
    let sched_flags = match &st.sched_flags {
        Some(f) => parse_sched_flags(f, st.scheduler.as_deref().unwrap_or(""))?,
        None => 0,
    };
    generic_opt_check(cmd, st.options)?;
    if cmd == Cmd::List {
        st.list_conflicts()?;
    }
    let state = daemon_state.unwrap_or(SyncState::Master);
    st.command(cmd, state, timeouts, sched_flags)
}
