//! The pure part of alarm evaluation: from the datapoints of the evaluation range and the
//! previous state to the new state and its reason. No clock, no store, no I/O, so every rule is
//! tested by table.
//!
//! The rules are CloudWatch's ("Configuring how CloudWatch alarms treat missing data",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data>):
//!
//! - The evaluation range may hold more periods than N ([`evaluation_range`]). The N most recent
//!   datapoints that are present are evaluated; only if fewer than N are present is the
//!   shortfall filled with "missing" points, which count as the treatment says.
//! - `ALARM` when at least M of the N points breach, otherwise `OK`, except:
//! - `missing`: all points missing is `INSUFFICIENT_DATA`. When the missing points could still
//!   decide it (the present breaching points plus the missing ones reach M), the alarm goes to
//!   `ALARM` if every present point breaches and `OK` otherwise — CloudWatch's table row
//!   `- - X - -` (N = M = 3) is `ALARM`.
//! - `ignore`: when the missing points could decide it, or all are missing, the state is kept.

use crate::anomaly::Band;
use crate::spec::{AlarmSpec, AlarmState, MissingData};

/// How many periods the evaluator fetches for an alarm of `evaluation_periods` N: N + 2, so a
/// gap or two in intermittent data does not count as missing while older present points
/// exist. CloudWatch documents "more than N" (5 for N = 3) without the exact rule.
pub fn evaluation_range(evaluation_periods: u32) -> usize {
    evaluation_periods as usize + 2
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub state: AlarmState,
    /// Why, for people: the counts, values and threshold behind the state.
    pub reason: String,
    /// Breaching points among the N evaluated, including missing points counted as breaching.
    pub breaching: usize,
    /// Indices into the given datapoints of the present points evaluated, oldest first.
    pub used: Vec<usize>,
    /// How many of the N points were missing and filled in by the treatment.
    pub filled: usize,
}

/// Evaluates the static-threshold alarm `spec` over `datapoints` (the evaluation range, oldest
/// first; `None` is missing) given the alarm's `previous` state.
pub fn evaluate(spec: &AlarmSpec, datapoints: &[Option<f64>], previous: AlarmState) -> Evaluation {
    debug_assert!(spec.threshold.is_some(), "a threshold alarm");
    let threshold = spec.threshold.unwrap_or(f64::NAN);
    let bands = vec![
        Some(Band {
            lower: threshold,
            upper: threshold
        });
        datapoints.len()
    ];
    evaluate_with(spec, datapoints, &bands, None, previous)
}

/// Evaluates the anomaly alarm `spec` over `datapoints`, each compared with its own band
/// (`bands[i]` for `datapoints[i]`). A datapoint without a band (too little history) is
/// treated as missing.
pub fn evaluate_bands(
    spec: &AlarmSpec,
    datapoints: &[Option<f64>],
    bands: &[Option<Band>],
    previous: AlarmState,
) -> Evaluation {
    debug_assert_eq!(datapoints.len(), bands.len());
    let datapoints: Vec<Option<f64>> = datapoints
        .iter()
        .zip(bands)
        .map(|(value, band)| value.filter(|_| band.is_some()))
        .collect();
    evaluate_with(spec, &datapoints, bands, Some(bands), previous)
}

