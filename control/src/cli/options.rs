//! ipvsadm's option and command tables: the popt option table, the option bits, and the
//! `commands_v_options` legality check with its exact messages.

use super::CliError;
use crate::ipvs::TunType;
use crate::popt::ArgKind::{None as N, Optional as Opt, Required as R};
use crate::popt::OptDef;

// Commands, in ipvsadm's CMD_* order (cmdnames[]), then the rvs/DPVS LIP commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartD,
    StopD,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    AddBlklst,
    DelBlklst,
    GetBlklst,
    AddWhtlst,
    DelWhtlst,
    GetWhtlst,
}

pub(super) const CMD_NAMES: [&str; 23] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
    "add-laddr",
    "del-laddr",
    "get-laddr",
    "add-blklst",
    "del-blklst",
    "get-blklst",
    "add-whtlst",
    "del-whtlst",
    "get-whtlst",
];

// Option bits, in ipvsadm's OPT_* order (optnames[]), then -z and -F, then rvs's
// --proxy-protocol and --toa, then DPVS's ACL entries -k and -2, then DPVS's SYN proxy
// -j.
pub(super) const OPT_NAMES: [&str; 41] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "laddr",
    "ifname",
    "proxy-protocol",
    "toa",
    "blklst",
    "whtlst",
    "synproxy",
];

pub(super) const O_NUMERIC: usize = 0;
pub(super) const O_CONNECTION: usize = 1;
pub(super) const O_SERVICE: usize = 2;
pub(super) const O_SCHEDULER: usize = 3;
pub(super) const O_PERSISTENT: usize = 4;
pub(super) const O_NETMASK: usize = 5;
pub(super) const O_SERVER: usize = 6;
pub(super) const O_FORWARD: usize = 7;
pub(super) const O_WEIGHT: usize = 8;
pub(super) const O_UTHRESHOLD: usize = 9;
pub(super) const O_LTHRESHOLD: usize = 10;
pub(super) const O_MCAST: usize = 11;
pub(super) const O_TIMEOUT: usize = 12;
pub(super) const O_DAEMON: usize = 13;
pub(super) const O_STATS: usize = 14;
pub(super) const O_RATE: usize = 15;
pub(super) const O_THRESHOLDS: usize = 16;
pub(super) const O_PERSISTENTCONN: usize = 17;
pub(super) const O_NOSORT: usize = 18;
pub(super) const O_SYNCID: usize = 19;
pub(super) const O_EXACT: usize = 20;
pub(super) const O_ONEPACKET: usize = 21;
pub(super) const O_PE: usize = 22;
pub(super) const O_SCHED_FLAGS: usize = 23;
pub(super) const O_MCAST_GROUP: usize = 24;
pub(super) const O_MCAST_PORT: usize = 25;
pub(super) const O_MCAST_TTL: usize = 26;
pub(super) const O_SYNC_MAXLEN: usize = 27;
pub(super) const O_TUN_INFO: usize = 28;
pub(super) const O_TUN_TYPE: usize = 29;
pub(super) const O_TUN_PORT: usize = 30;
pub(super) const O_TUN_NOCSUM: usize = 31;
pub(super) const O_TUN_CSUM: usize = 32;
pub(super) const O_TUN_REMCSUM: usize = 33;
pub(super) const O_LADDR: usize = 34;
pub(super) const O_IFNAME: usize = 35;
pub(super) const O_PROXY_PROTOCOL: usize = 36;
pub(super) const O_TOA: usize = 37;
pub(super) const O_BLKLST: usize = 38;
pub(super) const O_WHTLST: usize = 39;
pub(super) const O_SYNPROXY: usize = 40;

