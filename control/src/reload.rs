//! Reading the configuration again while rvsd runs (`SIGHUP`, `rvsadm --reload`).
//!
//! The file is the truth: a reload makes the running table what the TOML's `[[services]]`
//! plus the `virtual_server`s of the `[control] keepalived_conf` file (read as keepalived
//! reads it, see [`rvs_config::keepalived`]) plus the `[control] rules` file (an `ipvsadm -S` file, restored as `ipvsadm -R` would)
//! describe, and the report names every difference it applies, marking those that undo a
//! change made with rvsadm since the file was last loaded. What the file can change
//! online: services, real servers, weights, schedulers, a service's `proxy_protocol` and
//! `toa`, LIP pools, the ACLs (`[acl]`, a service's `deny` and `allow`: the file's lists
//! replace the running ones, rvsadm's entries included, in one snapshot), timeouts,
//! `[[routes]]` and `[[marks]]`. What needs a restart (`[eal]`, `[[ports]]`, `[workers]`,
//! `[sessions]`, `[control]` apart from `rules` and `keepalived_conf`, `[sync]`) is refused, naming the field,
//! and rvsd keeps running on what it had. The sync key is read when rvsd starts: a reload
//! whose `[sync] key_file` names another file, or whose key file now holds another key (or
//! cannot be used), is refused naming `sync.key_file`. Sync daemons started or stopped with rvsadm
//! (keepalived's notify scripts do this) are left as they are.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rvs_config::Config;
use rvs_dataplane::sync::auth::SyncKey;

use crate::format::{server_label, service_label};
use crate::ipvs::{
    table_from_config, AclKind, AclLists, AclPrefix, DestConf, IpvsTable, Op, Service, ServiceConf,
    ServiceKey,
};

/// The configuration rvsd runs from and what its file said when last loaded.
#[derive(Debug, Clone)]
pub struct Source {
    /// The TOML file.
    pub path: PathBuf,
    /// Its contents when last loaded.
    pub config: Config,
    /// The table it described then (services, rules file, timeouts).
    pub file_table: IpvsTable,
    /// The sync group's key read from `[sync] key_file` when rvsd started (`None`:
    /// without one; its `Debug` does not show it).
    pub sync_key: Option<SyncKey>,
}

impl Source {
    /// Loads `path` (and its keepalived.conf and rules file) for the first time; also
    /// gives the keepalived.conf's notices (see [`read`]).
    pub fn load(path: &Path) -> Result<(Source, Vec<String>), String> {
        let (config, file_table, notes) = read(path)?;
        let sync_key = read_sync_key(path, &config)?;
        Ok((
            Source {
                path: path.to_path_buf(),
                config,
                file_table,
                sync_key,
            },
            notes,
        ))
    }
}

/// The sync key of `cfg` ([`rvs_config::Sync::read_key`]); an error names the file and
/// `sync.key_file`.
pub fn read_sync_key(path: &Path, cfg: &Config) -> Result<Option<SyncKey>, String> {
    let bytes = cfg
        .sync
        .read_key()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    bytes
        .as_deref()
        .map(SyncKey::new)
        .transpose()
        .map_err(|e| format!("{}: sync.key_file: {e}", path.display()))
}

/// Why a reload cannot go on with the sync key rvsd runs with: the file names another
/// key now, or cannot be used. `None`: the same key (or none, as before).
pub fn sync_key_change(path: &Path, running: Option<SyncKey>, cfg: &Config) -> Option<String> {
    match read_sync_key(path, cfg) {
        Err(e) => Some(format!("{e}; nothing was changed")),
        Ok(k) if k != running => Some(format!(
            "{}: sync.key_file: the key changed; the sync key changes only with a restart of rvsd; nothing was changed",
            path.display()
        )),
        Ok(_) => None,
    }
}

