//! Pipeline phases: the place where WAF, auth, throttling and caching plug in.
//!
//! After routing and before the integration, the gateway runs its phases in order. A phase sees
//! the request head and the matched route, records its decision on the exchange, and either lets
//! the request continue or answers it itself (a 403, a 429, a cache hit). The order is the one in
//! DESIGN.md: waf, auth, throttle, cache.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use gatehouse_config::Route;
use gatehouse_telemetry::{Decisions, RequestId};
use http::Response;

/// What a phase sees of one request.
pub struct PhaseContext<'a> {
    pub request: &'a http::request::Parts,
    pub route: &'a Route,
    pub client: SocketAddr,
    pub request_id: &'a RequestId,
    /// Where the phase records its decision (`decisions.waf`, `decisions.throttle`, …).
    pub decisions: &'a mut Decisions,
}

/// A phase's verdict.
pub enum PhaseOutcome {
    Continue,
    /// Answer the client with this response and skip the rest of the pipeline.
    Respond(Response<Bytes>),
}

/// One step of the pipeline.
pub trait Phase: Send + Sync {
    /// A short stable name for logs (`waf`, `throttle`, …).
    fn name(&self) -> &'static str;

    fn on_request<'a>(
        &'a self,
        context: &'a mut PhaseContext<'_>,
    ) -> Pin<Box<dyn Future<Output = PhaseOutcome> + Send + 'a>>;
}
