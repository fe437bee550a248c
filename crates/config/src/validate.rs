//! Validation of everything outside the apis: listeners, limits, admin, storage (logging is in
//! `logging`).
//!
//! Turns the decoded [`FileSpec`] into [`Settings`], applying defaults and units, resolving relative
//! paths against the config file's directory, and recording one positioned error per broken rule.
//! TLS files are checked for existence and readability only; parsing PEM is the proxy's job.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Diagnostics, join_index, join_key};
use crate::model::{DEFAULT_ADMIN_BIND, DEFAULT_LISTENER_BIND, FileSpec, LimitsSpec};
use crate::settings::{
    AdminSettings, Limits, ListenerSettings, MetricsSettings, Secret, Settings, TelemetrySettings,
    TlsFiles,
};

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Validates the non-api sections. The result is meaningful only if no error was recorded.
pub(crate) fn settings(file: &FileSpec, base_dir: &Path, diags: &mut Diagnostics<'_>) -> Settings {
    let mut binds: HashMap<SocketAddr, String> = HashMap::new();
    let listeners = listeners(file, base_dir, &mut binds, diags);
    let admin = file.admin.as_ref().map(|admin| {
        let bind = socket_addr(&admin.bind, "admin.bind", diags);
        // Port 0 asks the OS for a free port, so two such binds never collide.
        if let Some(bind) = bind
            && bind.port() != 0
            && let Some(other) = binds.get(&bind)
        {
            diags.error("admin.bind", format!("address {bind} is already used by {other}"));
        }
        let token = &admin.token.0;
        if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
            diags.error(
                "admin.token",
                format!(
                    "must be at least {MIN_ADMIN_TOKEN_CHARS} characters long (got {}); generate one with `openssl rand -hex 32`",
                    token.chars().count()
                ),
            );
        }
        AdminSettings {
            bind: bind.unwrap_or_else(|| default_addr(DEFAULT_ADMIN_BIND)),
            token: Secret::new(token.clone()),
        }
    });
    let data_dir = match file.data_dir.as_deref() {
        Some("") => {
            diags.error(
                "data_dir",
                "must not be empty; leave it out for the default ./data",
            );
            PathBuf::new()
        }
        Some(dir) => resolve_path(base_dir, dir),
        None => resolve_path(base_dir, "./data"),
    };
    if file.telemetry.bus_capacity == 0 {
        diags.error("telemetry.bus_capacity", "must be at least 1");
    }
    let metrics = &file.metrics;
    if metrics.max_series == 0 {
        diags.error("metrics.max_series", "must be at least 1");
    }
    let retention = &metrics.retention_days;
    for (field, days) in [
        ("metrics.retention_days.minute", retention.minute),
        (
            "metrics.retention_days.five_minutes",
            retention.five_minutes,
        ),
        ("metrics.retention_days.hour", retention.hour),
    ] {
        if days == 0 {
            diags.error(field, "must be at least 1 day");
        }
    }
    let days = |n: u32| std::time::Duration::from_secs(u64::from(n) * 86_400);
    let logging = crate::logging::validate(file, base_dir, diags);
    let custom_metrics: Vec<String> = logging
        .logs
        .metric_filters
        .iter()
        .map(|filter| filter.metric.clone())
        .collect();
    Settings {
        listeners,
        limits: limits(&file.limits, diags),
        admin,
        data_dir,
        access_log: logging.access_log,
        execution_log: logging.execution_log,
        stage_logging: logging.stages,
        logs: logging.logs,
        telemetry: TelemetrySettings {
            bus_capacity: file.telemetry.bus_capacity,
        },
        alarms: crate::alarms::validate(file.alarms.clone(), &custom_metrics, diags),
        tracing: crate::tracing_config::validate(&file.tracing, diags),
        metrics: MetricsSettings {
            enabled: metrics.enabled,
            max_series: metrics.max_series,
            retention_minute: days(retention.minute),
            retention_five_minutes: days(retention.five_minutes),
            retention_hour: days(retention.hour),
            otlp: metrics
                .otlp
                .as_ref()
                .and_then(|otlp| otlp_settings(otlp, "metrics.otlp", diags)),
        },
    }
}

