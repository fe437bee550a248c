//! OTLP/HTTP's JSON encoding of an `ExportTraceServiceRequest`, read into the protobuf types so
//! that both encodings share one mapping to the gateway's spans (`receive.rs`).
//!
//! The JSON is proto3's JSON mapping with OTLP's departures
//! (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>): trace and span ids are
//! hex strings, not base64; enum values are integers (their names are read too, as proto3
//! parsers do); field names are lowerCamelCase, and the original snake_case names are accepted
//! as the specification asks of receivers; 64-bit integers may be decimal strings or numbers;
//! unknown fields are ignored and `null` stands for a field's default. Nothing here denies
//! unknown fields: a newer exporter's additions must not fail the request.
//!
//! A span whose ids are not hex of the right length does not fail the request: it is left out
//! and counted, like a protobuf span with malformed ids.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::ReceiveError;

/// A JSON body read into the protobuf request, and how many spans were left out on the way for
/// ids that are not hex.
pub(super) fn request_from_json(
    body: &[u8],
) -> Result<(ExportTraceServiceRequest, i64), ReceiveError> {
    // serde reads a struct from an array too; the request is an object, and an array here is
    // more likely a list of spans sent without their envelope.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(ReceiveError::Json {
            path: None,
            source: de::Error::custom("expected an object with \"resourceSpans\""),
        });
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: Request = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let path = error.path().to_string();
        ReceiveError::Json {
            // The root's path is "."; naming it helps no one.
            path: (path != ".").then_some(path),
            source: error.into_inner(),
        }
    })?;
    // Trailing characters after the document make it malformed too.
    json.end()
        .map_err(|source| ReceiveError::Json { path: None, source })?;
    let mut rejected = 0;
    let resource_spans = request
        .resource_spans
        .into_iter()
        .map(|rs| trace::ResourceSpans {
            resource: rs.resource.map(|r| resource::Resource {
                attributes: key_values(r.attributes),
                ..resource::Resource::default()
            }),
            scope_spans: rs
                .scope_spans
                .into_iter()
                .map(|ss| trace::ScopeSpans {
                    spans: ss
                        .spans
                        .into_iter()
                        .filter_map(|span| {
                            let span = span.into_proto();
                            rejected += i64::from(span.is_none());
                            span
                        })
                        .collect(),
                    ..trace::ScopeSpans::default()
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect();
    Ok((ExportTraceServiceRequest { resource_spans }, rejected))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default, alias = "resource_spans", deserialize_with = "or_default")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default, alias = "scope_spans", deserialize_with = "or_default")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default, deserialize_with = "or_default")]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct ScopeSpans {
    #[serde(default, deserialize_with = "or_default")]
    spans: Vec<Span>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    #[serde(default, alias = "trace_id", deserialize_with = "or_default")]
    trace_id: String,
    #[serde(default, alias = "span_id", deserialize_with = "or_default")]
    span_id: String,
    #[serde(default, alias = "parent_span_id", deserialize_with = "or_default")]
    parent_span_id: String,
    #[serde(default, deserialize_with = "or_default")]
    name: String,
    #[serde(default)]
    kind: SpanKind,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Uint64,
    #[serde(default, alias = "end_time_unix_nano")]
    end_time_unix_nano: Uint64,
    #[serde(default, deserialize_with = "or_default")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "or_default")]
    events: Vec<Event>,
    #[serde(default)]
    status: Option<Status>,
}

impl Span {
    /// The protobuf span, or `None` when an id is not hex of its length. An empty parent is no
    /// parent; zero ids are left to the shared mapping, which rejects them for both encodings.
    fn into_proto(self) -> Option<trace::Span> {
        let parent_span_id = match self.parent_span_id.as_str() {
            "" => Vec::new(),
            hex => parse_hex::<8>(hex)?.to_vec(),
        };
        Some(trace::Span {
            trace_id: parse_hex::<16>(&self.trace_id)?.to_vec(),
            span_id: parse_hex::<8>(&self.span_id)?.to_vec(),
            parent_span_id,
            name: self.name,
            kind: self.kind.0,
            start_time_unix_nano: self.start_time_unix_nano.0,
            end_time_unix_nano: self.end_time_unix_nano.0,
            attributes: key_values(self.attributes),
            events: self
                .events
                .into_iter()
                .map(|event| trace::span::Event {
                    time_unix_nano: event.time_unix_nano.0,
                    name: event.name,
                    attributes: key_values(event.attributes),
                    dropped_attributes_count: 0,
                })
                .collect(),
            status: self.status.map(|status| trace::Status {
                message: status.message,
                code: status.code.0,
            }),
            ..trace::Span::default()
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default, alias = "time_unix_nano")]
    time_unix_nano: Uint64,
    #[serde(default, deserialize_with = "or_default")]
    name: String,
    #[serde(default, deserialize_with = "or_default")]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default, deserialize_with = "or_default")]
    message: String,
    #[serde(default)]
    code: StatusCode,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default, deserialize_with = "or_default")]
    key: String,
    #[serde(default)]
    value: Option<AnyValue>,
}

/// One of the fields is set; an object with none is an empty value, which the mapping skips.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    #[serde(default, alias = "string_value")]
    string_value: Option<String>,
    #[serde(default, alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(default, alias = "int_value")]
    int_value: Option<Int64>,
    #[serde(default, alias = "double_value")]
    double_value: Option<Double>,
    #[serde(default, alias = "array_value")]
    array_value: Option<Values<AnyValue>>,
    #[serde(default, alias = "kvlist_value")]
    kvlist_value: Option<Values<KeyValue>>,
    #[serde(default, alias = "bytes_value")]
    bytes_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct Values<T> {
    #[serde(default, deserialize_with = "or_default")]
    values: Vec<T>,
}