/// Reads and checks the TOML file and builds the table it describes: its `[[services]]`,
/// then the `virtual_server`s of its `[control] keepalived_conf`, then its rules file
/// applied. Errors name the file, and the field or the line (of the keepalived.conf or
/// the rules file). Also gives the keepalived.conf's notices (`file:line: warning:
/// Unknown keyword 'foo'`, what is left to keepalived), as [`read_keepalived`] does.
pub fn read(path: &Path) -> Result<(Config, IpvsTable, Vec<String>), String> {
    let mut cfg = Config::from_file(path).map_err(|e| match e {
        rvs_config::ConfigError::Io { .. } | rvs_config::ConfigError::Parse(_) => e.to_string(),
        other => format!("{}: {other}", path.display()),
    })?;
    let notes = read_keepalived(&mut cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut table = table_from_config(&cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(rules) = &cfg.control.rules {
        let text = std::fs::read_to_string(rules)
            .map_err(|e| format!("control.rules: {}: {e}", rules.display()))?;
        apply_rules(&mut table, &text).map_err(|e| format!("{}: {e}", rules.display()))?;
    }
    Ok((cfg, table, notes))
}

/// Appends the services of `cfg`'s `[control] keepalived_conf` (if any) to its
/// `[[services]]` and validates the whole again. Gives the keepalived.conf's notices
/// (`file:line: message`, warnings as `file:line: warning: message`). An error names the
/// keepalived.conf (or included) file and line: `control.keepalived_conf:
/// /etc/keepalived/keepalived.conf:12: ...`; a service that clashes with the TOML's or
/// is invalid for rvs is named by its `virtual_server` or `real_server` line.
pub fn read_keepalived(cfg: &mut Config) -> Result<Vec<String>, String> {
    let Some(ka) = cfg.control.keepalived_conf.clone() else {
        return Ok(Vec::new());
    };
    let loaded =
        rvs_config::keepalived::load(&ka).map_err(|e| format!("control.keepalived_conf: {e}"))?;
    let first = cfg.services.len();
    cfg.services.extend(loaded.services.iter().cloned());
    cfg.validate().map_err(|e| match loaded.locate(&e, first) {
        Some(m) => format!("control.keepalived_conf: {m}"),
        None => e.to_string(),
    })?;
    Ok(loaded.messages())
}

/// Logs keepalived.conf notices: warnings at warn level, the rest at info.
pub fn log_notes(notes: &[String]) {
    for n in notes {
        if n.contains(": warning: ") {
            tracing::warn!("keepalived.conf: {n}");
        } else {
            tracing::info!("keepalived.conf: {n}");
        }
    }
}

/// Applies an `ipvsadm -S` file to `table` as `ipvsadm -R` reads it (one command per
/// line, `ipvsadm` words dropped). Unlike `ipvsadm -R`, which goes on after a refused
/// line, the first bad line refuses the whole file: `line N: <ipvsadm's message>`.
pub fn apply_rules(table: &mut IpvsTable, text: &str) -> Result<(), String> {
    for (i, line) in text.lines().enumerate() {
        let words = crate::adm::restore_tokens(line);
        if words.is_empty() {
            continue;
        }
        let mut argv = vec!["ipvsadm".to_string()];
        argv.extend(words);
        let at = |m: &str| format!("line {}: {}", i + 1, m.trim_end());
        let cmd = crate::cli::parse(&argv, true).map_err(|e| at(&e.message))?;
        let Some(op) = cmd.into_op() else {
            return Err(at("not a command that changes the table"));
        };
        table.apply(&op).map_err(|e| at(&e.to_string()))?;
    }
    Ok(())
}

/// The first field of `new` that differs from `old` in what needs a restart, as a path
/// into the TOML (`ports[0].device`, `workers.count`), or `None` if only what a reload
/// may change changed.
pub fn restart_only_change(old: &Config, new: &Config) -> Option<String> {
    let mut a = old.clone();
    let mut b = new.clone();
    // What a reload applies.
    for c in [&mut a, &mut b] {
        c.services.clear();
        c.routes.clear();
        c.marks.clear();
        c.acl = Default::default();
        c.timeouts = Default::default();
        c.sessions.sloppy_tcp = 0;
        c.control.rules = None;
        c.control.keepalived_conf = None;
    }
    let va = toml::Value::try_from(&a).ok()?;
    let vb = toml::Value::try_from(&b).ok()?;
    first_difference(&va, &vb, "")
}

fn first_difference(a: &toml::Value, b: &toml::Value, path: &str) -> Option<String> {
    use toml::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Table(x), Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &join(k)),
                (None, None) => None,
                _ => Some(join(k)),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(if path.is_empty() {
            "(file)".into()
        } else {
            path.into()
        }),
    }
}

