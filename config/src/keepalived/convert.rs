//! keepalived.conf's blocks as rvs services, keyword by keyword in keepalived's meaning
//! (keepalived's check_parser.c, check_api.c and the checkers' parsers; DPVS's keepalived
//! for `lb_kind FNAT`, `laddr_group_name`, `local_address_group` and `proxy_protocol`;
//! rvs's own `toa`, since DPVS inserts TOA on every FULLNAT TCP connection unasked).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::lexer::Token;
use super::parse::Item;
use super::{Level, Loc, Notice, Origin, MAX_RANGE};
use crate::check::{Check, CheckKind, StatusCodes, Url};
use crate::{
    Forward, Proto, ProxyProtocol, ProxyProtocolError, Real, Service, PROXY_INSECURE_REASON,
    SCHEDULERS,
};

type Res<T> = Result<T, (Loc, String)>;

/// Blocks keepalived runs in its VRRP process (or that configure keepalived itself):
/// skipped whole, left to keepalived running `--vrrp`.
const LEFT_TO_KEEPALIVED: [&str; 14] = [
    "global_defs",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_use_polling",
    "garp_group",
    "track_file",
    "track_process",
    "bfd_instance",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "namespace_with_ipsets",
];

/// keepalived's default persistence timeout (`IPVS_SVC_PERSISTENT_TIMEOUT`).
const DEFAULT_PERSISTENCE: i64 = 360;

/// The longest persistence timeout keepalived takes (31 days).
const MAX_PERSISTENCE: i64 = 86400 * 31;

/// A `virtual_server_group` member.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Member {
    /// An address and port (`vip:port`).
    Addr(IpAddr, u16),
    /// `fwmark N [inet|inet6]`.
    Fwmark(i64, Option<bool>),
}

/// Check settings a `virtual_server` or `real_server` gives its checkers.
#[derive(Debug, Clone, Default)]
struct CheckDefaults {
    connect_timeout: Option<f64>,
    retry: Option<i64>,
    delay_before_retry: Option<f64>,
    warmup: Option<f64>,
    delay_loop: Option<f64>,
    virtualhost: Option<String>,
}

impl CheckDefaults {
    /// `item` if it is one of the defaults' keywords (`true`), else `false`.
    fn take(&mut self, item: &Item) -> Res<bool> {
        match item.kw() {
            "connect_timeout" => self.connect_timeout = Some(secs(one(item)?)?),
            "retry" | "nb_get_retry" | "nb_sock_retry" => {
                self.retry = Some(int(one(item)?, 1, u32::MAX.into())?)
            }
            "delay_before_retry" => self.delay_before_retry = Some(secs(one(item)?)?),
            "warmup" => self.warmup = Some(secs(one(item)?)?),
            "delay_loop" => self.delay_loop = Some(positive_secs(one(item)?)?),
            "virtualhost" => self.virtualhost = Some(one(item)?.text.clone()),
            _ => return Ok(false),
        }
        no_block(item)?;
        Ok(true)
    }

    /// Fills what `c` leaves unset from these defaults.
    fn apply(&self, c: &mut Check) {
        c.connect_timeout = c.connect_timeout.or(self.connect_timeout);
        c.retry = c.retry.or(self.retry);
        c.delay_before_retry = c.delay_before_retry.or(self.delay_before_retry);
        c.warmup = c.warmup.or(self.warmup);
        c.delay_loop = c.delay_loop.or(self.delay_loop);
        if matches!(c.kind, CheckKind::HttpGet | CheckKind::SslGet) && c.virtualhost.is_none() {
            c.virtualhost.clone_from(&self.virtualhost);
        }
    }
}

