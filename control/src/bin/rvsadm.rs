//! `rvsadm` (also installed as `ipvsadm`): the ipvsadm-compatible CLI for rvsd.

#![forbid(unsafe_code)]

use std::io::Write;

use rvs_control::adm::{run, socket_path, take_socket_option, Streams};

fn main() {
    let mut argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if argv.is_empty() {
        argv.push("ipvsadm".into());
    }
    let explicit = take_socket_option(&mut argv);
    let socket = socket_path(explicit, std::env::var("RVS_SOCKET").ok());
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let code = {
        let mut io = Streams {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        run(&argv, &socket, &mut io)
    };
    let _ = stdout.flush();
    let _ = stderr.flush();
    std::process::exit(code);
}
