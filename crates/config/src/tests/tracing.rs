use super::{api_with_route, errors, loaded};
use crate::TracingSettings;

const MOCK: &str = "      - path: /x\n        integration: { type: mock }\n";

#[test]
fn tracing_defaults_to_xray_sampling() {
    let loaded = loaded(&api_with_route(MOCK));
    assert_eq!(loaded.settings.tracing, TracingSettings::default());
    let default = &loaded.settings.tracing.default_rule;
    assert_eq!(
        (default.reservoir_per_second, default.fixed_rate),
        (1, 0.05)
    );
    assert!(loaded.settings.tracing.enabled);
    assert!(loaded.settings.tracing.honour_incoming_sampled);
}

#[test]
fn tracing_section_loads_rules_and_default() {
    let yaml = format!(
        "tracing:
  honour_incoming_sampled: false
  default_rule: {{ reservoir_per_second: 2, fixed_rate: 0.1 }}
  sampling_rules:
    - {{ name: health, priority: 1, path: '*/health', reservoir_per_second: 0, fixed_rate: 0 }}
    - name: orders
      priority: 10
      api: shop
      stage: prod
      host: '*.example.com'
      method: POST
      path: /orders/*
      reservoir_per_second: 5
      fixed_rate: 0.5
{}",
        api_with_route(MOCK)
    );
    let tracing = loaded(&yaml).settings.tracing;
    assert!(!tracing.honour_incoming_sampled);
    assert_eq!(
        (
            tracing.default_rule.reservoir_per_second,
            tracing.default_rule.fixed_rate
        ),
        (2, 0.1)
    );
    let health = &tracing.sampling_rules[0];
    assert_eq!(
        (health.api.as_str(), health.path.as_str()),
        ("*", "*/health")
    );
    let orders = &tracing.sampling_rules[1];
    assert_eq!(
        (
            orders.api.as_str(),
            orders.stage.as_str(),
            orders.host.as_str(),
            orders.method.as_str(),
            orders.path.as_str(),
            orders.reservoir_per_second,
            orders.fixed_rate
        ),
        ("shop", "prod", "*.example.com", "POST", "/orders/*", 5, 0.5)
    );
    assert!(tracing.tracer().is_enabled());
}

/// Each case: the `tracing` section, and the expected errors (`line:col: path: message`).
#[test]
fn tracing_validation_table() {
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "unknown field",
            "tracing: { sampled: true }\n",
            vec![
                "1:12: tracing.sampled: unknown field `sampled`, expected one of `enabled`, `honour_incoming_sampled`, `default_rule`, `sampling_rules`, `otlp`, `retention_days`",
            ],
        ),
        (
            "rate above one",
            "tracing:\n  sampling_rules:\n    - { name: a, priority: 1, reservoir_per_second: 1, fixed_rate: 5 }\n",
            vec![
                "3:68: tracing.sampling_rules[0].fixed_rate: must be a fraction between 0 and 1 (got 5); 5 % is 0.05",
            ],
        ),
        (
            "default rate negative",
            "tracing:\n  default_rule: { reservoir_per_second: 1, fixed_rate: -0.1 }\n",
            vec![
                "2:56: tracing.default_rule.fixed_rate: must be a fraction between 0 and 1 (got -0.1); 5 % is 0.05",
            ],
        ),
        (
            "priority out of range and duplicate name",
            "tracing:\n  sampling_rules:\n    - { name: a, priority: 0, reservoir_per_second: 1, fixed_rate: 0 }\n    - { name: a, priority: 10000, reservoir_per_second: 1, fixed_rate: 0 }\n",
            vec![
                "3:28: tracing.sampling_rules[0].priority: must be between 1 and 9999 (got 0); lower comes first",
                "4:15: tracing.sampling_rules[1].name: rule name 'a' is already used by tracing.sampling_rules[0]",
                "4:28: tracing.sampling_rules[1].priority: must be between 1 and 9999 (got 10000); lower comes first",
            ],
        ),
        (
            "reserved and empty names",
            "tracing:\n  sampling_rules:\n    - { name: default, priority: 1, reservoir_per_second: 1, fixed_rate: 0 }\n    - { name: '', priority: 2, reservoir_per_second: 1, fixed_rate: 0 }\n",
            vec![
                "3:15: tracing.sampling_rules[0].name: 'default' is the built-in last rule; set it with tracing.default_rule",
                "4:15: tracing.sampling_rules[1].name: must not be empty",
            ],
        ),
        (
            "otlp endpoint not absolute, zero timeout, bad header",
            "tracing:\n  otlp:\n    endpoint: collector:4318\n    timeout_ms: 0\n    headers: { 'bad header': x }\n",
            vec![
                "3:15: tracing.otlp.endpoint: 'collector:4318' is not an absolute http:// or https:// URL (e.g. http://127.0.0.1:4318/v1/traces)",
                "4:17: tracing.otlp.timeout_ms: must be at least 1",
                "5:30: tracing.otlp.headers.bad header: not a valid header name and value",
            ],
        ),
        (
            "otlp without endpoint",
            "tracing:\n  otlp: { timeout_ms: 5 }\n",
            vec!["2:9: tracing.otlp: missing field `endpoint`"],
        ),
        (
            "missing rate",
            "tracing:\n  sampling_rules:\n    - { name: a, priority: 1, reservoir_per_second: 1 }\n",
            vec!["3:7: tracing.sampling_rules[0]: missing field `fixed_rate`"],
        ),
        (
            "retention",
            "tracing:\n  retention_days: 0\n",
            vec!["2:19: tracing.retention_days: must be between 1 and 3650 days (got 0)"],
        ),
    ];
    for (name, section, expected) in cases {
        let yaml = format!("{section}{}", api_with_route(MOCK));
        assert_eq!(errors(&yaml), expected, "case '{name}'");
    }
}

#[test]
fn tracing_otlp_export_is_optional_and_loads_like_metrics_otlp() {
    let none = loaded(&api_with_route(MOCK));
    assert_eq!(none.settings.tracing.otlp, None);
    let yaml = format!(
        "tracing:\n  otlp:\n    endpoint: http://collector:4318/v1/traces\n    headers: {{ x-tenant: a }}\n    timeout_ms: 2500\n{}",
        api_with_route(MOCK)
    );
    let otlp = loaded(&yaml).settings.tracing.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(otlp.timeout, std::time::Duration::from_millis(2500));
    assert_eq!(
        otlp.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect::<Vec<_>>(),
        [("x-tenant", "a")]
    );
}
