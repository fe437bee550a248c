//! Trace queries over the blocks: one trace by id, the search over requests, and a window of
//! spans for the service graph.
//!
//! A trace is found through the trace index (`index.rs`: its key's blocks) and read from those
//! blocks only.
//! The search and the window choose blocks by their summary columns from the covering index
//! `trace_blocks_by_start` without touching a blob, then decode blocks one at a time, newest
//! first (search) or oldest first (window), and stop as soon as no block left can change the
//! answer. Ties in time are broken by block, then by position in the block (arrival order), so
//! answers are the same on every run.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use gatehouse_telemetry::spans::{Classification, Span, TracedExchange, attr};
use rusqlite::{Connection, OptionalExtension, params};

use super::block::{Decoded, DecodedBlock, decode_entry};
use super::index;
use super::{MAX_SEARCH_LIMIT, TraceSearch, TraceSummary, class_code};
use crate::StoreError;

fn nanos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads and decodes block `id` into `block`; `false` (and a warning) when it is gone or
/// unreadable.
fn load(
    conn: &Connection,
    id: i64,
    block: &mut DecodedBlock,
    what: &'static str,
) -> Result<bool, StoreError> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM trace_blocks WHERE id = ?1")
        .map_err(StoreError::query(what))?
        .query_row(params![id], |row| row.get(0))
        .optional()
        .map_err(StoreError::query(what))?;
    let Some(data) = data else {
        return Ok(false);
    };
    match block.decode_from(&data) {
        Ok(()) => Ok(true),
        Err(error) => {
            tracing::warn!(%error, block = id, "an unreadable trace block was skipped");
            Ok(false)
        }
    }
}

/// The blocks that may hold entries of `trace_id`, oldest first.
fn blocks_of(
    conn: &Connection,
    trace_id: &[u8; 16],
    what: &'static str,
) -> Result<Vec<i64>, StoreError> {
    index::blocks_of(conn, trace_id).map_err(StoreError::query(what))
}

/// Every stored span of `trace_id`, by start time (parents before children that start with them).
pub(crate) fn trace(conn: &Connection, trace_id: &[u8; 16]) -> Result<Vec<Span>, StoreError> {
    let what = "reading a trace";
    let mut block = DecodedBlock::default();
    let mut spans = Vec::new();
    for id in blocks_of(conn, trace_id, what)? {
        if !load(conn, id, &mut block, what)? {
            continue;
        }
        for (i, entry) in block.entries().iter().enumerate() {
            if entry.trace_id != *trace_id {
                continue;
            }
            let Some(decoded) = decode_entry(entry.kind, block.payload(i)) else {
                continue;
            };
            for (n, span) in decoded.spans().into_iter().enumerate() {
                spans.push(((id, i, n), span));
            }
        }
    }
    spans.sort_by(|(a_at, a), (b_at, b)| {
        let key = |span: &Span| (span.start_unix_nanos, span.parent_span_id.is_some());
        key(a).cmp(&key(b)).then(a_at.cmp(b_at))
    });
    Ok(spans.into_iter().map(|(_, span)| span).collect())
}

/// The facts of a request (a root entry) that a search filters on.
struct Root<'a> {
    span_id: [u8; 8],
    start: u64,
    duration: u64,
    api: Option<&'a str>,
    stage: Option<&'a str>,
    route: Option<&'a str>,
    method: Option<&'a str>,
    status: Option<u16>,
    class: Classification,
}

impl<'a> Root<'a> {
    fn of_exchange(traced: &'a TracedExchange) -> Self {
        let route = traced.route.as_ref();
        Self {
            span_id: traced.span_id,
            start: traced.start_unix_nanos,
            duration: traced.duration_nanos(),
            api: route.map(|r| &*r.api),
            stage: route.map(|r| &*r.stage),
            route: route.map(|r| &*r.resource_path),
            method: traced.method.as_ref().map(|m| m.as_str()),
            status: Some(traced.status),
            class: traced.classification(),
        }
    }