/// The tree's services and their origins; notices are added to `notices`.
pub fn convert(items: &[Item], notices: &mut Vec<Notice>) -> Res<(Vec<Service>, Vec<Origin>)> {
    let mut groups: HashMap<String, (Loc, Vec<Member>)> = HashMap::new();
    let mut laddr_groups: HashMap<String, Vec<String>> = HashMap::new();
    let mut left: Vec<(Loc, String)> = Vec::new();
    for it in items {
        match it.kw() {
            "virtual_server_group" => {
                let name = one(it)?.text.clone();
                let members = vsg(it)?;
                if groups.insert(name.clone(), (it.loc(), members)).is_some() {
                    return Err((
                        it.loc(),
                        format!("virtual_server_group {name} is defined twice"),
                    ));
                }
            }
            "local_address_group" => {
                let name = one(it)?.text.clone();
                let addrs = laddr_group(it)?;
                if laddr_groups.insert(name.clone(), addrs).is_some() {
                    return Err((
                        it.loc(),
                        format!("local_address_group {name} is defined twice"),
                    ));
                }
            }
            "virtual_server" => {}
            k if k.starts_with("vrrp_") || LEFT_TO_KEEPALIVED.contains(&k) => {
                let name = match it.args().first() {
                    Some(a) if it.block.is_some() => format!("{k} {}", a.text),
                    _ => k.to_string(),
                };
                left.push((it.loc(), name));
            }
            "SSL" => {
                return Err((
                    it.loc(),
                    "SSL: rvs's SSL_GET uses no client certificate or CA (remove the SSL block)"
                        .into(),
                ))
            }
            k @ ("deny_address_group" | "tunnel_group" | "whitelist_address_group") => {
                return Err((it.loc(), format!("{k}: DPVS's {k} is not supported by rvs")))
            }
            _ => notices.push(unknown(it)),
        }
    }
    if let Some((loc, _)) = left.first() {
        let names: Vec<String> = left
            .iter()
            .map(|(l, n)| format!("{n} (line {})", l.line))
            .collect();
        notices.push(Notice {
            level: Level::Info,
            loc: *loc,
            message: format!("left to keepalived --vrrp: {}", names.join(", ")),
        });
    }
    let mut services = Vec::new();
    let mut origins = Vec::new();
    for it in items.iter().filter(|it| it.kw() == "virtual_server") {
        virtual_server(
            it,
            &groups,
            &laddr_groups,
            notices,
            &mut services,
            &mut origins,
        )?;
    }
    Ok((services, origins))
}

