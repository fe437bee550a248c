//! Alarm history: one row per alarm state transition, written through the writer thread (so it
//! is ordered with everything else the store writes) and kept for [`ALARM_HISTORY_RETENTION`],
//! CloudWatch's two weeks.
//!
//! The store does not interpret states or the `data` document; the alarms crate owns their
//! meaning. Keeping them as text means a newer build's states never make old rows unreadable.

use std::time::Duration;

use rusqlite::{Connection, Transaction, params};

use crate::StoreError;

/// How long transitions are kept, measured from their timestamp: CloudWatch keeps alarm history
/// for two weeks.
pub const ALARM_HISTORY_RETENTION: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// One alarm state transition as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmTransitionRecord {
    /// The alarm's name.
    pub alarm: String,
    /// When the transition happened, in seconds since the Unix epoch.
    pub timestamp_unix: i64,
    /// The state before; `None` for an alarm's first recorded state.
    pub old_state: Option<String>,
    pub new_state: String,
    /// Why the state changed, for people.
    pub reason: String,
    /// A JSON document with the datapoints and settings behind the transition.
    pub data: String,
}

/// Inserts one transition in `tx`.
pub(crate) fn insert(tx: &Transaction<'_>, record: &AlarmTransitionRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO alarm_history (alarm, ts, old_state, new_state, reason, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        record.alarm,
        record.timestamp_unix,
        record.old_state,
        record.new_state,
        record.reason,
        record.data
    ])?;
    Ok(())
}

/// The transitions at or after `since_unix`, of one alarm or all, newest first (ties in
/// insertion order, newest first), at most `limit` of them.
pub(crate) fn history(
    conn: &Connection,
    alarm: Option<&str>,
    since_unix: i64,
    limit: usize,
) -> Result<Vec<AlarmTransitionRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT alarm, ts, old_state, new_state, reason, data FROM alarm_history
             WHERE (?1 IS NULL OR alarm = ?1) AND ts >= ?2
             ORDER BY ts DESC, id DESC LIMIT ?3",
        )
        .map_err(StoreError::query("preparing the alarm history query"))?;
    let rows = stmt
        .query_map(params![alarm, since_unix, limit], |row| {
            Ok(AlarmTransitionRecord {
                alarm: row.get(0)?,
                timestamp_unix: row.get(1)?,
                old_state: row.get(2)?,
                new_state: row.get(3)?,
                reason: row.get(4)?,
                data: row.get(5)?,
            })
        })
        .map_err(StoreError::query("reading alarm history"))?;
    rows.collect::<Result<_, _>>()
        .map_err(StoreError::query("reading alarm history"))
}

/// Deletes transitions older than [`ALARM_HISTORY_RETENTION`] at `now_unix`.
pub(crate) fn sweep(tx: &Transaction<'_>, now_unix: i64) -> rusqlite::Result<usize> {
    let keep = i64::try_from(ALARM_HISTORY_RETENTION.as_secs()).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM alarm_history WHERE ts < ?1",
        params![now_unix.saturating_sub(keep)],
    )
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreConfig};

    use super::*;

    fn record(alarm: &str, ts: i64, old: Option<&str>, new: &str) -> AlarmTransitionRecord {
        AlarmTransitionRecord {
            alarm: alarm.to_owned(),
            timestamp_unix: ts,
            old_state: old.map(str::to_owned),
            new_state: new.to_owned(),
            reason: format!("{alarm} went {new}"),
            data: r#"{"datapoints":[]}"#.to_owned(),
        }
    }

    #[test]
    fn transitions_are_recorded_and_read_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let now = crate::writer::unix_now();
        let written = [
            record("errors", now - 300, None, "OK"),
            record("latency", now - 200, None, "INSUFFICIENT_DATA"),
            record("errors", now - 120, Some("OK"), "ALARM"),
            record("errors", now - 60, Some("ALARM"), "OK"),
        ];
        for transition in &written {
            store.record_alarm_transition(transition).unwrap();
        }
        // Recording commits before it returns: no flush needed to read it back.
        let errors = store.alarm_history(Some("errors"), 0, 10).unwrap();
        assert_eq!(
            errors,
            vec![written[3].clone(), written[2].clone(), written[0].clone()]
        );
        let last = store.alarm_history(Some("errors"), 0, 1).unwrap();
        assert_eq!(last, vec![written[3].clone()]);
        let recent = store.alarm_history(None, now - 200, 10).unwrap();
        assert_eq!(
            recent,
            vec![written[3].clone(), written[2].clone(), written[1].clone()]
        );
        assert!(store.alarm_history(Some("nope"), 0, 10).unwrap().is_empty());
        assert!(store.alarm_history(None, 0, 0).unwrap().is_empty());
    }

    #[test]
    fn alarm_history_older_than_two_weeks_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::writer::unix_now();
        let keep = ALARM_HISTORY_RETENTION.as_secs() as i64;
        let old = record("errors", now - keep - 60, None, "OK");
        let kept = record("errors", now - keep + 3600, Some("OK"), "ALARM");
        {
            let store = Store::open(StoreConfig::new(dir.path())).unwrap();
            store.record_alarm_transition(&old).unwrap();
            store.record_alarm_transition(&kept).unwrap();
            assert_eq!(store.alarm_history(None, 0, 10).unwrap().len(), 2);
            store.close();
        }
        // The writer sweeps when it starts.
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        store.flush().unwrap();
        assert_eq!(store.alarm_history(None, 0, 10).unwrap(), vec![kept]);
    }
}
