//! `rvs-demo`: the seeds' first lab, live. Builds a lab of network namespaces (a client,
//! the director running rvsd on DPDK `net_af_packet` ports, two real servers running
//! HTTP servers that answer with their own name), configures the service with ipvsadm
//! commands exactly as the tutorials do, curls the VIP from the client several times
//! printing which real server answered, prints `ipvsadm -Ln` and `-Lnc`, and tears the
//! lab down.
//!
//! Usage: `rvs-demo [--mode nat|dr|tun|fullnat] [--scheduler rr|wrr|wlc|sh|…] [--requests N]`
//! (root).

use std::os::unix::fs::symlink;
use std::process::{Command, ExitCode};

use rvs_tests::topo::{
    one_segment, one_segment_director, tun_real_server, two_port, two_port_director, VIP1, VIP2,
};
use rvs_tests::{bin, can_build_labs, Director};

fn usage() -> ExitCode {
    eprintln!("usage: rvs-demo [--mode nat|dr|tun|fullnat] [--scheduler NAME] [--requests N]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut mode = "nat".to_owned();
    let mut sched = "rr".to_owned();
    let mut requests = 6usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mode" | "-m" => mode = args.next().unwrap_or_default(),
            "--scheduler" | "-s" => sched = args.next().unwrap_or_default(),
            "--requests" | "-n" => requests = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            _ => return usage(),
        }
    }
    if !["nat", "dr", "tun", "fullnat"].contains(&mode.as_str())
        || requests == 0
        || sched.is_empty()
    {
        return usage();
    }
    if !can_build_labs() {
        eprintln!("rvs-demo: needs root and `ip netns` (network namespaces)");
        return ExitCode::FAILURE;
    }
    let prefix = "rvsdemo";
    println!(
        "### rvs demo: LVS-{} with the {} scheduler",
        mode.to_uppercase(),
        sched
    );
    let (lab, vip, d, reals, flag) = match mode.as_str() {
        "nat" | "fullnat" => {
            let lab = two_port(prefix, mode == "nat", 8080, 80);
            println!("lab: client 10.10.0.2 --- [dpdk0 10.10.0.1, VIP {VIP2}] rvsd [dpdk1 10.20.0.1] --- rs1 10.20.0.11:8080, rs2 10.20.0.12:80");
            let d = two_port_director(&lab, prefix, 1);
            let flag = if mode == "nat" { "-m" } else { "-b" };
            (lab, VIP2, d, ["10.20.0.11:8080", "10.20.0.12:80"], flag)
        }
        _ => {
            let mut lab = one_segment(prefix, false);
            for (ns, name) in [("r1", "rs1"), ("r2", "rs2")] {
                if mode == "dr" {
                    lab.real_server_vip(ns, VIP1, "lo");
                } else {
                    tun_real_server(&mut lab, ns, VIP1);
                }
                lab.name_server(ns, std::net::Ipv4Addr::UNSPECIFIED, 80, name);
            }
            println!("lab: client 10.30.0.2, rvsd dpdk0 10.30.0.1 (VIP {VIP1}), rs1 10.30.0.11, rs2 10.30.0.12 on one segment; VIP on the real servers' {}", if mode == "dr" { "lo (arp_ignore=1, arp_announce=2)" } else { "tunnel device" });
            let d = one_segment_director(&lab, prefix, false);
            let flag = if mode == "dr" { "-g" } else { "-i" };
            (lab, VIP1, d, ["10.30.0.11:80", "10.30.0.12:80"], flag)
        }
    };
    // ipvsadm is rvsadm under its familiar name.
    let dir = std::env::temp_dir().join(format!("rvs-demo-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let ipvsadm = dir.join("ipvsadm");
    let _ = std::fs::remove_file(&ipvsadm);
    if let Err(e) = symlink(bin("rvsadm"), &ipvsadm) {
        eprintln!("rvs-demo: cannot link ipvsadm: {e}");
        return ExitCode::FAILURE;
    }
    let run = |d: &Director, args: &[&str]| -> bool {
        println!("# ipvsadm {}", args.join(" "));
        let out = Command::new(&ipvsadm)
            .args(args)
            .env("RVS_SOCKET", d.socket())
            .output();
        match out {
            Ok(o) => {
                print!("{}", String::from_utf8_lossy(&o.stdout));
                eprint!("{}", String::from_utf8_lossy(&o.stderr));
                o.status.success()
            }
            Err(e) => {
                eprintln!("rvs-demo: {e}");
                false
            }
        }
    };
    let svc = format!("{vip}:80");
    let mut ok = run(&d, &["-A", "-t", &svc, "-s", &sched]);
    for r in reals {
        ok &= run(&d, &["-a", "-t", &svc, "-r", r, flag]);
    }
    if mode == "fullnat" {
        ok &= run(&d, &["--add-laddr", "-z", "10.20.0.200", "-t", &svc]);
    }
    let mut answered = 0;
    for _ in 0..requests {
        println!("[root@client ~]# curl http://{vip}/");
        match lab.curl("c", &format!("http://{vip}/")) {
            Some(body) => {
                print!("{body}");
                answered += 1;
            }
            None => println!("curl: (28) no answer"),
        }
    }
    ok &= run(&d, &["-Ln"]);
    ok &= run(&d, &["-Lnc"]);
    ok &= run(&d, &["-Ln", "--stats"]);
    drop(d);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    println!("### {answered}/{requests} requests answered; lab removed");
    if ok && answered == requests {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
