//! BGP announcements through an unmodified BIRD (`[bgp]`).
//!
//! rvsd does not speak BGP. It keeps a file of static routes, one
//! `route A/32 blackhole;` line per address it wants announced, which the operator's
//! BIRD configuration includes inside a `protocol static` whose routes a `protocol bgp`
//! exports; the IPv6 addresses go as `route A/128 blackhole;` lines into a second file
//! (`routes6_file`), since BIRD 2 takes a static protocol's routes in one channel
//! (`ipv4` or `ipv6`) only; each time the set changes rvsd rewrites the file (a temporary file in the
//! same directory renamed over it, so BIRD never reads half of it) and runs
//! `birdc configure`. BIRD then announces the new routes and withdraws the old ones
//! itself. The route kind (`blackhole` or `unreachable`) only gives BIRD a valid static
//! route: the protocol exports nothing to the director's kernel.
//!
//! What is announced is [`announced_set`], in one place: the VIPs and FULLNAT local
//! addresses the dataplane answers for (whatever put them among its local addresses:
//! services, mark rules, LIP pools, a peer's LIPs taken over), nothing while the
//! dataplane is unhealthy or standing by. An [`Announcer`] thread of rvsd compares it with
//! what it last wrote every [`INTERVAL`]; on a clean stop rvsd empties the file and
//! reconfigures BIRD ([`Announcer::withdraw`], also `rvsd --withdraw-routes` for a
//! service manager's stop hook after a crash).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_config::Bgp;

use crate::backend::Backend;

/// How often the announced set is computed and compared with the file.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long rvsd keeps its ports up after withdrawing its routes on a clean stop, so
/// that BIRD's UPDATE messages leave through the exception tap before it goes.
pub const WITHDRAW_GRACE: Duration = Duration::from_millis(500);

/// How long `birdc configure` may take before it is killed (and retried).
pub const BIRDC_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes this director announces: the dataplane's VIPs and FULLNAT local
/// addresses ([`Backend::announced`]; none while it is unhealthy or standing by), sorted,
/// each once. Every announcement rvsd makes is computed here.
pub fn announced_set(backend: &dyn Backend) -> Vec<IpAddr> {
    let mut v = backend.announced();
    v.sort_unstable();
    v.dedup();
    v
}

/// The text of the IPv4 file (`v6` false: `routes_file`) or the IPv6 one (`routes6_file`)
/// for `addrs`: a comment, then one `route A/32 <kind>;` (IPv6: `route A/128 <kind>;`)
/// line for each address of the file's family.
pub fn render(addrs: &[IpAddr], kind: &str, v6: bool) -> String {
    let mut s = format!(
        "# Written by rvsd ([bgp] {}): the VIPs and local addresses this director\n\
         # announces. Included by BIRD in a protocol static ({} channel); do not edit.\n",
        if v6 { "routes6_file" } else { "routes_file" },
        if v6 { "ipv6" } else { "ipv4" },
    );
    for a in addrs.iter().filter(|a| a.is_ipv6() == v6) {
        s.push_str(&format!("route {a}/{} {kind};\n", host_len(a)));
    }
    s
}

/// The host prefix length of `a`'s family: 32 or 128.
fn host_len(a: &IpAddr) -> u8 {
    if a.is_ipv6() {
        128
    } else {
        32
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same directory (mode
/// 0644: BIRD reads it as its own user), synced, then renamed over `path`.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.rvsd-tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Runs `birdc [-s socket] configure`, bounded by [`BIRDC_TIMEOUT`]; `Ok` when BIRD
/// says it reconfigured (or queued the reconfiguration), else what it said.
pub fn birdc_configure(cfg: &Bgp) -> Result<(), String> {
    let mut cmd = Command::new(&cfg.birdc);
    if let Some(s) = &cfg.socket {
        cmd.arg("-s").arg(s);
    }
    cmd.arg("configure")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", cfg.birdc))?;
    let deadline = Instant::now() + BIRDC_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} configure did not finish within {} s",
                    cfg.birdc,
                    BIRDC_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("{}: {e}", cfg.birdc)),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", cfg.birdc))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Reconfigur") {
        Ok(())
    } else {
        Err(text.trim().replace('\n', " / "))
    }
}

