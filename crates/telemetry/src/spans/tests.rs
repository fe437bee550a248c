#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::execution::{ExecutionDetail, ExecutionLogSettings, PhaseResult, PhaseStep};
use crate::{Decision, ErrorClass, Exchange, ExchangeKind, RouteLabels, TraceIds, WebSocketStats};

pub(super) const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
pub(super) const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
/// 2026-01-01T00:00:00Z.
pub(super) const BASE_NS: u64 = 1_767_225_600_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A routed GET of /pets/7 answered by an HTTP upstream: routed at 1 ms, upstream from 2 ms,
/// head at 30 ms, body done at 35 ms, client done at 40 ms.
pub(super) fn exchange(status: u16) -> Exchange {
    let mut e = crate::bus::tests::sample();
    e.trace = Some(TraceIds {
        trace_id: TRACE,
        span_id: SPAN,
        parent_id: None,
        sampled: true,
    });
    e.route = Some(RouteLabels {
        api: Arc::from("pets"),
        api_version: Arc::from("v1"),
        stage: Arc::from("prod"),
        resource_path: Arc::from("/pets/{id}"),
    });
    e.path = "/pets/7".into();
    e.host = Some(http::HeaderValue::from_static("api.example.com:8080"));
    e.client = "10.0.0.9:5123".parse().unwrap();
    e.status = status;
    e.bytes_in = 12;
    e.bytes_out = 345;
    e.integration.kind = Some("http");
    e.integration.status = Some(status);
    e.timing.received_at = SystemTime::UNIX_EPOCH + Duration::from_nanos(BASE_NS);
    e.timing.routed = Some(ms(1));
    e.timing.integration_start = Some(ms(2));
    e.timing.integration_response = Some(ms(30));
    e.timing.integration_end = Some(ms(35));
    e.timing.done = ms(40);
    e
}

#[test]
fn status_is_classified_as_xray_does() {
    let cases = [
        (200, Classification::Ok),
        (304, Classification::Ok),
        (400, Classification::Error),
        (404, Classification::Error),
        (429, Classification::Throttle),
        (500, Classification::Fault),
        (503, Classification::Fault),
    ];
    for (status, expected) in cases {
        assert_eq!(classify(status), expected, "{status}");
        let spans = spans_from_exchange(&exchange(status));
        assert_eq!(spans[0].classification, expected, "{status}");
        // OTel: a server span is an error only for 5xx; a client span for any 4xx or 5xx.
        assert_eq!(
            spans[0].status == SpanStatus::Error,
            status >= 500,
            "{status}"
        );
        assert_eq!(
            spans[1].status == SpanStatus::Error,
            status >= 400,
            "{status}"
        );
    }
}

#[test]
fn the_server_span_carries_the_http_semantic_conventions() {
    let spans = spans_from_exchange(&exchange(200));
    let server = &spans[0];
    assert_eq!(server.name, "GET /pets/{id}");
    assert_eq!((server.trace_id, server.span_id), (TRACE, SPAN));
    assert_eq!(server.parent_span_id, None);
    assert_eq!(server.kind, SpanKind::Server);
    let text = |key| server.attribute(key).map(ToString::to_string);
    let expected = [
        (attr::HTTP_REQUEST_METHOD, Some("GET")),
        (attr::HTTP_ROUTE, Some("/pets/{id}")),
        (attr::HTTP_RESPONSE_STATUS_CODE, Some("200")),
        (attr::URL_PATH, Some("/pets/7")),
        (attr::SERVER_ADDRESS, Some("api.example.com")),
        (attr::CLIENT_ADDRESS, Some("10.0.0.9")),
        (attr::CLIENT_PORT, Some("5123")),
        (attr::NETWORK_PROTOCOL_VERSION, Some("1.1")),
        (attr::REQUEST_BODY_SIZE, Some("12")),
        (attr::RESPONSE_BODY_SIZE, Some("345")),
        (attr::API, Some("pets")),
        (attr::STAGE, Some("prod")),
        (attr::ERROR_TYPE, None),
    ];
    for (key, value) in expected {
        assert_eq!(text(key).as_deref(), value, "{key}");
    }
    assert_eq!(
        server.attribute_int(attr::HTTP_RESPONSE_STATUS_CODE),
        Some(200)
    );
}

