//! End-to-end: the real `rvsd --no-dataplane` reading an operator's keepalived.conf
//! (`[control] keepalived_conf`) with a NAT and a DR `virtual_server` without checkers:
//! `ipvsadm -Ln`/`-Sn` (the real `rvsadm`) show the table keepalived would program, a
//! reload applies an edit of keepalived.conf, and a keepalived.conf with a syntax error is
//! refused at start and at reload, naming the file and line.

use std::process::{Command, Stdio};

mod common;

use common::{adm, text, wait_for_socket, Dir, Kill, RVSD};

const KEEPALIVED_CONF: &str = r#"! Configuration File for keepalived

global_defs {
   router_id LVS_DEVEL
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    virtual_ipaddress {
        10.10.0.100
    }
}

# LVS-NAT: web servers behind the director.
virtual_server 10.10.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 300
    protocol TCP
    real_server 10.20.0.11 8080 {
        weight 3
    }
    real_server 10.20.0.12 8080 {
        weight 1
    }
}

include conf.d/*.conf
"#;

const DR_CONF: &str = "# LVS-DR: the real servers hold the VIP on lo.
virtual_server 10.10.0.101 443 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    colour blue
    real_server 10.20.0.21 443 {
        weight 1
    }
    real_server 10.20.0.22 443 {
        weight 1
    }
}
";

#[test]
fn rvsd_runs_the_virtual_servers_of_keepalived_conf_and_reloads_them() {
    let dir = Dir::new("ka-e2e");
    std::fs::create_dir_all(dir.0.join("conf.d")).unwrap();
    let ka = dir.0.join("keepalived.conf");
    let dr = dir.0.join("conf.d/dr.conf");
    let socket = dir.0.join("rvsd.sock");
    let cfg = dir.0.join("rvsd.toml");
    std::fs::write(&ka, KEEPALIVED_CONF).unwrap();
    std::fs::write(&dr, DR_CONF).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[control]\nsocket = \"{}\"\nkeepalived_conf = \"{}\"\n",
            socket.display(),
            ka.display()
        ),
    )
    .unwrap();

    // --check: valid, and keepalived.conf's notices named by file and line.
    let o = Command::new(RVSD)
        .args(["--no-dataplane", "--check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!(
            "rvsd: keepalived.conf: {}:3: left to keepalived --vrrp: global_defs (line 3), vrrp_instance VI_1 (line 7)\n\
             rvsd: keepalived.conf: {}:6: warning: Unknown keyword 'colour'\n",
            ka.display(),
            dr.display()
        )
    );

    let _rvsd = Kill(
        Command::new(RVSD)
            .args(["--no-dataplane", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&socket, 20);
    // The table keepalived programs for this file (ipvsadm -Ln after keepalived starts).
    assert_eq!(
        text(&adm(&socket, &["-Ln"]).stdout),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  10.10.0.100:80 wrr persistent 300\n  \
         -> 10.20.0.11:8080              Masq    3      0          0         \n  \
         -> 10.20.0.12:8080              Masq    1      0          0         \n\
         TCP  10.10.0.101:443 rr\n  \
         -> 10.20.0.21:443               Route   1      0          0         \n  \
         -> 10.20.0.22:443               Route   1      0          0         \n"
    );
    assert_eq!(
        text(&adm(&socket, &["-Sn"]).stdout),
        "-A -t 10.10.0.100:80 -s wrr -p 300\n\
         -a -t 10.10.0.100:80 -r 10.20.0.11:8080 -m -w 3\n\
         -a -t 10.10.0.100:80 -r 10.20.0.12:8080 -m -w 1\n\
         -A -t 10.10.0.101:443 -s rr\n\
         -a -t 10.10.0.101:443 -r 10.20.0.21:443 -g -w 1\n\
         -a -t 10.10.0.101:443 -r 10.20.0.22:443 -g -w 1\n"
    );

    // Edit keepalived.conf (a weight, a server gone) and reload: the difference applied.
    std::fs::write(
        &ka,
        KEEPALIVED_CONF.replace("weight 3", "weight 5").replace(
            "    real_server 10.20.0.12 8080 {\n        weight 1\n    }\n",
            "",
        ),
    )
    .unwrap();
    let o = adm(&socket, &["--reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "reload: 2 changes\n  \
         remove server TCP  10.10.0.100:80 -> 10.20.0.12:8080\n  \
         edit server TCP  10.10.0.100:80 -> 10.20.0.11:8080 -m -w 5 (was -m -w 3)\n"
    );
    let edited = "-A -t 10.10.0.100:80 -s wrr -p 300\n\
         -a -t 10.10.0.100:80 -r 10.20.0.11:8080 -m -w 5\n\
         -A -t 10.10.0.101:443 -s rr\n\
         -a -t 10.10.0.101:443 -r 10.20.0.21:443 -g -w 1\n\
         -a -t 10.10.0.101:443 -r 10.20.0.22:443 -g -w 1\n";
    assert_eq!(text(&adm(&socket, &["-Sn"]).stdout), edited);

    // A syntax error in the included file: the reload is refused by file and line, and
    // the table is unchanged.
    std::fs::write(
        &dr,
        DR_CONF.replace(
            "        weight 1\n    }\n    real_server 10.20.0.22",
            "        weight 1\n    real_server 10.20.0.22",
        ),
    )
    .unwrap();
    let o = adm(&socket, &["--reload"]);
    assert_eq!(o.status.code(), Some(1));
    let refusal = format!(
        "{}: control.keepalived_conf: {}:2: the block of 'virtual_server' (line 2) is not closed: missing '}}' (1 block open at the end)",
        cfg.display(),
        dr.display()
    );
    assert_eq!(text(&o.stderr), format!("reload refused: {refusal}\n"));
    assert_eq!(text(&adm(&socket, &["-Sn"]).stdout), edited);

    // A bad address in keepalived.conf itself.
    std::fs::write(&dr, DR_CONF).unwrap();
    std::fs::write(
        &ka,
        KEEPALIVED_CONF.replace("10.20.0.12 8080", "10.20.0.312 8080"),
    )
    .unwrap();
    let o = adm(&socket, &["--reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "reload refused: {}: control.keepalived_conf: {}:27: '10.20.0.312' is not an IP address\n",
            cfg.display(),
            ka.display()
        )
    );
    assert_eq!(text(&adm(&socket, &["-Sn"]).stdout), edited);

    // At start, the same file is refused by file and line, with --check and without.
    for check in [true, false] {
        let mut c = Command::new(RVSD);
        c.arg("--no-dataplane");
        if check {
            c.arg("--check");
        }
        let o = c
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            text(&o.stderr),
            format!(
                "rvsd: invalid configuration: {}: control.keepalived_conf: {}:27: '10.20.0.312' is not an IP address\n",
                cfg.display(),
                ka.display()
            )
        );
    }
}
