//! Rings of mbufs between lcores.

use std::ptr::NonNull;

use dpdk_sys as sys;

use super::{
    call_error, cstring, with_log_capture, DpdkError, Eal, MbufBatch, Result, RET_SEE_RTE_ERRNO,
    SOCKET_ID_ANY,
};

/// A DPDK ring carrying mbufs (multi-producer, multi-consumer unless created otherwise).
/// Enqueueing moves ownership into the ring; dequeueing moves it out. Dropping the ring
/// frees any mbufs still in it.
#[derive(Debug)]
pub struct Ring {
    raw: NonNull<sys::rte_ring>,
}

// SAFETY: DPDK rings are designed for concurrent producers and consumers across lcores.
unsafe impl Send for Ring {}
// SAFETY: as above; every &Ring operation is a lock-free ring operation.
unsafe impl Sync for Ring {}

/// `RING_F_SP_ENQ`: one producer.
const RING_F_SP_ENQ: u32 = 0x0001;
/// `RING_F_SC_DEQ`: one consumer.
const RING_F_SC_DEQ: u32 = 0x0002;
/// `RING_F_SP_ENQ | RING_F_SC_DEQ`: one producer and one consumer.
pub const RING_SP_SC: u32 = RING_F_SP_ENQ | RING_F_SC_DEQ;

impl Ring {
    /// Creates a ring of `count` slots (a power of two; it holds `count - 1` entries).
    /// `flags` are DPDK's `RING_F_*` bits, e.g. [`RING_SP_SC`].
    pub fn new(name: &str, count: u32, flags: u32) -> Result<Ring> {
        if Eal::get().is_none() {
            return Err(DpdkError::EalNotInitialized);
        }
        let c = cstring(name)?;
        let (raw, log) = with_log_capture(|| {
            // SAFETY: EAL is initialised; c is a valid name DPDK copies; SOCKET_ID_ANY.
            unsafe { sys::rte_ring_create(c.as_ptr(), count, SOCKET_ID_ANY, flags) }
        });
        let raw = NonNull::new(raw).ok_or_else(|| {
            call_error(format!("rte_ring_create({name})"), RET_SEE_RTE_ERRNO, &log)
        })?;
        Ok(Ring { raw })
    }

    /// Entries currently queued.
    pub fn count(&self) -> u32 {
        // SAFETY: live ring.
        unsafe { sys::rvs_ring_count(self.raw.as_ptr()) }
    }

    /// Moves as many mbufs of `batch` as fit into the ring (in order); the ones that did
    /// not fit stay in the batch. Returns how many were enqueued.
    #[inline]
    pub fn enqueue_burst(&self, batch: &mut MbufBatch) -> usize {
        let (ptr, len) = batch.raw_all();
        if len == 0 {
            return 0;
        }
        // SAFETY: ptr holds `len` owned mbuf pointers; the ring copies the first n of them
        // and takes their ownership; we then shift the rest down in the batch.
        let n = unsafe {
            sys::rvs_ring_enqueue_burst(
                self.raw.as_ptr(),
                ptr.cast::<*mut std::ffi::c_void>(),
                len as u32,
            )
        } as usize;
        batch.forget_front(n);
        n
    }

    /// Moves up to the batch's free room out of the ring into the batch.
    #[inline]
    pub fn dequeue_burst(&self, batch: &mut MbufBatch) -> usize {
        let (ptr, room) = batch.raw_tail();
        if room == 0 {
            return 0;
        }
        // SAFETY: ptr has `room` free slots; the ring writes at most that many pointers,
        // whose ownership passes to the batch via commit().
        let n = unsafe {
            sys::rvs_ring_dequeue_burst(
                self.raw.as_ptr(),
                ptr.cast::<*mut std::ffi::c_void>(),
                room as u32,
            )
        } as usize;
        batch.commit(n);
        n
    }

    /// The raw pointer, for `rte_eth_from_rings`.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_ring {
        self.raw.as_ptr()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut batch = MbufBatch::new();
        while self.dequeue_burst(&mut batch) > 0 {
            batch.clear();
        }
        // SAFETY: we own the ring; nothing else uses it once dropped.
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) }
    }
}
