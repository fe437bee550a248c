//! `sort`: the row order, and the buffer that keeps only the top rows when a limit follows.
//!
//! With a bound `k`, the buffer grows to about `2k` rows, then keeps the `k` first by the sort
//! order (a linear-time selection) and remembers the last of them: a later event that does not sort
//! before it is dropped before it is copied. Ties keep arrival order, so a sort is stable.

use std::cmp::Ordering;

use crate::Value;
use crate::plan::SortPlan;
use crate::value::Val;

/// Compares two rows by the sort keys; missing values go last whatever the direction.
pub(crate) fn compare<'x, 'y>(
    keys: &[(usize, bool)],
    a: impl Fn(usize) -> Val<'x>,
    b: impl Fn(usize) -> Val<'y>,
) -> Ordering {
    for &(slot, descending) in keys {
        let (x, y) = (a(slot), b(slot));
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if descending => y.sort_cmp(&x),
            (false, false) => x.sort_cmp(&y),
        };
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

fn compare_rows(keys: &[(usize, bool)], a: &(Vec<Value>, u64), b: &(Vec<Value>, u64)) -> Ordering {
    compare(keys, |s| a.0[s].as_val(), |s| b.0[s].as_val()).then(a.1.cmp(&b.1))
}

#[derive(Debug)]
pub(crate) struct SortBuffer {
    rows: Vec<(Vec<Value>, u64)>,
    seq: u64,
    /// The last row kept at the latest pruning; rows not before it cannot make the top.
    threshold: Option<Vec<Value>>,
}

impl SortBuffer {
    pub fn new() -> Self {
        SortBuffer {
            rows: Vec::new(),
            seq: 0,
            threshold: None,
        }
    }

    pub fn push(&mut self, plan: &SortPlan, row: &[Val<'_>]) {
        if let Some(t) = &self.threshold
            && compare(&plan.keys, |s| row[s].view(), |s| t[s].as_val()) != Ordering::Less
        {
            return;
        }
        self.rows
            .push((row.iter().map(Val::to_value).collect(), self.seq));
        self.seq += 1;
        if let Some(k) = plan.top
            && self.rows.len() >= 2 * k + 64
        {
            self.prune(plan, k);
        }
    }

    /// Adds a row that is already owned (a later stage sorting buffered rows).
    pub fn push_owned(&mut self, plan: &SortPlan, row: Vec<Value>) {
        if let Some(t) = &self.threshold
            && compare(&plan.keys, |s| row[s].as_val(), |s| t[s].as_val()) != Ordering::Less
        {
            return;
        }
        self.rows.push((row, self.seq));
        self.seq += 1;
        if let Some(k) = plan.top
            && self.rows.len() >= 2 * k + 64
        {
            self.prune(plan, k);
        }
    }

    fn prune(&mut self, plan: &SortPlan, k: usize) {
        if k == 0 || self.rows.len() <= k {
            return;
        }
        self.rows
            .select_nth_unstable_by(k - 1, |a, b| compare_rows(&plan.keys, a, b));
        self.rows.truncate(k);
        self.threshold = self
            .rows
            .iter()
            .max_by(|a, b| compare_rows(&plan.keys, a, b))
            .map(|(r, _)| r.clone());
    }

    pub fn finish(mut self, plan: &SortPlan) -> Vec<Vec<Value>> {
        self.rows.sort_by(|a, b| compare_rows(&plan.keys, a, b));
        if let Some(k) = plan.top {
            self.rows.truncate(k);
        }
        self.rows.into_iter().map(|(r, _)| r).collect()
    }
}
