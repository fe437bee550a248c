//! The metrics consumer of the bus: one OS thread that turns exchanges into minute buckets for
//! the store (through a [`MetricSink`]) and into the cumulative Prometheus exposition.
//!
//! Like the access log, the thread drains its queue without parking on the channel and sleeps
//! 10 ms when it is empty, so publishing a record never wakes a thread. A bucket
//! is handed to the sink once its minute has ended and the grace period for late records has
//! passed; when every sender is gone the thread flushes all open buckets and ends.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use super::aggregate::{MetricPoint, MinuteAggregator};
use super::clock::Clock;
use super::prometheus::{self, Exposition, Recorder};
use super::routes::RouteIndex;
use crate::Exchange;

/// How the consumer aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Distinct dimension sets per minute bucket, and distinct route label sets in the Prometheus
    /// exposition, beyond which records fold into the overflow series (`api=__overflow__`). The
    /// all-traffic series and the overflow series itself do not count.
    pub max_series: usize,
    /// How long after its minute ends a bucket stays open for records that arrive late.
    pub grace: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            max_series: 10_000,
            grace: Duration::from_secs(5),
        }
    }
}

/// Where closed minute buckets go (the store). Called on the consumer's thread; a minute may be
/// written more than once when records arrive after it closed, and the receiver merges.
pub trait MetricSink: Send {
    fn write(&mut self, minute_start_unix: i64, points: Vec<MetricPoint>);
}

impl<F> MetricSink for F
where
    F: FnMut(i64, Vec<MetricPoint>) + Send,
{
    fn write(&mut self, minute_start_unix: i64, points: Vec<MetricPoint>) {
        self(minute_start_unix, points);
    }
}

/// Counters of the consumer's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsStats {
    /// Exchanges aggregated.
    pub records: u64,
    /// Records that went to the overflow series of a minute bucket.
    pub folded_records: u64,
    /// Records counted under the overflow labels of the Prometheus exposition.
    pub prometheus_folded_records: u64,
    /// Records whose minute had already been written; they were written again as a fresh bucket.
    pub late_records: u64,
    /// Calls to [`MetricSink::write`].
    pub minutes_written: u64,
}

#[derive(Default)]
struct AtomicStats {
    records: AtomicU64,
    folded_records: AtomicU64,
    prometheus_folded_records: AtomicU64,
    late_records: AtomicU64,
    minutes_written: AtomicU64,
}

struct Shared {
    exposition: Exposition,
    stats: AtomicStats,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Starts the metrics consumer.
#[derive(Debug)]
pub struct MetricsAggregator;

impl MetricsAggregator {
    /// Starts the consumer thread on `rx`. It ends, after flushing every open bucket to `sink`,
    /// once every sender of `rx` is dropped.
    pub fn spawn(
        rx: mpsc::Receiver<Arc<Exchange>>,
        config: MetricsConfig,
        sink: Box<dyn MetricSink>,
        clock: Arc<dyn Clock>,
    ) -> io::Result<MetricsHandle> {
        let (exposition, prometheus) = prometheus::new();
        let shared = Arc::new(Shared {
            exposition,
            stats: AtomicStats::default(),
            thread: Mutex::new(None),
        });
        let consumer = Consumer {
            rx,
            routes: RouteIndex::new(config.max_series),
            minutes: MinuteAggregator::new(config.max_series, config.grace),
            prometheus,
            sink,
            clock,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("gatehouse-metrics".into())
            .spawn(move || consumer.run())?;
        *lock(&shared.thread) = Some(thread);
        Ok(MetricsHandle { shared })
    }
}

/// The running consumer: renders the Prometheus exposition, takes the open-WebSocket gauge,
/// reports its own counters. Clones share one consumer.
#[derive(Clone)]
pub struct MetricsHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MetricsHandle {
    /// The exposition in the Prometheus text format 0.0.4
    /// ([`PROMETHEUS_CONTENT_TYPE`](super::PROMETHEUS_CONTENT_TYPE)).
    pub fn render_prometheus(&self) -> String {
        self.shared.exposition.render(|_| {})
    }

    /// The exposition followed by metrics owned elsewhere, which `extra` registers into a fresh
    /// registry for this rendering (bus drops via [`register_bus_drops`](super::register_bus_drops),
    /// process metrics). Their names must differ from the consumer's own.
    pub fn render_prometheus_with(&self, extra: impl FnOnce(&mut Registry)) -> String {
        self.shared.exposition.render(extra)
    }

