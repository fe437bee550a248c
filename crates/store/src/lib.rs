//! The embedded store: one SQLite database (bundled, WAL mode) in the data directory, written by
//! one writer thread in batches and read through separate connections.
//!
//! It holds metric rollups first: 1-minute statistic sets merged at write time into 5-minute and
//! 1-hour rows, each resolution with its own retention. Alarm history (`alarms.rs`) is the
//! second kind of data, the alarms created through the admin API (`alarm_definitions.rs`) the
//! third, logs (`logs/`: groups, compressed blocks of events, scans and search) the fourth, and
//! traces (`traces/`: traced exchanges and received spans in compressed blocks, get by trace id,
//! search over requests) the fifth;
//! the audit chain joins later as new migrations (`schema.rs`) and new kinds of write
//! op (`writer.rs`) on the same thread and batches.
//!
//! **Architecture invariant:** submitting data never blocks. [`MetricWriter::submit`] and
//! [`LogWriter::append`] offer a batch to a bounded queue and drop (and count) it when the queue
//! is full; SQLite is only ever touched on the writer thread and by [`Store`]'s blocking query
//! methods, which async callers run with `spawn_blocking`.

mod alarm_definitions;
mod alarms;
mod block_codec;
mod config;
mod error;
mod logs;
mod metrics;
mod pool;
mod schema;
mod traces;
mod writer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use gatehouse_telemetry::metrics::Dimensions;

pub use alarm_definitions::{AlarmDefinitionRecord, DefinitionOutcome};
pub use alarms::{ALARM_HISTORY_RETENTION, AlarmTransitionRecord};
pub use config::{Retention, StoreConfig};
pub use error::StoreError;
pub use logs::{
    Dropped, LogBatch, LogEvent, LogEventRef, LogGroupInfo, LogScan, LogScanStats, LogWriter,
    MAX_MESSAGE_BYTES, MAX_QUEUED_LOG_BATCHES, MAX_QUEUED_LOG_BYTES,
};
pub use metrics::{MetricDatapoint, MetricQuery, MetricWriter};
pub use traces::{
    DEFAULT_TRACE_RETENTION_DAYS, MAX_GRAPH_SPANS, MAX_QUEUED_SPAN_BATCHES, MAX_QUEUED_SPANS,
    MAX_SEARCH_LIMIT, SpanWriter, SpansDropped, TraceSearch, TraceSummary,
};

use pool::ReaderPool;
use writer::{WriteOp, WriterQueue};

/// The name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "gatehouse.db";

/// The writer's counters since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed by the writer.
    pub batches_committed: u64,
    /// Submitted points committed to the database.
    pub points_written: u64,
    /// Submitted points lost: the queue was full, the store was closed, or their batch failed.
    pub points_dropped: u64,
    /// Failed commits and retention sweeps, and stored rows replaced because they were unreadable.
    pub write_errors: u64,
    /// Log events committed to the database.
    pub log_events_written: u64,
    /// Log events lost: their share of the queue was full, the store was closed, their batch
    /// failed, or their group name was invalid.
    pub log_events_dropped: u64,
    /// Log blocks committed.
    pub log_blocks_written: u64,
    /// Message bytes of log batches waiting in the queue (a gauge, not a counter).
    pub log_bytes_queued: u64,
    /// Spans committed to the database (a traced exchange counts the spans it yields).
    pub spans_written: u64,
    /// Spans lost: their share of the queue was full, the store was closed, or their batch
    /// failed.
    pub spans_dropped: u64,
    /// Trace blocks committed.
    pub trace_blocks_written: u64,
}

/// A handle on the open store. Cloning is cheap; all clones share the writer thread, which stops
/// when [`Store::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    retention: Retention,
    queue: WriterQueue,
    thread: Mutex<Option<JoinHandle<()>>>,
    readers: ReaderPool,
}