/// The announcer: what was last written and reconfigured, and its counters.
#[derive(Debug)]
pub struct Announcer {
    cfg: Bgp,
    /// The set BIRD was last reconfigured with (`None`: not yet, or the last attempt
    /// failed and is retried at the next interval).
    last: Option<Vec<IpAddr>>,
    /// Withdrawn for good (rvsd stops): no more updates.
    stopped: bool,
    /// Successful and failed reconfigurations.
    configures: u64,
    failures: u64,
    /// The last failure's text.
    last_error: Option<String>,
}

/// An announcer shared by its thread, the signal handler and the listings.
pub type SharedAnnouncer = Arc<Mutex<Announcer>>;

impl Announcer {
    /// An announcer for `cfg` (`routes_file` given); nothing is written yet.
    pub fn new(cfg: Bgp) -> Announcer {
        Announcer {
            cfg,
            last: None,
            stopped: false,
            configures: 0,
            failures: 0,
            last_error: None,
        }
    }

    /// Writes `set` and reconfigures BIRD if it differs from what BIRD was last given;
    /// returns whether it did. A failure is logged and retried at the next call.
    pub fn update(&mut self, set: Vec<IpAddr>) -> bool {
        if self.stopped || self.last.as_ref() == Some(&set) {
            return false;
        }
        let before = self.last.clone().unwrap_or_default();
        match self.apply(&set) {
            Ok(()) => {
                let added: Vec<String> = set
                    .iter()
                    .filter(|a| !before.contains(a))
                    .map(|a| a.to_string())
                    .collect();
                let withdrawn: Vec<String> = before
                    .iter()
                    .filter(|a| !set.contains(a))
                    .map(|a| a.to_string())
                    .collect();
                tracing::info!(
                    routes = set.len(),
                    added = %added.join(" "),
                    withdrawn = %withdrawn.join(" "),
                    "bgp: BIRD reconfigured with the announced routes"
                );
                self.last = Some(set);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "bgp: cannot announce the routes; retrying");
                self.last = None;
                false
            }
        }
    }

    /// At the start of rvsd: routes left in the file by a previous run that did not
    /// withdraw them (killed, crashed) are withdrawn (the file emptied, BIRD reconfigured
    /// if it runs), so that nothing is announced before this run decides to. Returns
    /// whether the file held any.
    pub fn clear_stale(&mut self) -> bool {
        let has_routes = |path: &Path| {
            std::fs::read_to_string(path)
                .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("route ")))
        };
        let stale = [&self.cfg.routes_file, &self.cfg.routes6_file]
            .into_iter()
            .flatten()
            .any(|p| has_routes(p));
        if stale {
            match self.apply(&[]) {
                Ok(()) => tracing::info!("bgp: routes left by a previous run withdrawn"),
                Err(e) => {
                    tracing::info!(error = %e, "bgp: routes left by a previous run removed from the file (BIRD not reconfigured)")
                }
            }
        }
        stale
    }

    /// Empties the file and reconfigures BIRD: every route withdrawn, no more updates
    /// (rvsd stops).
    pub fn withdraw(&mut self) {
        self.stopped = true;
        match self.apply(&[]) {
            Ok(()) => tracing::info!("bgp: every route withdrawn"),
            Err(e) => tracing::warn!(error = %e, "bgp: cannot withdraw the routes"),
        }
        self.last = Some(Vec::new());
    }

    /// Writes the files (IPv4 routes into `routes_file`; IPv6 ones into `routes6_file`,
    /// or nowhere without it) and reconfigures BIRD.
    fn apply(&mut self, set: &[IpAddr]) -> Result<(), String> {
        let Some(path) = &self.cfg.routes_file else {
            return Ok(());
        };
        let write = |name: &str, path: &Path, v6: bool| {
            write_atomic(path, &render(set, &self.cfg.route, v6))
                .map_err(|e| format!("bgp.{name} {}: {e}", path.display()))
        };
        let r = write("routes_file", path, false)
            .and_then(|()| match &self.cfg.routes6_file {
                Some(p6) => write("routes6_file", p6, true),
                None => Ok(()),
            })
            .and_then(|()| birdc_configure(&self.cfg));
        match &r {
            Ok(()) => self.configures += 1,
            Err(e) => {
                self.failures += 1;
                self.last_error = Some(e.clone());
            }
        }
        r
    }

    /// The state as text for `rvsadm --dataplane`: a `bgp` line with the file and the
    /// counters, then one `bgp route A/32` (IPv6: `A/128`) line per route BIRD was last
    /// given; IPv6 addresses with no `routes6_file` are listed as `bgp not-announced A/128`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "bgp routes_file={} announced={} configures={} failures={}{}\n",
            self.cfg
                .routes_file
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string()),
            self.last
                .as_ref()
                .map_or("pending".into(), |l| l.len().to_string()),
            self.configures,
            self.failures,
            if self.stopped { " withdrawn" } else { "" },
        );
        for a in self.last.iter().flatten() {
            let what = if a.is_ipv6() && self.cfg.routes6_file.is_none() {
                "not-announced"
            } else {
                "route"
            };
            s.push_str(&format!("bgp {what} {a}/{}\n", host_len(a)));
        }
        if let (Some(e), None) = (&self.last_error, &self.last) {
            s.push_str(&format!("bgp last_error {e}\n"));
        }
        s
    }

    /// The addresses BIRD was last given (empty when none or not yet; IPv6 ones are in
    /// BIRD's files only with `routes6_file`).
    pub fn routes(&self) -> Vec<IpAddr> {
        self.last.clone().unwrap_or_default()
    }
}

