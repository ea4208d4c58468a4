//! The tutorials' keepalived.confs converted, and every kind of bad input refused by file
//! and line.

use std::path::{Path, PathBuf};

use super::*;
use crate::check::CheckKind;
use crate::{Config, Forward, Proto};

/// The services a TOML `[[services]]` list describes (not validated: checks included).
fn expect(toml_text: &str) -> Vec<Service> {
    #[derive(serde::Deserialize)]
    struct W {
        services: Vec<Service>,
    }
    toml::from_str::<W>(toml_text).unwrap().services
}

fn conf(text: &str) -> Loaded {
    load_str(Path::new("/etc/keepalived/keepalived.conf"), text, "lb1").unwrap()
}

fn err(text: &str) -> String {
    load_str(Path::new("/etc/keepalived/keepalived.conf"), text, "lb1")
        .unwrap_err()
        .to_string()
}

/// The LVS-NAT example of keepalived's documentation (keepalived.conf.SYNOPSIS,
/// doc/samples/keepalived.conf.HTTP_GET.port) and the LVS tutorials: VRRP for the VIP and
/// the gateway, HTTP_GET and TCP_CHECK on two web servers.
const TUTORIAL_NAT: &str = r#"
! Configuration File for keepalived

global_defs {
   notification_email {
     admin@example.com
   }
   notification_email_from lb@example.com
   smtp_server 127.0.0.1
   smtp_connect_timeout 30
   router_id LVS_DEVEL
}

vrrp_sync_group VG1 {
   group {
      VI_1
      VI_GATEWAY
   }
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        10.10.0.100
    }
}

virtual_server 10.10.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 50
    protocol TCP

    real_server 10.20.0.11 8080 {
        weight 3
        inhibit_on_failure
        notify_down "/etc/keepalived/down.sh rs1"
        HTTP_GET {
            url {
              path /index.html
              digest 640205b7b0fc66c1ea91c463fac6334d
            }
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
    real_server 10.20.0.12 8080 {
        weight 1
        TCP_CHECK {
            connect_port 8080
            connect_timeout 2
        }
    }
}
"#;

#[test]
fn the_tutorial_nat_conf_is_its_service_with_checks() {
    let l = conf(TUTORIAL_NAT);
    assert_eq!(
        l.services,
        expect(
            r#"
[[services]]
proto = "tcp"
vip = "10.10.0.100:80"
scheduler = "wrr"
persistent = 50
delay_loop = 6.0

[[services.real]]
address = "10.20.0.11:8080"
forward = "masq"
weight = 3
inhibit_on_failure = true
notify_down = "/etc/keepalived/down.sh rs1"

[[services.real.checks]]
type = "HTTP_GET"
connect_timeout = 3.0
retry = 3
delay_before_retry = 3.0
url = [
  { path = "/index.html", digest = "640205b7b0fc66c1ea91c463fac6334d" },
  { path = "/health", status_code = 200 },
]

[[services.real]]
address = "10.20.0.12:8080"
forward = "masq"
weight = 1

[[services.real.checks]]
type = "TCP_CHECK"
connect_port = 8080
connect_timeout = 2.0
"#
        )
    );
    assert_eq!(
        l.messages(),
        ["/etc/keepalived/keepalived.conf:4: left to keepalived --vrrp: global_defs (line 4), vrrp_sync_group VG1 (line 14), vrrp_instance VI_1 (line 21)"]
    );
    assert_eq!(l.origins[0].name, "virtual_server 10.10.0.100 80");
    assert_eq!(
        l.origins[0].reals[1],
        (Loc { file: 0, line: 61 }, "10.20.0.12 8080".to_string())
    );
}

/// The LVS-DR example of the LVS tutorials, without checkers: what keepalived programs
/// is exactly `ipvsadm -A -t VIP:80 -s rr; -a ... -g -w 1`; a valid rvs configuration.
const TUTORIAL_DR: &str = "
virtual_server 192.168.0.200 80 {
    delay_loop 10
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.168.0.11 80 {
        weight 1
    }
    real_server 192.168.0.12 80 {
        weight 2
    }
}
virtual_server 192.168.0.200 53 {
    lb_algo sh
    sh-port
    lb_kind DR
    protocol UDP
    ops
    real_server 192.168.0.11 53
}
";

#[test]
fn the_tutorial_dr_conf_without_checkers_is_a_valid_table() {
    let l = conf(TUTORIAL_DR);
    assert_eq!(
        l.services,
        expect(
            r#"
[[services]]
proto = "tcp"
vip = "192.168.0.200:80"
scheduler = "rr"
real = [
  { address = "192.168.0.11:80", forward = "route", weight = 1 },
  { address = "192.168.0.12:80", forward = "route", weight = 2 },
]

[[services]]
proto = "udp"
vip = "192.168.0.200:53"
scheduler = "sh"
sched_flags = ["sh-port"]
ops = true
real = [{ address = "192.168.0.11:53", forward = "route", weight = 1 }]
"#
        )
    );
    // delay_loop without checkers does nothing in keepalived either: not carried over.
    assert_eq!(l.services[0].delay_loop, None);
    let cfg = Config {
        services: l.services.clone(),
        ..Config::default()
    };
    cfg.validate().unwrap();
}

/// DPVS's FNAT example (doc/tutorial.md, "Full-NAT with Keepalived"): a local address
/// group with interfaces and a range, a virtual_server_group, lb_kind FNAT.
const DPVS_FNAT: &str = "
global_defs {
    router_id DPVS_DEVEL
}

local_address_group laddr_g1 {
    192.168.100.200 dpdk0    # use DPDK interface
    192.168.100.201-202 dpdk0
}

virtual_server_group 192.168.100.254-80 {
    192.168.100.254 80
}

virtual_server group 192.168.100.254-80 {
    delay_loop 3
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_g1

    real_server 192.168.100.2 80 {
        weight 100
        inhibit_on_failure
        TCP_CHECK {
            nb_sock_retry 2
            connect_timeout 3
            connect_port 80
        }
    }
    real_server 192.168.100.3 80 {
        weight 100
        inhibit_on_failure
        TCP_CHECK {
            retry 2
            connect_timeout 3
        }
    }
}
";

#[test]
fn the_dpvs_fnat_conf_is_a_fullnat_service_with_its_local_addresses() {
    let l = conf(DPVS_FNAT);
    let s = &l.services;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].vip.as_deref(), Some("192.168.100.254:80"));
    assert_eq!(
        s[0].laddrs,
        ["192.168.100.200", "192.168.100.201", "192.168.100.202"]
    );
    assert_eq!(s[0].delay_loop, Some(3.0));
    assert!(s[0].real.iter().all(|r| r.forward == Forward::Fullnat
        && r.weight == 100
        && r.inhibit_on_failure == Some(true)));
    assert_eq!(s[0].real[0].checks[0].retry, Some(2));
    assert_eq!(s[0].real[0].checks[0].connect_port, Some(80));
    assert_eq!(s[0].real[1].checks[0].connect_timeout, Some(3.0));
    assert_eq!(
        l.origins[0].name,
        "virtual_server group 192.168.100.254-80 (192.168.100.254 80)"
    );
}

