//! The evaluator end to end: minutes written through the store's `MetricWriter`, a `ManualClock`
//! moved by hand, and the states, transitions, history rows and notifications that result.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_alarms::{
    AlarmSpec, AlarmState, Comparison, Definition, Evaluator, MissingData, Notifier, Transition,
};
use gatehouse_store::{Store, StoreConfig};
use gatehouse_telemetry::metrics::{Dimensions, ManualClock, Statistic, StatisticSet};

use AlarmState::{Alarm, InsufficientData, Ok};

/// A minute in the future, so the store's retention sweep (by the wall clock) keeps our rows.
const T0: i64 = 1_900_000_020 / 60 * 60;

#[derive(Default)]
struct Recorder(Mutex<Vec<Transition>>);

impl Notifier for Recorder {
    fn notify(&self, transition: &Transition) {
        self.0.lock().unwrap().push(transition.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, AlarmState, AlarmState)> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .map(|t| (t.alarm, t.old_state, t.new_state))
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    notifier: Arc<Recorder>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        Setup {
            _dir: dir,
            store,
            clock: Arc::new(ManualClock::new(T0 + 30)),
            notifier: Arc::new(Recorder::default()),
        }
    }

    fn evaluator(&self, specs: Vec<AlarmSpec>) -> Evaluator {
        Evaluator::new(
            self.store.clone(),
            specs,
            self.clock.clone(),
            self.notifier.clone(),
        )
        .unwrap()
    }

    /// Writes one minute of `metric` (all traffic) with these samples and waits for the commit.
    fn write(&self, metric: &str, minute: i64, samples: &[f64]) {
        let mut stats = StatisticSet::distribution();
        for &sample in samples {
            stats.add(sample);
        }
        let points = vec![(metric.to_owned(), Dimensions::default(), stats)];
        assert!(self.store.metrics_writer().submit(minute, points));
        self.store.flush().unwrap();
    }

    /// Moves the clock to 15 s into the minute after `minute`, so `minute` is the newest
    /// complete one.
    fn after(&self, minute: i64) {
        self.clock.set(minute + 60 + 15);
    }
}

fn spec(name: &str, treatment: MissingData) -> AlarmSpec {
    AlarmSpec {
        name: name.into(),
        metric: "5XXError".into(),
        dimensions: Dimensions::default(),
        statistic: Statistic::Sum,
        period_secs: 60,
        threshold: Some(1.0),
        anomaly: None,
        comparison: Comparison::GreaterThanThreshold,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        treat_missing_data: treatment,
        min_sample_count: None,
        webhook: None,
    }
}

fn states(evaluator: &Evaluator) -> Vec<(String, AlarmState)> {
    evaluator
        .states()
        .into_iter()
        .map(|status| (status.name, status.state))
        .collect()
}

fn minute(n: i64) -> i64 {
    T0 + 60 * n
}

