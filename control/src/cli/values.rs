//! ipvsadm's value parsers: C-style numbers (`strtol`, `strtoul`, `atoi`), addresses with
//! ports, scheduler flags, multicast groups.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::CliError;
use crate::ipvs::{SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3};
use crate::names;

/// The blanks C's `isspace` skips before a number.
const C_BLANKS: [char; 6] = [' ', '\t', '\n', '\r', '\x0b', '\x0c'];

/// Digits `atoi` reads at most (more would overflow an `i64`).
const ATOI_MAX_DIGITS: usize = 18;

/// A leading `-` or `+`: whether the number is negative, and the rest.
fn split_sign(t: &str) -> (bool, &str) {
    match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    }
}

/// `string_to_number`: `strtol(s, 10)` over the whole string (leading blanks allowed).
pub(super) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let (neg, digits) = split_sign(s.trim_start_matches(C_BLANKS));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let v = if neg { -v } else { v };
    (min..=max).contains(&v).then_some(v)
}

/// `parse_fwmark`: `strtoul` over the whole string, 1..=UINT_MAX.
pub(super) fn parse_fwmark(s: &str) -> Option<u32> {
    let t = s.trim_start_matches(C_BLANKS);
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    (1..=u32::MAX as u64).contains(&v).then_some(v as u32)
}

/// An address with an optional port, as `parse_service` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// Address.
    pub addr: IpAddr,
    /// Port, if one was given.
    pub port: Option<u16>,
}

fn parse_port(s: &str, proto: &str) -> Option<u16> {
    if let Some(n) = string_to_number(s, 0, i64::from(u16::MAX)) {
        return Some(n as u16);
    }
    names::service_to_port(s, proto)
}

/// `parse_service`: `host[:port]`, `[v6]:port` or a bare IPv6 address.
pub fn parse_hostport(s: &str, proto: &str) -> Option<HostPort> {
    if let Some(rest) = s.strip_prefix('[') {
        let (a, after) = rest.split_once(']')?;
        let addr: Ipv6Addr = a.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?, proto)?),
        };
        return Some(HostPort {
            addr: IpAddr::V6(addr),
            port,
        });
    }
    if let Ok(v6) = s.parse::<Ipv6Addr>() {
        return Some(HostPort {
            addr: IpAddr::V6(v6),
            port: None,
        });
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(parse_port(p, proto)?)),
        None => (s, None),
    };
    if host.is_empty() {
        return None;
    }
    Some(HostPort {
        addr: IpAddr::V4(names::host_to_ipv4(host)?),
        port,
    })
}

/// `parse_sched_flags`: the comma-separated `-b` list, checked against the scheduler.
pub(super) fn parse_sched_flags(arg: &str, sched: &str) -> Result<u32, CliError> {
    let mut flags = 0;
    for f in arg.split(',').filter(|f| !f.is_empty()) {
        flags |= match f {
            "flag-1" => SCHED_FLAG_1,
            "flag-2" => SCHED_FLAG_2,
            "flag-3" => SCHED_FLAG_3,
            "sh-fallback" | "sh-port" | "mh-fallback" | "mh-port" => {
                if !f.starts_with(sched) || sched.len() != 2 {
                    return Err(CliError::fail(format!("incompatible scheduler flag `{f}'")));
                }
                if f.ends_with("fallback") {
                    SCHED_FLAG_1
                } else {
                    SCHED_FLAG_2
                }
            }
            _ => return Err(CliError::fail(format!("invalid scheduler flag `{f}'"))),
        };
    }
    Ok(flags)
}

/// C `atoi`: leading blanks, optional sign, digits; 0 when there are none.
pub(super) fn atoi(s: &str) -> i64 {
    let (neg, rest) = split_sign(s.trim_start());
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(ATOI_MAX_DIGITS)
        .collect();
    let v: i64 = digits.parse().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

/// `--mcast-group`: a multicast address of the family its text suggests.
pub(super) fn parse_mcast_group(v: &str) -> Result<IpAddr, CliError> {
    if v.contains(':') {
        v.parse::<Ipv6Addr>()
            .ok()
            .filter(|a| a.is_multicast())
            .map(IpAddr::V6)
            .ok_or_else(|| CliError::fail(format!("invalid IPv6 mcast-group `{v}'")))
    } else {
        v.parse::<Ipv4Addr>()
            .ok()
            .filter(|a| a.is_multicast())
            .map(IpAddr::V4)
            .ok_or_else(|| CliError::fail(format!("invalid IPv4 mcast-group `{v}'")))
    }
}

/// `-z`: an IPv6 address or anything `inet_aton` reads.
pub(super) fn parse_laddr(v: &str) -> Result<IpAddr, CliError> {
    v.parse::<IpAddr>()
        .ok()
        .or_else(|| names::inet_aton(v).map(IpAddr::V4))
        .ok_or_else(|| CliError::fail("illegal local address specified"))
}
