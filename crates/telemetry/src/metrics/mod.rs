//! Metrics: statistic sets with mergeable latency sketches, and their dimensions.

mod dimensions;
mod statistic;

pub use dimensions::Dimensions;
pub use statistic::{DecodeError, SKETCH_RELATIVE_ACCURACY, StatisticSet};
