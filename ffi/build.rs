//! Build script of dpdk-sys: pkg-config libdpdk -> bindgen + the C shim.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output()
        .expect("dpdk-sys: pkg-config is not installed (run scripts/setup)");
    if !out.status.success() {
        panic!(
            "dpdk-sys: `pkg-config {} libdpdk` failed: {} (is libdpdk-dev installed? run scripts/setup)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = pkg_config(&["--cflags"]);
    let libs = pkg_config(&["--libs"]);
    let version = pkg_config(&["--modversion"]);
    println!(
        "cargo:rustc-env=RVS_DPDK_VERSION={}",
        version.first().map(String::as_str).unwrap_or("unknown")
    );

    // The C shim: DPDK's static-inline functions as real symbols.
    let mut cc = cc::Build::new();
    cc.file("shim.c").include(".").opt_level(3).warnings(false);
    let mut it = cflags.iter();
    while let Some(flag) = it.next() {
        if flag == "-include" {
            if let Some(h) = it.next() {
                cc.flag("-include").flag(h);
            }
        } else {
            cc.flag(flag);
        }
    }
    cc.compile("rvs_dpdk_shim");

    // Link flags from pkg-config.
    for flag in &libs {
        if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }

    // The poll-mode drivers rvs uses (net_af_packet, net_af_xdp, net_pcap, net_null,
    // net_ring, net_tap) and the ring mempool driver are shared-object plugins in Debian's
    // build: nothing references their symbols, so linking them would be dropped by
    // --as-needed. EAL loads them from its plugin directory; rvs passes that directory
    // explicitly with `-d` (see `rvs_dataplane::dpdk::Eal`), so they register on any
    // install whose EAL default differs. net_ring is also linked for rte_eth_from_rings.
    println!("cargo:rustc-link-lib=rte_net_ring");
    let pmd_dir = pkg_config(&["--variable=libdir"])
        .into_iter()
        .map(PathBuf::from)
        .filter_map(|dir| std::fs::read_dir(dir.join("dpdk")).ok())
        .flat_map(|rd| rd.filter_map(Result::ok))
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pmds-"))
        });
    println!(
        "cargo:rustc-env=RVS_DPDK_PMD_DIR={}",
        pmd_dir.as_deref().and_then(|p| p.to_str()).unwrap_or("")
    );

    // Bindings. `-march`/`-include` are compiler flags bindgen's clang understands too.
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(cflags.iter())
        .clang_arg("-I.")
        .allowlist_function("rte_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("RTE_.*")
        // DPDK 22.11 packed+aligned unions bindgen cannot lay out: keep them opaque.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_flow_item_l2tpv2")
        .opaque_type("rte_flow_item_gtp_psc")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_psc_.*")
        .derive_debug(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("dpdk-sys: bindgen failed on wrapper.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("dpdk-sys: cannot write bindings.rs");
}
