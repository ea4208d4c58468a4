//! `rte_prefetch0` for Rust: a cache hint for memory a burst will touch soon.
//!
//! DPDK's `rte_prefetch0` is an inline function (x86: `prefetcht0`), which bindgen cannot
//! export; this is the same instruction through `core::arch`. Other architectures get a
//! no-op.

/// Asks the CPU to load the cache line holding `*r` into all cache levels (`prefetcht0`).
/// A hint: it never faults, never blocks and changes no memory.
#[inline(always)]
pub fn prefetch0<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is part of SSE, which every x86_64 CPU has (the intrinsic is
    // `unsafe` only because of its `target_feature` attribute); a prefetch of any address
    // never faults, and `r` is a valid reference besides.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_changes_nothing() {
        let v = vec![7u64; 1024];
        for x in &v {
            prefetch0(x);
        }
        assert!(v.iter().all(|&x| x == 7));
    }
}
