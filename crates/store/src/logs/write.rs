//! The writer thread's side of logs: the pending batches, how they become blocks, the group
//! rows, retention settings and the retention sweep.
//!
//! Log events linger in the writer for up to [`LOG_LINGER`] (or until [`MAX_PENDING_EVENTS`] /
//! [`MAX_PENDING_BYTES`] accumulate, or a flush asks), across the writer's 100 ms metric batches.
//! A quiet group thus still gets blocks of many events rather than one row per event, at the cost
//! of losing up to that long of logs if the process crashes; a clean close or a flush writes them.

use std::time::{Duration, Instant};

use rusqlite::{Transaction, params};
use rustc_hash::FxHashMap;

use super::LogBatch;
use super::block::{BlockEncoder, MAX_BLOCK_EVENTS, MAX_BLOCK_TEXT_BYTES};
use crate::StoreError;

/// How long log events may wait in the writer for more of their kind.
const LOG_LINGER: Duration = Duration::from_secs(1);
/// Pending logs are written once they hold this many events...
const MAX_PENDING_EVENTS: u64 = 64 * 1024;
/// ...or this many bytes of messages.
const MAX_PENDING_BYTES: u64 = 16 * 1024 * 1024;
/// Log group names are at most this long, CloudWatch's limit.
const MAX_GROUP_NAME_BYTES: usize = 512;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Retention is at most this many days (a hundred years); "forever" is `None`.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// The log batches taken from the queue and not yet written.
#[derive(Default)]
pub(crate) struct PendingLogs {
    batches: Vec<LogBatch>,
    events: u64,
    bytes: u64,
    since: Option<Instant>,
}

/// What writing the pending logs did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LogsWritten {
    pub(crate) events: u64,
    pub(crate) blocks: u64,
    /// Events of groups with invalid names, dropped.
    pub(crate) rejected: u64,
}

impl PendingLogs {
    pub(crate) fn add(&mut self, batch: LogBatch) {
        self.events += batch.len() as u64;
        self.bytes += batch.text_bytes() as u64;
        self.since.get_or_insert_with(Instant::now);
        self.batches.push(batch);
    }

    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Whether enough has accumulated to write without waiting for the linger to pass.
    pub(crate) fn is_full(&self) -> bool {
        self.events >= MAX_PENDING_EVENTS || self.bytes >= MAX_PENDING_BYTES
    }

    /// When the pending events must be written at the latest.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + LOG_LINGER)
    }

    /// Whether the pending events should be written now.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.is_full() || self.deadline().is_some_and(|deadline| deadline <= now)
    }

    /// Writes the pending events in `tx`: per group, sorted by time (stable, so events of one
    /// millisecond keep their arrival order), cut into blocks.
    pub(crate) fn write(
        self,
        tx: &Transaction<'_>,
        groups: &mut GroupIds,
        now_ms: i64,
    ) -> rusqlite::Result<LogsWritten> {
        let mut by_group: FxHashMap<&str, Vec<(i64, &str)>> = FxHashMap::default();
        for batch in &self.batches {
            for (group, ts, message) in batch.iter() {
                by_group.entry(group).or_default().push((ts, message));
            }
        }
        let mut insert = tx.prepare_cached(
            "INSERT INTO log_blocks (group_id, start_ms, end_ms, events, bytes_raw, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut encoder = BlockEncoder::default();
        let mut written = LogsWritten::default();
        // Block ids break ties between groups in a scan, so give them a stable order.
        let mut by_group: Vec<_> = by_group.into_iter().collect();
        by_group.sort_unstable_by_key(|&(group, _)| group);
        for (group, mut events) in by_group {
            if let Err(reason) = validate_group_name(group) {
                tracing::warn!(
                    group,
                    reason,
                    events = events.len(),
                    "log events of an invalid group dropped"
                );
                written.rejected += events.len() as u64;
                continue;
            }
            let group_id = groups.resolve(tx, group, now_ms)?;
            events.sort_by_key(|&(ts, _)| ts);
            for chunk in chunks(&events) {
                let block = encoder.encode(chunk);
                insert.execute(params![
                    group_id,
                    block.start_ms,
                    block.end_ms,
                    block.events as i64,
                    block.bytes_raw as i64,
                    block.data
                ])?;
                written.events += block.events as u64;
                written.blocks += 1;
            }
        }
        Ok(written)
    }
}

