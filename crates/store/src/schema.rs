//! The database schema and how connections are opened.
//!
//! The schema version is SQLite's `PRAGMA user_version`: migration `i` of [`MIGRATIONS`] takes the
//! database from version `i` to `i + 1`, in its own transaction. Migrations are only ever appended:
//! `alarm_history` is the second, `alarm_definitions` the third, the log store the fourth,
//! `spans` the fifth, the trace blocks that replace it the sixth, and a later issue adds `audit`
//! as a new entry. A database written by a newer build (a
//! higher version than we know) is refused rather than guessed at.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// The migrations, in order. Never edit an entry that has shipped; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: metric series and their data points at every resolution.
    //
    // `series` is generic on purpose: a metric name plus the canonical text of its dimensions
    // (`Dimensions::canonical`); `last_seen` is the newest period start written for it, so
    // listing recent series and expiring dead ones need not scan the points.
    //
    // `metric_points` holds one encoded `StatisticSet` per (resolution, series, period start);
    // rollups are produced by merging these sets, so percentiles come from merged sketches. The
    // time index serves the retention sweep, which deletes by resolution and age.
    "CREATE TABLE series (
         id INTEGER PRIMARY KEY,
         metric TEXT NOT NULL,
         dims TEXT NOT NULL,
         last_seen INTEGER NOT NULL,
         UNIQUE (metric, dims)
     );
     CREATE INDEX series_by_last_seen ON series (last_seen);
     CREATE TABLE metric_points (
         resolution_secs INTEGER NOT NULL,
         series_id INTEGER NOT NULL,
         ts INTEGER NOT NULL,
         stats BLOB NOT NULL,
         PRIMARY KEY (resolution_secs, series_id, ts)
     ) WITHOUT ROWID;
     CREATE INDEX metric_points_by_age ON metric_points (resolution_secs, ts);",
    // 2: alarm state transitions, one row each, kept two weeks like CloudWatch's alarm history.
    //
    // `old_state` is NULL for an alarm's first recorded state; `data` is a JSON document (the
    // datapoints and settings that caused the transition) the store does not interpret. The
    // index serves both "history of one alarm" and "last state of one alarm"; the sweep deletes
    // by `ts` alone, which is cheap enough for a table of a few rows per alarm per day.
    "CREATE TABLE alarm_history (
         id INTEGER PRIMARY KEY,
         alarm TEXT NOT NULL,
         ts INTEGER NOT NULL,
         old_state TEXT,
         new_state TEXT NOT NULL,
         reason TEXT NOT NULL,
         data TEXT NOT NULL
     );
     CREATE INDEX alarm_history_by_alarm ON alarm_history (alarm, ts);",
    // 3: alarms created through the admin API, so they survive restarts and reloads.
    //
    // `spec` is the alarm's JSON document in the config file's shape; the config crate, not
    // the store, validates it when it is read back. Times are Unix seconds; `created_at` also
    // tells an alarm's own history from that of an earlier alarm of the same name.
    "CREATE TABLE alarm_definitions (
         name TEXT PRIMARY KEY,
         spec TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     );",
    // 4: log groups and their events, stored in compressed blocks (see `logs/block.rs`).
    //
    // `log_groups.retention_days` is the group's own retention; NULL means the store's default
    // (which itself may be "keep forever", CloudWatch's default). `created_at` is in Unix
    // milliseconds, like every log timestamp.
    //
    // `log_blocks` holds the events of one group from one writer batch, sorted by time, as one
    // LZ4-compressed blob; `start_ms` and `end_ms` are its oldest and newest event (inclusive).
    // The time range is the index: a scan reads the blocks of its groups whose span overlaps its
    // range, and the retention sweep deletes whole blocks by `end_ms`. The index covers the scan's
    // block selection, so choosing blocks never touches the blobs.
    "CREATE TABLE log_groups (
         id INTEGER PRIMARY KEY,
         name TEXT UNIQUE NOT NULL,
         retention_days INTEGER,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE log_blocks (
         id INTEGER PRIMARY KEY,
         group_id INTEGER NOT NULL REFERENCES log_groups (id),
         start_ms INTEGER NOT NULL,
         end_ms INTEGER NOT NULL,
         events INTEGER NOT NULL,
         bytes_raw INTEGER NOT NULL,
         data BLOB NOT NULL
     );
     CREATE INDEX log_blocks_by_group_end ON log_blocks (group_id, end_ms, start_ms);",
    // 5: spans, one row each (see `traces/`).
    //
    // `root` is 1 for the gateway's server span of a request: a trace search lists those, by
    // start time (`roots_by_start`, a partial index over roots only), filtered on the columns
    // beside it. `class` is X-Ray's classification (0 ok, 1 error, 2 throttle, 3 fault). Times
    // are Unix nanoseconds. `data` is the whole span (attributes, events) in postcard; the
    // columns are copies for filtering. `spans_by_start` serves the retention sweep.
    "CREATE TABLE spans (
         id INTEGER PRIMARY KEY,
         trace_id BLOB NOT NULL,
         span_id BLOB NOT NULL,
         parent BLOB,
         root INTEGER NOT NULL,
         start_ns INTEGER NOT NULL,
         duration_ns INTEGER NOT NULL,
         api TEXT,
         stage TEXT,
         route TEXT,
         method TEXT,
         status INTEGER,
         class INTEGER NOT NULL,
         name TEXT NOT NULL,
         data BLOB NOT NULL
     );
     CREATE INDEX spans_by_trace ON spans (trace_id);
     CREATE INDEX spans_by_start ON spans (start_ns);
     CREATE INDEX roots_by_start ON spans (start_ns) WHERE root = 1;
     CREATE INDEX roots_by_api ON spans (api, start_ns) WHERE root = 1;",
    // 6: traces in compressed blocks (see `traces/block.rs`), replacing `spans`.
    //
    // `trace_blocks` holds the traced exchanges and received spans of one writer commit, sorted
    // by start, in one LZ4 blob. The columns summarise it so that reads choose blocks without
    // their blobs: `start_min` is the earliest entry start, `start_max` the latest start of any
    // span (Unix nanoseconds); `roots` counts the requests a search lists, `root_duration_max`
    // is the longest of them and `root_classes` has bit `1 << class` for each classification
    // among them (0 ok, 1 error, 2 throttle, 3 fault). `keys` holds the sorted keys of its
    // traces (`traces/index.rs`). `trace_blocks_by_start` covers the search's and the service
    // graph's block choice; `trace_blocks_by_first` serves the sweep's search for blocks that
    // straddle the retention cutoff. Ids are AUTOINCREMENT: the trace index names blocks by id,
    // and an id must never come back.
    //
    // `trace_runs` and `trace_run_parts` are the trace index (`traces/index.rs`): a run covers
    // the blocks `first_block..=last_block`; its sorted (key, block) pairs are cut by the key's
    // top bits into `parts` rows of `trace_run_parts`. The sweep writes a run every five minutes
    // (`level` 0) and merges them into an hour's (1) and a day's (2).
    //
    // The spans of migration 5 are dropped, not converted: traces are kept days, not months, and
    // converting them would cost every upgrade a pass over the whole table.
    "CREATE TABLE trace_blocks (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         start_min INTEGER NOT NULL,
         start_max INTEGER NOT NULL,
         entries INTEGER NOT NULL,
         spans INTEGER NOT NULL,
         roots INTEGER NOT NULL,
         root_duration_max INTEGER NOT NULL,
         root_classes INTEGER NOT NULL,
         bytes_raw INTEGER NOT NULL,
         keys BLOB NOT NULL,
         data BLOB NOT NULL
     );
     CREATE INDEX trace_blocks_by_start
         ON trace_blocks (start_max, start_min, root_duration_max, root_classes);
     CREATE INDEX trace_blocks_by_first ON trace_blocks (start_min);
     CREATE TABLE trace_runs (
         id INTEGER PRIMARY KEY,
         level INTEGER NOT NULL,
         first_block INTEGER NOT NULL,
         last_block INTEGER NOT NULL,
         parts INTEGER NOT NULL
     );
     CREATE TABLE trace_run_parts (
         run INTEGER NOT NULL,
         part INTEGER NOT NULL,
         pairs BLOB NOT NULL,
         PRIMARY KEY (run, part)
     ) WITHOUT ROWID;
     DROP TABLE spans;",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a connection waits for a lock held by another before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the connection the writer thread owns: WAL, `synchronous=NORMAL` (a crash may lose the
/// last commits but never corrupts the database), and the schema brought up to date.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // `journal_mode` answers with the mode in effect; anything but WAL means the file system
    // refused it, and readers would then block the writer.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "the store could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a read-only connection for queries. Readers never block the writer in WAL mode.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|source| StoreError::Migrate { version: 0, source })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        let err = |source| StoreError::Migrate { version, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, "store schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_bring_a_new_database_to_the_current_version_and_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_writer(&path).unwrap());
        let conn = open_writer(&path).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn migration_6_replaces_the_spans_table_with_trace_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..5] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 5).unwrap();
            tx.execute(
                "INSERT INTO spans (trace_id, span_id, root, start_ns, duration_ns, class, name,
                                    data)
                 VALUES (x'01', x'02', 1, 0, 0, 0, 'GET', x'')",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let conn = open_writer(&path).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!tables.iter().any(|t| t == "spans"), "{tables:?}");
        assert!(tables.iter().any(|t| t == "trace_blocks"), "{tables:?}");
        assert!(tables.iter().any(|t| t == "trace_runs"), "{tables:?}");
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_writer(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = open_writer(&path).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    }
}
