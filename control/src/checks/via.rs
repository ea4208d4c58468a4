//! Checking a DR or TUN real server through the VIP: the probe leaves the host's kernel
//! as a forwarded packet would leave the director, destination the VIP. DR: on the wire
//! to the real server's MAC. TUN: to the server's *probe MAC* on the exception tap, where
//! the dataplane encapsulates it to the server as TUN forwarding does (the host needs no
//! IP-in-IP device).
//!
//! Each real server checked this way gets a firewall mark `MARK_BASE + n` and a routing
//! table `TABLE_BASE + n` (`n` = 0, 1, ... in the order they are first probed): the rule
//! `ip rule add pref TABLE_BASE+n fwmark MARK_BASE+n lookup TABLE_BASE+n` and, per VIP, the
//! route `ip route replace VIP/32 via RIP dev DEV onlink table TABLE_BASE+n`, where `DEV`
//! is the device the main table uses for the real server (the exception tap). For a TUN
//! server the route's gateway is not the server but its *probe gateway*
//! `PROBE_GW_BASE + n` (169.254.112.1 and up: link-local, never on the wire), whose
//! neighbour entry is permanent with the server's probe MAC (`02:72` and the server's
//! four address bytes, [`rvs_dataplane::pipeline::probe_mac`]): `ip neigh replace GW
//! lladdr MAC dev DEV nud permanent`. The probe
//! socket carries the mark (`SO_MARK`). The server answers from the VIP: per VIP, the
//! rule `ip rule add pref 32700 from SRC to VIP lookup TABLE_BASE+n` (`SRC`: the host's
//! address toward the servers) lets that answer pass reverse-path filtering, strict or
//! loose. Rules and routes are installed at the server's first probe, removed when no
//! check uses them any more (a reload) and at rvsd's exit; rules left by an rvsd that did
//! not exit are removed when their numbers are used again.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// First firewall mark of the probes through the VIP ("rv" in its two high bytes).
pub const MARK_BASE: u32 = 0x7276_0000;
/// First routing table (and rule priority) of the probes through the VIP.
pub const TABLE_BASE: u32 = 30000;
/// Real servers that can be checked through the VIP at once (rule priorities stay below
/// the main table's 32766).
pub const MAX_SERVERS: u32 = 2700;

/// Priority of the rules that let the answers from a VIP pass reverse-path filtering:
/// after every probe's rule (a probe follows its own mark), before the main table.
pub const REVERSE_PREF: u32 = TABLE_BASE + MAX_SERVERS;

/// First probe gateway of a TUN server (169.254.112.1, in 169.254.112.0/20).
pub const PROBE_GW_BASE: Ipv4Addr = Ipv4Addr::new(169, 254, 112, 1);

/// A real server checked through the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    /// Its address.
    pub rip: Ipv4Addr,
    /// A TUN server (the probe goes to its probe MAC), else DR.
    pub tun: bool,
}

/// One real server's rule and routes.
struct Entry {
    n: u32,
    dev: String,
    /// TUN: the probe gateway (its neighbour entry holds the probe MAC).
    gw: Option<Ipv4Addr>,
    /// The host's address toward the server (the probes' source).
    src: Ipv4Addr,
    vips: HashSet<Ipv4Addr>,
}

#[derive(Default)]
struct State {
    /// Per real server.
    servers: HashMap<Ipv4Addr, Entry>,
    /// Per VIP: the reverse-path rule `from src to VIP lookup TABLE_BASE + n`.
    reverse: HashMap<Ipv4Addr, (Ipv4Addr, u32)>,
    /// Rules left by an rvsd that did not exit were removed.
    swept: bool,
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    static S: OnceLock<Mutex<State>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(State::default()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Runs `ip args`; `Err` carries its message.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The device and source address of the main table's route to `rip` (`ip -o route
/// get`).
fn route_to(rip: Ipv4Addr) -> Result<(String, Ipv4Addr), String> {
    let out = ip(&["-o", "route", "get", &rip.to_string()])?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
    };
    match (after("dev"), after("src").and_then(|a| a.parse().ok())) {
        (Some(d), Some(src)) => Ok((d.to_string(), src)),
        _ => Err(format!(
            "no device or source in the route to {rip}: {}",
            out.trim()
        )),
    }
}

fn reverse_rule(op: &str, vip: Ipv4Addr, src: Ipv4Addr, n: u32) -> Result<String, String> {
    ip(&[
        "rule",
        op,
        "pref",
        &REVERSE_PREF.to_string(),
        "from",
        &format!("{src}/32"),
        "to",
        &format!("{vip}/32"),
        "lookup",
        &table_of(n),
    ])
}

fn mark_of(n: u32) -> u32 {
    MARK_BASE + n
}

fn table_of(n: u32) -> String {
    (TABLE_BASE + n).to_string()
}

/// The probe gateway of server `n` (a TUN server).
fn gateway_of(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(PROBE_GW_BASE) + n)
}

