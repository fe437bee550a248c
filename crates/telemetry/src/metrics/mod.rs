//! Metrics: statistic sets with mergeable latency sketches, and their dimensions.

mod dimensions;
mod stat;
mod statistic;

pub use dimensions::Dimensions;
pub use stat::{Statistic, UnknownStatistic};
pub use statistic::{DecodeError, SKETCH_RELATIVE_ACCURACY, StatisticSet};
