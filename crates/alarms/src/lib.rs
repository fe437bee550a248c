//! CloudWatch-style metric alarms over the embedded store.
//!
//! An alarm ([`AlarmSpec`]) watches one statistic of one stored metric series in periods of a
//! whole number of minutes, and is `ALARM` when M of its last N datapoints breach a static
//! threshold or fall outside a band learned from the metric's own history, `OK` when they do not, and `INSUFFICIENT_DATA` when there is nothing to judge, with
//! CloudWatch's four treatments of missing data. The pieces:
//!
//! - `spec.rs`: the settings, their validation, the states and CloudWatch's names for them.
//! - `anomaly.rs`: the anomaly-detection band learned from a metric's own daily history.
//! - `datapoints.rs`: an alarm's datapoints and bands, read from the store.
//! - `evaluate.rs`: the pure rule from datapoints and previous state to the new state.
//! - `evaluator.rs`: the [`Evaluator`] that reads the store every minute, keeps the states,
//!   records transitions in the store's alarm history and hands them to a [`Notifier`].
//! - `notify.rs`: the transition's JSON document and the [`WebhookNotifier`].
//!
//! **Architecture invariant:** alarms never touch the request path. They read what the metrics
//! consumer has already stored, on their own thread, and deliver webhooks on a runtime task.

mod anomaly;
mod datapoints;
mod evaluate;
mod evaluator;
mod notify;
mod spec;

pub use anomaly::{AnomalySpec, Band, MAX_TRAINING_DAYS, SEASON_SECS, band};
pub use evaluate::{Evaluation, evaluate, evaluate_bands, evaluation_range};
pub use evaluator::{
    AlarmStatus, DEFAULT_INTERVAL, Datapoint, Definition, EVALUATION_DELAY_SECS, Evaluator,
    EvaluatorError, EvaluatorHandle, Transition,
};
pub use notify::{
    DeliveryError, MAX_IN_FLIGHT, NoopNotifier, NotificationStats, Notifier, RetryPolicy,
    WebhookNotifier, payload,
};
pub use spec::{
    AlarmSpec, AlarmState, Comparison, MAX_EVALUATION_SECS, MissingData, SpecError, UnknownName,
    WebhookSpec, default_min_sample_count, validate_all,
};
