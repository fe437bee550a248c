//! The service graph end to end on a three-hop chain: a client calls the gateway, whose upstream
//! is a real loopback service "A"; A calls service "B" (another loopback server), continuing the
//! trace the gateway forwarded, and sends its spans and B's to the gateway's `/v1/traces` with
//! the admin token, as an OpenTelemetry exporter would. `GET /admin/graph` and `gatehouse graph`
//! then show client → shop/prod → A → B with their counts.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;
use support::{Gatehouse, TOKEN, run};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string("service.name", service)],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        schema_url: String::new(),
    }
}

/// Serves every request with `handle(traceparent)` on a loopback port.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(Option<String>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let handle = handle.clone();
                    async move {
                        let traceparent = request
                            .headers()
                            .get("traceparent")
                            .map(|v| v.to_str().unwrap().to_owned());
                        handle(traceparent).await;
                        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Service A: continues the gateway's trace, calls B under its own client span, and sends its
/// server and client spans and B's server span to the gateway's receiver.
async fn service_a(traceparent: Option<String>, b: SocketAddr, admin: &str) {
    let start = now_ns();
    let traceparent = traceparent.expect("the gateway forwards traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    let (trace_id, gateway_parent) = (unhex(parts[1]), unhex(parts[2]));
    let server_id = unhex("a1a2a3a4a5a6a7a8");
    let client_id = unhex("b1b2b3b4b5b6b7b8");
    let b_id = unhex("c1c2c3c4c5c6c7c8");
    let answer = reqwest::Client::new()
        .get(format!("http://{b}/stock"))
        .header(
            "traceparent",
            format!("00-{}-{}-01", parts[1], hex(&client_id)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let end = now_ns();
    let span = |id: &[u8], parent: &[u8], name: &str, kind: SpanKind, attrs| Span {
        trace_id: trace_id.clone(),
        span_id: id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs,
        ..Span::default()
    };
    let body = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(
                "A",
                vec![
                    span(
                        &server_id,
                        &gateway_parent,
                        "GET /work",
                        SpanKind::Server,
                        vec![],
                    ),
                    span(
                        &client_id,
                        &server_id,
                        "GET",
                        SpanKind::Client,
                        vec![string("server.address", "127.0.0.1")],
                    ),
                ],
            ),
            resource_spans(
                "B",
                vec![span(
                    &b_id,
                    &client_id,
                    "GET /stock",
                    SpanKind::Server,
                    vec![],
                )],
            ),
        ],
    }
    .encode_to_vec();
    let sent = reqwest::Client::new()
        .post(format!("{admin}/v1/traces"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
}

async fn admin_graph(gatehouse: &Gatehouse) -> Value {
    reqwest::Client::new()
        .get(gatehouse.admin_url("/admin/graph?since=1h"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The graph once its edges are `expected` (the store shows traces within about a second).
async fn wait_for_edges<S: AsRef<str>>(gatehouse: &Gatehouse, expected: &[S]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let graph = admin_graph(gatehouse).await;
        let edges = edge_counts(&graph);
        if edges
            .iter()
            .map(String::as_str)
            .eq(expected.iter().map(AsRef::as_ref))
        {
            return graph;
        }
        assert!(
            Instant::now() < deadline,
            "the graph never showed the expected edges: {graph}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `from → to: requests` for each edge of the answer.
fn edge_counts(graph: &Value) -> Vec<String> {
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} → {}: {}", e["from"], e["to"], e["requests"]).replace('"', ""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_hop_chain_shows_client_gateway_a_and_b_in_the_graph() {
    let b = serve(|_| async {}).await;
    let admin: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let a_admin = admin.clone();
    let a = serve(move |traceparent| {
        let admin = a_admin.clone();
        async move { service_a(traceparent, b, admin.get().unwrap()).await }
    })
    .await;
    let config = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\naccess_log:\n  destination: off\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /work\n        integration:\n          type: http\n          url: ${UPSTREAM}/work\n";
    let upstream = format!("http://{a}");
    let gatehouse = Gatehouse::start(config, &[("UPSTREAM", upstream.as_str())]);
    admin.set(gatehouse.admin_url("")).unwrap();

    for trace in [
        "5bf92f3577b34da6a3ce929d0e0e4736",
        "6bf92f3577b34da6a3ce929d0e0e4736",
    ] {
        let response = reqwest::Client::new()
            .get(gatehouse.url("/prod/work"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let expected = [
        "client → api:shop/prod: 2",
        "api:shop/prod → service:A: 2",
        "service:A → service:B: 2",
    ];
    let graph = wait_for_edges(&gatehouse, &expected).await;
    let ids: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["client", "api:shop/prod", "service:A", "service:B"]);
    assert_eq!(graph["capped"], false);
    let gateway_edge = &graph["edges"][0];
    assert_eq!(gateway_edge["faults"], 0);
    assert!(
        gateway_edge["latencyMs"]["p99"].as_f64().unwrap() > 0.0,
        "{graph}"
    );

    let admin = gatehouse.admin_url("");
    let (code, stdout, stderr) = run(&["graph", "--admin", &admin, "--token", TOKEN], &[]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("client → shop/prod  2 req  0 err  0 fault  0 thr  p50 "),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("A → B               2 req"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(
        &[
            "graph", "-o", "dot", "--since", "15m", "--admin", &admin, "--token", TOKEN,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("digraph gatehouse {"), "{stdout}");
    assert!(
        stdout.contains("\"service:A\" -> \"service:B\" [label=\"2 req, 0 err"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(
        &["graph", "-o", "json", "--admin", &admin, "--token", TOKEN],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(edge_counts(&printed), expected);
}

/// An upstream that sends no spans of its own is still a node, named by the host and port the
/// gateway called (recorded on sampled requests without any execution log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_without_spans_is_named_by_the_address_the_gateway_called() {
    let silent = serve(|_| async {}).await;
    let config = "listeners:\n  - name: public\n    bind: 127.0.0.1:0\n\
admin:\n  bind: 127.0.0.1:0\n  token: ${GATEHOUSE_ADMIN_TOKEN}\n\
data_dir: data\naccess_log:\n  destination: off\n\
apis:\n  - name: shop\n    stages:\n      - name: prod\n    routes:\n\
\x20     - method: GET\n        path: /stock\n        integration:\n          type: http\n          url: ${UPSTREAM}/stock\n";
    let upstream = format!("http://{silent}");
    let gatehouse = Gatehouse::start(config, &[("UPSTREAM", upstream.as_str())]);
    for trace in [
        "7bf92f3577b34da6a3ce929d0e0e4736",
        "8bf92f3577b34da6a3ce929d0e0e4736",
    ] {
        let response = reqwest::Client::new()
            .get(gatehouse.url("/prod/stock?secret=1"))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let node = format!("upstream:{silent}");
    let expected = [
        "client → api:shop/prod: 2".to_owned(),
        format!("api:shop/prod → {node}: 2"),
    ];
    let graph = wait_for_edges(&gatehouse, &expected).await;
    assert_eq!(graph["nodes"][2]["id"], node.as_str(), "{graph}");
    // The stored integration span carries the URL without its query.
    let text = reqwest::Client::new()
        .get(gatehouse.admin_url("/admin/traces/7bf92f3577b34da6a3ce929d0e0e4736"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!("http://{silent}/stock")), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
