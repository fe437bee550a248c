//! The configuration file's shape as serde structs, and decoding from JSON with field paths.
//!
//! Every struct is `deny_unknown_fields` so a typo such as `integraton` is an error, not a silently
//! ignored key. Decoding is done piecewise — each top-level section, each listener, api, route and
//! integration on its own — so that one bad route does not hide the errors in the next one.
//! `serde_path_to_error` supplies the field path inside each piece; we prefix it with the piece's
//! own path. Values are raw here (strings, milliseconds); `validate` and `compile` give them meaning.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Anchor, Diagnostics, join_index, join_key};
use crate::logging::model::{AccessLogSpec, ExecutionLogSpec, LogsSpec, StageAccessLogSpec};

/// The top-level sections and what each holds; anything else is an unknown field.
const SECTIONS: &[&str] = &[
    "listeners",
    "limits",
    "admin",
    "data_dir",
    "access_log",
    "execution_log",
    "logs",
    "telemetry",
    "metrics",
    "alarms",
    "tracing",
    "apis",
];

/// The whole file, decoded as far as it could be. Failed pieces are left out; their errors are in
/// the diagnostics. Lists keep each element's original index for error paths.
#[derive(Debug, Default)]
pub(crate) struct FileSpec {
    pub(crate) listeners: Option<Vec<(usize, ListenerSpec)>>,
    pub(crate) limits: LimitsSpec,
    pub(crate) admin: Option<AdminSpec>,
    pub(crate) data_dir: Option<String>,
    pub(crate) access_log: AccessLogSpec,
    pub(crate) execution_log: ExecutionLogSpec,
    pub(crate) logs: LogsSpec,
    pub(crate) telemetry: TelemetrySpec,
    pub(crate) metrics: MetricsSpec,
    pub(crate) alarms: Vec<(usize, crate::alarms::AlarmSpecDoc)>,
    pub(crate) tracing: crate::tracing_config::TracingSpec,
    pub(crate) apis: Vec<(usize, ApiDoc)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerSpec {
    pub(crate) name: String,
    pub(crate) bind: String,
    #[serde(default)]
    pub(crate) tls: Option<TlsSpec>,
    #[serde(default = "yes")]
    pub(crate) http2: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSpec {
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSpec {
    pub(crate) max_payload_bytes: u64,
    pub(crate) max_header_bytes: usize,
    pub(crate) header_read_timeout_ms: u64,
    pub(crate) idle_timeout_ms: u64,
    pub(crate) max_connections: usize,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_payload_bytes: 10 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
        }
    }
}

pub(crate) const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:9901";
pub(crate) const DEFAULT_LISTENER_BIND: &str = "127.0.0.1:8080";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminSpec {
    #[serde(default = "default_admin_bind")]
    pub(crate) bind: String,
    pub(crate) token: ScalarString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TelemetrySpec {
    pub(crate) bus_capacity: usize,
}

impl Default for TelemetrySpec {
    fn default() -> Self {
        Self {
            bus_capacity: 65_536,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsSpec {
    pub(crate) enabled: bool,
    pub(crate) max_series: usize,
    pub(crate) retention_days: RetentionSpec,
    pub(crate) otlp: Option<OtlpSpec>,
}

/// Export over OTLP/HTTP (protobuf): `metrics.otlp` for the per-minute metrics, `tracing.otlp`
/// for the spans.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtlpSpec {
    pub(crate) endpoint: String,
    #[serde(default)]
    pub(crate) headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_otlp_timeout")]
    pub(crate) timeout_ms: u64,
}

fn default_otlp_timeout() -> u64 {
    10_000
}

impl Default for MetricsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_series: 10_000,
            retention_days: RetentionSpec::default(),
            otlp: None,
        }
    }
}

/// Days each resolution is kept, as CloudWatch does: 1-minute points 15 days, 5-minute 63 days,
/// 1-hour 455 days.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetentionSpec {
    pub(crate) minute: u32,
    pub(crate) five_minutes: u32,
    pub(crate) hour: u32,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            minute: 15,
            five_minutes: 63,
            hour: 455,
        }
    }
}

