//! Anomaly-detection bands: the expected range of a datapoint learned from the metric's own
//! history, in the spirit of CloudWatch anomaly detection
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Anomaly_Detection.html>)
//! but simple enough to explain in one paragraph (docs/alarms.md, "Anomaly detection").
//!
//! The datapoint at time t is compared with the same time of day on the previous
//! `training_days` days (daily seasonality). Their median m and the robust spread
//! s = 1.4826 · MAD (median absolute deviation, which estimates the standard deviation of
//! normal data without being moved by a few outliers) give the band
//! [m − w·s, m + w·s] for the band width w. The spread has a floor so that a perfectly flat
//! history does not make every small change an anomaly. This module is pure; the evaluator
//! fetches the history.

/// The settings of an anomaly-detection alarm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalySpec {
    /// How many robust standard deviations the band reaches either side of the median;
    /// CloudWatch's "anomaly detection threshold". Positive; 2 is a common choice.
    pub band_width: f64,
    /// How many previous days of the same time slot the band is learned from
    /// (1..=[`MAX_TRAINING_DAYS`]).
    pub training_days: u32,
    /// With fewer days of history for a slot, its datapoint is treated as missing.
    pub min_training_days: u32,
}

/// The longest training window: CloudWatch trains on up to two weeks, and the store keeps
/// one-minute rows for 15 days by default.
pub const MAX_TRAINING_DAYS: u32 = 14;

/// One day, the season of the model.
pub const SEASON_SECS: i64 = 86_400;

/// The scale factor that makes the MAD a consistent estimate of a normal distribution's
/// standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// The smallest spread, absolute and relative to the median.
const MIN_SPREAD: f64 = 1e-9;
const MIN_RELATIVE_SPREAD: f64 = 0.01;

/// The expected range of one datapoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub lower: f64,
    pub upper: f64,
}

/// The band learned from `history` (the same slot on previous days, in any order), or `None`
/// when fewer than `spec.min_training_days` values are given. When every history value is
/// non-negative (counts, latencies, bytes), the lower edge is clamped at 0.
pub fn band(spec: &AnomalySpec, history: &[f64]) -> Option<Band> {
    let min = (spec.min_training_days as usize).max(1);
    if history.len() < min {
        return None;
    }
    let mut values = history.to_vec();
    let m = median(&mut values);
    let mut deviations: Vec<f64> = history.iter().map(|value| (value - m).abs()).collect();
    let mad = median(&mut deviations);
    let spread = (MAD_TO_SIGMA * mad).max(MIN_SPREAD.max(MIN_RELATIVE_SPREAD * m.abs()));
    let mut lower = m - spec.band_width * spread;
    if history.iter().all(|&value| value >= 0.0) {
        lower = lower.max(0.0);
    }
    Some(Band {
        lower,
        upper: m + spec.band_width * spread,
    })
}

/// The median of a non-empty slice (the mean of the middle two for an even length).
fn median(values: &mut [f64]) -> f64 {
    debug_assert!(!values.is_empty());
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: AnomalySpec = AnomalySpec {
        band_width: 2.0,
        training_days: 14,
        min_training_days: 3,
    };

    #[test]
    fn bands_from_history() {
        // (what, history, expected band as (lower, upper))
        type Case = (&'static str, &'static [f64], Option<(f64, f64)>);
        let cases: [Case; 7] = [
            ("too little history is missing", &[100.0, 100.0], None),
            ("no history is missing", &[], None),
            // MAD 0: the spread floor is 1 % of the median.
            ("flat history", &[100.0, 100.0, 100.0], Some((98.0, 102.0))),
            // A flat zero history has the absolute floor, clamped at 0 below.
            ("flat zeros", &[0.0, 0.0, 0.0], Some((0.0, 2e-9))),
            // median 100, deviations [0, 10, 10, 20] → MAD 10 → s = 14.826.
            (
                "noisy history",
                &[90.0, 100.0, 110.0, 120.0, 100.0],
                Some((100.0 - 29.652, 100.0 + 29.652)),
            ),
            // One wild day moves neither the median nor the MAD much.
            (
                "outlier in history",
                &[90.0, 100.0, 110.0, 10_000.0, 100.0],
                Some((100.0 - 29.652, 100.0 + 29.652)),
            ),
            // median 2, MAD 1 → s = 1.4826; 2 − 2.9652 < 0 is clamped for counts.
            (
                "clamped at zero",
                &[1.0, 2.0, 3.0],
                Some((0.0, 2.0 + 2.9652)),
            ),
        ];
        for (what, history, expected) in cases {
            let got = band(&SPEC, history).map(|band| (band.lower, band.upper));
            match (got, expected) {
                (None, None) => {}
                (Some(got), Some(expected)) => assert!(
                    (got.0 - expected.0).abs() < 1e-9 && (got.1 - expected.1).abs() < 1e-9,
                    "{what}: got {got:?}, expected {expected:?}"
                ),
                _ => panic!("{what}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn negative_history_is_not_clamped() {
        let got = band(&SPEC, &[-1.0, 0.0, 1.0]).unwrap();
        assert!((got.lower + 2.9652).abs() < 1e-9, "{got:?}");
    }
}
