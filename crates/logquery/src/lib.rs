//! The log query language: a documented subset of CloudWatch Logs Insights.
//!
//! A query is a pipeline of commands separated by `|`: `fields`, `display`, `filter`, `stats`,
//! `sort`, `limit`, `parse` and `dedup` (the reference is `docs/log-queries.md`). [`parse`] checks
//! a query and resolves its field names; [`Query::executor`] gives an [`Executor`] that the store
//! pushes events into, newest first, and whose [`Executor::finish`] returns the rows.
//!
//! The crate is pure: no I/O, no clock, no threads. The caller chooses the time range and the log
//! groups and feeds the events; events are borrowed ([`EventRef`]), so a store can evaluate
//! straight from its decoded blocks without allocating per event, and the fields of a JSON
//! message are read lazily, only those the query names (see `json.rs`).
//!
//! [`parse_filter`] compiles the expression language of `filter` alone, for `logs tail --filter`
//! and metric filters; [`FieldExtractor`] reads one field, for a metric filter's value.

mod ast;
mod error;
mod eval;
mod exec;
mod fields;
mod json;
mod lexer;
mod parser;
mod plan;
mod sort;
mod stats;
mod value;

use std::fmt;
use std::sync::Arc;

pub use ast::{
    AggArg, AggFunc, Aggregate, CmpOp, Command, Expr, Field, GroupKey, Literal, Operand,
    ParsePattern, ParseSpec, Pattern, Projection, SortKey, Stats,
};
pub use error::QueryError;
pub use exec::Executor;
pub use plan::DEFAULT_LIMIT;
pub use value::{Value, rfc3339};

/// The most rows a query returns, whatever its `limit` says (as in CloudWatch).
pub const MAX_LIMIT: usize = parser::MAX_LIMIT;

/// One log event, borrowed from wherever the caller keeps it.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// When the event happened, in milliseconds since the Unix epoch (`@timestamp`).
    pub timestamp_ms: i64,
    /// The log group it belongs to (`@log`).
    pub group: &'a str,
    /// The raw line (`@message`); when it is a JSON object its keys are fields too.
    pub message: &'a str,
}

/// The rows a query returned.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Events pushed into the executor.
    pub records_scanned: u64,
    /// Events that passed the filters before the first `sort` or `stats` (a duplicate that
    /// `dedup` dropped still counts, as in CloudWatch's "showing X of Y records").
    pub records_matched: u64,
}

/// A parsed and planned query.
#[derive(Debug, Clone)]
pub struct Query {
    commands: Vec<Command>,
    plan: Arc<plan::Plan>,
}

/// Parses and plans a query.
///
/// # Errors
///
/// A [`QueryError`] pointing at the position of the first syntax error, unknown function, invalid
/// regular expression or field that does not exist after `stats`.
pub fn parse(query: &str) -> Result<Query, QueryError> {
    let commands = parser::parse_commands(query)?;
    let plan = plan::plan(query, &commands)?;
    Ok(Query {
        commands: commands.into_iter().map(|(_, c)| c).collect(),
        plan: Arc::new(plan),
    })
}

impl Query {
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The event fields the query reads (`@timestamp`, `@message`, `@log` and JSON keys, dotted
    /// for nested ones), in the order they first appear. Fields that `parse` creates are not
    /// among them.
    pub fn referenced_fields(&self) -> &[String] {
        self.plan.sources.names()
    }

    /// The output column names.
    pub fn columns(&self) -> Vec<String> {
        self.plan.output.iter().map(|(n, _)| n.clone()).collect()
    }

    /// A fresh executor; a query may run any number of times.
    pub fn executor(&self) -> Executor {
        Executor::new(Arc::clone(&self.plan))
    }

    /// Runs the query over an iterator of events; a convenience for tests and small inputs.
    pub fn run<'a>(&self, events: impl IntoIterator<Item = EventRef<'a>>) -> QueryResult {
        let mut exec = self.executor();
        for e in events {
            if exec.is_done() {
                break;
            }
            exec.push(e);
        }
        exec.finish()
    }
}

/// The canonical text of the query (see `ast.rs`), which parses back to the same query.
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.commands.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A standalone filter expression, as after `filter` in a query.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: ast::Expr,
    compiled: eval::CExpr,
    sources: fields::Sources,
    width: usize,
}

/// Parses a filter expression such as `status >= 500 and integration.status = ""`.
///
/// # Errors
///
/// A [`QueryError`] pointing at the position of the problem.
pub fn parse_filter(expr: &str) -> Result<Filter, QueryError> {
    let parsed = parser::parse_expr(expr)?;
    let mut sources = fields::Sources::default();
    let mut slots: Vec<String> = Vec::new();
    let compiled = eval::compile(&parsed, &mut |f: &Field| {
        Ok(match slots.iter().position(|n| *n == f.name) {
            Some(s) => s,
            None => {
                sources.add(&f.name, slots.len());
                slots.push(f.name.clone());
                slots.len() - 1
            }
        })
    })?;
    Ok(Filter {
        expr: parsed,
        compiled,
        sources,
        width: slots.len(),
    })
}

impl Filter {
    pub fn matches(&self, event: EventRef<'_>) -> bool {
        let mut row: smallvec::SmallVec<[value::Val<'_>; 8]> =
            smallvec::SmallVec::from_elem(value::Val::Null, self.width);
        self.sources.fill(&event, &mut row);
        self.compiled.eval(&row)
    }

    /// The event fields the expression reads.
    pub fn referenced_fields(&self) -> &[String] {
        self.sources.names()
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

/// Reads one field of an event, e.g. the value a metric filter publishes (`responseLatency`).
#[derive(Debug, Clone)]
pub struct FieldExtractor {
    name: String,
    sources: fields::Sources,
}

impl FieldExtractor {
    /// Reads `field`: a system field (`@timestamp`, `@message`, `@log`) or a JSON key, dotted for
    /// nested objects.
    pub fn new(field: &str) -> Self {
        let mut sources = fields::Sources::default();
        sources.add(field, 0);
        FieldExtractor {
            name: field.to_owned(),
            sources,
        }
    }

    pub fn field(&self) -> &str {
        &self.name
    }

    /// The field's value, `None` when it is missing or `null`.
    pub fn value(&self, event: EventRef<'_>) -> Option<Value> {
        let mut row = [value::Val::Null];
        self.sources.fill(&event, &mut row);
        (!row[0].is_null()).then(|| row[0].to_value())
    }

    /// The field as a number: a JSON number, or a string that parses as one.
    pub fn number(&self, event: EventRef<'_>) -> Option<f64> {
        let mut row = [value::Val::Null];
        self.sources.fill(&event, &mut row);
        row[0].number().map(|n| n.as_f64())
    }
}
