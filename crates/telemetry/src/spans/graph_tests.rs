//! The graph builder against small hand-made traces: each case names the spans and the edges
//! they must give.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::spans::{AttrValue, SpanStatus};

const TRACE: [u8; 16] = [7; 16];

fn span(id: u8, parent: Option<u8>, kind: SpanKind, attrs: &[(&str, &str)]) -> Span {
    Span {
        trace_id: TRACE,
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        name: format!("span {id}"),
        kind,
        start_unix_nanos: 1_000,
        end_unix_nanos: 1_000 + u64::from(id) * 1_000_000,
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
            .collect(),
        events: Vec::new(),
        status: SpanStatus::Unset,
        classification: Classification::Ok,
    }
}

fn classified(mut span: Span, class: Classification) -> Span {
    span.classification = class;
    span
}

const GATEWAY: &[(&str, &str)] = &[("gatehouse.api", "petstore"), ("gatehouse.stage", "prod")];

/// Edges as `from -> to requests/errors/faults/throttles`, in the graph's order.
fn edges(spans: &[Span]) -> Vec<String> {
    build_graph(spans)
        .edges
        .iter()
        .map(|e| {
            format!(
                "{} -> {} {}/{}/{}/{}",
                e.from.id(),
                e.to.id(),
                e.requests,
                e.errors,
                e.faults,
                e.throttles
            )
        })
        .collect()
}

#[test]
fn the_three_hop_chain_merges_the_upstream_with_the_service_that_answered() {
    let spans = [
        span(1, None, SpanKind::Server, GATEWAY),
        span(
            2,
            Some(1),
            SpanKind::Internal,
            &[("gatehouse.phase", "auth")],
        ),
        span(
            3,
            Some(1),
            SpanKind::Client,
            &[("gatehouse.integration", "http")],
        ),
        span(4, Some(3), SpanKind::Server, &[("service.name", "A")]),
        span(
            5,
            Some(4),
            SpanKind::Client,
            &[("service.name", "A"), ("server.address", "127.0.0.1")],
        ),
        span(6, Some(5), SpanKind::Server, &[("service.name", "B")]),
    ];
    assert_eq!(
        edges(&spans),
        [
            "client -> api:petstore/prod 1/0/0/0",
            "api:petstore/prod -> service:A 1/0/0/0",
            "service:A -> service:B 1/0/0/0",
        ]
    );
    let graph = build_graph(&spans);
    let ids: Vec<String> = graph.nodes.iter().map(Node::id).collect();
    assert_eq!(
        ids,
        ["client", "api:petstore/prod", "service:A", "service:B"]
    );
    // Counted from the caller's client span: span 3 lasts 3 ms.
    assert_eq!(graph.edges[1].latency.p50, 3_000_000);
}

#[test]
fn a_service_under_the_gateways_server_span_is_the_integrations_callee() {
    // The traceparent the gateway forwards names its server span, not the integration span.
    let spans = [
        span(1, None, SpanKind::Server, GATEWAY),
        span(
            2,
            Some(1),
            SpanKind::Client,
            &[("gatehouse.integration", "http")],
        ),
        span(3, Some(1), SpanKind::Server, &[("service.name", "A")]),
    ];
    assert_eq!(
        edges(&spans),
        [
            "client -> api:petstore/prod 1/0/0/0",
            "api:petstore/prod -> service:A 1/0/0/0",
        ]
    );
}

#[test]
fn upstreams_without_spans_are_named_by_address_or_url_or_their_api() {
    let spans = [
        span(1, None, SpanKind::Server, GATEWAY),
        span(
            2,
            Some(1),
            SpanKind::Client,
            &[("url.full", "http://user@10.0.0.5:8080/pets?x=1")],
        ),
        span(
            3,
            None,
            SpanKind::Server,
            &[("gatehouse.api", "shop"), ("gatehouse.stage", "dev")],
        ),
        span(
            4,
            Some(3),
            SpanKind::Client,
            &[("gatehouse.integration", "mock")],
        ),
        span(
            5,
            None,
            SpanKind::Client,
            &[("service.name", "A"), ("server.address", "db")],
        ),
    ];
    assert_eq!(
        edges(&spans),
        [
            "client -> api:petstore/prod 1/0/0/0",
            "client -> api:shop/dev 1/0/0/0",
            "api:petstore/prod -> upstream:10.0.0.5:8080 1/0/0/0",
            "api:shop/dev -> upstream:shop/dev mock 1/0/0/0",
            "service:A -> upstream:db 1/0/0/0",
        ]
    );
}

#[test]
fn classifications_are_counted_and_percentiles_are_nearest_rank() {
    let mut spans = Vec::new();
    for (i, class) in [
        Classification::Ok,
        Classification::Error,
        Classification::Fault,
        Classification::Throttle,
        Classification::Fault,
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = classified(span(i as u8 + 1, None, SpanKind::Server, GATEWAY), class);
        s.trace_id = [i as u8; 16];
        spans.push(s);
    }
    assert_eq!(edges(&spans), ["client -> api:petstore/prod 5/1/2/1"]);
    let latency = build_graph(&spans).edges[0].latency;
    assert_eq!(
        latency,
        Latency {
            p50: 3_000_000,
            p90: 5_000_000,
            p99: 5_000_000
        }
    );
}

#[test]
fn a_service_span_whose_caller_is_unknown_hangs_off_the_client() {
    let spans = [
        span(1, None, SpanKind::Server, &[("service.name", "A")]),
        span(2, Some(9), SpanKind::Server, &[("service.name", "B")]),
        // A server span under an internal span of the same service is not a call edge.
        span(3, Some(1), SpanKind::Internal, &[("service.name", "A")]),
        span(4, Some(3), SpanKind::Server, &[("service.name", "A")]),
    ];
    assert_eq!(
        edges(&spans),
        ["client -> service:A 1/0/0/0", "client -> service:B 1/0/0/0"]
    );
}

#[test]
fn no_spans_is_an_empty_graph() {
    assert_eq!(build_graph(&[]), ServiceGraph::default());
    assert_eq!(nearest_rank(&[], 99), 0);
    assert_eq!(nearest_rank(&[4], 1), 4);
}
