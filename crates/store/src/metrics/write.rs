//! The write side of metrics: the [`MetricWriter`] handle the aggregator submits minutes through,
//! the batch the writer thread accumulates from them, and the retention sweep.
//!
//! A batch is merged in memory first (every minute into its 1-minute, 5-minute and 1-hour row),
//! then written in the writer's transaction with one read-modify-write per touched row. Writing
//! the same row twice, from two gateway nodes or from before and after a restart, merges the sets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gatehouse_telemetry::metrics::{Dimensions, StatisticSet};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{RESOLUTIONS, period_start};
use crate::Retention;
use crate::writer::{Counters, WriteOp, WriterQueue};

/// A cheap, cloneable handle for submitting metric minutes to the store's writer.
#[derive(Clone)]
pub struct MetricWriter {
    queue: WriterQueue,
}

impl std::fmt::Debug for MetricWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricWriter").finish_non_exhaustive()
    }
}

impl MetricWriter {
    pub(crate) fn new(queue: WriterQueue) -> Self {
        Self { queue }
    }

    /// Offers one minute of points (`metric`, dimensions, statistic set) to the writer's bounded
    /// queue. Never blocks: if the queue is full or the store is closed, the batch is dropped, its
    /// points are counted in [`StoreStats::points_dropped`](crate::StoreStats), and `false` is
    /// returned. `minute_start_unix` is rounded down to a whole minute.
    pub fn submit(
        &self,
        minute_start_unix: i64,
        points: Vec<(String, Dimensions, StatisticSet)>,
    ) -> bool {
        if points.is_empty() {
            return true;
        }
        let count = points.len() as u64;
        let batch = MetricBatch {
            minute_start_unix,
            points,
        };
        if self.queue.offer(WriteOp::Metrics(batch)) {
            return true;
        }
        self.queue
            .counters()
            .points_dropped
            .fetch_add(count, Ordering::Relaxed);
        false
    }
}

/// One submitted minute, as it travels through the writer's queue.
pub(crate) struct MetricBatch {
    minute_start_unix: i64,
    points: Vec<(String, Dimensions, StatisticSet)>,
}

/// The metric part of the writer's open batch, merged per row.
#[derive(Default)]
pub(crate) struct PendingMetrics {
    /// Keyed by (metric, canonical dimensions).
    series: HashMap<(String, String), PendingSeries>,
    points: u64,
}

struct PendingSeries {
    /// The newest minute submitted for the series.
    last_seen: i64,
    /// Keyed by (resolution, period start); ordered so rows are written in key order.
    rows: BTreeMap<(u32, i64), StatisticSet>,
}

impl PendingMetrics {
    /// How many submitted points the batch holds.
    pub(crate) fn points(&self) -> u64 {
        self.points
    }

    pub(crate) fn add(&mut self, batch: MetricBatch) {
        let minute = period_start(batch.minute_start_unix, 60);
        for (metric, dims, stats) in batch.points {
            self.points += 1;
            let series = self
                .series
                .entry((metric, dims.canonical()))
                .or_insert_with(|| PendingSeries {
                    last_seen: minute,
                    rows: BTreeMap::new(),
                });
            series.last_seen = series.last_seen.max(minute);
            for resolution in RESOLUTIONS {
                let ts = period_start(minute, i64::from(resolution));
                series
                    .rows
                    .entry((resolution, ts))
                    .and_modify(|row| row.merge(&stats))
                    .or_insert_with(|| stats.clone());
            }
        }
    }

    /// Writes the batch in `tx`, merging into rows already stored. A stored row that cannot be
    /// decoded is replaced (and counted as a write error) rather than failing every later batch.
    pub(crate) fn write(
        self,
        tx: &Transaction<'_>,
        counters: &Arc<Counters>,
    ) -> rusqlite::Result<()> {
        let mut upsert_series = tx.prepare_cached(
            "INSERT INTO series (metric, dims, last_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (metric, dims) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
             RETURNING id",
        )?;
        let mut select_row = tx.prepare_cached(
            "SELECT stats FROM metric_points
             WHERE resolution_secs = ?1 AND series_id = ?2 AND ts = ?3",
        )?;
        let mut upsert_row = tx.prepare_cached(
            "INSERT INTO metric_points (resolution_secs, series_id, ts, stats) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (resolution_secs, series_id, ts) DO UPDATE SET stats = excluded.stats",
        )?;
        for ((metric, dims), series) in self.series {
            let series_id: i64 = upsert_series
                .query_row(params![metric, dims, series.last_seen], |row| row.get(0))?;
            for ((resolution, ts), stats) in series.rows {
                let stored: Option<Vec<u8>> = select_row
                    .query_row(params![resolution, series_id, ts], |row| row.get(0))
                    .optional()?;
                let merged = match stored.map(|bytes| StatisticSet::from_bytes(&bytes)) {
                    None => stats,
                    Some(Ok(mut stored)) => {
                        stored.merge(&stats);
                        stored
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, metric, dims, resolution, ts, "replacing an undecodable stored metric row");
                        counters.write_errors.fetch_add(1, Ordering::Relaxed);
                        stats
                    }
                };
                upsert_row.execute(params![resolution, series_id, ts, merged.to_bytes()])?;
            }
        }
        Ok(())
    }
}

/// Deletes the rows of each resolution older than its retention at `now_unix`, then the series
/// that have no rows left at any resolution. Returns the number of rows deleted.
pub(crate) fn sweep(
    tx: &Transaction<'_>,
    retention: &Retention,
    now_unix: i64,
) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    let mut oldest_kept = i64::MAX;
    for resolution in RESOLUTIONS {
        let cutoff = retention.cutoff(resolution, now_unix);
        oldest_kept = oldest_kept.min(cutoff);
        deleted += tx.execute(
            "DELETE FROM metric_points WHERE resolution_secs = ?1 AND ts < ?2",
            params![resolution, cutoff],
        )?;
    }
    // A series last seen before every cutoff has no rows left: each of its rows starts at or
    // before its newest minute.
    deleted += tx.execute(
        "DELETE FROM series WHERE last_seen < ?1",
        params![oldest_kept],
    )?;
    Ok(deleted)
}
