//! The trace store: the gateway's traced requests and the spans services send, in compressed
//! blocks (migration 6), found by trace id through the keys each block carries.
//!
//! The gateway's own requests are not stored as spans: the recorder hands over
//! [`TracedExchange`]s (the exchange's span-relevant facts, about 190 bytes encoded), and their
//! spans are built when they are read. Spans services send to the OTLP receiver are stored as
//! they came, in the same blocks. Storing a sampled request thus costs an encode and its share of
//! an LZ4 block and of one block row, with no SQL row of its own, instead of a row per span with
//! four indexes (`bench/RESULTS.md`).
//!
//! - Blocks (`block.rs`): the entries of one writer commit, sorted by start, in one LZ4 blob
//!   with a header per entry (start, kind, span count).
//! - The trace index (`index.rs`): each block's sorted trace keys, folded every five minutes into
//!   sorted runs, which merge into hourly and daily ones.
//! - Writing (`write.rs`): the trace recorder hands batches to [`SpanWriter::append_exchanges`]
//!   and the receiver to [`SpanWriter::append`]; neither blocks. Traces take at most
//!   [`MAX_QUEUED_SPAN_BATCHES`] slots of the writer's queue and [`MAX_QUEUED_SPANS`] spans, so a
//!   flood of traces drops them (counted), never metrics. Entries linger up to a second.
//! - Reading (`read.rs`): [`Store::trace`](crate::Store::trace),
//!   [`Store::search_traces`](crate::Store::search_traces), and
//!   [`Store::spans_in_window`](crate::Store::spans_in_window) for the service graph.
//! - Retention: [`DEFAULT_TRACE_RETENTION_DAYS`] (X-Ray keeps traces 30 days; a gateway's own store
//!   is smaller), changed with [`Store::set_trace_retention`](crate::Store::set_trace_retention);
//!   the writer's sweep deletes what started before the cutoff, whole blocks where it can.

mod block;
mod index;
mod read;
mod write;

use std::sync::atomic::Ordering;

use gatehouse_telemetry::spans::{Classification, Span, TracedExchange};

use crate::writer::{QUEUE_CAPACITY, WriteOp, WriterQueue};

pub(crate) use read::{in_window, search, trace};
use write::Entries;
pub(crate) use write::{PendingTraces, TraceBatch, sweep, validate_retention};

/// How long traces are kept unless the binary says otherwise.
pub const DEFAULT_TRACE_RETENTION_DAYS: u32 = 7;
/// At most this many trace batches wait in the writer's queue: a quarter of it.
pub const MAX_QUEUED_SPAN_BATCHES: u64 = QUEUE_CAPACITY as u64 / 4;
/// At most this many spans (counting those a traced exchange yields) wait in the writer's queue,
/// which bounds their memory.
pub const MAX_QUEUED_SPANS: u64 = 64 * 1024;
/// The most spans one service graph reads: about 100 MB of decoded spans at worst.
pub const MAX_GRAPH_SPANS: usize = 100_000;
/// The most summaries one search returns.
pub const MAX_SEARCH_LIMIT: usize = 1000;

/// What a trace search selects: the requests (the gateway's server spans) that started in
/// `[start, end)` and match every filter given. Times are Unix nanoseconds.
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

/// A batch the queue had no room for (or the store was closed); its spans are counted in
/// [`StoreStats::spans_dropped`](crate::StoreStats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{spans} spans dropped: the store's queue is full or the store is closed")]
pub struct SpansDropped {
    pub spans: usize,
}

/// A cheap, cloneable handle for appending traces to the store's writer.
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

    /// Offers the traced exchanges of the gateway's sampled requests to the writer. Never
    /// blocks: when traces already fill their share of the queue, or the store is closed, the
    /// batch is dropped and the spans it stands for are counted.
    pub fn append_exchanges(&self, traced: Vec<TracedExchange>) -> Result<(), SpansDropped> {
        let spans = traced.iter().map(TracedExchange::span_count).sum::<usize>();
        self.offer(Entries::Exchanges(traced), spans)
    }

    /// Offers spans (those services send) to the writer; like
    /// [`SpanWriter::append_exchanges`], it never blocks.
    pub fn append(&self, spans: Vec<Span>) -> Result<(), SpansDropped> {
        let count = spans.len();
        self.offer(Entries::Spans(spans), count)
    }

    fn offer(&self, entries: Entries, spans: usize) -> Result<(), SpansDropped> {
        if spans == 0 {
            return Ok(());
        }
        let count = spans as u64;
        let counters = self.queue.counters();
        let queued_spans = counters.spans_queued.fetch_add(count, Ordering::Relaxed);
        let queued_batches = counters.span_batches_queued.fetch_add(1, Ordering::Relaxed);
        let room = queued_batches < MAX_QUEUED_SPAN_BATCHES
            && (queued_spans == 0 || queued_spans + count <= MAX_QUEUED_SPANS);
        let batch = TraceBatch {
            entries,
            spans: count,
        };
        if room && self.queue.offer(WriteOp::Traces(batch)) {
            return Ok(());
        }
        counters.spans_queued.fetch_sub(count, Ordering::Relaxed);
        counters.span_batches_queued.fetch_sub(1, Ordering::Relaxed);
        counters.spans_dropped.fetch_add(count, Ordering::Relaxed);
        Err(SpansDropped { spans })
    }
}

/// The classification as stored: its order is the severity. A block's `root_classes` has bit
/// `1 << class_code` for each classification among its requests.
pub(crate) fn class_code(class: Classification) -> u8 {
    match class {
        Classification::Ok => 0,
        Classification::Error => 1,
        Classification::Throttle => 2,
        Classification::Fault => 3,
    }
}
