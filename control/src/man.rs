//! The man pages of rvsd and rvsadm, generated from the same definitions the programs use
//! so they cannot drift: rvsd's from its clap definition (`rvsd --man`), rvsadm's from
//! the text `rvsadm -h` prints ([`crate::cli::usage`]), rendered as roff sections
//! (`cargo run -p rvs-control --example rvsadm-man`). The package build
//! (`scripts/package`) runs both and installs the pages in section 8.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{usage, VERSION_LINE};
use crate::cli::{EXIT_FAIL, EXIT_USAGE};

/// The rvs version the pages name.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes `page` to stdout; the exit code says whether that worked.
pub fn print(page: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(page.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the man page: {e}");
            ExitCode::from(1)
        }
    }
}

/// Escapes text for roff: backslashes, minus signs, and a leading control character.
fn esc(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn section(out: &mut String, name: &str) {
    out.push_str(&format!(".SH {}\n", esc(name)));
}

fn para(out: &mut String, text: &str) {
    out.push_str(".PP\n");
    out.push_str(&esc(text));
    out.push('\n');
}

fn item(out: &mut String, term: &str, text: &str) {
    out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(term), esc(text)));
}

/// The sections rvsd's page has beyond its options (signals, readiness, files, …).
fn rvsd_sections(out: &mut String) {
    section(out, "SIGNALS");
    item(
        out,
        "SIGTERM, SIGINT",
        "Stop: tell the service manager (STOPPING=1), remove the control socket, exit 0.",
    );
    item(
        out,
        "SIGHUP",
        "Reload the configuration file (systemctl reload rvsd).",
    );
    section(out, "SYSTEMD");
    para(
        out,
        "rvsd speaks systemd's readiness protocol without libsystemd: when NOTIFY_SOCKET is set \
         it sends READY=1 once its ports are up and its control socket is bound (rvsadm gets \
         answers from then on), RELOADING=1 while it reloads and STOPPING=1 when it stops. \
         The packaged unit rvsd.service is Type=notify with ExecReload sending SIGHUP.",
    );
    section(out, "ENVIRONMENT");
    item(
        out,
        "NOTIFY_SOCKET",
        "The service manager's notification socket (a path, or @name for an abstract socket).",
    );
    item(
        out,
        "RUST_LOG",
        "Log filter (default info), e.g. RUST_LOG=debug or RUST_LOG=rvs_control=debug.",
    );
    section(out, "FILES");
    item(out, "/etc/rvs/rvsd.toml", "The configuration file.");
    item(
        out,
        "/run/rvs/rvsd.sock",
        "The control socket rvsadm talks to (the [control] socket setting).",
    );
    section(out, "EXIT STATUS");
    para(
        out,
        "0 on a clean stop or a valid --check; 1 on an invalid configuration, a dataplane that \
         cannot start, or a control socket that cannot be bound.",
    );
    section(out, "SEE ALSO");
    para(
        out,
        "rvsadm(8), ipvsadm(8), systemd.service(5), sd_notify(3)",
    );
}

/// rvsd's man page (section 8) from its clap definition `cmd`.
pub fn rvsd_page(cmd: clap::Command) -> String {
    let man = clap_mangen::Man::new(cmd)
        .section("8")
        .manual("rvs")
        .source(format!("rvs {VERSION}"));
    let mut buf = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = man.render_synopsis_section(&mut buf);
    let _ = man.render_description_section(&mut buf);
    let _ = man.render_options_section(&mut buf);
    // clap_mangen writes `.TH` without an empty date argument, which shifts the footer.
    let th = format!(".TH RVSD 8 \"\" \"rvs {VERSION}\" \"rvs\"");
    let mut out: String = String::from_utf8_lossy(&buf)
        .lines()
        .map(|l| {
            if l.starts_with(".TH ") {
                th.as_str()
            } else {
                l
            }
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    rvsd_sections(&mut out);
    out
}

/// One entry of the `-h` text: the option part and its description.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    term: String,
    text: String,
}

/// A titled block of the `-h` text (`Commands:`, `Options:`, …): entries and lone lines.
#[derive(Debug, Default)]
struct Block {
    title: String,
    lines: Vec<Entry>,
}

/// Splits the `-h` text of `program` into its titled blocks. An entry's description is
/// what follows the last run of two or more spaces; a line indented deeper than the
/// entries continues the previous description.
fn blocks(text: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line == VERSION_LINE {
            continue;
        }
        if !line.starts_with(' ') && line.ends_with(':') {
            out.push(Block {
                title: line.trim_end_matches(':').to_owned(),
                lines: Vec::new(),
            });
            continue;
        }
        let Some(block) = out.last_mut() else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let body = line.trim();
        if indent > 20 {
            if let Some(prev) = block.lines.last_mut() {
                prev.text.push(' ');
                prev.text.push_str(body);
                continue;
            }
        }
        let (term, text) = match body.rfind("  ") {
            Some(i) => (body[..i].trim(), body[i..].trim()),
            None => (body, ""),
        };
        block.lines.push(Entry {
            term: term.split_whitespace().collect::<Vec<_>>().join(" "),
            text: text.to_owned(),
        });
    }
    out
}

