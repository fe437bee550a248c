//! Planning: resolves every field name of a parsed query to a slot in a row and cuts the
//! pipeline into stages that the executor can stream.
//!
//! A row is a fixed array of values. Before `stats` the layout holds the event fields the query
//! reads (the plan's sources) and the fields `parse` creates; an alias (`fields a as b`, `as` in
//! `stats`) is only a second name for a slot. `stats` replaces the layout with its output columns;
//! after it, only those columns exist, and naming anything else is an error.
//!
//! `sort` and `stats` must see every event before they can emit anything, so they end a stage;
//! the ops of the first stage run per event as events arrive, later stages run over the buffered
//! rows when the query finishes. A `sort` followed (before any `filter` or `dedup`) by a `limit`,
//! or by the end of the query and its row cap, keeps only the top rows while it buffers.

use regex::Regex;
use rustc_hash::FxHashMap;

use crate::QueryError;
use crate::ast::{AggArg, AggFunc, Command, Field, GroupKey, ParsePattern};
use crate::eval::{CExpr, compile};
use crate::fields::{LOG, MESSAGE, Sources, TIMESTAMP};
use crate::stats::{AggPlan, KeyPlan, StatsPlan};

/// Rows returned when the query has no `limit` after its last `sort` or `stats`, as in CloudWatch.
pub const DEFAULT_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub sources: Sources,
    /// The first op of stage 0 that needs the JSON fields; they are read just before it.
    pub json_at: usize,
    pub stages: Vec<Stage>,
    /// The output columns: name and slot in the last stage's layout.
    pub output: Vec<(String, usize)>,
    pub cap: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub ops: Vec<Op>,
    pub width: usize,
    pub then: Option<Blocker>,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Filter(CExpr),
    /// Sets the slot to 1 where the condition holds, else 0 (a condition inside an aggregate).
    Condition(CExpr, usize),
    Parse(ParseOp),
    Dedup(Vec<usize>),
    Limit(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct ParseOp {
    pub source: usize,
    pub regex: Regex,
    /// (capture group index, slot) for each field the parse creates.
    pub targets: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Blocker {
    Sort(SortPlan),
    Stats(StatsPlan),
}

#[derive(Debug, Clone)]
pub(crate) struct SortPlan {
    /// (slot, descending) per key.
    pub keys: Vec<(usize, bool)>,
    /// Keep only this many rows while buffering.
    pub top: Option<usize>,
}

struct Planner<'s> {
    src: &'s str,
    sources: Sources,
    scope: FxHashMap<String, usize>,
    width: usize,
    after_stats: bool,
    pre_width: usize,
    json_at: Option<usize>,
    stages: Vec<Stage>,
    stage_after_stats: Vec<bool>,
    ops: Vec<Op>,
    projection: Option<Vec<(String, usize)>>,
    stats_columns: Vec<String>,
}

pub(crate) fn plan(src: &str, commands: &[(usize, Command)]) -> Result<Plan, QueryError> {
    let mut p = Planner {
        src,
        sources: Sources::default(),
        scope: FxHashMap::default(),
        width: 0,
        after_stats: false,
        pre_width: 0,
        json_at: None,
        stages: Vec::new(),
        stage_after_stats: Vec::new(),
        ops: Vec::new(),
        projection: None,
        stats_columns: Vec::new(),
    };
    for (offset, command) in commands {
        p.command(*offset, command)?;
    }
    p.finish()
}

impl Planner<'_> {
    /// The slot of a field; before `stats`, a name not seen yet becomes a new event field.
    pub fn resolve(&mut self, f: &Field) -> Result<usize, QueryError> {
        if let Some(&slot) = self.scope.get(&f.name) {
            return Ok(slot);
        }
        if self.after_stats {
            let mut columns: Vec<(&String, &usize)> = self.scope.iter().collect();
            columns.sort_by_key(|(_, s)| **s);
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            return Err(QueryError::at(
                self.src,
                f.offset,
                format!(
                    "unknown field '{}' after stats; the fields here are {}",
                    f.name,
                    names.join(", ")
                ),
            ));
        }
        let slot = self.define(&f.name);
        self.sources.add(&f.name, slot);
        if !matches!(f.name.as_str(), TIMESTAMP | MESSAGE | LOG | "@logGroup") {
            let at = self.stages.first().map_or(self.ops.len(), |s| s.ops.len());
            self.json_at = Some(self.json_at.map_or(at, |j| j.min(at)));
        }
        Ok(slot)
    }

    fn define(&mut self, name: &str) -> usize {
        let slot = self.width;
        self.width += 1;
        self.scope.insert(name.to_owned(), slot);
        slot
    }

    fn end_stage(&mut self, then: Blocker) {
        self.stages.push(Stage {
            ops: std::mem::take(&mut self.ops),
            width: 0,
            then: Some(then),
        });
        self.stage_after_stats.push(self.after_stats);
    }

    fn command(&mut self, offset: usize, command: &Command) -> Result<(), QueryError> {
        match command {
            Command::Fields(ps) => {
                for p in ps {
                    let slot = self.resolve(&p.field)?;
                    let name = p.alias.as_ref().unwrap_or(&p.field).name.clone();
                    if p.alias.is_some() {
                        self.scope.insert(name.clone(), slot);
                    }
                    let projection = self.projection.get_or_insert_default();
                    projection.retain(|(n, _)| *n != name);
                    projection.push((name, slot));
                }
            }
            Command::Display(fs) => {
                let mut projection = Vec::new();
                for f in fs {
                    projection.push((f.name.clone(), self.resolve(f)?));
                }
                self.projection = Some(projection);
            }
            Command::Filter(e) => {
                let c = compile(e, &mut |f| self.resolve(f))?;
                self.ops.push(Op::Filter(c));
            }
            Command::Parse(spec) => {
                let source = self.resolve(&spec.source)?;
                let groups: Vec<usize> = match &spec.pattern {
                    ParsePattern::Glob(_) => (1..=spec.names.len()).collect(),
                    ParsePattern::Regex(_) => (spec.regex.capture_names().enumerate())
                        .filter_map(|(i, n)| n.map(|_| i))
                        .collect(),
                };
                let targets = groups
                    .into_iter()
                    .zip(&spec.names)
                    .map(|(g, n)| (g, self.define(&n.name)))
                    .collect();
                self.ops.push(Op::Parse(ParseOp {
                    source,
                    regex: spec.regex.clone(),
                    targets,
                }));
            }
            Command::Dedup(fs) => {
                let slots = fs
                    .iter()
                    .map(|f| self.resolve(f))
                    .collect::<Result<_, _>>()?;
                self.ops.push(Op::Dedup(slots));
            }
            Command::Limit(n) => self.ops.push(Op::Limit(*n)),
            Command::Sort(keys) => {
                let mut plan = Vec::new();
                for k in keys {
                    plan.push((self.resolve(&k.field)?, k.descending));
                }
                self.end_stage(Blocker::Sort(SortPlan {
                    keys: plan,
                    top: None,
                }));
            }
            Command::Stats(stats) => self.stats(offset, stats)?,
        }
        Ok(())
    }

    fn stats(&mut self, offset: usize, stats: &crate::ast::Stats) -> Result<(), QueryError> {
        if self.after_stats {
            return Err(QueryError::at(
                self.src,
                offset,
                "only one stats command is allowed in a query",
            ));
        }
        let mut plan = StatsPlan {
            keys: Vec::new(),
            aggs: Vec::new(),
            collectors: Vec::new(),
        };
        let mut columns: Vec<(String, usize)> = Vec::new();
        for key in &stats.by {
            let (k, offset) = match key {
                GroupKey::Field { field, alias } => (
                    KeyPlan::Field(self.resolve(field)?),
                    alias.as_ref().unwrap_or(field).offset,
                ),
                GroupKey::Bin {
                    period_ms, offset, ..
                } => {
                    let ts = Field {
                        name: TIMESTAMP.to_owned(),
                        offset: *offset,
                    };
                    let slot = self.resolve(&ts)?;
                    (
                        KeyPlan::Bin {
                            slot,
                            period_ms: *period_ms,
                        },
                        *offset,
                    )
                }
            };
            plan.keys.push(k);
            columns.push((key.column(), offset));
        }
        for agg in &stats.aggregates {
            let (slot, condition) = match &agg.arg {
                None => (None, false),
                Some(AggArg::Field(f)) => (Some(self.resolve(f)?), false),
                Some(AggArg::Condition(e)) => {
                    let c = compile(e, &mut |f| self.resolve(f))?;
                    let slot = self.width;
                    self.width += 1;
                    self.ops.push(Op::Condition(c, slot));
                    (Some(slot), true)
                }
            };
            let field = slot.unwrap_or(0);
            let a = match agg.func {
                // Counting where a condition holds is summing its 1s.
                AggFunc::Count if condition => AggPlan::Sum(field),
                AggFunc::Count => AggPlan::Count(slot),
                AggFunc::Sum => AggPlan::Sum(field),
                AggFunc::Avg => AggPlan::Avg(field),
                AggFunc::Min => AggPlan::Min(field),
                AggFunc::Max => AggPlan::Max(field),
                AggFunc::CountDistinct => AggPlan::CountDistinct(field),
                AggFunc::Pct(p) => {
                    let collector = match plan.collectors.iter().position(|&c| c == field) {
                        Some(c) => c,
                        None => {
                            plan.collectors.push(field);
                            plan.collectors.len() - 1
                        }
                    };
                    AggPlan::Pct { collector, p }
                }
            };
            plan.aggs.push(a);
            columns.push((
                agg.column(),
                agg.alias.as_ref().map_or(agg.offset, |a| a.offset),
            ));
        }
        for (i, (name, offset)) in columns.iter().enumerate() {
            if columns[..i].iter().any(|(n, _)| n == name) {
                return Err(QueryError::at(
                    self.src,
                    *offset,
                    format!("stats has two columns named '{name}'; give one an alias with 'as'"),
                ));
            }
        }
        self.end_stage(Blocker::Stats(plan));
        self.after_stats = true;
        self.pre_width = self.width;
        self.scope.clear();
        self.width = 0;
        for (name, _) in &columns {
            self.define(name);
        }
        self.stats_columns = columns.into_iter().map(|(n, _)| n).collect();
        self.projection = None;
        Ok(())
    }

    fn finish(mut self) -> Result<Plan, QueryError> {
        let projection = match self.projection.take() {
            Some(p) => p,
            None if self.after_stats => (self.stats_columns.iter().cloned())
                .enumerate()
                .map(|(slot, name)| (name, slot))
                .collect(),
            None => {
                let mut p = Vec::new();
                for name in [TIMESTAMP, MESSAGE] {
                    let f = Field {
                        name: name.to_owned(),
                        offset: 0,
                    };
                    p.push((name.to_owned(), self.resolve(&f)?));
                }
                p
            }
        };
        let last = Stage {
            ops: std::mem::take(&mut self.ops),
            width: 0,
            then: None,
        };
        self.stages.push(last);
        self.stage_after_stats.push(self.after_stats);
        let (pre, post) = if self.after_stats {
            (self.pre_width, self.width)
        } else {
            (self.width, 0)
        };
        for (stage, after) in self.stages.iter_mut().zip(&self.stage_after_stats) {
            stage.width = if *after { post } else { pre };
        }
        let cap = self.stages[self.stages.len() - 1]
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Limit(n) => Some(*n),
                _ => None,
            })
            .min()
            .unwrap_or(DEFAULT_LIMIT);
        set_top_k(&mut self.stages, cap);
        let json_at = self.json_at.unwrap_or(self.stages[0].ops.len());
        Ok(Plan {
            sources: self.sources,
            json_at,
            stages: self.stages,
            output: projection,
            cap,
        })
    }
}

/// Gives each `sort` the number of rows it must keep, when that is bounded.
fn set_top_k(stages: &mut [Stage], cap: usize) {
    for i in 0..stages.len().saturating_sub(1) {
        let next = &stages[i + 1];
        let mut top = if next.then.is_none() { Some(cap) } else { None };
        for op in &next.ops {
            match op {
                Op::Limit(n) => {
                    top = Some(*n);
                    break;
                }
                Op::Filter(_) | Op::Dedup(_) => {
                    top = None;
                    break;
                }
                Op::Parse(_) | Op::Condition(..) => {}
            }
        }
        if let Some(Blocker::Sort(sort)) = &mut stages[i].then {
            sort.top = top;
        }
    }
}
