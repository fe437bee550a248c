//! What an alarm watches and when it fires: [`AlarmSpec`] with CloudWatch's settings (period,
//! statistic, a static threshold or an anomaly-detection band and the comparison, M of N
//! datapoints, missing-data treatment), its validation, and the three alarm states.
//!
//! Names follow CloudWatch's `PutMetricAlarm` so that people who know it recognise them
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html>).

use std::fmt;
use std::str::FromStr;

pub use gatehouse_telemetry::metrics::{Comparison, MissingData, UnknownName};
use gatehouse_telemetry::metrics::{Dimensions, Statistic};

use crate::anomaly::{AnomalySpec, MAX_TRAINING_DAYS, SEASON_SECS};

/// The longest an alarm may look back, `evaluation_periods × period_secs`: CloudWatch's one day.
pub const MAX_EVALUATION_SECS: u64 = 24 * 60 * 60;

/// One metric alarm.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmSpec {
    /// Unique among alarms; the key of its state and history.
    pub name: String,
    /// The metric name, e.g. `5XXError`.
    pub metric: String,
    /// The series, matched exactly; `Dimensions::default()` is all traffic.
    pub dimensions: Dimensions,
    pub statistic: Statistic,
    /// The length of one datapoint; a positive multiple of 60.
    pub period_secs: u32,
    /// The static threshold; exactly one of `threshold` and `anomaly` is set.
    pub threshold: Option<f64>,
    /// The anomaly-detection band learned from the metric's history.
    pub anomaly: Option<AnomalySpec>,
    /// A threshold comparison with `threshold`, a band comparison with `anomaly`.
    pub comparison: Comparison,
    /// N: how many of the most recent datapoints are evaluated.
    pub evaluation_periods: u32,
    /// M ≤ N: how many of them must breach for the alarm to go to `ALARM`.
    pub datapoints_to_alarm: u32,
    pub treat_missing_data: MissingData,
    /// A datapoint with fewer samples is treated as missing. `None` takes the default of
    /// [`default_min_sample_count`] (only percentiles have one); `Some(0)` evaluates every
    /// datapoint, CloudWatch's "evaluate anyway".
    pub min_sample_count: Option<u64>,
    /// Where transitions are posted, if anywhere.
    pub webhook: Option<WebhookSpec>,
}

/// A webhook that receives every state transition of an alarm as a JSON POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSpec {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers, e.g. an authorization token.
    pub headers: Vec<(String, String)>,
}

/// The state of an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's name: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlarmState {
    type Err = UnknownName;

    /// Parses the name `as_str` gives, ignoring ASCII case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const ALL: [AlarmState; 3] = [
            AlarmState::Ok,
            AlarmState::Alarm,
            AlarmState::InsufficientData,
        ];
        ALL.into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownName::new("alarm state", text, &ALL.map(AlarmState::as_str)))
    }
}

/// The default minimum sample count of a statistic, CloudWatch's rule for percentile alarms on
/// low-sample data: a pNN datapoint needs at least `10 / (1 − p)` samples for p ≥ 0.5 and
/// `10 / p` below that (1000 for p99, 10 000 for p99.9, 20 for p50, 100 for p10), rounded up.
/// Other statistics have no minimum (`0`).
pub fn default_min_sample_count(statistic: Statistic) -> u64 {
    let Statistic::Percentile(percent) = statistic else {
        return 0;
    };
    let p = percent / 100.0;
    let needed = if p >= 0.5 { 10.0 / (1.0 - p) } else { 10.0 / p };
    // 10 / (1 − 0.99) is 1000.000…01 in floating point; shave the rounding error before ceil.
    (needed - 1e-6).ceil() as u64
}

impl AlarmSpec {
    /// The minimum sample count in effect: the explicit one or the statistic's default.
    pub fn effective_min_sample_count(&self) -> u64 {
        self.min_sample_count
            .unwrap_or_else(|| default_min_sample_count(self.statistic))
    }

