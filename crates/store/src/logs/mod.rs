//! The log store: log groups (`access/{api}/{stage}`, `execution/{api}/{stage}`, the gateway's
//! own), each with its retention in days, holding timestamped text events that can be scanned by
//! time range and searched for text.
//!
//! Events are stored in blocks, not rows: the writer groups the events of each log group that
//! arrive within about a second into time-sorted blocks of up to 4,096 events or 1 MiB, each one
//! LZ4-compressed blob in `log_blocks` (`block.rs`). A row per event would cost SQLite a B-tree
//! insert and some 40 bytes of overhead per event and make a million-event scan a million row
//! steps; a block is one insert per few thousand events, compresses JSON access logs about
//! tenfold, and scans at decompression speed. This is how Loki's chunks work, and the block is the
//! unit of retention too.
//!
//! - Writing (`batch.rs`, `write.rs`): producers fill a [`LogBatch`] and hand it to
//!   [`LogWriter::append`], which never blocks; the writer thread turns pending batches into
//!   blocks and creates group rows on first use.
//! - Reading (`scan.rs`, `search.rs`): [`Store::scan_logs`](crate::Store::scan_logs) hands out
//!   events in time order through a callback, without copying messages;
//!   [`Store::search_logs`](crate::Store::search_logs) is a case-insensitive substring search on
//!   top of it.
//! - Retention: per group in days, with a store-wide default; `None` keeps events forever, as
//!   CloudWatch Logs does by default. The writer's sweep deletes whole blocks.

mod batch;
mod block;
mod scan;
mod search;
mod write;

use rusqlite::Connection;

pub use batch::{
    Dropped, LogBatch, LogWriter, MAX_MESSAGE_BYTES, MAX_QUEUED_LOG_BATCHES, MAX_QUEUED_LOG_BYTES,
};
pub use scan::{LogEventRef, LogScan, LogScanStats};
pub use search::LogEvent;

pub(crate) use scan::scan;
pub(crate) use search::search;
pub(crate) use write::{GroupIds, PendingLogs, set_group_retention, sweep, validate_retention};

use crate::StoreError;

/// A log group and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogGroupInfo {
    pub name: String,
    /// The group's own retention; `None` means the store's default applies.
    pub retention_days: Option<u32>,
    /// When the group was created (its first event or retention setting), Unix milliseconds.
    pub created_at_ms: i64,
    pub events: u64,
    /// Compressed bytes of its blocks.
    pub stored_bytes: u64,
    /// Uncompressed bytes of its blocks.
    pub raw_bytes: u64,
    /// The oldest and newest event stored, if any.
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
}

/// Every log group, by name.
pub(crate) fn list_groups(conn: &Connection) -> Result<Vec<LogGroupInfo>, StoreError> {
    let what = "listing log groups";
    let mut stmt = conn
        .prepare_cached(
            "SELECT g.name, g.retention_days, g.created_at, coalesce(sum(b.events), 0),
                    coalesce(sum(length(b.data)), 0), coalesce(sum(b.bytes_raw), 0),
                    min(b.start_ms), max(b.end_ms)
             FROM log_groups g LEFT JOIN log_blocks b ON b.group_id = g.id
             GROUP BY g.id ORDER BY g.name",
        )
        .map_err(StoreError::query(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok(LogGroupInfo {
                name: row.get(0)?,
                retention_days: row.get(1)?,
                created_at_ms: row.get(2)?,
                events: count(row, 3)?,
                stored_bytes: count(row, 4)?,
                raw_bytes: count(row, 5)?,
                first_event_ms: row.get(6)?,
                last_event_ms: row.get(7)?,
            })
        })
        .map_err(StoreError::query(what))?;
    rows.collect::<Result<_, _>>()
        .map_err(StoreError::query(what))
}

fn count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
}
