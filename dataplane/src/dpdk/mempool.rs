//! Packet-buffer pools.

use std::ptr::NonNull;

use dpdk_sys as sys;

use super::{
    call_error, cstring, with_log_capture, DpdkError, Eal, Mbuf, Result, RET_SEE_RTE_ERRNO,
    SOCKET_ID_ANY,
};

/// Private bytes per mbuf (rvs keeps none).
const PRIV_SIZE: u16 = 0;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Dropping it frees the pool:
/// every [`Mbuf`] from it must be gone by then, which the ports and workers that use a
/// pool guarantee by holding it in an `Arc` for as long as they run.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    size: u32,
}

// SAFETY: a DPDK mempool is a thread-safe object (lock-free ring plus per-lcore caches);
// get/put may be called from any thread.
unsafe impl Send for Mempool {}
// SAFETY: as above: every operation on &Mempool is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Default data room of one buffer: 2048 bytes of packet plus the standard headroom.
    pub const DEFAULT_DATA_ROOM: u16 = 2048 + 128;

    /// Creates a pool of `size` buffers with a per-lcore cache of `cache` buffers and
    /// `data_room` bytes each (headroom included), on the caller's NUMA socket.
    pub fn new(name: &str, size: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        if Eal::get().is_none() {
            return Err(DpdkError::EalNotInitialized);
        }
        let cname = cstring(name)?;
        let (raw, log) = with_log_capture(|| {
            // SAFETY: EAL is initialised; cname is a valid C string DPDK copies;
            // SOCKET_ID_ANY lets DPDK choose the socket.
            unsafe {
                sys::rte_pktmbuf_pool_create(
                    cname.as_ptr(),
                    size,
                    cache,
                    PRIV_SIZE,
                    data_room,
                    SOCKET_ID_ANY,
                )
            }
        });
        let raw = NonNull::new(raw).ok_or_else(|| {
            call_error(
                format!("rte_pktmbuf_pool_create({name})"),
                RET_SEE_RTE_ERRNO,
                &log,
            )
        })?;
        Ok(Mempool { raw, size })
    }

    /// Buffers in the pool (its size when created).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Buffers currently allocated (handed out and not yet freed).
    pub fn in_use(&self) -> u32 {
        // SAFETY: raw is a live mempool; the count reads its ring and caches.
        unsafe { sys::rvs_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Allocates one buffer (empty, with the default headroom), or `None` if the pool is
    /// exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: raw is a live packet mempool; the shim returns NULL or a fresh mbuf.
        let m = unsafe { sys::rvs_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is an mbuf we now own exclusively.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Allocates a buffer holding a copy of `bytes`, or `None` if the pool is exhausted or
    /// the bytes do not fit one buffer.
    pub fn alloc_with(&self, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = self.alloc()?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Some(m)
    }

    /// The raw pointer, for queue set-up.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: we own the pool; by contract no mbuf of it is still referenced.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
