//! The minute buckets: CloudWatch-style statistic sets per metric and dimension set, for one
//! minute of wall-clock time each.
//!
//! A record lands in the bucket of the minute its request arrived in (`timing.received_at`),
//! whatever the time it is published. Each record counts in the all-traffic series and, when a
//! route served it, in `{api}`, `{api, stage}`, `{api, stage, route, method}` and, for canary
//! traffic, `{api, stage, canary=true}`. This type is pure (no thread, no clock); the consumer
//! drives it.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::clock::{minute_start, unix_seconds};
use super::names::{MethodLabels, Metric, OVERFLOW_API};
use super::routes::{RouteId, RouteRef};
use super::{Dimensions, StatisticSet};
use crate::{Decision, Exchange, ExchangeKind};

/// One point handed to a [`MetricSink`](super::MetricSink): the metric's name, its dimensions and
/// the statistic set of one minute.
pub type MetricPoint = (String, Dimensions, StatisticSet);

/// The samples one record adds to each of its series, indexed like [`Metric::ALL`]; a metric
/// that does not apply has no sample. A bit set says which ones apply, so adding to a series
/// visits only those (about half of them for a request).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Samples {
    present: u16,
    values: [f64; Metric::ALL.len()],
}

// Every metric has a bit in `present`.
const _: () = assert!(Metric::ALL.len() <= u16::BITS as usize);

impl Samples {
    pub(crate) fn of(exchange: &Exchange) -> Self {
        let mut samples = Self::default();
        let timing = &exchange.timing;
        match exchange.kind {
            ExchangeKind::Http => {
                let status = exchange.status;
                samples.set(Metric::Count, 1.0);
                samples.set(Metric::Error4xx, flag((400..500).contains(&status)));
                // Statuses outside 100–599 are a gateway bug; count them where they are seen.
                samples.set(Metric::Error5xx, flag(!(100..500).contains(&status)));
                samples.set(Metric::Latency, millis(timing.latency()));
                if let Some(integration) = timing.integration_latency() {
                    samples.set(Metric::IntegrationLatency, millis(integration));
                }
            }
            ExchangeKind::WebSocket => {
                let messages = exchange
                    .websocket
                    .as_ref()
                    .map_or(0, |ws| ws.messages_in + ws.messages_out);
                samples.set(Metric::ConnectCount, 1.0);
                samples.set(Metric::MessageCount, messages as f64);
                samples.set(Metric::ConnectionDuration, millis(timing.latency()));
            }
        }
        samples.set(Metric::BytesIn, exchange.bytes_in as f64);
        samples.set(Metric::BytesOut, exchange.bytes_out as f64);
        let decisions = &exchange.decisions;
        if let Some(throttle) = &decisions.throttle {
            samples.set(Metric::ThrottleCount, flag(is_rejection(throttle)));
        }
        if let Some(waf) = &decisions.waf {
            samples.set(Metric::WafBlockedCount, flag(is_rejection(waf)));
        }
        if let Some(cache) = &decisions.cache {
            samples.set(Metric::CacheHitCount, flag(*cache == Decision::Hit));
            samples.set(Metric::CacheMissCount, flag(*cache == Decision::Miss));
        }
        samples
    }

    fn set(&mut self, metric: Metric, value: f64) {
        self.values[metric.index()] = value;
        self.present |= 1 << metric.index();
    }

    #[cfg(test)]
    pub(crate) fn get(&self, metric: Metric) -> Option<f64> {
        (self.present & (1 << metric.index()) != 0).then(|| self.values[metric.index()])
    }

    /// The metrics that have a sample, with it, in [`Metric::ALL`] order.
    fn iter(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        let mut bits = self.present;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some((index, self.values[index]))
        })
    }
}