/// `virtual_server IP PORT | fwmark N | group NAME { ... }`.
fn virtual_server(
    it: &Item,
    groups: &HashMap<String, (Loc, Vec<Member>)>,
    laddr_groups: &HashMap<String, Vec<String>>,
    notices: &mut Vec<Notice>,
    services: &mut Vec<Service>,
    origins: &mut Vec<Origin>,
) -> Res<()> {
    let loc = it.loc();
    let args = it.args();
    let head: Vec<&str> = args.iter().map(|t| t.text.as_str()).collect();
    let name = format!("virtual_server {}", head.join(" "));
    if args.is_empty() {
        return Err((loc, "virtual_server is missing its address".into()));
    }
    if args.len() > 2 {
        return Err((
            loc,
            format!("{name}: too many values (IP PORT, fwmark N or group NAME)"),
        ));
    }
    let members: Vec<Member> = match head[0] {
        "fwmark" => {
            let m = int(value(it, 1)?, 1, u32::MAX.into())?;
            vec![Member::Fwmark(m, None)]
        }
        "group" => {
            let g = value(it, 1)?;
            match groups.get(&g.text) {
                Some((_, m)) => m.clone(),
                None => {
                    return Err((
                        g.loc,
                        format!("virtual_server_group {} is not defined", g.text),
                    ))
                }
            }
        }
        _ => {
            let ip = addr(&args[0])?;
            let port = match args.get(1) {
                Some(p) => port(p)?,
                None => 0,
            };
            vec![Member::Addr(ip, port)]
        }
    };
    let body = block(it)?;

    let mut svc = Service {
        proto: Proto::Tcp,
        vip: None,
        fwmark: None,
        ipv6: false,
        scheduler: "wlc".into(),
        persistent: None,
        netmask: None,
        sched_flags: Vec::new(),
        ops: false,
        laddrs: Vec::new(),
        real: Vec::new(),
        delay_loop: None,
        quorum: None,
        hysteresis: None,
        quorum_up: None,
        quorum_down: None,
        sorry_server: None,
        sorry_server_forward: None,
        alpha: false,
        omega: false,
        inhibit_on_failure: false,
        virtualhost: None,
        proxy_protocol: ProxyProtocol::Disable.name().into(),
        toa: false,
        syn_proxy: "off".into(),
        deny: Vec::new(),
        allow: Vec::new(),
    };
    let mut defaults = CheckDefaults::default();
    let mut fwd: Option<Forward> = None;
    let mut proto = Proto::Tcp;
    let mut family: Option<bool> = None;
    let mut timeout: Option<i64> = None;
    let mut granularity = false;
    let mut reals: Vec<(Item, Real, Option<Forward>)> = Vec::new();
    let mut sched_set = false;
    for k in body {
        if defaults.take(k)? {
            continue;
        }
        let kw = k.kw();
        match kw {
            "lb_algo" | "lvs_sched" => {
                let s = one(k)?;
                if !SCHEDULERS.contains(&s.text.as_str()) {
                    return Err((
                        s.loc,
                        format!(
                            "{kw}: '{}' is not a scheduler (one of {})",
                            s.text,
                            SCHEDULERS.join(" ")
                        ),
                    ));
                }
                svc.scheduler.clone_from(&s.text);
                sched_set = true;
            }
            "lb_kind" | "lvs_method" => fwd = Some(forwarding(k, true)?),
            "persistence_timeout" => {
                no_block(k)?;
                timeout = Some(match k.args() {
                    [] => DEFAULT_PERSISTENCE,
                    [t] => int(t, 1, MAX_PERSISTENCE)?,
                    _ => return Err(too_many(k)),
                });
            }
            "persistence_granularity" => {
                let g = one(k)?;
                let ok = g.text.parse::<Ipv4Addr>().is_ok()
                    || matches!(g.text.parse::<u8>(), Ok(n) if (1..=128).contains(&n));
                if !ok {
                    return Err((
                        g.loc,
                        format!(
                            "persistence_granularity: '{}' is not a netmask (IPv4 255.255.255.0, IPv6 a prefix length 1..128)",
                            g.text
                        ),
                    ));
                }
                svc.netmask = Some(g.text.clone());
                granularity = true;
            }
            "protocol" => {
                let p = one(k)?;
                proto = match p.text.to_ascii_uppercase().as_str() {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => Proto::Sctp,
                    _ => {
                        return Err((
                            p.loc,
                            format!("protocol: '{}' is not TCP, UDP or SCTP", p.text),
                        ))
                    }
                };
            }
            "ip_family" => {
                let f = one(k)?;
                family = Some(match f.text.as_str() {
                    "inet" => false,
                    "inet6" => true,
                    _ => {
                        return Err((
                            f.loc,
                            format!("ip_family: '{}' is not inet or inet6", f.text),
                        ))
                    }
                });
            }
            "ops" => {
                flag(k)?;
                svc.ops = true;
            }
            "proxy_protocol" => {
                let v = one(k)?;
                let p = ProxyProtocol::parse_nocase(&v.text).map_err(|e| {
                    let why = match e {
                        ProxyProtocolError::Insecure => {
                            format!("is not supported: {PROXY_INSECURE_REASON}")
                        }
                        ProxyProtocolError::Unknown => "is not v1, v2 or disable".into(),
                    };
                    (v.loc, format!("proxy_protocol: '{}' {why}", v.text))
                })?;
                svc.proxy_protocol = p.name().into();
            }
            "toa" => svc.toa = switch(k)?,
            // DPVS's keepalived: the SYN proxy on (`-j enable`).
            "syn_proxy" => {
                flag(k)?;
                svc.syn_proxy = "on".into();
            }
            "hashed" => flag(k)?, // IPVS hashes every service: no effect there either.
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => {
                flag(k)?;
                svc.sched_flags.push(kw.to_string());
            }
            "inhibit_on_failure" => svc.inhibit_on_failure = switch(k)?,
            "alpha" => svc.alpha = switch(k)?,
            "omega" => svc.omega = switch(k)?,
            "quorum" => svc.quorum = Some(int(one(k)?, 1, u32::MAX.into())?),
            "hysteresis" => svc.hysteresis = Some(int(one(k)?, 0, u32::MAX.into())?),
            "quorum_up" => svc.quorum_up = Some(command(k)?),
            "quorum_down" => svc.quorum_down = Some(command(k)?),
            "sorry_server" => {
                no_block(k)?;
                let ip = addr(value(k, 0)?)?;
                let p = port(value(k, 1)?)?;
                if k.args().len() > 2 {
                    return Err(too_many(k));
                }
                svc.sorry_server = Some(endpoint(ip, p));
            }
            "sorry_server_lvs_method" => svc.sorry_server_forward = Some(forwarding(k, false)?),
            "laddr_group_name" => {
                let g = one(k)?;
                match laddr_groups.get(&g.text) {
                    Some(a) => svc.laddrs.clone_from(a),
                    None => {
                        return Err((
                            g.loc,
                            format!("local_address_group {} is not defined", g.text),
                        ))
                    }
                }
            }
            "real_server" => {
                let (r, rf) = real_server(k, notices)?;
                reals.push((k.clone(), r, rf));
            }
            "vip_bind_dev" => notices.push(Notice::warning(
                k.loc(),
                "vip_bind_dev ignored: rvs answers for a VIP on the port whose network it is in"
                    .into(),
            )),
            "persistence_engine" => return Err(not_done(k, "rvs has no persistence engines")),
            "sorry_server_inhibit" => {
                return Err(not_done(
                    k,
                    "rvs removes the sorry server when the quorum is back",
                ))
            }
            "ha_suspend" => return Err(not_done(k, "rvs checks whether the VIP is up or not")),
            "smtp_alert" => {
                return Err(not_done(k, "rvs sends no mail: use notify_up/notify_down"))
            }
            "snmp_name" => return Err(not_done(k, "rvs has no SNMP agent")),
            "weight" => return Err(not_done(k, "a virtual_server has no weight in rvs")),
            "bps" | "limit_proportion" | "establish_timeout" | "daddr_group_name"
            | "hash_target" | "src-range" | "dst-range" | "oif" | "iif" | "nat_mask" => {
                return Err(not_done(k, "a DPVS keyword rvs does not do"))
            }
            _ => notices.push(unknown(k)),
        }
    }
    if !sched_set {
        notices.push(Notice {
            level: Level::Info,
            loc,
            message: format!("{name}: no lb_algo, wlc as keepalived"),
        });
    }
    svc.persistent = timeout.or(granularity.then_some(DEFAULT_PERSISTENCE));
    let with_checks = reals.iter().any(|(_, r, _)| !r.checks.is_empty());
    if with_checks {
        svc.delay_loop = defaults.delay_loop;
        svc.virtualhost = defaults.virtualhost.clone();
    }
    let vs_fwd = fwd.unwrap_or(Forward::Masq);
    let mut real_locs = Vec::new();
    for (k, mut r, rf) in reals {
        r.forward = rf.unwrap_or(vs_fwd);
        let vs_level = CheckDefaults {
            delay_loop: None,
            virtualhost: None,
            ..defaults.clone()
        };
        for c in &mut r.checks {
            vs_level.apply(c);
        }
        let written: Vec<&str> = k.args().iter().map(|t| t.text.as_str()).collect();
        real_locs.push((k.loc(), written.join(" ")));
        svc.real.push(r);
    }
    if svc.sorry_server.is_some() && svc.sorry_server_forward.is_none() {
        svc.sorry_server_forward = fwd;
    }
    if svc.real.is_empty() {
        notices.push(Notice::warning(
            loc,
            format!("{name} has no real servers (an empty service, as ipvsadm -A)"),
        ));
    }
    for m in members {
        let mut s = svc.clone();
        let what = match m {
            Member::Addr(ip, p) => {
                s.proto = proto;
                s.vip = Some(endpoint(ip, p));
                if family.is_some_and(|v6| v6 != ip.is_ipv6()) {
                    return Err((loc, format!("{name}: ip_family does not match {ip}")));
                }
                format!("{} {}", ip, p)
            }
            Member::Fwmark(mark, fam) => {
                s.proto = Proto::Fwmark;
                s.fwmark = Some(mark);
                s.ipv6 = fam.or(family).unwrap_or_else(|| {
                    // keepalived: the family of the (non-tunnel) real servers.
                    s.real
                        .iter()
                        .find(|r| r.forward != Forward::Tunnel)
                        .and_then(|r| crate::parse_endpoint(&r.address, Some(0)))
                        .is_some_and(|a| a.is_ipv6())
                });
                format!("fwmark {mark}")
            }
        };
        let name = if head[0] == "group" {
            format!("{name} ({what})")
        } else {
            name.clone()
        };
        origins.push(Origin {
            at: loc,
            name,
            reals: real_locs.clone(),
        });
        services.push(s);
    }
    Ok(())
}

