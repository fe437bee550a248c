//! The statistics a metric query asks for, CloudWatch's names: `Sum`, `Average`, `Minimum`,
//! `Maximum`, `SampleCount` and percentiles `pNN` (`p50`, `p99`, `p99.9`).

use std::fmt;
use std::str::FromStr;

use super::StatisticSet;

/// One statistic of a [`StatisticSet`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    Sum,
    Average,
    Minimum,
    Maximum,
    SampleCount,
    /// A percentile in (0, 100), e.g. 99.9.
    Percentile(f64),
}

impl Statistic {
    /// The statistic's value for one data point; `None` when it has no samples (or, for a
    /// percentile, no sketch).
    pub fn evaluate(self, stats: &StatisticSet) -> Option<f64> {
        if stats.sample_count == 0 {
            return None;
        }
        match self {
            Self::Sum => Some(stats.sum),
            Self::Average => stats.average(),
            Self::Minimum => Some(stats.min),
            Self::Maximum => Some(stats.max),
            Self::SampleCount => Some(stats.sample_count as f64),
            Self::Percentile(p) => stats.quantile(p / 100.0),
        }
    }
}

/// Why a statistic name was not understood.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown statistic '{0}': use Sum, Average, Minimum, Maximum, SampleCount or pNN (p50, p99, p99.9)"
)]
pub struct UnknownStatistic(String);

impl FromStr for Statistic {
    type Err = UnknownStatistic;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownStatistic(text.to_owned());
        Ok(match text.to_ascii_lowercase().as_str() {
            "sum" => Self::Sum,
            "average" | "avg" => Self::Average,
            "minimum" | "min" => Self::Minimum,
            "maximum" | "max" => Self::Maximum,
            "samplecount" | "count" => Self::SampleCount,
            other => {
                let p: f64 = other
                    .strip_prefix('p')
                    .ok_or_else(unknown)?
                    .parse()
                    .map_err(|_| unknown())?;
                if !(p > 0.0 && p < 100.0) {
                    return Err(unknown());
                }
                Self::Percentile(p)
            }
        })
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sum => f.write_str("Sum"),
            Self::Average => f.write_str("Average"),
            Self::Minimum => f.write_str("Minimum"),
            Self::Maximum => f.write_str("Maximum"),
            Self::SampleCount => f.write_str("SampleCount"),
            Self::Percentile(p) => write!(f, "p{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_evaluate() {
        let mut set = StatisticSet::distribution();
        for v in 1..=100 {
            set.add(f64::from(v));
        }
        let cases = [
            ("Sum", Some(5050.0)),
            ("average", Some(50.5)),
            ("Minimum", Some(1.0)),
            ("max", Some(100.0)),
            ("SampleCount", Some(100.0)),
        ];
        for (name, expected) in cases {
            let stat: Statistic = name.parse().unwrap();
            assert_eq!(stat.evaluate(&set), expected, "{name}");
        }
        let p99: Statistic = "p99".parse().unwrap();
        assert_eq!(p99, Statistic::Percentile(99.0));
        let value = p99.evaluate(&set).unwrap();
        assert!((value - 99.0).abs() <= 99.0 * 0.01 + 1e-9, "{value}");
        assert_eq!("p99.9".parse::<Statistic>().unwrap().to_string(), "p99.9");
        for bad in ["p0", "p100", "median", "p", "pxx"] {
            assert!(bad.parse::<Statistic>().is_err(), "{bad}");
        }
        assert_eq!(Statistic::Sum.evaluate(&StatisticSet::counter()), None);
    }
}
