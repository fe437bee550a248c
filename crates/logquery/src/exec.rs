//! The executor: events in, one result out.
//!
//! The first stage of the plan runs as each event is pushed: the system fields are set, the JSON
//! fields are read just before the first command that needs them (so `filter @message like /x/`
//! rejects most lines without reading their JSON), and the event passes the stage's commands in
//! order into the sink: the result rows (when nothing buffers), the sort buffer or the stats
//! aggregator. Memory stays bounded for `filter`, `fields`, `parse` and `limit`; `stats` holds a
//! state per group and `sort` holds the rows it may still return. The later stages run in
//! [`Executor::finish`] over the buffered rows.

use std::borrow::Cow;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use crate::plan::{Blocker, Op, ParseOp, Plan, Stage};
use crate::sort::SortBuffer;
use crate::stats::{Aggregator, encode};
use crate::value::Val;
use crate::{EventRef, QueryResult, Value};

/// Runs one query over events pushed to it; made by [`crate::Query::executor`].
#[derive(Debug)]
pub struct Executor {
    plan: Arc<Plan>,
    states: Vec<OpState>,
    sink: Sink,
    scratch: Vec<u8>,
    scanned: u64,
    matched: u64,
    done: bool,
}

#[derive(Debug)]
enum OpState {
    None,
    Count(usize),
    Seen(FxHashSet<Box<[u8]>>),
}

#[derive(Debug)]
enum Sink {
    Rows(Vec<Vec<Value>>),
    Sort(SortBuffer),
    Stats(Aggregator),
}

/// Rows of up to this many fields live on the stack while an event is evaluated.
type Row<'a> = SmallVec<[Val<'a>; 12]>;

impl Executor {
    pub(crate) fn new(plan: Arc<Plan>) -> Self {
        let states = op_states(&plan.stages[0]);
        let sink = match &plan.stages[0].then {
            None => Sink::Rows(Vec::new()),
            Some(Blocker::Sort(_)) => Sink::Sort(SortBuffer::new()),
            Some(Blocker::Stats(_)) => Sink::Stats(Aggregator::default()),
        };
        Executor {
            plan,
            states,
            sink,
            scratch: Vec::new(),
            scanned: 0,
            matched: 0,
            done: false,
        }
    }

    /// Evaluates one event. Events should come newest first: without `sort` or `stats`, rows are
    /// returned in the order pushed, and `dedup` keeps the first event of each value.
    pub fn push(&mut self, event: EventRef<'_>) {
        self.scanned += 1;
        if self.done {
            return;
        }
        let plan = &*self.plan;
        let stage = &plan.stages[0];
        let mut row: Row<'_> = SmallVec::from_elem(Val::Null, stage.width);
        plan.sources.fill_system(&event, &mut row);
        let mut json_pending = plan.sources.reads_json();
        for (i, (op, state)) in stage.ops.iter().zip(&mut self.states).enumerate() {
            if json_pending && i == plan.json_at {
                plan.sources.fill_json(&event, &mut row);
                json_pending = false;
            }
            if !apply(op, state, &mut row, &mut self.scratch) {
                match op {
                    // A full `limit` lets nothing through any more.
                    Op::Limit(_) => self.done = true,
                    // A duplicate still matched the filters (CloudWatch's "X of Y records").
                    Op::Dedup(_) => self.matched += 1,
                    _ => {}
                }
                return;
            }
        }
        if json_pending {
            plan.sources.fill_json(&event, &mut row);
        }
        self.matched += 1;
        match (&mut self.sink, &stage.then) {
            (Sink::Rows(rows), _) => {
                rows.push(
                    plan.output
                        .iter()
                        .map(|(_, s)| row[*s].to_value())
                        .collect(),
                );
                self.done = rows.len() >= plan.cap;
            }
            (Sink::Sort(buffer), Some(Blocker::Sort(sort))) => buffer.push(sort, &row),
            (Sink::Stats(agg), Some(Blocker::Stats(stats))) => agg.push(stats, &row),
            _ => debug_assert!(false, "the sink matches the first stage's blocker"),
        }
    }

