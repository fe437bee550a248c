//! The trace store on real SQLite files in a temporary directory: a trace round-trips whole, the
//! search filters and orders by start time, retention deletes old spans, spans survive a restart,
//! and a full queue drops spans and counts them.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_store::{Store, StoreConfig, StoreError, TraceSearch};
use gatehouse_telemetry::spans::{
    AttrValue, Classification, Span, SpanEvent, SpanKind, SpanStatus, attr, child_span_id,
};

const MS: u64 = 1_000_000;
const DAY: u64 = 24 * 60 * 60 * 1_000 * MS;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreConfig::new(dir.path())).unwrap()
}

fn id(n: u8) -> [u8; 16] {
    [n; 16]
}

/// A request's server span and one client child: `api`, `route`, `status`, starting at `start`
/// and lasting `ms` milliseconds.
fn request(trace: u8, api: &str, route: &str, status: u16, start: u64, ms: u64) -> Vec<Span> {
    let class = gatehouse_telemetry::spans::classify(status);
    let span_id = [trace, 1, 2, 3, 4, 5, 6, 7];
    let server = Span {
        trace_id: id(trace),
        span_id,
        parent_span_id: None,
        name: format!("GET {route}"),
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: start + ms * MS,
        attributes: vec![
            (
                attr::HTTP_REQUEST_METHOD.into(),
                AttrValue::Str("GET".into()),
            ),
            (attr::HTTP_ROUTE.into(), AttrValue::Str(route.into())),
            (
                attr::HTTP_RESPONSE_STATUS_CODE.into(),
                AttrValue::Int(status.into()),
            ),
            (attr::API.into(), AttrValue::Str(api.into())),
            (attr::STAGE.into(), AttrValue::Str("prod".into())),
        ],
        events: vec![SpanEvent {
            name: "note".into(),
            unix_nanos: start,
            attributes: vec![("k".into(), AttrValue::Bool(true))],
        }],
        status: if status >= 500 {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        },
        classification: class,
    };
    let client = Span {
        span_id: child_span_id(span_id, 0),
        parent_span_id: Some(span_id),
        name: "GET".into(),
        kind: SpanKind::Client,
        start_unix_nanos: start + MS,
        end_unix_nanos: start + ms * MS - MS / 2,
        attributes: vec![(attr::INTEGRATION.into(), AttrValue::Str("http".into()))],
        events: Vec::new(),
        ..server.clone()
    };
    vec![server, client]
}

fn search(start: u64, end: u64) -> TraceSearch {
    TraceSearch {
        start_unix_nanos: start,
        end_unix_nanos: end,
        limit: 100,
        ..TraceSearch::default()
    }
}

#[test]
fn spans_in_window_reads_every_span_of_the_window_oldest_first_and_says_when_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = now_ns();
    let old = request(1, "pets", "/a", 200, now - 2 * DAY / 24, 5);
    let first = request(2, "pets", "/b", 503, now - 20 * MS, 5);
    let second = request(3, "shop", "/c", 429, now - 10 * MS, 5);
    for spans in [&old, &first, &second] {
        store.span_writer().append(spans.clone()).unwrap();
    }
    store.flush().unwrap();
    let hour_ago = now - DAY / 24;
    let (spans, capped) = store.spans_in_window(hour_ago, now + MS, 100).unwrap();
    assert!(!capped);
    let expected: Vec<Span> = first.iter().chain(&second).cloned().collect();
    assert_eq!(spans, expected);
    let (spans, capped) = store.spans_in_window(hour_ago, now + MS, 3).unwrap();
    assert!(capped, "four spans in the window, three read");
    assert_eq!(spans, expected[..3]);
}

#[test]
fn a_trace_round_trips_whole_and_an_unknown_one_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let spans = request(1, "pets", "/pets/{id}", 200, now_ns(), 40);
    store.span_writer().append(spans.clone()).unwrap();
    store.flush().unwrap();
    assert_eq!(store.trace(&id(1)).unwrap(), spans);
    assert!(store.trace(&id(9)).unwrap().is_empty());
    assert_eq!(store.stats().spans_written, 2);
}

