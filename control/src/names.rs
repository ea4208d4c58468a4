//! Name resolution as ipvsadm does it, without libc: ports through `/etc/services`
//! (getservbyname/getservbyport), IPv4 literals through `inet_aton` rules, host names
//! through the system resolver on input, and addresses to names on output through
//! `/etc/hosts` only (rvs does no DNS PTR lookups: an address without an `/etc/hosts`
//! entry prints numerically, which is what ipvsadm prints when reverse lookup fails).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::OnceLock;

/// One `/etc/services` entry.
#[derive(Debug, Clone)]
struct ServEntry {
    name: String,
    aliases: Vec<String>,
    port: u16,
    proto: String,
}

fn parse_services(text: &str) -> Vec<ServEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(pp)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        out.push(ServEntry {
            name: name.to_string(),
            aliases: words.map(str::to_string).collect(),
            port,
            proto: proto.to_string(),
        });
    }
    out
}

fn services() -> &'static [ServEntry] {
    static S: OnceLock<Vec<ServEntry>> = OnceLock::new();
    S.get_or_init(|| {
        let path = std::env::var("RVS_SERVICES_FILE").unwrap_or_else(|_| "/etc/services".into());
        std::fs::read_to_string(path)
            .map(|t| parse_services(&t))
            .unwrap_or_default()
    })
}

/// `getservbyport(port, proto)`: the service name for a port (`80/tcp` -> `http`).
pub fn port_to_service(port: u16, proto: &str) -> Option<String> {
    services()
        .iter()
        .find(|e| e.port == port && e.proto == proto)
        .map(|e| e.name.clone())
}

/// `getservbyname(name, proto)`: the port of a service name or alias.
pub fn service_to_port(name: &str, proto: &str) -> Option<u16> {
    services()
        .iter()
        .find(|e| e.proto == proto && (e.name == name || e.aliases.iter().any(|a| a == name)))
        .map(|e| e.port)
}

/// Parses one `inet_aton` number part (decimal, `0x` hex, `0` octal).
fn aton_part(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return if radix == 16 { Some(0) } else { None };
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|v| *v <= u32::MAX as u64)
}

/// `inet_aton`: accepts `a`, `a.b`, `a.b.c`, `a.b.c.d` with decimal, octal or hex parts.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums: Vec<u64> = parts.iter().map(|p| aton_part(p)).collect::<Option<_>>()?;
    let n = nums.len();
    let mut v: u64 = 0;
    for (i, x) in nums.iter().enumerate() {
        if i < n - 1 {
            if *x > 255 {
                return None;
            }
            v |= x << (8 * (3 - i));
        } else {
            let bits = 8 * (4 - i);
            if bits < 32 && *x >= (1u64 << bits) {
                return None;
            }
            v |= x;
        }
    }
    Some(Ipv4Addr::from(v as u32))
}

/// `host_to_addr`: an IPv4 literal (inet_aton rules) or a host name resolved to IPv4.
pub fn host_to_ipv4(name: &str) -> Option<Ipv4Addr> {
    if let Some(a) = inet_aton(name) {
        return Some(a);
    }
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    (name, 0u16)
        .to_socket_addrs()
        .ok()?
        .find_map(|sa| match sa.ip() {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
}

fn hosts() -> &'static [(IpAddr, String)] {
    static H: OnceLock<Vec<(IpAddr, String)>> = OnceLock::new();
    H.get_or_init(|| {
        let path = std::env::var("RVS_HOSTS_FILE").unwrap_or_else(|_| "/etc/hosts".into());
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut v = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut w = line.split_whitespace();
            if let (Some(a), Some(n)) = (w.next(), w.next()) {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    v.push((ip, n.to_string()));
                }
            }
        }
        v
    })
}

/// `addr_to_anyname`: the host name from `/etc/hosts`, else the numeric address.
pub fn addr_to_anyname(addr: &IpAddr) -> String {
    hosts()
        .iter()
        .find(|(a, _)| a == addr)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| addr.to_string())
}

/// `addrport_to_anyname`: `addr:port`, `[v6]:port`; names unless `numeric`.
pub fn addrport(addr: &IpAddr, port: u16, proto: &str, numeric: bool) -> String {
    let (a, p) = if numeric {
        (addr.to_string(), port.to_string())
    } else {
        (
            addr_to_anyname(addr),
            port_to_service(port, proto).unwrap_or_else(|| port.to_string()),
        )
    };
    match addr {
        IpAddr::V4(_) => format!("{a}:{p}"),
        IpAddr::V6(_) => format!("[{a}]:{p}"),
    }
}

/// Parses an IPv6 literal.
pub fn ipv6(s: &str) -> Option<Ipv6Addr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aton() {
        assert_eq!(inet_aton("1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(inet_aton("1234"), Some(Ipv4Addr::new(0, 0, 4, 210)));
        assert_eq!(inet_aton("1.2.3"), Some(Ipv4Addr::new(1, 2, 0, 3)));
        assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.400"), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("a.b"), None);
    }

    #[test]
    fn services_file() {
        let s = parse_services(
            "# c\nhttp\t\t80/tcp\t\twww # WorldWideWeb\nhttp-alt 8080/tcp webcache\ndomain 53/udp\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].aliases, vec!["www".to_string()]);
        assert_eq!(s[2].proto, "udp");
    }

    #[test]
    fn system_services() {
        // Debian's /etc/services (netbase) has these.
        if std::path::Path::new("/etc/services").exists() {
            assert_eq!(port_to_service(80, "tcp").as_deref(), Some("http"));
            assert_eq!(port_to_service(443, "tcp").as_deref(), Some("https"));
            assert_eq!(service_to_port("http", "tcp"), Some(80));
            assert_eq!(service_to_port("www", "tcp"), Some(80));
            assert_eq!(service_to_port("nosuch", "tcp"), None);
        }
    }

    #[test]
    fn addrports() {
        assert_eq!(
            addrport(&"10.1.1.2".parse().unwrap(), 8080, "tcp", true),
            "10.1.1.2:8080"
        );
        assert_eq!(
            addrport(&"2001:db8::1".parse().unwrap(), 80, "tcp", true),
            "[2001:db8::1]:80"
        );
    }
}
