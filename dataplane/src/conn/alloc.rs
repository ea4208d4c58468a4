//! The allocator of the session table's big arrays (the slab and the index buckets).

/// Allocator of the slab and the indexes: huge-page backed with DPDK (random lookups in a
/// table of a hundred megabytes would otherwise miss the TLB on almost every packet).
#[cfg(feature = "dpdk")]
pub(crate) type TableAlloc = crate::dpdk::HugePageAlloc;
#[cfg(not(feature = "dpdk"))]
pub(crate) type TableAlloc = allocator_api2::alloc::Global;
/// A vector in [`TableAlloc`] memory.
pub(crate) type SlabVec<T> = allocator_api2::vec::Vec<T, TableAlloc>;
