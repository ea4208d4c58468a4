//! Fragmented UDP datagrams through the director in every mode, end to end: a client
//! sends 4000-byte datagrams (MTU 1500 on every link: three fragments each) to a UDP
//! service, the real servers check each one (a SHA-256 of the rest in its first 32
//! bytes) and echo it (fragmented again: NAT and FULLNAT replies come back through the
//! director; DR and TUN servers answer the client directly), the client checks every
//! echo. Then the same with the client sending each datagram's fragments in reverse
//! order (raw IPv4 socket, headers built here).
//!
//! The director's ports are `net_pcap` ([`Pmd::Pcap`]): DPDK's `net_af_packet` joins its
//! sockets with `PACKET_FANOUT_FLAG_DEFRAG`, so the kernel reassembles fragments before
//! rvs could see them; libpcap's socket is in no fanout group. One worker (one queue per
//! pcap port); the handoff of fragments between workers is the pipeline tests'.
//!
//! TUN: a 1500-byte fragment in a 20-byte IPIP header exceeds the MTU; without DF the
//! director sends it as two outer fragments, and the real server's kernel reassembles
//! the outer packet before the user-space decapsulator reads it.
//!
//! Needs root; skips (with a message) where namespaces cannot be made.

use std::time::Duration;

use rvs_tests::topo::{
    one_segment, one_segment_director_pmd, tun_real_server, two_port, two_port_director_pmd, VIP1,
    VIP2,
};
use rvs_tests::{can_build_labs, Lab, Pmd};

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

/// A UDP server that checks each datagram (its first 32 bytes: the SHA-256 of the rest)
/// and echoes it with its first two bytes replaced by `OK` or `NO`. Arguments: the
/// address and port to bind.
const CHECK_ECHO: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535)
    ok = len(d) > 32 and hashlib.sha256(d[32:]).digest() == d[:32]
    s.sendto((b"OK" if ok else b"NO") + d[2:], a)
"#;

/// The client: `count` datagrams of `size` bytes from `src:sport` to `dst:dport`, one at
/// a time, each answered within 2 s (after a warm-up that may retry while neighbours
/// resolve); with `reverse` = 1 each datagram's fragments are sent last first over a raw
/// socket. Prints `ok <n>` (echoes intact, from the service's address) and a line per
/// failure.
const CLIENT: &str = r#"
import hashlib, os, socket, struct, sys, time
dst, dport, n, size, rev, src, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6], int(sys.argv[7])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((src, sport))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def reversed_fragments(d, ident):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(d), 0) + d
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(udp))
    c = csum(pseudo + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    out = []
    for off in range(0, len(udp), 1480):
        chunk = udp[off:off + 1480]
        more = off + 1480 < len(udp)
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ident, (0x2000 if more else 0) | (off // 8), 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        out.append(h + chunk)
    return out[::-1]
def datagram(i, size):
    body = struct.pack("!I", i) + os.urandom(size - 36)
    return hashlib.sha256(body).digest() + body
def ask(d, i, timeout):
    if rev and len(d) > 1472:
        for f in reversed_fragments(d, 0x4000 + i):
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
        # A late echo of an earlier datagram (a warm-up answered after its wait) is
        # skipped: each echo carries its datagram's number and random bytes.
        if len(r) != len(d) or r[32:36] != d[32:36]:
            continue
        if a != (dst, dport):
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

/// Runs the client in namespace `c` (bounded by 60 s); the number of intact echoes and
/// the client's output.
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
            CLIENT,
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

/// Datagrams per run.
const COUNT: usize = 20;

/// Both runs (fragments in order, then reversed) to `dst:dport`, every datagram intact.
fn both_orders(lab: &Lab, dst: &str, dport: u16, src: &str, sport: u16, mode: &str) {
    for (reverse, sp) in [(false, sport), (true, sport + 1)] {
        let (ok, text) = run_client(lab, dst, dport, src, sp, reverse);
        assert_eq!(
            ok,
            COUNT,
            "{mode}, fragments {}: {text}",
            if reverse { "reversed" } else { "in order" }
        );
    }
}

#[test]
fn fragmented_datagrams_through_nat_and_fullnat_arrive_intact() {
    if skip() {
        return;
    }
    let mut lab = two_port("fgn", true, 80, 8080);
    lab.spawn("r1", &["python3", "-c", CHECK_ECHO, "10.20.0.11", "9000"]);
    lab.spawn("r2", &["python3", "-c", CHECK_ECHO, "10.20.0.12", "9001"]);
    std::thread::sleep(Duration::from_millis(500));
    let d = two_port_director_pmd(&lab, "fgn", 1, "", Pmd::Pcap);
    let nat = format!("{VIP2}:9000");
    let fullnat = format!("{VIP2}:9001");
    d.rvsadm(&["-A", "-u", &nat, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &nat, "-r", "10.20.0.11:9000", "-m"]);
    d.rvsadm(&["-A", "-u", &fullnat, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &fullnat, "-r", "10.20.0.12:9001", "-b"]);
    d.rvsadm(&["--add-laddr", "-z", "10.20.0.200", "-u", &fullnat]);
    both_orders(&lab, VIP2, 9000, "10.10.0.2", 41000, "NAT");
    both_orders(&lab, VIP2, 9001, "10.10.0.2", 42000, "FULLNAT");
    // Requests and replies went through as fragments, none reassembled or refused.
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
fn fragmented_datagrams_through_dr_and_tun_arrive_intact() {
    if skip() {
        return;
    }
    const TUN_VIP: &str = "10.30.0.101";
    let mut lab = one_segment("fgd", false);
    lab.real_server_vip("r1", VIP1, "lo");
    tun_real_server(&mut lab, "r2", TUN_VIP);
    lab.spawn("r1", &["python3", "-c", CHECK_ECHO, VIP1, "9000"]);
    lab.spawn("r2", &["python3", "-c", CHECK_ECHO, TUN_VIP, "9000"]);
    std::thread::sleep(Duration::from_millis(500));
    let d = one_segment_director_pmd(&lab, "fgd", false, Pmd::Pcap);
    let dr = format!("{VIP1}:9000");
    let tun = format!("{TUN_VIP}:9000");
    d.rvsadm(&["-A", "-u", &dr, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &dr, "-r", "10.30.0.11:9000", "-g"]);
    d.rvsadm(&["-A", "-u", &tun, "-s", "rr"]);
    d.rvsadm(&["-a", "-u", &tun, "-r", "10.30.0.12:9000", "-i"]);
    both_orders(&lab, VIP1, 9000, "10.30.0.2", 43000, "DR");
    both_orders(&lab, TUN_VIP, 9000, "10.30.0.2", 44000, "TUN");
    assert!(
        d.counter("frags_forwarded") >= (2 * COUNT * 3 * 2) as u64,
        "{}",
        d.rvsadm(&["--dataplane"])
    );
    // Every TUN fragment of 1500 bytes went out as two outer fragments.
    assert!(d.counter("tun_outer_fragmented") >= (2 * COUNT * 2) as u64);
    assert_eq!(d.counter("out"), 0, "no reply went through the director");
}
