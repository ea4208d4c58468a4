//! rvsd's state and request handling, independent of sockets: the table, the backend,
//! `-Z` baselines and the rate estimators.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::backend::{Backend, BackendError, DataplaneCounters, DestCounters, Stats};
use crate::estimator::Estimator;
use crate::ipvs::{IpvsTable, Op, ServiceKey, CONN_TAB_SIZE, IPVS_VERSION};
use crate::proto::{DestView, Info, LaddrView, Request, Response, ServiceView};
use crate::reload::{Change, Source};

type StatKey = (ServiceKey, Option<(IpAddr, u16)>);

fn source_path(s: &Option<Source>) -> String {
    s.as_ref()
        .map(|s| s.path.display().to_string())
        .unwrap_or_default()
}

/// The daemon: table + backend + counter bookkeeping.
pub struct Daemon {
    table: IpvsTable,
    backend: Box<dyn Backend>,
    baselines: HashMap<StatKey, Stats>,
    estimators: HashMap<StatKey, Estimator>,
    /// The configuration file, for reloads (`None`: started without one, as in tests).
    source: Option<Source>,
    /// The health state's table effect last applied (see [`crate::checks`]).
    health: crate::checks::Overlay,
    /// The running health checks.
    checks: Option<crate::checks::Handle>,
    /// The BGP announcer (`[bgp] routes_file`), for `rvsadm --dataplane`.
    announcer: Option<crate::bgp::SharedAnnouncer>,
}

fn raw_stats(c: &DataplaneCounters, key: &StatKey) -> Stats {
    let Some(s) = c.service(&key.0) else {
        return Stats::default();
    };
    match key.1 {
        None => s.stats,
        Some((a, p)) => s
            .dests
            .iter()
            .find(|d| d.addr == a && d.port == p)
            .map(|d| d.counters.stats)
            .unwrap_or_default(),
    }
}

impl Daemon {
    /// Starts with `table`, installing it into the backend.
    pub fn new(table: IpvsTable, mut backend: Box<dyn Backend>) -> Result<Daemon, BackendError> {
        backend.set_timeouts(&table.timeouts)?;
        backend.apply(&table)?;
        Ok(Daemon {
            table,
            backend,
            baselines: HashMap::new(),
            estimators: HashMap::new(),
            source: None,
            health: Default::default(),
            announcer: None,
            checks: None,
        })
    }

    /// Remembers the configuration file the table came from, so that [`Daemon::reload`]
    /// can read it again.
    pub fn with_source(mut self, source: Source) -> Daemon {
        self.source = Some(source);
        self
    }

    /// Reads the configuration file again and applies the difference in one table change
    /// (see [`crate::reload`]). Returns the changes applied; an error (naming the file and
    /// the field) changes nothing.
    ///
    /// systemd hears `RELOADING=1` before and `READY=1` after (see [`crate::notify`]).
    pub fn reload(&mut self) -> Result<Vec<Change>, String> {
        crate::notify::reloading();
        let r = self.reload_file();
        crate::notify::ready();
        r
    }

