//! The sync daemons as rvsd runs them: `--start-daemon master|backup` (or `[sync]` in the
//! configuration) resolved into the dataplane's sync settings.
//!
//! The sync traffic uses the host's network stack (kernel UDP sockets), so
//! `--mcast-interface` names a kernel interface with an IPv4 address on the sync network
//! (a dedicated link between the directors, or the exception path); an IPv4 address is
//! accepted in its place. `[sync] unicast_peer` sends to one peer instead of the group.
//!
//! `[sync] key_file` gives the sync group's key, read once when rvsd starts: every daemon
//! started afterwards (from the file or with `rvsadm --start-daemon`) uses it — the
//! master authenticates each message, the backup refuses messages without a valid MAC and
//! replays (see [`rvs_dataplane::sync::auth`]).
//!
//! `[sync] state = "group"` with `peers` makes the director a member of an active/active
//! group ([`rvs_dataplane::sync::group`]): both daemons run, the master sends to every
//! peer, the backup accepts only them, and the director is never a standby.
//!
//! Roles: a director whose only sync daemon is a backup is the standby: it does not answer
//! ARP for its VIPs, LIPs and floating port addresses (every port address after the
//! first). Starting a master daemon (keepalived's `notify_master` does
//! `rvsadm --start-daemon master`) makes it active: it answers and sends gratuitous ARP.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use rvs_dataplane::engine::SyncReport;
use rvs_dataplane::sync::auth::SyncKey;
use rvs_dataplane::sync::group;
use rvs_dataplane::sync::net::SyncNetConfig;

use crate::ipvs::{SyncDaemon, SyncState};

/// Why a sync daemon cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// `ip` could not be run to find the interface's address.
    #[error("cannot run ip: {0}")]
    RunIp(String),
    /// The interface does not exist or has no IPv4 address.
    #[error("No such device")]
    NoSuchDevice {
        /// The interface name.
        name: String,
    },
    /// The multicast group is IPv6.
    #[error("IPv6 sync groups are not supported")]
    Ipv6Group,
}

/// The IPv4 address of kernel interface `name` (or `name` itself if it is an address).
pub fn iface_addr(name: &str) -> Result<Ipv4Addr, SyncError> {
    if let Ok(a) = name.parse::<Ipv4Addr>() {
        return Ok(a);
    }
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", name])
        .output()
        .map_err(|e| SyncError::RunIp(e.to_string()))?;
    parse_ip_addr_show(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        SyncError::NoSuchDevice {
            name: name.to_string(),
        }
    })
}

/// The first `inet A/len` of `ip -4 -o addr show` output.
pub fn parse_ip_addr_show(text: &str) -> Option<Ipv4Addr> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "inet" {
            let a = words.next()?;
            return a.split('/').next()?.parse().ok();
        }
    }
    None
}

/// The dataplane settings of a sync daemon; `key`: the sync group's key, if any.
pub fn net_config(
    d: &SyncDaemon,
    iface: Ipv4Addr,
    peer: Option<Ipv4Addr>,
    key: Option<SyncKey>,
) -> Result<SyncNetConfig, SyncError> {
    let IpAddr::V4(group) = d.mcast_group else {
        return Err(SyncError::Ipv6Group);
    };
    Ok(SyncNetConfig {
        syncid: d.syncid,
        maxlen: d.sync_maxlen,
        group,
        port: d.mcast_port,
        ttl: d.mcast_ttl,
        iface: Some(iface),
        peer: if d.state == SyncState::Master {
            peer
        } else {
            None
        },
        key,
    })
}

/// Whether a director running `daemons` is the standby (a backup and no master).
pub fn is_passive(daemons: &[SyncDaemon]) -> bool {
    daemons.iter().any(|d| d.state == SyncState::Backup)
        && !daemons.iter().any(|d| d.state == SyncState::Master)
}

/// The last line of `rvsadm --list-group`: whether this director has received its
/// group's sessions (`joined`: every peer up completed its bulk sync to it), else the
/// peers up whose bulk syncs it waits for (`pending`; none yet: it is still listening).
pub fn joined_line(joined: bool, pending: &[Ipv4Addr]) -> String {
    if joined {
        return "Joined: yes (the bulk syncs of the peers up received)\n".into();
    }
    if pending.is_empty() {
        return "Joined: not yet (listening for the peers up)\n".into();
    }
    let names: Vec<String> = pending.iter().map(|a| a.to_string()).collect();
    format!(
        "Joined: not yet (waiting for the bulk syncs of {})\n",
        names.join(" ")
    )
}

