//! keepalived.conf read as it is: the `virtual_server`s of an operator's keepalived.conf
//! (with `virtual_server_group`, DPVS's `local_address_group`, `real_server` and the
//! checkers) become `[[services]]` ([`crate::Service`]), so that rvsd runs the services
//! and checks keepalived would program into IPVS.
//!
//! - [`lexer`]: keepalived's words (comments, quotes, braces, `include` globs, `@host`).
//! - [`parse`]: the words as a tree of blocks.
//! - [`convert`]: the tree as services, in keepalived's meaning of every keyword.
//!
//! What rvs leaves to keepalived (`global_defs`, `vrrp_*`, `static_*`, ...) is skipped as
//! whole blocks and reported once at info level. A keyword keepalived does not know is
//! reported as keepalived reports it (`Unknown keyword 'foo'`, with file and line) and the
//! rest is read. A keyword keepalived knows whose effect rvs does not have is refused by
//! name, never accepted and then not done; so is every syntax error (a brace missing or
//! extra, a value missing, a bad address or number, an unreadable include): the whole file
//! is refused, naming the file and line.

pub mod convert;
pub mod lexer;
pub mod parse;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{ConfigError, Service};

/// Nested `include`s followed before the reader gives up (a file including itself).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// The largest file read (a keepalived.conf is a few KiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Nested blocks accepted (keepalived's own go 4 deep: `virtual_server`, `real_server`,
/// checker, `url`).
pub const MAX_BLOCK_DEPTH: usize = 32;

/// Addresses one `virtual_server_group` or `local_address_group` entry may stand for.
pub const MAX_RANGE: u32 = 256;

/// A place in the files read: the file's index in the list of files read and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Index of the file among those read (the main file is 0).
    pub file: usize,
    /// Line, from 1.
    pub line: usize,
}

/// Why a keepalived.conf is refused: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file (the one that includes it, for an include that cannot be read).
    pub file: PathBuf,
    /// The line, from 1 (0: the file as a whole).
    pub line: usize,
    /// What is wrong, naming the keyword and value.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// How much a [`Notice`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What rvs leaves to keepalived (`vrrp_*` blocks...).
    Info,
    /// A keyword keepalived does not know, an include matching nothing: read on.
    Warning,
}

/// Something worth telling the operator that does not refuse the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Info or warning.
    pub level: Level,
    /// Where.
    pub loc: Loc,
    /// What.
    pub message: String,
}

impl Notice {
    /// A warning at `loc`.
    pub fn warning(loc: Loc, message: String) -> Notice {
        Notice {
            level: Level::Warning,
            loc,
            message,
        }
    }
}

/// Where a service of [`Loaded::services`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The `virtual_server` line.
    pub at: Loc,
    /// `virtual_server 10.10.0.100 80` (with the group member for a group).
    pub name: String,
    /// The `real_server` lines and their addresses as written (`10.20.0.11 8080`), in the
    /// order of [`Service::real`].
    pub reals: Vec<(Loc, String)>,
}

/// A keepalived.conf read and converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Every file read (the main file first, then the includes in reading order).
    pub files: Vec<PathBuf>,
    /// The services, in the order of the `virtual_server`s (a group's members in order).
    pub services: Vec<Service>,
    /// Where each service comes from (same order as `services`).
    pub origins: Vec<Origin>,
    /// Warnings and infos, in file order.
    pub notices: Vec<Notice>,
}

impl Loaded {
    /// `file:line` of a place.
    pub fn at(&self, loc: Loc) -> String {
        let f = self
            .files
            .get(loc.file)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{f}:{}", loc.line)
    }

    /// The notices as keepalived logs them: `file:line: message` (warnings prefixed
    /// `warning: `).
    pub fn messages(&self) -> Vec<String> {
        self.notices
            .iter()
            .map(|n| {
                let lvl = match n.level {
                    Level::Info => "",
                    Level::Warning => "warning: ",
                };
                format!("{}: {lvl}{}", self.at(n.loc), n.message)
            })
            .collect()
    }

    /// A validation error of the configuration the services were appended to (the
    /// first at index `first`), told by the keepalived.conf line it comes from:
    /// `services[3].real[1].weight: ...` becomes
    /// `keepalived.conf:14: real_server 10.20.0.12 80 of virtual_server ...: weight: ...`.
    /// `None` when the error is not about one of these services.
    pub fn locate(&self, e: &ConfigError, first: usize) -> Option<String> {
        let ConfigError::Invalid { field, message } = e else {
            return None;
        };
        let rest = field.strip_prefix("services[")?;
        let (idx, rest) = rest.split_once(']')?;
        let i = idx.parse::<usize>().ok()?.checked_sub(first)?;
        let o = self.origins.get(i)?;
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(r) = rest.strip_prefix("real[") {
            let (j, tail) = r.split_once(']')?;
            let j = j.parse::<usize>().ok()?;
            let (at, real) = o.reals.get(j)?;
            let tail = tail.strip_prefix('.').unwrap_or(tail);
            let what = if tail.is_empty() {
                String::new()
            } else {
                format!("{tail}: ")
            };
            return Some(format!(
                "{}: real_server {real} of {}: {what}{message}",
                self.at(*at),
                o.name
            ));
        }
        let what = if rest.is_empty() {
            String::new()
        } else {
            format!("{rest}: ")
        };
        Some(format!("{}: {}: {what}{message}", self.at(o.at), o.name))
    }
}

/// The host's short name, for keepalived's `@NAME` lines (keepalived's default config id).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Reads `path` and its includes and converts it.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let mut lx = lexer::Lexer::new(&host_name());
    lx.read_file(path, 0)?;
    finish(lx)
}

/// Converts `text` as if it were the file `path` (includes are relative to its
/// directory), on a host named `host`.
pub fn load_str(path: &Path, text: &str, host: &str) -> Result<Loaded, Error> {
    let mut lx = lexer::Lexer::new(host);
    lx.files.push(path.to_path_buf());
    lx.read_text(0, text, 0)?;
    finish(lx)
}

fn finish(lx: lexer::Lexer) -> Result<Loaded, Error> {
    let files = lx.files;
    let located = |loc: Loc, message: String| Error {
        file: files.get(loc.file).cloned().unwrap_or_default(),
        line: loc.line,
        message,
    };
    let items = parse::tree(&lx.tokens).map_err(|(loc, m)| located(loc, m))?;
    let mut notices = lx.notices;
    let (services, origins) =
        convert::convert(&items, &mut notices).map_err(|(loc, m)| located(loc, m))?;
    notices.sort_by_key(|n| (n.loc.file, n.loc.line));
    Ok(Loaded {
        files,
        services,
        origins,
        notices,
    })
}

#[cfg(test)]
mod tests;
