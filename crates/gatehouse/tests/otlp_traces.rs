//! OTLP trace export end to end: with `tracing.otlp` set, a request whose caller sent a sampled
//! `traceparent` reaches a collector (a real loopback receiver decoding the protobuf) as the
//! gateway's spans: the server span continues the caller's trace under the caller's span, and the
//! other spans are its children.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use std::convert::Infallible;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use support::Gatehouse;
use tokio::sync::mpsc;

/// A collector on loopback: every request's headers (as `name: value` lines) and decoded body.
async fn collector() -> (
    String,
    mpsc::UnboundedReceiver<(String, ExportTraceServiceRequest)>,
) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        assert_eq!(request.uri().path(), "/v1/traces");
                        assert_eq!(request.headers()["content-type"], "application/x-protobuf");
                        let tenant = request.headers()["x-tenant"].to_str().unwrap().to_owned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send((tenant, ExportTraceServiceRequest::decode(body).unwrap()));
                        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::new(),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
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
