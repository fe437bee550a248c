//! The trace side of a running gateway: the trace recorder (a bus consumer thread) writing spans
//! into the store, its retention, and its counters for `/admin/status`.
//!
//! The recorder runs whenever the store is open. It records only exchanges that carry sampled
//! trace ids (`Exchange::trace`), which the data plane's trace-context phase fills; with none,
//! it records nothing and costs one queue per record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use gatehouse_store::{DEFAULT_TRACE_RETENTION_DAYS, SpanWriter, Store};
use gatehouse_telemetry::Exchange;
use gatehouse_telemetry::spans::{RecorderStats, Span, SpanSink, TraceRecorder};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

/// Hands each batch to the store's writer, which never blocks; a full queue drops the batch
/// (counted by the store) and the first drop of a run is logged.
struct StoreSpanSink {
    writer: SpanWriter,
    dropping: bool,
}

impl SpanSink for StoreSpanSink {
    fn write(&mut self, spans: Vec<Span>) {
        match self.writer.append(spans) {
            Ok(()) => self.dropping = false,
            Err(dropped) => {
                if !self.dropping {
                    tracing::warn!(
                        spans = dropped.spans,
                        "trace store queue full; spans dropped"
                    );
                }
                self.dropping = true;
            }
        }
    }
}

/// The running recorder; [`TracesRuntime::status`] is what the admin API keeps.
pub(crate) struct TracesRuntime {
    recorder: TraceRecorder,
    status: TracesStatus,
}

/// The recorder's and the store's trace counters, readable without the recorder.
#[derive(Clone)]
pub(crate) struct TracesStatus {
    store: Store,
    recorder: Arc<dyn Fn() -> RecorderStats + Send + Sync>,
    /// Batches the sink handed over; for status only.
    batches: Arc<AtomicU64>,
}

impl TracesRuntime {
    /// Sets the trace retention and starts the recorder on `records`.
    pub(crate) async fn start(
        store: Store,
        records: Receiver<Arc<Exchange>>,
    ) -> anyhow::Result<Self> {
        let retention_store = store.clone();
        tokio::task::spawn_blocking(move || {
            retention_store.set_trace_retention(DEFAULT_TRACE_RETENTION_DAYS)
        })
        .await
        .context("the trace retention task failed")?
        .context("cannot set the trace retention")?;
        let batches = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&batches);
        let mut sink = StoreSpanSink {
            writer: store.span_writer(),
            dropping: false,
        };
        let recorder = TraceRecorder::spawn(
            records,
            Box::new(move |spans: Vec<Span>| {
                counted.fetch_add(1, Ordering::Relaxed);
                sink.write(spans);
            }),
        )
        .context("cannot start the trace recorder")?;
        let status = TracesStatus {
            store,
            recorder: Arc::new(recorder.stats_reader()),
            batches,
        };
        Ok(Self { recorder, status })
    }

    pub(crate) fn status(&self) -> TracesStatus {
        self.status.clone()
    }

    /// Waits for the recorder to hand over its last spans; call once the bus is closed.
    pub(crate) fn join(self) {
        self.recorder.join();
    }
}

impl TracesStatus {
    /// The store the trace queries read.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Counters for `/admin/status`.
    pub(crate) fn json(&self) -> Value {
        let recorder = (self.recorder)();
        let store = self.store.stats();
        json!({
            "requestsTraced": recorder.traced,
            "requestsSkipped": recorder.skipped,
            "spansRecorded": recorder.spans,
            "batches": self.batches.load(Ordering::Relaxed),
            "spansStored": store.spans_written,
            "spansDropped": store.spans_dropped,
            "retentionDays": DEFAULT_TRACE_RETENTION_DAYS,
        })
    }
}
