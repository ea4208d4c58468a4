//! Real-server health checks in the TOML: keepalived's checkers and their keywords, so
//! that a `virtual_server` block of a keepalived.conf and a `[[services]]` table say the
//! same thing in the same words.
//!
//! ```toml
//! [[services]]
//! proto = "tcp"
//! vip = "10.10.0.100:80"
//! scheduler = "rr"
//! delay_loop = 6            # keepalived's virtual_server delay_loop (seconds)
//! quorum = 1
//! sorry_server = "10.20.0.99:80"
//!
//! [[services.real]]
//! address = "10.20.0.11:80"
//! forward = "masq"
//! notify_down = "/etc/rvs/down.sh rs1"
//!
//! [[services.real.checks]]
//! type = "HTTP_GET"
//! connect_timeout = 3
//! retry = 3
//! delay_before_retry = 3
//! url = [{ path = "/", status_code = 200 }]
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Service};

/// The checker: keepalived's block name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// A TCP connect.
    #[serde(rename = "TCP_CHECK")]
    Tcp,
    /// An HTTP GET of each `url`, its status and optionally the MD5 digest of its body.
    #[serde(rename = "HTTP_GET")]
    HttpGet,
    /// [`CheckKind::HttpGet`] over TLS (the certificate is not verified, as keepalived).
    #[serde(rename = "SSL_GET")]
    SslGet,
    /// A DNS query of `dns_name`, type `dns_type`; any answer with the query's id and no
    /// error code is a success.
    #[serde(rename = "DNS_CHECK")]
    Dns,
    /// An operator's command: exit 0 is up; with `misc_dynamic`, exit 2..=255 is up with
    /// weight `status - 2`, exit 1 is down.
    #[serde(rename = "MISC_CHECK")]
    Misc,
    /// A UDP datagram (`payload`); up unless an ICMP port unreachable comes back, or, with
    /// `require_reply`, unless a reply starting with it comes back.
    #[serde(rename = "UDP_CHECK")]
    Udp,
}

/// One `url` of `HTTP_GET`/`SSL_GET`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Url {
    /// The path requested (`/`, `/health`).
    pub path: String,
    /// Accepted status codes (absent: 200..=299, as keepalived): one code (`200`) or
    /// codes and ranges as keepalived writes them (`"200-299 301"`).
    #[serde(default)]
    pub status_code: Option<StatusCodes>,
    /// The MD5 of the body, 32 hex digits (absent: not checked).
    #[serde(default)]
    pub digest: Option<String>,
}

/// The status codes a `url` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusCodes {
    /// One code: `status_code = 200`.
    One(i64),
    /// Codes and ranges separated by spaces or commas, as keepalived's `status_code`
    /// takes them: `status_code = "200-299 301"`.
    List(String),
}

impl StatusCodes {
    /// The accepted ranges (inclusive), or what is wrong: every code is in 100..=599 and
    /// every range runs upward.
    pub fn ranges(&self) -> Result<Vec<(u16, u16)>, String> {
        let code = |t: &str| -> Result<u16, String> {
            match t.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("{t:?} is not a status code (100..=599)")),
            }
        };
        match self {
            StatusCodes::One(c) => {
                let c = u16::try_from(*c)
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| format!("{c} is not a status code (100..=599)"))?;
                Ok(vec![(c, c)])
            }
            StatusCodes::List(text) => {
                let mut out = Vec::new();
                for t in text.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
                    let r = match t.split_once('-') {
                        Some((a, b)) => (code(a)?, code(b)?),
                        None => (code(t)?, code(t)?),
                    };
                    if r.0 > r.1 {
                        return Err(format!("{t:?} is a range that runs downward"));
                    }
                    out.push(r);
                }
                if out.is_empty() {
                    return Err("no status code given".into());
                }
                Ok(out)
            }
        }
    }
}

