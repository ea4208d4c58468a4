//! FULLNAT real servers learn the client's address: the PROXY protocol (v1 and v2) and the
//! TOA option end to end, checked the way an operator would, with real programs on the
//! real servers: Debian's nginx (`listen … proxy_protocol`, its access log naming
//! `$proxy_protocol_addr:$proxy_protocol_port`), HAProxy (`accept-proxy`), curl, and small
//! Python servers that parse the PROXY header themselves.
//!
//! Topology (two-port lab, see `tests/src/lib.rs`): client c 10.10.0.2 — d0 [dpdk0
//! 10.10.0.1, VIP 10.10.0.100] director [dpdk1 10.20.0.1, LIPs 10.20.0.200–203] d1 — sw —
//! r1 10.20.0.11, r2 10.20.0.12. One worker. Under FULLNAT the real servers see only a
//! LIP; what they learn of the client comes from the director's header or option.
//!
//! The tests, one lab each (they run in parallel):
//! - `nginx_logs_name_the_client_with_proxy_v1_and_v2_over_http_and_https`: four services
//!   (PROXY v1 and v2, HTTP and HTTPS with a self-signed certificate) over nginx on r1
//!   and r2; every request's access-log line names the client's address and the source
//!   port curl used (`--local-port`) and the VIP:port it asked for, also for the second
//!   request of a kept-alive connection; a client that forges a PROXY header of its own
//!   is still logged as itself (the director's header comes first; nginx answers the
//!   forged line with 400).
//! - `long_transfers_with_proxy_v2_stay_byte_exact_under_one_percent_loss`: a 6 MiB
//!   download from nginx and a 6 MiB upload to HAProxy (`mode tcp`, `accept-proxy`) in
//!   front of a Python sink that hashes what it receives, both rate-limited by curl, both
//!   through PROXY v2, while nftables in the client's namespace drops 1 % of the packets
//!   each way (`numgen random mod 100 < 1`; this kernel has no netem): both stay
//!   byte-exact (SHA-256); the drop counters, both ends' TCP retransmission counters and
//!   the server's SACK recoveries prove the loss was real and SACK crossed the director.
//! - `server_speaks_first_gets_the_header_before_the_banner`: HAProxy `accept-proxy` in
//!   front of an SMTP-like banner server (HAProxy `send-proxy` to it); a client that sends
//!   nothing gets the banner (HAProxy waits for the director's header before it connects),
//!   then a command and its answer; the banner server logs the client's address and port.
//! - `proxy_v2_transfers_survive_a_takeover_byte_exact`: an active/standby pair with
//!   connection sync (the failover lab's layout, see `lab_failover.rs`, with r1 only),
//!   the services made with `rvsadm --proxy-protocol v2`; a rate-limited download (nginx)
//!   and upload (HAProxy and the sink) in flight when the active director is killed
//!   finish byte-exact through the standby, which kept translating the sequence numbers
//!   (the shift was synced) and sent no header of its own into the streams.
//! - `udp_proxy_v2_datagrams_name_the_client`: a Python UDP echo server on r1 and r2 that
//!   parses each datagram's v2 header (signature, version and command, family, addresses,
//!   ports), logs the client and echoes the payload without it.
//! - `toa_option_carries_the_client_on_the_handshakes_ack`: a raw-socket sniffer on r1
//!   sees the TOA option (kind 254, length 8: port and IPv4 address, as DPVS's `toa.ko`
//!   reads it) with the client's address and port on the first packet after the SYN, in a
//!   segment whose TCP checksum is right.
//!
//! Each test also reads `rvsadm --dataplane`: `proxy_headers` is one per TCP connection
//! (`proxy_resent` 0 without loss) and one per UDP datagram, `toa_added` one per
//! connection with `toa_no_room` 0. Before its first connection a lab waits until the
//! director answers the client's ping of the VIP; the client's TCP receive buffers are
//! kept at 128 KiB in the transfer tests, so a rate-limited download crosses the director
//! at curl's rate rather than filling a large buffer at its start.
//!
//! Every wait is bounded. Needs root, nginx, haproxy, nftables, openssl, curl and python3
//! (`scripts/setup`); each test skips (with a message) where namespaces cannot be made.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::failover::{established, start_director, wait_for};
use rvs_tests::topo::{self, two_port, two_port_director_with, VIP2};
use rvs_tests::{can_build_labs, sha256, Director, Lab};

const VIP: &str = VIP2;
const CLIENT: &str = "10.10.0.2";
const RS1: &str = "10.20.0.11";
const RS2: &str = "10.20.0.12";
const LIPS: [&str; 4] = ["10.20.0.200", "10.20.0.201", "10.20.0.202", "10.20.0.203"];

fn skip() -> bool {
    if can_build_labs() {
        return false;
    }
    eprintln!("skipped: needs root and ip netns");
    true
}

/// A directory for the lab's files, removed with the lab (it is named after the lab's
/// unique prefix).
fn workdir(lab: &Lab) -> PathBuf {
    let ns = lab.ns("");
    let dir = std::env::temp_dir().join(ns.trim_end_matches('-'));
    std::fs::create_dir_all(&dir).expect("lab directory");
    dir
}

/// A FULLNAT `[[services]]` table: `proto` VIP:`vport`, local address `lip`, the PROXY or
/// TOA `keys`, rr over `reals` (`address:port`).
fn service(proto: &str, vport: u16, lip: &str, keys: &str, reals: &[&str]) -> String {
    let mut s = format!(
        "[[services]]\nproto = \"{proto}\"\nvip = \"{VIP}:{vport}\"\nscheduler = \"rr\"\n\
         laddrs = [\"{lip}\"]\n{keys}\n"
    );
    for r in reals {
        s.push_str(&format!(
            "[[services.real]]\naddress = \"{r}\"\nforward = \"fullnat\"\n\n"
        ));
    }
    s
}

/// Starts `args` in namespace `ns` in the background, stdout and stderr captured.
fn spawn_in(lab: &Lab, ns: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns(ns)])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"))
}

