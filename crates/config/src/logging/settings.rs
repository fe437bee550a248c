//! The validated logging settings: per-stage access and execution logs (inheritance applied),
//! and the store's log groups and metric filters.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_telemetry::access_log::{
    AccessLogConfig, AccessLogFormat, LogDestinations, StageAccessLog, StageAccessLogEntry,
};

/// One access log: on or off, its compiled format and its destinations.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogSettings {
    /// `false` writes nothing (metrics still see every request).
    pub enabled: bool,
    /// The compiled template; the `gatehouse` preset unless set.
    pub format: Arc<AccessLogFormat>,
    /// Where lines go; the store unless set.
    pub destinations: LogDestinations,
}

impl AccessLogSettings {
    fn writer_log(&self) -> Option<StageAccessLog> {
        self.enabled.then(|| StageAccessLog {
            format: Arc::clone(&self.format),
            destinations: self.destinations.clone(),
        })
    }
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            format: Arc::new(AccessLogFormat::default()),
            destinations: LogDestinations::store_only(),
        }
    }
}

/// A stage's execution log (the steps of each request), after inheritance: the telemetry
/// crate's type, which the compiled routes carry to the data plane.
pub use gatehouse_telemetry::execution::{
    ALWAYS_REDACTED_HEADERS, ExecutionLogLevel, ExecutionLogSettings,
};

/// The logs of one api stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageLogging {
    pub api: String,
    pub stage: String,
    pub access_log: AccessLogSettings,
    pub execution_log: ExecutionLogSettings,
}

/// The store's log groups: retention and metric filters.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsSettings {
    /// How long a group's events are kept unless `groups` says otherwise.
    pub retention: Duration,
    /// Per-group retention; a pattern may use `*` (any characters, `/` included).
    pub groups: Vec<LogGroupSettings>,
    /// Metrics derived from log events, in file order.
    pub metric_filters: Vec<MetricFilterSettings>,
}

impl Default for LogsSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 86_400),
            groups: Vec::new(),
            metric_filters: Vec::new(),
        }
    }
}

impl LogsSettings {
    /// The retention of `group`: an exact entry, else the longest matching pattern, else the
    /// default.
    pub fn retention_for(&self, group: &str) -> Duration {
        self.groups
            .iter()
            .filter(|g| glob_match(&g.pattern, group))
            .max_by_key(|g| (g.pattern == group, g.pattern.len()))
            .map_or(self.retention, |g| g.retention)
    }
}

/// A group name or pattern with its retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupSettings {
    pub pattern: String,
    pub retention: Duration,
}

/// A metric filter: events of matching groups that pass `filter` add `value` to `metric`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilterSettings {
    pub name: String,
    /// A group name or `*` pattern (see [`glob_match`]).
    pub group: String,
    /// The filter expression as written; parsed and checked by the log query crate.
    pub filter: String,
    pub metric: String,
    pub value: MetricValue,
    /// Dimension name → the event field it is read from.
    pub dimensions: Vec<(String, String)>,
}

/// What a matching event adds to the metric.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// A fixed number (`1` counts events).
    Constant(f64),
    /// The value of an event field (`$responseLatency` → `responseLatency`).
    Field(String),
}

/// Whether `name` matches `pattern`, where `*` stands for any characters (`/` included).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The access-log writer's table: the top-level log for unrouted requests and one entry per
/// stage.
pub(crate) fn access_log_config(
    default: &AccessLogSettings,
    stages: &[StageLogging],
) -> AccessLogConfig {
    AccessLogConfig {
        default: default.writer_log(),
        stages: stages
            .iter()
            .map(|s| StageAccessLogEntry {
                api: Arc::from(s.api.as_str()),
                stage: Arc::from(s.stage.as_str()),
                log: s.access_log.writer_log(),
            })
            .collect(),
    }
}
