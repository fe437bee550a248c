//! Metric filters: log events that pass a filter become data points of a custom metric, stored
//! with the gateway's own metrics, so `gatehouse metrics query` and alarms can use them (what
//! CloudWatch Logs' metric filters do).
//!
//! The filters run on the log writer's thread, on every line it stores, and aggregate into
//! one-minute statistic sets per (metric, dimensions), the same shape as the request metrics;
//! a minute is handed to the store's metric writer once it has ended and a short grace period
//! has passed. Dimensions are read from event fields and bounded per filter: past
//! [`MAX_SERIES_PER_FILTER`] series in a minute, points fold into the filter's all-traffic
//! series and are counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_config::{MetricFilterSettings, MetricValue, glob_match};
use gatehouse_logquery::{EventRef, FieldExtractor, Filter};
use gatehouse_store::MetricWriter;
use gatehouse_telemetry::metrics::{Dimensions, StatisticSet};

/// Distinct dimension sets one filter may publish per minute.
pub(crate) const MAX_SERIES_PER_FILTER: usize = 1000;

/// How long after its minute ends a minute stays open for late lines.
const GRACE_MS: i64 = 5_000;

/// The dimension names a metric filter may publish (the store's series keys).
pub(crate) const DIMENSION_NAMES: [&str; 4] = ["api", "stage", "route", "method"];

/// A metric filter that failed to compile, with the reason; the config is refused.
#[derive(Debug)]
pub(crate) struct FilterError {
    pub(crate) name: String,
    pub(crate) message: String,
}

struct Compiled {
    group: String,
    filter: Filter,
    metric: String,
    value: CompiledValue,
    dimensions: Vec<(DimensionSlot, FieldExtractor)>,
}

enum CompiledValue {
    Constant(f64),
    Field(FieldExtractor),
}

#[derive(Clone, Copy)]
enum DimensionSlot {
    Api,
    Stage,
    Route,
    Method,
}

/// Counters of the metric filters' work.
#[derive(Debug, Default)]
pub(crate) struct FilterCounters {
    /// Events that matched some filter and added a point.
    pub(crate) matched: AtomicU64,
    /// Points that went to a filter's all-traffic series because of the series cap.
    pub(crate) folded: AtomicU64,
    /// Minutes the store's queue refused.
    pub(crate) minutes_dropped: AtomicU64,
}

/// A config's compiled metric filters, swapped whole on reload.
#[derive(Default)]
pub(crate) struct FilterSet(Vec<Compiled>);

/// The filters in force, shared by the reloader (which swaps them) and the writer thread.
pub(crate) type SharedFilters = Arc<arc_swap::ArcSwap<FilterSet>>;

/// The compiled filters and their open minutes.
pub(crate) struct MetricFilters {
    filters: SharedFilters,
    /// minute start (ms) → (metric, dimensions) → statistics.
    minutes: BTreeMap<i64, BTreeMap<(String, Dimensions), StatisticSet>>,
    writer: Option<MetricWriter>,
    counters: Arc<FilterCounters>,
}

