//! Active/active sync end to end: three rvsd directors (own DPDK `--file-prefix`, own
//! namespace; workers that pause when idle, so that the three share two cores) in one sync group (`[sync] state = "group"`, the same `peers` list of the
//! three sync addresses in every configuration). Each director has its own client, whose
//! UDP sessions go through it only; every director must end with the sessions of all
//! three clients, each once (`rvsadm -Lnc`). The message counters show no loop: each
//! director sent each of its sessions once to each of the two others, and after the
//! traffic stops no more messages with sessions are sent or received (the heartbeats go
//! on, counted apart). `rvsadm --list-group` shows the two peers of each director up; a
//! datagram from an address not in the list is refused and counted; after one director is
//! killed, the other two show it down within the stated time (3 s without a message,
//! checked every 200 ms), in `--list-group` and in `rvs_sync_peer_up{peer}`.
//!
//! A third run (with the key) is a join: two directors carry 30 UDP sessions of their
//! clients, then the third starts and, with no new client traffic, lists every one of
//! them within 5 s, from the bulk sync each of the two sends it when it comes up
//! (`--list-group` BulkSent/Bulks, `rvs_sync_peer_bulk_*`, the log lines).
//!
//! Topology (prefix `rsg`):
//! ```text
//!  ca c0 10.10.0.21 ──── da d0 [dpdk0 10.10.0.3, VIP 10.10.0.100]
//!  cb c0 10.10.0.22 ──── db d0 [dpdk0 10.10.0.4]
//!  cc c0 10.10.0.23 ──── dc d0 [dpdk0 10.10.0.5]
//!  r1 10.20.0.11 ── sw:brs ── da/db/dc d1 [dpdk1 10.20.0.3/4/5]
//!  da/db/dc s0 10.99.0.1/2/3 ── sw:bsync (10.99.0.9: not a peer)   (kernel: sync)
//! ```
//! Run twice: with the kernel's plain messages, then with a sync key (`[sync] key_file`).
//! Needs root; skipped where network namespaces cannot be made.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use rvs_tests::{can_build_labs, Director, Lab};

const VIP: &str = "10.10.0.100";
/// UDP flows per client (one session each).
const FLOWS: usize = 10;
/// The first director's metrics endpoint, on its namespace's loopback.
const METRICS: &str = "127.0.0.1:9579";
/// The sync addresses, in the order of the directors.
const SYNC: [&str; 3] = ["10.99.0.1", "10.99.0.2", "10.99.0.3"];
/// The clients, in the order of the directors.
const CLIENTS: [&str; 3] = ["10.10.0.21", "10.10.0.22", "10.10.0.23"];

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

/// A stranger on the sync network: one well-formed message (a session of client
/// Starts rvsd in each of `dirs` (the first with the metrics endpoint) and configures
/// its services.
fn start_group(lab: &Lab, dirs: &[&str], key: Option<&str>) -> Vec<Director> {
    let ds: Vec<Director> = dirs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let extra = if i == 0 {
                format!("[metrics]\nlisten = \"{METRICS}\"\n")
            } else {
                String::new()
            };
            start_rvsd(lab, ns, 3 + i as u8, key, &extra)
        })
        .collect();
    for d in &ds {
        configure(d);
    }
    ds
}

/// 10.10.0.66) to `dst:8848`.
const STRANGER: &str = r#"
import socket, struct, sys
dst, vip = sys.argv[1], sys.argv[2]
rec = struct.pack("!BBHIHHHHII4s4s4s", 0, 17, 36, 0, 0, 20001, 53, 5353, 0, 300,
                  socket.inet_aton("10.10.0.66"), socket.inet_aton(vip),
                  socket.inet_aton("10.20.0.11"))
msg = struct.pack("!BBHBbH", 0, 9, 8 + len(rec), 1, 1, 0) + rec
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(msg, (dst, 8848))
"#;

