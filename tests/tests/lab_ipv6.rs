//! The seeds' scenarios over IPv6, end to end: real kernel IPv6 stacks in network
//! namespaces, `curl -6`, python HTTP servers, rvsd on DPDK `net_af_packet` ports with
//! IPv6 addresses, configured with rvsadm as ipvsadm would be.
//!
//! Topologies (every address added with `nodad`, so that nothing waits for duplicate
//! address detection):
//! - two-port (NAT, FULLNAT, NAT64): client 2001:db8:1::2 — [d0 2001:db8:1::1 | VIP
//!   2001:db8:1::100] director [d1 2001:db8:2::1 and 10.20.0.1 | LIPs] — bridge — rs1
//!   2001:db8:2::11 / 10.20.0.11, rs2 2001:db8:2::12 / 10.20.0.12;
//! - one segment (DR, TUN): client 2001:db8:3::2, director 2001:db8:3::1, VIP
//!   2001:db8:3::100, rs1 2001:db8:3::11, rs2 2001:db8:3::12 on one bridge. DR servers
//!   hold the VIP on `lo` (`accept_dad=0`, `nodad`); TUN servers decapsulate ip6ip6 in
//!   user space (this kernel has no ip6_tunnel module) into a TUN device holding the VIP;
//! - the client behind a router whose link to it has a smaller MTU (1280) than the
//!   client's own (1500): path MTU discovery through the director.
//!
//! The director's kernel has IPv6 off on the DPDK ports' interfaces (`disable_ipv6`):
//! rvs answers neighbour discovery for its addresses itself.
//!
//! Needs root; each test skips (with a message) where namespaces cannot be made.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use rvs_tests::topo::tun6_real_server;
use rvs_tests::{blob_dir, can_build_labs, sha256, DirPort, Director, Lab};

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

const VIP: &str = "2001:db8:1::100";
const VIP_SEG: &str = "2001:db8:3::100";

