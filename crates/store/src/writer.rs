//! The writer thread: the only owner of the write connection.
//!
//! Everything written to the store goes through one bounded queue of [`WriteOp`]s. The thread takes
//! what is queued into an open batch and commits it in one transaction when the queue is drained,
//! when the batch holds [`MAX_BATCH_POINTS`], or [`MAX_BATCH_AGE`] after the batch began, whichever
//! comes first. Log events and trace entries are the exception: they stay pending across batches
//! for up to a second (`logs::LOG_LINGER`, `traces::TRACE_LINGER`) so that they make large blocks
//! (see `logs/write.rs`, `traces/write.rs`), and the thread wakes for that deadline as it does
//! for sweeps. Between batches it deletes expired rows (once at start, then every
//! [`SWEEP_INTERVAL`]), so retention never runs on a request or query path.
//!
//! A new kind of data (logs, spans, alarm history, audit records) is a new `WriteOp` variant, a
//! new field of [`Pending`] with its own `write`, and a new step in the sweep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::alarm_definitions::{self, DefinitionChange, DefinitionOutcome};
use crate::alarms::{self, AlarmTransitionRecord};
use crate::logs::{self, GroupIds, LogBatch, PendingLogs};
use crate::metrics::{self, MetricBatch, PendingMetrics};
use crate::traces::{self, PendingTraces, TraceBatch};
use crate::{Retention, StoreError, StoreStats};

/// How many operations the queue holds; a submit beyond it is dropped. One metric op is one
/// minute of one node's series, so this is far more than a healthy writer ever has waiting.
pub(crate) const QUEUE_CAPACITY: usize = 1024;
/// A batch is committed once it holds this many points...
const MAX_BATCH_POINTS: u64 = 20_000;
/// ...or this long after it began, even if more is queued.
const MAX_BATCH_AGE: Duration = Duration::from_millis(100);
/// How often expired rows are deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// What the writer thread is asked to do.
pub(crate) enum WriteOp {
    Metrics(MetricBatch),
    Logs(LogBatch),
    Traces(TraceBatch),
    /// Set how many days traces are kept, then sweep them and answer.
    TraceRetention {
        days: u32,
        reply: SyncSender<Result<(), StoreError>>,
    },
    /// Set the retention of one log group (`Some`) or the default (`None`), then sweep logs and
    /// answer. The default lives only in the writer; a group's own setting is stored.
    LogRetention {
        group: Option<String>,
        days: Option<u32>,
        reply: SyncSender<Result<(), StoreError>>,
    },
    /// Commit the open batch, then insert one alarm transition in its own transaction and answer
    /// with the outcome of that insert.
    AlarmTransition {
        record: AlarmTransitionRecord,
        reply: SyncSender<Result<(), StoreError>>,
    },
    /// Commit the open batch, then create, replace or delete one alarm definition in its own
    /// transaction and answer with what it did.
    AlarmDefinition {
        change: DefinitionChange,
        reply: SyncSender<Result<DefinitionOutcome, StoreError>>,
    },
    /// Commit everything queued before this op, then answer.
    Flush(SyncSender<Result<(), StoreError>>),
    /// Commit everything queued before this op, answer, and stop.
    Shutdown(SyncSender<Result<(), StoreError>>),
    /// Commit, answer on `paused`, then wait for `resume` (or its sender to drop).
    #[cfg(test)]
    Pause {
        paused: SyncSender<()>,
        resume: Receiver<()>,
    },
}

/// The writer's counters, shared with every handle.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) batches_committed: AtomicU64,
    pub(crate) points_written: AtomicU64,
    pub(crate) points_dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) log_events_written: AtomicU64,
    pub(crate) log_events_dropped: AtomicU64,
    pub(crate) log_blocks_written: AtomicU64,
    /// Message bytes and batches of logs in the queue, not yet taken by the writer.
    pub(crate) log_bytes_queued: AtomicU64,
    pub(crate) log_batches_queued: AtomicU64,
    pub(crate) spans_written: AtomicU64,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) trace_blocks_written: AtomicU64,
    /// Spans and batches of spans in the queue, not yet taken by the writer.
    pub(crate) spans_queued: AtomicU64,
    pub(crate) span_batches_queued: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            batches_committed: self.batches_committed.load(Ordering::Relaxed),
            points_written: self.points_written.load(Ordering::Relaxed),
            points_dropped: self.points_dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            log_events_written: self.log_events_written.load(Ordering::Relaxed),
            log_events_dropped: self.log_events_dropped.load(Ordering::Relaxed),
            log_blocks_written: self.log_blocks_written.load(Ordering::Relaxed),
            log_bytes_queued: self.log_bytes_queued.load(Ordering::Relaxed),
            spans_written: self.spans_written.load(Ordering::Relaxed),
            spans_dropped: self.spans_dropped.load(Ordering::Relaxed),
            trace_blocks_written: self.trace_blocks_written.load(Ordering::Relaxed),
        }
    }
}

