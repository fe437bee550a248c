//! One alarm outside the config file: the JSON body of the admin API's
//! `PUT /admin/alarms/{name}`, the YAML or JSON file given to `gatehouse alarms put`, and the
//! document `GET /admin/alarms/{name}` answers with.
//!
//! An alarm created through the API must obey exactly the rules of an entry of the file's
//! `alarms` list, with the same messages, so both are decoded into the same `AlarmSpecDoc` and
//! checked by the same `alarms::validate_one`; only the field paths differ (`threshold` instead
//! of `alarms[2].threshold`). A body is never `${ENV}`-substituted: the gateway's environment is
//! not for whoever holds the admin token to read. A file read by the CLI is, from the CLI's own
//! environment, as a config file is.

use serde_json::{Map, Value, json};

use crate::alarms::{AlarmSettings, REDACTED, validate_one};
use crate::error::{ConfigErrors, Diagnostics};
use crate::model::decode;
use crate::yaml::PositionIndex;

/// The file name errors about an admin API body carry (they have no line or column).
const BODY: &str = "request body";

/// Decodes and validates the alarm `name` from a JSON document with the fields of a config
/// file's alarm. `name` may be left out of the document; if present it must equal `name`.
/// Errors have the field as their path (`anomaly.band_width`) and no position.
pub fn alarm_from_json(name: &str, value: Value) -> Result<AlarmSettings, ConfigErrors> {
    let index = PositionIndex::default();
    let mut diags = Diagnostics::new(BODY, &index);
    let alarm = named(name, value, &mut diags)
        .and_then(|value| decode(value, "", &mut diags))
        .and_then(|doc| validate_one(doc, "", None, &mut diags));
    match alarm {
        Some(alarm) => diags.finish(alarm),
        None => Err(diags.into_errors()),
    }
}

/// Parses the alarm `name` from YAML (or JSON) text, substituting `${NAME}` through `env`, and
/// validates it; errors name `file_name`, line and column. Returns the alarm and the
/// substituted document, ready to be sent to the admin API.
pub fn alarm_from_text(
    name: &str,
    text: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(AlarmSettings, Value), ConfigErrors> {
    crate::read_document(text, file_name, env, |value, diags| {
        let value = named(name, value, diags)?;
        let alarm =
            decode(value.clone(), "", diags).and_then(|doc| validate_one(doc, "", None, diags))?;
        Some((alarm, value))
    })
}

/// `value` with its `name` set to `name`, or `None` (with the error) if it is not a mapping or
/// names another alarm.
fn named(name: &str, value: Value, diags: &mut Diagnostics<'_>) -> Option<Value> {
    let Value::Object(mut map) = value else {
        diags.error(
            "",
            "expected a mapping of alarm fields (metric, threshold, comparison, ...)",
        );
        return None;
    };
    match map.get("name") {
        None => {
            map.insert("name".into(), Value::from(name));
        }
        Some(Value::String(given)) if given == name => {}
        Some(other) => {
            diags.error(
                "name",
                format!(
                    "is {other} but the alarm being written is '{name}'; leave `name` out or make them match"
                ),
            );
            return None;
        }
    }
    Some(Value::Object(map))
}

impl AlarmSettings {
    /// The alarm as a document with the fields of a config file's alarm, defaults spelled
    /// out, so that [`alarm_from_json`] reads it back to an equal alarm. With `redact`, webhook
    /// header values (often credentials) are replaced by `<redacted>`, which validation
    /// refuses, so a redacted document cannot be written back by mistake.
    pub fn to_document(&self, redact: bool) -> Value {
        let mut document = Map::new();
        document.insert("name".into(), json!(self.name));
        document.insert("metric".into(), json!(self.metric));
        document.insert("dimensions".into(), json!(self.dimensions));
        document.insert("statistic".into(), json!(self.statistic.to_string()));
        document.insert("period_seconds".into(), json!(self.period_secs));
        if let Some(threshold) = self.threshold {
            document.insert("threshold".into(), json!(threshold));
        }
        if let Some(anomaly) = &self.anomaly {
            document.insert(
                "anomaly".into(),
                json!({
                    "band_width": anomaly.band_width,
                    "training_days": anomaly.training_days,
                    "min_training_days": anomaly.min_training_days,
                }),
            );
        }
        document.insert("comparison".into(), json!(self.comparison));
        document.insert("evaluation_periods".into(), json!(self.evaluation_periods));
        document.insert(
            "datapoints_to_alarm".into(),
            json!(self.datapoints_to_alarm),
        );
        document.insert("treat_missing_data".into(), json!(self.treat_missing_data));
        if let Some(count) = self.min_sample_count {
            document.insert("min_sample_count".into(), json!(count));
        }
        if let Some(webhook) = &self.webhook {
            let headers: Map<String, Value> = webhook
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = match (redact, value.to_str()) {
                        (false, Ok(value)) => value,
                        _ => REDACTED,
                    };
                    (name.to_string(), Value::from(value))
                })
                .collect();
            document.insert(
                "webhook".into(),
                json!({ "url": webhook.url.to_string(), "headers": headers }),
            );
        }
        Value::Object(document)
    }
}
