//! Path MTU discovery through the director in every mode: the client sits behind a
//! router whose link toward it has a smaller MTU (1280) than the rest (1500); a real
//! server's full-size replies (DF set) are refused by that router with ICMP
//! fragmentation-needed, sent to the replies' source, the VIP. The director must relay
//! the error to the real server (translated under NAT and FULLNAT, as a packet of the
//! session under DR and TUN), which lowers its path MTU and resends: the download
//! completes. Without the relay the replies black-hole and the download times out.
//!
//! Topology: `rvs_tests::topo::one_segment` with the client routed (`rt`), one director
//! port on the servers' segment. Needs root; skipped where namespaces cannot be made.

use std::net::Ipv4Addr;
use std::process::Command;

use rvs_tests::topo::{one_segment, one_segment_director, tun_real_server, VIP1};
use rvs_tests::{blob_dir, can_build_labs, sha256, Lab};

/// The MTU of the router's link toward the client.
const SMALL_MTU: &str = "1280";

/// One mode's lab: the download of `blob.bin` from `www` through the VIP completes
/// intact (checked against `want`), and the director relayed at least one ICMP error.
fn download_through_a_small_mtu(mode: &str, www: &std::path::Path, want: &str) {
    let prefix = format!("rpm{}", &mode[..2]);
    let mut lab: Lab = one_segment(&prefix, true);
    lab.exec("rt", &["ip", "link", "set", "rc0", "mtu", SMALL_MTU]);
    for (ns, ip) in [("r1", "10.30.0.11"), ("r2", "10.30.0.12")] {
        match mode {
            "dr" => lab.real_server_vip(ns, VIP1, "lo"),
            "tun" => tun_real_server(&mut lab, ns, VIP1),
            // NAT: the replies go back through the director.
            "nat" => {
                lab.exec(
                    ns,
                    &["ip", "route", "replace", "default", "via", "10.30.0.1"],
                );
            }
            _ => {}
        }
        lab.serve_dir(ns, "0.0.0.0", ip.parse::<Ipv4Addr>().expect("ip"), 80, www);
    }
    let d = one_segment_director(&lab, &prefix, true);
    let svc = format!("{VIP1}:80");
    let flag = match mode {
        "dr" => "-g",
        "tun" => "-i",
        "fullnat" => "-b",
        _ => "-m",
    };
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.30.0.11:80", flag]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.30.0.12:80", flag]);
    if mode == "fullnat" {
        d.rvsadm(&["--add-laddr", "-z", "10.30.0.200", "-t", &svc]);
    }
    let out = std::env::temp_dir().join(format!("{prefix}-{}.out", std::process::id()));
    let st = Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args(["curl", "-s", "--max-time", "20", "-o"])
        .arg(&out)
        .arg(format!("http://{VIP1}/blob.bin"))
        .status()
        .expect("curl");
    let got = sha256(&out);
    let _ = std::fs::remove_file(&out);
    let relayed = d.counter("icmp_translated");
    assert!(
        st.success(),
        "{mode}: the download through the small MTU failed ({st}); ICMP errors relayed: {relayed}"
    );
    assert_eq!(got, want, "{mode}: the body arrived intact");
    assert!(
        relayed > 0,
        "{mode}: the router's fragmentation-needed was relayed"
    );
    drop(d);
    drop(lab);
}

#[test]
fn path_mtu_discovery_works_through_the_director_in_every_mode() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and network namespaces");
        return;
    }
    let (www, want) = blob_dir("rpm", 1024 * 1024);
    for mode in ["nat", "fullnat", "dr", "tun"] {
        download_through_a_small_mtu(mode, &www, &want);
    }
    let _ = std::fs::remove_dir_all(&www);
}