/// The sending side of the writer's queue.
#[derive(Clone)]
pub(crate) struct WriterQueue {
    sender: SyncSender<WriteOp>,
    counters: Arc<Counters>,
}

impl WriterQueue {
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Queues `op` without blocking; `false` if the queue is full or the writer has stopped.
    pub(crate) fn offer(&self, op: WriteOp) -> bool {
        match self.sender.try_send(op) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Queues the op `make` builds around a reply channel, waiting for room, and waits for the
    /// writer's answer. For flush and shutdown, which callers expect to block.
    pub(crate) fn call<T>(
        &self,
        make: impl FnOnce(SyncSender<Result<T, StoreError>>) -> WriteOp,
    ) -> Result<T, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.sender
            .send(make(reply))
            .map_err(|_| StoreError::WriterStopped)?;
        answer.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Stops the writer at the next op and returns once it has committed what came before.
    #[cfg(test)]
    pub(crate) fn pause(&self) -> SyncSender<()> {
        let (paused_tx, paused_rx) = std::sync::mpsc::sync_channel(1);
        let (resume_tx, resume_rx) = std::sync::mpsc::sync_channel(1);
        let op = WriteOp::Pause {
            paused: paused_tx,
            resume: resume_rx,
        };
        if self.sender.send(op).is_ok() {
            let _ = paused_rx.recv();
        }
        resume_tx
    }
}

/// Starts the writer thread on `conn`.
pub(crate) fn spawn(
    conn: Connection,
    retention: Retention,
    capacity: usize,
) -> Result<(WriterQueue, JoinHandle<()>), StoreError> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
    let counters = Arc::new(Counters::default());
    let writer = Writer {
        conn,
        retention,
        counters: Arc::clone(&counters),
        pending: Pending::default(),
        log_groups: GroupIds::default(),
        default_log_retention: None,
        trace_retention_days: traces::DEFAULT_TRACE_RETENTION_DAYS,
        failed: None,
    };
    let thread = std::thread::Builder::new()
        .name("gatehouse-store-writer".into())
        .spawn(move || writer.run(receiver))
        .map_err(StoreError::SpawnWriter)?;
    Ok((WriterQueue { sender, counters }, thread))
}

/// The open batch: what has been taken from the queue and not yet committed, one field per kind
/// of data.
#[derive(Default)]
struct Pending {
    metrics: PendingMetrics,
    logs: PendingLogs,
    traces: PendingTraces,
}

impl Pending {
    /// Whether the batch should be committed without taking more from the queue.
    fn is_full(&self) -> bool {
        self.metrics.points() >= MAX_BATCH_POINTS || self.logs.is_full() || self.traces.is_full()
    }

    /// When lingering log events or trace entries are to be written at the latest.
    fn deadline(&self) -> Option<Instant> {
        let (logs, traces) = (self.logs.deadline(), self.traces.deadline());
        // `None` is the least Option, so `min` alone would drop a lone deadline.
        logs.min(traces).or(logs).or(traces)
    }
}

struct Writer {
    conn: Connection,
    retention: Retention,
    counters: Arc<Counters>,
    pending: Pending,
    /// Committed log groups by name.
    log_groups: GroupIds,
    /// The retention of log groups without their own; `None` keeps their events forever.
    default_log_retention: Option<u32>,
    /// How many days spans are kept.
    trace_retention_days: u32,
    /// The first commit failure since the last flush, reported to that flush.
    failed: Option<StoreError>,
}

