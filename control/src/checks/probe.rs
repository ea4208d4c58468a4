//! One attempt of one checker, from the host's kernel: real sockets (TCP, TLS over TCP,
//! UDP) and `/bin/sh -c` for scripts. Every attempt ends by its deadline.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_config::check::CheckKind;
use socket2::{Domain, Protocol, Socket, Type};

use super::{dns, http};

/// One url of an `HTTP_GET`/`SSL_GET`: path, accepted status ranges (none: any 2xx),
/// MD5 digest of the body.
pub type UrlSpec = (String, Vec<(u16, u16)>, Option<String>);

/// What one attempt needs, resolved from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The checker.
    pub kind: CheckKind,
    /// Where the probe goes.
    pub target: SocketAddr,
    /// Source address and port of the probe.
    pub bind: Option<SocketAddr>,
    /// A DR or TUN real server probed through the VIP (`target` is the VIP): the probe is
    /// routed to this server's MAC, or its probe MAC (see [`super::via`]).
    pub via: Option<super::via::Via>,
    /// The attempt's time bound (connect and whole answer; scripts: `misc_timeout`).
    pub timeout: Duration,
    /// `HTTP_GET`/`SSL_GET`: the urls.
    pub urls: Vec<UrlSpec>,
    /// `HTTP_GET`/`SSL_GET`: Host header and SNI.
    pub host: String,
    /// `DNS_CHECK`: name and type number.
    pub dns: (String, u16),
    /// `MISC_CHECK`: the command and whether its status sets the weight.
    pub misc: (String, bool),
    /// `UDP_CHECK`: the datagram and the reply's required start.
    pub udp: (Vec<u8>, Option<Vec<u8>>),
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Up or down.
    pub ok: bool,
    /// `MISC_CHECK` with `misc_dynamic`: the weight its status set.
    pub weight: Option<i32>,
    /// What happened, for the listing and the log (`connected`, `status 503`, ...).
    pub text: String,
}

impl Outcome {
    fn up(text: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            weight: None,
            text: text.into(),
        }
    }
    fn down(text: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            weight: None,
            text: text.into(),
        }
    }
}

/// The MD5 of `body` as 32 lowercase hex digits (keepalived's `genhash` prints the same).
pub fn digest(body: &[u8]) -> String {
    format!("{:x}", md5::compute(body))
}

/// Runs one attempt; returns its outcome and how long it took.
pub fn run(spec: &Spec) -> (Outcome, Duration) {
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let o = match spec.kind {
        CheckKind::Tcp => match connect(spec, deadline) {
            Ok(_) => Outcome::up("connected"),
            Err(e) => Outcome::down(e),
        },
        CheckKind::HttpGet | CheckKind::SslGet => http_get(spec, deadline),
        CheckKind::Dns => dns_check(spec, deadline),
        CheckKind::Udp => udp_check(spec, deadline),
        CheckKind::Misc => misc(&spec.misc.0, spec.misc.1, spec.timeout),
    };
    (o, start.elapsed())
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d < Duration::from_millis(1) {
        Err("timed out".into())
    } else {
        Ok(d)
    }
}

fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

fn socket(spec: &Spec, ty: Type, proto: Protocol) -> Result<Socket, String> {
    let s = Socket::new(Domain::for_address(spec.target), ty, Some(proto))
        .map_err(|e| format!("socket: {e}"))?;
    if let (Some(via), IpAddr::V4(vip)) = (spec.via, spec.target.ip()) {
        let m = super::via::mark(vip, via)?;
        s.set_mark(m).map_err(|e| format!("SO_MARK {m:#x}: {e}"))?;
    }
    if let Some(b) = spec.bind {
        s.set_reuse_address(true).map_err(|e| e.to_string())?;
        s.bind(&b.into())
            .map_err(|e| format!("bind {b}: {}", io_text(&e)))?;
    }
    Ok(s)
}

fn connect(spec: &Spec, deadline: Instant) -> Result<TcpStream, String> {
    let s = socket(spec, Type::STREAM, Protocol::TCP)?;
    s.connect_timeout(&spec.target.into(), left(deadline)?)
        .map_err(|e| io_text(&e))?;
    // A reset at close: no TIME_WAIT on the prober's side for every check.
    let _ = s.set_linger(Some(Duration::ZERO));
    Ok(s.into())
}