impl Store {
    /// Opens (creating if needed) the data directory and its database, brings the schema up to
    /// date and starts the writer thread, whose first job is a retention sweep.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        Self::open_with_capacity(config, writer::QUEUE_CAPACITY)
    }

    fn open_with_capacity(config: StoreConfig, capacity: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| StoreError::CreateDir {
            dir: config.dir.clone(),
            source,
        })?;
        let path = config.dir.join(DATABASE_FILE);
        let conn = schema::open_writer(&path)?;
        let (queue, thread) = writer::spawn(conn, config.retention, capacity)?;
        tracing::info!(path = %path.display(), "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                readers: ReaderPool::new(path.clone()),
                path,
                retention: config.retention,
                queue,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A handle for submitting metric minutes; cheap to create and to clone.
    pub fn metrics_writer(&self) -> MetricWriter {
        MetricWriter::new(self.inner.queue.clone())
    }

    /// Reads one series in buckets of `query.period_secs`. Blocking: async callers use
    /// `spawn_blocking`.
    pub fn query_metrics(&self, query: &MetricQuery) -> Result<Vec<MetricDatapoint>, StoreError> {
        let now = writer::unix_now();
        self.inner
            .readers
            .with(|conn| metrics::query(conn, query, &self.inner.retention, now))
    }

    /// The series with data at or after `since_unix`, ordered by metric and dimensions. Blocking.
    pub fn list_series(&self, since_unix: i64) -> Result<Vec<(String, Dimensions)>, StoreError> {
        self.inner
            .readers
            .with(|conn| metrics::list_series(conn, since_unix))
    }

    /// A handle for appending log events; cheap to create and to clone.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter::new(self.inner.queue.clone())
    }

    /// Hands the events of `scan` to `f` in time order (newest first if `scan.newest_first`)
    /// until `f` breaks. Events that share a millisecond come out in a fixed order: by block
    /// (earlier commits first, the blocks of one commit by group name), then as they arrived. Events are visible once committed: within about a second of
    /// [`LogWriter::append`], or at once after [`Store::flush`]. Blocking: async callers use
    /// `spawn_blocking`.
    pub fn scan_logs(
        &self,
        scan: &LogScan,
        f: impl FnMut(LogEventRef<'_>) -> ControlFlow<()>,
    ) -> Result<LogScanStats, StoreError> {
        self.inner.readers.with(|conn| logs::scan(conn, scan, f))
    }

    /// The first `limit` events of `scan`, in its order, whose message contains `text`, ignoring
    /// ASCII case. This reads every block of the scan's groups and time range: the time range is
    /// the index, as in CloudWatch Logs Insights. Blocking.
    pub fn search_logs(
        &self,
        scan: &LogScan,
        text: &str,
        limit: usize,
    ) -> Result<Vec<LogEvent>, StoreError> {
        self.inner
            .readers
            .with(|conn| logs::search(conn, scan, text, limit))
    }

    /// Every log group with its retention and what it holds, by name. Blocking.
    pub fn log_groups(&self) -> Result<Vec<LogGroupInfo>, StoreError> {
        self.inner.readers.with(logs::list_groups)
    }

    /// Sets how many days the events of `group` are kept (creating the group if needed), like
    /// CloudWatch's PutRetentionPolicy; `None` returns the group to the default. The setting is
    /// stored; expired blocks are deleted before this returns. Blocking.
    pub fn set_log_retention(&self, group: &str, days: Option<u32>) -> Result<(), StoreError> {
        logs::validate_retention(Some(group), days)?;
        let group = Some(group.to_owned());
        self.inner
            .queue
            .call(|reply| WriteOp::LogRetention { group, days, reply })
    }

    /// Sets the retention of log groups that have none of their own; `None` (the default) keeps
    /// their events forever. It is not stored: the binary sets it from its config after every
    /// open. Expired blocks are deleted before this returns. Blocking.
    pub fn set_default_log_retention(&self, days: Option<u32>) -> Result<(), StoreError> {
        logs::validate_retention(None, days)?;
        self.inner.queue.call(|reply| WriteOp::LogRetention {
            group: None,
            days,
            reply,
        })
    }

    /// A handle for appending traced exchanges and spans; cheap to create and to clone.
    pub fn span_writer(&self) -> SpanWriter {
        SpanWriter::new(self.inner.queue.clone())
    }

    /// Every stored span of `trace_id` (the gateway's, built from its traced exchanges, and those
    /// services sent), by start time; empty for an unknown trace. Traces are visible once
    /// committed (within about a second of [`SpanWriter::append_exchanges`] or
    /// [`SpanWriter::append`], or at once after [`Store::flush`]). Blocking: async callers use
    /// `spawn_blocking`.
    pub fn trace(
        &self,
        trace_id: &[u8; 16],
    ) -> Result<Vec<gatehouse_telemetry::spans::Span>, StoreError> {
        self.inner
            .readers
            .with(|conn| traces::trace(conn, trace_id))
    }

    /// The requests (the gateway's server spans) matching `search`, newest first. Blocking.
    pub fn search_traces(&self, search: &TraceSearch) -> Result<Vec<TraceSummary>, StoreError> {
        self.inner.readers.with(|conn| traces::search(conn, search))
    }

    /// Every span that started in `[start, end)` (Unix nanoseconds), oldest first, at most
    /// `limit` (and never more than [`MAX_GRAPH_SPANS`]); `true` when spans were left out.
    /// Blocking.
    pub fn spans_in_window(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
        limit: usize,
    ) -> Result<(Vec<gatehouse_telemetry::spans::Span>, bool), StoreError> {
        let limit = limit.min(MAX_GRAPH_SPANS);
        self.inner
            .readers
            .with(|conn| traces::in_window(conn, start_unix_nanos, end_unix_nanos, limit))
    }

    /// Sets how many days traces are kept (default [`DEFAULT_TRACE_RETENTION_DAYS`]). It is not
    /// stored: the binary sets it after every open. Expired traces are deleted before this
    /// returns. Blocking.
    pub fn set_trace_retention(&self, days: u32) -> Result<(), StoreError> {
        traces::validate_retention(days)?;
        self.inner
            .queue
            .call(|reply| WriteOp::TraceRetention { days, reply })
    }

    /// Records one alarm state transition through the writer thread and blocks until it is
    /// committed (after whatever was queued before it). Blocking: for the alarm evaluator's own
    /// thread, never the request path. Fails if the insert failed or the store is closed.
    pub fn record_alarm_transition(
        &self,
        record: &AlarmTransitionRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.inner
            .queue
            .call(|reply| WriteOp::AlarmTransition { record, reply })
    }

    /// The alarm transitions at or after `since_unix`, of the alarm named `alarm` or of every
    /// alarm, newest first, at most `limit`. `alarm_history(Some(name), 0, 1)` is the alarm's
    /// last recorded state. Blocking.
    pub fn alarm_history(
        &self,
        alarm: Option<&str>,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<AlarmTransitionRecord>, StoreError> {
        self.inner
            .readers
            .with(|conn| alarms::history(conn, alarm, since_unix, limit))
    }

    /// Creates or replaces the stored definition of alarm `name` (its JSON document) through the
    /// writer thread, and blocks until it is committed. A new row gets `now_unix` as its
    /// creation time; a replaced one keeps its own. Blocking.
    pub fn put_alarm_definition(
        &self,
        name: &str,
        spec: &str,
        now_unix: i64,
    ) -> Result<DefinitionOutcome, StoreError> {
        let change = alarm_definitions::DefinitionChange::Put {
            name: name.to_owned(),
            spec: spec.to_owned(),
            now_unix,
        };
        self.inner
            .queue
            .call(|reply| WriteOp::AlarmDefinition { change, reply })
    }

    /// Deletes the stored definition of alarm `name`, if there is one; its history stays.
    /// Blocking.
    pub fn delete_alarm_definition(&self, name: &str) -> Result<DefinitionOutcome, StoreError> {
        let change = alarm_definitions::DefinitionChange::Delete {
            name: name.to_owned(),
        };
        self.inner
            .queue
            .call(|reply| WriteOp::AlarmDefinition { change, reply })
    }

    /// Every stored alarm definition, ordered by name. Blocking.
    pub fn alarm_definitions(&self) -> Result<Vec<AlarmDefinitionRecord>, StoreError> {
        self.inner.readers.with(alarm_definitions::list)
    }

    /// Blocks until everything submitted before the call is committed. Reports the first failed
    /// commit since the previous flush, if any.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.queue.call(WriteOp::Flush)
    }

    /// Commits what is queued and stops the writer thread. Other clones of this store can still
    /// query, but their submits are dropped from then on.
    pub fn close(self) {
        self.inner.shutdown();
    }

    /// The writer's counters.
    pub fn stats(&self) -> StoreStats {
        self.inner.queue.counters().snapshot()
    }

    /// Pauses the writer until the returned sender is dropped (tests of a full queue).
    #[cfg(test)]
    fn pause_writer(&self) -> std::sync::mpsc::SyncSender<()> {
        self.inner.queue.pause()
    }
}

