//! The seeds' lab scenarios end to end, in every forwarding mode: real kernel TCP/UDP
//! peers in network namespaces, curl and python servers, rvsd on DPDK `net_af_packet`
//! ports, configured with rvsadm the way the seeds configure ipvsadm.
//!
//! Three topologies:
//! - two-port (NAT, FULLNAT): client 10.10.0.2 — [d0 10.10.0.1 | VIP 10.10.0.100]
//!   director [d1 10.20.0.1 | LIP 10.20.0.200] — bridge — rs1 10.20.0.11, rs2 10.20.0.12;
//! - one segment (DR, TUN; "VIP and DIP in one subnet"): client 10.30.0.2, director
//!   10.30.0.1, VIP 10.30.0.100, rs1 10.30.0.11, rs2 10.30.0.12 on one bridge;
//! - routed (DR across a router): client 10.10.0.2 — router 10.10.0.254/10.30.0.254 —
//!   the one-segment network; real servers answer the client through the router.
//!
//! This kernel has no `ipip` module, so TUN real servers decapsulate in user space: a
//! small program reads IPIP packets from a raw socket and writes the inner packet into a
//! TUN device that holds the VIP (the role `tunl0` plays on a stock kernel); everything
//! above it is the real kernel TCP stack.
//!
//! Needs root; each test skips (with a message) where namespaces cannot be made.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_tests::topo::{
    one_segment, one_segment_director, tun_real_server, two_port, two_port_director, VIP1, VIP2,
};
use rvs_tests::{blob_dir, can_build_labs, sha256, Lab};

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

