//! From one exchange to its spans, following OpenTelemetry's HTTP semantic conventions
//! (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>) and X-Ray's classification
//! of errors, faults and throttles.
//!
//! The timestamps are the exchange's own: the server span runs from the request head's arrival to
//! the last response byte (`Timing::done`), the integration's client span from `integration_start`
//! to `integration_end` (or the response head, or `done`, whichever is known), and each phase from
//! the end of the step before it to its own end. Without an execution-log detail the phases'
//! times are unknown, so a phase that recorded a decision gets a zero-length marker at `routed`.

use std::time::{Duration, UNIX_EPOCH};

use super::ids::child_span_id;
use super::{AttrValue, Classification, Span, SpanEvent, SpanKind, SpanStatus, attr};
use crate::execution::PhaseResult;
use crate::{Decision, Exchange, ExchangeKind};

/// X-Ray's classification of a response status.
pub fn classify(status: u16) -> Classification {
    match status {
        429 => Classification::Throttle,
        400..=499 => Classification::Error,
        500..=599 => Classification::Fault,
        _ => Classification::Ok,
    }
}

/// The spans of `exchange`, server span first; empty when the exchange carries no trace ids.
/// Unsampled exchanges are the caller's to skip.
pub fn spans_from_exchange(exchange: &Exchange) -> Vec<Span> {
    let Some(trace) = exchange.trace else {
        return Vec::new();
    };
    let base = unix_nanos(exchange);
    let at = |offset: Duration| base.saturating_add(u64::try_from(offset.as_nanos()).unwrap_or(0));
    let server = server_span(
        exchange,
        trace.trace_id,
        trace.span_id,
        base,
        at(exchange.timing.done),
    );
    let mut spans = vec![server];
    let mut index = 0u32;
    let mut child = |name: String, kind: SpanKind, start: u64, end: u64| {
        let span = Span {
            trace_id: trace.trace_id,
            span_id: child_span_id(trace.span_id, index),
            parent_span_id: Some(trace.span_id),
            name,
            kind,
            start_unix_nanos: start,
            end_unix_nanos: end.max(start),
            attributes: Vec::new(),
            events: Vec::new(),
            status: SpanStatus::Unset,
            classification: Classification::Ok,
        };
        index += 1;
        span
    };

    let timing = &exchange.timing;
    let routed = timing.routed.unwrap_or_default();
    match exchange.execution.as_deref() {
        Some(detail) => {
            let mut previous = routed;
            for step in &detail.phases {
                let mut span = child(
                    step.phase.to_owned(),
                    SpanKind::Internal,
                    at(previous),
                    at(step.at),
                );
                phase_attributes(&mut span, step.phase, decision_of(exchange, step.phase));
                if let PhaseResult::Answered { status } = step.result {
                    span.attributes
                        .push((attr::HTTP_RESPONSE_STATUS_CODE.into(), int(status)));
                } else if step.result == PhaseResult::Panicked {
                    span.status = SpanStatus::Error;
                    span.classification = Classification::Fault;
                    span.attributes
                        .push((attr::ERROR_TYPE.into(), str("panic")));
                }
                spans.push(span);
                previous = step.at;
            }
        }
        None => {
            for phase in ["waf", "auth", "throttle", "cache"] {
                if let Some(decision) = decision_of(exchange, phase) {
                    let mut span =
                        child(phase.to_owned(), SpanKind::Internal, at(routed), at(routed));
                    phase_attributes(&mut span, phase, Some(decision));
                    spans.push(span);
                }
            }
        }
    }

    if let (Some(kind), Some(start)) = (exchange.integration.kind, timing.integration_start) {
        let end = timing
            .integration_end
            .or(timing.integration_response)
            .unwrap_or(timing.done);
        let name = match &exchange.method {
            Some(method) if kind == "http" => method.as_str().to_owned(),
            _ => kind.to_owned(),
        };
        let mut span = child(name, SpanKind::Client, at(start), at(end));
        span.attributes.push((attr::INTEGRATION.into(), str(kind)));
        let logged = exchange
            .execution
            .as_deref()
            .and_then(|d| d.integration_request.as_ref());
        if let Some(request) = logged {
            span.attributes.push((
                attr::HTTP_REQUEST_METHOD.into(),
                str(request.method.as_str()),
            ));
        } else if let (Some(method), Some(_)) = (&exchange.method, &exchange.integration.url) {
            span.attributes
                .push((attr::HTTP_REQUEST_METHOD.into(), str(method.as_str())));
        }
        // The URL without its query (the execution log's may carry one) names the upstream.
        let url = exchange
            .integration
            .url
            .as_deref()
            .or(logged.map(|request| request.url.as_str()));
        if let Some(url) = url {
            span.attributes.push((attr::URL_FULL.into(), str(url)));
            if let Some((host, port)) = url_host_port(url) {
                span.attributes
                    .push((attr::SERVER_ADDRESS.into(), str(host)));
                span.attributes.push((attr::SERVER_PORT.into(), int(port)));
            }
        }
        if let Some(status) = exchange.integration.status {
            span.attributes
                .push((attr::HTTP_RESPONSE_STATUS_CODE.into(), int(status)));
            span.classification = classify(status);
            if status >= 400 {
                span.status = SpanStatus::Error;
            }
        }
        // The integration failed (connect, reset, timeout): X-Ray calls that a fault whatever
        // the status the gateway then answered with.
        if exchange.integration.error.is_some() {
            let error_type = exchange.error.map_or("integration_error", |e| e.as_str());
            span.attributes
                .push((attr::ERROR_TYPE.into(), str(error_type)));
            span.status = SpanStatus::Error;
            span.classification = Classification::Fault;
        }
        spans.push(span);
    }
    spans
}

