//! The trace recorder: a bus consumer on its own OS thread that turns each sampled, traced
//! exchange into spans and hands them to a [`SpanSink`] (the store, implemented by the binary).
//!
//! Like the access log and the metrics consumer it drains its queue on a 10 ms poll rather than
//! parking on it, so publishing a record never wakes a thread, and it hands over one batch per
//! poll. Building spans allocates, which is why it happens here and not on the request path.
//! Exchanges without trace ids (`Exchange::trace` is `None`) or not sampled yield nothing.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Span, spans_from_exchange};
use crate::Exchange;

/// How long the recorder sleeps when its queue is empty.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// A batch is handed over once it holds this many spans, even if more are queued.
const MAX_BATCH_SPANS: usize = 4096;

/// Where spans go. Called on the recorder's thread only; it must not block for long (queue, and
/// count what a full queue drops).
pub trait SpanSink: Send {
    /// One batch of spans, of any number of traces.
    fn write(&mut self, spans: Vec<Span>);
}

impl<F> SpanSink for F
where
    F: FnMut(Vec<Span>) + Send,
{
    fn write(&mut self, spans: Vec<Span>) {
        self(spans);
    }
}

/// The recorder's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Exchanges turned into spans.
    pub traced: u64,
    /// Exchanges skipped: no trace ids, or not sampled.
    pub skipped: u64,
    /// Spans handed to the sink.
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
    pub fn spawn(rx: mpsc::Receiver<Arc<Exchange>>, sink: Box<dyn SpanSink>) -> io::Result<Self> {
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

fn run(mut rx: mpsc::Receiver<Arc<Exchange>>, mut sink: Box<dyn SpanSink>, counters: &Counters) {
    let mut batch = Vec::new();
    loop {
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(exchange) => {
                    if exchange.trace.is_some_and(|trace| trace.sampled) {
                        batch.extend(spans_from_exchange(&exchange));
                        counters.traced.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    if batch.len() >= MAX_BATCH_SPANS {
                        hand_over(&mut batch, &mut *sink, counters);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        hand_over(&mut batch, &mut *sink, counters);
        if closed {
            return;
        }
        std::thread::sleep(IDLE_POLL);
    }
}

fn hand_over(batch: &mut Vec<Span>, sink: &mut dyn SpanSink, counters: &Counters) {
    if batch.is_empty() {
        return;
    }
    counters
        .spans
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    sink.write(std::mem::take(batch));
}
