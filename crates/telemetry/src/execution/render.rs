//! The execution-log renderer: one published [`Exchange`] → one JSON object per step.
//!
//! It runs on the log writer's thread, never on the request path, so it favours clarity over
//! speed. Events are never truncated; the only thing cut is a captured body, at
//! `max_body_bytes`, and the event says so (`bodyTruncated`). The steps and their fields are
//! documented in `docs/execution-logs.md`; keep the two in step.

use std::fmt::Write as _;
use std::time::Duration;

use http::HeaderMap;
use time::OffsetDateTime;
use time::macros::format_description;

use super::redact::{as_text, base64, looks_like_json, mask_json_fields};
use super::{
    CapturedBody, ExecutionDetail, ExecutionLogLevel, ExecutionLogSettings, PhaseResult, REDACTED,
    is_failed,
};
use crate::{Decision, Exchange};

/// Appends the execution-log events of `exchange` to `out`, one JSON object (no newline) each,
/// in step order, as `settings` asks:
///
/// - OFF: nothing;
/// - ERROR: only for a failed exchange ([`is_failed`]): `request.received`, `error` (when the
///   gateway recorded an error class or an integration error) and `request.completed`;
/// - INFO: every step: `request.received`, `route.matched`, one `phase.decision` per phase,
///   `integration.request`, `integration.response`, `error`, `request.completed`.
///
/// The settings are normally `exchange.execution`'s own (the stage's settings when the request
/// was routed). Without an [`ExecutionDetail`] only what the exchange itself holds is written.
pub fn execution_events(
    exchange: &Exchange,
    settings: &ExecutionLogSettings,
    out: &mut Vec<String>,
) {
    let info = match settings.level {
        ExecutionLogLevel::Off => return,
        ExecutionLogLevel::Error if !is_failed(exchange) => return,
        ExecutionLogLevel::Error => false,
        ExecutionLogLevel::Info => true,
    };
    let detail = exchange.execution.as_deref();
    let trace = settings.data_trace;
    let timing = &exchange.timing;

    let mut event = Event::new(exchange, Duration::ZERO, "request.received");
    event.opt_str("method", exchange.method.as_ref().map(http::Method::as_str));
    event.str("path", &exchange.path);
    event.str("protocol", protocol_label(exchange.protocol));
    event.opt_str("host", exchange.host.as_ref().and_then(|h| h.to_str().ok()));
    event.str("sourceIp", &exchange.client.ip().to_string());
    if let Some(detail) = detail.filter(|_| trace) {
        if let Some(headers) = &detail.request_headers {
            event.headers("headers", headers, settings);
        }
        if let Some(body) = &detail.request_body {
            event.body(body, settings);
        }
    }
    out.push(event.finish());

    if info && let Some(route) = &exchange.route {
        let mut event = Event::new(exchange, timing.routed.unwrap_or_default(), "route.matched");
        event.str("apiVersion", &route.api_version);
        event.str("resourcePath", &route.resource_path);
        if let Some(detail) = detail {
            event.pairs(
                "params",
                detail.path_params.iter().map(|(k, v)| (&**k, &**v)),
            );
            event.pairs(
                "stageVariables",
                detail.stage_variables.iter().map(|(k, v)| (&**k, &**v)),
            );
        }
        out.push(event.finish());
    }

    if info && let Some(detail) = detail {
        phase_events(exchange, detail, out);
        integration_events(exchange, detail, settings, out);
    }

    if exchange.error.is_some() || exchange.integration.error.is_some() {
        let mut event = Event::new(exchange, timing.done, "error");
        event.int("status", u64::from(exchange.status));
        event.opt_str("errorClass", exchange.error.map(|e| e.as_str()));
        event.opt_str("message", exchange.error_message.as_deref());
        event.opt_str("cause", exchange.integration.error.as_deref());
        out.push(event.finish());
    }

    let mut event = Event::new(exchange, timing.done, "request.completed");
    event.int("status", u64::from(exchange.status));
    event.millis("latencyMs", timing.latency());
    if let Some(status) = exchange.integration.status {
        event.int("integrationStatus", u64::from(status));
    }
    event.int("bytesIn", exchange.bytes_in);
    event.int("bytesOut", exchange.bytes_out);
    if let Some(ws) = &exchange.websocket {
        event.key("websocket");
        let _ = write!(
            event.out,
            "{{\"messagesIn\":{},\"messagesOut\":{},\"bytesIn\":{},\"bytesOut\":{},\"closeCode\":",
            ws.messages_in, ws.messages_out, ws.bytes_in, ws.bytes_out
        );
        match ws.close_code {
            Some(code) => {
                let _ = write!(event.out, "{code}");
            }
            None => event.out.push_str("null"),
        }
        event.out.push_str(",\"closedBy\":");
        match ws.closed_by {
            Some(by) => json_str(&mut event.out, by),
            None => event.out.push_str("null"),
        }
        event.out.push('}');
    }
    if let Some(detail) = detail.filter(|_| trace) {
        if let Some(headers) = &detail.response_headers {
            event.headers("headers", headers, settings);
        }
        if let Some(body) = &detail.response_body {
            event.body(body, settings);
        }
    }
    out.push(event.finish());
}

