//! The Exchange record: what happened to one request or one WebSocket connection, from the first
//! byte received to the last byte sent, including every rejection.
//!
//! All timings are offsets from one monotonic start instant ([`Timing`]), so metrics, logs and
//! traces computed from the same record agree ("one latency model").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Version};
use serde::{Deserialize, Serialize};

use crate::RequestId;
use crate::execution::ExecutionDetail;

/// Whether the record describes one HTTP request or one WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Http,
    WebSocket,
}

/// The bounded labels of the route that served the request, shared with the routing table.
#[derive(Debug, Clone)]
pub struct RouteLabels {
    pub api: Arc<str>,
    pub api_version: Arc<str>,
    pub stage: Arc<str>,
    /// The route's path template as written in the config, e.g. `/pets/{id}`; never a raw path.
    pub resource_path: Arc<str>,
}

/// Trace and span ids (`crate::trace` decides them at admission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: [u8; 16],
    /// The gateway's own span: the parent the upstream sees.
    pub span_id: [u8; 8],
    /// The caller's span, when the gateway continued a trace that named one.
    pub parent_id: Option<[u8; 8]>,
    pub sampled: bool,
}

/// Why the gateway, not the upstream, decided the status. One bounded set of labels, used by
/// logs (`error` field) and metrics alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    MalformedRequest,
    HeadersTooLarge,
    PayloadTooLarge,
    RouteNotFound,
    MethodNotAllowed,
    /// The client went away before the response was complete.
    ClientClosed,
    UpstreamConnect,
    UpstreamReset,
    UpstreamTimeout,
    /// The upstream refused the WebSocket handshake.
    UpstreamRejected,
    WebSocketFrameTooLarge,
    WebSocketMessageTooLarge,
    WebSocketIdleTimeout,
    WebSocketLifetimeExceeded,
    /// A pipeline phase (WAF, auth, throttle …) answered the request itself.
    RejectedByPhase,
    Internal,
}

impl ErrorClass {
    /// The stable label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::HeadersTooLarge => "headers_too_large",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ClientClosed => "client_closed",
            Self::UpstreamConnect => "upstream_connect",
            Self::UpstreamReset => "upstream_reset",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamRejected => "upstream_rejected",
            Self::WebSocketFrameTooLarge => "websocket_frame_too_large",
            Self::WebSocketMessageTooLarge => "websocket_message_too_large",
            Self::WebSocketIdleTimeout => "websocket_idle_timeout",
            Self::WebSocketLifetimeExceeded => "websocket_lifetime_exceeded",
            Self::RejectedByPhase => "rejected_by_phase",
            Self::Internal => "internal",
        }
    }
}

/// The decision one pipeline phase recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The phase answered the request itself; the reason is a short bounded label.
    Rejected {
        reason: &'static str,
    },
    Hit,
    Miss,
}

/// Decisions of the optional pipeline phases; `None` means the phase did not run for this request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub waf: Option<Decision>,
    pub auth: Option<Decision>,
    pub throttle: Option<Decision>,
    pub cache: Option<Decision>,
}

/// What the integration (upstream, mock or WebSocket peer) did.
#[derive(Debug, Clone, Default)]
pub struct IntegrationOutcome {
    /// `http`, `mock` or `websocket`; `None` when the request never reached an integration.
    pub kind: Option<&'static str>,
    /// The status the upstream answered, if it answered.
    pub status: Option<u16>,
    /// A one-line description of an integration failure.
    pub error: Option<String>,
    /// The upstream URL the gateway called, without its query (which may carry secrets).
    /// Recorded only for sampled traces, for the integration span's `url.full` and
    /// `server.address` (and so the service graph's upstream node).
    pub url: Option<String>,
}

impl IntegrationOutcome {
    /// `scheme://authority/path` of `uri`, the form [`IntegrationOutcome::url`] keeps.
    pub fn url_without_query(uri: &http::Uri) -> String {
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}{}", uri.path())
    }
}

