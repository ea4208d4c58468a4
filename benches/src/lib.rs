//! rvs benchmarks: see `benches/` for criterion micro-benchmarks.

#![forbid(unsafe_code)]