/// `real_server IP [PORT] { ... }`: the server and its own forwarding method, if any.
fn real_server(it: &Item, notices: &mut Vec<Notice>) -> Res<(Real, Option<Forward>)> {
    let ip = addr(value(it, 0)?)?;
    let address = match it.args().get(1) {
        Some(p) => endpoint(ip, port(p)?),
        None => ip.to_string(),
    };
    if it.args().len() > 2 {
        return Err(too_many(it));
    }
    let mut r = Real::new(address, Forward::Masq);
    let mut fwd = None;
    let mut defaults = CheckDefaults::default();
    let empty = Vec::new();
    let body = match &it.block {
        Some(b) => b,
        None => &empty, // keepalived takes `real_server IP PORT` without a block.
    };
    for k in body {
        if defaults.take(k)? {
            continue;
        }
        let kw = k.kw();
        match kw {
            "weight" => r.weight = int(one(k)?, 0, 65535)?,
            "lvs_method" => fwd = Some(forwarding(k, false)?),
            "uthreshold" => r.u_threshold = int(one(k)?, 0, u32::MAX.into())?,
            "lthreshold" => r.l_threshold = int(one(k)?, 0, u32::MAX.into())?,
            "inhibit_on_failure" => r.inhibit_on_failure = Some(switch(k)?),
            "notify_up" => r.notify_up = Some(command(k)?),
            "notify_down" => r.notify_down = Some(command(k)?),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "DNS_CHECK" | "MISC_CHECK" | "UDP_CHECK" => {
                r.checks.push(checker(k, notices)?)
            }
            "PING_CHECK" | "FILE_CHECK" | "SMTP_CHECK" | "BFD_CHECK" => {
                return Err(not_done(k, "rvs does not run this checker"))
            }
            "alpha" => {
                return Err(not_done(
                    k,
                    "rvs takes alpha per virtual_server (put it there)",
                ))
            }
            "smtp_alert" => {
                return Err(not_done(k, "rvs sends no mail: use notify_up/notify_down"))
            }
            "snmp_name" => return Err(not_done(k, "rvs has no SNMP agent")),
            _ => notices.push(unknown(k)),
        }
    }
    for c in &mut r.checks {
        defaults.apply(c);
    }
    Ok((r, fwd))
}

