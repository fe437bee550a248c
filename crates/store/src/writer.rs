//! The writer thread: the only owner of the write connection.
//!
//! Everything written to the store goes through one bounded queue of [`WriteOp`]s. The thread takes
//! what is queued into an open batch and commits it in one transaction when the queue is drained,
//! when the batch holds [`MAX_BATCH_POINTS`], or [`MAX_BATCH_AGE`] after the batch began, whichever
//! comes first. Between batches it deletes expired rows (once at start, then every
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
use crate::metrics::{self, MetricBatch, PendingMetrics};
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
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            batches_committed: self.batches_committed.load(Ordering::Relaxed),
            points_written: self.points_written.load(Ordering::Relaxed),
            points_dropped: self.points_dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
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
}

impl Pending {
    fn points(&self) -> u64 {
        self.metrics.points()
    }
}

struct Writer {
    conn: Connection,
    retention: Retention,
    counters: Arc<Counters>,
    pending: Pending,
    /// The first commit failure since the last flush, reported to that flush.
    failed: Option<StoreError>,
}

impl Writer {
    fn run(mut self, queue: Receiver<WriteOp>) {
        self.sweep();
        let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
        loop {
            let first =
                match queue.recv_timeout(next_sweep.saturating_duration_since(Instant::now())) {
                    Ok(op) => op,
                    Err(RecvTimeoutError::Timeout) => {
                        self.sweep();
                        next_sweep = Instant::now() + SWEEP_INTERVAL;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                };
            let began = Instant::now();
            let mut next = Some(first);
            while let Some(op) = next.take() {
                if !self.apply(op) {
                    return;
                }
                if self.pending.points() >= MAX_BATCH_POINTS || began.elapsed() >= MAX_BATCH_AGE {
                    break;
                }
                next = queue.try_recv().ok();
            }
            self.commit();
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
            WriteOp::AlarmTransition { record, reply } => {
                self.commit();
                let _ = reply.send(self.record_alarm_transition(&record));
            }
            WriteOp::AlarmDefinition { change, reply } => {
                self.commit();
                let _ = reply.send(self.change_alarm_definition(&change));
            }
            WriteOp::Flush(reply) => {
                self.commit();
                let _ = reply.send(self.failed.take().map_or(Ok(()), Err));
            }
            WriteOp::Shutdown(reply) => {
                self.commit();
                let _ = reply.send(self.failed.take().map_or(Ok(()), Err));
                return false;
            }
            #[cfg(test)]
            WriteOp::Pause { paused, resume } => {
                self.commit();
                let _ = paused.send(());
                let _ = resume.recv();
            }
        }
        true
    }

    /// Commits the open batch in one transaction. On failure the batch's points are dropped and
    /// counted; the writer carries on with the next batch.
    fn commit(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let points = pending.points();
        if points == 0 {
            return;
        }
        let result = self.conn.transaction().and_then(|tx| {
            pending.metrics.write(&tx, &self.counters)?;
            tx.commit()
        });
        let counters = &self.counters;
        match result {
            Ok(()) => {
                counters.batches_committed.fetch_add(1, Ordering::Relaxed);
                counters.points_written.fetch_add(points, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, points, "store batch failed; its points are dropped");
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                counters.points_dropped.fetch_add(points, Ordering::Relaxed);
                self.failed.get_or_insert(StoreError::Write(error));
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
        let result = self.conn.transaction().and_then(|tx| {
            let deleted = metrics::sweep(&tx, &self.retention, now)? + alarms::sweep(&tx, now)?;
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

/// Seconds since the Unix epoch by the wall clock.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
