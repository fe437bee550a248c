//! The syntax tree of a query, as the parser produced it.
//!
//! `Display` prints a canonical form (every binary expression in parentheses, keywords lowercase,
//! aliases and units as written), which the parser tests compare against and which parses back to
//! the same tree.

use std::fmt;

use regex::Regex;

/// A field name as written, with the byte offset where it was written (for error messages).
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub enum Command {
    /// `fields a, b as c`: adds columns to the output (and names for later commands).
    Fields(Vec<Projection>),
    /// `display a, b`: sets the output columns, replacing earlier `fields`.
    Display(Vec<Field>),
    Filter(Expr),
    Stats(Stats),
    Sort(Vec<SortKey>),
    Limit(usize),
    Parse(ParseSpec),
    Dedup(Vec<Field>),
}

#[derive(Debug, Clone)]
pub struct Projection {
    pub field: Field,
    pub alias: Option<Field>,
}

#[derive(Debug, Clone)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, CmpOp, Operand),
    In {
        operand: Operand,
        list: Vec<Literal>,
        negated: bool,
    },
    Like {
        operand: Operand,
        pattern: Pattern,
        negated: bool,
    },
    /// `ispresent(f)`: the field exists and is not JSON `null`.
    IsPresent(Field),
    /// `isempty(f)`: the field is missing, `null` or `""`.
    IsEmpty(Field),
}

