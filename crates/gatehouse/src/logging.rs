//! Gatehouse's own logs (not the access log): human-readable or JSON lines on stderr, so that
//! stdout stays free for the access log, and, once the store is open, the same events as JSON in
//! the store's `gateway` log group (queryable and tailable like the access logs).
//!
//! The store copy goes through a bounded channel to a thread of its own, so logging never waits
//! on the store; a full channel drops the line and counts it. Events logged before the store
//! opens (start-up) are only on stderr.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_store::{LogBatch, LogWriter};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use crate::LogFormat;
use crate::tail::TailHub;

/// The store's log group for the gateway's own logs.
pub(crate) const GATEWAY_GROUP: &str = "gateway";

/// Lines waiting for the store thread; beyond this they are dropped and counted.
const QUEUE: usize = 4096;

/// Whether the store copy is connected; checked before an event is formatted for it.
static CONNECTED: AtomicBool = AtomicBool::new(false);
static TAP: OnceLock<SyncSender<(i64, String)>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

pub(crate) fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("warning: invalid log filter '{level}' ({error}); using 'info'");
        EnvFilter::new("info")
    });
    let stderr = match format {
        LogFormat::Text => fmt::layer().with_writer(io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(io::stderr)
            .boxed(),
    };
    let store = fmt::layer()
        .json()
        .flatten_event(true)
        .with_ansi(false)
        .with_writer(StoreLine::default)
        .with_filter(filter_fn(|_| CONNECTED.load(Ordering::Relaxed)));
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(store)
        .init();
}

/// Starts copying the gateway's own log events into the store's `gateway` group (and to live-tail
/// followers). Only the first call connects; a process has one store.
pub(crate) fn connect_store(writer: LogWriter, tail: TailHub) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    if TAP.set(tx).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("gatehouse-own-logs".into())
        .spawn(move || forward(rx, &writer, &tail));
    match spawned {
        Ok(_) => CONNECTED.store(true, Ordering::Relaxed),
        Err(error) => {
            eprintln!("warning: cannot start the thread that stores Gatehouse's own logs: {error}")
        }
    }
}

/// Lines the store copy dropped because its queue was full.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Batches lines for the store: at most every half second, or at 1,000 lines.
fn forward(rx: Receiver<(i64, String)>, writer: &LogWriter, tail: &TailHub) {
    let group: Arc<str> = Arc::from(GATEWAY_GROUP);
    let mut batch = LogBatch::new();
    let mut since = Instant::now();
    loop {
        let closed = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((timestamp_ms, line)) => {
                tail.publish(&group, timestamp_ms, &line);
                batch.push(GATEWAY_GROUP, timestamp_ms, &line);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = batch.len() >= 1000 || since.elapsed() >= Duration::from_millis(500);
        if (due || closed) && !batch.is_empty() {
            let full = std::mem::take(&mut batch);
            if let Err(dropped) = writer.append(full) {
                DROPPED.fetch_add(dropped.events as u64, Ordering::Relaxed);
            }
            since = Instant::now();
        }
        if closed {
            return;
        }
    }
}

/// One formatted event; handed to the store thread when the formatter drops it.
#[derive(Default)]
struct StoreLine(Vec<u8>);

impl io::Write for StoreLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for StoreLine {
    fn drop(&mut self) {
        let Some(tap) = TAP.get() else { return };
        let line = String::from_utf8_lossy(&self.0).trim_end().to_owned();
        if line.is_empty() {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            tap.try_send((now_ms, line))
        {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}