#[test]
fn error_type_is_the_gateway_error_class_or_the_5xx_status() {
    let mut e = exchange(502);
    e.error = Some(ErrorClass::UpstreamConnect);
    e.integration.status = None;
    e.integration.error = Some("connection refused".into());
    let spans = spans_from_exchange(&e);
    assert_eq!(
        spans[0].attribute_str(attr::ERROR_TYPE),
        Some("upstream_connect")
    );
    assert_eq!(
        spans[1].attribute_str(attr::ERROR_TYPE),
        Some("upstream_connect")
    );
    assert_eq!(spans[1].classification, Classification::Fault);
    let spans = spans_from_exchange(&exchange(503));
    assert_eq!(spans[0].attribute_str(attr::ERROR_TYPE), Some("503"));
}

#[test]
fn an_unrouted_request_is_named_by_its_method_alone() {
    let mut e = exchange(404);
    e.route = None;
    e.error = Some(ErrorClass::RouteNotFound);
    e.integration = Default::default();
    e.timing.routed = None;
    e.timing.integration_start = None;
    let spans = spans_from_exchange(&e);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "GET");
    assert_eq!(spans[0].attribute(attr::HTTP_ROUTE), None);
    assert_eq!(spans[0].attribute(attr::API), None);
}

#[test]
fn timings_come_from_the_exchanges_offsets() {
    let spans = spans_from_exchange(&exchange(200));
    let server = &spans[0];
    assert_eq!(server.start_unix_nanos, BASE_NS);
    assert_eq!(server.duration_nanos(), 40_000_000);
    let client = &spans[1];
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.name, "GET");
    assert_eq!(client.parent_span_id, Some(SPAN));
    assert_eq!(client.start_unix_nanos, BASE_NS + 2_000_000);
    assert_eq!(client.end_unix_nanos, BASE_NS + 35_000_000);
    // Without the end of the body, the client span ends at the response head.
    let mut e = exchange(200);
    e.timing.integration_end = None;
    assert_eq!(
        spans_from_exchange(&e)[1].end_unix_nanos,
        BASE_NS + 30_000_000
    );
}

#[test]
fn the_integration_span_names_its_upstream_from_the_recorded_url() {
    let mut e = exchange(200);
    e.integration.url = Some("http://10.1.2.3:9000/pets/7".into());
    let client = &spans_from_exchange(&e)[1];
    assert_eq!(
        client.attribute_str(attr::URL_FULL),
        Some("http://10.1.2.3:9000/pets/7")
    );
    assert_eq!(client.attribute_str(attr::SERVER_ADDRESS), Some("10.1.2.3"));
    assert_eq!(client.attribute_int(attr::SERVER_PORT), Some(9000));
    assert_eq!(client.attribute_str(attr::HTTP_REQUEST_METHOD), Some("GET"));
    // The port defaults by scheme; IPv6 hosts keep their brackets.
    e.integration.url = Some("https://[::1]/x".into());
    let client = &spans_from_exchange(&e)[1];
    assert_eq!(client.attribute_str(attr::SERVER_ADDRESS), Some("[::1]"));
    assert_eq!(client.attribute_int(attr::SERVER_PORT), Some(443));
    // Without a recorded URL (an unsampled request has none) there is no upstream address.
    e.integration.url = None;
    let client = &spans_from_exchange(&e)[1];
    assert_eq!(client.attribute_str(attr::SERVER_ADDRESS), None);
    assert_eq!(client.attribute_str(attr::URL_FULL), None);
}

#[test]
fn phases_become_children_timed_by_the_execution_steps() {
    let mut e = exchange(429);
    e.decisions.waf = Some(Decision::Allowed);
    e.decisions.throttle = Some(Decision::Rejected {
        reason: "route_limit",
    });
    e.integration = Default::default();
    e.timing.integration_start = None;
    let mut detail = ExecutionDetail::new(Arc::new(ExecutionLogSettings::default()));
    detail.phases = vec![
        PhaseStep {
            phase: "waf",
            at: ms(3),
            result: PhaseResult::Continued,
        },
        PhaseStep {
            phase: "throttle",
            at: ms(4),
            result: PhaseResult::Answered { status: 429 },
        },
    ];
    e.execution = Some(Box::new(detail));
    let spans = spans_from_exchange(&e);
    let summary: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.kind,
                (s.start_unix_nanos - BASE_NS) / 1_000_000,
                (s.end_unix_nanos - BASE_NS) / 1_000_000,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET /pets/{id}", SpanKind::Server, 0, 40),
            ("waf", SpanKind::Internal, 1, 3),
            ("throttle", SpanKind::Internal, 3, 4),
        ]
    );
    assert_eq!(spans[0].classification, Classification::Throttle);
    assert_eq!(spans[2].attribute_str(attr::DECISION), Some("route_limit"));
    assert_eq!(
        spans[2].attribute_int(attr::HTTP_RESPONSE_STATUS_CODE),
        Some(429)
    );

    // Without the detail, each phase with a decision is a zero-length marker at `routed`.
    e.execution = None;
    let spans = spans_from_exchange(&e);
    let markers: Vec<_> = spans[1..]
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.start_unix_nanos - BASE_NS,
                s.duration_nanos(),
            )
        })
        .collect();
    assert_eq!(markers, [("waf", 1_000_000, 0), ("throttle", 1_000_000, 0)]);
}

