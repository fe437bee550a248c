//! The evaluator: every minute, for each alarm, reads the evaluation range of complete periods
//! from the store, turns each into one value of the alarm's statistic, evaluates, and on a
//! state change records the transition in the store's alarm history and hands it to the
//! notifier.
//!
//! An anomaly alarm costs one more store query: the same time slots on the previous
//! `training_days` days, read as one range at the alarm's period and sorted into slots in
//! memory, from which each datapoint's band is learned ([`crate::anomaly`]).
//!
//! State lives in memory, seeded at start from each alarm's last recorded transition (an alarm
//! with no history starts in `INSUFFICIENT_DATA`). The store is read and written blocking, so
//! the evaluator runs on its own thread ([`Evaluator::spawn`]); the lock on the states is never
//! held across a store call, so [`Evaluator::states`] answers at once.

use std::sync::mpsc::{RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use gatehouse_store::{AlarmTransitionRecord, Store, StoreError};
use gatehouse_telemetry::metrics::Clock;

use crate::anomaly::Band;
use crate::datapoints::{learn_bands, read_slots};
use crate::evaluate::{evaluate, evaluate_bands, evaluation_range};
use crate::notify::{Notifier, payload};
use crate::spec::{AlarmSpec, AlarmState, SpecError, validate_all};

/// How long after a period ends it is first evaluated: the metrics consumer closes a minute 5 s
/// after it ends (its grace period) and the store commits within 100 ms, so 10 s is safely
/// after the minute's data is stored. The still-open period is never evaluated.
pub const EVALUATION_DELAY_SECS: i64 = 10;

/// How often [`Evaluator::spawn`] evaluates by default: CloudWatch evaluates alarms of a
/// minute or longer every minute.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// One alarm's state change.
#[derive(Clone, Debug)]
pub struct Transition {
    pub alarm: String,
    pub old_state: AlarmState,
    pub new_state: AlarmState,
    pub reason: String,
    /// When it was evaluated, by the evaluator's clock.
    pub timestamp_unix: i64,
    /// The present datapoints evaluated, oldest first.
    pub datapoints: Vec<Datapoint>,
    /// The alarm's settings when it changed state (threshold, webhook …).
    pub spec: Arc<AlarmSpec>,
}

/// One evaluated datapoint: the statistic's value for the period starting at `timestamp_unix`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Datapoint {
    pub timestamp_unix: i64,
    pub value: f64,
    /// The band it was compared with, for anomaly alarms.
    pub band: Option<Band>,
}

/// An alarm's current state, for the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmStatus {
    pub name: String,
    pub state: AlarmState,
    /// When it entered the state (Unix seconds); `None` if it has been in `INSUFFICIENT_DATA`
    /// since it was configured, with no recorded transition.
    pub since_unix: Option<i64>,
    pub reason: String,
    /// When this process last evaluated it; `None` until its first evaluation.
    pub evaluated_unix: Option<i64>,
}

/// An alarm to evaluate, and where its own history begins.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub spec: AlarmSpec,
    /// Transitions recorded before this time belong to an earlier alarm of the same name (one
    /// deleted and created again) and are not restored; `None` restores the last one whenever
    /// it was recorded.
    pub history_since_unix: Option<i64>,
}

impl From<AlarmSpec> for Definition {
    fn from(spec: AlarmSpec) -> Self {
        Definition {
            spec,
            history_since_unix: None,
        }
    }
}

