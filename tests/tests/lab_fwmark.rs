//! A firewall-mark service end to end: the classic IPVS use of `iptables -t mangle ...
//! -j MARK` with one persistent fwmark service spanning ports 80 and 443, done with rvs's
//! `[[marks]]` rule. A client's connections to both ports land on the same real server,
//! and `rvsadm -Ln` lists the FWM service.
//!
//! Two-port lab (see `tests/tests/lab_modes.rs`): client 10.10.0.2 — [d0 10.10.0.1 | VIP
//! 10.10.0.100] director [d1 10.20.0.1] — bridge — rs1 10.20.0.11, rs2 10.20.0.12, each
//! serving HTTP on 80 and 443, NAT back through the director.
//!
//! Needs root; skips (with a message) where namespaces cannot be made.

use std::net::Ipv4Addr;

use rvs_tests::can_build_labs;
use rvs_tests::topo::{two_port, two_port_director_with, VIP2};

/// The first word of the body of `url` fetched from the client (the server's name).
fn name(lab: &rvs_tests::Lab, url: &str) -> String {
    lab.curl("c", url)
        .unwrap_or_else(|| panic!("curl {url} failed"))
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn one_persistent_fwmark_service_spans_ports_80_and_443() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = two_port("rfwm", true, 80, 80);
    lab.name_server("r1", Ipv4Addr::new(10, 20, 0, 11), 443, "rs1");
    lab.name_server("r2", Ipv4Addr::new(10, 20, 0, 12), 443, "rs2");
    // iptables -t mangle -A PREROUTING -i d0 -d VIP -p tcp -m multiport --dports 80,443
    //   -j MARK --set-mark 1
    let marks = format!(
        "[[marks]]\nproto = \"tcp\"\ndst = \"{VIP2}\"\ndports = \"80,443\"\nport = \"dpdk0\"\nmark = 1\n"
    );
    let d = two_port_director_with(&lab, "rfwm", 1, &marks);
    d.rvsadm(&["-A", "-f", "1", "-s", "rr", "-p", "300"]);
    d.rvsadm(&["-a", "-f", "1", "-r", "10.20.0.11", "-m"]);
    d.rvsadm(&["-a", "-f", "1", "-r", "10.20.0.12", "-m"]);
    let listing = d.rvsadm(&["-Ln"]);
    assert!(listing.contains("FWM  1 rr persistent 300\n"), "{listing}");
    let mut seen = Vec::new();
    for port in [80, 443, 80, 443, 443, 80] {
        seen.push(name(&lab, &format!("http://{VIP2}:{port}/")));
    }
    assert!(
        seen[0].starts_with("rs") && seen.iter().all(|n| *n == seen[0]),
        "one client, one real server on both ports: {seen:?}"
    );
    // The persistence template of the client (protocol IP, the mark as virtual address)
    // and sessions to both ports of the one server.
    let conns = d.rvsadm(&["-Lnc"]);
    assert!(conns.contains("IP  "), "{conns}");
    assert!(conns.contains(":80 ") && conns.contains(":443 "), "{conns}");
    let stats = d.rvsadm(&["-Ln", "--stats"]);
    assert!(stats.contains("FWM  1"), "{stats}");
}

/// `[[marks]]` change with a reload: a rule that marks port 80 only is widened to 80 and
/// 443 in the file, and after `rvsadm --reload` the client's connections to port 443 reach
/// the fwmark service too (before, nothing marked them and no service took them).
#[test]
fn a_reload_brings_new_mark_rules_to_the_workers() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = two_port("rfwr", true, 80, 80);
    lab.name_server("r1", Ipv4Addr::new(10, 20, 0, 11), 443, "rs1");
    let rules = |dports: &str| {
        format!(
            "# marks\n[[marks]]\nproto = \"tcp\"\ndst = \"{VIP2}\"\ndports = \"{dports}\"\nport = \"dpdk0\"\nmark = 1\n\n\
             [[services]]\nproto = \"fwmark\"\nfwmark = 1\nscheduler = \"rr\"\n\
             real = [ {{ address = \"10.20.0.11\", forward = \"masq\" }} ]\n"
        )
    };
    let d = two_port_director_with(&lab, "rfwr", 1, &rules("80"));
    let curl = |port: u16| {
        let out = lab.try_exec(
            "c",
            &[
                "curl",
                "-s",
                "--max-time",
                "2",
                &format!("http://{VIP2}:{port}/"),
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(curl(80).is_some_and(|b| b.starts_with("rs1")));
    assert_eq!(curl(443), None, "port 443 is not marked yet");

    let path = d.dir().join("rvsd.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let head = text.split("# marks").next().expect("head").to_string();
    std::fs::write(&path, format!("{head}{}", rules("80,443"))).expect("config");
    let report = d.rvsadm(&["--reload"]);
    assert_eq!(report, "reload: 1 change\n  marks: 1 rules (were 1)\n");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let body = curl(443).unwrap_or_else(|| panic!("port 443 after the reload:\n{}", d.log()));
    assert!(body.starts_with("rs1"), "{body}");
    assert!(curl(80).is_some_and(|b| b.starts_with("rs1")));
}
