//! rvsd's socket server: a Unix stream socket (mode 0600) serving [`crate::proto`]
//! requests against a shared [`Daemon`], the 2-second estimator tick, and clean removal
//! of the socket on SIGTERM/SIGINT.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::daemon::Daemon;
use crate::estimator::INTERVAL_SECS;

fn lock(d: &Mutex<Daemon>) -> MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the listening socket: makes the parent directory, refuses to start if another
/// daemon answers on the path, removes a stale socket file, binds, and sets mode 0600.
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
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves forever: one thread per client connection, one estimator thread, and a signal
/// thread that removes the socket and exits 0 on SIGTERM or SIGINT.
pub fn run(listener: UnixListener, path: PathBuf, daemon: Daemon) -> io::Result<()> {
    let daemon = Arc::new(Mutex::new(daemon));

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let sig_path = path.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "shutting down");
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
                let is_change = matches!(req, crate::proto::Request::Apply(_));
                let resp = lock(&d).handle(req);
                if is_change {
                    tracing::info!(?resp, "change");
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
