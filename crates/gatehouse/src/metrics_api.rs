//! The metrics side of the admin API: queries answered from the store, series listings, and the
//! Prometheus exposition from the aggregator.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_admin::{ApiError, MetricsQuery};
use gatehouse_store::{MetricQuery, Store};
use gatehouse_telemetry::metrics::{Dimensions, Metric, Statistic, UnknownStatistic};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Parses `15m`, `1h`, `2d`, `30s` (or bare seconds) into seconds.
pub(crate) fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 15m, 1h or 2d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use s, m, h or d)"
            ));
        }
    };
    Ok(n * factor)
}

/// Parses Unix seconds or an RFC 3339 time.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.trim().parse::<i64>() {
        return Ok(seconds);
    }
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("'{text}' is neither Unix seconds nor an RFC 3339 time"))
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn dims_json(dims: &Dimensions) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in [
        ("api", &dims.api),
        ("stage", &dims.stage),
        ("route", &dims.route),
        ("method", &dims.method),
    ] {
        if let Some(value) = value {
            map.insert(name.into(), json!(&**value));
        }
    }
    if let Some(canary) = dims.canary {
        map.insert("canary".into(), json!(canary));
    }
    Value::Object(map)
}

/// Answers `GET /admin/metrics/query`.
pub(crate) async fn query(store: &Store, request: MetricsQuery) -> Result<Value, ApiError> {
    let bad = ApiError::BadRequest;
    let period = request.period.unwrap_or(60);
    if period == 0 || !period.is_multiple_of(60) {
        return Err(bad(format!(
            "period {period} is not a positive multiple of 60 seconds"
        )));
    }
    // Not one of the gateway's own metrics: a custom metric that a metric filter publishes.
    let metric = Metric::from_name(&request.metric);
    let custom_name = !request.metric.is_empty()
        && request
            .metric
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if metric.is_none() && !custom_name {
        let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        return Err(bad(format!(
            "unknown metric '{}'; known metrics: {}, or one a metric filter publishes",
            request.metric,
            known.join(", ")
        )));
    }
    let unit = metric.map_or("None", |m| m.unit());
    // Counts default to Sum (how many), everything else to Average, as CloudWatch's console
    // does; a metric filter's metric counts matches unless it publishes a field's value.
    let statistic: Statistic = match &request.stat {
        Some(text) => text
            .parse()
            .map_err(|e: UnknownStatistic| bad(e.to_string()))?,
        None if metric.is_none() || unit == "Count" => Statistic::Sum,
        None => Statistic::Average,
    };
    let end = match &request.end {
        Some(text) => parse_time(text).map_err(bad)?,
        None => now_unix(),
    };
    let start = match (&request.start, &request.since) {
        (Some(text), _) => parse_time(text).map_err(bad)?,
        (None, Some(since)) => end - parse_since(since).map_err(bad)?,
        (None, None) => end - 3600,
    };
    if start >= end {
        return Err(bad("start must be before end".into()));
    }
    let dimensions = Dimensions {
        api: request.api.as_deref().map(Arc::from),
        stage: request.stage.as_deref().map(Arc::from),
        route: request.route.as_deref().map(Arc::from),
        method: request.method.as_deref().map(Arc::from),
        canary: None,
    };
    let query = MetricQuery {
        metric: request.metric.clone(),
        dimensions: dimensions.clone(),
        period_secs: period,
        start_unix: start,
        end_unix: end,
    };
    let store = store.clone();
    let (points, history) = tokio::task::spawn_blocking(move || {
        let points = store.query_metrics(&query)?;
        let history = store.alarm_history(None, query.start_unix, 1000)?;
        Ok::<_, gatehouse_store::StoreError>((points, history))
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("the query task failed: {e}")))?
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Alarm state changes on this very series, so a graph can mark them (beyond CloudWatch).
    let wanted_dims = dims_json(&dimensions);
    let alarm_changes: Vec<Value> = history
        .iter()
        .filter(|row| row.timestamp_unix <= end)
        .filter_map(|row| {
            let data: Value = serde_json::from_str(&row.data).ok()?;
            (data["metric"] == request.metric.as_str() && data["dimensions"] == wanted_dims).then(
                || {
                    json!({
                        "timestamp": rfc3339(row.timestamp_unix),
                        "unix": row.timestamp_unix,
                        "alarm": row.alarm,
                        "oldState": row.old_state,
                        "newState": row.new_state,
                    })
                },
            )
        })
        .collect();
    let datapoints: Vec<Value> = points
        .iter()
        .filter_map(|point| {
            let value = statistic.evaluate(&point.stats)?;
            Some(json!({
                "timestamp": rfc3339(point.timestamp_unix),
                "unix": point.timestamp_unix,
                "value": value,
                "sampleCount": point.stats.sample_count,
            }))
        })
        .collect();
    Ok(json!({
        "metric": request.metric,
        "dimensions": dims_json(&dimensions),
        "statistic": statistic.to_string(),
        "period": period,
        "unit": unit,
        "start": rfc3339(start),
        "end": rfc3339(end),
        "datapoints": datapoints,
        "alarmChanges": alarm_changes,
    }))
}

/// Answers `GET /admin/metrics`.
pub(crate) async fn list(store: &Store, since: Option<String>) -> Result<Value, ApiError> {
    let seconds = parse_since(since.as_deref().unwrap_or("1h")).map_err(ApiError::BadRequest)?;
    let store = store.clone();
    let from = now_unix() - seconds;
    let series = tokio::task::spawn_blocking(move || store.list_series(from))
        .await
        .map_err(|e| ApiError::Unavailable(format!("the listing task failed: {e}")))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let series: Vec<Value> = series
        .iter()
        .map(|(metric, dims)| json!({ "metric": metric, "dimensions": dims_json(dims) }))
        .collect();
    Ok(json!({ "series": series }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse() {
        assert_eq!(parse_since("15m"), Ok(900));
        assert_eq!(parse_since("2d"), Ok(172_800));
        assert_eq!(parse_since("90"), Ok(90));
        assert!(parse_since("1w").is_err());
        assert_eq!(parse_time("1795676364"), Ok(1_795_676_364));
        assert_eq!(parse_time("2026-11-26T06:59:24Z"), Ok(1_795_676_364));
        assert!(parse_time("yesterday").is_err());
    }
}
