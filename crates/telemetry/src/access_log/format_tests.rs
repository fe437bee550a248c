//! Table-driven tests of the template compiler: every variable renders from a hand-built
//! exchange, each format kind escapes its own way, and bad templates are refused.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::format::{AccessLogFormat, FormatError, FormatKind};
use super::presets::Preset;
use super::variables::VARIABLES;
use crate::bus::tests::sample;
use crate::{Decision, ErrorClass, Exchange, ExchangeKind, RequestId, RouteLabels, TraceIds};

/// An exchange with every field the variables read filled in.
fn full() -> Exchange {
    let mut ex = sample();
    ex.request_id = RequestId::from_client(b"req-1").unwrap();
    ex.listener = Arc::from("public");
    ex.route = Some(RouteLabels {
        api: Arc::from("petstore"),
        api_version: Arc::from("v2"),
        stage: Arc::from("prod"),
        resource_path: Arc::from("/pets/{id}"),
    });
    ex.trace = Some(TraceIds {
        trace_id: *b"\x5f\x84\xc7\xa1\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67",
        span_id: *b"\x53\x99\x5c\x3f\x42\xcd\x8a\xd8",
        parent_id: None,
        sampled: true,
    });
    ex.canary = true;
    ex.host = Some(http::HeaderValue::from_static("api.example.com:8443"));
    ex.path = "/prod/pets/7".into();
    ex.protocol = http::Version::HTTP_2;
    ex.tls = true;
    ex.client = "10.1.2.3:5555".parse().unwrap();
    ex.user_agent = Some(http::HeaderValue::from_static("curl/8.5"));
    ex.status = 502;
    ex.error = Some(ErrorClass::UpstreamConnect);
    ex.error_message = Some("Could not connect to the upstream".into());
    ex.integration.kind = Some("http");
    ex.integration.status = Some(503);
    ex.integration.error = Some("connection refused".into());
    ex.decisions.waf = Some(Decision::Allowed);
    ex.decisions.throttle = Some(Decision::Allowed);
    ex.decisions.cache = Some(Decision::Miss);
    ex.bytes_in = 12;
    ex.bytes_out = 345;
    ex.timing.received_at = UNIX_EPOCH + Duration::from_millis(1_795_676_364_942);
    ex.timing.integration_start = Some(Duration::from_micros(250));
    ex.timing.integration_response = Some(Duration::from_micros(3_750));
    ex.timing.done = Duration::from_micros(4_321);
    ex
}

fn websocket() -> Exchange {
    let mut ex = full();
    ex.kind = ExchangeKind::WebSocket;
    ex.status = 101;
    ex.error = None;
    ex.websocket = Some(crate::WebSocketStats {
        messages_in: 3,
        messages_out: 4,
        close_code: Some(1000),
        closed_by: Some("client"),
        ..Default::default()
    });
    ex
}

/// Renders `$context.requestId $context.<name>` in a plain-text template; returns the value part.
fn render_var(name: &str, ex: &Exchange) -> String {
    let format = AccessLogFormat::compile(&format!("$context.requestId $context.{name}")).unwrap();
    let mut out = Vec::new();
    format.render(ex, &mut out);
    let text = String::from_utf8(out).unwrap();
    text.split_once(' ').unwrap().1.to_owned()
}