#[test]
fn child_ids_are_stable_distinct_and_parented_by_the_server_span() {
    let mut e = exchange(200);
    e.decisions.auth = Some(Decision::Allowed);
    e.decisions.cache = Some(Decision::Miss);
    let first = spans_from_exchange(&e);
    assert_eq!(first, spans_from_exchange(&e));
    let mut ids: Vec<_> = first.iter().map(|s| s.span_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert!(first[1..].iter().all(|s| s.parent_span_id == Some(SPAN)));
}

#[test]
fn a_websocket_connection_is_one_server_span_with_message_counts_and_events() {
    let mut e = exchange(101);
    e.kind = ExchangeKind::WebSocket;
    e.integration.kind = Some("websocket");
    e.websocket = Some(WebSocketStats {
        messages_in: 3,
        messages_out: 5,
        bytes_in: 30,
        bytes_out: 50,
        close_code: Some(1000),
        closed_by: Some("client"),
        message_events: Vec::new(),
    });
    let spans = spans_from_exchange(&e);
    let server = &spans[0];
    assert_eq!(server.attribute_int(attr::WS_MESSAGES_IN), Some(3));
    assert_eq!(server.attribute_int(attr::WS_MESSAGES_OUT), Some(5));
    assert_eq!(server.attribute_str(attr::WS_CLOSED_BY), Some("client"));
    let events: Vec<_> = server
        .events
        .iter()
        .map(|ev| (ev.name.as_str(), ev.unix_nanos - BASE_NS))
        .collect();
    assert_eq!(
        events,
        [
            ("websocket.open", 30_000_000),
            ("websocket.close", 40_000_000)
        ]
    );
    assert_eq!(spans[1].name, "websocket");
}

#[test]
fn an_exchange_without_trace_ids_yields_nothing() {
    let mut e = exchange(200);
    e.trace = None;
    assert!(spans_from_exchange(&e).is_empty());
}

#[test]
fn trace_ids_parse_in_w3c_and_xray_forms() {
    let w3c = "4bf92f3577b34da6a3ce929d0e0e4736";
    assert_eq!(parse_trace_id(w3c), Ok(TRACE));
    assert_eq!(parse_trace_id(&w3c.to_uppercase()), Ok(TRACE));
    assert_eq!(
        parse_trace_id("1-4bf92f35-77b34da6a3ce929d0e0e4736"),
        Ok(TRACE)
    );
    assert_eq!(trace_id_hex(&TRACE), w3c);
    assert_eq!(span_id_hex(&SPAN), "00f067aa0ba902b7");
    for bad in [
        "",
        "4bf92f3577b34da6a3ce929d0e0e473",
        "4bf92f3577b34da6a3ce929d0e0e4736a",
        "zbf92f3577b34da6a3ce929d0e0e4736",
        "+bf92f3577b34da6a3ce929d0e0e4736",
        "00000000000000000000000000000000",
        "2-4bf92f35-77b34da6a3ce929d0e0e4736",
        "1-4bf92f3-577b34da6a3ce929d0e0e4736",
    ] {
        assert!(parse_trace_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_recorder_builds_spans_for_sampled_traced_exchanges_only() {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_got = Arc::clone(&got);
    let recorder = TraceRecorder::spawn(
        rx,
        Box::new(move |traced: Vec<TracedExchange>| {
            sink_got
                .lock()
                .unwrap()
                .extend(traced.iter().flat_map(TracedExchange::spans));
        }),
    )
    .unwrap();
    let mut unsampled = exchange(200);
    unsampled.trace = unsampled.trace.map(|t| TraceIds {
        sampled: false,
        ..t
    });
    let mut untraced = exchange(200);
    untraced.trace = None;
    for e in [exchange(200), unsampled, untraced] {
        tx.try_send(Arc::new(e)).unwrap();
    }
    drop(tx);
    let stats = recorder.stats_reader();
    recorder.join();
    assert_eq!(
        got.lock().unwrap().len(),
        2,
        "server and client span of one exchange"
    );
    assert_eq!(
        stats(),
        RecorderStats {
            traced: 1,
            skipped: 2,
            spans: 2
        }
    );
}