/// Reads until the answer is complete (Content-Length or close), the deadline, or
/// `MAX_BODY`.
fn read_answer<S: Read>(
    s: &mut S,
    set: &dyn Fn(Duration) -> io::Result<()>,
    deadline: Instant,
) -> Result<(http::Head, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut head: Option<http::Head> = None;
    loop {
        if let Some(h) = &head {
            if let Some(n) = h.content_length {
                if buf.len() - h.len >= n {
                    buf.truncate(h.len + n);
                    break;
                }
            }
        }
        if buf.len() > http::MAX_HEAD + http::MAX_BODY {
            return Err("answer too long".into());
        }
        set(left(deadline)?).map_err(|e| e.to_string())?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            // TLS without close_notify: the answer ended with the connection.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io_text(&e)),
        };
        if n == 0 {
            if head.is_none() {
                return Err(if buf.is_empty() {
                    "closed without an answer".into()
                } else {
                    "incomplete response head".into()
                });
            }
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            match http::parse_head(&buf) {
                Ok(h) => head = Some(h),
                Err(http::HeadError::Incomplete) => {}
                Err(http::HeadError::Bad(why)) => return Err(why.into()),
            }
        }
    }
    let h = head.ok_or("no response head")?;
    let body = buf.split_off(h.len);
    Ok((h, body))
}

fn http_get(spec: &Spec, deadline: Instant) -> Outcome {
    let mut texts = Vec::new();
    for (path, code, digest) in &spec.urls {
        let r = if spec.kind == CheckKind::SslGet {
            https_once(spec, path, deadline)
        } else {
            http_once(spec, path, deadline)
        };
        let (h, body) = match r {
            Ok(x) => x,
            Err(e) => return Outcome::down(format!("{path}: {e}")),
        };
        if !http::status_ok(h.status, code) {
            return Outcome::down(format!("{path}: status {}", h.status));
        }
        if let Some(want) = digest {
            let got = self::digest(&body);
            if !got.eq_ignore_ascii_case(want) {
                return Outcome::down(format!("{path}: digest {got}"));
            }
        }
        texts.push(format!("{path}: status {}", h.status));
    }
    Outcome::up(texts.join(", "))
}

fn http_once(spec: &Spec, path: &str, deadline: Instant) -> Result<(http::Head, Vec<u8>), String> {
    let mut s = connect(spec, deadline)?;
    s.set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    s.write_all(&http::request(path, &spec.host))
        .map_err(|e| io_text(&e))?;
    let c = s.try_clone().map_err(|e| e.to_string())?;
    read_answer(&mut s, &move |d| c.set_read_timeout(Some(d)), deadline)
}

/// Accepts every certificate: keepalived's `SSL_GET` does not verify the server.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // ring (no C toolchain beyond cc); post-quantum key exchange is not needed to
            // ask a real server for a page.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(Arc::new(c))
        })
        .clone()
}

fn https_once(spec: &Spec, path: &str, deadline: Instant) -> Result<(http::Head, Vec<u8>), String> {
    let tcp = connect(spec, deadline)?;
    let name = match spec.host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(spec.host.clone())
            .map_err(|e| format!("virtualhost: {e}"))?,
    };
    let conn = rustls::ClientConnection::new(tls_config()?, name).map_err(|e| e.to_string())?;
    let c = tcp.try_clone().map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    c.set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    tls.write_all(&http::request(path, &spec.host))
        .map_err(|e| format!("TLS: {}", io_text(&e)))?;
    tls.flush().map_err(|e| format!("TLS: {}", io_text(&e)))?;
    let c2 = c.try_clone().map_err(|e| e.to_string())?;
    read_answer(&mut tls, &move |d| c2.set_read_timeout(Some(d)), deadline)
}

