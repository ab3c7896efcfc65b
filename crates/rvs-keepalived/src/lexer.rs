//! keepalived's lexical rules (lib/parser.c), file by file: a line at a time, comments cut, `$NAME=` definitions
//! substituted, `@id` conditional lines, `include` expanded in place, every line tokenised and tagged with its
//! `file:line`.
//!
//! * Comments (`decomment()`): an unquoted `#` or `!` anywhere ends the line; `\#` and `\!` are literal; a `\` at
//!   the end of a line continues it on the next one.
//! * Words (`alloc_strvec_r()`): separated by blanks; a `"..."` string is one word without its quotes.
//!   Unquoted `{` and `}` are words of their own even when glued to a neighbour (keepalived needs blanks there;
//!   accepting more never changes the meaning of a file keepalived reads).
//! * `include PATTERN`: glob(3) relative to the directory of the including file (keepalived chdir()s there),
//!   matches in sorted order; no match is a warning (keepalived logs and goes on); nested at most
//!   [`MAX_INCLUDE_DEPTH`] deep.
//! * `$NAME=VALUE` defines a parameter, `$NAME` and `${NAME}` are replaced in later lines (keepalived's
//!   "Parameter substitution"); `@ID line` is kept only when the configuration id is ID, `@^ID line` only when
//!   it is not.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostics, LoadError};

/// Deepest include nesting (keepalived stops at a similar small depth to catch include loops).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Longest file read (a keepalived.conf of 10,000 real servers is ~1.5 MB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Where a line came from: `file:line` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: Arc<Path>,
    pub line: u32,
}