/// A checker block.
fn checker(it: &Item, notices: &mut Vec<Notice>) -> Res<Check> {
    let kind = match it.kw() {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" => CheckKind::HttpGet,
        "SSL_GET" => CheckKind::SslGet,
        "DNS_CHECK" => CheckKind::Dns,
        "MISC_CHECK" => CheckKind::Misc,
        _ => CheckKind::Udp,
    };
    if !it.args().is_empty() {
        return Err(too_many(it));
    }
    let mut c = Check {
        kind,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        connect_timeout: None,
        retry: None,
        delay_before_retry: None,
        delay_loop: None,
        warmup: None,
        url: Vec::new(),
        virtualhost: None,
        dns_type: None,
        dns_name: None,
        misc_path: None,
        misc_timeout: None,
        misc_dynamic: false,
        payload: None,
        require_reply: None,
    };
    let http = matches!(kind, CheckKind::HttpGet | CheckKind::SslGet);
    let name = it.kw();
    let empty = Vec::new();
    for k in it.block.as_ref().unwrap_or(&empty) {
        let kw = k.kw();
        let only = |yes: bool| -> Res<()> {
            if yes {
                Ok(())
            } else {
                Err(not_done(k, &format!("not a keyword of {name}")))
            }
        };
        match kw {
            "connect_ip" => c.connect_ip = Some(addr(one(k)?)?.to_string()),
            "connect_port" => c.connect_port = Some(int(one(k)?, 1, 65535)?),
            "bindto" => c.bindto = Some(addr(one(k)?)?.to_string()),
            "bind_port" => c.bind_port = Some(int(one(k)?, 1, 65535)?),
            "connect_timeout" => c.connect_timeout = Some(secs(one(k)?)?),
            "retry" | "nb_sock_retry" => c.retry = Some(int(one(k)?, 1, u32::MAX.into())?),
            "nb_get_retry" => {
                only(http)?;
                c.retry = Some(int(one(k)?, 1, u32::MAX.into())?)
            }
            "delay_before_retry" => c.delay_before_retry = Some(secs(one(k)?)?),
            "warmup" => c.warmup = Some(secs(one(k)?)?),
            "delay_loop" => c.delay_loop = Some(positive_secs(one(k)?)?),
            "url" => {
                only(http)?;
                c.url.push(url(k, notices)?);
            }
            "virtualhost" => {
                only(http)?;
                c.virtualhost = Some(one(k)?.text.clone());
            }
            "enable_sni" => {
                only(kind == CheckKind::SslGet)?;
                if !switch(k)? {
                    return Err(not_done(
                        k,
                        "rvs's SSL_GET always sends the virtualhost as SNI",
                    ));
                }
            }
            "type" if kind == CheckKind::Dns => c.dns_type = Some(one(k)?.text.to_uppercase()),
            "name" if kind == CheckKind::Dns => c.dns_name = Some(one(k)?.text.clone()),
            "misc_path" => {
                only(kind == CheckKind::Misc)?;
                c.misc_path = Some(command(k)?);
            }
            "misc_timeout" => {
                only(kind == CheckKind::Misc)?;
                c.misc_timeout = Some(positive_secs(one(k)?)?);
            }
            "misc_dynamic" => {
                only(kind == CheckKind::Misc)?;
                c.misc_dynamic = switch(k)?;
            }
            "payload" => {
                only(kind == CheckKind::Udp)?;
                c.payload = Some(hex(k)?);
            }
            "require_reply" => {
                only(kind == CheckKind::Udp)?;
                c.require_reply = Some(hex(k)?);
            }
            "log_all_failures" => {
                switch(k)?; // rvs logs every failure.
            }
            "bind_if" | "fwmark" | "alpha" | "user" | "http_protocol" | "sni_name"
            | "fast_recovery" | "tls_compliant" | "min_reply_length" | "max_reply_length" => {
                return Err(not_done(k, "rvs's checkers do not do this"))
            }
            _ => {
                notices.push(unknown(k));
                continue;
            }
        }
        if !matches!(kw, "url") {
            no_block(k)?;
        }
    }
    if http && c.url.is_empty() {
        return Err((it.loc(), format!("{name} has no url")));
    }
    if kind == CheckKind::Misc && c.misc_path.is_none() {
        return Err((it.loc(), "MISC_CHECK has no misc_path".into()));
    }
    Ok(c)
}

