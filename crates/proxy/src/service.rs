//! The way of one request: admission, routing, phases, integration, response.
//!
//! `handle` is what hyper calls for every request on every connection. It never fails: every
//! outcome is a response (the gateway's own errors are JSON from [`crate::error`]) and every
//! outcome yields exactly one exchange record through the [`Recorder`].
//!
//! Every request also gets a trace context (docs/tracing.md): the caller's headers are read at
//! admission, and the gateway's span and sampling decision are made once the api and stage are
//! known — or without them, for a request refused before routing — so that every record carries
//! a trace id and every response an `X-Amzn-Trace-Id`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use gatehouse_config::{ContextVar, Integration, Limits, Resolution, Route};
use gatehouse_telemetry::execution::PhaseResult;
use gatehouse_telemetry::trace::{
    TraceContext, TraceHeadersSeen, X_AMZN_TRACE_ID, read_incoming_seen, xray_response,
};
use gatehouse_telemetry::{
    Decisions, Exchange, ExchangeKind, IntegrationOutcome, RequestId, RouteLabels, Timing,
    new_request_id,
};
use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::Gateway;
use crate::body::ResponseBody;
use crate::conn::ConnActivity;
use crate::error::{GatewayError, error_body};
use crate::headers::X_REQUEST_ID;
use crate::integration;
use crate::phase::{PhaseContext, PhaseOutcome};
use crate::record::Recorder;
use crate::trace::TraceStart;

/// The status recorded (never sent) when the client went away first, as nginx logs it.
pub(crate) const STATUS_CLIENT_CLOSED: u16 = 499;

/// What every request on one connection shares.
pub(crate) struct ConnInfo {
    pub(crate) listener: Arc<str>,
    pub(crate) client: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) activity: Arc<ConnActivity>,
    /// The forwarding header values for this client, computed once.
    pub(crate) forwarding: crate::headers::ClientForwarding,
    /// This connection's slot under `max_connections`. A WebSocket upgrade takes it into the
    /// relay, so an open WebSocket keeps counting after hyper hands the socket over.
    pub(crate) permit: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl ConnInfo {
    pub(crate) fn take_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// What the integrations need to know about the request beyond its head.
pub(crate) struct RequestScope<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) conn: &'a ConnInfo,
    pub(crate) route: &'a Route,
    pub(crate) request_id: &'a RequestId,
    pub(crate) limits: &'a Limits,
    pub(crate) received_at: SystemTime,
    /// The trace context to propagate upstream; `None` when tracing is off.
    pub(crate) trace: Option<&'a TraceContext>,
}

impl RequestScope<'_> {
    /// The value of a `${context.X}` template variable for this request.
    pub(crate) fn context_value<'s>(
        &'s self,
        var: ContextVar,
        method: &'s http::Method,
        path: &'s str,
    ) -> Cow<'s, str> {
        match var {
            ContextVar::RequestId => Cow::Borrowed(self.request_id.as_str()),
            ContextVar::Stage => Cow::Borrowed(&self.route.stage),
            ContextVar::Api => Cow::Borrowed(&self.route.api),
            ContextVar::ApiVersion => Cow::Borrowed(&self.route.api_version),
            ContextVar::HttpMethod => Cow::Borrowed(method.as_str()),
            ContextVar::Path => Cow::Borrowed(path),
            ContextVar::ResourcePath => Cow::Borrowed(&self.route.resource_path),
            ContextVar::SourceIp => Cow::Owned(self.conn.client.ip().to_string()),
            ContextVar::RequestTimeEpoch => Cow::Owned(
                self.received_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default()
                    .to_string(),
            ),
        }
    }
}