/// Waits (bounded by `secs`) for a child started by [`spawn_in`]; kills it and panics
/// naming `what` when it runs over.
fn finish(mut child: Child, what: &str, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} did not end within {secs} s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded: 20 s) until the director answers the client's ping of the VIP: its
/// worker polls its ports (a busy machine may take a moment after the control socket).
fn wait_forwarding(lab: &Lab) {
    let t0 = Instant::now();
    wait_for("the director to answer for the VIP", 20, || {
        lab.try_exec("c", &["ping", "-c", "1", "-W", "1", VIP])
            .status
            .success()
    });
    eprintln!(
        "the director answered the VIP's ping after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Whether `ok` holds within `secs` seconds (polled every 50 ms). A server writes its log
/// line after it answered: a client can be faster than the line.
fn eventually(secs: u64, ok: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Waits (bounded) until `path` exists.
fn wait_file(path: &Path, what: &str) {
    wait_for(what, 15, || path.exists());
}

/// `text` of a file, "" when absent.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `len` bytes of a xorshift stream from `seed`, written to `path`; returns its SHA-256.
fn random_file(path: &Path, len: usize, seed: u64) -> String {
    let mut x: u64 = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).expect("upload file");
    sha256(path)
}

/// A real server's nginx: `listen <addr>:80 proxy_protocol` and `listen <addr>:443 ssl
/// proxy_protocol` (a self-signed certificate made with openssl now), an access log
/// naming what the PROXY header said.
struct Nginx {
    dir: PathBuf,
}

/// The access log's format: the client's address and port from the PROXY header, the
/// address and port it was sent to (the VIP), the peer the TCP connection came from (the
/// LIP), then the scheme, the request and the status.
const LOG_FORMAT: &str = "'$proxy_protocol_addr:$proxy_protocol_port \
$proxy_protocol_server_addr:$proxy_protocol_server_port $remote_addr $scheme \"$request_uri\" $status $body_bytes_sent'";

impl Nginx {
    /// Starts nginx in `ns` on `addr`, serving `www` (its own directory when `None`), where
    /// it writes `index.html` with the namespace's name; waits (bounded) for ports 80 and 443.
    fn start(lab: &mut Lab, ns: &str, addr: &str, www: Option<&Path>) -> Nginx {
        let dir = workdir(lab).join(format!("nginx-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let root = www.map_or_else(|| dir.join("www"), Path::to_path_buf);
        std::fs::create_dir_all(&root).expect("www");
        std::fs::write(root.join("index.html"), format!("{ns}\n")).expect("index");
        let out = Command::new("timeout")
            .args(["20", "openssl", "req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", &format!("/CN={ns}.lab")])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl: {out:?}");
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  log_format pp {LOG_FORMAT};\n  access_log {d}/access.log pp;\n\
               default_type application/octet-stream;\n\
               client_body_temp_path {d}/t1;\n  proxy_temp_path {d}/t2;\n\
               fastcgi_temp_path {d}/t3;\n  uwsgi_temp_path {d}/t4;\n  scgi_temp_path {d}/t5;\n\
               server {{\n    listen {addr}:80 proxy_protocol;\n    listen {addr}:443 ssl proxy_protocol;\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 root {};\n  }}\n}}\n",
            root.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let conf_s = conf_path.display().to_string();
        let err = dir.join("error.log").display().to_string();
        lab.spawn(ns, &["nginx", "-e", &err, "-c", &conf_s]);
        lab.wait_tcp(ns, addr.parse().expect("address"), 80);
        lab.wait_tcp(ns, addr.parse().expect("address"), 443);
        Nginx { dir }
    }

    fn access_log(&self) -> String {
        read(&self.dir.join("access.log"))
    }

    fn error_log(&self) -> String {
        read(&self.dir.join("error.log"))
    }
}

/// A parser of the PROXY protocol header (v1 text, v2 binary), written for these tests
/// from the specification (haproxy.org's proxy-protocol.txt), independent of rvs's:
/// `parse_v2(buf)` gives the fields of the v2 header at the start of `buf` and its length
/// (it raises on anything that is not a PROXY command of version 2 with IPv4 or IPv6
/// addresses); `read_proxy(sock)` reads a v1 or v2 header off the start of a stream;
/// `serve_forever(port, serve)` accepts on 127.0.0.1:`port`, a thread per connection.
const PP_PARSER: &str = r#"
import socket, struct
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
def recv_exact(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b
def parse_v2(buf):
    if len(buf) < 16 or buf[:12] != SIG:
        raise ValueError("no v2 signature: %r" % buf[:16])
    vc, fam, ln = buf[12], buf[13], struct.unpack("!H", buf[14:16])[0]
    if vc >> 4 != 2:
        raise ValueError("version %d" % (vc >> 4))
    if vc & 15 != 1:
        raise ValueError("command %d, not PROXY" % (vc & 15))
    if len(buf) < 16 + ln:
        raise ValueError("header of %d bytes in %d" % (16 + ln, len(buf)))
    a = buf[16:16 + ln]
    if fam >> 4 == 1:
        if ln < 12:
            raise ValueError("IPv4 block of %d bytes" % ln)
        src, dst = socket.inet_ntop(socket.AF_INET, a[0:4]), socket.inet_ntop(socket.AF_INET, a[4:8])
        sport, dport = struct.unpack("!HH", a[8:12])
    elif fam >> 4 == 2:
        if ln < 36:
            raise ValueError("IPv6 block of %d bytes" % ln)
        src, dst = socket.inet_ntop(socket.AF_INET6, a[0:16]), socket.inet_ntop(socket.AF_INET6, a[16:32])
        sport, dport = struct.unpack("!HH", a[32:36])
    else:
        raise ValueError("family byte 0x%02x" % fam)
    proto = {1: "stream", 2: "dgram"}.get(fam & 15, "transport%d" % (fam & 15))
    return {"version": 2, "proto": proto, "src": src, "sport": sport, "dst": dst, "dport": dport}, 16 + ln
def read_proxy(c):
    head = recv_exact(c, 16)
    if head[:12] == SIG:
        ln = struct.unpack("!H", head[14:16])[0]
        return parse_v2(head + recv_exact(c, ln))[0]
    if not head.startswith(b"PROXY "):
        raise ValueError("no PROXY header: %r" % head)
    while not head.endswith(b"\r\n"):
        if len(head) >= 107:
            raise ValueError("v1 line too long: %r" % head)
        head += recv_exact(c, 1)
    f = head[:-2].decode().split(" ")
    if len(f) != 6 or f[1] not in ("TCP4", "TCP6"):
        raise ValueError("bad v1 line: %r" % head)
    return {"version": 1, "proto": f[1], "src": f[2], "dst": f[3], "sport": int(f[4]), "dport": int(f[5])}
def who(h):
    return "client=%s:%d dst=%s:%d v%d %s" % (h["src"], h["sport"], h["dst"], h["dport"], h["version"], h["proto"])
def serve_forever(port, serve):
    import threading
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The upload sink behind HAProxy (which sends it a PROXY header, `send-proxy`): reads
/// one HTTP PUT, hashes its body, answers with `<sha256> <length> client=<addr>:<port> …`
/// and logs the same. Arguments: listen port (on 127.0.0.1), log path.
const SINK: &str = r#"
import hashlib, sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
def serve(c):
    try:
        h = read_proxy(c)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        head, body = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        sha, got = hashlib.sha256(), 0
        while True:
            sha.update(body); got += len(body)
            if got >= length:
                break
            body = c.recv(262144)
            if not body:
                break
        line = "%s %d %s\n" % (sha.hexdigest(), got, who(h))
        open(log, "a").write(line)
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line.encode()))
    except (OSError, EOFError, ValueError) as e:
        open(log, "a").write("error %s\n" % e)
    finally:
        c.close()
serve_forever(port, serve)
"#;

/// An SMTP-like server that speaks first, behind HAProxy (`send-proxy`): reads the PROXY
/// header, logs the client, sends `220 …`, answers one command with `250 …`. Arguments:
/// listen port (on 127.0.0.1), log path.
const BANNER: &str = r#"
import sys, threading
port, log = int(sys.argv[1]), sys.argv[2]
def serve(c):
    try:
        h = read_proxy(c)
        open(log, "a").write(who(h) + "\n")
        c.sendall(b"220 rs1.lab ESMTP ready\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            d = c.recv(1)
            if not d:
                return
            line += d
        c.sendall(b"250 hello " + line.strip().split(b" ")[-1] + b"\r\n")
    except (OSError, EOFError, ValueError) as e:
        open(log, "a").write("error %s\n" % e)
    finally:
        c.close()
serve_forever(port, serve)
"#;

/// A UDP echo server that strips the PROXY v2 header of every datagram, logs who it names
/// and echoes the payload alone. Arguments: address, port, log path.
const UDP_ECHO: &str = r#"
import sys
addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
open(log + ".ready", "w").close()
while True:
    d, peer = s.recvfrom(65535)
    try:
        h, n = parse_v2(d)
    except ValueError as e:
        open(log, "a").write("error %s from %s:%d\n" % (e, peer[0], peer[1]))
        continue
    payload = d[n:]
    open(log, "a").write("%s peer=%s:%d payload=%s\n" % (who(h), peer[0], peer[1], payload.decode(errors="replace")))
    s.sendto(payload, peer)
"#;

/// A TCP sniffer (raw socket) for the packets to local port `argv[1]`: one line per packet,
/// `conn=<src>:<sport> kind=<syn|first-after-syn|later> flags=0x.. len=<payload>
/// toa=<addr>:<port>|- csum=ok|bad`, the TOA option read as DPVS's toa.ko lays it out
/// (kind 254, length 8, port then IPv4 address, network order). Arguments: port, log path.
const TOA_SNIFFER: &str = r#"
import socket, struct, sys
port, log = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
open(log + ".ready", "w").close()
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return t
def toa(opts):
    i, found = 0, "-"
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            return "malformed"
        ln = opts[i + 1]
        if k == 254:
            if ln != 8 or i + 8 > len(opts):
                return "bad-length-%d" % ln
            p = struct.unpack("!H", opts[i + 2:i + 4])[0]
            found = "%s:%d" % (socket.inet_ntoa(opts[i + 4:i + 8]), p)
        i += ln
    return found
syn = set(); seen = set()
f = open(log, "a", buffering=1)
while True:
    pkt = s.recv(65535)
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack("!H", pkt[2:4])[0]
    tcp = pkt[ihl:total]
    sport, dport = struct.unpack("!HH", tcp[:4])
    if dport != port:
        continue
    src = socket.inet_ntoa(pkt[12:16])
    doff = (tcp[12] >> 4) * 4
    flags = tcp[13]
    ok = csum(pkt[12:20] + struct.pack("!BBH", 0, 6, len(tcp)) + tcp) == 0xffff
    key = (src, sport)
    if flags & 0x02:
        kind = "syn"; syn.add(key); seen.discard(key)
    elif key in syn and key not in seen:
        kind = "first-after-syn"; seen.add(key)
    else:
        kind = "later"
    f.write("conn=%s:%d kind=%s flags=0x%02x len=%d toa=%s csum=%s\n" % (src, sport, kind, flags, len(tcp) - doff, toa(tcp[20:doff]), "ok" if ok else "bad"))
"#;

/// HAProxy in `ns`: `mode tcp`, `bind <addr>:<port> accept-proxy`, to a local backend on
/// 127.0.0.1:`backend` with `send-proxy` (v1), so the backend learns the client HAProxy
/// learned. Waits (bounded) until it listens.
fn haproxy(lab: &mut Lab, ns: &str, addr: &str, port: u16, backend: u16) {
    let dir = workdir(lab).join(format!("haproxy-{ns}-{port}"));
    std::fs::create_dir_all(&dir).expect("haproxy dir");
    let conf = format!(
        "global\n  maxconn 256\n\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n\
         frontend fe\n  bind {addr}:{port} accept-proxy\n  default_backend be\n\n\
         backend be\n  server local 127.0.0.1:{backend} send-proxy\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("haproxy.cfg");
    let p = path.display().to_string();
    let check = lab.try_exec(ns, &["haproxy", "-c", "-f", &p]);
    assert!(
        check.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    lab.spawn(ns, &["haproxy", "-db", "-f", &p]);
    lab.wait_tcp(ns, addr.parse().expect("address"), port);
}

/// Starts a Python server (`PP_PARSER` + `script`) in `ns` with `args`.
fn python_server(lab: &mut Lab, ns: &str, script: &str, args: &[&str]) {
    let code = [PP_PARSER, script].concat();
    let mut all = vec!["python3", "-c", code.as_str()];
    all.extend_from_slice(args);
    lab.spawn(ns, &all);
}

/// `curl` from the client (bounded: 10 s) from source port `lport`, each URL's body to
/// /dev/null; returns the status codes it printed (`%{http_code}` per URL).
fn curl_from(lab: &Lab, lport: u16, urls: &[String]) -> String {
    let lp = lport.to_string();
    let mut args = vec![
        "curl",
        "-sS",
        "-k",
        "--max-time",
        "10",
        "--local-port",
        lp.as_str(),
        "-w",
        "%{http_code}",
    ];
    for u in urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let out = lab.try_exec("c", &args);
    let codes = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {urls:?} from port {lport}: {codes} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    codes
}

/// A client that forges a PROXY header: from `lport` to VIP:`vport`, it sends a v1 line
/// naming 6.6.6.6:6666, then an HTTP request, and prints the first line of the answer.
const SPOOF_CLIENT: &str = r#"
import socket, sys
vip, vport, lport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.bind(("0.0.0.0", lport)); s.settimeout(5)
s.connect((vip, vport))
s.sendall(b"PROXY TCP4 6.6.6.6 %s 6666 %d\r\nGET /?id=forged HTTP/1.0\r\n\r\n" % (vip.encode(), vport))
b = b""
while b"\r\n" not in b:
    d = s.recv(4096)
    if not d:
        break
    b += d
print(b.split(b"\r\n")[0].decode())
"#;

#[test]
fn nginx_logs_name_the_client_with_proxy_v1_and_v2_over_http_and_https() {
    if skip() {
        return;
    }
    let prefix = "rppn";
    let mut lab = two_port(prefix, false, 8000, 8000);
    let n1 = Nginx::start(&mut lab, "r1", RS1, None);
    let n2 = Nginx::start(&mut lab, "r2", RS2, None);
    // (VIP port, real servers' port, PROXY version, scheme, LIP)
    let services = [
        (80, 80, "v1", "http", LIPS[0]),
        (443, 443, "v1", "https", LIPS[1]),
        (8080, 80, "v2", "http", LIPS[2]),
        (8443, 443, "v2", "https", LIPS[3]),
    ];
    let toml: String = services
        .iter()
        .map(|(vport, rport, v, _, lip)| {
            service(
                "tcp",
                *vport,
                lip,
                &format!("proxy_protocol = \"{v}\""),
                &[&format!("{RS1}:{rport}"), &format!("{RS2}:{rport}")],
            )
        })
        .collect();
    let d = two_port_director_with(&lab, prefix, 1, &toml);
    wait_forwarding(&lab);
    eprintln!("{}", d.rvsadm(&["-Ln"]));

    // (request id, client port, VIP port, LIP, scheme)
    let mut expected: Vec<(String, u16, u16, &str, &str)> = Vec::new();
    let mut lport = 41000;
    for (vport, _, v, scheme, lip) in services {
        let url = |id: &str| format!("{scheme}://{VIP}:{vport}/?id={id}");
        // Three connections of one request each.
        for n in 0..3 {
            let id = format!("{v}-{scheme}-{n}");
            let codes = curl_from(&lab, lport, &[url(&id)]);
            assert_eq!(codes, "200", "{id}");
            expected.push((id, lport, vport, lip, scheme));
            lport += 1;
        }
        // One kept-alive connection with two requests: the second one's line names the
        // client too (the header came once, at the start of the stream).
        let ids = [format!("{v}-{scheme}-ka1"), format!("{v}-{scheme}-ka2")];
        let codes = curl_from(&lab, lport, &[url(&ids[0]), url(&ids[1])]);
        assert_eq!(codes, "200200", "{ids:?}");
        for id in ids {
            expected.push((id, lport, vport, lip, scheme));
        }
        lport += 1;
    }
    // A client that sends a PROXY header of its own (a v1 and a v2 service): the
    // director's header comes first, so nginx names the real client and takes the forged
    // line for a bad request.
    let mut spoofed = Vec::new();
    for vport in [80u16, 8080] {
        let (vp, lp) = (vport.to_string(), lport.to_string());
        let out = lab.try_exec("c", &["python3", "-c", SPOOF_CLIENT, VIP, &vp, &lp]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && said.starts_with("HTTP/1.1 400"),
            "VIP:{vport} answers the forged header as a bad request: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        spoofed.push((lport, vport));
        lport += 1;
    }

    let requests = expected.len() + spoofed.len();
    eventually(10, || {
        n1.access_log().lines().count() + n2.access_log().lines().count() >= requests
    });
    let logs = format!("{}{}", n1.access_log(), n2.access_log());
    eprintln!("access logs:\n{logs}");
    let context = || {
        format!(
            "access logs:\n{logs}\nerror logs:\n{}{}\n{}",
            n1.error_log(),
            n2.error_log(),
            d.rvsadm(&["--dataplane"])
        )
    };
    for (id, lport, vport, lip, scheme) in &expected {
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(&format!("\"/?id={id}\"")))
            .collect();
        assert_eq!(lines.len(), 1, "one line for request {id}\n{}", context());
        let want = format!("{CLIENT}:{lport} {VIP}:{vport} {lip} {scheme} \"/?id={id}\" 200 ");
        assert!(
            lines[0].starts_with(&want),
            "request {id}: {:?}, want {want:?}\n{}",
            lines[0],
            context()
        );
    }
    for (lport, vport) in &spoofed {
        assert!(
            logs.lines().any(
                |l| l.starts_with(&format!("{CLIENT}:{lport} {VIP}:{vport} "))
                    && l.contains(" 400 ")
            ),
            "the forged header's request is logged with the real client, as a bad request\n{}",
            context()
        );
    }
    assert!(
        !logs.contains("6.6.6.6"),
        "nginx never took the forged header\n{}",
        context()
    );
    assert_eq!(
        logs.lines().count(),
        requests,
        "no other request reached nginx\n{}",
        context()
    );
    // rr spread every service over both real servers.
    assert!(
        !n1.access_log().is_empty() && !n2.access_log().is_empty(),
        "{}",
        context()
    );
    // One header per connection (4 services, 4 connections each, and the 2 forging ones),
    // none sent again.
    let (headers, resent) = (d.counter("proxy_headers"), d.counter("proxy_resent"));
    assert_eq!((headers, resent), (18, 0), "{}", context());
}

/// A download of VIP:80's `blob.bin` to `out` from client port `lport`, rate-limited by
/// curl to `rate`, in the background.
fn download(lab: &Lab, lport: u16, rate: &str, out: &Path) -> Child {
    spawn_in(
        lab,
        "c",
        &[
            "curl",
            "-sS",
            "--limit-rate",
            rate,
            "--max-time",
            "60",
            "--local-port",
            &lport.to_string(),
            "-o",
            &out.display().to_string(),
            &format!("http://{VIP}/blob.bin"),
        ],
    )
}

/// An upload (HTTP PUT) of `file` to VIP:9000 from client port `lport`, rate-limited by
/// curl to `rate`, in the background; its stdout is the sink's answer.
fn upload(lab: &Lab, lport: u16, rate: &str, file: &Path) -> Child {
    spawn_in(
        lab,
        "c",
        &[
            "curl",
            "-sS",
            "--limit-rate",
            rate,
            "--max-time",
            "60",
            "--local-port",
            &lport.to_string(),
            "-H",
            "Expect:",
            "-T",
            &file.display().to_string(),
            &format!("http://{VIP}:9000/upload"),
        ],
    )
}

/// Keeps the client's TCP receive buffers small (128 KiB at most), so that a download
/// curl reads slowly (`--limit-rate`) crosses the director at that rate instead of
/// filling a buffer of megabytes at the start.
fn small_receive_buffers(lab: &Lab) {
    lab.exec(
        "c",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 131072"],
    );
}

/// Starts the upload sink on 127.0.0.1:9001 of r1 behind HAProxy on r1:9000; returns the
/// sink's log.
fn upload_sink(lab: &mut Lab) -> PathBuf {
    let log = workdir(lab).join("sink.log");
    python_server(lab, "r1", SINK, &["9001", &log.display().to_string()]);
    lab.wait_tcp("r1", Ipv4Addr::LOCALHOST, 9001);
    haproxy(lab, "r1", RS1, 9000, 9001);
    // The readiness probe's connection (no header) is not a transfer.
    let _ = std::fs::remove_file(&log);
    log
}

/// The TCP counters of `/proc/net/snmp` and `/proc/net/netstat` in `ns` whose names are
/// in `keys` (`RetransSegs`, `TCPSackRecovery`, …), as `name=value` pairs.
fn tcp_counters(lab: &Lab, ns: &str, keys: &[&str]) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for file in ["/proc/net/snmp", "/proc/net/netstat"] {
        let text = String::from_utf8_lossy(&lab.exec(ns, &["cat", file]).stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            if !(names.starts_with("Tcp:") || names.starts_with("TcpExt:")) {
                continue;
            }
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                if keys.contains(&n) {
                    found.push((n.to_owned(), v.parse().unwrap_or(0)));
                }
            }
        }
    }
    found
}

fn counter(counters: &[(String, u64)], name: &str) -> u64 {
    counters
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| *v)
}

/// Drops 1 % of the packets namespace `ns` receives (nftables, numgen, at the input
/// hook), counting them in the named counter `dropped`. The loss is on the wire as the
/// sender's TCP sees it: the segment was sent and never arrives. (A drop on the sending
/// side, at the output or the device's egress hook, is a local error: the stack keeps
/// the segment and sends it later as new data, never as a retransmission.) Put on the
/// client and on the real server, it loses 1 % each way.
fn lossy(lab: &Lab, ns: &str) {
    let rules = "table inet loss {\n\
                   counter dropped {}\n\
                   chain in { type filter hook input priority 0; numgen random mod 100 < 1 counter name \"dropped\" drop; }\n\
                 }\n";
    let path = workdir(lab).join(format!("loss-{ns}.nft"));
    std::fs::write(&path, rules).expect("loss.nft");
    lab.exec(ns, &["nft", "-f", &path.display().to_string()]);
}

/// The packets [`lossy`] dropped in namespace `ns`.
fn nft_dropped(lab: &Lab, ns: &str) -> u64 {
    let out = lab.exec(ns, &["nft", "list", "counter", "inet", "loss", "dropped"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packets in {text}"))
}

#[test]
fn long_transfers_with_proxy_v2_stay_byte_exact_under_one_percent_loss() {
    if skip() {
        return;
    }
    const LEN: u32 = 6 * 1024 * 1024;
    let prefix = "rppl";
    let mut lab = two_port(prefix, false, 8000, 8000);
    let work = workdir(&lab);
    let www = work.join("www");
    std::fs::create_dir_all(&www).expect("www");
    let blob_sha = random_file(&www.join("blob.bin"), LEN as usize, 0x9e37_79b9_7f4a_7c15);
    let nginx = Nginx::start(&mut lab, "r1", RS1, Some(&www));
    let sink_log = upload_sink(&mut lab);
    let up = work.join("upload.bin");
    let up_sha = random_file(&up, LEN as usize, 0x2545_f491_4f6c_dd1d);

    let v2 = "proxy_protocol = \"v2\"";
    let toml = [
        service("tcp", 80, LIPS[0], v2, &[&format!("{RS1}:80")]),
        service("tcp", 9000, LIPS[1], v2, &[&format!("{RS1}:9000")]),
    ]
    .concat();
    let d = two_port_director_with(&lab, prefix, 1, &toml);
    wait_forwarding(&lab);
    // A first request through each service before the loss starts (ARP, neighbours).
    assert_eq!(
        curl_from(&lab, 42000, &[format!("http://{VIP}/")]),
        "200",
        "nginx answers through the VIP"
    );

    small_receive_buffers(&lab);
    // Download data and the upload's ACKs lost on their way to the client, upload data
    // and the download's ACKs on their way to the real server.
    lossy(&lab, "c");
    lossy(&lab, "r1");
    let got = work.join("download.bin");
    let t0 = Instant::now();
    let download = download(&lab, 42001, "1M", &got);
    let upload = upload(&lab, 42002, "1M", &up);
    let down = finish(download, "the download", 70);
    let upl = finish(upload, "the upload", 70);
    let took = t0.elapsed();
    let dp = d.rvsadm(&["--dataplane"]);
    let keys = [
        "RetransSegs",
        "TCPLostRetransmit",
        "TCPSackRecovery",
        "TCPSACKReorder",
        "TCPFastRetrans",
        "TCPTimeouts",
        "TCPLossProbes",
        "TCPSackShifted",
    ];
    let c_tcp = tcp_counters(&lab, "c", &keys);
    let r_tcp = tcp_counters(&lab, "r1", &keys);
    let (drop_c, drop_r1) = (nft_dropped(&lab, "c"), nft_dropped(&lab, "r1"));
    eprintln!(
        "transfers took {:.1} s; nft dropped {drop_c} to the client, {drop_r1} to r1\nclient TCP: {c_tcp:?}\nr1 TCP: {r_tcp:?}\n{dp}",
        took.as_secs_f64()
    );
    let upload_answer = String::from_utf8_lossy(&upl.stdout).into_owned();
    eprintln!("upload answer: {upload_answer}");
    assert!(
        down.status.success(),
        "download: {}\n{}",
        String::from_utf8_lossy(&down.stderr),
        nginx.error_log()
    );
    assert!(
        upl.status.success(),
        "upload: {}\nsink: {}",
        String::from_utf8_lossy(&upl.stderr),
        read(&sink_log)
    );
    assert_eq!(sha256(&got), blob_sha, "the download is byte-exact");
    assert!(
        upload_answer.starts_with(&format!("{up_sha} {LEN} client={CLIENT}:42002 dst={VIP}:9000")),
        "the upload arrived byte-exact and the sink learned the client: {upload_answer}\nsink log: {}",
        read(&sink_log)
    );
    // nginx's line for the download names the client and counts every byte.
    let line = format!(
        "{CLIENT}:42001 {VIP}:80 {} http \"/blob.bin\" 200 {LEN}",
        LIPS[0]
    );
    let logged = eventually(10, || {
        nginx.access_log().lines().any(|l| l.starts_with(&line))
    });
    assert!(logged, "{line:?} in {}", nginx.access_log());
    // The loss was real: packets were dropped both ways, and both senders retransmitted.
    assert!(
        drop_c > 0 && drop_r1 > 0,
        "nft dropped {drop_c} to the client, {drop_r1} to r1"
    );
    assert!(
        counter(&r_tcp, "RetransSegs") > 0,
        "the server retransmitted the download: {r_tcp:?}"
    );
    assert!(
        counter(&c_tcp, "RetransSegs") > 0,
        "the client retransmitted the upload: {c_tcp:?}"
    );
    // One header per connection (the first request, the download, the upload), whatever
    // was sent again after a loss.
    let (headers, resent) = (d.counter("proxy_headers"), d.counter("proxy_resent"));
    assert_eq!(headers - resent, 3, "{dp}");
    // The client's SACK blocks reached the server translated: it recovered with them.
    assert!(
        counter(&r_tcp, "TCPSackRecovery") > 0,
        "the server recovered the download's losses with SACK: {r_tcp:?}"
    );
}

/// A client that connects from `lport` to VIP:`vport`, sends nothing until it has the
/// banner (5 s at most), then sends `EHLO <name>` and reads the answer; prints both lines.
const SMTP_CLIENT: &str = r#"
import socket, sys
vip, vport, lport, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", lport)); s.settimeout(5)
s.connect((vip, vport))
def line():
    b = b""
    while not b.endswith(b"\r\n"):
        d = s.recv(1)
        if not d:
            break
        b += d
    return b.decode().strip()
print(line())
s.sendall(("EHLO %s\r\n" % name).encode())
print(line())
"#;

#[test]
fn server_speaks_first_gets_the_header_before_the_banner() {
    if skip() {
        return;
    }
    let prefix = "rpps";
    let mut lab = two_port(prefix, false, 8000, 8000);
    let work = workdir(&lab);
    let log = work.join("banner.log");
    python_server(
        &mut lab,
        "r1",
        BANNER,
        &["2525", &log.display().to_string()],
    );
    lab.wait_tcp("r1", Ipv4Addr::LOCALHOST, 2525);
    haproxy(&mut lab, "r1", RS1, 25, 2525);
    let _ = std::fs::remove_file(&log);
    let toml = [
        service(
            "tcp",
            25,
            LIPS[0],
            "proxy_protocol = \"v1\"",
            &[&format!("{RS1}:25")],
        ),
        service(
            "tcp",
            26,
            LIPS[1],
            "proxy_protocol = \"v2\"",
            &[&format!("{RS1}:25")],
        ),
    ]
    .concat();
    let d = two_port_director_with(&lab, prefix, 1, &toml);
    wait_forwarding(&lab);
    for (vport, lport, name) in [(25u16, 43025u16, "one"), (26, 43026, "two")] {
        let (vp, lp) = (vport.to_string(), lport.to_string());
        let out = lab.try_exec("c", &["python3", "-c", SMTP_CLIENT, VIP, &vp, &lp, name]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let context = || {
            format!(
                "client: {said}{}\nbanner server: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                read(&log),
                d.rvsadm(&["--dataplane"])
            )
        };
        assert!(out.status.success(), "VIP:{vport}: {}", context());
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(
            lines,
            ["220 rs1.lab ESMTP ready", &format!("250 hello {name}")],
            "VIP:{vport}: {}",
            context()
        );
        let logged = read(&log);
        assert!(
            logged
                .lines()
                .any(|l| l.starts_with(&format!("client={CLIENT}:{lport} dst={VIP}:{vport} "))),
            "VIP:{vport}: the banner server names the client: {}",
            context()
        );
    }
    assert!(!read(&log).contains("error"), "{}", read(&log));
    let (headers, resent) = (d.counter("proxy_headers"), d.counter("proxy_resent"));
    assert_eq!((headers, resent), (2, 0), "{}", d.rvsadm(&["--dataplane"]));
}

/// `OutBytes` and `InBytes` of service `svc` in `rvsadm -Ln --stats --exact`.
fn service_bytes(d: &Director, svc: &str) -> (u64, u64) {
    let stats = d.rvsadm(&["-Ln", "--stats", "--exact"]);
    stats
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 6 && f[0] == "TCP" && f[1] == svc)
        .map(|f| (f[6].parse().unwrap_or(0), f[5].parse().unwrap_or(0)))
        .unwrap_or_else(|| panic!("no stats for {svc}: {stats}"))
}

#[test]
fn proxy_v2_transfers_survive_a_takeover_byte_exact() {
    if skip() {
        return;
    }
    const LEN: u32 = 4 * 1024 * 1024;
    let mut lab = topo::active_standby_one_server("rppf");
    let work = workdir(&lab);
    let www = work.join("www");
    std::fs::create_dir_all(&www).expect("www");
    let blob_sha = random_file(&www.join("blob.bin"), LEN as usize, 0x9e37_79b9_7f4a_7c15);
    let nginx = Nginx::start(&mut lab, "r1", RS1, Some(&www));
    let sink_log = upload_sink(&mut lab);
    let up = work.join("upload.bin");
    let up_sha = random_file(&up, LEN as usize, 0x2545_f491_4f6c_dd1d);

    let mut a = start_director(&lab, "da", "rppfa", 3, "");
    let b = start_director(
        &lab,
        "db",
        "rppfb",
        4,
        "[sync]\nstate = \"backup\"\nmcast_interface = \"s1\"\nsyncid = 9\n",
    );
    let (web, sink) = (format!("{VIP}:80"), format!("{VIP}:9000"));
    for d in [&a, &b] {
        for (svc, rport, lip) in [(&web, 80, LIPS[0]), (&sink, 9000, LIPS[1])] {
            d.rvsadm(&["-A", "-t", svc, "-s", "rr", "--proxy-protocol", "v2"]);
            d.rvsadm(&["-a", "-t", svc, "-r", &format!("{RS1}:{rport}"), "-b"]);
            d.rvsadm(&["--add-laddr", "-z", lip, "-t", svc]);
        }
    }
    eprintln!("{}", a.rvsadm(&["-Ln"]));
    a.rvsadm(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s0",
        "--syncid",
        "9",
    ]);
    wait_forwarding(&lab);

    small_receive_buffers(&lab);
    let got = work.join("download.bin");
    let download = download(&lab, 44001, "400K", &got);
    let upload = upload(&lab, 44002, "400K", &up);
    // Well into the transfers, with both sessions on the standby.
    wait_for("1 MiB of the download", 20, || {
        std::fs::metadata(&got).is_ok_and(|m| m.len() > 1024 * 1024)
    });
    wait_for("the transfers' sessions on the standby", 10, || {
        let on_b = established(&b);
        [44001, 44002].iter().all(|p| {
            on_b.iter()
                .any(|row| row.contains(&format!("{CLIENT}:{p}")))
        })
    });
    let at = std::fs::metadata(&got).map_or(0, |m| m.len());
    let headers_a = a.counter("proxy_headers");
    a.kill_hard();
    b.rvsadm(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s1",
        "--syncid",
        "9",
    ]);
    eprintln!("takeover at {at} of {LEN} bytes downloaded; {headers_a} headers sent by the first director");
    let down = finish(download, "the download", 60);
    let upl = finish(upload, "the upload", 60);
    let dp = b.rvsadm(&["--dataplane"]);
    eprintln!("new active director:\n{dp}");
    assert!(
        down.status.success(),
        "the download survives the takeover: {}\n{}",
        String::from_utf8_lossy(&down.stderr),
        nginx.error_log()
    );
    assert_eq!(sha256(&got), blob_sha, "the download is byte-exact");
    let line = format!(
        "{CLIENT}:44001 {VIP}:80 {} http \"/blob.bin\" 200 {LEN}",
        LIPS[0]
    );
    let logged = eventually(10, || {
        nginx.access_log().lines().any(|l| l.starts_with(&line))
    });
    assert!(logged, "{line:?} in {}", nginx.access_log());
    let answer = String::from_utf8_lossy(&upl.stdout).into_owned();
    assert!(
        upl.status.success(),
        "the upload survives the takeover: {}\nsink: {}",
        String::from_utf8_lossy(&upl.stderr),
        read(&sink_log)
    );
    assert!(
        answer.starts_with(&format!(
            "{up_sha} {LEN} client={CLIENT}:44002 dst={VIP}:9000"
        )),
        "the upload arrived byte-exact and the sink learned the client: {answer}\nsink log: {}",
        read(&sink_log)
    );
    // The first director sent one header per connection; the new active director carried
    // the rest of both transfers and put no header into the middle of a stream.
    assert_eq!(headers_a, 2, "{dp}");
    assert_eq!(b.counter("proxy_headers"), 0, "{dp}");
    let (web_out, _) = service_bytes(&b, &web);
    let (_, sink_in) = service_bytes(&b, &sink);
    eprintln!(
        "through the new active director: download {web_out} bytes out, upload {sink_in} bytes in"
    );
    assert!(
        web_out > u64::from(LEN) / 4 && sink_in > u64::from(LEN) / 4,
        "the standby carried the rest: download {web_out} bytes out, upload {sink_in} bytes in"
    );
}

/// A UDP client: from `lport`, sends `n` datagrams `<tag>-<i>` to VIP:`vport` (each
/// answered within 2 s, three tries) and prints each answer; a late answer to an earlier
/// try is printed on stderr, not taken for the next datagram's.
const UDP_CLIENT: &str = r#"
import socket, sys, time
vip, vport, lport, tag, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", lport))
for i in range(n):
    msg = ("%s-%d" % (tag, i)).encode()
    answer = None
    for attempt in range(3):
        s.sendto(msg, (vip, vport))
        end = time.time() + 2
        while answer is None and time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                d = s.recvfrom(65535)[0]
            except socket.timeout:
                break
            if d == msg:
                answer = d
            else:
                print("other answer: %r" % d, file=sys.stderr)
        if answer is not None:
            break
    print(answer.decode() if answer is not None else "no answer to %s" % msg.decode())
"#;

#[test]
fn udp_proxy_v2_datagrams_name_the_client() {
    if skip() {
        return;
    }
    let prefix = "rppu";
    let mut lab = two_port(prefix, false, 8000, 8000);
    let work = workdir(&lab);
    let logs = [work.join("udp-r1.log"), work.join("udp-r2.log")];
    for ((ns, rip), log) in [("r1", RS1), ("r2", RS2)].into_iter().zip(&logs) {
        python_server(
            &mut lab,
            ns,
            UDP_ECHO,
            &[rip, "5000", &log.display().to_string()],
        );
        wait_file(&log.with_extension("log.ready"), "the UDP echo server");
    }
    let toml = service(
        "udp",
        5000,
        LIPS[0],
        "proxy_protocol = \"v2\"",
        &[&format!("{RS1}:5000"), &format!("{RS2}:5000")],
    );
    let d = two_port_director_with(&lab, prefix, 1, &toml);
    wait_forwarding(&lab);
    let mut sent = Vec::new();
    for lport in [45001u16, 45002] {
        let tag = format!("hello{lport}");
        let lp = lport.to_string();
        let out = lab.try_exec(
            "c",
            &["python3", "-c", UDP_CLIENT, VIP, "5000", &lp, &tag, "3"],
        );
        let answers = String::from_utf8_lossy(&out.stdout).into_owned();
        let want: Vec<String> = (0..3).map(|i| format!("{tag}-{i}")).collect();
        assert_eq!(
            answers.lines().collect::<Vec<_>>(),
            want,
            "each echo is the payload alone: {}\n{}\n{}{}",
            String::from_utf8_lossy(&out.stderr),
            d.rvsadm(&["--dataplane"]),
            read(&logs[0]),
            read(&logs[1])
        );
        sent.extend(want.into_iter().map(|m| (lport, m)));
    }
    let all = format!("{}{}", read(&logs[0]), read(&logs[1]));
    eprintln!("UDP echo logs:\n{all}");
    assert!(
        !all.contains("error"),
        "every datagram had a v2 header: {all}"
    );
    for (lport, msg) in &sent {
        let want = format!(
            "client={CLIENT}:{lport} dst={VIP}:5000 v2 dgram peer={}:",
            LIPS[0]
        );
        assert!(
            all.lines()
                .any(|l| l.starts_with(&want) && l.ends_with(&format!(" payload={msg}"))),
            "{msg}: want a line starting {want:?}\n{all}"
        );
    }
    // Every datagram that reached a real server got its header, and was counted.
    assert_eq!(
        d.counter("proxy_headers"),
        all.lines().count() as u64,
        "{}",
        d.rvsadm(&["--dataplane"])
    );
    // rr gave each client port its own real server.
    assert!(
        !read(&logs[0]).is_empty() && !read(&logs[1]).is_empty(),
        "{all}"
    );
}

#[test]
fn toa_option_carries_the_client_on_the_handshakes_ack() {
    if skip() {
        return;
    }
    let prefix = "rppt";
    let mut lab = two_port(prefix, false, 80, 80);
    let work = workdir(&lab);
    let log = work.join("toa.log");
    lab.spawn(
        "r1",
        &[
            "python3",
            "-c",
            TOA_SNIFFER,
            "80",
            &log.display().to_string(),
        ],
    );
    wait_file(&log.with_extension("log.ready"), "the TOA sniffer");
    let toml = service("tcp", 80, LIPS[0], "toa = true", &[&format!("{RS1}:80")]);
    let d = two_port_director_with(&lab, prefix, 1, &toml);
    wait_forwarding(&lab);
    let lports = [46001u16, 46002, 46003];
    for lport in lports {
        let lp = lport.to_string();
        let out = lab.try_exec(
            "c",
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--local-port",
                &lp,
                &format!("http://{VIP}/"),
            ],
        );
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && body.starts_with(&format!("rs1 client={}:", LIPS[0])),
            "curl from {lport}: {body}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The sniffer reads the packets as they arrive; wait (bounded) for the last handshake.
    eventually(10, || {
        read(&log)
            .lines()
            .filter(|l| l.contains(" kind=first-after-syn "))
            .count()
            >= lports.len()
    });
    let seen = read(&log);
    eprintln!("packets to r1:80:\n{seen}");
    let context = || format!("{seen}\n{}", d.rvsadm(&["--dataplane"]));
    let firsts: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains(" kind=first-after-syn "))
        .collect();
    assert_eq!(firsts.len(), lports.len(), "{}", context());
    for lport in lports {
        assert!(
            firsts.iter().any(|l| l.starts_with(&format!("conn={}:", LIPS[0]))
                && l.contains(&format!(" toa={CLIENT}:{lport} "))
                && l.ends_with(" csum=ok")),
            "the first packet after the SYN from client port {lport} carries TOA {CLIENT}:{lport} with a right checksum:\n{}",
            context()
        );
    }
    assert!(
        !seen.contains("csum=bad") && !seen.contains("malformed") && !seen.contains("bad-length"),
        "{}",
        context()
    );
    assert_eq!(
        (d.counter("toa_added"), d.counter("toa_no_room")),
        (3, 0),
        "{}",
        context()
    );
}
