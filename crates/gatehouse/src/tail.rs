//! Live tail: every log line the gateway stores is also offered to the clients following the
//! logs (`gatehouse logs tail`, the admin API's `/admin/logs/tail`).
//!
//! A broadcast channel with a bounded ring: publishing never blocks and costs one atomic load
//! when nobody is following. A follower that falls behind loses the oldest lines and is told
//! how many (the `dropped` event), and the hub counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

/// How many lines a follower may fall behind before it loses some.
const TAIL_CAPACITY: usize = 4096;

/// One stored log line as followers see it.
#[derive(Debug)]
pub(crate) struct TailLine {
    pub(crate) group: Arc<str>,
    pub(crate) timestamp_ms: i64,
    pub(crate) message: String,
}

/// The fan-out to followers; clones share one channel.
#[derive(Clone, Debug)]
pub(crate) struct TailHub {
    tx: broadcast::Sender<Arc<TailLine>>,
    published: Arc<AtomicU64>,
}

impl Default for TailHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(TAIL_CAPACITY);
        Self {
            tx,
            published: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl TailHub {
    /// Whether anyone follows; callers skip building lines when nobody does.
    pub(crate) fn has_followers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Offers a line to every follower. Never blocks.
    pub(crate) fn publish(&self, group: &Arc<str>, timestamp_ms: i64, message: &str) {
        if !self.has_followers() {
            return;
        }
        let line = Arc::new(TailLine {
            group: Arc::clone(group),
            timestamp_ms,
            message: message.to_owned(),
        });
        if self.tx.send(line).is_ok() {
            self.published.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<TailLine>> {
        self.tx.subscribe()
    }

    /// Followers now, and lines offered to followers so far.
    pub(crate) fn stats(&self) -> (usize, u64) {
        (
            self.tx.receiver_count(),
            self.published.load(Ordering::Relaxed),
        )
    }
}