impl Writer {
    fn run(mut self, queue: Receiver<WriteOp>) {
        self.sweep();
        let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
        loop {
            let wake = next_sweep.min(self.pending.deadline().unwrap_or(next_sweep));
            let first = match queue.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.commit(Lingering::IfDue);
                    if Instant::now() >= next_sweep {
                        self.sweep();
                        next_sweep = Instant::now() + SWEEP_INTERVAL;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit(Lingering::Now);
                    return;
                }
            };
            let began = Instant::now();
            let mut next = Some(first);
            while let Some(op) = next.take() {
                if !self.apply(op) {
                    return;
                }
                if self.pending.is_full() || began.elapsed() >= MAX_BATCH_AGE {
                    break;
                }
                next = queue.try_recv().ok();
            }
            self.commit(Lingering::IfDue);
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + SWEEP_INTERVAL;
            }
        }
    }

    /// Takes one op into the batch; `false` once the writer is to stop.
    fn apply(&mut self, op: WriteOp) -> bool {
        match op {
            WriteOp::Metrics(batch) => self.pending.metrics.add(batch),
            WriteOp::Logs(batch) => {
                let counters = &self.counters;
                counters
                    .log_bytes_queued
                    .fetch_sub(batch.text_bytes() as u64, Ordering::Relaxed);
                counters.log_batches_queued.fetch_sub(1, Ordering::Relaxed);
                self.pending.logs.add(batch);
            }
            WriteOp::Traces(batch) => self.pending.traces.add(batch, &self.counters),
            WriteOp::TraceRetention { days, reply } => {
                self.commit(Lingering::IfDue);
                let _ = reply.send(self.set_trace_retention(days));
            }
            WriteOp::LogRetention { group, days, reply } => {
                self.commit(Lingering::IfDue);
                let _ = reply.send(self.set_log_retention(group.as_deref(), days));
            }
            WriteOp::AlarmTransition { record, reply } => {
                self.commit(Lingering::IfDue);
                let _ = reply.send(self.record_alarm_transition(&record));
            }
            WriteOp::AlarmDefinition { change, reply } => {
                self.commit(Lingering::IfDue);
                let _ = reply.send(self.change_alarm_definition(&change));
            }
            WriteOp::Flush(reply) => {
                self.commit(Lingering::Now);
                let _ = reply.send(self.failed.take().map_or(Ok(()), Err));
            }
            WriteOp::Shutdown(reply) => {
                self.commit(Lingering::Now);
                let _ = reply.send(self.failed.take().map_or(Ok(()), Err));
                return false;
            }
            #[cfg(test)]
            WriteOp::Pause { paused, resume } => {
                self.commit(Lingering::Now);
                let _ = paused.send(());
                let _ = resume.recv();
            }
        }
        true
    }

    /// Commits the open batch in one transaction, with the lingering log events and trace
    /// entries if `lingering` says so. On failure the batch's points, events and spans are
    /// dropped and counted; the writer carries on with the next batch.
    fn commit(&mut self, lingering: Lingering) {
        let now = Instant::now();
        let metrics = std::mem::take(&mut self.pending.metrics);
        let write_logs = match lingering {
            Lingering::Now => !self.pending.logs.is_empty(),
            Lingering::IfDue => self.pending.logs.is_due(now),
        };
        let pending_logs = if write_logs {
            std::mem::take(&mut self.pending.logs)
        } else {
            PendingLogs::default()
        };
        let traces = match lingering == Lingering::Now || self.pending.traces.is_due(now) {
            true => std::mem::take(&mut self.pending.traces),
            false => PendingTraces::default(),
        };
        let points = metrics.points();
        let events = pending_logs.events();
        let span_count = traces.spans();
        if points == 0 && events == 0 && span_count == 0 {
            return;
        }
        let now_ms = unix_now_ms();
        let groups = &mut self.log_groups;
        let result = self.conn.transaction().and_then(|tx| {
            metrics.write(&tx, &self.counters)?;
            let written = pending_logs.write(&tx, groups, now_ms)?;
            let traces_written = traces.write(&tx)?;
            tx.commit()?;
            Ok((written, traces_written))
        });
        let counters = &self.counters;
        match result {
            Ok((logs, traces)) => {
                counters.batches_committed.fetch_add(1, Ordering::Relaxed);
                traces.count(counters);
                counters.points_written.fetch_add(points, Ordering::Relaxed);
                counters
                    .log_events_written
                    .fetch_add(logs.events, Ordering::Relaxed);
                counters
                    .log_blocks_written
                    .fetch_add(logs.blocks, Ordering::Relaxed);
                counters
                    .log_events_dropped
                    .fetch_add(logs.rejected, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, points, events, spans = span_count, "store batch failed; its points, log events and spans are dropped");
                counters
                    .spans_dropped
                    .fetch_add(span_count, Ordering::Relaxed);
                // Groups created in the failed transaction were rolled back.
                self.log_groups.clear();
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                counters.points_dropped.fetch_add(points, Ordering::Relaxed);
                counters
                    .log_events_dropped
                    .fetch_add(events, Ordering::Relaxed);
                self.failed.get_or_insert(StoreError::Write(error));
            }
        }
    }

    /// Stores a group's retention or changes the default, then sweeps logs so that the new
    /// setting takes effect at once.
    fn set_log_retention(
        &mut self,
        group: Option<&str>,
        days: Option<u32>,
    ) -> Result<(), StoreError> {
        let now_ms = unix_now_ms();
        if group.is_none() {
            self.default_log_retention = days;
        }
        let default = self.default_log_retention;
        let result = self.conn.transaction().and_then(|tx| {
            if let Some(group) = group {
                logs::set_group_retention(&tx, group, days, now_ms)?;
            }
            let deleted = logs::sweep(&tx, default, now_ms)?;
            tx.commit()?;
            Ok(deleted)
        });
        match result {
            Ok(deleted) => {
                tracing::debug!(group, days, deleted, "log retention set");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, group, days, "setting a log retention failed");
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Write(error))
            }
        }
    }

    /// Changes how long spans are kept, then sweeps them so the setting takes effect at once.
    fn set_trace_retention(&mut self, days: u32) -> Result<(), StoreError> {
        self.trace_retention_days = days;
        let result = self.conn.transaction().and_then(|tx| {
            let deleted = traces::sweep(&tx, days, unix_now_ns())?;
            tx.commit()?;
            Ok(deleted)
        });
        match result {
            Ok(deleted) => {
                tracing::debug!(days, deleted, "trace retention set");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, days, "setting the trace retention failed");
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Write(error))
            }
        }
    }

    /// Inserts one alarm transition in its own transaction, so the caller learns whether it
    /// was stored. Alarm transitions are rare (a few per alarm per day), so the extra commit is
    /// cheap.
    fn record_alarm_transition(
        &mut self,
        record: &AlarmTransitionRecord,
    ) -> Result<(), StoreError> {
        let result = self.conn.transaction().and_then(|tx| {
            alarms::insert(&tx, record)?;
            tx.commit()
        });
        result.map_err(|error| {
            tracing::warn!(%error, alarm = record.alarm, "recording an alarm transition failed");
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            StoreError::Write(error)
        })
    }

    /// Applies one alarm definition change in its own transaction.
    fn change_alarm_definition(
        &mut self,
        change: &DefinitionChange,
    ) -> Result<DefinitionOutcome, StoreError> {
        let result = self.conn.transaction().and_then(|tx| {
            let outcome = alarm_definitions::apply(&tx, change)?;
            tx.commit()?;
            Ok(outcome)
        });
        result.map_err(|error| {
            tracing::warn!(%error, ?change, "changing an alarm definition failed");
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            StoreError::Write(error)
        })
    }

    /// Deletes expired rows of every kind.
    fn sweep(&mut self) {
        let now = unix_now();
        let now_ms = unix_now_ms();
        let default_log_retention = self.default_log_retention;
        let result = self.conn.transaction().and_then(|tx| {
            let deleted = metrics::sweep(&tx, &self.retention, now)?
                + alarms::sweep(&tx, now)?
                + logs::sweep(&tx, default_log_retention, now_ms)?
                + traces::sweep(&tx, self.trace_retention_days, unix_now_ns())?;
            tx.commit()?;
            Ok(deleted)
        });
        match result {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "store retention sweep"),
            Err(error) => {
                tracing::warn!(%error, "store retention sweep failed; it is retried later");
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a commit writes the lingering log events and trace entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lingering {
    /// Write them (flush, shutdown).
    Now,
    /// Write them if enough have accumulated or the oldest has waited long enough.
    IfDue,
}

/// Milliseconds since the Unix epoch by the wall clock.
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Nanoseconds since the Unix epoch by the wall clock.
pub(crate) fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// Seconds since the Unix epoch by the wall clock.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