fn server_span(
    exchange: &Exchange,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    start: u64,
    end: u64,
) -> Span {
    let method = exchange.method.as_ref().map(|m| m.as_str());
    let route = exchange.route.as_ref().map(|r| &*r.resource_path);
    let name = match (method, route) {
        (Some(method), Some(route)) => format!("{method} {route}"),
        (Some(method), None) => method.to_owned(),
        (None, _) => "HTTP".to_owned(),
    };
    let mut attributes = Vec::with_capacity(20);
    let mut push = |key: &str, value: AttrValue| attributes.push((key.to_owned(), value));
    if let Some(method) = method {
        push(attr::HTTP_REQUEST_METHOD, str(method));
    }
    if let Some(route) = route {
        push(attr::HTTP_ROUTE, str(route));
    }
    push(attr::HTTP_RESPONSE_STATUS_CODE, int(exchange.status));
    push(attr::URL_PATH, str(&exchange.path));
    push(
        attr::URL_SCHEME,
        str(if exchange.tls { "https" } else { "http" }),
    );
    if let Some(host) = exchange.host.as_ref().and_then(|h| h.to_str().ok()) {
        // server.address is the host name without the port.
        let address = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        push(attr::SERVER_ADDRESS, str(address));
    }
    push(attr::CLIENT_ADDRESS, str(&exchange.client.ip().to_string()));
    push(attr::CLIENT_PORT, int(exchange.client.port()));
    push(
        attr::NETWORK_PROTOCOL_VERSION,
        str(protocol_version(exchange.protocol)),
    );
    if let Some(agent) = exchange.user_agent.as_ref().and_then(|h| h.to_str().ok()) {
        push(attr::USER_AGENT, str(agent));
    }
    push(attr::REQUEST_BODY_SIZE, int(exchange.bytes_in));
    push(attr::RESPONSE_BODY_SIZE, int(exchange.bytes_out));
    let error_type = match exchange.error {
        Some(class) => Some(class.as_str().to_owned()),
        None if exchange.status >= 500 => Some(exchange.status.to_string()),
        None => None,
    };
    if let Some(error_type) = error_type {
        push(attr::ERROR_TYPE, AttrValue::Str(error_type));
    }
    if let Some(route) = &exchange.route {
        push(attr::API, str(&route.api));
        push(attr::API_VERSION, str(&route.api_version));
        push(attr::STAGE, str(&route.stage));
    }
    if exchange.canary {
        push(attr::CANARY, AttrValue::Bool(true));
    }
    push(
        attr::REQUEST_ID,
        AttrValue::Str(exchange.request_id.to_string()),
    );

    let mut events = Vec::new();
    if exchange.kind == ExchangeKind::WebSocket {
        let stats = exchange.websocket.clone().unwrap_or_default();
        let counts = [
            (attr::WS_MESSAGES_IN, stats.messages_in),
            (attr::WS_MESSAGES_OUT, stats.messages_out),
            (attr::WS_BYTES_IN, stats.bytes_in),
            (attr::WS_BYTES_OUT, stats.bytes_out),
        ];
        for (key, value) in counts {
            push(key, int(value));
        }
        if let Some(code) = stats.close_code {
            push(attr::WS_CLOSE_CODE, int(code));
        }
        if let Some(by) = stats.closed_by {
            push(attr::WS_CLOSED_BY, str(by));
        }
        let base = start;
        let at =
            |offset: Duration| base.saturating_add(u64::try_from(offset.as_nanos()).unwrap_or(0));
        if let Some(open) = exchange.timing.integration_response {
            events.push(SpanEvent {
                name: "websocket.open".into(),
                unix_nanos: at(open),
                attributes: Vec::new(),
            });
        }
        let dropped = websocket_message_events(&stats, base, &mut events);
        if dropped > 0 {
            push(attr::WS_EVENTS_DROPPED, int(dropped));
        }
        let mut close = vec![
            (attr::WS_MESSAGES_IN.to_owned(), int(stats.messages_in)),
            (attr::WS_MESSAGES_OUT.to_owned(), int(stats.messages_out)),
        ];
        if let Some(code) = stats.close_code {
            close.push((attr::WS_CLOSE_CODE.to_owned(), int(code)));
        }
        if let Some(by) = stats.closed_by {
            close.push((attr::WS_CLOSED_BY.to_owned(), str(by)));
        }
        events.push(SpanEvent {
            name: "websocket.close".into(),
            unix_nanos: end,
            attributes: close,
        });
    }

    let classification = classify(exchange.status);
    Span {
        trace_id,
        span_id,
        // The caller's span, when it sent one: the gateway's server span continues its trace.
        parent_span_id: exchange.trace.and_then(|t| t.parent_id),
        name,
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: end.max(start),
        attributes,
        events,
        status: if exchange.status >= 500 {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        },
        classification,
    }
}

