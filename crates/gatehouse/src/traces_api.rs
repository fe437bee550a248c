//! The trace side of the admin API: one trace by id and the search, read from the store on a
//! blocking thread and answered as JSON.
//!
//! Ids are accepted in W3C form (32 hex digits) and X-Ray form (`1-8hex-24hex`); a malformed id is
//! a 400 and an id with no stored span a 404, whether the trace never existed, was not sampled
//! or has expired.
//!
//! `receive` is the OTLP/HTTP receiver: spans that services send are queued for the store like
//! the gateway's own, so they show in the same trace.

use gatehouse_admin::{ApiError, OtlpEncoding, TracesQuery};
use gatehouse_store::{Store, TraceSearch, TraceSummary};
use gatehouse_telemetry::spans::{
    self, AttrValue, Span, SpanStatus, parse_trace_id, span_id_hex, spans_from_otlp, trace_id_hex,
};
use serde_json::{Map, Value, json};

use crate::logs_api::{rfc3339_ms, time_range};

/// How many traces a search lists when it does not say.
const DEFAULT_LIMIT: usize = 100;

/// The X-Ray form of a trace id: `1-{first 8 hex}-{last 24 hex}`.
pub(crate) fn xray_id(trace_id: &[u8; 16]) -> String {
    let hex = trace_id_hex(trace_id);
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// Answers `GET /admin/traces/{id}`.
pub(crate) async fn trace(store: &Store, id: String) -> Result<Value, ApiError> {
    let trace_id = parse_trace_id(&id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = store.clone();
    let spans = tokio::task::spawn_blocking(move || store.trace(&trace_id))
        .await
        .map_err(|e| ApiError::Unavailable(format!("the trace task failed: {e}")))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no trace {}: it was never recorded, not sampled, or is older than the trace \
             retention (tracing.retention_days)",
            trace_id_hex(&trace_id)
        )));
    }
    Ok(json!({
        "traceId": trace_id_hex(&trace_id),
        "xrayTraceId": xray_id(&trace_id),
        "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
    }))
}

/// Answers `POST /v1/traces`: decodes the spans and queues them for the store without waiting.
/// A full store queue is a 503, which OTLP exporters retry.
pub(crate) fn receive(
    store: &Store,
    encoding: OtlpEncoding,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let encoding = match encoding {
        OtlpEncoding::Protobuf => spans::OtlpEncoding::Protobuf,
        OtlpEncoding::Json => spans::OtlpEncoding::Json,
    };
    let received =
        spans_from_otlp(encoding, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let answer = received.response();
    store
        .span_writer()
        .append(received.spans)
        .map_err(|dropped| {
            ApiError::Unavailable(format!(
                "the trace store queue is full; {} spans were not stored, retry later",
                dropped.spans
            ))
        })?;
    Ok(answer)
}

/// Answers `GET /admin/traces`.
pub(crate) async fn search(store: &Store, query: TracesQuery) -> Result<Value, ApiError> {
    let (start_ms, end_ms) = time_range(
        query.start.as_deref(),
        query.end.as_deref(),
        query.since.as_deref(),
    )?;
    let min_duration = match query.min_duration.as_deref() {
        Some(text) => crate::parse_duration(text).map_err(ApiError::BadRequest)?,
        None => std::time::Duration::ZERO,
    };
    let ns = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    let search = TraceSearch {
        api: query.api,
        stage: query.stage,
        route: query.route,
        status: query.status,
        fault_only: query.fault.unwrap_or(false),
        min_duration_nanos: u64::try_from(min_duration.as_nanos()).unwrap_or(u64::MAX),
        start_unix_nanos: ns(start_ms),
        end_unix_nanos: ns(end_ms),
        limit: query.limit.unwrap_or(DEFAULT_LIMIT),
    };
    let store = store.clone();
    let found = tokio::task::spawn_blocking(move || store.search_traces(&search))
        .await
        .map_err(|e| ApiError::Unavailable(format!("the search task failed: {e}")))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json!({
        "start": rfc3339_ms(start_ms),
        "end": rfc3339_ms(end_ms),
        "traces": found.iter().map(summary_json).collect::<Vec<_>>(),
    }))
}

fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn time_text(unix_nanos: u64) -> String {
    rfc3339_ms(i64::try_from(unix_nanos / 1_000_000).unwrap_or(i64::MAX))
}

fn attributes_json(attributes: &[(String, AttrValue)]) -> Value {
    let mut map = Map::new();
    for (key, value) in attributes {
        let value = match value {
            AttrValue::Str(s) => json!(s),
            AttrValue::Int(n) => json!(n),
            AttrValue::Bool(b) => json!(b),
        };
        map.insert(key.clone(), value);
    }
    Value::Object(map)
}

pub(crate) fn span_json(span: &Span) -> Value {
    json!({
        "spanId": span_id_hex(&span.span_id),
        "parentSpanId": span.parent_span_id.as_ref().map(span_id_hex),
        "name": span.name,
        "kind": span.kind.as_str(),
        "start": time_text(span.start_unix_nanos),
        "startUnixNano": span.start_unix_nanos,
        "endUnixNano": span.end_unix_nanos,
        "durationMs": millis(span.duration_nanos()),
        "status": match span.status { SpanStatus::Unset => "unset", SpanStatus::Error => "error" },
        "classification": span.classification.as_str(),
        "attributes": attributes_json(&span.attributes),
        "events": span.events.iter().map(|event| json!({
            "name": event.name,
            "timeUnixNano": event.unix_nanos,
            "attributes": attributes_json(&event.attributes),
        })).collect::<Vec<_>>(),
    })
}

fn summary_json(summary: &TraceSummary) -> Value {
    json!({
        "traceId": trace_id_hex(&summary.trace_id),
        "spanId": span_id_hex(&summary.span_id),
        "name": summary.name,
        "start": time_text(summary.start_unix_nanos),
        "startUnixNano": summary.start_unix_nanos,
        "durationMs": millis(summary.duration_nanos),
        "api": summary.api,
        "stage": summary.stage,
        "route": summary.route,
        "method": summary.method,
        "status": summary.status,
        "classification": summary.classification.as_str(),
        "spans": summary.spans,
    })
}