/// `url { path ..., status_code ..., digest ... }`.
fn url(it: &Item, notices: &mut Vec<Notice>) -> Res<Url> {
    let mut u = Url {
        path: String::new(),
        status_code: None,
        digest: None,
    };
    let mut has_path = false;
    for k in block(it)? {
        match k.kw() {
            "path" => {
                u.path.clone_from(&one(k)?.text);
                has_path = true;
            }
            "status_code" => {
                // keepalived: one or more codes or ranges (`200-299 301`).
                let first = value(k, 0)?;
                let words = k.args();
                let text: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
                let codes = if let [one] = text.as_slice() {
                    match one.parse::<i64>() {
                        Ok(c) => StatusCodes::One(c),
                        Err(_) => StatusCodes::List((*one).to_string()),
                    }
                } else {
                    StatusCodes::List(text.join(" "))
                };
                codes
                    .ranges()
                    .map_err(|m| (first.loc, format!("status_code: {m}")))?;
                u.status_code = Some(codes);
            }
            "digest" => {
                let d = one(k)?;
                if d.text.len() != 32 || !d.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err((
                        d.loc,
                        format!("digest: '{}' is not an MD5 digest (32 hex digits)", d.text),
                    ));
                }
                u.digest = Some(d.text.to_ascii_lowercase());
            }
            "virtualhost" | "regex" | "regex_no_match" | "regex_options" | "regex_min_offset"
            | "regex_max_offset" | "regex_stack" | "tls_compliant" => {
                return Err(not_done(
                    k,
                    "rvs's url checks take path, status_code and digest",
                ))
            }
            _ => {
                notices.push(unknown(k));
                continue;
            }
        }
        no_block(k)?;
    }
    if !has_path {
        return Err((it.loc(), "url has no path".into()));
    }
    Ok(u)
}

