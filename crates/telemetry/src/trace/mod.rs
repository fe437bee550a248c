//! Trace context: which trace a request belongs to, whether it is sampled, and the headers that
//! carry both to the upstream and back to the client (docs/tracing.md).
//!
//! At admission the data plane reads the caller's context ([`read_incoming`]): a valid W3C
//! `traceparent` wins, else a valid `X-Amzn-Trace-Id`, else there is none and a new trace starts.
//! Once the request is routed, [`Tracer::start`] mints the gateway's own span id (the new parent
//! for the upstream), decides sampling — the caller's decision if it made one and the
//! configuration honours it, else the [`Sampler`]'s rules — and returns the [`TraceContext`] whose
//! ids go on the `Exchange` of every request, sampled or not, as X-Ray logs a trace id for every
//! request. Invalid headers are ignored; they never fail a request.
//!
//! Everything after the response (spans, the trace store, OTLP export, the service graph) reads
//! the ids this module puts on each `Exchange`; see `crate::spans`.
//!
//! The request path pays for tracing on every request, sampled or not, so this module keeps it
//! small: the clock is read once (the exchange's arrival second), ids come from a thread-local
//! generator, and header values are formatted into stack buffers (the upstream's two from one
//! hex encoding), each validated and copied once, and moved into the header map.

mod context;
mod ids;
mod sampling;
mod tracestate;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use context::{
    FLAG_RANDOM, FLAG_SAMPLED, TraceParent, XrayHeader, format_traceparent, format_upstream,
    format_xray, parse_traceparent, parse_xray, parse_xray_root, push_xray_root,
};
pub use ids::{epoch_seconds, new_span_id, new_trace_id, push_hex, random_u64, xorshift64star};
pub use sampling::{SampleRequest, Sampled, Sampler, SamplingRule, glob_match};
pub use tracestate::sanitize as sanitize_tracestate;

use crate::TraceIds;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The caller's trace context, from whichever header was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingTrace {
    pub trace_id: [u8; 16],
    /// The caller's span; X-Ray callers may leave it out.
    pub parent_id: Option<[u8; 8]>,
    /// The caller's sampling decision, if it made one (`traceparent` always does; X-Ray's
    /// `Sampled=?` or no `Sampled` does not).
    pub sampled: Option<bool>,
    /// W3C level 2's random-trace-id flag as received; X-Ray ids never claim it.
    pub random: bool,
    /// The cleaned `tracestate`, kept only with a valid `traceparent`, as the spec requires.
    pub tracestate: Option<HeaderValue>,
}

/// Which trace headers a request carries, found in one pass over its header names: most
/// requests carry none, and comparing names is cheaper than hashing each name for a lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceHeadersSeen {
    pub traceparent: bool,
    pub tracestate: bool,
    pub xray: bool,
}

impl TraceHeadersSeen {
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut seen = Self::default();
        for name in headers.keys() {
            if *name == TRACEPARENT {
                seen.traceparent = true;
            } else if *name == TRACESTATE {
                seen.tracestate = true;
            } else if *name == X_AMZN_TRACE_ID {
                seen.xray = true;
            }
        }
        seen
    }
}

/// Reads the caller's trace context. `traceparent` takes precedence over `X-Amzn-Trace-Id`
/// because it is the standard and carries a sampling decision always; more than one
/// `traceparent` line is invalid (W3C §3.2). `None` when neither header is present and valid.
pub fn read_incoming(headers: &HeaderMap) -> Option<IncomingTrace> {
    read_incoming_seen(headers, TraceHeadersSeen::scan(headers))
}

/// [`read_incoming`] when the headers were already scanned: no lookup at all when the request
/// carries neither header.
pub fn read_incoming_seen(headers: &HeaderMap, seen: TraceHeadersSeen) -> Option<IncomingTrace> {
    if seen.traceparent {
        let mut lines = headers.get_all(TRACEPARENT).iter();
        if let (Some(line), None) = (lines.next(), lines.next())
            && let Some(parent) = parse_traceparent(line.as_bytes())
        {
            return Some(IncomingTrace {
                trace_id: parent.trace_id,
                parent_id: Some(parent.parent_id),
                sampled: Some(parent.flags & FLAG_SAMPLED != 0),
                random: parent.flags & FLAG_RANDOM != 0,
                tracestate: sanitize_tracestate(headers.get_all(TRACESTATE).iter()),
            });
        }
    }
    if !seen.xray {
        return None;
    }
    let xray = parse_xray(headers.get(X_AMZN_TRACE_ID)?.as_bytes())?;
    Some(IncomingTrace {
        trace_id: xray.trace_id,
        parent_id: xray.parent_id,
        sampled: xray.sampled,
        random: false,
        tracestate: None,
    })
}

