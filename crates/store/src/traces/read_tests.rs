use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_telemetry::new_request_id;
use gatehouse_telemetry::spans::{
    HttpVersion, IntegrationKind, TracedDecisions, TracedIntegration, TracedRoute, TracedTiming,
};
use rusqlite::Connection;

use super::*;
use crate::{Store, StoreConfig};

const MS: u64 = 1_000_000;

fn request(trace: u8, start: u64, status: u16, ms: u64) -> TracedExchange {
    TracedExchange {
        trace_id: [trace; 16],
        span_id: [trace; 8],
        parent_id: None,
        start_unix_nanos: start,
        request_id: new_request_id(),
        method: Some("GET".parse().unwrap()),
        route: Some(TracedRoute {
            api: Arc::from("pets"),
            api_version: Arc::from("v1"),
            stage: Arc::from("prod"),
            resource_path: Arc::from("/pets"),
        }),
        canary: false,
        path: "/pets".into(),
        tls: false,
        host: None,
        client: SocketAddr::from(([127, 0, 0, 1], 1)),
        protocol: HttpVersion::Http11,
        user_agent: None,
        status,
        error: None,
        bytes_in: 0,
        bytes_out: 0,
        timing: TracedTiming {
            done: ms * MS,
            integration_start: Some(0),
            ..TracedTiming::default()
        },
        decisions: TracedDecisions::default(),
        phases: None,
        integration: TracedIntegration {
            kind: Some(IntegrationKind::Mock),
            status: Some(status),
            ..TracedIntegration::default()
        },
        websocket: None,
    }
}

/// Ten blocks of one request each, a second apart: the fourth a fault, the eighth slow.
fn ten_blocks(dir: &tempfile::TempDir) -> (Store, u64) {
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t0 = 1_000_000 * 1000 * MS;
    for i in 0..10u8 {
        let status = if i == 3 { 503 } else { 200 };
        let ms = if i == 7 { 300 } else { 5 };
        let start = t0 + u64::from(i) * 1000 * MS;
        store
            .span_writer()
            .append_exchanges(vec![request(i, start, status, ms)])
            .unwrap();
        store.flush().unwrap();
    }
    assert_eq!(store.stats().trace_blocks_written, 10);
    (store, t0)
}

fn searched(store: &Store, search: &TraceSearch) -> (Vec<u8>, u64) {
    let (found, blocks) = store
        .inner
        .readers
        .with(|conn| search_counted(conn, search))
        .unwrap();
    (found.iter().map(|t| t.trace_id[0]).collect(), blocks)
}

#[test]
fn a_search_reads_only_the_blocks_that_can_answer_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t0) = ten_blocks(&dir);
    let all = TraceSearch {
        start_unix_nanos: t0,
        end_unix_nanos: t0 + 100_000 * MS,
        limit: 100,
        ..TraceSearch::default()
    };
    assert_eq!(searched(&store, &all), ((0..10).rev().collect(), 10));
    let cases = [
        // The newest two blocks answer; the third is older than both matches.
        (
            TraceSearch {
                limit: 2,
                ..all.clone()
            },
            vec![9, 8],
            2,
        ),
        (
            TraceSearch {
                fault_only: true,
                ..all.clone()
            },
            vec![3],
            1,
        ),
        (
            TraceSearch {
                status: Some(503),
                ..all.clone()
            },
            vec![3],
            1,
        ),
        // No block holds a client error.
        (
            TraceSearch {
                status: Some(404),
                ..all.clone()
            },
            vec![],
            0,
        ),
        (
            TraceSearch {
                min_duration_nanos: 200 * MS,
                ..all.clone()
            },
            vec![7],
            1,
        ),
        // Blocks outside the time range are not read.
        (
            TraceSearch {
                start_unix_nanos: t0 + 2000 * MS,
                end_unix_nanos: t0 + 4000 * MS,
                ..all.clone()
            },
            vec![3, 2],
            2,
        ),
        // A filter the summary columns do not know reads every block in range.
        (
            TraceSearch {
                api: Some("shop".into()),
                ..all.clone()
            },
            vec![],
            10,
        ),
    ];
    for (search, expected, blocks) in cases {
        assert_eq!(searched(&store, &search), (expected, blocks), "{search:?}");
    }
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[test]
fn the_sweep_indexes_new_blocks_and_deletes_whole_blocks_with_their_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ten_blocks(&dir);
    let counts = |store: &Store| {
        store
            .inner
            .readers
            .with(|conn| Ok((count(conn, "trace_blocks"), count(conn, "trace_runs"))))
            .unwrap()
    };
    assert_eq!(
        counts(&store),
        (10, 0),
        "no sweep since the blocks were written"
    );
    assert_eq!(
        store.trace(&[3; 16]).unwrap().len(),
        2,
        "found by the block's keys"
    );
    // A century's retention deletes nothing, and folds the ten blocks' keys into one run.
    store.set_trace_retention(36_500).unwrap();
    assert_eq!(counts(&store), (10, 1));
    assert_eq!(store.trace(&[3; 16]).unwrap().len(), 2, "found by the run");
    // Every block is decades old: a day's retention deletes them all, and the run with them.
    store.set_trace_retention(1).unwrap();
    assert_eq!(counts(&store), (0, 0));
    assert_eq!(count_parts(&store), 0);
    assert!(store.trace(&[3; 16]).unwrap().is_empty());
}