/// An api with its routes decoded one by one.
#[derive(Debug)]
pub(crate) struct ApiDoc {
    pub(crate) spec: ApiSpec,
    /// How many routes the file lists, including ones that failed to decode.
    pub(crate) route_count: usize,
    pub(crate) routes: Vec<(usize, RouteDoc)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSpec {
    pub(crate) name: String,
    #[serde(default = "default_version")]
    pub(crate) version: ScalarString,
    #[serde(default)]
    pub(crate) base_path: Option<String>,
    #[serde(default)]
    pub(crate) host: Option<String>,
    pub(crate) stages: Vec<StageSpec>,
    routes: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageSpec {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    #[serde(default)]
    pub(crate) variables: BTreeMap<String, ScalarString>,
    #[serde(default)]
    pub(crate) access_log: Option<StageAccessLogSpec>,
    #[serde(default)]
    pub(crate) execution_log: Option<ExecutionLogSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    #[serde(default)]
    method: MethodSpec,
    path: String,
    integration: Value,
}

/// A route whose integration may have failed to decode (then `integration` is `None`).
#[derive(Debug)]
pub(crate) struct RouteDoc {
    pub(crate) method: MethodSpec,
    pub(crate) path: String,
    pub(crate) integration: Option<IntegrationSpec>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum MethodSpec {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    #[default]
    Any,
}

#[derive(Debug)]
pub(crate) enum IntegrationSpec {
    Http(HttpSpec),
    Mock(MockSpec),
    WebSocket(WebSocketSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSpec {
    pub(crate) url: String,
    #[serde(default = "default_timeout_ms")]
    pub(crate) timeout_ms: u64,
    #[serde(default)]
    pub(crate) http2: bool,
    #[serde(default)]
    pub(crate) request_headers: HeaderOpsSpec,
    #[serde(default)]
    pub(crate) response_headers: HeaderOpsSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderOpsSpec {
    #[serde(default)]
    pub(crate) set: BTreeMap<String, ScalarString>,
    #[serde(default)]
    pub(crate) remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MockSpec {
    #[serde(default = "default_status")]
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, ScalarString>,
    #[serde(default)]
    pub(crate) body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebSocketSpec {
    pub(crate) url: String,
    #[serde(default = "default_max_frame_bytes")]
    pub(crate) max_frame_bytes: usize,
    #[serde(default = "default_max_message_bytes")]
    pub(crate) max_message_bytes: usize,
    #[serde(default = "default_ws_idle_timeout_ms")]
    pub(crate) idle_timeout_ms: u64,
    #[serde(default = "default_ws_max_lifetime_ms")]
    pub(crate) max_lifetime_ms: u64,
}

/// A string field that also accepts a plain number or boolean (`x-version: 2`), kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScalarString(pub(crate) String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a string")]
        enum Scalar {
            String(String),
            Bool(bool),
            Int(i64),
            UInt(u64),
            Float(f64),
        }
        Ok(ScalarString(match Scalar::deserialize(deserializer)? {
            Scalar::String(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(n) => n.to_string(),
            Scalar::UInt(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
        }))
    }
}

fn yes() -> bool {
    true
}
fn default_admin_bind() -> String {
    DEFAULT_ADMIN_BIND.to_owned()
}
fn default_version() -> ScalarString {
    ScalarString("v1".to_owned())
}
fn default_timeout_ms() -> u64 {
    29_000
}
fn default_status() -> u16 {
    200
}
fn default_max_frame_bytes() -> usize {
    1024 * 1024
}
fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_ws_idle_timeout_ms() -> u64 {
    600_000
}
fn default_ws_max_lifetime_ms() -> u64 {
    7_200_000
}

/// Decodes the root value section by section.
pub(crate) fn decode_file(root: Value, diags: &mut Diagnostics<'_>) -> FileSpec {
    let mut file = FileSpec::default();
    let map = match root {
        Value::Object(map) => map,
        Value::Null => return file,
        other => {
            diags.error(
                "",
                format!("expected a mapping of sections, found {}", kind(&other)),
            );
            return file;
        }
    };
    for (key, value) in map {
        match key.as_str() {
            "listeners" if value.as_array().is_some_and(Vec::is_empty) => diags.error(
                "listeners",
                "at least one listener is required; leave `listeners` out for the default 127.0.0.1:8080",
            ),
            "listeners" => {
                file.listeners = (!value.is_null())
                    .then(|| decode_list(value, "listeners", diags, decode))
                    .flatten();
            }
            "limits" => file.limits = decode_or_default(value, "limits", diags),
            "admin" => file.admin = decode(value, "admin", diags),
            "data_dir" => file.data_dir = decode(value, "data_dir", diags),
            "access_log" => file.access_log = decode_or_default(value, "access_log", diags),
            "execution_log" => {
                file.execution_log = decode_or_default(value, "execution_log", diags);
            }
            "logs" => file.logs = decode_or_default(value, "logs", diags),
            "telemetry" => file.telemetry = decode_or_default(value, "telemetry", diags),
            "metrics" => file.metrics = decode_or_default(value, "metrics", diags),
            "tracing" => file.tracing = decode_or_default(value, "tracing", diags),
            "alarms" => {
                file.alarms = (!value.is_null())
                    .then(|| decode_list(value, "alarms", diags, decode))
                    .flatten()
                    .unwrap_or_default();
            }
            "apis" => file.apis = decode_list(value, "apis", diags, decode_api).unwrap_or_default(),
            _ => diags.key_error(&key, unknown_field(&key, SECTIONS)),
        }
    }
    file
}

fn decode_api(value: Value, path: &str, diags: &mut Diagnostics<'_>) -> Option<ApiDoc> {
    let mut spec: ApiSpec = decode(value, path, diags)?;
    let raw_routes = std::mem::take(&mut spec.routes);
    let route_count = raw_routes.len();
    let routes_path = join_key(path, "routes");
    let routes = raw_routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, value)| {
            decode_route(value, &join_index(&routes_path, i), diags).map(|route| (i, route))
        })
        .collect();
    Some(ApiDoc {
        spec,
        route_count,
        routes,
    })
}

fn decode_route(value: Value, path: &str, diags: &mut Diagnostics<'_>) -> Option<RouteDoc> {
    let spec: RouteSpec = decode(value, path, diags)?;
    let integration = decode_integration(spec.integration, &join_key(path, "integration"), diags);
    Some(RouteDoc {
        method: spec.method,
        path: spec.path,
        integration,
    })
}

const INTEGRATION_TYPES: &[&str] = &["http", "mock", "websocket"];

/// Dispatches on `type` by hand: serde's internally tagged enums lose the field path inside the
/// variant, which would turn `integration.url` errors into bare `integration` errors.
fn decode_integration(
    value: Value,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<IntegrationSpec> {
    let Value::Object(mut map) = value else {
        diags.error(
            path,
            format!("expected a mapping with a `type`, found {}", kind(&value)),
        );
        return None;
    };
    let type_path = join_key(path, "type");
    let kind = match map.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            diags.error(
                &type_path,
                format!("expected a string, found {}", kind(&other)),
            );
            return None;
        }
        None => {
            diags.error(path, "missing field `type` (one of http, mock, websocket)");
            return None;
        }
    };
    let value = Value::Object(map);
    match kind.as_str() {
        "http" => decode(value, path, diags).map(IntegrationSpec::Http),
        "mock" => decode(value, path, diags).map(IntegrationSpec::Mock),
        "websocket" => decode(value, path, diags).map(IntegrationSpec::WebSocket),
        other => {
            diags.error(
                &type_path,
                format!(
                    "unknown integration type '{other}', expected one of {}",
                    INTEGRATION_TYPES.join(", ")
                ),
            );
            None
        }
    }
}

/// Decodes a list element by element; `None` (with an error) when the value is not a list.
fn decode_list<T>(
    value: Value,
    path: &str,
    diags: &mut Diagnostics<'_>,
    decode_one: impl Fn(Value, &str, &mut Diagnostics<'_>) -> Option<T>,
) -> Option<Vec<(usize, T)>> {
    let Value::Array(items) = value else {
        diags.error(path, format!("expected a list, found {}", kind(&value)));
        return None;
    };
    Some(
        items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| decode_one(item, &join_index(path, i), diags).map(|t| (i, t)))
            .collect(),
    )
}

fn decode_or_default<T: DeserializeOwned + Default>(
    value: Value,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> T {
    if value.is_null() {
        return T::default();
    }
    decode(value, path, diags).unwrap_or_default()
}

/// Deserializes one piece, reporting a failure with the full field path and its position.
pub(crate) fn decode<T: DeserializeOwned>(
    value: Value,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(t) => Some(t),
        Err(error) => {
            let mut full = path.to_owned();
            for segment in error.path().iter() {
                full = match segment {
                    serde_path_to_error::Segment::Seq { index } => join_index(&full, *index),
                    serde_path_to_error::Segment::Map { key }
                    | serde_path_to_error::Segment::Enum { variant: key } => join_key(&full, key),
                    serde_path_to_error::Segment::Unknown => full,
                };
            }
            let message = error.into_inner().to_string();
            let anchor = if message.starts_with("unknown field") {
                Anchor::Key
            } else {
                Anchor::Value
            };
            diags.push(&full, anchor, message);
            None
        }
    }
}

fn unknown_field(key: &str, expected: &[&str]) -> String {
    let expected: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    format!(
        "unknown field `{key}`, expected one of {}",
        expected.join(", ")
    )
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
