//! The `$context.*` variables an access-log template may use, and how each reads its value from
//! an [`Exchange`].
//!
//! The names follow API Gateway's access-log variables where one applies to a self-hosted gateway
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html#context-variable-reference>);
//! what is ours lives under `$context.gatehouse.*`. A value is either borrowed from the record,
//! a number, or formatted into a reusable scratch buffer, so rendering allocates nothing per
//! variable. Absent values (`None` in the record, or a phase that has not run) render as `-`.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use crate::{Decision, ErrorClass, Exchange, ExchangeKind, WebSocketStats};

use super::clock::SecondClock;

/// One variable, resolved at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    RequestId,
    ExtendedRequestId,
    SourceIp,
    UserAgent,
    ApiKeyId,
    HttpMethod,
    ResourcePath,
    RouteKey,
    Path,
    Protocol,
    Status,
    ResponseLength,
    RequestTime,
    RequestTimeEpoch,
    ResponseLatency,
    IntegrationLatency,
    IntegrationStatus,
    IntegrationError,
    ErrorMessage,
    ErrorResponseType,
    Stage,
    ApiId,
    DomainName,
    DomainPrefix,
    XrayTraceId,
    TraceId,
    Time,
    Kind,
    Listener,
    Tls,
    Host,
    ApiVersion,
    BytesIn,
    LatencyMs,
    IntegrationLatencyMs,
    IntegrationKind,
    ErrorClass,
    Canary,
    Waf,
    Auth,
    Throttle,
    Cache,
    RejectReason,
    SpanId,
    WebSocket,
    WsMessagesIn,
    WsMessagesOut,
    WsCloseCode,
    WsClosedBy,
}

/// Every name after `$context.`, in the order the documentation lists them. Aliases (AWS has
/// two spellings for some) map to the same [`Var`].
pub(crate) const VARIABLES: &[(&str, Var)] = &[
    ("requestId", Var::RequestId),
    ("extendedRequestId", Var::ExtendedRequestId),
    ("identity.sourceIp", Var::SourceIp),
    ("identity.userAgent", Var::UserAgent),
    ("identity.apiKeyId", Var::ApiKeyId),
    ("httpMethod", Var::HttpMethod),
    ("resourcePath", Var::ResourcePath),
    ("routeKey", Var::RouteKey),
    ("path", Var::Path),
    ("protocol", Var::Protocol),
    ("status", Var::Status),
    ("responseLength", Var::ResponseLength),
    ("requestTime", Var::RequestTime),
    ("requestTimeEpoch", Var::RequestTimeEpoch),
    ("responseLatency", Var::ResponseLatency),
    ("integrationLatency", Var::IntegrationLatency),
    ("integration.latency", Var::IntegrationLatency),
    ("integration.status", Var::IntegrationStatus),
    ("integrationStatus", Var::IntegrationStatus),
    ("integration.error", Var::IntegrationError),
    ("error.message", Var::ErrorMessage),
    ("error.responseType", Var::ErrorResponseType),
    ("stage", Var::Stage),
    ("apiId", Var::ApiId),
    ("domainName", Var::DomainName),
    ("domainPrefix", Var::DomainPrefix),
    ("xrayTraceId", Var::XrayTraceId),
    ("traceId", Var::TraceId),
    ("gatehouse.time", Var::Time),
    ("gatehouse.kind", Var::Kind),
    ("gatehouse.listener", Var::Listener),
    ("gatehouse.tls", Var::Tls),
    ("gatehouse.host", Var::Host),
    ("gatehouse.apiVersion", Var::ApiVersion),
    ("gatehouse.bytesIn", Var::BytesIn),
    ("gatehouse.latencyMs", Var::LatencyMs),
    ("gatehouse.integrationLatencyMs", Var::IntegrationLatencyMs),
    ("gatehouse.integrationKind", Var::IntegrationKind),
    ("gatehouse.errorClass", Var::ErrorClass),
    ("gatehouse.canary", Var::Canary),
    ("gatehouse.waf", Var::Waf),
    ("gatehouse.auth", Var::Auth),
    ("gatehouse.throttle", Var::Throttle),
    ("gatehouse.cache", Var::Cache),
    ("gatehouse.rejectReason", Var::RejectReason),
    ("gatehouse.spanId", Var::SpanId),
    ("gatehouse.websocket", Var::WebSocket),
    ("gatehouse.websocket.messagesIn", Var::WsMessagesIn),
    ("gatehouse.websocket.messagesOut", Var::WsMessagesOut),
    ("gatehouse.websocket.closeCode", Var::WsCloseCode),
    ("gatehouse.websocket.closedBy", Var::WsClosedBy),
];

/// Finds the longest known name at the start of `run` (the characters after `$context.` that can
/// belong to a name) that ends the run or is followed by a `.`, so `$context.status.` in prose is
/// the status and a full stop, while `$context.statusCode` is an unknown variable.
pub(crate) fn longest_match(run: &str) -> Option<(&'static str, Var)> {
    VARIABLES
        .iter()
        .filter(|(name, _)| {
            run.starts_with(name) && (run.len() == name.len() || run.as_bytes()[name.len()] == b'.')
        })
        .max_by_key(|(name, _)| name.len())
        .copied()
}

