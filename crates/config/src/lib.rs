//! Gatehouse configuration: the user's YAML file → validated [`Settings`] and a compiled
//! [`RouteTable`].
//!
//! The flow is one way (STYLE.md §4): text → YAML with positions (`yaml`) → `${ENV}` substitution
//! (`env`) → serde structs with `deny_unknown_fields` (`model`) → validation (`validate`, `compile`)
//! → an immutable [`RouteTable`] shared by `Arc`, which the proxy swaps whole on reload. Every error
//! names the file, line, column and field path, and all of them are collected where practical. After
//! loading, nothing here reads the environment or the file system again.
//!
//! **Invariant:** everything a [`Loaded`] holds is immutable and `Send + Sync`; routing and template
//! rendering do no parsing and (almost) no allocation on the request path.

mod alarms;
mod compile;
mod env;
mod error;
mod integration;
mod logging;
mod model;
mod one_alarm;
mod routing;
mod settings;
mod template;
mod tracing_config;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use alarms::{AlarmSettings, AnomalySettings, REDACTED, WebhookSettings};
pub use compile::{ApiSummary, Summary};
pub use env::{EnvError, substitute as substitute_env};
pub use error::{ConfigError, ConfigErrors};
pub use gatehouse_telemetry::metrics::{Comparison, MissingData};
pub use integration::{
    HeaderOps, HttpIntegration, Integration, MockIntegration, WebSocketIntegration,
};
pub use logging::settings::{
    ALWAYS_REDACTED_HEADERS, AccessLogSettings, ExecutionLogLevel, ExecutionLogSettings,
    LogGroupSettings, LogsSettings, MetricFilterSettings, MetricValue, StageLogging, glob_match,
};
pub use one_alarm::{alarm_from_json, alarm_from_text};
pub use routing::{PathParams, Resolution, Route, RouteTable};
pub use settings::{
    AdminSettings, Limits, ListenerSettings, MetricsSettings, OtlpSettings, Secret, Settings,
    TelemetrySettings, TlsFiles,
};
pub use template::{ContextVar, Template, TemplateError};
pub use tracing_config::{MAX_RULE_PRIORITY, TracingSettings};
pub use validate::MIN_ADMIN_TOKEN_CHARS;

use error::Diagnostics;
use yaml::PositionIndex;

/// A successfully loaded configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Listeners, limits, admin, storage and logging settings.
    pub settings: Settings,
    /// The compiled routing table.
    pub table: Arc<RouteTable>,
    /// Counts and a per-api overview, for logs and `gatehouse validate`.
    pub summary: Summary,
    /// Where the configuration came from.
    pub source: SourceInfo,
}

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// The file name or path, as given to the loader.
    pub file: PathBuf,
    /// The directory relative paths in the file are resolved against.
    pub config_dir: PathBuf,
}

/// Loads a configuration file, substituting variables from the process environment.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors::new(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the configuration file: {error}"),
        }])
    })?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    load_str(&text, &path.display().to_string(), base_dir, &|name| {
        std::env::var(name).ok()
    })
}

/// Loads a configuration from text.
///
/// `file_name` is only used in error messages and [`SourceInfo`]; relative paths in the file are
/// resolved against `base_dir`; `env` looks up `${NAME}` variables.
pub fn load_str(
    text: &str,
    file_name: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    read_document(text, file_name, env, |value, diags| {
        let file = model::decode_file(value, diags);
        let settings = validate::settings(&file, base_dir, diags);
        let (table, mut summary) = compile::compile(&file.apis, diags);
        let table = with_stage_execution_logs(&table, &settings.stage_logging);
        summary.listeners = settings.listeners.len();
        Some(Loaded {
            settings,
            table: Arc::new(table),
            summary,
            source: SourceInfo {
                file: PathBuf::from(file_name),
                config_dir: base_dir.to_path_buf(),
            },
        })
    })
}

/// Reads one YAML document into a JSON value (positions kept, `${ENV}` substituted, duplicate
/// keys refused) and hands it to `decode` with the diagnostics that know its positions. Every
/// error, from a YAML syntax slip to `decode`'s own, comes back with file, line and column.
pub(crate) fn read_document<T>(
    text: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    decode: impl FnOnce(serde_json::Value, &mut Diagnostics<'_>) -> Option<T>,
) -> Result<T, ConfigErrors> {
    let root = yaml::parse(text).map_err(|error| {
        let index = PositionIndex::at_root(error.pos);
        let mut diags = Diagnostics::new(file_name, &index);
        diags.push_at("", error.pos, error.message);
        diags.into_errors()
    })?;
    let (index, duplicates) = PositionIndex::build(&root);
    let mut diags = Diagnostics::new(file_name, &index);
    for duplicate in duplicates {
        diags.push_at(
            &duplicate.path,
            duplicate.pos,
            format!(
                "duplicate key '{}'; each key may appear only once in a mapping",
                duplicate.key
            ),
        );
    }
    let value = yaml::to_value(&root, "", env, &mut diags);
    if diags.has_errors() {
        return Err(diags.into_errors());
    }
    match decode(value, &mut diags) {
        Some(decoded) => diags.finish(decoded),
        None => Err(diags.into_errors()),
    }
}

/// Gives every route its stage's execution-log settings, one shared `Arc` per stage (the shared
/// OFF value for stages that log nothing, so the data plane's check is one branch).
fn with_stage_execution_logs(table: &RouteTable, stages: &[StageLogging]) -> RouteTable {
    let per_stage: std::collections::HashMap<(&str, &str), Arc<ExecutionLogSettings>> = stages
        .iter()
        .map(|stage| {
            let settings = if stage.execution_log.level == ExecutionLogLevel::Off {
                ExecutionLogSettings::off()
            } else {
                Arc::new(stage.execution_log.clone())
            };
            ((stage.api.as_str(), stage.stage.as_str()), settings)
        })
        .collect();
    table.with_execution_logs(|route| {
        per_stage
            .get(&(&*route.api, &*route.stage))
            .cloned()
            .unwrap_or_else(ExecutionLogSettings::off)
    })
}

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn compiled_values_are_send_and_sync() {
        assert_send_sync::<super::Loaded>();
        assert_send_sync::<super::RouteTable>();
        assert_send_sync::<super::Route>();
        assert_send_sync::<super::Template>();
        assert_send_sync::<super::ConfigErrors>();
    }
}
