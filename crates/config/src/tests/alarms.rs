//! The `alarms` section: defaults, and every rule with its position.

use super::{errors, load};
use crate::{AnomalySettings, Comparison, MissingData};
use gatehouse_telemetry::metrics::Statistic;

#[test]
fn an_alarm_loads_with_cloudwatch_defaults() {
    let loaded = load(
        "alarms:\n  - name: errors\n    metric: 5XXError\n    threshold: 5\n    comparison: GreaterThanThreshold\n\
         \x20 - name: slow-pets\n    metric: Latency\n    dimensions: { api: pets, stage: prod, route: '/pets/{id}', method: GET }\n\
         \x20   statistic: p99\n    period_seconds: 300\n    threshold: 250\n    comparison: GreaterThanOrEqualToThreshold\n\
         \x20   evaluation_periods: 5\n    datapoints_to_alarm: 3\n    treat_missing_data: notBreaching\n    min_sample_count: 50\n\
         \x20   webhook:\n      url: http://127.0.0.1:9000/hook\n      headers: { authorization: Bearer x }\n",
    )
    .unwrap();
    let alarms = &loaded.settings.alarms;
    assert_eq!(alarms.len(), 2);
    let errors = &alarms[0];
    assert_eq!(
        (errors.statistic, errors.period_secs),
        (Statistic::Sum, 60),
        "counts default to Sum"
    );
    assert_eq!(
        (errors.evaluation_periods, errors.datapoints_to_alarm),
        (1, 1)
    );
    assert_eq!(errors.treat_missing_data, MissingData::Missing);
    let slow = &alarms[1];
    assert_eq!(slow.statistic, Statistic::Percentile(99.0));
    assert_eq!(slow.comparison, Comparison::GreaterThanOrEqualToThreshold);
    assert_eq!((slow.evaluation_periods, slow.datapoints_to_alarm), (5, 3));
    assert_eq!(slow.treat_missing_data, MissingData::NotBreaching);
    assert_eq!(slow.dimensions["route"], "/pets/{id}");
    let hook = slow.webhook.as_ref().unwrap();
    assert_eq!(hook.url, "http://127.0.0.1:9000/hook");
    assert_eq!(hook.headers.len(), 1);
}

#[test]
fn alarm_rules_are_reported_with_positions() {
    let alarm = |body: &str| {
        format!("alarms:\n  - name: a\n    threshold: 1\n    comparison: LessThanThreshold\n{body}")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown metric",
            alarm("    metric: Latencyy\n"),
            "5:13: alarms[0].metric: unknown metric 'Latencyy'",
        ),
        (
            "bad statistic",
            alarm("    metric: Latency\n    statistic: median\n"),
            "6:16: alarms[0].statistic: unknown statistic 'median'",
        ),
        (
            "period not a multiple of 60",
            alarm("    metric: Count\n    period_seconds: 90\n"),
            "6:21: alarms[0].period_seconds: must be a positive multiple of 60",
        ),
        (
            "M greater than N",
            alarm("    metric: Count\n    evaluation_periods: 2\n    datapoints_to_alarm: 3\n"),
            "7:26: alarms[0].datapoints_to_alarm: must be between 1 and evaluation_periods (2)",
        ),
        (
            "unknown dimension",
            alarm("    metric: Count\n    dimensions:\n      colour: red\n"),
            "7:15: alarms[0].dimensions.colour: unknown dimension 'colour'",
        ),
        (
            "webhook URL",
            alarm("    metric: Count\n    webhook:\n      url: ftp://x\n"),
            "7:12: alarms[0].webhook.url: 'ftp://x' is not an absolute http:// or https:// URL",
        ),
        (
            "unknown comparison",
            "alarms:\n  - name: a\n    metric: Count\n    threshold: 1\n    comparison: Above\n"
                .to_owned(),
            "5:17: alarms[0].comparison: unknown variant `Above`",
        ),
    ];
    for (what, yaml, expected) in cases {
        let found = errors(&yaml);
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "{what}: expected {expected:?}, got {found:?}"
        );
    }
    let twice = "alarms:\n  - { name: a, metric: Count, threshold: 1, comparison: LessThanThreshold }\n  - { name: a, metric: Count, threshold: 1, comparison: LessThanThreshold }\n";
    assert!(
        errors(twice)
            .iter()
            .any(|e| e.contains("alarm name 'a' is used twice")),
        "{:?}",
        errors(twice)
    );
}

