//! What the end-to-end tests of rvsd and rvsadm share: the binaries, a temporary
//! directory and a child process that clean up after themselves, waiting for rvsd's
//! control socket, and running rvsadm against it.

// Each test binary uses a part of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The rvsd binary under test.
pub const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");
/// The rvsadm binary under test.
pub const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// A temporary directory, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// A fresh, empty directory named after the test process and `name`.
    pub fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rvs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process (rvsd, ldirectord), killed when dropped: a failed assertion leaves
/// none behind.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until rvsd answers on `socket`, at most `secs` seconds.
pub fn wait_for_socket(socket: &Path, secs: u64) {
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "rvsd did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs rvsadm with `args` against the rvsd of `socket` (stdin empty).
pub fn adm(socket: &Path, args: &[&str]) -> Output {
    Command::new(RVSADM)
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Bytes of an output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