    /// True once no further event can change the result (a `limit` is full and nothing sorts or
    /// aggregates), so the caller may stop reading.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Runs the remaining stages and returns the result.
    pub fn finish(self) -> QueryResult {
        let plan = &*self.plan;
        let mut rows = match self.sink {
            Sink::Rows(rows) => rows,
            Sink::Sort(buffer) => match &plan.stages[0].then {
                Some(Blocker::Sort(sort)) => buffer.finish(sort),
                _ => Vec::new(),
            },
            Sink::Stats(agg) => match &plan.stages[0].then {
                Some(Blocker::Stats(stats)) => agg.finish(stats),
                _ => Vec::new(),
            },
        };
        if plan.stages.len() > 1 {
            for stage in &plan.stages[1..] {
                rows = run_stage(stage, rows);
                match &stage.then {
                    None => {}
                    Some(Blocker::Sort(sort)) => {
                        let mut buffer = SortBuffer::new();
                        for r in rows {
                            buffer.push_owned(sort, r);
                        }
                        rows = buffer.finish(sort);
                    }
                    Some(Blocker::Stats(stats)) => {
                        let mut agg = Aggregator::default();
                        for r in &rows {
                            let vals: Row<'_> = r.iter().map(Value::as_val).collect();
                            agg.push(stats, &vals);
                        }
                        rows = agg.finish(stats);
                    }
                }
            }
            rows = rows
                .into_iter()
                .map(|r| plan.output.iter().map(|(_, s)| r[*s].clone()).collect())
                .collect();
        }
        rows.truncate(plan.cap);
        QueryResult {
            columns: plan.output.iter().map(|(n, _)| n.clone()).collect(),
            rows,
            records_scanned: self.scanned,
            records_matched: self.matched,
        }
    }
}

fn op_states(stage: &Stage) -> Vec<OpState> {
    stage
        .ops
        .iter()
        .map(|op| match op {
            Op::Limit(_) => OpState::Count(0),
            Op::Dedup(_) => OpState::Seen(FxHashSet::default()),
            Op::Filter(_) | Op::Parse(_) | Op::Condition(..) => OpState::None,
        })
        .collect()
}

/// Runs a later stage's commands over buffered rows.
fn run_stage(stage: &Stage, rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let mut states = op_states(stage);
    let mut scratch = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    'rows: for r in &rows {
        let mut vals: Row<'_> = r.iter().map(Value::as_val).collect();
        vals.resize(stage.width.max(r.len()), Val::Null);
        for (op, state) in stage.ops.iter().zip(&mut states) {
            if !apply(op, state, &mut vals, &mut scratch) {
                continue 'rows;
            }
        }
        out.push(vals.iter().map(Val::to_value).collect());
    }
    out
}

/// Applies one command to a row; false drops the row.
fn apply<'a>(op: &Op, state: &mut OpState, row: &mut [Val<'a>], scratch: &mut Vec<u8>) -> bool {
    match (op, state) {
        (Op::Filter(e), _) => e.eval(row),
        (Op::Condition(e, slot), _) => {
            row[*slot] = Val::Int(i64::from(e.eval(row)));
            true
        }
        (Op::Parse(p), _) => {
            parse_into(p, row);
            true
        }
        (Op::Dedup(slots), OpState::Seen(seen)) => {
            // Null values are never duplicates, as in CloudWatch.
            if slots.iter().any(|s| row[*s].is_null()) {
                return true;
            }
            scratch.clear();
            for s in slots {
                encode(&row[*s], scratch);
            }
            if seen.contains(scratch.as_slice()) {
                return false;
            }
            seen.insert(scratch.clone().into_boxed_slice());
            true
        }
        (Op::Limit(n), OpState::Count(count)) => {
            if *count >= *n {
                return false;
            }
            *count += 1;
            true
        }
        _ => true,
    }
}

/// Sets the fields a `parse` creates; all are missing when the pattern does not match.
fn parse_into<'a>(p: &ParseOp, row: &mut [Val<'a>]) {
    let source: Option<Cow<'a, str>> = match &row[p.source] {
        Val::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(*s)),
        v => v.text().map(|t| Cow::Owned(t.into_owned())),
    };
    let caps = source.as_deref().and_then(|s| p.regex.captures(s));
    let Some(caps) = caps else {
        for &(_, slot) in &p.targets {
            row[slot] = Val::Null;
        }
        return;
    };
    for &(group, slot) in &p.targets {
        row[slot] = match (caps.get(group), &source) {
            (None, _) => Val::Null,
            (Some(m), Some(Cow::Borrowed(s))) => Val::Str(Cow::Borrowed(&s[m.range()])),
            (Some(m), _) => Val::Str(Cow::Owned(m.as_str().to_owned())),
        };
    }
}