/// `[[services.real.checks]]`: one checker of a real server. A server is up while every
/// one of its checkers is up (as keepalived). Times are seconds (fractions allowed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Which checker.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Address to probe (default: the real server's). The service's VIP on a DR or TUN
    /// server: the probe goes to the VIP through that server (as DR or TUN forwards; TUN:
    /// an IPv4 VIP only).
    #[serde(default)]
    pub connect_ip: Option<String>,
    /// Port to probe (default: the real server's).
    #[serde(default)]
    pub connect_port: Option<i64>,
    /// Source address of the probe (default: the host's choice).
    #[serde(default)]
    pub bindto: Option<String>,
    /// Source port of the probe (default: any).
    #[serde(default)]
    pub bind_port: Option<i64>,
    /// Connect (and, for HTTP, whole-answer) timeout (default 5).
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    /// Retries of a failed attempt before the check is failed, as keepalived: the check
    /// fails after `retry + 1` failed attempts in a row, `delay_before_retry` apart
    /// (default 1; 0 fails on the first failed attempt).
    #[serde(default)]
    pub retry: Option<i64>,
    /// Wait between a failed attempt and the next one (default 1).
    #[serde(default)]
    pub delay_before_retry: Option<f64>,
    /// Interval between checks (default: the service's `delay_loop`).
    #[serde(default)]
    pub delay_loop: Option<f64>,
    /// The first check waits a random time up to this (default 0: at once).
    #[serde(default)]
    pub warmup: Option<f64>,
    /// `HTTP_GET`/`SSL_GET`: the urls, all of which must answer.
    #[serde(default)]
    pub url: Vec<Url>,
    /// `HTTP_GET`/`SSL_GET`: the Host header (and SNI) (default: the service's
    /// `virtualhost`, else the address).
    #[serde(default)]
    pub virtualhost: Option<String>,
    /// `DNS_CHECK`: the record type (default `SOA`).
    #[serde(default)]
    pub dns_type: Option<String>,
    /// `DNS_CHECK`: the name queried (default `.`).
    #[serde(default)]
    pub dns_name: Option<String>,
    /// `MISC_CHECK`: the command (run by `/bin/sh -c`).
    #[serde(default)]
    pub misc_path: Option<String>,
    /// `MISC_CHECK`: seconds before the command is killed and the check failed (default:
    /// `delay_loop`).
    #[serde(default)]
    pub misc_timeout: Option<f64>,
    /// `MISC_CHECK`: the exit status sets the weight (see [`CheckKind::Misc`]).
    #[serde(default)]
    pub misc_dynamic: bool,
    /// `UDP_CHECK`: the datagram sent, as hex digits (default: empty).
    #[serde(default)]
    pub payload: Option<String>,
    /// `UDP_CHECK`: a reply must come back and start with these bytes (hex digits).
    #[serde(default)]
    pub require_reply: Option<String>,
}

/// Longest time setting accepted (a day), in seconds.
const MAX_SECS: f64 = 86_400.0;

fn secs(field: String, v: Option<f64>, zero_ok: bool) -> Result<(), ConfigError> {
    let Some(v) = v else { return Ok(()) };
    let ok = v.is_finite() && v <= MAX_SECS && (v > 0.0 || (zero_ok && v == 0.0));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            format!(
                "{v} is not a number of seconds in {}..={MAX_SECS}",
                if zero_ok { "0" } else { "(0" }
            ),
        ))
    }
}

fn text(field: String, v: &Option<String>) -> Result<(), ConfigError> {
    match v {
        Some(t) if t.trim().is_empty() => Err(ConfigError::invalid(field, "is empty")),
        _ => Ok(()),
    }
}

fn hex(field: String, v: &Option<String>) -> Result<(), ConfigError> {
    match v {
        Some(h) if decode_hex(h).is_none() => Err(ConfigError::invalid(
            field,
            format!("{h:?} is not an even number of hex digits"),
        )),
        _ => Ok(()),
    }
}

/// Hex digits to bytes (`"0a1B"` → `[0x0a, 0x1b]`); `None` unless an even number of hex
/// digits.
pub fn decode_hex(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

/// DNS record types `DNS_CHECK` knows, with their numbers (keepalived's list).
pub const DNS_TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
];

/// The number of DNS record type `name` (case-insensitive), if `DNS_CHECK` knows it.
pub fn dns_type(name: &str) -> Option<u16> {
    DNS_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t)| *t)
}

/// Whether `name` can be put in a DNS question: dot-separated labels of 1..=63 bytes,
/// 253 bytes at most (`.` is the root).
pub fn dns_name_ok(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    n.is_empty() || (n.len() <= 253 && n.split('.').all(|l| (1..=63).contains(&l.len())))
}

