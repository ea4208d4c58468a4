//! Authenticated sync end to end: two rvsd processes (own DPDK `--file-prefix`, own
//! namespace) sharing a sync key (`[sync] key_file`), as in `lab_sync_load.rs`. A client
//! opens UDP sessions through the active director, whose master signs its messages; the
//! standby installs them. Meanwhile a forger on the sync link sends the standby messages
//! of the right format: a plain one (as a kernel master would send), one signed with
//! another key, a captured message of the master with one byte changed, the captured
//! message again (a replay), and one signed with the key but a sequence number far behind.
//! Each is refused and counted by its reason (`rvsadm --dataplane`, the metrics endpoint),
//! none of their sessions is installed, and the master's sessions all are.
//!
//! Topology (prefix `rsa`):
//! ```text
//!  c  c0 10.10.0.2 ── sw:brc ──┬── da d0 [dpdk0 10.10.0.3 + 10.10.0.1, VIP 10.10.0.100]
//!                              └── db d0 [dpdk0 10.10.0.4 + 10.10.0.1]
//!  r1 10.20.0.11 (gateway 10.20.0.1) ── sw:brs ──┬── da d1 [10.20.0.3 + 10.20.0.1]
//!                                                └── db d1 [10.20.0.4 + 10.20.0.1]
//!  da s0 10.99.0.1 ──── db s1 10.99.0.2      (kernel veth: the sync network; the forger
//!                                              sends from da's side)
//! ```
//! Needs root; skipped where network namespaces cannot be made. A second test (no lab)
//! has `rvsd --check` refuse a key file other users can read.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::{can_build_labs, topo, Director, Lab};

const VIP: &str = "10.10.0.100";
/// Real client flows (one UDP session each).
const FLOWS: usize = 20;
/// The standby's metrics endpoint, on its namespace's loopback.
const METRICS: &str = "127.0.0.1:9578";

/// The client: `n` UDP flows to `vip:port` from source ports 10000.., three datagrams
/// each (IPVS syncs a UDP session at its third packet).
const CLIENT: &str = r#"
import socket, sys
vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", 10000 + i))
    for _ in range(3):
        s.sendto(b"q", (vip, port))
    s.close()
"#;

/// Captures the first sync datagram (UDP to port 8848) seen on `iface` into `out`,
/// waiting at most `secs` seconds (a packet socket: the standby's own socket still gets
/// it). Creates `out.ready` once its socket is bound.
const SNIFF: &str = r#"
import socket, sys, time
iface, out, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((iface, 0))
open(out + ".ready", "w").close()
end = time.time() + secs
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try:
        p = s.recv(65535)
    except socket.timeout:
        break
    ihl = (p[0] & 15) * 4
    if p[9] != 17 or int.from_bytes(p[ihl + 2:ihl + 4], "big") != 8848:
        continue
    open(out, "wb").write(p[ihl + 8:])
    break
"#;

/// The forger: sends to `dst:port`, 50 ms apart, messages for sessions of client
/// 10.10.0.66 (UDP to the VIP's port 53, NAT to 10.20.0.11:5353, syncid 9): plain (no
/// MAC), signed with another key, the captured master message with a byte of its first
/// record changed, the captured message again, and one signed with the group's key (read
/// from `keyfile` as rvsd reads it) under the master's sender id with a sequence number
/// 1000 below the captured one.
const FORGE: &str = r#"
import hashlib, hmac, socket, struct, sys, time
dst, port, keyfile, captured, vip = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
key = open(keyfile, "rb").read()
if key.endswith(b"\n"): key = key[:-1]
if key.endswith(b"\r"): key = key[:-1]
def message(cport):
    rec = struct.pack("!BBHIHHHHII4s4s4s", 0, 17, 36, 0, 0, cport, 53, 5353, 0, 300,
                      socket.inet_aton("10.10.0.66"), socket.inet_aton(vip),
                      socket.inet_aton("10.20.0.11"))
    return struct.pack("!BBHBbH", 0, 9, 8 + len(rec), 1, 1, 0) + rec
