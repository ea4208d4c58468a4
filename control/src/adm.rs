//! rvsadm: ipvsadm's `main`, talking to rvsd instead of the kernel.
//!
//! Like ipvsadm it first "initializes ipvs" (connects to rvsd; without a daemon every
//! command fails with exit 2), lists the table when run without arguments, prints
//! client-side errors with exit 2 (usage: 255), kernel errors with exit 255, and runs
//! `-R` line by line (see [`restore`]).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::cli::{self, Command, ListOpts};
use crate::format;
use crate::proto::{Client, ClientError, Request, Response};

/// Where rvsadm looks for rvsd when neither `--socket` nor `RVS_SOCKET` is given.
pub const DEFAULT_SOCKET: &str = rvs_config::DEFAULT_SOCKET;

/// Standard streams for one run.
pub struct Streams<'a> {
    /// Input for `-R`.
    pub stdin: &'a mut dyn BufRead,
    /// Listings.
    pub stdout: &'a mut dyn Write,
    /// Errors.
    pub stderr: &'a mut dyn Write,
}

/// What a processed line asks for.
enum Flow {
    /// Go on (in `-R`) with this result.
    Continue(i32),
    /// Exit the process now with this status (ipvsadm's `fail()`/`exit()`).
    Exit(i32),
}

/// Takes the hidden `--socket PATH` / `--socket=PATH` option out of argv.
pub fn take_socket_option(argv: &mut Vec<String>) -> Option<PathBuf> {
    let mut i = 1;
    let mut found = None;
    while i < argv.len() {
        if argv[i] == "--socket" && i + 1 < argv.len() {
            found = Some(PathBuf::from(argv.remove(i + 1)));
            argv.remove(i);
        } else if let Some(p) = argv[i].strip_prefix("--socket=") {
            found = Some(PathBuf::from(p));
            argv.remove(i);
        } else {
            i += 1;
        }
    }
    found
}

/// The socket path: `--socket`, else `$RVS_SOCKET`, else `/run/rvs/rvsd.sock`.
pub fn socket_path(explicit: Option<PathBuf>, env: Option<String>) -> PathBuf {
    explicit
        .or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Runs rvsadm with `argv` (argv[0] included) against the daemon at `socket`.
/// Returns the exit status.
pub fn run(argv: &[String], socket: &Path, io: &mut Streams<'_>) -> i32 {
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    "Permission denied (you must be root) at {}",
                    socket.display()
                )
            } else {
                format!("No daemon is running at {} (start rvsd)", socket.display())
            };
            let _ = writeln!(io.stderr, "Can't initialize ipvs: {why}");
            return 2;
        }
    };
    // rvs extension: `rvsadm --dataplane` prints the workers' counters (drops by reason,
    // handoffs, sessions, mbufs).
    // rvs extension: `rvsadm --list-checks` prints every health check: service, server,
    // checker, state, latency, transitions, time since the last change, last result.
    // rvs extension: `rvsadm --list-group` prints the sync group's peers: address, state,
    // messages, sessions and heartbeats received, refused messages, last message's age.
    let text_request = match argv.get(1).map(String::as_str) {
        Some("--dataplane") if argv.len() == 2 => Some(Request::Dataplane),
        Some("--list-checks") if argv.len() == 2 => Some(Request::ListChecks),
        Some("--list-group") if argv.len() == 2 => Some(Request::ListGroup),
        _ => None,
    };
    if let Some(req) = text_request {
        return match call(&mut client, &req, io) {
            Ok(Response::Text(t)) => {
                let _ = io.stdout.write_all(t.as_bytes());
                0
            }
            Ok(r) => match unexpected(io, r) {
                Flow::Continue(c) | Flow::Exit(c) => c,
            },
            Err(f) => match f {
                Flow::Continue(c) | Flow::Exit(c) => c,
            },
        };
    }
    // rvs extension: `rvsadm --reload` has rvsd read its configuration file again and
    // prints the changes it applied (as SIGHUP does); a bad file changes nothing, exit 1.
    if argv.len() == 2 && argv[1] == "--reload" {
        return match call(&mut client, &Request::Reload, io) {
            Ok(Response::Text(t)) => {
                let _ = io.stdout.write_all(t.as_bytes());
                0
            }
            Ok(Response::Failed(e)) => {
                let _ = writeln!(io.stderr, "reload refused: {e}");
                1
            }
            Ok(r) => match unexpected(io, r) {
                Flow::Continue(c) | Flow::Exit(c) => c,
            },
            Err(f) => match f {
                Flow::Continue(c) | Flow::Exit(c) => c,
            },
        };
    }
    if argv.len() <= 1 {
        return match list(&mut client, &ListOpts::default(), io) {
            Flow::Continue(c) | Flow::Exit(c) => c,
        };
    }
    match process(&mut client, argv, false, io) {
        Flow::Continue(c) | Flow::Exit(c) => c,
    }
}