    fn reload_file(&mut self) -> Result<Vec<Change>, String> {
        let Some(source) = &self.source else {
            return Err("rvsd was started without a configuration file".into());
        };
        let (cfg, file_table, notes) = crate::reload::read(&source.path)?;
        crate::reload::log_notes(&notes);
        if let Some(field) = crate::reload::restart_only_change(&source.config, &cfg) {
            return Err(format!(
                "{}: {field} changes only with a restart of rvsd; nothing was changed",
                source.path.display()
            ));
        }
        if let Some(e) = crate::reload::sync_key_change(&source.path, source.sync_key, &cfg) {
            return Err(e);
        }
        let mut new = file_table.clone();
        new.daemons = self.table.daemons.clone();
        // Servers the checks hold down stay down; a changed server's checks start again
        // and move it afterwards.
        overlay_full(&mut new, &self.health);
        let mut report = crate::reload::network_changes(&source.config, &cfg);
        report.extend(crate::reload::changes(
            &self.table,
            &source.file_table,
            &new,
        ));
        let old_cfg = source.config.clone();
        let before = std::mem::replace(&mut self.table, new);
        let r = self
            .backend
            .set_network(&cfg)
            .and_then(|()| {
                if before.timeouts != self.table.timeouts {
                    self.backend.set_timeouts(&self.table.timeouts)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| self.backend.apply(&self.table));
        if let Err(e) = r {
            self.table = before;
            let _ = self.backend.set_network(&old_cfg);
            let _ = self.backend.set_timeouts(&self.table.timeouts);
            let _ = self.backend.apply(&self.table);
            return Err(format!(
                "{}: {e}; nothing was changed",
                source_path(&self.source)
            ));
        }
        if let Some(c) = &self.checks {
            c.reconfigure(&cfg);
        }
        if let Some(src) = &mut self.source {
            src.config = cfg;
            src.file_table = file_table;
        }
        self.forget_removed();
        Ok(report)
    }

    /// The configuration rvsd runs from, if it was started with a file.
    pub fn config(&self) -> Option<&rvs_config::Config> {
        self.source.as_ref().map(|s| &s.config)
    }

    /// Attaches the running health checks (for listings, metrics and reloads).
    pub fn set_checks(&mut self, h: crate::checks::Handle) {
        self.checks = Some(h);
    }

    /// The running health checks.
    pub fn checks(&self) -> Option<&crate::checks::Handle> {
        self.checks.as_ref()
    }

    /// Applies the health state `o` in one table change: only what differs from the
    /// state applied before is touched, so a change made with rvsadm to a server stays
    /// until that server's next transition. A refused change keeps the table as it was.
    pub fn set_health(&mut self, o: crate::checks::Overlay) -> Result<(), String> {
        let mut new = self.table.clone();
        overlay_diff(&mut new, &self.health, &o);
        if new != self.table {
            let before = std::mem::replace(&mut self.table, new);
            if let Err(e) = self.backend.apply(&self.table) {
                self.table = before;
                let _ = self.backend.apply(&self.table);
                return Err(e.0);
            }
            self.forget_removed();
        }
        self.health = o;
        Ok(())
    }

    /// The current table.
    pub fn table(&self) -> &IpvsTable {
        &self.table
    }

    fn stat_keys(&self) -> Vec<StatKey> {
        let mut v = Vec::new();
        for s in &self.table.services {
            v.push((s.conf.key, None));
            for d in &s.dests {
                v.push((s.conf.key, Some((d.addr, d.port))));
            }
        }
        v
    }

    /// Active/active sync: LIP takeover and release ([`crate::backend::Backend::group_tick`]).
    pub fn group_tick(&mut self) {
        self.backend.group_tick();
    }

    /// One estimator tick (every 2 s).
    pub fn tick(&mut self) {
        let c = self.backend.counters();
        let keys = self.stat_keys();
        self.estimators.retain(|k, _| keys.contains(k));
        for k in keys {
            let now = raw_stats(&c, &k);
            self.estimators
                .entry(k)
                .or_insert_with(|| Estimator::new(&Stats::default()))
                .update(&now);
        }
    }

    fn forget_removed(&mut self) {
        let keys = self.stat_keys();
        self.baselines.retain(|k, _| keys.contains(k));
        self.estimators.retain(|k, _| keys.contains(k));
    }

    /// Applies a change: the table first (kernel checks), then the backend; a backend
    /// failure rolls the table back.
    pub fn apply(&mut self, op: &Op) -> Response {
        let before = self.table.clone();
        if let Err(e) = self.table.apply(op).and_then(|()| self.sorry_refusal(op)) {
            self.table = before;
            return Response::Error(e);
        }
        let r = match op {
            Op::SetTimeouts(_) => self.backend.set_timeouts(&self.table.timeouts),
            Op::AddLaddr(k, _) | Op::DelLaddr(k, _) => {
                let l = self
                    .table
                    .service(k)
                    .map(|s| s.laddrs.clone())
                    .unwrap_or_default();
                self.backend.set_laddrs(k, &l)
            }
            _ => Ok(()),
        }
        .and_then(|()| self.backend.apply(&self.table));
        if let Err(e) = r {
            self.table = before;
            let _ = self.backend.apply(&self.table);
            return Response::Error(crate::ipvs::IpvsError::Backend(e.0));
        }
        match op {
            Op::Zero(which) => {
                let c = self.backend.counters();
                for k in self.stat_keys() {
                    if which.is_none() || *which == Some(k.0) {
                        let now = raw_stats(&c, &k);
                        self.baselines.insert(k, now);
                        self.estimators
                            .entry(k)
                            .or_insert_with(|| Estimator::new(&now))
                            .zero(&now);
                    }
                }
            }
            Op::DelService(_) | Op::Flush | Op::DelDest(..) => self.forget_removed(),
            _ => {}
        }
        Response::Ok
    }

    /// `-A`/`-E` with `--proxy-protocol` or `--toa` on a service whose configured sorry
    /// server is not FULLNAT: refused as if that server were in the table (it comes in
    /// when the quorum is lost, and would then be refused).
    fn sorry_refusal(&self, op: &Op) -> Result<(), crate::ipvs::IpvsError> {
        let (Op::AddService(conf) | Op::EditService(conf)) = op else {
            return Ok(());
        };
        if conf.client_address_options().is_none() {
            return Ok(());
        }
        let Some(cfg) = self.config() else {
            return Ok(());
        };
        for (i, svc) in cfg.services.iter().enumerate() {
            let (Some(addr), Some(forward)) = (&svc.sorry_server, svc.sorry_forward()) else {
                continue;
            };
            if crate::ipvs::config_key(i, svc).ok() != Some(conf.key) {
                continue;
            }
            let r = rvs_config::Real::new(addr.clone(), forward);
            if let Ok(d) = crate::ipvs::config_dest((i, 0), conf.key, &r) {
                IpvsTable::check_fullnat_dests(conf, &[d])?;
            }
        }
        Ok(())
    }

    fn view(&self, c: &DataplaneCounters, key: &ServiceKey) -> Option<ServiceView> {
        let s = self.table.service(key)?;
        let sc = c.service(key);
        let adj = |k: &StatKey, raw: Stats| {
            raw.since(&self.baselines.get(k).copied().unwrap_or_default())
        };
        let rates = |k: &StatKey| {
            self.estimators
                .get(k)
                .map(Estimator::read)
                .unwrap_or_default()
        };
        let skey = (*key, None);
        let dests = s
            .dests
            .iter()
            .map(|d| {
                let k = (*key, Some((d.addr, d.port)));
                let mut counters: DestCounters = sc
                    .and_then(|x| {
                        x.dests
                            .iter()
                            .find(|e| e.addr == d.addr && e.port == d.port)
                    })
                    .map(|e| e.counters)
                    .unwrap_or_default();
                counters.stats = adj(&k, counters.stats);
                DestView {
                    conf: d.clone(),
                    counters,
                    rates: rates(&k),
                }
            })
            .collect();
        let laddrs = s
            .laddrs
            .iter()
            .map(|l| {
                let e = sc.and_then(|x| x.laddrs.iter().find(|e| e.addr == l.addr));
                LaddrView {
                    laddr: l.clone(),
                    conflicts: e.map(|e| e.conflicts).unwrap_or(0),
                    conns: e.map(|e| e.conns).unwrap_or(0),
                }
            })
            .collect();
        Some(ServiceView {
            conf: s.conf.clone(),
            stats: adj(&skey, sc.map(|x| x.stats).unwrap_or_default()),
            rates: rates(&skey),
            dests,
            laddrs,
        })
    }

    /// What a metrics scrape renders: the services as listed and the dataplane's state,
    /// gathered in one round of questions to the workers.
    pub fn gather_metrics(&self) -> crate::metrics::Gathered {
        let m = self.backend.metrics();
        crate::metrics::Gathered {
            services: self
                .table
                .services
                .iter()
                .filter_map(|s| self.view(&m.counters, &s.conf.key))
                .collect(),
            engine: m.engine,
            checks: self.checks.as_ref().map(|c| c.rows()).unwrap_or_default(),
        }
    }

    /// The routes this director announces now ([`crate::bgp::announced_set`]).
    pub fn announced(&self) -> Vec<std::net::IpAddr> {
        crate::bgp::announced_set(self.backend.as_ref())
    }

    /// Whether the dataplane has received its sync group's sessions (true outside a
    /// group): the announcer's signal to announce.
    pub fn sync_joined(&self) -> bool {
        self.backend.sync_joined()
    }

    /// Sets the BGP announcer whose state `rvsadm --dataplane` shows.
    pub fn set_announcer(&mut self, a: crate::bgp::SharedAnnouncer) {
        self.announcer = Some(a);
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Info => Response::Info(Info {
                version: IPVS_VERSION,
                conn_tab_size: CONN_TAB_SIZE,
                num_services: self.table.services.len() as u32,
            }),
            Request::Apply(op) => self.apply(&op),
            Request::GetServices => {
                let c = self.backend.counters();
                Response::Services(
                    self.table
                        .services
                        .iter()
                        .filter_map(|s| self.view(&c, &s.conf.key))
                        .collect(),
                )
            }
            Request::GetService(k) => {
                let c = self.backend.counters();
                match self.view(&c, &k) {
                    Some(v) => Response::Service(v),
                    None => Response::Error(crate::ipvs::IpvsError::NoSuchService),
                }
            }
            Request::GetConnections => Response::Connections(self.backend.connections()),
            Request::GetTimeouts => Response::Timeouts(self.table.timeouts),
            Request::GetDaemons => Response::Daemons(self.table.daemons.clone()),
            Request::GetAcls => Response::Acls(crate::proto::AclsView {
                global: self.table.acl.clone(),
                services: self
                    .table
                    .services
                    .iter()
                    .map(|s| (s.conf.key, s.acl.clone()))
                    .collect(),
            }),
            Request::Dataplane => {
                let mut text = self.backend.describe();
                if let Some(a) = &self.announcer {
                    // Not while the announcer runs birdc (a bounded wait, but not here).
                    match a.try_lock() {
                        Ok(g) => text.push_str(&g.describe()),
                        Err(_) => text.push_str("bgp reconfiguring\n"),
                    }
                }
                Response::Text(text)
            }
            Request::ListGroup => Response::Text(self.backend.group()),
            Request::ListChecks => Response::Text(crate::checks::list_text(
                &self.checks.as_ref().map(|c| c.rows()).unwrap_or_default(),
            )),
            Request::Reload => match self.reload() {
                Ok(changes) => {
                    log_reload(&changes);
                    Response::Text(reload_text(&changes))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reload refused");
                    Response::Failed(e)
                }
            },
        }
    }
}

use crate::checks::{Effect, Overlay};

fn find_dest<'a>(
    t: &'a mut IpvsTable,
    k: &crate::checks::ServerKey,
) -> Option<&'a mut crate::ipvs::DestConf> {
    t.services
        .iter_mut()
        .find(|s| s.conf.key == k.0)?
        .dests
        .iter_mut()
        .find(|d| d.addr == k.1 && d.port == k.2)
}

