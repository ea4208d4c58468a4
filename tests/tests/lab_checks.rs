//! Real-server health checks end to end: rvsd on DPDK ports probes real nginx (HTTP and
//! HTTPS) and dnsmasq servers from the director's kernel, through the exception tap of the
//! server-side port (`exception_iface = "rvs1"`, host address 10.20.0.2), and moves the
//! table as keepalived would.
//!
//! Topology: client c 10.10.0.2 — d0 [dpdk0 10.10.0.1] director [dpdk1 10.20.0.1, tap
//! rvs1 10.20.0.2] d1 — sw — r1 10.20.0.11, r2 10.20.0.12, r3 10.20.0.13 (the sorry
//! server). NAT, VIP 10.10.0.100. Every check: delay_loop 1 s, connect_timeout 1 s.
//!
//! Needs root, nginx, dnsmasq and openssl; skips (with a message) where namespaces cannot
//! be made.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_tests::{can_build_labs, sha256, Director, Lab};

const VIP: &str = "10.10.0.100";
const BLOB_LEN: usize = 3 * 1024 * 1024;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, last)
}

/// The lab's namespaces and addresses.
fn topology(prefix: &str) -> Lab {
    let mut lab = Lab::new(prefix);
    for ns in ["c", "d", "sw", "r1", "r2", "r3"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "d", "d0");
    lab.veth("d", "d1", "sw", "d1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.veth("r2", "r0", "sw", "r2p");
    lab.veth("r3", "r0", "sw", "r3p");
    lab.bridge("sw", "br0", &["d1p", "r1p", "r2p", "r3p"]);
    lab.addr("c", "c0", "10.10.0.2/24");
    lab.default_route("c", Ipv4Addr::new(10, 10, 0, 1));
    for (ns, last) in [("r1", 11), ("r2", 12), ("r3", 13)] {
        lab.addr(ns, "r0", &format!("{}/24", ip(last)));
        lab.default_route(ns, ip(1));
    }
    lab
}

/// A real server's nginx: its files and how to start it again.
struct Nginx {
    ns: &'static str,
    dir: PathBuf,
    pid: u32,
    addr: Ipv4Addr,
}

impl Nginx {
    /// Starts nginx in `ns` on `addr` ports 80 and 443 (self-signed certificate) serving
    /// `index.html` = `name`, `health` and `blob.bin`.
    fn start(lab: &mut Lab, ns: &'static str, addr: Ipv4Addr, name: &str) -> Nginx {
        Nginx::start_on(lab, ns, addr, &[], name)
    }

    /// [`Nginx::start`], also listening on `also` (port 80 and 443).
    fn start_on(
        lab: &mut Lab,
        ns: &'static str,
        addr: Ipv4Addr,
        also: &[&str],
        name: &str,
    ) -> Nginx {
        let dir = std::env::temp_dir().join(format!("rvs-nginx-{}", lab.ns(ns)));
        let _ = std::fs::remove_dir_all(&dir);
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("www");
        std::fs::write(www.join("index.html"), format!("{name}\n")).expect("index");
        std::fs::write(www.join("health"), "ok\n").expect("health");
        let blob: Vec<u8> = (0..BLOB_LEN)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        std::fs::write(www.join("blob.bin"), blob).expect("blob");
        let d = dir.display();
        let more: String = also
            .iter()
            .map(|a| format!("listen {a}:80; listen {a}:443 ssl; "))
            .collect();
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}.lab")])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl: {out:?}");
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/t1;\n  proxy_temp_path {d}/t2;\n\
               fastcgi_temp_path {d}/t3;\n  uwsgi_temp_path {d}/t4;\n  scgi_temp_path {d}/t5;\n\
               server {{ listen {addr}:80; listen {addr}:443 ssl; {more}\n\
                 ssl_certificate {d}/cert.pem;\n\
                 ssl_certificate_key {d}/key.pem; root {d}/www; }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let mut n = Nginx {
            ns,
            dir,
            pid: 0,
            addr,
        };
        n.restart(lab);
        n
    }

    fn restart(&mut self, lab: &mut Lab) {
        let conf = self.dir.join("nginx.conf").display().to_string();
        let err = self.dir.join("error.log").display().to_string();
        self.pid = lab.spawn(self.ns, &["nginx", "-e", &err, "-c", &conf]);
        lab.wait_tcp(self.ns, self.addr, 80);
    }

    fn stop(&self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        // The process stays a zombie until the lab reaps it: wait for its state.
        let deadline = Instant::now() + Duration::from_secs(5);
        let stat = format!("/proc/{}/stat", self.pid);
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(Instant::now() < deadline, "nginx {} did not stop", self.pid);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn www(&self, file: &str) -> PathBuf {
        self.dir.join("www").join(file)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// rvsd with the exception tap on the server-side port, the tap given 10.20.0.2, and
/// `services` as its services.
fn director(lab: &Lab, tag: &str, services: &str) -> Director {
    director_with(lab, tag, "", services)
}

/// [`director`] with `control` keys added to its `[control]` table.
fn director_with(lab: &Lab, tag: &str, control: &str, services: &str) -> Director {
    let d = Director::start_toml(
        lab,
        "d",
        tag,
        &format!(
            "{control}\n[[ports]]\nname = \"dpdk0\"\ndevice = \"net_af_packet_{tag}0,iface=d0\"\naddresses = [\"10.10.0.1/24\"]\n\n\
             [[ports]]\nname = \"dpdk1\"\ndevice = \"net_af_packet_{tag}1,iface=d1\"\naddresses = [\"10.20.0.1/24\"]\n\
             exception_iface = \"rvs1\"\n\n[workers]\ncount = 1\n\n{services}"
        ),
    );
    host_tap(lab, &d, "d", "d1", "10.20.0.2/24");
    d
}

/// Waits (bounded) for director `d`'s exception tap `rvs1` in `ns`, brings it up with the
/// host address `addr` (where the probes come from) and keeps the kernel off the port's
/// veth `port_dev`.
fn host_tap(lab: &Lab, d: &Director, ns: &str, port_dev: &str, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab
        .try_exec(ns, &["ip", "link", "show", "rvs1"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "no tap rvs1: {}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.exec(ns, &["ip", "link", "set", "rvs1", "up"]);
    lab.addr(ns, "rvs1", addr);
    lab.kernel_off(ns, port_dev);
}

/// Waits (bounded) until `ok(rvsadm --list-checks)`.
fn wait_checks(d: &Director, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = d.rvsadm(&["--list-checks"]);
        if ok(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs}s:\n{t}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_up(t: &str) -> bool {
    t.lines()
        .skip(1)
        .all(|l| l.contains(" UP ") && !l.contains("not checked yet"))
}

/// Waits (bounded) until `ok(rvsadm -Ln)`; returns how long it took.
fn wait_table(d: &Director, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let t = d.rvsadm(&["-Ln"]);
        if ok(&t) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs}s:\n{t}\n{}\n{}",
            d.rvsadm(&["--list-checks"]),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `-Ln` line of real server `server` (`10.20.0.11:80`), if listed.
fn server_line<'a>(table: &'a str, server: &str) -> Option<&'a str> {
    table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {server} ")))
}

fn weight(table: &str, server: &str) -> Option<u32> {
    server_line(table, server)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// A rate-limited download of `blob.bin` through the VIP, in the background.
/// The client port of the download, so that its session is told from the short
/// connections made just before it (still listed while their FINs cross).
const DOWNLOAD_PORT: u16 = 45001;

fn download(lab: &Lab, out: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns("c")])
        .args([
            "curl",
            "-s",
            "--local-port",
            &DOWNLOAD_PORT.to_string(),
            "--limit-rate",
            "512K",
            "--max-time",
            "40",
            "-o",
        ])
        .arg(out)
        .arg(format!("http://{VIP}/blob.bin"))
        .stdin(Stdio::null())
        .spawn()
        .expect("curl")
}

/// The real server the download's established connection to VIP:80 went to (found by
/// its client port: another connection's line would name the wrong server).
fn download_server(d: &Director) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = format!(":{DOWNLOAD_PORT} ");
    loop {
        let conns = d.rvsadm(&["-Lnc"]);
        if let Some(l) = conns.lines().find(|l| {
            l.contains("ESTABLISHED") && l.contains(&client) && l.contains(&format!("{VIP}:80"))
        }) {
            return l.split_whitespace().last().expect("dest").to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no established download:\n{conns}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(mut c: Child, out: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Some(st) = c.try_wait().expect("curl") {
            assert!(st.success(), "download failed: {st}");
            return sha256(out);
        }
        assert!(Instant::now() < deadline, "download did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(lab: &Lab, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            lab.curl("c", &format!("http://{VIP}/"))
                .unwrap_or_else(|| "(failed)".into())
                .trim()
                .to_string()
        })
        .collect()
}

fn rs_name(server: &str) -> &'static str {
    match server {
        "10.20.0.11:80" => "rs1",
        "10.20.0.12:80" => "rs2",
        _ => "?",
    }
}

const HTTP_CHECK: &str = "[[services.real.checks]]\ntype = \"HTTP_GET\"\nconnect_timeout = 1\nretry = 1\ndelay_before_retry = 1\nurl = [{ path = \"/health\" }]\n";

fn two_servers(extra: &str, real_extra: &str) -> String {
    format!(
        "[[services]]\nproto = \"tcp\"\nvip = \"{VIP}:80\"\nscheduler = \"rr\"\ndelay_loop = 1\n{extra}\n\
         [[services.real]]\naddress = \"10.20.0.11:80\"\nforward = \"masq\"\n{real_extra}\n{HTTP_CHECK}\n\
         [[services.real]]\naddress = \"10.20.0.12:80\"\nforward = \"masq\"\n{real_extra}\n{HTTP_CHECK}\n"
    )
}

#[test]
fn http_get_takes_a_stopped_server_out_and_back_while_a_download_goes_on() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topology("lchk");
    let mut rs1 = Nginx::start(&mut lab, "r1", ip(11), "rs1");
    let mut rs2 = Nginx::start(&mut lab, "r2", ip(12), "rs2");
    let want = sha256(&rs1.www("blob.bin"));
    let d = director(&lab, "lchk", &two_servers("", ""));
    wait_checks(&d, "checks up", 20, all_up);
    let got = names(&lab, 4);
    assert!(
        got.contains(&"rs1".to_string()) && got.contains(&"rs2".to_string()),
        "{got:?}"
    );

    let out = d.dir().join("download");
    let dl = download(&lab, &out);
    let busy = download_server(&d);
    let (other, other_nginx) = if busy == "10.20.0.11:80" {
        ("10.20.0.12:80", &mut rs2)
    } else {
        ("10.20.0.11:80", &mut rs1)
    };
    eprintln!("download on {busy}; stopping {other}");
    let stopped = Instant::now();
    other_nginx.stop();
    // delay_loop 1 × (retry 1) + one interval, plus the scheduling of the listing.
    let gone = wait_table(&d, "stopped server out of the table", 10, |t| {
        server_line(t, other).is_none()
    });
    let gone = stopped.elapsed().max(gone);
    eprintln!("{other} left the table after {gone:?}");
    assert!(gone < Duration::from_millis(3500), "{gone:?}");
    let list = d.rvsadm(&["--list-checks"]);
    let line = list.lines().find(|l| l.contains(other)).expect("listed");
    assert!(
        line.contains("HTTP_GET") && line.contains(" DOWN "),
        "{list}"
    );
    assert!(line.contains("connection refused"), "{list}");
    assert!(d.log().contains("real server DOWN"), "{}", d.log());
    // No new connection reaches it.
    let got = names(&lab, 6);
    assert!(got.iter().all(|n| n == rs_name(&busy)), "{got:?}");
    // A reload of the unchanged file keeps it out.
    assert_eq!(d.rvsadm(&["--reload"]), "reload: no changes\n");
    assert!(server_line(&d.rvsadm(&["-Ln"]), other).is_none());

    let restarted = Instant::now();
    other_nginx.restart(&mut lab);
    let back = wait_table(&d, "restarted server back", 10, |t| {
        weight(t, other) == Some(1)
    });
    let back = restarted.elapsed().max(back);
    eprintln!("{other} back after {back:?}");
    assert!(back < Duration::from_millis(2500), "{back:?}");
    let got = names(&lab, 4);
    assert!(
        got.contains(&"rs1".to_string()) && got.contains(&"rs2".to_string()),
        "{got:?}"
    );
    let list = d.rvsadm(&["--list-checks"]);
    let line = list.lines().find(|l| l.contains(other)).expect("listed");
    assert!(
        line.contains(" UP ") && line.split_whitespace().any(|w| w == "2"),
        "{list}"
    );

    // The download to the server that stayed up arrived whole.
    assert_eq!(finish(dl, &out), want);
}

#[test]
fn inhibit_keeps_connections_and_the_sorry_server_serves_when_all_are_down() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topology("lchi");
    let rs1 = Nginx::start(&mut lab, "r1", ip(11), "rs1");
    let rs2 = Nginx::start(&mut lab, "r2", ip(12), "rs2");
    let _sorry = Nginx::start(&mut lab, "r3", ip(13), "sorry");
    let flags = std::env::temp_dir().join(format!("rvs-lchi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&flags);
    std::fs::create_dir_all(&flags).expect("flags");
    let f = flags.display();
    let d = director(
        &lab,
        "lchi",
        &two_servers(
            &format!(
                "inhibit_on_failure = true\nsorry_server = \"10.20.0.13:80\"\n\
                 quorum_down = \"touch {f}/quorum_down\"\nquorum_up = \"touch {f}/quorum_up\"\n"
            ),
            &format!("notify_down = \"touch {f}/down\"\n"),
        ),
    );
    wait_checks(&d, "checks up", 20, all_up);

    let out = d.dir().join("download");
    let dl = download(&lab, &out);
    let busy = download_server(&d);
    let (other, busy_n, other_n) = if busy == "10.20.0.11:80" {
        ("10.20.0.12:80", &rs1, &rs2)
    } else {
        ("10.20.0.11:80", &rs2, &rs1)
    };
    // The server carrying the download fails its check (its /health is gone): weight 0,
    // still listed, its connection goes on.
    std::fs::remove_file(busy_n.www("health")).expect("rm health");
    wait_table(&d, "inhibited server at weight 0", 10, |t| {
        weight(t, &busy) == Some(0)
    });
    // notify_down runs on a thread of its own (a shell, then `touch`), started as the
    // table changes: on a loaded machine the file can come a moment after the weight.
    let ran = rvs_tests::failover::poll_until(5, || flags.join("down").exists());
    assert!(ran, "notify_down ran");
    let got = names(&lab, 4);
    assert!(got.iter().all(|n| n == rs_name(other)), "{got:?}");
    assert_eq!(
        finish(dl, &out),
        sha256(&busy_n.www("blob.bin")),
        "not reset"
    );

    // All down: the quorum (1) is lost, the sorry server serves.
    std::fs::remove_file(other_n.www("health")).expect("rm health");
    wait_table(&d, "sorry server in", 10, |t| {
        server_line(t, "10.20.0.13:80").is_some() && weight(t, other) == Some(0)
    });
    assert_eq!(names(&lab, 3), ["sorry", "sorry", "sorry"]);
    // quorum_down runs on a thread of its own too (see notify_down above).
    let ran = rvs_tests::failover::poll_until(5, || flags.join("quorum_down").exists());
    assert!(ran, "quorum_down ran");
    assert!(d.log().contains("quorum lost"), "{}", d.log());

    // One back: quorum regained, the sorry server leaves.
    std::fs::write(busy_n.www("health"), "ok\n").expect("health");
    wait_table(&d, "sorry server out", 10, |t| {
        server_line(t, "10.20.0.13:80").is_none() && weight(t, &busy) == Some(1)
    });
    assert_eq!(names(&lab, 3), [rs_name(&busy); 3]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !flags.join("quorum_up").exists() {
        assert!(Instant::now() < deadline, "quorum_up did not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&flags);
}

/// A TCP listener in `ns` that accepts and never answers.
fn silent_listener(lab: &mut Lab, ns: &str, addr: Ipv4Addr, port: u16) {
    let script = format!(
        "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port}))\ns.listen(64)\nheld = []\nwhile True:\n    c, _ = s.accept()\n    held.append(c)\n"
    );
    lab.spawn(ns, &["python3", "-c", &script]);
    lab.wait_tcp(ns, addr, port);
}

#[test]
fn digest_ssl_misc_dns_and_bad_servers_and_scripts() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topology("lchd");
    let rs1 = Nginx::start(&mut lab, "r1", ip(11), "rs1");
    silent_listener(&mut lab, "r2", ip(12), 9999);
    lab.spawn(
        "r2",
        &[
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=53",
            "--listen-address=10.20.0.12",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--host-record=www.lab,10.20.0.11",
        ],
    );
    let flag = std::env::temp_dir().join(format!("rvs-lchd-{}-flag", std::process::id()));
    std::fs::write(&flag, "").expect("flag");
    let digest = format!("{:032x}", md5_of(b"rs1\n"));
    let marker = format!("sleep 3{}", std::process::id() % 1000);
    let svc = |port: u16, proto: &str, real: &str, check: &str| {
        format!(
            "[[services]]\nproto = \"{proto}\"\nvip = \"{VIP}:{port}\"\nscheduler = \"rr\"\ndelay_loop = 1\n\
             [[services.real]]\naddress = \"{real}\"\nforward = \"masq\"\n\
             [[services.real.checks]]\nconnect_timeout = 1\nretry = 0\n{check}\n"
        )
    };
    let services = [
        svc(80, "tcp", "10.20.0.11:80", &format!("type = \"HTTP_GET\"\nurl = [{{ path = \"/\", digest = \"{digest}\" }}]")),
        svc(443, "tcp", "10.20.0.11:443", "type = \"SSL_GET\"\nvirtualhost = \"rs1.lab\"\nurl = [{ path = \"/health\", status_code = 200 }]"),
        svc(81, "tcp", "10.20.0.11:80", &format!("type = \"MISC_CHECK\"\nmisc_path = \"test -e {}\"", flag.display())),
        svc(53, "udp", "10.20.0.12:53", "type = \"DNS_CHECK\"\ndns_name = \"www.lab\"\ndns_type = \"A\""),
        svc(82, "tcp", "10.20.0.12:9999", "type = \"HTTP_GET\"\nurl = [{ path = \"/\" }]"),
        svc(83, "tcp", "10.20.0.11:80", &format!("type = \"MISC_CHECK\"\nmisc_timeout = 1\nmisc_path = \"{marker}0\"")),
    ]
    .join("\n");
    let d = director(&lab, "lchd", &services);
    let row = |t: &str, svc: &str| -> String {
        t.lines()
            .find(|l| {
                l.starts_with(&format!("TCP  {VIP}:{svc} "))
                    || l.starts_with(&format!("UDP  {VIP}:{svc} "))
            })
            .unwrap_or_else(|| panic!("no row of {svc}:\n{t}"))
            .to_string()
    };
    let t = wait_checks(&d, "good checks up, bad ones down", 20, |t| {
        ["80", "443", "81", "53"].iter().all(|s| {
            t.lines().any(|l| {
                l.contains(&format!("{VIP}:{s} "))
                    && l.contains(" UP ")
                    && !l.contains("not checked")
            })
        }) && t.lines().any(|l| {
            l.contains(&format!("{VIP}:82 ")) && l.contains(" DOWN ") && l.ends_with("/: timed out")
        }) && t.lines().any(|l| {
            l.contains(&format!("{VIP}:83 ")) && l.contains(" DOWN ") && l.ends_with("killed")
        })
    });
    eprintln!("{t}");
    assert!(
        row(&t, "443").contains("SSL_GET") && row(&t, "443").contains("/health: status 200"),
        "{t}"
    );
    assert!(
        row(&t, "53").contains("DNS_CHECK") && row(&t, "53").contains("answered"),
        "{t}"
    );
    // Accepts and never answers: failed within connect_timeout (1 s).
    let r82 = row(&t, "82");
    assert!(r82.contains("/: timed out"), "{t}");
    let ms: f64 = r82
        .split_whitespace()
        .find_map(|w| w.strip_suffix("ms").and_then(|v| v.parse().ok()))
        .expect("latency");
    assert!((900.0..1500.0).contains(&ms), "{r82}");
    // A hanging script: killed at misc_timeout, with its process group.
    assert!(row(&t, "83").contains("timed out after 1s: killed"), "{t}");
    // Killed attempts leave nothing behind: at most the attempt running now (its shell
    // and its sleep), not one per second.
    std::thread::sleep(Duration::from_secs(3));
    let left = Command::new("pgrep")
        .args(["-f", &format!("{marker}0")])
        .output()
        .expect("pgrep");
    let n = String::from_utf8_lossy(&left.stdout).lines().count();
    assert!(n <= 2, "{n} script processes left");
    // The table: down servers are out.
    let table = d.rvsadm(&["-Ln"]);
    assert!(
        table.contains("TCP  10.10.0.100:82 rr\n") && !table.contains("10.20.0.12:9999"),
        "{table}"
    );
    // The control socket stays responsive while hanging checks run.
    let start = Instant::now();
    d.rvsadm(&["-Ln"]);
    assert!(start.elapsed() < Duration::from_millis(500));

    // A changed page fails the digest; a removed flag fails the script.
    std::fs::write(rs1.www("index.html"), "rs1 changed\n").expect("index");
    std::fs::remove_file(&flag).expect("flag");
    let t = wait_checks(&d, "digest and misc down", 10, |t| {
        row(t, "80").contains(" DOWN ") && row(t, "81").contains(" DOWN ")
    });
    assert!(
        row(&t, "80").contains(&format!("/: digest {:032x}", md5_of(b"rs1 changed\n"))),
        "{t}"
    );
    assert!(row(&t, "81").contains("exit 1"), "{t}");
    // 10.20.0.11:80 is down in every service that checks it (80, 81, 83); :443 is up.
    let table = wait_table(&d, "10.20.0.11:80 out", 5, |t| {
        server_line(t, "10.20.0.11:80").is_none()
    });
    let _ = table;
    assert!(server_line(&d.rvsadm(&["-Ln"]), "10.20.0.11:443").is_some());
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("real server DOWN")
            && l.contains("TCP  10.10.0.100:80 -> 10.20.0.11:80")),
        "{log}"
    );
}

/// MD5 as `genhash` prints it (the test's own small implementation would be a second
/// opinion; `md5sum` is the real tool).
fn md5_of(data: &[u8]) -> u128 {
    use std::io::Write;
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    let out = c.wait_with_output().expect("md5sum");
    let text = String::from_utf8_lossy(&out.stdout);
    u128::from_str_radix(text.split_whitespace().next().expect("digest"), 16).expect("hex")
}

/// The operator's keepalived.conf as the tutorials write it, read by rvsd as it is
/// (`[control] keepalived_conf`): a VRRP instance (left to keepalived), a NAT service with
/// `HTTP_GET`, a DR service with `TCP_CHECK` (its table and checks: this lab's servers
/// route their answers through the director, so no client traffic goes through it; the
/// DR check through the VIP has its own lab below), and a FULLNAT service with a DPVS
/// `local_address_group` and `TCP_CHECK`. The NAT and FULLNAT services carry traffic; a
/// real server whose nginx stops leaves all three and comes back to all three.
const KEEPALIVED_CONF: &str = "\
! Configuration File for keepalived
global_defs {
   router_id LVS_DEVEL
}

vrrp_instance VI_1 {
    state MASTER
    interface rvs0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.10.0.100
    }
}

local_address_group laddr_g1 {
    10.20.0.200
    10.20.0.201
}

virtual_server 10.10.0.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP

    real_server 10.20.0.11 80 {
        weight 1
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 1
            nb_get_retry 1
            delay_before_retry 1
        }
    }
    real_server 10.20.0.12 80 {
        weight 1
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 1
            nb_get_retry 1
            delay_before_retry 1
        }
    }
}

