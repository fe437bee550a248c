//! The writer thread's side of traces: pending spans, their rows, and the retention sweep.

use gatehouse_telemetry::spans::{Span, SpanKind, attr};
use rusqlite::{Transaction, params};

use super::class_code;
use crate::StoreError;

const DAY_NANOS: i64 = 24 * 60 * 60 * 1_000_000_000;
/// Retention is at most this many days (a hundred years).
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Pending spans are committed once there are this many, without waiting for the queue to drain.
const MAX_PENDING_SPANS: usize = 20_000;

/// The spans taken from the queue and not yet written.
#[derive(Default)]
pub(crate) struct PendingSpans {
    spans: Vec<Span>,
}

impl PendingSpans {
    pub(crate) fn add(&mut self, mut spans: Vec<Span>) {
        if self.spans.is_empty() {
            self.spans = spans;
        } else {
            self.spans.append(&mut spans);
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.spans.len() as u64
    }

    pub(crate) fn is_full(&self) -> bool {
        self.spans.len() >= MAX_PENDING_SPANS
    }

    /// Inserts one row per span. A span whose blob cannot be encoded (it cannot happen with
    /// postcard's in-memory encoder, but is not worth a panic) is skipped and counted.
    pub(crate) fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<(u64, u64)> {
        let mut insert = tx.prepare_cached(
            "INSERT INTO spans (trace_id, span_id, parent, root, start_ns, duration_ns, api,
                                stage, route, method, status, class, name, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let (mut written, mut skipped) = (0, 0);
        for span in &self.spans {
            let Ok(data) = postcard::to_allocvec(span) else {
                skipped += 1;
                continue;
            };
            // A request the gateway served; a service's own server span (sent to the OTLP
            // receiver, so carrying `service.name`) joins its trace but is not listed as one.
            let root =
                span.kind == SpanKind::Server && span.attribute(attr::SERVICE_NAME).is_none();
            let nanos = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            insert.execute(params![
                &span.trace_id[..],
                &span.span_id[..],
                span.parent_span_id.as_ref().map(|p| &p[..]),
                root,
                nanos(span.start_unix_nanos),
                nanos(span.duration_nanos()),
                span.attribute_str(attr::API),
                span.attribute_str(attr::STAGE),
                span.attribute_str(attr::HTTP_ROUTE),
                span.attribute_str(attr::HTTP_REQUEST_METHOD),
                span.attribute_int(attr::HTTP_RESPONSE_STATUS_CODE),
                class_code(span.classification),
                span.name,
                data,
            ])?;
            written += 1;
        }
        Ok((written, skipped))
    }
}

/// Deletes the spans that started more than `days` before `now_ns`. Returns the rows deleted.
pub(crate) fn sweep(tx: &Transaction<'_>, days: u32, now_ns: i64) -> rusqlite::Result<usize> {
    let cutoff = now_ns.saturating_sub(i64::from(days).saturating_mul(DAY_NANOS));
    tx.prepare_cached("DELETE FROM spans WHERE start_ns < ?1")?
        .execute(params![cutoff])
}

/// Checks a retention setting before it goes to the writer.
pub(crate) fn validate_retention(days: u32) -> Result<(), StoreError> {
    if days == 0 || days > MAX_RETENTION_DAYS {
        return Err(StoreError::InvalidQuery(format!(
            "trace retention of {days} days; it must be 1 to {MAX_RETENTION_DAYS} days"
        )));
    }
    Ok(())
}
