//! The trace side of a running gateway: the trace recorder (a bus consumer thread) writing traced
//! exchanges into the store and, when `tracing.otlp` is set, their spans to an OpenTelemetry
//! collector; the store's trace retention; and the counters for `/admin/status`.
//!
//! The recorder runs whenever the store is open. It records only exchanges that carry sampled
//! trace ids (`Exchange::trace`), which the data plane's trace-context phase fills; its bus
//! queue is filtered, so the others never reach it. The store keeps the traced exchanges and
//! builds their spans when they are read; only the exporter needs spans on the write path, so
//! they are built only when it is configured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::Context;
use gatehouse_config::OtlpSettings;
use gatehouse_store::{SpanWriter, Store};
use gatehouse_telemetry::Exchange;
use gatehouse_telemetry::metrics::{OtlpConfig, OtlpHandle, OtlpStats};
use gatehouse_telemetry::spans::{
    RecorderStats, Span, SpanExporter, SpanSink, TraceRecorder, TraceSink, TracedExchange,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

/// Hands each batch to the store's writer, which never blocks; a full queue drops the batch
/// (counted by the store) and the first drop of a run is logged.
struct StoreTraceSink {
    writer: SpanWriter,
    dropping: bool,
}

impl TraceSink for StoreTraceSink {
    fn write(&mut self, traced: Vec<TracedExchange>) {
        match self.writer.append_exchanges(traced) {
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
    otlp: Option<OtlpHandle>,
    status: TracesStatus,
}

/// The recorder's and the store's trace counters, readable without the recorder.
#[derive(Clone)]
pub(crate) struct TracesStatus {
    store: Store,
    recorder: Arc<dyn Fn() -> RecorderStats + Send + Sync>,
    /// Batches the sink handed over; for status only.
    batches: Arc<AtomicU64>,
    /// The OTLP exporter's counters (in batches), when spans are exported.
    otlp: Option<Arc<dyn Fn() -> OtlpStats + Send + Sync>>,
    /// Days spans are kept (`tracing.retention_days`).
    retention_days: Arc<AtomicU32>,
}

impl TracesRuntime {
    /// Sets the trace retention and starts the recorder on `records`, and the OTLP exporter when
    /// `otlp` names a collector.
    pub(crate) async fn start(
        store: Store,
        records: Receiver<Arc<Exchange>>,
        otlp: Option<&OtlpSettings>,
        retention_days: u32,
    ) -> anyhow::Result<Self> {
        let retention_store = store.clone();
        tokio::task::spawn_blocking(move || retention_store.set_trace_retention(retention_days))
            .await
            .context("the trace retention task failed")?
            .context("cannot set the trace retention")?;
        let batches = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&batches);
        let mut sink = StoreTraceSink {
            writer: store.span_writer(),
            dropping: false,
        };
        let (mut exporter, otlp_handle) = match otlp {
            Some(otlp) => {
                let (exporter, handle) = SpanExporter::spawn(OtlpConfig {
                    endpoint: otlp.endpoint.clone(),
                    headers: otlp.headers.clone(),
                    timeout: otlp.timeout,
                    service_name: "gatehouse".into(),
                    service_instance_id: crate::serve::instance_id(),
                })
                .context("cannot start the OTLP trace exporter")?;
                tracing::info!(endpoint = %otlp.endpoint, "exporting spans over OTLP/HTTP");
                (Some(exporter), Some(handle))
            }
            None => (None, None),
        };
        let recorder = TraceRecorder::spawn(
            records,
            Box::new(move |traced: Vec<TracedExchange>| {
                counted.fetch_add(1, Ordering::Relaxed);
                // Both sinks only queue; the exporter gets the batch's spans, the store the
                // batch itself.
                if let Some(exporter) = exporter.as_mut() {
                    let spans: Vec<Span> = traced.iter().flat_map(TracedExchange::spans).collect();
                    exporter.write(spans);
                }
                sink.write(traced);
            }),
        )
        .context("cannot start the trace recorder")?;
        let status = TracesStatus {
            store,
            recorder: Arc::new(recorder.stats_reader()),
            batches,
            otlp: otlp_handle.as_ref().map(|handle| {
                let stats = handle.stats_reader();
                Arc::new(stats) as Arc<dyn Fn() -> OtlpStats + Send + Sync>
            }),
            retention_days: Arc::new(AtomicU32::new(retention_days)),
        };
        Ok(Self {
            recorder,
            otlp: otlp_handle,
            status,
        })
    }

    pub(crate) fn status(&self) -> TracesStatus {
        self.status.clone()
    }

    /// Waits for the recorder to hand over its last spans, then for the exporter to send what
    /// it holds (one attempt per batch); call once the bus is closed.
    pub(crate) fn join(self) {
        self.recorder.join();
        if let Some(otlp) = self.otlp {
            let stats = otlp.join();
            tracing::info!(
                exported = stats.minutes_exported,
                failed = stats.minutes_failed,
                dropped = stats.minutes_dropped,
                "OTLP trace export stopped"
            );
        }
    }
}

impl TracesStatus {
    /// Applies a reloaded `tracing.retention_days` (expired spans go at the next sweep).
    pub(crate) async fn set_retention(&self, days: u32) {
        if self.retention_days.swap(days, Ordering::Relaxed) == days {
            return;
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.set_trace_retention(days)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot apply the trace retention"),
            Err(error) => tracing::warn!(%error, "the trace retention task failed"),
        }
    }

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
            "retentionDays": self.retention_days.load(Ordering::Relaxed),
            "otlp": self.otlp.as_ref().map(|stats| {
                let stats = stats();
                json!({
                    "batchesExported": stats.minutes_exported,
                    "batchesFailed": stats.minutes_failed,
                    "batchesDropped": stats.minutes_dropped,
                    "retries": stats.retries,
                })
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use gatehouse_admin::{ApiError, TracesQuery};
    use gatehouse_store::StoreConfig;
    use gatehouse_telemetry::{
        Decisions, ExchangeKind, IntegrationOutcome, RouteLabels, Timing, TraceIds, new_request_id,
    };

    use super::*;

    fn exchange(trace: Option<TraceIds>, status: u16) -> Exchange {
        Exchange {
            kind: ExchangeKind::Http,
            request_id: new_request_id(),
            trace,
            listener: Arc::from("public"),
            route: Some(RouteLabels {
                api: Arc::from("shop"),
                api_version: Arc::from("v1"),
                stage: Arc::from("prod"),
                resource_path: Arc::from("/items/{id}"),
            }),
            canary: false,
            method: Some(http::Method::GET),
            host: None,
            path: "/prod/items/7".into(),
            protocol: http::Version::HTTP_11,
            tls: false,
            client: "127.0.0.1:4000".parse().unwrap(),
            user_agent: None,
            status,
            error: None,
            error_message: None,
            integration: IntegrationOutcome {
                kind: Some("mock"),
                status: Some(status),
                error: None,
                url: None,
            },
            decisions: Decisions::default(),
            bytes_in: 0,
            bytes_out: 6,
            timing: Timing {
                received_at: SystemTime::now(),
                routed: Some(Duration::from_micros(100)),
                integration_start: Some(Duration::from_micros(200)),
                integration_response: Some(Duration::from_micros(900)),
                integration_end: Some(Duration::from_millis(1)),
                done: Duration::from_millis(2),
            },
            websocket: None,
            execution: None,
        }
    }

    /// The path a traced exchange takes in the binary: bus queue → recorder → store → admin
    /// answers, with hand-built exchanges since the data plane does not fill trace ids yet.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sampled_traced_exchanges_reach_the_store_and_the_admin_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let traces = TracesRuntime::start(store.clone(), rx, None, 7)
            .await
            .unwrap();
        let status = traces.status();
        let ids = |n: u8, sampled| TraceIds {
            trace_id: [n; 16],
            span_id: [n; 8],
            parent_id: None,
            sampled,
        };
        for e in [
            exchange(Some(ids(1, true)), 200),
            exchange(Some(ids(2, true)), 503),
            exchange(Some(ids(3, false)), 200),
            exchange(None, 200),
        ] {
            tx.send(Arc::new(e)).await.unwrap();
        }
        drop(tx);
        tokio::task::spawn_blocking(move || traces.join())
            .await
            .unwrap();
        store.flush().unwrap();

        let counters = status.json();
        assert_eq!(counters["requestsTraced"], 2, "{counters}");
        assert_eq!(counters["requestsSkipped"], 2, "{counters}");
        assert_eq!(counters["spansStored"], 4, "{counters}");

        let trace = crate::traces_api::trace(&store, "1-02020202-020202020202020202020202".into())
            .await
            .unwrap();
        let names: Vec<&str> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["GET /items/{id}", "mock"]);
        assert_eq!(trace["spans"][0]["classification"], "fault");
        assert_eq!(trace["spans"][0]["attributes"]["http.route"], "/items/{id}");
        assert_eq!(trace["spans"][1]["parentSpanId"], "0202020202020202");
        let waterfall = crate::traces_cli::waterfall(&trace);
        assert!(waterfall.contains("  mock"), "{waterfall}");

        let unsampled = crate::traces_api::trace(&store, "03".repeat(16)).await;
        assert!(matches!(unsampled, Err(ApiError::NotFound(_))));

        let query = TracesQuery {
            fault: Some(true),
            since: Some("1h".into()),
            ..TracesQuery::default()
        };
        let found = crate::traces_api::search(&store, query).await.unwrap();
        let found = found["traces"].as_array().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["traceId"], "02".repeat(16));
        assert_eq!(found[0]["spans"], 2);
        store.close();
    }
}
