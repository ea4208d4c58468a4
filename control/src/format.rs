//! ipvsadm's output, byte for byte: `-L` in all its variants, `-c`, `--timeout`,
//! `--daemon`, `-S`, and DPVS's `-G` LIP listing.
//!
//! Sorting follows libipvs exactly, quirks included: its comparators subtract unsigned
//! addresses into an `int` (so addresses more than 2^31 apart compare "backwards", e.g.
//! `192.168.1.100` lists before `10.0.0.1`), and glibc's `qsort` is a top-down merge sort,
//! reproduced by [`glibc_msort`] so that the comparator's inconsistencies order entries
//! the same way.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::backend::{ConnRow, Rates, Stats};
use crate::cli::ListOpts;
use crate::ipvs::{
    AclKind, AclLists, Forward, ServiceKey, SyncDaemon, Timeouts, TunCsum, TunType,
    IPV6_FULL_NETMASK, SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3,
};
use crate::names::addrport;
use crate::proto::{AclsView, DestView, Info, ServiceView};

/// `IP Virtual Server version 1.2.1 (size=4096)`.
pub fn header(info: &Info) -> String {
    format!(
        "IP Virtual Server version {}.{}.{} (size={})\n",
        (info.version >> 16) & 0xff,
        (info.version >> 8) & 0xff,
        info.version & 0xff,
        info.conn_tab_size
    )
}

/// `print_largenum`: 9 columns, K/M/G/T above 10^8, or exact with `--exact`.
pub fn largenum(n: u64, exact: bool) -> String {
    if exact {
        let len = n.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        return format!("{n:>w$}");
    }
    if n < 100_000_000 {
        format!("{n:>9}")
    } else if n < 1_000_000_000 {
        format!("{:>8}K", n / 1000)
    } else if n < 100_000_000_000 {
        format!("{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        format!("{:>8}G", n / 1_000_000_000)
    } else {
        format!("{:>8}T", n / 1_000_000_000_000)
    }
}

/// glibc 2.36 `qsort` (`msort_with_tmp`): top-down merge sort, left half `n/2`.
pub fn glibc_msort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_msort(&mut v[..n1], cmp);
    glibc_msort(&mut v[n1..], cmp);
    let mut tmp = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            tmp.push(v[i].clone());
            i += 1;
        } else {
            tmp.push(v[j].clone());
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    let k = tmp.len();
    v[..k].clone_from_slice(&tmp);
}

fn af(ipv6: bool) -> i32 {
    if ipv6 {
        10
    } else {
        2
    }
}

fn words(a: &IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v) => [u32::from(*v), 0, 0, 0],
        IpAddr::V6(v) => {
            let o = v.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

fn cmp_addr(a: &IpAddr, b: &IpAddr) -> i32 {
    let (x, y) = (words(a), words(b));
    for i in 0..4 {
        let r = x[i].wrapping_sub(y[i]) as i32;
        if r != 0 {
            return r;
        }
    }
    0
}

fn svc_parts(k: &ServiceKey) -> (u32, bool, i32, IpAddr, u16) {
    match k {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (0, addr.is_ipv6(), protocol.number() as i32, *addr, *port),
        ServiceKey::Fwmark { mark, ipv6 } => (
            *mark,
            *ipv6,
            0,
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            0,
        ),
    }
}

/// libipvs `ipvs_cmp_services`.
pub fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let (m1, v61, p1, a1, port1) = svc_parts(a);
    let (m2, v62, p2, a2, port2) = svc_parts(b);
    let r = m1.wrapping_sub(m2) as i32;
    if r != 0 {
        return r;
    }
    let r = af(v61) - af(v62);
    if r != 0 {
        return r;
    }
    let r = p1 - p2;
    if r != 0 {
        return r;
    }
    let r = cmp_addr(&a1, &a2);
    if r != 0 {
        return r;
    }
    port1 as i32 - port2 as i32
}

/// libipvs `ipvs_cmp_dests`.
pub fn cmp_dests(a: &DestView, b: &DestView) -> i32 {
    let r = af(a.conf.addr.is_ipv6()) - af(b.conf.addr.is_ipv6());
    if r != 0 {
        return r;
    }
    let r = cmp_addr(&a.conf.addr, &b.conf.addr);
    if r != 0 {
        return r;
    }
    a.conf.port as i32 - b.conf.port as i32
}

