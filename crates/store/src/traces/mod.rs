//! The trace store: spans, one row each, with the columns a trace search filters on and the whole
//! span (attributes, events) as a postcard blob.
//!
//! A row per span (rather than logs' compressed blocks) because spans are read by trace id — a
//! handful of rows scattered over time — and searched through the gateway's server spans (the
//! trace "roots" this gateway knows, `root = 1`) by time, api, route, status, fault and duration.
//! A traced request yields 1 to 6 spans, so the rows stay few per request.
//!
//! - Writing (`write.rs`): the trace recorder hands batches of spans to [`SpanWriter::append`],
//!   which never blocks; spans take at most [`MAX_QUEUED_SPAN_BATCHES`] slots of the writer's
//!   queue and [`MAX_QUEUED_SPANS`] spans, so a flood of traces drops spans (counted), never
//!   metrics.
//! - Reading (`read.rs`): [`Store::trace`](crate::Store::trace) and
//!   [`Store::search_traces`](crate::Store::search_traces), and
//!   [`Store::spans_in_window`](crate::Store::spans_in_window) for the service graph.
//! - Retention: [`DEFAULT_TRACE_RETENTION_DAYS`] (X-Ray keeps traces 30 days; a gateway's own store
//!   is smaller), changed with [`Store::set_trace_retention`](crate::Store::set_trace_retention);
//!   the writer's sweep deletes spans that started before the cutoff.

mod read;
mod write;

use std::sync::atomic::Ordering;

use gatehouse_telemetry::spans::{Classification, Span};

use crate::writer::{QUEUE_CAPACITY, WriteOp, WriterQueue};

pub(crate) use read::{in_window, search, trace};
pub(crate) use write::{PendingSpans, sweep, validate_retention};

/// How long spans are kept unless the binary says otherwise.
pub const DEFAULT_TRACE_RETENTION_DAYS: u32 = 7;
/// At most this many span batches wait in the writer's queue: a quarter of it.
pub const MAX_QUEUED_SPAN_BATCHES: u64 = QUEUE_CAPACITY as u64 / 4;
/// At most this many spans wait in the writer's queue, which bounds their memory.
pub const MAX_QUEUED_SPANS: u64 = 64 * 1024;
/// The most spans one service graph reads: about 100 MB of decoded spans at worst.
pub const MAX_GRAPH_SPANS: usize = 100_000;
/// The most summaries one search returns.
pub const MAX_SEARCH_LIMIT: usize = 1000;

/// What a trace search selects: the gateway's server spans that started in `[start, end)` and
/// match every filter given. Times are Unix nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceSearch {
    pub api: Option<String>,
    pub stage: Option<String>,
    /// A route template as in the config, e.g. `/pets/{id}`.
    pub route: Option<String>,
    pub status: Option<u16>,
    /// Only faults (5xx).
    pub fault_only: bool,
    pub min_duration_nanos: u64,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// At most this many, newest first; capped at [`MAX_SEARCH_LIMIT`].
    pub limit: usize,
}

/// One request's trace as a search lists it: its server span's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: [u8; 16],
    /// The gateway's server span.
    pub span_id: [u8; 8],
    pub name: String,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub api: Option<String>,
    pub stage: Option<String>,
    pub route: Option<String>,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub classification: Classification,
    /// Spans stored under the trace id.
    pub spans: u64,
}

/// A batch of spans the queue had no room for (or the store was closed); counted in
/// [`StoreStats::spans_dropped`](crate::StoreStats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{spans} spans dropped: the store's queue is full or the store is closed")]
pub struct SpansDropped {
    pub spans: usize,
}

/// A cheap, cloneable handle for appending spans to the store's writer.
#[derive(Clone)]
pub struct SpanWriter {
    queue: WriterQueue,
}

impl std::fmt::Debug for SpanWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanWriter").finish_non_exhaustive()
    }
}

impl SpanWriter {
    pub(crate) fn new(queue: WriterQueue) -> Self {
        Self { queue }
    }

    /// Offers `spans` to the writer. Never blocks: when spans already fill their share of the
    /// queue, or the store is closed, the batch is dropped and its spans are counted.
    pub fn append(&self, spans: Vec<Span>) -> Result<(), SpansDropped> {
        if spans.is_empty() {
            return Ok(());
        }
        let count = spans.len() as u64;
        let counters = self.queue.counters();
        let queued_spans = counters.spans_queued.fetch_add(count, Ordering::Relaxed);
        let queued_batches = counters.span_batches_queued.fetch_add(1, Ordering::Relaxed);
        let room = queued_batches < MAX_QUEUED_SPAN_BATCHES
            && (queued_spans == 0 || queued_spans + count <= MAX_QUEUED_SPANS);
        if room && self.queue.offer(WriteOp::Spans(spans)) {
            return Ok(());
        }
        counters.spans_queued.fetch_sub(count, Ordering::Relaxed);
        counters.span_batches_queued.fetch_sub(1, Ordering::Relaxed);
        counters.spans_dropped.fetch_add(count, Ordering::Relaxed);
        Err(SpansDropped {
            spans: count as usize,
        })
    }
}

/// The classification as stored: its order is the severity, so `class = 3` finds faults.
pub(crate) fn class_code(class: Classification) -> i64 {
    match class {
        Classification::Ok => 0,
        Classification::Error => 1,
        Classification::Throttle => 2,
        Classification::Fault => 3,
    }
}

pub(crate) fn class_from_code(code: i64) -> Classification {
    match code {
        1 => Classification::Error,
        2 => Classification::Throttle,
        3 => Classification::Fault,
        _ => Classification::Ok,
    }
}