/// Serves one request.
pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let start = Instant::now();
    let received_at = SystemTime::now();
    if request.version() == Version::HTTP_2 {
        conn.activity.set_multiplexed();
    }
    let (parts, body) = request.into_parts();
    let request_id = parts
        .headers
        .get(X_REQUEST_ID)
        .and_then(|v| RequestId::from_client(v.as_bytes()))
        .unwrap_or_else(new_request_id);
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let exchange = Exchange {
        kind: ExchangeKind::Http,
        request_id: request_id.clone(),
        trace: None,
        listener: Arc::clone(&conn.listener),
        route: None,
        canary: false,
        method: Some(parts.method.clone()),
        host: host.clone(),
        path: parts.uri.path().to_owned(),
        protocol: parts.version,
        tls: conn.tls,
        client: conn.client,
        user_agent: parts.headers.get(header::USER_AGENT).cloned(),
        status: 0,
        error: None,
        error_message: None,
        integration: IntegrationOutcome::default(),
        decisions: Decisions::default(),
        bytes_in: 0,
        bytes_out: 0,
        timing: Timing {
            received_at,
            routed: None,
            integration_start: None,
            integration_response: None,
            integration_end: None,
            done: Default::default(),
        },
        websocket: None,
        execution: None,
    };
    let mut recorder = Recorder::new(
        exchange,
        start,
        Arc::clone(&gateway.bus),
        Some(Arc::clone(&conn.activity)),
    );
    let runtime = gateway.runtime.load_full();
    let host_name = host.as_ref().and_then(|h| h.to_str().ok());
    // The caller's trace context; an invalid header reads as none and starts a new trace.
    let seen = if runtime.tracer.is_enabled() {
        TraceHeadersSeen::scan(&parts.headers)
    } else {
        TraceHeadersSeen::default()
    };
    let incoming = read_incoming_seen(&parts.headers, seen);
    let trace_start = TraceStart {
        tracer: &runtime.tracer,
        incoming: incoming.as_ref(),
        seen,
        host: host_name.unwrap_or_default(),
        method: parts.method.as_str(),
        path: parts.uri.path(),
    };

    // Phase 1, admission: limits that apply before anything else looks at the request.
    if let Err(error) = admit(&parts, host.as_ref(), &runtime.limits) {
        trace_start.start(&mut recorder, None);
        return Ok(reply_error(recorder, error, &request_id, None));
    }

    // Routing: (host, path, method) to api, stage and route, on the table this request started with.
    let uri = parts.uri.clone();
    let (route, params) = match runtime.table.resolve(host_name, &parts.method, uri.path()) {
        Resolution::Matched { route, params } => (route, params),
        Resolution::MethodNotAllowed { allow } => {
            trace_start.start(&mut recorder, None);
            let allow = HeaderValue::from_str(allow).ok();
            return Ok(reply_error(
                recorder,
                GatewayError::MethodNotAllowed,
                &request_id,
                allow,
            ));
        }
        Resolution::NotFound => {
            trace_start.start(&mut recorder, None);
            return Ok(reply_error(
                recorder,
                GatewayError::RouteNotFound,
                &request_id,
                None,
            ));
        }
    };
    {
        let routed = recorder.elapsed();
        let exchange = recorder.exchange();
        exchange.timing.routed = Some(routed);
        exchange.route = Some(RouteLabels {
            api: Arc::clone(&route.api),
            api_version: Arc::clone(&route.api_version),
            stage: Arc::clone(&route.stage),
            resource_path: Arc::clone(&route.resource_path),
        });
    }
    let trace = trace_start.start(&mut recorder, Some(route));
    if route.execution_log.is_enabled() {
        recorder.start_execution(route, &params, &parts.headers);
    }

    // Phases 2–5 (waf, auth, throttle, cache): each may answer the request itself.
    if !gateway.phases.is_empty() {
        let mut decisions = Decisions::default();
        let mut answer = None;
        for phase in gateway.phases.iter() {
            let mut context = PhaseContext {
                request: &parts,
                route,
                client: conn.client,
                request_id: &request_id,
                decisions: &mut decisions,
            };
            // A bug in one phase answers this request with a 500; it never takes the
            // connection (and the other requests on it) down.
            let outcome = AssertUnwindSafe(phase.on_request(&mut context))
                .catch_unwind()
                .await;
            let result = match outcome {
                Ok(PhaseOutcome::Continue) => PhaseResult::Continued,
                Ok(PhaseOutcome::Respond(response)) => {
                    let status = response.status().as_u16();
                    answer = Some(Ok((phase.name(), response)));
                    PhaseResult::Answered { status }
                }
                Err(_panic) => {
                    tracing::error!(phase = phase.name(), request_id = %request_id, "pipeline phase panicked");
                    answer = Some(Err(phase.name()));
                    PhaseResult::Panicked
                }
            };
            recorder.phase_finished(phase.name(), result);
            if answer.is_some() {
                break;
            }
        }
        recorder.exchange().decisions = decisions;
        match answer {
            Some(Ok((phase, response))) => {
                let response = reply_from_phase(recorder, phase, response, &request_id);
                return Ok(record_response_headers(response));
            }
            Some(Err(_phase)) => {
                let response = reply_error(recorder, GatewayError::Internal, &request_id, None);
                return Ok(record_response_headers(response));
            }
            None => {}
        }
    }

    // Phase 6, the integration.
    let scope = RequestScope {
        gateway: &gateway,
        conn: &conn,
        route,
        request_id: &request_id,
        limits: &runtime.limits,
        received_at,
        trace: trace.as_ref(),
    };
    let mut response = match &route.integration {
        Integration::Http(http) => {
            integration::http::forward(&scope, http, parts, body, &params, recorder).await
        }
        Integration::Mock(mock) => {
            integration::mock::respond(&scope, mock, &parts, &params, recorder)
        }
        Integration::WebSocket(ws) => {
            integration::websocket::upgrade(&scope, ws, parts, body, &params, recorder).await
        }
    };
    // Phase 7, the response: every answer carries the request id and the trace id.
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    if let Some(trace) = &trace {
        response
            .headers_mut()
            .insert(X_AMZN_TRACE_ID, xray_response(&trace.ids));
    }
    Ok(record_response_headers(response))
}

