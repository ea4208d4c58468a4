//! Huge-page backed heap memory for large per-core tables (the session slab and indexes).
//!
//! Random reads of a session table of a hundred megabytes on 4 KiB pages miss the TLB on
//! almost every lookup (and under nested paging a miss costs a two-dimensional page walk).
//! [`HugePageAlloc`] allocates large blocks 2 MiB-aligned and asks the kernel for
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`) before the memory is first touched, so
//! it is faulted in as 2 MiB pages (THP in `madvise` or `always` mode). Small blocks, and
//! systems where THP is off, simply get ordinary memory: the advice is only a hint.

use std::alloc::Layout;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

/// Huge page size the allocator aligns large blocks to.
const HUGE: usize = 2 << 20;

/// An [`Allocator`] for big tables: blocks of at least 2 MiB are 2 MiB-aligned, rounded up
/// to whole huge pages and advised `MADV_HUGEPAGE` before first use; smaller blocks come
/// from the global allocator unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HugePageAlloc;

/// The layout actually requested from the global allocator for `layout` (the same for
/// allocation and deallocation).
fn real_layout(layout: Layout) -> Result<Layout, AllocError> {
    if layout.size() < HUGE {
        return Ok(layout);
    }
    let size = layout
        .size()
        .checked_next_multiple_of(HUGE)
        .ok_or(AllocError)?;
    Layout::from_size_align(size, layout.align().max(HUGE)).map_err(|_| AllocError)
}

// SAFETY: blocks come from the global allocator with `real_layout(layout)` and are
// returned to it with the same layout (a pure function of `layout`), so they are valid for
// `layout.size()` bytes, suitably aligned, until deallocated; the type is a stateless unit,
// so every copy can free what another allocated.
unsafe impl Allocator for HugePageAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let real = real_layout(layout)?;
        if real.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(NonNull::<u8>::dangling(), 0));
        }
        // SAFETY: `real` has a non-zero size (checked above).
        let p = unsafe { std::alloc::alloc(real) };
        let p = NonNull::new(p).ok_or(AllocError)?;
        if real.size() >= HUGE {
            // SAFETY: `[p, p + real.size())` is the block just allocated and 2 MiB-aligned;
            // MADV_HUGEPAGE only changes how the kernel backs it, never its contents. A
            // failure (THP not built in) leaves ordinary pages: nothing to handle.
            unsafe {
                libc::madvise(p.as_ptr().cast(), real.size(), libc::MADV_HUGEPAGE);
            }
        }
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Ok(real) = real_layout(layout) else {
            return;
        };
        if real.size() == 0 {
            return;
        }
        // SAFETY: the caller guarantees `ptr` came from `allocate(layout)`, which allocated
        // it from the global allocator with `real_layout(layout)`.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), real) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_huge_aligned_and_usable() {
        let mut v: allocator_api2::vec::Vec<u64, HugePageAlloc> =
            allocator_api2::vec::Vec::with_capacity_in(1 << 20, HugePageAlloc);
        assert_eq!(v.as_ptr() as usize % HUGE, 0);
        v.extend((0..1u64 << 20).map(|i| i * 3));
        assert_eq!(v[12345], 12345 * 3);
        let small: allocator_api2::vec::Vec<u8, HugePageAlloc> =
            allocator_api2::vec::Vec::with_capacity_in(10, HugePageAlloc);
        assert!(small.capacity() >= 10);
    }
}