/// How often the announcer looks whether the director has joined its group.
pub const JOIN_POLL: Duration = Duration::from_millis(100);

/// Waits until `joined()` says the director has received its group's sessions (the
/// bulk syncs of the peers up), `max` at most; returns how long it waited and whether it
/// ended by `joined` (false: `max` passed).
pub fn wait_joined(max: Duration, joined: impl Fn() -> bool) -> (Duration, bool) {
    let t0 = Instant::now();
    loop {
        if joined() {
            return (t0.elapsed(), true);
        }
        let waited = t0.elapsed();
        if waited >= max {
            return (waited, false);
        }
        std::thread::sleep(JOIN_POLL.min(max - waited));
    }
}

/// Starts the announcer thread: once `joined` says the director has received the bulk
/// syncs of the peers it sees up (always, outside a group), or after `max_delay`
/// (`[bgp] announce_delay_ms`) whichever comes first, every [`INTERVAL`] the set
/// `compute` gives is written if it changed. Returns the shared announcer (for the stop
/// and the listings).
pub fn spawn(
    cfg: Bgp,
    max_delay: Duration,
    joined: impl Fn() -> bool + Send + 'static,
    compute: impl Fn() -> Vec<IpAddr> + Send + 'static,
) -> SharedAnnouncer {
    let a = Arc::new(Mutex::new(Announcer::new(cfg)));
    let shared = a.clone();
    std::thread::spawn(move || {
        a.lock().unwrap_or_else(|e| e.into_inner()).clear_stale();
        let (waited, ok) = wait_joined(max_delay, joined);
        let ms = waited.as_millis() as u64;
        if ok {
            tracing::info!(
                waited_ms = ms,
                "bgp: sessions of the sync group received (or no group); announcing"
            );
        } else {
            tracing::warn!(waited_ms = ms, "bgp: announce_delay_ms passed before every peer up completed its bulk sync; announcing");
        }
        loop {
            let set = compute();
            let mut g = a.lock().unwrap_or_else(|e| e.into_inner());
            if g.stopped {
                return;
            }
            g.update(set);
            drop(g);
            std::thread::sleep(INTERVAL);
        }
    });
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_announcer_waits_for_the_bulk_syncs_bounded_by_the_delay() {
        use std::sync::atomic::{AtomicU32, Ordering};
        // Joined at the third look: announced then, well before the bound.
        let looks = AtomicU32::new(0);
        let (waited, ok) = wait_joined(Duration::from_secs(10), || {
            looks.fetch_add(1, Ordering::Relaxed) >= 2
        });
        assert!(ok);
        assert!(
            waited >= 2 * JOIN_POLL && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        // Never joined: the bound.
        let (waited, ok) = wait_joined(Duration::from_millis(350), || false);
        assert!(!ok);
        assert!(waited >= Duration::from_millis(350) && waited < Duration::from_secs(2));
        // Outside a group (joined at once), or a bound of 0: at once.
        let (waited, ok) = wait_joined(Duration::from_secs(10), || true);
        assert!(ok && waited < JOIN_POLL);
        let (waited, ok) = wait_joined(Duration::ZERO, || false);
        assert!(!ok && waited < JOIN_POLL);
    }

    #[test]
    fn the_file_has_one_static_route_per_address() {
        let set = [
            ip("10.0.0.1"),
            ip("10.0.0.9"),
            ip("2001:db8::1"),
            ip("2001:db8::200"),
        ];
        let t = render(&set, "blackhole", false);
        let routes: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            routes,
            [
                "route 10.0.0.1/32 blackhole;",
                "route 10.0.0.9/32 blackhole;"
            ]
        );
        // The IPv6 file: /128 routes, for a protocol static with an ipv6 channel.
        let t = render(&set, "blackhole", true);
        let routes: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            routes,
            [
                "route 2001:db8::1/128 blackhole;",
                "route 2001:db8::200/128 blackhole;"
            ]
        );
        assert!(t.contains("ipv6 channel"), "{t}");
        assert!(render(&[], "unreachable", false)
            .lines()
            .all(|l| l.starts_with('#')));
    }

    /// A fake birdc (a shell script) that records each call and the file it saw.
    fn fake_birdc(dir: &Path, answer: &str) -> (Bgp, std::path::PathBuf) {
        let log = dir.join("calls");
        let file = dir.join("routes.conf");
        let script = dir.join("birdc");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" >> {log}\ncat {file} >> {log}\necho '{answer}'\n",
                log = log.display(),
                file = file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = Bgp {
            routes_file: Some(file),
            routes6_file: None,
            birdc: script.display().to_string(),
            socket: Some(dir.join("bird.ctl")),
            route: "blackhole".into(),
            announce_delay_ms: 0,
        };
        (cfg, log)
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-bgp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn birdc_runs_only_when_the_set_changes_and_the_stop_withdraws_everything() {
        let d = tmp("update");
        let (cfg, log) = fake_birdc(&d, "0003 Reconfigured");
        let file = cfg.routes_file.clone().unwrap();
        let mut a = Announcer::new(cfg);
        let calls = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.ends_with("configure"))
                .count()
        };
        assert!(a.update(vec![ip("10.0.0.1"), ip("10.0.0.2")]));
        assert_eq!(calls(), 1);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(&format!("-s {} configure", d.join("bird.ctl").display())));
        assert!(text.contains("route 10.0.0.2/32 blackhole;"), "{text}");
        assert!(!a.update(vec![ip("10.0.0.1"), ip("10.0.0.2")]), "same set");
        assert_eq!(calls(), 1);
        assert!(a.update(vec![ip("10.0.0.1")]));
        assert_eq!(calls(), 2);
        assert!(a.describe().contains("announced=1 configures=2 failures=0"));
        a.withdraw();
        assert_eq!(calls(), 3);
        let left = std::fs::read_to_string(&file).unwrap();
        assert!(left.lines().all(|l| l.starts_with('#')), "{left}");
        assert!(!a.update(vec![ip("10.0.0.1")]), "no update after the stop");
        assert_eq!(calls(), 3);
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn ipv6_addresses_go_into_the_second_file_and_are_withdrawn_with_the_rest() {
        let d = tmp("v6");
        let (mut cfg, log) = fake_birdc(&d, "0003 Reconfigured");
        let file = cfg.routes_file.clone().unwrap();
        // Without routes6_file: the IPv6 VIP is not announced, and says so.
        let mut a = Announcer::new(cfg.clone());
        assert!(a.update(vec![ip("10.0.0.1"), ip("2001:db8::1")]));
        let v4 = std::fs::read_to_string(&file).unwrap();
        assert!(v4.contains("route 10.0.0.1/32 blackhole;"), "{v4}");
        assert!(!v4.contains("2001:db8::1"), "{v4}");
        assert!(a.describe().contains("bgp not-announced 2001:db8::1/128\n"));
        // With it: both files written before BIRD is reconfigured.
        let file6 = d.join("routes6.conf");
        cfg.routes6_file = Some(file6.clone());
        let mut a = Announcer::new(cfg.clone());
        assert!(a.update(vec![ip("10.0.0.1"), ip("2001:db8::1")]));
        let v6 = std::fs::read_to_string(&file6).unwrap();
        let routes: Vec<&str> = v6.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(routes, ["route 2001:db8::1/128 blackhole;"]);
        let s = a.describe();
        assert!(
            s.contains("bgp route 10.0.0.1/32\n") && s.contains("bgp route 2001:db8::1/128\n"),
            "{s}"
        );
        assert!(std::fs::read_to_string(&log).unwrap().contains("configure"));
        // A new run finds the IPv6 file's routes stale and empties it too.
        let mut b = Announcer::new(cfg);
        assert!(b.clear_stale());
        let left = std::fs::read_to_string(&file6).unwrap();
        assert!(left.lines().all(|l| l.starts_with('#')), "{left}");
        a.withdraw();
        let left = std::fs::read_to_string(&file6).unwrap();
        assert!(left.lines().all(|l| l.starts_with('#')), "{left}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn routes_left_by_a_killed_run_are_withdrawn_at_the_start() {
        let d = tmp("stale");
        let (cfg, log) = fake_birdc(&d, "0003 Reconfigured");
        let file = cfg.routes_file.clone().unwrap();
        // Nothing there: nothing done.
        let mut a = Announcer::new(cfg.clone());
        assert!(!a.clear_stale());
        assert!(!log.exists());
        // A previous run killed with routes announced: the file is emptied and BIRD
        // reconfigured before anything is decided.
        std::fs::write(&file, render(&[ip("10.0.0.1")], "blackhole", false)).unwrap();
        let mut a = Announcer::new(cfg);
        assert!(a.clear_stale());
        let left = std::fs::read_to_string(&file).unwrap();
        assert!(left.lines().all(|l| l.starts_with('#')), "{left}");
        assert!(std::fs::read_to_string(&log).unwrap().contains("configure"));
        assert!(!a.clear_stale(), "already empty");
        // The next update writes the set as usual.
        assert!(a.update(vec![ip("10.0.0.2")]));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_reconfiguration_is_counted_and_retried() {
        let d = tmp("fail");
        let (cfg, _) = fake_birdc(&d, "bird.conf:3:1 syntax error");
        let mut a = Announcer::new(cfg.clone());
        assert!(!a.update(vec![ip("10.0.0.1")]));
        assert!(!a.update(vec![ip("10.0.0.1")]), "retried, fails again");
        let s = a.describe();
        assert!(
            s.contains("announced=pending configures=0 failures=2"),
            "{s}"
        );
        assert!(s.contains("syntax error"), "{s}");
        let missing = Bgp {
            birdc: d.join("no-such-birdc").display().to_string(),
            ..cfg
        };
        assert!(birdc_configure(&missing).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
