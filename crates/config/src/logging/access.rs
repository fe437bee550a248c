//! Validation of `access_log` sections: the format compiles (through the telemetry crate's
//! compiler, so the config refuses exactly what the writer could not render), destinations are
//! well formed, and a file shared by several stages has one rotation.
//!
//! A stage's section inherits each field it leaves out (`enabled`, `format`, `destinations`)
//! from the top-level section, whose own defaults are: enabled, the `gatehouse` format, the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_telemetry::access_log::{
    AccessLogFormat, FileDestination, LogDestinations, Rotation,
};
use serde_json::Value;

use super::model::{AccessLogSpec, FileDestinationSpec, LegacyDestination, StageAccessLogSpec};
use super::settings::AccessLogSettings;
use crate::error::{Diagnostics, join_index, join_key};
use crate::validate::resolve_path;

/// Checks that every file is rotated one way, wherever it is named.
#[derive(Default)]
pub(crate) struct FileRegistry {
    files: HashMap<PathBuf, (Rotation, String)>,
}

/// The top-level section, including the old `destination`/`path` form.
pub(crate) fn top_level(
    spec: &AccessLogSpec,
    base_dir: &Path,
    files: &mut FileRegistry,
    diags: &mut Diagnostics<'_>,
) -> AccessLogSettings {
    let path = "access_log";
    let mut settings = AccessLogSettings::default();
    if let Some(format) = &spec.format {
        settings.format = format_of(format, &join_key(path, "format"), diags);
    }
    if let Some(legacy) = spec.destination {
        if spec.destinations.is_some() || spec.enabled.is_some() {
            diags.error(
                &join_key(path, "destination"),
                "`destination` is the old single-destination form; use `destinations` (a list) and `enabled` instead of mixing them",
            );
        }
        return legacy_form(
            legacy,
            spec.path.as_deref(),
            settings,
            base_dir,
            files,
            diags,
        );
    }
    if spec.path.is_some() {
        diags.error(
            &join_key(path, "path"),
            "is only used when destination is file; remove it or set destination: file",
        );
    }
    settings.enabled = spec.enabled.unwrap_or(true);
    if let Some(list) = &spec.destinations {
        settings.destinations = destinations(
            list,
            &join_key(path, "destinations"),
            base_dir,
            files,
            diags,
        );
    }
    settings
}

fn legacy_form(
    legacy: LegacyDestination,
    file: Option<&str>,
    mut settings: AccessLogSettings,
    base_dir: &Path,
    files: &mut FileRegistry,
    diags: &mut Diagnostics<'_>,
) -> AccessLogSettings {
    let path_field = "access_log.path";
    settings.destinations = LogDestinations::default();
    match (legacy, file) {
        (LegacyDestination::File, Some(file)) if !file.is_empty() => {
            let destination = FileDestination {
                path: resolve_path(base_dir, file),
                rotation: Rotation::default(),
            };
            files.register(&destination, path_field, diags);
            settings.destinations.files.push(destination);
        }
        (LegacyDestination::File, _) => {
            diags.error(path_field, "is required when destination is file");
        }
        (_, Some(_)) => diags.error(
            path_field,
            "is only used when destination is file; remove it or set destination: file",
        ),
        (LegacyDestination::Stdout, None) => settings.destinations.stdout = true,
        (LegacyDestination::Off, None) => settings.enabled = false,
    }
    settings
}

/// A stage's section over the top-level one.
pub(crate) fn stage(
    spec: Option<&StageAccessLogSpec>,
    inherited: &AccessLogSettings,
    path: &str,
    base_dir: &Path,
    files: &mut FileRegistry,
    diags: &mut Diagnostics<'_>,
) -> AccessLogSettings {
    let Some(spec) = spec else {
        return inherited.clone();
    };
    AccessLogSettings {
        enabled: spec.enabled.unwrap_or(inherited.enabled),
        format: spec.format.as_ref().map_or_else(
            || Arc::clone(&inherited.format),
            |format| format_of(format, &join_key(path, "format"), diags),
        ),
        destinations: spec.destinations.as_ref().map_or_else(
            || inherited.destinations.clone(),
            |list| {
                destinations(
                    list,
                    &join_key(path, "destinations"),
                    base_dir,
                    files,
                    diags,
                )
            },
        ),
    }
}

fn format_of(text: &str, path: &str, diags: &mut Diagnostics<'_>) -> Arc<AccessLogFormat> {
    match AccessLogFormat::parse(text) {
        Ok(format) => Arc::new(format),
        Err(error) => {
            diags.error(path, error.to_string());
            Arc::new(AccessLogFormat::default())
        }
    }
}

const DESTINATION_HELP: &str = "expected `store`, `stdout` or `{ file: { path: ... } }`";

