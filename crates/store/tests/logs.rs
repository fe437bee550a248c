//! The log store end to end, on real SQLite files in a temporary directory: round trips, the
//! order of merged blocks in both directions, time-range edges, group patterns, search,
//! retention, restarts and dropped batches.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::ops::ControlFlow;
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_store::{LogBatch, LogEvent, LogScan, Store, StoreConfig, StoreError, StoreStats};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreConfig::new(dir.path())).unwrap()
}

/// Appends one batch of (group, timestamp, message) and waits until it is committed.
fn write(store: &Store, events: &[(&str, i64, &str)]) {
    let mut batch = LogBatch::new();
    for (group, ts, message) in events {
        batch.push(group, *ts, message);
    }
    store.log_writer().append(batch).unwrap();
    store.flush().unwrap();
}

fn scan(store: &Store, scan: &LogScan) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    store
        .scan_logs(scan, |event| {
            out.push((
                event.timestamp_ms,
                event.group.to_owned(),
                event.message.to_owned(),
            ));
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn range(groups: &[&str], start_ms: i64, end_ms: i64, newest_first: bool) -> LogScan {
    LogScan {
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        start_ms,
        end_ms,
        newest_first,
    }
}

fn owned(events: &[(&str, i64, &str)]) -> Vec<(i64, String, String)> {
    events
        .iter()
        .map(|(g, ts, m)| (*ts, (*g).to_owned(), (*m).to_owned()))
        .collect()
}

#[test]
fn events_round_trip_in_time_order_across_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        &[
            ("access/pets/prod", 30, r#"{"status":200}"#),
            ("execution/pets/prod", 10, "routing GET /pets"),
            ("access/pets/prod", 20, "ünïcode ✓"),
            ("gateway", 10, ""),
        ],
    );
    let all = scan(&store, &LogScan::all(0, 100));
    assert_eq!(
        all,
        owned(&[
            ("execution/pets/prod", 10, "routing GET /pets"),
            ("gateway", 10, ""),
            ("access/pets/prod", 20, "ünïcode ✓"),
            ("access/pets/prod", 30, r#"{"status":200}"#),
        ])
    );
    let stats = store.stats();
    assert_eq!(
        (
            stats.log_events_written,
            stats.log_blocks_written,
            stats.log_events_dropped
        ),
        (4, 3, 0)
    );
    assert_eq!(stats.log_bytes_queued, 0);
}

/// A small deterministic generator, so the merge test needs no extra crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn overlapping_blocks_merge_into_one_order_and_newest_first_is_its_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let groups = ["access/a/prod", "access/b/prod", "execution/a/prod"];
    // Unique timestamps 0..3000 in shuffled order, written as 10 batches committed one by one,
    // so every group has ten blocks whose time spans overlap each other and the other groups'.
    let mut timestamps: Vec<i64> = (0..3000).collect();
    let mut rng = Lcg(7);
    for i in (1..timestamps.len()).rev() {
        timestamps.swap(i, rng.next(i as u64 + 1) as usize);
    }
    let mut expected = Vec::new();
    for chunk in timestamps.chunks(300) {
        let mut batch = LogBatch::new();
        for &ts in chunk {
            let group = groups[rng.next(3) as usize];
            let message = format!("event {ts}");
            batch.push(group, ts, &message);
            expected.push((ts, group.to_owned(), message));
        }
        store.log_writer().append(batch).unwrap();
        store.flush().unwrap();
    }
    assert_eq!(store.stats().log_blocks_written, 30);
    expected.sort();

    assert_eq!(scan(&store, &LogScan::all(0, 3000)), expected);
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(scan(&store, &range(&[], 0, 3000, true)), reversed);

    // Sub-ranges and subsets of groups are the same order, filtered.
    for (start, end) in [(0, 1), (1234, 1300), (2999, 3000), (500, 2500)] {
        for pattern in [&["access/*"][..], &["execution/a/prod", "access/b/prod"]] {
            let want: Vec<_> = expected
                .iter()
                .filter(|(ts, g, _)| {
                    (start..end).contains(ts)
                        && pattern.iter().any(|p| match p.strip_suffix('*') {
                            Some(prefix) => g.starts_with(prefix),
                            None => g == p,
                        })
                })
                .cloned()
                .collect();
            assert_eq!(scan(&store, &range(pattern, start, end, false)), want);
            let mut want_rev = want;
            want_rev.reverse();
            assert_eq!(scan(&store, &range(pattern, start, end, true)), want_rev);
        }
    }
}

#[test]
fn the_latest_events_are_read_without_decoding_the_older_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for minute in 0..20 {
        let events: Vec<(&str, i64, &str)> = (0..100)
            .map(|i| {
                (
                    "access/pets/prod",
                    minute * 60_000 + i * 100,
                    "GET /pets 200",
                )
            })
            .collect();
        write(&store, &events);
    }
    let mut latest = Vec::new();
    let stats = store
        .scan_logs(&range(&[], 0, i64::MAX, true), |event| {
            latest.push(event.timestamp_ms);
            if latest.len() == 150 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(stats.stopped);
    assert_eq!(stats.events, 150);
    assert_eq!(stats.blocks_read, 2, "{stats:?}");
    let want: Vec<i64> = (0..100)
        .rev()
        .map(|i| 19 * 60_000 + i * 100)
        .chain((50..100).rev().map(|i| 18 * 60_000 + i * 100))
        .collect();
    assert_eq!(latest, want);
}

#[test]
fn the_range_includes_its_start_and_excludes_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        &[
            ("g", 99, "before"),
            ("g", 100, "start"),
            ("g", 199, "last"),
            ("g", 200, "end"),
        ],
    );
    let messages = |start, end| -> Vec<String> {
        scan(&store, &LogScan::all(start, end))
            .into_iter()
            .map(|(_, _, m)| m)
            .collect()
    };
    assert_eq!(messages(100, 200), ["start", "last"]);
    assert_eq!(messages(100, 101), ["start"]);
    assert_eq!(messages(199, 200), ["last"]);
    assert!(messages(100, 100).is_empty());
    assert!(messages(201, 300).is_empty());
    assert_eq!(messages(i64::MIN, i64::MAX).len(), 4);
    assert!(matches!(
        store.scan_logs(&LogScan::all(10, 5), |_| ControlFlow::Continue(())),
        Err(StoreError::InvalidQuery(_))
    ));
}