/// An HTTP server on `[::]:port` answering every GET with `<name> client=<addr>:<port>`.
const NAME_SERVER6: &str = r#"
import http.server, socketserver, socket, sys
name, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = ("%s client=%s:%d\n" % (name, self.client_address[0], self.client_address[1])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
S(("::", port), H).serve_forever()
"#;

/// An HTTP server on `[::]:port` that reads a POSTed body whole and answers its sha256.
const UPLOAD_SINK6: &str = r#"
import hashlib, http.server, socketserver, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_POST(self):
        n, h = int(self.headers["Content-Length"]), hashlib.sha256()
        while n > 0:
            b = self.rfile.read(min(n, 65536))
            if not b: break
            h.update(b); n -= len(b)
        body = h.hexdigest().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
S(("::", int(sys.argv[1])), H).serve_forever()
"#;

/// Starts [`NAME_SERVER6`] in `ns` as `name` on `[::]:port`; waits until it listens.
fn name_server(lab: &mut Lab, ns: &str, name: &str, port: u16) {
    lab.spawn(
        ns,
        &["python3", "-c", NAME_SERVER6, name, &port.to_string()],
    );
    lab.wait_tcp6(ns, Ipv6Addr::LOCALHOST, port);
}

/// `curl -6` from the client (bounded); the body.
fn curl(lab: &Lab, url: &str) -> Option<String> {
    let out = lab.try_exec("c", &["curl", "-6", "-g", "-s", "--max-time", "5", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` curls: the first word of each body (the server's name).
fn names(lab: &Lab, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            curl(lab, url)
                .unwrap_or_else(|| panic!("curl #{i} of {url} failed"))
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn alternates(n: &[String]) {
    for w in n.windows(2) {
        assert_ne!(w[0], w[1], "rr alternates: {n:?}");
    }
    assert!(
        n.iter().any(|x| x == "rs1") && n.iter().any(|x| x == "rs2"),
        "{n:?}"
    );
}

/// The download service's web root: a fresh `len`-byte `blob.bin` (see [`blob_dir`],
/// named by `tag`) served over HTTP from `ns` on `[::]:port` (python's `http.server`).
/// Waits until it listens; returns the directory and the blob's SHA-256.
fn blob_server(lab: &mut Lab, tag: &str, len: u32, ns: &str, port: u16) -> (PathBuf, String) {
    let (www, sha) = blob_dir(tag, len);
    lab.spawn(
        ns,
        &[
            "python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "::",
            "--directory",
            &www.to_string_lossy(),
        ],
    );
    lab.wait_tcp6(ns, Ipv6Addr::LOCALHOST, port);
    (www, sha)
}

/// Downloads `url` on the client (`curl -6`, bounded: 60 s) into a temporary file named
/// by `tag`, asserts that its SHA-256 is `sha` (the transfer is byte-exact), removes it.
fn assert_download(lab: &Lab, tag: &str, url: &str, sha: &str) {
    let to = std::env::temp_dir().join(format!("rvs-{tag}-blob"));
    let _ = std::fs::remove_file(&to);
    let out = lab.try_exec(
        "c",
        &[
            "curl",
            "-6",
            "-g",
            "-s",
            "--max-time",
            "60",
            "-o",
            &to.to_string_lossy(),
            url,
        ],
    );
    assert!(out.status.success(), "download of {url}: {out:?}");
    assert_eq!(sha256(&to), sha);
    let _ = std::fs::remove_file(to);
}

/// The two-port lab over IPv6 (and IPv4 on the server side, for NAT64). Servers
/// answer names on `port`; with `nat_gateway` their default route is the director.
fn two_port(prefix: &str, port: u16, nat_gateway: bool) -> Lab {
    let mut lab = Lab::new(prefix);
    for ns in ["c", "d", "sw", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "d", "d0");
    lab.veth("d", "d1", "sw", "d1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.bridge("sw", "br0", &["d1p", "r1p", "r2p"]);
    lab.kernel_off6("d", "d0");
    lab.kernel_off6("d", "d1");
    lab.kernel_off("d", "d0");
    lab.kernel_off("d", "d1");
    lab.addr6("c", "c0", "2001:db8:1::2/64");
    lab.route6("c", "default", "2001:db8:1::1");
    for (ns, k, name) in [("r1", 11, "rs1"), ("r2", 12, "rs2")] {
        lab.addr6(ns, "r0", &format!("2001:db8:2::{k}/64"));
        lab.addr(ns, "r0", &format!("10.20.0.{k}/24"));
        if nat_gateway {
            lab.route6(ns, "default", "2001:db8:2::1");
        }
        name_server(&mut lab, ns, name, port);
    }
    lab
}

fn two_port_director(lab: &Lab, tag: &str, workers: usize) -> Director {
    Director::start(
        lab,
        "d",
        tag,
        &[
            DirPort {
                name: "dpdk0",
                iface: "d0",
                addrs: &["2001:db8:1::1/64"],
            },
            DirPort {
                name: "dpdk1",
                iface: "d1",
                addrs: &["2001:db8:2::1/64", "10.20.0.1/24"],
            },
        ],
        workers,
        "",
    )
}

#[test]
fn ipv6_nat_maps_ports_alternates_splits_by_weight_and_lists_as_ipvsadm() {
    if skip() {
        return;
    }
    let mut lab = two_port("r6nat", 8080, true);
    let d = two_port_director(&lab, "r6nat", 2);
    let svc = format!("[{VIP}]:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in ["[2001:db8:2::11]:8080", "[2001:db8:2::12]:8080"] {
        d.rvsadm(&["-a", "-t", &svc, "-r", rs, "-m"]);
    }
    let url = format!("http://[{VIP}]/");
    alternates(&names(&lab, &url, 6));
    // The servers see the client's own address under NAT.
    let body = curl(&lab, &url).expect("curl");
    assert!(body.contains("client=2001:db8:1::2:"), "{body}");
    // ipvsadm's listing of an IPv6 service.
    let list = d.rvsadm(&["-Ln"]);
    assert!(list.contains(&format!("TCP  [{VIP}]:80 rr")), "{list}");
    assert!(list.contains("  -> [2001:db8:2::11]:8080"), "{list}");
    assert!(list.contains("Masq    1"), "{list}");
    let conns = d.rvsadm(&["-Lnc"]);
    assert!(conns.contains("[2001:db8:1::2]:"), "{conns}");
    assert!(conns.contains(&format!("[{VIP}]:80")), "{conns}");
    // wrr 2:1.
    d.rvsadm(&["-E", "-t", &svc, "-s", "wrr"]);
    d.rvsadm(&[
        "-e",
        "-t",
        &svc,
        "-r",
        "[2001:db8:2::11]:8080",
        "-m",
        "-w",
        "2",
    ]);
    let n = names(&lab, &url, 9);
    let rs1 = n.iter().filter(|x| *x == "rs1").count();
    assert_eq!((rs1, n.len() - rs1), (6, 3), "wrr 2:1: {n:?}");
    // A long transfer stays byte-exact.
    let (_, sha) = blob_server(&mut lab, "r6nat", 8 << 20, "r1", 8081);
    let big = format!("[{VIP}]:81");
    d.rvsadm(&["-A", "-t", &big, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &big, "-r", "[2001:db8:2::11]:8081", "-m"]);
    assert_download(&lab, "r6nat", &format!("http://[{VIP}]:81/blob.bin"), &sha);
}

#[test]
fn ipv6_fullnat_takes_ipv6_lips_and_servers_see_them() {
    if skip() {
        return;
    }
    let mut lab = two_port("r6fn", 80, false);
    let d = two_port_director(&lab, "r6fn", 2);
    let svc = format!("[{VIP}]:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in ["[2001:db8:2::11]:80", "[2001:db8:2::12]:80"] {
        d.rvsadm(&["-a", "-t", &svc, "-r", rs, "-b"]);
    }
    d.rvsadm(&["--add-laddr", "-z", "2001:db8:2::200", "-t", &svc]);
    let url = format!("http://[{VIP}]/");
    alternates(&names(&lab, &url, 6));
    let body = curl(&lab, &url).expect("curl");
    assert!(
        body.contains("client=2001:db8:2::200:"),
        "the server sees the LIP: {body}"
    );
    let (_, sha) = blob_server(&mut lab, "r6fn", 8 << 20, "r2", 8081);
    let big = format!("[{VIP}]:81");
    d.rvsadm(&["-A", "-t", &big, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &big, "-r", "[2001:db8:2::12]:8081", "-b"]);
    d.rvsadm(&["--add-laddr", "-z", "2001:db8:2::201", "-t", &big]);
    assert_download(&lab, "r6fn", &format!("http://[{VIP}]:81/blob.bin"), &sha);
}

#[test]
fn nat64_carries_ipv6_clients_to_ipv4_servers() {
    if skip() {
        return;
    }
    let mut lab = two_port("r6n64", 80, false);
    let d = two_port_director(&lab, "r6n64", 2);
    let svc = format!("[{VIP}]:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["--add-laddr", "-z", "10.20.0.200", "-t", &svc]);
    for rs in ["10.20.0.11:80", "10.20.0.12:80"] {
        d.rvsadm(&["-a", "-t", &svc, "-r", rs, "-b"]);
    }
    let url = format!("http://[{VIP}]/");
    alternates(&names(&lab, &url, 6));
    let body = curl(&lab, &url).expect("curl");
    // (The server's dual-stack socket writes it `::ffff:10.20.0.200`.)
    assert!(
        body.contains("10.20.0.200:"),
        "an IPv4 server sees the IPv4 LIP: {body}"
    );
    let list = d.rvsadm(&["-Ln"]);
    assert!(list.contains("  -> 10.20.0.11:80"), "{list}");
    assert!(list.contains("FullNat"), "{list}");
    // NAT64: the download comes from an IPv4-only server.
    let (www, sha) = blob_dir("r6n64", 8 << 20);
    lab.serve_dir("r1", "0.0.0.0", Ipv4Addr::new(10, 20, 0, 11), 8081, &www);
    let big = format!("[{VIP}]:81");
    d.rvsadm(&["-A", "-t", &big, "-s", "rr"]);
    d.rvsadm(&["--add-laddr", "-z", "10.20.0.201", "-t", &big]);
    d.rvsadm(&["-a", "-t", &big, "-r", "10.20.0.11:8081", "-b"]);
    assert_download(&lab, "r6n64", &format!("http://[{VIP}]:81/blob.bin"), &sha);
}

/// The one-segment lab over IPv6 (DR, TUN): client, director and servers on one bridge.
fn one_segment(prefix: &str) -> Lab {
    let mut lab = Lab::new(prefix);
    for ns in ["c", "d", "sw", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("d", "d0", "sw", "d0p");
    lab.veth("c", "c0", "sw", "c0p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.bridge("sw", "br0", &["d0p", "c0p", "r1p", "r2p"]);
    lab.kernel_off6("d", "d0");
    lab.kernel_off("d", "d0");
    lab.addr6("c", "c0", "2001:db8:3::2/64");
    lab.addr6("r1", "r0", "2001:db8:3::11/64");
    lab.addr6("r2", "r0", "2001:db8:3::12/64");
    lab
}

fn one_segment_director(lab: &Lab, tag: &str) -> Director {
    Director::start(
        lab,
        "d",
        tag,
        &[DirPort {
            name: "dpdk0",
            iface: "d0",
            addrs: &["2001:db8:3::1/64"],
        }],
        1,
        "",
    )
}

#[test]
fn ipv6_dr_servers_answer_the_client_directly() {
    if skip() {
        return;
    }
    let mut lab = one_segment("r6dr");
    for (ns, name) in [("r1", "rs1"), ("r2", "rs2")] {
        lab.exec(ns, &["sysctl", "-qw", "net.ipv6.conf.lo.accept_dad=0"]);
        lab.addr6(ns, "lo", &format!("{VIP_SEG}/128"));
        name_server(&mut lab, ns, name, 80);
    }
    let d = one_segment_director(&lab, "r6dr");
    let svc = format!("[{VIP_SEG}]:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in ["2001:db8:3::11", "2001:db8:3::12"] {
        d.rvsadm(&["-a", "-t", &svc, "-r", rs, "-g"]);
    }
    let url = format!("http://[{VIP_SEG}]/");
    alternates(&names(&lab, &url, 6));
    let body = curl(&lab, &url).expect("curl");
    assert!(
        body.contains("client=2001:db8:3::2:"),
        "DR keeps the client's address: {body}"
    );
    let list = d.rvsadm(&["-Ln"]);
    assert!(list.contains("  -> [2001:db8:3::11]:80"), "{list}");
    assert!(list.contains("Route   1"), "{list}");
    let (_, sha) = blob_server(&mut lab, "r6dr", 8 << 20, "r1", 81);
    let big = format!("[{VIP_SEG}]:81");
    d.rvsadm(&["-A", "-t", &big, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &big, "-r", "2001:db8:3::11", "-g"]);
    assert_download(
        &lab,
        "r6dr",
        &format!("http://[{VIP_SEG}]:81/blob.bin"),
        &sha,
    );
}

#[test]
fn ipv6_tun_servers_decapsulate_ip6ip6() {
    if skip() {
        return;
    }
    let mut lab = one_segment("r6tun");
    for (ns, name) in [("r1", "rs1"), ("r2", "rs2")] {
        tun6_real_server(&mut lab, ns, VIP_SEG);
        name_server(&mut lab, ns, name, 80);
    }
    let d = one_segment_director(&lab, "r6tun");
    let svc = format!("[{VIP_SEG}]:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in ["2001:db8:3::11", "2001:db8:3::12"] {
        d.rvsadm(&["-a", "-t", &svc, "-r", rs, "-i"]);
    }
    // The client's MSS leaves room for the 40-byte outer header only if path MTU
    // discovery works: the director answers a full-size segment with Packet Too Big.
    let url = format!("http://[{VIP_SEG}]/");
    alternates(&names(&lab, &url, 6));
    let body = curl(&lab, &url).expect("curl");
    assert!(
        body.contains("client=2001:db8:3::2:"),
        "TUN keeps the client's address: {body}"
    );
    let list = d.rvsadm(&["-Ln"]);
    assert!(list.contains("Tunnel  1"), "{list}");
    // A download through the tunnel, then an upload of full-size segments: the client
    // learns the tunnel's MTU from the director's Packet Too Big and the upload gets
    // through whole.
    let (www, sha) = blob_server(&mut lab, "r6tun", 4 << 20, "r2", 81);
    let big = format!("[{VIP_SEG}]:81");
    d.rvsadm(&["-A", "-t", &big, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &big, "-r", "2001:db8:3::12", "-i"]);
    assert_download(
        &lab,
        "r6tun",
        &format!("http://[{VIP_SEG}]:81/blob.bin"),
        &sha,
    );
    lab.spawn("r2", &["python3", "-c", UPLOAD_SINK6, "82"]);
    lab.wait_tcp6("r2", Ipv6Addr::LOCALHOST, 82);
    let up = format!("[{VIP_SEG}]:82");
    d.rvsadm(&["-A", "-t", &up, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &up, "-r", "2001:db8:3::12", "-i"]);
    let body = format!("@{}", www.join("blob.bin").display());
    let url = format!("http://[{VIP_SEG}]:82/");
    let args = [
        "curl",
        "-6",
        "-g",
        "-s",
        "--max-time",
        "60",
        "--data-binary",
        &body,
        &url,
    ];
    let post = lab.try_exec("c", &args);
    let got = String::from_utf8_lossy(&post.stdout);
    assert_eq!(got, sha, "the upload arrived whole: {post:?}");
    assert!(
        d.counter("frag_needed_sent") > 0,
        "the director sent Packet Too Big"
    );
}

#[test]
fn ipv6_path_mtu_discovery_works_through_nat() {
    if skip() {
        return;
    }
    // client c0 (MTU 1500) — rt (its link to the client: MTU 1280) — director — rs1.
    let mut lab = Lab::new("r6mtu");
    for ns in ["c", "rt", "d", "sw", "r1"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "rt", "rc0");
    lab.veth("rt", "rd0", "d", "d0");
    lab.veth("d", "d1", "sw", "d1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.bridge("sw", "br0", &["d1p", "r1p"]);
    lab.exec("rt", &["ip", "link", "set", "rc0", "mtu", "1280"]);
    lab.kernel_off6("d", "d0");
    lab.kernel_off6("d", "d1");
    lab.kernel_off("d", "d0");
    lab.kernel_off("d", "d1");
    lab.addr6("c", "c0", "2001:db8:4::2/64");
    lab.route6("c", "default", "2001:db8:4::fe");
    lab.addr6("rt", "rc0", "2001:db8:4::fe/64");
    lab.addr6("rt", "rd0", "2001:db8:1::fe/64");
    lab.exec("rt", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    lab.addr6("r1", "r0", "2001:db8:2::11/64");
    lab.route6("r1", "default", "2001:db8:2::1");
    let (_, sha) = blob_server(&mut lab, "r6mtu", 4 << 20, "r1", 80);
    let d = Director::start(
        &lab,
        "d",
        "r6mtu",
        &[
            DirPort {
                name: "dpdk0",
                iface: "d0",
                addrs: &["2001:db8:1::1/64"],
            },
            DirPort {
                name: "dpdk1",
                iface: "d1",
                addrs: &["2001:db8:2::1/64"],
            },
        ],
        1,
        "[[routes]]\nprefix = \"2001:db8:4::/64\"\nvia = \"2001:db8:1::fe\"\nport = \"dpdk0\"\n",
    );
    let svc = format!("[{VIP}]:80");
    d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
    d.rvsadm(&["-a", "-t", &svc, "-r", "[2001:db8:2::11]:80", "-m"]);
    assert_download(&lab, "r6mtu", &format!("http://[{VIP}]/blob.bin"), &sha);
    assert!(
        d.counter("icmp_translated") > 0,
        "the router's Packet Too Big reached the server through the director"
    );
}
