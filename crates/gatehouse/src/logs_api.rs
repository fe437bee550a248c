//! The logs side of the admin API: Logs Insights-style queries over the store, the list of log
//! groups, and live tail.
//!
//! A query is parsed first (a malformed one is a 400 whose message points at the position), then
//! run on a blocking thread: the store hands the events of the chosen groups and time range,
//! newest first, to the query's executor, and the scan stops as soon as the executor has all it
//! needs (a `limit` without `sort` or `stats`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gatehouse_admin::{ApiError, LogTail, LogsQuery, TailItem, TailQuery};
use gatehouse_logquery::{EventRef, Filter, Value as QueryValue};
use gatehouse_store::{LogScan, Store};
use serde_json::{Value, json};

use crate::metrics_api::{parse_since, parse_time};
use crate::tail::TailHub;

/// The groups a query reads when it names none: every access log.
pub(crate) const DEFAULT_QUERY_GROUPS: &str = "access/*";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `[start, end)` range of a request in Unix milliseconds: `start`/`end` as Unix seconds or
/// RFC 3339, or `since` back from now (one hour when nothing is given).
pub(crate) fn time_range(
    start: Option<&str>,
    end: Option<&str>,
    since: Option<&str>,
) -> Result<(i64, i64), ApiError> {
    let bad = ApiError::BadRequest;
    let end_ms = match end {
        Some(text) => parse_time(text).map_err(bad)? * 1000,
        // Inclusive of events stamped this very millisecond.
        None => now_ms() + 1,
    };
    let start_ms = match (start, since) {
        (Some(text), _) => parse_time(text).map_err(bad)? * 1000,
        (None, Some(since)) => end_ms - parse_since(since).map_err(bad)? * 1000,
        (None, None) => end_ms - 3_600_000,
    };
    if start_ms >= end_ms {
        return Err(bad("start must be before end".into()));
    }
    Ok((start_ms, end_ms))
}