fn listeners(
    file: &FileSpec,
    base_dir: &Path,
    binds: &mut HashMap<SocketAddr, String>,
    diags: &mut Diagnostics<'_>,
) -> Vec<ListenerSettings> {
    let Some(specs) = &file.listeners else {
        return vec![ListenerSettings {
            name: "default".to_owned(),
            bind: default_addr(DEFAULT_LISTENER_BIND),
            tls: None,
            http2: true,
        }];
    };
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs {
        let path = join_index("listeners", *i);
        let name_path = join_key(&path, "name");
        if spec.name.trim().is_empty() {
            diags.error(&name_path, "must not be empty");
        } else if let Some(first) = names.insert(&spec.name, *i) {
            diags.error(
                &name_path,
                format!(
                    "listener name '{}' is already used by listeners[{first}]",
                    spec.name
                ),
            );
        }
        let bind_path = join_key(&path, "bind");
        let bind = socket_addr(&spec.bind, &bind_path, diags);
        if let Some(bind) = bind.filter(|b| b.port() != 0) {
            if let Some(other) = binds.get(&bind) {
                diags.error(
                    &bind_path,
                    format!("address {bind} is already used by {other}"),
                );
            } else {
                binds.insert(bind, format!("listeners[{i}]"));
            }
        }
        let tls = spec.tls.as_ref().map(|tls| TlsFiles {
            cert_file: readable_file(
                base_dir,
                &tls.cert_file,
                &join_key(&path, "tls.cert_file"),
                diags,
            ),
            key_file: readable_file(
                base_dir,
                &tls.key_file,
                &join_key(&path, "tls.key_file"),
                diags,
            ),
        });
        out.push(ListenerSettings {
            name: spec.name.clone(),
            bind: bind.unwrap_or_else(|| default_addr(DEFAULT_LISTENER_BIND)),
            tls,
            http2: spec.http2,
        });
    }
    out
}

fn limits(spec: &LimitsSpec, diags: &mut Diagnostics<'_>) -> Limits {
    for (field, value) in [
        ("max_payload_bytes", spec.max_payload_bytes),
        ("max_header_bytes", spec.max_header_bytes as u64),
        ("header_read_timeout_ms", spec.header_read_timeout_ms),
        ("idle_timeout_ms", spec.idle_timeout_ms),
        ("max_connections", spec.max_connections as u64),
    ] {
        if value == 0 {
            diags.error(&join_key("limits", field), "must be at least 1");
        }
    }
    Limits {
        max_payload_bytes: spec.max_payload_bytes,
        max_header_bytes: spec.max_header_bytes,
        header_read_timeout: Duration::from_millis(spec.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(spec.idle_timeout_ms),
        max_connections: spec.max_connections,
    }
}

fn socket_addr(text: &str, path: &str, diags: &mut Diagnostics<'_>) -> Option<SocketAddr> {
    match text.trim().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            diags.error(
                path,
                format!("invalid socket address '{text}': expected ip:port such as 127.0.0.1:8080 or [::1]:8080"),
            );
            None
        }
    }
}

fn default_addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Joins a relative path to the config directory; absolute paths are kept.
pub(crate) fn resolve_path(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let path = path.strip_prefix(".").unwrap_or(path);
    base_dir.join(path)
}

fn readable_file(base_dir: &Path, file: &str, path: &str, diags: &mut Diagnostics<'_>) -> PathBuf {
    let resolved = resolve_path(base_dir, file);
    if let Err(error) = std::fs::File::open(&resolved) {
        diags.error(
            path,
            format!("cannot read '{}': {error}", resolved.display()),
        );
    } else if resolved.is_dir() {
        diags.error(
            path,
            format!(
                "'{}' is a directory, expected a PEM file",
                resolved.display()
            ),
        );
    }
    resolved
}

/// Validates an OTLP/HTTP export section (`metrics.otlp` or `tracing.otlp`, named by `section`).
pub(crate) fn otlp_settings(
    spec: &crate::model::OtlpSpec,
    section: &str,
    diags: &mut Diagnostics<'_>,
) -> Option<crate::settings::OtlpSettings> {
    let endpoint = match spec.endpoint.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() =>
        {
            Some(uri)
        }
        _ => {
            diags.error(
                &join_key(section, "endpoint"),
                format!("'{}' is not an absolute http:// or https:// URL (e.g. http://127.0.0.1:4318/{})", spec.endpoint, if section.starts_with("tracing") { "v1/traces" } else { "v1/metrics" }),
            );
            None
        }
    };
    if spec.timeout_ms == 0 {
        diags.error(&join_key(section, "timeout_ms"), "must be at least 1");
    }
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        match (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => diags.error(
                &join_key(&join_key(section, "headers"), name),
                "not a valid header name and value",
            ),
        }
    }
    Some(crate::settings::OtlpSettings {
        endpoint: endpoint?,
        headers,
        timeout: std::time::Duration::from_millis(spec.timeout_ms),
    })
}