#[test]
fn a_group_is_one_service_per_member_with_the_same_real_servers() {
    let l = conf(
        "virtual_server_group web {
            10.0.0.1-3 80
            2001:db8::10 443
            fwmark 7
         }
         virtual_server group web {
            lb_algo lc
            lb_kind TUN
            real_server 10.20.0.1 { }
         }",
    );
    let keys: Vec<(Proto, Option<&str>, Option<i64>)> = l
        .services
        .iter()
        .map(|s| (s.proto, s.vip.as_deref(), s.fwmark))
        .collect();
    assert_eq!(
        keys,
        [
            (Proto::Tcp, Some("10.0.0.1:80"), None),
            (Proto::Tcp, Some("10.0.0.2:80"), None),
            (Proto::Tcp, Some("10.0.0.3:80"), None),
            (Proto::Tcp, Some("[2001:db8::10]:443"), None),
            (Proto::Fwmark, None, Some(7)),
        ]
    );
    assert!(l.services.iter().all(|s| s.real.len() == 1
        && s.real[0].address == "10.20.0.1"
        && s.real[0].forward == Forward::Tunnel
        && s.scheduler == "lc"));
}

#[test]
fn every_checker_and_its_keywords_convert_in_documented_units() {
    let l = conf(
        r#"virtual_server 10.0.0.1 53 {
            protocol UDP
            lb_algo rr
            delay_loop 2.5
            retry 4
            connect_timeout 1.5
            quorum 2
            hysteresis 1
            quorum_up "/bin/up"
            quorum_down /bin/down now
            sorry_server 10.0.0.99 53
            alpha
            omega
            virtualhost www.example.com
            real_server 10.0.0.2 53 {
                delay_before_retry 0.5
                notify_up /bin/echo up
                DNS_CHECK {
                    type a
                    name example.com
                }
                UDP_CHECK {
                    payload 01 02 0a
                    require_reply FF00
                }
                MISC_CHECK {
                    misc_path "/usr/local/bin/check 10.0.0.2"
                    misc_timeout 3
                    misc_dynamic
                }
                SSL_GET {
                    url {
                        path /health
                        status_code 204
                    }
                    bindto 10.0.0.1
                    bind_port 5000
                    connect_ip 10.0.0.3
                    warmup 2
                    delay_loop 7
                    enable_sni
                }
            }
        }"#,
    );
    let s = &l.services[0];
    assert_eq!(
        (s.delay_loop, s.quorum, s.hysteresis, s.alpha, s.omega),
        (Some(2.5), Some(2), Some(1), true, true)
    );
    assert_eq!(s.quorum_up.as_deref(), Some("/bin/up"));
    assert_eq!(s.quorum_down.as_deref(), Some("/bin/down now"));
    assert_eq!(s.sorry_server.as_deref(), Some("10.0.0.99:53"));
    assert_eq!(s.virtualhost.as_deref(), Some("www.example.com"));
    let r = &s.real[0];
    assert_eq!(r.notify_up.as_deref(), Some("/bin/echo up"));
    let c = &r.checks;
    assert_eq!(c.len(), 4);
    assert_eq!(
        (
            c[0].kind,
            c[0].dns_type.as_deref(),
            c[0].dns_name.as_deref()
        ),
        (CheckKind::Dns, Some("A"), Some("example.com"))
    );
    // Service and server defaults reach every checker that sets none.
    assert!(c.iter().all(|c| c.retry == Some(4)
        && c.connect_timeout == Some(1.5)
        && c.delay_before_retry == Some(0.5)));
    assert_eq!(c[1].payload.as_deref(), Some("01020a"));
    assert_eq!(c[1].require_reply.as_deref(), Some("ff00"));
    assert_eq!(
        c[2].misc_path.as_deref(),
        Some("/usr/local/bin/check 10.0.0.2")
    );
    assert_eq!((c[2].misc_timeout, c[2].misc_dynamic), (Some(3.0), true));
    assert_eq!(c[3].kind, CheckKind::SslGet);
    assert_eq!(
        c[3].url[0].status_code,
        Some(crate::check::StatusCodes::One(204))
    );
    assert_eq!(
        (
            c[3].bindto.as_deref(),
            c[3].bind_port,
            c[3].connect_ip.as_deref()
        ),
        (Some("10.0.0.1"), Some(5000), Some("10.0.0.3"))
    );
    assert_eq!((c[3].warmup, c[3].delay_loop), (Some(2.0), Some(7.0)));
    // The checks serialise as the TOML schema: what rvsd would read from [[services]].
    let text = toml::to_string(&Config {
        services: l.services.clone(),
        ..Config::default()
    })
    .unwrap();
    let back: Config = toml::from_str(&text).unwrap();
    assert_eq!(back.services, l.services);
}

