//! The logging sections as written: `access_log` and `execution_log` (top level and per stage)
//! and `logs` (store log groups and metric filters). Every field a stage may leave out is an
//! `Option`, so validation can tell "inherit" from "set to the default".

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::model::ScalarString;

/// The top-level `access_log`: the default of every stage and the log of unrouted requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessLogSpec {
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    #[serde(default)]
    pub(crate) format: Option<String>,
    /// Each entry is `store`, `stdout` or `{ file: ... }`; decoded by hand for precise paths.
    #[serde(default)]
    pub(crate) destinations: Option<Vec<Value>>,
    /// The old single-destination form: `stdout`, `file` (with `path`) or `off`.
    #[serde(default)]
    pub(crate) destination: Option<LegacyDestination>,
    #[serde(default)]
    pub(crate) path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LegacyDestination {
    Stdout,
    File,
    Off,
}

/// A stage's `access_log`; what it leaves out comes from the top-level section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageAccessLogSpec {
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    #[serde(default)]
    pub(crate) format: Option<String>,
    #[serde(default)]
    pub(crate) destinations: Option<Vec<Value>>,
}

/// `{ file: { path, max_size, rotate_every, keep } }`'s inner mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDestinationSpec {
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) max_size: Option<ScalarString>,
    #[serde(default)]
    pub(crate) rotate_every: Option<String>,
    #[serde(default)]
    pub(crate) keep: Option<u32>,
}

/// `execution_log` at the top level or on a stage.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutionLogSpec {
    #[serde(default)]
    pub(crate) level: Option<LevelSpec>,
    #[serde(default)]
    pub(crate) data_trace: Option<bool>,
    #[serde(default)]
    pub(crate) max_body_bytes: Option<usize>,
    #[serde(default)]
    pub(crate) redact_headers: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) redact_json_fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LevelSpec {
    Off,
    Error,
    Info,
}

/// The top-level `logs` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogsSpec {
    pub(crate) retention_days: u32,
    pub(crate) groups: BTreeMap<String, GroupSpec>,
    pub(crate) metric_filters: Vec<MetricFilterSpec>,
}

impl Default for LogsSpec {
    fn default() -> Self {
        Self {
            retention_days: 30,
            groups: BTreeMap::new(),
            metric_filters: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupSpec {
    pub(crate) retention_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricFilterSpec {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) filter: String,
    pub(crate) metric: String,
    #[serde(default = "one")]
    pub(crate) value: ScalarString,
    #[serde(default)]
    pub(crate) dimensions: BTreeMap<String, String>,
}

fn one() -> ScalarString {
    ScalarString("1".to_owned())
}