fn comm_error(io: &mut Streams<'_>, e: ClientError) -> Flow {
    let _ = writeln!(io.stderr, "rvsd: {e}");
    Flow::Exit(2)
}

fn call(client: &mut Client, req: &Request, io: &mut Streams<'_>) -> Result<Response, Flow> {
    client.call(req).map_err(|e| comm_error(io, e))
}

fn unexpected(io: &mut Streams<'_>, r: Response) -> Flow {
    let _ = writeln!(io.stderr, "rvsd: unexpected response {r:?}");
    Flow::Exit(2)
}

fn process(
    client: &mut Client,
    argv: &[String],
    reading_stdin: bool,
    io: &mut Streams<'_>,
) -> Flow {
    let program = argv.first().cloned().unwrap_or_else(|| "ipvsadm".into());
    let cmd = match cli::parse(argv, reading_stdin) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(io.stderr, "{}", e.message);
            return Flow::Exit(e.code);
        }
    };
    let op = match cmd {
        Command::Help => {
            let _ = io.stdout.write_all(cli::usage(&program).as_bytes());
            return Flow::Exit(0);
        }
        Command::Version => {
            let _ = writeln!(io.stdout, "{}", cli::VERSION_LINE);
            return Flow::Exit(0);
        }
        Command::List(o) => return list(client, &o, io),
        Command::Save { numeric } => {
            let s = match call(client, &Request::GetServices, io) {
                Ok(Response::Services(s)) => s,
                Ok(r) => return unexpected(io, r),
                Err(f) => return f,
            };
            // The ACL lines follow the services they name.
            let acls = match call(client, &Request::GetAcls, io) {
                Ok(Response::Acls(a)) => a,
                Ok(r) => return unexpected(io, r),
                Err(f) => return f,
            };
            let mut text = format::save(&s, numeric);
            text.push_str(&format::save_acls(&acls, numeric));
            let _ = io.stdout.write_all(text.as_bytes());
            return Flow::Continue(0);
        }
        Command::GetAcl(key, kind) => {
            return match call(client, &Request::GetAcls, io) {
                Ok(Response::Acls(a)) => {
                    if key.is_some_and(|k| !a.services.iter().any(|(s, _)| *s == k)) {
                        let _ = writeln!(io.stderr, "{}", crate::ipvs::IpvsError::NoSuchService);
                        return Flow::Exit(1);
                    }
                    let text = format::acls(&a, kind, key.as_ref());
                    let _ = io.stdout.write_all(text.as_bytes());
                    Flow::Continue(0)
                }
                Ok(r) => unexpected(io, r),
                Err(f) => f,
            };
        }
        Command::GetLaddr(key) => {
            let services = match key {
                None => call(client, &Request::GetServices, io),
                Some(k) => call(client, &Request::GetService(k), io).map(|r| match r {
                    Response::Service(s) => Response::Services(vec![s]),
                    other => other,
                }),
            };
            return match services {
                Ok(Response::Services(s)) => {
                    let _ = io.stdout.write_all(format::laddrs(&s).as_bytes());
                    Flow::Continue(0)
                }
                Ok(Response::Error(e)) => {
                    let _ = writeln!(io.stderr, "{e}");
                    Flow::Exit(1)
                }
                Ok(r) => unexpected(io, r),
                Err(f) => f,
            };
        }
        Command::Restore => return restore(client, &program, io),
        other => match other.into_op() {
            Some(op) => op,
            None => return Flow::Exit(0),
        },
    };
    match call(client, &Request::Apply(op), io) {
        Ok(Response::Ok) => Flow::Continue(0),
        Ok(Response::Error(e)) => {
            let _ = writeln!(io.stderr, "{e}");
            Flow::Continue(255)
        }
        Ok(r) => unexpected(io, r),
        Err(f) => f,
    }
}