/// The value of one variable for one exchange.
pub(crate) enum Value<'a> {
    Absent,
    Text(&'a str),
    Number(u64),
    /// Milliseconds with microsecond resolution, written as `12.345`.
    Millis(Duration),
    Bool(bool),
    /// Text that was formatted into [`Scratch::buf`].
    Scratch,
    WebSocket(&'a WebSocketStats),
}

/// Buffers reused from one rendered line to the next.
#[derive(Debug, Default)]
pub struct RenderScratch {
    pub(crate) buf: Vec<u8>,
    pub(crate) clock: SecondClock,
}

impl<'a> Value<'a> {
    fn text(text: Option<&'a str>) -> Self {
        text.map_or(Value::Absent, Value::Text)
    }

    fn number(n: Option<impl Into<u64>>) -> Self {
        n.map_or(Value::Absent, |n| Value::Number(n.into()))
    }
}

/// Reads `var` from `ex`, formatting into `scratch.buf` (cleared first) when the value is not
/// stored in the record as it is rendered.
pub(crate) fn value<'a>(var: Var, ex: &'a Exchange, scratch: &mut RenderScratch) -> Value<'a> {
    let route = ex.route.as_ref();
    let buf = &mut scratch.buf;
    buf.clear();
    match var {
        Var::RequestId => Value::Text(ex.request_id.as_str()),
        Var::ExtendedRequestId => {
            let _ = write!(
                buf,
                "{}-{}-{}",
                ex.listener,
                epoch_millis(ex),
                ex.request_id.as_str()
            );
            Value::Scratch
        }
        Var::SourceIp => {
            write_ip(buf, ex.client.ip());
            Value::Scratch
        }
        Var::UserAgent => Value::text(header_str(ex.user_agent.as_ref())),
        // The auth phase does not exist yet; API keys will be recorded when it does.
        Var::ApiKeyId => Value::Absent,
        Var::HttpMethod => Value::text(ex.method.as_ref().map(http::Method::as_str)),
        Var::ResourcePath => Value::text(route.map(|r| &*r.resource_path)),
        Var::RouteKey => match (route, &ex.method) {
            (Some(route), Some(method)) => {
                let _ = write!(buf, "{} {}", method.as_str(), route.resource_path);
                Value::Scratch
            }
            _ => Value::Absent,
        },
        Var::Path => Value::Text(&ex.path),
        Var::Protocol => Value::Text(protocol_label(ex.protocol)),
        Var::Status => Value::Number(ex.status.into()),
        Var::ResponseLength => Value::Number(ex.bytes_out),
        Var::RequestTime => {
            scratch.clock.clf(ex.timing.received_at, buf);
            Value::Scratch
        }
        Var::RequestTimeEpoch => Value::Number(epoch_millis(ex)),
        Var::ResponseLatency => Value::Number(whole_millis(ex.timing.latency())),
        Var::IntegrationLatency => Value::number(ex.timing.integration_latency().map(whole_millis)),
        Var::IntegrationStatus => Value::number(ex.integration.status),
        Var::IntegrationError => Value::text(ex.integration.error.as_deref()),
        Var::ErrorMessage => Value::text(ex.error_message.as_deref()),
        Var::ErrorResponseType => Value::text(response_type(ex)),
        Var::Stage => Value::text(route.map(|r| &*r.stage)),
        Var::ApiId => Value::text(route.map(|r| &*r.api)),
        Var::DomainName => Value::text(domain_name(ex)),
        Var::DomainPrefix => Value::text(domain_name(ex).and_then(|d| d.split('.').next())),
        Var::XrayTraceId => match &ex.trace {
            Some(trace) => {
                // X-Ray's form of a 128-bit id: `1-` + the first 32 bits + `-` + the other 96.
                buf.extend_from_slice(b"1-");
                write_hex(buf, &trace.trace_id[..4]);
                buf.push(b'-');
                write_hex(buf, &trace.trace_id[4..]);
                Value::Scratch
            }
            None => Value::Absent,
        },
        Var::TraceId => match &ex.trace {
            Some(trace) => {
                write_hex(buf, &trace.trace_id);
                Value::Scratch
            }
            None => Value::Absent,
        },
        Var::SpanId => match &ex.trace {
            Some(trace) => {
                write_hex(buf, &trace.span_id);
                Value::Scratch
            }
            None => Value::Absent,
        },
        Var::Time => {
            scratch.clock.rfc3339(ex.timing.received_at, buf);
            Value::Scratch
        }
        Var::Kind => Value::Text(match ex.kind {
            ExchangeKind::Http => "http",
            ExchangeKind::WebSocket => "websocket",
        }),
        Var::Listener => Value::Text(&ex.listener),
        Var::Tls => Value::Bool(ex.tls),
        Var::Host => Value::text(header_str(ex.host.as_ref())),
        Var::ApiVersion => Value::text(route.map(|r| &*r.api_version)),
        Var::BytesIn => Value::Number(ex.bytes_in),
        Var::LatencyMs => Value::Millis(ex.timing.latency()),
        Var::IntegrationLatencyMs => ex
            .timing
            .integration_latency()
            .map_or(Value::Absent, Value::Millis),
        Var::IntegrationKind => Value::text(ex.integration.kind),
        Var::ErrorClass => Value::text(ex.error.map(ErrorClass::as_str)),
        Var::Canary => Value::Bool(ex.canary),
        Var::Waf => decision(ex.decisions.waf.as_ref()),
        Var::Auth => decision(ex.decisions.auth.as_ref()),
        Var::Throttle => decision(ex.decisions.throttle.as_ref()),
        Var::Cache => decision(ex.decisions.cache.as_ref()),
        Var::RejectReason => Value::text(rejected_by(ex).map(|(_, reason)| reason)),
        Var::WebSocket => ex
            .websocket
            .as_ref()
            .map_or(Value::Absent, Value::WebSocket),
        Var::WsMessagesIn => Value::number(ex.websocket.as_ref().map(|w| w.messages_in)),
        Var::WsMessagesOut => Value::number(ex.websocket.as_ref().map(|w| w.messages_out)),
        Var::WsCloseCode => Value::number(ex.websocket.as_ref().and_then(|w| w.close_code)),
        Var::WsClosedBy => Value::text(ex.websocket.as_ref().and_then(|w| w.closed_by)),
    }
}

