//! A popt-compatible option scanner: the part of popt that ipvsadm 1.31 relies on.
//!
//! The scanner walks argv (without `argv[0]`) over a table of [`OptDef`]s and yields one
//! [`Opt`] per option, as popt's `poptGetNextOpt` does:
//!
//! - long options `--name`, `--name=value` and `--name value`;
//! - short options, bundled (`-Lnc`) and with an attached value (`-p600`, `-t1.2.3.4:80`);
//! - a required value is the next word even when it starts with `-` (`-w -1`);
//! - an optional value ([`ArgKind::Optional`]) is taken only when attached or when the
//!   next word does not start with `-`;
//! - words that are not options, `-` alone, and every word after `--` are collected as
//!   leftovers ([`Scanner::take_leftovers`]);
//! - an unknown option or a missing required value is a [`PoptError`] whose text is
//!   popt's (`-Lnx: missing argument`, `--bogus: unknown option`).
//!
//! The scanner knows nothing of ipvsadm's commands; the caller may [`Scanner::remap`] one
//! option to another meaning (rvs reads `-b` as FULLNAT for the dest commands).

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A flag.
    None,
    /// A value is required (`POPT_ARG_STRING`).
    Required,
    /// A value may follow (`POPT_ARGFLAG_OPTIONAL`).
    Optional,
}

/// One entry of an option table.
#[derive(Debug, Clone, Copy)]
pub struct OptDef<I> {
    /// The long name, without `--`.
    pub long: &'static str,
    /// The short letter, if any.
    pub short: Option<char>,
    /// Whether it takes a value.
    pub arg: ArgKind,
    /// What the caller calls it.
    pub id: I,
}

impl<I> OptDef<I> {
    /// A table entry.
    pub const fn new(long: &'static str, short: Option<char>, arg: ArgKind, id: I) -> Self {
        OptDef {
            long,
            short,
            arg,
            id,
        }
    }
}

/// One option found on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt<I> {
    /// The option's id from the table.
    pub id: I,
    /// Its value, if it took one.
    pub value: Option<String>,
    /// How it was written: the whole word for a long option, `-c` for a short one.
    pub text: String,
}

/// A popt error; `Display` is popt's text (`<word>: <what>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoptError {
    /// `POPT_ERROR_BADOPT`.
    #[error("{word}: unknown option")]
    UnknownOption {
        /// The argv word that holds the option.
        word: String,
    },
    /// `POPT_ERROR_NOARG`.
    #[error("{word}: missing argument")]
    MissingArgument {
        /// The argv word that holds the option.
        word: String,
    },
}

/// A short-option bundle being read: its letters, the next one to read, and the word.
#[derive(Debug)]
struct Bundle {
    letters: Vec<char>,
    next: usize,
    word: String,
}

/// An option scanner over argv (without `argv[0]`).
#[derive(Debug)]
pub struct Scanner<'a, I: 'static> {
    table: &'static [OptDef<I>],
    args: &'a [String],
    pos: usize,
    bundle: Option<Bundle>,
    leftovers: Vec<String>,
    only_args: bool,
    remaps: Vec<(I, ArgKind, I)>,
}