/// Answers `POST /admin/logs/query`.
pub(crate) async fn query(store: &Store, request: LogsQuery) -> Result<Value, ApiError> {
    let query = gatehouse_logquery::parse(&request.query)
        .map_err(|error| ApiError::BadRequest(format!("malformed query: {error}")))?;
    let (start_ms, end_ms) = time_range(
        request.start.as_deref(),
        request.end.as_deref(),
        request.since.as_deref(),
    )?;
    let groups = if request.groups.is_empty() {
        vec![DEFAULT_QUERY_GROUPS.to_owned()]
    } else {
        request.groups.clone()
    };
    let scan = LogScan {
        groups: groups.clone(),
        start_ms,
        end_ms,
        // "The latest N" is what a `limit` without `sort` means, as in Logs Insights.
        newest_first: true,
    };
    let store = store.clone();
    let started = Instant::now();
    let (result, stats) = tokio::task::spawn_blocking(move || {
        let mut executor = query.executor();
        let stats = store.scan_logs(&scan, |event| {
            executor.push(EventRef {
                timestamp_ms: event.timestamp_ms,
                group: event.group,
                message: event.message,
            });
            if executor.is_done() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok::<_, gatehouse_store::StoreError>((executor.finish(), stats))
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("the query task failed: {e}")))?
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let rows: Vec<Value> = result
        .rows
        .iter()
        .map(|row| Value::Array(row.iter().map(query_value_json).collect()))
        .collect();
    Ok(json!({
        "groups": groups,
        "start": crate::logs_api::rfc3339_ms(start_ms),
        "end": crate::logs_api::rfc3339_ms(end_ms),
        "columns": result.columns,
        "rows": rows,
        "statistics": {
            "recordsScanned": result.records_scanned,
            "recordsMatched": result.records_matched,
            "bytesScanned": stats.bytes_decoded,
            "blocksRead": stats.blocks_read,
            "elapsedMs": started.elapsed().as_millis() as u64,
        },
    }))
}

fn query_value_json(value: &QueryValue) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(crate) fn rfc3339_ms(ms: i64) -> String {
    gatehouse_logquery::rfc3339(ms)
}

/// Answers `GET /admin/logs/groups`.
pub(crate) async fn groups(store: &Store) -> Result<Value, ApiError> {
    let store = store.clone();
    let groups = tokio::task::spawn_blocking(move || store.log_groups())
        .await
        .map_err(|e| ApiError::Unavailable(format!("the listing task failed: {e}")))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let groups: Vec<Value> = groups
        .iter()
        .map(|group| {
            json!({
                "name": group.name,
                "retentionDays": group.retention_days,
                "events": group.events,
                "storedBytes": group.stored_bytes,
                "rawBytes": group.raw_bytes,
                "firstEvent": group.first_event_ms.map(rfc3339_ms),
                "lastEvent": group.last_event_ms.map(rfc3339_ms),
            })
        })
        .collect();
    Ok(json!({ "groups": groups }))
}

/// Answers `GET /admin/logs/tail`: the events appended from now on to the groups that match
/// `group` (an exact name or a prefix ending in `*`; every group when absent) and, if given, the
/// filter expression.
pub(crate) fn tail(hub: &TailHub, request: TailQuery) -> Result<LogTail, ApiError> {
    let filter: Option<Filter> = match request.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(text) => Some(
            gatehouse_logquery::parse_filter(text)
                .map_err(|error| ApiError::BadRequest(format!("malformed filter: {error}")))?,
        ),
        None => None,
    };
    let pattern: Arc<str> = Arc::from(request.group.as_deref().unwrap_or("*"));
    let mut lines = hub.subscribe();
    let stream = async_stream_lines(move |yield_item| {
        let pattern = Arc::clone(&pattern);
        let filter = filter.clone();
        async move {
            loop {
                // A follower that went away is noticed at once, not at the next matching line.
                let received = tokio::select! {
                    () = yield_item.closed() => return,
                    received = lines.recv() => received,
                };
                match received {
                    Ok(line) => {
                        if !group_matches(&pattern, &line.group) {
                            continue;
                        }
                        let event = EventRef {
                            timestamp_ms: line.timestamp_ms,
                            group: &line.group,
                            message: &line.message,
                        };
                        if filter.as_ref().is_some_and(|f| !f.matches(event)) {
                            continue;
                        }
                        let item = TailItem::Event(json!({
                            "timestamp": rfc3339_ms(line.timestamp_ms),
                            "group": &*line.group,
                            "message": line.message,
                        }));
                        if yield_item.send(item).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        if yield_item.send(TailItem::Dropped(missed)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(stream)
}

/// Turns a producer task into a stream through a small channel; the task ends when the stream
/// (the client's connection) is dropped.
fn async_stream_lines<F, Fut>(producer: F) -> LogTail
where
    F: FnOnce(tokio::sync::mpsc::Sender<TailItem>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(tx));
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Whether `group` matches an exact name or a prefix pattern ending in `*`.
pub(crate) fn group_matches(pattern: &str, group: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => group.starts_with(prefix),
        None => group == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_patterns_match_exact_names_and_prefixes() {
        assert!(group_matches("*", "gateway"));
        assert!(group_matches("access/*", "access/pets/prod"));
        assert!(!group_matches("access/*", "execution/pets/prod"));
        assert!(group_matches("access/pets/prod", "access/pets/prod"));
        assert!(!group_matches("access/pets/prod", "access/pets/prod2"));
    }

    #[test]
    fn time_ranges_default_to_the_last_hour_and_refuse_inverted_ones() {
        let (start, end) = time_range(None, None, None).unwrap();
        assert_eq!(end - start, 3_600_000);
        let (start, end) = time_range(None, None, Some("15m")).unwrap();
        assert_eq!(end - start, 900_000);
        let (start, end) = time_range(Some("100"), Some("160"), None).unwrap();
        assert_eq!((start, end), (100_000, 160_000));
        assert!(time_range(Some("160"), Some("100"), None).is_err());
    }
}
