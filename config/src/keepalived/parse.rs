//! keepalived.conf's words as a tree: a statement is the words of one line up to a brace;
//! a `{` (on the same line or the next) opens the block of the statement before it and the
//! matching `}` closes it, as keepalived's reader does.

use super::lexer::Token;
use super::{Loc, MAX_BLOCK_DEPTH};

/// One statement: `real_server 10.0.0.1 80 { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The keyword and its values.
    pub words: Vec<Token>,
    /// Its `{ ... }` block, if it has one.
    pub block: Option<Vec<Item>>,
}

impl Item {
    /// The keyword.
    pub fn kw(&self) -> &str {
        &self.words[0].text
    }

    /// The values after the keyword.
    pub fn args(&self) -> &[Token] {
        &self.words[1..]
    }

    /// Where the statement starts.
    pub fn loc(&self) -> Loc {
        self.words[0].loc
    }
}

/// The tree of `tokens`, or where and why it is not one.
pub fn tree(tokens: &[Token]) -> Result<Vec<Item>, (Loc, String)> {
    // Frames of open blocks: the statement that opened it, and the block's items so far.
    let mut stack: Vec<(Item, Loc, Vec<Item>)> = Vec::new();
    let mut cur: Vec<Item> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t.is_close() {
            let Some((mut owner, _, outer)) = stack.pop() else {
                return Err((t.loc, "extra '}' found (no block is open)".into()));
            };
            owner.block = Some(std::mem::replace(&mut cur, outer));
            cur.push(owner);
            i += 1;
            continue;
        }
        if t.is_open() {
            let owner = match cur.pop() {
                Some(it) if it.block.is_none() => it,
                Some(it) => {
                    return Err((
                        t.loc,
                        format!(
                            "unexpected '{{' after the block of '{}' (line {})",
                            it.kw(),
                            it.loc().line
                        ),
                    ))
                }
                None => return Err((t.loc, "'{' without a keyword before it".into())),
            };
            if stack.len() >= MAX_BLOCK_DEPTH {
                return Err((
                    t.loc,
                    format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
                ));
            }
            stack.push((owner, t.loc, std::mem::take(&mut cur)));
            i += 1;
            continue;
        }
        let start = i;
        while i < tokens.len()
            && tokens[i].loc == t.loc
            && !tokens[i].is_open()
            && !tokens[i].is_close()
        {
            i += 1;
        }
        cur.push(Item {
            words: tokens[start..i].to_vec(),
            block: None,
        });
    }
    if let Some((owner, open, _)) = stack.last() {
        return Err((
            *open,
            format!(
                "the block of '{}' (line {}) is not closed: missing '}}' ({} block{} open at the end)",
                owner.kw(),
                owner.loc().line,
                stack.len(),
                if stack.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(cur)
}