fn count_parts(store: &Store) -> i64 {
    store
        .inner
        .readers
        .with(|conn| Ok(count(conn, "trace_run_parts")))
        .unwrap()
}

#[test]
fn runs_merge_as_they_accumulate_and_still_find_every_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let t0 = 1_000_000 * 1000 * MS;
    let levels = |store: &Store| -> Vec<i64> {
        store
            .inner
            .readers
            .with(|conn| {
                conn.prepare("SELECT level FROM trace_runs ORDER BY id")
                    .unwrap()
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .map_err(StoreError::query("levels"))
            })
            .unwrap()
    };
    // Thirteen sweeps, each after a block of its own: the twelfth merges the first twelve runs.
    for i in 0..13u8 {
        store
            .span_writer()
            .append_exchanges(vec![request(i, t0 + u64::from(i) * MS, 200, 1)])
            .unwrap();
        store.flush().unwrap();
        store.set_trace_retention(36_500).unwrap();
    }
    assert_eq!(levels(&store), [1, 0]);
    for i in 0..13u8 {
        assert_eq!(store.trace(&[i; 16]).unwrap().len(), 2, "trace {i}");
    }
}

#[test]
fn a_trace_is_found_in_indexed_and_recent_blocks_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t0) = ten_blocks(&dir);
    store.set_trace_retention(36_500).unwrap();
    // Trace 3 gets a second entry in a block no run covers yet.
    let mut retry = request(3, t0 + 20_000 * MS, 200, 1);
    retry.span_id = [33; 8];
    store.span_writer().append_exchanges(vec![retry]).unwrap();
    store.flush().unwrap();
    let spans = store.trace(&[3; 16]).unwrap();
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[2].span_id, [33; 8]);
    for trace in 0..10 {
        assert_eq!(
            store.trace(&[trace; 16]).unwrap().len(),
            if trace == 3 { 4 } else { 2 }
        );
    }
    // And again once the new block is indexed too.
    store.set_trace_retention(36_500).unwrap();
    assert_eq!(store.trace(&[3; 16]).unwrap().len(), 4);
}

#[test]
fn every_trace_of_a_large_block_is_found_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    // 157 traces in one block, each found by its key.
    let traced: Vec<TracedExchange> = (0..157u8)
        .map(|n| {
            let mut traced = request(n, 1_000 * MS + u64::from(n), 200, 1);
            traced.trace_id[8] = n;
            traced
        })
        .collect();
    store
        .span_writer()
        .append_exchanges(traced.clone())
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().trace_blocks_written, 1);
    for traced in &traced {
        assert_eq!(store.trace(&traced.trace_id).unwrap(), traced.spans());
    }
}