/// One difference a reload applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changes, naming services and servers as `ipvsadm -Ln` prints them.
    pub what: String,
    /// The running value differs from what the file said when last loaded: the reload
    /// undoes a change made with rvsadm.
    pub overrides_rvsadm: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)?;
        if self.overrides_rvsadm {
            f.write_str(" (overrides a change made with rvsadm)")?;
        }
        Ok(())
    }
}

fn service_settings(c: &ServiceConf) -> String {
    let mut s = format!("-s {}", c.scheduler);
    if let Some(p) = c.persistent {
        s.push_str(&format!(" -p {p}"));
    }
    if c.ops {
        s.push_str(" -o");
    }
    if let Some(pe) = &c.pe {
        s.push_str(&format!(" --pe {pe}"));
    }
    if c.proxy_protocol.is_on() {
        s.push_str(&format!(" --proxy-protocol {}", c.proxy_protocol.name()));
    }
    if c.toa {
        s.push_str(" --toa");
    }
    s
}

fn server_settings(d: &DestConf) -> String {
    let mut s = format!("{} -w {}", d.forward.option(), d.weight);
    if d.u_threshold != 0 {
        s.push_str(&format!(" -x {}", d.u_threshold));
    }
    if d.l_threshold != 0 {
        s.push_str(&format!(" -y {}", d.l_threshold));
    }
    s
}

/// The ACL entry op `add` (else remove) of list `kind` of service `key` (`None`: the
/// global list), as the reload report and the log name it: `add blklst TCP
/// 10.0.0.1:80 203.0.113.0/24`.
fn acl_change(add: bool, key: Option<&ServiceKey>, kind: AclKind, p: &AclPrefix) -> String {
    let verb = if add { "add" } else { "remove" };
    match key {
        Some(k) => format!("{verb} {} {} {p}", kind.option(), service_label(k)),
        None => format!("{verb} {} {p}", kind.option()),
    }
}

/// The differences between ACL `old` (running) and `new` of service `key` (`None`: the
/// global list); `was`: the list the file gave when last loaded.
fn acl_changes(
    key: Option<&ServiceKey>,
    old: &AclLists,
    was: Option<&AclLists>,
    new: &AclLists,
    push: &mut dyn FnMut(String, bool),
) {
    let had = |kind: AclKind, p: &AclPrefix| was.is_some_and(|w| w.list(kind).contains(p));
    for (kind, p) in old.entries() {
        if !new.list(kind).contains(&p) {
            push(acl_change(false, key, kind, &p), !had(kind, &p));
        }
    }
    for (kind, p) in new.entries() {
        if !old.list(kind).contains(&p) {
            push(acl_change(true, key, kind, &p), had(kind, &p));
        }
    }
}