/// `virtual_server_group NAME { IP[-END|/LEN] [PORT] ... | fwmark N [inet|inet6] ... }`.
fn vsg(it: &Item) -> Res<Vec<Member>> {
    let mut out = Vec::new();
    for e in block(it)? {
        no_block(e)?;
        let w = &e.words;
        if w[0].text == "fwmark" {
            let m = int(value(e, 0)?, 1, u32::MAX.into())?;
            let fam = match w.get(2).map(|t| t.text.as_str()) {
                None => None,
                Some("inet") => Some(false),
                Some("inet6") => Some(true),
                Some(f) => {
                    return Err((
                        w[2].loc,
                        format!("fwmark {m}: family '{f}' is not inet or inet6"),
                    ))
                }
            };
            if w.len() > 3 {
                return Err(too_many(e));
            }
            out.push(Member::Fwmark(m, fam));
            continue;
        }
        let p = match w.get(1) {
            Some(p) if p.text.bytes().all(|b| b == b'0') => 0,
            Some(p) => port(p)?,
            None => 0,
        };
        if w.len() > 2 {
            return Err(too_many(e));
        }
        for ip in range(&w[0])? {
            out.push(Member::Addr(ip, p));
        }
    }
    if out.is_empty() {
        return Err((it.loc(), "virtual_server_group has no entries".into()));
    }
    Ok(out)
}

/// DPVS's `local_address_group NAME { IP[-END] [IFNAME] ... }`: the addresses (the
/// interface is where DPVS puts them; rvs puts a LIP on the port whose network it is in).
fn laddr_group(it: &Item) -> Res<Vec<String>> {
    let mut out = Vec::new();
    for e in block(it)? {
        no_block(e)?;
        if e.words.len() > 2 {
            return Err(too_many(e));
        }
        out.extend(range(&e.words[0])?.into_iter().map(|a| a.to_string()));
    }
    if out.is_empty() {
        return Err((it.loc(), "local_address_group has no addresses".into()));
    }
    Ok(out)
}

/// `IP`, `IP-END` (the last byte of IPv4, the last 16 bits of IPv6, as keepalived and
/// DPVS write ranges) or `IP/LEN`.
fn range(t: &Token) -> Res<Vec<IpAddr>> {
    let bad = |why: &str| (t.loc, format!("'{}' {why}", t.text));
    if let Some((a, len)) = t.text.split_once('/') {
        let a: Ipv4Addr = a
            .parse()
            .map_err(|_| bad("is not an IPv4 address/prefix (ranges of IPv6 are a-b)"))?;
        let len: u32 = len.parse().map_err(|_| bad("has a bad prefix length"))?;
        if !(1..=32).contains(&len) {
            return Err(bad("has a bad prefix length"));
        }
        let n = 1u64 << (32 - len);
        if n > u64::from(MAX_RANGE) {
            return Err(bad(&format!("has more than {MAX_RANGE} addresses")));
        }
        let base = u32::from(a);
        if u64::from(base) % n != 0 {
            return Err(bad("is not a network address (host bits are set)"));
        }
        return Ok((0..n as u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
            .collect());
    }
    let Some((a, end)) = t.text.split_once('-') else {
        return Ok(vec![addr(t)?]);
    };
    let start: IpAddr = a.parse().map_err(|_| bad("is not an address or range"))?;
    match start {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let end: u8 = end
                .parse()
                .map_err(|_| bad("has a bad range end (0..255)"))?;
            if end < o[3] {
                return Err(bad("has a range end below its start"));
            }
            Ok((o[3]..=end)
                .map(|x| IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], x)))
                .collect())
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let end = u16::from_str_radix(end, 16).map_err(|_| bad("has a bad range end (hex)"))?;
            if end < s[7] {
                return Err(bad("has a range end below its start"));
            }
            if u32::from(end - s[7]) >= MAX_RANGE {
                return Err(bad(&format!("has more than {MAX_RANGE} addresses")));
            }
            Ok((s[7]..=end)
                .map(|x| {
                    let mut g = s;
                    g[7] = x;
                    IpAddr::V6(Ipv6Addr::from(g))
                })
                .collect())
        }
    }
}

/// `lb_kind`/`lvs_method` (with FNAT when `fnat`, as DPVS's keepalived).
fn forwarding(it: &Item, fnat: bool) -> Res<Forward> {
    no_block(it)?;
    let m = value(it, 0)?;
    let f = match m.text.as_str() {
        "NAT" => Forward::Masq,
        "DR" => Forward::Route,
        "TUN" => Forward::Tunnel,
        "FNAT" if fnat => Forward::Fullnat,
        o => {
            return Err((
                m.loc,
                format!(
                    "{}: '{o}' is not a forwarding method rvs takes here (NAT, DR, TUN{})",
                    it.kw(),
                    if fnat { ", FNAT" } else { "" }
                ),
            ))
        }
    };
    match it.args() {
        [_] => Ok(f),
        [_, t, v] if f == Forward::Tunnel && t.text == "type" && v.text == "ipip" => Ok(f),
        [_, extra, ..] => Err((
            extra.loc,
            format!(
                "{}: '{}': rvs's keepalived.conf takes IPIP tunnels only (GUE, GRE and checksum options: use ipvsadm)",
                it.kw(),
                extra.text
            ),
        )),
        [] => Err((m.loc, "a value is missing".into())),
    }
}