/// Services in listing order (sorted unless `nosort`), each with its dests sorted too.
pub fn ordered(services: &[ServiceView], nosort: bool) -> Vec<ServiceView> {
    let mut v = services.to_vec();
    if !nosort {
        glibc_msort(&mut v, &|a: &ServiceView, b: &ServiceView| {
            cmp_services(&a.conf.key, &b.conf.key)
        });
        for s in &mut v {
            glibc_msort(&mut s.dests, &cmp_dests);
        }
    }
    v
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Rule,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
}

fn mode(o: &ListOpts) -> Mode {
    if o.stats {
        Mode::Stats
    } else if o.rate {
        Mode::Rate
    } else if o.thresholds {
        Mode::Thresholds
    } else if o.persistent_conn {
        Mode::PersistentConn
    } else if o.tun_info {
        Mode::TunInfo
    } else {
        Mode::Plain
    }
}

fn title(m: Mode) -> String {
    match m {
        Mode::Rule => String::new(),
        Mode::Stats => format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Mode::Rate => format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Mode::Thresholds => format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Mode::PersistentConn => format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        Mode::TunInfo => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_string(),
        Mode::Plain => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_string(),
    }
}

/// The scheduler flag names as ipvsadm prints them (`sh-port`, `flag-1,flag-2`, ...).
pub fn sched_flags_str(sched: &str, flags: u32) -> String {
    let mut v = Vec::new();
    let (f1, f2) = match sched {
        "sh" => ("sh-fallback", "sh-port"),
        "mh" => ("mh-fallback", "mh-port"),
        _ => ("flag-1", "flag-2"),
    };
    if flags & SCHED_FLAG_1 != 0 {
        v.push(f1);
    }
    if flags & SCHED_FLAG_2 != 0 {
        v.push(f2);
    }
    if flags & SCHED_FLAG_3 != 0 {
        v.push("flag-3");
    }
    v.join(",")
}

fn netmask_str(key: &ServiceKey, mask: u32) -> Option<String> {
    if key.is_ipv6() {
        (mask != IPV6_FULL_NETMASK).then(|| mask.to_string())
    } else {
        (mask != u32::MAX).then(|| std::net::Ipv4Addr::from(mask).to_string())
    }
}

/// A service named as `ipvsadm -Ln` prints it (`TCP  10.10.0.100:80`, `FWM  1`), for
/// logs and reload reports.
pub fn service_label(key: &ServiceKey) -> String {
    svc_name(key, false, true)
}

/// A real server of `key` named as `ipvsadm -Ln` prints it (`10.20.0.11:8080`,
/// `[2001:db8::11]:80`).
pub fn server_label(key: &ServiceKey, addr: &IpAddr, port: u16) -> String {
    addrport(addr, port, proto_name(key), true)
}

fn svc_name(key: &ServiceKey, rule: bool, numeric: bool) -> String {
    match key {
        ServiceKey::Fwmark { mark, ipv6 } => {
            let mut s = if rule {
                format!("-f {}", *mark as i32)
            } else {
                format!("FWM  {}", *mark as i32)
            };
            if *ipv6 {
                s.push_str(if rule { " -6" } else { " IPv6" });
            }
            s
        }
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let v = addrport(addr, *port, protocol.services_name(), numeric);
            if rule {
                format!("{} {v}", protocol.option())
            } else {
                format!("{:<4} {v}", protocol.label())
            }
        }
    }
}

fn proto_name(key: &ServiceKey) -> &'static str {
    match key {
        ServiceKey::Inet { protocol, .. } => protocol.services_name(),
        ServiceKey::Fwmark { .. } => "tcp",
    }
}

fn tun_info(d: &DestView) -> String {
    if d.conf.forward != Forward::Tunnel {
        return "n/a".into();
    }
    let cs = match d.conf.tunnel.csum {
        TunCsum::NoCsum => "-c",
        TunCsum::Csum => "+c",
        TunCsum::RemCsum => "r+c",
    };
    match d.conf.tunnel.tun_type {
        TunType::Ipip => "ipip".into(),
        TunType::Gue => format!("gue:{}:{cs}", d.conf.tunnel.port),
        TunType::Gre => format!("gre:{cs}"),
    }
}

/// The five stats columns of `--stats`.
fn push_stats(out: &mut String, st: &Stats, exact: bool) {
    for n in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
        out.push_str(&largenum(n, exact));
    }
}

/// The five rate columns of `--rate`.
fn push_rates(out: &mut String, r: &Rates, exact: bool) {
    let _ = write!(out, " {:>8} {:>8} {:>8}", r.cps, r.inpps, r.outpps);
    out.push_str(&largenum(r.inbps, exact));
    out.push_str(&largenum(r.outbps, exact));
}