/// The log group an exchange's execution events belong to: `execution/{api}/{stage}`; `None`
/// for a request that matched no route (it has no stage, so no execution log).
pub fn execution_log_group(exchange: &Exchange) -> Option<String> {
    let route = exchange.route.as_ref()?;
    Some(format!("execution/{}/{}", route.api, route.stage))
}

fn phase_events(exchange: &Exchange, detail: &ExecutionDetail, out: &mut Vec<String>) {
    for step in &detail.phases {
        let mut event = Event::new(exchange, step.at, "phase.decision");
        event.str("phase", step.phase);
        let decisions = &exchange.decisions;
        let decision = match step.phase {
            "waf" => decisions.waf.as_ref(),
            "auth" => decisions.auth.as_ref(),
            "throttle" => decisions.throttle.as_ref(),
            "cache" => decisions.cache.as_ref(),
            _ => None,
        };
        let (label, reason) = match decision {
            None => (None, None),
            Some(Decision::Allowed) => (Some("allowed"), None),
            Some(Decision::Rejected { reason }) => (Some("rejected"), Some(*reason)),
            Some(Decision::Hit) => (Some("hit"), None),
            Some(Decision::Miss) => (Some("miss"), None),
        };
        event.opt_str("decision", label);
        if let Some(reason) = reason {
            event.str("reason", reason);
        }
        match step.result {
            PhaseResult::Continued => event.str("result", "continued"),
            PhaseResult::Answered { status } => {
                event.str("result", "answered");
                event.int("status", u64::from(status));
            }
            PhaseResult::Panicked => event.str("result", "panicked"),
        }
        out.push(event.finish());
    }
}

fn integration_events(
    exchange: &Exchange,
    detail: &ExecutionDetail,
    settings: &ExecutionLogSettings,
    out: &mut Vec<String>,
) {
    let timing = &exchange.timing;
    let kind = exchange.integration.kind;
    if let Some(request) = &detail.integration_request {
        let at = timing.integration_start.unwrap_or_default();
        let mut event = Event::new(exchange, at, "integration.request");
        event.opt_str("integration", kind);
        event.str("method", request.method.as_str());
        event.str("url", &request.url);
        event.headers("headers", &request.headers, settings);
        out.push(event.finish());
    }
    if let Some(response) = &detail.integration_response {
        let at = timing.integration_response.unwrap_or_default();
        let mut event = Event::new(exchange, at, "integration.response");
        event.opt_str("integration", kind);
        event.int("status", u64::from(response.status));
        if let Some(latency) = timing.integration_latency() {
            event.millis("latencyMs", latency);
        }
        if let Some(headers) = &response.headers {
            event.headers("headers", headers, settings);
        }
        out.push(event.finish());
    }
}