/// Cuts time-sorted events into blocks of at most [`MAX_BLOCK_EVENTS`] events and about
/// [`MAX_BLOCK_TEXT_BYTES`] bytes.
fn chunks<'a, 'b>(events: &'a [(i64, &'b str)]) -> impl Iterator<Item = &'a [(i64, &'b str)]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut len = 0;
        while len < rest.len() && len < MAX_BLOCK_EVENTS && bytes < MAX_BLOCK_TEXT_BYTES {
            bytes += rest[len].1.len();
            len += 1;
        }
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

/// The writer's cache of group name → row id. It only ever holds committed rows: the writer
/// clears it when a transaction fails, since groups created in it were rolled back.
#[derive(Default)]
pub(crate) struct GroupIds {
    ids: FxHashMap<String, i64>,
}

impl GroupIds {
    /// The id of `name`, creating its row if needed.
    fn resolve(&mut self, tx: &Transaction<'_>, name: &str, now_ms: i64) -> rusqlite::Result<i64> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let id = ensure_group(tx, name, now_ms)?;
        self.ids.insert(name.to_owned(), id);
        Ok(id)
    }

    pub(crate) fn clear(&mut self) {
        self.ids.clear();
    }
}

fn ensure_group(tx: &Transaction<'_>, name: &str, now_ms: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO log_groups (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![name, now_ms])?;
    tx.prepare_cached("SELECT id FROM log_groups WHERE name = ?1")?
        .query_row(params![name], |row| row.get(0))
}

/// Sets the retention of one group (creating it if needed); `None` returns it to the default.
pub(crate) fn set_group_retention(
    tx: &Transaction<'_>,
    name: &str,
    days: Option<u32>,
    now_ms: i64,
) -> rusqlite::Result<()> {
    ensure_group(tx, name, now_ms)?;
    tx.prepare_cached("UPDATE log_groups SET retention_days = ?2 WHERE name = ?1")?
        .execute(params![name, days])?;
    Ok(())
}

/// Deletes the blocks whose newest event is older than their group's retention (its own, else
/// `default_days`; no retention at all keeps everything) at `now_ms`. Returns the blocks deleted.
///
/// Whole blocks go, so an event may outlive its retention by the span of its block (normally
/// about a second, the writer's linger).
pub(crate) fn sweep(
    tx: &Transaction<'_>,
    default_days: Option<u32>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let groups: Vec<(i64, Option<u32>)> = tx
        .prepare_cached("SELECT id, retention_days FROM log_groups")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut delete =
        tx.prepare_cached("DELETE FROM log_blocks WHERE group_id = ?1 AND end_ms < ?2")?;
    let mut deleted = 0;
    for (id, own) in groups {
        let Some(days) = own.or(default_days) else {
            continue;
        };
        let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
        deleted += delete.execute(params![id, cutoff])?;
    }
    Ok(deleted)
}

/// Checks a group name: 1 to 512 bytes, no control characters, and no `*`, which scans use for
/// prefix matches.
pub(crate) fn validate_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_GROUP_NAME_BYTES {
        return Err("the name is longer than 512 bytes");
    }
    if name.contains('*') {
        return Err("the name contains '*', which is reserved for prefix matches");
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character");
    }
    Ok(())
}

