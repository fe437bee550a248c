//! The recursive-descent parser: tokens to the syntax tree in [`crate::ast`].
//!
//! Keywords are contextual (see the lexer), so each rule checks the identifier it expects by
//! spelling, ignoring case. Every error names what was expected and what was found, at the offset
//! of the token found. `command.rs` holds the commands, `expr.rs` the filter expressions.

mod command;

pub(crate) use command::MAX_LIMIT;
mod expr;

use crate::QueryError;
use crate::ast::{Command, Expr, Field};
use crate::lexer::{Tok, Token, tokenize};

pub(crate) struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
}

/// Parses a whole query: commands separated by `|`.
pub(crate) fn parse_commands(src: &str) -> Result<Vec<(usize, Command)>, QueryError> {
    let mut p = Parser::new(src)?;
    if p.at(Tok::Eof) {
        return Err(p.error_here("empty query: expected a command such as 'fields' or 'filter'"));
    }
    let mut commands = Vec::new();
    loop {
        let offset = p.peek().start;
        commands.push((offset, p.command()?));
        if p.eat(Tok::Pipe) {
            continue;
        }
        if p.at(Tok::Eof) {
            return Ok(commands);
        }
        return Err(p.unexpected("'|' or the end of the query"));
    }
}

/// Parses a standalone filter expression (what follows `filter` in a query).
pub(crate) fn parse_expr(src: &str) -> Result<Expr, QueryError> {
    let mut p = Parser::new(src)?;
    if p.at(Tok::Eof) {
        return Err(p.error_here("empty filter expression"));
    }
    let e = p.expr()?;
    if !p.at(Tok::Eof) {
        return Err(p.unexpected("'and', 'or' or the end of the expression"));
    }
    Ok(e)
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Result<Self, QueryError> {
        Ok(Parser {
            src,
            toks: tokenize(src)?,
            pos: 0,
        })
    }

    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `bump` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_kind_at(&self, n: usize) -> Tok {
        self.toks.get(self.pos + n).map_or(Tok::Eof, |t| t.kind)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn at(&self, kind: Tok) -> bool {
        self.peek().kind == kind
    }

    fn at_word(&self, word: &str) -> bool {
        self.peek().is_word(word)
    }

    fn eat(&mut self, kind: Tok) -> bool {
        let hit = self.at(kind);
        if hit {
            self.bump();
        }
        hit
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let hit = self.at_word(word);
        if hit {
            self.bump();
        }
        hit
    }

    fn expect(&mut self, kind: Tok, what: &str) -> Result<Token, QueryError> {
        if self.at(kind) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> QueryError {
        QueryError::at(self.src, offset, message)
    }

    fn error_here(&self, message: impl Into<String>) -> QueryError {
        self.error_at(self.peek().start, message)
    }

    /// "expected X, found Y" at the current token.
    fn unexpected(&self, expected: &str) -> QueryError {
        self.error_here(format!(
            "expected {expected}, found {}",
            describe(self.peek())
        ))
    }

    /// A field name: a bare identifier or a backquoted name.
    fn field(&mut self, what: &str) -> Result<Field, QueryError> {
        match self.peek().kind {
            Tok::Ident | Tok::QuotedIdent => {
                let t = self.bump();
                Ok(Field {
                    name: t.text,
                    offset: t.start,
                })
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// An optional `as name`.
    fn alias(&mut self) -> Result<Option<Field>, QueryError> {
        if self.eat_word("as") {
            self.field("a name after 'as'").map(Some)
        } else {
            Ok(None)
        }
    }

    /// One or more items separated by commas.
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, QueryError>,
    ) -> Result<Vec<T>, QueryError> {
        let mut items = vec![item(self)?];
        while self.eat(Tok::Comma) {
            items.push(item(self)?);
        }
        Ok(items)
    }
}

/// How a token is named in "found …".
fn describe(t: &Token) -> String {
    match t.kind {
        Tok::Eof => "the end of the query".to_owned(),
        Tok::Str => format!("string \"{}\"", t.text),
        Tok::Regex => "a regular expression".to_owned(),
        Tok::QuotedIdent => format!("`{}`", t.text),
        _ => format!("'{}'", t.text),
    }
}
