//! `rvs-dataplane`: the packet-processing half of rvs.
//!
//! Pure modules (no DPDK): [`flow`] the shared vocabulary (protocol, address, 5-tuple,
//! forwarding method, TCP flags), [`wire`] header views and checksums, [`buf`] the packet-buffer
//! trait, [`forward`] the NAT/DR/TUN/FULLNAT rewrites, [`service`] the virtual-service
//! snapshot, [`sched`] the IPVS schedulers, [`conn`] the per-core session table and
//! [`sync`] the IPVS-compatible connection sync to a standby director.
//! With the `dpdk` feature (default): [`dpdk`], the one safe wrapper over `dpdk-sys`.

#![deny(unsafe_code)]

pub mod acl;
pub mod buf;
pub mod conn;
#[cfg(feature = "dpdk")]
pub mod dpdk;
#[cfg(feature = "dpdk")]
pub mod engine;
pub mod flow;
pub mod forward;
pub mod frag;
pub mod laddr;
pub mod mark;
pub mod neigh;
pub mod pipeline;
pub mod route;
pub mod sched;
pub mod service;
pub mod steer;
pub mod sync;
pub mod wire;

/// A cache hint for memory a burst will touch soon ([`dpdk::prefetch0`]; without DPDK a
/// no-op).
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(feature = "dpdk")]
    dpdk::prefetch0(r);
    #[cfg(not(feature = "dpdk"))]
    let _ = r;
}