/// Checks a retention setting before it goes to the writer.
pub(crate) fn validate_retention(group: Option<&str>, days: Option<u32>) -> Result<(), StoreError> {
    if let Some(group) = group {
        validate_group_name(group).map_err(|reason| StoreError::InvalidLogGroup {
            group: group.to_owned(),
            reason,
        })?;
    }
    match days {
        Some(days) if days == 0 || days > MAX_RETENTION_DAYS => {
            Err(StoreError::InvalidQuery(format!(
                "log retention of {days} days; it must be 1 to {MAX_RETENTION_DAYS} days, or none to keep events forever"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn blocks(tx: &Transaction<'_>, group: &str) -> Vec<(i64, i64)> {
        tx.prepare(
            "SELECT start_ms, end_ms FROM log_blocks b JOIN log_groups g ON g.id = b.group_id
             WHERE g.name = ?1 ORDER BY start_ms",
        )
        .unwrap()
        .query_map([group], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn the_sweep_deletes_blocks_older_than_each_groups_retention_at_the_given_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("t.db")).unwrap();
        let tx = conn.transaction().unwrap();
        let mut groups = GroupIds::default();
        let mut pending = PendingLogs::default();
        // Three writer batches per group, ending at days 0, 5 and 9.
        for day in [0, 5, 9] {
            let mut batch = LogBatch::new();
            for group in ["own-3-days", "default", "also-default"] {
                batch.push(group, day * DAY_MS - 1000, "early");
                batch.push(group, day * DAY_MS, "end of batch");
            }
            pending.add(batch);
            let taken = std::mem::take(&mut pending);
            let written = taken.write(&tx, &mut groups, 0).unwrap();
            assert_eq!((written.events, written.blocks), (6, 3));
        }
        set_group_retention(&tx, "own-3-days", Some(3), 0).unwrap();
        // With no default, groups without their own retention keep everything.
        let now = 10 * DAY_MS;
        assert_eq!(
            sweep(&tx, None, now).unwrap(),
            2,
            "own-3-days loses days 0 and 5"
        );
        assert_eq!(blocks(&tx, "own-3-days"), [(9 * DAY_MS - 1000, 9 * DAY_MS)]);
        assert_eq!(blocks(&tx, "default").len(), 3);
        // A default of 5 days: the block ending exactly at the cutoff (day 5) is kept.
        assert_eq!(
            sweep(&tx, Some(5), now).unwrap(),
            2,
            "day 0 of default and forever"
        );
        assert_eq!(blocks(&tx, "default").len(), 2);
        set_group_retention(&tx, "also-default", None, 0).unwrap();
        assert_eq!(sweep(&tx, Some(5), now + 1).unwrap(), 2, "day 5 of both");
        assert_eq!(
            blocks(&tx, "also-default"),
            [(9 * DAY_MS - 1000, 9 * DAY_MS)]
        );
    }

    #[test]
    fn events_of_invalid_groups_are_rejected_and_the_rest_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = schema::open_writer(&dir.path().join("t.db")).unwrap();
        let tx = conn.transaction().unwrap();
        let mut pending = PendingLogs::default();
        let mut batch = LogBatch::new();
        batch.push("ok", 1, "kept");
        batch.push("bad*", 1, "dropped");
        batch.push("", 1, "dropped");
        pending.add(batch);
        let written = pending.write(&tx, &mut GroupIds::default(), 0).unwrap();
        assert_eq!(
            written,
            LogsWritten {
                events: 1,
                blocks: 1,
                rejected: 2
            }
        );
    }

    #[test]
    fn many_events_of_one_group_are_cut_into_bounded_blocks() {
        let message = "x".repeat(600);
        let events: Vec<(i64, &str)> = (0..10_000).map(|i| (i, message.as_str())).collect();
        let sizes: Vec<usize> = chunks(&events).map(<[_]>::len).collect();
        // 1 MiB / 600 bytes: the byte limit closes blocks before the event limit.
        assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        assert!(sizes.iter().all(|&n| n <= 1748), "{sizes:?}");
        let small: Vec<(i64, &str)> = (0..10_000).map(|i| (i, "x")).collect();
        let sizes: Vec<usize> = chunks(&small).map(<[_]>::len).collect();
        assert_eq!(sizes, [4096, 4096, 1808]);
    }
}