#[test]
fn groups_match_exactly_or_by_a_trailing_star_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        &[
            ("access/pets/prod", 1, "a"),
            ("access/pets/beta", 2, "b"),
            ("access/petshop/prod", 3, "c"),
            ("execution/pets/prod", 4, "d"),
            ("gateway", 5, "e"),
        ],
    );
    let cases: &[(&[&str], &str)] = &[
        (&[], "abcde"),
        (&["*"], "abcde"),
        (&["access/*"], "abc"),
        (&["access/pets/*"], "ab"),
        (&["access/pets"], ""),
        (&["gateway", "execution/*"], "de"),
        (&["access/pets/prod", "access/pets/prod"], "a"),
        (&["nothing/*"], ""),
    ];
    for (patterns, want) in cases {
        let got: String = scan(&store, &range(patterns, 0, 10, false))
            .into_iter()
            .map(|(_, _, m)| m)
            .collect();
        assert_eq!(got, *want, "{patterns:?}");
    }
}

#[test]
fn search_finds_text_ignoring_case_in_scan_order_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        &[
            (
                "access/pets/prod",
                1,
                r#"{"status":502,"error":"Upstream Timeout"}"#,
            ),
            ("access/pets/prod", 2, r#"{"status":200}"#),
            ("execution/pets/prod", 3, "upstream timeout after 29000 ms"),
            ("access/pets/prod", 4, "UPSTREAM TIMEOUT again"),
        ],
    );
    let found = store
        .search_logs(&LogScan::all(0, 10), "upstream timeout", 10)
        .unwrap();
    let times: Vec<i64> = found.iter().map(|e| e.timestamp_ms).collect();
    assert_eq!(times, [1, 3, 4]);
    assert_eq!(
        found[1],
        LogEvent {
            timestamp_ms: 3,
            group: "execution/pets/prod".into(),
            message: "upstream timeout after 29000 ms".into(),
        }
    );
    let newest = store
        .search_logs(&range(&["access/*"], 0, 10, true), "TIMEOUT", 1)
        .unwrap();
    assert_eq!(newest[0].timestamp_ms, 4);
    assert!(
        store
            .search_logs(&LogScan::all(0, 10), "nope", 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search_logs(&LogScan::all(0, 10), "status", 0)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn log_groups_report_their_retention_and_contents() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        &[("b", 5, "hello"), ("a", 7, "x"), ("b", 9, "world")],
    );
    store.set_log_retention("c", Some(7)).unwrap();
    let groups = store.log_groups().unwrap();
    let summary: Vec<_> = groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.retention_days,
                g.events,
                g.raw_bytes > 0,
                g.first_event_ms,
                g.last_event_ms,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", None, 1, true, Some(7), Some(7)),
            ("b", None, 2, true, Some(5), Some(9)),
            ("c", Some(7), 0, false, None, None),
        ]
    );
    assert!(groups[1].stored_bytes > 0);
    assert!(matches!(
        store.set_log_retention("access/*", Some(1)),
        Err(StoreError::InvalidLogGroup { .. })
    ));
    assert!(matches!(
        store.set_log_retention("a", Some(0)),
        Err(StoreError::InvalidQuery(_))
    ));
}