fn flag(condition: bool) -> f64 {
    if condition { 1.0 } else { 0.0 }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn is_rejection(decision: &Decision) -> bool {
    matches!(decision, Decision::Rejected { .. })
}

/// The statistic sets of one dimension set in one minute, indexed like [`Metric::ALL`].
struct Series([Option<StatisticSet>; Metric::ALL.len()]);

impl Series {
    fn new() -> Self {
        Self(std::array::from_fn(|_| None))
    }

    /// Adds another series' statistic sets to this one (exact: sums add, sketches merge).
    fn merge(&mut self, other: &Series) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            match (mine.as_mut(), theirs) {
                (Some(mine), Some(theirs)) => mine.merge(theirs),
                (None, Some(theirs)) => *mine = Some(theirs.clone()),
                _ => {}
            }
        }
    }

    fn add(&mut self, samples: &Samples) {
        for (index, value) in samples.iter() {
            let slot = &mut self.0[index];
            match slot {
                Some(set) => set.add(value),
                None => {
                    let mut set = if Metric::ALL[index].is_distribution() {
                        StatisticSet::distribution()
                    } else {
                        StatisticSet::counter()
                    };
                    set.add(value);
                    *slot = Some(set);
                }
            }
        }
    }
}

/// A route series kept by route id, with the dimensions it is written under.
struct RouteSeries {
    dimensions: Dimensions,
    series: Series,
}

/// One minute of series. Route sets with a [`RouteId`] (all but those past the consumer-wide cap)
/// live in `routes`, found by position; the other sets in `series`, whose map uses FxHash: its
/// keys are bounded label sets from the config, never attacker-chosen, and SipHash was half of
/// the consumer's time (bench/RESULTS.md).
///
/// Per request only the finest set (api + stage + route + method) is updated; the api and
/// api + stage series are built when the minute closes by merging the route series, which is exact
/// and saves two series updates (and two sketch insertions) per request. They still count against
/// the cap from the moment a route implies them, as if they were updated directly.
#[derive(Default)]
struct Bucket {
    /// Indexed by [`RouteId`]; a route set is in here or in `series`, never both.
    routes: Vec<Option<Box<RouteSeries>>>,
    series: FxHashMap<Dimensions, Series>,
    /// api and api + stage sets that exist (and count against the cap) because a route series
    /// implies them; their values are derived at close.
    derived: rustc_hash::FxHashSet<Dimensions>,
    /// Records in no route series (unrouted, or their route set was refused); with the route
    /// series they make up the all-traffic series at close.
    outside_routes: Option<Series>,
    /// Series subject to the cap: all but the all-traffic and overflow series.
    capped_series: usize,
}

impl Bucket {
    fn add(&mut self, dimensions: Dimensions, samples: &Samples) {
        self.series
            .entry(dimensions)
            .or_insert_with(Series::new)
            .add(samples);
    }

    /// Adds to an existing series, or to a new one while fewer than `max_series` exist; `false`
    /// when the cap refused a new series.
    fn add_capped(&mut self, dimensions: Dimensions, samples: &Samples, max_series: usize) -> bool {
        if let Some(series) = self.series.get_mut(&dimensions) {
            series.add(samples);
            return true;
        }
        if self.capped_series >= max_series {
            return false;
        }
        self.capped_series += 1;
        self.add(dimensions, samples);
        true
    }

    /// The series of route `id` this minute, if it has one.
    fn route_series(&mut self, id: RouteId) -> Option<&mut Series> {
        match self.routes.get_mut(id.index()) {
            Some(Some(route)) => Some(&mut route.series),
            _ => None,
        }
    }

    /// Like [`Bucket::add_capped`] for a route set with an id.
    fn add_capped_route(
        &mut self,
        id: RouteId,
        dimensions: Dimensions,
        samples: &Samples,
        max_series: usize,
    ) -> bool {
        if let Some(series) = self.route_series(id) {
            series.add(samples);
            return true;
        }
        if self.capped_series >= max_series {
            return false;
        }
        self.capped_series += 1;
        let mut series = Series::new();
        series.add(samples);
        if self.routes.len() <= id.index() {
            self.routes.resize_with(id.index() + 1, || None);
        }
        self.routes[id.index()] = Some(Box::new(RouteSeries { dimensions, series }));
        true
    }

