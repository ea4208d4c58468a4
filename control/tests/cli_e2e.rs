//! End-to-end: the real `rvsd --no-dataplane` binary on a temporary socket, driven by the
//! real `rvsadm` binary, with the seeds' ipvsadm walkthroughs.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{RVSADM, RVSD};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Rvsd {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Rvsd {
    fn start_with(name: &str, config_body: &str) -> Rvsd {
        Self::spawn(name, config_body, false)
    }

    /// rvsd with the DPDK dataplane on two `net_null` ports (needs root and DPDK).
    fn start_dataplane(name: &str) -> Rvsd {
        let body = format!(
            "[eal]\nfile_prefix = \"rvs-cli-{name}\"\n\n\
             [[ports]]\nname = \"dpdk0\"\ndevice = \"net_null_{name}0\"\naddresses = [\"192.168.199.1/24\"]\n\n\
             [[ports]]\nname = \"dpdk1\"\ndevice = \"net_null_{name}1\"\naddresses = [\"192.168.192.1/24\"]\n"
        );
        Self::spawn(name, &body, true)
    }

    fn spawn(name: &str, config_body: &str, dataplane: bool) -> Rvsd {
        let dir = tmpdir(name);
        let socket = dir.join("rvsd.sock");
        let cfg = dir.join("rvs.toml");
        std::fs::write(
            &cfg,
            format!(
                "{config_body}\n[control]\nsocket = \"{}\"\n",
                socket.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(RVSD);
        if !dataplane {
            cmd.arg("--no-dataplane");
        }
        let child = cmd
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(60), "rvsd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Rvsd { child, socket, dir }
    }

    fn start(name: &str) -> Rvsd {
        Self::start_with(name, "")
    }

    fn adm_in(&self, args: &[&str], stdin: &str) -> Output {
        adm_with(RVSADM, &self.socket, args, stdin)
    }

    fn adm(&self, args: &[&str]) -> Output {
        self.adm_in(args, "")
    }

    /// Runs a command line given as one string; asserts exit 0 and no stderr.
    fn ok(&self, line: &str) -> String {
        let args: Vec<&str> = line.split_whitespace().collect();
        let o = self.adm(&args);
        assert_eq!(
            (o.status.code(), err(&o)),
            (Some(0), String::new()),
            "ipvsadm {line}"
        );
        out(&o)
    }

    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        status.code()
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn adm_with(bin: &str, socket: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(bin)
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const HEAD: &str = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  \
-> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

#[test]
fn seed_walkthrough_services_and_servers() {
    let d = Rvsd::start("walk");
    walkthrough(&d);
    assert_eq!(d.stop(), Some(0));
}

/// rvsd on the DPDK dataplane with IPv6 port addresses and IPv6 routes (a link-local
/// gateway): it starts, takes an IPv6 service with IPv6 servers and LIP and a NAT64 one,
/// and lists them as ipvsadm does.
#[test]
fn ipv6_ports_routes_and_services_on_the_dpdk_dataplane() {
    if !is_root() {
        eprintln!("skipped: the DPDK dataplane needs root");
        return;
    }
    let name = "ipv6";
    let body = format!(
        "[eal]\nfile_prefix = \"rvs-cli-{name}\"\n\n\
         [[ports]]\nname = \"dpdk0\"\ndevice = \"net_null_{name}0\"\n\
         addresses = [\"192.168.199.1/24\", \"2001:db8:1::1/64\", \"2001:db8:1::2/64\"]\n\n\
         [[ports]]\nname = \"dpdk1\"\ndevice = \"net_null_{name}1\"\n\
         addresses = [\"192.168.192.1/24\", \"2001:db8:2::1/64\"]\n\n\
         [[routes]]\nprefix = \"::/0\"\nvia = \"fe80::1\"\nport = \"dpdk0\"\n"
    );
    let d = Rvsd::spawn(name, &body, true);
    d.ok("-A -t [2001:db8::80]:80 -s wlc -p 300 -M 64");
    d.ok("-P -t [2001:db8::80]:80 -z 2001:db8:2::200 -F dpdk1");
    d.ok("-a -t [2001:db8::80]:80 -r [2001:db8:2::11]:80 -b");
    d.ok("-A -t [2001:db8::80]:443 -s rr");
    d.ok("-P -t [2001:db8::80]:443 -z 192.168.192.200 -F dpdk1");
    d.ok("-a -t [2001:db8::80]:443 -r 192.168.192.11:8443 -b");
    // The LIP's port comes from the IPv6 routes: the connected 2001:db8:2::/64 of dpdk1.
    let o = d.adm(&[
        "-P",
        "-t",
        "[2001:db8::80]:80",
        "-z",
        "2001:db8:2::201",
        "-F",
        "dpdk0",
    ]);
    assert_eq!(
        err(&o),
        "local address 2001:db8:2::201 is on port dpdk1 by the routes, not on 'dpdk0' (ifname)\n"
    );
    let listing = d.ok("-Ln");
    for want in [
        "\nTCP  [2001:db8::80]:80 wlc persistent 300 mask 64\n  -> [2001:db8:2::11]:80          FullNat 1      0          0         \n",
        "\nTCP  [2001:db8::80]:443 rr\n  -> 192.168.192.11:8443          FullNat 1      0          0         \n",
    ] {
        assert!(listing.contains(want), "{want:?} in {listing}");
    }
    let saved = d.ok("-Sn");
    assert!(
        saved.contains("-A -t [2001:db8::80]:80 -s wlc -p 300 -M 64\n"),
        "{saved}"
    );
    assert!(
        saved.contains("--add-laddr -t [2001:db8::80]:443 -z 192.168.192.200 -F dpdk1\n"),
        "{saved}"
    );
    assert!(d.ok("-Lnc").starts_with("IPVS connection entries\n"));
    assert_eq!(d.stop(), Some(0));
}

/// The same walkthrough against rvsd driving the real DPDK dataplane (net_null ports):
/// every change reaches the workers as a new snapshot and the listings come back the same.
#[test]
fn seed_walkthrough_on_the_dpdk_dataplane() {
    if !std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
    {
        eprintln!("skipped: the DPDK dataplane needs root");
        return;
    }
    let d = Rvsd::start_dataplane("dpwalk");
    walkthrough(&d);
    let o = d.adm(&["--dataplane"]);
    assert!(out(&o).contains("worker 0 packets="), "{}", out(&o));
    assert_eq!(d.stop(), Some(0));
}

fn walkthrough(d: &Rvsd) {
    // 000: add a service, list, delete, list non-numerically (no arguments).
    d.ok("-A -t 192.168.199.146:80 -s rr");
    assert_eq!(d.ok("-ln"), format!("{HEAD}TCP  192.168.199.146:80 rr\n"));
    d.ok("-D -t 192.168.199.146:80");
    assert_eq!(d.ok(""), HEAD);
    // Real servers: -a -g, -d.
    d.ok("-A -t 192.168.199.146:80 -s rr");
    d.ok("-a -t 192.168.199.146:80 -r 192.168.199.230:80 -g");
    assert_eq!(
        d.ok("-ln"),
        format!(
            "{HEAD}TCP  192.168.199.146:80 rr\n  \
-> 192.168.199.230:80           Route   1      0          0         \n"
        )
    );
    d.ok("-d -t 192.168.199.146:80 -r 192.168.199.230:80");
    d.ok("-C");
    // LVS-NAT, then NAT port mapping (128 moves to 8080).
    d.ok("-A -t 192.168.199.157:80 -s rr");
    d.ok("-a -t 192.168.199.157:80 -r 192.168.192.130 -m");
    d.ok("-a -t 192.168.199.157:80 -r 192.168.192.128 -m");
    assert_eq!(
        d.ok("-Ln"),
        format!(
            "{HEAD}TCP  192.168.199.157:80 rr\n  \
-> 192.168.192.128:80           Masq    1      0          0         \n  \
-> 192.168.192.130:80           Masq    1      0          0         \n"
        )
    );
    d.ok("-d -t 192.168.199.157:80 -r 192.168.192.128");
    d.ok("-a -t 192.168.199.157:80 -r 192.168.192.128:8080 -m");
    // HTTPS through NAT.
    d.ok("-A -t 192.168.199.157:443 -s rr");
    d.ok("-a -t 192.168.199.157:443 -r 192.168.192.131 -m");
    d.ok("-a -t 192.168.199.157:443 -r 192.168.192.128 -m");
    assert_eq!(
        d.ok("-Ln"),
        format!(
            "{HEAD}TCP  192.168.199.157:80 rr\n  \
-> 192.168.192.128:8080         Masq    1      0          0         \n  \
-> 192.168.192.130:80           Masq    1      0          0         \n\
TCP  192.168.199.157:443 rr\n  \
-> 192.168.192.128:443          Masq    1      0          0         \n  \
-> 192.168.192.131:443          Masq    1      0          0         \n"
        )
    );
    // --nosort shows the kernel's newest-first dest order.
    assert!(d
        .ok("-Ln --nosort -t 192.168.199.157:443")
        .ends_with("  -> 192.168.192.128:443          Masq    1      0          0         \n  -> 192.168.192.131:443          Masq    1      0          0         \n"));
    d.ok("-C");
    // DR with wrr 2:1, then edit a weight.
    d.ok("-A -t 192.168.192.132:80 -s wrr");
    d.ok("-a -t 192.168.192.132:80 -r 172.16.0.101 -g -w 2");
    d.ok("-a -t 192.168.192.132:80 -r 172.16.0.102:8080 -g -w 1");
    let dr = format!(
        "{HEAD}TCP  192.168.192.132:80 wrr\n  \
-> 172.16.0.101:80              Route   2      0          0         \n  \
-> 172.16.0.102:80              Route   1      0          0         \n"
    );
    assert_eq!(d.ok("-Ln"), dr);
    d.ok("-e -t 192.168.192.132:80 -r 172.16.0.102 -g -w 3");
    assert!(d
        .ok("-Ln")
        .contains("  -> 172.16.0.102:80              Route   3      "));
    // Persistence: -p default 360, -E changes it (and the scheduler back to wlc).
    d.ok("-A -t 192.168.192.132:0 -p");
    assert!(d
        .ok("-Ln")
        .contains("TCP  192.168.192.132:0 wlc persistent 360\n"));
    d.ok("-E -t 192.168.192.132:0 -s rr -p 600 -M 255.255.255.0");
    assert!(d
        .ok("-Ln")
        .contains("TCP  192.168.192.132:0 rr persistent 600 mask 255.255.255.0\n"));
    // Zero, timeouts.
    d.ok("-Z");
    d.ok("-Z -t 192.168.192.132:80");
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    d.ok("--set 10 0 30");
    assert_eq!(
        d.ok("-L --timeout"),
        "Timeout (tcp tcpfin udp): 10 120 30\n"
    );
    // Stats and rates list with zero counters (no traffic to these services).
    assert!(d.ok("-Ln --stats").contains(
        "TCP  192.168.192.132:80                  0        0        0        0        0\n"
    ));
    assert!(d.ok("-Ln --rate").contains(
        "  -> 172.16.0.101:80                     0        0        0        0        0\n"
    ));
    assert_eq!(
        d.ok("-Lnc"),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
    d.ok("-C");
    assert_eq!(d.ok("-Ln"), HEAD);
}

#[test]
fn lvsdr_init_script() {
    // The seed's /etc/init.d/lvsdr start: the RIP1 line has an en dash ("–g"), which
    // ipvsadm rejects as an unexpected argument; the script goes on.
    let d = Rvsd::start("lvsdr");
    d.ok("-C");
    d.ok("-A -t 192.168.1.200:80 -s rr");
    let o = d.adm(&["-a", "-t", "192.168.1.200:80", "-r", "192.168.1.193", "–g"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(2), "unexpected argument –g\n".into())
    );
    d.ok("-a -t 192.168.1.200:80 -r 192.168.1.195 -g");
    // `/sbin/ipvsadm` without arguments: names, not numbers.
    assert_eq!(
        d.ok(""),
        format!(
            "{HEAD}TCP  192.168.1.200:http rr\n  \
-> 192.168.1.195:http           Route   1      0          0         \n"
        )
    );
    d.ok("-C");
}

#[test]
fn save_restore_round_trip_through_files() {
    let d = Rvsd::start("saverestore");
    for l in [
        "-A -t 192.168.227.128:80 -s rr",
        "-a -t 192.168.227.128:80 -r 192.168.253.143:80 -m",
        "-a -t 192.168.227.128:80 -r 192.168.253.144:80 -m -w 3 -x 100 -y 50",
        "-A -u 192.168.227.128:53 -s sh -b sh-port -p 100 -M 255.255.0.0",
        "-a -u 192.168.227.128:53 -r 192.168.253.143 -i",
        "-A -f 7 -s wlc",
        "-a -f 7 -r 192.168.253.150:0 -g",
        "-A -t [2001:db8::1]:443 -s mh -b mh-port",
        "-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m",
        "-A -t 10.0.0.100:80 -s rr",
        "-a -t 10.0.0.100:80 -r 192.168.100.2 -b",
        "--add-laddr -t 10.0.0.100:80 -z 192.168.100.200 -F dpdk0",
    ] {
        d.ok(l);
    }
    // ipvsadm -Sn > /etc/sysconfig/ipvsadm
    let saved = d.ok("-Sn");
    let file = d.dir.join("ipvsadm.rules");
    std::fs::write(&file, &saved).unwrap();
    let listing = d.ok("-Ln");
    d.ok("-C");
    assert_eq!(d.ok("-Ln"), HEAD);
    let o = d.adm_in(&["-R"], &std::fs::read_to_string(&file).unwrap());
    assert_eq!((o.status.code(), err(&o)), (Some(0), String::new()));
    assert_eq!(d.ok("-Sn"), saved);
    assert_eq!(d.ok("-Ln"), listing);
    // The saved rules with names restore too (-S without -n).
    let named = d.ok("-S");
    assert!(
        named.contains("-A -t 192.168.227.128:http -s rr\n"),
        "{named}"
    );
    d.ok("-C");
    let o = d.adm_in(&["-R"], &named);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(d.ok("-Sn"), saved);

    // What the real ipvsadm 1.31 -S writes (tests/golden/Sn.txt was checked against it),
    // with a leading `ipvsadm` and a blank line, as users' rule files have.
    d.ok("-C");
    let real =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/Sn.txt"))
            .unwrap();
    let mut input = String::from("\n");
    for l in real.lines() {
        input.push_str(&format!("ipvsadm {l}\n"));
    }
    let o = d.adm_in(&["-R"], &input);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(d.ok("-Sn"), real);
}

#[test]
fn bad_input_gives_ipvsadm_messages_and_leaves_the_table() {
    let d = Rvsd::start("bad");
    d.ok("-A -t 1.2.3.4:80 -s rr");
    d.ok("-a -t 1.2.3.4:80 -r 10.0.0.1 -m -w 5");
    let before = d.ok("-Ln");
    let cases: &[(&str, &str, &str, i32)] = &[
        (
            "-A -t 5.6.7.8:80 -s foo",
            "",
            "Scheduler or persistence engine not found\n",
            255,
        ),
        (
            "-A -t 1.2.3.400:80",
            "",
            "illegal virtual server address[:port] specified\n",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.300",
            "",
            "illegal real server address[:port] specified\n",
            2,
        ),
        (
            "-A -t 5.6.7.8:0",
            "",
            "Zero port specified for non-persistent service\n",
            2,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -w 70000",
            "",
            "illegal weight specified\n",
            2,
        ),
        (
            "-a -t 9.9.9.9:80 -r 10.0.0.2",
            "",
            "Service not defined\n",
            255,
        ),
        (
            "-A -t 1.2.3.4:80 -s wrr",
            "",
            "Service already exists\n",
            255,
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -g",
            "",
            "Destination already exists\n",
            255,
        ),
        (
            "-e -t 1.2.3.4:80 -r 10.0.0.9",
            "",
            "No such destination\n",
            255,
        ),
        ("-E -t 9.9.9.9:80", "", "No such service\n", 255),
        ("-D -t 9.9.9.9:80", "", "No such service\n", 255),
        ("-Z -t 9.9.9.9:80", "", "No such service\n", 255),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.2 -y 5",
            "",
            "Numerical result out of range\n",
            255,
        ),
        (
            "-Ln -c --stats",
            "",
            "options conflicts in the list command\n",
            2,
        ),
        (
            "-L -c --timeout",
            "",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command\n",
            2,
        ),
        (
            "-A -t 5.6.7.8:80 -w 3",
            "",
            "Illegal 'weight' option with the 'add-service' command\n",
            2,
        ),
        ("-A -a", "", "invalid option `-a'\n", 2),
        ("-Lnx", "", "-Lnx: missing argument\n", 255),
        ("--stop-daemon master", "", "No daemon is running\n", 255),
        ("-L -t 9.9.9.9:80", "", "No such service\n", 1),
        // -R: a broken first line stops the restore at once with 2.
        (
            "-R",
            "-A -t 5.6.7.8:0\n-A -t 6.6.6.6:80\n",
            "Zero port specified for non-persistent service\n",
            2,
        ),
        // -R: `#` comments are not supported (usage error, 255).
        ("-R", "# saved rules\n-A -t 6.6.6.6:80\n", "", 255),
        // -R: a kernel error is printed and the restore goes on; status = last line's.
        (
            "-R",
            "-A -t 6.6.6.6:80 -s nosuch\n-A -t 1.2.3.4:80\n",
            "Scheduler or persistence engine not found\nService already exists\n",
            255,
        ),
    ];
    for (args, stdin, msg, code) in cases {
        let a: Vec<&str> = args.split_whitespace().collect();
        let o = d.adm_in(&a, stdin);
        if msg.is_empty() {
            assert!(err(&o).starts_with("Try `"), "ipvsadm {args}: {}", err(&o));
        } else {
            assert_eq!(err(&o), *msg, "ipvsadm {args}");
        }
        assert_eq!(o.status.code(), Some(*code), "ipvsadm {args}");
        assert_eq!(d.ok("-Ln"), before, "table changed by ipvsadm {args}");
    }
    // A restore whose failing line is not the last: earlier lines stay applied, the exit
    // status is the last line's.
    let o = d.adm_in(&["-R"], "-A -t 1.2.3.4:80\n-A -t 7.7.7.7:80\n");
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(0), "Service already exists\n".into())
    );
    assert!(d.ok("-Ln").contains("TCP  7.7.7.7:80 wlc\n"));
}

#[test]
fn daemon_laddr_and_fullnat_commands() {
    let d = Rvsd::start("daemon");
    d.ok("--start-daemon master --syncid 1");
    let o = d.adm(&["--start-daemon", "master"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(255), "Daemon has already run\n".into())
    );
    d.ok("--start-daemon backup --mcast-interface dpdk0 --syncid 7 --mcast-group 224.0.0.82 --mcast-port 9000 --mcast-ttl 2 --sync-maxlen 1400");
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/daemon.txt"),
    )
    .unwrap();
    assert_eq!(d.ok("-L --daemon"), golden);
    d.ok("--stop-daemon backup");
    d.ok("--stop-daemon master");
    assert_eq!(d.ok("-L --daemon"), "");

    d.ok("-A -t 10.0.0.100:80 -s rr");
    d.ok("-a -t 10.0.0.100:80 -r 192.168.100.2 -b");
    d.ok("-a -t 10.0.0.100:80 -r 192.168.100.3:8080 --fullnat -w 2");
    d.ok("--add-laddr -t 10.0.0.100:80 -z 192.168.100.200 -F dpdk0");
    d.ok("-P -t 10.0.0.100:80 -z 192.168.100.201");
    let o = d.adm(&["-P", "-t", "10.0.0.100:80", "-z", "192.168.100.201"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(255), "Local address already exists\n".into())
    );
    assert!(d
        .ok("-Ln")
        .contains("  -> 192.168.100.3:8080           FullNat 2      0          0         \n"));
    let pad = " ".repeat(30);
    assert_eq!(
        d.ok("-G"),
        format!(
            "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
10.0.0.100:80        2        \n\
{pad}192.168.100.200      0          0         \n\
{pad}192.168.100.201      0          0         \n"
        )
    );
    d.ok("--del-laddr -t 10.0.0.100:80 -z 192.168.100.201");
    let o = d.adm(&["-Q", "-t", "10.0.0.100:80", "-z", "192.168.100.201"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (Some(255), "No such local address\n".into())
    );
    assert!(d
        .ok("-G -t 10.0.0.100:80")
        .contains("10.0.0.100:80        1        \n"));
}

#[test]
fn proxy_protocol_and_toa_on_a_fullnat_service() {
    let d = Rvsd::start("proxy");
    d.ok("-A -t 10.0.0.100:80 -s rr --proxy-protocol v2 --toa");
    d.ok("-a -t 10.0.0.100:80 -r 192.168.100.2:8080 -b -w 2");
    d.ok("-P -t 10.0.0.100:80 -z 192.168.100.200");
    d.ok("-A -t 10.0.0.100:443 -s wlc");
    d.ok("-a -t 10.0.0.100:443 -r 192.168.100.3 -m");
    assert_eq!(
        d.ok("-Ln"),
        format!(
            "{HEAD}\
TCP  10.0.0.100:80 rr proxy-protocol v2 toa\n  \
-> 192.168.100.2:8080           FullNat 2      0          0         \n\
TCP  10.0.0.100:443 wlc\n  \
-> 192.168.100.3:443            Masq    1      0          0         \n"
        )
    );
    let saved = d.ok("-Sn");
    assert_eq!(
        saved,
        "-A -t 10.0.0.100:80 -s rr --proxy-protocol v2 --toa\n\
-a -t 10.0.0.100:80 -r 192.168.100.2:8080 -b -w 2\n\
--add-laddr -t 10.0.0.100:80 -z 192.168.100.200\n\
-A -t 10.0.0.100:443 -s wlc\n\
-a -t 10.0.0.100:443 -r 192.168.100.3:443 -m -w 1\n"
    );
    // Refusals: a NAT server into the service, the options onto the NAT service, v1 on
    // UDP, DPVS's insecure mode; none changes the table.
    let refusals: &[(&[&str], i32, &str)] = &[
        (
            &["-a", "-t", "10.0.0.100:80", "-r", "192.168.100.4", "-m"],
            255,
            "Only FULLNAT servers are allowed in a service with PROXY protocol and TOA\n",
        ),
        (
            &["-E", "-t", "10.0.0.100:443", "--proxy-protocol", "v1"],
            255,
            "PROXY protocol is allowed only with FULLNAT servers (192.168.100.3:443 is Masq)\n",
        ),
        (
            &["-A", "-u", "10.0.0.100:53", "--proxy-protocol", "v1"],
            255,
            "PROXY protocol v1 is only for TCP virtual services\n",
        ),
        (
            &[
                "-E",
                "-t",
                "10.0.0.100:80",
                "--proxy-protocol",
                "v2-insecure",
            ],
            2,
            "proxy-protocol `v2-insecure' is not supported: rvs always puts its own header first\n",
        ),
    ];
    for (args, code, msg) in refusals {
        let o = d.adm(args);
        assert_eq!(
            (o.status.code(), err(&o)),
            (Some(*code), msg.to_string()),
            "{args:?}"
        );
    }
    assert_eq!(d.ok("-Sn"), saved);
    // -R of the saved rules gives the same table back; -E without the options turns
    // them off, as -E does with every option not given.
    d.ok("-C");
    let o = d.adm_in(&["-R"], &saved);
    assert_eq!((o.status.code(), err(&o)), (Some(0), String::new()));
    assert_eq!(d.ok("-Sn"), saved);
    d.ok("-E -t 10.0.0.100:80 -s rr");
    assert!(d
        .ok("-Ln")
        .contains("\nTCP  10.0.0.100:80 rr\n  -> 192.168.100.2:8080"));
    let help = d.ok("-h");
    for opt in ["--proxy-protocol v1|v2|disable", "--toa"] {
        assert!(help.contains(opt), "{opt} missing from -h:\n{help}");
    }
}

/// DPVS's ACL commands: global and per-service deny and allow lists, their errors in
/// ipvsadm's style, the listings, `-S` and `-R`, and the TOML's `[acl]` and a service's
/// `deny`/`allow` at start and on a reload (the file's lists replace the running ones).
#[test]
fn acl_commands_listings_save_restore_and_reload() {
    let body = "[acl]\ndeny = [\"203.0.113.0/24\"]\n\
                [[services]]\nproto = \"tcp\"\nvip = \"10.0.0.100:80\"\nscheduler = \"rr\"\n\
                allow = [\"10.0.0.0/8\"]\n";
    let d = Rvsd::start_with("acl", body);
    d.ok("-A -f 7 -s rr");
    d.ok("--add-blklst -k 198.51.100.7");
    d.ok("-U -t 10.0.0.100:80 -k 10.9.0.0/16");
    d.ok("-O -f 7 -2 192.0.2.0/24");
    let head = |k: &str| format!("{:<24} {:<6} {k}\n", "VIP:VPORT", "PROTO");
    assert_eq!(
        d.ok("-B"),
        format!(
            "{}{:<24} {:<6} 203.0.113.0/24\n{:<24} {:<6} 198.51.100.7/32\n{:<24} {:<6} 10.9.0.0/16\n",
            head("BLKLST"),
            "*",
            "*",
            "*",
            "*",
            "10.0.0.100:80",
            "TCP"
        )
    );
    assert_eq!(
        d.ok("--get-whtlst -t 10.0.0.100:80"),
        format!(
            "{}{:<24} {:<6} 10.0.0.0/8\n",
            head("WHTLST"),
            "10.0.0.100:80",
            "TCP"
        )
    );
    assert_eq!(
        d.ok("-W -f 7"),
        format!(
            "{}{:<24} {:<6} 192.0.2.0/24\n",
            head("WHTLST"),
            "FWM 7",
            "*"
        )
    );
    let refusals: &[(&str, i32, &str)] = &[
        ("-U -k 203.0.113.0/24", 255, "ACL entry already exists\n"),
        ("-V -k 1.1.1.1", 255, "No such ACL entry\n"),
        ("-Y -t 10.0.0.100:80 -2 10.9.0.0/16", 255, "No such ACL entry\n"),
        ("-U -t 10.0.0.1:80 -k 1.1.1.1", 255, "Service not defined\n"),
        (
            "-U -k 10.1.2.3/8",
            2,
            "illegal blklst prefix specified: \"10.1.2.3/8\" has bits set beyond its length (the prefix is \"10.0.0.0/8\")\n",
        ),
        (
            "-O -2 10.0.0.0/33",
            2,
            "illegal whtlst prefix specified: \"10.0.0.0/33\" is not an address or prefix (e.g. \"203.0.113.0/24\")\n",
        ),
        (
            "-U",
            2,
            "You need to supply the 'blklst' option for the 'add-blklst' command\n",
        ),
        (
            "-O -k 1.1.1.1 -2 1.1.1.1",
            2,
            "Illegal 'blklst' option with the 'add-whtlst' command\n",
        ),
        (
            "-A -t 10.0.0.1:80 -k 1.1.1.1",
            2,
            "Illegal 'blklst' option with the 'add-service' command\n",
        ),
        ("-B -t 10.0.0.1:80", 1, "No such service\n"),
    ];
    let before = d.ok("-Sn");
    for (line, code, msg) in refusals {
        let args: Vec<&str> = line.split_whitespace().collect();
        let o = d.adm(&args);
        assert_eq!(
            (o.status.code(), err(&o)),
            (Some(*code), msg.to_string()),
            "ipvsadm {line}"
        );
    }
    assert_eq!(d.ok("-Sn"), before);
    assert_eq!(
        before,
        "-A -t 10.0.0.100:80 -s rr\n\
-A -f 7 -s rr\n\
--add-blklst -t 10.0.0.100:80 -k 10.9.0.0/16\n\
--add-whtlst -t 10.0.0.100:80 -2 10.0.0.0/8\n\
--add-whtlst -f 7 -2 192.0.2.0/24\n\
--add-blklst -k 203.0.113.0/24\n\
--add-blklst -k 198.51.100.7/32\n"
    );
    // -C clears the ACLs too; -R of the saved rules gives them back.
    d.ok("-C");
    assert_eq!(d.ok("-B"), head("BLKLST"));
    let o = d.adm_in(&["-R"], &before);
    assert_eq!((o.status.code(), err(&o)), (Some(0), String::new()));
    assert_eq!(d.ok("-Sn"), before);
    d.ok("-D -f 7");
    d.ok("-V -k 203.0.113.0/24");

    // A reload: the file's lists replace the running ones.
    let cfg = d.dir.join("rvs.toml");
    let control = format!("\n[control]\nsocket = \"{}\"\n", d.socket.display());
    let new_body = "[acl]\ndeny = [\"203.0.113.0/24\", \"192.0.2.0/25\"]\n\
                    [[services]]\nproto = \"tcp\"\nvip = \"10.0.0.100:80\"\nscheduler = \"rr\"\n\
                    deny = [\"10.9.0.0/16\"]\n";
    std::fs::write(&cfg, format!("{new_body}{control}")).unwrap();
    assert_eq!(
        d.ok("--reload"),
        "reload: 4 changes\n  \
remove whtlst TCP  10.0.0.100:80 10.0.0.0/8\n  \
remove blklst 198.51.100.7/32 (overrides a change made with rvsadm)\n  \
add blklst 203.0.113.0/24 (overrides a change made with rvsadm)\n  \
add blklst 192.0.2.0/25\n"
    );
    assert_eq!(
        d.ok("-Sn"),
        "-A -t 10.0.0.100:80 -s rr\n\
--add-blklst -t 10.0.0.100:80 -k 10.9.0.0/16\n\
--add-blklst -k 203.0.113.0/24\n\
--add-blklst -k 192.0.2.0/25\n"
    );
    std::fs::write(&cfg, format!("[acl]\nallow = [\"1.2.3.4/8\"]\n{control}")).unwrap();
    let o = d.adm(&["--reload"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (
            Some(1),
            format!(
                "reload refused: {}: acl.allow[0]: \"1.2.3.4/8\" has bits set beyond its length (the prefix is \"1.0.0.0/8\")\n",
                cfg.display()
            )
        )
    );
    let help = d.ok("-h");
    for opt in ["--add-blklst|-U", "--del-whtlst|-Y", "--get-whtlst|-W"] {
        assert!(help.contains(opt), "{opt} missing from -h:\n{help}");
    }
}

/// The TOML's `proxy_protocol` and `toa`: applied at start and by a reload; a bad value is
/// refused by its field and the running table stays.
#[test]
fn proxy_protocol_and_toa_from_the_configuration_at_start_and_reload() {
    let svc = |extra: &str| {
        format!(
            "[[services]]\nproto = \"tcp\"\nvip = \"10.0.0.100:80\"\nscheduler = \"rr\"\n{extra}\
             laddrs = [\"192.168.100.200\"]\n\
             real = [{{ address = \"192.168.100.2:8080\", forward = \"fullnat\" }}]\n"
        )
    };
    let d = Rvsd::start_with("proxytoml", &svc("proxy_protocol = \"v1\"\n"));
    assert!(d
        .ok("-Sn")
        .starts_with("-A -t 10.0.0.100:80 -s rr --proxy-protocol v1\n"));
    let cfg = d.dir.join("rvs.toml");
    let control = format!("\n[control]\nsocket = \"{}\"\n", d.socket.display());
    std::fs::write(
        &cfg,
        svc("proxy_protocol = \"v2\"\ntoa = true\n") + &control,
    )
    .unwrap();
    assert_eq!(
        d.ok("--reload"),
        "reload: 1 change\n  edit service TCP  10.0.0.100:80 -s rr --proxy-protocol v2 --toa (was -s rr --proxy-protocol v1)\n"
    );
    assert!(d
        .ok("-Ln")
        .contains("\nTCP  10.0.0.100:80 rr proxy-protocol v2 toa\n"));
    std::fs::write(&cfg, svc("proxy_protocol = \"v1-insecure\"\n") + &control).unwrap();
    let o = d.adm(&["--reload"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (
            Some(1),
            format!(
                "reload refused: {}: services[0].proxy_protocol: \"v1-insecure\" is not supported: rvs always puts its own header first\n",
                cfg.display()
            )
        )
    );
    assert!(d
        .ok("-Ln")
        .contains("\nTCP  10.0.0.100:80 rr proxy-protocol v2 toa\n"));
}

#[test]
fn invoked_as_ipvsadm_through_a_symlink() {
    let d = Rvsd::start("symlink");
    let link = d.dir.join("ipvsadm");
    std::os::unix::fs::symlink(RVSADM, &link).unwrap();
    let link_s = link.to_str().unwrap();
    let o = adm_with(
        link_s,
        &d.socket,
        &["-A", "-t", "1.2.3.4:80", "-s", "rr"],
        "",
    );
    assert_eq!(o.status.code(), Some(0));
    let a = adm_with(link_s, &d.socket, &["-Ln"], "");
    let b = d.adm(&["-Ln"]);
    assert_eq!(out(&a), out(&b));
    assert!(out(&a).contains("TCP  1.2.3.4:80 rr\n"));
    let o = adm_with(link_s, &d.socket, &["-x"], "");
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        err(&o),
        format!("Try `{link_s} -h' or '{link_s} --help' for more information.\n")
    );
    let o = adm_with(link_s, &d.socket, &["-v"], "");
    assert_eq!(
        out(&o),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
    );
    let o = adm_with(link_s, &d.socket, &["-h"], "");
    assert!(out(&o).contains(&format!("  {link_s} -A|E virtual-service")));
}

#[test]
fn no_daemon_is_a_clear_error() {
    let dir = tmpdir("nodaemon");
    let sock = dir.join("none.sock");
    let o = adm_with(RVSADM, &sock, &["-Ln"], "");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        format!(
            "Can't initialize ipvs: No daemon is running at {} (start rvsd)\n",
            sock.display()
        )
    );
    // --socket overrides $RVS_SOCKET.
    let o = Command::new(RVSADM)
        .args(["-Ln", "--socket", "/nonexistent/x.sock"])
        .env("RVS_SOCKET", &sock)
        .output()
        .unwrap();
    assert!(err(&o).contains("/nonexistent/x.sock (start rvsd)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_services_socket_mode_stale_socket_and_sigterm() {
    // A stale socket file is replaced; the config's services are loaded.
    let dir = tmpdir("cfgsvc");
    let socket = dir.join("rvsd.sock");
    std::fs::write(&socket, "stale").unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/dr.toml");
    let mut child = Command::new(RVSD)
        .args(["--no-dataplane", "--config"])
        .arg(&example)
        .arg("--socket")
        .arg(&socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "rvsd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let o = adm_with(RVSADM, &socket, &["-Ln"], "");
    assert_eq!(
        out(&o),
        format!(
            "{HEAD}TCP  192.168.192.132:80 wrr\n  \
-> 172.16.0.101:80              Route   2      0          0         \n  \
-> 172.16.0.102:80              Route   1      0          0         \n\
UDP  192.168.192.132:53 rr persistent 360 mask 255.255.255.0\n  \
-> 172.16.0.101:53              Route   1      0          0         \n"
        )
    );
    let o = adm_with(RVSADM, &socket, &["-L", "--daemon"], "");
    assert_eq!(
        out(&o),
        "master sync daemon (mcast=dpdk0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!socket.exists(), "socket not removed on SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_with_an_error_is_refused_naming_the_field() {
    let dir = tmpdir("badcfg");
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\n\
         [[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:81\"\n\
         [[services.real]]\naddress = \"10.0.0.1\"\nweight = 70000\n",
    )
    .unwrap();
    let o = Command::new(RVSD)
        .args(["--no-dataplane", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("services[1].real[0].weight: 70000 is out of range 0..=65535"),
        "{}",
        err(&o)
    );
    std::fs::write(
        &cfg,
        "[[services]]\nproto = \"tcp\"\nvip = \"1.2.3.4:80\"\nscheduler = \"fancy\"\n",
    )
    .unwrap();
    let o = Command::new(RVSD)
        .args(["--no-dataplane", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("services[0].scheduler: \"fancy\" is not a scheduler"));
    // Without --no-dataplane a configuration without ports cannot run the dataplane.
    std::fs::write(&cfg, "").unwrap();
    let o = Command::new(RVSD)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--no-dataplane"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// What the DPDK dataplane does not forward (IPv6, SCTP) is refused
/// by rvsd with the dataplane, as a kernel error (exit 255) naming it, and the table is
/// left as it was.
#[test]
fn what_the_dataplane_does_not_do_is_refused_and_changes_nothing() {
    if !is_root() {
        eprintln!("skipped: the DPDK dataplane needs root");
        return;
    }
    let d = Rvsd::start_dataplane("refuse");
    d.ok("-A -t 192.168.199.10:80 -s rr");
    d.ok("-a -t 192.168.199.10:80 -r 192.168.192.11 -i");
    let before = d.ok("-Sn");
    let no = |what: &str| format!("{what} not supported by the rvs dataplane\n");
    for (line, text) in [
        (
            "-A --sctp-service 192.168.199.10:80",
            no("SCTP virtual services ('sctp-service') are"),
        ),
        (
            "-a -t 192.168.199.10:80 -r [2001:db8::11]:80 -i",
            no("IPv6 real server 2001:db8::11: IPv6 real servers of an IPv4 virtual service are"),
        ),
        (
            "-P -t 192.168.199.10:80 -z 2001:db8::200",
            "local address 2001:db8::200 ('laddr'): a service's local addresses must be of its FULLNAT real servers' family (IPv4 here) in the rvs dataplane\n".to_owned(),
        ),
        (
            "-P -t 192.168.199.10:80 -z 192.168.192.200 -F dpdk0",
            "local address 192.168.192.200 is on port dpdk1 by the routes, not on 'dpdk0' (ifname)\n"
                .to_owned(),
        ),
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        let o = d.adm(&args);
        assert_eq!(
            (o.status.code(), err(&o)),
            (Some(255), text),
            "ipvsadm {line}"
        );
        assert_eq!(d.ok("-Sn"), before, "ipvsadm {line} changed the table");
    }
    // The port the LIP's route gives is accepted by its name.
    d.ok("-P -t 192.168.199.10:80 -z 192.168.192.200 -F dpdk1");
    // IPv6 services, servers, LIPs and ACL prefixes are taken, and NAT64 under FULLNAT;
    // an IPv6 service's IPv4 servers of another method are refused.
    d.ok("-A -t [2001:db8::1]:80 -s rr");
    d.ok("-a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -m");
    let before = d.ok("-Sn");
    let o = d.adm(&["-A", "-f", "5", "-6"]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (
            Some(255),
            "IPv6 firewall-mark services ('-f' with '-6': the mark rules are IPv4 only) are not supported by the rvs dataplane\n".to_owned()
        )
    );
    assert_eq!(
        d.ok("-Sn"),
        before,
        "a refused -6 fwmark service changes nothing"
    );
    d.ok("-U -k 2001:db8::/32");
    d.ok("-O -t 192.168.199.10:80 -2 2001:db8::1");
    d.ok("-A -t [2001:db8::1]:443 -s rr");
    d.ok("-P -t [2001:db8::1]:443 -z 192.168.192.201");
    d.ok("-a -t [2001:db8::1]:443 -r 192.168.192.11:8443 --fullnat");
    let before = d.ok("-Sn");
    let o = d.adm(&[
        "-a",
        "-t",
        "[2001:db8::1]:80",
        "-r",
        "192.168.192.12:80",
        "-m",
    ]);
    assert_eq!(
        (o.status.code(), err(&o)),
        (
            Some(2),
            "Different address family is allowed only for tunneling servers\n".to_owned()
        )
    );
    assert_eq!(d.ok("-Sn"), before);
    // A restore file with a refused line: the other lines are applied.
    let o = d.adm_in(
        &["-R"],
        "-a -t 192.168.199.10:80 -r [2001:db8::12]:80 -i\n-A -u 192.168.199.10:53 -s rr -o\n",
    );
    assert_eq!(
        err(&o),
        no("IPv6 real server 2001:db8::12: IPv6 real servers of an IPv4 virtual service are")
    );
    assert!(d.ok("-Sn").contains("-A -u 192.168.199.10:53 -s rr -o\n"));
    // GUE and GRE tunnels (refused before the dataplane did them) are taken and listed.
    d.ok("-a -t 192.168.199.10:80 -r 192.168.192.12 -i --tun-type gue --tun-port 6080");
    d.ok("-a -t 192.168.199.10:80 -r 192.168.192.13 -i --tun-type gre --tun-csum");
    d.ok(
        "-e -t 192.168.199.10:80 -r 192.168.192.11 -i --tun-type gue --tun-port 6080 --tun-remcsum",
    );
    let saved = d.ok("-Sn");
    for want in [
        "-r 192.168.192.12:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
        "-r 192.168.192.13:80 -i -w 1 --tun-type gre --tun-csum",
        "-r 192.168.192.11:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum",
    ] {
        assert!(saved.contains(want), "{want} in {saved}");
    }
    assert_eq!(d.stop(), Some(0));
}

/// rvsd restores an `ipvsadm -S` rules file at start (`[control] rules`), logs JSON lines
/// with `--log-format json` naming services and servers as `ipvsadm -Ln` does, and
/// `rvsadm --reload` applies the edited files; a bad rules line refuses the start.
#[test]
fn rules_file_at_start_reload_and_json_logs() {
    let dir = tmpdir("rules");
    let socket = dir.join("rvsd.sock");
    let rules = dir.join("ipvsadm.rules");
    let cfg = dir.join("rvs.toml");
    let log = dir.join("rvsd.log");
    std::fs::write(
        &rules,
        "-A -t 10.1.0.1:80 -s wrr\n-a -t 10.1.0.1:80 -r 10.2.0.11:80 -m -w 1\n",
    )
    .unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[control]\nsocket = \"{}\"\nrules = \"{}\"\n\n\
             [[services]]\nproto = \"udp\"\nvip = \"10.1.0.1:53\"\nscheduler = \"rr\"\n",
            socket.display(),
            rules.display()
        ),
    )
    .unwrap();
    let mut child = common::Kill(
        Command::new(RVSD)
            .args(["--no-dataplane", "--log-format", "json", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    common::wait_for_socket(&socket, 20);
    let o = adm_with(RVSADM, &socket, &["-Sn"], "");
    assert_eq!(
        out(&o),
        "-A -t 10.1.0.1:80 -s wrr\n\
         -a -t 10.1.0.1:80 -r 10.2.0.11:80 -m -w 1\n\
         -A -u 10.1.0.1:53 -s rr\n"
    );
    // `-h` lists every rvs extension after ipvsadm's own usage.
    let help = out(&adm_with(RVSADM, &socket, &["-h"], ""));
    for ext in [
        "--add-laddr",
        "--del-laddr",
        "--get-laddr",
        "--dataplane",
        "--reload",
        "FULLNAT real server",
    ] {
        assert!(help.contains(ext), "{ext} missing from -h:\n{help}");
    }
    // A change made with rvsadm, then a reload of edited files that undoes it.
    let o = adm_with(
        RVSADM,
        &socket,
        &[
            "-e",
            "-t",
            "10.1.0.1:80",
            "-r",
            "10.2.0.11:80",
            "-m",
            "-w",
            "5",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    std::fs::write(
        &rules,
        "-A -t 10.1.0.1:80 -s wrr\n-a -t 10.1.0.1:80 -r 10.2.0.11:80 -m -w 1\n\
         -a -t 10.1.0.1:80 -r 10.2.0.12:80 -m -w 2\n",
    )
    .unwrap();
    let o = adm_with(RVSADM, &socket, &["--reload"], "");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        out(&o),
        "reload: 2 changes\n  \
         edit server TCP  10.1.0.1:80 -> 10.2.0.11:80 -m -w 1 (was -m -w 5) (overrides a change made with rvsadm)\n  \
         add server TCP  10.1.0.1:80 -> 10.2.0.12:80 -m -w 2\n"
    );
    let o = adm_with(RVSADM, &socket, &["--reload"], "");
    assert_eq!(out(&o), "reload: no changes\n");
    // A bad rules line: the reload is refused, naming the file and the line.
    std::fs::write(
        &rules,
        "-A -t 10.1.0.1:80 -s wrr\n-a -t 10.9.9.9:80 -r 10.2.0.11:80\n",
    )
    .unwrap();
    let before = out(&adm_with(RVSADM, &socket, &["-Sn"], ""));
    let o = adm_with(RVSADM, &socket, &["--reload"], "");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "reload refused: {}: line 2: Service not defined\n",
            rules.display()
        )
    );
    assert_eq!(out(&adm_with(RVSADM, &socket, &["-Sn"], "")), before);
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    assert_eq!(child.0.wait().unwrap().code(), Some(0));

    // Every log line is a JSON object; the changes name services as ipvsadm -Ln does.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut messages = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    for want in [
        "rvsadm: edit server TCP  10.1.0.1:80 -> 10.2.0.11:80 -m -w 5",
        "reload: add server TCP  10.1.0.1:80 -> 10.2.0.12:80 -m -w 2",
        "reload refused",
    ] {
        assert!(
            messages.iter().any(|m| m == want),
            "{want} not logged: {messages:#?}"
        );
    }

    // At start, the same bad rules file refuses to start.
    let o = Command::new(RVSD)
        .args(["--no-dataplane", "--check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("{}: line 2: Service not defined", rules.display())),
        "{}",
        err(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