virtual_server 10.10.0.101 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP

    real_server 10.20.0.11 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
    real_server 10.20.0.12 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
}

virtual_server 10.10.0.100 8443 {
    delay_loop 1
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_g1

    real_server 10.20.0.11 443 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
    real_server 10.20.0.12 443 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
}
";

#[test]
fn a_tutorial_keepalived_conf_runs_its_services_and_checks() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topology("lkac");
    let mut rs1 = Nginx::start(&mut lab, "r1", ip(11), "rs1");
    let _rs2 = Nginx::start(&mut lab, "r2", ip(12), "rs2");
    let conf_dir = std::env::temp_dir().join(format!("rvs-lkac-conf-{}", std::process::id()));
    std::fs::create_dir_all(&conf_dir).expect("dir");
    let conf = conf_dir.join("keepalived.conf");
    std::fs::write(&conf, KEEPALIVED_CONF).expect("keepalived.conf");
    let d = director_with(
        &lab,
        "lkac",
        &format!("keepalived_conf = \"{}\"\n", conf.display()),
        "",
    );
    wait_checks(&d, "checks up", 20, all_up);
    let table = d.rvsadm(&["-Ln"]);
    assert!(table.contains(&format!("TCP  {VIP}:80 rr")), "{table}");
    assert!(table.contains(&format!("TCP  {VIP}:8443 rr")), "{table}");
    assert!(table.contains("TCP  10.10.0.101:80 wrr"), "{table}");
    let dr = |t: &str, server: &str| {
        // The DR service's lines come after its own service line.
        t.split("TCP  10.10.0.101:80 wrr")
            .nth(1)
            .and_then(|rest| rest.split("TCP  ").next())
            .and_then(|block| server_line(block, server).map(str::to_string))
    };
    for (server, w) in [("10.20.0.11:80", "2"), ("10.20.0.12:80", "1")] {
        let line = dr(&table, server).unwrap_or_else(|| panic!("{server} in DR: {table}"));
        assert!(
            line.contains("Route") && line.split_whitespace().nth(3) == Some(w),
            "{line}"
        );
    }
    for server in ["10.20.0.11:80", "10.20.0.12:80"] {
        assert!(
            server_line(&table, server).is_some_and(|l| l.contains("Masq")),
            "{table}"
        );
    }
    for server in ["10.20.0.11:443", "10.20.0.12:443"] {
        assert!(
            server_line(&table, server).is_some_and(|l| l.contains("FullNat")),
            "{table}"
        );
    }
    let laddrs = d.rvsadm(&["-G"]);
    assert!(
        laddrs.contains("10.20.0.200") && laddrs.contains("10.20.0.201"),
        "{laddrs}"
    );
    let checks = d.rvsadm(&["--list-checks"]);
    assert_eq!(checks.matches("HTTP_GET").count(), 2, "{checks}");
    assert_eq!(checks.matches("TCP_CHECK").count(), 4, "{checks}");
    // Both services carry traffic, to both servers (rr).
    let got = names(&lab, 4);
    assert_eq!(got.iter().filter(|n| *n == "rs1").count(), 2, "{got:?}");
    let https = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                lab.curl("c", &format!("https://{VIP}:8443/"))
                    .unwrap_or_else(|| "(failed)".into())
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let got = https(4);
    assert_eq!(got.iter().filter(|n| *n == "rs1").count(), 2, "{got:?}");
    assert_eq!(got.iter().filter(|n| *n == "rs2").count(), 2, "{got:?}");

    // rs1's nginx stops: HTTP_GET (port 80), TCP_CHECK (DR, port 80) and TCP_CHECK
    // (port 443) take it out of all three.
    rs1.stop();
    wait_table(&d, "rs1 out of all services", 10, |t| {
        server_line(t, "10.20.0.11:80").is_none() && server_line(t, "10.20.0.11:443").is_none()
    });
    assert!(dr(&d.rvsadm(&["-Ln"]), "10.20.0.12:80").is_some());
    assert!(names(&lab, 4).iter().all(|n| n == "rs2"));
    assert!(https(4).iter().all(|n| n == "rs2"));
    // Back in both once it answers again.
    rs1.restart(&mut lab);
    wait_table(&d, "rs1 back in all services", 10, |t| {
        weight(t, "10.20.0.11:443") == Some(1)
            && dr(t, "10.20.0.11:80").is_some_and(|l| l.split_whitespace().nth(3) == Some("2"))
            && t.split("TCP  10.10.0.101:80")
                .next()
                .is_some_and(|nat| weight(nat, "10.20.0.11:80") == Some(1))
    });
    let log = d.log();
    assert!(log.contains("left to keepalived"), "{log}");
    let _ = std::fs::remove_dir_all(&conf_dir);
}