// commands_v_options of ipvsadm 1.31 ('+' required, 'x' illegal, '1' exclusive, ' '
// optional), extended with the laddr/ifname columns and the three LIP commands, then the
// proxy-protocol/toa columns (-A and -E only), then the blklst/whtlst columns and the
// six ACL commands (a service is optional: without one, the global list), then the
// synproxy column (-A and -E only).
pub(super) const CMD_V_OPT: [&[u8; 41]; 23] = [
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx  xx ",
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx  xx ",
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b" 11xxxxxxxxx11       xxxxxxx xxxxxxxxxxxx",
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxxxxx",
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+ xxxxx",
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+ xxxxx",
    b" x xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xx",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xx",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+x",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+x",
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// What an option means to ipvsadm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Id {
    Cmd(Cmd),
    SetCmd,
    StartDaemon,
    StopDaemon,
    Help,
    Version,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Ipv6,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Masq,
    Ipip,
    Gate,
    B,
    FullNat,
    Weight,
    UThresh,
    LThresh,
    Numeric,
    Connection,
    McastIfn,
    Syncid,
    TimeoutOpt,
    DaemonOpt,
    Stats,
    Rate,
    Thresholds,
    PersistConn,
    NoSort,
    Sort,
    Exact,
    Ops,
    Pe,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    Laddr,
    Ifname,
    ProxyProtocol,
    Toa,
    SynProxy,
    Blklst,
    Whtlst,
}

