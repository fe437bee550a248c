//! Alarms in the running gateway: validated alarms to evaluator specs, and the admin API's
//! answers about states and history (the definitions are `alarm_registry.rs`'s).

use std::sync::Arc;

use gatehouse_admin::ApiError;
use gatehouse_alarms::{AlarmSpec, AlarmStatus, WebhookSpec};
use gatehouse_config::AlarmSettings;
use gatehouse_store::Store;
use gatehouse_telemetry::metrics::Dimensions;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::metrics_api::parse_since;

/// Translates a validated alarm (from the file or the API) into the evaluator's spec.
pub(crate) fn spec(alarm: &AlarmSettings) -> AlarmSpec {
    let dimension = |name: &str| alarm.dimensions.get(name).map(|v| Arc::from(v.as_str()));
    AlarmSpec {
        name: alarm.name.clone(),
        metric: alarm.metric.clone(),
        dimensions: Dimensions {
            api: dimension("api"),
            stage: dimension("stage"),
            route: dimension("route"),
            method: dimension("method"),
            canary: None,
        },
        statistic: alarm.statistic,
        period_secs: alarm.period_secs,
        threshold: alarm.threshold,
        anomaly: alarm.anomaly.map(|anomaly| gatehouse_alarms::AnomalySpec {
            band_width: anomaly.band_width,
            training_days: anomaly.training_days,
            min_training_days: anomaly.min_training_days,
        }),
        comparison: alarm.comparison,
        evaluation_periods: alarm.evaluation_periods,
        datapoints_to_alarm: alarm.datapoints_to_alarm,
        treat_missing_data: alarm.treat_missing_data,
        min_sample_count: alarm.min_sample_count,
        webhook: alarm.webhook.as_ref().map(|hook| WebhookSpec {
            url: hook.url.to_string(),
            headers: hook
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        value.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        }),
    }
}

pub(crate) fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An alarm's state: `since` is when it entered it, `evaluatedAt` when it was last evaluated.
pub(crate) fn status_json(status: &AlarmStatus) -> Value {
    json!({
        "name": status.name,
        "state": status.state.to_string(),
        "since": status.since_unix.map(rfc3339),
        "reason": status.reason,
        "evaluatedAt": status.evaluated_unix.map(rfc3339),
    })
}

/// Answers `GET /admin/alarms/history`.
pub(crate) async fn history(
    store: &Store,
    alarm: Option<String>,
    since: Option<String>,
) -> Result<Value, ApiError> {
    let seconds = parse_since(since.as_deref().unwrap_or("1d")).map_err(ApiError::BadRequest)?;
    let from = OffsetDateTime::now_utc().unix_timestamp() - seconds;
    let store = store.clone();
    let rows =
        tokio::task::spawn_blocking(move || store.alarm_history(alarm.as_deref(), from, 1000))
            .await
            .map_err(|e| ApiError::Unavailable(format!("the history task failed: {e}")))?
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let history: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "alarm": row.alarm,
                "timestamp": rfc3339(row.timestamp_unix),
                "oldState": row.old_state,
                "newState": row.new_state,
                "reason": row.reason,
                "data": serde_json::from_str::<Value>(&row.data).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(json!({ "history": history }))
}