fn udp_socket(spec: &Spec, deadline: Instant) -> Result<UdpSocket, String> {
    let s = socket(spec, Type::DGRAM, Protocol::UDP)?;
    s.connect(&spec.target.into()).map_err(|e| io_text(&e))?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn dns_check(spec: &Spec, deadline: Instant) -> Outcome {
    let id = rand_id();
    let r = (|| {
        let s = udp_socket(spec, deadline)?;
        s.send(&dns::query(id, &spec.dns.0, spec.dns.1))
            .map_err(|e| io_text(&e))?;
        let mut buf = [0u8; 4096];
        loop {
            s.set_read_timeout(Some(left(deadline)?))
                .map_err(|e| e.to_string())?;
            let n = s.recv(&mut buf).map_err(|e| io_text(&e))?;
            match dns::check_answer(id, &buf[..n]) {
                // Another query's answer: keep waiting for ours.
                Err(e) if e.contains(" is not the query's ") => continue,
                r => return r,
            }
        }
    })();
    match r {
        Ok(()) => Outcome::up("answered"),
        Err(e) => Outcome::down(e),
    }
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() as u16
}

fn udp_check(spec: &Spec, deadline: Instant) -> Outcome {
    let r = (|| {
        let s = udp_socket(spec, deadline)?;
        s.send(&spec.udp.0).map_err(|e| io_text(&e))?;
        let mut buf = [0u8; 2048];
        match (s.recv(&mut buf), &spec.udp.1) {
            (Ok(n), Some(want)) if buf[..n].starts_with(want) => Ok("replied".to_string()),
            (Ok(_), Some(_)) => Err("reply does not match require_reply".to_string()),
            (Ok(_), None) => Ok("replied".into()),
            (Err(e), _) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Err("port unreachable".into())
            }
            (Err(e), None)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok("no port unreachable".into())
            }
            (Err(e), _) => Err(io_text(&e)),
        }
    })();
    match r {
        Ok(t) => Outcome::up(t),
        Err(e) => Outcome::down(e),
    }
}

/// Runs `cmd` with `/bin/sh -c` in its own process group; past `timeout` the whole group
/// is killed and the result is a failure. Exit 0 is up; with `dynamic`, exit 2..=255 is
/// up with weight `status - 2`; anything else (a signal included) is down.
pub fn misc(cmd: &str, dynamic: bool, timeout: Duration) -> Outcome {
    match run_script(cmd, timeout) {
        Err(e) => Outcome::down(e),
        Ok(Some(0)) => Outcome::up("exit 0"),
        Ok(Some(s)) if dynamic && (2..=255).contains(&s) => Outcome {
            ok: true,
            weight: Some(s - 2),
            text: format!("exit {s}: weight {}", s - 2),
        },
        Ok(Some(s)) => Outcome::down(format!("exit {s}")),
        Ok(None) => Outcome::down("killed by a signal"),
    }
}

