//! Telling the outside world: the [`Notifier`] the evaluator hands every transition to, the JSON
//! document that describes a transition, and [`WebhookNotifier`], which POSTs that document to
//! the alarm's webhook with retries.
//!
//! Delivery runs as a task on a tokio runtime, never on the evaluator's thread: a slow or dead
//! webhook delays nothing but its own retries. At most [`MAX_IN_FLIGHT`] deliveries run at once;
//! a transition beyond that is not delivered, and counted. Every delivery's outcome is counted
//! ([`NotificationStats`]) for `/metrics` and the status page.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::evaluator::Transition;
use crate::spec::WebhookSpec;

/// Receives every transition, on the evaluator's thread: implementations must not block.
pub trait Notifier: Send + Sync {
    fn notify(&self, transition: &Transition);
}

/// A notifier that does nothing (transitions are still logged and recorded).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopNotifier;

impl Notifier for NoopNotifier {
    fn notify(&self, _transition: &Transition) {}
}

/// The JSON document describing a transition: posted to webhooks and stored as the `data` of
/// the history row. Keys are camelCase like CloudWatch's alarm state-change events.
pub fn payload(transition: &Transition) -> Value {
    let spec = &transition.spec;
    let dims = &spec.dimensions;
    let mut dimensions = Map::new();
    for (name, value) in [
        ("api", &dims.api),
        ("stage", &dims.stage),
        ("route", &dims.route),
        ("method", &dims.method),
    ] {
        if let Some(value) = value {
            dimensions.insert(name.into(), Value::from(&**value));
        }
    }
    if let Some(canary) = dims.canary {
        dimensions.insert("canary".into(), Value::from(canary));
    }
    let datapoints: Vec<Value> = transition
        .datapoints
        .iter()
        .map(|point| {
            let mut value = json!({
                "timestamp": rfc3339(point.timestamp_unix),
                "unix": point.timestamp_unix,
                "value": point.value,
            });
            if let Some(band) = point.band {
                value["band"] = json!({ "lower": band.lower, "upper": band.upper });
            }
            value
        })
        .collect();
    let mut document = json!({
        "alarm": transition.alarm,
        "oldState": transition.old_state.as_str(),
        "newState": transition.new_state.as_str(),
        "reason": transition.reason,
        "timestamp": rfc3339(transition.timestamp_unix),
        "unix": transition.timestamp_unix,
        "datapoints": datapoints,
        "threshold": spec.threshold,
        "comparison": spec.comparison.as_str(),
        "metric": spec.metric,
        "dimensions": dimensions,
        "statistic": spec.statistic.to_string(),
        "period": spec.period_secs,
        "evaluationPeriods": spec.evaluation_periods,
        "datapointsToAlarm": spec.datapoints_to_alarm,
        "treatMissingData": spec.treat_missing_data.as_str(),
    });
    // Anomaly alarms add their model's settings (and a band to each datapoint); `threshold`
    // is null for them.
    if let Some(anomaly) = spec.anomaly {
        document["anomaly"] = json!({
            "bandWidth": anomaly.band_width,
            "trainingDays": anomaly.training_days,
            "minTrainingDays": anomaly.min_training_days,
        });
    }
    document
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// How a webhook delivery is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first failure; each later wait doubles it.
    pub first_backoff: Duration,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 1 s and 2 s apart, 10 s each.
    fn default() -> Self {
        Self {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot build the request: {0}")]
    Request(#[source] http::Error),
    #[error("request failed: {0}")]
    Send(#[source] hyper_util::client::legacy::Error),
    #[error("the webhook answered {0}")]
    Status(http::StatusCode),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How many deliveries (with their retries) may be under way at once. Transitions are rare, so
/// reaching this means webhooks are hanging; further transitions are dropped, not queued.
pub const MAX_IN_FLIGHT: usize = 256;

/// What became of the webhook deliveries since the notifier was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotificationStats {
    /// Delivered: some attempt was answered with a 2xx status.
    pub delivered: u64,
    /// Given up after the last attempt.
    pub failed: u64,
    /// Not attempted because [`MAX_IN_FLIGHT`] deliveries were already under way.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicUsize,
}

/// Posts each transition of an alarm with a webhook to it, as JSON, with retries. Any 2xx
/// answer is success. `https://` URLs are checked against the Mozilla root store.
#[derive(Clone)]
pub struct WebhookNotifier {
    runtime: tokio::runtime::Handle,
    client: HttpClient,
    retry: RetryPolicy,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// A notifier whose deliveries run on `runtime`, with the default [`RetryPolicy`].
    pub fn new(runtime: tokio::runtime::Handle) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            runtime,
            client,
            retry: RetryPolicy::default(),
            counters: Arc::default(),
        })
    }

    /// The outcomes so far, of this notifier and its clones.
    pub fn stats(&self) -> NotificationStats {
        let counters = &self.counters;
        NotificationStats {
            delivered: counters.delivered.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
        }
    }

    /// The same notifier with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Posts `body` to `webhook`, retrying per the policy, and counts the outcome. Each failed
    /// attempt is logged; the last failure is returned once attempts run out.
    pub async fn deliver(
        &self,
        alarm: &str,
        webhook: &WebhookSpec,
        body: Bytes,
    ) -> Result<(), DeliveryError> {
        let mut backoff = self.retry.first_backoff;
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let error = match self.attempt(webhook, body.clone()).await {
                Ok(()) => {
                    tracing::debug!(alarm, url = webhook.url, attempt, "alarm webhook delivered");
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(error) => error,
            };
            if attempt >= attempts {
                tracing::error!(alarm, url = webhook.url, attempts, %error, "alarm webhook delivery failed; giving up");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
            tracing::warn!(alarm, url = webhook.url, attempt, %error, retry_in = ?backoff, "alarm webhook delivery failed");
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }

    async fn attempt(&self, webhook: &WebhookSpec, body: Bytes) -> Result<(), DeliveryError> {
        let mut request = http::Request::post(&webhook.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "gatehouse-alarms");
        for (name, value) in &webhook.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(DeliveryError::Request)?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(DeliveryError::Send)?;
            let status = response.status();
            // Read the body to the end so the connection can be reused.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status(status))
            }
        };
        tokio::time::timeout(self.retry.timeout, exchange)
            .await
            .map_err(|_| DeliveryError::Timeout(self.retry.timeout))?
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, transition: &Transition) {
        let Some(webhook) = transition.spec.webhook.clone() else {
            return;
        };
        let counters = &self.counters;
        if counters.in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                alarm = transition.alarm,
                max = MAX_IN_FLIGHT,
                "too many alarm webhook deliveries under way; this transition is not delivered"
            );
            return;
        }
        let body = Bytes::from(payload(transition).to_string());
        let alarm = transition.alarm.clone();
        let notifier = self.clone();
        self.runtime.spawn(async move {
            // Failures are logged and counted by `deliver`.
            let _ = notifier.deliver(&alarm, &webhook, body).await;
            notifier.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