/// The service's own line (`name` is how the service is printed).
fn service_line(out: &mut String, s: &ServiceView, m: Mode, name: &str, exact: bool) {
    let key = &s.conf.key;
    let c = &s.conf;
    let flags = sched_flags_str(&c.scheduler, c.sched_flags);
    match m {
        Mode::Rule => {
            let _ = write!(out, "-A {name} -s {}", c.scheduler);
            if let Some(t) = c.persistent {
                let _ = write!(out, " -p {t}");
                if let Some(mask) = netmask_str(key, c.netmask) {
                    let _ = write!(out, " -M {mask}");
                }
                if let Some(pe) = &c.pe {
                    let _ = write!(out, " --pe {pe}");
                }
            }
            if c.ops {
                out.push_str(" -o");
            }
            if !flags.is_empty() {
                let _ = write!(out, " -b {flags}");
            }
            if c.proxy_protocol.is_on() {
                let _ = write!(out, " --proxy-protocol {}", c.proxy_protocol.name());
            }
            if c.toa {
                out.push_str(" --toa");
            }
            if c.syn_proxy.is_on() {
                let _ = write!(out, " -j {}", c.syn_proxy.name());
            }
        }
        Mode::Stats => {
            let _ = write!(out, "{name:<33}");
            push_stats(out, &s.stats, exact);
        }
        Mode::Rate => {
            let _ = write!(out, "{name:<33}");
            push_rates(out, &s.rates, exact);
        }
        _ => {
            let _ = write!(out, "{name} {}", c.scheduler);
            if !flags.is_empty() {
                let _ = write!(out, " ({flags})");
            }
            if let Some(t) = c.persistent {
                let _ = write!(out, " persistent {t}");
                if let Some(mask) = netmask_str(key, c.netmask) {
                    let _ = write!(out, " mask {mask}");
                }
                if let Some(pe) = &c.pe {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if c.ops {
                out.push_str(" ops");
            }
            // rvs's options, after everything ipvsadm prints (absent: ipvsadm's line).
            if c.proxy_protocol.is_on() {
                let _ = write!(out, " proxy-protocol {}", c.proxy_protocol.name());
            }
            if c.toa {
                out.push_str(" toa");
            }
            // DPVS's word for it; rvs's `auto` after it.
            match c.syn_proxy {
                crate::ipvs::SynProxy::Enable => out.push_str(" synproxy"),
                crate::ipvs::SynProxy::Auto => out.push_str(" synproxy auto"),
                crate::ipvs::SynProxy::Disable => {}
            }
        }
    }
    out.push('\n');
}

/// `-S`'s `-a` line of a dest of service `name`.
fn dest_rule(out: &mut String, d: &DestView, name: &str, dn: &str) {
    let _ = write!(
        out,
        "-a {name} -r {dn} {} -w {}",
        d.conf.forward.option(),
        d.conf.weight
    );
    if d.conf.forward == Forward::Tunnel {
        match d.conf.tunnel.tun_type {
            TunType::Ipip => out.push_str(" --tun-type ipip"),
            TunType::Gue => {
                let _ = write!(
                    out,
                    " --tun-type gue --tun-port {} {}",
                    d.conf.tunnel.port,
                    d.conf.tunnel.csum.option()
                );
            }
            TunType::Gre => {
                let _ = write!(out, " --tun-type gre {}", d.conf.tunnel.csum.option());
            }
        }
    }
    out.push('\n');
}

/// A dest's line (`dn` is how the dest is printed).
fn dest_line(out: &mut String, d: &DestView, m: Mode, name: &str, dn: &str, exact: bool) {
    let k = &d.counters;
    match m {
        Mode::Rule => dest_rule(out, d, name, dn),
        Mode::Stats => {
            let _ = write!(out, "  -> {dn:<28}");
            push_stats(out, &k.stats, exact);
            out.push('\n');
        }
        Mode::Rate => {
            let _ = write!(out, "  -> {dn:<28}");
            push_rates(out, &d.rates, exact);
            out.push('\n');
        }
        Mode::Thresholds => {
            let _ = writeln!(
                out,
                "  -> {dn:<28} {:<10} {:<10} {:<10} {:<10}",
                d.conf.u_threshold, d.conf.l_threshold, k.active_conns, k.inact_conns
            );
        }
        Mode::PersistentConn => {
            let _ = writeln!(
                out,
                "  -> {dn:<28} {:<9} {:<11} {:<10} {:<10}",
                d.conf.weight, k.persist_conns, k.active_conns, k.inact_conns
            );
        }
        Mode::TunInfo => {
            let _ = writeln!(
                out,
                "  -> {dn:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                d.conf.forward.label(),
                tun_info(d),
                d.conf.weight,
                k.active_conns,
                k.inact_conns
            );
        }
        Mode::Plain => {
            let _ = writeln!(
                out,
                "  -> {dn:<28} {:<7} {:<6} {:<10} {:<10}",
                d.conf.forward.label(),
                d.conf.weight,
                k.active_conns,
                k.inact_conns
            );
        }
    }
}

/// A service and its dests.
fn service_entry(out: &mut String, s: &ServiceView, m: Mode, numeric: bool, exact: bool) {
    let key = &s.conf.key;
    let name = svc_name(key, m == Mode::Rule, numeric);
    service_line(out, s, m, &name, exact);
    for d in &s.dests {
        let dn = addrport(&d.conf.addr, d.conf.port, proto_name(key), numeric);
        dest_line(out, d, m, &name, &dn, exact);
    }
}

/// `ipvsadm -L [options]` over all services (with the version header).
pub fn list_all(info: &Info, services: &[ServiceView], o: &ListOpts) -> String {
    let mut out = header(info);
    let m = mode(o);
    out.push_str(&title(m));
    for s in ordered(services, o.nosort) {
        service_entry(&mut out, &s, m, o.numeric, o.exact);
    }
    out
}

/// `ipvsadm -L -t svc [options]`: no version header.
pub fn list_one(service: &ServiceView, o: &ListOpts) -> String {
    let m = mode(o);
    let mut out = title(m);
    let s = &ordered(std::slice::from_ref(service), o.nosort)[0];
    service_entry(&mut out, s, m, o.numeric, o.exact);
    out
}

/// `ipvsadm -S [-n]`: rules that `-R` reads back. FULLNAT LIP pools are saved as
/// `--add-laddr` lines (an rvs extension; absent when no service has a LIP).
pub fn save(services: &[ServiceView], numeric: bool) -> String {
    let mut out = String::new();
    for s in ordered(services, false) {
        service_entry(&mut out, &s, Mode::Rule, numeric, false);
        let name = svc_name(&s.conf.key, true, numeric);
        for l in &s.laddrs {
            let _ = write!(out, "--add-laddr {name} -z {}", l.laddr.addr);
            if let Some(ifn) = &l.laddr.ifname {
                let _ = write!(out, " -F {ifn}");
            }
            out.push('\n');
        }
    }
    out
}

/// The `-S` lines of the ACLs (an rvs/DPVS extension, after the services): each
/// service's `--add-blklst`/`--add-whtlst` entries, then the global list's.
pub fn save_acls(acls: &AclsView, numeric: bool) -> String {
    let mut out = String::new();
    let mut lines = |name: Option<String>, l: &AclLists| {
        for (kind, p) in l.entries() {
            let (cmd, opt) = match kind {
                AclKind::Deny => ("--add-blklst", "-k"),
                AclKind::Allow => ("--add-whtlst", "-2"),
            };
            match &name {
                Some(n) => {
                    let _ = writeln!(out, "{cmd} {n} {opt} {p}");
                }
                None => {
                    let _ = writeln!(out, "{cmd} {opt} {p}");
                }
            }
        }
    };
    for (key, l) in &acls.services {
        lines(Some(svc_name(key, true, numeric)), l);
    }
    lines(None, &acls.global);
    out
}

/// DPVS `ipvsadm -B` (`kind` Deny) and `-W` (Allow): one line per entry, the global
/// list's first (VIP:VPORT and PROTO `*`), then each service's in table order (only
/// `only`'s when given), addresses numeric.
pub fn acls(acls: &AclsView, kind: AclKind, only: Option<&ServiceKey>) -> String {
    let mut out = format!(
        "{:<24} {:<6} {}\n",
        "VIP:VPORT",
        "PROTO",
        kind.option().to_uppercase()
    );
    let mut rows = |vip: &str, proto: &str, l: &AclLists| {
        for p in l.list(kind) {
            let _ = writeln!(out, "{vip:<24} {proto:<6} {p}");
        }
    };
    if only.is_none() {
        rows("*", "*", &acls.global);
    }
    for (key, l) in &acls.services {
        if only.is_some_and(|k| k != key) {
            continue;
        }
        match key {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => rows(
                &addrport(addr, *port, protocol.services_name(), true),
                protocol.label(),
                l,
            ),
            ServiceKey::Fwmark { mark, .. } => rows(&format!("FWM {mark}"), "*", l),
        }
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `ipvsadm -L --daemon`.
pub fn daemons(ds: &[SyncDaemon]) -> String {
    let mut out = String::new();
    for d in ds {
        let _ = write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            d.state.name(),
            d.mcast_ifn,
            d.syncid
        );
        if d.sync_maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.sync_maxlen);
        }
        let _ = write!(out, ", group={}", d.mcast_group);
        if d.mcast_port != 0 {
            let _ = write!(out, ", port={}", d.mcast_port);
        }
        if d.mcast_ttl != 0 {
            let _ = write!(out, ", ttl={}", d.mcast_ttl);
        }
        out.push_str(")\n");
    }
    out
}

/// `ipvsadm -Lc [-n]`: connection entries, in table order.
pub fn connections(conns: &[ConnRow], numeric: bool, persistent_conn: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let p = c.protocol.services_name();
        let src = addrport(&c.client.ip(), c.client.port(), p, numeric);
        let vip = addrport(&c.virtual_addr.ip(), c.virtual_addr.port(), p, numeric);
        let dst = addrport(&c.dest.ip(), c.dest.port(), p, numeric);
        let exp = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        if persistent_conn {
            let _ = writeln!(
                out,
                "{:<3} {exp:<6} {:<11} {src:<18} {vip:<18} {dst:<18} {:<16} ",
                c.protocol.label(),
                c.state.name(),
                ""
            );
        } else {
            let _ = writeln!(
                out,
                "{:<3} {exp:<6} {:<11} {src:<18} {vip:<18} {dst}",
                c.protocol.label(),
                c.state.name()
            );
        }
    }
    out
}