/// The compiled tracing configuration: whether to trace at all, whose sampling decision counts,
/// and the rules.
#[derive(Debug)]
pub struct Tracer {
    enabled: bool,
    honour_incoming_sampled: bool,
    sampler: Sampler,
}

impl Tracer {
    pub fn new(enabled: bool, honour_incoming_sampled: bool, sampler: Sampler) -> Self {
        Self {
            enabled,
            honour_incoming_sampled,
            sampler,
        }
    }

    /// Tracing on, with X-Ray's defaults.
    pub fn with_defaults() -> Self {
        Self::new(true, true, Sampler::new(Vec::new(), None))
    }

    /// When off, the gateway neither reads nor writes trace headers and records no trace ids.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Starts the gateway's part of the trace: continues `incoming` or starts a new trace, mints
    /// the gateway's span id and decides sampling.
    pub fn start(
        &self,
        incoming: Option<&IncomingTrace>,
        request: &SampleRequest<'_>,
    ) -> TraceContext {
        self.start_at(incoming, request, epoch_seconds())
    }

    /// [`Tracer::start`] for a request that arrived in wall-clock second `epoch_second` (the
    /// exchange's arrival time, so the clock is read once per request): the second a new
    /// trace id carries and the sampling reservoir counts in.
    pub fn start_at(
        &self,
        incoming: Option<&IncomingTrace>,
        request: &SampleRequest<'_>,
        epoch_second: u32,
    ) -> TraceContext {
        let honoured = incoming
            .and_then(|incoming| incoming.sampled)
            .filter(|_| self.honour_incoming_sampled);
        let sampled = honoured.unwrap_or_else(|| {
            self.sampler
                .decide_at(request, epoch_second, random_u64())
                .is_sampled()
        });
        let span_id = new_span_id();
        let (ids, random, tracestate) = match incoming {
            Some(incoming) => (
                TraceIds {
                    trace_id: incoming.trace_id,
                    span_id,
                    parent_id: incoming.parent_id,
                    sampled,
                },
                incoming.random,
                incoming.tracestate.clone(),
            ),
            None => (
                TraceIds {
                    trace_id: new_trace_id(epoch_second),
                    span_id,
                    parent_id: None,
                    sampled,
                },
                true,
                None,
            ),
        };
        TraceContext {
            ids,
            random,
            tracestate,
            client_tracestate: true,
        }
    }
}

/// The gateway's trace context for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub ids: TraceIds,
    /// The W3C random-trace-id flag to propagate.
    pub random: bool,
    pub tracestate: Option<HeaderValue>,
    /// Whether the client's headers may hold a `tracestate` the gateway must not pass on (one
    /// without a valid `traceparent`). `true` unless a scan ([`TraceHeadersSeen`]) found none,
    /// which spares [`TraceContext::propagate`] a lookup.
    pub client_tracestate: bool,
}

impl TraceContext {
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.ids.sampled {
            flags |= FLAG_SAMPLED;
        }
        if self.random {
            flags |= FLAG_RANDOM;
        }
        flags
    }

    /// `traceparent` for the upstream: this trace, the gateway's span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        format_traceparent(&self.ids.trace_id, &self.ids.span_id, self.flags())
    }

    /// `X-Amzn-Trace-Id` for the upstream: `Root=…;Parent={gateway span};Sampled=0|1`.
    pub fn xray_upstream(&self) -> HeaderValue {
        format_xray(
            &self.ids.trace_id,
            Some(&self.ids.span_id),
            Some(self.ids.sampled),
        )
    }

    /// Replaces whatever trace headers the client sent with the gateway's. Both values are
    /// formatted from one hex encoding of the ids, on the stack, and moved into the map.
    pub fn propagate(&self, headers: &mut HeaderMap) {
        let (traceparent, xray) =
            format_upstream(&self.ids.trace_id, &self.ids.span_id, self.flags());
        headers.insert(TRACEPARENT, traceparent);
        headers.insert(X_AMZN_TRACE_ID, xray);
        match &self.tracestate {
            Some(state) => {
                headers.insert(TRACESTATE, state.clone());
            }
            None if self.client_tracestate => {
                headers.remove(TRACESTATE);
            }
            None => {}
        }
    }
}

/// `X-Amzn-Trace-Id: Root=…` for the response, as API Gateway answers it.
pub fn xray_response(ids: &TraceIds) -> HeaderValue {
    format_xray(&ids.trace_id, None, None)
}

#[cfg(test)]
mod tests;