#[test]
fn an_alarm_goes_from_insufficient_data_to_ok_to_alarm_and_back_and_is_recorded() {
    let setup = Setup::new();
    let evaluator = setup.evaluator(vec![spec("errors", MissingData::Missing)]);
    let status = &evaluator.states()[0];
    assert_eq!((status.state, status.since_unix), (InsufficientData, None));

    // No data at all: still INSUFFICIENT_DATA, which is no transition.
    assert!(evaluator.evaluate_once().is_empty());

    for n in 0..3 {
        setup.write("5XXError", minute(n), &[0.0, 0.0]);
    }
    setup.after(minute(2));
    let transitions = evaluator.evaluate_once();
    assert_eq!(transitions.len(), 1);
    assert_eq!(
        (transitions[0].old_state, transitions[0].new_state),
        (InsufficientData, Ok)
    );

    // Two breaching minutes of the last three: ALARM, with the three datapoints evaluated.
    setup.write("5XXError", minute(3), &[1.0, 1.0, 1.0]);
    // The still-open minute is never used: a breach in it changes nothing yet.
    setup.write("5XXError", minute(4), &[1.0, 1.0]);
    setup.after(minute(3));
    assert!(evaluator.evaluate_once().is_empty(), "1 of 3 breaching");
    setup.after(minute(4));
    let transitions = evaluator.evaluate_once();
    assert_eq!(transitions.len(), 1);
    let alarm = &transitions[0];
    assert_eq!((alarm.old_state, alarm.new_state), (Ok, Alarm));
    let points: Vec<(i64, f64)> = alarm
        .datapoints
        .iter()
        .map(|p| (p.timestamp_unix, p.value))
        .collect();
    assert_eq!(
        points,
        vec![(minute(2), 0.0), (minute(3), 3.0), (minute(4), 2.0)]
    );
    assert!(
        alarm
            .reason
            .starts_with("Threshold crossed: 2 of the last 3"),
        "{}",
        alarm.reason
    );
    assert!(
        evaluator.evaluate_once().is_empty(),
        "no change, no transition"
    );

    for n in 5..7 {
        setup.write("5XXError", minute(n), &[0.0]);
    }
    setup.after(minute(6));
    let transitions = evaluator.evaluate_once();
    assert_eq!(
        (transitions[0].old_state, transitions[0].new_state),
        (Alarm, Ok)
    );
    let status = &evaluator.states()[0];
    assert_eq!(
        (status.state, status.since_unix),
        (Ok, Some(minute(7) + 15))
    );

    let notified = setup.notifier.take();
    assert_eq!(
        notified,
        vec![
            ("errors".into(), InsufficientData, Ok),
            ("errors".into(), Ok, Alarm),
            ("errors".into(), Alarm, Ok),
        ]
    );

    // The history, newest first, with the webhook document as data.
    let history = setup.store.alarm_history(Some("errors"), 0, 10).unwrap();
    let rows: Vec<(Option<&str>, &str)> = history
        .iter()
        .map(|r| (r.old_state.as_deref(), r.new_state.as_str()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (Some("ALARM"), "OK"),
            (Some("OK"), "ALARM"),
            (Some("INSUFFICIENT_DATA"), "OK"),
        ]
    );
    assert_eq!(history[1].timestamp_unix, minute(5) + 15);
    let data: serde_json::Value = serde_json::from_str(&history[1].data).unwrap();
    assert_eq!(data["newState"], "ALARM");
    assert_eq!(data["datapoints"].as_array().unwrap().len(), 3);
    assert_eq!(data["datapoints"][1]["value"], 3.0);

    // A restarted evaluator picks up the last recorded state.
    let restarted = setup.evaluator(vec![spec("errors", MissingData::Missing)]);
    let status = &restarted.states()[0];
    assert_eq!(
        (status.state, status.since_unix),
        (Ok, Some(minute(7) + 15))
    );
    assert!(restarted.evaluate_once().is_empty());
}

#[test]
fn every_missing_data_treatment_end_to_end() {
    let setup = Setup::new();
    let treatments = [
        MissingData::Missing,
        MissingData::Ignore,
        MissingData::Breaching,
        MissingData::NotBreaching,
    ];
    let specs = treatments.map(|t| spec(t.as_str(), t)).to_vec();
    let evaluator = setup.evaluator(specs);
    let expect = |expected: [AlarmState; 4]| {
        let names = treatments.map(|t| t.as_str().to_owned());
        let expected: Vec<_> = names.into_iter().zip(expected).collect();
        assert_eq!(states(&evaluator), expected);
    };

    // Nothing stored yet: missing and ignore wait; breaching alarms; notBreaching is fine.
    evaluator.evaluate_once();
    expect([InsufficientData, InsufficientData, Alarm, Ok]);

    // Three good minutes: everyone is OK.
    for n in 0..3 {
        setup.write("5XXError", minute(n), &[0.0]);
    }
    setup.after(minute(2));
    evaluator.evaluate_once();
    expect([Ok, Ok, Ok, Ok]);

    // One breaching minute after a gap of two: the missing minutes decide it.
    setup.write("5XXError", minute(5), &[2.0]);
    setup.after(minute(5));
    evaluator.evaluate_once();
    // Evaluated: 0, 0 (minutes 1, 2) and 2 (minute 5); one breach of three.
    expect([Ok, Ok, Ok, Ok]);

    // The data stops: the whole evaluation range is missing.
    setup.after(minute(20));
    evaluator.evaluate_once();
    expect([InsufficientData, Ok, Alarm, Ok]);

    // One breaching minute with the rest missing: two more missing points could make it.
    setup.write("5XXError", minute(21), &[2.0]);
    setup.after(minute(21));
    evaluator.evaluate_once();
    expect([Alarm, Ok, Alarm, Ok]);
    assert_eq!(setup.notifier.take().len(), 8);
}

#[test]
fn percentile_datapoints_with_too_few_samples_count_as_missing() {
    let setup = Setup::new();
    let mut strict = spec("p99-default", MissingData::Missing);
    strict.metric = "Latency".into();
    strict.statistic = Statistic::Percentile(99.0);
    strict.threshold = Some(100.0);
    strict.evaluation_periods = 1;
    strict.datapoints_to_alarm = 1;
    let mut lenient = strict.clone();
    lenient.name = "p99-anyway".into();
    lenient.min_sample_count = Some(0);
    let evaluator = setup.evaluator(vec![strict, lenient]);

    setup.write("Latency", minute(0), &[500.0; 10]);
    setup.after(minute(0));
    evaluator.evaluate_once();
    assert_eq!(
        states(&evaluator),
        vec![
            ("p99-default".into(), InsufficientData),
            ("p99-anyway".into(), Alarm),
        ]
    );

    setup.write("Latency", minute(1), &[500.0; 1000]);
    setup.after(minute(1));
    evaluator.evaluate_once();
    assert_eq!(states(&evaluator)[0], ("p99-default".into(), Alarm));
}