/// The differences between the running table and `new`, in table order. `loaded` is
/// the table the file described when last loaded: where the running table differs from
/// it, the difference came from rvsadm.
pub fn changes(running: &IpvsTable, loaded: &IpvsTable, new: &IpvsTable) -> Vec<Change> {
    let mut out = Vec::new();
    let find = |t: &IpvsTable, s: &Service| t.service(&s.conf.key).cloned();
    let mut push = |what: String, overrides_rvsadm: bool| {
        out.push(Change {
            what,
            overrides_rvsadm,
        })
    };
    for old in &running.services {
        if new.service(&old.conf.key).is_none() {
            let by_rvsadm = find(loaded, old).is_none();
            push(
                format!("remove service {}", service_label(&old.conf.key)),
                by_rvsadm,
            );
        }
    }
    for s in &new.services {
        let name = service_label(&s.conf.key);
        let was = find(loaded, s);
        let Some(old) = find(running, s) else {
            push(
                format!("add service {name} {}", service_settings(&s.conf)),
                was.is_some(),
            );
            for d in s.dests.iter().rev() {
                push(
                    format!(
                        "add server {name} -> {} {}",
                        server_label(&s.conf.key, &d.addr, d.port),
                        server_settings(d)
                    ),
                    false,
                );
            }
            for l in &s.laddrs {
                push(format!("add laddr {name} {}", l.addr), false);
            }
            let (none, was_acl) = (AclLists::default(), was.as_ref().map(|w| &w.acl));
            acl_changes(Some(&s.conf.key), &none, was_acl, &s.acl, &mut push);
            continue;
        };
        let rvsadm = |changed: bool| changed;
        if old.conf != s.conf {
            push(
                format!(
                    "edit service {name} {} (was {})",
                    service_settings(&s.conf),
                    service_settings(&old.conf)
                ),
                rvsadm(was.as_ref().map(|w| &w.conf) != Some(&old.conf)),
            );
        }
        let dest = |svc: &Service, a: IpAddr, p: u16| {
            svc.dests
                .iter()
                .find(|d| d.addr == a && d.port == p)
                .cloned()
        };
        let was_dest = |a: IpAddr, p: u16| was.as_ref().and_then(|w| dest(w, a, p));
        for d in &old.dests {
            if dest(s, d.addr, d.port).is_none() {
                push(
                    format!(
                        "remove server {name} -> {}",
                        server_label(&s.conf.key, &d.addr, d.port)
                    ),
                    was_dest(d.addr, d.port).is_none(),
                );
            }
        }
        for d in s.dests.iter().rev() {
            let label = server_label(&s.conf.key, &d.addr, d.port);
            match dest(&old, d.addr, d.port) {
                None => push(
                    format!("add server {name} -> {label} {}", server_settings(d)),
                    was_dest(d.addr, d.port).is_some(),
                ),
                Some(o) if o != *d => push(
                    format!(
                        "edit server {name} -> {label} {} (was {})",
                        server_settings(d),
                        server_settings(&o)
                    ),
                    was_dest(d.addr, d.port).as_ref() != Some(&o),
                ),
                Some(_) => {}
            }
        }
        let had = |svc: &Option<Service>, a: IpAddr| {
            svc.as_ref()
                .is_some_and(|w| w.laddrs.iter().any(|l| l.addr == a))
        };
        for l in &old.laddrs {
            if !s.laddrs.iter().any(|x| x.addr == l.addr) {
                push(
                    format!("remove laddr {name} {}", l.addr),
                    !had(&was, l.addr),
                );
            }
        }
        for l in &s.laddrs {
            if !old.laddrs.iter().any(|x| x.addr == l.addr) {
                push(format!("add laddr {name} {}", l.addr), had(&was, l.addr));
            }
        }
        let was_acl = was.as_ref().map(|w| &w.acl);
        acl_changes(Some(&s.conf.key), &old.acl, was_acl, &s.acl, &mut push);
    }
    acl_changes(None, &running.acl, Some(&loaded.acl), &new.acl, &mut push);
    if running.timeouts != new.timeouts {
        let t = |x: &crate::ipvs::Timeouts| format!("{} {} {}", x.tcp, x.tcp_fin, x.udp);
        push(
            format!(
                "set timeouts {} (was {})",
                t(&new.timeouts),
                t(&running.timeouts)
            ),
            running.timeouts != loaded.timeouts,
        );
    }
    out
}

/// The changes of `[[routes]]` and `[[marks]]` between two files, for the report.
pub fn network_changes(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    if old.routes != new.routes {
        out.push(Change {
            what: format!(
                "routes: {} static routes (were {})",
                new.routes.len(),
                old.routes.len()
            ),
            overrides_rvsadm: false,
        });
    }
    if old.marks != new.marks {
        out.push(Change {
            what: format!(
                "marks: {} rules (were {})",
                new.marks.len(),
                old.marks.len()
            ),
            overrides_rvsadm: false,
        });
    }
    if old.sessions.sloppy_tcp != new.sessions.sloppy_tcp {
        out.push(Change {
            what: format!(
                "sessions.sloppy_tcp: {} (was {})",
                new.sessions.sloppy_tcp, old.sessions.sloppy_tcp
            ),
            overrides_rvsadm: false,
        });
    }
    out
}

