//! systemd's readiness protocol (`sd_notify(3)`) without libsystemd: rvsd tells the service
//! manager when it is ready, reloading or stopping by sending one datagram per state change
//! to the Unix socket named in `$NOTIFY_SOCKET`.
//!
//! `$NOTIFY_SOCKET` is a filesystem path (`/run/systemd/notify`) or, when it starts with
//! `@`, a Linux abstract socket name. When it is unset (rvsd started by hand, or by a
//! unit that is not `Type=notify`) every function here does nothing.
//!
//! | function | sends |
//! |---|---|
//! | [`ready`] | `READY=1`, `STATUS=…`: the ports are up and rvsadm gets answers |
//! | [`reloading`] | `RELOADING=1`, `MONOTONIC_USEC=…` (`Type=notify-reload` wants both) |
//! | [`stopping`] | `STOPPING=1`, `STATUS=…` |
//! | [`status`] | `STATUS=…`: free text `systemctl status rvsd` shows |
//!
//! Errors are logged and otherwise ignored: a daemon must keep serving when the service
//! manager went away.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// The environment variable naming the service manager's notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=value` assignments) to the socket `socket`, a
/// path or `@abstract-name`.
pub fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    if bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is empty",
        ));
    }
    let sock = UnixDatagram::unbound()?;
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        send_abstract(&sock, name, state.as_bytes())?
    } else {
        sock.send_to(state.as_bytes(), socket)?
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to NOTIFY_SOCKET",
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], buf: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(buf, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_sock: &UnixDatagram, _name: &[u8], _buf: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract NOTIFY_SOCKET names exist on Linux only",
    ))
}

/// Sends `state` to `$NOTIFY_SOCKET`; returns whether it was sent (`false` when the
/// variable is unset or sending failed, which is logged).
pub fn notify(state: &str) -> bool {
    notify_env(std::env::var_os(NOTIFY_SOCKET), state)
}

fn notify_env(socket: Option<OsString>, state: &str) -> bool {
    let Some(socket) = socket else {
        return false;
    };
    match send_to(&socket, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(socket = ?socket, error = %e, "cannot notify the service manager");
            false
        }
    }
}

/// A `STATUS=` value on one line (the protocol is line-based).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `READY=1`: rvsd's ports are up, its control socket is bound, and it serves rvsadm.
/// Sent at start-up and again when a reload is complete.
pub fn ready() -> bool {
    notify("READY=1\nSTATUS=Serving rvsadm\n")
}

/// `RELOADING=1` with `MONOTONIC_USEC` (the current `CLOCK_MONOTONIC` in microseconds, as
/// systemd's reload protocol requires); send [`ready`] when the reload is done.
pub fn reloading() -> bool {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Reloading configuration\n",
        monotonic_usec()
    ))
}

/// `STOPPING=1`: rvsd is shutting down (SIGTERM or SIGINT).
pub fn stopping() -> bool {
    notify("STOPPING=1\nSTATUS=Stopping\n")
}

/// `STATUS=text`: a one-line status `systemctl status rvsd` shows.
pub fn status(text: &str) -> bool {
    notify(&format!("STATUS={}\n", one_line(text)))
}

/// `CLOCK_MONOTONIC` in microseconds (the clock systemd compares `MONOTONIC_USEC` with).
pub fn monotonic_usec() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nsecs = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nsecs / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> (UnixDatagram, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "rvs-notify-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let r = UnixDatagram::bind(&path).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (r, path)
    }

    fn recv(r: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = r.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let (r, path) = receiver();
        assert!(notify_env(Some(path.clone().into()), "READY=1\n"));
        assert_eq!(recv(&r), "READY=1\n");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rvs-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let r = UnixDatagram::bind_addr(&addr).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(notify_env(Some(format!("@{name}").into()), "STOPPING=1\n"));
        assert_eq!(recv(&r), "STOPPING=1\n");
    }

    #[test]
    fn unset_socket_is_a_no_op_and_bad_sockets_are_errors() {
        assert!(!notify_env(None, "READY=1\n"));
        assert!(send_to(OsStr::new(""), "READY=1\n").is_err());
        let missing = std::env::temp_dir().join(format!("rvs-no-such-{}", std::process::id()));
        assert!(send_to(missing.as_os_str(), "READY=1\n").is_err());
        assert!(!notify_env(Some(missing.into()), "READY=1\n"));
        // Longer than sun_path: refused, not truncated to some other socket's name.
        let long = format!("@{}", "a".repeat(200));
        assert!(send_to(OsStr::new(&long), "READY=1\n").is_err());
        assert!(send_to(OsStr::new(&long[1..]), "READY=1\n").is_err());
    }

    #[test]
    fn public_functions_follow_the_protocol() {
        // The only test that reads $NOTIFY_SOCKET: it sets it for this process.
        let (r, path) = receiver();
        std::env::set_var(NOTIFY_SOCKET, &path);
        assert!(ready());
        let m = recv(&r);
        assert!(m.starts_with("READY=1\n"), "{m}");
        assert!(m.contains("\nSTATUS="), "{m}");

        let before = monotonic_usec();
        assert!(reloading());
        let m = recv(&r);
        let after = monotonic_usec();
        assert!(m.starts_with("RELOADING=1\n"), "{m}");
        let usec: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .expect("MONOTONIC_USEC")
            .parse()
            .expect("a number");
        assert!(before <= usec && usec <= after, "{before} {usec} {after}");

        assert!(stopping());
        assert!(recv(&r).starts_with("STOPPING=1\n"));

        assert!(status("two\nlines"));
        assert_eq!(recv(&r), "STATUS=two lines\n");

        std::env::remove_var(NOTIFY_SOCKET);
        assert!(!ready());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn monotonic_clock_is_the_one_instant_uses() {
        // std's Instant is CLOCK_MONOTONIC on Linux: a sleep moves both alike.
        let a = monotonic_usec();
        let i = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let b = monotonic_usec();
        let elapsed = i.elapsed().as_micros() as u64;
        assert!(b - a >= 20_000, "{a} {b}");
        assert!((b - a).abs_diff(elapsed) < 10_000, "{} vs {elapsed}", b - a);
        // And it is not the wall clock: seconds since boot, far below the epoch's.
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(a < wall / 2);
    }
}
