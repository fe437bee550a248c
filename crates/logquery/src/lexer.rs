//! Splits query text into tokens, each with the byte span it came from.
//!
//! The lexer knows no keywords: `filter`, `by`, `and` … are plain identifiers, and the parser
//! decides from context what they mean, so a log field may be called `by` or `limit` without
//! quoting. A backquoted name (`` `user-agent` ``) is never a keyword. `/` always opens a regular
//! expression (the language has no division), and a number directly followed by letters is a
//! duration (`5m`). `#` starts a comment that runs to the end of the line, as in CloudWatch.

use crate::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare name or keyword: letters, digits, `_`, `.`, `@`, `$`, not starting with a digit.
    Ident,
    /// A backquoted name; `text` holds it without the quotes.
    QuotedIdent,
    /// A string literal in `"…"` or `'…'`; `text` holds the decoded value.
    Str,
    /// A regular expression in `/…/`; `text` holds the pattern, `flags` the letters after it.
    Regex,
    Number,
    /// A number with a unit, as in `5m`; `text` holds it whole.
    Duration,
    Pipe,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Star,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`, a regular-expression match.
    Match,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub flags: String,
}

impl Token {
    /// True for a bare identifier spelled `word`, ignoring ASCII case.
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == Tok::Ident && self.text.eq_ignore_ascii_case(word)
    }
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, QueryError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        let start = i;
        let simple = |kind, len: usize| Token {
            kind,
            start,
            end: start + len,
            text: src[start..start + len].to_owned(),
            flags: String::new(),
        };
        let next = bytes.get(i + 1).copied();
        let token = match c {
            b'|' => simple(Tok::Pipe, 1),
            b',' => simple(Tok::Comma, 1),
            b'(' => simple(Tok::LParen, 1),
            b')' => simple(Tok::RParen, 1),
            b'[' => simple(Tok::LBracket, 1),
            b']' => simple(Tok::RBracket, 1),
            b'*' => simple(Tok::Star, 1),
            b'=' if next == Some(b'~') => simple(Tok::Match, 2),
            b'=' if next == Some(b'=') => simple(Tok::Eq, 2),
            b'=' => simple(Tok::Eq, 1),
            b'!' if next == Some(b'=') => simple(Tok::Ne, 2),
            b'<' if next == Some(b'=') => simple(Tok::Le, 2),
            b'<' if next == Some(b'>') => simple(Tok::Ne, 2),
            b'<' => simple(Tok::Lt, 1),
            b'>' if next == Some(b'=') => simple(Tok::Ge, 2),
            b'>' => simple(Tok::Gt, 1),
            b'"' | b'\'' => string(src, start)?,
            b'`' => quoted_ident(src, start)?,
            b'/' => regex(src, start)?,
            b'0'..=b'9' => number(src, start),
            b'-' if next.is_some_and(|n| n.is_ascii_digit()) => number(src, start),
            _ if is_ident_start(c) => {
                let end = scan_while(bytes, i + 1, is_ident_continue);
                simple(Tok::Ident, end - start)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(QueryError::at(
                    src,
                    i,
                    format!("unexpected character '{ch}'"),
                ));
            }
        };
        i = token.end;
        tokens.push(token);
    }
    tokens.push(Token {
        kind: Tok::Eof,
        start: src.len(),
        end: src.len(),
        text: String::new(),
        flags: String::new(),
    });
    Ok(tokens)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || matches!(c, b'_' | b'@' | b'$') || c >= 0x80
}

fn is_ident_continue(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@' | b'$' | b'.') || c >= 0x80
}

fn scan_while(bytes: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && pred(bytes[i]) {
        i += 1;
    }
    i
}

fn number(src: &str, start: usize) -> Token {
    let bytes = src.as_bytes();
    let mut i = scan_while(bytes, start + 1, |c| c.is_ascii_digit());
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = scan_while(bytes, i + 1, |c| c.is_ascii_digit());
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = scan_while(bytes, j, |c| c.is_ascii_digit());
        }
    }
    let mut kind = Tok::Number;
    if bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
        kind = Tok::Duration;
        i = scan_while(bytes, i, |c| c.is_ascii_alphabetic());
    }
    Token {
        kind,
        start,
        end: i,
        text: src[start..i].to_owned(),
        flags: String::new(),
    }
}