/// Both directors of an active/standby pair run their checks themselves (the standby too,
/// with its own tap address) and agree: a real server whose nginx stops leaves both
/// tables, and comes back to both.
#[test]
fn active_and_standby_directors_check_independently_and_agree() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topology("lkap");
    // The standby: namespace e on the servers' segment, and the sync link d:sa — e:sb.
    lab.add_ns("e");
    lab.veth("e", "e1", "sw", "e1p");
    lab.exec("sw", &["ip", "link", "set", "e1p", "master", "br0"]);
    lab.veth("d", "sa", "e", "sb");
    lab.addr("d", "sa", "10.99.0.1/24");
    lab.addr("e", "sb", "10.99.0.2/24");
    let mut rs1 = Nginx::start(&mut lab, "r1", ip(11), "rs1");
    let _rs2 = Nginx::start(&mut lab, "r2", ip(12), "rs2");
    let services = two_servers("", "");
    let sync = |state: &str, ifname: &str| {
        format!("\n[sync]\nstate = \"{state}\"\nmcast_interface = \"{ifname}\"\nsyncid = 7\n")
    };
    let active = director(
        &lab,
        "lkapa",
        &format!("{services}{}", sync("master", "sa")),
    );
    let standby = Director::start_toml(
        &lab,
        "e",
        "lkapb",
        &format!(
            "[[ports]]\nname = \"dpdk1\"\ndevice = \"net_af_packet_lkapb1,iface=e1\"\naddresses = [\"10.20.0.4/24\"]\n\
             exception_iface = \"rvs1\"\n\n[workers]\ncount = 1\n\n{services}{}",
            sync("backup", "sb")
        ),
    );
    host_tap(&lab, &standby, "e", "e1", "10.20.0.6/24");

    for d in [&active, &standby] {
        wait_checks(d, "checks up", 20, all_up);
    }
    assert!(
        standby
            .rvsadm(&["-L", "--daemon"])
            .contains("backup sync daemon"),
        "the standby runs a backup daemon"
    );
    rs1.stop();
    for d in [&active, &standby] {
        wait_table(d, "rs1 out of the table", 10, |t| {
            server_line(t, "10.20.0.11:80").is_none() && server_line(t, "10.20.0.12:80").is_some()
        });
    }
    // The standby's own probes saw it, from its own address.
    let list = standby.rvsadm(&["--list-checks"]);
    let line = list
        .lines()
        .find(|l| l.contains("10.20.0.11:80"))
        .expect("listed");
    assert!(line.contains(" DOWN "), "{list}");
    rs1.restart(&mut lab);
    for d in [&active, &standby] {
        wait_table(d, "rs1 back", 10, |t| weight(t, "10.20.0.11:80") == Some(1));
    }
    assert_eq!(active.rvsadm(&["-Sn"]), standby.rvsadm(&["-Sn"]));
}