/// DPVS `ipvsadm -G`: the LIP pools.
pub fn laddrs(services: &[ServiceView]) -> String {
    let mut out = format!(
        "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
        "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
    );
    for s in ordered(services, false) {
        let name = match &s.conf.key {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => addrport(addr, *port, protocol.services_name(), true),
            ServiceKey::Fwmark { mark, .. } => format!("FWM  {}", *mark as i32),
        };
        let _ = writeln!(out, "{name:<20} {:<8} ", s.laddrs.len());
        for l in &s.laddrs {
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "",
                "",
                l.laddr.addr.to_string(),
                l.conflicts,
                l.conns
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{
        DestConf, IpvsTable, Laddr, Op, Protocol, ProxyProtocol, ServiceConf, SCHED_FLAG_2,
    };
    use crate::proto::LaddrView;

    fn view(t: &IpvsTable) -> Vec<ServiceView> {
        t.services
            .iter()
            .map(|s| ServiceView {
                conf: s.conf.clone(),
                stats: Stats::default(),
                rates: Rates::default(),
                dests: s
                    .dests
                    .iter()
                    .map(|d| DestView {
                        conf: d.clone(),
                        counters: Default::default(),
                        rates: Rates::default(),
                    })
                    .collect(),
                laddrs: s
                    .laddrs
                    .iter()
                    .map(|l| LaddrView {
                        laddr: l.clone(),
                        conflicts: 0,
                        conns: 0,
                    })
                    .collect(),
            })
            .collect()
    }

    fn key(protocol: Protocol, a: &str, port: u16) -> ServiceKey {
        ServiceKey::Inet {
            protocol,
            addr: a.parse().unwrap(),
            port,
        }
    }

    /// A FULLNAT service with PROXY protocol v2, TOA, persistence with a mask and
    /// scheduler flags (so the options come after all of ipvsadm's), one with v1 only,
    /// a UDP one with v2, and one with neither.
    fn table() -> IpvsTable {
        let mut t = IpvsTable::new();
        let web = key(Protocol::Tcp, "10.0.0.100", 80);
        let mut c = ServiceConf::new(web);
        c.scheduler = "sh".into();
        c.sched_flags = SCHED_FLAG_2;
        c.persistent = Some(600);
        c.netmask = 0xffff_ff00;
        c.proxy_protocol = ProxyProtocol::V2;
        c.toa = true;
        t.apply(&Op::AddService(c)).unwrap();
        let mut d = DestConf::new("192.168.100.2".parse().unwrap(), 8080);
        d.forward = Forward::FullNat;
        t.apply(&Op::AddDest(web, d)).unwrap();
        let l = Laddr {
            addr: "192.168.100.200".parse().unwrap(),
            ifname: None,
        };
        t.apply(&Op::AddLaddr(web, l)).unwrap();
        let smtp = key(Protocol::Tcp, "10.0.0.100", 25);
        let mut c = ServiceConf::new(smtp);
        c.scheduler = "rr".into();
        c.proxy_protocol = ProxyProtocol::V1;
        t.apply(&Op::AddService(c)).unwrap();
        let dns = key(Protocol::Udp, "10.0.0.100", 53);
        let mut c = ServiceConf::new(dns);
        c.scheduler = "rr".into();
        c.ops = true;
        c.proxy_protocol = ProxyProtocol::V2;
        t.apply(&Op::AddService(c)).unwrap();
        let plain = key(Protocol::Tcp, "10.0.0.100", 443);
        t.apply(&Op::AddService(ServiceConf::new(plain))).unwrap();
        let fwm = ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        };
        let mut c = ServiceConf::new(fwm);
        c.toa = true;
        t.apply(&Op::AddService(c)).unwrap();
        t
    }

    #[test]
    fn the_options_end_the_service_line_and_are_absent_without_them() {
        let info = Info {
            version: 0x010201,
            conn_tab_size: 4096,
            num_services: 5,
        };
        let o = ListOpts {
            numeric: true,
            ..Default::default()
        };
        assert_eq!(
            list_all(&info, &view(&table()), &o),
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  10.0.0.100:25 rr proxy-protocol v1\n\
             TCP  10.0.0.100:80 sh (sh-port) persistent 600 mask 255.255.255.0 proxy-protocol v2 toa\n  \
             -> 192.168.100.2:8080           FullNat 1      0          0         \n\
             TCP  10.0.0.100:443 wlc\n\
             UDP  10.0.0.100:53 rr ops proxy-protocol v2\n\
             FWM  7 wlc toa\n"
        );
        // The same line in the listings that print it (--thresholds, --persistent-conn,
        // --tun-info); --stats and --rate print counters only.
        let one = view(&table())[0].clone();
        for f in [
            (|o: &mut ListOpts| o.thresholds = true) as fn(&mut ListOpts),
            |o| o.persistent_conn = true,
            |o| o.tun_info = true,
        ] {
            let mut o = o.clone();
            f(&mut o);
            assert!(list_one(&one, &o).contains(
                "\nTCP  10.0.0.100:80 sh (sh-port) persistent 600 mask 255.255.255.0 proxy-protocol v2 toa\n"
            ));
        }
        for f in [
            (|o: &mut ListOpts| o.stats = true) as fn(&mut ListOpts),
            |o| o.rate = true,
        ] {
            let mut o = o.clone();
            f(&mut o);
            let text = list_one(&one, &o);
            assert!(!text.contains("proxy") && !text.contains("toa"), "{text}");
        }
    }

    /// An IPv6 service (persistence with a /64 mask, IPv6 NAT and DR servers, an IPv6
    /// LIP) and a NAT64 one (IPv6 VIP, IPv4 FULLNAT server and LIP).
    fn table6() -> IpvsTable {
        let mut t = IpvsTable::new();
        let web = key(Protocol::Tcp, "2001:db8::1", 80);
        let mut c = ServiceConf::new(web);
        c.persistent = Some(300);
        c.netmask = 64;
        t.apply(&Op::AddService(c)).unwrap();
        let mut d = DestConf::new("2001:db8::11".parse().unwrap(), 80);
        d.forward = Forward::Masq;
        t.apply(&Op::AddDest(web, d)).unwrap();
        let mut d = DestConf::new("2001:db8:0:1::12".parse().unwrap(), 80);
        d.forward = Forward::Route;
        d.weight = 3;
        t.apply(&Op::AddDest(web, d)).unwrap();
        let nat64 = key(Protocol::Tcp, "2001:db8::1", 443);
        let mut c = ServiceConf::new(nat64);
        c.scheduler = "rr".into();
        t.apply(&Op::AddService(c)).unwrap();
        let mut d = DestConf::new("10.0.0.11".parse().unwrap(), 8443);
        d.forward = Forward::FullNat;
        t.apply(&Op::AddDest(nat64, d)).unwrap();
        let lip = |a: &str| Laddr {
            addr: a.parse().unwrap(),
            ifname: None,
        };
        t.apply(&Op::AddLaddr(nat64, lip("10.0.0.200"))).unwrap();
        let udp = key(Protocol::Udp, "2001:db8::53", 53);
        t.apply(&Op::AddService(ServiceConf::new(udp))).unwrap();
        let mut d = DestConf::new("2001:db8::53:1".parse().unwrap(), 53);
        d.forward = Forward::FullNat;
        t.apply(&Op::AddLaddr(udp, lip("2001:db8::200"))).unwrap();
        t.apply(&Op::AddDest(udp, d)).unwrap();
        t
    }

    #[test]
    fn ipv6_services_are_listed_as_ipvsadm_lists_them() {
        let info = Info {
            version: 0x010201,
            conn_tab_size: 4096,
            num_services: 3,
        };
        let o = ListOpts {
            numeric: true,
            ..Default::default()
        };
        let v = view(&table6());
        // -Ln: [addr]:port, the IPv6 mask as a prefix length.
        assert_eq!(
            list_all(&info, &v, &o),
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  [2001:db8::1]:80 wlc persistent 300 mask 64\n  \
             -> [2001:db8::11]:80            Masq    1      0          0         \n  \
             -> [2001:db8:0:1::12]:80        Route   3      0          0         \n\
             TCP  [2001:db8::1]:443 rr\n  \
             -> 10.0.0.11:8443               FullNat 1      0          0         \n\
             UDP  [2001:db8::53]:53 wlc\n  \
             -> [2001:db8::53:1]:53          FullNat 1      0          0         \n"
        );
        // -Sn: -M as a prefix length; the LIP pools as --add-laddr lines.
        assert_eq!(
            save(&v, true),
            "-A -t [2001:db8::1]:80 -s wlc -p 300 -M 64\n\
             -a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -m -w 1\n\
             -a -t [2001:db8::1]:80 -r [2001:db8:0:1::12]:80 -g -w 3\n\
             -A -t [2001:db8::1]:443 -s rr\n\
             -a -t [2001:db8::1]:443 -r 10.0.0.11:8443 -b -w 1\n\
             --add-laddr -t [2001:db8::1]:443 -z 10.0.0.200\n\
             -A -u [2001:db8::53]:53 -s wlc\n\
             -a -u [2001:db8::53]:53 -r [2001:db8::53:1]:53 -b -w 1\n\
             --add-laddr -u [2001:db8::53]:53 -z 2001:db8::200\n"
        );
        // --stats: the service name padded to 33, the server's to 28.
        let mut so = o.clone();
        so.stats = true;
        let text = list_one(&v[1], &so);
        assert!(
            text.ends_with(
                "TCP  [2001:db8::1]:443                   0        0        0        0        0\n  \
                 -> 10.0.0.11:8443                      0        0        0        0        0\n"
            ),
            "{text:?}"
        );
        let mut ro = o.clone();
        ro.rate = true;
        let text = list_one(&v[0], &ro);
        assert!(
            text.contains(
                "\n  -> [2001:db8:0:1::12]:80               0        0        0        0        0\n"
            ),
            "{text:?}"
        );
        // -G (DPVS): the service as [addr]:port, its LIPs bare.
        assert_eq!(
            laddrs(&v),
            "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
             [2001:db8::1]:80     0        \n\
             [2001:db8::1]:443    1        \n                              \
             10.0.0.200           0          0         \n\
             [2001:db8::53]:53    1        \n                              \
             2001:db8::200        0          0         \n"
        );
    }

    #[test]
    fn ipv6_and_nat64_connections_are_listed_as_ipvsadm_lists_them() {
        use crate::backend::{ConnProtocol, ConnRow, ConnState};
        let row = |c: &str, v: &str, d: &str, state, expires| ConnRow {
            protocol: ConnProtocol::Tcp,
            client: c.parse().unwrap(),
            virtual_addr: v.parse().unwrap(),
            dest: d.parse().unwrap(),
            state,
            expires,
        };
        let rows = [
            row(
                "[2001:db8:c::7]:51000",
                "[2001:db8::1]:80",
                "[2001:db8::11]:80",
                ConnState::Established,
                899,
            ),
            row(
                "[2001:db8:c::7]:51001",
                "[2001:db8::1]:443",
                "10.0.0.11:8443",
                ConnState::SynRecv,
                59,
            ),
        ];
        assert_eq!(
            connections(&rows, true, false),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED [2001:db8:c::7]:51000 [2001:db8::1]:80   [2001:db8::11]:80\n\
             TCP 00:59  SYN_RECV    [2001:db8:c::7]:51001 [2001:db8::1]:443  10.0.0.11:8443\n"
        );
    }

    #[test]
    fn synproxy_ends_the_service_line_only_when_on_and_round_trips() {
        use crate::ipvs::SynProxy;
        let mut t = IpvsTable::new();
        for (port, mode) in [
            (80, SynProxy::Enable),
            (81, SynProxy::Auto),
            (82, SynProxy::Disable),
        ] {
            let k = key(Protocol::Tcp, "10.0.0.100", port);
            let mut c = ServiceConf::new(k);
            c.scheduler = "rr".into();
            c.syn_proxy = mode;
            t.apply(&Op::AddService(c)).unwrap();
            let mut d = DestConf::new("192.168.100.2".parse().unwrap(), 8080);
            d.forward = Forward::Masq;
            t.apply(&Op::AddDest(k, d)).unwrap();
        }
        let o = ListOpts {
            numeric: true,
            ..Default::default()
        };
        let text = list_all(
            &Info {
                version: 0x010201,
                conn_tab_size: 4096,
                num_services: 3,
            },
            &view(&t),
            &o,
        );
        assert!(
            text.contains("\nTCP  10.0.0.100:80 rr synproxy\n"),
            "{text}"
        );
        assert!(
            text.contains("\nTCP  10.0.0.100:81 rr synproxy auto\n"),
            "{text}"
        );
        assert!(text.contains("\nTCP  10.0.0.100:82 rr\n"), "{text}");
        let saved = save(&view(&t), true);
        assert!(
            saved.contains("-A -t 10.0.0.100:80 -s rr -j enable\n"),
            "{saved}"
        );
        assert!(
            saved.contains("-A -t 10.0.0.100:81 -s rr -j auto\n"),
            "{saved}"
        );
        assert!(saved.contains("-A -t 10.0.0.100:82 -s rr\n"), "{saved}");
        let mut back = IpvsTable::new();
        crate::reload::apply_rules(&mut back, &saved).unwrap();
        assert_eq!(save(&view(&back), true), saved);
        // A DR server in a proxied service, or a proxied UDP service: refused.
        let k = key(Protocol::Tcp, "10.0.0.100", 80);
        let mut d = DestConf::new("192.168.100.3".parse().unwrap(), 80);
        d.forward = Forward::Route;
        assert_eq!(
            t.apply(&Op::AddDest(k, d)).unwrap_err().to_string(),
            "Only NAT and FULLNAT servers are allowed in a service with SYN proxy"
        );
        let mut c = ServiceConf::new(key(Protocol::Udp, "10.0.0.100", 53));
        c.syn_proxy = SynProxy::Enable;
        assert_eq!(
            t.apply(&Op::AddService(c)).unwrap_err().to_string(),
            "SYN proxy is only for TCP virtual services"
        );
        let k = key(Protocol::Tcp, "10.0.0.100", 82);
        let mut d = DestConf::new("192.168.100.4".parse().unwrap(), 80);
        d.forward = Forward::Tunnel;
        t.apply(&Op::AddDest(k, d)).unwrap();
        let mut c = ServiceConf::new(k);
        c.syn_proxy = SynProxy::Auto;
        assert_eq!(
            t.apply(&Op::EditService(c)).unwrap_err().to_string(),
            "SYN proxy is allowed only with NAT and FULLNAT servers (192.168.100.4:80 is Tunnel)"
        );
    }

    #[test]
    fn save_writes_the_options_and_restore_reads_them_back() {
        let t = table();
        let saved = save(&view(&t), true);
        assert_eq!(
            saved,
            "-A -t 10.0.0.100:25 -s rr --proxy-protocol v1\n\
             -A -t 10.0.0.100:80 -s sh -p 600 -M 255.255.255.0 -b sh-port --proxy-protocol v2 --toa\n\
             -a -t 10.0.0.100:80 -r 192.168.100.2:8080 -b -w 1\n\
             --add-laddr -t 10.0.0.100:80 -z 192.168.100.200\n\
             -A -t 10.0.0.100:443 -s wlc\n\
             -A -u 10.0.0.100:53 -s rr -o --proxy-protocol v2\n\
             -A -f 7 -s wlc --toa\n"
        );
        let mut back = IpvsTable::new();
        crate::reload::apply_rules(&mut back, &saved).unwrap();
        assert_eq!(save(&view(&back), true), saved);
        for s in &t.services {
            assert_eq!(back.service(&s.conf.key).map(|b| &b.conf), Some(&s.conf));
        }
    }
}