#[test]
fn unknown_keywords_are_warned_with_file_and_line_and_the_rest_is_read() {
    let l = conf(
        "foo_block {\n  bar 1\n}\nvirtual_server 10.0.0.1 80 {\n  lb_algo rr\n  net_mask 255.255.255.0\n  real_server 10.0.0.2 80 {\n    weight 2\n    colour blue\n    TCP_CHECK {\n      speed 3\n    }\n  }\n}\n",
    );
    assert_eq!(
        l.messages(),
        [
            "/etc/keepalived/keepalived.conf:1: warning: Unknown keyword 'foo_block'",
            "/etc/keepalived/keepalived.conf:6: warning: Unknown keyword 'net_mask'",
            "/etc/keepalived/keepalived.conf:9: warning: Unknown keyword 'colour'",
            "/etc/keepalived/keepalived.conf:11: warning: Unknown keyword 'speed'",
        ]
    );
    assert_eq!(l.services[0].real[0].weight, 2);
    assert_eq!(l.services[0].real[0].checks.len(), 1);
}

#[test]
fn at_host_lines_are_read_on_their_host_only() {
    let text =
        "virtual_server 10.0.0.1 80 {\n@lb1 lb_algo rr\n@lb2 lb_algo lc\n@^lb1 weight 5\n}\n";
    assert_eq!(conf(text).services[0].scheduler, "rr");
    let other = load_str(Path::new("k.conf"), text, "lb2.example.com");
    // On lb2, `@^lb1 weight 5` is read: a virtual_server has no weight in rvs.
    assert_eq!(
        other.unwrap_err().to_string(),
        "k.conf:4: 'weight' is not supported by rvs: a virtual_server has no weight in rvs"
    );
}