impl AnyValue {
    fn into_proto(self) -> common::AnyValue {
        use common::any_value::Value;
        let value = if let Some(s) = self.string_value {
            Some(Value::StringValue(s))
        } else if let Some(b) = self.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(n) = self.int_value {
            Some(Value::IntValue(n.0))
        } else if let Some(d) = self.double_value {
            Some(Value::DoubleValue(d.0))
        } else if let Some(array) = self.array_value {
            Some(Value::ArrayValue(common::ArrayValue {
                values: array.values.into_iter().map(AnyValue::into_proto).collect(),
            }))
        } else if let Some(map) = self.kvlist_value {
            Some(Value::KvlistValue(common::KeyValueList {
                values: key_values(map.values),
            }))
        } else {
            // Bytes are base64 in JSON, and the mapping would turn decoded bytes back into that
            // very base64 text: the text is kept as it came.
            self.bytes_value.map(Value::StringValue)
        };
        common::AnyValue { value }
    }
}

fn key_values(values: Vec<KeyValue>) -> Vec<common::KeyValue> {
    values
        .into_iter()
        .map(|kv| common::KeyValue {
            key: kv.key,
            value: kv.value.map(AnyValue::into_proto),
            ..common::KeyValue::default()
        })
        .collect()
}

/// Exactly `N` bytes as `2 * N` hex digits of either case.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// `null` is the default, as in proto3's JSON mapping.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A `fixed64` / `uint64`: a decimal string or a number.
#[derive(Default)]
struct Uint64(u64);

/// An `int64`: a decimal string or a number.
struct Int64(i64);

/// A `double`: a number, or a string (`"NaN"`, `"Infinity"`, `"-Infinity"` or a number).
struct Double(f64);

/// A span kind: its number, or its name (`SPAN_KIND_SERVER`).
#[derive(Default)]
struct SpanKind(i32);

/// A status code: its number, or its name (`STATUS_CODE_ERROR`).
#[derive(Default)]
struct StatusCode(i32);

/// Reads a number that proto3's JSON mapping allows as a JSON number or a string.
struct NumberVisitor<T> {
    expecting: &'static str,
    from_str: fn(&str) -> Option<T>,
    from_u64: fn(u64) -> Option<T>,
    from_i64: fn(i64) -> Option<T>,
    from_f64: fn(f64) -> Option<T>,
}

impl<T> Visitor<'_> for NumberVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        (self.from_u64)(n)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(n), &self))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        (self.from_i64)(n)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(n), &self))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        (self.from_f64)(n)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Float(n), &self))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        (self.from_str)(text)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
    }
}

/// An integral float (`1e9`, `5.0`) as an integer, as proto3's JSON parsers accept it.
fn integral(n: f64) -> Option<i128> {
    (n.fract() == 0.0 && n.abs() < 1e38).then_some(n as i128)
}

impl<'de> Deserialize<'de> for Uint64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = NumberVisitor {
            expecting: "an unsigned 64-bit integer, as a number or a decimal string",
            from_str: |s| s.parse().ok(),
            from_u64: Some,
            from_i64: |n| u64::try_from(n).ok(),
            from_f64: |n| u64::try_from(integral(n)?).ok(),
        };
        Ok(Self(
            deserializer.deserialize_any(visitor)?.unwrap_or_default(),
        ))
    }
}

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = NumberVisitor {
            expecting: "a 64-bit integer, as a number or a decimal string",
            from_str: |s| s.parse().ok(),
            from_u64: |n| i64::try_from(n).ok(),
            from_i64: Some,
            from_f64: |n| i64::try_from(integral(n)?).ok(),
        };
        Ok(Self(
            deserializer.deserialize_any(visitor)?.unwrap_or_default(),
        ))
    }
}

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = NumberVisitor {
            expecting: "a number, or \"NaN\", \"Infinity\" or \"-Infinity\"",
            from_str: |s| match s {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ => s.parse().ok().filter(|n: &f64| n.is_finite()),
            },
            from_u64: |n| Some(n as f64),
            from_i64: |n| Some(n as f64),
            from_f64: Some,
        };
        Ok(Self(
            deserializer.deserialize_any(visitor)?.unwrap_or_default(),
        ))
    }
}

/// An enum value: its number, or its name as `from_name` knows it. A name it does not know is 0
/// (unspecified), as a number it does not know is left to the mapping: a newer exporter's enum
/// value must not fail the request.
fn enum_value<'de, D: Deserializer<'de>>(
    deserializer: D,
    expecting: &'static str,
    from_name: fn(&str) -> Option<i32>,
) -> Result<i32, D::Error> {
    let visitor = NumberVisitor {
        expecting,
        from_str: from_name,
        from_u64: |n| i32::try_from(n).ok(),
        from_i64: |n| i32::try_from(n).ok(),
        from_f64: |n| i32::try_from(integral(n)?).ok(),
    };
    Ok(deserializer.deserialize_any(visitor)?.unwrap_or_default())
}

impl<'de> Deserialize<'de> for SpanKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        enum_value(
            deserializer,
            "a span kind: an integer (2 for server) or a name (SPAN_KIND_SERVER)",
            |name| Some(trace::span::SpanKind::from_str_name(name).map_or(0, |k| k as i32)),
        )
        .map(Self)
    }
}

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        enum_value(
            deserializer,
            "a status code: an integer (2 for error) or a name (STATUS_CODE_ERROR)",
            |name| Some(trace::status::StatusCode::from_str_name(name).map_or(0, |c| c as i32)),
        )
        .map(Self)
    }
}

#[cfg(test)]
#[path = "receive_json_tests.rs"]
mod tests;