    fn add_outside_routes(&mut self, samples: &Samples) {
        self.outside_routes
            .get_or_insert_with(Series::new)
            .add(samples);
    }

    /// Whether a set exists this minute (as a series or as an implied, derived one).
    fn exists(&self, dimensions: &Dimensions) -> bool {
        self.series.contains_key(dimensions) || self.derived.contains(dimensions)
    }

    /// Admits a new implied api or api + stage set if the cap allows; `false` when refused.
    fn admit_derived(&mut self, dimensions: &Dimensions, max_series: usize) -> bool {
        if self.exists(dimensions) {
            return true;
        }
        if self.capped_series >= max_series {
            return false;
        }
        self.capped_series += 1;
        self.derived.insert(dimensions.clone());
        true
    }

    /// The points of this minute, ordered by dimensions, then metric.
    fn into_points(mut self) -> Vec<MetricPoint> {
        for route in std::mem::take(&mut self.routes).into_iter().flatten() {
            let RouteSeries { dimensions, series } = *route;
            self.series.insert(dimensions, series);
        }
        // Build the all-traffic, api and api + stage series from the route series.
        let mut all_traffic = self.outside_routes.take().unwrap_or_else(Series::new);
        let routes: Vec<Dimensions> = self
            .series
            .keys()
            .filter(|d| d.route.is_some() && d.canary.is_none())
            .cloned()
            .collect();
        for route in routes {
            let Some(route_series) = self.series.remove(&route) else {
                continue;
            };
            let api = Dimensions {
                api: route.api.clone(),
                ..Dimensions::default()
            };
            let api_stage = Dimensions {
                stage: route.stage.clone(),
                ..api.clone()
            };
            for target in [api, api_stage] {
                self.series
                    .entry(target)
                    .or_insert_with(Series::new)
                    .merge(&route_series);
            }
            all_traffic.merge(&route_series);
            self.series.insert(route, route_series);
        }
        self.series.insert(Dimensions::default(), all_traffic);
        let mut series: Vec<_> = self.series.into_iter().collect();
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut points = Vec::new();
        for (dimensions, Series(sets)) in series {
            for (metric, set) in Metric::ALL.into_iter().zip(sets) {
                if let Some(set) = set {
                    points.push((metric.name().to_owned(), dimensions.clone(), set));
                }
            }
        }
        points
    }
}

/// What recording one exchange did, for the consumer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// At least one of its dimension sets was over the cap, so it went to the overflow series.
    pub(crate) folded: bool,
    /// Its minute had already been handed to the sink; it starts a fresh bucket for that minute.
    pub(crate) late: bool,
}

/// Open minute buckets, keyed by the minute's start (unix seconds).
pub(crate) struct MinuteAggregator {
    max_series: usize,
    grace_secs: i64,
    buckets: BTreeMap<i64, Bucket>,
    /// The newest minute handed to the sink so far.
    closed_through: Option<i64>,
    /// The last minute a record fell in, as [start, end) in wall-clock time: most records fall
    /// in the same minute as the one before, found by two comparisons.
    last_minute: Option<(SystemTime, SystemTime, i64)>,
    methods: MethodLabels,
    overflow: Dimensions,
}

impl MinuteAggregator {
    pub(crate) fn new(max_series: usize, grace: Duration) -> Self {
        let grace_secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        Self {
            max_series,
            grace_secs: i64::try_from(grace_secs).unwrap_or(i64::MAX / 2),
            buckets: BTreeMap::new(),
            closed_through: None,
            last_minute: None,
            methods: MethodLabels::new(),
            overflow: Dimensions {
                api: Some(Arc::from(OVERFLOW_API)),
                ..Dimensions::default()
            },
        }
    }

