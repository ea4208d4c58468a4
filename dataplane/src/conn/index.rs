//! The session index: one cache line per lookup.
//!
//! An array of 64-byte buckets. Each bucket holds 7 entries, a 32-bit tag (the high half
//! of the tuple's hash, never 0) and a 32-bit value (slab index, with [`OUT`] marking a
//! server-side entry) each, plus an overflow count. The bucket an entry belongs to comes
//! straight from the hash (the low half scaled to the bucket count: any count works, so
//! the index is sized exactly, not to a power of two), so a burst can compute every
//! packet's bucket first, prefetch them all, and only then read them: the cache misses of
//! a burst overlap instead of queueing one behind the other (see
//! [`super::ConnTable::prefetch_flow`]). A hit costs the bucket line and the session's
//! lines; tags make a false key comparison rare (1 in 2^32 per occupied slot).
//!
//! A full bucket spills into the next one (linear probing by bucket); the overflow count
//! of every bucket passed over says how many entries continue past it, so a lookup stops
//! at the first bucket whose count is 0, and removal leaves no tombstones (it decrements
//! the counts on the way). The index is sized for at most 5 entries per bucket on
//! average (of 7): 25.6 bytes per session for its two tuples; spills stay the exception
//! (about 13 % of buckets when the session table is full, fewer below).
//!
//! Client-side and server-side tuples share the one index: a packet's tuple is looked up
//! once whichever way it travels, and the [`OUT`] bit of the match says which side it is.

use super::alloc::{SlabVec, TableAlloc};

/// Value bit marking a server-side (reply tuple) entry.
pub(crate) const OUT: u32 = 1 << 31;
/// Entries per bucket.
const WAYS: usize = 7;
/// Average entries per bucket the index is sized for (at most).
const FILL: usize = 5;

/// One cache line of the index.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Bucket {
    tags: [u32; WAYS],
    /// Entries whose home is this bucket or an earlier one, stored after it.
    overflow: u32,
    vals: [u32; WAYS],
    _pad: u32,
}

impl Bucket {
    /// Bit `w` set for each way whose tag is `tag`. Computed for all ways at once (the
    /// compiler makes it a vector compare): a scan that stops at the matching way
    /// mispredicts a branch on most lookups, the way being random.
    #[inline(always)]
    fn matches(&self, tag: u32) -> u32 {
        let mut m = 0;
        for (w, t) in self.tags.iter().enumerate() {
            m |= u32::from(*t == tag) << w;
        }
        m
    }
}

const EMPTY_BUCKET: Bucket = Bucket {
    tags: [0; WAYS],
    overflow: 0,
    vals: [0; WAYS],
    _pad: 0,
};

/// The tag of a hash: its high half, never 0 (0 marks a free slot).
#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Index {
    buckets: SlabVec<Bucket>,
    n: usize,
    len: usize,
}

impl Index {
    /// An index for up to `entries` entries, fully allocated here.
    pub(crate) fn with_capacity(entries: usize) -> Index {
        let n = Self::buckets_for(entries);
        let mut buckets = SlabVec::with_capacity_in(n, TableAlloc::default());
        buckets.resize(n, EMPTY_BUCKET);
        Index { buckets, n, len: 0 }
    }

