//! From one exchange to its spans, following OpenTelemetry's HTTP semantic conventions
//! (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>) and X-Ray's classification
//! of errors, faults and throttles.
//!
//! The timestamps are the exchange's own: the server span runs from the request head's arrival to
//! the last response byte (`Timing::done`), the integration's client span from `integration_start`
//! to `integration_end` (or the response head, or `done`, whichever is known), and each phase from
//! the end of the step before it to its own end. Without an execution-log detail the phases'
//! times are unknown, so a phase that recorded a decision gets a zero-length marker at `routed`.
//!
//! Spans are built from a [`TracedExchange`], the record the store keeps, when they are read;
//! [`spans_from_exchange`] is the same path from an exchange in hand.

use super::ids::child_span_id;
use super::traced::{TracedDecision, TracedExchange, TracedPhaseResult};
use super::{AttrValue, Classification, Span, SpanEvent, SpanKind, SpanStatus, attr};
use crate::Exchange;

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
/// Unsampled exchanges are the caller's to skip. The same as building its [`TracedExchange`]
/// and then its spans, which is what the recorder and the store do.
pub fn spans_from_exchange(exchange: &Exchange) -> Vec<Span> {
    TracedExchange::from_exchange(exchange).map_or_else(Vec::new, |traced| spans(&traced))
}