/// Puts one server's effect into `t` (`conf`: the configured entry).
fn put(t: &mut IpvsTable, k: &crate::checks::ServerKey, conf: &crate::ipvs::DestConf, e: Effect) {
    let weight = match e {
        Effect::Down { inhibit: false } => {
            let _ = t.apply(&crate::ipvs::Op::DelDest(k.0, k.1, k.2));
            return;
        }
        Effect::Down { inhibit: true } => 0,
        Effect::Weight(w) => w,
        Effect::Up => conf.weight,
    };
    match find_dest(t, k) {
        Some(d) => d.weight = weight,
        None => {
            let mut d = conf.clone();
            d.weight = weight;
            let _ = t.apply(&crate::ipvs::Op::AddDest(k.0, d));
        }
    }
}

/// The whole overlay on a table as the file describes it (a reload).
fn overlay_full(t: &mut IpvsTable, o: &Overlay) {
    for (k, (conf, e)) in &o.servers {
        if *e != Effect::Up && t.service(&k.0).is_some() {
            put(t, k, conf, *e);
        }
    }
    for (svc, d) in &o.sorry {
        if t.service(svc).is_some() {
            let _ = t.apply(&crate::ipvs::Op::AddDest(*svc, d.clone()));
        }
    }
}

/// What changed from `old` to `new` on the running table.
fn overlay_diff(t: &mut IpvsTable, old: &Overlay, new: &Overlay) {
    for (k, (conf, e)) in &new.servers {
        let was = old.servers.get(k).map(|x| x.1).unwrap_or(Effect::Up);
        if was != *e && t.service(&k.0).is_some() {
            put(t, k, conf, *e);
        }
    }
    for (svc, d) in &old.sorry {
        if !new.sorry.contains_key(svc) {
            let _ = t.apply(&crate::ipvs::Op::DelDest(*svc, d.addr, d.port));
        }
    }
    for (svc, d) in &new.sorry {
        if !old.sorry.contains_key(svc) && t.service(svc).is_some() {
            let _ = t.apply(&crate::ipvs::Op::AddDest(*svc, d.clone()));
        }
    }
}