    fn of_span(span: &'a Span) -> Self {
        Self {
            span_id: span.span_id,
            start: span.start_unix_nanos,
            duration: span.duration_nanos(),
            api: span.attribute_str(attr::API),
            stage: span.attribute_str(attr::STAGE),
            route: span.attribute_str(attr::HTTP_ROUTE),
            method: span.attribute_str(attr::HTTP_REQUEST_METHOD),
            status: span
                .attribute_int(attr::HTTP_RESPONSE_STATUS_CODE)
                .and_then(|n| u16::try_from(n).ok()),
            class: span.classification,
        }
    }

    fn matches(&self, search: &TraceSearch) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| have == Some(want))
        };
        self.start >= search.start_unix_nanos
            && self.start < search.end_unix_nanos
            && same(&search.api, self.api)
            && same(&search.stage, self.stage)
            && same(&search.route, self.route)
            && search
                .status
                .is_none_or(|status| self.status == Some(status))
            && (!search.fault_only || self.class == Classification::Fault)
            && self.duration >= search.min_duration_nanos
    }

    fn summary(&self, trace_id: [u8; 16], name: String) -> TraceSummary {
        TraceSummary {
            trace_id,
            span_id: self.span_id,
            name,
            start_unix_nanos: self.start,
            duration_nanos: self.duration,
            api: self.api.map(str::to_owned),
            stage: self.stage.map(str::to_owned),
            route: self.route.map(str::to_owned),
            method: self.method.map(str::to_owned),
            status: self.status,
            classification: self.class,
            spans: 0,
        }
    }
}

/// The summary of a root entry, if it matches `search`.
fn matching_root(
    decoded: &Decoded,
    trace_id: [u8; 16],
    search: &TraceSearch,
) -> Option<TraceSummary> {
    match decoded {
        Decoded::Exchange(traced) => {
            let root = Root::of_exchange(traced);
            root.matches(search)
                .then(|| root.summary(trace_id, traced.name()))
        }
        Decoded::Span(span) => {
            let root = Root::of_span(span);
            root.matches(search)
                .then(|| root.summary(trace_id, span.name.clone()))
        }
    }
}

/// The bits of `root_classes` a block needs for the search to find anything in it.
fn class_mask(search: &TraceSearch) -> u8 {
    let bit = |class| 1u8 << class_code(class);
    match (search.fault_only, search.status) {
        (true, Some(status))
            if gatehouse_telemetry::spans::classify(status) != Classification::Fault =>
        {
            0
        }
        (true, _) => bit(Classification::Fault),
        (false, Some(status)) => bit(gatehouse_telemetry::spans::classify(status)),
        (false, None) => u8::MAX,
    }
}

/// The requests matching `search`, newest first.
pub(crate) fn search(
    conn: &Connection,
    search: &TraceSearch,
) -> Result<Vec<TraceSummary>, StoreError> {
    search_counted(conn, search).map(|(found, _)| found)
}

/// [`search`], and how many blocks its scan read (the count of spans reads more).
pub(crate) fn search_counted(
    conn: &Connection,
    search: &TraceSearch,
) -> Result<(Vec<TraceSummary>, u64), StoreError> {
    let what = "searching traces";
    if search.start_unix_nanos >= search.end_unix_nanos {
        return Err(StoreError::InvalidQuery(
            "the search's start must be before its end".into(),
        ));
    }
    let limit = search.limit.clamp(1, MAX_SEARCH_LIMIT);
    let mut candidates = conn
        .prepare_cached(
            "SELECT id, start_max FROM trace_blocks
             WHERE start_max >= ?1 AND start_min < ?2 AND root_duration_max >= ?3
               AND (root_classes & ?4) != 0
             ORDER BY start_max DESC",
        )
        .map_err(StoreError::query(what))?;
    let mut rows = candidates
        .query(params![
            nanos(search.start_unix_nanos),
            nanos(search.end_unix_nanos),
            nanos(search.min_duration_nanos),
            class_mask(search),
        ])
        .map_err(StoreError::query(what))?;
    // Matches keyed by (start, block, position), newest first once sorted.
    let mut found: Vec<((u64, i64, usize), TraceSummary)> = Vec::new();
    let mut block = DecodedBlock::default();
    let mut blocks_read = 0;
    while let Some(row) = rows.next().map_err(StoreError::query(what))? {
        let id: i64 = row.get(0).map_err(StoreError::query(what))?;
        let start_max = unsigned(row.get(1).map_err(StoreError::query(what))?);
        // Every block left starts no later than this one: once `limit` matches are all newer,
        // none of them can enter the answer.
        if found.len() >= limit && found[limit - 1].0.0 > start_max {
            break;
        }
        if !load(conn, id, &mut block, what)? {
            continue;
        }
        blocks_read += 1;
        for (i, entry) in block.entries().iter().enumerate().rev() {
            let in_range =
                entry.start >= search.start_unix_nanos && entry.start < search.end_unix_nanos;
            if !entry.kind.is_root() || !in_range {
                continue;
            }
            let Some(decoded) = decode_entry(entry.kind, block.payload(i)) else {
                continue;
            };
            if let Some(summary) = matching_root(&decoded, entry.trace_id, search) {
                found.push(((entry.start, id, i), summary));
            }
        }
        found.sort_by(|(a, _), (b, _)| b.cmp(a));
        found.truncate(limit);
    }
    drop(rows);
    let mut summaries: Vec<TraceSummary> = found.into_iter().map(|(_, summary)| summary).collect();
    count_spans(conn, &mut summaries, what)?;
    Ok((summaries, blocks_read))
}

