//! The Debian package, installed for real: `scripts/package` builds `rvs_<version>_<arch>.deb`,
//! `dpkg -i` installs it on this machine, and the test checks what an operator would:
//! `ipvsadm` is rvsadm (through update-alternatives, in /usr/bin so it does not collide
//! with Debian's ipvsadm in /usr/sbin), `ipvsadm -h` prints rvsadm's help, the example
//! /etc/rvs/rvsd.toml passes `rvsd --check` and loads, the units, man pages and the
//! ipvsadm man page alternative are in place, `systemd-analyze verify` accepts the units,
//! and `dpkg --purge rvs` takes all of it away again.
//!
//! The package is built with `--profile debug`: it reuses the debug binaries the rest of
//! the tests use, where a release build (LTO, one codegen unit) would take many minutes.
//! A guard purges the package when the test ends, also when it fails, and a leftover
//! installation from an interrupted run is purged first, so the test can run again.
//! Skipped (with the reason printed) when not root or without dpkg.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd args`, returning its output (no panic on failure).
fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn have(cmd: &str) -> bool {
    sh("sh", &["-c", &format!("command -v {cmd}")])
        .status
        .success()
}

fn is_root() -> bool {
    String::from_utf8_lossy(&sh("id", &["-u"]).stdout).trim() == "0"
}