    /// Counts one record whose route resolved to `route` (by the consumer's
    /// [`RouteIndex`](super::routes::RouteIndex)).
    pub(crate) fn record(&mut self, exchange: &Exchange, route_ref: RouteRef) -> Recorded {
        let minute = self.minute_of(exchange.timing.received_at);
        let late = self.closed_through.is_some_and(|closed| minute <= closed);
        let samples = Samples::of(exchange);
        let bucket = self.buckets.entry(minute).or_default();
        let Some(route) = &exchange.route else {
            bucket.add_outside_routes(&samples);
            return Recorded {
                folded: false,
                late,
            };
        };
        let id = match route_ref {
            RouteRef::Admitted(id) => Some(id),
            RouteRef::Refused | RouteRef::Unrouted(_) => None,
        };
        let mut folded = false;
        let fast = id.and_then(|id| bucket.route_series(id));
        if let Some(series) = fast {
            // The common case: the route's series exists; api and api + stage follow at close.
            series.add(&samples);
        } else {
            let api = Some(Arc::clone(&route.api));
            let stage = Some(Arc::clone(&route.stage));
            let route_set = Dimensions {
                api: api.clone(),
                stage: stage.clone(),
                route: Some(Arc::clone(&route.resource_path)),
                method: Some(self.methods.label(exchange.method.as_ref())),
                canary: None,
            };
            let existing = id.is_none() && bucket.series.contains_key(&route_set);
            if existing {
                bucket.add(route_set, &samples);
            } else {
                let api_set = Dimensions {
                    api: api.clone(),
                    ..Dimensions::default()
                };
                let stage_set = Dimensions {
                    api,
                    stage,
                    ..Dimensions::default()
                };
                let api_ok = bucket.admit_derived(&api_set, self.max_series);
                let stage_ok = bucket.admit_derived(&stage_set, self.max_series);
                let added = match id {
                    Some(id) => bucket.add_capped_route(id, route_set, &samples, self.max_series),
                    None => bucket.add_capped(route_set, &samples, self.max_series),
                };
                if added {
                    folded |= !(api_ok && stage_ok);
                } else {
                    // The route set was refused: the coarser sets that exist count it directly.
                    folded = true;
                    bucket.add_outside_routes(&samples);
                    for (set, ok) in [(api_set, api_ok), (stage_set, stage_ok)] {
                        if ok {
                            bucket.add(set, &samples);
                        }
                    }
                }
            }
        }
        if exchange.canary {
            let canary_set = Dimensions {
                api: Some(Arc::clone(&route.api)),
                stage: Some(Arc::clone(&route.stage)),
                canary: Some(true),
                ..Dimensions::default()
            };
            folded |= !bucket.add_capped(canary_set, &samples, self.max_series);
        }
        // A record folds into the overflow series once, however many of its sets were refused.
        if folded {
            bucket.add(self.overflow.clone(), &samples);
        }
        Recorded { folded, late }
    }

    /// The start (unix seconds) of the minute `time` falls in.
    fn minute_of(&mut self, time: SystemTime) -> i64 {
        if let Some((start, end, minute)) = self.last_minute
            && start <= time
            && time < end
        {
            return minute;
        }
        let minute = minute_start(unix_seconds(time));
        // Cached only for minutes after the epoch, where the bounds are easy to state.
        self.last_minute = u64::try_from(minute).ok().and_then(|secs| {
            let start = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
            let end = start.checked_add(Duration::from_secs(60))?;
            Some((start, end, minute))
        });
        minute
    }

    /// Closes and returns, oldest first, every bucket whose minute ended at least the grace
    /// period before `now_unix`.
    pub(crate) fn take_due(&mut self, now_unix: i64) -> Vec<(i64, Vec<MetricPoint>)> {
        let mut due = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if entry.key().saturating_add(60 + self.grace_secs) > now_unix {
                break;
            }
            let (minute, bucket) = entry.remove_entry();
            due.push((minute, bucket.into_points()));
            self.closed_through = self.closed_through.max(Some(minute));
        }
        due
    }

    /// Closes and returns every open bucket, oldest first (on shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<(i64, Vec<MetricPoint>)> {
        self.take_due(i64::MAX)
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
