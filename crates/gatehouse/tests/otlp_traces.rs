//! OTLP trace export end to end: with `tracing.otlp` set, a request whose caller sent a sampled
//! `traceparent` reaches a collector (a real loopback receiver decoding the protobuf) as the
//! gateway's spans: the server span continues the caller's trace under the caller's span, and the
//! other spans are its children. And the receiver: a service behind the gateway POSTs its own
//! spans to the admin listener's `/v1/traces` (with the admin token), and they join the
//! gateway's trace in `GET /admin/traces/{id}` and the `gatehouse traces get` waterfall, in
//! either OTLP/HTTP encoding (protobuf, JSON).

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;
use support::{Gatehouse, TOKEN, run};
use tokio::sync::mpsc;

/// A collector on loopback: the `x-tenant` header and the decoded body of every export.
async fn collector() -> (
    String,
    mpsc::UnboundedReceiver<(String, ExportTraceServiceRequest)>,
) {
    let (url, mut raw) = support::protobuf_receiver("/v1/traces").await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((headers, body)) = raw.recv().await {
            let tenant = headers["x-tenant"].to_str().unwrap().to_owned();
            let _ = tx.send((tenant, ExportTraceServiceRequest::decode(body).unwrap()));
        }
    });
    (url, rx)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_request_reaches_an_otlp_collector_as_spans() {
    let (url, mut requests) = collector().await;
    let config = format!(
        "listeners:\n  - name: public\n    bind: 127.0.0.1:0\ndata_dir: data\naccess_log:\n  destination: off\n\
         tracing:\n  otlp:\n    endpoint: {url}\n    headers: {{ x-tenant: acme }}\n\
         apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
         \x20     - method: GET\n        path: /items/{{id}}\n        integration:\n          type: mock\n          body: item\n"
    );
    let gatehouse = Gatehouse::start(&config, &[]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .get(gatehouse.url("/prod/items/7"))
        .header("traceparent", format!("00-{trace_id}-{caller}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (tenant, request) = tokio::time::timeout(Duration::from_secs(15), requests.recv())
        .await
        .expect("no spans reached the collector")
        .unwrap();
    assert_eq!(tenant, "acme", "configured headers are sent");
    let resource_spans = &request.resource_spans[0];
    let resource = resource_spans.resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(service, Some(AnyValue::StringValue("gatehouse".into())));
    let spans: Vec<_> = resource_spans
        .scope_spans
        .iter()
        .flat_map(|s| &s.spans)
        .collect();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert_eq!(hex(&server.trace_id), trace_id, "the caller's trace");
    assert_eq!(
        hex(&server.parent_span_id),
        caller,
        "under the caller's span"
    );
    assert_eq!(server.name, "GET /items/{id}");
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    assert!(
        spans.len() >= 2,
        "children besides the server span: {spans:?}"
    );
    for child in spans.iter().filter(|s| s.span_id != server.span_id) {
        assert_eq!(child.trace_id, server.trace_id);
        assert_eq!(child.parent_span_id, server.span_id, "{}", child.name);
    }
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

async fn admin_trace(gatehouse: &Gatehouse, id: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(gatehouse.admin_url(&format!("/admin/traces/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (response.status() == 200).then_some(response.json().await.unwrap())
}

/// The trace once the gateway has stored it.
async fn stored_trace(gatehouse: &Gatehouse, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(trace) = admin_trace(gatehouse, id).await {
            return trace;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trace was never stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The span named `name` of trace `id`, once stored.
async fn stored_span(gatehouse: &Gatehouse, id: &str, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let trace = admin_trace(gatehouse, id).await.unwrap();
        let found = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned();
        if let Some(span) = found {
            return span;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "span {name} never joined: {trace}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const RECEIVER_CONFIG: &str = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\naccess_log:\n  destination: off\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /items/{id}\n        integration:\n          type: mock\n          body: item\n";

/// Sends a sampled request in trace `trace_id` and returns the gateway's stored server span.
async fn traced_server_span(gatehouse: &Gatehouse, trace_id: &str) -> Value {
    let response = reqwest::Client::new()
        .get(gatehouse.url("/prod/items/7"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trace = stored_trace(gatehouse, trace_id).await;
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "server")
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_a_service_sends_to_the_receiver_join_the_gateways_trace() {
    let gatehouse = Gatehouse::start(RECEIVER_CONFIG, &[]);
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let server = traced_server_span(&gatehouse, trace_id).await;
    let gateway_span = server["spanId"].as_str().unwrap();
    let start = server["startUnixNano"].as_u64().unwrap();

    // The upstream service's own span, a child of the gateway's server span.
    let service_span = Span {
        trace_id: unhex::<16>(trace_id).to_vec(),
        span_id: unhex::<8>("a1a2a3a4a5a6a7a8").to_vec(),
        parent_span_id: unhex::<8>(gateway_span).to_vec(),
        name: "SELECT items".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: start + 1_000,
        end_time_unix_nano: start + 2_000,
        ..Span::default()
    };
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(any_value::Value::StringValue("inventory".into())),
                    }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![service_span],
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec();
    let client = reqwest::Client::new();
    let refused = client
        .post(gatehouse.admin_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the receiver needs the admin token");
    let text = client
        .post(gatehouse.admin_url("/v1/traces"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let accepted = client
        .post(gatehouse.admin_url("/v1/traces"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(accepted.bytes().await.unwrap()).unwrap();
    assert!(answer.partial_success.is_none(), "{answer:?}");

    let joined = stored_span(&gatehouse, trace_id, "SELECT items").await;
    assert_eq!(joined["parentSpanId"], gateway_span);
    assert_eq!(joined["attributes"]["service.name"], "inventory");

    let admin = gatehouse.admin_url("");
    let (code, stdout, stderr) = run(
        &[
            "traces", "get", trace_id, "--admin", &admin, "--token", TOKEN,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let gateway_line = stdout
        .lines()
        .position(|l| l.starts_with("GET /items/{id}"));
    let service_line = stdout
        .lines()
        .position(|l| l.trim_start().starts_with("SELECT items"));
    assert!(
        matches!((gateway_line, service_line), (Some(g), Some(s)) if s > g),
        "the service span prints under the gateway's: {stdout}"
    );
    let indented = stdout.lines().find(|l| l.contains("SELECT items")).unwrap();
    assert!(indented.starts_with("  "), "{stdout}");

    // Still one request listed: the service's server span is not a request of the gateway.
    let (code, stdout, stderr) = run(
        &[
            "traces", "search", "-o", "json", "--admin", &admin, "--token", TOKEN,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["traces"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_spans_a_service_sends_join_the_gateways_trace() {
    let gatehouse = Gatehouse::start(RECEIVER_CONFIG, &[]);
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4736";
    let server = traced_server_span(&gatehouse, trace_id).await;
    let gateway_span = server["spanId"].as_str().unwrap();
    let start = server["startUnixNano"].as_u64().unwrap();

    // What an OpenTelemetry SDK's OTLP/HTTP JSON exporter sends: hex ids, int64s as strings,
    // enums as integers. The second span's id is base64 (a protobuf-JSON library's habit), which
    // OTLP/JSON does not allow: it is rejected and counted.
    let span = |name: &str, span_id: &str| {
        serde_json::json!({
            "traceId": trace_id,
            "spanId": span_id,
            "parentSpanId": gateway_span,
            "name": name,
            "kind": 2,
            "startTimeUnixNano": (start + 1_000).to_string(),
            "endTimeUnixNano": (start + 2_000).to_string(),
            "attributes": [
                {"key": "db.rows", "value": {"intValue": "3"}},
                {"key": "db.tables", "value": {"arrayValue": {"values": [{"stringValue": "items"}]}}}
            ],
            "events": [{"timeUnixNano": (start + 1_500).to_string(), "name": "cache miss"}],
            "status": {"code": 1}
        })
    };
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "inventory"}}
            ]},
            "scopeSpans": [{
                "scope": {"name": "inventory.db"},
                "spans": [span("SELECT items", "b1b2b3b4b5b6b7b8"), span("lost", "sbKztLW2t7g=")]
            }]
        }]
    });
    let client = reqwest::Client::new();
    let post = |content_type: &str, body: String| {
        client
            .post(gatehouse.admin_url("/v1/traces"))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let accepted = post("application/json", body.to_string()).await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["content-type"], "application/json");
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1", "{answer}");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("hex"),
        "{answer}"
    );

    let joined = stored_span(&gatehouse, trace_id, "SELECT items").await;
    assert_eq!(joined["parentSpanId"], gateway_span);
    assert_eq!(joined["kind"], "server");
    assert_eq!(joined["startUnixNano"], start + 1_000);
    assert_eq!(joined["attributes"]["service.name"], "inventory");
    assert_eq!(joined["attributes"]["db.rows"], 3);
    assert_eq!(joined["attributes"]["db.tables"], r#"["items"]"#);
    assert_eq!(joined["events"][0]["name"], "cache miss");
    let trace = admin_trace(&gatehouse, trace_id).await.unwrap();
    assert!(
        !trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "lost"),
        "{trace}"
    );

    let bad = post("application/json", "{\"resourceSpans\": [{]}".into())
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let message: Value = bad.json().await.unwrap();
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .starts_with("the body is not an OTLP ExportTraceServiceRequest in JSON"),
        "{message}"
    );
}