/// One event being written.
struct Event {
    out: String,
}

impl Event {
    /// Starts an event with the fields every event has.
    fn new(exchange: &Exchange, at: Duration, step: &str) -> Self {
        let mut out = String::with_capacity(256);
        out.push_str("{\"timestamp\":\"");
        timestamp(&mut out, exchange.timing.received_at + at);
        out.push_str("\",\"requestId\":");
        json_str(&mut out, exchange.request_id.as_str());
        let route = exchange.route.as_ref();
        let mut event = Self { out };
        event.opt_str("api", route.map(|r| &*r.api));
        event.opt_str("stage", route.map(|r| &*r.stage));
        event.str("step", step);
        event
    }

    fn key(&mut self, name: &str) {
        self.out.push(',');
        json_str(&mut self.out, name);
        self.out.push(':');
    }

    fn str(&mut self, name: &str, value: &str) {
        self.key(name);
        json_str(&mut self.out, value);
    }

    fn opt_str(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(name, value),
            None => {
                self.key(name);
                self.out.push_str("null");
            }
        }
    }

    fn int(&mut self, name: &str, value: u64) {
        self.key(name);
        let _ = write!(self.out, "{value}");
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// Milliseconds with microsecond resolution, as in the access log (`12.345`).
    fn millis(&mut self, name: &str, value: Duration) {
        self.key(name);
        let micros = value.as_micros();
        let _ = write!(self.out, "{}.{:03}", micros / 1000, micros % 1000);
    }

    fn pairs<'a>(&mut self, name: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
        self.key(name);
        self.out.push('{');
        for (i, (key, value)) in pairs.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            json_str(&mut self.out, key);
            self.out.push(':');
            json_str(&mut self.out, value);
        }
        self.out.push('}');
    }

    /// Headers as an object; repeated headers are joined with `, ` (RFC 9110 §5.3); masked
    /// headers keep their name and lose their value.
    fn headers(&mut self, name: &str, headers: &HeaderMap, settings: &ExecutionLogSettings) {
        self.key(name);
        self.out.push('{');
        for (i, header) in headers.keys().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            json_str(&mut self.out, header.as_str());
            self.out.push(':');
            if settings.is_redacted_header(header) {
                json_str(&mut self.out, REDACTED);
                continue;
            }
            let mut value = String::new();
            for (j, v) in headers.get_all(header).iter().enumerate() {
                if j > 0 {
                    value.push_str(", ");
                }
                value.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
            json_str(&mut self.out, &value);
        }
        self.out.push('}');
    }

    /// `body` (text, JSON fields masked, or base64), `bodyEncoding`, `bodyBytes` (the whole
    /// body's length) and `bodyTruncated`.
    fn body(&mut self, body: &CapturedBody, settings: &ExecutionLogSettings) {
        match as_text(&body.bytes) {
            Some(text) => {
                let text = if looks_like_json(text.as_bytes()) {
                    mask_json_fields(text, &settings.redact_json_fields)
                } else {
                    text.into()
                };
                self.str("body", &text);
                self.str("bodyEncoding", "text");
            }
            None => {
                self.str("body", &base64(&body.bytes));
                self.str("bodyEncoding", "base64");
            }
        }
        self.int("bodyBytes", body.total);
        self.bool("bodyTruncated", body.truncated());
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// `2026-11-26T06:59:24.942Z`: RFC 3339, UTC, millisecond precision.
fn timestamp(out: &mut String, at: std::time::SystemTime) {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    match OffsetDateTime::from(at).format(format) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("1970-01-01T00:00:00.000Z"),
    }
}

fn protocol_label(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Appends a JSON string literal, escaping per RFC 8259.
fn json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
