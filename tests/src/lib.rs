//! Helpers for the rvs end-to-end tests under `tests/tests/`.

#![forbid(unsafe_code)]