/// The spans of a traced exchange, server span first.
pub(super) fn spans(traced: &TracedExchange) -> Vec<Span> {
    let base = traced.start_unix_nanos;
    let at = |offset: u64| base.saturating_add(offset);
    let mut spans = Vec::with_capacity(traced.span_count());
    spans.push(server_span(traced, at(traced.timing.done)));
    let mut index = 0u32;
    let mut child = |name: String, kind: SpanKind, start: u64, end: u64| {
        let span = Span {
            trace_id: traced.trace_id,
            span_id: child_span_id(traced.span_id, index),
            parent_span_id: Some(traced.span_id),
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

    let timing = &traced.timing;
    let routed = timing.routed.unwrap_or_default();
    match &traced.phases {
        Some(steps) => {
            let mut previous = routed;
            for step in steps {
                let mut span = child(
                    step.phase.to_string(),
                    SpanKind::Internal,
                    at(previous),
                    at(step.at),
                );
                phase_attributes(&mut span, &step.phase, traced.decisions.of(&step.phase));
                if let TracedPhaseResult::Answered(status) = step.result {
                    span.attributes
                        .push((attr::HTTP_RESPONSE_STATUS_CODE.into(), int(status)));
                } else if step.result == TracedPhaseResult::Panicked {
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
            for (phase, decision) in traced.decisions.iter() {
                let mut span = child(phase.to_owned(), SpanKind::Internal, at(routed), at(routed));
                phase_attributes(&mut span, phase, Some(decision));
                spans.push(span);
            }
        }
    }

    let integration = &traced.integration;
    if let (Some(kind), Some(start)) = (&integration.kind, timing.integration_start) {
        let end = timing
            .integration_end
            .or(timing.integration_response)
            .unwrap_or(timing.done);
        let kind = kind.as_str();
        let name = match &traced.method {
            Some(method) if kind == "http" => method.as_str().to_owned(),
            _ => kind.to_owned(),
        };
        let mut span = child(name, SpanKind::Client, at(start), at(end));
        span.attributes.push((attr::INTEGRATION.into(), str(kind)));
        if let Some(request) = &integration.request {
            if let Some(method) = &request.method {
                span.attributes
                    .push((attr::HTTP_REQUEST_METHOD.into(), str(method.as_str())));
            }
            span.attributes
                .push((attr::URL_FULL.into(), str(&request.url)));
            if let Some((host, port)) = url_host_port(&request.url) {
                span.attributes
                    .push((attr::SERVER_ADDRESS.into(), str(host)));
                span.attributes.push((attr::SERVER_PORT.into(), int(port)));
            }
        }
        if let Some(status) = integration.status {
            span.attributes
                .push((attr::HTTP_RESPONSE_STATUS_CODE.into(), int(status)));
            span.classification = classify(status);
            if status >= 400 {
                span.status = SpanStatus::Error;
            }
        }
        // The integration failed (connect, reset, timeout): X-Ray calls that a fault whatever
        // the status the gateway then answered with.
        if integration.failed {
            let error_type = traced.error.map_or("integration_error", |e| e.as_str());
            span.attributes
                .push((attr::ERROR_TYPE.into(), str(error_type)));
            span.status = SpanStatus::Error;
            span.classification = Classification::Fault;
        }
        spans.push(span);
    }
    debug_assert_eq!(spans.len(), traced.span_count());
    spans
}

fn server_span(traced: &TracedExchange, end: u64) -> Span {
    let start = traced.start_unix_nanos;
    let method = traced.method.as_ref().map(|m| m.as_str());
    let route = traced.route.as_ref();
    let mut attributes = Vec::with_capacity(20);
    let mut push = |key: &str, value: AttrValue| attributes.push((key.to_owned(), value));
    if let Some(method) = method {
        push(attr::HTTP_REQUEST_METHOD, str(method));
    }
    if let Some(route) = route {
        push(attr::HTTP_ROUTE, str(&route.resource_path));
    }
    push(attr::HTTP_RESPONSE_STATUS_CODE, int(traced.status));
    push(attr::URL_PATH, str(&traced.path));
    push(
        attr::URL_SCHEME,
        str(if traced.tls { "https" } else { "http" }),
    );
    if let Some(host) = traced.host.as_deref() {
        // server.address is the host name without the port.
        let address = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        push(attr::SERVER_ADDRESS, str(address));
    }
    push(attr::CLIENT_ADDRESS, str(&traced.client.ip().to_string()));
    push(attr::CLIENT_PORT, int(traced.client.port()));
    push(
        attr::NETWORK_PROTOCOL_VERSION,
        str(traced.protocol.as_str()),
    );
    if let Some(agent) = traced.user_agent.as_deref() {
        push(attr::USER_AGENT, str(agent));
    }
    push(attr::REQUEST_BODY_SIZE, int(traced.bytes_in));
    push(attr::RESPONSE_BODY_SIZE, int(traced.bytes_out));
    let error_type = match traced.error {
        Some(class) => Some(class.as_str().to_owned()),
        None if traced.status >= 500 => Some(traced.status.to_string()),
        None => None,
    };
    if let Some(error_type) = error_type {
        push(attr::ERROR_TYPE, AttrValue::Str(error_type));
    }
    if let Some(route) = route {
        push(attr::API, str(&route.api));
        push(attr::API_VERSION, str(&route.api_version));
        push(attr::STAGE, str(&route.stage));
    }
    if traced.canary {
        push(attr::CANARY, AttrValue::Bool(true));
    }
    push(attr::REQUEST_ID, str(traced.request_id.as_str()));

    let mut events = Vec::new();
    if let Some(stats) = &traced.websocket {
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
        if let Some(by) = &stats.closed_by {
            push(attr::WS_CLOSED_BY, str(by.as_str()));
        }
        if let Some(open) = traced.timing.integration_response {
            events.push(SpanEvent {
                name: "websocket.open".into(),
                unix_nanos: start.saturating_add(open),
                attributes: Vec::new(),
            });
        }
        let dropped = websocket_message_events(stats, start, &mut events);
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
        if let Some(by) = &stats.closed_by {
            close.push((attr::WS_CLOSED_BY.to_owned(), str(by.as_str())));
        }
        events.push(SpanEvent {
            name: "websocket.close".into(),
            unix_nanos: end,
            attributes: close,
        });
    }

    Span {
        trace_id: traced.trace_id,
        span_id: traced.span_id,
        // The caller's span, when it sent one: the gateway's server span continues its trace.
        parent_span_id: traced.parent_id,
        name: traced.name(),
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: end.max(start),
        attributes,
        events,
        status: if traced.status >= 500 {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        },
        classification: classify(traced.status),
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
    stats: &super::TracedWebSocket,
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

fn phase_attributes(span: &mut Span, phase: &str, decision: Option<&TracedDecision>) {
    span.attributes.push((attr::PHASE.into(), str(phase)));
    if let Some(decision) = decision {
        span.attributes
            .push((attr::DECISION.into(), str(decision.as_str())));
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
