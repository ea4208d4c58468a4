//! Reusable burst arrays.

use std::ptr::NonNull;

use dpdk_sys as sys;

use super::Mbuf;

/// The largest burst rvs moves in one rx or tx call.
pub const MAX_BURST: usize = 64;

/// A fixed-capacity array of owned mbufs, reused burst after burst (no allocation per
/// burst). The mbufs in it belong to it: [`MbufBatch::clear`] and drop free them.
pub struct MbufBatch {
    ptrs: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
}

// SAFETY: the batch owns its mbufs exclusively (like Vec<Mbuf>), and Mbuf is Send.
unsafe impl Send for MbufBatch {}

impl Default for MbufBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBatch").field("len", &self.len).finish()
    }
}

impl MbufBatch {
    /// An empty batch.
    pub const fn new() -> MbufBatch {
        MbufBatch {
            ptrs: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch is full.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// The mbufs held, borrowed in order (to look at a burst before draining it).
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: `Mbuf` is `repr(transparent)` over `NonNull<rte_mbuf>`, which has the
        // layout of `*mut rte_mbuf`; `ptrs[..len]` are non-null mbufs the batch owns, and
        // the shared borrow of the batch keeps them there (no move or free) meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Adds an mbuf; gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Moves every mbuf out, in order, leaving the batch empty.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        self.stream(no_refill, 0)
    }

    /// Moves every mbuf out, in order, like [`MbufBatch::drain`]; once they are all taken,
    /// asks `refill` to fill the (empty) batch again, up to `more` times, and goes on with
    /// what it got. The engine reads a receive queue this way (`refill` is the rx burst), so
    /// that the packets of one burst are still in flight in the pipeline while the next is
    /// received. It ends at the first refill that brings nothing.
    #[inline]
    pub fn stream<F: FnMut(&mut MbufBatch) -> usize>(
        &mut self,
        refill: F,
        more: usize,
    ) -> Stream<'_, F> {
        let len = self.len;
        self.len = 0;
        Stream {
            batch: self,
            next: 0,
            end: len,
            more,
            refill,
        }
    }

    /// Frees every mbuf held.
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: ptrs[..len] are owned, valid mbufs; free_bulk frees each once.
            unsafe { sys::rvs_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// The raw array and current length, for the rx burst to fill the free tail.
    pub(crate) fn raw_tail(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // SAFETY: len ≤ MAX_BURST, so the offset stays within the array (or one past it).
        (
            unsafe { self.ptrs.as_mut_ptr().add(self.len) },
            MAX_BURST - self.len,
        )
    }

    /// Records that `n` more slots (after the current length) now hold owned mbufs.
    pub(crate) fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(MAX_BURST);
    }

    /// The raw array of held mbufs, for the tx burst.
    pub(crate) fn raw_all(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        (self.ptrs.as_mut_ptr(), self.len)
    }

    /// After a ring took the first `n` mbufs: shifts the rest to the front.
    pub(crate) fn forget_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// After a tx burst took the first `sent` mbufs: frees the rest, returns how many were
    /// freed, and leaves the batch empty.
    pub(crate) fn consume_sent(&mut self, sent: usize) -> usize {
        let sent = sent.min(self.len);
        let unsent = self.len - sent;
        if unsent > 0 {
            // SAFETY: ptrs[sent..len] are still owned by us (the driver took only the
            // first `sent`); free each once.
            unsafe { sys::rvs_pktmbuf_free_bulk(self.ptrs.as_mut_ptr().add(sent), unsent as u32) };
        }
        self.len = 0;
        unsent
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterator moving mbufs out of a batch ([`MbufBatch::drain`]): a [`Stream`] that is
/// never refilled. Mbufs not taken are freed when it is dropped.
pub type Drain<'a> = Stream<'a, fn(&mut MbufBatch) -> usize>;

/// The refill of [`MbufBatch::drain`] (never called: no refills are allowed).
fn no_refill(_: &mut MbufBatch) -> usize {
    0
}

/// Iterator over a batch refilled as it empties ([`MbufBatch::stream`]). Mbufs not taken
/// are freed when it is dropped.
pub struct Stream<'a, F: FnMut(&mut MbufBatch) -> usize> {
    batch: &'a mut MbufBatch,
    next: usize,
    end: usize,
    more: usize,
    refill: F,
}

impl<F: FnMut(&mut MbufBatch) -> usize> Iterator for Stream<'_, F> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        while self.next >= self.end {
            if self.more == 0 {
                return None;
            }
            self.more -= 1;
            // Every slot was taken: the batch is empty (len 0) for the refill.
            (self.refill)(self.batch);
            self.next = 0;
            self.end = self.batch.len;
            self.batch.len = 0;
            if self.end == 0 {
                self.more = 0;
                return None;
            }
        }
        let p = std::mem::replace(&mut self.batch.ptrs[self.next], std::ptr::null_mut());
        self.next += 1;
        // SAFETY: slots in next..end hold owned, non-null mbufs moved out exactly once.
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, (self.more == 0).then_some(n))
    }
}

impl<F: FnMut(&mut MbufBatch) -> usize> Drop for Stream<'_, F> {
    fn drop(&mut self) {
        // Frees what was not taken (without asking for more).
        self.more = 0;
        for _ in self.by_ref() {}
    }
}
