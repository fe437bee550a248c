//! Finding a trace's blocks by its id, without an index row per trace.
//!
//! An SQLite row per trace cost the writer about 3,700 instructions per sampled request, most of
//! it in placing each row at a random spot of a b-tree. Instead each block row carries the sorted
//! keys of its traces (`trace_blocks.keys`, 8 bytes a trace), and the writer's sweep, every five
//! minutes, folds the keys of the blocks written since its last pass into one *run*: the
//! `(key, block)` pairs of those blocks, sorted, cut into [`PARTS`] rows by the key's top bits
//! (`trace_key_runs`). Finding a trace reads its part of every run (one row per five minutes
//! kept, a binary search each) and the key lists of the blocks no run covers yet (at most five
//! minutes of blocks). Sorting a run's keys costs the writer a few hundred instructions per
//! trace, once.
//!
//! Keys are the last 8 bytes of the trace id (W3C trace ids keep them random; X-Ray's put the
//! time in the first 4). Traces may share a key; reads compare whole ids. A run can name blocks
//! that were since deleted or rewritten without the trace; reads skip them, and the sweep deletes
//! a run once every block it names is gone.

use rusqlite::{Connection, Transaction, params};

/// How many rows a run is cut into, by the top bits of the key.
pub(crate) const PARTS: u64 = 64;
/// The bytes of one `(key, block)` pair in a run.
const PAIR_BYTES: usize = 16;

/// The index key of a trace.
pub(crate) fn trace_key(trace_id: &[u8; 16]) -> i64 {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&trace_id[8..]);
    i64::from_be_bytes(tail)
}

fn part_of(key: i64) -> i64 {
    ((key as u64) >> (64 - PARTS.trailing_zeros())) as i64
}

/// A block's sorted, distinct keys as its `keys` column: 8 bytes each, big-endian.
pub(crate) fn keys_blob(keys: &[i64]) -> Vec<u8> {
    debug_assert!(keys.is_sorted());
    keys.iter().flat_map(|key| key.to_be_bytes()).collect()
}

fn key_at(blob: &[u8], i: usize, width: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&blob[i * width..i * width + 8]);
    i64::from_be_bytes(bytes)
}

/// Whether a block's `keys` column holds `key` (a binary search).
fn block_has(blob: &[u8], key: i64) -> bool {
    let n = blob.len() / 8;
    let first = partition_point(n, |i| key_at(blob, i, 8) < key);
    first < n && key_at(blob, first, 8) == key
}

/// The blocks a run's part names for `key`.
fn run_blocks(blob: &[u8], key: i64, out: &mut Vec<i64>) {
    let n = blob.len() / PAIR_BYTES;
    let mut i = partition_point(n, |i| key_at(blob, i, PAIR_BYTES) < key);
    while i < n && key_at(blob, i, PAIR_BYTES) == key {
        let mut block = [0u8; 8];
        block.copy_from_slice(&blob[i * PAIR_BYTES + 8..(i + 1) * PAIR_BYTES]);
        out.push(i64::from_be_bytes(block));
        i += 1;
    }
}

/// The first `i` in `0..n` for which `before(i)` is false, `before` being true then false.
fn partition_point(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The last block a run covers; blocks after it are found by their own key lists.
fn compacted_through(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(last_block), 0) FROM trace_key_runs WHERE part = 0")?
        .query_row([], |row| row.get(0))
}

/// The blocks that may hold entries of `trace_id`, in id order, without duplicates.
pub(crate) fn blocks_of(conn: &Connection, trace_id: &[u8; 16]) -> rusqlite::Result<Vec<i64>> {
    let key = trace_key(trace_id);
    let mut blocks = Vec::new();
    let mut runs = conn.prepare_cached("SELECT keys FROM trace_key_runs WHERE part = ?1")?;
    let mut rows = runs.query(params![part_of(key)])?;
    while let Some(row) = rows.next()? {
        run_blocks(row.get_ref(0)?.as_blob()?, key, &mut blocks);
    }
    let through = compacted_through(conn)?;
    let mut recent = conn.prepare_cached("SELECT id, keys FROM trace_blocks WHERE id > ?1")?;
    let mut rows = recent.query(params![through])?;
    while let Some(row) = rows.next()? {
        if block_has(row.get_ref(1)?.as_blob()?, key) {
            blocks.push(row.get(0)?);
        }
    }
    blocks.sort_unstable();
    blocks.dedup();
    Ok(blocks)
}

