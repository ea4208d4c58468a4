//! Helpers for the rvs end-to-end tests under `tests/tests/`: a lab of network namespaces
//! with real kernel TCP stacks, and the rvs binaries.
//!
//! A [`Lab`] creates namespaces, veth pairs and bridges under a unique prefix, and removes
//! them when dropped, also when the test fails (a panic unwinds through the drop). An
//! interrupted run leaves them behind; the next [`Lab::new`] with the same prefix removes
//! them first. Every command is bounded in time.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
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
    // Test executables live in target/<profile>/deps; binaries in target/<profile>.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
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

/// A lab of network namespaces. Dropping it removes them all.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// A new, empty lab whose namespaces are named `<prefix>-<name>`. Leftovers of an
    /// interrupted run with the same prefix are removed first.
    pub fn new(prefix: &str) -> Lab {
        assert!(
            prefix.len() <= 8,
            "keep lab prefixes short (interface names are ≤ 15 bytes)"
        );
        let lab = Lab {
            prefix: prefix.to_owned(),
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        lab.remove_leftovers();
        lab
    }

    fn remove_leftovers(&self) {
        let out = Command::new("ip").args(["netns", "list"]).output();
        if let Ok(out) = out {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if name.starts_with(&format!("{}-", self.prefix)) {
                    run_quiet("ip", &["netns", "pids", name]);
                    kill_netns_pids(name);
                    run_quiet("ip", &["netns", "del", name]);
                }
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

    /// Sets the default route of `ns`.
    pub fn default_route(&self, ns: &str, via: Ipv4Addr) {
        self.exec(
            ns,
            &["ip", "route", "add", "default", "via", &via.to_string()],
        );
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

    /// Starts an HTTP server in `ns` on `bind:port` that answers every GET with
    /// `<name> client=<peer address>:<peer port>` — the real server's name and the source
    /// address it saw (the client under NAT, a LIP under FULLNAT).
    pub fn name_server(&mut self, ns: &str, bind: Ipv4Addr, port: u16, name: &str) {
        let script = format!(
            r#"
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
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

    /// Waits (bounded: 10 s) until `ns` accepts TCP connections on `addr:port`.
    pub fn wait_tcp(&self, ns: &str, addr: Ipv4Addr, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let a = addr.to_string();
        let p = port.to_string();
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
        panic!("nothing listens on {addr}:{port} in {ns}");
    }

    /// `curl` from `ns` (bounded: 5 s); returns the body, or `None` on failure.
    pub fn curl(&self, ns: &str, url: &str) -> Option<String> {
        let out = self.try_exec(ns, &["curl", "-s", "-k", "--max-time", "5", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
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
    }
}