#[test]
fn replacing_specs_keeps_the_state_of_unchanged_alarms() {
    let setup = Setup::new();
    let evaluator = setup.evaluator(vec![spec("errors", MissingData::Breaching)]);
    evaluator.evaluate_once();
    let before = evaluator.states()[0].clone();
    assert_eq!(before.state, Alarm);

    setup.clock.advance(600);
    let added = spec("other", MissingData::Missing);
    evaluator
        .replace_specs(vec![added.clone(), spec("errors", MissingData::Breaching)])
        .unwrap();
    let after = evaluator.states();
    assert_eq!(after[1], before);
    assert_eq!(
        (after[0].name.as_str(), after[0].state),
        ("other", InsufficientData)
    );

    // A changed alarm starts again from its last recorded state.
    let mut changed = spec("errors", MissingData::Breaching);
    changed.threshold = Some(10.0);
    evaluator.replace_specs(vec![changed]).unwrap();
    let status = &evaluator.states()[0];
    assert_eq!(
        (status.state, status.since_unix),
        (Alarm, before.since_unix)
    );

    // Invalid specs change nothing.
    let error = evaluator
        .replace_specs(vec![added.clone(), added])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "alarm 'other' is defined twice; alarm names must be unique"
    );
    assert_eq!(evaluator.states().len(), 1);
}

#[test]
fn the_spawned_evaluator_runs_until_stopped() {
    let setup = Setup::new();
    let evaluator = setup.evaluator(vec![spec("errors", MissingData::NotBreaching)]);
    let handle = evaluator.spawn(Duration::from_millis(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.evaluator().states()[0].state != Ok {
        assert!(Instant::now() < deadline, "the evaluator never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop();
    assert_eq!(setup.notifier.take().len(), 1);
}

#[test]
fn a_deleted_alarm_is_not_evaluated_and_a_recreated_one_starts_afresh() {
    let setup = Setup::new();
    let errors = spec("errors", MissingData::Breaching);
    let evaluator = setup.evaluator(vec![errors.clone()]);
    assert_eq!(evaluator.states()[0].evaluated_unix, None);
    evaluator.evaluate_once();
    let status = evaluator.states()[0].clone();
    assert_eq!(
        (status.state, status.evaluated_unix),
        (Alarm, Some(T0 + 30))
    );
    assert_eq!(setup.notifier.take().len(), 1);

    // Deleted: gone from the states, never evaluated or notified again; its history stays.
    evaluator.replace_definitions(vec![]).unwrap();
    setup.clock.advance(600);
    assert!(evaluator.evaluate_once().is_empty());
    assert!(evaluator.states().is_empty());
    assert!(setup.notifier.take().is_empty());
    assert_eq!(
        setup
            .store
            .alarm_history(Some("errors"), 0, 10)
            .unwrap()
            .len(),
        1
    );

    // Created again: the earlier alarm's ALARM is not its state.
    let created = T0 + 600;
    evaluator
        .replace_definitions(vec![Definition {
            spec: errors.clone(),
            history_since_unix: Some(created),
        }])
        .unwrap();
    let status = &evaluator.states()[0];
    assert_eq!((status.state, status.since_unix), (InsufficientData, None));
    // Its own transitions are restored, as after a restart.
    evaluator.evaluate_once();
    let restarted = setup.evaluator(vec![]);
    restarted
        .replace_definitions(vec![Definition {
            spec: errors,
            history_since_unix: Some(created),
        }])
        .unwrap();
    assert_eq!(states(&restarted), [("errors".to_owned(), Alarm)]);
}

#[test]
fn a_change_wakes_the_spawned_evaluator() {
    let setup = Setup::new();
    let evaluator = setup.evaluator(vec![]);
    // An interval no test waits for: only the wake-up can evaluate the new alarm.
    let handle = evaluator.spawn(Duration::from_secs(3600)).unwrap();
    handle
        .evaluator()
        .replace_specs(vec![spec("errors", MissingData::Breaching)])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.evaluator().states()[0].state != Alarm {
        assert!(
            Instant::now() < deadline,
            "the change did not wake the evaluator"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop();
    assert_eq!(
        setup.notifier.take(),
        [("errors".to_owned(), InsufficientData, Alarm)]
    );
}
