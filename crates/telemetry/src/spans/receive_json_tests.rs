#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::super::{
    Classification, OtlpEncoding, Received, SpanKind, SpanStatus, attr, spans_from_otlp,
};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const SPAN: &str = "eee19b7ec3c1b174";
const PARENT: &str = "eee19b7ec3c1b173";

fn receive(body: &Value) -> Received {
    spans_from_otlp(OtlpEncoding::Json, body.to_string().as_bytes()).unwrap()
}

/// One resource with `service.name: inventory` and one scope holding `spans`.
fn request(spans: Value) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "inventory"}}]
            },
            "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0"}, "spans": spans}]
        }]
    })
}

/// A span as the OTLP specification's example writes it (lowerCamelCase, hex ids, enums as
/// integers, 64-bit integers as strings).
fn span() -> Value {
    json!({
        "traceId": TRACE,
        "spanId": SPAN,
        "parentSpanId": PARENT,
        "name": "GET /items/{id}",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [
            {"key": "http.response.status_code", "value": {"intValue": "503"}},
            {"key": "db.rows", "value": {"doubleValue": 2.5}},
            {"key": "cache.hit", "value": {"boolValue": false}},
            {"key": "db.system", "value": {"stringValue": "postgresql"}},
            {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 7}]}}},
            {"key": "limits", "value": {"kvlistValue": {"values": [{"key": "rps", "value": {"intValue": "10"}}]}}},
            {"key": "digest", "value": {"bytesValue": "Zm9vYmFy"}},
            {"key": "empty", "value": {}}
        ],
        "events": [{
            "timeUnixNano": "1544712660500000000",
            "name": "retry",
            "attributes": [{"key": "attempt", "value": {"intValue": 2}}]
        }],
        "status": {"code": 2, "message": "upstream down"},
        "flags": 769,
        "traceState": "",
        "links": []
    })
}

/// `value` with every object key turned from lowerCamelCase to snake_case.
fn snake_case(value: &Value) -> Value {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| {
                let mut snake = String::new();
                for c in key.chars() {
                    if c.is_ascii_uppercase() {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_lowercase());
                }
                (snake, snake_case(v))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Array(items) => items.iter().map(snake_case).collect(),
        other => other.clone(),
    }
}

fn answer(received: &Received) -> Value {
    serde_json::from_slice(&received.response()).unwrap()
}