/// Fills each summary's count of the spans stored under its trace id, from the entry headers
/// of the trace's blocks (each block read once).
fn count_spans(
    conn: &Connection,
    summaries: &mut [TraceSummary],
    what: &'static str,
) -> Result<(), StoreError> {
    let mut blocks: HashMap<i64, Option<DecodedBlock>> = HashMap::new();
    for summary in summaries {
        let mut spans = 0;
        for id in blocks_of(conn, &summary.trace_id, what)? {
            if let Entry::Vacant(slot) = blocks.entry(id) {
                let mut block = DecodedBlock::default();
                let loaded = load(conn, id, &mut block, what)?;
                slot.insert(loaded.then_some(block));
            }
            if let Some(Some(block)) = blocks.get(&id) {
                spans += block
                    .entries()
                    .iter()
                    .filter(|entry| entry.trace_id == summary.trace_id)
                    .map(|entry| entry.spans)
                    .sum::<u64>();
            }
        }
        summary.spans = spans;
    }
    Ok(())
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
    let mut candidates: Vec<(u64, i64)> = conn
        .prepare_cached(
            "SELECT start_min, id FROM trace_blocks WHERE start_max >= ?1 AND start_min < ?2",
        )
        .map_err(StoreError::query(what))?
        .query_map(
            params![nanos(start_unix_nanos), nanos(end_unix_nanos)],
            |row| Ok((unsigned(row.get(0)?), row.get(1)?)),
        )
        .map_err(StoreError::query(what))?
        .collect::<Result<_, _>>()
        .map_err(StoreError::query(what))?;
    candidates.sort_unstable();
    // Spans keyed by (start, block, position, index in the entry), oldest first once sorted;
    // at most `limit + 1` are kept, the one past the limit telling that spans were left out.
    let mut found: Vec<((u64, i64, usize, usize), Span)> = Vec::new();
    let mut block = DecodedBlock::default();
    for (start_min, id) in candidates {
        // Every block left starts no earlier than this one.
        if found.len() > limit && found[limit].0.0 < start_min {
            break;
        }
        if !load(conn, id, &mut block, what)? {
            continue;
        }
        for (i, entry) in block.entries().iter().enumerate() {
            if entry.start >= end_unix_nanos {
                break;
            }
            let Some(decoded) = decode_entry(entry.kind, block.payload(i)) else {
                continue;
            };
            for (n, span) in decoded.spans().into_iter().enumerate() {
                let start = span.start_unix_nanos;
                if start >= start_unix_nanos && start < end_unix_nanos {
                    found.push(((start, id, i, n), span));
                }
            }
        }
        if found.len() > limit {
            found.sort_by_key(|&(key, _)| key);
            found.truncate(limit + 1);
        }
    }
    found.sort_by_key(|&(key, _)| key);
    let capped = found.len() > limit;
    found.truncate(limit);
    Ok((found.into_iter().map(|(_, span)| span).collect(), capped))
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