/// Appends a `message` event for each message `stats` recorded, at `start` (the request head's
/// arrival) plus the message's offset, and returns how many of the connection's messages were
/// not recorded (beyond [`MAX_WEBSOCKET_MESSAGE_EVENTS`](crate::MAX_WEBSOCKET_MESSAGE_EVENTS)).
///
/// The attributes are those of OpenTelemetry's RPC message events, seen from the server span,
/// which is the client's connection: a client's message is `RECEIVED`, a message to the client
/// `SENT`; `message.id` counts each direction from 1; `message.uncompressed_size` is the
/// payload (the gateway negotiates no compression). The opcode is the gateway's own attribute.
fn websocket_message_events(
    stats: &crate::WebSocketStats,
    start: u64,
    events: &mut Vec<SpanEvent>,
) -> u64 {
    use crate::{WebSocketDirection, WebSocketMessageKind};
    let (mut received, mut sent) = (0u64, 0u64);
    for message in &stats.message_events {
        let (message_type, id) = match message.direction {
            WebSocketDirection::In => ("RECEIVED", &mut received),
            WebSocketDirection::Out => ("SENT", &mut sent),
        };
        *id += 1;
        let opcode = match message.kind {
            WebSocketMessageKind::Text => "text",
            WebSocketMessageKind::Binary => "binary",
        };
        events.push(SpanEvent {
            name: "message".into(),
            unix_nanos: start.saturating_add(message.at_nanos),
            attributes: vec![
                (attr::MESSAGE_TYPE.to_owned(), str(message_type)),
                (attr::MESSAGE_ID.to_owned(), int(*id)),
                (
                    attr::MESSAGE_UNCOMPRESSED_SIZE.to_owned(),
                    int(message.size),
                ),
                (attr::WS_OPCODE.to_owned(), str(opcode)),
            ],
        });
    }
    let counted = stats.messages_in.saturating_add(stats.messages_out);
    counted.saturating_sub(received + sent)
}

fn phase_attributes(span: &mut Span, phase: &str, decision: Option<&Decision>) {
    span.attributes.push((attr::PHASE.into(), str(phase)));
    if let Some(decision) = decision {
        let text = match decision {
            Decision::Allowed => "allowed",
            Decision::Rejected { reason } => reason,
            Decision::Hit => "hit",
            Decision::Miss => "miss",
        };
        span.attributes.push((attr::DECISION.into(), str(text)));
    }
}

fn decision_of<'a>(exchange: &'a Exchange, phase: &str) -> Option<&'a Decision> {
    let decisions = &exchange.decisions;
    match phase {
        "waf" => decisions.waf.as_ref(),
        "auth" => decisions.auth.as_ref(),
        "throttle" => decisions.throttle.as_ref(),
        "cache" => decisions.cache.as_ref(),
        _ => None,
    }
}

fn unix_nanos(exchange: &Exchange) -> u64 {
    exchange
        .timing
        .received_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn str(value: &str) -> AttrValue {
    AttrValue::Str(value.to_owned())
}

fn int(value: impl TryInto<i64>) -> AttrValue {
    AttrValue::Int(value.try_into().unwrap_or(i64::MAX))
}

/// The host and port of an absolute `http(s)`/`ws(s)` URL, the port defaulted by its scheme.
fn url_host_port(url: &str) -> Option<(&str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let default = match scheme {
        "https" | "wss" => 443,
        _ => 80,
    };
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => Some((host, port.parse().ok()?)),
        _ => Some((authority, default)),
    }
    .filter(|(host, _)| !host.is_empty())
}
