//! The trace record: what the store keeps of one sampled exchange, and what its spans are built
//! from when they are read.
//!
//! Building spans on the write path (names formatted, every attribute key and value a `String`)
//! and storing them one row each cost about 80,000 instructions per sampled request. Instead the
//! trace recorder copies the span-relevant facts of the exchange into a [`TracedExchange`] (route
//! labels and the request id are `Arc` clones, the path and host short copies, the rest
//! integers), the store writes it in compressed blocks, and [`TracedExchange::spans`] builds the
//! very spans [`spans_from_exchange`](super::spans_from_exchange) returns when a trace is read,
//! searched, drawn as a graph or exported.
//!
//! The encoding is a version byte and the record in postcard ([`TracedExchange::encode_into`],
//! [`TracedExchange::decode`]). Postcard is not self-describing: adding a field (the WebSocket
//! part is where per-message events will go) changes the encoding, so such a change adds a
//! version, and the decoder keeps reading the older ones for as long as records of them may be
//! stored (the trace retention). Labels that are `&'static str` on the exchange (integration
//! kind, which side closed a WebSocket, phase names, rejection reasons) are small enums, or
//! borrowed `Cow`s that cost nothing to build.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::Method;
use serde::{Deserialize, Serialize};

use super::{Classification, Span, build};
use crate::execution::PhaseResult;
use crate::{Decision, ErrorClass, Exchange, ExchangeKind, RequestId};

#[path = "traced_codec.rs"]
mod codec;

/// The first byte of an encoded record: its version.
const FORMAT_V1: u8 = 1;

/// One sampled exchange's span-relevant facts. Times are offsets in nanoseconds from
/// `start_unix_nanos`, the wall-clock arrival of the request head, as on [`crate::Timing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedExchange {
    // Ids are byte strings in the encoding: one copy each rather than a call per byte.
    #[serde(with = "codec::id_bytes")]
    pub trace_id: [u8; 16],
    /// The gateway's server span.
    #[serde(with = "codec::id_bytes")]
    pub span_id: [u8; 8],
    /// The caller's span, when the request continued a trace that named one.
    #[serde(with = "codec::id_bytes::option")]
    pub parent_id: Option<[u8; 8]>,
    pub start_unix_nanos: u64,
    pub request_id: RequestId,
    #[serde(with = "codec::method_text")]
    pub method: Option<Method>,
    pub route: Option<TracedRoute>,
    pub canary: bool,
    pub path: Box<str>,
    pub tls: bool,
    /// The `Host` header as sent (with its port), when it is visible ASCII.
    pub host: Option<Box<str>>,
    pub client: SocketAddr,
    pub protocol: HttpVersion,
    pub user_agent: Option<Box<str>>,
    pub status: u16,
    #[serde(with = "codec::error_code")]
    pub error: Option<ErrorClass>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub timing: TracedTiming,
    pub decisions: TracedDecisions,
    /// The pipeline's steps when the stage's execution log recorded them (`None` otherwise, and
    /// then each phase with a decision is a zero-length marker).
    pub phases: Option<Vec<TracedPhase>>,
    pub integration: TracedIntegration,
    /// Present exactly when the exchange is a WebSocket connection.
    pub websocket: Option<TracedWebSocket>,
}

/// The route labels, shared with the routing table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedRoute {
    pub api: Arc<str>,
    pub api_version: Arc<str>,
    pub stage: Arc<str>,
    pub resource_path: Arc<str>,
}

/// [`crate::Timing`]'s offsets, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedTiming {
    pub routed: Option<u64>,
    pub integration_start: Option<u64>,
    pub integration_response: Option<u64>,
    pub integration_end: Option<u64>,
    pub done: u64,
}

/// The decisions of the optional phases; `None` where the phase did not run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedDecisions {
    pub waf: Option<TracedDecision>,
    pub auth: Option<TracedDecision>,
    pub throttle: Option<TracedDecision>,
    pub cache: Option<TracedDecision>,
}