/// ipvsadm's `options[]` (popt table), then the rvs/DPVS LIP options, DPVS's
/// `--proxy-protocol` and rvs's `--toa`.
pub(super) const OPTIONS: &[OptDef<Id>] = &[
    OptDef::new("add-service", Some('A'), N, Id::Cmd(Cmd::Add)),
    OptDef::new("edit-service", Some('E'), N, Id::Cmd(Cmd::Edit)),
    OptDef::new("delete-service", Some('D'), N, Id::Cmd(Cmd::Del)),
    OptDef::new("clear", Some('C'), N, Id::Cmd(Cmd::Flush)),
    OptDef::new("list", Some('L'), N, Id::Cmd(Cmd::List)),
    OptDef::new("list", Some('l'), N, Id::Cmd(Cmd::List)),
    OptDef::new("zero", Some('Z'), N, Id::Cmd(Cmd::Zero)),
    OptDef::new("add-server", Some('a'), N, Id::Cmd(Cmd::AddDest)),
    OptDef::new("edit-server", Some('e'), N, Id::Cmd(Cmd::EditDest)),
    OptDef::new("delete-server", Some('d'), N, Id::Cmd(Cmd::DelDest)),
    OptDef::new("set", None, N, Id::SetCmd),
    OptDef::new("help", Some('h'), N, Id::Help),
    OptDef::new("version", Some('v'), N, Id::Version),
    OptDef::new("restore", Some('R'), N, Id::Cmd(Cmd::Restore)),
    OptDef::new("save", Some('S'), N, Id::Cmd(Cmd::Save)),
    OptDef::new("start-daemon", None, R, Id::StartDaemon),
    OptDef::new("stop-daemon", None, R, Id::StopDaemon),
    OptDef::new("add-laddr", Some('P'), N, Id::Cmd(Cmd::AddLaddr)),
    OptDef::new("del-laddr", Some('Q'), N, Id::Cmd(Cmd::DelLaddr)),
    OptDef::new("get-laddr", Some('G'), N, Id::Cmd(Cmd::GetLaddr)),
    OptDef::new("add-blklst", Some('U'), N, Id::Cmd(Cmd::AddBlklst)),
    OptDef::new("del-blklst", Some('V'), N, Id::Cmd(Cmd::DelBlklst)),
    OptDef::new("get-blklst", Some('B'), N, Id::Cmd(Cmd::GetBlklst)),
    OptDef::new("add-whtlst", Some('O'), N, Id::Cmd(Cmd::AddWhtlst)),
    OptDef::new("del-whtlst", Some('Y'), N, Id::Cmd(Cmd::DelWhtlst)),
    OptDef::new("get-whtlst", Some('W'), N, Id::Cmd(Cmd::GetWhtlst)),
    OptDef::new("tcp-service", Some('t'), R, Id::Tcp),
    OptDef::new("udp-service", Some('u'), R, Id::Udp),
    OptDef::new("sctp-service", None, R, Id::Sctp),
    OptDef::new("fwmark-service", Some('f'), R, Id::Fwmark),
    OptDef::new("ipv6", Some('6'), N, Id::Ipv6),
    OptDef::new("scheduler", Some('s'), R, Id::Scheduler),
    OptDef::new("persistent", Some('p'), Opt, Id::Persistent),
    OptDef::new("netmask", Some('M'), R, Id::Netmask),
    OptDef::new("real-server", Some('r'), R, Id::Server),
    OptDef::new("masquerading", Some('m'), N, Id::Masq),
    OptDef::new("ipip", Some('i'), N, Id::Ipip),
    OptDef::new("gatewaying", Some('g'), N, Id::Gate),
    OptDef::new("fullnat", None, N, Id::FullNat),
    OptDef::new("sched-flags", Some('b'), R, Id::B),
    OptDef::new("weight", Some('w'), R, Id::Weight),
    OptDef::new("u-threshold", Some('x'), R, Id::UThresh),
    OptDef::new("l-threshold", Some('y'), R, Id::LThresh),
    OptDef::new("numeric", Some('n'), N, Id::Numeric),
    OptDef::new("connection", Some('c'), N, Id::Connection),
    OptDef::new("mcast-interface", None, R, Id::McastIfn),
    OptDef::new("syncid", None, R, Id::Syncid),
    OptDef::new("timeout", None, N, Id::TimeoutOpt),
    OptDef::new("daemon", None, N, Id::DaemonOpt),
    OptDef::new("stats", None, N, Id::Stats),
    OptDef::new("rate", None, N, Id::Rate),
    OptDef::new("thresholds", None, N, Id::Thresholds),
    OptDef::new("persistent-conn", None, N, Id::PersistConn),
    OptDef::new("nosort", None, N, Id::NoSort),
    OptDef::new("sort", None, N, Id::Sort),
    OptDef::new("exact", Some('X'), N, Id::Exact),
    OptDef::new("ops", Some('o'), N, Id::Ops),
    OptDef::new("pe", None, R, Id::Pe),
    OptDef::new("mcast-group", None, R, Id::McastGroup),
    OptDef::new("mcast-port", None, R, Id::McastPort),
    OptDef::new("mcast-ttl", None, R, Id::McastTtl),
    OptDef::new("sync-maxlen", None, R, Id::SyncMaxlen),
    OptDef::new("tun-info", None, N, Id::TunInfo),
    OptDef::new("tun-type", None, R, Id::TunType),
    OptDef::new("tun-port", None, R, Id::TunPort),
    OptDef::new("tun-nocsum", None, N, Id::TunNoCsum),
    OptDef::new("tun-csum", None, N, Id::TunCsum),
    OptDef::new("tun-remcsum", None, N, Id::TunRemCsum),
    OptDef::new("laddr", Some('z'), R, Id::Laddr),
    OptDef::new("ifname", Some('F'), R, Id::Ifname),
    OptDef::new("blklst", Some('k'), R, Id::Blklst),
    OptDef::new("whtlst", Some('2'), R, Id::Whtlst),
    OptDef::new("proxy-protocol", None, R, Id::ProxyProtocol),
    OptDef::new("toa", None, N, Id::Toa),
    OptDef::new("synproxy", Some('j'), R, Id::SynProxy),
];