/// dpkg with `args`, waiting (bounded) while another dpkg or apt holds the lock.
fn dpkg(args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("timeout")
            .arg("120")
            .arg("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("dpkg");
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn installed() -> bool {
    String::from_utf8_lossy(&sh("dpkg-query", &["-W", "-f=${Status}", "rvs"]).stdout)
        .contains("installed")
}

/// Purges the rvs package when dropped (and when created: a leftover of an interrupted run).
struct Installed;

impl Installed {
    fn purge() {
        if installed() || sh("dpkg-query", &["-W", "rvs"]).status.success() {
            let out = dpkg(&["--purge", "rvs"]);
            assert!(out.status.success(), "dpkg --purge rvs: {}", text(&out));
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() || sh("dpkg-query", &["-W", "rvs"]).status.success() {
            let _ = dpkg(&["--purge", "rvs"]);
        }
    }
}

/// The installed rvsd, control plane only, on a private socket; killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn readlink_f(p: &str) -> String {
    String::from_utf8_lossy(&sh("readlink", &["-f", p]).stdout)
        .trim()
        .to_owned()
}

fn zcat(p: &str) -> String {
    let o = sh("zcat", &[p]);
    assert!(o.status.success(), "zcat {p}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The PATH root's login shell has (Debian's ENV_SUPATH).
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn package_installs_provides_ipvsadm_and_purges_cleanly() {
    if !is_root() {
        eprintln!("skipped: installing a package needs root");
        return;
    }
    for tool in ["dpkg", "dpkg-deb", "dpkg-shlibdeps", "update-alternatives"] {
        if !have(tool) {
            eprintln!("skipped: {tool} is missing (scripts/setup installs dpkg-dev)");
            return;
        }
    }
    let tmp = TempDir(std::env::temp_dir().join(format!("rvs-package-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    std::fs::create_dir_all(&tmp.0).expect("temp dir");
    // A real ipvsadm, when installed, comes first in root's PATH by design.
    let real_ipvsadm =
        String::from_utf8_lossy(&sh("dpkg-query", &["-W", "-f=${Status}", "ipvsadm"]).stdout)
            .contains("install ok installed");

    // Build (bounded: the debug binaries are normally built already).
    let build = Command::new("timeout")
        .arg("600")
        .arg("bash")
        .arg(workspace().join("scripts/package"))
        .args(["--profile", "debug", "--out"])
        .arg(&tmp.0)
        .stdin(Stdio::null())
        .output()
        .expect("scripts/package");
    assert!(build.status.success(), "scripts/package: {}", text(&build));
    let deb = String::from_utf8_lossy(&build.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        deb.ends_with(".deb") && Path::new(&deb).exists(),
        "{}",
        text(&build)
    );

    let info = text(&sh("dpkg-deb", &["-I", &deb]));
    assert!(info.contains("Package: rvs\n"), "{info}");
    assert!(info.contains("librte-eal23"), "Depends lacks DPDK: {info}");
    assert!(
        info.contains("librte-net-af-packet23"),
        "Depends lacks the PMDs: {info}"
    );
    assert!(info.contains("Suggests: keepalived"), "{info}");
    let contents = text(&sh("dpkg-deb", &["-c", &deb]));
    assert!(
        !contents.contains("ipvsadm"),
        "the package must not own an ipvsadm path: {contents}"
    );

    Installed::purge();
    let guard = Installed;
    let out = dpkg(&["-i", &deb]);
    assert!(out.status.success(), "dpkg -i: {}", text(&out));

    // ipvsadm is rvsadm, through the alternative in /usr/bin.
    assert_eq!(readlink_f("/usr/bin/ipvsadm"), "/usr/sbin/rvsadm");
    let which = sh(
        "env",
        &[
            &format!("PATH={ROOT_PATH}"),
            "sh",
            "-c",
            "command -v ipvsadm",
        ],
    );
    let which = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    if real_ipvsadm {
        eprintln!("note: Debian's ipvsadm is installed: it comes first in PATH ({which})");
        assert_eq!(readlink_f(&which), "/usr/sbin/ipvsadm");
    } else {
        assert_eq!(
            readlink_f(&which),
            "/usr/sbin/rvsadm",
            "command -v ipvsadm: {which}"
        );
    }
    let alt = text(&sh("update-alternatives", &["--query", "ipvsadm"]));
    assert!(alt.contains("Value: /usr/sbin/rvsadm"), "{alt}");

    // The example configuration is valid ...
    let check = sh("rvsd", &["--check", "--config", "/etc/rvs/rvsd.toml"]);
    assert!(check.status.success(), "rvsd --check: {}", text(&check));
    let conffiles = text(&sh("dpkg-query", &["-W", "-f=${Conffiles}", "rvs"]));
    assert!(conffiles.contains("/etc/rvs/rvsd.toml"), "{conffiles}");

    // ... and loads: the installed rvsd (control plane only) serves the installed ipvsadm.
    let socket = tmp.0.join("rvsd.sock");
    let log = std::fs::File::create(tmp.0.join("rvsd.log")).expect("log");
    let daemon = Daemon(
        Command::new("/usr/sbin/rvsd")
            .args([
                "--no-dataplane",
                "--config",
                "/etc/rvs/rvsd.toml",
                "--socket",
            ])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("rvsd"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "installed rvsd did not start: {}",
            std::fs::read_to_string(tmp.0.join("rvsd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ipvsadm = |args: &[&str]| {
        let o = Command::new("timeout")
            .arg("10")
            .arg("/usr/bin/ipvsadm")
            .args(args)
            .env("RVS_SOCKET", &socket)
            .output()
            .expect("ipvsadm");
        (o.status.code(), text(&o))
    };
    let (code, help) = ipvsadm(&["-h"]);
    assert_eq!(code, Some(0), "{help}");
    assert!(
        help.contains("rvs extensions:"),
        "not rvsadm's help: {help}"
    );
    assert!(
        help.contains("ipvsadm --add-laddr|-P virtual-service -z local-address"),
        "{help}"
    );
    let (code, list) = ipvsadm(&["-Ln"]);
    assert_eq!(code, Some(0), "{list}");
    assert!(list.contains("TCP  192.0.2.100:80 wlc"), "{list}");
    assert!(list.contains("-> 198.51.100.11:80"), "{list}");
    drop(daemon);

    // Units, drop-in, sysctl snippet, man pages.
    for f in [
        "/lib/systemd/system/rvsd.service",
        "/lib/systemd/system/keepalived.service.d/rvs.conf",
        "/usr/lib/sysctl.d/60-rvs-hugepages.conf",
    ] {
        assert!(Path::new(f).is_file(), "{f} missing");
    }
    let unit = std::fs::read_to_string("/lib/systemd/system/rvsd.service").expect("unit");
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    assert!(
        unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"),
        "{unit}"
    );
    let dropin = std::fs::read_to_string("/lib/systemd/system/keepalived.service.d/rvs.conf")
        .expect("drop-in");
    assert!(dropin.contains("\nAfter=rvsd.service"), "{dropin}");
    // Minimal images tell dpkg not to install man pages (path-exclude in dpkg.cfg.d).
    let man_excluded = sh(
        "sh",
        &[
            "-c",
            "grep -qs '^path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg.d/*",
        ],
    )
    .status
    .success();
    let man = have("man") && !man_excluded;
    if man_excluded {
        eprintln!("note: dpkg excludes /usr/share/man here: the man pages were not installed");
    } else {
        assert!(zcat("/usr/share/man/man8/rvsd.8.gz").contains("\\-\\-no\\-dataplane"));
        assert!(zcat("/usr/share/man/man8/rvsadm.8.gz").contains("\\-\\-add\\-laddr|\\-P"));
        assert_eq!(
            readlink_f("/usr/share/man/man8/ipvsadm.8rvs.gz"),
            "/usr/share/man/man8/rvsadm.8.gz"
        );
    }
    if man && !real_ipvsadm {
        let w = text(&sh("man", &["-w", "ipvsadm"]));
        assert_eq!(
            w.trim(),
            "/usr/share/man/man8/rvsadm.8.gz",
            "man -w ipvsadm"
        );
    }
    if have("systemd-analyze") {
        // verify also runs man on the units' Documentation= pages when asked to.
        let man_opt = if man { "--man=yes" } else { "--man=no" };
        for unit in ["/lib/systemd/system/rvsd.service", "keepalived.service"] {
            if unit == "keepalived.service"
                && !Path::new("/lib/systemd/system/keepalived.service").exists()
            {
                eprintln!("note: keepalived is not installed: its drop-in was not verified");
                continue;
            }
            let v = sh("systemd-analyze", &["verify", man_opt, unit]);
            assert!(
                v.status.success(),
                "systemd-analyze verify {unit}: {}",
                text(&v)
            );
        }
        if Path::new("/lib/systemd/system/keepalived.service").exists() {
            // systemd reads the drop-in as part of keepalived's unit.
            let c = text(&sh(
                "systemd-analyze",
                &["cat-config", "systemd/system/keepalived.service"],
            ));
            assert!(
                c.contains("keepalived.service.d/rvs.conf") && c.contains("\nAfter=rvsd.service"),
                "keepalived.service without the rvs drop-in: {c}"
            );
        }
    } else {
        eprintln!("note: systemd-analyze is absent: the units were not verified");
    }

    // Purge: everything goes, the alternative too.
    let out = dpkg(&["--purge", "rvs"]);
    assert!(out.status.success(), "dpkg --purge: {}", text(&out));
    drop(guard);
    for f in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/usr/bin/ipvsadm",
        "/usr/share/man/man8/ipvsadm.8rvs.gz",
        "/usr/share/man/man8/rvsadm.8.gz",
        "/lib/systemd/system/rvsd.service",
        "/lib/systemd/system/keepalived.service.d/rvs.conf",
        "/etc/rvs/rvsd.toml",
    ] {
        assert!(
            std::fs::symlink_metadata(f).is_err(),
            "{f} is still there after dpkg --purge rvs"
        );
    }
    assert!(
        !sh("update-alternatives", &["--query", "ipvsadm"])
            .status
            .success(),
        "the ipvsadm alternative is still registered"
    );
}
