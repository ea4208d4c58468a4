//! The exception path end to end: rvsd creates a kernel tap (`exception_iface`) for its
//! client port; the director namespace gives the tap a host address; the client pings
//! that address and talks TCP to a kernel listener on it (answers from the director's
//! kernel, through the tap and the DPDK port), while service traffic to the VIP is still
//! forwarded by the dataplane.
//!
//! Topology (prefix `rex`):
//! ```text
//!  c c0 10.10.0.2 ── d d0 [dpdk0 10.10.0.1, tap rvs0: host 10.10.0.5] d1 [dpdk1 10.20.0.1] ── sw ── r1 10.20.0.11
//! ```
//! Needs root; skipped where network namespaces cannot be made.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rvs_tests::{can_build_labs, Director, Lab};

const HOST: &str = "10.10.0.5";

#[test]
fn kernel_answers_host_address_through_tap_and_services_still_work() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = Lab::new("rex");
    for ns in ["c", "d", "sw", "r1"] {
        lab.add_ns(ns);
    }
    lab.veth("c", "c0", "d", "d0");
    lab.veth("d", "d1", "sw", "d1p");
    lab.veth("r1", "r0", "sw", "r1p");
    lab.bridge("sw", "br0", &["d1p", "r1p"]);
    lab.addr("c", "c0", "10.10.0.2/24");
    lab.default_route("c", Ipv4Addr::new(10, 10, 0, 1));
    lab.addr("r1", "r0", "10.20.0.11/24");
    lab.default_route("r1", Ipv4Addr::new(10, 20, 0, 1));
    lab.name_server("r1", Ipv4Addr::new(10, 20, 0, 11), 9000, "rs1");

    let d = Director::start_toml(
        &lab,
        "d",
        "rex",
        r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_rex0,iface=d0"
addresses = ["10.10.0.1/24"]
exception_iface = "rvs0"

[[ports]]
name = "dpdk1"
device = "net_af_packet_rex1,iface=d1"
addresses = ["10.20.0.1/24"]

[workers]
count = 2
"#,
    );
    // The tap exists once rvsd is up; the host address is the kernel's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab
        .try_exec("d", &["ip", "link", "show", "rvs0"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "no tap rvs0: {}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.exec("d", &["ip", "link", "set", "rvs0", "up"]);
    lab.addr("d", "rvs0", &format!("{HOST}/24"));
    lab.kernel_off("d", "d0");
    let tap_mac = lab
        .exec("d", &["cat", "/sys/class/net/rvs0/address"])
        .stdout;
    let port_mac = lab.exec("d", &["cat", "/sys/class/net/d0/address"]).stdout;
    assert_eq!(tap_mac, port_mac, "the tap carries the port's MAC");

    // Ping: the director's kernel answers (the dataplane does not own 10.10.0.5).
    let ping = lab.try_exec("c", &["ping", "-c", "3", "-i", "0.2", "-W", "2", HOST]);
    let ping_out = String::from_utf8_lossy(&ping.stdout).into_owned();
    eprintln!("{ping_out}");
    assert!(
        ping.status.success(),
        "ping {HOST}: {ping_out}\n{}",
        d.log()
    );
    assert!(ping_out.contains("3 received"), "{ping_out}");
    assert!(
        !ping_out.contains("DUP"),
        "one answer per request: {ping_out}"
    );

    // TCP to a kernel listener on the host address.
    lab.name_server("d", HOST.parse().unwrap(), 2222, "kernel");
    let body = lab.curl("c", &format!("http://{HOST}:2222/"));
    eprintln!("kernel listener answered: {body:?}");
    assert!(
        body.as_deref()
            .unwrap_or("")
            .starts_with("kernel client=10.10.0.2:"),
        "{body:?} {}",
        d.rvsadm(&["--dataplane"])
    );
    // A raw TCP exchange with nc too: the kernel echoes a line back.
    lab.spawn(
        "d",
        &["python3", "-c", "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('10.10.0.5', 2223)); s.listen(4)\nwhile True:\n    c,_=s.accept(); c.sendall(b'echo:'+c.recv(100)); c.close()"],
    );
    lab.wait_tcp("d", HOST.parse().unwrap(), 2223);
    let nc = lab.try_exec(
        "c",
        &[
            "sh",
            "-c",
            &format!("echo hello | timeout 5 nc -w 2 {HOST} 2223"),
        ],
    );
    let nc_out = String::from_utf8_lossy(&nc.stdout).into_owned();
    eprintln!("nc: {nc_out:?}");
    assert!(
        nc_out.starts_with("echo:hello"),
        "nc through the tap: {nc_out:?}"
    );

    // Service traffic is still the dataplane's.
    d.rvsadm(&["-A", "-t", "10.10.0.100:80", "-s", "rr"]);
    d.rvsadm(&["-a", "-t", "10.10.0.100:80", "-r", "10.20.0.11:9000", "-m"]);
    let svc = lab.curl("c", "http://10.10.0.100/");
    assert!(
        svc.as_deref()
            .unwrap_or("")
            .starts_with("rs1 client=10.10.0.2:"),
        "{svc:?}"
    );
    let listing = d.rvsadm(&["-Lnc"]);
    assert!(listing.contains("10.20.0.11:9000"), "{listing}");
    let dp = d.rvsadm(&["--dataplane"]);
    eprintln!("{dp}");
    let (to_k, from_k) = (d.counter("to_kernel"), d.counter("from_kernel"));
    eprintln!("exception path: to_kernel={to_k} from_kernel={from_k}");
    assert!(to_k >= 10 && from_k >= 10, "{dp}");
    // The kernel did not see the service traffic: the dataplane forwarded it.
    assert!(d.counter("in") >= 3, "{dp}");
}
