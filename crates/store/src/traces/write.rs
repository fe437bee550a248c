//! The writer thread's side of traces: the pending batches, how they become blocks, and the
//! retention sweep, which also keeps the trace index (`index.rs`) up to date.
//!
//! Trace entries linger in the writer for up to [`TRACE_LINGER`] (or until [`MAX_PENDING_SPANS`]
//! accumulate, or a flush asks), across the writer's 100 ms metric batches, like log events. At
//! the gateway's default sampling a commit per recorder poll would hold one request or two, and
//! the transaction, block row and WAL pages would cost more than the request's trace; lingering
//! makes one block of a second's requests, sorted by start and cut at
//! [`MAX_BLOCK_ENTRIES`](super::block::MAX_BLOCK_ENTRIES) entries or about
//! [`MAX_BLOCK_RAW_BYTES`](super::block::MAX_BLOCK_RAW_BYTES). A crash loses up to that second of
//! traces; a clean close or a flush writes them.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gatehouse_telemetry::spans::{Span, TracedExchange};
use rusqlite::{Transaction, params};

use super::block::{BlockBuilder, DecodedBlock, EncodedBlock, Entry, decode_entry};
use super::index::{self, keys_blob};
use crate::StoreError;
use crate::writer::Counters;

/// How long trace entries may wait in the writer for more of their kind.
pub(crate) const TRACE_LINGER: Duration = Duration::from_secs(1);
const DAY_NANOS: i64 = 24 * 60 * 60 * 1_000_000_000;
/// Retention is at most this many days (a hundred years).
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Pending entries are written once they hold this many spans, without waiting for the linger.
const MAX_PENDING_SPANS: u64 = 20_000;

/// What the recorder or the receiver hands the writer: traced exchanges or spans, and the spans
/// they stand for (counted once, on the producer's thread).
pub(crate) struct TraceBatch {
    pub(crate) entries: Entries,
    pub(crate) spans: u64,
}

pub(crate) enum Entries {
    Exchanges(Vec<TracedExchange>),
    Spans(Vec<Span>),
}

/// The batches taken from the queue and not yet written.
#[derive(Default)]
pub(crate) struct PendingTraces {
    batches: Vec<Entries>,
    span_count: u64,
    since: Option<Instant>,
}

/// What writing the pending entries did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TracesWritten {
    pub(crate) spans: u64,
    /// Spans of entries that could not be encoded, dropped.
    pub(crate) skipped: u64,
    pub(crate) blocks: u64,
}

impl PendingTraces {
    /// Takes a batch off the queue, releasing its share of the queue's bounds.
    pub(crate) fn add(&mut self, batch: TraceBatch, counters: &Counters) {
        counters
            .spans_queued
            .fetch_sub(batch.spans, Ordering::Relaxed);
        counters.span_batches_queued.fetch_sub(1, Ordering::Relaxed);
        self.span_count += batch.spans;
        self.since.get_or_insert_with(Instant::now);
        self.batches.push(batch.entries);
    }

    /// The spans the pending entries stand for.
    pub(crate) fn spans(&self) -> u64 {
        self.span_count
    }

    /// Whether enough has accumulated to write without waiting for the linger to pass.
    pub(crate) fn is_full(&self) -> bool {
        self.span_count >= MAX_PENDING_SPANS
    }

    /// When the pending entries must be written at the latest.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + TRACE_LINGER)
    }

    /// Whether the pending entries should be written now.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.is_full() || self.deadline().is_some_and(|deadline| deadline <= now)
    }

    /// Writes the pending entries in `tx`, sorted by start (stable, so entries of one nanosecond
    /// keep their arrival order) and cut into blocks.
    pub(crate) fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<TracesWritten> {
        if self.batches.is_empty() {
            return Ok(TracesWritten::default());
        }
        let mut order: Vec<(u64, Entry<'_>)> = Vec::new();
        for batch in &self.batches {
            match batch {
                Entries::Exchanges(exchanges) => {
                    order.extend(
                        exchanges
                            .iter()
                            .map(|t| (t.start_unix_nanos, Entry::Exchange(t))),
                    );
                }
                Entries::Spans(spans) => {
                    order.extend(spans.iter().map(|s| (s.start_unix_nanos, Entry::Span(s))));
                }
            }
        }
        order.sort_by_key(|&(start, _)| start);
        BUILDER.with_borrow_mut(|builder| {
            builder.reserve(order.len());
            write_blocks(tx, builder, order)
        })
    }
}

thread_local! {
    /// The writer thread's block builder: its buffers (a block's worth) are allocated, and the
    /// compressor's output zeroed, once rather than at every commit.
    static BUILDER: RefCell<BlockBuilder> = RefCell::default();
}

