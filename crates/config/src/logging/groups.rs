//! Validation of the `logs` section: default and per-group retention, and metric filters.
//!
//! Filter expressions are kept as text: the log query crate parses them, and the binary checks
//! them when it wires the filters in, so this crate does not depend on that language.

use std::collections::HashMap;
use std::time::Duration;

use super::model::LogsSpec;
use super::settings::{LogGroupSettings, LogsSettings, MetricFilterSettings, MetricValue};
use crate::error::{Diagnostics, join_index, join_key};

/// The dimensions a metric filter may set: the store's series keys.
pub const METRIC_FILTER_DIMENSIONS: [&str; 4] = ["api", "stage", "route", "method"];

/// CloudWatch allows three dimensions per metric filter.
const MAX_DIMENSIONS: usize = 3;

pub(crate) fn logs(spec: &LogsSpec, diags: &mut Diagnostics<'_>) -> LogsSettings {
    let days = |n: u32| Duration::from_secs(u64::from(n) * 86_400);
    if spec.retention_days == 0 {
        diags.error("logs.retention_days", "must be at least 1 day");
    }
    let mut groups = Vec::new();
    for (pattern, group) in &spec.groups {
        let path = join_key("logs.groups", pattern);
        if !is_group_pattern(pattern) {
            diags.key_error(
                &path,
                "a log group is a name such as access/petstore/prod, using letters, digits and '_', '-', '.', '/', with '*' as a wildcard",
            );
        }
        if group.retention_days == 0 {
            diags.error(&join_key(&path, "retention_days"), "must be at least 1 day");
        }
        groups.push(LogGroupSettings {
            pattern: pattern.clone(),
            retention: days(group.retention_days),
        });
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut metric_filters = Vec::new();
    for (i, filter) in spec.metric_filters.iter().enumerate() {
        let path = join_index("logs.metric_filters", i);
        let field = |name: &str| join_key(&path, name);
        if !is_metric_name(&filter.name) {
            diags.error(
                &field("name"),
                "must be non-empty and use only letters, digits, '_', '-' and '.'",
            );
        } else if let Some(first) = names.insert(&filter.name, i) {
            diags.error(
                &field("name"),
                format!(
                    "metric filter '{}' is already defined at logs.metric_filters[{first}]",
                    filter.name
                ),
            );
        }
        if !is_group_pattern(&filter.group) {
            diags.error(
                &field("group"),
                "must be a log group name or pattern such as access/* or access/petstore/prod",
            );
        }
        if filter.filter.trim().is_empty() {
            diags.error(&field("filter"), "must not be empty (e.g. 'status >= 500')");
        } else if let Err(error) = gatehouse_logquery::parse_filter(&filter.filter) {
            diags.error(
                &field("filter"),
                format!(
                    "invalid filter expression: {} at column {}",
                    error.message, error.column
                ),
            );
        }
        if !is_metric_name(&filter.metric) || filter.metric.len() > 255 {
            diags.error(
                &field("metric"),
                "must be 1 to 255 letters, digits, '_', '-' and '.'",
            );
        }
        let value = match metric_value(&filter.value.0) {
            Some(value) => value,
            None => {
                diags.error(
                    &field("value"),
                    format!(
                        "'{}' is neither a number nor a field reference such as $responseLatency",
                        filter.value.0
                    ),
                );
                MetricValue::Constant(1.0)
            }
        };
        if filter.dimensions.len() > MAX_DIMENSIONS {
            diags.error(
                &field("dimensions"),
                format!("at most {MAX_DIMENSIONS} dimensions"),
            );
        }
        let mut dimensions = Vec::new();
        for (name, source) in &filter.dimensions {
            let dim_path = join_key(&field("dimensions"), name);
            if !METRIC_FILTER_DIMENSIONS.contains(&name.as_str()) {
                diags.key_error(
                    &dim_path,
                    format!(
                        "unknown dimension '{name}'; metric filters publish the dimensions {}",
                        METRIC_FILTER_DIMENSIONS.join(", ")
                    ),
                );
            }
            match metric_value(source) {
                Some(MetricValue::Field(from)) => dimensions.push((name.clone(), from)),
                _ => diags.error(
                    &dim_path,
                    format!("'{source}' must be a field reference such as $stage (dimension values come from the event)"),
                ),
            }
        }
        metric_filters.push(MetricFilterSettings {
            name: filter.name.clone(),
            group: filter.group.clone(),
            filter: filter.filter.clone(),
            metric: filter.metric.clone(),
            value,
            dimensions,
        });
    }
    LogsSettings {
        retention: days(spec.retention_days),
        groups,
        metric_filters,
    }
}

/// `1`, `0.5` or `$field.path`.
fn metric_value(text: &str) -> Option<MetricValue> {
    let text = text.trim();
    if let Some(field) = text.strip_prefix('$') {
        let valid = !field.is_empty()
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        return valid.then(|| MetricValue::Field(field.to_owned()));
    }
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(MetricValue::Constant)
}

fn is_group_pattern(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'*'))
}

fn is_metric_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
