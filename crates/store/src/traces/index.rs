//! Finding a trace's blocks by its id, without an index row per trace.
//!
//! An SQLite row per trace cost the writer about 3,700 instructions per sampled request, most of
//! it in placing each row at a random spot of a b-tree. Instead each block row carries the sorted
//! keys of its traces (`trace_blocks.keys`, 8 bytes a trace), and the writer's sweep, every five
//! minutes, folds the keys of the blocks written since its last pass into a *run*: their
//! `(key, block)` pairs, sorted, cut into parts of about [`PAIRS_PER_PART`] pairs by the key's
//! top bits (`trace_runs`, `trace_run_parts`). Runs are merged as they accumulate, like an LSM
//! tree's levels: twelve five-minute runs into an hour's, twenty-four of those into a day's, so a
//! week of traces is at most about 42 runs. Finding a trace reads one part of each run (a few KB,
//! a binary search) and the key lists of the blocks no run covers yet (at most five minutes of
//! blocks). Sorting and merging cost the writer a few hundred instructions per trace.
//!
//! Keys are the last 8 bytes of the trace id (W3C trace ids keep them random; X-Ray's put the
//! time in the first 4), ordered as unsigned numbers. Traces may share a key; reads compare whole
//! ids. A run can name blocks that were since deleted or rewritten without the trace; reads skip
//! them, merges drop the pairs of deleted blocks, and the sweep deletes a run once every block it
//! names is gone.

use rusqlite::{Connection, Transaction, params};

/// About how many pairs a run's part holds: the size of one lookup's read per run.
pub(crate) const PAIRS_PER_PART: usize = 256;
/// How many runs of a level are merged into one of the next: five minutes → an hour → a day.
const FANOUT: [usize; 2] = [12, 24];
/// The bytes of one `(key, block)` pair in a part.
const PAIR_BYTES: usize = 16;

/// The index key of a trace.
pub(crate) fn trace_key(trace_id: &[u8; 16]) -> u64 {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&trace_id[8..]);
    u64::from_be_bytes(tail)
}

/// The part of a run of `parts` parts (a power of two) that holds `key`.
fn part_of(key: u64, parts: u64) -> u64 {
    debug_assert!(parts.is_power_of_two());
    match parts.trailing_zeros() {
        0 => 0,
        bits => key >> (64 - bits),
    }
}

/// How many parts a run of `pairs` pairs is cut into.
fn parts_for(pairs: usize) -> u64 {
    (pairs.div_ceil(PAIRS_PER_PART).max(1) as u64)
        .next_power_of_two()
        .min(1 << 16)
}

/// A block's sorted, distinct keys as its `keys` column: 8 bytes each, big-endian.
pub(crate) fn keys_blob(keys: &[u64]) -> Vec<u8> {
    debug_assert!(keys.is_sorted());
    keys.iter().flat_map(|key| key.to_be_bytes()).collect()
}

fn u64_at(blob: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&blob[at..at + 8]);
    u64::from_be_bytes(bytes)
}

/// Whether a block's `keys` column holds `key` (a binary search).
fn block_has(blob: &[u8], key: u64) -> bool {
    let n = blob.len() / 8;
    let first = partition_point(n, |i| u64_at(blob, i * 8) < key);
    first < n && u64_at(blob, first * 8) == key
}

