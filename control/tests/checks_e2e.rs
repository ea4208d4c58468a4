//! Health checks end to end without a dataplane: the real `rvsd --no-dataplane` checking
//! real servers on loopback, driven by the real `rvsadm`.
//!
//! - 1,000 real servers checked (`TCP_CHECK`) every second: every one is probed about
//!   once a second, and `rvsadm -Ln` answers in under 50 ms all along.
//! - A checked server that fails leaves the table; the listing, the log and the metrics
//!   say so; a change made with rvsadm holds until the server's next transition.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{adm, text, wait_for_socket, Dir, Kill, RVSD};

/// `rvsd --no-dataplane` with a configuration, its log in its directory; killed (and
/// the directory removed) when dropped.
struct Rvsd {
    child: Kill,
    socket: PathBuf,
    dir: Dir,
}

impl Rvsd {
    fn start(name: &str, body: &str) -> Rvsd {
        let dir = Dir::new(&format!("chk-{name}"));
        let socket = dir.0.join("rvsd.sock");
        let cfg = dir.0.join("rvs.toml");
        std::fs::write(
            &cfg,
            format!("{body}\n[control]\nsocket = \"{}\"\n", socket.display()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.0.join("rvsd.log")).unwrap();
        let child = Kill(
            Command::new(RVSD)
                .arg("--no-dataplane")
                .arg("--config")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        wait_for_socket(&socket, 60);
        Rvsd { child, socket, dir }
    }

    fn adm(&self, args: &[&str]) -> String {
        let out = adm(&self.socket, args);
        assert!(out.status.success(), "rvsadm {args:?}: {out:?}");
        text(&out.stdout)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("rvsd.log")).unwrap_or_default()
    }

    fn wait(&self, what: &str, args: &[&str], ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.adm(args);
            if ok(&t) {
                return t;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{what}:\n{t}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A listener on every loopback address (`0.0.0.0:port`) that accepts and counts. Its
/// accept queue holds a whole second's probes (std's default of 128 overflows when the
/// machine is busy and the 1,000 probes of a round meet a slow accept loop: the kernel
/// then drops SYNs and the probes time out, which is the listener's fault, not rvsd's).
fn counting_listener() -> (u16, Arc<AtomicU64>) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&"0.0.0.0:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(4096).unwrap();
    let l: TcpListener = s.into();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    (port, n)
}

#[test]
fn a_thousand_servers_checked_every_second_and_the_control_socket_stays_fast() {
    let (port, accepted) = counting_listener();
    let mut body = String::new();
    for s in 0..10u32 {
        body.push_str(&format!(
            "[[services]]\nproto = \"tcp\"\nvip = \"10.10.0.{}:80\"\nscheduler = \"rr\"\ndelay_loop = 1\n",
            s + 1
        ));
        for r in 0..100u32 {
            body.push_str(&format!(
                "[[services.real]]\naddress = \"127.0.{s}.{}:{port}\"\nforward = \"masq\"\n\
                 [[services.real.checks]]\ntype = \"TCP_CHECK\"\nconnect_timeout = 1\n",
                r + 1
            ));
        }
    }
    let d = Rvsd::start("scale", &body);
    let up = |t: &str| {
        t.lines()
            .skip(1)
            .filter(|l| l.contains(" UP ") && l.contains("connected"))
            .count()
    };
    d.wait("1,000 checks up", &["--list-checks"], |t| up(t) == 1000);
    let before = accepted.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let mut lists = 0;
    while t0.elapsed() < Duration::from_secs(5) {
        let start = Instant::now();
        let t = d.adm(&["-Ln"]);
        worst = worst.max(start.elapsed());
        assert_eq!(t.matches("Masq").count(), 1000);
        lists += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = (accepted.load(Ordering::Relaxed) - before) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("{rate:.0} probes/s; worst rvsadm -Ln of {lists}: {worst:?}");
    assert!(rate > 800.0, "{rate} probes per second");
    // A bound a loaded machine (a CI runner building in parallel) still keeps; a control
    // socket blocked behind the checks would take seconds.
    assert!(worst < Duration::from_millis(250), "{worst:?}");
    // Nothing moved: no transitions.
    let t = d.adm(&["--list-checks"]);
    assert_eq!(up(&t), 1000, "{t}");
}

#[test]
fn a_failed_server_leaves_the_table_and_rvsadm_listing_logs_and_metrics_say_so() {
    let good = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let (gp, bp) = (
        good.local_addr().unwrap().port(),
        gone.local_addr().unwrap().port(),
    );
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap();
    let mp = metrics.local_addr().unwrap().port();
    drop(metrics);
    let body = format!(
        "[metrics]\nlisten = \"127.0.0.1:{mp}\"\n\
         [[services]]\nproto = \"tcp\"\nvip = \"10.10.0.1:80\"\nscheduler = \"rr\"\ndelay_loop = 0.5\n\
         [[services.real]]\naddress = \"127.0.0.1:{gp}\"\nforward = \"masq\"\nweight = 3\n\
         [[services.real.checks]]\ntype = \"TCP_CHECK\"\nconnect_timeout = 1\nretry = 0\n\
         [[services.real]]\naddress = \"127.0.0.1:{bp}\"\nforward = \"masq\"\nweight = 2\n\
         [[services.real.checks]]\ntype = \"TCP_CHECK\"\nconnect_timeout = 1\nretry = 0\n"
    );
    let d = Rvsd::start("fail", &body);
    let gone_label = format!("127.0.0.1:{bp}");
    d.wait("both up", &["--list-checks"], |t| {
        t.matches("connected").count() == 2
    });
    drop(gone);
    let table = d.wait("failed server out", &["-Ln"], |t| !t.contains(&gone_label));
    assert!(table.contains(&format!("-> 127.0.0.1:{gp}")), "{table}");
    let list = d.adm(&["--list-checks"]);
    let line = list.lines().find(|l| l.contains(&gone_label)).unwrap();
    assert!(
        line.starts_with("TCP  10.10.0.1:80")
            && line.contains("TCP_CHECK   DOWN ")
            && line.ends_with("connection refused"),
        "{list}"
    );
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("real server DOWN")
            && l.contains(&format!("TCP  10.10.0.1:80 -> {gone_label}"))),
        "{log}"
    );
    // The metrics endpoint.
    let mut s = TcpStream::connect(("127.0.0.1", mp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let labels =
        format!("{{service=\"TCP  10.10.0.1:80\",server=\"{gone_label}\",check=\"TCP_CHECK\"}}");
    assert!(text.contains(&format!("rvs_check_up{labels} 0")), "{text}");
    assert!(
        text.contains(&format!("rvs_check_transitions_total{labels} 1")),
        "{text}"
    );
    assert!(text.contains("rvs_check_latency_seconds{"), "{text}");

    // rvsadm may change a checked server: the change holds until its next transition.
    d.adm(&[
        "-e",
        "-t",
        "10.10.0.1:80",
        "-r",
        &format!("127.0.0.1:{gp}"),
        "-m",
        "-w",
        "7",
    ]);
    std::thread::sleep(Duration::from_millis(1200));
    let table = d.adm(&["-Ln"]);
    let line = table
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{gp}")))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("7"), "{table}");
    // The failed server comes back with its configured weight.
    let again = TcpListener::bind(("127.0.0.1", bp)).unwrap();
    let table = d.wait("back", &["-Ln"], |t| t.contains(&gone_label));
    let line = table.lines().find(|l| l.contains(&gone_label)).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("2"), "{table}");
    drop(again);
}

#[test]
fn omega_runs_notify_down_of_the_servers_up_at_shutdown() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("rvs-chk-omega-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flag = dir.join("down");
    let body = format!(
        "[[services]]\nproto = \"tcp\"\nvip = \"10.10.0.1:80\"\ndelay_loop = 1\nomega = true\n\
         [[services.real]]\naddress = \"127.0.0.1:{port}\"\nforward = \"masq\"\n\
         notify_down = \"touch {}\"\n\
         [[services.real.checks]]\ntype = \"TCP_CHECK\"\nconnect_timeout = 1\n",
        flag.display()
    );
    let mut d = Rvsd::start("omega", &body);
    d.wait("up", &["--list-checks"], |t| t.contains("connected"));
    assert!(!flag.exists());
    let st = Command::new("kill")
        .args(["-TERM", &d.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    while d.child.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(15), "rvsd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(flag.exists(), "notify_down ran at shutdown: {}", d.log());
    let _ = std::fs::remove_dir_all(&dir);
}
