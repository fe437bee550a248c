//! The `alarms` section: CloudWatch-style metric alarms, checked here so that every mistake is
//! reported with file, line and field like the rest of the config.
//!
//! Metric and statistic names are checked against the telemetry crate's own lists, so the config
//! accepts exactly what the metrics pipeline produces. An alarm compares with either a static
//! `threshold` or an `anomaly` band learned from the metric's history (docs/alarms.md).

use std::collections::{BTreeMap, HashSet};

use gatehouse_telemetry::metrics::{Comparison, Metric, MissingData, Statistic};
use serde::Deserialize;

use crate::error::{Diagnostics, join_index, join_key};

/// The longest anomaly training window in days (the store keeps minute rows 15 days).
const MAX_TRAINING_DAYS: u32 = 14;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmSpecDoc {
    name: String,
    metric: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    statistic: Option<String>,
    #[serde(default = "default_period")]
    period_seconds: u32,
    threshold: Option<f64>,
    anomaly: Option<AnomalyDoc>,
    comparison: Option<Comparison>,
    #[serde(default = "one")]
    evaluation_periods: u32,
    datapoints_to_alarm: Option<u32>,
    #[serde(default)]
    treat_missing_data: MissingData,
    min_sample_count: Option<u64>,
    webhook: Option<WebhookDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookDoc {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyDoc {
    #[serde(default = "default_band_width")]
    band_width: f64,
    #[serde(default = "default_training_days")]
    training_days: u32,
    min_training_days: Option<u32>,
}

fn default_band_width() -> f64 {
    2.0
}

fn default_training_days() -> u32 {
    MAX_TRAINING_DAYS
}

fn default_period() -> u32 {
    60
}

fn one() -> u32 {
    1
}

/// A validated alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSettings {
    pub name: String,
    pub metric: String,
    /// `api`, `stage`, `route`, `method`: the series the alarm watches (none = all traffic).
    pub dimensions: BTreeMap<String, String>,
    pub statistic: Statistic,
    pub period_secs: u32,
    /// The static threshold; exactly one of `threshold` and `anomaly` is set.
    pub threshold: Option<f64>,
    /// The anomaly-detection band's settings.
    pub anomaly: Option<AnomalySettings>,
    pub comparison: Comparison,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub treat_missing_data: MissingData,
    /// For percentiles: datapoints with fewer samples count as missing.
    pub min_sample_count: Option<u64>,
    pub webhook: Option<WebhookSettings>,
}

/// An anomaly-detection band: learned from the same time of day on previous days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalySettings {
    /// Robust standard deviations either side of the median (default 2).
    pub band_width: f64,
    /// Days of history the band is learned from (default and at most 14).
    pub training_days: u32,
    /// Fewer days of history make a datapoint missing (default 2, at most `training_days`).
    pub min_training_days: u32,
}

/// Where state changes are POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: http::Uri,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// What the admin API shows instead of a webhook header's value, which often holds a secret.
pub const REDACTED: &str = "<redacted>";

const DIMENSIONS: [&str; 4] = ["api", "stage", "route", "method"];

/// Validates the decoded alarms; invalid ones are reported and left out.
pub(crate) fn validate(
    docs: Vec<(usize, AlarmSpecDoc)>,
    custom_metrics: &[String],
    diags: &mut Diagnostics<'_>,
) -> Vec<AlarmSettings> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (index, doc) in docs {
        let path = join_index("alarms", index);
        let duplicate = !names.insert(doc.name.clone());
        if duplicate {
            diags.error(
                &join_key(&path, "name"),
                format!("alarm name '{}' is used twice", doc.name),
            );
        }
        let alarm = validate_one(doc, &path, Some(custom_metrics), diags);
        if !duplicate {
            out.extend(alarm);
        }
    }
    out
}

/// Whether `name` can be a custom metric's name (letters, digits, `_`, `-`, `.`).
fn is_custom_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The names an alarm may not have: `GET /admin/alarms/history` is the history endpoint, so an
/// alarm of that name could not be read or written through the admin API.
const RESERVED_NAMES: [&str; 1] = ["history"];

