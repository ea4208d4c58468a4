//! Placeholder module (service).