def sign(msg, k, sender, seq):
    t = msg + b"RVS\x01" + struct.pack("!IQ", sender, seq)
    return t + hmac.new(k, t, hashlib.sha256).digest()[:16]
cap = open(captured, "rb").read()
assert cap[-32:-28] == b"RVS\x01", "the master's message carries a trailer"
sender, seq = struct.unpack("!IQ", cap[-28:-16])
altered = bytearray(cap); altered[8 + 11] ^= 1
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for d in [message(20001), sign(message(20002), b"another key of thirty-two bytes!", sender, seq + 1000),
          bytes(altered), cap, sign(message(20005), key, sender, seq - 1000)]:
    s.sendto(d, (dst, port))
    time.sleep(0.05)
print(sender, seq)
"#;

fn start_rvsd(lab: &Lab, ns: &str, own: u8, sync: &str) -> Director {
    rvs_tests::failover::start_director(lab, ns, &format!("rsa{ns}"), own, sync)
}

fn configure(d: &Director) {
    let svc = format!("{VIP}:53");
    d.rvsadm(&["-A", "-u", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &svc, "-r", "10.20.0.11:5353", "-m"]);
}

/// The standby's sync backup counter `key` (`rvsadm --dataplane`: `sync backup ... key=n`).
fn backup_counter(d: &Director, key: &str) -> u64 {
    let text = d.rvsadm(&["--dataplane"]);
    text.lines()
        .find(|l| l.starts_with("sync backup "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the sync backup line:\n{text}"))
}

/// Sessions in `rvsadm -Lnc` whose client address is `client`.
fn sessions_of(d: &Director, client: &str) -> usize {
    d.rvsadm(&["-Lnc"])
        .lines()
        .filter(|l| l.contains(&format!(" {client}:")))
        .count()
}

#[test]
fn forged_and_replayed_sync_messages_are_refused_and_counted() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let started = Instant::now();
    let lab = topo::active_standby_one_server("rsa");
    lab.default_route("r1", "10.20.0.1".parse().unwrap());

    // The sync group's key: 32 random bytes as hex, readable by root only.
    let dir = std::env::temp_dir().join(format!("rvs-rsa-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("sync.key");
    let mut raw = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut raw).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key_path, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = key_path.display().to_string();

    let a = start_rvsd(&lab, "da", 3, &format!("[sync]\nkey_file = {key:?}\n"));
    let b = start_rvsd(
        &lab,
        "db",
        4,
        &format!(
            "[sync]\nstate = \"backup\"\nmcast_interface = \"s1\"\nsyncid = 9\nkey_file = {key:?}\n\n\
             [metrics]\nlisten = \"{METRICS}\"\n"
        ),
    );
    configure(&a);
    configure(&b);
    a.rvsadm(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s0",
        "--syncid",
        "9",
    ]);
    let master_line = a.rvsadm(&["--dataplane"]);
    assert!(
        master_line
            .lines()
            .any(|l| l.starts_with("sync master ") && l.contains(" auth=hmac-sha256")),
        "{master_line}"
    );
    let ping = lab.try_exec("c", &["ping", "-c", "1", "-W", "2", VIP]);
    assert!(ping.status.success(), "ping VIP");

    // Capture the master's first message on the standby's side of the sync link.
    let captured = dir.join("captured");
    let sniffer = Command::new("ip")
        .args(["netns", "exec", &lab.ns("db"), "python3", "-c", SNIFF, "s1"])
        .arg(&captured)
        .arg("15")
        .stdin(Stdio::null())
        .spawn()
        .expect("sniffer");
    // The client's sessions are synced at once: the sniffer must listen before they
    // are made (python's start can take well over a fixed pause on a loaded machine).
    let ready = dir.join("captured.ready");
    rvs_tests::failover::wait_for("the sniffer's socket", 15, || ready.exists());
    lab.exec(
        "c",
        &["python3", "-c", CLIENT, VIP, "53", &FLOWS.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while sessions_of(&b, "10.10.0.2") < FLOWS {
        assert!(
            Instant::now() < deadline,
            "the standby has {} of the master's {FLOWS} sessions:\n{}\n{}",
            sessions_of(&b, "10.10.0.2"),
            b.rvsadm(&["--dataplane"]),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sniffer.wait_with_output().expect("sniffer");
    assert!(out.status.success(), "sniffer failed");
    let msg = std::fs::read(&captured).expect("a sync message was captured");
    assert!(msg.len() > 8 + 36 + 32, "{} bytes", msg.len());
    let size = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    assert_eq!(
        size + 32,
        msg.len(),
        "the trailer follows the size the header announces (a kernel drops the message)"
    );
    assert_eq!(backup_counter(&b, "auth_missing"), 0);

    // The forger.
    let forged = lab.exec(
        "da",
        &[
            "python3",
            "-c",
            FORGE,
            "10.99.0.2",
            "8848",
            &key,
            &captured.display().to_string(),
            VIP,
        ],
    );
    eprintln!(
        "forger: master's sender id and sequence number: {}",
        String::from_utf8_lossy(&forged.stdout).trim()
    );
    let want = [
        ("auth_missing", 1),
        ("auth_bad_mac", 2),
        ("auth_replayed", 1),
        ("auth_too_old", 1),
        ("auth_unexpected", 0),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while want.iter().any(|(k, v)| backup_counter(&b, k) != *v) {
        assert!(
            Instant::now() < deadline,
            "refusals: {:?}\n{}",
            want.map(|(k, _)| (k, backup_counter(&b, k))),
            b.rvsadm(&["--dataplane"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let dataplane = b.rvsadm(&["--dataplane"]);
    eprintln!("standby:\n{dataplane}");
    assert!(
        dataplane
            .lines()
            .any(|l| l.starts_with("sync backup ") && l.contains(" auth=hmac-sha256")),
        "{dataplane}"
    );
    assert_eq!(
        sessions_of(&b, "10.10.0.66"),
        0,
        "a forged session was installed:\n{}",
        b.rvsadm(&["-Lnc"])
    );
    assert_eq!(sessions_of(&b, "10.10.0.2"), FLOWS);
    assert_eq!(sessions_of(&a, "10.10.0.2"), FLOWS);

    // The same counts on the metrics endpoint.
    let text = lab
        .curl("db", &format!("http://{METRICS}/metrics"))
        .expect("scrape the standby's metrics");
    for (reason, v) in [
        ("no-mac", 1),
        ("bad-mac", 2),
        ("replayed", 1),
        ("too-old", 1),
        ("unexpected-mac", 0),
    ] {
        let line = format!("rvs_sync_messages_refused_total{{reason=\"{reason}\"}} {v}");
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(text
        .lines()
        .any(|l| l == "rvs_sync_authenticated{role=\"backup\"} 1"));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("lab_sync_auth took {:?}", started.elapsed());
}

/// `rvsd --check` (and so a start) refuses a key file other users can read, naming
/// `sync.key_file`, and accepts it once it is `chmod 600`.
#[test]
fn rvsd_refuses_a_key_file_others_can_read() {
    let dir = std::env::temp_dir().join(format!("rvs-rsa-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("sync.key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = dir.join("rvsd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sync]\nstate = \"backup\"\nkey_file = {:?}\n",
            key.display().to_string()
        ),
    )
    .unwrap();
    let check = || {
        Command::new(rvs_tests::bin("rvsd"))
            .arg("--check")
            .arg("--config")
            .arg(&cfg)
            .output()
            .expect("rvsd --check")
    };
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "sync.key_file: {}: mode 0644: other users can read it; chmod 600",
            key.display()
        )),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