#[test]
fn every_variable_renders() {
    // (variable, from `full()`, from `sample()` — the bare 404 with nothing recorded)
    let cases: &[(&str, &str, &str)] = &[
        ("requestId", "req-1", "*"),
        ("extendedRequestId", "public-1795676364942-req-1", "*"),
        ("identity.sourceIp", "10.1.2.3", "127.0.0.1"),
        ("identity.userAgent", "curl/8.5", "-"),
        ("identity.apiKeyId", "-", "-"),
        ("httpMethod", "GET", "GET"),
        ("resourcePath", "/pets/{id}", "-"),
        ("routeKey", "GET /pets/{id}", "-"),
        ("path", "/prod/pets/7", "/x"),
        ("protocol", "HTTP/2.0", "HTTP/1.1"),
        ("status", "502", "404"),
        ("responseLength", "345", "10"),
        (
            "requestTime",
            "26/Nov/2026:06:59:24 +0000",
            "01/Jan/1970:00:00:00 +0000",
        ),
        ("requestTimeEpoch", "1795676364942", "0"),
        ("responseLatency", "4", "1"),
        ("integrationLatency", "3", "-"),
        ("integration.latency", "3", "-"),
        ("integration.status", "503", "-"),
        ("integrationStatus", "503", "-"),
        ("integration.error", "connection refused", "-"),
        ("error.message", "Could not connect to the upstream", "-"),
        ("error.responseType", "INTEGRATION_FAILURE", "-"),
        ("stage", "prod", "-"),
        ("apiId", "petstore", "-"),
        ("domainName", "api.example.com", "-"),
        ("domainPrefix", "api", "-"),
        ("xrayTraceId", "1-5f84c7a1-123456789abcdef001234567", "-"),
        ("traceId", "5f84c7a1123456789abcdef001234567", "-"),
        (
            "gatehouse.time",
            "2026-11-26T06:59:24.942Z",
            "1970-01-01T00:00:00.000Z",
        ),
        ("gatehouse.kind", "http", "http"),
        ("gatehouse.listener", "public", "default"),
        ("gatehouse.tls", "true", "false"),
        ("gatehouse.host", "api.example.com:8443", "-"),
        ("gatehouse.apiVersion", "v2", "-"),
        ("gatehouse.bytesIn", "12", "0"),
        ("gatehouse.latencyMs", "4.321", "1.500"),
        ("gatehouse.integrationLatencyMs", "3.500", "-"),
        ("gatehouse.integrationKind", "http", "-"),
        ("gatehouse.errorClass", "upstream_connect", "-"),
        ("gatehouse.canary", "true", "false"),
        ("gatehouse.waf", "allowed", "-"),
        ("gatehouse.auth", "-", "-"),
        ("gatehouse.throttle", "allowed", "-"),
        ("gatehouse.cache", "miss", "-"),
        ("gatehouse.rejectReason", "-", "-"),
        ("gatehouse.spanId", "53995c3f42cd8ad8", "-"),
        ("gatehouse.websocket", "-", "-"),
        ("gatehouse.websocket.messagesIn", "-", "-"),
        ("gatehouse.websocket.messagesOut", "-", "-"),
        ("gatehouse.websocket.closeCode", "-", "-"),
        ("gatehouse.websocket.closedBy", "-", "-"),
    ];
    let listed: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let known: Vec<&str> = VARIABLES.iter().map(|v| v.0).collect();
    assert_eq!(listed, known, "the table covers every variable, in order");
    let (full, bare) = (full(), sample());
    let mut mismatches = Vec::new();
    for (name, expected_full, expected_bare) in cases {
        let got = render_var(name, &full);
        if got != *expected_full {
            mismatches.push(format!(
                "{name} (full): expected {expected_full:?}, got {got:?}"
            ));
        }
        let got = render_var(name, &bare);
        if *expected_bare != "*" && got != *expected_bare {
            mismatches.push(format!(
                "{name} (bare): expected {expected_bare:?}, got {got:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn websocket_variables_render() {
    let ex = websocket();
    for (name, expected) in [
        ("gatehouse.kind", "websocket"),
        ("gatehouse.websocket", "3/4/1000/client"),
        ("gatehouse.websocket.messagesIn", "3"),
        ("gatehouse.websocket.messagesOut", "4"),
        ("gatehouse.websocket.closeCode", "1000"),
        ("gatehouse.websocket.closedBy", "client"),
    ] {
        assert_eq!(render_var(name, &ex), expected, "{name}");
    }
}

#[test]
fn response_types_follow_api_gateway() {
    let cases: &[(ErrorClass, u16, Option<Decision>, &str)] = &[
        (ErrorClass::RouteNotFound, 404, None, "RESOURCE_NOT_FOUND"),
        (ErrorClass::PayloadTooLarge, 413, None, "REQUEST_TOO_LARGE"),
        (ErrorClass::HeadersTooLarge, 431, None, "REQUEST_TOO_LARGE"),
        (
            ErrorClass::MalformedRequest,
            400,
            None,
            "BAD_REQUEST_PARAMETERS",
        ),
        (
            ErrorClass::UpstreamTimeout,
            504,
            None,
            "INTEGRATION_TIMEOUT",
        ),
        (ErrorClass::UpstreamReset, 502, None, "INTEGRATION_FAILURE"),
        (ErrorClass::MethodNotAllowed, 405, None, "DEFAULT_4XX"),
        (ErrorClass::Internal, 500, None, "DEFAULT_5XX"),
        (
            ErrorClass::RejectedByPhase,
            403,
            Some(Decision::Rejected { reason: "sqli" }),
            "WAF_FILTERED",
        ),
        (
            ErrorClass::RejectedByPhase,
            429,
            Some(Decision::Rejected { reason: "rate" }),
            "THROTTLED",
        ),
        (
            ErrorClass::RejectedByPhase,
            429,
            Some(Decision::Rejected { reason: "quota" }),
            "QUOTA_EXCEEDED",
        ),
    ];
    for (class, status, decision, expected) in cases {
        let mut ex = sample();
        ex.error = Some(*class);
        ex.status = *status;
        match decision {
            Some(Decision::Rejected { reason }) if *status == 403 => {
                ex.decisions.waf = Some(Decision::Rejected { reason });
            }
            Some(d) => ex.decisions.throttle = Some(d.clone()),
            None => {}
        }
        assert_eq!(
            render_var("error.responseType", &ex),
            *expected,
            "{class:?}"
        );
    }
    let mut ex = sample();
    ex.error = Some(ErrorClass::RejectedByPhase);
    ex.decisions.auth = Some(Decision::Rejected {
        reason: "missing_api_key",
    });
    assert_eq!(render_var("error.responseType", &ex), "INVALID_API_KEY");
    assert_eq!(render_var("gatehouse.auth", &ex), "rejected");
    assert_eq!(render_var("gatehouse.rejectReason", &ex), "missing_api_key");
}

/// Each case: template, the line rendered from `tricky()`.
#[test]
fn values_are_escaped_for_their_format() {
    let mut ex = full();
    ex.path = "/a\"b\\c,d<e>&'\n\u{1}ü".into();
    ex.integration.status = None;
    let cases: &[(&str, FormatKind, &str)] = &[
        (
            "{\"id\":\"$context.requestId\",\"p\":\"$context.path\",\"s\":$context.status,\"q\":\"$context.status\",\"i\":$context.integration.status,\"j\":\"$context.integration.status\",\"b\":$context.path,\"t\":$context.gatehouse.tls}",
            FormatKind::Json,
            "{\"id\":\"req-1\",\"p\":\"/a\\\"b\\\\c,d<e>&'\\n\\u0001ü\",\"s\":502,\"q\":\"502\",\"i\":null,\"j\":\"-\",\"b\":\"/a\\\"b\\\\c,d<e>&'\\n\\u0001ü\",\"t\":true}",
        ),
        (
            "<r id=\"$context.requestId\"><p>$context.path</p><i>$context.integration.status</i></r>",
            FormatKind::Xml,
            "<r id=\"req-1\"><p>/a&quot;b\\c,d&lt;e&gt;&amp;&apos;&#10;\u{fffd}ü</p><i>-</i></r>",
        ),
        (
            "$context.requestId,$context.path,$context.status,$context.integration.status",
            FormatKind::Csv,
            "req-1,\"/a\"\"b\\c,d<e>&'\n\u{1}ü\",502,-",
        ),
        (
            "\"$context.requestId\",\"$context.path\"",
            FormatKind::Csv,
            "\"req-1\",\"/a\"\"b\\c,d<e>&'\n\u{1}ü\"",
        ),
        (
            "$context.requestId \"$context.path\" $context.integration.status",
            FormatKind::Text,
            "req-1 \"/a\\\"b\\\\c,d<e>&'\\x0A\\x01ü\" -",
        ),
    ];
    for (template, kind, expected) in cases {
        let format = AccessLogFormat::compile(template).unwrap();
        assert_eq!(format.kind(), *kind, "{template}");
        let mut out = Vec::new();
        format.render(&ex, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), *expected, "{template}");
    }
}

#[test]
fn json_templates_always_render_valid_json() {
    for ex in [full(), sample(), websocket()] {
        for preset in [Preset::Json, Preset::Gatehouse] {
            let mut out = Vec::new();
            AccessLogFormat::preset(preset).render(&ex, &mut out);
            serde_json::from_slice::<serde_json::Value>(&out)
                .unwrap_or_else(|e| panic!("{preset:?}: {e}: {}", String::from_utf8_lossy(&out)));
        }
    }
}

#[test]
fn gatehouse_preset_keeps_the_fields_of_the_old_json_line() {
    let mut out = Vec::new();
    AccessLogFormat::default().render(&full(), &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["requestId"], "req-1");
    assert_eq!(v["time"], "2026-11-26T06:59:24.942Z");
    assert_eq!(v["requestTimeEpoch"], 1_795_676_364_942u64);
    assert_eq!(v["kind"], "http");
    assert_eq!(v["ip"], "10.1.2.3");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["host"], "api.example.com:8443");
    assert_eq!(v["route"], "/pets/{id}");
    assert_eq!(v["api"], "petstore");
    assert_eq!(v["apiVersion"], "v2");
    assert_eq!(v["stage"], "prod");
    assert_eq!(v["status"], 502);
    assert_eq!(v["bytesIn"], 12);
    assert_eq!(v["bytesOut"], 345);
    assert_eq!(v["latencyMs"], 4.321);
    assert_eq!(v["integrationLatencyMs"], 3.5);
    assert_eq!(v["integrationStatus"], 503);
    assert_eq!(v["error"], "upstream_connect");
    assert_eq!(v["errorMessage"], "Could not connect to the upstream");
    assert_eq!(v["integrationError"], "connection refused");
    assert_eq!(v["userAgent"], "curl/8.5");
    assert_eq!(v["websocket"], serde_json::Value::Null);

    let mut out = Vec::new();
    AccessLogFormat::default().render(&websocket(), &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["websocket"]["messagesIn"], 3);
    assert_eq!(v["websocket"]["closeCode"], 1000);
    assert_eq!(v["websocket"]["closedBy"], "client");
}

#[test]
fn presets_render_their_documented_shape() {
    let ex = full();
    let render = |preset| {
        let mut out = Vec::new();
        AccessLogFormat::preset(preset).render(&ex, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        render(Preset::Clf),
        "10.1.2.3 - - [26/Nov/2026:06:59:24 +0000] \"GET /prod/pets/7 HTTP/2.0\" 502 345 req-1"
    );
    assert_eq!(
        render(Preset::Csv),
        "req-1,26/Nov/2026:06:59:24 +0000,10.1.2.3,GET,/pets/{id},/prod/pets/7,HTTP/2.0,502,345,4,3,503,INTEGRATION_FAILURE,petstore,prod"
    );
    assert!(render(Preset::Xml).starts_with("<request id=\"req-1\"><requestTime>26/Nov/2026:06:59:24 +0000</requestTime><ip>10.1.2.3</ip>"));
    let json: serde_json::Value = serde_json::from_str(&render(Preset::Json)).unwrap();
    assert_eq!(json["status"], 502);
    assert_eq!(json["responseLatency"], 4);
    assert_eq!(json["integration"]["status"], 503);
    assert_eq!(json["integration"]["error"], "connection refused");
    assert_eq!(json["error"]["responseType"], "INTEGRATION_FAILURE");
    assert_eq!(json["traceId"], "5f84c7a1123456789abcdef001234567");
    for preset in Preset::ALL {
        let parsed = AccessLogFormat::parse(preset.name()).unwrap();
        assert_eq!(parsed.preset_name(), Some(preset.name()));
        assert_eq!(parsed.template(), preset.template());
    }
}

#[test]
fn templates_are_parsed_with_longest_match() {
    let cases: &[(&str, &str)] = &[
        // `.status` after `integration` is part of the name, not text.
        (
            "$context.requestId $context.integration.status",
            "req-1 503",
        ),
        // A full stop after a name is text.
        ("$context.requestId=$context.status.", "req-1=502."),
        (
            "id $context.requestId; $ and $context are text",
            "id req-1; $ and $context are text",
        ),
        ("$context.requestId$context.status", "req-1502"),
    ];
    for (template, expected) in cases {
        let mut out = Vec::new();
        AccessLogFormat::compile(template)
            .unwrap()
            .render(&full(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), *expected, "{template}");
    }
}

#[test]
fn bad_formats_are_refused() {
    let cases: &[(&str, FormatError)] = &[
        (
            "$context.requestId $context.statusCode",
            FormatError::UnknownVariable("statusCode".into()),
        ),
        (
            "$context.requestId $context.integration.foo.",
            FormatError::UnknownVariable("integration.foo".into()),
        ),
        (
            "$context.requestId $context.",
            FormatError::UnknownVariable(String::new()),
        ),
        (
            "$context.status $context.extendedRequestId",
            FormatError::MissingRequestId,
        ),
        (
            "$context.requestId\n$context.status",
            FormatError::MultiLine,
        ),
        ("jsn", FormatError::UnknownPreset("jsn".into())),
        ("", FormatError::UnknownPreset(String::new())),
    ];
    for (text, expected) in cases {
        assert_eq!(
            AccessLogFormat::parse(text).err().as_ref(),
            Some(expected),
            "{text:?}"
        );
    }
    let message = FormatError::UnknownVariable("statusCode".into()).to_string();
    assert!(message.starts_with("unknown variable `$context.statusCode`; valid variables are $context.requestId, $context.extendedRequestId,"), "{message}");
    assert!(message.contains("$context.gatehouse.cache"), "{message}");
    assert_eq!(
        FormatError::MissingRequestId.to_string(),
        "access log format must include $context.requestId"
    );
    assert_eq!(
        FormatError::UnknownPreset("jsn".into()).to_string(),
        "unknown access log format 'jsn': expected one of clf, json, csv, xml, gatehouse, or a template of $context variables"
    );
}
