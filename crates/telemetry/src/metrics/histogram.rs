//! The duration histograms of the Prometheus exposition, split so the consumer pays no lock and
//! no atomic per observation: it counts into a [`LocalHistogram`] it owns, and adds that to the
//! [`SharedHistogram`] the exposition renders once per batch of records.
//!
//! `prometheus-client`'s own `Histogram` takes a mutex and scans its buckets linearly on every
//! observation, twice per request here. The shared side keeps the same layout (per-bucket counts
//! with a final `+Inf` bucket) and encodes through the same encoder call, so the text is the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::names::prometheus::DURATION_BUCKETS_SECONDS;

/// The duration buckets plus the `+Inf` bucket.
const BUCKETS: usize = DURATION_BUCKETS_SECONDS.len() + 1;

/// Observations not yet published, owned by the consumer thread.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LocalHistogram {
    /// Per bucket, not cumulative; the last is `+Inf`.
    counts: [u64; BUCKETS],
    sum: f64,
}

impl LocalHistogram {
    /// Counts one observation in seconds in the first bucket whose upper bound is at least it.
    pub(crate) fn observe(&mut self, seconds: f64) {
        let bucket = DURATION_BUCKETS_SECONDS.partition_point(|bound| *bound < seconds);
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|count| *count == 0)
    }
}

#[derive(Debug)]
struct SharedState {
    /// (upper bound, count in that bucket alone), as `prometheus-client` encodes them.
    buckets: [(f64, u64); BUCKETS],
    sum: f64,
}

/// A histogram in the exposition; clones share one.
#[derive(Debug, Clone)]
pub(crate) struct SharedHistogram {
    state: Arc<Mutex<SharedState>>,
}

impl Default for SharedHistogram {
    fn default() -> Self {
        let buckets = std::array::from_fn(|i| {
            (
                DURATION_BUCKETS_SECONDS
                    .get(i)
                    .copied()
                    .unwrap_or(f64::INFINITY),
                0,
            )
        });
        Self {
            state: Arc::new(Mutex::new(SharedState { buckets, sum: 0.0 })),
        }
    }
}

impl SharedHistogram {
    /// Adds the observations of `local` and empties it.
    pub(crate) fn publish(&self, local: &mut LocalHistogram) {
        if local.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        for ((_, shared), count) in state.buckets.iter_mut().zip(local.counts) {
            *shared += count;
        }
        state.sum += local.sum;
        drop(state);
        *local = LocalHistogram::default();
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (each update is a few
/// additions that cannot panic).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TypedMetric for SharedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SharedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, sum) = {
            let state = lock(&self.state);
            (state.buckets, state.sum)
        };
        // The count is the sum of the buckets read at the same time, so `_count` always equals
        // the `+Inf` bucket.
        let count = buckets.iter().map(|(_, count)| count).sum();
        encoder.encode_histogram(
            sum,
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::prometheus_text;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    fn render(name: &'static str, metric: impl prometheus_client::registry::Metric) -> String {
        let mut registry = Registry::default();
        registry.register(name, "help", metric);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn renders_what_prometheus_clients_own_histogram_renders() {
        let values = [
            0.0, 0.001, 0.005, 0.0050001, 0.01, 0.3, 1.0, 2.5, 29.9, 30.0, 31.0, 1e9,
        ];
        let reference = Histogram::new(DURATION_BUCKETS_SECONDS);
        let shared = SharedHistogram::default();
        let mut local = LocalHistogram::default();
        for (i, value) in values.into_iter().enumerate() {
            reference.observe(value);
            local.observe(value);
            // Publish in uneven batches.
            if i % 5 == 2 {
                shared.publish(&mut local);
                assert!(local.is_empty());
            }
        }
        shared.publish(&mut local);
        assert_eq!(render("d", shared), render("d", reference));
    }

    #[test]
    fn an_empty_publish_changes_nothing() {
        let shared = SharedHistogram::default();
        let before = render("d", shared.clone());
        shared.publish(&mut LocalHistogram::default());
        assert_eq!(render("d", shared), before);
    }
}
