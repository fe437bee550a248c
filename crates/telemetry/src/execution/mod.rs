//! Execution logs: what the gateway did, step by step, for one request of a stage that asks for it.
//!
//! The access log says *that* a request happened; an execution log says *how*: the route matched
//! and its parameters, the stage variables used, each phase's decision, the integration request
//! as sent upstream and its answer, and the error with its cause. Like Amazon API Gateway's
//! execution logs it is configured per stage ([`ExecutionLogSettings`]: level OFF, ERROR or INFO,
//! plus an optional data trace of headers and bodies), but its events are structured JSON and are
//! never cut at 1 KB.
//!
//! The work is split so the request path pays only for what a stage asked for:
//! - the data plane fills an [`ExecutionDetail`] on the exchange (`Exchange::execution`) only
//!   when the route's settings need one ([`ExecutionLogSettings::captures_detail`]); with level
//!   OFF that is one branch per request and nothing else. Bodies are copied as they stream, at
//!   most `max_body_bytes` each way ([`BodyCapture`]), never buffered whole, never delayed;
//! - the log writer, on its own thread, turns a published exchange into events with
//!   [`execution_events`], which is where redaction and JSON formatting happen.

mod redact;
mod render;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::{HeaderMap, HeaderName, Method};

use crate::Exchange;

pub use render::{execution_events, execution_log_group};

/// How much an execution log records for a stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExecutionLogLevel {
    /// Nothing; the request path does no execution-log work at all.
    #[default]
    Off,
    /// Only failed requests (status ≥ 400 or a gateway error class): the request line, the
    /// error and the completion.
    Error,
    /// Every step of every request.
    Info,
}

impl ExecutionLogLevel {
    /// The label used in the configuration and the docs: `off`, `error` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Error => "error",
            Self::Info => "info",
        }
    }
}

/// The default cap on each captured body (request and response) under a data trace.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024;

/// What the value of a masked header or JSON field is replaced with.
pub const REDACTED: &str = "***";

/// Headers that are always masked, whatever the configuration says: they carry credentials.
pub const ALWAYS_REDACTED_HEADERS: [HeaderName; 5] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
    http::header::SET_COOKIE,
    HeaderName::from_static("x-api-key"),
];

/// One stage's execution-log settings, compiled from its `execution_log` section and shared by
/// every route of the stage (and by each exchange that records a detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionLogSettings {
    pub level: ExecutionLogLevel,
    /// Also record client request headers, response headers and the first `max_body_bytes` of
    /// both bodies. Has no effect when `level` is OFF.
    pub data_trace: bool,
    /// The most bytes captured of each body; the rest is counted, not kept.
    pub max_body_bytes: usize,
    /// Headers masked in addition to [`ALWAYS_REDACTED_HEADERS`].
    pub redact_headers: Vec<HeaderName>,
    /// JSON field names whose values are masked in captured bodies, at any depth, ignoring ASCII
    /// case.
    pub redact_json_fields: Vec<String>,
}

impl Default for ExecutionLogSettings {
    fn default() -> Self {
        Self {
            level: ExecutionLogLevel::Off,
            data_trace: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            redact_headers: Vec::new(),
            redact_json_fields: Vec::new(),
        }
    }
}

static OFF: LazyLock<Arc<ExecutionLogSettings>> =
    LazyLock::new(|| Arc::new(ExecutionLogSettings::default()));

impl ExecutionLogSettings {
    /// The shared OFF settings: every route without an `execution_log` section points here.
    pub fn off() -> Arc<Self> {
        Arc::clone(&OFF)
    }

    /// Whether any event is ever written for this stage.
    pub fn is_enabled(&self) -> bool {
        self.level != ExecutionLogLevel::Off
    }

    /// Whether the data plane fills an [`ExecutionDetail`] for every request: at INFO, and at
    /// ERROR with a data trace (whether a request fails is known only at its end, so its headers
    /// and bodies have to be kept until then).
    pub fn captures_detail(&self) -> bool {
        match self.level {
            ExecutionLogLevel::Off => false,
            ExecutionLogLevel::Error => self.data_trace,
            ExecutionLogLevel::Info => true,
        }
    }

    /// Whether headers and bodies are captured.
    pub fn traces_data(&self) -> bool {
        self.is_enabled() && self.data_trace
    }

