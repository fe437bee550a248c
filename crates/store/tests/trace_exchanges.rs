//! The trace store with the gateway's traced exchanges, on real SQLite files: a trace whose
//! entries arrive in several batches (so several blocks), with spans a service sent, reads back
//! whole; the search filters, orders and limits exchanges as it does spans; a window for the
//! service graph spans blocks; retention and restarts keep what they should.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_store::{Store, StoreConfig, TraceSearch};
use gatehouse_telemetry::new_request_id;
use gatehouse_telemetry::spans::{
    AttrValue, Classification, HttpVersion, IntegrationKind, Span, SpanKind, SpanStatus,
    TracedDecision, TracedDecisions, TracedExchange, TracedIntegration, TracedRoute, TracedTiming,
    attr,
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

/// A request of trace `trace` to `api`'s `route`, answered `status` after `ms` milliseconds,
/// with a WAF decision and a mock integration: three spans.
fn request(trace: u8, api: &str, route: &str, status: u16, start: u64, ms: u64) -> TracedExchange {
    TracedExchange {
        trace_id: [trace; 16],
        span_id: [trace, 1, 2, 3, 4, 5, 6, 7],
        parent_id: None,
        start_unix_nanos: start,
        request_id: new_request_id(),
        method: Some("GET".parse().unwrap()),
        route: Some(TracedRoute {
            api: Arc::from(api),
            api_version: Arc::from("v1"),
            stage: Arc::from("prod"),
            resource_path: Arc::from(route),
        }),
        canary: false,
        path: "/prod/x".into(),
        tls: false,
        host: Some("api.example.com".into()),
        client: SocketAddr::from(([10, 0, 0, 9], 5123)),
        protocol: HttpVersion::Http11,
        user_agent: None,
        status,
        error: None,
        bytes_in: 0,
        bytes_out: 42,
        timing: TracedTiming {
            routed: Some(MS / 10),
            integration_start: Some(MS / 5),
            integration_response: Some(ms * MS / 2),
            integration_end: Some(ms * MS - MS / 10),
            done: ms * MS,
        },
        decisions: TracedDecisions {
            waf: Some(TracedDecision::Allowed),
            ..TracedDecisions::default()
        },
        phases: None,
        integration: TracedIntegration {
            kind: Some(IntegrationKind::Mock),
            status: Some(status),
            ..TracedIntegration::default()
        },
        websocket: None,
    }
}

/// A span service `service` sent for trace `trace`, child of the gateway's server span.
fn service_span(trace: u8, service: &str, start: u64) -> Span {
    Span {
        trace_id: [trace; 16],
        span_id: [trace, 0xee, 0, 0, 0, 0, 0, 1],
        parent_span_id: Some([trace, 1, 2, 3, 4, 5, 6, 7]),
        name: "GET /orders".into(),
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: start + MS,
        attributes: vec![(attr::SERVICE_NAME.into(), AttrValue::Str(service.into()))],
        events: Vec::new(),
        status: SpanStatus::Unset,
        classification: Classification::Ok,
    }
}

fn search(start: u64, end: u64) -> TraceSearch {
    TraceSearch {
        start_unix_nanos: start,
        end_unix_nanos: end,
        limit: 100,
        ..TraceSearch::default()
    }
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start_unix_nanos, s.parent_span_id.is_some()));
    spans
}

