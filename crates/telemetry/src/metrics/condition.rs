//! The vocabulary of an alarm's condition, CloudWatch's names for how a datapoint is compared
//! ([`Comparison`]) and what a missing one counts as ([`MissingData`]).
//!
//! They live here, next to [`Statistic`](super::Statistic), because two crates that must not
//! depend on each other both speak them: `config` reads them from the YAML file and the admin
//! API, and `alarms` evaluates with them. Keeping one definition means a new comparison cannot
//! be accepted by one and unknown to the other. Serde names are CloudWatch's exactly
//! (`GreaterThanThreshold`, `notBreaching`); [`FromStr`] also accepts them in any ASCII case.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a datapoint is compared with the threshold or band; a datapoint for which it holds is
/// breaching. The first four go with a static threshold, the last three with an anomaly band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
    LessThanLowerOrGreaterThanUpperThreshold,
    GreaterThanUpperThreshold,
    LessThanLowerThreshold,
}

impl Comparison {
    /// Every comparison, threshold ones first.
    pub const ALL: [Comparison; 7] = [
        Self::GreaterThanThreshold,
        Self::GreaterThanOrEqualToThreshold,
        Self::LessThanThreshold,
        Self::LessThanOrEqualToThreshold,
        Self::LessThanLowerOrGreaterThanUpperThreshold,
        Self::GreaterThanUpperThreshold,
        Self::LessThanLowerThreshold,
    ];

    /// Whether `value` breaches `threshold` (a band comparison treats it as a band of width 0).
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        self.breaches_band(value, threshold, threshold)
    }

    /// Whether `value` breaches the band `[lower, upper]`; a static comparison uses the upper
    /// edge for "greater" and the lower edge for "less".
    pub fn breaches_band(self, value: f64, lower: f64, upper: f64) -> bool {
        match self {
            Self::GreaterThanThreshold => value > upper,
            Self::GreaterThanOrEqualToThreshold => value >= upper,
            Self::LessThanThreshold => value < lower,
            Self::LessThanOrEqualToThreshold => value <= lower,
            Self::LessThanLowerOrGreaterThanUpperThreshold => value < lower || value > upper,
            Self::GreaterThanUpperThreshold => value > upper,
            Self::LessThanLowerThreshold => value < lower,
        }
    }

    /// Whether this comparison is with an anomaly-detection band rather than a threshold.
    pub fn is_band(self) -> bool {
        matches!(
            self,
            Self::LessThanLowerOrGreaterThanUpperThreshold
                | Self::GreaterThanUpperThreshold
                | Self::LessThanLowerThreshold
        )
    }

    /// CloudWatch's name, e.g. `GreaterThanThreshold`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GreaterThanThreshold => "GreaterThanThreshold",
            Self::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Self::LessThanThreshold => "LessThanThreshold",
            Self::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
            Self::LessThanLowerOrGreaterThanUpperThreshold => {
                "LessThanLowerOrGreaterThanUpperThreshold"
            }
            Self::GreaterThanUpperThreshold => "GreaterThanUpperThreshold",
            Self::LessThanLowerThreshold => "LessThanLowerThreshold",
        }
    }

    /// The words used in state reasons, e.g. "greater than".
    pub fn phrase(self) -> &'static str {
        match self {
            Self::GreaterThanThreshold => "greater than",
            Self::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Self::LessThanThreshold => "less than",
            Self::LessThanOrEqualToThreshold => "less than or equal to",
            Self::LessThanLowerOrGreaterThanUpperThreshold => "outside",
            Self::GreaterThanUpperThreshold => "above",
            Self::LessThanLowerThreshold => "below",
        }
    }
}

/// How datapoints with no data (or too few samples) count; CloudWatch's `TreatMissingData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    /// Missing points are neither breaching nor not; all missing is `INSUFFICIENT_DATA`.
    #[default]
    Missing,
    /// Missing points are good.
    NotBreaching,
    /// Missing points are bad.
    Breaching,
    /// The alarm keeps its state when the missing points would decide it.
    Ignore,
}

impl MissingData {
    /// Every treatment.
    pub const ALL: [MissingData; 4] = [
        Self::Missing,
        Self::NotBreaching,
        Self::Breaching,
        Self::Ignore,
    ];

    /// CloudWatch's name: `missing`, `notBreaching`, `breaching` or `ignore`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotBreaching => "notBreaching",
            Self::Breaching => "breaching",
            Self::Ignore => "ignore",
        }
    }
}

/// A name that is not one of an enum's.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} '{found}': use one of {expected}")]
pub struct UnknownName {
    what: &'static str,
    found: String,
    expected: String,
}

impl UnknownName {
    /// `found` is not a `what`; `expected` lists the names that are.
    pub fn new(what: &'static str, found: &str, expected: &[&str]) -> Self {
        Self {
            what,
            found: found.to_owned(),
            expected: expected.join(", "),
        }
    }
}

/// Finds the value whose name is `text`, ignoring ASCII case.
fn parse_name<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    what: &'static str,
    text: &str,
) -> Result<T, UnknownName> {
    all.iter()
        .copied()
        .find(|value| name(*value).eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|value| name(*value)).collect();
            UnknownName::new(what, text, &names)
        })
}

impl FromStr for Comparison {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_name(&Self::ALL, Self::as_str, "comparison", text)
    }
}

impl FromStr for MissingData {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_name(&Self::ALL, Self::as_str, "missing-data treatment", text)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MissingData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for comparison in Comparison::ALL {
            assert_eq!(
                comparison.as_str().parse::<Comparison>().unwrap(),
                comparison
            );
            let json = serde_json::to_string(&comparison).unwrap();
            assert_eq!(json, format!("\"{comparison}\""));
            assert_eq!(
                serde_json::from_str::<Comparison>(&json).unwrap(),
                comparison
            );
        }
        for treatment in MissingData::ALL {
            let json = serde_json::to_string(&treatment).unwrap();
            assert_eq!(json, format!("\"{treatment}\""));
            assert_eq!(
                serde_json::from_str::<MissingData>(&json).unwrap(),
                treatment
            );
        }
        assert_eq!(
            "notbreaching".parse::<MissingData>().unwrap(),
            MissingData::NotBreaching
        );
        let error = "sometimes".parse::<MissingData>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown missing-data treatment 'sometimes': use one of missing, notBreaching, breaching, ignore"
        );
    }

    #[test]
    fn comparisons_breach_on_the_right_side() {
        let cases = [
            (Comparison::GreaterThanThreshold, [false, false, true]),
            (
                Comparison::GreaterThanOrEqualToThreshold,
                [false, true, true],
            ),
            (Comparison::LessThanThreshold, [true, false, false]),
            (Comparison::LessThanOrEqualToThreshold, [true, true, false]),
            (
                Comparison::LessThanLowerOrGreaterThanUpperThreshold,
                [true, false, true],
            ),
        ];
        for (comparison, expected) in cases {
            let got = [0.5, 1.0, 1.5].map(|value| comparison.breaches(value, 1.0));
            assert_eq!(got, expected, "{comparison}");
        }
        assert!(Comparison::LessThanLowerThreshold.breaches_band(0.5, 1.0, 2.0));
        assert!(!Comparison::GreaterThanUpperThreshold.breaches_band(1.5, 1.0, 2.0));
    }
}