/// Cuts `order`, sorted by start, into blocks and inserts them.
fn write_blocks(
    tx: &Transaction<'_>,
    builder: &mut BlockBuilder,
    order: Vec<(u64, Entry<'_>)>,
) -> rusqlite::Result<TracesWritten> {
    // A failed transaction may have left entries of its last block.
    builder.reset();
    let mut written = TracesWritten::default();
    for (_, entry) in order {
        if builder.push(entry).is_err() {
            tracing::warn!("a trace entry could not be encoded and was dropped");
            written.skipped += entry.spans() as u64;
            continue;
        }
        if builder.is_full() {
            written.spans += insert_block(tx, &builder.finish())?;
            written.blocks += 1;
        }
    }
    if !builder.is_empty() {
        written.spans += insert_block(tx, &builder.finish())?;
        written.blocks += 1;
    }
    Ok(written)
}

impl TracesWritten {
    /// Adds what was written to the writer's counters.
    pub(crate) fn count(&self, counters: &Counters) {
        counters
            .spans_written
            .fetch_add(self.spans, Ordering::Relaxed);
        counters
            .spans_dropped
            .fetch_add(self.skipped, Ordering::Relaxed);
        counters
            .trace_blocks_written
            .fetch_add(self.blocks, Ordering::Relaxed);
    }
}

/// Inserts a block with its trace keys; returns the spans it holds.
fn insert_block(tx: &Transaction<'_>, block: &EncodedBlock) -> rusqlite::Result<u64> {
    let s = &block.summary;
    tx.prepare_cached(
        "INSERT INTO trace_blocks (start_min, start_max, entries, spans, roots, root_duration_max,
                                   root_classes, bytes_raw, keys, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        nanos(s.start_min),
        nanos(s.start_max),
        nanos(s.entries),
        nanos(s.spans),
        nanos(s.roots),
        nanos(s.root_duration_max),
        s.root_classes,
        block.bytes_raw as i64,
        keys_blob(&block.keys),
        block.data,
    ])?;
    Ok(s.spans)
}

fn nanos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Deletes the entries (traced exchanges, spans) that started more than `days` before `now_ns`,
/// then brings the trace index up to date (`index.rs`). Returns the entries deleted.
///
/// Whole blocks go when every span in them started before the cutoff; a block that straddles it
/// (normally the one written around the cutoff instant, or one holding a long WebSocket
/// connection beside short requests) is rewritten without its expired entries.
pub(crate) fn sweep(tx: &Transaction<'_>, days: u32, now_ns: i64) -> rusqlite::Result<usize> {
    let cutoff = now_ns.saturating_sub(i64::from(days).saturating_mul(DAY_NANOS));
    let expired: i64 = tx
        .prepare_cached("SELECT coalesce(sum(entries), 0) FROM trace_blocks WHERE start_max < ?1")?
        .query_row(params![cutoff], |row| row.get(0))?;
    tx.prepare_cached("DELETE FROM trace_blocks WHERE start_max < ?1")?
        .execute(params![cutoff])?;
    let straddling: Vec<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT id, data FROM trace_blocks WHERE start_min < ?1")?
        .query_map(params![cutoff], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut deleted = usize::try_from(expired).unwrap_or(0);
    let mut decoded = DecodedBlock::default();
    for (id, data) in straddling {
        deleted += rewrite_without_expired(tx, id, &data, cutoff, &mut decoded)?;
    }
    index::sweep_runs(tx)?;
    index::compact(tx)?;
    Ok(deleted)
}

/// Rewrites block `id` with only its entries that started at or after `cutoff` (deleting it if
/// none did, or if it cannot be read). Returns the entries dropped.
fn rewrite_without_expired(
    tx: &Transaction<'_>,
    id: i64,
    data: &[u8],
    cutoff: i64,
    decoded: &mut DecodedBlock,
) -> rusqlite::Result<usize> {
    let cutoff = u64::try_from(cutoff).unwrap_or(0);
    let kept: Vec<_> = match decoded.decode_from(data) {
        Ok(()) => decoded
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.start >= cutoff)
            .filter_map(|(i, entry)| decode_entry(entry.kind, decoded.payload(i)))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, block = id, "an unreadable trace block was deleted");
            Vec::new()
        }
    };
    let dropped = decoded.entries().len().saturating_sub(kept.len());
    let mut builder = BlockBuilder::default();
    for entry in &kept {
        // Entries decoded from one block encode again; a failure leaves the entry out.
        let _ = builder.push(entry.as_entry());
    }
    if builder.is_empty() {
        tx.prepare_cached("DELETE FROM trace_blocks WHERE id = ?1")?
            .execute(params![id])?;
        return Ok(dropped);
    }
    let block = builder.finish();
    let s = &block.summary;
    tx.prepare_cached(
        "UPDATE trace_blocks SET start_min = ?2, start_max = ?3, entries = ?4, spans = ?5,
                roots = ?6, root_duration_max = ?7, root_classes = ?8, bytes_raw = ?9, keys = ?10,
                data = ?11
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        nanos(s.start_min),
        nanos(s.start_max),
        nanos(s.entries),
        nanos(s.spans),
        nanos(s.roots),
        nanos(s.root_duration_max),
        s.root_classes,
        block.bytes_raw as i64,
        keys_blob(&block.keys),
        block.data,
    ])?;
    Ok(dropped)
}

/// Checks a retention setting before it goes to the writer.
pub(crate) fn validate_retention(days: u32) -> Result<(), StoreError> {
    if days == 0 || days > MAX_RETENTION_DAYS {
        return Err(StoreError::InvalidQuery(format!(
            "trace retention of {days} days; it must be 1 to {MAX_RETENTION_DAYS} days"
        )));
    }
    Ok(())
}