    /// Checks the settings; the error names the alarm and the setting and says what is allowed.
    pub fn validate(&self) -> Result<(), SpecError> {
        let invalid = |setting: &'static str, problem: String| SpecError::Invalid {
            alarm: self.name.clone(),
            setting,
            problem,
        };
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "must be non-empty and without control characters".into(),
            ));
        }
        if self.metric.is_empty() {
            return Err(invalid("metric", "must be non-empty".into()));
        }
        if self.period_secs == 0 || !self.period_secs.is_multiple_of(60) {
            return Err(invalid(
                "period",
                format!(
                    "is {}; it must be a positive multiple of 60 seconds",
                    self.period_secs
                ),
            ));
        }
        if self.evaluation_periods == 0 {
            return Err(invalid("evaluation_periods", "must be at least 1".into()));
        }
        let span = u64::from(self.evaluation_periods) * u64::from(self.period_secs);
        if span > MAX_EVALUATION_SECS {
            return Err(invalid(
                "evaluation_periods",
                format!(
                    "{} periods of {} s look back {span} s; at most {MAX_EVALUATION_SECS} s (one day) is allowed",
                    self.evaluation_periods, self.period_secs
                ),
            ));
        }
        if self.datapoints_to_alarm == 0 || self.datapoints_to_alarm > self.evaluation_periods {
            return Err(invalid(
                "datapoints_to_alarm",
                format!(
                    "is {}; it must be between 1 and evaluation_periods ({})",
                    self.datapoints_to_alarm, self.evaluation_periods
                ),
            ));
        }
        match (self.threshold, &self.anomaly) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(
                    "threshold",
                    "or anomaly must be set, and not both".into(),
                ));
            }
            (Some(threshold), None) => {
                if !threshold.is_finite() {
                    return Err(invalid("threshold", "must be a finite number".into()));
                }
                if self.comparison.is_band() {
                    return Err(invalid(
                        "comparison",
                        format!(
                            "{} compares with an anomaly band; with a threshold use GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold or LessThanOrEqualToThreshold",
                            self.comparison
                        ),
                    ));
                }
            }
            (None, Some(anomaly)) => {
                self.validate_anomaly(anomaly)
                    .map_err(|(setting, problem)| invalid(setting, problem))?;
            }
        }
        if let Some(webhook) = &self.webhook {
            validate_webhook(webhook).map_err(|problem| invalid("webhook", problem))?;
        }
        Ok(())
    }
}

impl AlarmSpec {
    fn validate_anomaly(&self, anomaly: &AnomalySpec) -> Result<(), (&'static str, String)> {
        if !self.comparison.is_band() {
            return Err((
                "comparison",
                format!(
                    "{} compares with a threshold; with anomaly use LessThanLowerOrGreaterThanUpperThreshold, GreaterThanUpperThreshold or LessThanLowerThreshold",
                    self.comparison
                ),
            ));
        }
        if !(anomaly.band_width.is_finite() && anomaly.band_width > 0.0) {
            return Err((
                "anomaly.band_width",
                "must be a positive finite number".into(),
            ));
        }
        if anomaly.training_days == 0 || anomaly.training_days > MAX_TRAINING_DAYS {
            return Err((
                "anomaly.training_days",
                format!(
                    "is {}; it must be between 1 and {MAX_TRAINING_DAYS}",
                    anomaly.training_days
                ),
            ));
        }
        if anomaly.min_training_days == 0 || anomaly.min_training_days > anomaly.training_days {
            return Err((
                "anomaly.min_training_days",
                format!(
                    "is {}; it must be between 1 and training_days ({})",
                    anomaly.min_training_days, anomaly.training_days
                ),
            ));
        }
        // Same time of day on earlier days must be the start of a stored bucket.
        if SEASON_SECS % i64::from(self.period_secs) != 0 {
            return Err((
                "period",
                format!(
                    "is {}; an anomaly alarm's period must divide one day (86400 s)",
                    self.period_secs
                ),
            ));
        }
        Ok(())
    }
}

fn validate_webhook(webhook: &WebhookSpec) -> Result<(), String> {
    let uri: http::Uri = webhook
        .url
        .parse()
        .map_err(|error| format!("url '{}' is not a valid URL: {error}", webhook.url))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "url '{}' must be an absolute http:// or https:// URL",
            webhook.url
        ));
    }
    for (name, value) in &webhook.headers {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name '{name}' is not a valid HTTP header name"))?;
        http::HeaderValue::from_str(value).map_err(|_| {
            format!("the value of header '{name}' is not a valid HTTP header value")
        })?;
    }
    Ok(())
}

/// Why a set of alarm specs was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("alarm '{alarm}': {setting} {problem}")]
    Invalid {
        alarm: String,
        setting: &'static str,
        problem: String,
    },
    #[error("alarm '{0}' is defined twice; alarm names must be unique")]
    Duplicate(String),
}