/// What `rvsadm --reload` prints: one line per change applied.
pub fn reload_text(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "reload: no changes\n".into();
    }
    let n = changes.len();
    let mut out = format!("reload: {n} change{}\n", if n == 1 { "" } else { "s" });
    for c in changes {
        out.push_str(&format!("  {c}\n"));
    }
    out
}

/// Logs a reload's changes, one line each.
pub fn log_reload(changes: &[Change]) {
    tracing::info!(changes = changes.len(), "configuration reloaded");
    for c in changes {
        tracing::info!(overrides_rvsadm = c.overrides_rvsadm, "reload: {}", c.what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ConnRow, DestCounterEntry, ServiceCounters};
    use crate::ipvs::{DestConf, Protocol, ServiceConf};
    use std::sync::{Arc, Mutex};

    /// A backend whose counters the test sets.
    struct Fake(Arc<Mutex<DataplaneCounters>>, bool);

    impl Backend for Fake {
        fn apply(&mut self, t: &IpvsTable) -> Result<(), BackendError> {
            if self.1 && t.services.len() > 1 {
                return Err(BackendError("dataplane full".into()));
            }
            Ok(())
        }
        fn counters(&self) -> DataplaneCounters {
            self.0.lock().unwrap().clone()
        }
        fn connections(&self) -> Vec<ConnRow> {
            Vec::new()
        }
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "1.2.3.4".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn zero_rates_and_rollback() {
        let counters = Arc::new(Mutex::new(DataplaneCounters::default()));
        let mut d = Daemon::new(IpvsTable::new(), Box::new(Fake(counters.clone(), true))).unwrap();
        assert_eq!(
            d.apply(&Op::AddService(ServiceConf::new(key(80)))),
            Response::Ok
        );
        let dest = DestConf::new("10.0.0.1".parse().unwrap(), 80);
        assert_eq!(d.apply(&Op::AddDest(key(80), dest)), Response::Ok);
        // The backend refuses a second service: the table is rolled back.
        assert_eq!(
            d.apply(&Op::AddService(ServiceConf::new(key(81)))),
            Response::Error(crate::ipvs::IpvsError::Backend("dataplane full".into()))
        );
        assert_eq!(d.table().services.len(), 1);
        let mut total = 0u64;
        for _ in 0..30 {
            total += 2000;
            *counters.lock().unwrap() = DataplaneCounters {
                services: vec![ServiceCounters {
                    key: key(80),
                    stats: Stats {
                        conns: total,
                        ..Default::default()
                    },
                    dests: vec![DestCounterEntry {
                        addr: "10.0.0.1".parse().unwrap(),
                        port: 80,
                        counters: DestCounters {
                            active_conns: 3,
                            inact_conns: 4,
                            persist_conns: 0,
                            stats: Stats {
                                conns: total,
                                ..Default::default()
                            },
                        },
                    }],
                    laddrs: vec![],
                }],
            };
            d.tick();
        }
        let Response::Service(v) = d.handle(Request::GetService(key(80))) else {
            panic!()
        };
        assert_eq!(v.stats.conns, 60000);
        assert_eq!(v.rates.cps, 1000);
        assert_eq!(v.dests[0].counters.active_conns, 3);
        assert_eq!(v.dests[0].rates.cps, 1000);
        assert_eq!(d.apply(&Op::Zero(None)), Response::Ok);
        let Response::Service(v) = d.handle(Request::GetService(key(80))) else {
            panic!()
        };
        assert_eq!(v.stats.conns, 0);
        assert_eq!(v.rates.cps, 0);
        assert_eq!(v.dests[0].counters.stats.conns, 0);
        // Active/inactive counts are not zeroed (as the kernel).
        assert_eq!(v.dests[0].counters.inact_conns, 4);
    }

    /// Counts the table changes the backend sees.
    struct Counting(Arc<Mutex<usize>>);

    impl Backend for Counting {
        fn apply(&mut self, _: &IpvsTable) -> Result<(), BackendError> {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
        fn counters(&self) -> DataplaneCounters {
            DataplaneCounters::default()
        }
        fn connections(&self) -> Vec<ConnRow> {
            Vec::new()
        }
    }

    #[test]
    fn a_configured_sorry_server_that_is_not_fullnat_refuses_proxy_protocol_and_toa() {
        use crate::ipvs::{IpvsError, ProxyProtocol};
        let dir = std::env::temp_dir().join(format!("rvs-daemon-sorry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rvs.toml");
        std::fs::write(
            &path,
            "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nladdrs = [\"10.0.0.200\"]\n\
             sorry_server = \"10.0.0.9:80\"\nsorry_server_forward = \"masq\"\n\
             real = [{ address = \"10.0.0.1:80\", forward = \"fullnat\" }]\n",
        )
        .unwrap();
        let (src, _) = Source::load(&path).unwrap();
        let mut d = Daemon::new(
            src.file_table.clone(),
            Box::new(Counting(Default::default())),
        )
        .unwrap()
        .with_source(src);
        let mut c = d.table().services[0].conf.clone();
        c.proxy_protocol = ProxyProtocol::V2;
        let before = d.table().clone();
        assert_eq!(
            d.apply(&Op::EditService(c.clone())),
            Response::Error(IpvsError::ServiceNotFullnat {
                options: "PROXY protocol".into(),
                server: "10.0.0.9:80".into(),
                forward: "Masq".into(),
            })
        );
        assert_eq!(
            IpvsError::ServiceNotFullnat {
                options: "PROXY protocol".into(),
                server: "10.0.0.9:80".into(),
                forward: "Masq".into(),
            }
            .to_string(),
            "PROXY protocol is allowed only with FULLNAT servers (10.0.0.9:80 is Masq)"
        );
        assert_eq!(*d.table(), before);
        // Another service (no sorry server) takes them.
        let mut other = ServiceConf::new(key(81));
        other.toa = true;
        assert_eq!(d.apply(&Op::AddService(other)), Response::Ok);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_sync_key_is_read_at_start_and_a_reload_refuses_to_change_it_by_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rvs-daemon-synckey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rvs.toml");
        let key = dir.join("sync.key");
        let other = dir.join("other.key");
        let write_key = |p: &std::path::Path, k: &str, mode: u32| {
            std::fs::write(p, k).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let service = "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n";
        let config = |k: &std::path::Path, extra: &str| {
            std::fs::write(
                &path,
                format!(
                    "[sync]\nkey_file = {:?}\n{service}{extra}",
                    k.display().to_string()
                ),
            )
            .unwrap();
        };
        // Refused at start: readable by others.
        write_key(&key, "0123456789abcdef0123456789abcdef\n", 0o644);
        config(&key, "");
        let e = Source::load(&path).unwrap_err();
        assert!(
            e.contains("sync.key_file:") && e.contains("chmod 600"),
            "{e}"
        );
        write_key(&key, "0123456789abcdef0123456789abcdef\n", 0o600);
        let (src, _) = Source::load(&path).unwrap();
        assert_eq!(
            src.sync_key,
            rvs_dataplane::sync::auth::SyncKey::new(b"0123456789abcdef0123456789abcdef").ok()
        );
        assert!(
            !format!("{src:?}").contains("0123456789abcdef"),
            "Debug hides the key"
        );
        let mut d = Daemon::new(
            src.file_table.clone(),
            Box::new(Counting(Default::default())),
        )
        .unwrap()
        .with_source(src);
        // The same key: a reload applies the rest.
        config(&key, "scheduler = \"rr\"\n");
        assert_eq!(d.reload().unwrap().len(), 1);
        // Another file, another key in the same file, a file that became readable: refused
        // by name, nothing changed.
        write_key(&other, "fedcba9876543210fedcba9876543210", 0o600);
        config(&other, "scheduler = \"wrr\"\n");
        let e = d.reload().unwrap_err();
        assert!(
            e.ends_with("sync.key_file changes only with a restart of rvsd; nothing was changed"),
            "{e}"
        );
        config(&key, "scheduler = \"wrr\"\n");
        write_key(&key, "fedcba9876543210fedcba9876543210", 0o600);
        let e = d.reload().unwrap_err();
        assert!(
            e.contains("sync.key_file: the key changed; the sync key changes only with a restart of rvsd; nothing was changed"),
            "{e}"
        );
        write_key(&key, "0123456789abcdef0123456789abcdef\n", 0o604);
        let e = d.reload().unwrap_err();
        assert!(
            e.contains("sync.key_file:") && e.ends_with("nothing was changed"),
            "{e}"
        );
        assert_eq!(d.table().services[0].conf.scheduler, "rr");
        write_key(&key, "0123456789abcdef0123456789abcdef", 0o600);
        assert_eq!(d.reload().unwrap().len(), 1, "the same key again");
        assert_eq!(d.table().services[0].conf.scheduler, "wrr");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn health_is_one_table_change_and_a_reload_keeps_down_servers_down() {
        use crate::checks::{Effect, Overlay};
        let dir = std::env::temp_dir().join(format!("rvs-daemon-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rvs.toml");
        std::fs::write(
            &path,
            "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nsorry_server = \"10.0.0.9:80\"\nreal = [\n\
             { address = \"10.0.0.1:80\", forward = \"masq\", weight = 3 },\n\
             { address = \"10.0.0.2:80\", forward = \"masq\", weight = 2 },\n]\n",
        )
        .unwrap();
        let (src, _) = Source::load(&path).unwrap();
        let applies = Arc::new(Mutex::new(0));
        let mut d = Daemon::new(src.file_table.clone(), Box::new(Counting(applies.clone())))
            .unwrap()
            .with_source(src);
        let k = key(80);
        let conf = |a: &str, w: i32| {
            let mut c = DestConf::new(a.parse().unwrap(), 80);
            c.forward = crate::ipvs::Forward::Masq;
            c.weight = w;
            c
        };
        let sk = |a: &str| (k, a.parse::<IpAddr>().unwrap(), 80u16);
        let weights = |d: &Daemon| {
            let mut v: Vec<(String, i32)> = d.table().services[0]
                .dests
                .iter()
                .map(|x| (x.addr.to_string(), x.weight))
                .collect();
            v.sort();
            v
        };
        let mut o = Overlay::default();
        o.servers.insert(
            sk("10.0.0.1"),
            (conf("10.0.0.1", 3), Effect::Down { inhibit: false }),
        );
        o.servers.insert(
            sk("10.0.0.2"),
            (conf("10.0.0.2", 2), Effect::Down { inhibit: true }),
        );
        let before = *applies.lock().unwrap();
        d.set_health(o.clone()).unwrap();
        assert_eq!(*applies.lock().unwrap(), before + 1, "one table change");
        assert_eq!(weights(&d), [("10.0.0.2".into(), 0)]);
        // The file is read again: the down server stays out, the inhibited one at 0.
        assert_eq!(d.reload().unwrap(), vec![]);
        assert_eq!(weights(&d), [("10.0.0.2".into(), 0)]);
        // Quorum lost: the sorry server comes in.
        o.sorry.insert(k, conf("10.0.0.9", 1));
        d.set_health(o.clone()).unwrap();
        assert_eq!(
            weights(&d),
            [("10.0.0.2".into(), 0), ("10.0.0.9".into(), 1)]
        );
        // Both back: configured weights, sorry server out.
        o.sorry.clear();
        o.servers
            .insert(sk("10.0.0.1"), (conf("10.0.0.1", 3), Effect::Up));
        o.servers
            .insert(sk("10.0.0.2"), (conf("10.0.0.2", 2), Effect::Weight(5)));
        d.set_health(o.clone()).unwrap();
        assert_eq!(
            weights(&d),
            [("10.0.0.1".into(), 3), ("10.0.0.2".into(), 5)]
        );
        // Nothing changed: no table change at all.
        let n = *applies.lock().unwrap();
        d.set_health(o).unwrap();
        assert_eq!(*applies.lock().unwrap(), n);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
