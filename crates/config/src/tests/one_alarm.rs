//! One alarm from the admin API or the CLI: the file's rules and messages, the field as the
//! path, and a document that reads back to the same alarm.

use serde_json::json;

use super::{load, test_env};
use crate::{alarm_from_json, alarm_from_text};

/// The errors of a body as the admin API reports them, `path: message`.
fn body_errors(name: &str, body: serde_json::Value) -> Vec<String> {
    match alarm_from_json(name, body) {
        Ok(alarm) => vec![format!("<valid: {alarm:?}>")],
        Err(errors) => errors
            .errors()
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

#[test]
fn a_body_is_checked_by_the_config_rules_with_field_paths() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "unknown field",
            json!({"metric": "Count", "threshold": 1, "comparison": "LessThanThreshold", "treshold": 2}),
            "treshold: unknown field `treshold`, expected one of `name`",
        ),
        (
            "unknown metric",
            json!({"metric": "Count per minute", "threshold": 1, "comparison": "LessThanThreshold"}),
            "metric: unknown metric 'Count per minute'",
        ),
        (
            "bad comparison",
            json!({"metric": "Count", "threshold": 1, "comparison": "Smaller"}),
            "comparison: unknown variant `Smaller`",
        ),
        (
            "neither threshold nor anomaly",
            json!({"metric": "Count"}),
            ": an alarm needs either 'threshold'",
        ),
        (
            "band width",
            json!({"metric": "Count", "anomaly": {"band_width": -1}}),
            "anomaly.band_width: must be a positive number",
        ),
        (
            "M above N",
            json!({"metric": "Count", "threshold": 1, "comparison": "LessThanThreshold", "evaluation_periods": 2, "datapoints_to_alarm": 3}),
            "datapoints_to_alarm: must be between 1 and evaluation_periods (2)",
        ),
        (
            "another name",
            json!({"name": "other", "metric": "Count", "threshold": 1, "comparison": "LessThanThreshold"}),
            "name: is \"other\" but the alarm being written is 'quiet'",
        ),
        (
            "not a mapping",
            json!([1, 2]),
            ": expected a mapping of alarm fields",
        ),
        (
            "redacted header",
            json!({"metric": "Count", "threshold": 1, "comparison": "LessThanThreshold",
                   "webhook": {"url": "http://127.0.0.1:1/", "headers": {"authorization": "<redacted>"}}}),
            "webhook.headers.authorization: '<redacted>' stands for a value the admin API does not show",
        ),
    ];
    for (what, body, expected) in cases {
        let found = body_errors("quiet", body);
        assert!(
            found.iter().any(|e| e.starts_with(expected)),
            "{what}: expected {expected:?}, got {found:?}"
        );
    }
    let found = body_errors(
        "bad name!",
        json!({"metric": "Count", "threshold": 1, "comparison": "LessThanThreshold"}),
    );
    assert_eq!(
        found,
        ["name: must be non-empty and use only letters, digits, '-', '_' and '.'"]
    );
    let found = body_errors(
        "history",
        json!({"metric": "Count", "threshold": 1, "comparison": "LessThanThreshold"}),
    );
    assert!(
        found[0].starts_with("name: 'history' is reserved"),
        "{found:?}"
    );
}

#[test]
fn a_document_reads_back_to_the_same_alarm() {
    let loaded = load(
        "alarms:\n  - name: slow\n    metric: Latency\n    dimensions: { api: pets }\n    statistic: p99\n\
         \x20   period_seconds: 300\n    threshold: 250\n    comparison: GreaterThanThreshold\n\
         \x20   evaluation_periods: 3\n    min_sample_count: 10\n    treat_missing_data: ignore\n\
         \x20   webhook: { url: 'http://127.0.0.1:9/h', headers: { authorization: Bearer x } }\n\
         \x20 - name: odd\n    metric: Count\n    anomaly: { band_width: 3 }\n",
    )
    .unwrap();
    for alarm in &loaded.settings.alarms {
        let document = alarm.to_document(false);
        assert_eq!(&alarm_from_json(&alarm.name, document).unwrap(), alarm);
    }
    let redacted = loaded.settings.alarms[0].to_document(true);
    assert_eq!(
        redacted["webhook"]["headers"]["authorization"],
        "<redacted>"
    );
    assert_eq!(redacted["statistic"], "p99");
    assert_eq!(redacted["treat_missing_data"], "ignore");
}

#[test]
fn a_file_is_substituted_and_errors_have_positions() {
    let yaml = "metric: Count\nthreshold: 1\ncomparison: LessThanThreshold\nwebhook:\n  url: ${BACKEND}/hook\n";
    let (alarm, document) = alarm_from_text("quiet", yaml, "quiet.yaml", &test_env).unwrap();
    assert_eq!(alarm.name, "quiet");
    assert_eq!(document["webhook"]["url"], "http://127.0.0.1:9000/hook");
    assert_eq!(document["name"], "quiet");

    let error = alarm_from_text(
        "quiet",
        "metric: Count\nthreshold: 1\ncomparison: LessThanThreshold\nperiod_seconds: 61\n",
        "quiet.yaml",
        &test_env,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "quiet.yaml:4:17: period_seconds: must be a positive multiple of 60"
    );
    let error = alarm_from_text("quiet", "metric: [", "quiet.yaml", &test_env).unwrap_err();
    assert!(error.to_string().starts_with("quiet.yaml:"), "{error}");
}