/// rvsadm's man page (section 8), from the text `rvsadm -h` prints.
pub fn rvsadm_page() -> String {
    let mut out = String::new();
    out.push_str(&format!(".TH RVSADM 8 \"\" \"rvs {VERSION}\" \"rvs\"\n"));
    section(&mut out, "NAME");
    out.push_str("rvsadm, ipvsadm \\- administer rvs's virtual server table (ipvsadm for rvsd)\n");
    for block in blocks(&usage("rvsadm")) {
        if block.title == "Usage" {
            section(&mut out, "SYNOPSIS");
            out.push_str(".nf\n");
            for e in &block.lines {
                out.push_str(&esc(&e.term));
                out.push('\n');
            }
            out.push_str(".fi\n");
            section(&mut out, "DESCRIPTION");
            para(
                &mut out,
                "rvsadm is ipvsadm for rvs: it takes ipvsadm 1.31's command line (popt \
                 grammar, messages and exit codes) and prints exactly what ipvsadm prints, \
                 but it changes and lists the table of rvsd, the rvs daemon, over rvsd's \
                 control socket instead of the kernel's IPVS table. The package installs it \
                 as ipvsadm too (an alternative in /usr/bin), so scripts, keepalived and \
                 tutorials written for ipvsadm work unchanged. A real ipvsadm in /usr/sbin \
                 comes first in PATH when both are installed.",
            );
            para(&mut out, VERSION_LINE);
            continue;
        }
        section(&mut out, &block.title.to_uppercase());
        for e in &block.lines {
            if e.text.is_empty() && !e.term.starts_with('-') && !e.term.starts_with("rvsadm") {
                para(&mut out, &e.term);
            } else {
                item(&mut out, &e.term, &e.text);
            }
        }
    }
    section(&mut out, "ENVIRONMENT");
    item(
        &mut out,
        "RVS_SOCKET",
        "rvsd's control socket (default /run/rvs/rvsd.sock); the hidden option --socket PATH \
         overrides it.",
    );
    section(&mut out, "EXIT STATUS");
    para(
        &mut out,
        &format!(
            "0 on success; {EXIT_FAIL} on a client-side error or when rvsd cannot be reached; \
             {EXIT_USAGE} on a usage error or an error rvsd reports for a command (as ipvsadm \
             exits on the kernel's errors)."
        ),
    );
    section(&mut out, "SEE ALSO");
    para(&mut out, "rvsd(8), ipvsadm(8), keepalived(8)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page as text: roff requests dropped, escapes undone, whitespace collapsed.
    fn plain(page: &str) -> String {
        let text: Vec<&str> = page.lines().filter(|l| !l.starts_with('.')).collect();
        text.join(" ")
            .replace("\\fB", "")
            .replace("\\fR", "")
            .replace("\\-", "-")
            .replace("\\&", "")
            .replace("\\e", "\\")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn collapse(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn rvsadm_page_holds_every_line_of_the_help_text() {
        let page = rvsadm_page();
        let text = plain(&page);
        let help = usage("rvsadm");
        // Every entry, continuation lines joined, appears in the page in full.
        let mut entries = Vec::new();
        for b in blocks(&help) {
            for e in b.lines {
                entries.push(collapse(&format!("{} {}", e.term, e.text)));
            }
        }
        assert!(entries.len() > 60, "{entries:?}");
        for e in &entries {
            assert!(text.contains(e.as_str()), "missing from the page: {e}");
        }
        // And no word of the help text is lost by the splitting.
        let words: usize = help
            .lines()
            .filter(|l| !l.is_empty() && *l != VERSION_LINE && !l.ends_with(':'))
            .map(|l| l.split_whitespace().count())
            .sum();
        let entry_words: usize = entries.iter().map(|e| e.split_whitespace().count()).sum();
        assert_eq!(words, entry_words);
    }

    #[test]
    fn rvsadm_page_has_the_sections_and_the_extensions() {
        let page = rvsadm_page();
        for s in [
            ".TH RVSADM 8",
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH COMMANDS",
            ".SH OPTIONS",
            ".SH DAEMON OPTIONS",
            ".SH RVS EXTENSIONS",
            ".SH ENVIRONMENT",
        ] {
            assert!(page.contains(s), "{s} missing");
        }
        assert!(page.contains("\\-\\-add\\-laddr|\\-P"));
        // Continuations joined to their entry.
        let text = plain(&page);
        assert!(text.contains(
            "--scheduler -s scheduler one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh, \
             the default scheduler is wlc."
        ));
        // No line starts with a stray control character.
        for l in page.lines() {
            assert!(!l.starts_with('\''), "{l}");
        }
    }

    #[test]
    fn splitting_a_help_line() {
        let b = blocks("Options:\n  --weight       -w weight            capacity\n                                      more\n  lone line\n");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].title, "Options");
        assert_eq!(
            b[0].lines,
            vec![
                Entry {
                    term: "--weight -w weight".into(),
                    text: "capacity more".into()
                },
                Entry {
                    term: "lone line".into(),
                    text: String::new()
                }
            ]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(esc(".x-y\\z"), "\\&.x\\-y\\ez");
        assert_eq!(esc("'a"), "\\&'a");
    }

    #[test]
    fn rvsd_page_lists_its_options() {
        let cmd = clap::Command::new("rvsd").about("rvs daemon").arg(
            clap::Arg::new("config")
                .long("config")
                .help("Configuration file"),
        );
        let page = rvsd_page(cmd);
        assert!(page.contains("\n.TH RVSD 8 \"\" \"rvs "), "{page}");
        assert!(page.contains("\\-\\-config"));
        assert!(page.contains(".SH SIGNALS"));
        assert!(page.contains("READY=1"));
    }
}