#[test]
fn otlp_export_is_optional_and_checked() {
    let loaded = load("metrics:\n  otlp:\n    endpoint: http://127.0.0.1:4318/v1/metrics\n    headers: { x-tenant: a }\n").unwrap();
    let otlp = loaded.settings.metrics.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://127.0.0.1:4318/v1/metrics");
    assert_eq!(otlp.timeout, std::time::Duration::from_secs(10));
    assert!(
        load("metrics: {}\n")
            .unwrap()
            .settings
            .metrics
            .otlp
            .is_none()
    );
    let found = errors("metrics:\n  otlp:\n    endpoint: collector:4318\n");
    assert!(
        found
            .iter()
            .any(|e| e
                .starts_with("3:15: metrics.otlp.endpoint: 'collector:4318' is not an absolute")),
        "{found:?}"
    );
}

#[test]
fn an_anomaly_alarm_loads_with_defaults() {
    let loaded = load(
        "alarms:\n  - name: traffic\n    metric: Count\n    anomaly: { band_width: 3, training_days: 7, min_training_days: 3 }\n\
         \x20 - name: quiet\n    metric: Count\n    anomaly: {}\n    comparison: LessThanLowerThreshold\n",
    )
    .unwrap();
    let alarms = &loaded.settings.alarms;
    let traffic = &alarms[0];
    assert_eq!(traffic.threshold, None);
    assert_eq!(
        traffic.comparison,
        Comparison::LessThanLowerOrGreaterThanUpperThreshold,
        "the default band comparison"
    );
    assert_eq!(
        traffic.anomaly,
        Some(AnomalySettings {
            band_width: 3.0,
            training_days: 7,
            min_training_days: 3
        })
    );
    let quiet = &alarms[1];
    assert_eq!(quiet.comparison, Comparison::LessThanLowerThreshold);
    assert_eq!(
        quiet.anomaly,
        Some(AnomalySettings {
            band_width: 2.0,
            training_days: 14,
            min_training_days: 2
        })
    );
}

#[test]
fn threshold_and_anomaly_rules_are_reported_with_positions() {
    let cases: [(&str, &str, &str); 8] = [
        (
            "neither",
            "alarms:\n  - name: a\n    metric: Count\n",
            "2:5: alarms[0]: an alarm needs either 'threshold'",
        ),
        (
            "both",
            "alarms:\n  - name: a\n    metric: Count\n    threshold: 1\n    comparison: LessThanThreshold\n    anomaly: {}\n",
            "6:5: alarms[0].anomaly: cannot be combined with 'threshold'",
        ),
        (
            "threshold without comparison",
            "alarms:\n  - name: a\n    metric: Count\n    threshold: 1\n",
            "2:5: alarms[0]: 'comparison' is required with 'threshold'",
        ),
        (
            "band comparison with a threshold",
            "alarms:\n  - name: a\n    metric: Count\n    threshold: 1\n    comparison: GreaterThanUpperThreshold\n",
            "5:17: alarms[0].comparison: GreaterThanUpperThreshold compares with an anomaly band",
        ),
        (
            "static comparison with anomaly",
            "alarms:\n  - name: a\n    metric: Count\n    anomaly: {}\n    comparison: GreaterThanThreshold\n",
            "5:17: alarms[0].comparison: GreaterThanThreshold compares with a threshold",
        ),
        (
            "band width",
            "alarms:\n  - name: a\n    metric: Count\n    anomaly:\n      band_width: 0\n",
            "5:19: alarms[0].anomaly.band_width: must be a positive number",
        ),
        (
            "too many training days",
            "alarms:\n  - name: a\n    metric: Count\n    anomaly:\n      training_days: 15\n      min_training_days: 16\n",
            "5:22: alarms[0].anomaly.training_days: must be between 1 and 14",
        ),
        (
            "period not dividing a day",
            "alarms:\n  - name: a\n    metric: Count\n    period_seconds: 420\n    anomaly: {}\n",
            "4:21: alarms[0].period_seconds: must divide one day (86400)",
        ),
    ];
    for (what, yaml, expected) in cases {
        let found = errors(yaml);
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "{what}: expected {expected:?}, got {found:?}"
        );
    }
    let found = errors(
        "alarms:\n  - name: a\n    metric: Count\n    anomaly: { training_days: 3, min_training_days: 4 }\n",
    );
    assert!(
        found.iter().any(|e| e.contains(
            "alarms[0].anomaly.min_training_days: must be between 1 and training_days (3)"
        )),
        "{found:?}"
    );
}