/// The lines of service `service` (`TCP  10.10.0.100:80`) in `ipvsadm -Ln`.
fn service_block<'a>(table: &'a str, service: &str) -> Vec<&'a str> {
    table
        .lines()
        .skip_while(|l| !l.starts_with(service))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("->"))
        .collect()
}

fn has_server(table: &str, service: &str, server: &str) -> bool {
    service_block(table, service)
        .iter()
        .any(|l| l.trim_start().starts_with(&format!("-> {server} ")))
}

/// The `--list-checks` line of `server` under `service`.
fn check_line<'a>(t: &'a str, service: &str, server: &str) -> &'a str {
    t.lines()
        .find(|l| l.starts_with(service) && l.contains(&format!(" {server} ")))
        .unwrap_or("")
}

/// TUN: `connect_ip = <VIP>` checks each real server through the VIP. The host has no
/// IP-in-IP device: the probe goes to the server's probe MAC on the exception tap, where
/// the dataplane encapsulates it in IPIP to the server (as TUN forwarding does); the
/// server decapsulates it (in user space here) and answers from the VIP. A server whose
/// TUN device lost the VIP leaves the service; with the VIP back it returns.
#[test]
fn tun_check_through_the_vip_notices_a_server_without_the_vip() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topology("lctun");
    let mut servers = Vec::new();
    for (ns, last, name) in [("r1", 11, "rs1"), ("r2", 12, "rs2")] {
        rvs_tests::topo::tun_real_server(&mut lab, ns, VIP);
        servers.push(Nginx::start_on(&mut lab, ns, ip(last), &[VIP], name));
    }
    let via_check = format!("{HTTP_CHECK}connect_ip = \"{VIP}\"\n");
    let services = format!(
        "[[services]]\nproto = \"tcp\"\nvip = \"{VIP}:80\"\ndelay_loop = 1\n\
         [[services.real]]\naddress = \"10.20.0.11:80\"\nforward = \"tunnel\"\n{via_check}\n\
         [[services.real]]\naddress = \"10.20.0.12:80\"\nforward = \"tunnel\"\n{via_check}\n"
    );
    lab.exec("d", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
    let d = director(&lab, "lctun", &services);
    let a = format!("TCP  {VIP}:80");
    let t = wait_checks(&d, "checks up", 15, |t| t.lines().count() == 3 && all_up(t));
    for rip in ["10.20.0.11:80", "10.20.0.12:80"] {
        assert!(
            check_line(&t, &a, rip).contains("/health: status 200"),
            "{t}"
        );
    }
    // The probe's route: the VIP via the server's probe gateway, whose permanent
    // neighbour entry is the server's probe MAC (02:72 and its address).
    let neigh = String::from_utf8_lossy(
        &lab.exec("d", &["ip", "neigh", "show", "dev", "rvs1"])
            .stdout,
    )
    .into_owned();
    for mac in ["02:72:0a:14:00:0b", "02:72:0a:14:00:0c"] {
        assert!(
            neigh.lines().any(|l| l.starts_with("169.254.112.")
                && l.contains(mac)
                && l.contains("PERMANENT")),
            "{neigh}"
        );
    }
    let routes: String = ["30000", "30001"]
        .iter()
        .map(|t| {
            String::from_utf8_lossy(&lab.exec("d", &["ip", "route", "show", "table", t]).stdout)
                .into_owned()
        })
        .collect();
    assert_eq!(
        routes
            .lines()
            .filter(|l| l.starts_with(&format!("{VIP} via 169.254.112."))
                && l.contains("dev rvs1 onlink"))
            .count(),
        2,
        "{routes}"
    );
    assert_eq!(d.drops("probe-unknown"), 0);

    // r1's TUN device loses the VIP: r1 leaves the service.
    lab.exec(
        "r1",
        &["ip", "addr", "del", &format!("{VIP}/32"), "dev", "tunv"],
    );
    let took = wait_table(&d, "r1 out", 10, |t| {
        !has_server(t, &a, "10.20.0.11:80") && has_server(t, &a, "10.20.0.12:80")
    });
    assert!(took < Duration::from_secs(8), "{took:?}");
    let t = d.rvsadm(&["--list-checks"]);
    assert!(
        check_line(&t, &a, "10.20.0.11:80").contains(" DOWN "),
        "{t}"
    );
    assert!(check_line(&t, &a, "10.20.0.12:80").contains(" UP "), "{t}");

    // The VIP back: r1 back.
    lab.exec(
        "r1",
        &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "tunv"],
    );
    wait_table(&d, "r1 back", 10, |t| has_server(t, &a, "10.20.0.11:80"));
    assert_eq!(d.drops("probe-unknown"), 0);

    // rvsd's exit removes the probe gateways, rules and routes.
    drop(d);
    let neigh =
        String::from_utf8_lossy(&lab.exec("d", &["ip", "neigh", "show"]).stdout).into_owned();
    assert!(!neigh.contains("02:72:"), "{neigh}");
    let rules = String::from_utf8_lossy(&lab.exec("d", &["ip", "rule"]).stdout).into_owned();
    assert!(
        !rules.contains("0x7276") && !rules.contains("32700:"),
        "{rules}"
    );
    drop(servers);
}

