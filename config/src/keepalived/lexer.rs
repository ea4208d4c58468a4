//! keepalived.conf's words, as keepalived's reader splits them: a line at a time, `#` and
//! `!` start a comment anywhere outside a quoted string (`\#` and `\!` are the characters
//! themselves), `"..."` is one word without its quotes, `{` and `}` are words of their own
//! wherever they stand, a line `@NAME ...` is read only on the host whose short name is
//! NAME (`@^NAME`: everywhere else), and a line `include PATTERN` is replaced by the
//! files the glob pattern matches, a relative pattern being relative to the directory of
//! the file that includes it. keepalived has no line continuation outside its `$NAME=`
//! definitions; those (and `~SEQ`) are refused by name.

use std::path::{Path, PathBuf};

use super::{Error, Loc, Notice, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH};

/// One word of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The word (quotes removed).
    pub text: String,
    /// It was quoted (a quoted `{` is not a brace).
    pub quoted: bool,
    /// Where it is.
    pub loc: Loc,
}

impl Token {
    /// An unquoted `{`.
    pub fn is_open(&self) -> bool {
        !self.quoted && self.text == "{"
    }

    /// An unquoted `}`.
    pub fn is_close(&self) -> bool {
        !self.quoted && self.text == "}"
    }
}

/// The reader's state across included files.
pub struct Lexer {
    /// Every file read, indexed by [`Loc::file`].
    pub files: Vec<PathBuf>,
    /// The words, in order.
    pub tokens: Vec<Token>,
    /// Warnings (an include matching nothing).
    pub notices: Vec<Notice>,
    /// The host's short name, for `@NAME` lines.
    host: String,
}

impl Lexer {
    /// A reader for a host named `host` (`@NAME` lines).
    pub fn new(host: &str) -> Lexer {
        Lexer {
            files: Vec::new(),
            tokens: Vec::new(),
            notices: Vec::new(),
            host: host.split('.').next().unwrap_or("").to_string(),
        }
    }

    /// Reads `path` (an error if it cannot be read).
    pub fn read_file(&mut self, path: &Path, depth: usize) -> Result<(), Error> {
        let fail = |message: String| Error {
            file: path.to_path_buf(),
            line: 0,
            message,
        };
        // As keepalived: a regular file only (not a device, FIFO or directory).
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(fail("cannot read: not a regular file".into()));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(fail(format!(
                "cannot read: larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        self.files.push(path.to_path_buf());
        let file = self.files.len() - 1;
        let text = String::from_utf8_lossy(&bytes);
        self.read_text(file, &text, depth)
    }

    /// Splits `text`, the contents of file number `file`.
    pub fn read_text(&mut self, file: usize, text: &str, depth: usize) -> Result<(), Error> {
        for (i, raw) in text.split('\n').enumerate() {
            let loc = Loc { file, line: i + 1 };
            let err = |message: String| Error {
                file: self.files[file].clone(),
                line: i + 1,
                message,
            };
            let mut words = split_line(raw).map_err(err)?;
            if let Some(first) = words.first() {
                if !first.1 && first.0.starts_with('@') {
                    let (neg, name) = match first.0.strip_prefix("@^") {
                        Some(n) => (true, n),
                        None => (false, &first.0[1..]),
                    };
                    if (name == self.host) == neg {
                        continue;
                    }
                    words.remove(0);
                }
            }
            let Some(first) = words.first() else {
                continue;
            };
            let definition = first.0.starts_with('$') && raw.contains('=');
            if !first.1 && (definition || first.0.starts_with("~SEQ")) {
                return Err(err(format!(
                    "keepalived's parameter definitions and sequences ('{}') are not supported by rvs: write the values out",
                    first.0
                )));
            }
            if !first.1 && first.0 == "include" && words.len() == 2 {
                self.include(file, i + 1, &words[1].0, depth)?;
                continue;
            }
            self.tokens.extend(
                words
                    .into_iter()
                    .map(|(text, quoted)| Token { text, quoted, loc }),
            );
        }
        Ok(())
    }

    /// `include PATTERN` at `file`:`line`.
    fn include(
        &mut self,
        file: usize,
        line: usize,
        pattern: &str,
        depth: usize,
    ) -> Result<(), Error> {
        let here = self.files[file].clone();
        let err = |message: String| Error {
            file: here.clone(),
            line,
            message,
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "include {pattern}: more than {MAX_INCLUDE_DEPTH} nested includes (does a file include itself?)"
            )));
        }
        let dir = here.parent().unwrap_or(Path::new(""));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        let full_s = full.to_string_lossy().to_string();
        if !has_glob(&full_s) {
            return self.read_file(&full, depth + 1).map_err(|e| {
                err(format!(
                    "include {pattern}: {}: {}",
                    full.display(),
                    e.message
                ))
            });
        }
        let matches = glob(&full_s);
        if matches.is_empty() {
            self.notices.push(Notice::warning(
                Loc { file, line },
                format!("include {pattern}: no file matches"),
            ));
        }
        for m in matches {
            self.read_file(&m, depth + 1).map_err(|e| {
                if e.line == 0 {
                    err(format!("include {pattern}: {}: {}", m.display(), e.message))
                } else {
                    e
                }
            })?;
        }
        Ok(())
    }
}