/// `n` curls of `url` from the client; the first word of each body (the server's name).
fn names(lab: &Lab, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            lab.curl("c", url)
                .unwrap_or_else(|| panic!("curl #{i} of {url} failed"))
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn alternates(names: &[String]) {
    for w in names.windows(2) {
        assert_ne!(w[0], w[1], "rr alternates: {names:?}");
    }
    assert!(
        names.iter().any(|n| n == "rs1") && names.iter().any(|n| n == "rs2"),
        "{names:?}"
    );
}

#[test]
fn dr_vip_and_dip_in_one_subnet_replies_bypass_the_director() {
    if skip() {
        return;
    }
    let mut lab = one_segment("rmdr", false);
    for (ns, name) in [("r1", "rs1"), ("r2", "rs2")] {
        lab.real_server_vip(ns, VIP1, "lo");
        lab.name_server(ns, Ipv4Addr::UNSPECIFIED, 80, name);
    }
    let d = one_segment_director(&lab, "rmdr", false);
    // The seeds' lvsdr commands.
    d.rvsadm(&["-A", "-t", &format!("{VIP1}:80"), "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &format!("{VIP1}:80"), "-r", "10.30.0.11", "-g"]);
    d.rvsadm(&["-a", "-t", &format!("{VIP1}:80"), "-r", "10.30.0.12", "-g"]);
    let n = names(&lab, &format!("http://{VIP1}/"), 6);
    alternates(&n);
    // The client saw its own address at the servers: DR does not touch L3.
    let body = lab.curl("c", &format!("http://{VIP1}/")).expect("curl");
    assert!(body.contains("client=10.30.0.2:"), "{body}");
    assert_eq!(d.counter("out"), 0, "no reply went through the director");
    assert!(
        d.counter("in") >= 7 * 3,
        "requests went through the director"
    );
    let listing = d.rvsadm(&["-Ln"]);
    assert!(
        listing.contains("  -> 10.30.0.11:80                Route   1"),
        "{listing}"
    );
}

#[test]
fn dr_across_a_router() {
    if skip() {
        return;
    }
    let mut lab = one_segment("rmdx", true);
    for (ns, name) in [("r1", "rs1"), ("r2", "rs2")] {
        lab.real_server_vip(ns, VIP1, "lo");
        lab.name_server(ns, Ipv4Addr::UNSPECIFIED, 80, name);
    }
    let d = one_segment_director(&lab, "rmdx", true);
    d.rvsadm(&["-A", "-t", &format!("{VIP1}:80"), "-s", "rr"]);
    d.rvsadm(&[
        "-a",
        "-t",
        &format!("{VIP1}:80"),
        "-r",
        "10.30.0.11:80",
        "-g",
        "-w",
        "1",
    ]);
    d.rvsadm(&[
        "-a",
        "-t",
        &format!("{VIP1}:80"),
        "-r",
        "10.30.0.12:80",
        "-g",
        "-w",
        "1",
    ]);
    alternates(&names(&lab, &format!("http://{VIP1}/"), 4));
    let body = lab.curl("c", &format!("http://{VIP1}/")).expect("curl");
    assert!(
        body.contains("client=10.10.0.2:"),
        "the client's address crosses the router: {body}"
    );
    assert_eq!(
        d.counter("out"),
        0,
        "replies go through the router, not the director"
    );
    let ping = lab.try_exec("c", &["ping", "-c", "1", "-W", "2", VIP1]);
    assert!(
        ping.status.success(),
        "the director answers ping for the VIP across the router"
    );
}

#[test]
fn tun_servers_answer_directly() {
    if skip() {
        return;
    }
    let mut lab = one_segment("rmtu", false);
    for (ns, name) in [("r1", "rs1"), ("r2", "rs2")] {
        tun_real_server(&mut lab, ns, VIP1);
        lab.name_server(ns, Ipv4Addr::UNSPECIFIED, 80, name);
    }
    let d = one_segment_director(&lab, "rmtu", false);
    d.rvsadm(&["-A", "-t", &format!("{VIP1}:80"), "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &format!("{VIP1}:80"), "-r", "10.30.0.11", "-i"]);
    d.rvsadm(&["-a", "-t", &format!("{VIP1}:80"), "-r", "10.30.0.12", "-i"]);
    alternates(&names(&lab, &format!("http://{VIP1}/"), 6));
    assert_eq!(d.counter("out"), 0, "TUN replies bypass the director");
    let listing = d.rvsadm(&["-Ln"]);
    assert!(listing.contains("Tunnel"), "{listing}");
}

#[test]
fn https_through_nat_with_a_self_signed_certificate() {
    if skip() {
        return;
    }
    let mut lab = two_port("rmhs", true, 8080, 80);
    let dir = std::env::temp_dir().join(format!("rmhs-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tls dir");
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=www.rvs.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success(), "openssl req");
    let tls = r#"
import http.server, ssl, sys
name, bind, certf, keyf = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = (name + " tls client=%s\n" % self.client_address[0]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
s = http.server.HTTPServer((bind, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(certf, keyf)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;
    let (c, k) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    lab.spawn("r1", &["python3", "-c", tls, "rs1", "10.20.0.11", &c, &k]);
    lab.spawn("r2", &["python3", "-c", tls, "rs2", "10.20.0.12", &c, &k]);
    lab.wait_tcp("r1", Ipv4Addr::new(10, 20, 0, 11), 443);
    lab.wait_tcp("r2", Ipv4Addr::new(10, 20, 0, 12), 443);
    let d = two_port_director(&lab, "rmhs", 1);
    d.rvsadm(&["-A", "-t", &format!("{VIP2}:443"), "-s", "rr"]);
    d.rvsadm(&[
        "-a",
        "-t",
        &format!("{VIP2}:443"),
        "-r",
        "10.20.0.11:443",
        "-m",
    ]);
    d.rvsadm(&[
        "-a",
        "-t",
        &format!("{VIP2}:443"),
        "-r",
        "10.20.0.12:443",
        "-m",
    ]);
    let n = names(&lab, &format!("https://{VIP2}/"), 4);
    alternates(&n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrr_sh_weight_zero_drain_and_server_removal() {
    if skip() {
        return;
    }
    let lab = two_port("rmsc", true, 80, 80);
    let d = two_port_director(&lab, "rmsc", 1);
    let svc = format!("{VIP2}:80");
    let url = format!("http://{VIP2}/");
    d.rvsadm(&["-A", "-t", &svc, "-s", "wrr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11", "-m", "-w", "2"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12", "-m", "-w", "1"]);
    let n = names(&lab, &url, 9);
    let rs1 = n.iter().filter(|x| *x == "rs1").count();
    assert_eq!((rs1, 9 - rs1), (6, 3), "wrr 2:1 over 9 connections: {n:?}");
    assert!(
        n.chunks(3)
            .all(|c| c.iter().filter(|x| *x == "rs1").count() == 2),
        "2:1 in every round: {n:?}"
    );

    // sh: one client, one server.
    d.rvsadm(&["-E", "-t", &svc, "-s", "sh"]);
    let n = names(&lab, &url, 5);
    assert!(
        n.windows(2).all(|w| w[0] == w[1]),
        "sh keeps a client on one server: {n:?}"
    );
    let stuck = n[0].clone();

    // Weight 0 drains: an open connection to the stuck server finishes, new ones move.
    d.rvsadm(&["-E", "-t", &svc, "-s", "rr"]);
    let (stuck_ip, other) = if stuck == "rs1" {
        ("10.20.0.11", "rs2")
    } else {
        ("10.20.0.12", "rs1")
    };
    let slow_url = url.clone();
    let slow = {
        // Find a slow connection to the stuck server: rr alternates, retry until it lands.
        let mut found = None;
        let mut seen = String::new();
        for _ in 0..4 {
            let mut child = Command::new("ip")
                .args(["netns", "exec", &lab.ns("c")])
                .args(["curl", "-s", "--max-time", "15", &format!("{slow_url}slow")])
                .stdout(Stdio::piped())
                .spawn()
                .expect("slow curl");
            std::thread::sleep(Duration::from_millis(500));
            let conns = d.rvsadm(&["-Lnc"]);
            seen.push_str(&conns);
            if conns
                .lines()
                .any(|l| l.contains("ESTABLISHED") && l.contains(&format!("{stuck_ip}:80")))
            {
                found = Some(child);
                break;
            }
            let _ = child.wait();
        }
        found.unwrap_or_else(|| panic!("no established connection to {stuck_ip} to drain: {seen}"))
    };
    d.rvsadm(&["-e", "-t", &svc, "-r", stuck_ip, "-m", "-w", "0"]);
    let n = names(&lab, &url, 4);
    assert!(
        n.iter().all(|x| x == other),
        "weight 0: new connections go elsewhere: {n:?}"
    );
    let out = slow.wait_with_output().expect("slow curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&stuck),
        "the existing connection to the drained server completed"
    );

    // Removing a server mid-run: the rest keep serving.
    d.rvsadm(&["-e", "-t", &svc, "-r", stuck_ip, "-m", "-w", "1"]);
    let (other_ip, remaining) = if other == "rs1" {
        ("10.20.0.11", stuck.as_str())
    } else {
        ("10.20.0.12", stuck.as_str())
    };
    d.rvsadm(&["-d", "-t", &svc, "-r", other_ip]);
    let n = names(&lab, &url, 3);
    assert!(n.iter().all(|x| x == remaining), "{n:?}");
    let listing = d.rvsadm(&["-Ln"]);
    assert!(!listing.contains(other_ip), "{listing}");
}

/// Sends one UDP datagram to `VIP2:53` from the client and returns the answer.
fn udp_ask(lab: &Lab, msg: &str) -> String {
    let py = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(sys.argv[2].encode(), (sys.argv[1], 53))
print(s.recvfrom(2048)[0].decode())
"#;
    let out = lab.try_exec("c", &["python3", "-c", py, VIP2, msg]);
    assert!(
        out.status.success(),
        "no UDP answer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 53))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(("%s %s from=%s" % (sys.argv[1], d.decode(), a[0])).encode(), a)
"#;

#[test]
fn udp_echo_through_nat_and_fullnat() {
    if skip() {
        return;
    }
    for (prefix, fullnat) in [("rmun", false), ("rmuf", true)] {
        let mut lab = two_port(prefix, !fullnat, 8080, 80);
        lab.spawn("r1", &["python3", "-c", UDP_ECHO, "rs1", "10.20.0.11"]);
        lab.spawn("r2", &["python3", "-c", UDP_ECHO, "rs2", "10.20.0.12"]);
        std::thread::sleep(Duration::from_millis(500));
        let d = two_port_director(&lab, prefix, 1);
        let svc = format!("{VIP2}:53");
        let fwd = if fullnat { "-b" } else { "-m" };
        d.rvsadm(&["-A", "-u", &svc, "-s", "rr"]);
        d.rvsadm(&["-a", "-u", &svc, "-r", "10.20.0.11:53", fwd]);
        d.rvsadm(&["-a", "-u", &svc, "-r", "10.20.0.12:53", fwd]);
        if fullnat {
            d.rvsadm(&["--add-laddr", "-z", "10.20.0.200", "-u", &svc]);
        }
        let answers: Vec<String> = (0..4)
            .map(|i| udp_ask(&lab, &format!("hello{i}")))
            .collect();
        let who: Vec<String> = answers
            .iter()
            .map(|a| a.split_whitespace().next().unwrap_or("").to_owned())
            .collect();
        alternates(&who);
        for (i, a) in answers.iter().enumerate() {
            assert!(a.contains(&format!("hello{i}")), "payload intact: {a}");
            let seen = if fullnat {
                "from=10.20.0.200"
            } else {
                "from=10.10.0.2"
            };
            assert!(a.contains(seen), "{a}");
        }
        let conns = d.rvsadm(&["-Lnc"]);
        assert!(
            conns
                .lines()
                .any(|l| l.starts_with("UDP ") && l.contains(" UDP ")),
            "{conns}"
        );
        let listing = d.rvsadm(&["-Ln"]);
        assert!(listing.contains("UDP  10.10.0.100:53 rr"), "{listing}");
    }
}

#[test]
fn persistence_keeps_a_client_on_one_server() {
    if skip() {
        return;
    }
    let lab = two_port("rmpe", true, 80, 80);
    let d = two_port_director(&lab, "rmpe", 1);
    let svc = format!("{VIP2}:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr", "-p", "300"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.11", "-m"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "10.20.0.12", "-m"]);
    let n = names(&lab, &format!("http://{VIP2}/"), 6);
    assert!(
        n.windows(2).all(|w| w[0] == w[1]),
        "-p pins the client: {n:?}"
    );
    let listing = d.rvsadm(&["-Ln"]);
    assert!(
        listing.contains("TCP  10.10.0.100:80 rr persistent 300"),
        "{listing}"
    );
    let conns = d.rvsadm(&["-Lnc"]);
    assert!(
        conns
            .lines()
            .any(|l| l.contains("NONE") && l.contains("10.10.0.2:0")),
        "the persistence template is listed: {conns}"
    );
}

/// A 4 MB transfer at a bounded rate through each mode (NAT, FULLNAT, DR, TUN) stays
/// byte-exact while other
/// clients come and go.
#[test]
fn long_lived_transfers_stay_intact_in_every_mode() {
    if skip() {
        return;
    }
    let (www, want) = blob_dir("rmlt", 4 * 1024 * 1024);
    for mode in ["nat", "fullnat", "dr", "tun"] {
        let prefix = format!("rml{}", &mode[..2]);
        let (lab, vip, d) = if mode == "dr" || mode == "tun" {
            let mut lab = one_segment(&prefix, false);
            for (ns, ip) in [("r1", "10.30.0.11"), ("r2", "10.30.0.12")] {
                if mode == "dr" {
                    lab.real_server_vip(ns, VIP1, "lo");
                } else {
                    tun_real_server(&mut lab, ns, VIP1);
                }
                lab.serve_dir(ns, "0.0.0.0", ip.parse().expect("ip"), 80, &www);
            }
            let d = one_segment_director(&lab, &prefix, false);
            (lab, VIP1, d)
        } else {
            let mut lab = two_port(&prefix, mode == "nat", 8081, 8081);
            for (ns, ip) in [("r1", "10.20.0.11"), ("r2", "10.20.0.12")] {
                lab.serve_dir(ns, ip, ip.parse().expect("ip"), 80, &www);
            }
            let d = two_port_director(&lab, &prefix, 2);
            (lab, VIP2, d)
        };
        let svc = format!("{vip}:80");
        let (r1, r2, fwd) = match mode {
            "dr" => ("10.30.0.11:80", "10.30.0.12:80", "-g"),
            "tun" => ("10.30.0.11:80", "10.30.0.12:80", "-i"),
            "fullnat" => ("10.20.0.11:80", "10.20.0.12:80", "-b"),
            _ => ("10.20.0.11:80", "10.20.0.12:80", "-m"),
        };
        d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
        d.rvsadm(&["-a", "-t", &svc, "-r", r1, fwd]);
        d.rvsadm(&["-a", "-t", &svc, "-r", r2, fwd]);
        if mode == "fullnat" {
            d.rvsadm(&["--add-laddr", "-z", "10.20.0.200", "-t", &svc]);
        }
        let out_file = format!("/tmp/{prefix}-blob.out");
        let mut big = Command::new("ip")
            .args(["netns", "exec", &lab.ns("c")])
            .args([
                "curl",
                "-s",
                "--max-time",
                "40",
                "--limit-rate",
                "1M",
                "-o",
                &out_file,
            ])
            .arg(format!("http://{vip}/blob.bin"))
            .spawn()
            .expect("long transfer");
        // Other clients come and go meanwhile.
        for i in 0..10 {
            let small = lab.curl("c", &format!("http://{vip}/"));
            assert!(
                small.is_some(),
                "{mode}: short connection #{i} during the transfer"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let st = big.wait().expect("curl");
        assert!(st.success(), "{mode}: long transfer failed ({st})");
        let got = sha256(std::path::Path::new(&out_file));
        assert_eq!(got, want, "{mode}: the 4 MB body arrived intact");
        let _ = std::fs::remove_file(&out_file);
        drop(d);
        drop(lab);
    }
    let _ = std::fs::remove_dir_all(&www);
}