/// Under a data trace, keeps the final response headers for the execution log.
fn record_response_headers(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    if response.body().traces_data() {
        let headers = response.headers().clone();
        response.body_mut().record_response_headers(headers);
    }
    response
}

/// Checks the request head against the limits before routing.
fn admit(
    parts: &http::request::Parts,
    host: Option<&HeaderValue>,
    limits: &Limits,
) -> Result<(), GatewayError> {
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host header is malformed.
    if parts.version == Version::HTTP_11 {
        let hosts = parts.headers.get_all(header::HOST).iter().count();
        if hosts != 1 || host.is_none() {
            return Err(GatewayError::MalformedRequest);
        }
    }
    if has_dot_segment(parts.uri.path()) {
        return Err(GatewayError::MalformedRequest);
    }
    let head_size: usize = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len())
        + 12
        + parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head_size > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_payload_bytes) {
        return Err(GatewayError::PayloadTooLarge);
    }
    Ok(())
}

/// Whether the path has a `.` or `..` segment, also when spelled with percent-encoded dots or
/// slashes (`%2e`, `%2f`, `%5c`). Such a path could match a route's greedy `{proxy+}` and then
/// escape its prefix at an upstream that normalises paths, so it is refused rather than forwarded.
fn has_dot_segment(path: &str) -> bool {
    if !path.contains(['.', '%']) {
        return false;
    }
    let mut decoded = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3).unwrap_or("");
        match code.to_ascii_lowercase().as_str() {
            "2e" => decoded.push('.'),
            "2f" | "5c" => decoded.push('/'),
            _ => {
                decoded.push('%');
                rest = &rest[at + 1..];
                continue;
            }
        }
        rest = &rest[at + 3..];
    }
    decoded.push_str(rest);
    decoded
        .split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..")
}

/// Answers with the gateway's JSON error and records it.
pub(crate) fn reply_error(
    mut recorder: Recorder,
    error: GatewayError,
    request_id: &RequestId,
    allow: Option<HeaderValue>,
) -> Response<ResponseBody> {
    let status = error.status();
    let trace = {
        let exchange = recorder.exchange();
        exchange.status = status.as_u16();
        exchange.trace
    };
    recorder.set_error(error.class(), error.message());
    let body = error_body(error.message(), request_id);
    let mut response = Response::new(ResponseBody::full(body, Some(recorder)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(X_REQUEST_ID, value);
    }
    if let Some(allow) = allow {
        headers.insert(header::ALLOW, allow);
    }
    if let Some(trace) = &trace {
        headers.insert(X_AMZN_TRACE_ID, xray_response(trace));
    }
    response
}

fn reply_from_phase(
    mut recorder: Recorder,
    phase: &'static str,
    response: Response<Bytes>,
    request_id: &RequestId,
) -> Response<ResponseBody> {
    let status = response.status();
    recorder.exchange().status = status.as_u16();
    let trace = recorder.exchange().trace;
    // A cache hit is an answer, not an error; a 403 or 429 from a phase is a rejection.
    if status.is_client_error() || status.is_server_error() {
        recorder.set_error(
            gatehouse_telemetry::ErrorClass::RejectedByPhase,
            format!("answered by the {phase} phase"),
        );
    }
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        parts.headers.insert(X_REQUEST_ID, value);
    }
    if let Some(trace) = &trace {
        parts.headers.insert(X_AMZN_TRACE_ID, xray_response(trace));
    }
    Response::from_parts(parts, ResponseBody::full(body, Some(recorder)))
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_are_found_in_every_spelling() {
        let cases = [
            ("/pets/1", false),
            ("/files/report.v2.pdf", false),
            ("/a/..b/c.", false),
            ("/100%25", false),
            ("/echo/../admin", true),
            ("/echo/./x", true),
            ("/echo/..", true),
            ("/echo/%2e%2e/admin", true),
            ("/echo/%2E./admin", true),
            ("/echo/..%2fadmin", true),
            ("/echo/..%5cadmin", true),
            ("/echo/%2e", true),
        ];
        for (path, expected) in cases {
            assert_eq!(has_dot_segment(path), expected, "{path}");
        }
    }
}