/// The words of one line: `(text, quoted)`. An unterminated quote is an error.
fn split_line(raw: &str) -> Result<Vec<(String, bool)>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut has_cur = false;
    let mut chars = raw.chars().peekable();
    let flush = |cur: &mut String, has: &mut bool, words: &mut Vec<(String, bool)>| {
        if *has {
            words.push((std::mem::take(cur), false));
            *has = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '\\' if matches!(chars.peek(), Some('#') | Some('!')) => {
                cur.push(chars.next().unwrap_or(c));
                has_cur = true;
            }
            '"' => {
                flush(&mut cur, &mut has_cur, &mut words);
                let mut q = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == '"' {
                        closed = true;
                        break;
                    }
                    q.push(d);
                }
                if !closed {
                    return Err(format!("unterminated quote: '{}'", raw.trim()));
                }
                words.push((q, true));
            }
            '{' | '}' => {
                flush(&mut cur, &mut has_cur, &mut words);
                words.push((c.to_string(), false));
            }
            c if c.is_whitespace() => flush(&mut cur, &mut has_cur, &mut words),
            c => {
                cur.push(c);
                has_cur = true;
            }
        }
    }
    flush(&mut cur, &mut has_cur, &mut words);
    Ok(words)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The regular files matching a glob pattern (`*`, `?`, `[...]` in any component),
/// sorted as glob(3) sorts them; directories are left out, as keepalived does.
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &current {
            if !has_glob(part) {
                let p = base.join(part);
                if p.exists() {
                    next.push(p);
                }
                continue;
            }
            let Ok(rd) = std::fs::read_dir(base) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| wildcard(part.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        if !last {
            next.retain(|p| p.is_dir());
        }
        current = next;
    }
    current.retain(|p| p.is_file());
    if !absolute {
        current = current
            .into_iter()
            .map(|p| p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p))
            .collect();
    }
    current
}

/// fnmatch(3) without flags, on bytes: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point (the last `*`): linear in practice, no recursion.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = class(&p[pi..], s[si]) {
                        if ok {
                            pi += len;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == b'[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `p`: whether `c` is in it and the class's length, or
/// `None` when the `[` does not start a class (no closing `]`).
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let neg = matches!(p.get(1), Some(b'!') | Some(b'^'));
    if neg {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((hit != neg, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(l: &str) -> Vec<(String, bool)> {
        split_line(l).unwrap()
    }

    fn w(s: &str) -> (String, bool) {
        (s.to_string(), false)
    }

    #[test]
    fn comments_quotes_and_braces_split_as_keepalived_does() {
        assert_eq!(
            words("  real_server 10.0.0.1 80{ weight 2} # a comment { "),
            [
                w("real_server"),
                w("10.0.0.1"),
                w("80"),
                w("{"),
                w("weight"),
                w("2"),
                w("}")
            ]
        );
        assert_eq!(words("! whole line"), Vec::<(String, bool)>::new());
        assert_eq!(
            words(r#"notify_up "/bin/echo up # { }" ! comment"#),
            [w("notify_up"), ("/bin/echo up # { }".into(), true)]
        );
        assert_eq!(words(r"path /a\#b"), [w("path"), w("/a#b")]);
        assert_eq!(
            split_line(r#"misc_path "/bin/true"#).unwrap_err(),
            r#"unterminated quote: 'misc_path "/bin/true'"#
        );
    }

    #[test]
    fn globs_match_as_fnmatch() {
        assert!(wildcard(b"*.conf", b"a.conf"));
        assert!(!wildcard(b"*.conf", b"a.conf.bak"));
        assert!(wildcard(b"vs-?.conf", b"vs-1.conf"));
        assert!(wildcard(b"vs-[0-9]*", b"vs-42"));
        assert!(!wildcard(b"vs-[!0-9]*", b"vs-42"));
        assert!(wildcard(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard(b"a*b*c", b"aXXbYY"));
        assert!(wildcard(b"[", b"["));
    }
}
