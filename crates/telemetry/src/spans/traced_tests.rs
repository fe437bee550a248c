#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::traced::error_class_round_trips;
use super::*;
use crate::execution::{
    ExecutionDetail, ExecutionLogSettings, IntegrationRequest, PhaseResult, PhaseStep,
};
use crate::spans::tests::exchange;
use crate::{Decision, ErrorClass, Exchange, ExchangeKind, WebSocketStats};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An exchange that uses every part of the record: a continued trace, an extension method over
/// HTTP/2 from an IPv6 client, a canary, phases with execution steps (one panicked), a captured
/// integration request that failed, and a user agent.
fn everything() -> Exchange {
    let mut e = exchange(502);
    if let Some(trace) = e.trace.as_mut() {
        trace.parent_id = Some([9; 8]);
    }
    e.method = Some(http::Method::from_bytes(b"PURGE").unwrap());
    e.protocol = http::Version::HTTP_2;
    e.tls = true;
    e.client = "[2001:db8::7]:443".parse().unwrap();
    e.user_agent = Some(http::HeaderValue::from_static("curl/8.5.0"));
    e.canary = true;
    e.error = Some(ErrorClass::UpstreamTimeout);
    e.integration.error = Some("timed out".into());
    e.integration.status = None;
    e.decisions.waf = Some(Decision::Allowed);
    e.decisions.auth = Some(Decision::Rejected { reason: "expired" });
    e.decisions.cache = Some(Decision::Miss);
    let mut detail = ExecutionDetail::new(Arc::new(ExecutionLogSettings::default()));
    detail.phases = vec![
        PhaseStep {
            phase: "waf",
            at: ms(2),
            result: PhaseResult::Continued,
        },
        PhaseStep {
            phase: "auth",
            at: ms(3),
            result: PhaseResult::Panicked,
        },
        PhaseStep {
            phase: "cache",
            at: ms(4),
            result: PhaseResult::Answered { status: 304 },
        },
    ];
    detail.integration_request = Some(IntegrationRequest {
        method: http::Method::POST,
        url: "http://10.0.0.5:8080/pets/7".into(),
        headers: http::HeaderMap::new(),
    });
    e.execution = Some(Box::new(detail));
    e
}

fn websocket() -> Exchange {
    let mut e = exchange(101);
    e.kind = ExchangeKind::WebSocket;
    e.integration.kind = Some("websocket");
    e.websocket = Some(WebSocketStats {
        messages_in: 3,
        messages_out: 5,
        bytes_in: 30,
        bytes_out: 50,
        close_code: Some(1001),
        closed_by: Some("upstream"),
        message_events: vec![
            crate::WebSocketMessage {
                at_nanos: 3_000_000,
                size: 10,
                direction: crate::WebSocketDirection::In,
                kind: crate::WebSocketMessageKind::Text,
            },
            crate::WebSocketMessage {
                at_nanos: 4_000_000,
                size: 7,
                direction: crate::WebSocketDirection::Out,
                kind: crate::WebSocketMessageKind::Binary,
            },
        ],
    });
    e.integration.url = Some("ws://10.0.0.2:8080/chat".into());
    e
}

fn round_trip(traced: &TracedExchange) -> TracedExchange {
    let mut bytes = vec![0xAA];
    traced.encode_into(&mut bytes).unwrap();
    assert_eq!(bytes[0], 0xAA, "encoding appends");
    TracedExchange::decode(&bytes[1..]).unwrap()
}