/// Validates one alarm whose fields are under `path` (`alarms[3]` in the file, empty for the
/// admin API's body); `None` if it is invalid, with the reasons in `diags`.
///
/// A metric that is not one of the gateway's own is a custom metric published by a metric
/// filter: in a file it must be one the file's `logs.metric_filters` publish (`custom_metrics`);
/// through the admin API (`None`) any such name is taken, since filters may change on reload.
pub(crate) fn validate_one(
    doc: AlarmSpecDoc,
    path: &str,
    custom_metrics: Option<&[String]>,
    diags: &mut Diagnostics<'_>,
) -> Option<AlarmSettings> {
    let before = diags.error_count();
    let field = |name: &str| join_key(path, name);
    if doc.name.is_empty()
        || !doc
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        diags.error(
            &field("name"),
            "must be non-empty and use only letters, digits, '-', '_' and '.'",
        );
    } else if RESERVED_NAMES.contains(&doc.name.as_str()) {
        diags.error(
            &field("name"),
            format!(
                "'{}' is reserved (GET /admin/alarms/history is the alarm history); choose another name",
                doc.name
            ),
        );
    }
    let metric = Metric::from_name(&doc.metric);
    let custom_ok = match custom_metrics {
        Some(declared) => declared.contains(&doc.metric),
        None => is_custom_metric_name(&doc.metric),
    };
    if metric.is_none() && !custom_ok {
        let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        diags.error(
            &field("metric"),
            format!(
                "unknown metric '{}'; known: {}, or a metric that logs.metric_filters publishes",
                doc.metric,
                known.join(", ")
            ),
        );
    }
    for key in doc.dimensions.keys() {
        if !DIMENSIONS.contains(&key.as_str()) {
            diags.error(
                &join_key(&field("dimensions"), key),
                format!("unknown dimension '{key}'; use api, stage, route and method"),
            );
        }
    }
    let statistic = match &doc.statistic {
        Some(text) => match text.parse::<Statistic>() {
            Ok(statistic) => Some(statistic),
            Err(error) => {
                diags.error(&field("statistic"), error.to_string());
                None
            }
        },
        None => Some(match metric {
            Some(metric) if metric.unit() == "Count" => Statistic::Sum,
            Some(_) => Statistic::Average,
            // A metric filter counts matching events unless it publishes a field's value.
            None => Statistic::Sum,
        }),
    };
    if doc.period_seconds == 0 || !doc.period_seconds.is_multiple_of(60) {
        diags.error(
            &field("period_seconds"),
            "must be a positive multiple of 60",
        );
    }
    let (anomaly, comparison) = condition(&doc, doc.period_seconds, path, diags);
    if doc.evaluation_periods == 0 {
        diags.error(&field("evaluation_periods"), "must be at least 1");
    }
    let datapoints_to_alarm = doc.datapoints_to_alarm.unwrap_or(doc.evaluation_periods);
    if datapoints_to_alarm == 0 || datapoints_to_alarm > doc.evaluation_periods {
        diags.error(
            &field("datapoints_to_alarm"),
            format!(
                "must be between 1 and evaluation_periods ({})",
                doc.evaluation_periods
            ),
        );
    }
    if u64::from(doc.evaluation_periods) * u64::from(doc.period_seconds) > 86_400 {
        diags.error(
            &field("evaluation_periods"),
            "evaluation_periods × period_seconds must be at most one day",
        );
    }
    let webhook = doc
        .webhook
        .and_then(|hook| webhook(hook, &field("webhook"), diags));
    let (Some(statistic), Some(comparison)) = (statistic, comparison) else {
        return None;
    };
    if diags.error_count() != before {
        return None;
    }
    Some(AlarmSettings {
        name: doc.name,
        metric: doc.metric,
        dimensions: doc.dimensions,
        statistic,
        period_secs: doc.period_seconds,
        threshold: doc.threshold,
        anomaly,
        comparison,
        evaluation_periods: doc.evaluation_periods,
        datapoints_to_alarm,
        treat_missing_data: doc.treat_missing_data,
        min_sample_count: doc.min_sample_count,
        webhook,
    })
}

