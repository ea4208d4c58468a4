//! Prints rvsadm's man page (roff) to stdout: the package build runs it and installs the
//! output as rvsadm.8 (and, through the ipvsadm alternative, as ipvsadm.8). Not installed.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    rvs_control::man::print(&rvs_control::man::rvsadm_page())
}