fn start_rvsd(lab: &Lab, ns: &str, own: u8, key: Option<&str>, extra: &str) -> Director {
    let peers = SYNC.map(|a| format!("{a:?}")).join(", ");
    let key = key.map_or(String::new(), |k| format!("key_file = {k:?}\n"));
    Director::start_toml(
        lab,
        ns,
        &format!("rsg{ns}"),
        &format!(
            r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_rsg{ns}0,iface=d0"
addresses = ["10.10.0.{own}/24"]

[[ports]]
name = "dpdk1"
device = "net_af_packet_rsg{ns}1,iface=d1"
addresses = ["10.20.0.{own}/24"]

[workers]
count = 1
idle_sleep_max_us = 200

[sync]
state = "group"
mcast_interface = "s0"
syncid = 9
peers = [{peers}]
{key}
{extra}
"#
        ),
    )
}

fn configure(d: &Director) {
    let svc = format!("{VIP}:53");
    d.rvsadm(&["-A", "-u", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &svc, "-r", "10.20.0.11:5353", "-m"]);
}

/// The sessions of `rvsadm -Lnc` (protocol, client, virtual, real), one string each.
fn sessions(d: &Director) -> Vec<String> {
    d.rvsadm(&["-Lnc"])
        .lines()
        .filter(|l| l.starts_with("UDP"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", w[0], w[3..].join(" "))
        })
        .collect()
}

/// A sync daemon's counter `key` (`rvsadm --dataplane`: `sync <role> ... key=n`).
fn counter(d: &Director, role: &str, key: &str) -> u64 {
    let text = d.rvsadm(&["--dataplane"]);
    text.lines()
        .find(|l| l.starts_with(&format!("sync {role} ")))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the sync {role} line:\n{text}"))
}

/// One peer's bulk sync columns of `rvsadm --list-group`: (records sent in bulk, bulk
/// syncs done).
fn bulk(d: &Director, addr: &str) -> (u64, u64) {
    let text = d.rvsadm(&["--list-group"]);
    let l = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(addr))
        .unwrap_or_else(|| panic!("no peer {addr} in:\n{text}"));
    let w: Vec<&str> = l.split_whitespace().collect();
    (w[7].parse().unwrap(), w[8].parse().unwrap())
}

/// One peer of `rvsadm --list-group`: (state, messages, sessions, heartbeats, refused).
fn peer(d: &Director, addr: &str) -> (String, u64, u64, u64, u64) {
    let text = d.rvsadm(&["--list-group"]);
    let l = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(addr))
        .unwrap_or_else(|| panic!("no peer {addr} in:\n{text}"));
    let w: Vec<&str> = l.split_whitespace().collect();
    let n = |i: usize| w[i].parse::<u64>().unwrap();
    (w[1].to_string(), n(2), n(3), n(4), n(5))
}

/// A director's master counters (messages, records sent) and, per peer, the messages
/// and sessions received from it.
type Sent = (u64, u64, Vec<(u64, u64)>);

