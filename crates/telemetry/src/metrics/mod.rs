//! Metrics: statistic sets with mergeable latency sketches.

mod statistic;

pub use statistic::{DecodeError, SKETCH_RELATIVE_ACCURACY, StatisticSet};