/// Checks the health-check keys of service `i` (`port`: the service's port), naming the
/// field of the first bad value.
pub(crate) fn validate_service(i: usize, s: &Service, port: u16) -> Result<(), ConfigError> {
    let f = |n: &str| format!("services[{i}].{n}");
    secs(f("delay_loop"), s.delay_loop, false)?;
    if let Some(q) = s.quorum {
        crate::range(f("quorum"), q, 0, u32::MAX.into())?;
    }
    if let Some(h) = s.hysteresis {
        crate::range(f("hysteresis"), h, 0, u32::MAX.into())?;
    }
    text(f("quorum_up"), &s.quorum_up)?;
    text(f("quorum_down"), &s.quorum_down)?;
    text(f("virtualhost"), &s.virtualhost)?;
    if let Some(a) = &s.sorry_server {
        let r = crate::Real::new(a.clone(), s.sorry_server_forward.unwrap_or_default());
        match r.endpoint(port) {
            Some(ep) if ep.is_ipv6() == s.is_ipv6() => {
                if s.real.iter().any(|x| x.endpoint(port) == Some(ep)) {
                    return Err(ConfigError::invalid(
                        f("sorry_server"),
                        format!("{a:?} is also a real server of the service"),
                    ));
                }
            }
            _ => {
                return Err(ConfigError::invalid(
                    f("sorry_server"),
                    format!("{a:?} is not address[:port] of the service's family"),
                ))
            }
        }
    }
    for (j, r) in s.real.iter().enumerate() {
        let g = |n: &str| format!("services[{i}].real[{j}].{n}");
        text(g("notify_up"), &r.notify_up)?;
        text(g("notify_down"), &r.notify_down)?;
        for (k, c) in r.checks.iter().enumerate() {
            let at = format!("services[{i}].real[{j}].checks[{k}]");
            validate_check(&at, c)?;
            let vip = s.endpoint().map(|e| e.ip());
            let to_vip = c
                .connect_ip
                .as_deref()
                .and_then(|a| a.parse::<IpAddr>().ok());
            // Through the VIP, the dataplane encapsulates the probe to a TUN server
            // (IPv4 only).
            if r.forward == crate::Forward::Tunnel
                && to_vip.is_some_and(|a| a.is_ipv6())
                && to_vip == vip
            {
                return Err(ConfigError::invalid(
                    format!("{at}.connect_ip"),
                    "checking a TUN server through an IPv6 VIP is not supported; check \
                     its own address",
                ));
            }
        }
    }
    Ok(())
}

fn validate_check(at: &str, c: &Check) -> Result<(), ConfigError> {
    let f = |n: &str| format!("{at}.{n}");
    let ip = |n: &str, v: &Option<String>| match v {
        Some(a) if a.parse::<IpAddr>().is_err() => Err(ConfigError::invalid(
            f(n),
            format!("{a:?} is not an IP address"),
        )),
        _ => Ok(()),
    };
    ip("connect_ip", &c.connect_ip)?;
    ip("bindto", &c.bindto)?;
    if let Some(p) = c.connect_port {
        crate::range(f("connect_port"), p, 1, 65535)?;
    }
    if let Some(p) = c.bind_port {
        crate::range(f("bind_port"), p, 1, 65535)?;
    }
    if let Some(r) = c.retry {
        crate::range(f("retry"), r, 0, 100)?;
    }
    secs(f("connect_timeout"), c.connect_timeout, false)?;
    secs(f("delay_before_retry"), c.delay_before_retry, true)?;
    secs(f("delay_loop"), c.delay_loop, false)?;
    secs(f("warmup"), c.warmup, true)?;
    secs(f("misc_timeout"), c.misc_timeout, false)?;
    text(f("virtualhost"), &c.virtualhost)?;
    let only = |n: &str, set: bool, kinds: &[CheckKind]| {
        if set && !kinds.contains(&c.kind) {
            Err(ConfigError::invalid(
                f(n),
                format!("is not a key of {}", kind_name(c.kind)),
            ))
        } else {
            Ok(())
        }
    };
    use CheckKind::*;
    only("url", !c.url.is_empty(), &[HttpGet, SslGet])?;
    only("virtualhost", c.virtualhost.is_some(), &[HttpGet, SslGet])?;
    only("dns_type", c.dns_type.is_some(), &[Dns])?;
    only("dns_name", c.dns_name.is_some(), &[Dns])?;
    only("misc_path", c.misc_path.is_some(), &[Misc])?;
    only("misc_timeout", c.misc_timeout.is_some(), &[Misc])?;
    only("misc_dynamic", c.misc_dynamic, &[Misc])?;
    only("payload", c.payload.is_some(), &[Udp])?;
    only("require_reply", c.require_reply.is_some(), &[Udp])?;
    let net = [Tcp, HttpGet, SslGet, Dns, Udp];
    only("connect_ip", c.connect_ip.is_some(), &net)?;
    only("connect_port", c.connect_port.is_some(), &net)?;
    only("bindto", c.bindto.is_some(), &net)?;
    only("bind_port", c.bind_port.is_some(), &net)?;
    match c.kind {
        HttpGet | SslGet if c.url.is_empty() => {
            return Err(ConfigError::invalid(
                f("url"),
                "HTTP_GET and SSL_GET need at least one url",
            ))
        }
        Misc if c.misc_path.as_deref().is_none_or(|p| p.trim().is_empty()) => {
            return Err(ConfigError::invalid(
                f("misc_path"),
                "MISC_CHECK needs the command to run",
            ))
        }
        _ => {}
    }
    for (u, url) in c.url.iter().enumerate() {
        let g = |n: &str| format!("{at}.url[{u}].{n}");
        if !url.path.starts_with('/') || url.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ConfigError::invalid(
                g("path"),
                format!("{:?} is not an absolute path without spaces", url.path),
            ));
        }
        if let Some(codes) = &url.status_code {
            codes
                .ranges()
                .map_err(|m| ConfigError::invalid(g("status_code"), m))?;
        }
        if let Some(d) = &url.digest {
            if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::invalid(
                    g("digest"),
                    format!("{d:?} is not an MD5 digest (32 hex digits)"),
                ));
            }
        }
    }
    if let Some(t) = &c.dns_type {
        if dns_type(t).is_none() {
            let names: Vec<&str> = DNS_TYPES.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::invalid(
                f("dns_type"),
                format!("{t:?} is not a record type (one of {})", names.join(" ")),
            ));
        }
    }
    if let Some(n) = &c.dns_name {
        if !dns_name_ok(n) {
            return Err(ConfigError::invalid(
                f("dns_name"),
                format!("{n:?} is not a domain name"),
            ));
        }
    }
    hex(f("payload"), &c.payload)?;
    hex(f("require_reply"), &c.require_reply)?;
    Ok(())
}