/// One legality row: for each option of `cols` that the user gave (`given`), `row` says
/// `+` required, `x` illegal, `1` exclusive with the other `1`s, ` ` optional. `what` ends
/// the message (`'add-server' command`, `'gue' tunnel type`).
fn check_row(row: &[u8], cols: &[usize], given: u64, what: &str) -> Result<(), CliError> {
    let mut last: Option<usize> = None;
    for (&rule, &opt) in row.iter().zip(cols) {
        let name = OPT_NAMES[opt];
        if given & (1 << opt) == 0 {
            if rule == b'+' {
                return Err(CliError::fail(format!(
                    "You need to supply the '{name}' option for the {what}"
                )));
            }
            continue;
        }
        match (rule, last) {
            (b'x', _) => {
                return Err(CliError::fail(format!(
                    "Illegal '{name}' option with the {what}"
                )))
            }
            (b'1', None) => last = Some(opt),
            (b'1', Some(l)) => {
                return Err(CliError::fail(format!(
                    "The option '{name}' conflicts with the '{}' option in the {what}",
                    OPT_NAMES[l]
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `generic_opt_check`: the options given (`given`, bits `O_*`) against `cmd`'s row.
pub(super) fn generic_opt_check(cmd: Cmd, given: u64) -> Result<(), CliError> {
    let cols: Vec<usize> = (0..OPT_NAMES.len()).collect();
    let what = format!("'{}' command", CMD_NAMES[cmd as usize]);
    check_row(CMD_V_OPT[cmd as usize], &cols, given, &what)
}

/// `tunnel_check`: the tunnel options given against the tunnel type's row.
pub(super) fn tunnel_check(tun_type: TunType, given: u64) -> Result<(), CliError> {
    // Columns tun-port, tun-nocsum, tun-csum, tun-remcsum per tunnel type.
    let (name, row): (&str, &[u8; 4]) = match tun_type {
        TunType::Ipip => ("ipip", b"xxxx"),
        TunType::Gue => ("gue", b"+111"),
        TunType::Gre => ("gre", b"x11x"),
    };
    let cols = [O_TUN_PORT, O_TUN_NOCSUM, O_TUN_CSUM, O_TUN_REMCSUM];
    check_row(row, &cols, given, &format!("'{name}' tunnel type"))
}

/// The option bit (`O_*`) an option sets, if it sets one (`-6`, `--sort` and the commands
/// do not).
pub(super) fn option_bit(id: Id) -> Option<usize> {
    Some(match id {
        Id::Tcp | Id::Udp | Id::Sctp | Id::Fwmark => O_SERVICE,
        Id::Scheduler => O_SCHEDULER,
        Id::Persistent => O_PERSISTENT,
        Id::Netmask => O_NETMASK,
        Id::Server => O_SERVER,
        Id::Masq | Id::Ipip | Id::Gate | Id::FullNat => O_FORWARD,
        Id::B => O_SCHED_FLAGS,
        Id::Weight => O_WEIGHT,
        Id::UThresh => O_UTHRESHOLD,
        Id::LThresh => O_LTHRESHOLD,
        Id::Numeric => O_NUMERIC,
        Id::Connection => O_CONNECTION,
        Id::McastIfn => O_MCAST,
        Id::Syncid => O_SYNCID,
        Id::TimeoutOpt => O_TIMEOUT,
        Id::DaemonOpt => O_DAEMON,
        Id::Stats => O_STATS,
        Id::Rate => O_RATE,
        Id::Thresholds => O_THRESHOLDS,
        Id::PersistConn => O_PERSISTENTCONN,
        Id::NoSort => O_NOSORT,
        Id::Exact => O_EXACT,
        Id::Ops => O_ONEPACKET,
        Id::Pe => O_PE,
        Id::McastGroup => O_MCAST_GROUP,
        Id::McastPort => O_MCAST_PORT,
        Id::McastTtl => O_MCAST_TTL,
        Id::SyncMaxlen => O_SYNC_MAXLEN,
        Id::TunInfo => O_TUN_INFO,
        Id::TunType => O_TUN_TYPE,
        Id::TunPort => O_TUN_PORT,
        Id::TunNoCsum => O_TUN_NOCSUM,
        Id::TunCsum => O_TUN_CSUM,
        Id::TunRemCsum => O_TUN_REMCSUM,
        Id::Laddr => O_LADDR,
        Id::Ifname => O_IFNAME,
        Id::Blklst => O_BLKLST,
        Id::Whtlst => O_WHTLST,
        Id::ProxyProtocol => O_PROXY_PROTOCOL,
        Id::Toa => O_TOA,
        Id::SynProxy => O_SYNPROXY,
        Id::Cmd(_)
        | Id::SetCmd
        | Id::StartDaemon
        | Id::StopDaemon
        | Id::Help
        | Id::Version
        | Id::Ipv6
        | Id::Sort => return None,
    })
}