/// A keyword keepalived does not know: reported as keepalived logs it, and skipped (with
/// its block, if it has one).
fn unknown(it: &Item) -> Notice {
    Notice::warning(it.loc(), format!("Unknown keyword '{}'", it.kw()))
}

/// A keyword keepalived knows whose effect rvs does not have: refused.
fn not_done(it: &Item, why: &str) -> (Loc, String) {
    (
        it.loc(),
        format!("'{}' is not supported by rvs: {why}", it.kw()),
    )
}

fn too_many(it: &Item) -> (Loc, String) {
    (
        it.loc(),
        format!(
            "'{}': too many values",
            it.words
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
}

/// Value `i` (from 0) after the keyword.
fn value(it: &Item, i: usize) -> Res<&Token> {
    it.args()
        .get(i)
        .ok_or_else(|| (it.loc(), format!("'{}' is missing a value", it.kw())))
}

/// The one value of a keyword without a block.
fn one(it: &Item) -> Res<&Token> {
    let v = value(it, 0)?;
    if it.args().len() > 1 {
        return Err(too_many(it));
    }
    Ok(v)
}

/// A keyword without values or block.
fn flag(it: &Item) -> Res<()> {
    no_block(it)?;
    if !it.args().is_empty() {
        return Err(too_many(it));
    }
    Ok(())
}

/// A keyword with an optional `on/off`, `true/false`, `yes/no` (absent: on).
fn switch(it: &Item) -> Res<bool> {
    no_block(it)?;
    match it.args() {
        [] => Ok(true),
        [v] => match v.text.as_str() {
            "on" | "true" | "yes" => Ok(true),
            "off" | "false" | "no" => Ok(false),
            o => Err((
                v.loc,
                format!("'{}': '{o}' is not on/off, true/false or yes/no", it.kw()),
            )),
        },
        _ => Err(too_many(it)),
    }
}

/// The rest of the line as one command (`notify_up "/bin/x up"`).
fn command(it: &Item) -> Res<String> {
    no_block(it)?;
    value(it, 0)?;
    Ok(it
        .args()
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" "))
}

/// Hex digits (spaces allowed between them, as keepalived reads payloads).
fn hex(it: &Item) -> Res<String> {
    let s: String = it.args().iter().map(|t| t.text.as_str()).collect();
    value(it, 0)?;
    if s.len() & 1 == 1 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((
            it.loc(),
            format!("'{}': '{s}' is not hex digits in pairs", it.kw()),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

fn no_block(it: &Item) -> Res<()> {
    if it.block.is_some() {
        return Err((it.loc(), format!("'{}' takes no '{{ }}' block", it.kw())));
    }
    Ok(())
}

fn block(it: &Item) -> Res<&Vec<Item>> {
    it.block
        .as_ref()
        .ok_or_else(|| (it.loc(), format!("'{}' needs a '{{ }}' block", it.kw())))
}

fn int(t: &Token, lo: i64, hi: i64) -> Res<i64> {
    let v: i64 = t
        .text
        .parse()
        .map_err(|_| (t.loc, format!("invalid number '{}'", t.text)))?;
    if v < lo || v > hi {
        return Err((
            t.loc,
            format!("number '{}' outside range [{lo}, {hi}]", t.text),
        ));
    }
    Ok(v)
}

fn secs(t: &Token) -> Res<f64> {
    match t.text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v <= f64::from(u32::MAX) => Ok(v),
        _ => Err((t.loc, format!("invalid number of seconds '{}'", t.text))),
    }
}

fn positive_secs(t: &Token) -> Res<f64> {
    let v = secs(t)?;
    if v <= 0.0 {
        return Err((t.loc, format!("number '{}' must be above 0", t.text)));
    }
    Ok(v)
}

fn addr(t: &Token) -> Res<IpAddr> {
    t.text
        .parse()
        .map_err(|_| (t.loc, format!("'{}' is not an IP address", t.text)))
}

fn port(t: &Token) -> Res<u16> {
    Ok(int(t, 0, 65535)? as u16)
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}