/// Deletes server `n`'s rule (every copy, e.g. left by an rvsd that did not exit) and
/// flushes its table.
fn remove(n: u32) {
    let t = table_of(n);
    while ip(&["rule", "del", "pref", &t]).is_ok() {}
    let _ = ip(&["route", "flush", "table", &t]);
}

/// The firewall mark that sends a probe to `vip` through real server `rip`, installing
/// its rule and route first when needed. `Err`: why they could not be installed (the
/// attempt fails with it, and the next attempt tries again).
pub fn mark(vip: Ipv4Addr, via: Via) -> Result<u32, String> {
    let rip = via.rip;
    let mut st = lock();
    let st = &mut *st;
    if !st.swept {
        while ip(&["rule", "del", "pref", &REVERSE_PREF.to_string()]).is_ok() {}
        st.swept = true;
    }
    let s = &mut st.servers;
    // A server that changed between DR and TUN (a reload) starts over.
    if s.get(&rip).is_some_and(|e| e.gw.is_some() != via.tun) {
        if let Some(e) = s.remove(&rip) {
            forget(&e);
            st.reverse.retain(|vip, (src, n)| {
                let other = *n != e.n;
                if !other {
                    let _ = reverse_rule("del", *vip, *src, *n);
                }
                other
            });
        }
    }
    if !s.contains_key(&rip) {
        let used: HashSet<u32> = s.values().map(|e| e.n).collect();
        let n = (0..MAX_SERVERS)
            .find(|n| !used.contains(n))
            .ok_or_else(|| format!("more than {MAX_SERVERS} servers checked through a VIP"))?;
        let (dev, src) = route_to(rip)?;
        remove(n);
        let t = table_of(n);
        let m = format!("{:#x}", mark_of(n));
        let gw = via.tun.then(|| gateway_of(n));
        if let Some(g) = gw {
            let mac = rvs_dataplane::pipeline::probe_mac(rip)
                .map(|b| format!("{b:02x}"))
                .join(":");
            ip(&[
                "neigh",
                "replace",
                &g.to_string(),
                "lladdr",
                &mac,
                "dev",
                &dev,
                "nud",
                "permanent",
            ])?;
        }
        ip(&["rule", "add", "pref", &t, "fwmark", &m, "lookup", &t])?;
        s.insert(
            rip,
            Entry {
                n,
                dev,
                gw,
                src,
                vips: HashSet::new(),
            },
        );
    }
    let e = s.get_mut(&rip).expect("inserted");
    if !e.vips.contains(&vip) {
        ip(&[
            "route",
            "replace",
            &format!("{vip}/32"),
            "via",
            &e.gw.unwrap_or(rip).to_string(),
            "dev",
            &e.dev,
            "onlink",
            "table",
            &table_of(e.n),
        ])?;
        e.vips.insert(vip);
        tracing::info!(%vip, server = %rip, dev = %e.dev, mark = format_args!("{:#x}", mark_of(e.n)), table = TABLE_BASE + e.n, "checks through the VIP: route installed");
    }
    // The answer comes from the VIP on `dev`: reverse-path filtering (strict or loose)
    // looks the VIP up from the probes' source, and finds it on `dev`.
    if let std::collections::hash_map::Entry::Vacant(r) = st.reverse.entry(vip) {
        reverse_rule("add", vip, e.src, e.n)?;
        r.insert((e.src, e.n));
    }
    Ok(mark_of(e.n))
}

/// Keeps the rules and routes of the (VIP, real server) pairs in `used`, removes the
/// others (checks gone at a reload).
pub fn retain(used: &HashSet<(Ipv4Addr, Ipv4Addr)>) {
    let mut st = lock();
    let st = &mut *st;
    st.servers.retain(|rip, e| {
        let gone: Vec<Ipv4Addr> = e
            .vips
            .iter()
            .filter(|v| !used.contains(&(**v, *rip)))
            .copied()
            .collect();
        for v in gone {
            let _ = ip(&["route", "del", &format!("{v}/32"), "table", &table_of(e.n)]);
            e.vips.remove(&v);
        }
        let keep = used.iter().any(|(_, r)| r == rip);
        if !keep {
            forget(e);
        }
        keep
    });
    // Reverse-path rules whose server lost the VIP: moved to another server of the VIP, or
    // removed.
    let servers = &st.servers;
    st.reverse.retain(|vip, (src, n)| {
        if servers.values().any(|e| e.n == *n && e.vips.contains(vip)) {
            return true;
        }
        let _ = reverse_rule("del", *vip, *src, *n);
        match servers.values().find(|e| e.vips.contains(vip)) {
            Some(e) if reverse_rule("add", *vip, e.src, e.n).is_ok() => {
                (*src, *n) = (e.src, e.n);
                true
            }
            _ => false,
        }
    });
}

/// Removes a server's rule, routes and probe gateway.
fn forget(e: &Entry) {
    remove(e.n);
    if let Some(g) = e.gw {
        let _ = ip(&["neigh", "del", &g.to_string(), "dev", &e.dev]);
    }
}

/// Removes every rule and route (rvsd's exit).
pub fn clear() {
    retain(&HashSet::new());
}
