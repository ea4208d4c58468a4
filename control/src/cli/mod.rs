//! The ipvsadm 1.31 command-line grammar: argv to a [`Command`], or ipvsadm's exact
//! client-side error text and exit status.
//!
//! # Why not clap
//! ipvsadm parses with popt in a way clap cannot reproduce: the *first* option must be the
//! command (`ipvsadm -n -L` is a usage error, exit 255), a second command is
//! ``invalid option `-a'`` (exit 2), `-p` takes an optional value only when the next word
//! does not start with `-`, required values are taken even when they start with `-`
//! (`-w -1` is `illegal weight specified`), non-option words anywhere are collected and
//! rejected as `unexpected argument`, popt's own errors print `-Lnx: missing argument`
//! (exit 255), and the option/command legality table (`commands_v_options`) produces
//! messages in a fixed column order. A small popt-compatible scanner does all of that
//! exactly; clap would need a custom error layer over every one of these rules.
//!
//! # `-b`
//! Mainline `-b` is `--sched-flags` (takes a value) and DPVS `-b` is `--fullnat` (a
//! forwarding method). The command is always the first option, so rvs resolves `-b` by
//! command: with `-A`/`-E` (and everything else) it is `--sched-flags FLAGS`; with
//! `-a`/`-e` it is the FULLNAT forwarding method (long form `--fullnat`).
//!
//! # LIP pools (DPVS)
//! `--add-laddr|-P` and `--del-laddr|-Q` take a service and `-z|--laddr LIP`, optionally
//! `-F|--ifname IF`; `--get-laddr|-G` takes an optional service.
//!
//! # The client's address under FULLNAT
//! DPVS's `--proxy-protocol v1|v2|disable` and rvs's `--toa` belong to `-A`/`-E` (two
//! columns of their own in `commands_v_options`, illegal with every other command). As
//! every option of `-E`, one not given reverts to its default (off).

//!
//! # ACLs (DPVS)
//! `--add-blklst|-U` and `--del-blklst|-V` take `-k|--blklst PREFIX` (a denied prefix),
//! `--add-whtlst|-O` and `--del-whtlst|-Y` take `-2|--whtlst PREFIX` (an allowed one);
//! `--get-blklst|-B` and `--get-whtlst|-W` list them. Each takes a service (`-t`, `-u`,
//! `-f`): that service's list; without one, the global list. A prefix is `a.b.c.d[/len]`
//! with no bit set beyond its length.

//! # Layout
//! [`crate::popt`] scans argv (options, values, leftovers, popt's errors); `options` holds
//! ipvsadm's tables (options, commands, `commands_v_options`); `values` its C-style value
//! parsers; `builder` turns the options after the command into a [`Command`]; `usage` is
//! the `-h` text. This module picks the command (the first option) and owns the public
//! types.

mod builder;
mod options;
mod usage;
mod values;

use std::net::IpAddr;

use crate::ipvs::{
    AclKind, AclPrefix, DaemonConf, DestConf, Laddr, Op, ServiceConf, ServiceKey, SyncState,
    Timeouts,
};
use crate::popt::{PoptError, Scanner};
use options::{Cmd, Id, OPTIONS};

pub use usage::{usage, VERSION_LINE};
pub use values::{parse_hostport, HostPort};

/// `MAX_TIMEOUT` of ipvsadm (31 days).
pub use rvs_config::MAX_TIMEOUT;