/// DR: `connect_ip = <VIP>` checks each real server through the VIP (the probe routed to
/// that server's MAC, as DR forwards), so a server that lost the VIP leaves the service
/// while a check of its own address would keep it.
#[test]
fn dr_check_through_the_vip_notices_a_server_without_the_vip() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    const VIP_B: &str = "10.10.0.101";
    let mut lab = topology("lcvia");
    let mut servers = Vec::new();
    for (ns, last, name) in [("r1", 11, "rs1"), ("r2", 12, "rs2")] {
        lab.real_server_vip(ns, VIP, "lo");
        servers.push(Nginx::start_on(&mut lab, ns, ip(last), &[VIP], name));
    }
    let via_check = format!("{HTTP_CHECK}connect_ip = \"{VIP}\"\n");
    let services = |second_via: bool| {
        let second = if second_via { &via_check } else { HTTP_CHECK };
        format!(
            "[[services]]\nproto = \"tcp\"\nvip = \"{VIP}:80\"\ndelay_loop = 1\n\
             [[services.real]]\naddress = \"10.20.0.11:80\"\nforward = \"route\"\n{via_check}\n\
             [[services.real]]\naddress = \"10.20.0.12:80\"\nforward = \"route\"\n{second}\n\
             [[services]]\nproto = \"tcp\"\nvip = \"{VIP_B}:80\"\ndelay_loop = 1\n\
             [[services.real]]\naddress = \"10.20.0.11:80\"\nforward = \"route\"\n{HTTP_CHECK}\n\
             [[services.real]]\naddress = \"10.20.0.12:80\"\nforward = \"route\"\n{HTTP_CHECK}\n"
        )
    };
    // Strict reverse-path filtering on the director's host, as on many distributions.
    lab.exec("d", &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
    let d = director(&lab, "lcvia", &services(true));
    let a = format!("TCP  {VIP}:80");
    let b = format!("TCP  {VIP_B}:80");
    let t = wait_checks(&d, "checks up", 20, |t| t.lines().count() == 5 && all_up(t));
    assert!(
        check_line(&t, &a, "10.20.0.11:80").contains("/health: status 200"),
        "{t}"
    );
    // The probe's route: the VIP via the server, in a table of its own chosen by a mark.
    let rules = String::from_utf8_lossy(&lab.exec("d", &["ip", "rule"]).stdout).into_owned();
    assert!(
        rules.contains("fwmark 0x72760000 lookup 30000")
            && rules.contains("fwmark 0x72760001 lookup 30001"),
        "{rules}"
    );
    let table = |t: &str| {
        String::from_utf8_lossy(&lab.exec("d", &["ip", "route", "show", "table", t]).stdout)
            .into_owned()
    };
    let routes = [table("30000"), table("30001")];
    let table_of = |rip: &str| {
        let r = format!("{VIP} via {rip} dev rvs1 onlink");
        let n = routes.iter().position(|t| t.contains(&r));
        n.map(|n| format!("{}", 30000 + n))
            .unwrap_or_else(|| panic!("no route {r}: {routes:?}"))
    };
    let (t1, t2) = (table_of("10.20.0.11"), table_of("10.20.0.12"));
    assert_ne!(t1, t2);
    // The answer from the VIP passes reverse-path filtering: the VIP from the tap's
    // address is looked up through a server.
    assert!(
        rules.contains(&format!("32700:\tfrom 10.20.0.2 to {VIP} lookup")),
        "{rules}"
    );

    // r1 loses the VIP (it still answers on its own address): out of the VIP-checked
    // service only.
    lab.exec(
        "r1",
        &["ip", "addr", "del", &format!("{VIP}/32"), "dev", "lo"],
    );
    let took = wait_table(&d, "r1 out of the VIP-checked service", 10, |t| {
        !has_server(t, &a, "10.20.0.11:80") && has_server(t, &a, "10.20.0.12:80")
    });
    let table = d.rvsadm(&["-Ln"]);
    assert!(
        has_server(&table, &b, "10.20.0.11:80") && has_server(&table, &b, "10.20.0.12:80"),
        "a check of the server's own address keeps it:\n{table}"
    );
    let t = d.rvsadm(&["--list-checks"]);
    assert!(
        check_line(&t, &a, "10.20.0.11:80").contains(" DOWN "),
        "{t}"
    );
    assert!(check_line(&t, &b, "10.20.0.11:80").contains(" UP "), "{t}");
    assert!(took < Duration::from_secs(8), "{took:?}");

    // The VIP back: r1 back.
    lab.exec(
        "r1",
        &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
    );
    wait_table(&d, "r1 back", 10, |t| has_server(t, &a, "10.20.0.11:80"));

    // A reload that checks r2 on its own address removes r2's rule and route; rvsd's exit
    // removes the rest.
    let path = d.dir().join("rvsd.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace(&services(true), &services(false))).expect("config");
    let r = d.rvsadm(&["--reload"]);
    assert!(r.starts_with("reload"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rules = String::from_utf8_lossy(&lab.exec("d", &["ip", "rule"]).stdout).into_owned();
        if !rules.contains(&format!("lookup {t2}")) {
            assert!(
                rules.contains(&format!(
                    "fwmark {:#x} lookup {t1}",
                    0x7276_0000 + t1.parse::<u32>().unwrap() - 30000
                )) && rules.contains(&format!("from 10.20.0.2 to {VIP} lookup {t1}")),
                "{rules}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "rule {t2} stays: {rules}");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_checks(&d, "checks up after the reload", 10, all_up);
    drop(d);
    let rules = String::from_utf8_lossy(&lab.exec("d", &["ip", "rule"]).stdout).into_owned();
    assert!(
        !rules.contains("0x7276") && !rules.contains("32700:"),
        "{rules}"
    );
    drop(servers);
}