/// A phase's [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracedDecision {
    Allowed,
    Rejected(Cow<'static, str>),
    Hit,
    Miss,
}

/// One step of the execution log's pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedPhase {
    pub phase: Cow<'static, str>,
    /// When the step ended.
    pub at: u64,
    pub result: TracedPhaseResult,
}

/// [`PhaseResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracedPhaseResult {
    Continued,
    Answered(u16),
    Panicked,
}

/// What the integration did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedIntegration {
    pub kind: Option<IntegrationKind>,
    pub status: Option<u16>,
    /// The integration failed (connect, reset, timeout).
    pub failed: bool,
    /// The request as sent: its URL without the query as the gateway recorded it for the
    /// sampled trace, else as the execution log captured it.
    pub request: Option<TracedIntegrationRequest>,
}

/// The integration request's method and URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedIntegrationRequest {
    #[serde(with = "codec::method_text")]
    pub method: Option<Method>,
    pub url: Box<str>,
}

/// `IntegrationOutcome::kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntegrationKind {
    Http,
    Mock,
    WebSocket,
    /// A kind this version does not know by name.
    Other(Cow<'static, str>),
}

impl IntegrationKind {
    fn from_label(label: &'static str) -> Self {
        match label {
            "http" => Self::Http,
            "mock" => Self::Mock,
            "websocket" => Self::WebSocket,
            other => Self::Other(Cow::Borrowed(other)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Http => "http",
            Self::Mock => "mock",
            Self::WebSocket => "websocket",
            Self::Other(label) => label,
        }
    }
}

/// The WebSocket part of a record: the connection's counters and how it ended. New per-connection
/// facts go here (and make a new record version).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedWebSocket {
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub close_code: Option<u16>,
    pub closed_by: Option<ClosedBy>,
    /// The connection's first messages, as the relay recorded them for a sampled trace.
    pub message_events: Vec<crate::WebSocketMessage>,
}

/// `WebSocketStats::closed_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClosedBy {
    Client,
    Upstream,
    Gateway,
    /// A side this version does not know by name.
    Other(Cow<'static, str>),
}

impl ClosedBy {
    fn from_label(label: &'static str) -> Self {
        match label {
            "client" => Self::Client,
            "upstream" => Self::Upstream,
            "gateway" => Self::Gateway,
            other => Self::Other(Cow::Borrowed(other)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
            Self::Gateway => "gateway",
            Self::Other(label) => label,
        }
    }
}

/// The request's HTTP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    Http09,
    Http10,
    Http11,
    Http2,
    Http3,
}

impl HttpVersion {
    fn of(version: http::Version) -> Self {
        match version {
            http::Version::HTTP_09 => Self::Http09,
            http::Version::HTTP_10 => Self::Http10,
            http::Version::HTTP_2 => Self::Http2,
            http::Version::HTTP_3 => Self::Http3,
            _ => Self::Http11,
        }
    }

    /// OpenTelemetry's `network.protocol.version`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http09 => "0.9",
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
            Self::Http2 => "2",
            Self::Http3 => "3",
        }
    }
}

/// Why an encoded record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TracedDecodeError {
    #[error("empty trace record")]
    Empty,
    #[error("unknown trace record version {0}")]
    Version(u8),
    #[error("malformed trace record: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Whether the trace recorder wants `exchange`: it carries trace ids and was sampled. The bus
/// filter of the recorder's queue.
pub fn is_sampled(exchange: &Exchange) -> bool {
    exchange.trace.is_some_and(|trace| trace.sampled)
}

