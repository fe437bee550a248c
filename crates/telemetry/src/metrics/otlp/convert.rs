//! One closed minute of statistic sets → one OTLP `ExportMetricsServiceRequest`.
//!
//! Counts and bytes become monotonic delta `Sum`s whose value is the statistic set's sum, the
//! latency metrics become `Summary` points (count, sum, min and max as quantiles 0 and 1, and the
//! sketch's p50 … p99.9). Every point spans exactly its minute, so consecutive exports tile time
//! the way OTLP's delta temporality expects.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric as OtlpMetric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint, metric::Data, number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::metrics::{Dimensions, Metric, MetricPoint, StatisticSet};

/// The prefix of every exported metric name: `Count` is exported as `gatehouse.Count`.
pub const NAME_PREFIX: &str = "gatehouse.";
/// The quantiles a latency summary carries besides its minimum (0) and maximum (1).
pub const SUMMARY_QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];
const MINUTE_NANOS: u64 = 60_000_000_000;

/// Who is exporting: the resource every request describes.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) service_name: String,
    pub(crate) service_instance_id: String,
}

/// Builds the request for one minute. Points of one metric name share one OTLP metric; points
/// of names this version does not know are exported as a summary if they carry a sketch and as a
/// delta sum otherwise.
pub(crate) fn export_request(
    origin: &Origin,
    minute_start_unix: i64,
    points: &[MetricPoint],
) -> ExportMetricsServiceRequest {
    let start = u64::try_from(minute_start_unix)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let span = Span {
        start,
        end: start.saturating_add(MINUTE_NANOS),
    };
    let mut by_name: BTreeMap<&str, Vec<&MetricPoint>> = BTreeMap::new();
    for point in points {
        by_name.entry(point.0.as_str()).or_default().push(point);
    }
    let metrics = by_name
        .into_iter()
        .map(|(name, points)| metric(name, &points, span))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_attribute("service.name", &origin.service_name),
                    string_attribute("service.instance.id", &origin.service_instance_id),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "gatehouse".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

fn metric(name: &str, points: &[&MetricPoint], span: Span) -> OtlpMetric {
    let known = Metric::from_name(name);
    let is_summary = known.map_or_else(
        || points.iter().any(|(_, _, stats)| stats.has_sketch()),
        Metric::is_distribution,
    );
    let data = if is_summary {
        Data::Summary(Summary {
            data_points: points
                .iter()
                .map(|(_, dims, stats)| summary_point(dims, stats, span))
                .collect(),
        })
    } else {
        Data::Sum(Sum {
            data_points: points
                .iter()
                .map(|(_, dims, stats)| sum_point(dims, stats, span))
                .collect(),
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
        })
    };
    OtlpMetric {
        name: format!("{NAME_PREFIX}{name}"),
        unit: known.map_or("", unit).into(),
        data: Some(data),
        ..Default::default()
    }
}

/// The UCUM unit OTLP expects: `ms`, `By`, or a `{…}` annotation (dimensionless) for counts.
fn unit(metric: Metric) -> &'static str {
    match metric {
        Metric::Latency | Metric::IntegrationLatency | Metric::ConnectionDuration => "ms",
        Metric::BytesIn | Metric::BytesOut => "By",
        Metric::ConnectCount => "{connection}",
        Metric::MessageCount => "{message}",
        Metric::Count
        | Metric::Error4xx
        | Metric::Error5xx
        | Metric::ThrottleCount
        | Metric::CacheHitCount
        | Metric::CacheMissCount
        | Metric::WafBlockedCount => "{request}",
    }
}

fn sum_point(dims: &Dimensions, stats: &StatisticSet, span: Span) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(dims),
        start_time_unix_nano: span.start,
        time_unix_nano: span.end,
        value: Some(number_data_point::Value::AsDouble(stats.sum)),
        ..Default::default()
    }
}

fn summary_point(dims: &Dimensions, stats: &StatisticSet, span: Span) -> SummaryDataPoint {
    let mut quantile_values = Vec::new();
    if stats.sample_count > 0 {
        // OTLP's convention: quantile 0 is the minimum and 1 the maximum, both exact here.
        let sketched = SUMMARY_QUANTILES
            .iter()
            .filter_map(|&q| stats.quantile(q).map(|value| (q, value)));
        quantile_values = std::iter::once((0.0, stats.min))
            .chain(sketched)
            .chain(std::iter::once((1.0, stats.max)))
            .map(|(quantile, value)| summary_data_point::ValueAtQuantile { quantile, value })
            .collect();
    }
    SummaryDataPoint {
        attributes: attributes(dims),
        start_time_unix_nano: span.start,
        time_unix_nano: span.end,
        count: stats.sample_count,
        sum: stats.sum,
        quantile_values,
        ..Default::default()
    }
}

/// The dimensions present, in the canonical order. `canary` is kept (as a boolean) so the canary
/// series of a stage never collides with the stage's own series.
fn attributes(dims: &Dimensions) -> Vec<KeyValue> {
    let strings = [
        ("api", &dims.api),
        ("stage", &dims.stage),
        ("route", &dims.route),
        ("method", &dims.method),
    ];
    let mut out: Vec<KeyValue> = strings
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| string_attribute(key, v)))
        .collect();
    if let Some(canary) = dims.canary {
        out.push(attribute("canary", any_value::Value::BoolValue(canary)));
    }
    out
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.into()))
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
