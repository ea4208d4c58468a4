//! Helpers for the rvs end-to-end tests under `tests/tests/`: a lab of network namespaces
//! with real kernel TCP stacks, and the rvs binaries.
//!
//! A [`Lab`] creates namespaces, veth pairs and bridges under a unique prefix, and removes
//! them when dropped, also when the test fails (a panic unwinds through the drop). An
//! interrupted run leaves them behind; the next [`Lab::new`] with the same prefix removes
//! them first. Every command is bounded in time.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command, returns its output; panics with the command and its stderr on failure.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    if !out.status.success() {
        panic!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs a command and ignores its result (clean-up).
pub fn run_quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether this process may build labs (root, `ip netns` works).
pub fn can_build_labs() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    root && Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The path of a workspace binary (`rvsd`, `rvsadm`, …), building it if needed.
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps, binaries in target/<profile>.
    let exe = std::env::current_exe().expect("current_exe");
    let parent = exe.parent().expect("executable directory");
    let dir = if parent.ends_with("deps") {
        parent.parent().expect("target/<profile>").to_path_buf()
    } else {
        parent.to_path_buf()
    };
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let release = dir.ends_with("release");
        let mut args = vec!["build", "-q", "--bin", name];
        if release {
            args.push("--release");
        }
        run(&cargo, &args);
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The SHA-256 of a file, as `sha256sum` prints it ("" when it cannot be read).
pub fn sha256(path: &Path) -> String {
    let out = Command::new("timeout")
        .args(["10", "sha256sum"])
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A web root for the labs' downloads, made afresh: `blob.bin`, `len` bytes of a fixed
/// pattern. Returns the directory (under the temporary directory, named by `tag` and the
/// process) and the blob's SHA-256.
pub fn blob_dir(tag: &str, len: u32) -> (PathBuf, String) {
    let www = std::env::temp_dir().join(format!("{tag}-www-{}", std::process::id()));
    std::fs::create_dir_all(&www).expect("www");
    let blob: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(www.join("blob.bin"), &blob).expect("blob");
    let sha = sha256(&www.join("blob.bin"));
    (www, sha)
}

/// A lab of network namespaces. Dropping it removes them all.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// A new, empty lab whose namespaces are named `<prefix><xx>-<name>`, where `xx` is
    /// derived from this process's id, so two test runs on one machine never share
    /// namespaces or interfaces. Leftovers of interrupted runs (labs of the same prefix
    /// whose process is gone) are removed first.
    pub fn new(prefix: &str) -> Lab {
        assert!(
            prefix.len() <= 8,
            "keep lab prefixes short (interface names are ≤ 15 bytes)"
        );
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let pid = std::process::id() as usize;
        let unique = format!(
            "{prefix}{}{}",
            DIGITS[pid % 36] as char,
            DIGITS[(pid / 36) % 36] as char
        );
        let lab = Lab {
            prefix: unique,
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        lab.remove_leftovers(prefix);
        let _ = std::fs::write(marker(&lab.prefix), pid.to_string());
        lab
    }

    /// Removes namespaces of labs with this base prefix whose process no longer runs.
    fn remove_leftovers(&self, base: &str) {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some((lab_prefix, _)) = name.split_once('-') else {
                continue;
            };
            if !lab_prefix.starts_with(base) || lab_prefix.len() != base.len() + 2 {
                continue;
            }
            let owner_alive = std::fs::read_to_string(marker(lab_prefix))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if lab_prefix == self.prefix || !owner_alive {
                kill_netns_pids(name);
                run_quiet("ip", &["netns", "del", name]);
            }
        }
    }

    /// The full name of namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Creates namespace `name` with its loopback up.
    pub fn add_ns(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        run("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        self.exec(name, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside namespace `name`; panics on failure.
    pub fn exec(&self, name: &str, args: &[&str]) -> Output {
        let ns = self.ns(name);
        let mut all = vec!["netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs a command inside namespace `name` and returns its output whatever its status.
    pub fn try_exec(&self, name: &str, args: &[&str]) -> Output {
        let ns = self.ns(name);
        Command::new("ip")
            .args(["netns", "exec", ns.as_str()])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// Connects `ns_a:if_a` and `ns_b:if_b` with a veth pair, both ends up, with
    /// checksum/segmentation offloads off (DPDK's af_packet sees what the kernel sends,
    /// so the kernel must send finished frames with real checksums and no super-packets).
    pub fn veth(&self, ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) {
        let tmp_a = format!("{}{}", self.prefix, if_a);
        let tmp_b = format!("{}{}", self.prefix, if_b);
        // Leftovers of an interrupted run (created, never moved into a namespace).
        run_quiet("ip", &["link", "del", &tmp_a]);
        run_quiet("ip", &["link", "del", &tmp_b]);
        run(
            "ip",
            &[
                "link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b,
            ],
        );
        run("ip", &["link", "set", &tmp_a, "netns", &self.ns(ns_a)]);
        run("ip", &["link", "set", &tmp_b, "netns", &self.ns(ns_b)]);
        for (ns, tmp, name) in [(ns_a, &tmp_a, if_a), (ns_b, &tmp_b, if_b)] {
            self.exec(ns, &["ip", "link", "set", tmp, "name", name]);
            self.exec(ns, &["ip", "link", "set", name, "up"]);
            let _ = self.try_exec(
                ns,
                &[
                    "ethtool", "-K", name, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                    "gro", "off",
                ],
            );
        }
    }

    /// Creates bridge `br` in namespace `ns` and enslaves `ports` (interfaces in `ns`).
    pub fn bridge(&self, ns: &str, br: &str, ports: &[&str]) {
        self.exec(ns, &["ip", "link", "add", br, "type", "bridge"]);
        self.exec(ns, &["ip", "link", "set", br, "up"]);
        for p in ports {
            self.exec(ns, &["ip", "link", "set", p, "master", br]);
        }
    }

    /// Adds `addr` (with prefix, e.g. `10.0.0.2/24`) to `dev` in `ns`.
    pub fn addr(&self, ns: &str, dev: &str, addr: &str) {
        self.exec(ns, &["ip", "addr", "add", addr, "dev", dev]);
    }

    /// Adds the IPv6 `addr` (with prefix, e.g. `2001:db8:1::2/64`) to `dev` in `ns`,
    /// `nodad`: usable at once, without waiting for duplicate address detection.
    pub fn addr6(&self, ns: &str, dev: &str, addr: &str) {
        self.exec(ns, &["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"]);
    }

    /// Keeps the kernel of `ns` off interface `dev`, which a DPDK `net_af_packet` port
    /// uses: the kernel still sees every frame the veth receives, and with a host address
    /// on the exception tap (same MAC as the port) it would answer those itself too
    /// (duplicate replies). Strict reverse-path filtering (the route back is the tap) and
    /// `arp_ignore=8` make it ignore IPv4 and ARP on `dev`. A NIC bound to DPDK needs none.
    pub fn kernel_off(&self, ns: &str, dev: &str) {
        for (k, v) in [("rp_filter", "1"), ("arp_ignore", "8")] {
            self.exec(
                ns,
                &["sysctl", "-qw", &format!("net.ipv4.conf.{dev}.{k}={v}")],
            );
        }
    }

    /// Turns IPv6 off in the kernel of `ns` on interface `dev`, a DPDK port's
    /// (`disable_ipv6=1`): no link-local address, no neighbour discovery of its own, so
    /// rvs alone answers neighbour solicitations for its IPv6 addresses. The IPv6 side of
    /// [`Lab::kernel_off`]; a lab on `net_af_packet` ports calls both.
    pub fn kernel_off6(&self, ns: &str, dev: &str) {
        self.exec(
            ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
            ],
        );
    }

    /// Sets the default route of `ns`.
    pub fn default_route(&self, ns: &str, via: Ipv4Addr) {
        self.exec(
            ns,
            &["ip", "route", "add", "default", "via", &via.to_string()],
        );
    }

    /// Adds the IPv6 route to `prefix` (`default`, or e.g. `2001:db8:4::/64`) via `via`
    /// in `ns`.
    pub fn route6(&self, ns: &str, prefix: &str, via: &str) {
        self.exec(ns, &["ip", "-6", "route", "add", prefix, "via", via]);
    }

    /// Starts a long-running program in `ns`; it is killed when the lab is dropped.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) -> u32 {
        let full = self.ns(ns);
        let child = Command::new("ip")
            .args(["netns", "exec", full.as_str()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?} in {full}: {e}"));
        let pid = child.id();
        self.children.push((full, child));
        pid
    }

    /// Starts an HTTP server in `ns` on `port` that answers every GET with `body`
    /// (python3's http.server over a directory holding `index.html`).
    pub fn http_server(&mut self, ns: &str, bind: Ipv4Addr, port: u16, body: &str) {
        let dir = std::env::temp_dir().join(format!("{}-{ns}-www-{port}", self.prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("www dir");
        std::fs::write(dir.join("index.html"), body).expect("index.html");
        let d = dir.to_string_lossy().into_owned();
        let p = port.to_string();
        let b = bind.to_string();
        self.spawn(
            ns,
            &[
                "python3",
                "-m",
                "http.server",
                &p,
                "--bind",
                &b,
                "--directory",
                &d,
            ],
        );
        self.wait_tcp(ns, bind, port);
    }

    /// Makes `ns` a DR/TUN real server for `vip`: the VIP on `lo` (or the given device)
    /// without answering ARP for it (`arp_ignore=1`, `arp_announce=2`), reverse-path
    /// filtering off.
    pub fn real_server_vip(&self, ns: &str, vip: &str, dev: &str) {
        for (k, v) in [
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            self.exec(ns, &["sysctl", "-qw", &format!("{k}={v}")]);
        }
        self.exec(ns, &["ip", "addr", "add", &format!("{vip}/32"), "dev", dev]);
    }

    /// Starts an HTTP server in `ns` on `bind:port` that answers every GET with
    /// `<name> client=<peer address>:<peer port>` — the real server's name and the source
    /// address it saw (the client under NAT, a LIP under FULLNAT).
    pub fn name_server(&mut self, ns: &str, bind: Ipv4Addr, port: u16, name: &str) {
        let script = format!(
            r#"
import http.server, socketserver, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(4)
        body = ("{name} client=%s:%d\n" % self.client_address).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("{bind}", {port}), H).serve_forever()
"#
        );
        self.spawn(ns, &["python3", "-c", &script]);
        self.wait_tcp(ns, bind, port);
    }

    /// Waits (bounded: 30 s, the machine may be busy) until `ns` accepts TCP connections
    /// on `addr:port`.
    pub fn wait_tcp(&self, ns: &str, addr: Ipv4Addr, port: u16) {
        self.wait_listening(ns, SocketAddr::from((addr, port)));
    }

    /// [`Lab::wait_tcp`] over IPv6: waits (bounded: 30 s) until `ns` accepts TCP
    /// connections on `[addr]:port` (`::1` for a server bound to `::`).
    pub fn wait_tcp6(&self, ns: &str, addr: Ipv6Addr, port: u16) {
        self.wait_listening(ns, SocketAddr::from((addr, port)));
    }

    /// Polls `nc -z` in `ns` until `at` accepts a TCP connection (bounded: 30 s).
    fn wait_listening(&self, ns: &str, at: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let a = at.ip().to_string();
        let p = at.port().to_string();
        while Instant::now() < deadline {
            if self
                .try_exec(ns, &["nc", "-z", "-w", "1", &a, &p])
                .status
                .success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nothing listens on {at} in {ns}");
    }

    /// Serves `dir` over HTTP on port `port` of `bind` (`0.0.0.0`: every address) in
    /// `ns` (Python's `http.server`), and waits until `addr:port` listens.
    pub fn serve_dir(&mut self, ns: &str, bind: &str, addr: Ipv4Addr, port: u16, dir: &Path) {
        let port_s = port.to_string();
        let dir = dir.to_string_lossy().into_owned();
        self.spawn(
            ns,
            &[
                "python3",
                "-m",
                "http.server",
                &port_s,
                "--bind",
                bind,
                "--directory",
                &dir,
            ],
        );
        self.wait_tcp(ns, addr, port);
    }

    /// `curl` from `ns` (bounded: 5 s); returns the body, or `None` on failure.
    pub fn curl(&self, ns: &str, url: &str) -> Option<String> {
        let out = self.try_exec(ns, &["curl", "-s", "-k", "--max-time", "5", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The file recording which process owns a lab prefix.
fn marker(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rvs-lab-{prefix}.pid"))
}

fn kill_netns_pids(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            run_quiet("kill", &["-9", pid]);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            kill_netns_pids(ns);
            run_quiet("ip", &["netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&self.prefix));
        let _ = std::fs::remove_file(marker(&self.prefix));
    }
}

/// A running `rvsd` on DPDK `net_af_packet` ports inside a lab namespace. Dropping it
/// stops rvsd (SIGTERM, then SIGKILL after 20 s) and removes its files.
#[derive(Debug)]
pub struct Director {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

/// One director port: rvs name, the namespace interface its af_packet vdev binds, and its
/// addresses (with prefix length).
#[derive(Debug, Clone)]
pub struct DirPort<'a> {
    /// rvs port name (`dpdk0`).
    pub name: &'a str,
    /// Interface in the director namespace.
    pub iface: &'a str,
    /// Director addresses on the port, e.g. `10.10.0.1/24`.
    pub addrs: &'a [&'a str],
}

/// The DPDK poll-mode driver of a lab director's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pmd {
    /// `net_af_packet` (every lab's unless it asks for another): the kernel joins its
    /// sockets with `PACKET_FANOUT_FLAG_DEFRAG`, so IP fragments reach rvs reassembled
    /// (or not at all), never as fragments.
    #[default]
    AfPacket,
    /// `net_pcap` on the interface (`iface=`, the interface's own MAC: `phy_mac=1`):
    /// libpcap's AF_PACKET socket joins no fanout group, so fragments reach rvs as they
    /// travel. One queue per port: directors of one worker only.
    Pcap,
}

impl Pmd {
    /// The `device` of port `i` of director `tag` on interface `iface`.
    pub fn device(self, tag: &str, i: usize, iface: &str) -> String {
        match self {
            Pmd::AfPacket => format!("net_af_packet_{tag}{i},iface={iface}"),
            Pmd::Pcap => format!("net_pcap_{tag}{i},iface={iface},phy_mac=1"),
        }
    }
}

impl Director {
    /// Starts rvsd in namespace `ns` of `lab` with these ports, `workers` workers and extra
    /// TOML (routes, services) appended to the generated configuration; waits (bounded)
    /// for its control socket.
    pub fn start(
        lab: &Lab,
        ns: &str,
        tag: &str,
        ports: &[DirPort<'_>],
        workers: usize,
        extra: &str,
    ) -> Director {
        Director::start_pmd(lab, ns, tag, ports, workers, extra, Pmd::AfPacket)
    }

    /// [`Director::start`] with ports of driver `pmd`.
    pub fn start_pmd(
        lab: &Lab,
        ns: &str,
        tag: &str,
        ports: &[DirPort<'_>],
        workers: usize,
        extra: &str,
        pmd: Pmd,
    ) -> Director {
        let mut cfg = String::new();
        for (i, p) in ports.iter().enumerate() {
            let addrs: Vec<String> = p.addrs.iter().map(|a| format!("\"{a}\"")).collect();
            cfg.push_str(&format!(
                "[[ports]]\nname = \"{}\"\ndevice = \"{}\"\naddresses = [{}]\n\n",
                p.name,
                pmd.device(tag, i, p.iface),
                addrs.join(", ")
            ));
        }
        cfg.push_str(&format!("[workers]\ncount = {workers}\n\n{extra}\n"));
        Director::start_toml(lab, ns, tag, &cfg)
    }

    /// Starts rvsd in namespace `ns` of `lab` with the configuration `body` (ports,
    /// workers, services, sync, …; the `[eal]` file prefix and the `[control]` socket are
    /// added here); waits (bounded) for its control socket.
    pub fn start_toml(lab: &Lab, ns: &str, tag: &str, body: &str) -> Director {
        let dir = std::env::temp_dir().join(format!("rvs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("director dir");
        let socket = dir.join("rvsd.sock");
        let cfg = format!(
            "[eal]\nfile_prefix = \"rvs-{tag}\"\n\n[control]\nsocket = \"{}\"\n\n{body}\n",
            socket.display()
        );
        let cfg_path = dir.join("rvsd.toml");
        std::fs::write(&cfg_path, cfg).expect("config");
        let log = std::fs::File::create(dir.join("rvsd.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(ns)])
            .arg(bin("rvsd"))
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("rvsd");
        let mut d = Director { child, socket, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.socket.exists() {
            let exited = d.child.try_wait().ok().flatten();
            assert!(exited.is_none(), "rvsd exited ({exited:?}): {}", d.log());
            assert!(Instant::now() < deadline, "rvsd did not start: {}", d.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// Kills rvsd hard (SIGKILL), as a crash would: no clean-up, no goodbye.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// rvsd's process id (for signals: `kill -HUP` reloads its configuration).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding rvsd's configuration, socket and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// rvsd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rvsd.log")).unwrap_or_default()
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs rvsadm with `args` against this rvsd; returns (exit code, stdout, stderr).
    pub fn rvsadm_status(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("rvsadm"))
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .output()
            .expect("rvsadm");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs rvsadm with `args` and `input` on its stdin (`-R`), bounded by 10 s; returns
    /// (exit code, stdout, stderr).
    pub fn rvsadm_input(&self, args: &[&str], input: &str) -> (i32, String, String) {
        use std::io::Write as _;
        let mut child = Command::new("timeout")
            .arg("10")
            .arg(bin("rvsadm"))
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rvsadm");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().expect("rvsadm");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs rvsadm with `args`; panics unless it succeeds; returns its stdout.
    pub fn rvsadm(&self, args: &[&str]) -> String {
        let (code, out, err) = self.rvsadm_status(args);
        assert_eq!(
            code,
            0,
            "rvsadm {args:?}: {out}{err}rvsd's log:\n{}",
            self.log()
        );
        out
    }

    /// A counter of `rvsadm --dataplane` summed over the workers (e.g. `out`, `handoff_in`).
    pub fn counter(&self, key: &str) -> u64 {
        let text = self.rvsadm(&["--dataplane"]);
        text.lines()
            .filter(|l| l.starts_with("worker "))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum()
    }

    /// Drops of one reason (`rvsadm --dataplane`), summed over the workers.
    pub fn drops(&self, reason: &str) -> u64 {
        self.rvsadm(&["--dataplane"])
            .lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("drop {reason} ")))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        // SIGTERM first: rvsd stops its ports and removes its socket, its probe rules
        // and routes (quietly: it may have been killed already). Labs check what its
        // exit cleans up, so it gets time to finish: on a loaded runner (labs in
        // parallel on two cores) stopping took more than 5 s once, and the SIGKILL then
        // left the rules behind. Bounded all the same; an rvsd that exits returns at once.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The lab topologies of the seeds' scenarios (see `tests/tests/lab_modes.rs`).
pub mod topo {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::{DirPort, Director, Lab, Pmd};

    /// The VIP of the two-port lab (NAT, FULLNAT).
    pub const VIP2: &str = "10.10.0.100";
    /// The VIP of the one-segment lab (DR, TUN).
    pub const VIP1: &str = "10.30.0.100";

    /// The active/standby lab with one real server: a client `c` (10.10.0.2) and both
    /// directors' client-side ports (`da`/`db` `d0`) on bridge `brc`, their server-side
    /// ports (`d1`) and the real server `r1` (10.20.0.11) on bridge `brs`, both bridges in
    /// namespace `sw`, and a sync link `da` `s0` 10.99.0.1 — `db` `s1` 10.99.0.2.
    pub fn active_standby_one_server(prefix: &str) -> Lab {
        let mut lab = Lab::new(prefix);
        for ns in ["c", "sw", "da", "db", "r1"] {
            lab.add_ns(ns);
        }
        lab.veth("c", "c0", "sw", "c0p");
        lab.veth("da", "d0", "sw", "a0p");
        lab.veth("db", "d0", "sw", "b0p");
        lab.veth("da", "d1", "sw", "a1p");
        lab.veth("db", "d1", "sw", "b1p");
        lab.veth("r1", "r0", "sw", "r1p");
        lab.veth("da", "s0", "db", "s1");
        lab.bridge("sw", "brc", &["c0p", "a0p", "b0p"]);
        lab.bridge("sw", "brs", &["a1p", "b1p", "r1p"]);
        lab.addr("c", "c0", "10.10.0.2/24");
        lab.addr("r1", "r0", "10.20.0.11/24");
        lab.addr("da", "s0", "10.99.0.1/24");
        lab.addr("db", "s1", "10.99.0.2/24");
        lab
    }

    /// The two-port lab (NAT, FULLNAT). Servers: rs1 on `port1`, rs2 on `port2`.
    pub fn two_port(prefix: &str, nat_gateway: bool, port1: u16, port2: u16) -> Lab {
        let mut lab = Lab::new(prefix);
        for ns in ["c", "d", "sw", "r1", "r2"] {
            lab.add_ns(ns);
        }
        lab.veth("c", "c0", "d", "d0");
        lab.veth("d", "d1", "sw", "d1p");
        lab.veth("r1", "r0", "sw", "r1p");
        lab.veth("r2", "r0", "sw", "r2p");
        lab.bridge("sw", "br0", &["d1p", "r1p", "r2p"]);
        lab.addr("c", "c0", "10.10.0.2/24");
        lab.default_route("c", Ipv4Addr::new(10, 10, 0, 1));
        lab.addr("r1", "r0", "10.20.0.11/24");
        lab.addr("r2", "r0", "10.20.0.12/24");
        if nat_gateway {
            lab.default_route("r1", Ipv4Addr::new(10, 20, 0, 1));
            lab.default_route("r2", Ipv4Addr::new(10, 20, 0, 1));
        }
        lab.name_server("r1", Ipv4Addr::new(10, 20, 0, 11), port1, "rs1");
        lab.name_server("r2", Ipv4Addr::new(10, 20, 0, 12), port2, "rs2");
        lab
    }

    /// rvsd in the two-port lab's director namespace (dpdk0 client side, dpdk1 servers).
    pub fn two_port_director(lab: &Lab, tag: &str, workers: usize) -> Director {
        two_port_director_with(lab, tag, workers, "")
    }

    /// [`two_port_director`] with `extra` TOML appended to its configuration.
    pub fn two_port_director_with(lab: &Lab, tag: &str, workers: usize, extra: &str) -> Director {
        two_port_director_pmd(lab, tag, workers, extra, Pmd::AfPacket)
    }

    /// [`two_port_director_with`] on ports of driver `pmd`.
    pub fn two_port_director_pmd(
        lab: &Lab,
        tag: &str,
        workers: usize,
        extra: &str,
        pmd: Pmd,
    ) -> Director {
        Director::start_pmd(
            lab,
            "d",
            tag,
            &[
                DirPort {
                    name: "dpdk0",
                    iface: "d0",
                    addrs: &["10.10.0.1/24"],
                },
                DirPort {
                    name: "dpdk1",
                    iface: "d1",
                    addrs: &["10.20.0.1/24"],
                },
            ],
            workers,
            extra,
            pmd,
        )
    }

    /// The one-segment lab (DR, TUN), optionally with the client behind a router.
    pub fn one_segment(prefix: &str, routed: bool) -> Lab {
        let mut lab = Lab::new(prefix);
        let mut nss = vec!["c", "d", "sw", "r1", "r2"];
        if routed {
            nss.push("rt");
        }
        for ns in &nss {
            lab.add_ns(ns);
        }
        lab.veth("d", "d0", "sw", "d0p");
        lab.veth("r1", "r0", "sw", "r1p");
        lab.veth("r2", "r0", "sw", "r2p");
        if routed {
            lab.veth("c", "c0", "rt", "rc0");
            lab.veth("rt", "rs0", "sw", "rtp");
            lab.bridge("sw", "br0", &["d0p", "r1p", "r2p", "rtp"]);
            lab.addr("c", "c0", "10.10.0.2/24");
            lab.default_route("c", Ipv4Addr::new(10, 10, 0, 254));
            lab.addr("rt", "rc0", "10.10.0.254/24");
            lab.addr("rt", "rs0", "10.30.0.254/24");
            lab.exec("rt", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        } else {
            lab.veth("c", "c0", "sw", "c0p");
            lab.bridge("sw", "br0", &["d0p", "r1p", "r2p", "c0p"]);
            lab.addr("c", "c0", "10.30.0.2/24");
        }
        lab.addr("r1", "r0", "10.30.0.11/24");
        lab.addr("r2", "r0", "10.30.0.12/24");
        if routed {
            lab.default_route("r1", Ipv4Addr::new(10, 30, 0, 254));
            lab.default_route("r2", Ipv4Addr::new(10, 30, 0, 254));
        }
        lab
    }

    /// rvsd in the one-segment lab's director namespace (dpdk0; a route to the client
    /// network via the router when `routed`).
    pub fn one_segment_director(lab: &Lab, tag: &str, routed: bool) -> Director {
        one_segment_director_pmd(lab, tag, routed, Pmd::AfPacket)
    }

    /// [`one_segment_director`] on a port of driver `pmd`.
    pub fn one_segment_director_pmd(lab: &Lab, tag: &str, routed: bool, pmd: Pmd) -> Director {
        let extra = if routed {
            "[[routes]]\nprefix = \"10.10.0.0/24\"\nvia = \"10.30.0.254\"\nport = \"dpdk0\"\n"
        } else {
            ""
        };
        Director::start_pmd(
            lab,
            "d",
            tag,
            &[DirPort {
                name: "dpdk0",
                iface: "d0",
                addrs: &["10.30.0.1/24"],
            }],
            1,
            extra,
            pmd,
        )
    }

    /// A user-space IPIP decapsulator for a TUN real server (see the module docs).
    pub const IPIP_DECAP: &str = r#"
import fcntl, os, socket, struct, sys
vip = sys.argv[1]
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", b"tunv", 0x0001 | 0x1000))  # TUNSETIFF: IFF_TUN|IFF_NO_PI
os.system("ip link set tunv up && ip addr add %s/32 dev tunv && sysctl -qw net.ipv4.conf.tunv.rp_filter=0" % vip)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
while True:
    pkt = s.recv(65535)
    ihl = (pkt[0] & 0x0f) * 4
    os.write(tun, pkt[ihl:])
"#;

    /// Makes `ns` a TUN real server for `vip` (user-space IPIP decapsulation into a TUN
    /// device holding the VIP; see [`IPIP_DECAP`]) and waits (bounded) until it is up.
    pub fn tun_real_server(lab: &mut Lab, ns: &str, vip: &str) {
        for (k, v) in [
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
        ] {
            lab.exec(ns, &["sysctl", "-qw", &format!("{k}={v}")]);
        }
        lab.spawn(ns, &["python3", "-c", IPIP_DECAP, vip]);
        for _ in 0..300 {
            let out = lab.try_exec(ns, &["ip", "addr", "show", "dev", "tunv"]);
            if String::from_utf8_lossy(&out.stdout).contains(vip) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the IPIP decapsulator did not come up in {ns}");
    }

    /// A user-space ip6ip6 decapsulator for an IPv6 TUN real server (the labs' kernels
    /// have no `ip6_tunnel` module): a raw IPv6 socket of next header 41 hands it the
    /// inner packet (the kernel strips the outer header, and reassembles an outer packet
    /// that arrived in fragments), which it writes into a TUN device `tunv` holding the
    /// VIP (`/128`, `nodad`). Argument: the VIP.
    pub const IP6IP6_DECAP: &str = r#"
import fcntl, os, socket, struct, sys
vip = sys.argv[1]
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", b"tunv", 0x0001 | 0x1000))
os.system("ip link set tunv up && ip -6 addr add %s/128 dev tunv nodad" % vip)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
while True:
    os.write(tun, s.recv(65535))
"#;

    /// Makes `ns` an IPv6 TUN real server for `vip` (user-space ip6ip6 decapsulation into
    /// a TUN device holding the VIP; see [`IP6IP6_DECAP`]) and waits until the VIP is on
    /// the device (up to 300 looks, 100 ms apart).
    pub fn tun6_real_server(lab: &mut Lab, ns: &str, vip: &str) {
        lab.spawn(ns, &["python3", "-c", IP6IP6_DECAP, vip]);
        for _ in 0..300 {
            let out = lab.try_exec(ns, &["ip", "-6", "addr", "show", "dev", "tunv"]);
            if String::from_utf8_lossy(&out.stdout).contains(vip) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Shared pieces of the active/standby tests (`lab_failover`, `lab_keepalived`): a
/// streaming server and client whose per-connection progress can be read while a director
/// is killed, and the lab services.
pub mod failover {
    use std::time::{Duration, Instant};

    use super::topo::VIP2;
    use super::{Director, Lab};

    /// A real server streaming to every client: 1000 bytes every 50 ms, reading what the
    /// client sends. Arguments: the address to listen on (IPv4, or IPv6 when it has a
    /// colon: an `AF_INET6` socket), and the port (default 9000).
    pub const STREAM_SERVER: &str = r#"
import socket, threading, time, sys
def serve(c):
    c.setblocking(False)
    try:
        while True:
            try:
                if c.recv(65536) == b"": return
            except BlockingIOError:
                pass
            c.setblocking(True); c.sendall(b"x" * 1000); c.setblocking(False)
            time.sleep(0.05)
    except OSError:
        return
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 9000)); s.listen(128)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

    /// The client: `n` long-lived connections to each port of the VIP (IPv4 or IPv6: the
    /// family is the address's), a line every 100 ms from each,
    /// bytes received per connection written to a status file every 200 ms (with every
    /// error: a reset or a close counts as one).
    pub const STREAM_CLIENT: &str = r#"
import socket, select, time, json, sys
vip, ports, n, path, secs = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
conns = []
for p in ports:
    for i in range(n):
        s = socket.create_connection((vip, int(p)), timeout=5)
        s.setblocking(False)
        conns.append({"port": int(p), "sock": s, "bytes": 0, "err": None, "local": s.getsockname()[1]})
end = time.time() + secs; last = 0; lastw = 0
while time.time() < end:
    live = [c for c in conns if c["err"] is None]
    r, _, _ = select.select([c["sock"] for c in live], [], [], 0.05)
    for c in live:
        if c["sock"] in r:
            try:
                d = c["sock"].recv(65536)
                if not d: c["err"] = "closed"
                c["bytes"] += len(d)
            except BlockingIOError:
                pass
            except OSError as e:
                c["err"] = str(e)
    now = time.time()
    if now - last > 0.1:
        last = now
        for c in live:
            try: c["sock"].send(b"ping\n")
            except BlockingIOError: pass
            except OSError as e: c["err"] = str(e)
    if now - lastw > 0.2:
        lastw = now
        st = [{"port": c["port"], "local": c["local"], "bytes": c["bytes"], "err": c["err"]} for c in conns]
        open(path + ".tmp", "w").write(json.dumps(st)); import os; os.replace(path + ".tmp", path)
"#;

    /// One client connection as the streaming client reports it.
    #[derive(Debug, Clone)]
    pub struct ConnStatus {
        /// Server port.
        pub port: u16,
        /// Client port.
        pub local: u16,
        /// Bytes received so far.
        pub bytes: u64,
        /// The error that ended it, if any.
        pub err: Option<String>,
    }

    /// Parses the client's status file (a JSON list; parsed by hand to keep the test crate's
    /// dependencies as they are).
    pub fn status(path: &std::path::Path) -> Vec<ConnStatus> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.split('{')
            .skip(1)
            .filter_map(|o| {
                let field = |k: &str| -> Option<String> {
                    let at = o.find(&format!("\"{k}\": "))? + k.len() + 4;
                    let rest = &o[at..];
                    let end = rest.find([',', '}']).unwrap_or(rest.len());
                    Some(rest[..end].trim().to_owned())
                };
                let err = field("err")?;
                Some(ConnStatus {
                    port: field("port")?.parse().ok()?,
                    local: field("local")?.parse().ok()?,
                    bytes: field("bytes")?.parse().ok()?,
                    err: (err != "null").then_some(err),
                })
            })
            .collect()
    }

    /// Waits (bounded) until `ok` holds; panics naming `what` after `secs` seconds.
    pub fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `ok` every 200 ms until it holds or `secs` seconds have passed; returns
    /// whether it held. For a condition the caller then asserts with its own message (a
    /// counter the dataplane reaches a moment after the action that caused it).
    pub fn poll_until(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The MAC of `dev` in `ns`.
    pub fn mac(lab: &Lab, ns: &str, dev: &str) -> String {
        String::from_utf8_lossy(
            &lab.exec(ns, &["cat", &format!("/sys/class/net/{dev}/address")])
                .stdout,
        )
        .trim()
        .to_owned()
    }

    /// `ip neigh show ip` in `ns`.
    pub fn neigh(lab: &Lab, ns: &str, ip: &str) -> String {
        String::from_utf8_lossy(&lab.exec(ns, &["ip", "neigh", "show", ip]).stdout).into_owned()
    }

    /// The lab services of the failover tests: NAT on VIP:80 and FULLNAT (LIP 10.20.0.200) on
    /// VIP:81, rr over rs1/rs2 port 9000.
    pub fn configure(d: &Director) {
        let nat = format!("{VIP2}:80");
        let fnat = format!("{VIP2}:81");
        d.rvsadm(&["-A", "-t", &nat, "-s", "rr"]);
        d.rvsadm(&["-a", "-t", &nat, "-r", "10.20.0.11:9000", "-m"]);
        d.rvsadm(&["-a", "-t", &nat, "-r", "10.20.0.12:9000", "-m"]);
        d.rvsadm(&["-A", "-t", &fnat, "-s", "rr"]);
        d.rvsadm(&["-a", "-t", &fnat, "-r", "10.20.0.11:9000", "-b"]);
        d.rvsadm(&["-a", "-t", &fnat, "-r", "10.20.0.12:9000", "-b"]);
        d.rvsadm(&["--add-laddr", "-z", "10.20.0.200", "-t", &fnat]);
    }

    /// A director of the two-director labs: ports d0 (10.10.0.`own`, plus the floating
    /// 10.10.0.1) and d1 (10.20.0.`own`, plus the floating 10.20.0.1), two workers that
    /// pause when idle (up to 200 µs: two directors share the machine's cores), and the
    /// given `[sync]` section.
    pub fn start_director(lab: &Lab, ns: &str, tag: &str, own: u8, sync: &str) -> Director {
        Director::start_toml(
            lab,
            ns,
            tag,
            &format!(
                r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_{tag}0,iface=d0"
addresses = ["10.10.0.{own}/24", "10.10.0.1/24"]

[[ports]]
name = "dpdk1"
device = "net_af_packet_{tag}1,iface=d1"
addresses = ["10.20.0.{own}/24", "10.20.0.1/24"]

[workers]
count = 2
idle_sleep_max_us = 200

{sync}
"#
            ),
        )
    }

    /// The ESTABLISHED sessions of a director (`-Lnc` without the expiry column).
    pub fn established(d: &Director) -> Vec<String> {
        d.rvsadm(&["-Lnc"])
            .lines()
            .filter(|l| l.contains("ESTABLISHED"))
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

/// BIRD in the labs' namespaces (`lab_ecmp`): a daemon per namespace with its own
/// control socket, `birdc` against it, and the kernel's view of the routes it installs.
pub mod bird {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::{run_quiet, Lab};

    /// One BIRD daemon of a lab.
    #[derive(Debug)]
    pub struct Bird {
        /// The namespace it runs in (the lab's short name).
        pub ns: String,
        /// Its process id.
        pub pid: u32,
        /// Its control socket.
        pub ctl: PathBuf,
        /// The directory of its configuration and socket.
        pub dir: PathBuf,
    }

    /// The directory a lab keeps BIRD's files in for namespace `ns` (made, empty).
    pub fn dir(tag: &str, ns: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-{tag}-bird-{ns}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("bird dir");
        d
    }

    impl Bird {
        /// Starts `bird -f` in `ns` with the configuration `conf`, its files in `dir`;
        /// waits (bounded: 10 s) until its control socket answers.
        pub fn start(lab: &mut Lab, ns: &str, dir: &std::path::Path, conf: &str) -> Bird {
            let cfg = dir.join("bird.conf");
            std::fs::write(&cfg, conf).expect("bird.conf");
            let ctl = dir.join("bird.ctl");
            let _ = std::fs::remove_file(&ctl);
            let c = cfg.display().to_string();
            let s = ctl.display().to_string();
            let pid = lab.spawn(ns, &["bird", "-f", "-c", &c, "-s", &s]);
            let b = Bird {
                ns: ns.to_owned(),
                pid,
                ctl,
                dir: dir.to_owned(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !b.birdc(lab, &["show", "status"]).contains("Daemon is up") {
                assert!(Instant::now() < deadline, "BIRD did not start in {ns}");
                std::thread::sleep(Duration::from_millis(100));
            }
            b
        }

        /// `birdc -s <ctl> args` in the namespace (bounded: 5 s); its output.
        pub fn birdc(&self, lab: &Lab, args: &[&str]) -> String {
            let s = self.ctl.display().to_string();
            let mut all = vec!["timeout", "5", "birdc", "-s", &s];
            all.extend_from_slice(args);
            let out = lab.try_exec(&self.ns, &all);
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        /// Kills BIRD hard (SIGKILL): no NOTIFICATION, its peers notice by the hold time.
        pub fn kill_hard(&self) {
            run_quiet("kill", &["-9", &self.pid.to_string()]);
        }
    }

    /// The next hops of the kernel's route to `addr/32` in `ns` (several for ECMP),
    /// sorted; empty when there is none.
    pub fn next_hops(lab: &Lab, ns: &str, addr: &str) -> Vec<Ipv4Addr> {
        let out = lab.try_exec(ns, &["ip", "-4", "route", "show", &format!("{addr}/32")]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v: Vec<Ipv4Addr> = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The ECMP lab (`lab_ecmp`): clients behind a router namespace that runs BIRD and
/// spreads the VIPs' traffic over the directors by ECMP (L4 hash), three directors on
/// one LAN with the real servers, and the directors' sync network.
///
/// ```text
///  cl c0 10.40.0.2 + .100-.129 ── rt rc0 10.40.0.254 [BIRD AS 65000, ECMP]
///  rt rs0 10.70.0.254 ──┐
///  da/db/dc d0 [dpdk0 10.70.0.1/2/3, tap rvs0: host 10.70.0.11/12/13, BIRD AS 65001] ── sw:blan
///  r1 10.70.0.21, r2 10.70.0.22 (VIPs on lo for DR; default via the router) ──┘
///  da/db/dc s0 10.99.0.1/2/3 ── sw:bsync   (kernel: sync)
/// ```
pub mod ecmp {
    use std::net::Ipv4Addr;

    use super::Lab;

    /// The directors' namespaces.
    pub const DIRS: [&str; 3] = ["da", "db", "dc"];
    /// The router's address on the LAN (the directors' BGP neighbour and gateway).
    pub const ROUTER: &str = "10.70.0.254";
    /// The router's address on the clients' network.
    pub const ROUTER_CLIENTS: &str = "10.40.0.254";
    /// The real servers.
    pub const SERVERS: [&str; 2] = ["10.70.0.21", "10.70.0.22"];

    /// Director `i`'s dataplane address (DIP).
    pub fn dip(i: usize) -> String {
        format!("10.70.0.{}", 1 + i)
    }
    /// Director `i`'s host address on its exception tap (BIRD's, the BGP next hop).
    pub fn host(i: usize) -> String {
        format!("10.70.0.{}", 11 + i)
    }
    /// Director `i`'s FULLNAT local address.
    pub fn lip(i: usize) -> String {
        format!("10.70.0.{}", 31 + i)
    }
    /// Director `i`'s sync address.
    pub fn sync(i: usize) -> String {
        format!("10.99.0.{}", 1 + i)
    }
    /// Client address `i` (0..30) on the clients' network.
    pub fn client(i: usize) -> String {
        format!("10.40.0.{}", 100 + i)
    }

    /// The topology above, without daemons: addresses, routes, the router's multipath
    /// L4 hashing (`fib_multipath_hash_policy=1`), the real servers' DR VIPs.
    pub fn lab(prefix: &str, vips_on_servers: &[&str], clients: usize) -> Lab {
        let mut lab = Lab::new(prefix);
        for ns in ["cl", "rt", "sw", "da", "db", "dc", "r1", "r2"] {
            lab.add_ns(ns);
        }
        lab.veth("cl", "c0", "rt", "rc0");
        lab.veth("rt", "rs0", "sw", "rtp");
        let mut lan = vec!["rtp".to_string()];
        let mut syncs = Vec::new();
        for (i, d) in DIRS.iter().enumerate() {
            lab.veth(d, "d0", "sw", &format!("{d}0p"));
            lab.veth(d, "s0", "sw", &format!("{d}sp"));
            lab.addr(d, "s0", &format!("{}/24", sync(i)));
            lab.kernel_off(d, "d0");
            lan.push(format!("{d}0p"));
            syncs.push(format!("{d}sp"));
        }
        for (i, r) in ["r1", "r2"].iter().enumerate() {
            lab.veth(r, "r0", "sw", &format!("{r}p"));
            lab.addr(r, "r0", &format!("{}/24", SERVERS[i]));
            lab.default_route(r, ROUTER.parse().unwrap());
            for v in vips_on_servers {
                lab.real_server_vip(r, v, "lo");
            }
            lan.push(format!("{r}p"));
        }
        let lan: Vec<&str> = lan.iter().map(String::as_str).collect();
        let syncs: Vec<&str> = syncs.iter().map(String::as_str).collect();
        lab.bridge("sw", "blan", &lan);
        lab.bridge("sw", "bsync", &syncs);
        lab.addr("cl", "c0", "10.40.0.2/24");
        for i in 0..clients {
            lab.addr("cl", "c0", &format!("{}/24", client(i)));
        }
        lab.default_route("cl", ROUTER_CLIENTS.parse::<Ipv4Addr>().unwrap());
        lab.addr("rt", "rc0", &format!("{ROUTER_CLIENTS}/24"));
        lab.addr("rt", "rs0", &format!("{ROUTER}/24"));
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.conf.rs0.rp_filter", "0"),
            ("net.ipv4.conf.rc0.rp_filter", "0"),
        ] {
            lab.exec("rt", &["sysctl", "-qw", &format!("{k}={v}")]);
        }
        lab
    }

    /// Counts, on `dev` of `ns` (a director's DPDK port), the TCP flows from the
    /// clients' network whose source port is in `ports` (an nftables `netdev` ingress
    /// set: the frames the router sent to this director, before anything else sees them).
    pub fn watch_flows(lab: &Lab, ns: &str, dev: &str, ports: (u16, u16)) {
        let chain = format!("{{ type filter hook ingress device {dev} priority 0; }}");
        lab.exec(ns, &["nft", "add", "table", "netdev", "rvsflows"]);
        lab.exec(
            ns,
            &["nft", "add", "chain", "netdev", "rvsflows", "in", &chain],
        );
        lab.exec(
            ns,
            &[
                "nft",
                "add",
                "set",
                "netdev",
                "rvsflows",
                "seen",
                "{ type ipv4_addr . inet_service; flags dynamic; }",
            ],
        );
        let range = format!("{}-{}", ports.0, ports.1);
        lab.exec(
            ns,
            &[
                "nft",
                "add",
                "rule",
                "netdev",
                "rvsflows",
                "in",
                "ip",
                "saddr",
                "10.40.0.0/24",
                "tcp",
                "sport",
                &range,
                "add",
                "@seen",
                "{ ip saddr . tcp sport }",
            ],
        );
    }

    /// The flows (client address, port) [`watch_flows`] saw on `ns` since the last
    /// [`forget_flows`].
    pub fn flows_seen(lab: &Lab, ns: &str) -> Vec<(String, u16)> {
        let out = lab.try_exec(ns, &["nft", "list", "set", "netdev", "rvsflows", "seen"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let Some(at) = text.find("elements = {") else {
            return Vec::new();
        };
        let body = &text[at + 12..];
        let body = &body[..body.find('}').unwrap_or(body.len())];
        body.split(',')
            .filter_map(|e| {
                let w: Vec<&str> = e.split_whitespace().collect();
                match w.as_slice() {
                    [ip, ".", port, ..] => Some((ip.to_string(), port.parse().ok()?)),
                    _ => None,
                }
            })
            .collect()
    }

    /// NAT behind several directors, on real server `ns` (LAN interface `dev`, NAT service
    /// port `port`): its replies go back through the director that last forwarded the
    /// connection's packets. nftables marks the conntrack entry of every incoming packet
    /// to `port` with the director its source MAC names (a map from each director's MAC to
    /// mark `1 + i`; every packet, so the mark follows the flow when ECMP moves it), the
    /// replies take the mark of their entry, and policy routing (`fwmark 1 + i` to table
    /// `101 + i`, a default route via director `i`'s DIP) sends them to that director.
    /// `macs[i]` is director `i`'s MAC on the LAN.
    pub fn nat_return_by_mac(lab: &Lab, ns: &str, dev: &str, port: u16, macs: &[String]) {
        let elements: Vec<String> = macs
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{m} : {}", 1 + i))
            .collect();
        let rules = format!(
            "table ip rvsnat {{\n\
             \tmap dirs {{ type ether_addr : mark; elements = {{ {} }} }}\n\
             \tchain pre {{ type filter hook prerouting priority -150; \
             iifname \"{dev}\" tcp dport {port} ct mark set ether saddr map @dirs; }}\n\
             \tchain out {{ type route hook output priority -150; \
             tcp sport {port} ct mark != 0 meta mark set ct mark; }}\n\
             }}\n",
            elements.join(", ")
        );
        let file = std::env::temp_dir().join(format!("rvs-natmac-{ns}-{}.nft", std::process::id()));
        std::fs::write(&file, rules).expect("write the nft rules");
        lab.exec(ns, &["nft", "-f", &file.display().to_string()]);
        let _ = std::fs::remove_file(&file);
        for i in 0..macs.len() {
            let (mark, table) = ((1 + i).to_string(), (101 + i).to_string());
            lab.exec(ns, &["ip", "rule", "add", "fwmark", &mark, "table", &table]);
            lab.exec(
                ns,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &dip(i),
                    "dev",
                    dev,
                    "table",
                    &table,
                ],
            );
        }
    }

    /// Director `ns`'s MAC on its LAN port `dev` (the DPDK port's, read from the
    /// interface it is bound to).
    pub fn mac(lab: &Lab, ns: &str, dev: &str) -> String {
        String::from_utf8_lossy(
            &lab.exec(ns, &["cat", &format!("/sys/class/net/{dev}/address")])
                .stdout,
        )
        .trim()
        .to_owned()
    }

    /// Empties the set of [`watch_flows`].
    pub fn forget_flows(lab: &Lab, ns: &str) {
        lab.exec(ns, &["nft", "flush", "set", "netdev", "rvsflows", "seen"]);
    }

    /// BGP timers of both sides: hold 3 s, keepalive 1 s, and quick reconnection after
    /// an error or a restart (BIRD's defaults wait a minute).
    pub const BGP_TIMERS: &str = "hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 3; bfd on;";

    /// BFD on the BGP sessions' interface `iface`: 200 ms, 5 missed (1 s to detect a
    /// dead peer, before the hold time).
    pub fn bfd(iface: &str) -> String {
        format!("protocol bfd {{ interface \"{iface}\" {{ min rx interval 200 ms; min tx interval 200 ms; multiplier 5; }}; }}\n")
    }

    /// The router's BIRD: one eBGP session per director (AS 65001, all three), routes
    /// imported and merged into multipath kernel routes (`merge paths`).
    pub fn router_bird_conf() -> String {
        let mut s = format!(
            "router id {ROUTER};\n\
             protocol device {{ scan time 2; }}\n\
             protocol direct {{ ipv4; interface \"rs0\"; }}\n\
             protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; merge paths on limit 8; }}\n"
        );
        s.push_str(&bfd("rs0"));
        for (i, d) in DIRS.iter().enumerate() {
            s.push_str(&format!(
                "protocol bgp {d} {{ local {ROUTER} as 65000; neighbor {} as 65001; direct; {BGP_TIMERS} ipv4 {{ import all; export none; }}; }}\n",
                host(i)
            ));
        }
        s
    }

    /// Director `i`'s BIRD: the static protocol fed by rvsd's routes file (BIRD reads an
    /// `include` only at the start of a line; a glob that matches nothing includes
    /// nothing), exported to the router over the exception tap with the tap's address as
    /// next hop.
    pub fn director_bird_conf(i: usize, routes_glob: &str) -> String {
        format!(
            "router id {h};\n\
             protocol device {{ scan time 2; }}\n\
             protocol static rvs {{\n  ipv4;\n  include \"{routes_glob}\";\n}}\n\
             {bfd}\
             protocol bgp up {{ local {h} as 65001; neighbor {ROUTER} as 65000; direct; {BGP_TIMERS} ipv4 {{ import none; export where proto = \"rvs\"; next hop self; }}; }}\n",
            h = host(i),
            bfd = bfd("rvs0"),
        )
    }
}
