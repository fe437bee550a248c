//! The telemetry bus: a fan-out of bounded queues, one per consumer.
//!
//! Each consumer gets its own queue so that one slow consumer (a file on a slow disk, say) drops
//! its own records and never costs another consumer anything. Publishing is `try_send` on each
//! queue: it never waits, and every record a full queue refuses is counted for that consumer.
//!
//! A consumer that wants only some records subscribes with a filter
//! ([`BusBuilder::subscribe_filtered`]): records it does not want never enter its queue, so they
//! cost it nothing (the trace recorder wants only sampled requests, a few per cent of them). A
//! filtered-out record is neither delivered nor dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::Exchange;

/// Which records a consumer wants; called on the request path, so it must be a few loads and
/// compares.
pub type ExchangeFilter = fn(&Exchange) -> bool;

struct Consumer {
    name: &'static str,
    tx: mpsc::Sender<Arc<Exchange>>,
    filter: Option<ExchangeFilter>,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

/// Delivery counters of one consumer, for `/metrics` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    pub name: &'static str,
    pub delivered: u64,
    pub dropped: u64,
    pub queued: usize,
}

/// Registers consumers before the bus starts.
#[derive(Debug)]
pub struct BusBuilder {
    capacity: usize,
    consumers: Vec<Consumer>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .finish()
    }
}

impl BusBuilder {
    /// `capacity` is the queue length of each consumer (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            consumers: Vec::new(),
        }
    }

    /// Adds a consumer and returns the receiving end of its queue.
    pub fn subscribe(&mut self, name: &'static str) -> mpsc::Receiver<Arc<Exchange>> {
        self.add(name, None)
    }

    /// Adds a consumer that receives only the records `filter` accepts; the others are neither
    /// delivered nor dropped, and never touch its queue.
    pub fn subscribe_filtered(
        &mut self,
        name: &'static str,
        filter: ExchangeFilter,
    ) -> mpsc::Receiver<Arc<Exchange>> {
        self.add(name, Some(filter))
    }

    fn add(
        &mut self,
        name: &'static str,
        filter: Option<ExchangeFilter>,
    ) -> mpsc::Receiver<Arc<Exchange>> {
        let (tx, rx) = mpsc::channel(self.capacity);
        self.consumers.push(Consumer {
            name,
            tx,
            filter,
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        rx
    }

    pub fn build(self) -> Bus {
        Bus {
            consumers: self.consumers.into(),
        }
    }
}

/// The publishing side of the bus, shared by every connection task.
#[derive(Debug)]
pub struct Bus {
    consumers: Box<[Consumer]>,
}

impl Bus {
    /// A bus with no consumers: records are discarded without being counted as drops.
    pub fn disabled() -> Self {
        BusBuilder::new(1).build()
    }

    /// Offers the record to every consumer that wants it, without waiting.
    pub fn publish(&self, exchange: impl Into<Arc<Exchange>>) {
        if self.consumers.is_empty() {
            return;
        }
        let exchange = exchange.into();
        for consumer in self.consumers.iter() {
            if consumer.filter.is_some_and(|wants| !wants(&exchange)) {
                continue;
            }
            match consumer.tx.try_send(Arc::clone(&exchange)) {
                Ok(()) => consumer.delivered.fetch_add(1, Ordering::Relaxed),
                Err(_) => consumer.dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    /// Current counters of each consumer.
    pub fn stats(&self) -> Vec<ConsumerStats> {
        self.consumers
            .iter()
            .map(|c| ConsumerStats {
                name: c.name,
                delivered: c.delivered.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
                queued: c.tx.max_capacity() - c.tx.capacity(),
            })
            .collect()
    }

    /// Total records dropped across consumers.
    pub fn dropped(&self) -> u64 {
        self.consumers
            .iter()
            .map(|c| c.dropped.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Decisions, ExchangeKind, IntegrationOutcome, Timing, new_request_id};
    use std::time::{Duration, SystemTime};

    pub(crate) fn sample() -> Exchange {
        Exchange {
            kind: ExchangeKind::Http,
            request_id: new_request_id(),
            trace: None,
            listener: Arc::from("default"),
            route: None,
            canary: false,
            method: Some(http::Method::GET),
            host: None,
            path: "/x".into(),
            protocol: http::Version::HTTP_11,
            tls: false,
            client: "127.0.0.1:1234".parse().unwrap(),
            user_agent: None,
            status: 404,
            error: None,
            error_message: None,
            integration: IntegrationOutcome::default(),
            decisions: Decisions::default(),
            bytes_in: 0,
            bytes_out: 10,
            timing: Timing {
                received_at: SystemTime::UNIX_EPOCH,
                routed: None,
                integration_start: None,
                integration_response: None,
                integration_end: None,
                done: Duration::from_micros(1500),
            },
            websocket: None,
            execution: None,
        }
    }

    #[test]
    fn full_queue_drops_and_counts_without_waiting() {
        let mut builder = BusBuilder::new(2);
        let mut slow = builder.subscribe("slow");
        let bus = builder.build();
        for _ in 0..5 {
            bus.publish(sample());
        }
        let stats = &bus.stats()[0];
        assert_eq!((stats.delivered, stats.dropped, stats.queued), (2, 3, 2));
        assert!(slow.try_recv().is_ok());
        bus.publish(sample());
        assert_eq!(bus.stats()[0].delivered, 3);
        assert_eq!(bus.dropped(), 3);
    }

    #[test]
    fn each_consumer_has_its_own_queue() {
        let mut builder = BusBuilder::new(1);
        let _full = builder.subscribe("full");
        let mut drained = builder.subscribe("drained");
        let bus = builder.build();
        bus.publish(sample());
        assert!(drained.try_recv().is_ok());
        bus.publish(sample());
        let stats = bus.stats();
        assert_eq!((stats[0].delivered, stats[0].dropped), (1, 1));
        assert_eq!((stats[1].delivered, stats[1].dropped), (2, 0));
    }

    #[test]
    fn a_filtered_consumer_receives_only_what_it_wants_and_counts_no_drop_for_the_rest() {
        fn not_found(exchange: &Exchange) -> bool {
            exchange.status == 404
        }
        let mut builder = BusBuilder::new(2);
        let mut everything = builder.subscribe("everything");
        let mut wanted = builder.subscribe_filtered("not_found", not_found);
        let bus = builder.build();
        let ok = || Exchange {
            status: 200,
            ..sample()
        };
        for exchange in [ok(), sample(), ok(), ok(), sample(), sample()] {
            bus.publish(exchange);
        }
        let stats = bus.stats();
        // The unfiltered queue of 2 took two and dropped four; the filtered one saw only the
        // three 404s, of which the third found its queue full.
        assert_eq!((stats[0].delivered, stats[0].dropped), (2, 4));
        assert_eq!(
            (stats[1].delivered, stats[1].dropped, stats[1].queued),
            (2, 1, 2)
        );
        assert_eq!(bus.dropped(), 5);
        assert_eq!(wanted.try_recv().unwrap().status, 404);
        assert_eq!(wanted.try_recv().unwrap().status, 404);
        assert!(wanted.try_recv().is_err());
        assert_eq!(everything.try_recv().unwrap().status, 200);
    }
}
