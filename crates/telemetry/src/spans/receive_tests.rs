#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

use super::*;

const TRACE: [u8; 16] = [7; 16];
const GATEWAY_SPAN: [u8; 8] = [1; 8];
const SERVICE_SPAN: [u8; 8] = [2; 8];

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn request(service: &str, spans: Vec<OtlpSpan>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(service.to_owned()),
                )],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

fn service_span() -> OtlpSpan {
    OtlpSpan {
        trace_id: TRACE.to_vec(),
        span_id: SERVICE_SPAN.to_vec(),
        parent_span_id: GATEWAY_SPAN.to_vec(),
        name: "GET /items/{id}".to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 5_000,
        attributes: vec![
            kv(
                attr::HTTP_RESPONSE_STATUS_CODE,
                any_value::Value::IntValue(503),
            ),
            kv("db.rows", any_value::Value::DoubleValue(2.5)),
            kv(
                "service.name",
                any_value::Value::StringValue("spoofed".into()),
            ),
        ],
        status: Some(Status {
            code: status::StatusCode::Error as i32,
            message: String::new(),
        }),
        ..OtlpSpan::default()
    }
}

#[test]
fn a_service_span_keeps_ids_parent_timing_and_takes_the_resource_service_name() {
    let received = spans_from_otlp(
        OtlpEncoding::Protobuf,
        &request("inventory", vec![service_span()]),
    )
    .unwrap();
    assert_eq!(received.rejected, 0);
    let [span] = received.spans.as_slice() else {
        panic!("{received:?}")
    };
    assert_eq!(span.trace_id, TRACE);
    assert_eq!(span.span_id, SERVICE_SPAN);
    assert_eq!(span.parent_span_id, Some(GATEWAY_SPAN));
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!((span.start_unix_nanos, span.end_unix_nanos), (1_000, 5_000));
    assert_eq!(span.attribute_str(attr::SERVICE_NAME), Some("inventory"));
    assert_eq!(
        span.attribute_int(attr::HTTP_RESPONSE_STATUS_CODE),
        Some(503)
    );
    assert_eq!(span.attribute_str("db.rows"), Some("2.5"));
    assert_eq!(span.status, SpanStatus::Error);
    assert_eq!(span.classification, Classification::Fault);
    assert!(
        ExportTraceServiceResponse::decode(received.response().as_slice())
            .unwrap()
            .partial_success
            .is_none()
    );
}

#[test]
fn spans_with_malformed_ids_are_rejected_and_counted() {
    let short_trace = OtlpSpan {
        trace_id: vec![1; 8],
        ..service_span()
    };
    let zero_span = OtlpSpan {
        span_id: vec![0; 8],
        ..service_span()
    };
    let received = spans_from_otlp(
        OtlpEncoding::Protobuf,
        &request("inventory", vec![short_trace, zero_span, service_span()]),
    )
    .unwrap();
    assert_eq!((received.spans.len(), received.rejected), (1, 2));
    let answer = ExportTraceServiceResponse::decode(received.response().as_slice()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 2);
}

#[test]
fn a_body_that_is_not_protobuf_is_an_error() {
    assert!(spans_from_otlp(OtlpEncoding::Protobuf, b"{\"resourceSpans\": []}").is_err());
}

#[test]
fn arrays_and_maps_become_json_text_and_bytes_base64() {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    let strings = |values: &[&str]| ArrayValue {
        values: values
            .iter()
            .map(|s| AnyValue {
                value: Some(any_value::Value::StringValue((*s).to_owned())),
            })
            .collect(),
    };
    let span = OtlpSpan {
        attributes: vec![
            kv(
                "http.request.header.accept",
                any_value::Value::ArrayValue(strings(&["text/html", "*/*"])),
            ),
            kv(
                "limits",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("rps", any_value::Value::IntValue(10)),
                        kv("tags", any_value::Value::ArrayValue(strings(&["a"]))),
                        kv("raw", any_value::Value::BytesValue(b"hi".to_vec())),
                    ],
                }),
            ),
            kv("digest", any_value::Value::BytesValue(b"foobar".to_vec())),
        ],
        ..service_span()
    };
    let received =
        spans_from_otlp(OtlpEncoding::Protobuf, &request("inventory", vec![span])).unwrap();
    let span = &received.spans[0];
    assert_eq!(
        span.attribute_str("http.request.header.accept"),
        Some(r#"["text/html","*/*"]"#)
    );
    let limits: serde_json::Value =
        serde_json::from_str(span.attribute_str("limits").unwrap()).unwrap();
    assert_eq!(
        limits,
        serde_json::json!({"rps": 10, "tags": ["a"], "raw": "aGk="})
    );
    assert_eq!(span.attribute_str("digest"), Some("Zm9vYmFy"));
}

#[test]
fn base64_matches_rfc_4648_test_vectors() {
    for (bytes, text) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(bytes.as_bytes()), text, "{bytes:?}");
    }
    assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
}
