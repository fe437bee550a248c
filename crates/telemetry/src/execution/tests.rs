//! Table tests of the execution-log renderer over hand-built exchanges.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

use super::*;
use crate::bus::tests::sample;
use crate::{Decision, ErrorClass, RouteLabels};

fn settings(level: ExecutionLogLevel, data_trace: bool) -> ExecutionLogSettings {
    ExecutionLogSettings {
        level,
        data_trace,
        max_body_bytes: 16,
        redact_headers: vec![HeaderName::from_static("x-secret")],
        redact_json_fields: vec!["password".into(), "token".into()],
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn body(bytes: &[u8], total: u64) -> CapturedBody {
    CapturedBody {
        bytes: bytes.to_vec(),
        total,
    }
}

/// A proxied POST that went through two phases and an upstream, with a full data trace.
fn proxied(settings: ExecutionLogSettings) -> Exchange {
    let mut exchange = sample();
    exchange.method = Some(Method::POST);
    exchange.path = "/prod/pets/7".into();
    exchange.status = 201;
    exchange.bytes_in = 40;
    exchange.bytes_out = 20;
    exchange.route = Some(RouteLabels {
        api: Arc::from("pets"),
        api_version: Arc::from("v1"),
        stage: Arc::from("prod"),
        resource_path: Arc::from("/pets/{id}"),
    });
    exchange.integration.kind = Some("http");
    exchange.integration.status = Some(201);
    exchange.decisions.waf = Some(Decision::Allowed);
    exchange.decisions.cache = Some(Decision::Miss);
    exchange.timing.received_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_676_364_942);
    exchange.timing.routed = Some(Duration::from_micros(50));
    exchange.timing.integration_start = Some(Duration::from_micros(300));
    exchange.timing.integration_response = Some(Duration::from_micros(2_300));
    exchange.timing.done = Duration::from_micros(3_000);
    exchange.execution = Some(Box::new(ExecutionDetail {
        path_params: vec![("id".into(), "7".into())],
        stage_variables: Arc::from([(Arc::from("backend"), Arc::from("pets.internal"))]),
        phases: vec![
            PhaseStep {
                phase: "waf",
                at: Duration::from_micros(100),
                result: PhaseResult::Continued,
            },
            PhaseStep {
                phase: "cache",
                at: Duration::from_micros(200),
                result: PhaseResult::Continued,
            },
        ],
        integration_request: Some(IntegrationRequest {
            method: Method::POST,
            url: "http://pets.internal/pets/7?x=1".into(),
            headers: headers(&[
                ("authorization", "Bearer s3cret"),
                ("x-forwarded-for", "127.0.0.1"),
                ("x-request-id", "abc"),
            ]),
        }),
        integration_response: Some(IntegrationResponse {
            status: 201,
            headers: Some(headers(&[
                ("content-type", "application/json"),
                ("set-cookie", "session=1"),
            ])),
        }),
        request_headers: Some(headers(&[
            ("authorization", "Bearer s3cret"),
            ("cookie", "a=1"),
            ("proxy-authorization", "Basic eA=="),
            ("x-api-key", "k"),
            ("x-secret", "hidden"),
            ("accept", "text/plain"),
            ("accept", "application/json"),
        ])),
        request_body: Some(body(br#"{"user":"a","password":"hun"#, 40)),
        response_headers: Some(headers(&[("content-type", "application/json")])),
        response_body: Some(body(br#"{"id":7,"a":{"token":[1]}}"#, 20)),
        ..ExecutionDetail::new(Arc::new(settings))
    }));
    exchange
}

fn render(exchange: &Exchange, settings: &ExecutionLogSettings) -> Vec<Value> {
    let mut out = Vec::new();
    execution_events(exchange, settings, &mut out);
    out.iter()
        .map(|line| serde_json::from_str(line).expect("every event is one JSON object"))
        .collect()
}

fn steps(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["step"].as_str().unwrap()).collect()
}

fn step<'e>(events: &'e [Value], name: &str) -> &'e Value {
    events
        .iter()
        .find(|e| e["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {events:#?}"))
}

#[test]
fn levels_choose_the_steps() {
    let ok = proxied(settings(ExecutionLogLevel::Info, false));
    let mut failed = proxied(settings(ExecutionLogLevel::Info, false));
    failed.status = 502;
    failed.error = Some(ErrorClass::UpstreamConnect);
    failed.error_message = Some("cannot connect to the upstream".into());
    failed.integration.error = Some("tcp connect error: Connection refused".into());
    failed.integration.status = None;
    let mut upstream_500 = proxied(settings(ExecutionLogLevel::Info, false));
    upstream_500.status = 500;

    let info = [
        "request.received",
        "route.matched",
        "phase.decision",
        "phase.decision",
        "integration.request",
        "integration.response",
        "request.completed",
    ];
    let info_failed = [
        "request.received",
        "route.matched",
        "phase.decision",
        "phase.decision",
        "integration.request",
        "integration.response",
        "error",
        "request.completed",
    ];
    let cases: [(&Exchange, ExecutionLogLevel, &[&str]); 9] = [
        (&ok, ExecutionLogLevel::Off, &[]),
        (&failed, ExecutionLogLevel::Off, &[]),
        (&ok, ExecutionLogLevel::Error, &[]),
        (
            &failed,
            ExecutionLogLevel::Error,
            &["request.received", "error", "request.completed"],
        ),
        (
            &upstream_500,
            ExecutionLogLevel::Error,
            &["request.received", "request.completed"],
        ),
        (&ok, ExecutionLogLevel::Info, &info),
        (&failed, ExecutionLogLevel::Info, &info_failed),
        (&upstream_500, ExecutionLogLevel::Info, &info),
        // Without a detail only what the exchange itself holds is written.
        (
            &Exchange {
                execution: None,
                ..failed.clone()
            },
            ExecutionLogLevel::Info,
            &[
                "request.received",
                "route.matched",
                "error",
                "request.completed",
            ],
        ),
    ];
    for (exchange, level, expected) in cases {
        let events = render(exchange, &settings(level, false));
        assert_eq!(
            steps(&events),
            expected,
            "{level:?}, status {}",
            exchange.status
        );
    }

    let events = render(&failed, &settings(ExecutionLogLevel::Error, false));
    let error = step(&events, "error");
    assert_eq!(error["status"], 502);
    assert_eq!(error["errorClass"], "upstream_connect");
    assert_eq!(error["message"], "cannot connect to the upstream");
    assert_eq!(error["cause"], "tcp connect error: Connection refused");
}

#[test]
fn every_event_has_the_common_fields_and_its_offset() {
    let exchange = proxied(settings(ExecutionLogLevel::Info, false));
    let events = render(&exchange, &settings(ExecutionLogLevel::Info, false));
    for event in &events {
        assert_eq!(event["requestId"], exchange.request_id.as_str());
        assert_eq!(event["api"], "pets");
        assert_eq!(event["stage"], "prod");
    }
    let times: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(times[0], "2026-11-26T06:59:24.942Z");
    assert_eq!(
        times[5], "2026-11-26T06:59:24.944Z",
        "integration.response at +2.3 ms"
    );
    assert_eq!(times[6], "2026-11-26T06:59:24.945Z", "completed at +3 ms");

    let route = step(&events, "route.matched");
    assert_eq!(route["resourcePath"], "/pets/{id}");
    assert_eq!(route["params"], serde_json::json!({ "id": "7" }));
    assert_eq!(
        route["stageVariables"],
        serde_json::json!({ "backend": "pets.internal" })
    );
    assert_eq!(events[2]["phase"], "waf");
    assert_eq!(events[2]["decision"], "allowed");
    assert_eq!(events[2]["result"], "continued");
    assert_eq!(events[3]["decision"], "miss");

    let request = step(&events, "integration.request");
    assert_eq!(request["integration"], "http");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "http://pets.internal/pets/7?x=1");
    assert_eq!(request["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(request["headers"]["authorization"], "***");
    let response = step(&events, "integration.response");
    assert_eq!(response["status"], 201);
    assert_eq!(response["latencyMs"], 2.0);
    assert_eq!(response["headers"]["set-cookie"], "***");
    let done = step(&events, "request.completed");
    assert_eq!(done["status"], 201);
    assert_eq!(done["latencyMs"], 3.0);
    assert_eq!(done["integrationStatus"], 201);
    assert_eq!(
        (done["bytesIn"].as_u64(), done["bytesOut"].as_u64()),
        (Some(40), Some(20))
    );
    // No data trace: no client headers, no bodies.
    assert!(events[0].get("headers").is_none());
    assert!(done.get("body").is_none());
}

#[test]
fn phase_answers_are_logged_with_their_status_and_reason() {
    let mut exchange = proxied(settings(ExecutionLogLevel::Info, false));
    exchange.status = 429;
    exchange.decisions.throttle = Some(Decision::Rejected { reason: "rate" });
    let detail = exchange.execution.as_mut().unwrap();
    detail.phases = vec![PhaseStep {
        phase: "throttle",
        at: Duration::from_micros(90),
        result: PhaseResult::Answered { status: 429 },
    }];
    detail.integration_request = None;
    detail.integration_response = None;
    let events = render(&exchange, &settings(ExecutionLogLevel::Info, false));
    let phase = step(&events, "phase.decision");
    assert_eq!(phase["phase"], "throttle");
    assert_eq!(phase["decision"], "rejected");
    assert_eq!(phase["reason"], "rate");
    assert_eq!(phase["result"], "answered");
    assert_eq!(phase["status"], 429);
    assert!(!steps(&events).contains(&"integration.request"));
}

#[test]
fn data_trace_masks_headers_and_json_fields() {
    let trace = settings(ExecutionLogLevel::Info, true);
    let exchange = proxied(trace.clone());
    let events = render(&exchange, &trace);
    let received = step(&events, "request.received");
    let headers = &received["headers"];
    for name in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "x-secret",
    ] {
        assert_eq!(headers[name], "***", "{name}");
    }
    assert_eq!(headers["accept"], "text/plain, application/json");
    assert_eq!(received["body"], r#"{"user":"a","password":"***""#);
    assert_eq!(received["bodyEncoding"], "text");
    assert_eq!(received["bodyBytes"], 40);
    assert_eq!(received["bodyTruncated"], true);

    let done = step(&events, "request.completed");
    assert_eq!(done["headers"]["content-type"], "application/json");
    assert_eq!(done["body"], r#"{"id":7,"a":{"token":"***"}}"#);
    assert_eq!(done["bodyTruncated"], false);

    // A data trace at ERROR shows the same data, for failed requests only.
    let mut failed = exchange.clone();
    failed.status = 500;
    let error_trace = settings(ExecutionLogLevel::Error, true);
    let events = render(&failed, &error_trace);
    assert_eq!(steps(&events), ["request.received", "request.completed"]);
    assert_eq!(events[0]["headers"]["authorization"], "***");
    assert_eq!(events[1]["body"], r#"{"id":7,"a":{"token":"***"}}"#);
}

#[test]
fn bodies_that_are_not_json_or_not_text() {
    let trace = settings(ExecutionLogLevel::Info, true);
    let mut exchange = proxied(trace.clone());
    let detail = exchange.execution.as_mut().unwrap();
    detail.request_body = Some(body(b"password=hunter2&x=1", 20));
    detail.response_body = Some(body(&[0xff, 0x00, 0xfe], 3));
    let events = render(&exchange, &trace);
    let received = step(&events, "request.received");
    assert_eq!(received["body"], "password=hunter2&x=1");
    assert_eq!(received["bodyTruncated"], false);
    let done = step(&events, "request.completed");
    assert_eq!(done["body"], "/wD+");
    assert_eq!(done["bodyEncoding"], "base64");
}

#[test]
fn events_are_never_cut() {
    let trace = settings(ExecutionLogLevel::Info, true);
    let mut exchange = proxied(trace.clone());
    let long = "v".repeat(100_000);
    let detail = exchange.execution.as_mut().unwrap();
    let mut request_headers = HeaderMap::new();
    request_headers.insert("x-long", HeaderValue::from_str(&long).unwrap());
    detail.request_headers = Some(request_headers);
    detail.integration_request.as_mut().unwrap().url = format!("http://u/{long}");
    let events = render(&exchange, &trace);
    assert_eq!(
        step(&events, "request.received")["headers"]["x-long"],
        long.as_str()
    );
    assert_eq!(
        step(&events, "integration.request")["url"],
        format!("http://u/{long}")
    );
}

#[test]
fn websocket_completion_carries_the_connection_counters() {
    let mut exchange = proxied(settings(ExecutionLogLevel::Info, false));
    exchange.status = 101;
    exchange.websocket = Some(crate::WebSocketStats {
        messages_in: 2,
        messages_out: 3,
        bytes_in: 10,
        bytes_out: 20,
        close_code: Some(1000),
        closed_by: Some("client"),
        message_events: Vec::new(),
    });
    let events = render(&exchange, &settings(ExecutionLogLevel::Info, false));
    let done = step(&events, "request.completed");
    assert_eq!(
        done["websocket"],
        serde_json::json!({
            "messagesIn": 2, "messagesOut": 3, "bytesIn": 10, "bytesOut": 20,
            "closeCode": 1000, "closedBy": "client"
        })
    );
}

#[test]
fn body_capture_keeps_the_first_bytes_and_counts_all() {
    let mut capture = BodyCapture::new(5);
    capture.push(b"abc");
    capture.push(b"defgh");
    capture.push(b"ij");
    let body = capture.finish();
    assert_eq!(body.bytes, b"abcde");
    assert_eq!(body.total, 10);
    assert!(body.truncated());
    let mut capture = BodyCapture::new(5);
    capture.push(b"abcde");
    assert!(!capture.finish().truncated());
}

#[test]
fn settings_decide_what_the_data_plane_captures() {
    use ExecutionLogLevel::{Error, Info, Off};
    let cases = [
        (Off, false, false, None),
        (Off, true, false, None),
        (Error, false, false, None),
        (Error, true, true, Some(16)),
        (Info, false, true, None),
        (Info, true, true, Some(16)),
    ];
    for (level, data_trace, detail, body_limit) in cases {
        let s = settings(level, data_trace);
        assert_eq!(s.captures_detail(), detail, "{level:?} {data_trace}");
        assert_eq!(s.body_capture_limit(), body_limit, "{level:?} {data_trace}");
    }
    assert_eq!(
        *ExecutionLogSettings::off(),
        ExecutionLogSettings::default()
    );
    assert!(Arc::ptr_eq(
        &ExecutionLogSettings::off(),
        &ExecutionLogSettings::off()
    ));
}

#[test]
fn events_land_in_the_stage_log_group() {
    let exchange = proxied(settings(ExecutionLogLevel::Info, false));
    assert_eq!(
        execution_log_group(&exchange).as_deref(),
        Some("execution/pets/prod")
    );
    assert_eq!(execution_log_group(&sample()), None);
}