/// Folds the keys of the blocks no run covers yet into a new run. Returns the traces indexed.
pub(crate) fn compact(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let through = compacted_through(tx)?;
    let mut pairs: Vec<(i64, i64)> = Vec::new();
    let mut last_block = through;
    {
        let mut recent =
            tx.prepare_cached("SELECT id, keys FROM trace_blocks WHERE id > ?1 ORDER BY id")?;
        let mut rows = recent.query(params![through])?;
        while let Some(row) = rows.next()? {
            let block: i64 = row.get(0)?;
            let blob = row.get_ref(1)?.as_blob()?;
            pairs.extend((0..blob.len() / 8).map(|i| (key_at(blob, i, 8), block)));
            last_block = block;
        }
    }
    if last_block == through {
        return Ok(0);
    }
    pairs.sort_unstable_by_key(|&(key, block)| (key as u64, block));
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO trace_key_runs (part, last_block, keys) VALUES (?1, ?2, ?3)",
    )?;
    let mut rest = &pairs[..];
    // Every part gets a row, empty or not, so that part 0 tells how far runs reach.
    for part in 0..PARTS as i64 {
        let len = rest.partition_point(|&(key, _)| part_of(key) == part);
        let (this, tail) = rest.split_at(len);
        let blob: Vec<u8> = this
            .iter()
            .flat_map(|(key, block)| key.to_be_bytes().into_iter().chain(block.to_be_bytes()))
            .collect();
        insert.execute(params![part, last_block, blob])?;
        rest = tail;
    }
    debug_assert!(rest.is_empty());
    Ok(pairs.len())
}

/// Deletes the runs whose blocks are all gone.
pub(crate) fn sweep_runs(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let oldest: Option<i64> = tx
        .prepare_cached("SELECT min(id) FROM trace_blocks")?
        .query_row([], |row| row.get(0))?;
    let mut delete =
        tx.prepare_cached("DELETE FROM trace_key_runs WHERE part = ?1 AND last_block < ?2")?;
    let mut deleted = 0;
    for part in 0..PARTS as i64 {
        deleted += delete.execute(params![part, oldest.unwrap_or(i64::MAX)])?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_keys_order() {
        let keys = [i64::MIN, -1, 0, 1, i64::MAX];
        let parts: Vec<i64> = keys.iter().map(|&k| part_of(k)).collect();
        // Unsigned order: 0, 1 and MAX before MIN and -1.
        assert_eq!(parts, [32, 63, 0, 0, 31]);
        let mut sorted = keys.to_vec();
        sorted.sort_unstable_by_key(|&k| k as u64);
        assert!(sorted.windows(2).all(|w| part_of(w[0]) <= part_of(w[1])));
    }

    #[test]
    fn lookups_find_every_block_of_a_key_and_no_other() {
        let pairs: Vec<(i64, i64)> = vec![(-5, 1), (3, 2), (3, 7), (9, 4)];
        let blob: Vec<u8> = pairs
            .iter()
            .flat_map(|(k, b)| k.to_be_bytes().into_iter().chain(b.to_be_bytes()))
            .collect();
        let found = |key| {
            let mut out = Vec::new();
            run_blocks(&blob, key, &mut out);
            out
        };
        assert_eq!(found(3), [2, 7]);
        assert_eq!(found(-5), [1]);
        assert!(found(4).is_empty());
        let keys = keys_blob(&[-5, 3, 9]);
        assert!(block_has(&keys, 9) && block_has(&keys, -5));
        assert!(!block_has(&keys, 4) && !block_has(&keys, 10));
    }
}
