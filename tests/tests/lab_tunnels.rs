//! TUN real servers behind GUE and GRE tunnels (`--tun-type gue|gre`, with and without
//! checksums), end to end: curl from the client through the VIP, the real servers'
//! kernel TCP answering the client directly.
//!
//! One segment (client 10.30.0.2, director 10.30.0.1, VIP 10.30.0.100, rs1 10.30.0.11,
//! rs2 10.30.0.12). This kernel has no `fou` or `gre` modules, so each real server
//! decapsulates in user space ([`DECAP`]), as the IPIP labs do: GUE from a UDP socket on
//! port 6080, GRE from a raw socket for protocol 47, the inner packet written into a TUN
//! device holding the VIP. IPIP is not decapsulated there: a packet sent as IPIP is lost.
//! The decapsulator also records, for every tunnel packet, its kind, the inner TCP
//! destination port, whether it carried a checksum and whether that checksum was right
//! (GUE: the UDP checksum, computed over a raw copy; GRE: the GRE checksum).
//!
//! Services: VIP:80 → rs1 GUE `--tun-csum`, rs2 GRE `--tun-csum`; VIP:8080 → rs1 GUE
//! `--tun-nocsum`, rs2 GRE `--tun-nocsum`.
//!
//! Needs root; skips (with a message) where namespaces cannot be made.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use rvs_tests::topo::{one_segment, one_segment_director, VIP1};
use rvs_tests::{can_build_labs, Lab};

