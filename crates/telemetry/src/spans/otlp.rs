//! Optional export of the recorded spans to an OpenTelemetry collector over OTLP/HTTP
//! (protobuf), next to the store.
//!
//! [`SpanExporter`] is a [`SpanSink`]: `write` only puts a batch on a bounded queue, so the
//! recorder never waits on the network. The recorder hands over traced exchanges, not spans; the
//! binary builds the spans of each batch for the exporter, and only when one is configured. The queue, transport, retries with backoff and
//! counted drops are the metrics exporter's (`metrics::otlp::spawn_export`); this module only says
//! how a batch of [`Span`]s becomes an `ExportTraceServiceRequest`: one `ResourceSpans` for the
//! gateway (`service.name`, `service.instance.id`, `service.version`) with one `ScopeSpans`
//! named `gatehouse`. The gateway's own classification travels as the `gatehouse.classification`
//! attribute, since OTLP has no field for it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, span, status,
};
use prost::Message;
use tokio::sync::mpsc;

use super::{AttrValue, Span, SpanKind, SpanSink, SpanStatus};
use crate::metrics::otlp::{ExportPolicy, Origin, OtlpConfig, OtlpHandle, Shared, spawn_export};

/// The instrumentation scope every exported span belongs to.
pub const SCOPE_NAME: &str = "gatehouse";
/// The attribute carrying the span's X-Ray style classification (ok, error, throttle, fault).
pub const CLASSIFICATION_ATTRIBUTE: &str = "gatehouse.classification";

/// The sink side: hands span batches to the exporter thread without blocking.
pub struct SpanExporter {
    queue: mpsc::Sender<Vec<Span>>,
    shared: Arc<Shared>,
}

impl SpanExporter {
    /// Starts the exporter thread with the default [`ExportPolicy`] (60 batches of queue, 3
    /// attempts). The returned handle's counters count batches.
    pub fn spawn(config: OtlpConfig) -> io::Result<(SpanExporter, OtlpHandle)> {
        Self::spawn_with(config, ExportPolicy::default())
    }

    /// Starts the exporter thread; `policy.queue_minutes` is the number of queued batches.
    pub fn spawn_with(
        config: OtlpConfig,
        policy: ExportPolicy,
    ) -> io::Result<(SpanExporter, OtlpHandle)> {
        let (queue, handle) = spawn_export(config, policy, "gatehouse-otlp-traces", encode)?;
        let shared = handle.shared();
        Ok((SpanExporter { queue, shared }, handle))
    }
}

impl SpanSink for SpanExporter {
    fn write(&mut self, spans: Vec<Span>) {
        let count = spans.len();
        if self.queue.try_send(spans).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                spans = count,
                "otlp trace export queue full or stopped; spans dropped"
            );
        }
    }
}

/// The queue's item is the recorder's `Vec`, hence `&Vec` rather than a slice.
#[allow(clippy::ptr_arg)]
fn encode(origin: &Origin, spans: &Vec<Span>) -> Bytes {
    Bytes::from(export_request(origin, spans).encode_to_vec())
}

/// Builds the request for one batch of spans.
pub(crate) fn export_request(origin: &Origin, spans: &[Span]) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            string("service.name", &origin.service_name),
            string("service.instance.id", &origin.service_instance_id),
            string("service.version", env!("CARGO_PKG_VERSION")),
        ],
        ..Resource::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.iter().map(otlp_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One span in OTLP's model; ids are the raw bytes, times nanoseconds since the Unix epoch.
pub(crate) fn otlp_span(span: &Span) -> OtlpSpan {
    let mut attributes: Vec<KeyValue> = span
        .attributes
        .iter()
        .map(|(key, value)| key_value(key, value))
        .collect();
    attributes.push(string(
        CLASSIFICATION_ATTRIBUTE,
        span.classification.as_str(),
    ));
    OtlpSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: span
            .parent_span_id
            .map(|id| id.to_vec())
            .unwrap_or_default(),
        name: span.name.clone(),
        kind: match span.kind {
            SpanKind::Server => span::SpanKind::Server,
            SpanKind::Client => span::SpanKind::Client,
            SpanKind::Internal => span::SpanKind::Internal,
        } as i32,
        start_time_unix_nano: span.start_unix_nanos,
        end_time_unix_nano: span.end_unix_nanos,
        attributes,
        events: span
            .events
            .iter()
            .map(|event| span::Event {
                time_unix_nano: event.unix_nanos,
                name: event.name.clone(),
                attributes: event
                    .attributes
                    .iter()
                    .map(|(key, value)| key_value(key, value))
                    .collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: Some(Status {
            message: String::new(),
            code: match span.status {
                SpanStatus::Unset => status::StatusCode::Unset,
                SpanStatus::Error => status::StatusCode::Error,
            } as i32,
        }),
        ..OtlpSpan::default()
    }
}

fn key_value(key: &str, value: &AttrValue) -> KeyValue {
    let value = match value {
        AttrValue::Str(s) => any_value::Value::StringValue(s.clone()),
        AttrValue::Int(n) => any_value::Value::IntValue(*n),
        AttrValue::Bool(b) => any_value::Value::BoolValue(*b),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    key_value(key, &AttrValue::Str(value.to_owned()))
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
