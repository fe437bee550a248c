//! Metrics: statistic sets with mergeable latency sketches, and their dimensions; the consumer
//! that aggregates exchanges into minute buckets and the Prometheus exposition.

mod aggregate;
mod clock;
mod condition;
mod consumer;
mod dimensions;
mod histogram;
mod names;
pub(crate) mod otlp;
mod process;
mod prometheus;
mod routes;
mod stat;
mod statistic;
#[cfg(test)]
mod test_support;

pub use aggregate::MetricPoint;
pub use clock::{Clock, ManualClock, SystemClock};
pub use condition::{Comparison, MissingData, UnknownName};
pub use consumer::{MetricSink, MetricsAggregator, MetricsConfig, MetricsHandle, MetricsStats};
pub use dimensions::Dimensions;
pub use names::{Metric, OVERFLOW_API, prometheus as prometheus_names};
pub use otlp::{
    ExportPolicy, FanOut, OTLP_NAME_PREFIX, OTLP_SUMMARY_QUANTILES, OtlpConfig, OtlpExporter,
    OtlpHandle, OtlpStats,
};
pub use process::register_process_metrics;
pub use prometheus::{PROMETHEUS_CONTENT_TYPE, register_alarm_notifications, register_bus_drops};
pub use prometheus_client;
pub use stat::{Statistic, UnknownStatistic};
pub use statistic::{DecodeError, SKETCH_RELATIVE_ACCURACY, StatisticSet};