#[test]
fn a_record_round_trips_and_yields_the_exchanges_spans() {
    let mut unknown_labels = websocket();
    unknown_labels.integration.kind = Some("lambda");
    if let Some(stats) = unknown_labels.websocket.as_mut() {
        stats.closed_by = Some("moon");
    }
    let mut unrouted = exchange(404);
    unrouted.route = None;
    unrouted.method = None;
    unrouted.host = Some(http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
    let mut websocket_without_stats = websocket();
    websocket_without_stats.websocket = None;
    for e in [
        exchange(200),
        everything(),
        websocket(),
        unknown_labels,
        unrouted,
        websocket_without_stats,
    ] {
        let traced = TracedExchange::from_exchange(&e).unwrap();
        let back = round_trip(&traced);
        assert_eq!(back, traced);
        let spans = back.spans();
        if let Some(stats) = e.websocket.as_ref() {
            let messages = spans[0].events.iter().filter(|ev| ev.name == "message");
            assert_eq!(messages.count(), stats.message_events.len());
        }
        assert_eq!(spans, spans_from_exchange(&e));
        assert_eq!(spans.len(), traced.span_count());
        let last_start = spans.iter().map(|s| s.start_unix_nanos).max().unwrap();
        assert!(last_start <= traced.last_span_start_unix_nanos());
        let server = &spans[0];
        assert_eq!(
            (server.name.as_str(), server.duration_nanos()),
            (traced.name().as_str(), traced.duration_nanos())
        );
        assert_eq!(server.classification, traced.classification());
    }
}

#[test]
fn the_rich_exchange_keeps_every_detail() {
    let spans = spans_from_exchange(&everything());
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["PURGE /pets/{id}", "waf", "auth", "cache", "PURGE"]);
    let server = &spans[0];
    assert_eq!(server.parent_span_id, Some([9; 8]));
    assert_eq!(
        server.attribute_str(attr::CLIENT_ADDRESS),
        Some("2001:db8::7")
    );
    assert_eq!(
        server.attribute_str(attr::NETWORK_PROTOCOL_VERSION),
        Some("2")
    );
    assert_eq!(server.attribute_str(attr::URL_SCHEME), Some("https"));
    assert_eq!(server.attribute_str(attr::USER_AGENT), Some("curl/8.5.0"));
    assert_eq!(server.attribute(attr::CANARY), Some(&AttrValue::Bool(true)));
    assert_eq!(
        server.attribute_str(attr::ERROR_TYPE),
        Some("upstream_timeout")
    );
    assert_eq!(spans[2].attribute_str(attr::DECISION), Some("expired"));
    assert_eq!(spans[2].classification, Classification::Fault);
    assert_eq!(
        spans[3].attribute_int(attr::HTTP_RESPONSE_STATUS_CODE),
        Some(304)
    );
    let client = &spans[4];
    assert_eq!(
        client.attribute_str(attr::HTTP_REQUEST_METHOD),
        Some("POST")
    );
    assert_eq!(
        client.attribute_str(attr::URL_FULL),
        Some("http://10.0.0.5:8080/pets/7")
    );
    assert_eq!(client.classification, Classification::Fault);
}

#[test]
fn unknown_labels_are_kept_as_text() {
    let mut e = websocket();
    e.integration.kind = Some("lambda");
    if let Some(stats) = e.websocket.as_mut() {
        stats.closed_by = Some("moon");
    }
    let spans = round_trip(&TracedExchange::from_exchange(&e).unwrap()).spans();
    assert_eq!(spans[0].attribute_str(attr::WS_CLOSED_BY), Some("moon"));
    assert_eq!(spans[1].name, "lambda");
}

#[test]
fn every_error_class_has_its_own_code() {
    use ErrorClass::*;
    let all = [
        MalformedRequest,
        HeadersTooLarge,
        PayloadTooLarge,
        RouteNotFound,
        MethodNotAllowed,
        ClientClosed,
        UpstreamConnect,
        UpstreamReset,
        UpstreamTimeout,
        UpstreamRejected,
        WebSocketFrameTooLarge,
        WebSocketMessageTooLarge,
        WebSocketIdleTimeout,
        WebSocketLifetimeExceeded,
        RejectedByPhase,
        Internal,
    ];
    for class in all {
        assert!(error_class_round_trips(class), "{class:?}");
    }
}

#[test]
fn damaged_or_unknown_records_are_errors_not_panics() {
    let traced = TracedExchange::from_exchange(&everything()).unwrap();
    let mut bytes = Vec::new();
    traced.encode_into(&mut bytes).unwrap();
    assert!(matches!(
        TracedExchange::decode(&[]),
        Err(TracedDecodeError::Empty)
    ));
    let mut future = bytes.clone();
    future[0] = 2;
    assert!(matches!(
        TracedExchange::decode(&future),
        Err(TracedDecodeError::Version(2))
    ));
    for cut in 1..bytes.len() {
        assert!(
            TracedExchange::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    for at in 1..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x55;
        if let Ok(traced) = TracedExchange::decode(&bad) {
            let _ = traced.spans();
        }
    }
}

#[test]
fn only_sampled_traced_exchanges_are_wanted() {
    let sampled = exchange(200);
    let mut unsampled = exchange(200);
    if let Some(trace) = unsampled.trace.as_mut() {
        trace.sampled = false;
    }
    let mut untraced = exchange(200);
    untraced.trace = None;
    assert!(is_sampled(&sampled));
    assert!(!is_sampled(&unsampled));
    assert!(!is_sampled(&untraced));
    assert!(TracedExchange::from_exchange(&untraced).is_none());
}