impl TracedExchange {
    /// The record of `exchange`; `None` when it carries no trace ids. Sampling is the caller's
    /// to check.
    pub fn from_exchange(exchange: &Exchange) -> Option<Self> {
        let trace = exchange.trace?;
        let timing = &exchange.timing;
        let execution = exchange.execution.as_deref();
        let text = |value: &http::HeaderValue| value.to_str().ok().map(Box::from);
        Some(Self {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent_id: trace.parent_id,
            start_unix_nanos: timing
                .received_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, nanos),
            request_id: exchange.request_id.clone(),
            method: exchange.method.clone(),
            route: exchange.route.as_ref().map(|route| TracedRoute {
                api: Arc::clone(&route.api),
                api_version: Arc::clone(&route.api_version),
                stage: Arc::clone(&route.stage),
                resource_path: Arc::clone(&route.resource_path),
            }),
            canary: exchange.canary,
            path: exchange.path.as_str().into(),
            tls: exchange.tls,
            host: exchange.host.as_ref().and_then(text),
            client: exchange.client,
            protocol: HttpVersion::of(exchange.protocol),
            user_agent: exchange.user_agent.as_ref().and_then(text),
            status: exchange.status,
            error: exchange.error,
            bytes_in: exchange.bytes_in,
            bytes_out: exchange.bytes_out,
            timing: TracedTiming {
                routed: timing.routed.map(nanos),
                integration_start: timing.integration_start.map(nanos),
                integration_response: timing.integration_response.map(nanos),
                integration_end: timing.integration_end.map(nanos),
                done: nanos(timing.done),
            },
            decisions: TracedDecisions {
                waf: exchange.decisions.waf.as_ref().map(TracedDecision::of),
                auth: exchange.decisions.auth.as_ref().map(TracedDecision::of),
                throttle: exchange.decisions.throttle.as_ref().map(TracedDecision::of),
                cache: exchange.decisions.cache.as_ref().map(TracedDecision::of),
            },
            phases: execution.map(|detail| {
                detail
                    .phases
                    .iter()
                    .map(|step| TracedPhase {
                        phase: Cow::Borrowed(step.phase),
                        at: nanos(step.at),
                        result: match step.result {
                            PhaseResult::Continued => TracedPhaseResult::Continued,
                            PhaseResult::Answered { status } => TracedPhaseResult::Answered(status),
                            PhaseResult::Panicked => TracedPhaseResult::Panicked,
                        },
                    })
                    .collect()
            }),
            integration: TracedIntegration {
                kind: exchange.integration.kind.map(IntegrationKind::from_label),
                status: exchange.integration.status,
                failed: exchange.integration.error.is_some(),
                request: integration_request(exchange, execution),
            },
            websocket: (exchange.kind == ExchangeKind::WebSocket).then(|| {
                let stats = exchange.websocket.as_ref();
                TracedWebSocket {
                    messages_in: stats.map_or(0, |s| s.messages_in),
                    messages_out: stats.map_or(0, |s| s.messages_out),
                    bytes_in: stats.map_or(0, |s| s.bytes_in),
                    bytes_out: stats.map_or(0, |s| s.bytes_out),
                    close_code: stats.and_then(|s| s.close_code),
                    closed_by: stats.and_then(|s| s.closed_by).map(ClosedBy::from_label),
                    message_events: stats.map_or_else(Vec::new, |s| s.message_events.clone()),
                }
            }),
        })
    }

    /// The spans of this exchange, server span first: the same as
    /// [`spans_from_exchange`](super::spans_from_exchange) of the exchange it was made from.
    pub fn spans(&self) -> Vec<Span> {
        build::spans(self)
    }

    /// How many spans [`TracedExchange::spans`] returns, without building them.
    pub fn span_count(&self) -> usize {
        let phases = match &self.phases {
            Some(steps) => steps.len(),
            None => self.decisions.iter().count(),
        };
        1 + phases + usize::from(self.has_integration_span())
    }

    pub(super) fn has_integration_span(&self) -> bool {
        self.integration.kind.is_some() && self.timing.integration_start.is_some()
    }

    /// The server span's name: `GET /pets/{id}`, or the method alone when no route matched.
    pub fn name(&self) -> String {
        let method = self.method.as_ref().map(Method::as_str);
        match (method, &self.route) {
            (Some(method), Some(route)) => format!("{method} {}", route.resource_path),
            (Some(method), None) => method.to_owned(),
            (None, _) => "HTTP".to_owned(),
        }
    }

    /// The server span's end: the last response byte.
    pub fn end_unix_nanos(&self) -> u64 {
        self.start_unix_nanos.saturating_add(self.timing.done)
    }

    /// The server span's duration, as the access log and the `Latency` metric report it.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos() - self.start_unix_nanos
    }

    /// X-Ray's classification of the answer.
    pub fn classification(&self) -> Classification {
        super::classify(self.status)
    }

    /// The latest start of any of its spans: the server span's start plus the last offset a
    /// child span may start at (an upper bound, which is all a store's time index needs).
    pub fn last_span_start_unix_nanos(&self) -> u64 {
        let timing = &self.timing;
        let phases = self.phases.iter().flatten().map(|phase| phase.at);
        let latest = [timing.routed, timing.integration_start]
            .into_iter()
            .flatten()
            .chain(phases)
            .max()
            .unwrap_or(0);
        self.start_unix_nanos.saturating_add(latest)
    }

    /// Appends the encoded record (version byte, then postcard) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        let start = out.len();
        out.push(FORMAT_V1);
        postcard::serialize_with_flavor(self, AppendTo(out)).inspect_err(|_| out.truncate(start))
    }

    /// Reads a record [`TracedExchange::encode_into`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, TracedDecodeError> {
        let (&version, body) = bytes.split_first().ok_or(TracedDecodeError::Empty)?;
        match version {
            FORMAT_V1 => Ok(postcard::from_bytes(body)?),
            other => Err(TracedDecodeError::Version(other)),
        }
    }
}