#[test]
fn a_json_span_keeps_hex_ids_times_attributes_events_and_status() {
    let received = receive(&request(json!([span()])));
    assert_eq!(received.rejected, 0);
    assert_eq!(answer(&received), json!({}), "full success");
    let [span] = received.spans.as_slice() else {
        panic!("{received:?}")
    };
    assert_eq!(super::super::trace_id_hex(&span.trace_id), TRACE);
    assert_eq!(super::super::span_id_hex(&span.span_id), SPAN);
    assert_eq!(
        span.parent_span_id.map(|p| super::super::span_id_hex(&p)),
        Some(PARENT.to_owned())
    );
    assert_eq!(span.name, "GET /items/{id}");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(
        (span.start_unix_nanos, span.end_unix_nanos),
        (1_544_712_660_000_000_000, 1_544_712_661_000_000_000)
    );
    assert_eq!(
        span.attribute_int(attr::HTTP_RESPONSE_STATUS_CODE),
        Some(503)
    );
    assert_eq!(span.attribute_str("db.rows"), Some("2.5"));
    assert_eq!(
        span.attribute("cache.hit"),
        Some(&super::super::AttrValue::Bool(false))
    );
    assert_eq!(span.attribute_str("db.system"), Some("postgresql"));
    assert_eq!(span.attribute_str("tags"), Some(r#"["a",7]"#));
    assert_eq!(span.attribute_str("limits"), Some(r#"{"rps":10}"#));
    assert_eq!(span.attribute_str("digest"), Some("Zm9vYmFy"));
    assert_eq!(span.attribute("empty"), None, "an empty value is left out");
    assert_eq!(span.attribute_str(attr::SERVICE_NAME), Some("inventory"));
    let [event] = span.events.as_slice() else {
        panic!("{span:?}")
    };
    assert_eq!(event.name, "retry");
    assert_eq!(event.unix_nanos, 1_544_712_660_500_000_000);
    assert_eq!(
        event.attributes,
        [("attempt".to_owned(), super::super::AttrValue::Int(2))]
    );
    assert_eq!(span.status, SpanStatus::Error);
    assert_eq!(span.classification, Classification::Fault);
}

#[test]
fn snake_case_field_names_read_the_same_as_camel_case() {
    let camel = receive(&request(json!([span()])));
    let snake_body = snake_case(&request(json!([span()])));
    assert!(snake_body["resource_spans"][0]["scope_spans"][0]["spans"][0]["trace_id"].is_string());
    let snake = receive(&snake_body);
    assert_eq!(snake.rejected, 0);
    assert_eq!(snake.spans, camel.spans);
}

#[test]
fn numbers_strings_upper_case_hex_enum_names_and_nulls_are_read_alike() {
    let mut other = span();
    other["traceId"] = json!(TRACE.to_ascii_uppercase());
    other["kind"] = json!("SPAN_KIND_SERVER");
    other["startTimeUnixNano"] = json!(1_544_712_660_000_000_000_u64);
    other["endTimeUnixNano"] = json!(1_544_712_661_000_000_000_u64);
    other["attributes"][0]["value"]["intValue"] = json!(503);
    other["attributes"][1]["value"]["doubleValue"] = json!("2.5");
    other["attributes"][5]["value"]["kvlistValue"]["values"][0]["value"]["intValue"] = json!(10);
    other["events"][0]["timeUnixNano"] = json!(1_544_712_660_500_000_000_u64);
    other["events"][0]["attributes"][0]["value"]["intValue"] = json!("2");
    other["status"]["code"] = json!("STATUS_CODE_ERROR");
    other["links"] = Value::Null;
    other["somethingNew"] = json!({"from": "a later version"});
    let received = receive(&request(json!([other])));
    assert_eq!(received.rejected, 0);
    assert_eq!(received.spans, receive(&request(json!([span()]))).spans);

    // Kinds by number: producer counts as client, consumer and unknown ones as internal.
    for (kind, expected) in [
        (1, SpanKind::Internal),
        (2, SpanKind::Server),
        (3, SpanKind::Client),
        (4, SpanKind::Client),
        (5, SpanKind::Internal),
        (42, SpanKind::Internal),
    ] {
        let mut span = span();
        span["kind"] = json!(kind);
        assert_eq!(
            receive(&request(json!([span]))).spans[0].kind,
            expected,
            "{kind}"
        );
    }

    // A minimal span: nulls and missing fields are defaults.
    let minimal = json!({"traceId": TRACE, "spanId": SPAN, "parentSpanId": null, "name": null,
                         "attributes": null, "events": null, "status": null});
    let received = receive(
        &json!({"resourceSpans": [{"resource": null, "scopeSpans": [{"spans": [minimal]}]}]}),
    );
    let [span] = received.spans.as_slice() else {
        panic!("{received:?}")
    };
    assert_eq!(span.parent_span_id, None);
    assert_eq!(span.kind, SpanKind::Internal);
    assert_eq!(
        span.attribute_str(attr::SERVICE_NAME),
        Some("unknown_service")
    );
    assert_eq!(receive(&json!({})).spans, []);
}

#[test]
fn spans_with_invalid_ids_are_rejected_and_counted_in_a_json_partial_success() {
    let with = |key: &str, value: Value| {
        let mut span = span();
        span[key] = value;
        span
    };
    let invalid = [
        // Base64, as a protobuf-JSON library would write bytes: OTLP/JSON ids are hex.
        with("traceId", json!("W47/95gDgQPSabYzgT/GDA==")),
        with("spanId", json!("7uGbfsPBsXQ=")),
        with("traceId", json!("5b8efff798038103")),
        with("spanId", json!("eee19b7ec3c1b17z")),
        with("traceId", json!("")),
        with("traceId", json!("00000000000000000000000000000000")),
        with("spanId", json!("0000000000000000")),
        with("parentSpanId", json!("eee19b")),
    ];
    let count = invalid.len() as i64;
    let mut spans: Vec<Value> = invalid.into();
    spans.push(span());
    let received = receive(&request(Value::Array(spans)));
    assert_eq!((received.spans.len(), received.rejected), (1, count));
    let answer = answer(&received);
    assert_eq!(
        answer["partialSuccess"]["rejectedSpans"],
        json!(count.to_string()),
        "an int64 is a decimal string in JSON"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("hex"), "{message}");
}

#[test]
fn malformed_json_is_an_error_that_says_where() {
    for (body, expected) in [
        ("", "EOF while parsing"),
        ("{\"resourceSpans\": [", "EOF while parsing"),
        ("{} trailing", "trailing characters"),
        ("[]", "expected an object with \"resourceSpans\""),
        ("\u{feff}{}", "expected an object"),
        (
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}"#,
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: invalid value: string \"soon\"",
        ),
        (
            r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "n", "value": {"intValue": 1.5}}]}]}]}]}"#,
            "intValue: invalid value: floating point `1.5`",
        ),
        (
            r#"{"resourceSpans": {"scopeSpans": []}}"#,
            "resourceSpans: invalid type: map, expected a sequence",
        ),
    ] {
        let error = spans_from_otlp(OtlpEncoding::Json, body.as_bytes()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("the body is not an OTLP ExportTraceServiceRequest in JSON: "),
            "{message}"
        );
        assert!(message.contains(expected), "{body}: {message}");
    }
}

#[test]
fn protobuf_is_not_json() {
    let error = spans_from_otlp(OtlpEncoding::Json, &[0x0a, 0x02, 0x0a, 0x00]).unwrap_err();
    assert!(error.to_string().contains("JSON"), "{error}");
}