/// What to list (`-L` and its options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `-t/-u/-f`: one service, printed without the version header.
    pub service: Option<ServiceKey>,
    /// `-n`.
    pub numeric: bool,
    /// `-c`.
    pub connections: bool,
    /// `--timeout`.
    pub timeout: bool,
    /// `--daemon`.
    pub daemon: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--exact`.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(ServiceConf),
    /// `-E`.
    EditService(ServiceConf),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Flush,
    /// `-R`.
    Restore,
    /// `-S [-n]`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-a`.
    AddDest(ServiceKey, DestConf),
    /// `-e`.
    EditDest(ServiceKey, DestConf),
    /// `-d`.
    DelDest(ServiceKey, IpAddr, u16),
    /// `-L`/`-l`.
    List(ListOpts),
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`.
    SetTimeouts(Timeouts),
    /// `--start-daemon`.
    StartDaemon(DaemonConf),
    /// `--stop-daemon`.
    StopDaemon(SyncState),
    /// `-h`.
    Help,
    /// `-v`.
    Version,
    /// `--add-laddr`/`-P`.
    AddLaddr(ServiceKey, Laddr),
    /// `--del-laddr`/`-Q`.
    DelLaddr(ServiceKey, IpAddr),
    /// `--get-laddr`/`-G`.
    GetLaddr(Option<ServiceKey>),
    /// `--add-blklst`/`-U -k` (`Deny`), `--add-whtlst`/`-O -2` (`Allow`): an entry of a
    /// service's ACL, or of the global one (`None`).
    AddAcl(Option<ServiceKey>, AclKind, AclPrefix),
    /// `--del-blklst`/`-V -k`, `--del-whtlst`/`-Y -2`.
    DelAcl(Option<ServiceKey>, AclKind, AclPrefix),
    /// `--get-blklst`/`-B`, `--get-whtlst`/`-W`: one service's list, or every list.
    GetAcl(Option<ServiceKey>, AclKind),
}

impl Command {
    /// The table change this command asks rvsd for, or `None` for commands that only
    /// read (`-L`, `-S`, `-G`, `-B`, `-W`), print (`-h`, `-v`) or read stdin (`-R`).
    pub fn into_op(self) -> Option<Op> {
        Some(match self {
            Command::AddService(c) => Op::AddService(c),
            Command::EditService(c) => Op::EditService(c),
            Command::DelService(k) => Op::DelService(k),
            Command::Flush => Op::Flush,
            Command::AddDest(k, d) => Op::AddDest(k, d),
            Command::EditDest(k, d) => Op::EditDest(k, d),
            Command::DelDest(k, a, p) => Op::DelDest(k, a, p),
            Command::Zero(k) => Op::Zero(k),
            Command::SetTimeouts(t) => Op::SetTimeouts(t),
            Command::StartDaemon(d) => Op::StartDaemon(d),
            Command::StopDaemon(s) => Op::StopDaemon(s),
            Command::AddLaddr(k, l) => Op::AddLaddr(k, l),
            Command::DelLaddr(k, a) => Op::DelLaddr(k, a),
            Command::AddAcl(k, kind, p) => Op::AddAcl(k, kind, p),
            Command::DelAcl(k, kind, p) => Op::DelAcl(k, kind, p),
            Command::GetAcl(..)
            | Command::Restore
            | Command::Save { .. }
            | Command::List(_)
            | Command::Help
            | Command::Version
            | Command::GetLaddr(_) => return None,
        })
    }
}

/// A client-side error: print `message` (plus a newline) to stderr and exit with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The text, without the trailing newline.
    pub message: String,
    /// The exit status (2 for `fail()`, 255 for usage and popt errors).
    pub code: i32,
}

/// The exit status of ipvsadm's `fail()`.
pub const EXIT_FAIL: i32 = 2;
/// The exit status of a usage or popt error.
pub const EXIT_USAGE: i32 = 255;

impl CliError {
    /// ipvsadm's `fail()`: `message`, exit 2.
    pub fn fail(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: EXIT_FAIL,
        }
    }

    /// A popt error (`-s: missing argument`), exit 255.
    pub fn popt(e: PoptError) -> Self {
        CliError {
            message: e.to_string(),
            code: EXIT_USAGE,
        }
    }
}

/// The usage hint (exit 255).
pub fn tryhelp(program: &str) -> CliError {
    CliError {
        message: format!("Try `{program} -h' or '{program} --help' for more information."),
        code: EXIT_USAGE,
    }
}

/// The program name when argv is empty.
const DEFAULT_PROGRAM: &str = "ipvsadm";

