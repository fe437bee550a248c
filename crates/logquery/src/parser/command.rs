//! The commands of a query: `fields`, `display`, `filter`, `stats`, `sort`, `limit`, `parse`,
//! `dedup`.

use regex::Regex;

use super::Parser;
use crate::QueryError;
use crate::ast::{
    AggArg, AggFunc, Aggregate, Command, Field, GroupKey, ParsePattern, ParseSpec, Projection,
    SortKey, Stats,
};
use crate::lexer::{Tok, Token};

/// CloudWatch returns at most this many rows, whatever `limit` asks.
pub(crate) const MAX_LIMIT: usize = 10_000;

const COMMANDS: &str = "fields, display, filter, stats, sort, limit, parse or dedup";
const FUNCTIONS: &str = "count, sum, avg, min, max, pct or count_distinct";

impl Parser<'_> {
    pub(super) fn command(&mut self) -> Result<Command, QueryError> {
        if !self.at(Tok::Ident) {
            return Err(self.unexpected(&format!("a command ({COMMANDS})")));
        }
        let t = self.bump();
        match t.text.to_ascii_lowercase().as_str() {
            "fields" => self
                .list(|p| {
                    let field = p.field("a field name")?;
                    let alias = p.alias()?;
                    Ok(Projection { field, alias })
                })
                .map(Command::Fields),
            "display" => self.list(|p| p.field("a field name")).map(Command::Display),
            "filter" => self.expr().map(Command::Filter),
            "stats" => self.stats().map(Command::Stats),
            "sort" => self.list(Self::sort_key).map(Command::Sort),
            "limit" => self.limit().map(Command::Limit),
            "parse" => self.parse_spec().map(Command::Parse),
            "dedup" => self.list(|p| p.field("a field name")).map(Command::Dedup),
            other => Err(self.error_at(
                t.start,
                format!("unknown command '{other}'; expected {COMMANDS}"),
            )),
        }
    }

    fn sort_key(&mut self) -> Result<SortKey, QueryError> {
        let field = self.field("a field to sort by")?;
        let descending = if self.eat_word("desc") {
            true
        } else {
            self.eat_word("asc");
            false
        };
        Ok(SortKey { field, descending })
    }

    fn limit(&mut self) -> Result<usize, QueryError> {
        let t = self.expect(Tok::Number, "a number of rows")?;
        match t.text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(self.error_at(
                t.start,
                format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        }
    }

    fn stats(&mut self) -> Result<Stats, QueryError> {
        let aggregates = self.list(Self::aggregate)?;
        let by = if self.eat_word("by") {
            self.list(Self::group_key)?
        } else {
            Vec::new()
        };
        Ok(Stats { aggregates, by })
    }

    fn aggregate(&mut self) -> Result<Aggregate, QueryError> {
        if !(self.at(Tok::Ident) && self.peek_kind_at(1) == Tok::LParen) {
            return Err(self.unexpected(&format!("an aggregate function ({FUNCTIONS})")));
        }
        let name = self.bump();
        self.bump(); // (
        let lower = name.text.to_ascii_lowercase();
        let (func, arg) = match lower.as_str() {
            "count" => {
                let arg = if self.eat(Tok::Star) || self.at(Tok::RParen) {
                    None
                } else {
                    Some(self.agg_arg()?)
                };
                (AggFunc::Count, arg)
            }
            "sum" => (AggFunc::Sum, Some(self.agg_arg()?)),
            "avg" => (AggFunc::Avg, Some(self.agg_arg()?)),
            "min" | "max" | "count_distinct" => {
                let func = match lower.as_str() {
                    "min" => AggFunc::Min,
                    "max" => AggFunc::Max,
                    _ => AggFunc::CountDistinct,
                };
                (func, Some(AggArg::Field(self.field("a field name")?)))
            }
            "pct" | "percentile" => {
                let field = self.field("a field name")?;
                self.expect(Tok::Comma, "',' and a percentile from 0 to 100")?;
                let t = self.expect(Tok::Number, "a percentile from 0 to 100")?;
                let p = t
                    .text
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p));
                let Some(p) = p else {
                    return Err(self.error_at(t.start, "the percentile must be from 0 to 100"));
                };
                (AggFunc::Pct(p), Some(AggArg::Field(field)))
            }
            _ => {
                return Err(self.error_at(
                    name.start,
                    format!("unknown function '{}'; expected {FUNCTIONS}", name.text),
                ));
            }
        };
        self.expect(Tok::RParen, "')'")?;
        let alias = self.alias()?;
        Ok(Aggregate {
            func,
            arg,
            alias,
            offset: name.start,
        })
    }

    /// A field, or a condition such as `status >= 500` that counts as 1 where it holds.
    fn agg_arg(&mut self) -> Result<AggArg, QueryError> {
        let plain_field = matches!(self.peek().kind, Tok::Ident | Tok::QuotedIdent)
            && matches!(self.peek_kind_at(1), Tok::RParen | Tok::Comma);
        if plain_field {
            return self.field("a field name").map(AggArg::Field);
        }
        self.expr().map(AggArg::Condition)
    }

    fn group_key(&mut self) -> Result<GroupKey, QueryError> {
        if self.at_word("bin") && self.peek_kind_at(1) == Tok::LParen {
            let offset = self.bump().start;
            self.bump(); // (
            let t = self.expect(Tok::Duration, "a period such as 30s, 5m, 1h or 1d")?;
            let period_ms = self.duration(&t)?;
            self.expect(Tok::RParen, "')'")?;
            let alias = self.alias()?;
            return Ok(GroupKey::Bin {
                period_ms,
                text: t.text,
                alias,
                offset,
            });
        }
        let field = self.field("a field or bin(period) to group by")?;
        let alias = self.alias()?;
        Ok(GroupKey::Field { field, alias })
    }

    fn duration(&self, t: &Token) -> Result<i64, QueryError> {
        let split = t.text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
        let (number, unit) = t.text.split_at(split);
        let unit_ms: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => {
                return Err(self.error_at(
                    t.start + split,
                    format!("unknown time unit '{unit}'; expected ms, s, m, h, d or w"),
                ));
            }
        };
        match number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
        {
            Some(ms) if ms > 0 => Ok(ms),
            _ => Err(self.error_at(t.start, "the period must be a positive whole number")),
        }
    }

    fn parse_spec(&mut self) -> Result<ParseSpec, QueryError> {
        let start = self.peek().start;
        let source = if matches!(self.peek().kind, Tok::Ident | Tok::QuotedIdent) {
            self.field("a field name")?
        } else {
            Field {
                name: "@message".to_owned(),
                offset: start,
            }
        };
        let t = self.bump();
        match t.kind {
            Tok::Str => {
                if !self.eat_word("as") {
                    return Err(self.unexpected("'as' and the names of the fields to create"));
                }
                let names = self.list(|p| p.field("a field name"))?;
                let (regex, stars) = glob_to_regex(&t.text);
                let regex =
                    Regex::new(&regex).map_err(|e| self.error_at(t.start, regex_message(&e)))?;
                if stars != names.len() {
                    return Err(self.error_at(
                        t.start,
                        format!(
                            "the pattern has {stars} '*' but {} names follow 'as'",
                            names.len()
                        ),
                    ));
                }
                Ok(ParseSpec {
                    source,
                    pattern: ParsePattern::Glob(t.text),
                    names,
                    regex,
                })
            }
            Tok::Regex => {
                let regex = self.compile_regex(&t)?;
                let names: Vec<Field> = regex
                    .capture_names()
                    .flatten()
                    .map(|n| Field {
                        name: n.to_owned(),
                        offset: t.start,
                    })
                    .collect();
                if names.is_empty() {
                    return Err(self.error_at(
                        t.start,
                        "the regular expression has no named group such as (?<name>...)",
                    ));
                }
                Ok(ParseSpec {
                    source,
                    pattern: ParsePattern::Regex(t.text),
                    names,
                    regex,
                })
            }
            _ => {
                self.pos -= 1;
                Err(self.unexpected("a glob pattern in quotes or a /regular expression/"))
            }
        }
    }

    /// Compiles a regex token, applying its flags (`i`, `m`, `s`, `x`).
    pub(super) fn compile_regex(&self, t: &Token) -> Result<Regex, QueryError> {
        if let Some(bad) = t.flags.chars().find(|c| !"imsx".contains(*c)) {
            return Err(self.error_at(
                t.end - t.flags.len(),
                format!("unknown regular expression flag '{bad}'; expected i, m, s or x"),
            ));
        }
        let pattern = if t.flags.is_empty() {
            t.text.clone()
        } else {
            format!("(?{}){}", t.flags, t.text)
        };
        Regex::new(&pattern).map_err(|e| self.error_at(t.start, regex_message(&e)))
    }
}