/// The op a change made with rvsadm is logged as: what it does, naming the service and
/// server as `ipvsadm -Ln` prints them.
pub fn describe_op(op: &Op) -> String {
    let svc = |k| service_label(k);
    match op {
        Op::AddService(c) => format!("add service {} {}", svc(&c.key), service_settings(c)),
        Op::EditService(c) => format!("edit service {} {}", svc(&c.key), service_settings(c)),
        Op::DelService(k) => format!("remove service {}", svc(k)),
        Op::Flush => "clear the table".into(),
        Op::AddDest(k, d) => format!(
            "add server {} -> {} {}",
            svc(k),
            server_label(k, &d.addr, d.port),
            server_settings(d)
        ),
        Op::EditDest(k, d) => format!(
            "edit server {} -> {} {}",
            svc(k),
            server_label(k, &d.addr, d.port),
            server_settings(d)
        ),
        Op::DelDest(k, a, p) => format!("remove server {} -> {}", svc(k), server_label(k, a, *p)),
        Op::Zero(None) => "zero all counters".into(),
        Op::Zero(Some(k)) => format!("zero counters of {}", svc(k)),
        Op::SetTimeouts(t) => format!("set timeouts {} {} {}", t.tcp, t.tcp_fin, t.udp),
        Op::StartDaemon(d) => format!("start sync daemon {:?}", d.state).to_lowercase(),
        Op::StopDaemon(s) => format!("stop sync daemon {s:?}").to_lowercase(),
        Op::AddLaddr(k, l) => format!("add laddr {} {}", svc(k), l.addr),
        Op::DelLaddr(k, a) => format!("remove laddr {} {a}", svc(k)),
        Op::AddAcl(k, kind, p) => acl_change(true, k.as_ref(), *kind, p),
        Op::DelAcl(k, kind, p) => acl_change(false, k.as_ref(), *kind, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[ports]]
name = "p0"
device = "net_null0"
addresses = ["10.10.0.1/24"]

[[services]]
proto = "tcp"
vip = "10.10.0.100:80"
scheduler = "wrr"
real = [
  { address = "10.20.0.11:80", forward = "masq", weight = 1 },
  { address = "10.20.0.12:80", forward = "masq", weight = 1 },
]
"#;

    fn parse(text: &str) -> (Config, IpvsTable) {
        let c = Config::from_str(text).unwrap();
        let t = table_from_config(&c).unwrap();
        (c, t)
    }

    fn texts(v: &[Change]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_reload_names_each_change_as_ipvsadm_prints_it() {
        let (_, before) = parse(BASE);
        let after = BASE
            .replace(
                "{ address = \"10.20.0.12:80\", forward = \"masq\", weight = 1 },",
                "{ address = \"10.20.0.12:80\", forward = \"masq\", weight = 3 },\n  { address = \"10.20.0.13:80\", forward = \"masq\", weight = 1 },",
            )
            .replace(
                "{ address = \"10.20.0.11:80\", forward = \"masq\", weight = 1 },",
                "",
            );
        let (_, new) = parse(&after);
        assert_eq!(
            texts(&changes(&before, &before, &new)),
            [
                "remove server TCP  10.10.0.100:80 -> 10.20.0.11:80",
                "edit server TCP  10.10.0.100:80 -> 10.20.0.12:80 -m -w 3 (was -m -w 1)",
                "add server TCP  10.10.0.100:80 -> 10.20.0.13:80 -m -w 1",
            ]
        );
        assert!(changes(&new, &new, &new).is_empty());
    }

    #[test]
    fn changes_made_with_rvsadm_are_reported_when_a_reload_undoes_them() {
        let (_, file) = parse(BASE);
        let mut running = file.clone();
        let key = running.services[0].conf.key;
        let mut d = running.services[0].dests[0].clone();
        d.weight = 7;
        running.apply(&Op::EditDest(key, d)).unwrap();
        running
            .apply(&Op::AddDest(
                key,
                DestConf::new("10.20.0.99".parse().unwrap(), 80),
            ))
            .unwrap();
        let got = texts(&changes(&running, &file, &file));
        assert_eq!(
            got,
            [
                "remove server TCP  10.10.0.100:80 -> 10.20.0.99:80 (overrides a change made with rvsadm)",
                "edit server TCP  10.10.0.100:80 -> 10.20.0.12:80 -m -w 1 (was -m -w 7) (overrides a change made with rvsadm)",
            ]
        );
    }

    #[test]
    fn proxy_protocol_and_toa_are_reloaded_service_settings() {
        let fnat = |extra: &str| {
            format!(
                "[[services]]\nproto = \"tcp\"\nvip = \"10.10.0.100:80\"\nscheduler = \"rr\"\n{extra}\
                 laddrs = [\"10.20.0.200\"]\n\
                 real = [{{ address = \"10.20.0.11:80\", forward = \"fullnat\" }}]\n"
            )
        };
        let (old_cfg, before) = parse(&fnat(""));
        let (new_cfg, after) = parse(&fnat("proxy_protocol = \"v2\"\ntoa = true\n"));
        assert_eq!(restart_only_change(&old_cfg, &new_cfg), None);
        assert_eq!(
            texts(&changes(&before, &before, &after)),
            ["edit service TCP  10.10.0.100:80 -s rr --proxy-protocol v2 --toa (was -s rr)"]
        );
        assert_eq!(
            describe_op(&Op::EditService(after.services[0].conf.clone())),
            "edit service TCP  10.10.0.100:80 -s rr --proxy-protocol v2 --toa"
        );
        // The rules file takes them as -R does, with the table's refusals.
        let (_, mut t) = parse(&fnat(""));
        apply_rules(
            &mut t,
            "-A -t 10.10.0.100:443 -s rr --proxy-protocol v1 --toa\n\
             -a -t 10.10.0.100:443 -r 10.20.0.11:443 -b\n",
        )
        .unwrap();
        assert_eq!(t.services[1].conf.proxy_protocol.name(), "v1");
        assert_eq!(
            apply_rules(&mut t, "-a -t 10.10.0.100:443 -r 10.20.0.12:443 -m\n"),
            Err(
                "line 1: Only FULLNAT servers are allowed in a service with PROXY protocol and TOA"
                    .into()
            )
        );
        assert_eq!(
            apply_rules(&mut t, "-A -u 10.10.0.100:53 --toa\n"),
            Err("line 1: TOA is only for TCP virtual services".into())
        );
    }

    #[test]
    fn what_needs_a_restart_is_named_by_its_field() {
        let (old, _) = parse(BASE);
        let (new, _) = parse(&BASE.replace("net_null0", "net_null1"));
        assert_eq!(
            restart_only_change(&old, &new).as_deref(),
            Some("ports[0].device")
        );
        let (new, _) = parse(&format!("{BASE}\n[workers]\ncount = 2\n"));
        assert_eq!(
            restart_only_change(&old, &new).as_deref(),
            Some("workers.count")
        );
        let (new, _) = parse(&format!(
            "{BASE}\n[[routes]]\nprefix = \"10.30.0.0/16\"\nvia = \"10.10.0.254\"\nport = \"p0\"\n"
        ));
        assert_eq!(restart_only_change(&old, &new), None);
        let (new, _) = parse(&BASE.replace("wrr", "rr"));
        assert_eq!(restart_only_change(&old, &new), None);
        // sloppy_tcp is applied by a reload, and reported as a change.
        let (new, _) = parse(&format!("{BASE}\n[sessions]\nsloppy_tcp = 1\n"));
        assert_eq!(restart_only_change(&old, &new), None);
        let what: Vec<String> = network_changes(&old, &new)
            .into_iter()
            .map(|c| c.what)
            .collect();
        assert_eq!(what, ["sessions.sloppy_tcp: 1 (was 0)"]);
        let (new, _) = parse(&format!("{BASE}\n[sessions]\nexpire_nodest_conn = 1\n"));
        assert_eq!(
            restart_only_change(&old, &new).as_deref(),
            Some("sessions.expire_nodest_conn")
        );
        // A sync group's members and its role change only with a restart.
        let group = |peers: &str| {
            parse(&format!(
                "{BASE}\n[sync]\nstate = \"group\"\npeers = [{peers}]\n"
            ))
            .0
        };
        let (g2, g3) = (
            group("\"10.99.0.1\", \"10.99.0.2\""),
            group("\"10.99.0.1\", \"10.99.0.3\""),
        );
        assert_eq!(
            restart_only_change(&g2, &g3).as_deref(),
            Some("sync.peers[1]")
        );
        assert_eq!(
            restart_only_change(&old, &g2).as_deref(),
            Some("sync.peers")
        );
        // So do the idle pauses and the BGP announcements.
        let (new, _) = parse(&format!("{BASE}\n[workers]\nidle_sleep_max_us = 200\n"));
        assert_eq!(
            restart_only_change(&old, &new).as_deref(),
            Some("workers.idle_sleep_max_us")
        );
        let (new, _) = parse(&format!(
            "{BASE}\n[bgp]\nroutes_file = \"/run/rvs/bird-routes.conf\"\n"
        ));
        assert_eq!(
            restart_only_change(&old, &new).as_deref(),
            Some("bgp.routes_file")
        );
    }

    #[test]
    fn keepalived_conf_services_follow_the_toml_and_a_clash_is_named_by_its_line() {
        let dir = std::env::temp_dir().join(format!("rvs-reload-ka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ka = dir.join("keepalived.conf");
        let toml_path = dir.join("rvsd.toml");
        std::fs::write(
            &toml_path,
            format!(
                "{BASE}\n[control]\nkeepalived_conf = \"{}\"\n",
                ka.display()
            ),
        )
        .unwrap();
        std::fs::write(
            &ka,
            "virtual_server 10.10.0.100 443 {\n lb_algo rr\n lb_kind DR\n real_server 10.20.0.11 443\n}\n",
        )
        .unwrap();
        let (cfg, table, notes) = read(&toml_path).unwrap();
        assert_eq!(cfg.services.len(), 2);
        assert_eq!(table.services.len(), 2);
        assert_eq!(
            notes,
            Vec::<String>::new(),
            "a keepalived.conf with every keyword known has nothing to say"
        );
        // The same virtual server as a [[services]] entry: named by its keepalived line.
        std::fs::write(&ka, "\nvirtual_server 10.10.0.100 80 {\n lb_algo rr\n}\n").unwrap();
        assert_eq!(
            read(&toml_path).unwrap_err(),
            format!(
                "{}: control.keepalived_conf: {}:2: virtual_server 10.10.0.100 80: duplicates an earlier service",
                toml_path.display(),
                ka.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rules_file_is_applied_as_ipvsadm_restores_it_and_a_bad_line_is_named() {
        let (_, mut t) = parse(BASE);
        let rules = "-A -t 10.10.0.100:443 -s rr\n\
                     -a -t 10.10.0.100:443 -r 10.20.0.11:443 -m -w 2\n\
                     \n\
                     ipvsadm -a -t 10.10.0.100:443 -r 10.20.0.12:443 -m -w 1\n";
        apply_rules(&mut t, rules).unwrap();
        assert_eq!(t.services.len(), 2);
        assert_eq!(t.services[1].dests.len(), 2);
        let before = t.clone();
        let mut u = t.clone();
        assert_eq!(
            apply_rules(&mut u, "-a -t 10.10.0.100:8443 -r 10.20.0.11:443 -m\n"),
            Err("line 1: Service not defined".into())
        );
        let e = apply_rules(&mut u, "\n-A -t 10.10.0.100:444 -s nope\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        let e = apply_rules(&mut u, "-L -n\n").unwrap_err();
        assert_eq!(e, "line 1: not a command that changes the table");
        assert_eq!(t, before);
    }
}