impl Inner {
    fn shutdown(&self) {
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = thread else {
            return;
        };
        if let Err(error) = self.queue.call(WriteOp::Shutdown) {
            tracing::warn!(%error, "store closed with a failed write");
        }
        if thread.join().is_err() {
            tracing::error!("the store's writer thread panicked");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_telemetry::metrics::StatisticSet;

    use super::*;

    fn points(n: usize) -> Vec<(String, Dimensions, StatisticSet)> {
        let mut stats = StatisticSet::counter();
        stats.add(1.0);
        vec![("Count".to_owned(), Dimensions::default(), stats); n]
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with_capacity(StoreConfig::new(dir.path()), 4).unwrap();
        let writer = store.metrics_writer();
        let resume = store.pause_writer();
        for minute in 0..4 {
            assert!(writer.submit(minute * 60, points(2)), "minute {minute}");
        }
        let started = std::time::Instant::now();
        assert!(!writer.submit(240, points(3)));
        assert!(!writer.submit(300, points(5)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(store.stats().points_dropped, 8);
        drop(resume);
        store.flush().unwrap();
        let stats = store.stats();
        assert_eq!((stats.points_written, stats.points_dropped), (8, 8));
        assert_eq!(stats.write_errors, 0);
    }

    #[test]
    fn logs_take_at_most_their_share_of_the_queue_and_drops_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let writer = store.log_writer();
        let one_event = || {
            let mut batch = LogBatch::new();
            batch.push("access/pets/prod", 1, "GET /pets 200");
            batch
        };
        let resume = store.pause_writer();
        for i in 0..MAX_QUEUED_LOG_BATCHES {
            assert_eq!(writer.append(one_event()), Ok(()), "batch {i}");
        }
        let started = std::time::Instant::now();
        assert_eq!(writer.append(one_event()), Err(Dropped { events: 1 }));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Metrics still find room in the queue.
        assert!(store.metrics_writer().submit(0, points(1)));
        drop(resume);
        store.flush().unwrap();
        let stats = store.stats();
        assert_eq!(stats.log_events_written, MAX_QUEUED_LOG_BATCHES);
        assert_eq!((stats.log_events_dropped, stats.points_written), (1, 1));
        assert_eq!(stats.log_bytes_queued, 0);

        // The byte limit: a batch that would take the queue past it is dropped, and one larger
        // than the limit is still taken when nothing else waits.
        let big = |events: usize| {
            let mut batch = LogBatch::new();
            let message = "x".repeat(MAX_MESSAGE_BYTES);
            for i in 0..events {
                batch.push("big", i as i64, &message);
            }
            batch
        };
        let per_batch = (MAX_QUEUED_LOG_BYTES as usize / MAX_MESSAGE_BYTES) * 3 / 4;
        let resume = store.pause_writer();
        assert_eq!(writer.append(big(per_batch)), Ok(()));
        assert_eq!(
            writer.append(big(per_batch)),
            Err(Dropped { events: per_batch })
        );
        assert_eq!(writer.append(one_event()), Ok(()));
        drop(resume);
        store.flush().unwrap();
        let resume = store.pause_writer();
        assert_eq!(writer.append(big(per_batch * 2)), Ok(()));
        drop(resume);
        store.flush().unwrap();
        let stats = store.stats();
        let written = MAX_QUEUED_LOG_BATCHES + 1 + 3 * per_batch as u64;
        assert_eq!(stats.log_events_written, written);
        assert_eq!(stats.log_events_dropped, 1 + per_batch as u64);
    }

    #[test]
    fn submits_after_close_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let writer = store.metrics_writer();
        let stats_handle = store.clone();
        store.close();
        assert!(!writer.submit(0, points(2)));
        assert_eq!(stats_handle.stats().points_dropped, 2);
        assert!(matches!(
            stats_handle.flush(),
            Err(StoreError::WriterStopped)
        ));
    }
}