/// The rule shared by both kinds: `limits[i]` is what `datapoints[i]` is compared with (a
/// threshold is a band of width 0); `shown_bands` are the bands named in the reason, for
/// anomaly alarms.
fn evaluate_with(
    spec: &AlarmSpec,
    datapoints: &[Option<f64>],
    limits: &[Option<Band>],
    shown_bands: Option<&[Option<Band>]>,
    previous: AlarmState,
) -> Evaluation {
    let n = spec.evaluation_periods as usize;
    let m = spec.datapoints_to_alarm as usize;
    debug_assert!(m >= 1 && m <= n, "validated spec");
    let mut used: Vec<usize> = datapoints
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, value)| value.is_some())
        .map(|(index, _)| index)
        .take(n)
        .collect();
    used.reverse();
    let filled = n - used.len();
    let present_breaching = used
        .iter()
        .filter(
            |&&i| match (datapoints[i], limits.get(i).copied().flatten()) {
                (Some(value), Some(limit)) => {
                    spec.comparison
                        .breaches_band(value, limit.lower, limit.upper)
                }
                _ => false,
            },
        )
        .count();

    let describe = |breaching: usize| {
        let shown: Vec<String> = used
            .iter()
            .filter_map(|&i| {
                let value = datapoints[i]?;
                Some(match shown_bands.and_then(|bands| bands[i]) {
                    Some(band) => format!("{value} (band {}..{})", band.lower, band.upper),
                    None => format!("{value}"),
                })
            })
            .collect();
        let missing = match (filled, spec.treat_missing_data) {
            (0, _) => String::new(),
            (_, MissingData::Breaching) => format!("; {filled} missing treated as breaching"),
            (_, MissingData::NotBreaching) => {
                format!("; {filled} missing treated as not breaching")
            }
            _ => format!("; {filled} missing"),
        };
        let limit = match (shown_bands, spec.threshold) {
            (None, Some(threshold)) => format!("the threshold ({threshold})"),
            _ => "the band".to_owned(),
        };
        format!(
            "{breaching} of the last {n} datapoints [{}] {} {} {limit}{missing}; \
             {m} needed for ALARM",
            shown.join(", "),
            if breaching == 1 { "was" } else { "were" },
            spec.comparison.phrase(),
        )
    };
    let crossed = if shown_bands.is_some() {
        "Band crossed"
    } else {
        "Threshold crossed"
    };
    let decided = |breaching: usize| {
        let state = if breaching >= m {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        };
        let lead = if state == AlarmState::Alarm {
            crossed.to_owned()
        } else {
            crossed.replace(" crossed", " not crossed")
        };
        (state, format!("{lead}: {}", describe(breaching)), breaching)
    };

    let undecidable = present_breaching < m && present_breaching + filled >= m;
    let (state, reason, breaching) = match spec.treat_missing_data {
        MissingData::NotBreaching => decided(present_breaching),
        MissingData::Breaching => decided(present_breaching + filled),
        MissingData::Missing | MissingData::Ignore if used.is_empty() => {
            if spec.treat_missing_data == MissingData::Ignore {
                let reason = format!(
                    "no datapoints in the last {} periods; missing data is ignored, so the state stays {previous}",
                    datapoints.len()
                );
                (previous, reason, 0)
            } else {
                let reason = format!(
                    "Insufficient data: no datapoints in the last {} periods",
                    datapoints.len()
                );
                (AlarmState::InsufficientData, reason, 0)
            }
        }
        MissingData::Ignore if undecidable => {
            let reason = format!(
                "Not enough data to decide: {}; missing data is ignored, so the state stays {previous}",
                describe(present_breaching)
            );
            (previous, reason, present_breaching)
        }
        MissingData::Missing if undecidable && present_breaching == used.len() => {
            // CloudWatch alarms on partial data when every point that is there breaches.
            let reason = format!("{crossed}: {}", describe(present_breaching));
            (AlarmState::Alarm, reason, present_breaching)
        }
        MissingData::Missing | MissingData::Ignore => decided(present_breaching),
    };
    Evaluation {
        state,
        reason,
        breaching,
        used,
        filled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Comparison;
    use crate::spec::tests::spec;

    use AlarmState::{Alarm, InsufficientData as Insufficient, Ok};
    use MissingData::{Breaching, Ignore, Missing, NotBreaching};

    /// `X` is a breaching point (5 > 1), `0` a good one, `-` missing; oldest first.
    fn points(text: &str) -> Vec<Option<f64>> {
        text.split_whitespace()
            .map(|point| match point {
                "X" => Some(5.0),
                "0" => Some(0.0),
                "-" => None,
                other => panic!("bad point {other}"),
            })
            .collect()
    }

    fn check(
        n: u32,
        m: u32,
        treatment: MissingData,
        input: &str,
        previous: AlarmState,
    ) -> Evaluation {
        let mut spec = spec();
        spec.evaluation_periods = n;
        spec.datapoints_to_alarm = m;
        spec.treat_missing_data = treatment;
        spec.validate().unwrap();
        evaluate(&spec, &points(input), previous)
    }

    #[test]
    fn cloudwatch_missing_data_truth_table() {
        // CloudWatch's table for N = 3, M = 3 over an evaluation range of five periods. A
        // `None` expectation is "retain current state", checked from both OK and ALARM.
        let table: [(&str, [Option<AlarmState>; 4]); 5] = [
            //            missing             ignore      breaching    notBreaching
            ("0 - X - X", [Some(Ok), Some(Ok), Some(Ok), Some(Ok)]),
            ("- - - - 0", [Some(Ok), Some(Ok), Some(Ok), Some(Ok)]),
            (
                "- - - - -",
                [Some(Insufficient), None, Some(Alarm), Some(Ok)],
            ),
            (
                "0 X X - X",
                [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
            ),
            ("- - X - -", [Some(Alarm), None, Some(Alarm), Some(Ok)]),
        ];
        for (input, expected) in table {
            for (treatment, expected) in [Missing, Ignore, Breaching, NotBreaching]
                .into_iter()
                .zip(expected)
            {
                for previous in [Ok, Alarm] {
                    let got = check(3, 3, treatment, input, previous);
                    assert_eq!(
                        got.state,
                        expected.unwrap_or(previous),
                        "{input} {treatment} from {previous}: {}",
                        got.reason
                    );
                }
            }
        }
    }

    #[test]
    fn m_out_of_n() {
        let cases = [
            // (N, M, treatment, input, previous, expected, breaching, filled)
            (3, 2, NotBreaching, "X 0 X", Ok, Alarm, 2, 0),
            (3, 2, NotBreaching, "0 0 X", Alarm, Ok, 1, 0),
            (3, 2, Missing, "X X 0", Ok, Alarm, 2, 0),
            (3, 3, Missing, "X X 0", Alarm, Ok, 2, 0),
            (1, 1, Missing, "0 0 X", Ok, Alarm, 1, 0),
            (1, 1, Missing, "X X 0", Alarm, Ok, 0, 0),
            (5, 3, NotBreaching, "X 0 X 0 X", Ok, Alarm, 3, 0),
            (5, 3, NotBreaching, "X 0 X 0 0", Alarm, Ok, 2, 0),
            // Only the N most recent present points count, older ones are ignored.
            (2, 2, Missing, "X X 0 0", Alarm, Ok, 0, 0),
            // Filled points count as the treatment says.
            (3, 2, Breaching, "0 -", Ok, Alarm, 2, 2),
            (3, 3, Breaching, "0 -", Ok, Ok, 2, 2),
            (3, 1, NotBreaching, "- - -", Alarm, Ok, 0, 3),
            // `missing` with missing points that could decide it: ALARM only if every present
            // point breaches.
            (3, 2, Missing, "0 X -", Ok, Ok, 1, 1),
            (3, 2, Missing, "- X -", Ok, Alarm, 1, 2),
            (3, 2, Missing, "- 0 -", Alarm, Ok, 0, 2),
            (3, 2, Missing, "- - -", Alarm, Insufficient, 0, 3),
            // `ignore` keeps the state only while the missing points could decide it.
            (3, 2, Ignore, "0 X -", Ok, Ok, 1, 1),
            (3, 2, Ignore, "0 X -", Alarm, Alarm, 1, 1),
            (3, 2, Ignore, "- 0 -", Alarm, Alarm, 0, 2),
            (3, 3, Ignore, "- 0 -", Alarm, Ok, 0, 2),
            (3, 2, Ignore, "X - X", Ok, Alarm, 2, 1),
            (3, 2, Ignore, "- - -", Insufficient, Insufficient, 0, 3),
        ];
        for (n, m, treatment, input, previous, expected, breaching, filled) in cases {
            let got = check(n, m, treatment, input, previous);
            let label = format!(
                "N={n} M={m} {treatment} {input} from {previous}: {}",
                got.reason
            );
            assert_eq!(got.state, expected, "{label}");
            assert_eq!((got.breaching, got.filled), (breaching, filled), "{label}");
        }
    }

    #[test]
    fn used_points_and_reasons_say_what_was_evaluated() {
        let got = check(3, 2, Missing, "X 0 - X X", Ok);
        assert_eq!(got.used, vec![1, 3, 4]);
        assert_eq!(
            got.reason,
            "Threshold crossed: 2 of the last 3 datapoints [0, 5, 5] were greater than the \
             threshold (1); 2 needed for ALARM"
        );
        let got = check(3, 2, Breaching, "- 0", Ok);
        assert_eq!(
            got.reason,
            "Threshold crossed: 2 of the last 3 datapoints [0] were greater than the threshold \
             (1); 2 missing treated as breaching; 2 needed for ALARM"
        );
        let got = check(3, 2, Missing, "- - - - -", Ok);
        assert_eq!(
            got.reason,
            "Insufficient data: no datapoints in the last 5 periods"
        );
    }

    #[test]
    fn anomaly_alarms_compare_each_point_with_its_band() {
        let mut spec = spec();
        spec.threshold = None;
        spec.anomaly = Some(crate::AnomalySpec {
            band_width: 2.0,
            training_days: 7,
            min_training_days: 2,
        });
        spec.comparison = Comparison::LessThanLowerOrGreaterThanUpperThreshold;
        spec.validate().unwrap();
        let band = |lower, upper| Some(Band { lower, upper });
        let values = [Some(5.0), Some(50.0), Some(1.0), None];
        let bands = [band(0.0, 10.0), band(0.0, 10.0), band(2.0, 3.0), None];
        let got = evaluate_bands(&spec, &values, &bands, Ok);
        assert_eq!(
            (got.state, got.breaching, got.used.clone()),
            (Alarm, 2, vec![0, 1, 2])
        );
        assert_eq!(
            got.reason,
            "Band crossed: 2 of the last 3 datapoints [5 (band 0..10), 50 (band 0..10), 1 (band \
             2..3)] were outside the band; 2 needed for ALARM"
        );
        // Only above the band counts for GreaterThanUpperThreshold.
        spec.comparison = Comparison::GreaterThanUpperThreshold;
        let got = evaluate_bands(&spec, &values, &bands, Alarm);
        assert_eq!((got.state, got.breaching), (Ok, 1));
        assert!(
            got.reason.starts_with("Band not crossed: 1 of"),
            "{}",
            got.reason
        );
        // No band anywhere (still learning): every point is missing.
        let got = evaluate_bands(&spec, &[None, None, None], &[None, None, None], Ok);
        assert_eq!(got.state, Insufficient);
    }
}
