//! Spans: what the trace recorder makes of one [`Exchange`](crate::Exchange), in OpenTelemetry's
//! model, so traces can be stored, shown as a waterfall and exported without translation.
//!
//! Each traced request yields a server span (the gateway's own span: its id is the one the
//! exchange carries in `trace.span_id`), a child span per pipeline phase that ran, and a client
//! span for the integration. Every timestamp is the exchange's arrival time plus a [`Timing`]
//! offset, so a span's duration is the very latency that metrics and logs report ("one latency
//! model"). Child span ids are derived from the server span id and the child's index, so the same
//! exchange always yields the same spans.
//!
//! `traced` is the record the store keeps of a sampled exchange ([`TracedExchange`]: its
//! span-relevant facts, cheap to copy, versioned in its encoding), `build` turns that record into
//! spans when they are read, `ids` formats and parses trace ids (W3C and X-Ray forms), `recorder`
//! is the bus consumer thread that hands records to a [`TraceSink`], `otlp` exports spans to an
//! OpenTelemetry collector, `receive` reads the spans services send (protobuf, or JSON through
//! `receive_json`), and `graph` builds the service graph of a window of spans.
//!
//! [`Timing`]: crate::Timing

mod build;
mod graph;
mod ids;
mod otlp;
mod receive;
mod receive_json;
mod recorder;
mod traced;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod traced_tests;
#[cfg(test)]
mod websocket_tests;

pub use build::{classify, spans_from_exchange};
pub use graph::{Edge, Latency, Node, NodeKind, ServiceGraph, build_graph};
pub use ids::{TraceIdError, child_span_id, parse_trace_id, span_id_hex, trace_id_hex};
pub use otlp::{CLASSIFICATION_ATTRIBUTE, SCOPE_NAME, SpanExporter};
pub use receive::{OtlpEncoding, ReceiveError, Received, spans_from_otlp};
pub use recorder::{RecorderStats, SpanSink, TraceRecorder, TraceSink};
pub use traced::{
    ClosedBy, HttpVersion, IntegrationKind, TracedDecision, TracedDecisions, TracedDecodeError,
    TracedExchange, TracedIntegration, TracedIntegrationRequest, TracedPhase, TracedPhaseResult,
    TracedRoute, TracedTiming, TracedWebSocket, is_sampled,
};

use serde::{Deserialize, Serialize};

/// The kind of a span, as in OpenTelemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanKind {
    /// The gateway serving a request.
    Server,
    /// The gateway calling its integration.
    Client,
    /// Work inside the gateway: a pipeline phase.
    Internal,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Internal => "internal",
        }
    }
}

/// OpenTelemetry's span status. Server spans are `Error` only for 5xx answers (a 4xx is the
/// client's mistake, per the HTTP semantic conventions); client spans for any 4xx or 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanStatus {
    Unset,
    Error,
}

/// How X-Ray classifies a segment: a 429 is a throttle, another 4xx an error, a 5xx a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Classification {
    Ok,
    Error,
    Throttle,
    Fault,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Throttle => "throttle",
            Self::Fault => "fault",
        }
    }

    /// The inverse of [`Classification::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ok" => Self::Ok,
            "error" => Self::Error,
            "throttle" => Self::Throttle,
            "fault" => Self::Fault,
            _ => return None,
        })
    }
}

/// An attribute value: the subset of OpenTelemetry's `AnyValue` the gateway emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Something that happened at one instant of a span (a WebSocket opening, a message, closing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub name: String,
    pub unix_nanos: u64,
    pub attributes: Vec<(String, AttrValue)>,
}

/// One span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// For the gateway's server span, the caller's span when the request carried one; `None`
    /// for a trace the gateway started.
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(String, AttrValue)>,
    pub events: Vec<SpanEvent>,
    pub status: SpanStatus,
    pub classification: Classification,
}

impl Span {
    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The value of string attribute `key`, if set.
    pub fn attribute_str(&self, key: &str) -> Option<&str> {
        match self.attribute(key)? {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of integer attribute `key`, if set.
    pub fn attribute_int(&self, key: &str) -> Option<i64> {
        match self.attribute(key)? {
            AttrValue::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// Attribute keys: OpenTelemetry's HTTP semantic conventions and the gateway's own.
pub mod attr {
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    pub const HTTP_ROUTE: &str = "http.route";
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    pub const URL_PATH: &str = "url.path";
    pub const URL_FULL: &str = "url.full";
    pub const URL_SCHEME: &str = "url.scheme";
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const SERVER_PORT: &str = "server.port";
    pub const CLIENT_ADDRESS: &str = "client.address";
    pub const CLIENT_PORT: &str = "client.port";
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    pub const USER_AGENT: &str = "user_agent.original";
    pub const REQUEST_BODY_SIZE: &str = "http.request.body.size";
    pub const RESPONSE_BODY_SIZE: &str = "http.response.body.size";
    pub const ERROR_TYPE: &str = "error.type";
    /// On spans a service sent to the gateway: the resource's service name.
    pub const SERVICE_NAME: &str = "service.name";
    pub const API: &str = "gatehouse.api";
    pub const API_VERSION: &str = "gatehouse.api_version";
    pub const STAGE: &str = "gatehouse.stage";
    pub const CANARY: &str = "gatehouse.canary";
    pub const REQUEST_ID: &str = "gatehouse.request_id";
    pub const PHASE: &str = "gatehouse.phase";
    pub const DECISION: &str = "gatehouse.decision";
    pub const INTEGRATION: &str = "gatehouse.integration";
    pub const WS_MESSAGES_IN: &str = "gatehouse.websocket.messages_in";
    pub const WS_MESSAGES_OUT: &str = "gatehouse.websocket.messages_out";
    pub const WS_BYTES_IN: &str = "gatehouse.websocket.bytes_in";
    pub const WS_BYTES_OUT: &str = "gatehouse.websocket.bytes_out";
    pub const WS_CLOSE_CODE: &str = "gatehouse.websocket.close_code";
    pub const WS_CLOSED_BY: &str = "gatehouse.websocket.closed_by";
    /// Messages of a connection left out of its span's events (beyond the first 128).
    pub const WS_EVENTS_DROPPED: &str = "gatehouse.websocket.events_dropped";
    /// On a message event: `text` or `binary`.
    pub const WS_OPCODE: &str = "gatehouse.websocket.opcode";
    /// On a message event, as OpenTelemetry's RPC message events have them: `SENT` or
    /// `RECEIVED`, the message's number in its direction from 1, and its payload bytes.
    pub const MESSAGE_TYPE: &str = "message.type";
    pub const MESSAGE_ID: &str = "message.id";
    pub const MESSAGE_UNCOMPRESSED_SIZE: &str = "message.uncompressed_size";
}
