//! `rvs-control`: the rvsd daemon and the rvsadm CLI.
//!
//! | module | what |
//! |---|---|
//! | [`ipvs`] | the IPVS table and the kernel's command semantics and errors |
//! | [`popt`] | the popt-compatible option scanner ipvsadm's grammar is read with |
//! | [`cli`] | ipvsadm 1.31's command-line grammar and client-side errors |
//! | [`format`] | ipvsadm's listings, byte for byte |
//! | [`names`] | `/etc/services` and `/etc/hosts` lookups, `inet_aton` |
//! | [`backend`] | the [`backend::Backend`] trait the dataplane implements, counters, connections |
//! | [`dpdk_backend`] | the DPDK dataplane behind rvsd |
//! | [`estimator`] | the kernel's 2-second rate estimator |
//! | [`proto`] | rvsd's socket protocol (newline-delimited JSON) and client |
//! | [`daemon`] | rvsd's state: table + backend + zero baselines + estimators |
//! | [`server`] | rvsd's socket server |
//! | [`reload`] | reading the configuration file again while rvsd runs |
//! | [`metrics`] | the Prometheus metrics endpoint |
//! | [`notify`] | systemd's readiness protocol (`sd_notify`) |
//! | [`man`] | rvsadm's man page, from the text `rvsadm -h` prints |
//! | [`checks`] | real-server health checks (keepalived's checkers) and their table effect |
//! | [`bgp`] | BGP announcements through BIRD: the announced set, the routes file, `birdc configure` |
//! | [`adm`] | rvsadm's main logic, including `-R` restore |

#![forbid(unsafe_code)]

pub mod adm;
pub mod backend;
pub mod bgp;
pub mod checks;
pub mod cli;
pub mod daemon;
pub mod dpdk_backend;
pub mod estimator;
pub mod format;
pub mod ipvs;
pub mod man;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod popt;
pub mod proto;
pub mod reload;
pub mod server;
pub mod sync;
