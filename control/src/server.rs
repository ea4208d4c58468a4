//! rvsd's socket server: a Unix stream socket (mode 0600) serving [`crate::proto`]
//! requests against a shared [`Daemon`], the 2-second estimator tick, and clean removal
//! of the socket on SIGTERM/SIGINT.

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::daemon::Daemon;
use crate::estimator::INTERVAL_SECS;

/// How often the LIP takeover of a sync group looks at its peers.
const GROUP_TICK: Duration = Duration::from_millis(500);

fn lock(d: &Mutex<Daemon>) -> MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the listening socket: makes the parent directory, refuses to start if another
/// daemon answers on the path, removes a stale socket file, binds, and sets mode 0600.
///
/// The socket is bound and listening under a temporary name in the same directory, then
/// renamed into place: whoever sees the file (a supervisor, a script waiting for rvsd to
/// come up) can connect at once. Bound in place, the file would exist between `bind` and
/// `listen`, and a connection in that window is refused as if no daemon were running.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another rvsd is serving {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let l = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(l)
}

/// SIGHUP: reads the configuration file again; the outcome goes to the log.
fn reload(daemon: &Mutex<Daemon>) {
    tracing::info!("SIGHUP: reloading the configuration");
    match lock(daemon).reload() {
        Ok(changes) => crate::daemon::log_reload(&changes),
        Err(e) => tracing::warn!(error = %e, "reload refused"),
    }
}

/// Serves forever: one thread per client connection, one estimator thread, the metrics
/// endpoint when `metrics` is given (see [`crate::metrics`]), and a signal thread that
/// removes the socket and exits 0 on SIGTERM or SIGINT and reloads the configuration on
/// SIGHUP.
pub fn run(
    listener: UnixListener,
    path: PathBuf,
    daemon: Daemon,
    metrics: Option<TcpListener>,
) -> io::Result<()> {
    let cfg = daemon.config().cloned();
    let daemon = Arc::new(Mutex::new(daemon));
    // Health checks: the initial state (servers of `alpha` services down) is in the
    // table before rvsadm is served.
    let checks = match &cfg {
        Some(cfg) => {
            let h = crate::checks::start(cfg, daemon.clone())?;
            lock(&daemon).set_checks(h.clone());
            Some(h)
        }
        None => None,
    };

    if let Some(l) = metrics {
        let d = daemon.clone();
        let exporter = crate::metrics::Exporter::new();
        let addr = l.local_addr()?;
        crate::metrics::spawn(
            l,
            crate::metrics::Limits::default(),
            Arc::new(move || {
                // The lock is held while the workers answer, then released: rendering and
                // writing happen without it.
                let g = lock(&d).gather_metrics();
                exporter.render(g)
            }),
        )?;
        tracing::info!(%addr, "metrics endpoint listening");
    }

    // BGP: the announcer thread, from the time rvsd is ready and, in a sync group, its
    // peers' bulk syncs have arrived (announce_delay_ms at most).
    let announcer = cfg
        .as_ref()
        .filter(|c| c.bgp.routes_file.is_some())
        .map(|c| {
            let (d, dj) = (daemon.clone(), daemon.clone());
            let a = crate::bgp::spawn(
                c.bgp.clone(),
                Duration::from_millis(c.bgp.announce_delay_ms.max(0) as u64),
                move || lock(&dj).sync_joined(),
                move || lock(&d).announced(),
            );
            lock(&daemon).set_announcer(a.clone());
            a
        });

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let sig_path = path.clone();
    let sig_daemon = daemon.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == signal_hook::consts::SIGHUP {
                reload(&sig_daemon);
                continue;
            }
            tracing::info!(signal = sig, "shutting down");
            // First of all, the routers stop sending traffic here.
            if let Some(a) = &announcer {
                a.lock().unwrap_or_else(|e| e.into_inner()).withdraw();
                // BIRD sends the withdrawals over the exception path: keep the ports
                // (and the tap) up while it does.
                std::thread::sleep(crate::bgp::WITHDRAW_GRACE);
            }
            if let Some(c) = &checks {
                c.omega();
            }
            crate::checks::via::clear();
            crate::notify::stopping();
            let _ = std::fs::remove_file(&sig_path);
            std::process::exit(0);
        }
    });

    let est = daemon.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(INTERVAL_SECS));
        lock(&est).tick();
    });

    // Sync group: a dead peer's LIPs are taken over within half a second of it being
    // seen down (3 s without a message).
    let grp = daemon.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(GROUP_TICK);
        lock(&grp).group_tick();
    });

    tracing::info!(socket = %path.display(), "listening");
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let d = daemon.clone();
        std::thread::spawn(move || {
            let r = crate::proto::serve(stream, |req| {
                tracing::debug!(?req, "request");
                let change = match &req {
                    crate::proto::Request::Apply(op) => Some(crate::reload::describe_op(op)),
                    _ => None,
                };
                let resp = lock(&d).handle(req);
                if let Some(what) = change {
                    match &resp {
                        crate::proto::Response::Ok => tracing::info!("rvsadm: {what}"),
                        crate::proto::Response::Error(e) => {
                            tracing::info!(error = %e, "rvsadm refused: {what}")
                        }
                        other => tracing::info!(response = ?other, "rvsadm: {what}"),
                    }
                }
                resp
            });
            if let Err(e) = r {
                tracing::debug!(error = %e, "client connection ended");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Supervisors and scripts wait for rvsd's socket file to appear and then connect
    /// (the labs' harness did): the file must never be seen before it accepts
    /// connections. A watcher connects the moment it sees the file, over 2000 starts.
    #[test]
    fn the_socket_file_appears_only_once_it_accepts_connections() {
        let dir = std::env::temp_dir().join(format!("rvs-bind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("rvsd.sock");
        let (mut seen, mut refused) = (0u32, 0u32);
        // Rounds of 400 starts: every listener of a round stays open until its watcher
        // stops, so that a connection that found a file just before it was removed still
        // reaches its listener (closed, it would be refused, as an exiting daemon's is).
        for _ in 0..5 {
            let stop = Arc::new(AtomicBool::new(false));
            let (watch_path, watch_stop) = (path.clone(), stop.clone());
            let watcher = std::thread::spawn(move || {
                let (mut seen, mut refused) = (0u32, 0u32);
                while !watch_stop.load(Ordering::Relaxed) {
                    if watch_path.exists() {
                        seen += 1;
                        // Refused: the file is there and nothing listens. (Once the file
                        // is removed below, connecting fails with NotFound instead, or
                        // reaches the listener, still open.)
                        if let Err(e) = UnixStream::connect(&watch_path) {
                            if e.kind() == io::ErrorKind::ConnectionRefused {
                                refused += 1;
                            }
                        }
                    }
                }
                (seen, refused)
            });
            let mut listeners = Vec::new();
            for _ in 0..400 {
                listeners.push(bind(&path).expect("bind"));
                let _ = std::fs::remove_file(&path);
            }
            stop.store(true, Ordering::Relaxed);
            let (s, r) = watcher.join().expect("watcher");
            (seen, refused) = (seen + s, refused + r);
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(seen > 0, "the watcher saw the socket file at least once");
        assert_eq!(
            refused, 0,
            "connections refused though the file was there ({seen} seen)"
        );
    }
}
