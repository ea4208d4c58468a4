//! FULLNAT local addresses changed while sessions live: `rvsadm --add-laddr` and
//! `--del-laddr` between sequential curls (HTTP/1.0, no keep-alive, so every session sits
//! in TIME_WAIT on the director). The pool keeps the free lists of the LIPs that remain,
//! so no new connection gets a LIP:lport toward a real server that a live session holds;
//! every curl succeeds and `rvsadm -G` counts the sessions per LIP.
//!
//! Topology (two-port lab, see `tests/src/lib.rs`): client 10.10.0.2 — director (VIP
//! 10.10.0.100, LIPs 10.20.0.200 and 10.20.0.201) — rs1 10.20.0.11, rs2 10.20.0.12,
//! both on port 80, rr. One worker, so port allocation is deterministic.
//!
//! Needs root; each test skips (with a message) where namespaces cannot be made.

use rvs_tests::topo::{two_port, two_port_director, VIP2};
use rvs_tests::{can_build_labs, Director, Lab};

const LIP1: &str = "10.20.0.200";
const LIP2: &str = "10.20.0.201";

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

/// `n` sequential curls of the VIP (each bounded to 5 s); the bodies (`rsN client=LIP:lport`)
/// of those that succeeded and the count of those that failed.
fn curls(lab: &Lab, n: usize) -> (Vec<String>, usize) {
    let url = format!("http://{VIP2}/");
    let mut ok = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        match lab.curl("c", &url) {
            Some(body) => ok.push(body.trim().to_owned()),
            None => failed += 1,
        }
    }
    (ok, failed)
}

/// `rvsadm -G`'s row of one LIP: (CONFLICTS, CONNS).
fn laddr_row(listing: &str, lip: &str) -> Option<(u64, u64)> {
    listing.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] == lip).then(|| {
            (
                f[1].parse().expect("CONFLICTS"),
                f[2].parse().expect("CONNS"),
            )
        })
    })
}

/// A FULLNAT service over rs1 and rs2 with the given LIPs.
fn fullnat_service(d: &Director, lips: &[&str]) -> String {
    let svc = format!("{VIP2}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11:80", "-b"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12:80", "-b"]);
    for lip in lips {
        d.rvsadm(&["--add-laddr", "-z", lip, "-t", &svc]);
    }
    svc
}

#[test]
fn adding_a_laddr_keeps_the_ports_of_live_sessions() {
    if skip() {
        return;
    }
    let prefix = "rlpa";
    let lab = two_port(prefix, false, 80, 80);
    let d = two_port_director(&lab, prefix, 1);
    let svc = fullnat_service(&d, &[LIP1]);
    let (before, failed) = curls(&lab, 6);
    assert_eq!(failed, 0, "before the change: {before:?}");
    assert!(before
        .iter()
        .all(|b| b.contains(&format!("client={LIP1}:"))));

    d.rvsadm(&["--add-laddr", "-z", LIP2, "-t", &svc]);
    let (after, failed) = curls(&lab, 6);
    let listing = d.rvsadm(&["-G"]);
    assert_eq!(
        failed, 0,
        "every curl after --add-laddr succeeds: {after:?}\n{listing}"
    );
    assert!(
        after.iter().any(|b| b.contains(&format!("client={LIP2}:"))),
        "the new LIP is used: {after:?}"
    );
    // Every session still lives (TIME_WAIT lasts 2 minutes): 6 + 3 on the first LIP,
    // 3 on the new one; no port was handed out twice, so nothing conflicted.
    assert_eq!(laddr_row(&listing, LIP1), Some((0, 9)), "{listing}");
    assert_eq!(laddr_row(&listing, LIP2), Some((0, 3)), "{listing}");
}

#[test]
fn deleting_a_laddr_keeps_the_ports_of_live_sessions_on_the_others() {
    if skip() {
        return;
    }
    let prefix = "rlpd";
    let lab = two_port(prefix, false, 80, 80);
    let d = two_port_director(&lab, prefix, 1);
    let svc = fullnat_service(&d, &[LIP1, LIP2]);
    let (before, failed) = curls(&lab, 6);
    assert_eq!(failed, 0, "before the change: {before:?}");

    d.rvsadm(&["--del-laddr", "-z", LIP2, "-t", &svc]);
    let (after, failed) = curls(&lab, 6);
    let listing = d.rvsadm(&["-G"]);
    assert_eq!(
        failed, 0,
        "every curl after --del-laddr succeeds: {after:?}\n{listing}"
    );
    assert!(
        after.iter().all(|b| b.contains(&format!("client={LIP1}:"))),
        "only the remaining LIP is used: {after:?}"
    );
    // The remaining LIP: its 3 sessions from before and the 6 new ones; the deleted LIP
    // is no longer listed (its sessions run on until they expire).
    assert_eq!(laddr_row(&listing, LIP1), Some((0, 9)), "{listing}");
    assert_eq!(laddr_row(&listing, LIP2), None, "{listing}");
}