/// The group as the kernel's messages (no key), then with a key (`[sync] key_file`): the
/// same message, signed once, goes to each peer, and each checks it against its own
/// window of the sender's sequence numbers. Run one after the other (the same lab names).
#[test]
fn three_directors_share_their_sessions_without_loops() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    group_lab(None);
    let dir = std::env::temp_dir().join(format!("rvs-rsg-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("sync.key");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    group_lab(Some(&key.display().to_string()));
    join_lab(Some(&key.display().to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The directors' namespaces.
const DIRS: [&str; 3] = ["da", "db", "dc"];

/// The topology above.
fn make_lab() -> Lab {
    let mut lab = Lab::new("rsg");
    for ns in ["ca", "cb", "cc", "sw", "da", "db", "dc", "r1"] {
        lab.add_ns(ns);
    }
    for (i, (d, c)) in DIRS.iter().zip(["ca", "cb", "cc"]).enumerate() {
        lab.veth(c, "c0", d, "d0");
        lab.addr(c, "c0", &format!("{}/24", CLIENTS[i]));
        lab.veth(d, "d1", "sw", &format!("{d}1p"));
        lab.veth(d, "s0", "sw", &format!("{d}sp"));
        lab.addr(d, "s0", &format!("{}/24", SYNC[i]));
    }
    lab.veth("r1", "r0", "sw", "r1p");
    lab.bridge("sw", "brs", &["da1p", "db1p", "dc1p", "r1p"]);
    lab.bridge("sw", "bsync", &["dasp", "dbsp", "dcsp"]);
    lab.addr("sw", "bsync", "10.99.0.9/24");
    lab.addr("r1", "r0", "10.20.0.11/24");
    lab
}

fn group_lab(key: Option<&str>) {
    let started = Instant::now();
    let lab = make_lab();
    let dirs = DIRS;
    let mut ds = start_group(&lab, &dirs, key);
    // ipvsadm's listing of the daemons: both roles, as a kernel running both.
    let daemons = ds[0].rvsadm(&["-L", "--daemon"]);
    assert_eq!(
        daemons,
        "master sync daemon (mcast=s0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=s0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
    );
    // Every director sees the other two up (heartbeats) before any traffic.
    let all_up = |ds: &[Director]| {
        ds.iter().enumerate().all(|(i, d)| {
            SYNC.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .all(|(_, a)| peer(d, a).0 == "up")
        })
    };
    rvs_tests::failover::wait_for("every peer up", 15, || all_up(&ds));
    let auth = if key.is_some() {
        " auth=hmac-sha256"
    } else {
        " auth=none"
    };
    let dataplane = ds[0].rvsadm(&["--dataplane"]);
    assert!(
        dataplane
            .lines()
            .filter(|l| l.starts_with("sync master ") || l.starts_with("sync backup "))
            .all(|l| l.contains(auth)),
        "{dataplane}"
    );
    let list = ds[0].rvsadm(&["--list-group"]);
    eprintln!("{list}");
    assert!(
        list.starts_with("Sync group of 10.99.0.1: 2 peers"),
        "{list}"
    );
    assert!(
        !list.contains("10.99.0.1 "),
        "its own address is not a peer:\n{list}"
    );

    // Each client through its director.
    for c in ["ca", "cb", "cc"] {
        let ping = lab.try_exec(c, &["ping", "-c", "1", "-W", "2", VIP]);
        assert!(ping.status.success(), "{c}: ping VIP");
        lab.exec(c, &["python3", "-c", CLIENT, VIP, "53", &FLOWS.to_string()]);
    }
    let want = 3 * FLOWS;
    rvs_tests::failover::wait_for("every session on every director", 20, || {
        ds.iter().all(|d| sessions(d).len() >= want)
    });
    std::thread::sleep(Duration::from_millis(2500));
    for (i, d) in ds.iter().enumerate() {
        let mut s = sessions(d);
        assert_eq!(s.len(), want, "{}:\n{}", dirs[i], d.rvsadm(&["-Lnc"]));
        s.sort();
        s.dedup();
        assert_eq!(s.len(), want, "a session twice on {}", dirs[i]);
        for c in CLIENTS {
            let n = s.iter().filter(|l| l.contains(&format!(" {c}:"))).count();
            assert_eq!(n, FLOWS, "{}: sessions of {c}", dirs[i]);
        }
    }

    // No loop: each director sent its own sessions once to each of the two others, and
    // received each peer's once; nothing more once the traffic has stopped.
    let snapshot = |ds: &[Director]| -> Vec<Sent> {
        ds.iter()
            .enumerate()
            .map(|(i, d)| {
                let peers = SYNC
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| {
                        let p = peer(d, a);
                        (p.1, p.2)
                    })
                    .collect();
                (
                    counter(d, "master", "sent_msgs"),
                    counter(d, "master", "sent_conns"),
                    peers,
                )
            })
            .collect()
    };
    let before = snapshot(&ds);
    for (i, (msgs, conns, peers)) in before.iter().enumerate() {
        eprintln!(
            "{}: sent {msgs} messages, {conns} records; from peers (messages, sessions): {peers:?}",
            dirs[i]
        );
        assert_eq!(*conns, 2 * FLOWS as u64, "{}: records sent", dirs[i]);
        for (j, a) in SYNC.iter().enumerate() {
            if j != i {
                assert_eq!(peer(&ds[i], a).4, 0, "{}: messages of {a} refused", dirs[i]);
            }
        }
        for (m, c) in peers {
            assert_eq!(*c, FLOWS as u64, "{}: sessions from a peer", dirs[i]);
            assert!(*m >= 1 && *m <= FLOWS as u64);
        }
    }
    let beats = counter(&ds[0], "master", "heartbeats_sent");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        snapshot(&ds),
        before,
        "sync messages without traffic: a loop"
    );
    assert!(
        counter(&ds[0], "master", "heartbeats_sent") >= beats + 2 * 2,
        "heartbeats go on (each second, to each peer)"
    );

    // A stranger on the sync network is refused and counted, nothing installed.
    lab.exec("sw", &["python3", "-c", STRANGER, SYNC[0], VIP]);
    rvs_tests::failover::wait_for("the stranger refused", 5, || {
        counter(&ds[0], "backup", "peer_unknown") == 1
    });
    assert!(ds[0]
        .rvsadm(&["--list-group"])
        .contains("unknown senders 1"));
    assert!(!ds[0].rvsadm(&["-Lnc"]).contains("10.10.0.66"));

    // Kill the third director: the others show it down within 3 s (and a poll).
    ds[2].kill_hard();
    let killed = Instant::now();
    rvs_tests::failover::wait_for("10.99.0.3 down on da and db", 8, || {
        ds[..2].iter().all(|d| peer(d, SYNC[2]).0 == "down")
    });
    let took = killed.elapsed();
    eprintln!("10.99.0.3 down on the others after {took:?}");
    assert!(took <= Duration::from_millis(4500), "{took:?}");
    assert_eq!(peer(&ds[0], SYNC[1]).0, "up");
    assert_eq!(peer(&ds[1], SYNC[0]).0, "up");
    let text = lab
        .curl("da", &format!("http://{METRICS}/metrics"))
        .expect("scrape da's metrics");
    for (line, want) in [
        ("rvs_sync_peer_up{peer=\"10.99.0.2\"}", "1"),
        ("rvs_sync_peer_up{peer=\"10.99.0.3\"}", "0"),
        (
            "rvs_sync_peer_records_received_total{peer=\"10.99.0.3\"}",
            "10",
        ),
        (
            "rvs_sync_messages_refused_total{reason=\"unknown-peer\"}",
            "1",
        ),
    ] {
        let got = format!("{line} {want}");
        assert!(text.lines().any(|l| l == got), "no {got:?} in:\n{text}");
    }
    // The survivors keep their sessions, those of the dead director's client included.
    for d in &ds[..2] {
        assert_eq!(sessions(d).len(), want);
    }
    drop(ds);
    eprintln!(
        "lab_sync_group (key: {}) took {:?}",
        key.is_some(),
        started.elapsed()
    );
}

/// Sessions per client in the join run (two clients: 30 sessions).
const JOIN_FLOWS: usize = 15;
/// How long a joining director may take to list every session of the group, from the
/// moment its control socket answers.
const JOIN_WITHIN: Duration = Duration::from_secs(5);

/// Bulk sync at join (with the key: the bulk messages share the master's sequence
/// numbers): two directors carry the sessions of their two clients (15 UDP sessions
/// each, synced to each other as usual); then the third starts. Without any new client
/// traffic it lists every session of the group, each once, within [`JOIN_WITHIN`]: each of
/// the two sent it its whole table (30 records) in one bulk sync, counted in
/// `--list-group`, in `rvs_sync_peer_bulk_*` and in a log line at the start and the end.
fn join_lab(key: Option<&str>) {
    let started = Instant::now();
    let lab = make_lab();
    let mut ds = start_group(&lab, &DIRS[..2], key);
    rvs_tests::failover::wait_for("da and db up for each other", 15, || {
        peer(&ds[0], SYNC[1]).0 == "up" && peer(&ds[1], SYNC[0]).0 == "up"
    });
    for c in ["ca", "cb"] {
        let ping = lab.try_exec(c, &["ping", "-c", "1", "-W", "2", VIP]);
        assert!(ping.status.success(), "{c}: ping VIP");
        lab.exec(
            c,
            &["python3", "-c", CLIENT, VIP, "53", &JOIN_FLOWS.to_string()],
        );
    }
    let want = 2 * JOIN_FLOWS;
    rvs_tests::failover::wait_for("the two clients' sessions on da and db", 20, || {
        ds.iter().all(|d| sessions(d).len() >= want)
    });
    let mut group = sessions(&ds[0]);
    group.sort();
    let mut on_db = sessions(&ds[1]);
    on_db.sort();
    assert_eq!(group.len(), want);
    assert_eq!(group, on_db, "da and db have the same sessions");
    for d in &ds {
        assert_eq!(
            bulk(d, SYNC[2]),
            (0, 0),
            "no bulk sync to a director never seen"
        );
    }

    // The third director joins; no client sends anything from now on.
    let dc = start_rvsd(&lab, "dc", 5, key, "");
    configure(&dc);
    let joined = Instant::now();
    let deadline = joined + JOIN_WITHIN;
    let mut on_dc = sessions(&dc);
    while on_dc.len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        on_dc = sessions(&dc);
    }
    let took = joined.elapsed();
    eprintln!(
        "dc lists {} of the group's {want} sessions {took:?} after it started",
        on_dc.len()
    );
    on_dc.sort();
    assert_eq!(
        on_dc, group,
        "dc lists every session of the group, each once"
    );
    // Each of the two sent its whole table once, in bulk, to dc alone.
    rvs_tests::failover::wait_for("the bulk syncs counted", 5, || {
        ds.iter().all(|d| bulk(d, SYNC[2]) == (want as u64, 1))
    });
    for (i, d) in ds.iter().enumerate() {
        let other = SYNC[1 - i];
        assert_eq!(
            bulk(d, other).0,
            0,
            "{}: only an empty table when {other} came up",
            DIRS[i]
        );
        assert_eq!(bulk(d, other).1, 1, "{}: one bulk sync to {other}", DIRS[i]);
        assert_eq!(
            counter(d, "master", "bulk_conns"),
            want as u64,
            "{}: records sent in bulk",
            DIRS[i]
        );
        assert_eq!(
            counter(d, "master", "sent_conns"),
            2 * JOIN_FLOWS as u64,
            "{}: the usual sync sent its own sessions once to each of the two peers (to dc \
             while it was not running too), and nothing more",
            DIRS[i]
        );
        // The log line follows the counters by a moment. Wait for the line of this bulk
        // sync itself: the one to the other peer (0 sessions, when it came up) is older.
        rvs_tests::failover::wait_for("the bulk sync's log line", 5, || {
            d.log().lines().any(|l| {
                l.contains("sync group: bulk sync done")
                    && l.contains("sessions=30")
                    && l.contains("10.99.0.3")
            })
        });
        let log = d.log();
        assert!(
            log.contains("bulk sync of every session to it")
                && log.contains("sync group: bulk sync done"),
            "{}: the bulk sync's log lines:\n{log}",
            DIRS[i]
        );
        assert!(
            log.lines().any(|l| l.contains("bulk sync done")
                && l.contains("sessions=30")
                && l.contains("10.99.0.3")),
            "{}: the count in the log line:\n{log}",
            DIRS[i]
        );
    }
    // On dc: both peers up, 30 sessions received from each, none refused. The senders
    // count a bulk sync when its last datagram leaves; dc counts the records when its
    // sync thread has read them, which on a loaded machine can be later.
    rvs_tests::failover::wait_for("dc to count both bulk syncs", 5, || {
        SYNC[..2].iter().all(|a| peer(&dc, a).2 >= want as u64)
    });
    for a in &SYNC[..2] {
        let (state, _, conns, _, refused) = peer(&dc, a);
        assert_eq!(
            (state.as_str(), conns, refused),
            ("up", want as u64, 0),
            "dc: from {a}"
        );
    }
    let text = lab
        .curl("da", &format!("http://{METRICS}/metrics"))
        .expect("scrape da's metrics");
    for (line, v) in [
        (
            "rvs_sync_peer_bulk_records_sent_total{peer=\"10.99.0.3\"}",
            want,
        ),
        ("rvs_sync_peer_bulk_syncs_total{peer=\"10.99.0.3\"}", 1),
        (
            "rvs_sync_peer_bulk_records_sent_total{peer=\"10.99.0.2\"}",
            0,
        ),
    ] {
        let got = format!("{line} {v}");
        assert!(text.lines().any(|l| l == got), "no {got:?} in:\n{text}");
    }
    assert!(took <= JOIN_WITHIN, "{took:?}");
    ds.push(dc);
    drop(ds);
    eprintln!(
        "lab_sync_group join (key: {}) took {:?}",
        key.is_some(),
        started.elapsed()
    );
}