/// A string literal with the usual escapes: `\"`, `\'`, `\\`, `\n`, `\t`, `\r`, `\/`, `\uXXXX`.
/// Any other escaped character stands for itself with its backslash, so glob patterns such as
/// `"\[*\]"` keep what the user wrote.
fn string(src: &str, start: usize) -> Result<Token, QueryError> {
    let quote = src.as_bytes()[start] as char;
    let mut text = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => {
                return Ok(Token {
                    kind: Tok::Str,
                    start,
                    end: start + 1 + off + 1,
                    text,
                    flags: String::new(),
                });
            }
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, 'r')) => text.push('\r'),
                Some((_, 'u')) => {
                    let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    match decoded {
                        Some(ch) if hex.len() == 4 => text.push(ch),
                        _ => {
                            return Err(QueryError::at(
                                src,
                                start + 1 + off,
                                "invalid \\u escape: expected four hex digits",
                            ));
                        }
                    }
                }
                Some((_, c)) if c == quote || c == '\\' || c == '/' => text.push(c),
                Some((_, c)) => {
                    text.push('\\');
                    text.push(c);
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err(QueryError::at(src, start, "unterminated string"))
}

fn quoted_ident(src: &str, start: usize) -> Result<Token, QueryError> {
    match src[start + 1..].find('`') {
        Some(0) => Err(QueryError::at(src, start, "empty field name")),
        Some(len) => Ok(Token {
            kind: Tok::QuotedIdent,
            start,
            end: start + 1 + len + 1,
            text: src[start + 1..start + 1 + len].to_owned(),
            flags: String::new(),
        }),
        None => Err(QueryError::at(src, start, "unterminated `name`")),
    }
}

/// A regular expression `/…/flags`; `\/` stands for a slash, every other escape is passed to the
/// regex engine as written.
fn regex(src: &str, start: usize) -> Result<Token, QueryError> {
    let bytes = src.as_bytes();
    let mut pattern = String::new();
    let mut i = start + 1;
    let mut piece_start = i;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'/') => {
                pattern.push_str(&src[piece_start..i]);
                pattern.push('/');
                i += 2;
                piece_start = i;
            }
            b'\\' => i += 2,
            b'/' => {
                pattern.push_str(&src[piece_start..i]);
                let end = scan_while(bytes, i + 1, |c| c.is_ascii_alphabetic());
                return Ok(Token {
                    kind: Tok::Regex,
                    start,
                    end,
                    text: pattern,
                    flags: src[i + 1..end].to_owned(),
                });
            }
            b'\n' => break,
            _ => i += 1,
        }
    }
    Err(QueryError::at(
        src,
        start,
        "unterminated regular expression",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Tok, String)> {
        tokenize(src)
            .expect("lexes")
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn lexes_operators_literals_and_comments() {
        use Tok::*;
        let got = kinds("x>=-1.5e3 # note\n|y=~/a\\/b/ `a-b` 'it''s' 5m != <=");
        let want = [
            (Ident, "x"),
            (Ge, ">="),
            (Number, "-1.5e3"),
            (Pipe, "|"),
            (Ident, "y"),
            (Match, "=~"),
            (Regex, "a/b"),
            (QuotedIdent, "a-b"),
            (Str, "it"),
            (Str, "s"),
            (Duration, "5m"),
            (Ne, "!="),
            (Le, "<="),
            (Eof, ""),
        ];
        let want: Vec<(Tok, String)> = want.iter().map(|(k, t)| (*k, t.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn string_escapes() {
        let toks = tokenize(r#""a\"b\\c\u00e9\[x\]""#).expect("lexes");
        assert_eq!(toks[0].text, "a\"b\\cé\\[x\\]");
    }

    #[test]
    fn regex_flags_are_kept() {
        let toks = tokenize("/error/i and").expect("lexes");
        assert_eq!(
            (toks[0].text.as_str(), toks[0].flags.as_str()),
            ("error", "i")
        );
        assert!(toks[1].is_word("AND"));
    }

    #[test]
    fn errors_point_at_the_opening_character() {
        let e = tokenize("filter a = \"open").expect_err("unterminated");
        assert_eq!((e.message.as_str(), e.column), ("unterminated string", 12));
        let e = tokenize("filter a ; b").expect_err("bad char");
        assert_eq!(
            (e.message.as_str(), e.column),
            ("unexpected character ';'", 10)
        );
    }
}