/// `--start-daemon`/`--stop-daemon`'s value.
fn daemon_state(id: Id, value: Option<&str>) -> Result<SyncState, CliError> {
    match value.unwrap_or_default() {
        "master" => Ok(SyncState::Master),
        "backup" => Ok(SyncState::Backup),
        _ if id == Id::StartDaemon => {
            Err(CliError::fail("illegal start-daemon parameter specified"))
        }
        _ => Err(CliError::fail("illegal start_daemon specified")),
    }
}

/// Parses argv (`argv[0]` is the program name, used in the usage messages).
///
/// `reading_stdin` is true for lines of `-R` (where `-R` itself is a usage error).
pub fn parse(argv: &[String], reading_stdin: bool) -> Result<Command, CliError> {
    let program = argv.first().map(String::as_str).unwrap_or(DEFAULT_PROGRAM);
    let args = argv.get(1..).unwrap_or(&[]);
    let mut sc = Scanner::new(OPTIONS, args);

    // The first option must be the command.
    let Some(Ok(first)) = sc.next_opt() else {
        return Err(tryhelp(program));
    };
    let (cmd, state) = match first.id {
        Id::Cmd(Cmd::Restore) if reading_stdin => return Err(tryhelp(program)),
        Id::Cmd(c) => (c, None),
        Id::SetCmd => (Cmd::Timeout, None),
        Id::Help => return Ok(Command::Help),
        Id::Version => return Ok(Command::Version),
        Id::StartDaemon => (
            Cmd::StartD,
            Some(daemon_state(first.id, first.value.as_deref())?),
        ),
        Id::StopDaemon => (
            Cmd::StopD,
            Some(daemon_state(first.id, first.value.as_deref())?),
        ),
        _ => return Err(tryhelp(program)),
    };
    builder::build(sc, cmd, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Forward, Protocol, SCHED_FLAG_2};

    fn p(args: &str) -> Result<Command, CliError> {
        let mut v = vec!["ipvsadm".to_string()];
        v.extend(args.split_whitespace().map(str::to_string));
        parse(&v, false)
    }

    fn e(args: &str) -> (String, i32) {
        let err = p(args).unwrap_err();
        (err.message, err.code)
    }

    fn key(s: &str) -> ServiceKey {
        let (a, port) = s.rsplit_once(':').unwrap();
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port: port.parse().unwrap(),
        }
    }

    #[test]
    fn seed_commands_parse() {
        let c = p("-A -t 192.168.199.146:80 -s rr").unwrap();
        let Command::AddService(conf) = c else {
            panic!()
        };
        assert_eq!(conf.key, key("192.168.199.146:80"));
        assert_eq!(conf.scheduler, "rr");
        let Command::AddDest(k, d) = p("-a -t 192.168.199.157:80 -r 192.168.192.130 -m").unwrap()
        else {
            panic!()
        };
        assert_eq!(k, key("192.168.199.157:80"));
        assert_eq!((d.port, d.forward, d.weight), (80, Forward::Masq, 1));
        // -g forces the service port.
        let Command::AddDest(_, d) = p("-a -t 1.2.3.4:80 -r 10.0.0.1:8080 -g -w 2").unwrap() else {
            panic!()
        };
        assert_eq!((d.port, d.weight), (80, 2));
        // -d removes the server with the port given, whatever the server's forwarding:
        // ipvsadm forces the service port on -a/-e only (ldirectord removes NAT servers of
        // another port this way).
        let Command::DelDest(_, a, port) = p("-d -t 1.2.3.4:80 -r 10.0.0.1:8080").unwrap() else {
            panic!()
        };
        assert_eq!((a.to_string(), port), ("10.0.0.1".to_string(), 8080));
        let Command::DelDest(_, _, port) = p("-d -t 1.2.3.4:80 -r 10.0.0.1").unwrap() else {
            panic!()
        };
        assert_eq!(port, 80);
        // -b on -a is FULLNAT; on -A it is sched-flags.
        let Command::AddDest(_, d) = p("-a -t 1.2.3.4:80 -r 10.0.0.1:8080 -b").unwrap() else {
            panic!()
        };
        assert_eq!((d.port, d.forward), (8080, Forward::FullNat));
        // NAT64 (as DPVS): an IPv6 service's FULLNAT server may be IPv4.
        let Command::AddDest(_, d) = p("-a -t [2001:db8::1]:80 -r 10.0.0.1:8080 -b").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (d.addr.to_string(), d.forward),
            ("10.0.0.1".into(), Forward::FullNat)
        );
        let Command::AddService(c) = p("-A -f 1 -s sh -p 600 -M 255.255.255.0 -b sh-port").unwrap()
        else {
            panic!()
        };
        assert_eq!(c.sched_flags, SCHED_FLAG_2);
        assert_eq!(c.netmask, 0xffffff00);
        assert_eq!(c.persistent, Some(600));
        let Command::AddService(c) = p("-A -t 1.2.3.4:0 -p").unwrap() else {
            panic!()
        };
        assert_eq!(c.persistent, Some(360));
        assert!(matches!(p("-Ln").unwrap(), Command::List(l) if l.numeric));
        assert!(matches!(p("-lnc").unwrap(), Command::List(l) if l.numeric && l.connections));
        assert!(matches!(p("-Sn").unwrap(), Command::Save { numeric: true }));
        assert_eq!(
            p("--set 10 20 30").unwrap(),
            Command::SetTimeouts(Timeouts {
                tcp: 10,
                tcp_fin: 20,
                udp: 30
            })
        );
        assert!(
            matches!(p("-At1.2.3.4:80 -p600").unwrap(), Command::AddService(c) if c.persistent == Some(600))
        );
        assert!(
            matches!(p("-A --tcp-service=1.2.3.4:http --persistent=5").unwrap(),
            Command::AddService(c) if c.key == key("1.2.3.4:80"))
        );
        let Command::AddLaddr(k, l) =
            p("--add-laddr -z 192.168.100.200 -t 10.0.0.100:80 -F dpdk0").unwrap()
        else {
            panic!()
        };
        assert_eq!(k, key("10.0.0.100:80"));
        assert_eq!(l.ifname.as_deref(), Some("dpdk0"));
        assert_eq!(p("-G").unwrap(), Command::GetLaddr(None));
    }

    #[test]
    fn errors_are_ipvsadm_texts() {
        // Every expectation below was checked against the real ipvsadm 1.31 binary.
        let cases: &[(&str, &str, i32)] = &[
            ("-A -t 1.2.3.4", "Zero port specified for non-persistent service", 2),
            ("-A -t 1.2.3.4:nosuch", "illegal virtual server address[:port] specified", 2),
            ("-A -t 1.2.3.400:80", "illegal virtual server address[:port] specified", 2),
            ("-A -t 1.2.3.4:70000", "illegal virtual server address[:port] specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w -1", "illegal weight specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w abc", "illegal weight specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 70000", "illegal weight specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 -x -1", "illegal u_threshold specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 -y abc", "illegal l_threshold specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8:abc", "illegal real server address[:port] specified", 2),
            ("-a -t 1.2.3.4:80", "You need to supply the 'real-server' option for the 'add-server' command", 2),
            ("-a -r 1.1.1.1", "You need to supply the 'service-address' option for the 'add-server' command", 2),
            ("-A -t 1.2.3.4:80 -p 0", "invalid timeout value `0' specified", 2),
            ("-A -t 1.2.3.4:80 -p 2678401", "invalid timeout value `2678401' specified", 2),
            ("-A -f 0", "invalid fwmark value `0' specified", 2),
            ("-A -f 4294967296", "invalid fwmark value `4294967296' specified", 2),
            ("-A -t 1.2.3.4:80 -6", "-6 used before -f\n", 2),
            ("-A -t 1.2.3.4:80 -w 3", "Illegal 'weight' option with the 'add-service' command", 2),
            ("-A -t 1.2.3.4:80 -u 1.2.3.4:80", "multiple 'service-address' options specified", 2),
            ("-A -E", "invalid option `-E'", 2),
            ("-L -A", "invalid option `-A'", 2),
            ("-Ln -c --stats", "options conflicts in the list command", 2),
            ("-L --timeout --persistent-conn", "options conflicts in the list command", 2),
            ("-L -c --timeout", "The option 'timeout' conflicts with the 'connection' option in the 'list' command", 2),
            ("-L -c --timeout --stats", "The option 'timeout' conflicts with the 'connection' option in the 'list' command", 2),
            ("-L --daemon --timeout", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command", 2),
            ("-S -c", "Illegal 'connection' option with the 'save' command", 2),
            ("--set 1 2", "--set option requires 3 timeout values", 2),
            ("--set 1 2 3 4", "unexpected argument 4", 2),
            ("--set a b c", "invalid timeout value `a' specified", 2),
            ("--set 1 2 -1", "-1: unknown option", 255),
            ("-C foo", "unexpected argument foo", 2),
            ("-x", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
            ("--bogus", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
            ("-n -L", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
            ("-A -t 1.2.3.4:80 --bogus", "--bogus: unknown option", 255),
            ("-A -t 1.2.3.4:80 -s", "-s: missing argument", 255),
            ("-Lnx", "-Lnx: missing argument", 255),
            ("-A -t 1.2.3.4:80 -o", "One-Packet Scheduling is only for UDP virtual services", 2),
            ("-A -t 1.2.3.4:80 -s rr -s wrr", "multiple 'scheduler' options specified", 2),
            ("-A -t 1.2.3.4:80 -b foo", "invalid scheduler flag `foo'", 2),
            ("-A -t 1.2.3.4:80 -b sh-port,sh-fallback", "incompatible scheduler flag `sh-port'", 2),
            ("-A -t 1.2.3.4:80 -s mh -b sh-port", "incompatible scheduler flag `sh-port'", 2),
            ("-A -t 1.2.3.4:0 -b foo", "invalid scheduler flag `foo'", 2),
            ("-A -t 1.2.3.4:80 -b foo extra", "unexpected argument extra", 2),
            ("-A -t 1.2.3.4:80 -b -s rr", "unexpected argument rr", 2),
            ("-A -t 1.2.3.4:0 -w 3", "Illegal 'weight' option with the 'add-service' command", 2),
            ("-D -t 1.2.3.4:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 -m -g", "multiple 'forwarding-method' options specified", 2),
            ("-a -t 1.2.3.4:80 -r 5.6.7.8 –g", "unexpected argument –g", 2),
            ("-a -t 1.2.3.4:80 -r [::1]:80", "Different address family is allowed only for tunneling servers", 2),
            ("-a -t 1.2.3.4:80 -r [::1]:80 -b", "Different address family is allowed only for tunneling servers", 2),
            ("-a -t [::1]:80 -r 1.2.3.4:80 -m", "Different address family is allowed only for tunneling servers", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 --tun-type gue", "Tunnel options conflict with forward method", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type foo", "illegal tunnel type specified", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-port 0", "illegal tunnel port specified", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-port 5", "Illegal 'tun-port' option with the 'ipip' tunnel type", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gre --tun-remcsum", "Illegal 'tun-remcsum' option with the 'gre' tunnel type", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue --tun-port 5 --tun-csum --tun-remcsum", "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type", 2),
            ("--start-daemon foo", "illegal start-daemon parameter specified", 2),
            ("--stop-daemon foo", "illegal start_daemon specified", 2),
            ("--stop-daemon", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
            ("--start-daemon master --syncid 256", "illegal syncid specified", 2),
            ("--start-daemon master --mcast-group 1.2.3", "invalid IPv4 mcast-group `1.2.3'", 2),
            ("--start-daemon master --mcast-port 0", "illegal mcast-port specified", 2),
            ("--start-daemon master --sync-maxlen 0", "illegal sync-maxlen specified", 2),
            ("--start-daemon master --mcast-ttl 0", "illegal mcast-ttl specified", 2),
            ("--stop-daemon master --mcast-interface eth1", "Illegal 'mcast-interface' option with the 'stop-daemon' command", 2),
            ("--start-daemon master -n", "Illegal 'numeric' option with the 'start-daemon' command", 2),
            ("-Z -t 1.2.3.4:80 -n", "Illegal 'numeric' option with the 'zero' command", 2),
            ("-R -n", "Illegal 'numeric' option with the 'restore' command", 2),
            ("-A -t 1.2.3.4:0 -p 5 6", "unexpected argument 6", 2),
            ("-A -t 1.2.3.4:80 -p -1", "-1: unknown option", 255),
            ("-A -t 1.2.3.4:80 -- -s", "unexpected argument -s", 2),
            ("-L foo", "unexpected argument foo", 2),
            ("-A -f 1 -6 -M 130", "illegal ipv6 netmask specified", 2),
            ("-d -t 1.2.3.4:80 -r 1.1.1.1 -w 3", "Illegal 'weight' option with the 'delete-server' command", 2),
            ("-A -t 1.2.3.4:80 -b", "-b: missing argument", 255),
            ("-A -h", "invalid option `-h'", 2),
            ("-c", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255),
            ("-L -t 1.2.3.4:80 -c", "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2),
            ("-Lt 1.2.3.4:80 --daemon", "The option 'daemon' conflicts with the 'service-address' option in the 'list' command", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1 -w 1 -w 2", "multiple 'weight' options specified", 2),
            ("-A -t 1.2.3.4:80 -b flag-1,flag-2 -b flag-3", "multiple 'sched-flags' options specified", 2),
            ("-a -t 1.2.3.4:80 -r 1.1.1.1:", "illegal real server address[:port] specified", 2),
            ("-A -t :80", "illegal virtual server address[:port] specified", 2),
            ("-A -f 0x10", "invalid fwmark value `0x10' specified", 2),
            ("-A -t 1.2.3.4:80 -p 0x10", "invalid timeout value `0x10' specified", 2),
        ];
        for (args, msg, code) in cases {
            assert_eq!(e(args), (msg.to_string(), *code), "ipvsadm {args}");
        }
        // Accepted by ipvsadm 1.31 too.
        for ok in [
            "-A -t 1234:80",
            "-A -t ::1:80 -p",
            "-A -t [::1]:80",
            "-A -f 4294967295",
            "-A -t 1.2.3.4:80 -M 1.2.3",
            "-A -u 1.2.3.4:0 -p 10 -o",
            "-a -t 1.2.3.4:80 -r 1.1.1.1:http",
            "-A -t 1.2.3.4:80 -s sh -b sh-port,sh-fallback",
            "-A -t 1.2.3.4:80 -b sh-port -s sh",
            "-A -t 1.2.3.4:80 -s rr -b ,flag-2",
            "--start-daemon backup --mcast-group ff02::1",
            "-L --nosort --sort --exact -n",
            "-A -f 1 -6 -6",
            "-Z",
            "-C",
            "-h -A",
        ] {
            assert!(p(ok).is_ok(), "ipvsadm {ok}: {:?}", p(ok));
        }
        assert_eq!(
            parse(
                &[
                    "ipvsadm".into(),
                    "-a".into(),
                    "-t".into(),
                    "1.2.3.4:80".into(),
                    "-r".into(),
                    "1.1.1.1".into(),
                    "-w".into(),
                    " 5".into()
                ],
                false
            )
            .map(|c| matches!(c, Command::AddDest(_, d) if d.weight == 5)),
            Ok(true)
        );
    }

    #[test]
    fn synproxy_on_add_and_edit_service() {
        use crate::ipvs::SynProxy;
        let conf = |args: &str| match p(args).unwrap() {
            Command::AddService(c) | Command::EditService(c) => c.syn_proxy,
            other => panic!("{other:?}"),
        };
        assert_eq!(conf("-A -t 1.2.3.4:80"), SynProxy::Disable);
        assert_eq!(conf("-A -t 1.2.3.4:80 -j enable"), SynProxy::Enable);
        assert_eq!(conf("-E -t 1.2.3.4:80 --synproxy auto"), SynProxy::Auto);
        assert_eq!(conf("-E -t 1.2.3.4:80 -j DISABLE"), SynProxy::Disable);
        let cases: &[(&str, &str, i32)] = &[
            (
                "-A -t 1.2.3.4:80 -j on",
                "invalid synproxy value `on' specified",
                2,
            ),
            (
                "-A -t 1.2.3.4:80 -j enable -j auto",
                "multiple 'synproxy' options specified",
                2,
            ),
            (
                "-a -t 1.2.3.4:80 -r 10.0.0.1 -m -j enable",
                "Illegal 'synproxy' option with the 'add-server' command",
                2,
            ),
            (
                "-L -j enable",
                "Illegal 'synproxy' option with the 'list' command",
                2,
            ),
        ];
        for (args, msg, code) in cases {
            assert_eq!(e(args), (msg.to_string(), *code), "rvsadm {args}");
        }
    }

    #[test]
    fn proxy_protocol_and_toa_on_add_and_edit_service() {
        use crate::ipvs::ProxyProtocol;
        let conf = |args: &str| match p(args).unwrap() {
            Command::AddService(c) | Command::EditService(c) => (c.proxy_protocol, c.toa),
            other => panic!("{other:?}"),
        };
        assert_eq!(conf("-A -t 1.2.3.4:80"), (ProxyProtocol::Disable, false));
        assert_eq!(
            conf("-A -t 1.2.3.4:80 -s rr --proxy-protocol v2 --toa"),
            (ProxyProtocol::V2, true)
        );
        assert_eq!(
            conf("-E -t 1.2.3.4:80 --proxy-protocol=v1"),
            (ProxyProtocol::V1, false)
        );
        assert_eq!(
            conf("-E -t 1.2.3.4:80 --toa"),
            (ProxyProtocol::Disable, true)
        );
        assert_eq!(
            conf("-A -u 1.2.3.4:53 --proxy-protocol disable"),
            (ProxyProtocol::Disable, false)
        );
        // DPVS compares with strcasecmp.
        assert_eq!(
            conf("-A -f 1 --proxy-protocol V2"),
            (ProxyProtocol::V2, false)
        );
        let cases: &[(&str, &str, i32)] = &[
            ("-A -t 1.2.3.4:80 --proxy-protocol v3", "invalid proxy-protocol value `v3' specified", 2),
            ("-A -t 1.2.3.4:80 --proxy-protocol on", "invalid proxy-protocol value `on' specified", 2),
            ("-E -t 1.2.3.4:80 --proxy-protocol v1-insecure", "proxy-protocol `v1-insecure' is not supported: rvs always puts its own header first", 2),
            ("-A -t 1.2.3.4:80 --proxy-protocol v2-insecure", "proxy-protocol `v2-insecure' is not supported: rvs always puts its own header first", 2),
            ("-A -t 1.2.3.4:80 --proxy-protocol", "--proxy-protocol: missing argument", 255),
            ("-A -t 1.2.3.4:80 --toa --toa", "multiple 'toa' options specified", 2),
            ("-A -t 1.2.3.4:80 --proxy-protocol v1 --proxy-protocol v2", "multiple 'proxy-protocol' options specified", 2),
            ("-a -t 1.2.3.4:80 -r 10.0.0.1 -b --toa", "Illegal 'toa' option with the 'add-server' command", 2),
            ("-e -t 1.2.3.4:80 -r 10.0.0.1 --proxy-protocol v2", "Illegal 'proxy-protocol' option with the 'edit-server' command", 2),
            ("-L --toa", "Illegal 'toa' option with the 'list' command", 2),
            ("-D -t 1.2.3.4:80 --proxy-protocol v2", "Illegal 'proxy-protocol' option with the 'delete-service' command", 2),
            ("-P -t 1.2.3.4:80 -z 10.0.0.200 --toa", "Illegal 'toa' option with the 'add-laddr' command", 2),
        ];
        for (args, msg, code) in cases {
            assert_eq!(e(args), (msg.to_string(), *code), "rvsadm {args}");
        }
    }

    #[test]
    fn restore_lines_cannot_restore() {
        let v: Vec<String> = ["ipvsadm", "-R"].iter().map(|s| s.to_string()).collect();
        assert_eq!(parse(&v, true).unwrap_err().code, 255);
        assert_eq!(parse(&v, false).unwrap(), Command::Restore);
    }
}
