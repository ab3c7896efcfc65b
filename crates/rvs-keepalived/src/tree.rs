//! Lines -> a tree of statements: `keyword args... [{ children }]`, each with its `file:line`. A block may open
//! on the statement's line or alone on the next line, and a statement may follow `{` or precede `}` on the
//! same line (`virtual_ipaddress { 10.0.0.1 }`).

use crate::diag::LoadError;
use crate::lexer::{Line, Loc, Word};

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub loc: Loc,
    pub keyword: String,
    pub args: Vec<String>,
    /// `Some` when the statement has a `{ ... }` block (possibly empty).
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// The children (empty when there is no block).
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Deepest block nesting accepted (keepalived's deepest is ~5; this only stops hostile input).
pub const MAX_DEPTH: usize = 32;

enum Tok<'a> {
    Open(&'a Loc),
    Close(&'a Loc),
    Stmt(&'a Loc, &'a [Word]),
}

/// Build the statement tree.
pub fn build(lines: &[Line]) -> Result<Vec<Node>, LoadError> {
    // Flatten lines into statements and braces.
    let mut toks = Vec::new();
    for line in lines {
        let mut start = 0;
        for (i, w) in line.words.iter().enumerate() {
            if w.is("{") || w.is("}") {
                if start < i {
                    toks.push(Tok::Stmt(&line.loc, &line.words[start..i]));
                }
                toks.push(if w.is("{") {
                    Tok::Open(&line.loc)
                } else {
                    Tok::Close(&line.loc)
                });
                start = i + 1;
            }
        }
        if start < line.words.len() {
            toks.push(Tok::Stmt(&line.loc, &line.words[start..]));
        }
    }
    // Stack of open blocks: (statement that owns the block, its children so far).
    let mut stack: Vec<(Node, Vec<Node>)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    let mut last_open_capable = false; // the previous token was a statement that can still take a block
    for tok in toks {
        let depth = stack.len();
        let siblings = match stack.last_mut() {
            Some((_, c)) => c,
            None => &mut top,
        };
        match tok {
            Tok::Stmt(loc, words) => {
                siblings.push(Node {
                    loc: loc.clone(),
                    keyword: words[0].text.clone(),
                    args: words[1..].iter().map(|w| w.text.clone()).collect(),
                    block: None,
                });
                last_open_capable = true;
            }
            Tok::Open(loc) => {
                if !last_open_capable {
                    return Err(LoadError::Syntax {
                        loc: loc.clone(),
                        message: "'{' without a keyword before it".into(),
                    });
                }
                if depth >= MAX_DEPTH {
                    return Err(LoadError::Syntax {
                        loc: loc.clone(),
                        message: format!("blocks nested deeper than {MAX_DEPTH}"),
                    });
                }
                let Some(owner) = siblings.pop() else {
                    return Err(LoadError::Syntax {
                        loc: loc.clone(),
                        message: "'{' without a keyword before it".into(),
                    });
                };
                stack.push((owner, Vec::new()));
                last_open_capable = false;
            }
            Tok::Close(loc) => {
                let Some((mut owner, children)) = stack.pop() else {
                    return Err(LoadError::Syntax {
                        loc: loc.clone(),
                        message: "'}' without a matching '{'".into(),
                    });
                };
                owner.block = Some(children);
                match stack.last_mut() {
                    Some((_, c)) => c.push(owner),
                    None => top.push(owner),
                }
                last_open_capable = false;
            }
        }
    }
    if let Some((owner, _)) = stack.pop() {
        return Err(LoadError::Syntax {
            loc: owner.loc.clone(),
            message: format!(
                "block of '{}' is never closed (missing '}}')",
                owner.keyword
            ),
        });
    }
    Ok(top)
}