impl TracedDecision {
    fn of(decision: &Decision) -> Self {
        match decision {
            Decision::Allowed => Self::Allowed,
            Decision::Rejected { reason } => Self::Rejected(Cow::Borrowed(*reason)),
            Decision::Hit => Self::Hit,
            Decision::Miss => Self::Miss,
        }
    }

    /// The `gatehouse.decision` attribute: `allowed`, `hit`, `miss` or the rejection reason.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Allowed => "allowed",
            Self::Rejected(reason) => reason,
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

impl TracedDecisions {
    /// The decision of `phase` (`waf`, `auth`, `throttle`, `cache`), if it ran.
    pub fn of(&self, phase: &str) -> Option<&TracedDecision> {
        match phase {
            "waf" => self.waf.as_ref(),
            "auth" => self.auth.as_ref(),
            "throttle" => self.throttle.as_ref(),
            "cache" => self.cache.as_ref(),
            _ => None,
        }
    }

    /// The phases that recorded a decision, in pipeline order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &TracedDecision)> {
        [
            ("waf", &self.waf),
            ("auth", &self.auth),
            ("throttle", &self.throttle),
            ("cache", &self.cache),
        ]
        .into_iter()
        .filter_map(|(phase, decision)| Some((phase, decision.as_ref()?)))
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A postcard output that appends to a caller's buffer, so one buffer serves a whole block.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(super) fn error_class_round_trips(class: ErrorClass) -> bool {
    codec::error_code::class(codec::error_code::code(class)) == Some(class)
}

/// The integration request of a traced exchange: the URL the gateway recorded for the trace
/// (without its query), else the execution log's; the method as logged, else the client's.
fn integration_request(
    exchange: &Exchange,
    execution: Option<&crate::execution::ExecutionDetail>,
) -> Option<TracedIntegrationRequest> {
    let logged = execution.and_then(|detail| detail.integration_request.as_ref());
    let url = exchange
        .integration
        .url
        .as_deref()
        .or(logged.map(|request| request.url.as_str()))?;
    Some(TracedIntegrationRequest {
        method: logged
            .map(|request| request.method.clone())
            .or_else(|| exchange.method.clone()),
        url: url.into(),
    })
}