#[test]
fn search_filters_by_api_route_status_fault_duration_and_time_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let t0 = now_ns() - 10_000 * MS;
    let mut all = Vec::new();
    all.extend(request(1, "pets", "/pets/{id}", 200, t0, 10));
    all.extend(request(2, "pets", "/pets", 503, t0 + MS * 1000, 250));
    all.extend(request(3, "shop", "/items", 429, t0 + MS * 2000, 5));
    all.extend(request(4, "pets", "/pets/{id}", 404, t0 + MS * 3000, 300));
    store.span_writer().append(all).unwrap();
    store.flush().unwrap();

    let traces = |search: TraceSearch| -> Vec<u8> {
        store
            .search_traces(&search)
            .unwrap()
            .iter()
            .map(|t| t.trace_id[0])
            .collect()
    };
    let everything = search(t0, t0 + 10_000 * MS);
    assert_eq!(traces(everything.clone()), [4, 3, 2, 1]);
    let cases = [
        (
            TraceSearch {
                api: Some("pets".into()),
                ..everything.clone()
            },
            vec![4, 2, 1],
        ),
        (
            TraceSearch {
                route: Some("/pets/{id}".into()),
                ..everything.clone()
            },
            vec![4, 1],
        ),
        (
            TraceSearch {
                status: Some(429),
                ..everything.clone()
            },
            vec![3],
        ),
        (
            TraceSearch {
                fault_only: true,
                ..everything.clone()
            },
            vec![2],
        ),
        (
            TraceSearch {
                min_duration_nanos: 200 * MS,
                ..everything.clone()
            },
            vec![4, 2],
        ),
        (
            TraceSearch {
                stage: Some("dev".into()),
                ..everything.clone()
            },
            vec![],
        ),
        (
            TraceSearch {
                limit: 2,
                ..everything.clone()
            },
            vec![4, 3],
        ),
        (search(t0 + MS * 1000, t0 + MS * 3000), vec![3, 2]),
    ];
    for (search, expected) in cases {
        assert_eq!(traces(search.clone()), expected, "{search:?}");
    }

    let summary = &store.search_traces(&everything).unwrap()[2];
    assert_eq!(summary.name, "GET /pets");
    assert_eq!(
        (summary.api.as_deref(), summary.stage.as_deref()),
        (Some("pets"), Some("prod"))
    );
    assert_eq!(
        (summary.method.as_deref(), summary.status),
        (Some("GET"), Some(503))
    );
    assert_eq!(summary.classification, Classification::Fault);
    assert_eq!((summary.duration_nanos, summary.spans), (250 * MS, 2));

    let backwards = search(t0 + MS, t0);
    assert!(matches!(
        store.search_traces(&backwards),
        Err(StoreError::InvalidQuery(_))
    ));
}

#[test]
fn retention_deletes_spans_older_than_its_days_and_spans_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ns();
    {
        let store = open(&dir);
        let mut all = request(1, "pets", "/a", 200, now - 10 * DAY, 1);
        all.extend(request(2, "pets", "/b", 200, now - 3 * DAY, 1));
        all.extend(request(3, "pets", "/c", 200, now - DAY / 2, 1));
        store.span_writer().append(all).unwrap();
        store.close();
    }
    // The default of 7 days applies at open (the writer sweeps before its first op).
    let store = open(&dir);
    store.flush().unwrap();
    let left = |store: &Store| -> Vec<u8> {
        let mut ids: Vec<u8> = store
            .search_traces(&search(now - 30 * DAY, now + DAY))
            .unwrap()
            .iter()
            .map(|t| t.trace_id[0])
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(left(&store), [2, 3]);
    assert_eq!(store.trace(&id(2)).unwrap().len(), 2);
    store.set_trace_retention(1).unwrap();
    assert_eq!(left(&store), [3]);
    assert!(store.trace(&id(2)).unwrap().is_empty());
    assert!(store.set_trace_retention(0).is_err());
}

#[test]
fn spans_appended_after_close_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.span_writer();
    let stats = store.clone();
    store.close();
    let dropped = writer.append(request(1, "pets", "/a", 200, now_ns(), 1));
    assert_eq!(dropped.unwrap_err().spans, 2);
    assert_eq!(stats.stats().spans_dropped, 2);
}
