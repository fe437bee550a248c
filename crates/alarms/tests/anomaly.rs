//! An anomaly alarm end to end: days of a daily-seasonal series written through the store's
//! `MetricWriter`, a `ManualClock`, and the band learned from the same minute on earlier days.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::sync::Arc;

use gatehouse_alarms::{
    AlarmSpec, AlarmState, AnomalySpec, Comparison, Evaluator, MissingData, NoopNotifier, payload,
};
use gatehouse_store::{Store, StoreConfig};
use gatehouse_telemetry::metrics::{Dimensions, ManualClock, Statistic, StatisticSet};

const DAY: i64 = 86_400;
/// Midnight of a day in the future, so the store's retention sweep (by the wall clock) keeps
/// our rows.
const DAY0: i64 = 1_900_000_000 / DAY * DAY;
const NOON: i64 = 12 * 3600;
const NIGHT: i64 = 3 * 3600;

fn write(store: &Store, minute: i64, value: f64) {
    let mut stats = StatisticSet::distribution();
    stats.add(value);
    let points = vec![("Count".to_owned(), Dimensions::default(), stats)];
    assert!(store.metrics_writer().submit(minute, points));
}

fn spec() -> AlarmSpec {
    AlarmSpec {
        name: "traffic".into(),
        metric: "Count".into(),
        dimensions: Dimensions::default(),
        statistic: Statistic::Sum,
        period_secs: 60,
        threshold: None,
        anomaly: Some(AnomalySpec {
            band_width: 3.0,
            training_days: 7,
            min_training_days: 2,
        }),
        comparison: Comparison::LessThanLowerOrGreaterThanUpperThreshold,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        treat_missing_data: MissingData::Missing,
        min_sample_count: None,
        webhook: None,
    }
}

#[test]
fn an_anomaly_alarm_learns_daily_seasonality_and_alarms_outside_its_band() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let clock = Arc::new(ManualClock::new(DAY0));
    let evaluator = Evaluator::new(
        store.clone(),
        vec![spec()],
        clock.clone(),
        Arc::new(NoopNotifier),
    )
    .unwrap();
    let evaluate_after = |minute: i64| {
        clock.set(minute + 60 + 15);
        evaluator.evaluate_once()
    };
    let state = || evaluator.states()[0].state;

    // Three days of history: busy at midday, quiet at night, a little noise.
    let noon = [1000.0, 1040.0, 980.0];
    let night = [10.0, 14.0, 8.0];
    for day in 0..3 {
        let midnight = DAY0 + day * DAY;
        for minute in 0..3 {
            write(&store, midnight + NOON + 60 * minute, noon[day as usize]);
        }
        write(&store, midnight + NIGHT, night[day as usize]);
    }
    store.flush().unwrap();

    // On day 0 there is no history: the datapoint is missing while the alarm learns.
    assert!(evaluate_after(DAY0 + NOON).is_empty());
    assert_eq!(state(), AlarmState::InsufficientData);

    // The band follows the time of day.
    let day3 = DAY0 + 3 * DAY;
    let at_night = evaluator.band("traffic", day3 + NIGHT).unwrap().unwrap();
    let at_noon = evaluator.band("traffic", day3 + NOON).unwrap().unwrap();
    assert!(at_night.upper < 100.0, "{at_night:?}");
    assert!(
        at_noon.lower > 900.0 && at_noon.upper < 1100.0,
        "{at_noon:?}"
    );
    assert_eq!(evaluator.band("no-such-alarm", day3).unwrap(), None);

    // A normal night and a normal midday on day 3: OK.
    write(&store, day3 + NIGHT, 11.0);
    write(&store, day3 + NOON, 1010.0);
    write(&store, day3 + NOON + 60, 5000.0);
    write(&store, day3 + NOON + 120, 1000.0);
    store.flush().unwrap();
    let transitions = evaluate_after(day3 + NIGHT);
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].new_state, AlarmState::Ok);
    assert!(
        evaluate_after(day3 + NOON).is_empty(),
        "1010 at noon is normal"
    );

    // Far above the midday band: ALARM, with the band in the transition and its payload.
    let transitions = evaluate_after(day3 + NOON + 60);
    assert_eq!(transitions.len(), 1, "{:?}", evaluator.states());
    let alarm = &transitions[0];
    assert_eq!(alarm.new_state, AlarmState::Alarm);
    assert!(alarm.reason.starts_with("Band crossed"), "{}", alarm.reason);
    let band = alarm.datapoints[0].band.unwrap();
    assert_eq!(
        band,
        evaluator
            .band("traffic", day3 + NOON + 60)
            .unwrap()
            .unwrap()
    );
    let json = payload(alarm);
    assert!(json["threshold"].is_null());
    assert_eq!(json["datapoints"][0]["value"], 5000.0);
    assert_eq!(json["datapoints"][0]["band"]["upper"], band.upper);
    assert_eq!(json["anomaly"]["trainingDays"], 7);
    let history = store.alarm_history(Some("traffic"), i64::MIN, 1).unwrap();
    assert_eq!(history[0].new_state, "ALARM");
    assert!(history[0].data.contains("\"band\""), "{}", history[0].data);

    // Back to normal: OK.
    let transitions = evaluate_after(day3 + NOON + 120);
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].new_state, AlarmState::Ok);
}