fn list(client: &mut Client, o: &ListOpts, io: &mut Streams<'_>) -> Flow {
    let text = if o.connections {
        match call(client, &Request::GetConnections, io) {
            Ok(Response::Connections(c)) => format::connections(&c, o.numeric, o.persistent_conn),
            Ok(r) => return unexpected(io, r),
            Err(f) => return f,
        }
    } else if o.timeout {
        match call(client, &Request::GetTimeouts, io) {
            Ok(Response::Timeouts(t)) => format::timeouts(&t),
            Ok(r) => return unexpected(io, r),
            Err(f) => return f,
        }
    } else if o.daemon {
        match call(client, &Request::GetDaemons, io) {
            Ok(Response::Daemons(d)) => format::daemons(&d),
            Ok(r) => return unexpected(io, r),
            Err(f) => return f,
        }
    } else if let Some(k) = o.service {
        match call(client, &Request::GetService(k), io) {
            Ok(Response::Service(s)) => format::list_one(&s, o),
            Ok(Response::Error(e)) => {
                let _ = writeln!(io.stderr, "{e}");
                return Flow::Exit(1);
            }
            Ok(r) => return unexpected(io, r),
            Err(f) => return f,
        }
    } else {
        let info = match call(client, &Request::Info, io) {
            Ok(Response::Info(i)) => i,
            Ok(r) => return unexpected(io, r),
            Err(f) => return f,
        };
        match call(client, &Request::GetServices, io) {
            Ok(Response::Services(s)) => format::list_all(&info, &s, o),
            Ok(r) => return unexpected(io, r),
            Err(f) => return f,
        }
    };
    let _ = io.stdout.write_all(text.as_bytes());
    Flow::Continue(0)
}

/// Splits one `-R` line as ipvsadm's `config_stream_read`: tokens separated by space,
/// tab, CR or LF; every token that is exactly `ipvsadm` is dropped; no quoting and no
/// comments (`#` is an ordinary token, so a comment line is a usage error).
pub fn restore_tokens(line: &str) -> Vec<String> {
    line.split([' ', '\t', '\r', '\n'])
        .filter(|t| !t.is_empty() && *t != "ipvsadm")
        .map(str::to_string)
        .collect()
}

/// `-R`: each line of stdin is one command. A client-side error exits at once (2, or
/// 255 for usage); a kernel error is printed and the next line runs; the exit status is
/// the last line's.
fn restore(client: &mut Client, program: &str, io: &mut Streams<'_>) -> Flow {
    let mut result = 0;
    let mut line = String::new();
    loop {
        line.clear();
        match io.stdin.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(io.stderr, "{e}");
                return Flow::Exit(2);
            }
        }
        let words = restore_tokens(&line);
        if words.is_empty() {
            continue;
        }
        let mut argv = vec![program.to_string()];
        argv.extend(words);
        match process(client, &argv, true, io) {
            Flow::Continue(c) => result = c,
            Flow::Exit(c) => return Flow::Exit(c),
        }
    }
    Flow::Continue(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_tokenizer() {
        assert_eq!(
            restore_tokens("ipvsadm -A -t 1.2.3.4:80\t-s rr\r\n"),
            vec!["-A", "-t", "1.2.3.4:80", "-s", "rr"]
        );
        assert_eq!(restore_tokens("# comment\n"), vec!["#", "comment"]);
        assert!(restore_tokens("   \n").is_empty());
        assert_eq!(
            restore_tokens("/sbin/ipvsadm -C"),
            vec!["/sbin/ipvsadm", "-C"]
        );
    }

    #[test]
    fn socket_option_and_env() {
        let mut v: Vec<String> = ["ipvsadm", "-Ln", "--socket", "/tmp/x.sock"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            take_socket_option(&mut v),
            Some(PathBuf::from("/tmp/x.sock"))
        );
        assert_eq!(v, vec!["ipvsadm".to_string(), "-Ln".to_string()]);
        assert_eq!(
            socket_path(None, Some("/tmp/e.sock".into())),
            PathBuf::from("/tmp/e.sock")
        );
        assert_eq!(socket_path(None, None), PathBuf::from("/run/rvs/rvsd.sock"));
    }

    #[test]
    fn no_daemon() {
        let mut input: &[u8] = b"";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Streams {
            stdin: &mut input,
            stdout: &mut out,
            stderr: &mut err,
        };
        let code = run(
            &["ipvsadm".into(), "-Ln".into()],
            Path::new("/nonexistent/rvsd.sock"),
            &mut io,
        );
        assert_eq!(code, 2);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "Can't initialize ipvs: No daemon is running at /nonexistent/rvsd.sock (start rvsd)\n"
        );
    }
}
