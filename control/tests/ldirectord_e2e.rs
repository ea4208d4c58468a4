//! End-to-end: Debian's ldirectord driving a running `rvsd --no-dataplane` through rvsadm
//! as its `ipvsadm`: it adds the virtual service and its real servers, removes a real
//! server whose port stops answering and adds it back when it answers again. The real
//! servers are listening sockets on loopback (`checktype = connect`).
//!
//! ldirectord runs `/sbin/ipvsadm` (or `/usr/sbin/ipvsadm`); in debug mode (`-d`) it runs
//! `./ipvsadm` when there is one, which is how this test points it at rvsadm without
//! touching the system's files. `RVS_LDIRECTORD` names another ldirectord script.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{adm, text, wait_for_socket, Dir, Kill, RVSADM, RVSD};

fn ldirectord() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RVS_LDIRECTORD") {
        return Some(PathBuf::from(p));
    }
    ["/usr/sbin/ldirectord", "/sbin/ldirectord"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `ipvsadm -Sn` through rvsadm.
fn save(socket: &Path) -> String {
    text(&adm(socket, &["-Sn"]).stdout)
}

/// Waits (at most 30 s) until `ipvsadm -Sn` holds the lines of `want`, in any order.
fn wait_for(socket: &Path, want: &str, what: &str) {
    let t0 = Instant::now();
    // The real servers' order in `-Sn` is the order ldirectord added them in (newest
    // first, as the kernel lists them), which follows perl's hash order: compare the
    // lines as a set.
    let sorted = |t: &str| {
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    loop {
        let got = save(socket);
        if sorted(&got) == sorted(want) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what}: ipvsadm -Sn is\n{got}\nnot\n{want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ldirectord_adds_removes_and_readds_real_servers_through_rvsadm() {
    let Some(ld) = ldirectord() else {
        eprintln!("skipped: ldirectord is not installed (scripts/setup installs it)");
        return;
    };
    let dir = Dir::new("ldirectord");
    let socket = dir.0.join("rvsd.sock");
    let cfg = dir.0.join("rvsd.toml");
    std::fs::write(
        &cfg,
        format!("[control]\nsocket = \"{}\"\n", socket.display()),
    )
    .unwrap();
    std::os::unix::fs::symlink(RVSADM, dir.0.join("ipvsadm")).unwrap();

    // Two real servers: listening sockets on loopback.
    let rs1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let rs2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let (p1, p2) = (
        rs1.local_addr().unwrap().port(),
        rs2.local_addr().unwrap().port(),
    );
    let ldcf = dir.0.join(format!("rvs-test-{}.cf", std::process::id()));
    std::fs::write(
        &ldcf,
        format!(
            "checktimeout=1\ncheckinterval=1\nautoreload=no\nquiescent=no\n\
             logfile=\"{}\"\n\
             virtual=10.10.0.100:80\n\
             \treal=127.0.0.1:{p1} masq 1\n\
             \treal=127.0.0.1:{p2} masq 2\n\
             \tchecktype=connect\n\tscheduler=wrr\n\tprotocol=tcp\n",
            dir.0.join("ldirectord.log").display()
        ),
    )
    .unwrap();

    let _rvsd = Kill(
        Command::new(RVSD)
            .args(["--no-dataplane", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket, 20);
    let _ld = Kill(
        Command::new("timeout")
            .arg("120")
            .arg("perl")
            .arg(&ld)
            .arg("-d")
            .arg(&ldcf)
            .arg("start")
            .current_dir(&dir.0)
            .env("RVS_SOCKET", &socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let both = format!(
        "-A -t 10.10.0.100:80 -s wrr\n\
         -a -t 10.10.0.100:80 -r 127.0.0.1:{p1} -m -w 1\n\
         -a -t 10.10.0.100:80 -r 127.0.0.1:{p2} -m -w 2\n"
    );
    wait_for(
        &socket,
        &both,
        "ldirectord adds the service and both servers",
    );

    // The second server stops answering: ldirectord removes it (ipvsadm -d).
    drop(rs2);
    wait_for(
        &socket,
        &format!(
            "-A -t 10.10.0.100:80 -s wrr\n\
             -a -t 10.10.0.100:80 -r 127.0.0.1:{p1} -m -w 1\n"
        ),
        "ldirectord removes the server that fails its check",
    );

    // It answers again: ldirectord adds it back.
    let _rs2 = TcpListener::bind(("127.0.0.1", p2)).unwrap();
    wait_for(&socket, &both, "ldirectord adds the server back");
    drop(rs1);
}