    /// Sets `gatehouse_websocket_open_connections`. Exchanges are published when a connection
    /// closes, so only the proxy knows how many are open.
    pub fn set_open_websockets(&self, open: i64) {
        self.shared.exposition.set_open_websockets(open);
    }

    pub fn stats(&self) -> MetricsStats {
        let stats = &self.shared.stats;
        let load = |counter: &AtomicU64| counter.load(Ordering::Acquire);
        MetricsStats {
            records: load(&stats.records),
            folded_records: load(&stats.folded_records),
            prometheus_folded_records: load(&stats.prometheus_folded_records),
            late_records: load(&stats.late_records),
            minutes_written: load(&stats.minutes_written),
        }
    }

    /// Waits for the thread to flush and end; call after the bus is dropped. Later calls, and
    /// calls on clones, return at once.
    pub fn join(&self) {
        let thread = lock(&self.shared.thread).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("metrics consumer thread panicked");
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long the thread sleeps when its queue is empty; see the access log for why it polls.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// Records taken per batch before buckets are checked for closing (and the Prometheus counts
/// published), so a queue that never runs dry cannot hold a minute open.
const BATCH: usize = 4096;

struct Consumer {
    rx: mpsc::Receiver<Arc<Exchange>>,
    routes: RouteIndex,
    minutes: MinuteAggregator,
    prometheus: Recorder,
    sink: Box<dyn MetricSink>,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
}

impl Consumer {
    fn run(mut self) {
        // Records are taken in batches with `poll_recv_many`, which returns the queue's permits
        // to the senders once per batch (`try_recv` takes the semaphore's lock once per record).
        // Its waker is a no-op: the thread polls, it is never woken.
        let mut context = Context::from_waker(Waker::noop());
        let mut records = Vec::with_capacity(BATCH);
        loop {
            let polled = self.rx.poll_recv_many(&mut context, &mut records, BATCH);
            // `Ready(0)`: every sender is gone and the queue is empty.
            let closed = polled == Poll::Ready(0);
            let mut batch = BatchStats::default();
            for exchange in records.drain(..) {
                self.record(&exchange, &mut batch);
            }
            // Before the counters: a reader that sees the records also sees them in /metrics.
            self.prometheus.flush();
            self.publish(&batch);
            if closed {
                let all = self.minutes.take_all();
                self.write(all);
                return;
            }
            let due = self.minutes.take_due(self.clock.now_unix());
            self.write(due);
            if polled.is_pending() {
                std::thread::sleep(IDLE_POLL);
            }
        }
    }

    fn record(&mut self, exchange: &Exchange, batch: &mut BatchStats) {
        batch.records += 1;
        // Resolved once, used by both outputs.
        let route = self.routes.resolve(exchange);
        let recorded = self.minutes.record(exchange, route);
        if recorded.folded {
            batch.folded += 1;
            self.prometheus.count_minute_bucket_fold();
        }
        batch.late += u64::from(recorded.late);
        let folded = self
            .prometheus
            .record(exchange, route, self.routes.methods());
        batch.prometheus_folded += u64::from(folded);
    }

    fn publish(&self, batch: &BatchStats) {
        if batch.records == 0 {
            return;
        }
        let stats = &self.shared.stats;
        for (counter, n) in [
            (&stats.folded_records, batch.folded),
            (&stats.prometheus_folded_records, batch.prometheus_folded),
            (&stats.late_records, batch.late),
            // Last, so a reader that sees the records also sees what they did.
            (&stats.records, batch.records),
        ] {
            counter.fetch_add(n, Ordering::Release);
        }
    }

    fn write(&mut self, minutes: Vec<(i64, Vec<MetricPoint>)>) {
        for (minute, points) in minutes {
            self.sink.write(minute, points);
            self.shared
                .stats
                .minutes_written
                .fetch_add(1, Ordering::Release);
        }
    }
}

#[derive(Default)]
struct BatchStats {
    records: u64,
    folded: u64,
    prometheus_folded: u64,
    late: u64,
}

#[cfg(test)]
#[path = "consumer_tests.rs"]
mod tests;
