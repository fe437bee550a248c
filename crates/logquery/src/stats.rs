//! `stats`: incremental aggregation per group.
//!
//! Each event's group key is encoded into a reusable byte buffer and looked up in a hash map, so
//! an event of an existing group allocates nothing. Counts, sums, averages, minima and maxima are
//! kept as running values; `count_distinct` keeps the set of distinct values (exact); `pct` keeps
//! the group's values of its field (shared by every `pct` of that field) and selects the
//! nearest-rank percentile when the query finishes, so it is exact.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::Value;
use crate::value::{Num, SortClass, Val};

#[derive(Debug, Clone)]
pub(crate) struct StatsPlan {
    pub keys: Vec<KeyPlan>,
    pub aggs: Vec<AggPlan>,
    /// The slots whose numeric values are collected for `pct`, one collector each.
    pub collectors: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyPlan {
    Field(usize),
    /// The start of the `period_ms` bin the time in `slot` falls in.
    Bin {
        slot: usize,
        period_ms: i64,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum AggPlan {
    /// `count(*)` (`None`) or `count(field)`, which counts events where the field is present.
    Count(Option<usize>),
    Sum(usize),
    Avg(usize),
    Min(usize),
    Max(usize),
    Pct {
        collector: usize,
        p: f64,
    },
    CountDistinct(usize),
}

#[derive(Debug)]
enum State {
    Count(u64),
    Sum(Option<Num>),
    Avg { sum: f64, n: u64 },
    Min(Option<Num>),
    Max(Option<Num>),
    Pct,
    Distinct(FxHashSet<Box<[u8]>>),
}

#[derive(Debug, Default)]
struct Group {
    key: Vec<Value>,
    states: Vec<State>,
    values: Vec<Vec<f64>>,
}

#[derive(Debug, Default)]
pub(crate) struct Aggregator {
    index: FxHashMap<Box<[u8]>, usize>,
    groups: Vec<Group>,
    scratch: Vec<u8>,
}

impl Aggregator {
    pub fn push(&mut self, plan: &StatsPlan, row: &[Val<'_>]) {
        self.scratch.clear();
        for key in &plan.keys {
            encode(&key_value(key, row), &mut self.scratch);
        }
        let g = match self.index.get(self.scratch.as_slice()) {
            Some(&g) => g,
            None => {
                let g = self.groups.len();
                self.groups.push(new_group(plan, row));
                self.index
                    .insert(self.scratch.clone().into_boxed_slice(), g);
                g
            }
        };
        let group = &mut self.groups[g];
        for (i, &slot) in plan.collectors.iter().enumerate() {
            if let Some(n) = row[slot].number() {
                group.values[i].push(n.as_f64());
            }
        }
        for (agg, state) in plan.aggs.iter().zip(&mut group.states) {
            update(agg, state, row, &mut self.scratch);
        }
    }

    /// The result rows, group key columns first, ordered by key ascending (so ties of a later
    /// `sort` come out in key order).
    pub fn finish(mut self, plan: &StatsPlan) -> Vec<Vec<Value>> {
        if self.groups.is_empty() && plan.keys.is_empty() {
            // `stats count(*)` over nothing still answers 0.
            self.groups.push(new_group(plan, &[]));
        }
        // Classify each key once: classifying may parse a string as a number. Keys are distinct,
        // so an unstable sort of small entries is enough.
        let mut keyed: Vec<(Vec<SortClass>, Group)> = (self.groups.into_iter())
            .map(|g| (g.key.iter().map(|v| v.as_val().sort_class()).collect(), g))
            .collect();
        let mut order: Vec<usize> = (0..keyed.len()).collect();
        order.sort_unstable_by(|&i, &j| {
            let ((ca, a), (cb, b)) = (&keyed[i], &keyed[j]);
            (a.key.iter().zip(ca))
                .zip(b.key.iter().zip(cb))
                .map(|((x, cx), (y, cy))| x.as_val().sort_cmp_classified(*cx, &y.as_val(), *cy))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        order
            .into_iter()
            .map(|i| std::mem::take(&mut keyed[i].1))
            .map(|mut g| {
                let mut out = std::mem::take(&mut g.key);
                for (agg, state) in plan.aggs.iter().zip(&g.states) {
                    out.push(result(agg, state, &mut g.values));
                }
                out
            })
            .collect()
    }
}

fn key_value<'r>(key: &KeyPlan, row: &'r [Val<'_>]) -> Val<'r> {
    match key {
        KeyPlan::Field(s) => row[*s].view(),
        KeyPlan::Bin { slot, period_ms } => match row[*slot].number() {
            Some(n) => {
                let t = n.as_f64() as i64;
                Val::Time(t.div_euclid(*period_ms) * period_ms)
            }
            None => Val::Null,
        },
    }
}

fn new_group(plan: &StatsPlan, row: &[Val<'_>]) -> Group {
    let key = if row.is_empty() {
        Vec::new()
    } else {
        plan.keys
            .iter()
            .map(|k| key_value(k, row).to_value())
            .collect()
    };
    let states = plan
        .aggs
        .iter()
        .map(|a| match a {
            AggPlan::Count(_) => State::Count(0),
            AggPlan::Sum(_) => State::Sum(None),
            AggPlan::Avg(_) => State::Avg { sum: 0.0, n: 0 },
            AggPlan::Min(_) => State::Min(None),
            AggPlan::Max(_) => State::Max(None),
            AggPlan::Pct { .. } => State::Pct,
            AggPlan::CountDistinct(_) => State::Distinct(FxHashSet::default()),
        })
        .collect();
    Group {
        key,
        states,
        values: vec![Vec::new(); plan.collectors.len()],
    }
}

fn update(agg: &AggPlan, state: &mut State, row: &[Val<'_>], scratch: &mut Vec<u8>) {
    match (agg, state) {
        (AggPlan::Count(None), State::Count(n)) => *n += 1,
        (AggPlan::Count(Some(s)), State::Count(n)) => *n += u64::from(!row[*s].is_null()),
        (AggPlan::Sum(s), State::Sum(acc)) => {
            if let Some(v) = row[*s].number() {
                *acc = Some(match (*acc, v) {
                    (None, v) => v,
                    (Some(Num::Int(a)), Num::Int(b)) => match a.checked_add(b) {
                        Some(c) => Num::Int(c),
                        None => Num::Float(a as f64 + b as f64),
                    },
                    (Some(a), b) => Num::Float(a.as_f64() + b.as_f64()),
                });
            }
        }
        (AggPlan::Avg(s), State::Avg { sum, n }) => {
            if let Some(v) = row[*s].number() {
                *sum += v.as_f64();
                *n += 1;
            }
        }
        (AggPlan::Min(s), State::Min(acc)) => {
            if let Some(v) = row[*s].number()
                && acc.is_none_or(|a| v.cmp(a) == Some(std::cmp::Ordering::Less))
            {
                *acc = Some(v);
            }
        }
        (AggPlan::Max(s), State::Max(acc)) => {
            if let Some(v) = row[*s].number()
                && acc.is_none_or(|a| v.cmp(a) == Some(std::cmp::Ordering::Greater))
            {
                *acc = Some(v);
            }
        }
        (AggPlan::CountDistinct(s), State::Distinct(set)) if !row[*s].is_null() => {
            scratch.clear();
            encode(&row[*s], scratch);
            if !set.contains(scratch.as_slice()) {
                set.insert(scratch.clone().into_boxed_slice());
            }
        }
        _ => {}
    }
}

fn result(agg: &AggPlan, state: &State, values: &mut [Vec<f64>]) -> Value {
    match (agg, state) {
        (AggPlan::Pct { collector, p }, _) => percentile(&mut values[*collector], *p),
        (_, State::Count(n)) => Value::Int(i64::try_from(*n).unwrap_or(i64::MAX)),
        (_, State::Sum(v) | State::Min(v) | State::Max(v)) => {
            v.map_or(Value::Null, Num::into_value)
        }
        (_, State::Avg { sum, n }) if *n > 0 => Value::Float(sum / *n as f64),
        (_, State::Distinct(set)) => Value::Int(i64::try_from(set.len()).unwrap_or(i64::MAX)),
        _ => Value::Null,
    }
}

/// The nearest-rank percentile: the smallest value with at least `p` % of the values at or
/// below it. Integral results are returned as integers.
fn percentile(values: &mut [f64], p: f64) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    // p99.9 of 10 000 values is rank 9990 exactly; shave the float error off before rounding up.
    let exact = p * values.len() as f64 / 100.0;
    let rank = (exact - exact * 1e-12).ceil() as usize;
    let i = rank.clamp(1, values.len()) - 1;
    let (_, v, _) = values.select_nth_unstable_by(i, f64::total_cmp);
    let v = *v;
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::Int(v as i64)
    } else {
        Value::Float(v)
    }
}

/// Appends a self-delimiting encoding of `v` for hashing; numbers that are whole encode like
/// integers, so `200` and `200.0` fall in one group.
pub(crate) fn encode(v: &Val<'_>, out: &mut Vec<u8>) {
    match v {
        Val::Null => out.push(0),
        Val::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
        Val::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            out.push(2);
            out.extend_from_slice(&(*f as i64).to_le_bytes());
        }
        Val::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Val::Str(s) => {
            out.push(4);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Val::Time(t) => {
            out.push(5);
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let cases = [
            (50.0, 50),
            (99.0, 99),
            (100.0, 100),
            (0.0, 1),
            (99.5, 100),
            (99.9, 100),
        ];
        for (p, want) in cases {
            assert_eq!(percentile(&mut v, p), Value::Int(want), "p{p}");
        }
        assert_eq!(percentile(&mut [], 50.0), Value::Null);
        assert_eq!(percentile(&mut [1.5], 50.0), Value::Float(1.5));
    }
}