/// Checks `threshold` / `anomaly` / `comparison`: exactly one of the first two, and a
/// comparison that fits it (band comparisons only with `anomaly`, where one is the default).
fn condition(
    doc: &AlarmSpecDoc,
    period_secs: u32,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> (Option<AnomalySettings>, Option<Comparison>) {
    let field = |name: &str| join_key(path, name);
    let anomaly_doc = match (doc.threshold, &doc.anomaly) {
        (None, None) => {
            diags.error(
                path,
                "an alarm needs either 'threshold' (a static threshold) or 'anomaly' (a band learned from the metric's history)",
            );
            return (None, None);
        }
        (Some(_), Some(_)) => {
            diags.key_error(
                &field("anomaly"),
                "cannot be combined with 'threshold'; give one of them",
            );
            return (None, None);
        }
        (Some(threshold), None) => {
            if !threshold.is_finite() {
                diags.error(&field("threshold"), "must be a finite number");
            }
            let comparison = match doc.comparison {
                None => {
                    diags.error(path, "'comparison' is required with 'threshold'");
                    None
                }
                Some(comparison) if comparison.is_band() => {
                    diags.error(
                        &field("comparison"),
                        format!(
                            "{comparison:?} compares with an anomaly band; with 'threshold' use GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold or LessThanOrEqualToThreshold"
                        ),
                    );
                    None
                }
                Some(comparison) => Some(comparison),
            };
            return (None, comparison);
        }
        (None, Some(anomaly)) => anomaly,
    };
    let comparison = match doc
        .comparison
        .unwrap_or(Comparison::LessThanLowerOrGreaterThanUpperThreshold)
    {
        comparison if comparison.is_band() => Some(comparison),
        comparison => {
            diags.error(
                &field("comparison"),
                format!(
                    "{comparison:?} compares with a threshold; with 'anomaly' use LessThanLowerOrGreaterThanUpperThreshold (the default), GreaterThanUpperThreshold or LessThanLowerThreshold"
                ),
            );
            None
        }
    };
    let at = |name: &str| join_key(&field("anomaly"), name);
    let before = diags.error_count();
    if !(anomaly_doc.band_width.is_finite() && anomaly_doc.band_width > 0.0) {
        diags.error(&at("band_width"), "must be a positive number");
    }
    let training_days = anomaly_doc.training_days;
    if training_days == 0 || training_days > MAX_TRAINING_DAYS {
        diags.error(
            &at("training_days"),
            format!("must be between 1 and {MAX_TRAINING_DAYS}"),
        );
    }
    let min_training_days = anomaly_doc
        .min_training_days
        .unwrap_or(2.min(training_days));
    if min_training_days == 0 || min_training_days > training_days {
        diags.error(
            &at("min_training_days"),
            format!("must be between 1 and training_days ({training_days})"),
        );
    }
    if period_secs != 0 && 86_400 % period_secs != 0 {
        diags.error(
            &field("period_seconds"),
            "must divide one day (86400) for an anomaly alarm, which compares with the same time on earlier days",
        );
    }
    let anomaly = (diags.error_count() == before).then_some(AnomalySettings {
        band_width: anomaly_doc.band_width,
        training_days,
        min_training_days,
    });
    (anomaly, comparison)
}

fn webhook(doc: WebhookDoc, path: &str, diags: &mut Diagnostics<'_>) -> Option<WebhookSettings> {
    let url = match doc.url.parse::<http::Uri>() {
        Ok(url)
            if matches!(url.scheme_str(), Some("http" | "https")) && url.authority().is_some() =>
        {
            Some(url)
        }
        _ => {
            diags.error(
                &join_key(path, "url"),
                format!("'{}' is not an absolute http:// or https:// URL", doc.url),
            );
            None
        }
    };
    let mut headers = Vec::new();
    for (name, value) in doc.headers {
        let at = join_key(&join_key(path, "headers"), &name);
        if value == REDACTED {
            diags.error(
                &at,
                format!("'{REDACTED}' stands for a value the admin API does not show; give the header's real value"),
            );
            continue;
        }
        match (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => diags.error(&at, "not a valid header name and value"),
        }
    }
    Some(WebhookSettings { url: url?, headers })
}
