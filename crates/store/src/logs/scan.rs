//! Reading logs back: the events of some groups in a time range, in time order (oldest or newest
//! first), handed to a callback that may stop the scan at any event.
//!
//! The time range is the index. The blocks of the chosen groups whose span overlaps the range are
//! found from the covering index on `(group_id, end_ms, start_ms)` without touching a blob; blobs
//! are then read and decompressed lazily, one block at a time in the order their events are
//! due, so "the latest 100" reads only the newest block or two. Blocks may overlap in time (two
//! groups, late events), so the scan merges the open blocks on a heap keyed by
//! (timestamp, block id, position): the order is total and the same on every run, and
//! `newest_first` is its exact reverse. While one block's events come before everything else
//! (the common case), they are handed out in a tight loop without heap traffic; otherwise the
//! heap's root is re-keyed in place.
//!
//! A scan holds in memory only its open blocks: those whose spans reach the event being handed
//! out, normally one per group (about 1 MiB of text each at most).
//!
//! The whole scan runs in one read transaction, so it sees one snapshot even while the writer
//! commits or sweeps; a callback that takes long holds that snapshot (and back WAL checkpoints)
//! as long.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::{ControlFlow, Range};

use rusqlite::{Connection, OptionalExtension, params};

use super::block::DecodedBlock;
use crate::StoreError;

/// Which events a scan reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogScan {
    /// Group names, matched exactly, or prefixes ending in `*` (`access/*`, or `*` for every
    /// group). Empty means every group.
    pub groups: Vec<String>,
    /// Inclusive, Unix milliseconds.
    pub start_ms: i64,
    /// Exclusive, Unix milliseconds.
    pub end_ms: i64,
    /// Newest event first (for tails and "latest N" queries) instead of oldest first.
    pub newest_first: bool,
}

impl LogScan {
    /// Every group between `start_ms` (inclusive) and `end_ms` (exclusive), oldest first.
    pub fn all(start_ms: i64, end_ms: i64) -> Self {
        Self {
            groups: Vec::new(),
            start_ms,
            end_ms,
            newest_first: false,
        }
    }

    fn matches(&self, group: &str) -> bool {
        self.groups.is_empty()
            || self
                .groups
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => group.starts_with(prefix),
                    None => group == pattern,
                })
    }
}

/// One event as a scan hands it out, borrowed from the decoded block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEventRef<'a> {
    pub timestamp_ms: i64,
    pub group: &'a str,
    pub message: &'a str,
}

/// What a scan did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogScanStats {
    /// Groups that matched the scan.
    pub groups: u64,
    /// Blocks read and decompressed.
    pub blocks_read: u64,
    /// Compressed bytes read from the database.
    pub bytes_read: u64,
    /// Message bytes decompressed (of whole blocks, also events outside the range).
    pub bytes_decoded: u64,
    /// Events handed to the callback.
    pub events: u64,
    /// Blocks that could not be decoded and were skipped (each is also logged).
    pub corrupt_blocks: u64,
    /// Whether the callback stopped the scan.
    pub stopped: bool,
}

/// A block chosen by the index: its id, group (index into the scan's names) and span.
struct BlockMeta {
    id: i64,
    group: usize,
    start_ms: i64,
    end_ms: i64,
}

/// The merge order. Newest-first scans invert every component (`!x` reverses the order of i64
/// without overflow), so one min-heap serves both directions.
type Key = (i64, i64, i64);

/// An open block: its events still due, from `remaining.start` (oldest first) or from
/// `remaining.end - 1` (newest first).
struct Cursor {
    block_id: i64,
    group: usize,
    decoded: DecodedBlock,
    remaining: Range<usize>,
}

impl Cursor {
    fn next_index(&self, newest_first: bool) -> usize {
        if newest_first {
            self.remaining.end - 1
        } else {
            self.remaining.start
        }
    }

    fn key(&self, newest_first: bool) -> Key {
        let i = self.next_index(newest_first);
        let key = (self.decoded.timestamp(i), self.block_id, i as i64);
        if newest_first { invert(key) } else { key }
    }

    fn advance(&mut self, newest_first: bool) {
        if newest_first {
            self.remaining.end -= 1;
        } else {
            self.remaining.start += 1;
        }
    }
}

fn invert((ts, id, i): Key) -> Key {
    (!ts, !id, !i)
}

/// The smallest key any event of an unopened block can have.
fn first_possible_key(block: &BlockMeta, newest_first: bool) -> Key {
    if newest_first {
        (!block.end_ms, !block.id, i64::MIN)
    } else {
        (block.start_ms, block.id, 0)
    }
}

