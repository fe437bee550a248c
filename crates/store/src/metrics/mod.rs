//! Metric rollups: 1-minute statistic sets from the aggregator, merged at write time into the
//! 5-minute and 1-hour rows that contain them, and queried back at any period that is a multiple
//! of a minute.
//!
//! Every row is an encoded [`StatisticSet`](gatehouse_telemetry::metrics::StatisticSet), so
//! coarser rows and query buckets are produced by merging sets (and their sketches): a p99 of an
//! hour is the p99 of that hour's samples, never an average of minute percentiles.

mod query;
mod write;

pub use query::{MetricDatapoint, MetricQuery};
pub use write::MetricWriter;

pub(crate) use query::{list_series, query};
pub(crate) use write::{MetricBatch, PendingMetrics, sweep};

/// The stored resolutions in seconds, finest first. Each divides the next, so a minute belongs to
/// exactly one row of each.
pub(crate) const RESOLUTIONS: [u32; 3] = [60, 300, 3600];

/// The start of the period of `resolution_secs` (or any positive length) that contains `ts`,
/// aligned to the Unix epoch.
pub(crate) fn period_start(ts: i64, period_secs: i64) -> i64 {
    debug_assert!(period_secs > 0);
    ts.div_euclid(period_secs) * period_secs
}