/// The steps of one exchange as offsets from `start`. `received_at` is the wall-clock time of the
/// same instant, for display only.
#[derive(Debug, Clone)]
pub struct Timing {
    pub received_at: SystemTime,
    pub routed: Option<Duration>,
    pub integration_start: Option<Duration>,
    /// The upstream's response head arrived (time to first upstream byte).
    pub integration_response: Option<Duration>,
    pub integration_end: Option<Duration>,
    pub done: Duration,
}

impl Timing {
    /// Total latency as the client saw it, from the request head to the last response byte.
    pub fn latency(&self) -> Duration {
        self.done
    }

    /// Time from sending the request upstream to receiving the response head, like API Gateway's
    /// `IntegrationLatency`.
    pub fn integration_latency(&self) -> Option<Duration> {
        Some(
            self.integration_response?
                .saturating_sub(self.integration_start?),
        )
    }
}

/// Counters of one WebSocket connection.
#[derive(Debug, Clone, Default)]
pub struct WebSocketStats {
    /// Data messages (text and binary) from the client to the upstream.
    pub messages_in: u64,
    /// Data messages from the upstream to the client.
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The close code that ended the connection, if a close frame was seen or sent.
    pub close_code: Option<u16>,
    /// Which side closed first: `client`, `upstream` or `gateway`.
    pub closed_by: Option<&'static str>,
    /// The first [`MAX_WEBSOCKET_MESSAGE_EVENTS`] data messages of both directions in the order
    /// they were read, when the connection's trace is sampled; empty otherwise. They are the
    /// first of the messages `messages_in` and `messages_out` count, so those counts less this
    /// length are the messages left out.
    pub message_events: Vec<WebSocketMessage>,
}

/// How many messages of one WebSocket connection are recorded for its span: OpenTelemetry's
/// default span event count limit (`OTEL_SPAN_EVENT_COUNT_LIMIT`), so a long connection's record
/// stays bounded.
pub const MAX_WEBSOCKET_MESSAGE_EVENTS: usize = 128;

/// One data message of a sampled WebSocket connection, for its span's message events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocketMessage {
    /// When the message's last frame was read, in nanoseconds after the request head arrived
    /// (the origin of the [`Timing`] offsets).
    pub at_nanos: u64,
    /// Payload bytes of all its frames.
    pub size: u64,
    pub direction: WebSocketDirection,
    pub kind: WebSocketMessageKind,
}

/// Which way a WebSocket message went through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebSocketDirection {
    /// From the client to the upstream (counted in `messages_in`).
    In,
    /// From the upstream to the client (counted in `messages_out`).
    Out,
}

/// A data message's type, from the opcode of its first frame (RFC 6455 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebSocketMessageKind {
    Text,
    Binary,
}

/// One record per request and per WebSocket connection.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub kind: ExchangeKind,
    pub request_id: RequestId,
    pub trace: Option<TraceIds>,
    pub listener: Arc<str>,
    /// `None` when the request was rejected before a route matched.
    pub route: Option<RouteLabels>,
    /// Whether a canary deployment served the request.
    pub canary: bool,
    /// `None` when the request head could not be parsed.
    pub method: Option<Method>,
    pub host: Option<HeaderValue>,
    /// The request path without the query string.
    pub path: String,
    pub protocol: Version,
    pub tls: bool,
    pub client: SocketAddr,
    pub user_agent: Option<HeaderValue>,
    pub status: u16,
    pub error: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub integration: IntegrationOutcome,
    pub decisions: Decisions,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub timing: Timing,
    pub websocket: Option<WebSocketStats>,
    /// What the execution log of the route's stage needs beyond the fields above; `None` unless
    /// the stage logs at INFO, traces data, or logs at ERROR and this exchange failed.
    pub execution: Option<Box<ExecutionDetail>>,
}
