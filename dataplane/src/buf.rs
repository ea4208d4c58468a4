//! The packet-buffer trait (placeholder; the packet-core work fills it in).
