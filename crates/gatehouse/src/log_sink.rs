//! The store side of the log writer: the access-log writer thread hands every line meant for the
//! store (access and execution logs) to [`StoreLogSink`], which batches them for the store's
//! writer, offers them to live-tail followers, and runs the metric filters over them.
//!
//! Everything here runs on the writer thread and never blocks: the store's queue refuses a batch
//! when full (the store counts the dropped events), and the tail is a lossy broadcast.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_store::{LogBatch, LogWriter};
use gatehouse_telemetry::access_log::LogSink;

use crate::metric_filters::MetricFilters;
use crate::tail::TailHub;

/// A batch is handed to the store at this many events even if the writer's queue is not dry.
const MAX_BATCH_EVENTS: usize = 4096;

/// Counters of the sink, for `/admin/status`.
#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    pub(crate) lines: AtomicU64,
    /// Lines the store's queue refused.
    pub(crate) dropped: AtomicU64,
}

pub(crate) struct StoreLogSink {
    writer: LogWriter,
    batch: LogBatch,
    tail: TailHub,
    filters: MetricFilters,
    counters: Arc<SinkCounters>,
}

impl StoreLogSink {
    pub(crate) fn new(
        writer: LogWriter,
        tail: TailHub,
        filters: MetricFilters,
        counters: Arc<SinkCounters>,
    ) -> Self {
        Self {
            writer,
            batch: LogBatch::with_capacity(MAX_BATCH_EVENTS, 256 * 1024),
            tail,
            filters,
            counters,
        }
    }

    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(
            &mut self.batch,
            LogBatch::with_capacity(MAX_BATCH_EVENTS, 256 * 1024),
        );
        if let Err(dropped) = self.writer.append(batch) {
            self.counters
                .dropped
                .fetch_add(dropped.events as u64, Ordering::Relaxed);
        }
    }
}

impl LogSink for StoreLogSink {
    fn append(&mut self, group: &Arc<str>, timestamp_ms: i64, line: &[u8]) {
        // Rendered lines are UTF-8 (the renderer escapes what it copies from requests).
        let text = String::from_utf8_lossy(line);
        self.tail.publish(group, timestamp_ms, &text);
        self.filters.observe(group, timestamp_ms, &text);
        self.batch.push(group, timestamp_ms, &text);
        self.counters.lines.fetch_add(1, Ordering::Relaxed);
        if self.batch.len() >= MAX_BATCH_EVENTS {
            self.hand_over();
        }
    }

    fn flush(&mut self) {
        self.hand_over();
        if !self.filters.is_idle() {
            self.filters.flush_due(now_ms(), false);
        }
    }
}

impl Drop for StoreLogSink {
    /// The writer thread ends with the bus: whatever is still open goes to the store.
    fn drop(&mut self) {
        self.hand_over();
        self.filters.flush_due(now_ms(), true);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
