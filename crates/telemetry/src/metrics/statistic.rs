//! One metric data point: a statistic set (sample count, sum, min, max) plus, for latencies, a
//! mergeable DDSketch, so percentiles of any period are computed by merging sketches, never by
//! averaging percentiles.
//!
//! This follows CloudWatch's model: every metric is a stream of samples. `Count` adds a sample of
//! 1 per request, `4XXError` a sample of 0 or 1 per request (so its Average is the error rate),
//! `Latency` a sample of the latency in milliseconds.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// The relative accuracy of every sketch: quantiles are within 1 % of the true value.
pub const SKETCH_RELATIVE_ACCURACY: f64 = 0.01;
/// Upper bound on sketch bins; with 1 % accuracy this covers 1 µs … over 10 days in ms.
const SKETCH_MAX_BINS: u32 = 2048;
/// The smallest value a sketch distinguishes from zero (milliseconds).
const SKETCH_MIN_VALUE: f64 = 1.0e-3;

fn sketch_config() -> Config {
    Config::new(SKETCH_RELATIVE_ACCURACY, SKETCH_MAX_BINS, SKETCH_MIN_VALUE)
}

/// A statistic set, optionally with a sketch of its samples.
#[derive(Clone, Serialize, Deserialize)]
pub struct StatisticSet {
    pub sample_count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    sketch: Option<DDSketch>,
}

impl std::fmt::Debug for StatisticSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatisticSet")
            .field("sample_count", &self.sample_count)
            .field("sum", &self.sum)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("sketch", &self.sketch.is_some())
            .finish()
    }
}

/// Why a stored statistic could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid stored statistic: {0}")]
pub struct DecodeError(#[from] postcard::Error);

impl StatisticSet {
    /// An empty set whose samples are only counted and summed (counts, bytes).
    pub fn counter() -> Self {
        Self {
            sample_count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: None,
        }
    }

    /// An empty set that also keeps a sketch of its samples (latencies), for percentiles.
    pub fn distribution() -> Self {
        Self {
            sketch: Some(DDSketch::new(sketch_config())),
            ..Self::counter()
        }
    }

    pub fn has_sketch(&self) -> bool {
        self.sketch.is_some()
    }

    /// Adds one sample.
    pub fn add(&mut self, value: f64) {
        self.sample_count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if let Some(sketch) = &mut self.sketch {
            sketch.add(value);
        }
    }

    /// Merges another set of the same metric into this one (minute → 5 minutes → hour, or one
    /// node's data into another's).
    pub fn merge(&mut self, other: &StatisticSet) {
        self.sample_count += other.sample_count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match (&mut self.sketch, &other.sketch) {
            (Some(mine), Some(theirs)) => {
                // Both sketches share one configuration, so merging cannot fail.
                let _ = mine.merge(theirs);
            }
            (None, Some(theirs)) if self.sample_count == other.sample_count => {
                self.sketch = Some(theirs.clone());
            }
            _ => {}
        }
    }

    /// Sum / SampleCount; `None` without samples.
    pub fn average(&self) -> Option<f64> {
        (self.sample_count > 0).then(|| self.sum / self.sample_count as f64)
    }

    /// The `q` quantile (0.0 ..= 1.0) within the sketch's relative accuracy; `None` without a
    /// sketch or samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let sketch = self.sketch.as_ref()?;
        if self.sample_count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        // Quantiles are clamped to the exact extremes the set tracks.
        sketch
            .quantile(q)
            .ok()
            .flatten()
            .map(|v| v.clamp(self.min, self.max))
    }

    /// Compact bytes for storage (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_give_sum_average_min_max() {
        let mut errors = StatisticSet::counter();
        for v in [0.0, 1.0, 0.0, 0.0] {
            errors.add(v);
        }
        assert_eq!(errors.sample_count, 4);
        assert_eq!(errors.sum, 1.0);
        assert_eq!(errors.average(), Some(0.25));
        assert_eq!((errors.min, errors.max), (0.0, 1.0));
        assert_eq!(errors.quantile(0.5), None);
    }

    #[test]
    fn quantiles_stay_within_the_relative_accuracy_after_merge_and_round_trip() {
        let mut a = StatisticSet::distribution();
        let mut b = StatisticSet::distribution();
        let values: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 0.37).collect();
        for (i, v) in values.iter().enumerate() {
            if i % 3 == 0 { a.add(*v) } else { b.add(*v) }
        }
        a.merge(&b);
        let a = StatisticSet::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a.sample_count, 10_000);
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = values[((q * values.len() as f64).ceil() as usize).saturating_sub(1)];
            let estimate = a.quantile(q).unwrap();
            let error = (estimate - exact).abs() / exact;
            assert!(
                error <= SKETCH_RELATIVE_ACCURACY + 1e-9,
                "q={q}: {estimate} vs {exact}"
            );
        }
    }
}
