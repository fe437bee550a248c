//! Trace queries: one trace by id, and the search over the gateway's server spans.

use gatehouse_telemetry::spans::Span;
use rusqlite::{Connection, params};

use super::{MAX_SEARCH_LIMIT, TraceSearch, TraceSummary, class_code, class_from_code};
use crate::StoreError;
use gatehouse_telemetry::spans::Classification;

/// Every stored span of `trace_id`, by start time (parents before children that start with them).
pub(crate) fn trace(conn: &Connection, trace_id: &[u8; 16]) -> Result<Vec<Span>, StoreError> {
    let what = "reading a trace";
    let mut stmt = conn
        .prepare_cached(
            "SELECT data FROM spans WHERE trace_id = ?1 ORDER BY start_ns, parent IS NOT NULL, id",
        )
        .map_err(StoreError::query(what))?;
    let blobs = stmt
        .query_map(params![&trace_id[..]], |row| row.get::<_, Vec<u8>>(0))
        .map_err(StoreError::query(what))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::query(what))?;
    let mut spans = Vec::with_capacity(blobs.len());
    for blob in blobs {
        match postcard::from_bytes::<Span>(&blob) {
            Ok(span) => spans.push(span),
            Err(error) => tracing::warn!(%error, "an unreadable stored span was skipped"),
        }
    }
    Ok(spans)
}

/// The server spans matching `search`, newest first.
pub(crate) fn search(
    conn: &Connection,
    search: &TraceSearch,
) -> Result<Vec<TraceSummary>, StoreError> {
    let what = "searching traces";
    if search.start_unix_nanos >= search.end_unix_nanos {
        return Err(StoreError::InvalidQuery(
            "the search's start must be before its end".into(),
        ));
    }
    let nanos = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let limit = search.limit.clamp(1, MAX_SEARCH_LIMIT) as i64;
    let mut stmt = conn
        .prepare_cached(
            "SELECT s.trace_id, s.span_id, s.name, s.start_ns, s.duration_ns, s.api, s.stage,
                    s.route, s.method, s.status, s.class,
                    (SELECT count(*) FROM spans c WHERE c.trace_id = s.trace_id)
             FROM spans s
             WHERE s.root = 1 AND s.start_ns >= ?1 AND s.start_ns < ?2
               AND (?3 IS NULL OR s.api = ?3) AND (?4 IS NULL OR s.stage = ?4)
               AND (?5 IS NULL OR s.route = ?5) AND (?6 IS NULL OR s.status = ?6)
               AND (?7 = 0 OR s.class = ?8) AND s.duration_ns >= ?9
             ORDER BY s.start_ns DESC, s.id DESC
             LIMIT ?10",
        )
        .map_err(StoreError::query(what))?;
    let rows = stmt
        .query_map(
            params![
                nanos(search.start_unix_nanos),
                nanos(search.end_unix_nanos),
                search.api,
                search.stage,
                search.route,
                search.status,
                search.fault_only,
                class_code(Classification::Fault),
                nanos(search.min_duration_nanos),
                limit,
            ],
            |row| {
                Ok(TraceSummary {
                    trace_id: fixed(row.get_ref(0)?.as_blob()?),
                    span_id: fixed(row.get_ref(1)?.as_blob()?),
                    name: row.get(2)?,
                    start_unix_nanos: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    duration_nanos: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    api: row.get(5)?,
                    stage: row.get(6)?,
                    route: row.get(7)?,
                    method: row.get(8)?,
                    status: row.get(9)?,
                    classification: class_from_code(row.get(10)?),
                    spans: u64::try_from(row.get::<_, i64>(11)?).unwrap_or(0),
                })
            },
        )
        .map_err(StoreError::query(what))?;
    rows.collect::<Result<_, _>>()
        .map_err(StoreError::query(what))
}

/// A blob as a fixed-size id; a blob of the wrong length (never written) reads as zeros.
fn fixed<const N: usize>(blob: &[u8]) -> [u8; N] {
    <[u8; N]>::try_from(blob).unwrap_or([0; N])
}

/// Spans that started in `[start, end)` (Unix nanoseconds), oldest first, at most `limit`; the
/// flag says whether more were there.
pub(crate) fn in_window(
    conn: &Connection,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
    limit: usize,
) -> Result<(Vec<Span>, bool), StoreError> {
    let what = "reading the spans of a window";
    let nanos = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT data FROM spans WHERE start_ns >= ?1 AND start_ns < ?2
             ORDER BY start_ns, id LIMIT ?3",
        )
        .map_err(StoreError::query(what))?;
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let blobs = stmt
        .query_map(
            params![nanos(start_unix_nanos), nanos(end_unix_nanos), fetch],
            |row| row.get::<_, Vec<u8>>(0),
        )
        .map_err(StoreError::query(what))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::query(what))?;
    let capped = blobs.len() > limit;
    let mut spans = Vec::with_capacity(blobs.len().min(limit));
    for blob in blobs.into_iter().take(limit) {
        match postcard::from_bytes::<Span>(&blob) {
            Ok(span) => spans.push(span),
            Err(error) => tracing::warn!(%error, "an unreadable stored span was skipped"),
        }
    }
    Ok((spans, capped))
}
