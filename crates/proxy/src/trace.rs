//! The gateway's part of a trace: one decision per request, made once the route is known or the
//! request is refused, whose ids go on the exchange (and from there into the access log and onto
//! the response). The parsing, formatting and sampling live in `gatehouse_telemetry::trace`.

use std::time::UNIX_EPOCH;

use gatehouse_config::Route;
use gatehouse_telemetry::trace::{
    IncomingTrace, SampleRequest, TraceContext, TraceHeadersSeen, Tracer,
};

use crate::record::Recorder;

/// What the trace decision needs to know about a request, gathered before routing.
pub(crate) struct TraceStart<'a> {
    pub(crate) tracer: &'a Tracer,
    pub(crate) incoming: Option<&'a IncomingTrace>,
    /// The trace headers the request carries.
    pub(crate) seen: TraceHeadersSeen,
    pub(crate) host: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
}

impl TraceStart<'_> {
    /// Decides the request's trace context and records its ids on the exchange. Requests that
    /// matched no route are sampled with an empty api and stage.
    pub(crate) fn start(
        &self,
        recorder: &mut Recorder,
        route: Option<&Route>,
    ) -> Option<TraceContext> {
        if !self.tracer.is_enabled() {
            return None;
        }
        let request = SampleRequest {
            api: route.map_or("", |r| &r.api),
            stage: route.map_or("", |r| &r.stage),
            host: self.host,
            method: self.method,
            path: self.path,
        };
        let arrived = recorder.exchange().timing.received_at;
        let second = arrived
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        let mut context = self.tracer.start_at(self.incoming, &request, second);
        context.client_tracestate = self.seen.tracestate;
        recorder.exchange().trace = Some(context.ids);
        Some(context)
    }
}
