//! keepalived failover end to end: two rvsd processes with exception-path taps on their
//! client ports; Debian's keepalived (unmodified) runs in each director namespace and
//! speaks VRRP (IP protocol 112 to 224.0.0.18) over the taps, through the dataplanes and
//! the wire. Its `notify_master`/`notify_backup` scripts switch the director with
//! `rvsadm --start-daemon master` / `--stop-daemon master`. The active director's rvsd
//! is then killed: its tap vanishes with it, keepalived on the standby stops hearing
//! adverts, becomes MASTER and activates its rvsd, which announces the VIPs; the
//! established NAT and FULLNAT connections (synced sessions) go on.
//!
//! Topology (prefix `rka`), as in `lab_failover.rs`, plus the taps:
//! ```text
//!  c  c0 10.10.0.2 ── sw:brc ──┬── da d0 [dpdk0 10.10.0.3 + 10.10.0.1, VIP .100; tap rvs0 10.10.0.13]
//!                              └── db d0 [dpdk0 10.10.0.4 + 10.10.0.1;           tap rvs0 10.10.0.14]
//!  r1 10.20.0.11, r2 10.20.0.12 (gateway 10.20.0.1) ── sw:brs ── da d1, db d1 [10.20.0.3/.4 + .1, LIP .200]
//!  da s0 10.99.0.1 ──── db s1 10.99.0.2      (kernel veth: the sync network)
//! ```
//! keepalived's own virtual address 10.10.0.50 lives on the master's tap (a kernel
//! address, moved by keepalived itself). Needs root and keepalived; skipped otherwise.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::failover::{
    configure, established, mac, neigh, status, wait_for, ConnStatus, STREAM_CLIENT, STREAM_SERVER,
};
use rvs_tests::{bin, can_build_labs, Director, Lab};

const VIP: &str = "10.10.0.100";
const KA_VIP: &str = "10.10.0.50";

/// keepalived in the foreground in one director namespace; killed (SIGTERM, then
/// SIGKILL) when dropped.
struct Keepalived {
    child: Child,
    log: PathBuf,
}

impl Keepalived {
    /// Writes the VRRP configuration and the notify script for director `d` (sync
    /// interface `sync_if`) and starts keepalived in namespace `ns`.
    fn start(lab: &Lab, ns: &str, d: &Director, priority: u8, sync_if: &str) -> Keepalived {
        let dir = d.dir();
        let script = dir.join("notify.sh");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
# keepalived notify script: switch rvsd between active (master) and standby (backup).
export RVS_SOCKET={sock}
ADM={adm}
echo "$(date +%T.%N) $*" >> {dir}/notify.log
case "$1" in
  master) $ADM --start-daemon master --mcast-interface {sync_if} --syncid 7 ;;
  backup|fault) $ADM --stop-daemon master ;;