    fn buckets_for(entries: usize) -> usize {
        entries.div_ceil(FILL).clamp(2, u32::MAX as usize)
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// Bytes [`Index::with_capacity`] allocates for `entries`.
    pub(crate) fn memory_for(entries: usize) -> usize {
        Self::buckets_for(entries) * std::mem::size_of::<Bucket>()
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The home bucket of a hash.
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        (((hash & 0xffff_ffff) * self.n as u64) >> 32) as usize
    }

    /// The bucket after `i` (wrapping).
    #[inline(always)]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.n {
            0
        } else {
            i + 1
        }
    }

    /// Starts loading the home bucket of `hash` into the cache.
    #[inline(always)]
    pub(crate) fn prefetch(&self, hash: u64) {
        crate::prefetch(&self.buckets[self.home(hash)]);
    }

    /// The first value whose tag matches `hash` (no key comparison) in the home bucket,
    /// else, when entries spilled past the home bucket, in the next one: what a burst
    /// prefetches the session of. A spilled entry (a few percent of them in a full
    /// table) is found here, a stage before its lookup, so that its session is
    /// prefetched like any other instead of missing the cache in the lookup.
    #[inline(always)]
    pub(crate) fn candidate(&self, hash: u64) -> Option<u32> {
        let tag = tag_of(hash);
        let i = self.home(hash);
        let b = &self.buckets[i];
        let m = b.matches(tag);
        if m != 0 {
            return Some(b.vals[m.trailing_zeros() as usize]);
        }
        if b.overflow == 0 {
            return None;
        }
        let b = &self.buckets[self.next(i)];
        let m = b.matches(tag);
        (m != 0).then(|| b.vals[m.trailing_zeros() as usize])
    }

    /// The first value under `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut i = self.home(hash);
        for _ in 0..self.buckets.len() {
            let b = &self.buckets[i];
            let mut m = b.matches(tag);
            while m != 0 {
                let v = b.vals[m.trailing_zeros() as usize];
                if eq(v) {
                    return Some(v);
                }
                m &= m - 1;
            }
            if b.overflow == 0 {
                return None;
            }
            i = self.next(i);
        }
        None
    }

    /// Adds `val` under `hash`. The caller keeps within the capacity given at creation
    /// (the session table holds at most as many entries as it was sized for); a full
    /// index refuses with `false`.
    pub(crate) fn insert(&mut self, hash: u64, val: u32) -> bool {
        if self.len >= self.buckets.len() * WAYS {
            return false;
        }
        let tag = tag_of(hash);
        let mut i = self.home(hash);
        loop {
            let b = &mut self.buckets[i];
            if let Some(w) = b.tags.iter().position(|&t| t == 0) {
                b.tags[w] = tag;
                b.vals[w] = val;
                self.len += 1;
                return true;
            }
            b.overflow += 1;
            i = self.next(i);
        }
    }

    /// Removes the entry `val` stored under `hash`; false when it is not there.
    pub(crate) fn remove(&mut self, hash: u64, val: u32) -> bool {
        let tag = tag_of(hash);
        let home = self.home(hash);
        let mut i = home;
        let mut steps = 0;
        loop {
            let b = &mut self.buckets[i];
            if let Some(w) = (0..WAYS).find(|&w| b.tags[w] == tag && b.vals[w] == val) {
                b.tags[w] = 0;
                b.vals[w] = 0;
                break;
            }
            if b.overflow == 0 || steps + 1 == self.n {
                return false;
            }
            i = self.next(i);
            steps += 1;
        }
        // The buckets passed over no longer have this entry continuing past them.
        let mut j = home;
        for _ in 0..steps {
            let b = &mut self.buckets[j];
            b.overflow -= 1;
            j = self.next(j);
        }
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn insert_find_remove_with_spills() {
        // 4 buckets: 28 slots; every entry has home bucket 1, so most spill (and wrap).
        let mut ix = Index::with_capacity(20);
        assert_eq!(ix.buckets.len(), 4);
        let h = |v: u32| (u64::from(v) << 32) | 0x4000_0000; // distinct tags, home bucket 1
        for v in 0..20 {
            assert!(ix.insert(h(v), v));
        }
        assert_eq!(ix.len(), 20);
        for v in 0..20 {
            assert_eq!(ix.find(h(v), |x| x == v), Some(v), "value {v}");
        }
        assert_eq!(ix.find(h(99), |_| true), None);
        // Remove from the home bucket; the spilled ones stay reachable.
        for v in 0..7 {
            assert!(ix.remove(h(v), v));
        }
        for v in 7..20 {
            assert_eq!(ix.find(h(v), |x| x == v), Some(v));
        }
        assert!(!ix.remove(h(3), 3), "already removed");
        for v in 7..20 {
            assert!(ix.remove(h(v), v));
        }
        assert_eq!(ix.len(), 0);
        assert!(ix
            .buckets
            .iter()
            .all(|b| b.overflow == 0 && b.tags == [0; WAYS]));
    }

    #[test]
    fn the_prefetch_candidate_is_found_in_the_home_bucket_or_the_next() {
        // 4 buckets, every entry homed in bucket 1: 7 there, 7 spilled into bucket 2,
        // the rest into bucket 3.
        let mut ix = Index::with_capacity(20);
        // Distinct tags (the tag is the hash's high half with its low bit set).
        let h = |v: u32| (u64::from(v) << 33) | 0x4000_0000;
        for v in 0..18 {
            assert!(ix.insert(h(v), v));
        }
        for v in 0..14 {
            assert_eq!(ix.candidate(h(v)), Some(v), "value {v}");
        }
        // Two buckets past home: left to the lookup.
        for v in 14..18 {
            assert_eq!(ix.candidate(h(v)), None, "value {v}");
            assert_eq!(ix.find(h(v), |x| x == v), Some(v));
        }
        // Nothing spilled from the home bucket: the next one is not read.
        let mut lone = Index::with_capacity(20);
        assert!(lone.insert(h(1), 1));
        let far = h(77);
        assert_eq!(lone.candidate(far), None);
    }

    #[test]
    fn full_index_refuses() {
        let mut ix = Index::with_capacity(1);
        let slots = ix.buckets.len() * WAYS;
        let hv = |v: u32| u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for v in 0..slots as u32 {
            assert!(ix.insert(hv(v), v));
        }
        assert!(!ix.insert(5, 999));
        for v in 0..slots as u32 {
            let hv = hv(v);
            assert_eq!(ix.find(hv, |x| x == v), Some(v));
        }
    }

    #[test]
    fn random_churn_matches_a_model() {
        use std::collections::HashMap;
        let mut ix = Index::with_capacity(3000);
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let r = next();
            let v = (r % 4000) as u32;
            if let Some(hv) = model.get(&v).copied() {
                assert!(ix.remove(hv, v));
                model.remove(&v);
            } else if model.len() < 1500 {
                // Only 7 home buckets (of 600) so that spills happen constantly.
                let hv = (next() & !0xffff_ffff) | (((r >> 40) % 7) * 0xaec_33e2);
                assert!(ix.insert(hv, v));
                model.insert(v, hv);
            }
        }
        for (&v, &hv) in &model {
            assert_eq!(ix.find(hv, |x| x == v), Some(v));
        }
        assert_eq!(ix.len(), model.len());
    }
}
