//! The read side of metrics: statistic sets of one series over a time range, in buckets of any
//! whole number of minutes, and the list of recently written series.

use gatehouse_telemetry::metrics::{Dimensions, StatisticSet};
use rusqlite::{Connection, OptionalExtension, params};

use super::{RESOLUTIONS, period_start};
use crate::{Retention, StoreError};

/// One series over a time range, in buckets of `period_secs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricQuery {
    pub metric: String,
    /// Matched exactly; the all-traffic series is `Dimensions::default()`.
    pub dimensions: Dimensions,
    /// The bucket length; a positive multiple of 60. Buckets are aligned to the Unix epoch.
    pub period_secs: u32,
    /// The bucket containing `start_unix` is the first one returned, whole.
    pub start_unix: i64,
    /// Exclusive: buckets that start at or after it are not returned; a bucket that starts
    /// before it is returned whole.
    pub end_unix: i64,
}

/// The merged statistics of one bucket.
#[derive(Clone, Debug)]
pub struct MetricDatapoint {
    /// The start of the bucket.
    pub timestamp_unix: i64,
    pub stats: StatisticSet,
}

/// Runs `query` on `conn`; only buckets with data are returned, oldest first.
pub(crate) fn query(
    conn: &Connection,
    query: &MetricQuery,
    retention: &Retention,
    now_unix: i64,
) -> Result<Vec<MetricDatapoint>, StoreError> {
    if query.period_secs == 0 || !query.period_secs.is_multiple_of(60) {
        return Err(StoreError::InvalidQuery(format!(
            "period_secs is {}; it must be a positive multiple of 60",
            query.period_secs
        )));
    }
    if query.end_unix < query.start_unix {
        return Err(StoreError::InvalidQuery(format!(
            "end_unix {} is before start_unix {}",
            query.end_unix, query.start_unix
        )));
    }
    let period = i64::from(query.period_secs);
    let first_bucket = period_start(query.start_unix, period);
    // Rows up to the end of the last bucket that starts before `end_unix`.
    let rows_end = match period_start(query.end_unix, period) {
        aligned if aligned == query.end_unix => aligned,
        aligned => aligned.saturating_add(period),
    };
    if rows_end <= first_bucket {
        return Ok(Vec::new());
    }

    let series_id: Option<i64> = conn
        .prepare_cached("SELECT id FROM series WHERE metric = ?1 AND dims = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![query.metric, query.dimensions.canonical()], |row| {
                row.get(0)
            })
            .optional()
        })
        .map_err(StoreError::query("looking up the series"))?;
    let Some(series_id) = series_id else {
        return Ok(Vec::new());
    };

    let resolution = choose_resolution(query.period_secs, first_bucket, retention, now_unix);
    let mut stmt = conn
        .prepare_cached(
            "SELECT ts, stats FROM metric_points
             WHERE resolution_secs = ?1 AND series_id = ?2 AND ts >= ?3 AND ts < ?4
             ORDER BY ts",
        )
        .map_err(StoreError::query("preparing the points query"))?;
    let rows = stmt
        .query_map(
            params![resolution, series_id, first_bucket, rows_end],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .map_err(StoreError::query("reading metric points"))?;

    let mut buckets: Vec<MetricDatapoint> = Vec::new();
    for row in rows {
        let (ts, bytes) = row.map_err(StoreError::query("reading metric points"))?;
        let stats = StatisticSet::from_bytes(&bytes).map_err(|source| StoreError::Decode {
            metric: query.metric.clone(),
            ts,
            source,
        })?;
        let bucket = period_start(ts, period);
        match buckets.last_mut() {
            Some(last) if last.timestamp_unix == bucket => last.stats.merge(&stats),
            _ => buckets.push(MetricDatapoint {
                timestamp_unix: bucket,
                stats,
            }),
        }
    }
    Ok(buckets)
}

/// The resolution a query reads: the coarsest one that divides the period and whose retention
/// still covers the first bucket; if none covers it, the coarsest that divides the period (it
/// holds whatever is left). A valid period is a multiple of 60, so a minute always divides it.
pub(crate) fn choose_resolution(
    period_secs: u32,
    first_bucket: i64,
    retention: &Retention,
    now_unix: i64,
) -> u32 {
    let dividing = || {
        RESOLUTIONS
            .into_iter()
            .rev()
            .filter(move |resolution| period_secs.is_multiple_of(*resolution))
    };
    dividing()
        .find(|&resolution| first_bucket >= retention.cutoff(resolution, now_unix))
        .or_else(|| dividing().next())
        .unwrap_or(RESOLUTIONS[0])
}

/// The series with data at or after `since_unix`, ordered by metric and dimensions. Rows whose
/// dimensions this build cannot parse (written by a newer one) are skipped.
pub(crate) fn list_series(
    conn: &Connection,
    since_unix: i64,
) -> Result<Vec<(String, Dimensions)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT metric, dims FROM series WHERE last_seen >= ?1 ORDER BY metric, dims",
        )
        .map_err(StoreError::query("preparing the series list"))?;
    let rows = stmt
        .query_map(params![since_unix], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(StoreError::query("listing series"))?;
    let mut series = Vec::new();
    for row in rows {
        let (metric, dims) = row.map_err(StoreError::query("listing series"))?;
        match Dimensions::parse(&dims) {
            Some(parsed) => series.push((metric, parsed)),
            None => tracing::warn!(metric, dims, "skipping a series with unknown dimensions"),
        }
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_coarsest_dividing_resolution_that_still_covers_the_start_is_read() {
        const HOUR: i64 = 3600;
        const DAY: i64 = 24 * HOUR;
        let now = 1_000 * DAY;
        let default = Retention::default();
        // A config where minutes are kept longer than five-minute rows, to exercise the
        // fall-back to a finer resolution.
        let odd = Retention {
            minute: Duration::from_secs(30 * DAY as u64),
            five_minutes: Duration::from_secs(10 * DAY as u64),
            hour: Duration::from_secs(5 * DAY as u64),
        };
        let cases = [
            // (retention, period, start age, expected resolution)
            (default, 60, HOUR, 60),
            (default, 120, HOUR, 60),
            (default, 300, HOUR, 300),
            (default, 900, HOUR, 300),
            (default, 3600, HOUR, 3600),
            (default, 7200, 400 * DAY, 3600),
            (default, 420, HOUR, 60),
            // Older than every retention: the coarsest dividing resolution.
            (default, 300, 100 * DAY, 300),
            (default, 60, 20 * DAY, 60),
            (odd, 3600, 7 * DAY, 300),
            (odd, 3600, 15 * DAY, 60),
            (odd, 300, 20 * DAY, 60),
            (odd, 3600, 2 * DAY, 3600),
            (odd, 3600, 40 * DAY, 3600),
        ];
        for (retention, period, age, expected) in cases {
            assert_eq!(
                choose_resolution(period, now - age, &retention, now),
                expected,
                "period {period}, age {age}"
            );
        }
    }
}
