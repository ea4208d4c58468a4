//! Fragmented UDP datagrams over IPv6 through the director in every mode, end to end —
//! `lab_frag`'s scenario with IPv6 stacks: a client sends 4000-byte datagrams (MTU 1500
//! on every link: three fragments each, with a Fragment header) to a UDP service on an
//! IPv6 VIP, the real servers check each one (a SHA-256 of the rest in its first 32
//! bytes) and echo it (fragmented again by their kernels: NAT and FULLNAT replies come
//! back through the director; DR and TUN servers answer the client directly), the
//! client checks every echo. Then the same with each datagram's fragments sent last
//! first (raw IPv6 socket, headers built here).
//!
//! Ports are `net_pcap` ([`Pmd::Pcap`]; see `lab_frag` for why not `net_af_packet`), one
//! worker. TUN: a 1496-byte fragment in a 40-byte ip6ip6 header exceeds the MTU; the
//! director, the tunnel's entry point, sends it as two outer fragments (RFC 2473), and
//! the real server's kernel reassembles the outer packet before the user-space
//! decapsulator reads it.
//!
//! Needs root; skips (with a message) where namespaces cannot be made.

use std::time::Duration;

use rvs_tests::topo::tun6_real_server;
use rvs_tests::{can_build_labs, DirPort, Director, Lab, Pmd};

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

const VIP: &str = "2001:db8:1::100";
const VIP_SEG: &str = "2001:db8:3::100";
const TUN_VIP: &str = "2001:db8:3::101";

/// The IPv6 UDP server that checks each datagram and echoes it with its first two bytes
/// replaced by `OK` or `NO`. Arguments: the address and port to bind.
const CHECK_ECHO6: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535)
    ok = len(d) > 32 and hashlib.sha256(d[32:]).digest() == d[:32]
    s.sendto((b"OK" if ok else b"NO") + d[2:], a)
"#;

