//! The `tracing` section: whether the gateway takes part in traces, whether it honours a caller's
//! sampling decision, the sampling rules (docs/tracing.md), and where spans are exported over
//! OTLP/HTTP besides the store (docs/traces.md).
//!
//! The section decodes into [`TracingSettings`], plain values that compare equal when nothing
//! changed; [`TracingSettings::tracer`] compiles them into the data plane's `Tracer`, whose rule
//! reservoirs start afresh on each reload.

use std::collections::HashMap;

use gatehouse_telemetry::trace::{Sampler, SamplingRule, Tracer};
use serde::Deserialize;

use crate::error::{Diagnostics, join_index, join_key};

/// The highest priority a configured rule may have; the default rule comes after, as X-Ray's
/// `Default` (10 000) does.
pub const MAX_RULE_PRIORITY: u32 = 9_999;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TracingSpec {
    enabled: bool,
    honour_incoming_sampled: bool,
    default_rule: Option<DefaultRuleSpec>,
    sampling_rules: Vec<SamplingRuleSpec>,
    otlp: Option<crate::model::OtlpSpec>,
    retention_days: u32,
}

impl Default for TracingSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            honour_incoming_sampled: true,
            default_rule: None,
            sampling_rules: Vec::new(),
            otlp: None,
            retention_days: DEFAULT_TRACE_RETENTION_DAYS,
        }
    }
}

/// How long spans are kept unless configured: a week, X-Ray's 30 days being for a managed store.
pub const DEFAULT_TRACE_RETENTION_DAYS: u32 = 7;
/// The longest trace retention the section accepts.
const MAX_TRACE_RETENTION_DAYS: u32 = 3650;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultRuleSpec {
    reservoir_per_second: u32,
    fixed_rate: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplingRuleSpec {
    name: String,
    priority: u32,
    #[serde(default = "any")]
    api: String,
    #[serde(default = "any")]
    stage: String,
    #[serde(default = "any")]
    host: String,
    #[serde(default = "any")]
    method: String,
    #[serde(default = "any")]
    path: String,
    reservoir_per_second: u32,
    fixed_rate: f64,
}

fn any() -> String {
    "*".to_owned()
}

/// The validated `tracing` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// Off: trace headers pass through untouched and no trace ids are recorded.
    pub enabled: bool,
    /// Whether a caller's sampled flag (traceparent's, or X-Ray's `Sampled=0|1`) decides.
    pub honour_incoming_sampled: bool,
    /// The configured rules, in file order.
    pub sampling_rules: Vec<SamplingRule>,
    /// The rule after all others: X-Ray's 1 per second plus 5 % unless configured.
    pub default_rule: SamplingRule,
    /// Where recorded spans are also exported over OTLP/HTTP, if anywhere. Read at start-up.
    pub otlp: Option<crate::settings::OtlpSettings>,
    /// How many days stored spans are kept.
    pub retention_days: u32,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            honour_incoming_sampled: true,
            sampling_rules: Vec::new(),
            default_rule: SamplingRule::default_rule(),
            otlp: None,
            retention_days: DEFAULT_TRACE_RETENTION_DAYS,
        }
    }
}

impl TracingSettings {
    /// Compiles the rules for the data plane.
    pub fn tracer(&self) -> Tracer {
        Tracer::new(
            self.enabled,
            self.honour_incoming_sampled,
            Sampler::new(self.sampling_rules.clone(), Some(self.default_rule.clone())),
        )
    }
}

pub(crate) fn validate(spec: &TracingSpec, diags: &mut Diagnostics<'_>) -> TracingSettings {
    let mut default_rule = SamplingRule::default_rule();
    if let Some(default) = &spec.default_rule {
        check_rate(default.fixed_rate, "tracing.default_rule.fixed_rate", diags);
        default_rule.reservoir_per_second = default.reservoir_per_second;
        default_rule.fixed_rate = default.fixed_rate;
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(spec.sampling_rules.len());
    for (i, rule) in spec.sampling_rules.iter().enumerate() {
        let path = join_index("tracing.sampling_rules", i);
        let name = rule.name.trim();
        if name.is_empty() {
            diags.error(&join_key(&path, "name"), "must not be empty");
        } else if name == "default" {
            diags.error(
                &join_key(&path, "name"),
                "'default' is the built-in last rule; set it with tracing.default_rule",
            );
        } else if let Some(first) = names.insert(name, i) {
            diags.error(
                &join_key(&path, "name"),
                format!("rule name '{name}' is already used by tracing.sampling_rules[{first}]"),
            );
        }
        if !(1..=MAX_RULE_PRIORITY).contains(&rule.priority) {
            diags.error(
                &join_key(&path, "priority"),
                format!(
                    "must be between 1 and {MAX_RULE_PRIORITY} (got {}); lower comes first",
                    rule.priority
                ),
            );
        }
        check_rate(rule.fixed_rate, &join_key(&path, "fixed_rate"), diags);
        rules.push(SamplingRule {
            name: name.to_owned(),
            priority: rule.priority,
            api: rule.api.clone(),
            stage: rule.stage.clone(),
            host: rule.host.clone(),
            method: rule.method.clone(),
            path: rule.path.clone(),
            reservoir_per_second: rule.reservoir_per_second,
            fixed_rate: rule.fixed_rate,
        });
    }
    if !(1..=MAX_TRACE_RETENTION_DAYS).contains(&spec.retention_days) {
        diags.error(
            "tracing.retention_days",
            format!(
                "must be between 1 and {MAX_TRACE_RETENTION_DAYS} days (got {})",
                spec.retention_days
            ),
        );
    }
    TracingSettings {
        retention_days: spec.retention_days,
        enabled: spec.enabled,
        honour_incoming_sampled: spec.honour_incoming_sampled,
        sampling_rules: rules,
        default_rule,
        otlp: spec
            .otlp
            .as_ref()
            .and_then(|otlp| crate::validate::otlp_settings(otlp, "tracing.otlp", diags)),
    }
}

fn check_rate(rate: f64, path: &str, diags: &mut Diagnostics<'_>) {
    if !(0.0..=1.0).contains(&rate) {
        diags.error(
            path,
            format!("must be a fraction between 0 and 1 (got {rate}); 5 % is 0.05"),
        );
    }
}
