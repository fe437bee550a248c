//! Trace context through a real upstream: the caller's trace is continued with the gateway's span
//! as the new parent, in both header formats; broken headers start a new trace without harming
//! the request; every response and every record carries the trace id, rejections included.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_proxy::Runtime;
use gatehouse_telemetry::TraceIds;
use gatehouse_telemetry::trace::{
    FLAG_SAMPLED, SamplingRule, parse_traceparent, parse_xray, parse_xray_root, push_hex,
};
use gatehouse_test_support::{GatewayHarness, Upstream, http_client};
use http::HeaderMap;

const CALL: Duration = Duration::from_secs(10);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

const CONFIG: &str = r#"
limits:
  max_payload_bytes: 100
apis:
  - name: shop
    stages: [{ name: prod }]
    routes:
      - path: '/echo/{proxy+}'
        integration: { type: http, url: '${UPSTREAM}/echo/{proxy}' }
"#;

async fn start(extra: &str) -> (GatewayHarness, Upstream) {
    let upstream = Upstream::start().await;
    let harness = GatewayHarness::builder(format!("{extra}{CONFIG}"))
        .upstream(&upstream)
        .start()
        .await;
    (harness, upstream)
}

/// Sends `GET path` with `headers`; returns the status and the response headers.
async fn get(harness: &GatewayHarness, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap) {
    let client = http_client();
    let mut request = client.get(harness.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(CALL, request.send())
        .await
        .expect("in time")
        .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    response.bytes().await.expect("body");
    (status, headers)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    push_hex(&mut out, bytes);
    String::from_utf8(out).expect("hex is ASCII")
}

/// What the upstream received, checked against the published record: both headers name the
/// record's trace and the gateway's span, and agree on the sampling decision.
fn assert_upstream_consistent(seen: &HeaderMap, trace: &TraceIds) {
    let parent = parse_traceparent(seen["traceparent"].as_bytes()).expect("a valid traceparent");
    assert_eq!(parent.trace_id, trace.trace_id);
    assert_eq!(
        parent.parent_id, trace.span_id,
        "the gateway's span is the new parent"
    );
    assert_eq!(parent.flags & FLAG_SAMPLED != 0, trace.sampled);
    let xray = parse_xray(seen["x-amzn-trace-id"].as_bytes()).expect("a valid X-Ray header");
    assert_eq!(xray.trace_id, trace.trace_id);
    assert_eq!(xray.parent_id, Some(trace.span_id));
    assert_eq!(xray.sampled, Some(trace.sampled));
}

fn assert_response_names(headers: &HeaderMap, trace: &TraceIds) {
    let value = headers["x-amzn-trace-id"].to_str().expect("ASCII");
    let root = value.strip_prefix("Root=").expect("Root=…");
    assert_eq!(parse_xray_root(root.as_bytes()), Some(trace.trace_id));
}

#[tokio::test]
async fn incoming_traceparent_is_continued_with_the_gateway_span_as_parent() {
    let (mut harness, upstream) = start("").await;
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let (status, response) = get(
        &harness,
        "/prod/echo/t",
        &[
            ("traceparent", &traceparent),
            (
                "tracestate",
                "rojo=00f067aa0ba902b7, Bad Key=1,congo=t61rcWkgMzE",
            ),
            // A stale X-Ray header loses to traceparent and is replaced.
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let record = harness.only_record().await;
    let trace = record.trace.expect("every record has a trace");
    assert_eq!(hex(&trace.trace_id), TRACE);
    assert_eq!(
        trace.parent_id.map(|p| hex(&p)).as_deref(),
        Some(CLIENT_SPAN)
    );
    assert_ne!(hex(&trace.span_id), CLIENT_SPAN);
    assert!(
        trace.sampled,
        "the caller's sampled flag is honoured by default"
    );
    let seen = upstream
        .last_seen()
        .expect("the upstream was called")
        .headers;
    assert_upstream_consistent(&seen, &trace);
    assert_eq!(
        seen["tracestate"],
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    assert_response_names(&response, &trace);
}

#[tokio::test]
async fn invalid_traceparent_starts_a_new_trace_and_the_request_succeeds() {
    let (mut harness, upstream) = start("").await;
    let uppercase = format!("00-{}-{CLIENT_SPAN}-01", TRACE.to_uppercase());
    let (status, response) = get(
        &harness,
        "/prod/echo/t",
        &[("traceparent", &uppercase), ("tracestate", "rojo=1")],
    )
    .await;
    assert_eq!(status, 200);
    let record = harness.only_record().await;
    let trace = record.trace.expect("a new trace");
    assert_ne!(hex(&trace.trace_id), TRACE);
    assert_eq!(trace.parent_id, None);
    let seen = upstream
        .last_seen()
        .expect("the upstream was called")
        .headers;
    assert_upstream_consistent(&seen, &trace);
    assert!(
        !seen.contains_key("tracestate"),
        "tracestate without a valid traceparent is dropped"
    );
    assert_response_names(&response, &trace);
}

#[tokio::test]
async fn xray_header_alone_is_continued() {
    let (mut harness, upstream) = start("").await;
    let (status, response) = get(
        &harness,
        "/prod/echo/t",
        &[(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        )],
    )
    .await;
    assert_eq!(status, 200);
    let record = harness.only_record().await;
    let trace = record.trace.expect("a trace");
    assert_eq!(hex(&trace.trace_id), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(
        trace.parent_id.map(|p| hex(&p)).as_deref(),
        Some("53995c3f42cd8ad8")
    );
    assert!(!trace.sampled, "Sampled=0 is honoured");
    let seen = upstream
        .last_seen()
        .expect("the upstream was called")
        .headers;
    assert_upstream_consistent(&seen, &trace);
    assert_eq!(
        seen["x-amzn-trace-id"],
        format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled=0",
            hex(&trace.span_id)
        )
        .as_str()
    );
    assert_response_names(&response, &trace);
}

#[tokio::test]
async fn rules_decide_when_the_incoming_flag_is_not_honoured() {
    let tracing = "tracing:
  honour_incoming_sampled: false
  sampling_rules:
    - { name: never, priority: 1, path: '/prod/echo/*', reservoir_per_second: 0, fixed_rate: 0 }
";
    let (mut harness, upstream) = start(tracing).await;
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let (status, _) = get(&harness, "/prod/echo/t", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 200);
    let trace = harness.only_record().await.trace.expect("a trace");
    assert_eq!(hex(&trace.trace_id), TRACE, "the trace is still continued");
    assert!(!trace.sampled);
    let seen = upstream
        .last_seen()
        .expect("the upstream was called")
        .headers;
    assert_upstream_consistent(&seen, &trace);
}

#[tokio::test]
async fn disabled_tracing_passes_headers_through_and_records_no_trace() {
    let (mut harness, upstream) = start("tracing: { enabled: false }\n").await;
    let (status, response) = get(&harness, "/prod/echo/t", &[("traceparent", "anything")]).await;
    assert_eq!(status, 200);
    assert!(!response.contains_key("x-amzn-trace-id"));
    assert!(harness.only_record().await.trace.is_none());
    let seen = upstream
        .last_seen()
        .expect("the upstream was called")
        .headers;
    assert_eq!(seen["traceparent"], "anything");
    assert!(!seen.contains_key("x-amzn-trace-id"));
}

#[tokio::test]
async fn gateway_errors_carry_the_trace_id() {
    let (mut harness, _upstream) = start("").await;
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    // Unrouted: 404, sampled by the rules with an empty api and stage, trace still continued.
    let (status, response) = get(&harness, "/nowhere", &[("traceparent", &traceparent)]).await;
    assert_eq!(status, 404);
    let trace = harness
        .only_record()
        .await
        .trace
        .expect("a 404 has a trace");
    assert_eq!(hex(&trace.trace_id), TRACE);
    assert_response_names(&response, &trace);

    // Refused at admission, before routing: 413.
    let client = http_client();
    let response = tokio::time::timeout(
        CALL,
        client
            .post(harness.url("/prod/echo/t"))
            .body(vec![b'x'; 1000])
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 413);
    let headers = response.headers().clone();
    drop(response);
    drop(client);
    let trace = harness
        .only_record()
        .await
        .trace
        .expect("a 413 has a trace");
    assert_eq!(trace.parent_id, None);
    assert_response_names(&headers, &trace);
}

#[tokio::test]
async fn a_swapped_runtime_brings_new_sampling_rules() {
    let (mut harness, _upstream) = start("").await;
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    get(&harness, "/prod/echo/t", &[("traceparent", &traceparent)]).await;
    let before = harness.only_record().await.trace.expect("a trace");
    assert!(before.sampled);

    let never = gatehouse_config::TracingSettings {
        honour_incoming_sampled: false,
        default_rule: SamplingRule::catch_all("default", 10_000, 0, 0.0),
        ..Default::default()
    };
    let current = harness.gateway().runtime();
    harness.gateway().swap(Runtime {
        table: Arc::clone(&current.table),
        limits: current.limits.clone(),
        tracer: never.tracer(),
    });
    get(&harness, "/prod/echo/t", &[("traceparent", &traceparent)]).await;
    let after = harness.only_record().await.trace.expect("a trace");
    assert_eq!(after.trace_id, before.trace_id);
    assert!(!after.sampled, "the reloaded rules decide");
}
