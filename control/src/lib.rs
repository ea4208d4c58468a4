//! `rvs-control`: the rvsd daemon and the rvsadm CLI.

#![forbid(unsafe_code)]