fn decision(decision: Option<&Decision>) -> Value<'static> {
    Value::text(decision.map(|d| match d {
        Decision::Allowed => "allowed",
        Decision::Rejected { .. } => "rejected",
        Decision::Hit => "hit",
        Decision::Miss => "miss",
    }))
}

/// The phase that answered the request itself, and its reason.
fn rejected_by(ex: &Exchange) -> Option<(&'static str, &'static str)> {
    let d = &ex.decisions;
    [
        ("waf", &d.waf),
        ("auth", &d.auth),
        ("throttle", &d.throttle),
        ("cache", &d.cache),
    ]
    .into_iter()
    .find_map(|(phase, decision)| match decision {
        Some(Decision::Rejected { reason }) => Some((phase, *reason)),
        _ => None,
    })
}

/// API Gateway's gateway response type for an answer the gateway made itself
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html>);
/// `None` when the upstream answered.
pub(crate) fn response_type(ex: &Exchange) -> Option<&'static str> {
    let class = ex.error?;
    let default = if ex.status >= 500 {
        "DEFAULT_5XX"
    } else {
        "DEFAULT_4XX"
    };
    Some(match class {
        ErrorClass::MalformedRequest => "BAD_REQUEST_PARAMETERS",
        ErrorClass::HeadersTooLarge
        | ErrorClass::PayloadTooLarge
        | ErrorClass::WebSocketFrameTooLarge
        | ErrorClass::WebSocketMessageTooLarge => "REQUEST_TOO_LARGE",
        ErrorClass::RouteNotFound => "RESOURCE_NOT_FOUND",
        ErrorClass::UpstreamConnect | ErrorClass::UpstreamReset | ErrorClass::UpstreamRejected => {
            "INTEGRATION_FAILURE"
        }
        ErrorClass::UpstreamTimeout => "INTEGRATION_TIMEOUT",
        ErrorClass::RejectedByPhase => match rejected_by(ex) {
            Some(("waf", _)) => "WAF_FILTERED",
            Some(("throttle", reason)) if reason.contains("quota") => "QUOTA_EXCEEDED",
            Some(("throttle", _)) => "THROTTLED",
            Some(("auth", reason)) if reason.contains("api_key") => "INVALID_API_KEY",
            Some(("auth", _)) if ex.status == 401 => "UNAUTHORIZED",
            Some(("auth", _)) => "ACCESS_DENIED",
            _ => default,
        },
        ErrorClass::MethodNotAllowed
        | ErrorClass::ClientClosed
        | ErrorClass::WebSocketIdleTimeout
        | ErrorClass::WebSocketLifetimeExceeded
        | ErrorClass::Internal => default,
    })
}

fn header_str(value: Option<&http::HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// The Host header without its port.
fn domain_name(ex: &Exchange) -> Option<&str> {
    let host = header_str(ex.host.as_ref())?;
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    (!name.is_empty()).then_some(name)
}

pub(crate) fn epoch_millis(ex: &Exchange) -> u64 {
    ex.timing
        .received_at
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

fn whole_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn protocol_label(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_int(out, octet);
            }
        }
        IpAddr::V6(ip) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

pub(crate) fn write_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes a duration as milliseconds with microsecond resolution (`12.345`), which is what the
/// timestamps carry, without going through float formatting.
pub(crate) fn write_millis(out: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros();
    write_int(out, micros / 1000);
    let fraction = (micros % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}
