#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use http::{StatusCode, Uri};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use super::*;
use crate::metrics::otlp::tests::{Receiver, config, eventually, fast_retries};
use crate::spans::tests::{BASE_NS, SPAN, TRACE, exchange};
use crate::spans::{attr, spans_from_exchange};

const CALLER: [u8; 8] = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];

fn traces_endpoint(receiver: &Receiver) -> Uri {
    let metrics = receiver.endpoint().to_string();
    metrics
        .replace("/v1/metrics", "/v1/traces")
        .parse()
        .unwrap()
}

/// The spans of a GET answered 200 in 40 ms, continuing the caller's span [`CALLER`].
fn continued_spans() -> Vec<Span> {
    let mut e = exchange(200);
    if let Some(trace) = e.trace.as_mut() {
        trace.parent_id = Some(CALLER);
    }
    spans_from_exchange(&e)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.to_owned())
}

#[test]
fn spans_are_exported_with_ids_parentage_timing_and_attributes() {
    let receiver = Receiver::start(Vec::new());
    let (mut exporter, handle) =
        SpanExporter::spawn_with(config(traces_endpoint(&receiver)), fast_retries()).unwrap();
    let spans = continued_spans();
    exporter.write(spans.clone());
    eventually("the export", || handle.stats().minutes_exported == 1);
    handle.join();

    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1);
    let request = ExportTraceServiceRequest::decode(bodies[0].clone()).unwrap();
    let [resource_spans] = request.resource_spans.as_slice() else {
        panic!("one resource expected: {request:?}");
    };
    let resource = resource_spans.resource.as_ref().unwrap();
    assert_eq!(
        attribute(&resource.attributes, "service.name"),
        Some(&text("gatehouse"))
    );
    assert_eq!(
        attribute(&resource.attributes, "service.instance.id"),
        Some(&text("node-1"))
    );
    assert_eq!(
        attribute(&resource.attributes, "service.version"),
        Some(&text(env!("CARGO_PKG_VERSION")))
    );
    let [scope_spans] = resource_spans.scope_spans.as_slice() else {
        panic!("one scope expected");
    };
    assert_eq!(scope_spans.scope.as_ref().unwrap().name, SCOPE_NAME);
    let exported = &scope_spans.spans;
    assert_eq!(exported.len(), spans.len());
    assert!(exported.len() >= 2, "a server span and its children");

    let server = &exported[0];
    assert_eq!(server.trace_id, TRACE.to_vec());
    assert_eq!(server.span_id, SPAN.to_vec());
    assert_eq!(
        server.parent_span_id,
        CALLER.to_vec(),
        "the caller's span is the server span's parent"
    );
    assert_eq!(server.kind, span::SpanKind::Server as i32);
    assert_eq!(server.name, spans[0].name);
    assert_eq!(server.start_time_unix_nano, BASE_NS);
    assert_eq!(server.end_time_unix_nano, BASE_NS + 40_000_000);
    assert_eq!(
        attribute(&server.attributes, attr::HTTP_RESPONSE_STATUS_CODE),
        Some(&any_value::Value::IntValue(200))
    );
    assert_eq!(
        attribute(&server.attributes, attr::HTTP_ROUTE),
        Some(&text("/pets/{id}"))
    );
    assert_eq!(
        attribute(&server.attributes, CLASSIFICATION_ATTRIBUTE),
        Some(&text("ok"))
    );
    assert_eq!(
        server.status.as_ref().unwrap().code,
        status::StatusCode::Unset as i32
    );

    for (child, original) in exported.iter().zip(&spans).skip(1) {
        assert_eq!(child.trace_id, TRACE.to_vec());
        assert_eq!(child.span_id, original.span_id.to_vec());
        assert_eq!(child.parent_span_id, SPAN.to_vec(), "{}", child.name);
        assert_eq!(child.start_time_unix_nano, original.start_unix_nanos);
        assert_eq!(child.end_time_unix_nano, original.end_unix_nanos);
        assert!(child.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= server.end_time_unix_nano);
    }
    let client = exported
        .iter()
        .find(|s| s.kind == span::SpanKind::Client as i32)
        .expect("a client span for the integration");
    assert_eq!(client.start_time_unix_nano, BASE_NS + 2_000_000);
    assert_eq!(client.end_time_unix_nano, BASE_NS + 35_000_000);
}

#[test]
fn a_server_error_span_has_error_status() {
    let spans = spans_from_exchange(&exchange(502));
    let server = otlp_span(&spans[0]);
    assert_eq!(
        server.status.unwrap().code,
        status::StatusCode::Error as i32
    );
    assert_eq!(
        attribute(&server.attributes, CLASSIFICATION_ATTRIBUTE),
        Some(&text("fault"))
    );
    assert!(
        server.parent_span_id.is_empty(),
        "a trace the gateway started"
    );
}

#[test]
fn a_503_is_retried_and_the_batch_exported() {
    let receiver = Receiver::start(vec![StatusCode::SERVICE_UNAVAILABLE]);
    let (mut exporter, handle) =
        SpanExporter::spawn_with(config(traces_endpoint(&receiver)), fast_retries()).unwrap();
    exporter.write(continued_spans());
    eventually("the retried export", || {
        handle.stats().minutes_exported == 1
    });
    let stats = handle.join();
    assert_eq!((stats.retries, stats.minutes_failed), (1, 0));
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the retry resends the same spans");
}

#[test]
fn a_full_queue_drops_and_counts_batches_without_blocking() {
    // A collector that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint: Uri = format!("http://{}/v1/traces", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let (connected, on_connect) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            open.push(stream);
            let _ = connected.send(());
        }
    });
    let policy = ExportPolicy {
        queue_minutes: 2,
        attempts: 1,
        first_backoff: Duration::from_millis(10),
    };
    let config = OtlpConfig {
        timeout: Duration::from_millis(300),
        ..config(endpoint)
    };
    let (mut exporter, handle) = SpanExporter::spawn_with(config, policy).unwrap();
    exporter.write(continued_spans());
    on_connect.recv_timeout(Duration::from_secs(10)).unwrap();

    // The first batch is in flight: two more fit in the queue, three are dropped.
    let started = Instant::now();
    for _ in 0..5 {
        exporter.write(continued_spans());
    }
    assert!(started.elapsed() < Duration::from_secs(1), "write blocked");
    assert_eq!(handle.stats().minutes_dropped, 3);
    let stats = handle.join();
    assert_eq!(
        (
            stats.minutes_exported,
            stats.minutes_failed,
            stats.minutes_dropped
        ),
        (0, 3, 3)
    );
}