/// Runs `scan` on `conn`, calling `f` for each event in order until it breaks.
pub(crate) fn scan(
    conn: &Connection,
    scan: &LogScan,
    mut f: impl FnMut(LogEventRef<'_>) -> ControlFlow<()>,
) -> Result<LogScanStats, StoreError> {
    if scan.end_ms < scan.start_ms {
        return Err(StoreError::InvalidQuery(format!(
            "end_ms {} is before start_ms {}",
            scan.end_ms, scan.start_ms
        )));
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(StoreError::query("starting a log scan"))?;
    let mut stats = LogScanStats::default();
    let names = matching_groups(&tx, scan)?;
    stats.groups = names.len() as u64;
    let mut blocks = select_blocks(&tx, scan, &names)?;
    let newest_first = scan.newest_first;
    blocks.sort_by_key(|block| first_possible_key(block, newest_first));
    let mut read_blob = tx
        .prepare_cached("SELECT data FROM log_blocks WHERE id = ?1")
        .map_err(StoreError::query("preparing the log block read"))?;

    let mut cursors: Vec<Cursor> = Vec::new();
    let mut spare: Vec<DecodedBlock> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(Key, usize)>> = BinaryHeap::new();
    let mut free_slots: Vec<usize> = Vec::new();
    let mut unopened = blocks.iter().peekable();
    loop {
        // Open every block that could hold an event due before the earliest open one.
        while let Some(block) = unopened.peek() {
            let due = first_possible_key(block, newest_first);
            if heap.peek().is_some_and(|Reverse((key, _))| due > *key) {
                break;
            }
            let mut decoded = spare.pop().unwrap_or_default();
            if read_block(&mut read_blob, block, &names, &mut decoded, &mut stats)? {
                let remaining = decoded.range(scan.start_ms, scan.end_ms);
                if !remaining.is_empty() {
                    let cursor = Cursor {
                        block_id: block.id,
                        group: block.group,
                        decoded,
                        remaining,
                    };
                    let key = cursor.key(newest_first);
                    let slot = match free_slots.pop() {
                        Some(slot) => {
                            cursors[slot] = cursor;
                            slot
                        }
                        None => {
                            cursors.push(cursor);
                            cursors.len() - 1
                        }
                    };
                    heap.push(Reverse((key, slot)));
                } else {
                    spare.push(decoded);
                }
            } else {
                spare.push(decoded);
            }
            unopened.next();
        }
        // The earliest open cursor's events come first until the next open or unopened block's
        // could: the second-smallest key of the heap is one of the root's two children.
        let (slot, bound) = {
            let entries = heap.as_slice();
            let Some(Reverse((_, slot))) = entries.first() else {
                break;
            };
            let bound = entries[1..entries.len().min(3)]
                .iter()
                .map(|Reverse((key, _))| *key)
                .chain(
                    unopened
                        .peek()
                        .map(|block| first_possible_key(block, newest_first)),
                )
                .min();
            (*slot, bound)
        };
        let cursor = &mut cursors[slot];
        let group = names[cursor.group].1.as_str();
        loop {
            let i = cursor.next_index(newest_first);
            stats.events += 1;
            let event = LogEventRef {
                timestamp_ms: cursor.decoded.timestamp(i),
                group,
                message: cursor.decoded.message(i),
            };
            if f(event).is_break() {
                stats.stopped = true;
                return Ok(stats);
            }
            cursor.advance(newest_first);
            if cursor.remaining.is_empty() {
                spare.push(std::mem::take(&mut cursor.decoded));
                free_slots.push(slot);
                heap.pop();
                break;
            }
            let key = cursor.key(newest_first);
            if bound.is_some_and(|bound| key > bound) {
                // Re-key the root in place: one sift instead of a pop and a push.
                if let Some(mut root) = heap.peek_mut() {
                    *root = Reverse((key, slot));
                }
                break;
            }
        }
    }
    Ok(stats)
}

/// The names of the groups `scan` reads, sorted; a block's `group` indexes into them.
fn matching_groups(conn: &Connection, scan: &LogScan) -> Result<Vec<(i64, String)>, StoreError> {
    let what = "listing log groups";
    let mut stmt = conn
        .prepare_cached("SELECT id, name FROM log_groups ORDER BY name")
        .map_err(StoreError::query(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(StoreError::query(what))?;
    let mut groups = Vec::new();
    for row in rows {
        let (id, name) = row.map_err(StoreError::query(what))?;
        if scan.matches(&name) {
            groups.push((id, name));
        }
    }
    Ok(groups)
}

fn select_blocks(
    conn: &Connection,
    scan: &LogScan,
    groups: &[(i64, String)],
) -> Result<Vec<BlockMeta>, StoreError> {
    let what = "choosing log blocks";
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, start_ms, end_ms FROM log_blocks
             WHERE group_id = ?1 AND end_ms >= ?2 AND start_ms < ?3",
        )
        .map_err(StoreError::query(what))?;
    let mut blocks = Vec::new();
    for (group, (id, _)) in groups.iter().enumerate() {
        let rows = stmt
            .query_map(params![id, scan.start_ms, scan.end_ms], |row| {
                Ok(BlockMeta {
                    id: row.get(0)?,
                    group,
                    start_ms: row.get(1)?,
                    end_ms: row.get(2)?,
                })
            })
            .map_err(StoreError::query(what))?;
        for block in rows {
            blocks.push(block.map_err(StoreError::query(what))?);
        }
    }
    Ok(blocks)
}

/// Reads and decodes one block; `false` if it is damaged (logged, counted and skipped).
fn read_block(
    stmt: &mut rusqlite::CachedStatement<'_>,
    block: &BlockMeta,
    names: &[(i64, String)],
    decoded: &mut DecodedBlock,
    stats: &mut LogScanStats,
) -> Result<bool, StoreError> {
    let outcome = stmt
        .query_row(params![block.id], |row| {
            let data = row.get_ref(0)?.as_blob()?;
            Ok((data.len(), decoded.decode_from(data)))
        })
        .optional()
        .map_err(StoreError::query("reading a log block"))?;
    // A block deleted since it was chosen cannot happen inside the snapshot; skip it if it does.
    let Some((len, result)) = outcome else {
        return Ok(false);
    };
    stats.blocks_read += 1;
    stats.bytes_read += len as u64;
    match result {
        Ok(()) => {
            stats.bytes_decoded += decoded.text_len() as u64;
            Ok(true)
        }
        Err(error) => {
            let group = names[block.group].1.as_str();
            tracing::warn!(%error, group, block = block.id, "skipping a damaged log block");
            stats.corrupt_blocks += 1;
            Ok(false)
        }
    }
}
