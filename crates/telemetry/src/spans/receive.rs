//! The other direction of OTLP: spans that the services behind the gateway send to the admin
//! listener's `/v1/traces`, decoded from an `ExportTraceServiceRequest` (protobuf) into the
//! gateway's [`Span`] model so they are stored beside the gateway's own spans and join its
//! waterfalls.
//!
//! OTLP is richer than the stored model, so the mapping narrows it: producer spans count as
//! client spans and consumer spans as internal ones, doubles are kept as text, and arrays, maps
//! and bytes are left out. The resource's `service.name` becomes the span's `service.name`
//! attribute, which is also what tells a service's span from the gateway's (the store lists
//! only the gateway's server spans as requests). Spans with malformed ids are rejected and
//! counted in the answer's partial success, as the OTLP specification asks
//! (<https://opentelemetry.io/docs/specs/otlp/#partial-success>).

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span as OtlpSpan, span, status};
use prost::Message;

use super::{AttrValue, Classification, Span, SpanEvent, SpanKind, SpanStatus, attr, classify};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the body is not an OTLP ExportTraceServiceRequest in protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// What one request carried.
#[derive(Debug, Default)]
pub struct Received {
    /// The spans to store.
    pub spans: Vec<Span>,
    /// Spans left out because their trace or span id is malformed.
    pub rejected: i64,
}

impl Received {
    /// The protobuf answer: empty when everything was accepted, a partial success otherwise.
    pub fn response(&self) -> Vec<u8> {
        let partial_success = (self.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: self.rejected,
            error_message: "spans need a 16-byte non-zero trace id and an 8-byte span id"
                .to_owned(),
        });
        ExportTraceServiceResponse { partial_success }.encode_to_vec()
    }
}

/// Decodes a protobuf `ExportTraceServiceRequest` into spans.
pub fn spans_from_otlp(body: &[u8]) -> Result<Received, ReceiveError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut received = Received::default();
    for resource_spans in request.resource_spans {
        let service = resource_spans.resource.as_ref().and_then(|resource| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == attr::SERVICE_NAME)
                .and_then(attr_value)
        });
        for scope_spans in resource_spans.scope_spans {
            for otlp in scope_spans.spans {
                match span_from_otlp(otlp, service.as_ref()) {
                    Some(span) => received.spans.push(span),
                    None => received.rejected += 1,
                }
            }
        }
    }
    Ok(received)
}

fn span_from_otlp(otlp: OtlpSpan, service: Option<&AttrValue>) -> Option<Span> {
    let trace_id: [u8; 16] = otlp.trace_id.as_slice().try_into().ok()?;
    let span_id: [u8; 8] = otlp.span_id.as_slice().try_into().ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let parent_span_id = match otlp.parent_span_id.len() {
        0 => None,
        _ => Some(otlp.parent_span_id.as_slice().try_into().ok()?),
    };
    let kind = match span::SpanKind::try_from(otlp.kind) {
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client | span::SpanKind::Producer) => SpanKind::Client,
        _ => SpanKind::Internal,
    };
    let mut attributes: Vec<(String, AttrValue)> = otlp
        .attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), attr_value(kv)?)))
        .collect();
    attributes.retain(|(key, _)| key != attr::SERVICE_NAME);
    attributes.push((
        attr::SERVICE_NAME.to_owned(),
        service
            .cloned()
            .unwrap_or_else(|| AttrValue::Str("unknown_service".to_owned())),
    ));
    let status = match otlp.status.as_ref().map(|s| s.code) {
        Some(code) if code == status::StatusCode::Error as i32 => SpanStatus::Error,
        _ => SpanStatus::Unset,
    };
    let http_status = attributes
        .iter()
        .find(|(key, _)| key == attr::HTTP_RESPONSE_STATUS_CODE)
        .and_then(|(_, value)| match value {
            AttrValue::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        });
    let classification = match (http_status, status) {
        (Some(code), _) => classify(code),
        (None, SpanStatus::Error) => Classification::Fault,
        (None, SpanStatus::Unset) => Classification::Ok,
    };
    Some(Span {
        trace_id,
        span_id,
        parent_span_id,
        name: otlp.name,
        kind,
        start_unix_nanos: otlp.start_time_unix_nano,
        end_unix_nanos: otlp.end_time_unix_nano.max(otlp.start_time_unix_nano),
        attributes,
        events: otlp
            .events
            .into_iter()
            .map(|event| SpanEvent {
                name: event.name,
                unix_nanos: event.time_unix_nano,
                attributes: event
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), attr_value(kv)?)))
                    .collect(),
            })
            .collect(),
        status,
        classification,
    })
}

fn attr_value(kv: &KeyValue) -> Option<AttrValue> {
    Some(match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => AttrValue::Str(s.clone()),
        any_value::Value::IntValue(n) => AttrValue::Int(*n),
        any_value::Value::BoolValue(b) => AttrValue::Bool(*b),
        any_value::Value::DoubleValue(d) => AttrValue::Str(d.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