/// keepalived's name of a checker (`HTTP_GET`).
pub fn kind_name(k: CheckKind) -> &'static str {
    match k {
        CheckKind::Tcp => "TCP_CHECK",
        CheckKind::HttpGet => "HTTP_GET",
        CheckKind::SslGet => "SSL_GET",
        CheckKind::Dns => "DNS_CHECK",
        CheckKind::Misc => "MISC_CHECK",
        CheckKind::Udp => "UDP_CHECK",
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const BASE: &str = r#"
[[ports]]
name = "p0"
device = "net_null0"
addresses = ["10.10.0.1/24"]

[[services]]
proto = "tcp"
vip = "10.10.0.100:80"
delay_loop = 1
sorry_server = "10.20.0.99:80"
[[services.real]]
address = "10.20.0.11:80"
forward = "masq"
[[services.real]]
address = "10.20.0.12:80"
forward = "masq"
notify_down = "logger down"
[[services.real.checks]]
type = "HTTP_GET"
connect_timeout = 1
url = [{ path = "/", digest = "0123456789abcdef0123456789abcdef" }]
"#;

    fn err(text: &str) -> String {
        Config::from_str(text).unwrap_err().to_string()
    }

    #[test]
    fn checks_are_accepted() {
        let c = Config::from_str(BASE).unwrap();
        assert_eq!(c.services[0].real[1].checks.len(), 1);
        let more = format!(
            "{BASE}\n[[services.real.checks]]\ntype = \"DNS_CHECK\"\ndns_name = \"example.org\"\ndns_type = \"a\"\n\
             [[services.real.checks]]\ntype = \"MISC_CHECK\"\nmisc_path = \"true\"\nmisc_dynamic = true\n\
             [[services.real.checks]]\ntype = \"UDP_CHECK\"\npayload = \"00ff\"\nrequire_reply = \"00\"\n"
        );
        assert_eq!(
            Config::from_str(&more).unwrap().services[0].real[1]
                .checks
                .len(),
            4
        );
    }

    #[test]
    fn status_codes_are_one_code_or_keepalived_lists_and_ranges() {
        use super::StatusCodes;
        assert_eq!(StatusCodes::One(204).ranges(), Ok(vec![(204, 204)]));
        assert_eq!(
            StatusCodes::List("200-299 301,302".into()).ranges(),
            Ok(vec![(200, 299), (301, 301), (302, 302)])
        );
        assert!(StatusCodes::One(99).ranges().is_err());
        assert!(StatusCodes::List("".into()).ranges().is_err());
        assert!(StatusCodes::List("600".into()).ranges().is_err());
        assert!(StatusCodes::List("302-301".into()).ranges().is_err());
        let text = BASE.replace(
            "path = \"/\"",
            "path = \"/\", status_code = \"200-299 301\"",
        );
        assert_ne!(text, BASE, "the test's base has a url");
        let c = Config::from_str(&text).expect("a list of codes is accepted");
        let url = &c.services[0].real[1].checks[0].url[0];
        assert_eq!(
            url.status_code,
            Some(StatusCodes::List("200-299 301".into()))
        );
        let bad = BASE.replace("path = \"/\"", "path = \"/\", status_code = \"2xx\"");
        let e = Config::from_str(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("services[0].real[1].checks[0].url[0].status_code: "),
            "{e}"
        );
    }

    #[test]
    fn connect_ip_vip_is_accepted_on_dr_nat_and_tun_servers() {
        let through = |fwd: &str| {
            BASE.replace(
                "forward = \"masq\"\nnotify_down",
                &format!("forward = \"{fwd}\"\nnotify_down"),
            )
            .replace(
                "connect_timeout = 1\n",
                "connect_timeout = 1\nconnect_ip = \"10.10.0.100\"\n",
            )
        };
        for fwd in ["route", "masq", "tunnel"] {
            assert!(Config::from_str(&through(fwd)).is_ok(), "{fwd}");
        }
        // Another address (a health endpoint of the server) is fine under TUN.
        let other = through("tunnel").replace(
            "connect_ip = \"10.10.0.100\"",
            "connect_ip = \"10.20.0.50\"",
        );
        assert!(Config::from_str(&other).is_ok());
    }

    #[test]
    fn bad_values_are_refused_by_field() {
        let cases = [
            (
                "digest = \"0123456789abcdef0123456789abcdef\"",
                "digest = \"nope\"",
                "services[0].real[1].checks[0].url[0].digest",
            ),
            (
                "path = \"/\"",
                "path = \"x y\"",
                "services[0].real[1].checks[0].url[0].path",
            ),
            (
                "delay_loop = 1",
                "delay_loop = -1",
                "services[0].delay_loop",
            ),
            (
                "connect_timeout = 1",
                "connect_timeout = 0",
                "services[0].real[1].checks[0].connect_timeout",
            ),
            (
                "connect_timeout = 1",
                "connect_timeout = 1\nconnect_port = 70000",
                "services[0].real[1].checks[0].connect_port",
            ),
            (
                "connect_timeout = 1",
                "connect_timeout = 1\nbindto = \"x\"",
                "services[0].real[1].checks[0].bindto",
            ),
            (
                "connect_timeout = 1",
                "connect_timeout = 1\ndns_name = \"a\"",
                "services[0].real[1].checks[0].dns_name",
            ),
            (
                "sorry_server = \"10.20.0.99:80\"",
                "sorry_server = \"10.20.0.12:80\"",
                "services[0].sorry_server",
            ),
            (
                "sorry_server = \"10.20.0.99:80\"",
                "sorry_server = \"::1\"",
                "services[0].sorry_server",
            ),
            (
                "notify_down = \"logger down\"",
                "notify_down = \" \"",
                "services[0].real[1].notify_down",
            ),
            (
                "url = [{ path = \"/\", digest = \"0123456789abcdef0123456789abcdef\" }]",
                "",
                "services[0].real[1].checks[0].url",
            ),
            (
                "type = \"HTTP_GET\"",
                "type = \"MISC_CHECK\"",
                "services[0].real[1].checks[0].url",
            ),
        ];
        for (from, to, field) in cases {
            let text = BASE.replace(from, to);
            assert_ne!(text, BASE);
            let e = err(&text);
            assert!(e.starts_with(&format!("{field}:")), "{to}: {e}");
        }
        let e = err(&format!(
            "{BASE}\n[[services.real.checks]]\ntype = \"DNS_CHECK\"\ndns_type = \"XX\"\n"
        ));
        assert!(
            e.starts_with("services[0].real[1].checks[1].dns_type:"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}\n[[services.real.checks]]\ntype = \"UDP_CHECK\"\npayload = \"abc\"\n"
        ));
        assert!(
            e.starts_with("services[0].real[1].checks[1].payload:"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}\n[[services.real.checks]]\ntype = \"MISC_CHECK\"\n"
        ));
        assert!(
            e.starts_with("services[0].real[1].checks[1].misc_path:"),
            "{e}"
        );
        let e = err(&format!(
            "{BASE}\n[[services.real.checks]]\ntype = \"MISC_CHECK\"\nmisc_path = \"true\"\nbindto = \"10.0.0.1\"\n"
        ));
        assert_eq!(
            e,
            "services[0].real[1].checks[1].bindto: is not a key of MISC_CHECK"
        );
    }

    #[test]
    fn hex_and_dns_helpers() {
        assert_eq!(super::decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(super::decode_hex("0"), None);
        assert_eq!(super::decode_hex("zz"), None);
        assert_eq!(super::dns_type("aaaa"), Some(28));
        assert!(super::dns_name_ok("."));
        assert!(super::dns_name_ok("www.example.org."));
        assert!(!super::dns_name_ok("a..b"));
    }
}
