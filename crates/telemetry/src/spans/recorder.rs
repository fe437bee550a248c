//! The trace recorder: a bus consumer on its own OS thread that turns each sampled, traced
//! exchange into a [`TracedExchange`] and hands them to a [`TraceSink`] (the store, and the OTLP
//! exporter when one is configured; implemented by the binary).
//!
//! Like the access log and the metrics consumer it drains its queue on a 10 ms poll rather than
//! parking on it, so publishing a record never wakes a thread. It hands a batch over once its
//! first exchange has waited [`HAND_OVER_AFTER`] (or the batch is full, or the bus closed): the
//! store lets traces linger a second anyway, and each hand-over wakes the store's writer. It builds no spans: the record is a copy of the exchange's span-relevant facts, and spans
//! are built from it when they are read (or exported). Its bus queue is filtered
//! ([`is_sampled`](super::is_sampled)), so unsampled requests never reach it; exchanges without
//! trace ids (`Exchange::trace` is `None`) or not sampled that do arrive yield nothing.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Span, TracedExchange, is_sampled};
use crate::Exchange;

/// How long the recorder sleeps when its queue is empty.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// A batch is handed over once it holds this many exchanges, even if more are queued...
const MAX_BATCH_EXCHANGES: usize = 1024;
/// ...or once its first exchange has waited this long.
const HAND_OVER_AFTER: Duration = Duration::from_millis(100);

/// Where the recorder's batches go. Called on the recorder's thread only; it must not block for
/// long (queue, and count what a full queue drops).
pub trait TraceSink: Send {
    /// One batch of traced exchanges.
    fn write(&mut self, traced: Vec<TracedExchange>);
}

impl<F> TraceSink for F
where
    F: FnMut(Vec<TracedExchange>) + Send,
{
    fn write(&mut self, traced: Vec<TracedExchange>) {
        self(traced);
    }
}

/// Where spans go: the OTLP exporter. Called on one thread; it must not block for long.
pub trait SpanSink: Send {
    /// One batch of spans, of any number of traces.
    fn write(&mut self, spans: Vec<Span>);
}

/// The recorder's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Exchanges turned into spans.
    pub traced: u64,
    /// Exchanges skipped: no trace ids, or not sampled.
    pub skipped: u64,
    /// Spans the traced exchanges yield (built when they are read).
    pub spans: u64,
}

#[derive(Default)]
struct Counters {
    traced: AtomicU64,
    skipped: AtomicU64,
    spans: AtomicU64,
}

/// The running recorder.
pub struct TraceRecorder {
    thread: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for TraceRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceRecorder").finish_non_exhaustive()
    }
}

impl TraceRecorder {
    /// Starts the thread; it ends, after handing over what it holds, once every sender of `rx`
    /// is dropped.
    pub fn spawn(rx: mpsc::Receiver<Arc<Exchange>>, sink: Box<dyn TraceSink>) -> io::Result<Self> {
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("gatehouse-traces".into())
            .spawn(move || run(rx, sink, &thread_counters))?;
        Ok(Self { thread, counters })
    }

    pub fn stats(&self) -> RecorderStats {
        stats(&self.counters)
    }

    /// A function that reads the counters, for status pages, without holding the recorder.
    pub fn stats_reader(&self) -> impl Fn() -> RecorderStats + Send + Sync + 'static {
        let counters = Arc::clone(&self.counters);
        move || stats(&counters)
    }

    /// Waits for the thread to hand over its last batch and end; call after the bus is dropped.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("trace recorder thread panicked");
        }
    }
}

fn stats(counters: &Counters) -> RecorderStats {
    RecorderStats {
        traced: counters.traced.load(Ordering::Relaxed),
        skipped: counters.skipped.load(Ordering::Relaxed),
        spans: counters.spans.load(Ordering::Relaxed),
    }
}

fn run(mut rx: mpsc::Receiver<Arc<Exchange>>, mut sink: Box<dyn TraceSink>, counters: &Counters) {
    let mut batch = Vec::with_capacity(64);
    let mut since = None;
    loop {
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(exchange) => {
                    let traced = is_sampled(&exchange)
                        .then(|| TracedExchange::from_exchange(&exchange))
                        .flatten();
                    match traced {
                        Some(traced) => {
                            since.get_or_insert_with(Instant::now);
                            batch.push(traced);
                        }
                        None => {
                            counters.skipped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if batch.len() >= MAX_BATCH_EXCHANGES {
                        hand_over(&mut batch, &mut *sink, counters);
                        since = None;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            hand_over(&mut batch, &mut *sink, counters);
            return;
        }
        if since.is_some_and(|since: Instant| since.elapsed() >= HAND_OVER_AFTER) {
            hand_over(&mut batch, &mut *sink, counters);
            since = None;
        }
        std::thread::sleep(IDLE_POLL);
    }
}

fn hand_over(batch: &mut Vec<TracedExchange>, sink: &mut dyn TraceSink, counters: &Counters) {
    if batch.is_empty() {
        return;
    }
    let spans: usize = batch.iter().map(TracedExchange::span_count).sum();
    counters
        .traced
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    counters.spans.fetch_add(spans as u64, Ordering::Relaxed);
    sink.write(std::mem::replace(batch, Vec::with_capacity(64)));
}