/// The last line of the regex crate's message says what is wrong; the lines above repeat the
/// pattern, which our caret display already shows.
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("");
    format!(
        "invalid regular expression: {}",
        last.trim_start_matches("error: ")
    )
}

/// Turns a glob into a regex and counts its `*`. Each `*` captures lazily, except a `*` that ends
/// the pattern, which takes the rest of the value; `\*` is a literal star. The match is not
/// anchored, so `"user=*,"` finds its text anywhere in the line, like CloudWatch's `parse`.
fn glob_to_regex(glob: &str) -> (String, usize) {
    let mut out = String::from("(?s)");
    let mut literal = String::new();
    let mut stars = 0;
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    literal.push(next);
                }
            }
            '*' => {
                out.push_str(&regex::escape(&literal));
                literal.clear();
                stars += 1;
                out.push_str(if chars.peek().is_none() {
                    "(.*)"
                } else {
                    "(.*?)"
                });
            }
            c => literal.push(c),
        }
    }
    out.push_str(&regex::escape(&literal));
    (out, stars)
}

#[cfg(test)]
mod tests {
    use super::glob_to_regex;

    #[test]
    fn glob_translation() {
        let cases = [
            ("* [*] *", r"(?s)(.*?) \[(.*?)\] (.*)", 3),
            (r"a\*b=*;", r"(?s)a\*b=(.*?);", 1),
            ("plain", "(?s)plain", 0),
        ];
        for (glob, regex, stars) in cases {
            assert_eq!(glob_to_regex(glob), (regex.to_owned(), stars), "{glob}");
        }
    }
}