#[derive(Debug, Clone)]
pub enum Operand {
    Field(Field),
    Literal(Literal),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right side of `like`: a substring, or a regular expression (also the form `=~ /re/`).
#[derive(Debug, Clone)]
pub enum Pattern {
    Substring(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub struct Stats {
    pub aggregates: Vec<Aggregate>,
    pub by: Vec<GroupKey>,
}

#[derive(Debug, Clone)]
pub struct Aggregate {
    pub func: AggFunc,
    /// What is aggregated; `None` for `count(*)` and `count()`.
    pub arg: Option<AggArg>,
    pub alias: Option<Field>,
    pub offset: usize,
}

/// The argument of an aggregate function.
#[derive(Debug, Clone)]
pub enum AggArg {
    Field(Field),
    /// A filter expression, counted as 1 where true and 0 where false, so `avg(status >= 500)`
    /// is an error rate (only in `count`, `sum` and `avg`).
    Condition(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// `pct(field, p)` with `p` in 0..=100.
    Pct(f64),
    CountDistinct,
}

#[derive(Debug, Clone)]
pub enum GroupKey {
    Field {
        field: Field,
        alias: Option<Field>,
    },
    /// `bin(5m)`: the start of the period `@timestamp` falls in.
    Bin {
        period_ms: i64,
        /// The period as written, e.g. `5m`, which names the column `bin(5m)`.
        text: String,
        alias: Option<Field>,
        offset: usize,
    },
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub field: Field,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct ParseSpec {
    /// The field parsed; `@message` when the query names none.
    pub source: Field,
    pub pattern: ParsePattern,
    /// The fields created, one per `*` of a glob or per named group of a regex.
    pub names: Vec<Field>,
    /// The glob translated to a regex, or the regex itself.
    pub regex: Regex,
}

#[derive(Debug, Clone)]
pub enum ParsePattern {
    Glob(String),
    Regex(String),
}

impl Aggregate {
    /// The column name: the alias, or the call as written canonically (`count(*)`, `pct(x, 99)`).
    pub fn column(&self) -> String {
        match &self.alias {
            Some(a) => a.name.clone(),
            None => self.call(),
        }
    }

    fn call(&self) -> String {
        let field = match &self.arg {
            None => "*".to_owned(),
            Some(AggArg::Field(f)) => f.name.clone(),
            Some(AggArg::Condition(e)) => e.to_string(),
        };
        match self.func {
            AggFunc::Count => format!("count({field})"),
            AggFunc::Sum => format!("sum({field})"),
            AggFunc::Avg => format!("avg({field})"),
            AggFunc::Min => format!("min({field})"),
            AggFunc::Max => format!("max({field})"),
            AggFunc::Pct(p) => format!("pct({field}, {p})"),
            AggFunc::CountDistinct => format!("count_distinct({field})"),
        }
    }
}

impl GroupKey {
    pub fn column(&self) -> String {
        match self {
            GroupKey::Field { alias: Some(a), .. } | GroupKey::Bin { alias: Some(a), .. } => {
                a.name.clone()
            }
            GroupKey::Field { field, .. } => field.name.clone(),
            GroupKey::Bin { text, .. } => format!("bin({text})"),
        }
    }
}

/// Writes a name, backquoted when it would not lex as a bare identifier.
fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let bare = name.bytes().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic()
            || matches!(c, b'_' | b'@' | b'$')
            || c >= 0x80
            || (i > 0 && (c.is_ascii_digit() || c == b'.'))
    });
    if bare && !name.is_empty() {
        f.write_str(name)
    } else {
        write!(f, "`{name}`")
    }
}

fn write_alias(f: &mut fmt::Formatter<'_>, alias: &Option<Field>) -> fmt::Result {
    if let Some(a) = alias {
        f.write_str(" as ")?;
        write_name(f, &a.name)?;
    }
    Ok(())
}

fn write_list<T>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    mut each: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, item)?;
    }
    Ok(())
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Fields(ps) => {
                f.write_str("fields ")?;
                write_list(f, ps, |f, p| {
                    write_name(f, &p.field.name)?;
                    write_alias(f, &p.alias)
                })
            }
            Command::Display(fs) => {
                f.write_str("display ")?;
                write_list(f, fs, |f, x| write_name(f, &x.name))
            }
            Command::Filter(e) => write!(f, "filter {e}"),
            Command::Stats(s) => {
                f.write_str("stats ")?;
                write_list(f, &s.aggregates, |f, a| {
                    f.write_str(&a.call())?;
                    write_alias(f, &a.alias)
                })?;
                if !s.by.is_empty() {
                    f.write_str(" by ")?;
                    write_list(f, &s.by, |f, k| match k {
                        GroupKey::Field { field, alias } => {
                            write_name(f, &field.name)?;
                            write_alias(f, alias)
                        }
                        GroupKey::Bin { text, alias, .. } => {
                            write!(f, "bin({text})")?;
                            write_alias(f, alias)
                        }
                    })?;
                }
                Ok(())
            }
            Command::Sort(keys) => {
                f.write_str("sort ")?;
                write_list(f, keys, |f, k| {
                    write_name(f, &k.field.name)?;
                    f.write_str(if k.descending { " desc" } else { " asc" })
                })
            }
            Command::Limit(n) => write!(f, "limit {n}"),
            Command::Parse(p) => {
                f.write_str("parse ")?;
                write_name(f, &p.source.name)?;
                match &p.pattern {
                    ParsePattern::Glob(g) => {
                        write!(f, " {}", Literal::Str(g.clone()))?;
                        f.write_str(" as ")?;
                        write_list(f, &p.names, |f, n| write_name(f, &n.name))
                    }
                    ParsePattern::Regex(r) => write!(f, " /{}/", r.replace('/', "\\/")),
                }
            }
            Command::Dedup(fs) => {
                f.write_str("dedup ")?;
                write_list(f, fs, |f, x| write_name(f, &x.name))
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => write!(f, "({a} and {b})"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::Compare(l, op, r) => write!(f, "{l} {op} {r}"),
            Expr::In {
                operand,
                list,
                negated,
            } => {
                write!(f, "{operand} {}in [", if *negated { "not " } else { "" })?;
                write_list(f, list, |f, l| write!(f, "{l}"))?;
                f.write_str("]")
            }
            Expr::Like {
                operand,
                pattern,
                negated,
            } => {
                let not = if *negated { "not " } else { "" };
                match pattern {
                    Pattern::Substring(s) => {
                        write!(f, "{operand} {not}like {}", Literal::Str(s.clone()))
                    }
                    Pattern::Regex(r) => {
                        write!(
                            f,
                            "{operand} {not}like /{}/",
                            r.as_str().replace('/', "\\/")
                        )
                    }
                }
            }
            Expr::IsPresent(x) => {
                f.write_str("ispresent(")?;
                write_name(f, &x.name)?;
                f.write_str(")")
            }
            Expr::IsEmpty(x) => {
                f.write_str("isempty(")?;
                write_name(f, &x.name)?;
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(x) => write_name(f, &x.name),
            Operand::Literal(l) => write!(f, "{l}"),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        '\r' => f.write_str("\\r")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}