#[test]
fn retention_deletes_expired_blocks_per_group_and_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    {
        let store = open(&dir);
        for group in ["short", "default", "forever"] {
            // Each on its own so every age is its own block.
            for age_days in [10, 4, 0] {
                write(&store, &[(group, now - age_days * DAY_MS, "event")]);
            }
        }
        store.set_log_retention("short", Some(3)).unwrap();
        store.set_log_retention("forever", Some(36_500)).unwrap();
        store.close();
    }
    let count =
        |store: &Store, group: &str| scan(store, &range(&[group], 0, i64::MAX, false)).len();
    // The setting survives a restart and applies in the sweep at open.
    let store = open(&dir);
    store.flush().unwrap();
    assert_eq!(
        [
            count(&store, "short"),
            count(&store, "default"),
            count(&store, "forever")
        ],
        [1, 3, 3]
    );
    // A default applies to groups without their own retention, at once.
    store.set_default_log_retention(Some(7)).unwrap();
    assert_eq!(
        [
            count(&store, "short"),
            count(&store, "default"),
            count(&store, "forever")
        ],
        [1, 2, 3]
    );
    // Returning a group to the default.
    store.set_log_retention("forever", None).unwrap();
    assert_eq!(count(&store, "forever"), 2);
    assert!(store.set_default_log_retention(Some(0)).is_err());
}

#[test]
fn logs_written_before_a_restart_are_there_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(&store, &[("access/pets/prod", 1, "before flush")]);
    // Not flushed: closing writes what lingers in the writer.
    let mut batch = LogBatch::new();
    batch.push("access/pets/prod", 2, "lingering at close");
    store.log_writer().append(batch).unwrap();
    store.close();

    let store = open(&dir);
    assert_eq!(
        scan(&store, &LogScan::all(0, 10)),
        owned(&[
            ("access/pets/prod", 1, "before flush"),
            ("access/pets/prod", 2, "lingering at close"),
        ])
    );
    write(&store, &[("access/pets/prod", 0, "after restart")]);
    drop(store); // dropping the last handle also commits and stops the writer
    let store = open(&dir);
    assert_eq!(scan(&store, &LogScan::all(0, 10)).len(), 3);
    assert_eq!(store.log_groups().unwrap().len(), 1);
}

#[test]
fn appends_after_close_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.log_writer();
    let handle = store.clone();
    store.close();
    let mut batch = LogBatch::new();
    batch.push("g", 1, "one");
    batch.push("g", 2, "two");
    assert_eq!(writer.append(batch).unwrap_err().events, 2);
    assert_eq!(writer.append(LogBatch::new()), Ok(()));
    let StoreStats {
        log_events_dropped,
        log_bytes_queued,
        ..
    } = handle.stats();
    assert_eq!((log_events_dropped, log_bytes_queued), (2, 0));
}