/// `rvsadm --list-group`: this director's sync address and, per peer, its address,
/// state (up: a message accepted within [`group::DOWN_AFTER`]), messages with sessions,
/// sessions and heartbeats received from it, its refused messages, the age of its last
/// accepted message, and the session records sent to it in bulk syncs and the bulk syncs
/// done (a bulk sync when it comes up: every session this director has); then the messages refused as this director's own or from an address
/// not in the list. `in_group`: `[sync] state = "group"`; `own`: the sync address (`None`
/// while no daemon has started).
pub fn group_text(in_group: bool, own: Option<Ipv4Addr>, r: &SyncReport) -> String {
    use std::fmt::Write as _;
    if !in_group {
        return "not in a sync group ([sync] state = \"group\")\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Sync group of {}: {} peers (up: a message within {} s)",
        own.map_or_else(|| "-".to_string(), |a| a.to_string()),
        r.peers.len(),
        group::DOWN_AFTER.as_secs()
    );
    let _ = writeln!(
        out,
        "{:<16} {:<5} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>5}",
        "Peer",
        "State",
        "Messages",
        "Sessions",
        "Heartbeats",
        "Refused",
        "LastMsg",
        "BulkSent",
        "Bulks"
    );
    for p in &r.peers {
        let age = p.last_age_ms.map_or_else(
            || "never".to_string(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        );
        let _ = writeln!(
            out,
            "{:<16} {:<5} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>5}",
            p.addr.to_string(),
            if p.up { "up" } else { "down" },
            p.msgs,
            p.conns,
            p.heartbeats,
            p.refused,
            age,
            p.bulk_records,
            p.bulk_syncs
        );
    }
    let c = |k: &str| {
        r.backup
            .counters
            .iter()
            .find(|(n, _)| *n == k)
            .map_or(0, |(_, v)| *v)
    };
    let _ = writeln!(
        out,
        "Refused: own {}, unknown senders {}, FULLNAT records of another layout {}, sessions of no service here {}",
        c("peer_own"),
        c("peer_unknown"),
        c("peer_layout"),
        r.workers.iter().map(|(_, w)| w.no_service).sum::<u64>()
    );
    for p in &r.peers {
        if let Some(why) = p.layout {
            let _ = writeln!(
                out,
                "Layout: {} {why} differ (its FULLNAT records refused, its LIPs not taken over)",
                p.addr
            );
        }
    }
    let known: Vec<String> = r
        .peers
        .iter()
        .filter(|p| !p.lips.is_empty())
        .map(|p| {
            let l: Vec<String> = p.lips.iter().map(|a| a.to_string()).collect();
            format!("{} {}", p.addr, l.join(" "))
        })
        .collect();
    if !known.is_empty() {
        let _ = writeln!(out, "Peer LIPs: {}", known.join("; "));
    }
    let held: Vec<String> = r
        .held_lips
        .iter()
        .map(|(l, p)| format!("{l} (of {p})"))
        .collect();
    let _ = writeln!(
        out,
        "LIPs held: {}",
        if held.is_empty() {
            "none".to_string()
        } else {
            held.join(", ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(state: SyncState) -> SyncDaemon {
        SyncDaemon {
            state,
            mcast_ifn: "s0".into(),
            syncid: 1,
            sync_maxlen: 1472,
            mcast_group: "224.0.0.81".parse().unwrap(),
            mcast_port: 8848,
            mcast_ttl: 1,
        }
    }

    #[test]
    fn roles_and_settings() {
        assert!(!is_passive(&[]));
        assert!(is_passive(&[daemon(SyncState::Backup)]));
        assert!(!is_passive(&[
            daemon(SyncState::Master),
            daemon(SyncState::Backup)
        ]));
        let peer = Some(Ipv4Addr::new(10, 99, 0, 2));
        let ip = Ipv4Addr::new(10, 99, 0, 1);
        let m = net_config(&daemon(SyncState::Master), ip, peer, None).unwrap();
        assert_eq!(
            (m.group, m.port, m.syncid, m.peer),
            (rvs_dataplane::sync::DEFAULT_GROUP, 8848, 1, peer)
        );
        let b = net_config(&daemon(SyncState::Backup), ip, peer, None).unwrap();
        assert_eq!(b.peer, None, "a backup listens on the group and its port");
        assert_eq!((m.key, b.key), (None, None));
        let key = SyncKey::new(&[7; 32]).ok();
        let b = net_config(&daemon(SyncState::Backup), ip, peer, key).unwrap();
        assert_eq!(b.key, key, "both roles use the group's key");
    }

    #[test]
    fn the_group_listing() {
        use rvs_dataplane::engine::SyncDaemonReport;
        use rvs_dataplane::sync::group::PeerReport;
        let idle = SyncDaemonReport {
            running: true,
            counters: vec![("peer_own", 2), ("peer_unknown", 5), ("peer_layout", 7)],
            backlog: 0,
            last_message_unix_ms: None,
            authenticated: false,
        };
        let r = SyncReport {
            master: idle.clone(),
            backup: idle,
            workers: Vec::new(),
            passive: false,
            held_lips: vec![(Ipv4Addr::new(10, 20, 0, 103), Ipv4Addr::new(10, 99, 0, 3))],
            peers: vec![
                PeerReport {
                    addr: Ipv4Addr::new(10, 99, 0, 2),
                    up: true,
                    msgs: 3,
                    conns: 40,
                    heartbeats: 12,
                    refused: 1,
                    last_age_ms: Some(420),
                    bulk_records: 1200,
                    bulk_syncs: 2,
                    layout: None,
                    lips: vec![Ipv4Addr::new(10, 20, 0, 102)],
                    refused_layout: 0,
                },
                PeerReport {
                    addr: Ipv4Addr::new(10, 99, 0, 3),
                    up: false,
                    msgs: 0,
                    conns: 0,
                    heartbeats: 0,
                    refused: 0,
                    last_age_ms: None,
                    bulk_records: 0,
                    bulk_syncs: 0,
                    layout: Some("workers"),
                    lips: vec![Ipv4Addr::new(10, 20, 0, 103)],
                    refused_layout: 7,
                },
            ],
        };
        assert_eq!(
            group_text(true, Some(Ipv4Addr::new(10, 99, 0, 1)), &r),
            "Sync group of 10.99.0.1: 2 peers (up: a message within 3 s)\n\
             Peer             State   Messages   Sessions Heartbeats  Refused  LastMsg   BulkSent Bulks\n\
             10.99.0.2        up             3         40         12        1     0.4s       1200     2\n\
             10.99.0.3        down           0          0          0        0    never          0     0\n\
             Refused: own 2, unknown senders 5, FULLNAT records of another layout 7, sessions of no service here 0\n\
             Layout: 10.99.0.3 workers differ (its FULLNAT records refused, its LIPs not taken over)\n\
             Peer LIPs: 10.99.0.2 10.20.0.102; 10.99.0.3 10.20.0.103\n\
             LIPs held: 10.20.0.103 (of 10.99.0.3)\n"
        );
        assert_eq!(
            group_text(false, None, &r),
            "not in a sync group ([sync] state = \"group\")\n"
        );
    }

    #[test]
    fn the_join_line_names_the_peers_waited_for() {
        assert_eq!(
            joined_line(true, &[]),
            "Joined: yes (the bulk syncs of the peers up received)\n"
        );
        assert_eq!(
            joined_line(false, &[]),
            "Joined: not yet (listening for the peers up)\n"
        );
        let a: Ipv4Addr = "10.99.0.1".parse().unwrap();
        let b: Ipv4Addr = "10.99.0.3".parse().unwrap();
        assert_eq!(
            joined_line(false, &[a, b]),
            "Joined: not yet (waiting for the bulk syncs of 10.99.0.1 10.99.0.3)\n"
        );
    }

    #[test]
    fn interface_addresses() {
        assert_eq!(iface_addr("10.1.2.3"), Ok(Ipv4Addr::new(10, 1, 2, 3)));
        let text = "3: s0    inet 10.99.0.1/24 brd 10.99.0.255 scope global s0\\       valid_lft forever\n";
        assert_eq!(parse_ip_addr_show(text), Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(parse_ip_addr_show(""), None);
        assert_eq!(
            iface_addr("rvs-no-such-if0").map_err(|e| e.to_string()),
            Err("No such device".into())
        );
    }
}