/// Runs a script bounded by `timeout`: its exit status (`None`: ended by a signal), or
/// why it failed (`timed out after 2s: killed`).
pub fn run_script(cmd: &str, timeout: Duration) -> Result<Option<i32>, String> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                return Ok(match (st.code(), st.signal()) {
                    (Some(c), _) => Some(c),
                    _ => None,
                })
            }
            Ok(None) if Instant::now() >= deadline => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "timed out after {}: killed",
                    super::secs_text(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spec(kind: CheckKind, target: SocketAddr) -> Spec {
        Spec {
            kind,
            target,
            bind: None,
            via: None,
            timeout: Duration::from_millis(500),
            urls: vec![("/".into(), Vec::new(), None)],
            host: "localhost".into(),
            dns: (".".into(), 6),
            misc: (String::new(), false),
            udp: (vec![1, 2], None),
        }
    }

    #[test]
    fn md5_digest() {
        // RFC 1321's test vector.
        assert_eq!(digest(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn tcp_connect_and_refusal() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        assert!(run(&spec(CheckKind::Tcp, a)).0.ok);
        drop(l);
        let (o, _) = run(&spec(CheckKind::Tcp, a));
        assert_eq!(o, Outcome::down("connection refused"));
    }

    #[test]
    fn an_http_server_that_never_answers_fails_within_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let c = l.accept();
            std::thread::sleep(Duration::from_millis(900));
            drop(c);
        });
        let (o, took) = run(&spec(CheckKind::HttpGet, a));
        assert!(!o.ok);
        assert_eq!(o.text, "/: timed out");
        assert!(took < Duration::from_millis(700), "{took:?}");
        t.join().unwrap();
    }

    #[test]
    fn http_status_and_digest() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                "HTTP/1.0 200 OK\r\n\r\nabd",
                "HTTP/1.1 503 Busy\r\n\r\n",
            ] {
                let (mut c, _) = l.accept().unwrap();
                let mut req = [0u8; 1024];
                let n = c.read(&mut req).unwrap();
                assert!(std::str::from_utf8(&req[..n])
                    .unwrap()
                    .contains("Host: localhost\r\n"));
                c.write_all(answer.as_bytes()).unwrap();
            }
        });
        let mut s = spec(CheckKind::HttpGet, a);
        s.urls = vec![(
            "/".into(),
            Vec::new(),
            Some("900150983cd24fb0d6963f7d28e17f72".into()),
        )];
        assert_eq!(run(&s).0, Outcome::up("/: status 200"));
        assert_eq!(
            run(&s).0,
            Outcome::down(format!("/: digest {}", digest(b"abd")))
        );
        assert_eq!(run(&s).0, Outcome::down("/: status 503"));
        t.join().unwrap();
    }

    #[test]
    fn dns_against_a_local_responder() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = srv.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 512];
            let (n, from) = srv.recv_from(&mut b).unwrap();
            b[2] |= 0x80;
            srv.send_to(&b[..n], from).unwrap();
            let (n, from) = srv.recv_from(&mut b).unwrap();
            b[2] |= 0x80;
            b[3] = 2;
            srv.send_to(&b[..n], from).unwrap();
        });
        let s = spec(CheckKind::Dns, a);
        assert!(run(&s).0.ok);
        assert_eq!(run(&s).0, Outcome::down("DNS answer rcode 2 (SERVFAIL)"));
        t.join().unwrap();
    }

    #[test]
    fn udp_port_unreachable_fails() {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = u.local_addr().unwrap();
        drop(u);
        assert_eq!(
            run(&spec(CheckKind::Udp, a)).0,
            Outcome::down("port unreachable")
        );
    }

    #[test]
    fn udp_require_reply() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = srv.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            for reply in [&b"\x01\x02pong"[..], b"nope"] {
                let mut b = [0u8; 64];
                let (_, from) = srv.recv_from(&mut b).unwrap();
                srv.send_to(reply, from).unwrap();
            }
        });
        let mut s = spec(CheckKind::Udp, a);
        s.udp = (vec![1, 2], Some(vec![1, 2]));
        assert_eq!(run(&s).0, Outcome::up("replied"));
        assert_eq!(
            run(&s).0,
            Outcome::down("reply does not match require_reply")
        );
        t.join().unwrap();
        // No reply at all, with require_reply: down at the timeout.
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.target = quiet.local_addr().unwrap();
        assert_eq!(run(&s).0, Outcome::down("timed out"));
    }

    #[test]
    fn bindto_sets_the_probe_source() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = spec(CheckKind::Tcp, l.local_addr().unwrap());
        s.bind = Some("127.0.0.3:0".parse().unwrap());
        assert!(run(&s).0.ok);
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.3");
    }

    #[test]
    fn scripts_exit_status_signal_and_timeout() {
        let t = Duration::from_secs(5);
        assert!(misc("exit 0", false, t).ok);
        assert_eq!(misc("exit 1", false, t), Outcome::down("exit 1"));
        assert_eq!(misc("exit 7", true, t).weight, Some(5));
        assert!(!misc("exit 1", true, t).ok);
        assert_eq!(
            misc("kill -9 $$", false, t),
            Outcome::down("killed by a signal")
        );
        let start = Instant::now();
        // The child of the shell is killed with the group: nothing holds the pipe open.
        let o = misc("sleep 30 & sleep 30", false, Duration::from_millis(300));
        assert_eq!(o, Outcome::down("timed out after 0.3s: killed"));
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
