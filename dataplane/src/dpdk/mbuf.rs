//! An owned packet buffer.

use std::ptr::NonNull;

use dpdk_sys as sys;

/// An owned `rte_mbuf`. Dropping it returns it to its pool; sending it moves it into the
/// driver ([`super::Port::tx_burst`]).
///
/// rvs works on single-segment packets: [`Mbuf::data`] is the first segment, which for the
/// ports rvs configures (no scattered rx) is the whole packet. [`Mbuf::is_contiguous`]
/// tells whether that holds.
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an mbuf we own exclusively may move to another thread (DPDK hands mbufs between
// lcores over rings routinely); freeing it from any thread is allowed.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else will free or use.
    #[inline]
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership; the caller must free or send the mbuf.
    #[inline]
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    /// The packet bytes of the first segment.
    ///
    /// Read from the mbuf's fields in place (`rte_pktmbuf_mtod`, `rte_pktmbuf_data_len`
    /// are inline in C; calling them through the shim cost two calls per access, several
    /// accesses per packet).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let (p, len) = self.span();
        if p.is_null() || len == 0 {
            return &[];
        }
        // SAFETY: `span` is the first segment's data of a live mbuf we own: `len`
        // initialised bytes of its buffer, valid while we hold &self.
        unsafe { std::slice::from_raw_parts(p, len) }
    }

    /// The packet bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (p, len) = self.span();
        if p.is_null() || len == 0 {
            return &mut [];
        }
        // SAFETY: as in `data`; we own the mbuf exclusively (refcount 1 for mbufs rvs
        // rewrites), so writing is allowed while we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }

    /// Start and length of the first segment's data: `buf_addr + data_off`, `data_len`.
    #[inline(always)]
    fn span(&self) -> (*mut u8, usize) {
        let m = self.raw.as_ptr();
        // SAFETY: `m` is a live mbuf we own; reading its fields is what DPDK's inline
        // accessors do. The pointer arithmetic stays inside the mbuf's buffer (data_off
        // is at most buf_len), and `wrapping_add` makes no claim even if it did not.
        unsafe {
            let base = (*m).buf_addr.cast::<u8>();
            let off = usize::from((*m).data_off);
            (base.wrapping_add(off), usize::from((*m).data_len))
        }
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        // SAFETY: reads a field of a live mbuf we own.
        unsafe { (*self.raw.as_ptr()).pkt_len as usize }
    }

    /// Whether the whole packet is in the first segment.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        // SAFETY: reads a field of a live mbuf we own.
        let data_len = unsafe { (*self.raw.as_ptr()).data_len };
        usize::from(data_len) == self.pkt_len()
    }

    /// Whether the mbuf is one segment (`nb_segs == 1`): the case the inline buffer
    /// operations below handle themselves; a chain goes to DPDK's functions.
    #[inline(always)]
    fn single(&self) -> bool {
        // SAFETY: reads a field (in the mbuf's first cache line) of a live mbuf we own.
        unsafe { (*self.raw.as_ptr()).nb_segs == 1 }
    }

    /// Free bytes before the packet (`rte_pktmbuf_headroom`: the data offset).
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: reads a field of a live mbuf we own.
        usize::from(unsafe { (*self.raw.as_ptr()).data_off })
    }

    /// Grows the packet by `n` bytes at the front; returns the new bytes, or `None` (and
    /// changes nothing) without enough headroom.
    ///
    /// `rte_pktmbuf_prepend` written out: it is inline in C, and the TUN path calls it
    /// for every packet (through the shim it was a call and a return per packet).
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        let m = self.raw.as_ptr();
        // SAFETY: `m` is a live mbuf we own exclusively. As rte_pktmbuf_prepend: with
        // `n` at most the headroom (`data_off`), moving the data start back by `n` stays
        // inside the buffer, and the first segment's and the packet's lengths grow by
        // `n` (they cannot overflow: data_off + data_len ≤ buf_len, a u16). The `n`
        // bytes at the new start are ours.
        unsafe {
            if n16 > (*m).data_off {
                return None;
            }
            (*m).data_off -= n16;
            (*m).data_len += n16;
            (*m).pkt_len += u32::from(n16);
            let p = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
            Some(std::slice::from_raw_parts_mut(p, n))
        }
    }

    /// Removes `n` bytes from the front; `false` (and no change) if the first segment is
    /// shorter (`rte_pktmbuf_adj`, written out as [`Mbuf::prepend`]).
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        let m = self.raw.as_ptr();
        // SAFETY: `m` is a live mbuf we own exclusively. As rte_pktmbuf_adj: with `n` at
        // most the first segment's length, the data start moves forward inside that
        // segment and both lengths shrink by `n` (pkt_len ≥ data_len).
        unsafe {
            if n16 > (*m).data_len {
                return false;
            }
            (*m).data_off += n16;
            (*m).data_len -= n16;
            (*m).pkt_len -= u32::from(n16);
        }
        true
    }

    /// Grows the packet by `n` bytes at the end; returns the new bytes, or `None` without
    /// enough tailroom.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: live mbuf; rte_pktmbuf_append checks tailroom, returns NULL when short;
        // on success the n bytes at the result are ours.
        unsafe {
            let p = sys::rvs_pktmbuf_append(self.raw.as_ptr(), n16).cast::<u8>();
            if p.is_null() {
                return None;
            }
            Some(std::slice::from_raw_parts_mut(p, n))
        }
    }

    /// Removes `n` bytes from the end; `false` (and no change) if the last segment is
    /// shorter. A single segment is trimmed here (`rte_pktmbuf_trim` written out); a
    /// chain by DPDK, which walks to its last segment.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n16 == 0 {
            return true;
        }
        let m = self.raw.as_ptr();
        if self.single() {
            // SAFETY: `m` is a live single-segment mbuf we own exclusively: its last
            // segment is itself. With `n` at most its length, both lengths shrink by
            // `n` (pkt_len == data_len for one segment).
            unsafe {
                if n16 > (*m).data_len {
                    return false;
                }
                (*m).data_len -= n16;
                (*m).pkt_len -= u32::from(n16);
            }
            return true;
        }
        // SAFETY: live mbuf; rte_pktmbuf_trim checks the length and returns -1 when short.
        unsafe { sys::rvs_pktmbuf_trim(m, n16) == 0 }
    }

    /// The DPDK port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: reads a field of a live mbuf we own.
        unsafe { (*self.raw.as_ptr()).port }
    }

    /// A new mbuf of the same pool holding a copy of the first segment's data (with the
    /// pool's default headroom), or `None` when the pool is empty.
    pub fn copy(&self) -> Option<Mbuf> {
        // SAFETY: reads the pool pointer of a live mbuf we own; rte_pktmbuf_alloc
        // returns NULL or a fresh mbuf of that (live) pool.
        let m = unsafe { sys::rvs_pktmbuf_alloc((*self.raw.as_ptr()).pool) };
        // SAFETY: a non-null result is an mbuf we now own exclusively.
        let mut m = NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })?;
        let data = self.data();
        m.append(data.len())?.copy_from_slice(data);
        Some(m)
    }

    /// The reference count.
    #[inline]
    pub fn refcnt(&self) -> u16 {
        // SAFETY: reads a field of a live mbuf.
        unsafe { sys::rvs_mbuf_refcnt_read(self.raw.as_ptr()) }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; freeing returns it (and any chained segments) to its pool.
        unsafe { sys::rvs_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl crate::buf::PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> Result<&mut [u8], crate::buf::BufError> {
        if Mbuf::prepend(self, len).is_none() {
            return Err(crate::buf::BufError::NoHeadroom);
        }
        Ok(Mbuf::data_mut(self))
    }

    #[inline]
    fn adj(&mut self, len: usize) -> Result<(), crate::buf::BufError> {
        if Mbuf::adj(self, len) {
            Ok(())
        } else {
            Err(crate::buf::BufError::TooShort)
        }
    }

    #[inline]
    fn trim(&mut self, len: usize) -> Result<(), crate::buf::BufError> {
        if Mbuf::trim(self, len) {
            Ok(())
        } else {
            Err(crate::buf::BufError::TooShort)
        }
    }

    #[inline]
    fn try_clone(&self) -> Option<Self> {
        Mbuf::copy(self)
    }
}
