//! The producer's side of the log store: [`LogBatch`], which a log consumer fills off the request
//! path, and [`LogWriter`], which hands whole batches to the writer thread without blocking.
//!
//! A batch keeps its messages in one `String` and its groups once each, so filling it costs an
//! append per event rather than an allocation, and the writer copies each message exactly once,
//! into its block. Logs may take at most [`MAX_QUEUED_LOG_BATCHES`] slots and
//! [`MAX_QUEUED_LOG_BYTES`] bytes of the writer's queue, so a flood of logs drops logs (counted)
//! and never crowds out metric minutes or alarm transitions.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustc_hash::FxHashMap;

use crate::writer::{QUEUE_CAPACITY, WriteOp, WriterQueue};

/// Messages longer than this are cut to it (at a character boundary), like CloudWatch Logs'
/// limit of 256 KiB per event.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// At most this many log batches wait in the writer's queue: half of it, so metrics and alarms
/// always find room.
pub const MAX_QUEUED_LOG_BATCHES: u64 = QUEUE_CAPACITY as u64 / 2;
/// At most this many message bytes wait in the writer's queue, which bounds the memory a slow
/// disk can make logs hold. A single batch larger than this is still taken when nothing else
/// waits.
pub const MAX_QUEUED_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Log events for any number of groups, on their way to the store.
#[derive(Clone, Debug, Default)]
pub struct LogBatch {
    /// Each group once, in order of first use.
    groups: Vec<Arc<str>>,
    group_index: FxHashMap<Arc<str>, u32>,
    /// The group of the previous push, so runs of one group skip the hash lookup.
    last_group: Option<u32>,
    events: Vec<BatchEvent>,
    text: String,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchEvent {
    pub(crate) group: u32,
    pub(crate) timestamp_ms: i64,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl LogBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `events` events and `text_bytes` bytes of messages.
    pub fn with_capacity(events: usize, text_bytes: usize) -> Self {
        Self {
            events: Vec::with_capacity(events),
            text: String::with_capacity(text_bytes),
            ..Self::default()
        }
    }

    /// Adds one event of `group` (e.g. `access/pets/prod`) at `timestamp_ms` (Unix milliseconds).
    pub fn push(&mut self, group: &str, timestamp_ms: i64, message: &str) {
        self.push_with(group, timestamp_ms, |text| text.push_str(message));
    }

    /// Adds one event whose message `write` appends to the given buffer, so a formatter can
    /// write straight into the batch. `write` must only append.
    pub fn push_with(&mut self, group: &str, timestamp_ms: i64, write: impl FnOnce(&mut String)) {
        let group = self.group_id(group);
        let start = self.text.len();
        write(&mut self.text);
        debug_assert!(self.text.len() >= start, "push_with may only append");
        let start = start.min(self.text.len());
        if self.text.len() - start > MAX_MESSAGE_BYTES {
            let end = self.text.floor_char_boundary(start + MAX_MESSAGE_BYTES);
            self.text.truncate(end);
        }
        self.events.push(BatchEvent {
            group,
            timestamp_ms,
            start,
            end: self.text.len(),
        });
    }

    /// How many events the batch holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch holds no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The bytes of all messages.
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.group_index.clear();
        self.last_group = None;
        self.events.clear();
        self.text.clear();
    }

    /// The events as (group, timestamp, message).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i64, &str)> {
        self.events.iter().map(|event| {
            let group = self
                .groups
                .get(event.group as usize)
                .map_or("", |group| &**group);
            let message = self.text.get(event.start..event.end).unwrap_or_default();
            (group, event.timestamp_ms, message)
        })
    }

    fn group_id(&mut self, group: &str) -> u32 {
        if let Some(last) = self.last_group
            && self
                .groups
                .get(last as usize)
                .is_some_and(|g| **g == *group)
        {
            return last;
        }
        let id = match self.group_index.get(group) {
            Some(&id) => id,
            None => {
                let id = self.groups.len() as u32;
                let name: Arc<str> = Arc::from(group);
                self.groups.push(Arc::clone(&name));
                self.group_index.insert(name, id);
                id
            }
        };
        self.last_group = Some(id);
        id
    }
}

/// A batch the queue had no room for (or the store was closed); its events were counted in
/// [`StoreStats::log_events_dropped`](crate::StoreStats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log batch of {events} events dropped: the store's queue is full or the store is closed")]
pub struct Dropped {
    pub events: usize,
}

/// A cheap, cloneable handle for appending log batches to the store's writer.
#[derive(Clone)]
pub struct LogWriter {
    queue: WriterQueue,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

impl LogWriter {
    pub(crate) fn new(queue: WriterQueue) -> Self {
        Self { queue }
    }

    /// Offers `batch` to the writer. Never blocks: when logs already fill their share of the
    /// queue, or the store is closed, the batch is dropped and its events are counted.
    pub fn append(&self, batch: LogBatch) -> Result<(), Dropped> {
        if batch.is_empty() {
            return Ok(());
        }
        let events = batch.len();
        let bytes = batch.text.len() as u64;
        let counters = self.queue.counters();
        let queued_bytes = counters
            .log_bytes_queued
            .fetch_add(bytes, Ordering::Relaxed);
        let queued_batches = counters.log_batches_queued.fetch_add(1, Ordering::Relaxed);
        let room = queued_batches < MAX_QUEUED_LOG_BATCHES
            && (queued_bytes == 0 || queued_bytes + bytes <= MAX_QUEUED_LOG_BYTES);
        if room && self.queue.offer(WriteOp::Logs(batch)) {
            return Ok(());
        }
        counters
            .log_bytes_queued
            .fetch_sub(bytes, Ordering::Relaxed);
        counters.log_batches_queued.fetch_sub(1, Ordering::Relaxed);
        counters
            .log_events_dropped
            .fetch_add(events as u64, Ordering::Relaxed);
        Err(Dropped { events })
    }

    /// The message bytes appended but not yet taken by the writer. A producer that would rather
    /// wait than drop (a benchmark, a backfill) can pace itself on it.
    pub fn queued_bytes(&self) -> u64 {
        self.queue
            .counters()
            .log_bytes_queued
            .load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_each_group_once_and_events_in_push_order() {
        let mut batch = LogBatch::with_capacity(4, 64);
        batch.push("access/a/prod", 3, "one");
        batch.push("access/a/prod", 1, "two");
        batch.push("execution/a/prod", 2, "three");
        batch.push_with("access/a/prod", 2, |text| text.push_str("four"));
        assert_eq!(batch.groups.len(), 2);
        let events: Vec<_> = batch.iter().collect();
        assert_eq!(
            events,
            [
                ("access/a/prod", 3, "one"),
                ("access/a/prod", 1, "two"),
                ("execution/a/prod", 2, "three"),
                ("access/a/prod", 2, "four"),
            ]
        );
        assert_eq!((batch.len(), batch.text_bytes()), (4, 15));
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.iter().count(), 0);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let mut batch = LogBatch::new();
        let long = "é".repeat(MAX_MESSAGE_BYTES); // two bytes each
        batch.push("g", 0, &long);
        batch.push("g", 1, "next");
        let events: Vec<_> = batch.iter().collect();
        assert_eq!(events[0].2.len(), MAX_MESSAGE_BYTES);
        assert_eq!(events[1].2, "next");
    }
}
