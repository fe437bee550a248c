//! The logging configuration of issue 4: access logs with `$context.*` templates and
//! destinations, execution logs, and the store's log groups with retention and metric filters.
//!
//! The top-level `access_log` and `execution_log` sections are the defaults of every stage; a
//! stage's own sections override them field by field. The top-level access log is also the log of
//! requests that matched no route. Everything here is decoded in `model`, checked in `access`,
//! `execution` and `groups`, and lands in [`Settings`](crate::Settings) as the types of `settings`.

mod access;
mod execution;
mod groups;
pub(crate) mod model;
pub(crate) mod settings;

use std::path::Path;

use crate::error::{Diagnostics, join_index, join_key};
use crate::model::FileSpec;
use settings::{AccessLogSettings, ExecutionLogSettings, LogsSettings, StageLogging};

/// The validated logging sections.
pub(crate) struct Logging {
    pub(crate) access_log: AccessLogSettings,
    pub(crate) execution_log: ExecutionLogSettings,
    pub(crate) stages: Vec<StageLogging>,
    pub(crate) logs: LogsSettings,
}

pub(crate) fn validate(file: &FileSpec, base_dir: &Path, diags: &mut Diagnostics<'_>) -> Logging {
    let mut files = access::FileRegistry::default();
    let access_log = access::top_level(&file.access_log, base_dir, &mut files, diags);
    let execution_log = execution::apply(
        Some(&file.execution_log),
        &ExecutionLogSettings::default(),
        "execution_log",
        diags,
    );
    let mut stages = Vec::new();
    for (i, api) in &file.apis {
        let stages_path = join_key(&join_index("apis", *i), "stages");
        for (s, stage) in api.spec.stages.iter().enumerate() {
            let path = join_index(&stages_path, s);
            stages.push(StageLogging {
                api: api.spec.name.clone(),
                stage: stage.name.clone(),
                access_log: access::stage(
                    stage.access_log.as_ref(),
                    &access_log,
                    &join_key(&path, "access_log"),
                    base_dir,
                    &mut files,
                    diags,
                ),
                execution_log: execution::apply(
                    stage.execution_log.as_ref(),
                    &execution_log,
                    &join_key(&path, "execution_log"),
                    diags,
                ),
            });
        }
    }
    Logging {
        access_log,
        execution_log,
        stages,
        logs: groups::logs(&file.logs, diags),
    }
}
