//! The other direction of OTLP: spans that the services behind the gateway send to the admin
//! listener's `/v1/traces`, decoded from an `ExportTraceServiceRequest` in either OTLP/HTTP
//! encoding (protobuf, or JSON through `receive_json`) into the gateway's [`Span`] model so they
//! are stored beside the gateway's own spans and join its waterfalls. The answer is an
//! `ExportTraceServiceResponse` in the request's encoding.
//!
//! OTLP is richer than the stored model, so the mapping narrows it: producer spans count as
//! client spans and consumer spans as internal ones, doubles are kept as text, and arrays and
//! maps become JSON text and bytes base64 text, as OpenTelemetry represents them outside OTLP
//! (<https://opentelemetry.io/docs/specs/otel/common/#anyvalue>). The resource's `service.name`
//! becomes the span's `service.name` attribute, which is also what tells a service's span from
//! the gateway's (the store lists only the gateway's server spans as requests). Spans with
//! malformed ids are rejected and counted in the answer's partial success, as the OTLP
//! specification asks (<https://opentelemetry.io/docs/specs/otlp/#partial-success>).

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span as OtlpSpan, span, status};
use prost::Message;

use super::receive_json::request_from_json;
use super::{AttrValue, Classification, Span, SpanEvent, SpanKind, SpanStatus, attr, classify};

/// The two encodings of OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`: proto3's JSON mapping with hex ids.
    Json,
}

impl OtlpEncoding {
    /// The media type of requests and answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the body is not an OTLP ExportTraceServiceRequest in protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(
        "the body is not an OTLP ExportTraceServiceRequest in JSON: {}{source}",
        path.as_ref().map(|p| format!("{p}: ")).unwrap_or_default()
    )]
    Json {
        /// Where in the document it went wrong (`resourceSpans[0].scopeSpans[0]...`), when
        /// inside it.
        path: Option<String>,
        source: serde_json::Error,
    },
}

/// What one request carried.
#[derive(Debug)]
pub struct Received {
    /// The request's encoding, which the answer takes.
    pub encoding: OtlpEncoding,
    /// The spans to store.
    pub spans: Vec<Span>,
    /// Spans left out because their trace or span id is malformed.
    pub rejected: i64,
}

impl Received {
    /// The answer in the request's encoding: empty when everything was accepted, a partial
    /// success otherwise.
    pub fn response(&self) -> Vec<u8> {
        let error_message = match self.encoding {
            OtlpEncoding::Protobuf => {
                "spans need a non-zero 16-byte trace id and a non-zero 8-byte span id"
            }
            OtlpEncoding::Json => {
                "spans need a non-zero trace id of 32 hex digits and a non-zero span id of 16 \
                 (hex, not base64)"
            }
        };
        let partial_success = (self.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: self.rejected,
            error_message: error_message.to_owned(),
        });
        match self.encoding {
            OtlpEncoding::Protobuf => {
                ExportTraceServiceResponse { partial_success }.encode_to_vec()
            }
            // proto3's JSON mapping writes an int64 as a decimal string.
            OtlpEncoding::Json => {
                let answer = match partial_success {
                    Some(partial) => serde_json::json!({
                        "partialSuccess": {
                            "rejectedSpans": partial.rejected_spans.to_string(),
                            "errorMessage": partial.error_message,
                        }
                    }),
                    None => serde_json::json!({}),
                };
                answer.to_string().into_bytes()
            }
        }
    }
}

/// Decodes an `ExportTraceServiceRequest` in `encoding` into spans.
pub fn spans_from_otlp(encoding: OtlpEncoding, body: &[u8]) -> Result<Received, ReceiveError> {
    let (request, rejected) = match encoding {
        OtlpEncoding::Protobuf => (ExportTraceServiceRequest::decode(body)?, 0),
        OtlpEncoding::Json => request_from_json(body)?,
    };
    let mut received = Received {
        encoding,
        spans: Vec::new(),
        rejected,
    };
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
        any_value::Value::BytesValue(bytes) => AttrValue::Str(base64(bytes)),
        value @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            AttrValue::Str(json_value(Some(value)).to_string())
        }
        // An index into a profile's string table: traces have none.
        any_value::Value::StringValueStrindex(_) => return None,
    })
}

/// A value as OpenTelemetry writes it in JSON outside OTLP: arrays as arrays, maps as objects,
/// bytes as base64; an empty value and a double that JSON cannot hold are `null`.
fn json_value(value: Option<&any_value::Value>) -> serde_json::Value {
    use serde_json::Value as Json;
    let Some(value) = value else {
        return Json::Null;
    };
    match value {
        any_value::Value::StringValue(s) => Json::from(s.as_str()),
        any_value::Value::IntValue(n) => Json::from(*n),
        any_value::Value::BoolValue(b) => Json::from(*b),
        any_value::Value::DoubleValue(d) => Json::from(*d),
        any_value::Value::BytesValue(bytes) => Json::from(base64(bytes)),
        any_value::Value::ArrayValue(array) => array
            .values
            .iter()
            .map(|v| json_value(v.value.as_ref()))
            .collect(),
        any_value::Value::KvlistValue(map) => map
            .values
            .iter()
            .map(|kv| {
                let value = kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref());
                (kv.key.clone(), json_value(value))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        any_value::Value::StringValueStrindex(_) => Json::Null,
    }
}

/// Standard base64 with padding (RFC 4648 §4), as proto3's JSON mapping writes bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                text.push(char::from(ALPHABET[index as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