/// The client (as `lab_frag`'s, over IPv6): `count` datagrams of `size` bytes, each
/// answered within 2 s; with `reverse` = 1 each datagram's fragments are built here and
/// sent last first over a raw IPv6 socket. Prints `ok <n>` and a line per failure.
const CLIENT6: &str = r#"
import hashlib, os, socket, struct, sys, time
dst, dport, n, size, rev, src, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6], int(sys.argv[7])
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.bind((src, sport))
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
S, D = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
def reversed_fragments(d, ident):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(d), 0) + d
    pseudo = S + D + struct.pack("!IxxxB", len(udp), 17)
    c = csum(pseudo + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    out = []
    for off in range(0, len(udp), 1448):
        chunk = udp[off:off + 1448]
        more = off + 1448 < len(udp)
        h = struct.pack("!IHBB16s16s", 6 << 28, 8 + len(chunk), 44, 64, S, D)
        fh = struct.pack("!BBHI", 17, 0, off | (1 if more else 0), ident)
        out.append(h + fh + chunk)
    return out[::-1]
def datagram(i, size):
    body = struct.pack("!I", i) + os.urandom(size - 36)
    return hashlib.sha256(body).digest() + body
def ask(d, i, timeout):
    if rev and len(d) > 1452:
        for f in reversed_fragments(d, 0x40000 + i):
            raw.sendto(f, (dst, 0))
    else:
        u.sendto(d, (dst, dport))
    end = time.time() + timeout
    while True:
        left = end - time.time()
        if left <= 0:
            return "timeout"
        u.settimeout(left)
        try:
            r, a = u.recvfrom(65535)
        except socket.timeout:
            return "timeout"
        if len(r) != len(d) or r[32:36] != d[32:36]:
            continue
        if a[:2] != (dst, dport):
            return "from %s" % (a,)
        if r[:2] != b"OK":
            return "server saw it damaged"
        if r[2:] != d[2:]:
            return "echo damaged (%d bytes)" % len(r)
        return None
for w in range(40):
    if ask(datagram(100000 + w, 100), 0, 0.5) is None:
        break
else:
    print("no warm-up answer")
ok = 0
for i in range(n):
    err = ask(datagram(i, size), i, 2.0)
    if err is None:
        ok += 1
    else:
        print("datagram %d: %s" % (i, err))
print("ok %d" % ok)
"#;

/// Datagrams per run.
const COUNT: usize = 20;

fn run_client(
    lab: &Lab,
    dst: &str,
    dport: u16,
    src: &str,
    sport: u16,
    reverse: bool,
) -> (usize, String) {
    let out = lab.try_exec(
        "c",
        &[
            "timeout",
            "60",
            "python3",
            "-c",
            CLIENT6,
            dst,
            &dport.to_string(),
            &COUNT.to_string(),
            "4000",
            if reverse { "1" } else { "0" },
            src,
            &sport.to_string(),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = text
        .lines()
        .find_map(|l| l.strip_prefix("ok "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (ok, text)
}

fn both_orders(lab: &Lab, dst: &str, dport: u16, src: &str, sport: u16, mode: &str) {
    for (reverse, sp) in [(false, sport), (true, sport + 1)] {
        let (ok, text) = run_client(lab, dst, dport, src, sp, reverse);
        let order = if reverse { "reversed" } else { "in order" };
        assert_eq!(ok, COUNT, "{mode}, fragments {order}: {text}");
    }
}

#[test]
fn fragmented_ipv6_datagrams_through_nat_and_fullnat_arrive_intact() {
    if skip() {
        return;
    }
    let mut lab = Lab::new("f6n");
    for ns in ["c", "d", "sw", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "d", "d0");
    lab.veth("d", "d1", "sw", "d1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.bridge("sw", "br0", &["d1p", "r1p", "r2p"]);
    for dev in ["d0", "d1"] {
        lab.kernel_off6("d", dev);
    }
    lab.addr6("c", "c0", "2001:db8:1::2/64");
    lab.route6("c", "default", "2001:db8:1::1");
    for (ns, k) in [("r1", "11"), ("r2", "12")] {
        lab.addr6(ns, "r0", &format!("2001:db8:2::{k}/64"));
        lab.route6(ns, "default", "2001:db8:2::1");
    }
    lab.spawn(
        "r1",
        &["python3", "-c", CHECK_ECHO6, "2001:db8:2::11", "9000"],
    );
    lab.spawn(
        "r2",
        &["python3", "-c", CHECK_ECHO6, "2001:db8:2::12", "9001"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let d = Director::start_pmd(
        &lab,
        "d",
        "f6n",
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
        "",
        Pmd::Pcap,
    );
    let nat = format!("[{VIP}]:9000");
    let fullnat = format!("[{VIP}]:9001");
    d.rvsadm(&["-A", "-u", &nat, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &nat, "-r", "[2001:db8:2::11]:9000", "-m"]);
    d.rvsadm(&["-A", "-u", &fullnat, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &fullnat, "-r", "[2001:db8:2::12]:9001", "-b"]);
    d.rvsadm(&["--add-laddr", "-z", "2001:db8:2::200", "-u", &fullnat]);
    both_orders(&lab, VIP, 9000, "2001:db8:1::2", 41000, "NAT");
    both_orders(&lab, VIP, 9001, "2001:db8:1::2", 42000, "FULLNAT");
    assert!(
        d.counter("frags_forwarded") >= (4 * COUNT * 3 * 2) as u64,
        "{}",
        d.rvsadm(&["--dataplane"])
    );
    assert!(d.counter("frags_held") >= (2 * COUNT * 2) as u64);
    for r in [
        "frag-overlap",
        "frag-table-full",
        "frag-tiny",
        "frag-timeout",
    ] {
        assert_eq!(d.drops(r), 0, "{r}");
    }
}

#[test]
fn fragmented_ipv6_datagrams_through_dr_and_tun_arrive_intact() {
    if skip() {
        return;
    }
    let mut lab = Lab::new("f6d");
    for ns in ["c", "d", "sw", "r1", "r2"] {
        lab.add_ns(ns);
    }
    lab.veth("d", "d0", "sw", "d0p");
    lab.veth("c", "c0", "sw", "c0p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.bridge("sw", "br0", &["d0p", "c0p", "r1p", "r2p"]);
    lab.kernel_off6("d", "d0");
    lab.addr6("c", "c0", "2001:db8:3::2/64");
    lab.addr6("r1", "r0", "2001:db8:3::11/64");
    lab.addr6("r2", "r0", "2001:db8:3::12/64");
    lab.exec("r1", &["sysctl", "-qw", "net.ipv6.conf.lo.accept_dad=0"]);
    lab.addr6("r1", "lo", &format!("{VIP_SEG}/128"));
    tun6_real_server(&mut lab, "r2", TUN_VIP);
    lab.spawn("r1", &["python3", "-c", CHECK_ECHO6, VIP_SEG, "9000"]);
    lab.spawn("r2", &["python3", "-c", CHECK_ECHO6, TUN_VIP, "9000"]);
    std::thread::sleep(Duration::from_millis(500));
    let d = Director::start_pmd(
        &lab,
        "d",
        "f6d",
        &[DirPort {
            name: "dpdk0",
            iface: "d0",
            addrs: &["2001:db8:3::1/64"],
        }],
        1,
        "",
        Pmd::Pcap,
    );
    let dr = format!("[{VIP_SEG}]:9000");
    let tun = format!("[{TUN_VIP}]:9000");
    d.rvsadm(&["-A", "-u", &dr, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &dr, "-r", "[2001:db8:3::11]:9000", "-g"]);
    d.rvsadm(&["-A", "-u", &tun, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &tun, "-r", "[2001:db8:3::12]:9000", "-i"]);
    both_orders(&lab, VIP_SEG, 9000, "2001:db8:3::2", 43000, "DR");
    both_orders(&lab, TUN_VIP, 9000, "2001:db8:3::2", 44000, "TUN");
    assert!(
        d.counter("frags_forwarded") >= (2 * COUNT * 3 * 2) as u64,
        "{}",
        d.rvsadm(&["--dataplane"])
    );
    // Every full-size TUN fragment went out as two outer fragments.
    assert!(d.counter("tun_outer_fragmented") >= (2 * COUNT * 2) as u64);
    assert_eq!(d.counter("out"), 0, "no reply went through the director");
}