/// Validates every spec and checks that names are unique.
pub fn validate_all(specs: &[AlarmSpec]) -> Result<(), SpecError> {
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        spec.validate()?;
        if !seen.insert(spec.name.as_str()) {
            return Err(SpecError::Duplicate(spec.name.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec() -> AlarmSpec {
        AlarmSpec {
            name: "errors".into(),
            metric: "5XXError".into(),
            dimensions: Dimensions::default(),
            statistic: Statistic::Sum,
            period_secs: 60,
            threshold: Some(1.0),
            anomaly: None,
            comparison: Comparison::GreaterThanThreshold,
            evaluation_periods: 3,
            datapoints_to_alarm: 2,
            treat_missing_data: MissingData::Missing,
            min_sample_count: None,
            webhook: None,
        }
    }

    fn anomaly() -> AnomalySpec {
        AnomalySpec {
            band_width: 2.0,
            training_days: 7,
            min_training_days: 2,
        }
    }

    /// [`spec`] as an anomaly alarm.
    fn anomalous() -> AlarmSpec {
        AlarmSpec {
            threshold: None,
            anomaly: Some(anomaly()),
            comparison: Comparison::LessThanLowerOrGreaterThanUpperThreshold,
            ..spec()
        }
    }

    #[test]
    fn percentile_minimum_sample_counts_follow_cloudwatch() {
        let cases = [
            ("p99", 1000),
            ("p99.9", 10_000),
            ("p90", 100),
            ("p50", 20),
            ("p10", 100),
            ("Sum", 0),
            ("Average", 0),
        ];
        for (stat, expected) in cases {
            let stat: Statistic = stat.parse().unwrap();
            assert_eq!(default_min_sample_count(stat), expected, "{stat}");
        }
        let mut explicit = spec();
        explicit.statistic = Statistic::Percentile(99.0);
        assert_eq!(explicit.effective_min_sample_count(), 1000);
        explicit.min_sample_count = Some(0);
        assert_eq!(explicit.effective_min_sample_count(), 0);
    }

    #[test]
    fn invalid_specs_name_the_alarm_and_setting() {
        type Edit = fn(&mut AlarmSpec);
        let cases: Vec<(Edit, &str)> = vec![
            (|s| s.name = " ".into(), "alarm ' ': name must be non-empty"),
            (|s| s.metric.clear(), "metric must be non-empty"),
            (
                |s| s.period_secs = 90,
                "period is 90; it must be a positive multiple of 60",
            ),
            (
                |s| s.evaluation_periods = 0,
                "evaluation_periods must be at least 1",
            ),
            (|s| s.evaluation_periods = 1441, "at most 86400 s (one day)"),
            (
                |s| s.datapoints_to_alarm = 4,
                "datapoints_to_alarm is 4; it must be between 1 and evaluation_periods (3)",
            ),
            (
                |s| s.threshold = Some(f64::NAN),
                "threshold must be a finite number",
            ),
            (|s| s.threshold = None, "threshold or anomaly must be set"),
            (
                |s| s.anomaly = Some(anomaly()),
                "threshold or anomaly must be set, and not both",
            ),
            (
                |s| s.comparison = Comparison::GreaterThanUpperThreshold,
                "comparison GreaterThanUpperThreshold compares with an anomaly band",
            ),
            (
                |s| {
                    s.threshold = None;
                    s.anomaly = Some(anomaly());
                },
                "comparison GreaterThanThreshold compares with a threshold",
            ),
            (
                |s| {
                    *s = anomalous();
                    s.anomaly = Some(AnomalySpec {
                        band_width: 0.0,
                        ..anomaly()
                    });
                },
                "anomaly.band_width must be a positive finite number",
            ),
            (
                |s| {
                    *s = anomalous();
                    s.anomaly = Some(AnomalySpec {
                        training_days: 15,
                        ..anomaly()
                    });
                },
                "anomaly.training_days is 15; it must be between 1 and 14",
            ),
            (
                |s| {
                    *s = anomalous();
                    s.anomaly = Some(AnomalySpec {
                        min_training_days: 8,
                        ..anomaly()
                    });
                },
                "anomaly.min_training_days is 8; it must be between 1 and training_days (7)",
            ),
            (
                |s| {
                    *s = anomalous();
                    s.period_secs = 420;
                },
                "period is 420; an anomaly alarm's period must divide one day",
            ),
            (
                |s| {
                    s.webhook = Some(WebhookSpec {
                        url: "ftp://x/".into(),
                        headers: vec![],
                    })
                },
                "must be an absolute http:// or https:// URL",
            ),
            (
                |s| {
                    s.webhook = Some(WebhookSpec {
                        url: "http://x/".into(),
                        headers: vec![("a b".into(), "v".into())],
                    })
                },
                "header name 'a b' is not a valid HTTP header name",
            ),
        ];
        for (edit, message) in cases {
            let mut spec = spec();
            edit(&mut spec);
            let error = spec.validate().unwrap_err().to_string();
            assert!(
                error.contains(message),
                "{error:?} should contain {message:?}"
            );
        }
        assert!(spec().validate().is_ok());
        assert!(anomalous().validate().is_ok());
        let error = validate_all(&[spec(), spec()]).unwrap_err().to_string();
        assert_eq!(
            error,
            "alarm 'errors' is defined twice; alarm names must be unique"
        );
    }

    #[test]
    fn names_round_trip() {
        for state in [
            AlarmState::Ok,
            AlarmState::Alarm,
            AlarmState::InsufficientData,
        ] {
            assert_eq!(state.to_string().parse::<AlarmState>().unwrap(), state);
        }
        let error = "FINE".parse::<AlarmState>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown alarm state 'FINE': use one of OK, ALARM, INSUFFICIENT_DATA"
        );
    }
}