#[test]
fn events_of_invalid_groups_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        &[
            ("ok", 1, "kept"),
            ("bad*", 2, "dropped"),
            ("", 3, "dropped"),
        ],
    );
    assert_eq!(scan(&store, &LogScan::all(0, 10)).len(), 1);
    let stats = store.stats();
    assert_eq!((stats.log_events_written, stats.log_events_dropped), (1, 2));
}

#[test]
fn a_large_batch_becomes_bounded_blocks_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut batch = LogBatch::new();
    let line = "x".repeat(300);
    for i in 0..20_000 {
        batch.push(if i % 2 == 0 { "even" } else { "odd" }, i, &line);
    }
    store.log_writer().append(batch).unwrap();
    store.flush().unwrap();
    let stats = store.stats();
    assert_eq!(stats.log_events_written, 20_000);
    // 10,000 events of 300 bytes per group: 1 MiB / 300 bytes ≈ 3,496 events per block.
    assert_eq!(stats.log_blocks_written, 6);
    let mut next = 0;
    store
        .scan_logs(&LogScan::all(0, i64::MAX), |event| {
            assert_eq!(event.timestamp_ms, next);
            assert_eq!(event.message.len(), 300);
            next += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(next, 20_000);
}

#[test]
fn appended_events_become_visible_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut batch = LogBatch::new();
    batch.push("access/pets/prod", 1, "soon");
    store.log_writer().append(batch).unwrap();
    // The writer lingers up to a second for more events; poll well past that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while scan(&store, &LogScan::all(0, 10)).is_empty() {
        assert!(std::time::Instant::now() < deadline, "never committed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(store.stats().log_events_written, 1);
}

#[test]
fn log_handles_can_be_shared_across_threads() {
    fn assert_shared<T: Clone + Send + Sync + 'static>() {}
    fn assert_sendable<T: Send + 'static>() {}
    assert_shared::<gatehouse_store::LogWriter>();
    assert_sendable::<LogBatch>();
    assert_shared::<LogScan>();
}

#[test]
fn a_damaged_block_is_skipped_and_counted_and_the_rest_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(&store, &[("g", 1, "first block")]);
    write(&store, &[("g", 2, "second block")]);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute(
        "UPDATE log_blocks SET data = x'01ffffff' WHERE start_ms = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let mut messages = Vec::new();
    let stats = store
        .scan_logs(&LogScan::all(0, 10), |event| {
            messages.push(event.message.to_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(messages, ["second block"]);
    assert_eq!(
        (stats.blocks_read, stats.corrupt_blocks, stats.events),
        (2, 1, 1)
    );
}

#[test]
fn events_sharing_a_millisecond_have_one_order_and_newest_first_reverses_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut rng = Lcg(11);
    for commit in 0..6 {
        let mut batch = LogBatch::new();
        for i in 0..200 {
            let group = ["a", "b", "c/d"][rng.next(3) as usize];
            batch.push(
                group,
                rng.next(20) as i64,
                &format!("commit {commit} event {i}"),
            );
        }
        store.log_writer().append(batch).unwrap();
        store.flush().unwrap();
    }
    let forward = scan(&store, &LogScan::all(0, 20));
    assert_eq!(forward.len(), 1200);
    assert!(forward.windows(2).all(|w| w[0].0 <= w[1].0));
    // Within one group and commit, events of one millisecond keep their arrival order.
    let position = |m: &str| m.rsplit(' ').next().unwrap().parse::<u32>().unwrap();
    for w in forward.windows(2) {
        let same_block =
            w[0].1 == w[1].1 && w[0].2.split(" event").next() == w[1].2.split(" event").next();
        if w[0].0 == w[1].0 && same_block {
            assert!(position(&w[0].2) < position(&w[1].2), "{w:?}");
        }
    }
    let mut backward = scan(&store, &range(&[], 0, 20, true));
    backward.reverse();
    assert_eq!(backward, forward);
    assert_eq!(
        scan(&store, &LogScan::all(0, 20)),
        forward,
        "the same on every run"
    );
}