#[test]
fn a_trace_from_several_blocks_with_a_services_spans_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.span_writer();
    let t0 = now_ns() - 60_000 * MS;
    let first = request(1, "pets", "/pets/{id}", 502, t0, 40);
    let other = request(2, "shop", "/items", 200, t0 + MS, 5);
    writer
        .append_exchanges(vec![first.clone(), other.clone()])
        .unwrap();
    store.flush().unwrap();
    // The service's span arrives later, through the receiver, and the caller's retry later
    // still: both in later blocks.
    let service = service_span(1, "orders", t0 + MS / 2);
    writer.append(vec![service.clone()]).unwrap();
    store.flush().unwrap();
    let mut retry = request(1, "pets", "/pets/{id}", 200, t0 + 100 * MS, 10);
    retry.span_id = [1, 9, 9, 9, 9, 9, 9, 9];
    writer.append_exchanges(vec![retry.clone()]).unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().trace_blocks_written, 3);
    assert_eq!(store.stats().spans_written, 3 + 3 + 1 + 3);

    let mut expected = first.spans();
    expected.push(service);
    expected.extend(retry.spans());
    let got = store.trace(&[1; 16]).unwrap();
    assert_eq!(got, sorted(expected));
    assert_eq!(got[0].name, "GET /pets/{id}");
    assert_eq!(store.trace(&[2; 16]).unwrap(), other.spans());
    assert!(store.trace(&[3; 16]).unwrap().is_empty());

    // The search lists the two requests of trace 1 (not the service's server span), each
    // counting every span stored under the trace.
    let found = store.search_traces(&search(t0, t0 + DAY)).unwrap();
    let listed: Vec<(u8, u16, u64)> = found
        .iter()
        .map(|t| (t.trace_id[0], t.status.unwrap(), t.spans))
        .collect();
    assert_eq!(listed, [(1, 200, 7), (2, 200, 3), (1, 502, 7)]);
    let summary = &found[2];
    assert_eq!(summary.name, "GET /pets/{id}");
    assert_eq!(summary.span_id, first.span_id);
    assert_eq!(
        (summary.api.as_deref(), summary.stage.as_deref()),
        (Some("pets"), Some("prod"))
    );
    assert_eq!(
        (summary.route.as_deref(), summary.method.as_deref()),
        (Some("/pets/{id}"), Some("GET"))
    );
    assert_eq!(
        (summary.classification, summary.duration_nanos),
        (Classification::Fault, 40 * MS)
    );
    assert_eq!(summary.start_unix_nanos, t0);
}

#[test]
fn search_filters_orders_and_limits_exchanges_across_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.span_writer();
    let t0 = now_ns() - 100_000 * MS;
    // Four blocks, written out of time order: a long request ends in a later block than
    // shorter ones that started after it.
    let batches = [
        vec![
            request(2, "pets", "/pets", 503, t0 + 1000 * MS, 250),
            request(3, "shop", "/items", 429, t0 + 2000 * MS, 5),
        ],
        vec![request(1, "pets", "/pets/{id}", 200, t0, 10)],
        vec![request(4, "pets", "/pets/{id}", 404, t0 + 3000 * MS, 300)],
        vec![request(5, "pets", "/pets/{id}", 201, t0 + 2500 * MS, 1)],
    ];
    for batch in batches {
        writer.append_exchanges(batch).unwrap();
        store.flush().unwrap();
    }
    let traces = |search: TraceSearch| -> Vec<u8> {
        store
            .search_traces(&search)
            .unwrap()
            .iter()
            .map(|t| t.trace_id[0])
            .collect()
    };
    let everything = search(t0, t0 + 10_000 * MS);
    assert_eq!(traces(everything.clone()), [4, 5, 3, 2, 1]);
    let cases = [
        (
            TraceSearch {
                api: Some("pets".into()),
                ..everything.clone()
            },
            vec![4, 5, 2, 1],
        ),
        (
            TraceSearch {
                stage: Some("prod".into()),
                api: Some("shop".into()),
                ..everything.clone()
            },
            vec![3],
        ),
        (
            TraceSearch {
                route: Some("/pets/{id}".into()),
                ..everything.clone()
            },
            vec![4, 5, 1],
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
                status: Some(503),
                fault_only: true,
                ..everything.clone()
            },
            vec![2],
        ),
        (
            TraceSearch {
                status: Some(404),
                fault_only: true,
                ..everything.clone()
            },
            vec![],
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
            vec![4, 5],
        ),
        (
            TraceSearch {
                limit: 3,
                api: Some("pets".into()),
                ..everything.clone()
            },
            vec![4, 5, 2],
        ),
        (search(t0 + MS * 1000, t0 + MS * 3000), vec![5, 3, 2]),
        (search(t0 + MS * 1000, t0 + MS * 1001), vec![2]),
    ];
    for (search, expected) in cases {
        assert_eq!(traces(search.clone()), expected, "{search:?}");
    }
}

