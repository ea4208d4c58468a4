//! `rvs-config`: the rvs TOML configuration file.

#![forbid(unsafe_code)]
