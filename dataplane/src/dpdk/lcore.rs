//! Logical cores: ids and launching work on them.

use std::ffi::{c_int, c_void};

use dpdk_sys as sys;

use super::{call_error, Result};

/// An EAL logical core id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

/// `LCORE_ID_ANY`: what [`current`] reports on a thread EAL did not create.
const LCORE_ID_ANY: u32 = u32::MAX;
/// The lcore id `rte_get_next_lcore` starts after to find the first one (-1).
const BEFORE_FIRST_LCORE: u32 = u32::MAX;
/// What a launched function returns to [`wait`] when it panicked.
const PANICKED: i32 = -1;

/// The lcore the calling thread runs on, or `None` for a non-EAL thread.
pub fn current() -> Option<LcoreId> {
    // SAFETY: reads a thread-local; no preconditions.
    let id = unsafe { sys::rvs_lcore_id() };
    (id != LCORE_ID_ANY).then_some(LcoreId(id))
}

/// The enabled worker lcores (every enabled lcore but the main one), in order.
pub fn workers() -> Vec<LcoreId> {
    let mut out = Vec::new();
    let mut i = BEFORE_FIRST_LCORE;
    loop {
        // SAFETY: iterates EAL's lcore table; skip_main = 1, no wrap.
        i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
        if i >= sys::RTE_MAX_LCORE {
            break;
        }
        out.push(LcoreId(i));
    }
    out
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call; we take it
    // back once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(PANICKED)
}

/// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). The lcore must be idle.
/// Its return value is collected by [`wait`].
pub fn launch<F>(lcore: LcoreId, f: F) -> Result<()>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: trampoline has the lcore_function_t ABI; arg is a leaked Box<Job> that the
    // trampoline reclaims. If the launch fails the function never runs and we reclaim it.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
    if ret != 0 {
        // SAFETY: the launch failed, so the trampoline will not run: reclaim the job.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(call_error(
            format!("rte_eal_remote_launch(lcore {})", lcore.0),
            ret,
            "",
        ));
    }
    Ok(())
}

/// Waits for the function running on `lcore` to return; returns its value (0 if the lcore
/// was idle).
pub fn wait(lcore: LcoreId) -> i32 {
    // SAFETY: waits on a worker lcore; no memory preconditions.
    unsafe { sys::rte_eal_wait_lcore(lcore.0) }
}