#[test]
fn bad_input_is_refused_naming_file_and_line() {
    let cases: &[(&str, &str)] = &[
        // Braces.
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo rr\n real_server 10.0.0.2 80 {\n weight 1\n}\n",
            ":1: the block of 'virtual_server' (line 1) is not closed: missing '}' (1 block open at the end)",
        ),
        ("virtual_server 10.0.0.1 80 {\n}\n}\n", ":3: extra '}' found (no block is open)"),
        ("\n{\n", ":2: '{' without a keyword before it"),
        (
            "virtual_server 10.0.0.1 80 { } {\n}",
            ":1: unexpected '{' after the block of 'virtual_server' (line 1)",
        ),
        ("virtual_server 10.0.0.1 80\n", ":1: 'virtual_server' needs a '{ }' block"),
        // Values.
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo\n}",
            ":2: 'lb_algo' is missing a value",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  weight 1 2\n }\n}",
            ":3: 'weight 1 2': too many values",
        ),
        (
            "virtual_server 10.0.0.300 80 {\n}",
            ":1: '10.0.0.300' is not an IP address",
        ),
        (
            "virtual_server 10.0.0.1 http {\n}",
            ":1: invalid number 'http'",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  weight 70000\n }\n}",
            ":3: number '70000' outside range [0, 65535]",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n delay_loop soon\n}",
            ":2: invalid number of seconds 'soon'",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_algo roundrobin\n}",
            ":2: lb_algo: 'roundrobin' is not a scheduler (one of rr wrr lc wlc sed nq sh dh lblc lblcr mh fo ovf twos)",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind SNAT\n}",
            ":2: lb_kind: 'SNAT' is not a forwarding method rvs takes here (NAT, DR, TUN, FNAT)",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n quorum_up \"/bin/up\n}",
            ":2: unterminated quote: 'quorum_up \"/bin/up'",
        ),
        (
            "virtual_server group nope {\n}",
            ":1: virtual_server_group nope is not defined",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n laddr_group_name g\n}",
            ":2: local_address_group g is not defined",
        ),
        (
            "virtual_server_group g {\n 10.0.0.9-3 80\n}",
            ":2: '10.0.0.9-3' has a range end below its start",
        ),
        (
            "virtual_server_group g {\n 10.0.0.0/16 80\n}",
            ":2: '10.0.0.0/16' has more than 256 addresses",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n path /\n digest 1234\n }\n  }\n }\n}",
            ":6: digest: '1234' is not an MD5 digest (32 hex digits)",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n path /\n status_code 200-299 3xx\n }\n  }\n }\n}",
            ":6: status_code: \"3xx\" is not a status code (100..=599)",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n path /\n status_code 299-200\n }\n  }\n }\n}",
            ":6: status_code: \"299-200\" is a range that runs downward",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   connect_timeout 3\n  }\n }\n}",
            ":3: HTTP_GET has no url",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  UDP_CHECK {\n   payload 0g\n  }\n }\n}",
            ":4: 'payload': '0g' is not hex digits in pairs",
        ),
        // Known to keepalived, not done by rvs: refused by name.
        (
            "virtual_server 10.0.0.1 80 {\n sorry_server 10.0.0.9\n}",
            ":2: 'sorry_server' is missing a value",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n persistence_engine sip\n}",
            ":2: 'persistence_engine' is not supported by rvs: rvs has no persistence engines",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n sorry_server 10.0.0.9 80\n sorry_server_inhibit\n}",
            ":3: 'sorry_server_inhibit' is not supported by rvs: rvs removes the sorry server when the quorum is back",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n ha_suspend\n}",
            ":2: 'ha_suspend' is not supported by rvs: rvs checks whether the VIP is up or not",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   virtualhost www\n  }\n }\n}",
            ":4: 'virtualhost' is not supported by rvs: not a keyword of TCP_CHECK",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  PING_CHECK { }\n }\n}",
            ":3: 'PING_CHECK' is not supported by rvs: rvs does not run this checker",
        ),
        (
            "virtual_server 10.0.0.1 80 {\n lb_kind TUN type gue port 6080\n}",
            ":2: lb_kind: 'type': rvs's keepalived.conf takes IPIP tunnels only (GUE, GRE and checksum options: use ipvsadm)",
        ),
        (
            "$VIP=10.0.0.1\n",
            ":1: keepalived's parameter definitions and sequences ('$VIP=10.0.0.1') are not supported by rvs: write the values out",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            err(text),
            format!("/etc/keepalived/keepalived.conf{want}"),
            "for {text:?}"
        );
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvs-keepalived-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn includes_follow_globs_relative_to_the_including_file() {
    let d = TempDir::new("inc");
    let root = &d.0;
    std::fs::create_dir_all(root.join("conf.d")).unwrap();
    std::fs::write(
        root.join("keepalived.conf"),
        "global_defs {\n}\ninclude conf.d/*.conf\ninclude groups/laddr.conf\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("groups")).unwrap();
    std::fs::write(
        root.join("groups/laddr.conf"),
        "local_address_group lg {\n 10.0.0.50\n}\n",
    )
    .unwrap();
    // Read in name order: 10-web before 20-dns; the .bak and the directory are not.
    std::fs::write(
        root.join("conf.d/20-dns.conf"),
        "virtual_server 10.0.0.1 53 {\n protocol UDP\n lb_algo rr\n real_server 10.0.0.3 53\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("conf.d/10-web.conf"),
        "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind FNAT\n laddr_group_name lg\n real_server 10.0.0.2 80\n frob\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("conf.d/old.conf.bak"), "garbage {").unwrap();
    std::fs::create_dir_all(root.join("conf.d/dir.conf")).unwrap();
    let l = load(&root.join("keepalived.conf")).unwrap();
    let vips: Vec<&str> = l.services.iter().filter_map(|s| s.vip.as_deref()).collect();
    assert_eq!(vips, ["10.0.0.1:80", "10.0.0.1:53"]);
    assert_eq!(l.services[0].laddrs, ["10.0.0.50"]);
    // A warning in an included file names that file and its line.
    assert!(l.messages().contains(&format!(
        "{}:6: warning: Unknown keyword 'frob'",
        root.join("conf.d/10-web.conf").display()
    )));

    // A syntax error in an included file names that file.
    std::fs::write(
        root.join("conf.d/30-bad.conf"),
        "virtual_server 10.0.0.1 81 {\n",
    )
    .unwrap();
    assert_eq!(
        load(&root.join("keepalived.conf")).unwrap_err().to_string(),
        format!(
            "{}:1: the block of 'virtual_server' (line 1) is not closed: missing '}}' (1 block open at the end)",
            root.join("conf.d/30-bad.conf").display()
        )
    );
    std::fs::remove_file(root.join("conf.d/30-bad.conf")).unwrap();

    // An include that cannot be read names the including file and line.
    std::fs::write(
        root.join("keepalived.conf"),
        "\ninclude /nonexistent/rvs-test.conf\n",
    )
    .unwrap();
    assert_eq!(
        load(&root.join("keepalived.conf")).unwrap_err().to_string(),
        format!(
            "{}:2: include /nonexistent/rvs-test.conf: /nonexistent/rvs-test.conf: cannot read: No such file or directory (os error 2)",
            root.join("keepalived.conf").display()
        )
    );
    // A glob matching nothing is a warning (keepalived logs it and goes on).
    std::fs::write(root.join("keepalived.conf"), "include none.d/*.conf\n").unwrap();
    assert_eq!(
        load(&root.join("keepalived.conf")).unwrap().messages(),
        [format!(
            "{}:1: warning: include none.d/*.conf: no file matches",
            root.join("keepalived.conf").display()
        )]
    );
    // A file including itself stops at the include depth.
    std::fs::write(root.join("keepalived.conf"), "include keepalived.conf\n").unwrap();
    let e = load(&root.join("keepalived.conf")).unwrap_err().to_string();
    assert!(
        e.contains("nested includes (does a file include itself?)"),
        "{e}"
    );
    // A device is not a configuration file (keepalived reads regular files only).
    std::fs::write(root.join("keepalived.conf"), "include /dev/zero\n").unwrap();
    assert_eq!(
        load(&root.join("keepalived.conf")).unwrap_err().to_string(),
        format!(
            "{}:1: include /dev/zero: /dev/zero: cannot read: not a regular file",
            root.join("keepalived.conf").display()
        )
    );
    // The main file missing.
    let e = load(&root.join("missing.conf")).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            root.join("missing.conf").display()
        )
    );
}

#[test]
fn a_validation_error_is_told_by_its_keepalived_line() {
    let l = conf("virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind FNAT\n real_server 10.0.0.2 80 {\n }\n}\n");
    let cfg = Config {
        services: l.services.clone(),
        ..Config::default()
    };
    let e = cfg.validate().unwrap_err();
    assert_eq!(
        l.locate(&e, 0).unwrap(),
        "/etc/keepalived/keepalived.conf:4: real_server 10.0.0.2 80 of virtual_server 10.0.0.1 80: forward: fullnat needs local addresses: set laddrs on the service"
    );
}

#[test]
fn dpvs_proxy_protocol_and_rvs_toa_in_a_virtual_server() {
    let fnat = |extra: &str| {
        format!(
            "local_address_group lg {{\n 10.0.0.50\n}}\n\
             virtual_server 10.0.0.1 80 {{\n lb_algo rr\n lb_kind FNAT\n laddr_group_name lg\n{extra} real_server 10.0.0.2 80\n}}\n"
        )
    };
    let l = conf(&fnat(" proxy_protocol v2\n toa\n"));
    assert_eq!(l.services[0].proxy_protocol, "v2");
    assert!(l.services[0].toa);
    assert!(l.messages().is_empty(), "{:?}", l.messages());
    let l = conf(&fnat(" proxy_protocol V1\n toa off\n"));
    assert_eq!(l.services[0].proxy_protocol(), crate::ProxyProtocol::V1);
    assert!(!l.services[0].toa);
    let l = conf(&fnat(" proxy_protocol disable\n"));
    assert_eq!(l.services[0].proxy_protocol, "disable");
    let l = conf(&fnat(""));
    assert_eq!(
        (l.services[0].proxy_protocol.as_str(), l.services[0].toa),
        ("disable", false)
    );
    // Converted, they are what the TOML's keys say.
    let cfg = Config {
        services: conf(&fnat(" proxy_protocol v2\n toa\n")).services,
        ..Config::default()
    };
    cfg.validate().unwrap();
    let text = toml::to_string(&cfg).unwrap();
    assert!(
        text.contains("proxy_protocol = \"v2\"\ntoa = true\n"),
        "{text}"
    );

    let f = "/etc/keepalived/keepalived.conf";
    for (extra, want) in [
        (" proxy_protocol v3\n", ":8: proxy_protocol: 'v3' is not v1, v2 or disable"),
        (" proxy_protocol v2-insecure\n", ":8: proxy_protocol: 'v2-insecure' is not supported: rvs always puts its own header first"),
        (" proxy_protocol\n", ":8: 'proxy_protocol' is missing a value"),
        (" proxy_protocol v1 v2\n", ":8: 'proxy_protocol v1 v2': too many values"),
        (" toa maybe\n", ":8: 'toa': 'maybe' is not on/off, true/false or yes/no"),
    ] {
        assert_eq!(err(&fnat(extra)), format!("{f}{want}"), "{extra}");
    }
    // The rules of the TOML's keys, told by the virtual_server's line.
    let l = conf(
        "virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n proxy_protocol v1\n real_server 10.0.0.2 80\n}\n",
    );
    let e = Config {
        services: l.services.clone(),
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        l.locate(&e, 0).unwrap(),
        format!("{f}:1: virtual_server 10.0.0.1 80: proxy_protocol: \"v1\" needs FULLNAT real servers: real[0] \"10.0.0.2:80\" forwards by masq")
    );
}

/// xorshift64*: a fixed sequence, so that a failure is reproducible.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_bytes_and_mangled_confs_never_panic() {
    let mut next = rng(0x9e37_79b9_7f4a_7c15);
    let alphabet: &[u8] = b"{}\"#!\\ \n\t@$~-/.:0123456789abcfxyzvirtual_server real_server";
    for _ in 0..3000 {
        let len = (next() % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 3 < 1 {
                    (r >> 8) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str(Path::new("fuzz.conf"), &text, "lb1");
    }
    // Every tutorial with words cut out, swapped and braces dropped.
    for base in [TUTORIAL_NAT, TUTORIAL_DR, DPVS_FNAT] {
        let words: Vec<&str> = base.split_inclusive(char::is_whitespace).collect();
        for _ in 0..500 {
            let mut w = words.clone();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % w.len();
                match next() % 3 {
                    0 => {
                        w.remove(i);
                    }
                    1 => {
                        let j = (next() as usize) % w.len();
                        w.swap(i, j);
                    }
                    _ => w.insert(i, ["{ ", "} ", "\"", "0 ", "-1 ", "999999999999 "][i % 6]),
                }
            }
            let _ = load_str(Path::new("fuzz.conf"), &w.concat(), "lb1");
        }
    }
}