/// Adds the blocks a run's part names for `key` to `out`.
fn part_blocks(blob: &[u8], key: u64, out: &mut Vec<i64>) {
    let n = blob.len() / PAIR_BYTES;
    let mut i = partition_point(n, |i| u64_at(blob, i * PAIR_BYTES) < key);
    while i < n && u64_at(blob, i * PAIR_BYTES) == key {
        out.push(u64_at(blob, i * PAIR_BYTES + 8) as i64);
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
fn indexed_through(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(last_block), 0) FROM trace_runs")?
        .query_row([], |row| row.get(0))
}

/// The blocks that may hold entries of `trace_id`, in id order, without duplicates.
pub(crate) fn blocks_of(conn: &Connection, trace_id: &[u8; 16]) -> rusqlite::Result<Vec<i64>> {
    let key = trace_key(trace_id);
    let mut blocks = Vec::new();
    let runs: Vec<(i64, u64)> = conn
        .prepare_cached("SELECT id, parts FROM trace_runs")?
        .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
        .collect::<Result<_, _>>()?;
    let mut part =
        conn.prepare_cached("SELECT pairs FROM trace_run_parts WHERE run = ?1 AND part = ?2")?;
    for (run, parts) in runs {
        let mut rows = part.query(params![run, part_of(key, parts) as i64])?;
        if let Some(row) = rows.next()? {
            part_blocks(row.get_ref(0)?.as_blob()?, key, &mut blocks);
        }
    }
    let through = indexed_through(conn)?;
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

/// Folds the keys of the blocks no run covers yet into a new run, then merges runs that have
/// accumulated. Returns the pairs written.
pub(crate) fn compact(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let through = indexed_through(tx)?;
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    let mut last_block = through;
    {
        let mut recent =
            tx.prepare_cached("SELECT id, keys FROM trace_blocks WHERE id > ?1 ORDER BY id")?;
        let mut rows = recent.query(params![through])?;
        while let Some(row) = rows.next()? {
            let block: i64 = row.get(0)?;
            let blob = row.get_ref(1)?.as_blob()?;
            pairs.extend((0..blob.len() / 8).map(|i| (u64_at(blob, i * 8), block as u64)));
            last_block = block;
        }
    }
    if last_block == through {
        return Ok(0);
    }
    let mut written = pairs.len();
    write_run(tx, 0, through + 1, last_block, pairs)?;
    for (level, fanout) in FANOUT.into_iter().enumerate() {
        written += merge(tx, level as i64, fanout)?;
    }
    Ok(written)
}

/// Writes a run of `level` covering blocks `first..=last`.
fn write_run(
    tx: &Transaction<'_>,
    level: i64,
    first: i64,
    last: i64,
    mut pairs: Vec<(u64, u64)>,
) -> rusqlite::Result<()> {
    pairs.sort_unstable();
    let parts = parts_for(pairs.len());
    tx.prepare_cached(
        "INSERT INTO trace_runs (level, first_block, last_block, parts) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![level, first, last, parts as i64])?;
    let run = tx.last_insert_rowid();
    let mut insert =
        tx.prepare_cached("INSERT INTO trace_run_parts (run, part, pairs) VALUES (?1, ?2, ?3)")?;
    let mut rest = &pairs[..];
    while let Some(&(key, _)) = rest.first() {
        let part = part_of(key, parts);
        let len = rest.partition_point(|&(key, _)| part_of(key, parts) == part);
        let (this, tail) = rest.split_at(len);
        let blob: Vec<u8> = this
            .iter()
            .flat_map(|(key, block)| key.to_be_bytes().into_iter().chain(block.to_be_bytes()))
            .collect();
        insert.execute(params![run, part as i64, blob])?;
        rest = tail;
    }
    Ok(())
}

/// Merges the oldest `fanout` runs of `level` into one of the next level when there are that
/// many, leaving out the pairs of blocks that are gone. Returns the pairs written.
fn merge(tx: &Transaction<'_>, level: i64, fanout: usize) -> rusqlite::Result<usize> {
    let runs: Vec<(i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT id, first_block, last_block FROM trace_runs WHERE level = ?1 ORDER BY id
             LIMIT ?2",
        )?
        .query_map(params![level, fanout as i64], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    if runs.len() < fanout {
        return Ok(0);
    }
    let oldest_block: i64 = tx
        .prepare_cached("SELECT coalesce(min(id), 0) FROM trace_blocks")?
        .query_row([], |row| row.get(0))?;
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for &(run, _, _) in &runs {
        let mut parts = tx.prepare_cached("SELECT pairs FROM trace_run_parts WHERE run = ?1")?;
        let mut rows = parts.query(params![run])?;
        while let Some(row) = rows.next()? {
            let blob = row.get_ref(0)?.as_blob()?;
            pairs.extend(
                (0..blob.len() / PAIR_BYTES)
                    .map(|i| {
                        (
                            u64_at(blob, i * PAIR_BYTES),
                            u64_at(blob, i * PAIR_BYTES + 8),
                        )
                    })
                    .filter(|&(_, block)| block as i64 >= oldest_block),
            );
        }
        delete_run(tx, run)?;
    }
    let (first, last) = (runs[0].1, runs[runs.len() - 1].2);
    let written = pairs.len();
    write_run(tx, level + 1, first, last, pairs)?;
    Ok(written)
}

fn delete_run(tx: &Transaction<'_>, run: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM trace_run_parts WHERE run = ?1")?
        .execute(params![run])?;
    tx.prepare_cached("DELETE FROM trace_runs WHERE id = ?1")?
        .execute(params![run])?;
    Ok(())
}

/// Deletes the runs whose blocks are all gone. Returns the runs deleted.
pub(crate) fn sweep_runs(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let oldest: Option<i64> = tx
        .prepare_cached("SELECT min(id) FROM trace_blocks")?
        .query_row([], |row| row.get(0))?;
    let gone: Vec<i64> = tx
        .prepare_cached("SELECT id FROM trace_runs WHERE last_block < ?1")?
        .query_map(params![oldest.unwrap_or(i64::MAX)], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for &run in &gone {
        delete_run(tx, run)?;
    }
    Ok(gone.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_keys_order_and_grow_with_the_run() {
        let keys = [0, 1, u64::MAX / 2, u64::MAX / 2 + 1, u64::MAX];
        assert_eq!(keys.map(|k| part_of(k, 64)), [0, 0, 31, 32, 63]);
        assert_eq!(keys.map(|k| part_of(k, 1)), [0; 5]);
        assert_eq!([0, 1, 256, 257, 10_000].map(parts_for), [1, 1, 1, 2, 64]);
        assert_eq!(parts_for(usize::MAX / 2), 1 << 16);
    }

    #[test]
    fn lookups_find_every_block_of_a_key_and_no_other() {
        let pairs: Vec<(u64, u64)> = vec![(3, 2), (3, 7), (9, 4), (u64::MAX - 5, 1)];
        let blob: Vec<u8> = pairs
            .iter()
            .flat_map(|(k, b)| k.to_be_bytes().into_iter().chain(b.to_be_bytes()))
            .collect();
        let found = |key| {
            let mut out = Vec::new();
            part_blocks(&blob, key, &mut out);
            out
        };
        assert_eq!(found(3), [2, 7]);
        assert_eq!(found(u64::MAX - 5), [1]);
        assert!(found(4).is_empty());
        let keys = keys_blob(&[3, 9, u64::MAX - 5]);
        assert!(block_has(&keys, 9) && block_has(&keys, u64::MAX - 5));
        assert!(!block_has(&keys, 4) && !block_has(&keys, 10));
    }
}