impl Loc {
    pub fn new(file: &Arc<Path>, line: u32) -> Self {
        Self {
            file: file.clone(),
            line,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One word of a line. `quoted` words are never braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub quoted: bool,
}

impl Word {
    pub fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

/// One logical line: its words and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub loc: Loc,
    pub words: Vec<Word>,
}

/// Where files come from: the file system, or (tests, fuzzing) a fixed set of texts.
pub trait Source {
    /// The text of `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Paths matching the glob `pattern` (already made absolute or relative to the including file), sorted.
    fn glob(&self, pattern: &Path) -> Vec<PathBuf>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSystem;

impl Source for FileSystem {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        use std::io::Read;
        let f = std::fs::File::open(path)?;
        let mut text = String::new();
        f.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
        Ok(text)
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        crate::glob::expand(pattern)
    }
}

/// Options of a load.
#[derive(Debug, Clone, Default)]
pub struct LexOptions {
    /// keepalived's `-i config_id` (`@ID` lines); `None`: `@ID` lines are dropped, `@^ID` lines kept.
    pub config_id: Option<String>,
    /// Refuse `include` (fuzzing).
    pub no_include: bool,
}

struct Lexer<'a> {
    src: &'a dyn Source,
    opts: &'a LexOptions,
    params: Vec<(String, String)>,
    out: Vec<Line>,
    stack: Vec<PathBuf>,
}

/// Read `path` (and what it includes) into lines.
pub fn lex_file(
    src: &dyn Source,
    path: &Path,
    opts: &LexOptions,
    diag: &mut Diagnostics,
) -> Result<Vec<Line>, LoadError> {
    let mut lx = Lexer {
        src,
        opts,
        params: Vec::new(),
        out: Vec::new(),
        stack: Vec::new(),
    };
    let text = src.read(path).map_err(|e| LoadError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    lx.file(path, &text, diag)?;
    Ok(lx.out)
}

impl Lexer<'_> {
    fn file(&mut self, path: &Path, text: &str, diag: &mut Diagnostics) -> Result<(), LoadError> {
        let file: Arc<Path> = Arc::from(path);
        self.stack.push(path.to_owned());
        let mut pending: Option<(u32, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let lineno = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let (body, cont) = decomment(raw).map_err(|what| LoadError::Syntax {
                loc: Loc::new(&file, lineno),
                message: what.into(),
            })?;
            let (start, mut acc) = pending.take().unwrap_or((lineno, String::new()));
            if !acc.is_empty() && !body.is_empty() {
                acc.push(' ');
            }
            acc.push_str(&body);
            if cont {
                pending = Some((start, acc));
                continue;
            }
            self.logical_line(&file, start, &acc, diag)?;
        }
        if let Some((start, acc)) = pending {
            self.logical_line(&file, start, &acc, diag)?;
        }
        self.stack.pop();
        Ok(())
    }

    fn logical_line(
        &mut self,
        file: &Arc<Path>,
        lineno: u32,
        text: &str,
        diag: &mut Diagnostics,
    ) -> Result<(), LoadError> {
        let loc = Loc::new(file, lineno);
        let mut text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        // Conditional configuration.
        if let Some(rest) = text.strip_prefix('@') {
            let (cond, line) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            let keep = match cond.strip_prefix('^') {
                Some(id) => self.opts.config_id.as_deref() != Some(id),
                None => self.opts.config_id.as_deref() == Some(cond),
            };
            if !keep {
                return Ok(());
            }
            text = line.trim();
        }
        // Parameter definition.
        if let Some(def) = text.strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && is_param_name(name.trim())
        {
            let value = self.substitute(value.trim());
            let name = name.trim().to_owned();
            self.params.retain(|(n, _)| *n != name);
            self.params.push((name, value));
            return Ok(());
        }
        if text.starts_with('~') {
            diag.warn(
                &loc,
                "sequence blocks (~SEQ) are not supported by rvs: line ignored",
            );
            return Ok(());
        }
        let text = self.substitute(text);
        let words = split_words(&text).map_err(|m| LoadError::Syntax {
            loc: loc.clone(),
            message: m.into(),
        })?;
        if words.is_empty() {
            return Ok(());
        }
        if words[0].is("include") {
            return self.include(&loc, &words, diag);
        }
        self.out.push(Line { loc, words });
        Ok(())
    }

    fn include(
        &mut self,
        loc: &Loc,
        words: &[Word],
        diag: &mut Diagnostics,
    ) -> Result<(), LoadError> {
        if self.opts.no_include {
            return Err(LoadError::Syntax {
                loc: loc.clone(),
                message: "include is not allowed here".into(),
            });
        }
        let Some(pattern) = words.get(1) else {
            return Err(LoadError::Syntax {
                loc: loc.clone(),
                message: "include needs a file name or pattern".into(),
            });
        };
        if words.len() > 2 {
            diag.warn(loc, "include: words after the pattern are ignored");
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(LoadError::Syntax {
                loc: loc.clone(),
                message: format!(
                    "include nested deeper than {MAX_INCLUDE_DEPTH} files (an include loop?)"
                ),
            });
        }
        let pattern = Path::new(&pattern.text);
        let full = if pattern.is_absolute() {
            pattern.to_owned()
        } else {
            let dir = loc.file.parent().unwrap_or(Path::new("."));
            normalize(&dir.join(pattern))
        };
        let matches = self.src.glob(&full);
        if matches.is_empty() {
            diag.warn(loc, format!("include {}: no file matches", full.display()));
            return Ok(());
        }
        for path in matches {
            if self.stack.contains(&path) {
                return Err(LoadError::Syntax {
                    loc: loc.clone(),
                    message: format!("{} includes itself", path.display()),
                });
            }
            let text = self.src.read(&path).map_err(|e| LoadError::Include {
                loc: loc.clone(),
                path: path.clone(),
                source: e,
            })?;
            self.file(&path, &text, diag)?;
        }
        Ok(())
    }

    /// Replace `$NAME` and `${NAME}` by defined parameters (unknown ones stay as they are).
    fn substitute(&self, text: &str) -> String {
        if self.params.is_empty() || !text.contains('$') {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, used) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(j) => (&b[..j], j + 2),
                    None => ("", 0),
                }
            } else {
                let n = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..n], n)
            };
            match self.params.iter().find(|(n, _)| n == name) {
                Some((_, v)) if !name.is_empty() => {
                    out.push_str(v);
                    rest = &after[used..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Resolve `.` and `..` lexically (the include's location reads as a plain path).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Cut comments (keepalived's `decomment()`): returns the text and whether it continues on the next line.
fn decomment(raw: &str) -> Result<(String, bool), &'static str> {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut chars = raw.trim_start().chars().peekable();
    let mut cont = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                None => {
                    cont = true;
                    break;
                }
                Some(&n @ ('#' | '!')) if !quote => {
                    out.push(n);
                    chars.next();
                }
                Some(&n) => {
                    out.push('\\');
                    out.push(n);
                    chars.next();
                }
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    if quote {
        return Err("unterminated quoted string");
    }
    Ok((out.trim_end().to_owned(), cont))
}

/// Split a decommented line into words: blanks separate, `"..."` is one word, `{` and `}` stand alone.
fn split_words(text: &str) -> Result<Vec<Word>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    let flush = |cur: &mut String, in_word: &mut bool, words: &mut Vec<Word>| {
        if *in_word {
            words.push(Word {
                text: std::mem::take(cur),
                quoted: false,
            });
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\u{b}' | '\u{c}' => flush(&mut cur, &mut in_word, &mut words),
            '{' | '}' => {
                flush(&mut cur, &mut in_word, &mut words);
                words.push(Word {
                    text: c.to_string(),
                    quoted: false,
                });
            }
            '"' => {
                // A quote inside a word ends the word (keepalived: strcspn(WHITE_SPACE "\"")).
                flush(&mut cur, &mut in_word, &mut words);
                let mut s = String::new();
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    s.push(q);
                }
                if !closed {
                    return Err("unterminated quoted string");
                }
                words.push(Word {
                    text: s,
                    quoted: true,
                });
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut words);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(w: &[Word]) -> Vec<&str> {
        w.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn comments_quotes_escapes() {
        assert_eq!(decomment("  a b # c").expect("ok"), ("a b".into(), false));
        assert_eq!(decomment("a ! c").expect("ok"), ("a".into(), false));
        assert_eq!(
            decomment("a \"x # y\" z").expect("ok"),
            ("a \"x # y\" z".into(), false)
        );
        assert_eq!(
            decomment("pass a\\#b").expect("ok"),
            ("pass a#b".into(), false)
        );
        assert_eq!(decomment("a b \\").expect("ok"), ("a b".into(), true));
        assert!(decomment("a \"b").is_err());
    }

    #[test]
    fn words_and_braces() {
        let w = split_words("virtual_server 10.0.0.1 80{").expect("ok");
        assert_eq!(texts(&w), ["virtual_server", "10.0.0.1", "80", "{"]);
        let w = split_words("misc_path \"/bin/check -x {1}\" }").expect("ok");
        assert_eq!(texts(&w), ["misc_path", "/bin/check -x {1}", "}"]);
        assert!(w[1].quoted && !w[2].quoted);
        assert!(split_words("a \"b").is_err());
    }
}
