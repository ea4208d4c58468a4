//! rvsd under a service manager: the readiness protocol systemd's `Type=notify` unit
//! (`packaging/rvsd.service`) relies on. The test plays systemd's part: it binds the
//! notification socket, starts rvsd with `$NOTIFY_SOCKET` pointing at it, and checks that
//! `READY=1` arrives only once rvsadm already gets answers (with the dataplane: once the
//! ports are up), that SIGHUP brings `RELOADING=1` then `READY=1`, and that SIGTERM
//! brings `STOPPING=1` and a clean exit.
//!
//! Both a filesystem socket (what systemd uses) and an abstract one (`@name`) are tried.

#![forbid(unsafe_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::bin;

/// A temporary directory with rvsd's configuration, socket and log; removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rvs-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// rvsd as a child; killed on drop (a failing test leaves nothing running).
struct Rvsd(Child);

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn rvsadm(socket: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("timeout")
        .arg("10")
        .arg(bin("rvsadm"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()
        .expect("rvsadm");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits (bounded) for the next notification; panics with rvsd's log when none comes or
/// rvsd exits first.
fn next_message(rx: &UnixDatagram, rvsd: &mut Rvsd, log: &Path, secs: u64) -> String {
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notification socket: {e}"),
        }
        if let Ok(Some(status)) = rvsd.0.try_wait() {
            panic!(
                "rvsd exited ({status}) before notifying: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no notification within {secs} s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Starts rvsd with `config` and `NOTIFY_SOCKET=notify`, waits for READY=1 and checks,
/// at that very moment, that rvsadm `probe` answers; then SIGTERM and STOPPING=1.
fn ready_then_stop(
    dir: &Dir,
    config: &str,
    extra: &[&str],
    rx: &UnixDatagram,
    notify: &str,
    probe: &[&str],
) -> String {
    let socket = dir.0.join("rvsd.sock");
    let cfg = dir.0.join("rvsd.toml");
    std::fs::write(
        &cfg,
        format!("{config}\n[control]\nsocket = \"{}\"\n", socket.display()),
    )
    .expect("config");
    let log = dir.0.join("rvsd.log");
    let logf = std::fs::File::create(&log).expect("log");
    let child = Command::new(bin("rvsd"))
        .arg("--config")
        .arg(&cfg)
        .args(extra)
        .env("NOTIFY_SOCKET", notify)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf)
        .spawn()
        .expect("rvsd");
    let mut rvsd = Rvsd(child);

    let ready = next_message(rx, &mut rvsd, &log, 60);
    // No retry: the moment systemd would start keepalived, rvsadm must get answers.
    let (code, out) = rvsadm(&socket, probe);
    assert!(
        ready.starts_with("READY=1\n"),
        "first notification: {ready:?}"
    );
    assert!(ready.contains("STATUS="), "{ready:?}");
    assert_eq!(code, 0, "rvsadm {probe:?} right after READY=1: {out}");

    // `systemctl reload` (SIGHUP): RELOADING=1 with the monotonic time, then READY=1.
    let pid = rvsd.0.id().to_string();
    let hup = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let reloading = next_message(rx, &mut rvsd, &log, 10);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    let ready = next_message(rx, &mut rvsd, &log, 10);
    assert!(ready.starts_with("READY=1\n"), "after a reload: {ready:?}");
    let (code, _) = rvsadm(&socket, probe);
    assert_eq!(code, 0, "rvsd answers after the reload");

    let kill = Command::new("kill").arg(&pid).status().expect("kill");
    assert!(kill.success());
    let stopping = next_message(rx, &mut rvsd, &log, 10);
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = rvsd.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "rvsd did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "rvsd exit status {status}");
    assert!(!socket.exists(), "control socket left behind");
    out
}

#[test]
fn ready_is_sent_once_rvsadm_gets_answers_path_socket() {
    let dir = Dir::new("path");
    let notify = dir.0.join("notify");
    let rx = UnixDatagram::bind(&notify).expect("bind notify socket");
    let config = "[[services]]\nproto = \"tcp\"\nvip = \"10.99.0.100:80\"\nscheduler = \"rr\"\n";
    let out = ready_then_stop(
        &dir,
        config,
        &["--no-dataplane"],
        &rx,
        notify.to_str().expect("utf-8 path"),
        &["-Ln"],
    );
    assert!(out.contains("TCP  10.99.0.100:80 rr"), "{out}");
}

#[test]
fn ready_is_sent_once_the_ports_are_up_abstract_socket() {
    if !is_root() {
        eprintln!("skipped: DPDK's EAL needs root");
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let dir = Dir::new("abstract");
    let name = format!("rvs-unit-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let rx = UnixDatagram::bind_addr(&addr).expect("bind abstract notify socket");
    let config = format!(
        "[eal]\nfile_prefix = \"rvs-unit-{}\"\nno_huge = true\nin_memory = true\n\n\
         [[ports]]\nname = \"p0\"\ndevice = \"net_null0\"\naddresses = [\"10.99.0.1/24\"]\n\n\
         [workers]\ncount = 1\n",
        std::process::id()
    );
    let out = ready_then_stop(
        &dir,
        &config,
        &[],
        &rx,
        &format!("@{name}"),
        &["--dataplane"],
    );
    // The dataplane answers with its port: the ports were up when READY=1 came.
    assert!(out.contains("port 0 "), "{out}");
    assert!(out.contains("worker 0 "), "{out}");
}
