//! The one safe wrapper over `dpdk-sys`.
//!
//! Every call into DPDK made by rvs lives in this module; the rest of the crate is
//! `#![deny(unsafe_code)]` and sees only these types:
//!
//! - [`Eal`]: the Environment Abstraction Layer, initialised **once per process** from an
//!   argument list ([`Eal::init`]). DPDK cannot be initialised twice in one process, so
//!   tests that need DPDK live in their own integration-test binaries (each its own
//!   process) and share one initialisation per binary through [`Eal::init_or_get`].
//! - [`Mempool`] and [`Mbuf`]: packet buffers. An [`Mbuf`] is owned: dropping it frees it.
//! - [`MbufBatch`]: a fixed-size, reusable burst array (no allocation per burst). Mbufs
//!   in it are owned by it; dropping or clearing it frees them.
//! - [`Port`]: an ethdev port: info, MAC, queues, start/stop, stats, link, rx/tx bursts.
//!   [`Port::tx_burst`] moves the batch's mbufs into the driver and frees whatever the
//!   driver did not accept, so an mbuf is never leaked.
//! - [`Ring`]: a DPDK ring of mbufs, for handing packets from one lcore to another.
//! - [`lcore`]: launching closures on worker lcores.
//! - [`HugePageAlloc`]: a heap allocator backing big tables with transparent huge pages.
//! - [`prefetch0`]: DPDK's `rte_prefetch0` cache hint, for the session index's burst lookups.
//!
//! Errors are [`DpdkError`], carrying DPDK's own words: `rte_strerror` of `rte_errno`
//! plus whatever EAL or the driver logged while the call failed.

#![allow(unsafe_code)]

mod burst;
mod eal;
mod hugemem;
pub mod lcore;
mod mbuf;
mod mempool;
mod port;
mod prefetch;
mod ring;

pub use burst::{MbufBatch, MAX_BURST};
pub use eal::{default_eal_args, hugepages_free_bytes, Eal};
pub use hugemem::HugePageAlloc;
pub use lcore::LcoreId;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{bits, Link, Port, PortConf, PortId, PortInfo, PortStats, QueueId, RSS_KEY};
pub use prefetch::prefetch0;
pub use ring::{Ring, RING_SP_SC};

use std::ffi::{c_char, CStr, CString};

use dpdk_sys as sys;

/// A DPDK failure, with DPDK's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` refused the argument list or could not start.
    #[error("EAL initialisation failed: {message}")]
    EalInit {
        /// `rte_errno` after the call.
        errno: i32,
        /// DPDK's log output during the call and `rte_strerror(errno)`.
        message: String,
    },
    /// EAL was already initialised in this process (it can be only once).
    #[error("EAL is already initialised in this process")]
    EalAlreadyInitialized,
    /// A call that needs EAL was made before [`Eal::init`].
    #[error("EAL is not initialised")]
    EalNotInitialized,
    /// A DPDK call failed.
    #[error("{op}: {message}")]
    Call {
        /// The DPDK function (and object) that failed.
        op: String,
        /// The errno the call returned or left in `rte_errno`.
        errno: i32,
        /// DPDK's log output during the call and `rte_strerror(errno)`.
        message: String,
    },
    /// An argument rvs could not pass to DPDK (e.g. an interior NUL byte).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `SOCKET_ID_ANY`: let DPDK choose the NUMA socket.
pub(crate) const SOCKET_ID_ANY: i32 = -1;
/// The return value of a failed DPDK call that leaves its reason in `rte_errno`.
pub(crate) const RET_SEE_RTE_ERRNO: i32 = -1;
/// Bytes of DPDK log output kept from one capture.
const LOG_CAPTURE_MAX: usize = 8192;

/// Result of a DPDK operation.
pub type Result<T> = std::result::Result<T, DpdkError>;

