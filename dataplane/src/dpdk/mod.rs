//! The safe DPDK wrapper.