/// Why the evaluator could not start or take new specs.
#[derive(Debug, thiserror::Error)]
pub enum EvaluatorError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("cannot read the alarm history to restore alarm states: {0}")]
    History(#[source] StoreError),
    #[error("cannot start the alarm evaluator thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Evaluates a set of alarms against the store. Cloning is cheap; clones share the states.
#[derive(Clone)]
pub struct Evaluator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

struct Shared {
    store: Store,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    alarms: Mutex<Vec<Entry>>,
    /// Held for the whole of [`Evaluator::replace_definitions`].
    reloading: Mutex<()>,
    /// Wakes the thread of [`Evaluator::spawn`] to evaluate now; `None` before it is spawned.
    wake: Mutex<Option<SyncSender<Signal>>>,
}

/// What the evaluator thread is told between evaluations.
enum Signal {
    /// Evaluate now (the alarms changed).
    Wake,
    Stop,
}

struct Entry {
    spec: Arc<AlarmSpec>,
    history_since: Option<i64>,
    state: AlarmState,
    since_unix: Option<i64>,
    reason: String,
    evaluated_unix: Option<i64>,
}

impl Evaluator {
    /// Validates `specs` and restores each alarm's last recorded state from the store.
    /// Blocking (it reads the store).
    pub fn new(
        store: Store,
        specs: Vec<AlarmSpec>,
        clock: Arc<dyn Clock>,
        notifier: Arc<dyn Notifier>,
    ) -> Result<Evaluator, EvaluatorError> {
        validate_all(&specs)?;
        let alarms = specs
            .into_iter()
            .map(|spec| restore(&store, Definition::from(spec)))
            .collect::<Result<_, _>>()?;
        Ok(Evaluator {
            shared: Arc::new(Shared {
                store,
                clock,
                notifier,
                alarms: Mutex::new(alarms),
                reloading: Mutex::new(()),
                wake: Mutex::new(None),
            }),
        })
    }

    /// Evaluates every alarm once and returns the transitions, after recording each in the
    /// store and handing it to the notifier. An alarm whose datapoints cannot be read keeps its
    /// state (the failure is logged). Blocking.
    pub fn evaluate_once(&self) -> Vec<Transition> {
        let shared = &*self.shared;
        let now = shared.clock.now_unix();
        let snapshot: Vec<(Arc<AlarmSpec>, AlarmState)> = shared
            .lock()
            .iter()
            .map(|entry| (Arc::clone(&entry.spec), entry.state))
            .collect();
        let mut evaluated = Vec::with_capacity(snapshot.len());
        for (spec, previous) in snapshot {
            match self.evaluate_alarm(&spec, previous, now) {
                Ok(result) => evaluated.push((spec, result)),
                Err(error) => {
                    tracing::warn!(alarm = spec.name, %error, "cannot read the alarm's datapoints; its state is kept");
                }
            }
        }

        let mut transitions = Vec::new();
        {
            let mut alarms = shared.lock();
            for (spec, (evaluation, datapoints)) in evaluated {
                // An alarm replaced or deleted while we evaluated is evaluated afresh next
                // time, or never again.
                let Some(entry) = alarms.iter_mut().find(|e| Arc::ptr_eq(&e.spec, &spec)) else {
                    continue;
                };
                entry.evaluated_unix = Some(now);
                if evaluation.state == entry.state {
                    continue;
                }
                transitions.push(Transition {
                    alarm: spec.name.clone(),
                    old_state: entry.state,
                    new_state: evaluation.state,
                    reason: evaluation.reason.clone(),
                    timestamp_unix: now,
                    datapoints,
                    spec: Arc::clone(&spec),
                });
                entry.state = evaluation.state;
                entry.since_unix = Some(now);
                entry.reason = evaluation.reason;
            }
        }

        for transition in &transitions {
            tracing::info!(
                alarm = transition.alarm,
                old_state = %transition.old_state,
                new_state = %transition.new_state,
                reason = transition.reason,
                "alarm state changed"
            );
            let record = AlarmTransitionRecord {
                alarm: transition.alarm.clone(),
                timestamp_unix: transition.timestamp_unix,
                old_state: Some(transition.old_state.to_string()),
                new_state: transition.new_state.to_string(),
                reason: transition.reason.clone(),
                data: payload(transition).to_string(),
            };
            if let Err(error) = shared.store.record_alarm_transition(&record) {
                tracing::warn!(alarm = transition.alarm, %error, "cannot record the alarm transition");
            }
            shared.notifier.notify(transition);
        }
        transitions
    }

    /// Reads one alarm's evaluation range (and for an anomaly alarm its training history) and
    /// evaluates it.
    fn evaluate_alarm(
        &self,
        spec: &AlarmSpec,
        previous: AlarmState,
        now: i64,
    ) -> Result<(crate::Evaluation, Vec<Datapoint>), StoreError> {
        let store = &self.shared.store;
        let period = i64::from(spec.period_secs);
        let range = evaluation_range(spec.evaluation_periods);
        // The end of the newest complete period, aligned like the store's buckets.
        let end = (now - EVALUATION_DELAY_SECS).div_euclid(period) * period;
        let start = end - period * range as i64;
        let values = read_slots(store, spec, start, range)?;
        let (evaluation, bands) = match &spec.anomaly {
            None => (evaluate(spec, &values, previous), vec![None; range]),
            Some(anomaly) => {
                let bands = learn_bands(store, spec, anomaly, start, range)?;
                (evaluate_bands(spec, &values, &bands, previous), bands)
            }
        };
        let datapoints = evaluation
            .used
            .iter()
            .filter_map(|&slot| {
                values[slot].map(|value| Datapoint {
                    timestamp_unix: start + period * slot as i64,
                    value,
                    band: bands[slot],
                })
            })
            .collect();
        Ok((evaluation, datapoints))
    }

    /// The anomaly band of alarm `name` for the period containing `at_unix`, learned from the
    /// history before it, as the evaluator would compute it; for drawing the band next to the
    /// metric. `None` when there is no such anomaly alarm or too little history. Blocking.
    pub fn band(&self, name: &str, at_unix: i64) -> Result<Option<Band>, StoreError> {
        let spec = self
            .shared
            .lock()
            .iter()
            .find(|entry| entry.spec.name == name)
            .map(|entry| Arc::clone(&entry.spec));
        let Some(spec) = spec else {
            return Ok(None);
        };
        let Some(anomaly) = &spec.anomaly else {
            return Ok(None);
        };
        let period = i64::from(spec.period_secs);
        let slot = at_unix.div_euclid(period) * period;
        let bands = learn_bands(&self.shared.store, &spec, anomaly, slot, 1)?;
        Ok(bands.into_iter().next().flatten())
    }

    /// Every alarm's state, in spec order.
    pub fn states(&self) -> Vec<AlarmStatus> {
        self.shared
            .lock()
            .iter()
            .map(|entry| AlarmStatus {
                name: entry.spec.name.clone(),
                state: entry.state,
                since_unix: entry.since_unix,
                reason: entry.reason.clone(),
                evaluated_unix: entry.evaluated_unix,
            })
            .collect()
    }

    /// Swaps in a new set of alarms (a config reload) whose history is all theirs; see
    /// [`Evaluator::replace_definitions`].
    pub fn replace_specs(&self, specs: Vec<AlarmSpec>) -> Result<(), EvaluatorError> {
        self.replace_definitions(specs.into_iter().map(Definition::from).collect())
    }

    /// Swaps in a new set of alarms (a config reload, an alarm created, replaced or deleted
    /// through the admin API). An alarm whose definition is unchanged keeps its state; a
    /// changed or new one starts from its last recorded state since `history_since_unix` (or
    /// `INSUFFICIENT_DATA`), as at start. Removed alarms are no longer evaluated or notified
    /// (their history stays until it expires). The spawned thread, if any, evaluates at once.
    /// Blocking (new and changed alarms read the store). On error nothing changes.
    pub fn replace_definitions(&self, definitions: Vec<Definition>) -> Result<(), EvaluatorError> {
        let specs: Vec<AlarmSpec> = definitions.iter().map(|d| d.spec.clone()).collect();
        validate_all(&specs)?;
        // One reload at a time, so an alarm planned as kept is still there at the swap.
        let _reloading = self
            .shared
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current: Vec<(Arc<AlarmSpec>, Option<i64>)> = self
            .shared
            .lock()
            .iter()
            .map(|entry| (Arc::clone(&entry.spec), entry.history_since))
            .collect();
        // The store is read without holding the states' lock, so evaluation and `states` go
        // on meanwhile; kept alarms are taken at the swap, with whatever state they reached.
        let mut plan = Vec::with_capacity(definitions.len());
        for definition in definitions {
            let unchanged = current.iter().find(|(spec, since)| {
                **spec == definition.spec && *since == definition.history_since_unix
            });
            match unchanged {
                Some((existing, _)) => plan.push(Planned::Kept(Arc::clone(existing))),
                None => plan.push(Planned::Restored(restore(&self.shared.store, definition)?)),
            }
        }
        let mut alarms = self.shared.lock();
        let mut previous = std::mem::take(&mut *alarms);
        for item in plan {
            let entry = match item {
                Planned::Restored(restored) => restored,
                Planned::Kept(kept) => {
                    match previous.iter().position(|e| Arc::ptr_eq(&e.spec, &kept)) {
                        Some(index) => previous.swap_remove(index),
                        None => {
                            debug_assert!(false, "kept alarm vanished during a reload");
                            Entry::unchecked(kept, None)
                        }
                    }
                }
            };
            alarms.push(entry);
        }
        drop(alarms);
        self.wake();
        Ok(())
    }

    /// Asks the spawned thread to evaluate now. A wake already pending is enough.
    fn wake(&self) {
        let wake = self
            .shared
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(wake) = &*wake {
            let _ = wake.try_send(Signal::Wake);
        }
    }

    /// Evaluates every `interval` on a thread of its own until the handle is stopped or
    /// dropped. The first evaluation runs at once, and another whenever the alarms change.
    pub fn spawn(self, interval: Duration) -> Result<EvaluatorHandle, EvaluatorError> {
        let (stop, signals) = std::sync::mpsc::sync_channel::<Signal>(2);
        *self
            .shared
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(stop.clone());
        let evaluator = self.clone();
        let thread = std::thread::Builder::new()
            .name("gatehouse-alarms".into())
            .spawn(move || {
                loop {
                    evaluator.evaluate_once();
                    match signals.recv_timeout(interval) {
                        Ok(Signal::Wake) | Err(RecvTimeoutError::Timeout) => {}
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(EvaluatorError::Spawn)?;
        Ok(EvaluatorHandle {
            evaluator: self,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.alarms.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An alarm's entry as at start: its last recorded state since its history began, or
/// `INSUFFICIENT_DATA`.
fn restore(store: &Store, definition: Definition) -> Result<Entry, EvaluatorError> {
    let Definition {
        spec,
        history_since_unix,
    } = definition;
    let last = store
        .alarm_history(Some(&spec.name), history_since_unix.unwrap_or(i64::MIN), 1)
        .map_err(EvaluatorError::History)?;
    let restored = last.into_iter().next().and_then(|record| {
        match record.new_state.parse::<AlarmState>() {
            Ok(state) => Some((state, record.timestamp_unix, record.reason)),
            Err(error) => {
                tracing::warn!(alarm = spec.name, %error, "ignoring an unreadable recorded alarm state");
                None
            }
        }
    });
    Ok(match restored {
        Some((state, since, reason)) => Entry {
            spec: Arc::new(spec),
            history_since: history_since_unix,
            state,
            since_unix: Some(since),
            reason,
            evaluated_unix: None,
        },
        None => Entry::unchecked(Arc::new(spec), history_since_unix),
    })
}

/// What [`Evaluator::replace_specs`] does with one of the new specs.
enum Planned {
    /// Unchanged: the current entry with this spec is kept.
    Kept(Arc<AlarmSpec>),
    /// New or changed: this entry, restored from the history.
    Restored(Entry),
}

impl Entry {
    /// An alarm that has never been evaluated.
    fn unchecked(spec: Arc<AlarmSpec>, history_since: Option<i64>) -> Entry {
        Entry {
            spec,
            history_since,
            state: AlarmState::InsufficientData,
            since_unix: None,
            reason: "Unchecked: the alarm has not been evaluated yet".to_owned(),
            evaluated_unix: None,
        }
    }
}

/// The running evaluator. Stopping (or dropping) it ends the thread after its current
/// evaluation.
pub struct EvaluatorHandle {
    evaluator: Evaluator,
    stop: Option<SyncSender<Signal>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EvaluatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvaluatorHandle").finish_non_exhaustive()
    }
}

impl EvaluatorHandle {
    /// The evaluator, for [`Evaluator::states`] and [`Evaluator::replace_specs`].
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Waits only while the thread takes a pending wake; fails if it has ended.
            let _ = stop.send(Signal::Stop);
        }
        self.evaluator
            .shared
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the alarm evaluator thread panicked");
        }
    }
}

impl Drop for EvaluatorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