/// The user-space GUE and GRE decapsulator of a real server. Arguments: the VIP, the
/// file to record tunnel packets in (`kind dport has_csum csum_ok` a line).
const DECAP: &str = r#"
import fcntl, os, socket, struct, sys, threading
vip, log = sys.argv[1], sys.argv[2]
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", b"tunv", 0x0001 | 0x1000))  # TUNSETIFF: IFF_TUN|IFF_NO_PI
lock = threading.Lock()
out = open(log, "a", buffering=1)
def ones(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return s
def note(kind, inner, has, ok):
    ihl = (inner[0] & 15) * 4
    dport = struct.unpack("!H", inner[ihl + 2:ihl + 4])[0] if len(inner) >= ihl + 4 else 0
    with lock:
        out.write("%s %d %d %d\n" % (kind, dport, has, ok))
def gue_watch():
    # A raw copy of every UDP datagram: the checksum of those to the GUE port.
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    while True:
        p = r.recv(65535)
        ihl = (p[0] & 15) * 4
        u = p[ihl:]
        if len(u) < 12 or struct.unpack("!H", u[2:4])[0] != 6080:
            continue
        c = struct.unpack("!H", u[6:8])[0]
        ok = c == 0 or ones(p[12:20] + struct.pack("!BBH", 0, 17, len(u)) + u) == 0xffff
        g = u[8:]
        note("gue", g[4 + 4 * (g[0] & 31):], int(c != 0), int(ok))
def gue():
    # The kernel drops a datagram whose (non-zero) checksum is wrong.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 6080))
    while True:
        g = s.recv(65535)
        if len(g) < 4 or g[0] >> 6 != 0 or g[0] & 0x20 or g[1] != 4:
            continue
        os.write(tun, g[4 + 4 * (g[0] & 31):])
def gre():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    while True:
        p = s.recv(65535)
        g = p[(p[0] & 15) * 4:]
        flags, proto = struct.unpack("!HH", g[:4])
        if flags & 0x7007 or proto != 0x0800:
            continue  # version, routing, key, sequence: not what IPVS sends
        has = flags & 0x8000 != 0
        ok = not has or ones(g) == 0xffff
        hl = 8 if has else 4
        note("gre", g[hl:], int(has), int(ok))
        if ok:
            os.write(tun, g[hl:])
for f in (gue_watch, gue, gre):
    threading.Thread(target=f, daemon=True).start()
os.system("ip link set tunv up && ip addr add %s/32 dev tunv && sysctl -qw net.ipv4.conf.tunv.rp_filter=0" % vip)
threading.Event().wait()
"#;

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

/// Makes `ns` a GUE/GRE real server for `vip`, recording into `log`; waits (bounded)
/// until its TUN device holds the VIP.
fn tunnel_real_server(lab: &mut Lab, ns: &str, vip: &str, log: &Path) {
    for (k, v) in [
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.arp_ignore", "1"),
        ("net.ipv4.conf.all.arp_announce", "2"),
    ] {
        lab.exec(ns, &["sysctl", "-qw", &format!("{k}={v}")]);
    }
    let log = log.to_str().expect("utf-8 path");
    lab.spawn(ns, &["python3", "-c", DECAP, vip, log]);
    for _ in 0..300 {
        let out = lab.try_exec(ns, &["ip", "addr", "show", "dev", "tunv"]);
        if String::from_utf8_lossy(&out.stdout).contains(vip) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the GUE/GRE decapsulator did not come up in {ns}");
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

/// The tunnel packets a real server recorded: (kind, inner dport, checksum, right).
fn recorded(log: &Path) -> Vec<(String, u16, bool, bool)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [k, p, h, ok] => Some((k.to_owned(), p.parse().ok()?, h == "1", ok == "1")),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn gue_and_gre_servers_answer_directly() {
    if skip() {
        return;
    }
    let mut lab = one_segment("rtnl", false);
    let dir = std::env::temp_dir().join(format!("rvs-lab-tunnels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    let logs = [dir.join("rs1.log"), dir.join("rs2.log")];
    for l in &logs {
        let _ = std::fs::remove_file(l);
    }
    for ((ns, name), log) in [("r1", "rs1"), ("r2", "rs2")].into_iter().zip(&logs) {
        tunnel_real_server(&mut lab, ns, VIP1, log);
        for port in [80, 8080] {
            lab.name_server(ns, Ipv4Addr::UNSPECIFIED, port, name);
        }
    }
    let d = one_segment_director(&lab, "rtnl", false);
    for (port, csum) in [("80", "--tun-csum"), ("8080", "--tun-nocsum")] {
        let svc = format!("{VIP1}:{port}");
        d.rvsadm(&["-A", "-t", &svc, "-s", "rr"]);
        let gue = [
            "-r",
            "10.30.0.11",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
            csum,
        ];
        d.rvsadm(&[&["-a", "-t", svc.as_str()][..], &gue[..]].concat());
        let gre = ["-r", "10.30.0.12", "-i", "--tun-type", "gre", csum];
        d.rvsadm(&[&["-a", "-t", svc.as_str()][..], &gre[..]].concat());
    }
    let listing = d.rvsadm(&["-Ln", "--tun-info"]);
    for want in ["gue:6080:+c", "gue:6080:-c", "gre:+c", "gre:-c"] {
        assert!(listing.contains(want), "{want} in {listing}");
    }

    for port in [80, 8080] {
        let url = format!("http://{VIP1}:{port}/");
        let got = names(&lab, &url, 6);
        for w in got.windows(2) {
            assert_ne!(w[0], w[1], "rr alternates: {got:?}");
        }
        assert!(got.iter().any(|n| n == "rs1") && got.iter().any(|n| n == "rs2"));
        // A request bigger than the path's MTU once encapsulated: the director answers
        // frag-needed with the MTU less the tunnel's overhead, the client's kernel
        // sends smaller segments, the request goes through (twice: GUE and GRE).
        let pad = format!("X-Pad: {}", "p".repeat(4000));
        for _ in 0..2 {
            let out = lab.try_exec("c", &["curl", "-s", "--max-time", "10", "-H", &pad, &url]);
            assert!(
                out.status.success(),
                "a large request through {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(
        d.counter("out"),
        0,
        "GUE and GRE replies bypass the director"
    );
    assert!(
        d.counter("frag_needed_sent") > 0,
        "{}",
        d.rvsadm(&["--dataplane"])
    );

    // What went through the tunnels: rs1 got GUE only, rs2 GRE only; port 80's with a
    // right checksum, port 8080's without.
    for (log, kind) in logs.iter().zip(["gue", "gre"]) {
        let rec = recorded(log);
        for port in [80u16, 8080] {
            let of_port: Vec<_> = rec.iter().filter(|r| r.1 == port).collect();
            assert!(
                !of_port.is_empty(),
                "{kind} packets for port {port}: {rec:?}"
            );
            for r in of_port {
                assert_eq!(r.0, kind, "{rec:?}");
                assert_eq!(r.2, port == 80, "checksum present for port {port}: {r:?}");
                assert!(r.3, "a right checksum: {r:?}");
            }
        }
    }
}