/// Checks and compiles the filters of a config.
pub(crate) fn compile(settings: &[MetricFilterSettings]) -> Result<FilterSet, Vec<FilterError>> {
    let mut compiled = Vec::new();
    let mut errors = Vec::new();
    for filter in settings {
        match compile_one(filter) {
            Ok(one) => compiled.push(one),
            Err(message) => errors.push(FilterError {
                name: filter.name.clone(),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(FilterSet(compiled))
    } else {
        Err(errors)
    }
}

fn compile_one(settings: &MetricFilterSettings) -> Result<Compiled, String> {
    let filter = gatehouse_logquery::parse_filter(&settings.filter)
        .map_err(|error| format!("filter: {error}"))?;
    let value = match &settings.value {
        MetricValue::Constant(value) => CompiledValue::Constant(*value),
        MetricValue::Field(field) => CompiledValue::Field(FieldExtractor::new(field)),
    };
    let mut dimensions = Vec::new();
    for (name, field) in &settings.dimensions {
        let slot = match name.as_str() {
            "api" => DimensionSlot::Api,
            "stage" => DimensionSlot::Stage,
            "route" => DimensionSlot::Route,
            "method" => DimensionSlot::Method,
            other => {
                return Err(format!(
                    "dimensions: unknown dimension '{other}'; use {}",
                    DIMENSION_NAMES.join(", ")
                ));
            }
        };
        dimensions.push((slot, FieldExtractor::new(field)));
    }
    Ok(Compiled {
        group: settings.group.clone(),
        filter,
        metric: settings.metric.clone(),
        value,
        dimensions,
    })
}

impl MetricFilters {
    pub(crate) fn new(
        filters: SharedFilters,
        writer: Option<MetricWriter>,
        counters: Arc<FilterCounters>,
    ) -> Self {
        Self {
            filters,
            minutes: BTreeMap::new(),
            writer,
            counters,
        }
    }

    /// Whether there is nothing to run and nothing left to hand over.
    pub(crate) fn is_idle(&self) -> bool {
        self.minutes.is_empty() && self.filters.load().0.is_empty()
    }

    /// Runs every filter of `group` over one stored line.
    pub(crate) fn observe(&mut self, group: &str, timestamp_ms: i64, line: &str) {
        let filters = self.filters.load();
        if filters.0.is_empty() {
            return;
        }
        let event = EventRef {
            timestamp_ms,
            group,
            message: line,
        };
        let minute = timestamp_ms.div_euclid(60_000) * 60_000;
        for filter in &filters.0 {
            if !glob_match(&filter.group, group) || !filter.filter.matches(event) {
                continue;
            }
            let value = match &filter.value {
                CompiledValue::Constant(value) => *value,
                // An event without a numeric value adds nothing, as in CloudWatch.
                CompiledValue::Field(extractor) => match extractor.number(event) {
                    Some(value) => value,
                    None => continue,
                },
            };
            let mut dims = Dimensions::default();
            for (slot, extractor) in &filter.dimensions {
                let Some(text) = extractor.value(event).map(|v| v.to_string()) else {
                    continue;
                };
                let text: Option<Arc<str>> = Some(Arc::from(text.as_str()));
                match slot {
                    DimensionSlot::Api => dims.api = text,
                    DimensionSlot::Stage => dims.stage = text,
                    DimensionSlot::Route => dims.route = text,
                    DimensionSlot::Method => dims.method = text,
                }
            }
            let series = self.minutes.entry(minute).or_default();
            let per_filter = series.keys().filter(|(m, _)| *m == filter.metric).count();
            let key = (filter.metric.clone(), dims);
            let key = if per_filter >= MAX_SERIES_PER_FILTER && !series.contains_key(&key) {
                self.counters.folded.fetch_add(1, Ordering::Relaxed);
                (filter.metric.clone(), Dimensions::default())
            } else {
                key
            };
            // Every filter also feeds its all-traffic series, so an alarm without dimensions
            // sees every match.
            // A count needs no sketch; a field's values get one, for percentiles.
            let fresh = || match filter.value {
                CompiledValue::Constant(_) => StatisticSet::counter(),
                CompiledValue::Field(_) => StatisticSet::distribution(),
            };
            if key.1 != Dimensions::default() {
                series
                    .entry((filter.metric.clone(), Dimensions::default()))
                    .or_insert_with(fresh)
                    .add(value);
            }
            series.entry(key).or_insert_with(fresh).add(value);
            self.counters.matched.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands every minute that ended more than the grace period before `now_ms` to the store;
    /// with `all`, every open minute (at shutdown).
    pub(crate) fn flush_due(&mut self, now_ms: i64, all: bool) {
        while let Some((&minute, _)) = self.minutes.first_key_value() {
            if !all && minute + 60_000 + GRACE_MS > now_ms {
                break;
            }
            let Some((minute, series)) = self.minutes.pop_first() else {
                break;
            };
            let points: Vec<(String, Dimensions, StatisticSet)> = series
                .into_iter()
                .map(|((metric, dims), stats)| (metric, dims, stats))
                .collect();
            if let Some(writer) = &self.writer
                && !writer.submit(minute / 1000, points)
            {
                self.counters
                    .minutes_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(filter: &str, value: MetricValue, dims: &[(&str, &str)]) -> MetricFilterSettings {
        MetricFilterSettings {
            name: "f".into(),
            group: "access/*".into(),
            filter: filter.into(),
            metric: "UpstreamErrors".into(),
            value,
            dimensions: dims
                .iter()
                .map(|(n, f)| ((*n).to_owned(), (*f).to_owned()))
                .collect(),
        }
    }

    fn open_minutes(filters: &MetricFilters) -> Vec<(i64, String, String, u64, f64)> {
        filters
            .minutes
            .iter()
            .flat_map(|(minute, series)| {
                series.iter().map(move |((metric, dims), stats)| {
                    (
                        *minute,
                        metric.clone(),
                        dims.canonical(),
                        stats.sample_count,
                        stats.sum,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn matching_lines_of_matching_groups_add_their_value_per_minute() {
        let compiled = compile(&[settings(
            "status >= 500",
            MetricValue::Field("latency".into()),
            &[("api", "api")],
        )])
        .unwrap();
        let shared = Arc::new(arc_swap::ArcSwap::from_pointee(compiled));
        let mut filters = MetricFilters::new(shared, None, Arc::default());
        let line = |status: u16, latency: u32| {
            format!(r#"{{"api":"pets","status":{status},"latency":{latency}}}"#)
        };
        filters.observe("access/pets/prod", 60_500, &line(502, 30));
        filters.observe("access/pets/prod", 61_000, &line(200, 5));
        filters.observe("execution/pets/prod", 61_000, &line(500, 7));
        filters.observe("access/pets/prod", 125_000, &line(503, 12));
        assert_eq!(
            open_minutes(&filters),
            vec![
                (60_000, "UpstreamErrors".into(), "".into(), 1, 30.0),
                (60_000, "UpstreamErrors".into(), "api=pets".into(), 1, 30.0),
                (120_000, "UpstreamErrors".into(), "".into(), 1, 12.0),
                (120_000, "UpstreamErrors".into(), "api=pets".into(), 1, 12.0),
            ]
        );
        filters.flush_due(60_000 + 60_000 + GRACE_MS - 1, false);
        assert_eq!(
            open_minutes(&filters).len(),
            4,
            "the first minute is in its grace period"
        );
        filters.flush_due(60_000 + 60_000 + GRACE_MS, false);
        assert_eq!(open_minutes(&filters).len(), 2);
        filters.flush_due(0, true);
        assert!(open_minutes(&filters).is_empty());
    }

    #[test]
    fn bad_filters_and_unknown_dimensions_are_refused_with_the_filter_name() {
        let errors = compile(&[
            settings("status >= ", MetricValue::Constant(1.0), &[]),
            settings(
                "status >= 500",
                MetricValue::Constant(1.0),
                &[("colour", "c")],
            ),
        ])
        .err()
        .unwrap();
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].message.starts_with("filter: "),
            "{}",
            errors[0].message
        );
        assert!(errors[1].message.contains("unknown dimension 'colour'"));
    }
}
