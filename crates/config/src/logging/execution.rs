//! Validation of `execution_log` sections. A stage inherits what it leaves out from the top-level
//! section; its redaction lists add to the top-level ones rather than replace them, so a stage can
//! never un-redact what the top level hides, and the credentials headers are always redacted.

use super::model::{ExecutionLogSpec, LevelSpec};
use super::settings::{ALWAYS_REDACTED_HEADERS, ExecutionLogLevel, ExecutionLogSettings};
use crate::error::{Diagnostics, join_index, join_key};

/// The largest `max_body_bytes`: execution logs are for reading, not for archiving payloads.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Applies `spec` (a top-level or stage section at `path`) over `inherited`.
pub(crate) fn apply(
    spec: Option<&ExecutionLogSpec>,
    inherited: &ExecutionLogSettings,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> ExecutionLogSettings {
    let mut settings = inherited.clone();
    let Some(spec) = spec else {
        return settings;
    };
    if let Some(level) = spec.level {
        settings.level = match level {
            LevelSpec::Off => ExecutionLogLevel::Off,
            LevelSpec::Error => ExecutionLogLevel::Error,
            LevelSpec::Info => ExecutionLogLevel::Info,
        };
    }
    if let Some(data_trace) = spec.data_trace {
        settings.data_trace = data_trace;
    }
    if let Some(max) = spec.max_body_bytes {
        if max == 0 || max > MAX_BODY_BYTES {
            diags.error(
                &join_key(path, "max_body_bytes"),
                format!("must be from 1 to {MAX_BODY_BYTES}"),
            );
        }
        settings.max_body_bytes = max;
    }
    let headers_path = join_key(path, "redact_headers");
    for (i, name) in spec.redact_headers.iter().flatten().enumerate() {
        match http::HeaderName::try_from(name.trim()) {
            Ok(header)
                if !settings.redact_headers.contains(&header)
                    && !ALWAYS_REDACTED_HEADERS.contains(&header) =>
            {
                settings.redact_headers.push(header);
            }
            Ok(_) => {}
            Err(_) => diags.error(
                &join_index(&headers_path, i),
                format!("invalid header name '{name}'"),
            ),
        }
    }
    let fields_path = join_key(path, "redact_json_fields");
    for (i, field) in spec.redact_json_fields.iter().flatten().enumerate() {
        if field.trim().is_empty() {
            diags.error(&join_index(&fields_path, i), "must not be empty");
        } else if !settings.redact_json_fields.contains(field) {
            settings.redact_json_fields.push(field.clone());
        }
    }
    settings
}