    /// The body cap when bodies are captured.
    pub fn body_capture_limit(&self) -> Option<usize> {
        self.traces_data().then_some(self.max_body_bytes)
    }

    /// Whether the value of header `name` is masked in events.
    pub fn is_redacted_header(&self, name: &HeaderName) -> bool {
        ALWAYS_REDACTED_HEADERS.contains(name) || self.redact_headers.contains(name)
    }
}

/// Whether a finished exchange is logged at level ERROR: the gateway recorded an error class, or
/// the client got a 4xx or 5xx status.
pub fn is_failed(exchange: &Exchange) -> bool {
    exchange.status >= 400 || exchange.error.is_some()
}

/// What the data plane recorded for an execution log, beyond the exchange's own fields.
#[derive(Debug, Clone)]
pub struct ExecutionDetail {
    /// The stage's settings when the request was routed (a reload cannot change them mid-way).
    pub settings: Arc<ExecutionLogSettings>,
    /// The matched path parameters, raw (still percent-encoded), in path order.
    pub path_params: Vec<(Box<str>, Box<str>)>,
    /// The stage variables the route's integration uses, with their values.
    pub stage_variables: Arc<[(Arc<str>, Arc<str>)]>,
    /// Each phase that ran, in order.
    pub phases: Vec<PhaseStep>,
    /// The request as sent to the integration (HTTP upstream or WebSocket handshake).
    pub integration_request: Option<IntegrationRequest>,
    /// The integration's answer head.
    pub integration_response: Option<IntegrationResponse>,
    /// Data trace: the client's request headers as received.
    pub request_headers: Option<HeaderMap>,
    /// Data trace: the start of the request body as it streamed upstream.
    pub request_body: Option<CapturedBody>,
    /// Data trace: the response headers as sent to the client.
    pub response_headers: Option<HeaderMap>,
    /// Data trace: the start of the response body as it streamed to the client.
    pub response_body: Option<CapturedBody>,
}

impl ExecutionDetail {
    /// An empty detail for a request logged under `settings`.
    pub fn new(settings: Arc<ExecutionLogSettings>) -> Self {
        Self {
            settings,
            path_params: Vec::new(),
            stage_variables: Arc::from([]),
            phases: Vec::new(),
            integration_request: None,
            integration_response: None,
            request_headers: None,
            request_body: None,
            response_headers: None,
            response_body: None,
        }
    }
}

/// One pipeline phase that ran, and when it finished (offset from the request's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseStep {
    /// The phase's name (`waf`, `auth`, `throttle`, `cache`, …).
    pub phase: &'static str,
    pub at: Duration,
    pub result: PhaseResult,
}

/// How a phase ended. Its decision, if it recorded one, is in `Exchange::decisions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseResult {
    /// The request went on to the next phase.
    Continued,
    /// The phase answered the request itself with this status.
    Answered { status: u16 },
    /// The phase panicked; the request was answered with a 500.
    Panicked,
}

/// The request sent to the integration, after hop-by-hop removal, forwarding headers and the
/// route's header changes.
#[derive(Debug, Clone)]
pub struct IntegrationRequest {
    pub method: Method,
    /// The full upstream URL, query included.
    pub url: String,
    pub headers: HeaderMap,
}

/// The head of the integration's answer.
#[derive(Debug, Clone)]
pub struct IntegrationResponse {
    pub status: u16,
    /// The headers as the upstream sent them; `None` for a mock integration.
    pub headers: Option<HeaderMap>,
}

/// The first bytes of a body and how long it was in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedBody {
    pub bytes: Vec<u8>,
    /// Every byte that passed, captured or not.
    pub total: u64,
}

impl CapturedBody {
    /// Whether bytes beyond the cap were left out.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }
}

/// Copies the first `limit` bytes of a body as its chunks stream past; the rest is only counted.
#[derive(Debug, Clone)]
pub struct BodyCapture {
    limit: usize,
    body: CapturedBody,
}

impl BodyCapture {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            body: CapturedBody::default(),
        }
    }

    /// Records one chunk; copies at most what is left under the cap.
    pub fn push(&mut self, chunk: &[u8]) {
        self.body.total += chunk.len() as u64;
        let room = self.limit.saturating_sub(self.body.bytes.len());
        if room > 0 {
            self.body
                .bytes
                .extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
    }

    pub fn finish(self) -> CapturedBody {
        self.body
    }
}

#[cfg(test)]
mod tests;