#[test]
fn a_window_reads_the_spans_of_every_block_oldest_first_and_says_when_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.span_writer();
    let now = now_ns();
    let old = request(1, "pets", "/a", 200, now - 2 * DAY / 24, 5);
    let late = request(2, "pets", "/b", 503, now - 20 * MS, 5);
    let early = request(3, "shop", "/c", 429, now - 30 * MS, 5);
    let service = service_span(2, "orders", now - 19 * MS);
    writer.append_exchanges(vec![old.clone()]).unwrap();
    writer.append_exchanges(vec![late.clone()]).unwrap();
    store.flush().unwrap();
    writer.append(vec![service.clone()]).unwrap();
    writer.append_exchanges(vec![early.clone()]).unwrap();
    store.flush().unwrap();
    let hour_ago = now - DAY / 24;
    let (spans, capped) = store.spans_in_window(hour_ago, now + MS, 100).unwrap();
    assert!(!capped);
    let mut expected: Vec<Span> = early.spans();
    expected.extend(late.spans());
    expected.push(service);
    expected.sort_by_key(|s| s.start_unix_nanos);
    assert_eq!(spans, expected);
    let (spans, capped) = store.spans_in_window(hour_ago, now + MS, 4).unwrap();
    assert!(capped, "seven spans in the window, four read");
    assert_eq!(spans, expected[..4]);
    // A window that starts inside a request holds the spans that start in it.
    let (spans, _) = store
        .spans_in_window(early.start_unix_nanos + 1, now + MS, 100)
        .unwrap();
    assert_eq!(spans, expected[1..]);
}

#[test]
fn retention_deletes_old_blocks_and_rewrites_straddling_ones_and_traces_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ns();
    {
        let store = open(&dir);
        let writer = store.span_writer();
        // One block all older than a week, one that straddles every cutoff below.
        writer
            .append_exchanges(vec![
                request(1, "pets", "/a", 200, now - 10 * DAY, 1),
                request(2, "pets", "/a", 200, now - 9 * DAY, 1),
            ])
            .unwrap();
        store.flush().unwrap();
        writer
            .append_exchanges(vec![
                request(3, "pets", "/b", 200, now - 8 * DAY, 1),
                request(4, "pets", "/b", 200, now - 3 * DAY, 1),
                request(5, "pets", "/c", 200, now - DAY / 2, 1),
            ])
            .unwrap();
        writer
            .append(vec![service_span(4, "orders", now - DAY / 2)])
            .unwrap();
        store.close();
    }
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
    assert_eq!(left(&store), [4, 5]);
    for gone in [1, 2, 3] {
        assert!(store.trace(&[gone; 16]).unwrap().is_empty(), "{gone}");
    }
    assert_eq!(store.trace(&[4; 16]).unwrap().len(), 4);
    store.set_trace_retention(1).unwrap();
    assert_eq!(left(&store), [5]);
    // The service's span of trace 4 started within the day: it stays, though its request went.
    assert_eq!(store.trace(&[4; 16]).unwrap().len(), 1);
    assert_eq!(store.trace(&[5; 16]).unwrap().len(), 3);
}

#[test]
fn traced_exchanges_appended_after_close_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.span_writer();
    let stats = store.clone();
    store.close();
    let dropped = writer.append_exchanges(vec![request(1, "pets", "/a", 200, now_ns(), 1)]);
    assert_eq!(dropped.unwrap_err().spans, 3);
    assert_eq!(stats.stats().spans_dropped, 3);
}

#[test]
fn entries_linger_into_one_block_and_are_readable_within_about_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writer = store.span_writer();
    let now = now_ns();
    for trace in 1..=3 {
        writer
            .append_exchanges(vec![request(trace, "pets", "/a", 200, now, 1)])
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    while store.trace(&[3; 16]).unwrap().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        store.stats().trace_blocks_written,
        1,
        "three batches, one block"
    );
    assert_eq!(store.trace(&[1; 16]).unwrap().len(), 3);
}