fn destinations(
    list: &[Value],
    path: &str,
    base_dir: &Path,
    files: &mut FileRegistry,
    diags: &mut Diagnostics<'_>,
) -> LogDestinations {
    let mut out = LogDestinations::default();
    if list.is_empty() {
        diags.error(
            path,
            "at least one destination is required; use `enabled: false` to turn the access log off",
        );
    }
    for (i, item) in list.iter().enumerate() {
        let item_path = join_index(path, i);
        match item {
            Value::String(name) if name == "store" || name == "stdout" => {
                let flag = if name == "store" {
                    &mut out.store
                } else {
                    &mut out.stdout
                };
                if *flag {
                    diags.error(&item_path, format!("`{name}` is listed twice"));
                }
                *flag = true;
            }
            Value::String(name) if name == "file" => diags.error(
                &item_path,
                "a file destination needs a path: `{ file: { path: access.log } }`",
            ),
            Value::String(name) => {
                diags.error(
                    &item_path,
                    format!("unknown destination '{name}', {DESTINATION_HELP}"),
                );
            }
            Value::Object(map) if map.len() == 1 && map.contains_key("file") => {
                let file_path = join_key(&item_path, "file");
                let Some(destination) = file_destination(&map["file"], &file_path, base_dir, diags)
                else {
                    continue;
                };
                if out.files.iter().any(|f| f.path == destination.path) {
                    diags.error(
                        &join_key(&file_path, "path"),
                        format!("file '{}' is listed twice", destination.path.display()),
                    );
                    continue;
                }
                files.register(&destination, &file_path, diags);
                out.files.push(destination);
            }
            _ => diags.error(&item_path, format!("not a destination; {DESTINATION_HELP}")),
        }
    }
    out
}

fn file_destination(
    value: &Value,
    path: &str,
    base_dir: &Path,
    diags: &mut Diagnostics<'_>,
) -> Option<FileDestination> {
    let spec: FileDestinationSpec = match value {
        Value::String(file) => FileDestinationSpec {
            path: file.clone(),
            max_size: None,
            rotate_every: None,
            keep: None,
        },
        _ => crate::model::decode(value.clone(), path, diags)?,
    };
    if spec.path.trim().is_empty() {
        diags.error(&join_key(path, "path"), "must not be empty");
        return None;
    }
    let mut rotation = Rotation::default();
    if let Some(size) = &spec.max_size {
        match parse_size(&size.0) {
            Some(bytes) if bytes >= 1024 => rotation.max_size = Some(bytes),
            _ => diags.error(
                &join_key(path, "max_size"),
                format!("invalid size '{}': expected a size of at least 1KiB such as 100MB, 512KiB or 1GB", size.0),
            ),
        }
    }
    if let Some(every) = &spec.rotate_every {
        match parse_period(every) {
            Some(period) => rotation.every = Some(period),
            None => diags.error(
                &join_key(path, "rotate_every"),
                format!("invalid period '{every}': expected minutes, hours or days such as 30m, 1h or 1d"),
            ),
        }
    }
    if let Some(keep) = spec.keep {
        if keep > 1000 {
            diags.error(&join_key(path, "keep"), "must be at most 1000");
        }
        rotation.keep = keep;
    }
    Some(FileDestination {
        path: resolve_path(base_dir, &spec.path),
        rotation,
    })
}

impl FileRegistry {
    fn register(&mut self, destination: &FileDestination, path: &str, diags: &mut Diagnostics<'_>) {
        match self.files.get(&destination.path) {
            Some((rotation, first)) if *rotation != destination.rotation => diags.error(
                path,
                format!(
                    "file '{}' is also written by {first} with a different rotation; give every use of a file the same max_size, rotate_every and keep",
                    destination.path.display()
                ),
            ),
            Some(_) => {}
            None => {
                self.files.insert(
                    destination.path.clone(),
                    (destination.rotation.clone(), path.to_owned()),
                );
            }
        }
    }
}

/// `100MB` (decimal), `512KiB` (binary), `1048576` (bytes).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// `30m`, `1h`, `1d`.
fn parse_period(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let number: u64 = number.parse().ok().filter(|n| *n >= 1)?;
    let seconds = match unit {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_periods_parse() {
        for (text, bytes) in [
            ("100MB", Some(100_000_000)),
            ("512KiB", Some(524_288)),
            ("1 GiB", Some(1 << 30)),
            ("2048", Some(2048)),
            ("10 parsecs", None),
            ("MB", None),
        ] {
            assert_eq!(parse_size(text), bytes, "{text}");
        }
        for (text, seconds) in [
            ("30m", Some(1800)),
            ("1h", Some(3600)),
            ("1d", Some(86_400)),
            ("0h", None),
            ("1w", None),
            ("", None),
        ] {
            assert_eq!(
                parse_period(text),
                seconds.map(Duration::from_secs),
                "{text}"
            );
        }
    }
}