impl<'a, I: Copy + PartialEq + 'static> Scanner<'a, I> {
    /// A scanner of `args` over `table`.
    pub fn new(table: &'static [OptDef<I>], args: &'a [String]) -> Self {
        Scanner {
            table,
            args,
            pos: 0,
            bundle: None,
            leftovers: Vec::new(),
            only_args: false,
            remaps: Vec::new(),
        }
    }

    /// From now on, option `from` is read as `to`, taking a value as `arg` says.
    pub fn remap(&mut self, from: I, arg: ArgKind, to: I) {
        self.remaps.push((from, arg, to));
    }

    /// The words that were not options, in order (taken out of the scanner).
    pub fn take_leftovers(&mut self) -> Vec<String> {
        std::mem::take(&mut self.leftovers)
    }

    /// The value kind and id of a table entry, after remapping.
    fn resolve(&self, d: &OptDef<I>) -> (ArgKind, I) {
        self.remaps
            .iter()
            .find(|(from, _, _)| *from == d.id)
            .map(|&(_, arg, to)| (arg, to))
            .unwrap_or((d.arg, d.id))
    }

    /// The next option, or `None` when argv is used up.
    pub fn next_opt(&mut self) -> Option<Result<Opt<I>, PoptError>> {
        if let Some(b) = self.bundle.take() {
            if b.next < b.letters.len() {
                return Some(self.short(b));
            }
        }
        loop {
            let word = self.args.get(self.pos)?.clone();
            self.pos += 1;
            if self.only_args || word == "-" || !word.starts_with('-') {
                self.leftovers.push(word);
                continue;
            }
            if word == "--" {
                self.only_args = true;
                continue;
            }
            if word.starts_with("--") {
                return Some(self.long(word));
            }
            let letters = word.chars().skip(1).collect();
            return Some(self.short(Bundle {
                letters,
                next: 0,
                word,
            }));
        }
    }

    /// The next word as a required value.
    fn required_next(&mut self, word: &str) -> Result<String, PoptError> {
        let v = self
            .args
            .get(self.pos)
            .ok_or_else(|| PoptError::MissingArgument { word: word.into() })?;
        self.pos += 1;
        Ok(v.clone())
    }

    /// The next word as an optional value: only when it does not look like an option.
    fn optional_next(&mut self) -> Option<String> {
        match self.args.get(self.pos) {
            Some(v) if !v.starts_with('-') && !self.only_args => {
                self.pos += 1;
                Some(v.clone())
            }
            _ => None,
        }
    }

    /// `--name`, `--name=value` or `--name value`.
    fn long(&mut self, word: String) -> Result<Opt<I>, PoptError> {
        let long = &word[2..];
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        let Some(d) = self.table.iter().find(|d| d.long == name) else {
            return Err(PoptError::UnknownOption { word });
        };
        let (kind, id) = self.resolve(d);
        let value = match (kind, inline) {
            (ArgKind::None, _) => None,
            (_, Some(v)) => Some(v),
            (ArgKind::Required, None) => Some(self.required_next(&word)?),
            (ArgKind::Optional, None) => self.optional_next(),
        };
        Ok(Opt {
            id,
            value,
            text: word,
        })
    }

    /// The letter `b.next` of a bundle; a flag leaves the rest of the bundle for later.
    fn short(&mut self, b: Bundle) -> Result<Opt<I>, PoptError> {
        let c = b.letters[b.next];
        let Some(d) = self.table.iter().find(|d| d.short == Some(c)) else {
            return Err(PoptError::UnknownOption { word: b.word });
        };
        let (kind, id) = self.resolve(d);
        let rest: String = b.letters[b.next + 1..].iter().collect();
        let attached = (!rest.is_empty()).then_some(rest);
        let value = match (kind, attached) {
            (ArgKind::None, _) => {
                self.bundle = Some(Bundle {
                    next: b.next + 1,
                    ..b
                });
                None
            }
            (_, Some(v)) => Some(v),
            (ArgKind::Required, None) => Some(self.required_next(&b.word)?),
            (ArgKind::Optional, None) => self.optional_next(),
        };
        Ok(Opt {
            id,
            value,
            text: format!("-{c}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum T {
        List,
        Numeric,
        Port,
        Persist,
        B,
        Flag,
    }

    const TABLE: &[OptDef<T>] = &[
        OptDef::new("list", Some('L'), ArgKind::None, T::List),
        OptDef::new("numeric", Some('n'), ArgKind::None, T::Numeric),
        OptDef::new("port", Some('t'), ArgKind::Required, T::Port),
        OptDef::new("persistent", Some('p'), ArgKind::Optional, T::Persist),
        OptDef::new("bee", Some('b'), ArgKind::Required, T::B),
    ];

    fn scan(words: &str, remap_b: bool) -> (Vec<Result<Opt<T>, PoptError>>, Vec<String>) {
        let args: Vec<String> = words.split_whitespace().map(String::from).collect();
        let mut sc = Scanner::new(TABLE, &args);
        if remap_b {
            sc.remap(T::B, ArgKind::None, T::Flag);
        }
        let mut out = Vec::new();
        while let Some(o) = sc.next_opt() {
            let stop = o.is_err();
            out.push(o);
            if stop {
                break;
            }
        }
        (out, sc.take_leftovers())
    }

    fn ids(words: &str, remap_b: bool) -> Vec<(T, Option<String>)> {
        scan(words, remap_b)
            .0
            .into_iter()
            .map(|o| o.map(|o| (o.id, o.value)).unwrap())
            .collect()
    }

    #[test]
    fn bundles_values_and_leftovers() {
        assert_eq!(
            ids("-Lnt1.2.3.4:80", false),
            [
                (T::List, None),
                (T::Numeric, None),
                (T::Port, Some("1.2.3.4:80".into()))
            ]
        );
        assert_eq!(ids("--port=-1 -t -w", false)[1].1.as_deref(), Some("-w"));
        assert_eq!(ids("-p -n", false)[0], (T::Persist, None));
        assert_eq!(ids("--persistent 5", false)[0].1.as_deref(), Some("5"));
        assert_eq!(ids("-b -n", true), [(T::Flag, None), (T::Numeric, None)]);
        let (_, left) = scan("x -L - -- -n", false);
        assert_eq!(left, ["x", "-", "-n"]);
    }

    #[test]
    fn errors_are_popt_texts() {
        let err = |w: &str| scan(w, false).0.pop().unwrap().unwrap_err().to_string();
        assert_eq!(err("-Lnx"), "-Lnx: unknown option");
        assert_eq!(err("-Lnt"), "-Lnt: missing argument");
        assert_eq!(err("--bogus=1"), "--bogus=1: unknown option");
        assert_eq!(err("--port"), "--port: missing argument");
    }
}