/// DPDK's text for an errno value (`rte_strerror`).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a static or
    // thread-local NUL-terminated string, valid until the next call on this thread; we
    // copy it out at once.
    let ptr = unsafe { sys::rte_strerror(errno) };
    if ptr.is_null() {
        return format!("errno {errno}");
    }
    // SAFETY: non-null pointer to a NUL-terminated C string (see above).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The current `rte_errno` of this thread.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads the thread-local rte_errno through the shim; no preconditions.
    unsafe { sys::rvs_errno() }
}

/// Runs `f` with DPDK's log redirected into memory and returns `f`'s result together with
/// what was logged. Used around set-up calls whose reason for failing is only logged.
pub(crate) fn with_log_capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    // The shim keeps one capture stream in C globals: captures from two threads at once
    // (tests set up ports in parallel) would race on it and corrupt the heap. One at a time.
    static CAPTURE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: the shim opens a memstream and installs it as DPDK's log stream; it refuses
    // (returns -1) when a capture is already running, in which case we capture nothing.
    // The lock above makes this thread the only one using the shim's capture globals.
    let started = unsafe { sys::rvs_log_capture_begin() } == 0;
    let out = f();
    let mut text = String::new();
    if started {
        let mut buf = vec![0u8; LOG_CAPTURE_MAX];
        // SAFETY: `buf` is writable for `buf.len()` bytes; the shim copies at most that
        // many, restores the default log stream and frees its memstream.
        let n = unsafe { sys::rvs_log_capture_end(buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
        buf.truncate(n.min(buf.len()));
        text = String::from_utf8_lossy(&buf).into_owned();
        // Mirror the captured lines to stderr so operators still see them.
        if !text.is_empty() {
            eprint!("{text}");
        }
    }
    (out, text)
}

/// Builds the message of an error: the captured log lines, then `rte_strerror(errno)`.
pub(crate) fn message(log: &str, errno: i32) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("EAL: Detected"))
        .collect();
    let err = strerror(errno);
    if lines.is_empty() {
        err
    } else {
        format!("{} ({err})", lines.join("; "))
    }
}

/// A [`DpdkError::Call`] for `op` that returned `ret` (a negative errno, or -1 with the
/// reason in `rte_errno`).
pub(crate) fn call_error(op: impl Into<String>, ret: i32, log: &str) -> DpdkError {
    let errno = if ret < RET_SEE_RTE_ERRNO {
        -ret
    } else {
        rte_errno()
    };
    DpdkError::Call {
        op: op.into(),
        errno,
        message: message(log, errno),
    }
}

/// Converts a Rust string to a C string, refusing interior NULs.
pub(crate) fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| DpdkError::InvalidArgument(format!("{s:?} contains a NUL byte")))
}

/// Software Toeplitz hash (`rte_softrss`) of `tuple` (host-order 32-bit words: addresses
/// then `sport << 16 | dport`) with a 40-byte RSS key, as the NIC computes it. rvs uses it
/// to pick a FULLNAT local port whose reply hashes to the owning worker's queue.
pub fn softrss(tuple: &mut [u32], key: &[u8; 40]) -> u32 {
    let len = u32::try_from(tuple.len()).unwrap_or(u32::MAX);
    // SAFETY: rte_softrss reads `len` words from `tuple` and 40 + 4*len bytes of key at
    // most for the tuple lengths rvs uses (3 or 9 words: ≤ 36 bytes + 4 ≤ 40). It does not
    // write either buffer (the `*mut` in its signature is historical).
    unsafe { sys::rvs_softrss(tuple.as_mut_ptr(), len, key.as_ptr()) }
}

/// The DPDK version rvs was built against.
pub fn version() -> &'static str {
    sys::DPDK_VERSION
}

/// The TSC frequency in Hz (after [`Eal::init`]).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed at init (0 before); no preconditions.
    unsafe { sys::rvs_get_tsc_hz() }
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the CPU's TSC; no preconditions.
    unsafe { sys::rvs_rdtsc() }
}
