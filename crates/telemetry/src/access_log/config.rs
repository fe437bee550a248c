//! What the access-log writer is told to do: for each stage, a compiled format and the
//! destinations its lines go to. Built by the config crate, handed to the writer at start and
//! swapped whole on reload.
//!
//! Store log groups are named `access/{api}/{stage}`; requests that matched no route go to
//! [`UNROUTED_GROUP`]. Api and stage names are identifiers (no `/`), so the one-segment unrouted
//! name can never collide with an api's group.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::format::AccessLogFormat;

/// The store log group of requests that matched no route.
pub const UNROUTED_GROUP: &str = "access/_unrouted";

/// The store log group of one stage's access log.
pub fn access_log_group(api: &str, stage: &str) -> String {
    format!("access/{api}/{stage}")
}

/// The whole access-log configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessLogConfig {
    /// The top-level section: used for requests that matched no route, and for any stage the
    /// list does not name. `None` when it is disabled.
    pub default: Option<StageAccessLog>,
    /// One entry per api stage; `log: None` when the stage's access log is disabled.
    pub stages: Vec<StageAccessLogEntry>,
}

/// One stage's access log.
#[derive(Debug, Clone, PartialEq)]
pub struct StageAccessLogEntry {
    pub api: Arc<str>,
    pub stage: Arc<str>,
    pub log: Option<StageAccessLog>,
}

/// A format and where its lines go.
#[derive(Debug, Clone, PartialEq)]
pub struct StageAccessLog {
    pub format: Arc<AccessLogFormat>,
    pub destinations: LogDestinations,
}

/// Any combination of destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogDestinations {
    /// The embedded store, through the writer's [`LogSink`](super::LogSink).
    pub store: bool,
    /// Standard output.
    pub stdout: bool,
    /// Files, each with its rotation.
    pub files: Vec<FileDestination>,
}

impl LogDestinations {
    /// The default when a config names none: the store.
    pub fn store_only() -> Self {
        Self {
            store: true,
            ..Self::default()
        }
    }
}

/// A file destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDestination {
    pub path: PathBuf,
    pub rotation: Rotation,
}

/// When a log file is rotated and how many old files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write would take the file past this many bytes.
    pub max_size: Option<u64>,
    /// Rotate when the wall clock enters a new period of this length, aligned to the Unix epoch
    /// (so `1d` rotates at midnight UTC).
    pub every: Option<Duration>,
    /// Rotated files kept as `path.1` (newest) … `path.{keep}`; older ones are deleted.
    pub keep: u32,
}

impl Default for Rotation {
    /// No rotation; seven files kept if rotation is switched on.
    fn default() -> Self {
        Self {
            max_size: None,
            every: None,
            keep: 7,
        }
    }
}
