//! Validated runtime settings: listeners, limits, the admin endpoint, storage and logging.
//!
//! These are plain values with their units applied (`Duration`, absolute paths); they are produced
//! by `validate` and never change after loading. Secrets are wrapped in [`Secret`] so that a
//! `{:?}` of the settings, for example in a log line, cannot leak the admin token.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gatehouse_telemetry::access_log::AccessLogConfig;

use crate::logging::settings::{
    AccessLogSettings, ExecutionLogSettings, LogsSettings, StageLogging, access_log_config,
};

/// Everything outside the routing table.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Data-plane listeners; never empty.
    pub listeners: Vec<ListenerSettings>,
    /// Connection and request limits shared by all listeners.
    pub limits: Limits,
    /// The admin endpoint, when the `admin` section is present.
    pub admin: Option<AdminSettings>,
    /// Where the embedded store keeps its files (absolute or joined to the config directory).
    pub data_dir: PathBuf,
    /// The top-level access log: every stage's default and the log of unrouted requests.
    pub access_log: AccessLogSettings,
    /// The top-level execution log: every stage's default.
    pub execution_log: ExecutionLogSettings,
    /// The access and execution logs of every api stage, inheritance applied, in file order.
    pub stage_logging: Vec<StageLogging>,
    /// The store's log groups: retention and metric filters.
    pub logs: LogsSettings,
    /// Telemetry bus settings.
    pub telemetry: TelemetrySettings,
    /// Metric aggregation, storage and exposition.
    pub metrics: MetricsSettings,
    /// Metric alarms.
    pub alarms: Vec<crate::alarms::AlarmSettings>,
    /// Trace context and sampling.
    pub tracing: crate::tracing_config::TracingSettings,
}

impl Settings {
    /// The access-log writer's table: formats and destinations per stage and for unrouted
    /// requests. Hand it to `AccessLogWriter::spawn`, and to `reconfigure` on reload.
    pub fn access_log_config(&self) -> AccessLogConfig {
        access_log_config(&self.access_log, &self.stage_logging)
    }
}

/// One data-plane listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// A unique name, used in logs and metrics.
    pub name: String,
    /// The address to bind.
    pub bind: SocketAddr,
    /// TLS certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Whether to serve HTTP/2: via ALPN with TLS, by prior knowledge (h2c) without.
    pub http2: bool,
}

/// PEM files for a TLS listener; both existed and were readable at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// Limits applied to every connection and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body accepted; larger requests get 413.
    pub max_payload_bytes: u64,
    /// The largest request head (request line and headers together).
    pub max_header_bytes: usize,
    /// How long a client may take to send the request head.
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub idle_timeout: Duration,
    /// The most concurrent client connections across all listeners.
    pub max_connections: usize,
}

/// The admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// The address to bind; apart from the data plane.
    pub bind: SocketAddr,
    /// The bearer token every admin request must carry.
    pub token: Secret,
}

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Telemetry bus settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// The queue length per consumer; a full queue drops (and counts) records.
    pub bus_capacity: usize,
}

/// Metric aggregation, storage and exposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Whether requests are aggregated into metrics, stored and exposed.
    pub enabled: bool,
    /// Distinct dimension sets per minute before new ones fold into an overflow series.
    pub max_series: usize,
    /// How long 1-minute points are kept.
    pub retention_minute: std::time::Duration,
    /// How long 5-minute rollups are kept.
    pub retention_five_minutes: std::time::Duration,
    /// How long 1-hour rollups are kept.
    pub retention_hour: std::time::Duration,
    /// Where closed minutes are also exported over OTLP/HTTP, if anywhere.
    pub otlp: Option<OtlpSettings>,
}

/// An OTLP/HTTP endpoint (e.g. an OpenTelemetry collector's `/v1/metrics` or `/v1/traces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    pub endpoint: http::Uri,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub timeout: std::time::Duration,
}
