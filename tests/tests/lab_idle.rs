//! Idle workers that sleep (`[workers] idle_sleep_max_us`): what it costs in wake-up
//! latency. The client pings the VIP (answered by the worker) while the director is
//! idle and while another client keeps it busy (`ping -f` to the VIP), with pure polling
//! and with pauses of up to 200 µs and 1000 µs. Pure polling takes no pause; with pauses
//! an idle worker counts them (`idle_sleeps`), every ping is answered, and the round
//! trips are printed (BENCHMARKS.md, "Idle workers that sleep").
//!
//! Topology: the two-port lab ([`rvs_tests::topo::two_port`], prefix `ril`), a second
//! client address 10.10.0.3 for the load. Needs root.

use std::time::Duration;

use rvs_tests::{can_build_labs, topo, Director, Lab};

const VIP: &str = "10.10.0.100";

fn director(lab: &Lab, max_us: u32) -> Director {
    Director::start_toml(
        lab,
        "d",
        "ril",
        &format!(
            r#"
[[ports]]
name = "dpdk0"
device = "net_af_packet_ril0,iface=d0"
addresses = ["10.10.0.1/24"]

[[ports]]
name = "dpdk1"
device = "net_af_packet_ril1,iface=d1"
addresses = ["10.20.0.1/24"]

[workers]
count = 1
idle_sleep_max_us = {max_us}

[[services]]
proto = "tcp"
vip = "{VIP}:80"
real = [{{ address = "10.20.0.11:9000", forward = "masq" }}]
"#
        ),
    )
}

/// `ping -c n -i 0.05` to the VIP from the client: (received, avg ms, max ms).
fn ping(lab: &Lab, n: usize) -> (usize, f64, f64) {
    let out = lab.try_exec(
        "c",
        &[
            "ping",
            "-q",
            "-c",
            &n.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            "-I",
            "10.10.0.2",
            VIP,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let received = text
        .split(',')
        .find_map(|p| p.trim().strip_suffix(" received").map(str::to_owned))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // rtt min/avg/max/mdev = 0.052/0.101/0.240/0.030 ms
    let rtt: Vec<f64> = text
        .lines()
        .find(|l| l.starts_with("rtt"))
        .and_then(|l| l.split('=').nth(1))
        .map(|v| {
            v.trim()
                .trim_end_matches(" ms")
                .split('/')
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    (
        received,
        rtt.get(1).copied().unwrap_or(f64::NAN),
        rtt.get(2).copied().unwrap_or(f64::NAN),
    )
}

#[test]
fn idle_workers_pause_and_still_answer() {
    if !can_build_labs() {
        eprintln!("skipped: needs root and ip netns");
        return;
    }
    let mut lab = topo::two_port("ril", true, 9000, 9001);
    lab.addr("c", "c0", "10.10.0.3/24");
    for max_us in [0u32, 200, 1000] {
        let d = director(&lab, max_us);
        // Let it settle (and, with pauses, reach its longest one).
        std::thread::sleep(Duration::from_millis(500));
        let before = d.counter("idle_sleeps");
        let idle = ping(&lab, 100);
        let slept = d.counter("idle_sleeps") - before;
        // Busy: a flood from the other address for the length of the second run.
        let flood = lab.spawn(
            "c",
            &["timeout", "8", "ping", "-f", "-q", "-I", "10.10.0.3", VIP],
        );
        std::thread::sleep(Duration::from_millis(300));
        let busy = ping(&lab, 100);
        let _ = flood;
        std::thread::sleep(Duration::from_secs(1));
        eprintln!(
            "idle_sleep_max_us={max_us}: idle ping {}/100 avg {:.3} ms max {:.3} ms ({slept} pauses); busy ping {}/100 avg {:.3} ms max {:.3} ms",
            idle.0, idle.1, idle.2, busy.0, busy.1, busy.2
        );
        assert_eq!(idle.0, 100, "every ping answered while idle");
        assert_eq!(busy.0, 100, "every ping answered while busy");
        if max_us == 0 {
            assert_eq!(slept, 0, "pure polling takes no pause");
        } else {
            assert!(slept > 100, "an idle worker pauses: {slept}");
            // The wake-up costs at most about one pause (plus timer slack and the
            // machine's noise): bounded well below a millisecond on average.
            assert!(idle.1 < 5.0, "idle round trip {} ms", idle.1);
        }
        drop(d);
    }
}