esac
exit 0
"#,
                sock = d.socket().display(),
                adm = bin("rvsadm").display(),
                dir = dir.display(),
            ),
        )
        .expect("notify script");
        run_ok("chmod", &["755", &script.to_string_lossy()]);
        let conf = dir.join("keepalived.conf");
        let s = script.display();
        std::fs::write(
            &conf,
            format!(
                r#"global_defs {{
    router_id rvs_{ns}
    script_user root
}}
vrrp_instance rvs {{
    state BACKUP
    interface rvs0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {KA_VIP}/24
    }}
    notify_master "{s} master"
    notify_backup "{s} backup"
    notify_fault "{s} fault"
}}
"#
            ),
        )
        .expect("keepalived.conf");
        let log = dir.join("keepalived.log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(ns), "keepalived"])
            .args(["-n", "-l", "-D", "-G", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("keepalived");
        Keepalived { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().expect(cmd);
    assert!(st.success(), "{cmd} {args:?}");
}

fn start_director(lab: &Lab, ns: &str, own: u8, sync_if: &str) -> Director {
    let tag = format!("rka{ns}");
    let d = Director::start_toml(
        lab,
        ns,
        &tag,
        &format!(
            r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_{tag}0,iface=d0"
addresses = ["10.10.0.{own}/24", "10.10.0.1/24"]
exception_iface = "rvs0"

[[ports]]
name = "dpdk1"
device = "net_af_packet_{tag}1,iface=d1"
addresses = ["10.20.0.{own}/24", "10.20.0.1/24"]

[workers]
count = 2

[sync]
state = "backup"
mcast_interface = "{sync_if}"
syncid = 7
"#
        ),
    );
    // The tap: up, with the host address; the kernel off the af_packet veth.
    wait_for("the tap rvs0", 10, || {
        lab.try_exec(ns, &["ip", "link", "show", "rvs0"])
            .status
            .success()
    });
    lab.exec(ns, &["ip", "link", "set", "rvs0", "up"]);
    lab.addr(ns, "rvs0", &format!("10.10.0.{}/24", own + 10));
    lab.kernel_off(ns, "d0");
    configure(&d);
    d
}

fn role(d: &Director) -> &'static str {
    let s = d.rvsadm(&["-L", "--daemon"]);
    if s.contains("master sync daemon") {
        "master"
    } else {
        "backup"
    }
}

#[test]
fn keepalived_takeover_keeps_established_connections() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    if !Command::new("keepalived")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        eprintln!("skipped: keepalived is not installed (scripts/setup installs it)");
        return;
    }
    let mut lab = Lab::new("rka");
    for ns in ["c", "sw", "da", "db", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "sw", "c0p");
    lab.veth("da", "d0", "sw", "a0p");
    lab.veth("db", "d0", "sw", "b0p");
    lab.veth("da", "d1", "sw", "a1p");
    lab.veth("db", "d1", "sw", "b1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.veth("da", "s0", "db", "s1");
    lab.bridge("sw", "brc", &["c0p", "a0p", "b0p"]);
    lab.bridge("sw", "brs", &["a1p", "b1p", "r1p", "r2p"]);
    lab.addr("c", "c0", "10.10.0.2/24");
    lab.addr("r1", "r0", "10.20.0.11/24");
    lab.addr("r2", "r0", "10.20.0.12/24");
    lab.default_route("r1", "10.20.0.1".parse().unwrap());
    lab.default_route("r2", "10.20.0.1".parse().unwrap());
    lab.addr("da", "s0", "10.99.0.1/24");
    lab.addr("db", "s1", "10.99.0.2/24");
    lab.spawn("r1", &["python3", "-c", STREAM_SERVER, "10.20.0.11"]);
    lab.spawn("r2", &["python3", "-c", STREAM_SERVER, "10.20.0.12"]);
    lab.wait_tcp("r1", "10.20.0.11".parse().unwrap(), 9000);
    lab.wait_tcp("r2", "10.20.0.12".parse().unwrap(), 9000);

    // Both directors start as standbys; keepalived decides.
    let mut a = start_director(&lab, "da", 3, "s0");
    let b = start_director(&lab, "db", 4, "s1");
    assert_eq!((role(&a), role(&b)), ("backup", "backup"));
    let ka = Keepalived::start(&lab, "da", &a, 150, "s0");
    let t0 = Instant::now();
    let kb = Keepalived::start(&lab, "db", &b, 100, "s1");
    let show = |what: &str| {
        format!(
            "{what}\n--- keepalived da:\n{}\n--- keepalived db:\n{}\n--- rvsd da:\n{}\n--- rvsd db:\n{}",
            ka.log(),
            kb.log(),
            a.rvsadm(&["--dataplane"]),
            b.rvsadm(&["--dataplane"])
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while role(&a) != "master" {
        assert!(
            Instant::now() < deadline,
            "{}",
            show("da never became master")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "keepalived made da master in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // VRRP crossed the dataplanes: db hears da's adverts and stays backup.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(role(&b), "backup", "{}", show("db must stay backup"));
    assert!(
        kb.log().contains("Entering BACKUP STATE"),
        "{}",
        show("db's keepalived must be BACKUP")
    );
    assert!(
        !kb.log().contains("Entering MASTER STATE"),
        "{}",
        show("split brain")
    );

    // Only the active director answers for the VIP; keepalived's address is da's kernel's.
    let ping = lab.try_exec("c", &["ping", "-c", "2", "-W", "2", VIP]);
    assert!(ping.status.success(), "ping VIP");
    let (mac_a, mac_b) = (mac(&lab, "da", "d0"), mac(&lab, "db", "d0"));
    assert!(
        neigh(&lab, "c", VIP).contains(&mac_a),
        "{}",
        neigh(&lab, "c", VIP)
    );
    let ping = lab.try_exec("c", &["ping", "-c", "2", "-W", "2", KA_VIP]);
    assert!(
        ping.status.success(),
        "{}",
        show("ping keepalived's address")
    );

    // Long-lived transfers: 4 connections per mode.
    let status_path = std::env::temp_dir().join(format!("rka-status-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&status_path);
    let sp = status_path.to_string_lossy().into_owned();
    lab.spawn(
        "c",
        &["python3", "-c", STREAM_CLIENT, VIP, "80,81", "4", &sp, "60"],
    );
    wait_for("8 transferring connections", 20, || {
        let s = status(&status_path);
        s.len() == 8 && s.iter().all(|c| c.bytes > 5000)
    });
    wait_for("the standby's synced sessions", 10, || {
        established(&b).len() >= 8
    });

    // VRRP went through the exception path both ways (keepalived's socket is bound to
    // the tap, so the adverts it hears came through the dataplane).
    let (tk, fk) = (b.counter("to_kernel"), b.counter("from_kernel"));
    eprintln!("standby's exception path before the takeover: to_kernel={tk} from_kernel={fk}");
    assert!(
        tk >= 3 && fk >= 1,
        "{}",
        show("the exception path carried VRRP")
    );

    // The active director's rvsd dies; keepalived on the standby takes over.
    let before: Vec<ConnStatus> = status(&status_path);
    a.kill_hard();
    let t_kill = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    while role(&b) != "master" {
        assert!(
            Instant::now() < deadline,
            "{}",
            format!(
                "keepalived on db did not take over\n{}\n{}",
                ka.log(),
                kb.log()
            )
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let promoted = t_kill.elapsed();
    wait_for("the client to follow the gratuitous ARP", 10, || {
        neigh(&lab, "c", VIP).contains(&mac_b)
    });
    wait_for("every connection to resume", 30, || {
        let now = status(&status_path);
        now.len() == 8
            && now
                .iter()
                .zip(&before)
                .all(|(n, b)| n.bytes > b.bytes + 20_000 || n.err.is_some())
    });
    let resumed = t_kill.elapsed();
    let after = status(&status_path);
    let survived = after
        .iter()
        .zip(&before)
        .filter(|(n, b)| n.err.is_none() && n.bytes > b.bytes + 20_000)
        .count();
    for (n, b) in after.iter().zip(&before) {
        eprintln!(
            "port {} local {}: {} -> {} bytes, err {:?}",
            n.port, n.local, b.bytes, n.bytes, n.err
        );
    }
    eprintln!(
        "keepalived takeover: db promoted {:.1} s after da's rvsd was killed; {survived}/8 established connections kept transferring (all resumed within {:.1} s)",
        promoted.as_secs_f64(),
        resumed.as_secs_f64()
    );
    assert_eq!(survived, 8, "{after:?}");
    // keepalived's own address moved to db's kernel.
    let ping = lab.try_exec("c", &["ping", "-c", "2", "-W", "2", KA_VIP]);
    assert!(ping.status.success(), "ping {KA_VIP} after the takeover");
    // New connections work through the new active director.
    for port in ["80", "81"] {
        let out = lab.try_exec(
            "c",
            &[
                "python3",
                "-c",
                "import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print(len(s.recv(1000)))",
                VIP,
                port,
            ],
        );
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() != "0",
            "new connection to {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let notify = std::fs::read_to_string(b.dir().join("notify.log")).unwrap_or_default();
    eprintln!("db notify.log:\n{notify}");
    assert!(notify.contains("master"), "{notify}");
    drop(kb);
    drop(ka);
    let _ = std::fs::remove_file(&status_path);
}
