//! Optional export of the minute buckets to an OpenTelemetry collector over OTLP/HTTP
//! (protobuf), next to the store.
//!
//! [`OtlpExporter`] is a [`MetricSink`]: `write` only puts the closed minute on a bounded queue,
//! so the metrics consumer never waits on the network. A dedicated thread with its own
//! current-thread runtime converts each minute into an `ExportMetricsServiceRequest` (see
//! `convert` for the mapping) and POSTs it, retrying connection errors, timeouts, 429 and 5xx
//! with exponential backoff as the OTLP/HTTP spec asks
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp-throttling>). A full queue drops the
//! minute and counts it. [`FanOut`] feeds the store and the exporter from one consumer.
//!
//! The queue, transport and retry loop are generic over what is queued ([`spawn_export`]): the
//! trace exporter (`spans::otlp`) reuses them with span batches instead of minutes.

mod convert;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokio::sync::{Notify, mpsc};

use crate::metrics::{MetricPoint, MetricSink};

pub(crate) use convert::Origin;
pub use convert::{NAME_PREFIX as OTLP_NAME_PREFIX, SUMMARY_QUANTILES as OTLP_SUMMARY_QUANTILES};

const PROTOBUF: &str = "application/x-protobuf";
/// Collector answers are small (an optional partial-success message); anything longer is cut.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Where and as whom to export.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The full URL to POST to, e.g. `http://collector:4318/v1/metrics` (no path is appended).
    pub endpoint: Uri,
    /// Sent with every request, e.g. an `authorization` header.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The limit on one attempt, from connecting to the end of the response body.
    pub timeout: Duration,
    /// The `service.name` resource attribute; `gatehouse` unless configured.
    pub service_name: String,
    /// The `service.instance.id` resource attribute, e.g. the node id or host name.
    pub service_instance_id: String,
}

/// Turns one queued item into the protobuf body of one export request, on the exporter thread.
pub(crate) type Encode<T> = fn(&Origin, &T) -> Bytes;

/// Queue size and retry schedule; [`ExportPolicy::default`] suits production.
#[derive(Debug, Clone)]
pub struct ExportPolicy {
    /// Minutes waiting for export before new ones are dropped.
    pub queue_minutes: usize,
    /// Attempts per minute, including the first.
    pub attempts: u32,
    /// The pause before the first retry; each further retry waits twice as long.
    pub first_backoff: Duration,
}

impl Default for ExportPolicy {
    /// An hour of queue, 3 attempts 1 s and 2 s apart.
    fn default() -> Self {
        Self {
            queue_minutes: 60,
            attempts: 3,
            first_backoff: Duration::from_secs(1),
        }
    }
}

/// Counters of the exporter's work. The trace exporter counts span batches in the same fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpStats {
    /// Minutes the collector accepted (2xx).
    pub minutes_exported: u64,
    /// Minutes given up after the last attempt or a non-retryable answer.
    pub minutes_failed: u64,
    /// Minutes dropped because the queue was full or the exporter had stopped.
    pub minutes_dropped: u64,
    /// Attempts repeated after a retryable failure.
    pub retries: u64,
}

#[derive(Default)]
pub(crate) struct Shared {
    exported: AtomicU64,
    failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    retries: AtomicU64,
    /// Set by [`OtlpHandle::join`]: drain the queue, one attempt per minute, then stop.
    closing: AtomicBool,
    close: Notify,
}

type Minute = (i64, Vec<MetricPoint>);

/// The sink side: hands minutes to the exporter thread without blocking.
pub struct OtlpExporter {
    queue: mpsc::Sender<Minute>,
    shared: Arc<Shared>,
}

/// The control side: counters, and [`OtlpHandle::join`] at shutdown.
pub struct OtlpHandle {
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl OtlpExporter {
    /// Starts the exporter thread with the default [`ExportPolicy`].
    pub fn spawn(config: OtlpConfig) -> io::Result<(OtlpExporter, OtlpHandle)> {
        Self::spawn_with(config, ExportPolicy::default())
    }

    /// Starts the exporter thread. Fails if the endpoint is not an absolute `http` or `https`
    /// URL, or if the thread, its runtime or the TLS settings cannot be set up.
    pub fn spawn_with(
        config: OtlpConfig,
        policy: ExportPolicy,
    ) -> io::Result<(OtlpExporter, OtlpHandle)> {
        let (queue, handle) = spawn_export(config, policy, "gatehouse-otlp", encode_minute)?;
        let shared = handle.shared();
        Ok((OtlpExporter { queue, shared }, handle))
    }
}

fn encode_minute(origin: &Origin, (minute, points): &Minute) -> Bytes {
    Bytes::from(convert::export_request(origin, *minute, points).encode_to_vec())
}

/// Starts an exporter thread that POSTs each item sent on the returned queue, encoded by
/// `encode`. Fails if the endpoint is not an absolute `http` or `https` URL, or if the thread,
/// its runtime or the TLS settings cannot be set up. A sender that finds the queue full must
/// count the drop in the handle's `dropped` counter.
pub(crate) fn spawn_export<T: Send + 'static>(
    config: OtlpConfig,
    policy: ExportPolicy,
    thread_name: &str,
    encode: Encode<T>,
) -> io::Result<(mpsc::Sender<T>, OtlpHandle)> {
    let scheme_ok = matches!(config.endpoint.scheme_str(), Some("http" | "https"));
    if !scheme_ok || config.endpoint.authority().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "otlp endpoint '{}': expected an absolute http:// or https:// URL",
                config.endpoint
            ),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = client().map_err(io::Error::other)?;
    let (queue, receiver) = mpsc::channel(policy.queue_minutes.max(1));
    let shared = Arc::new(Shared::default());
    let worker = Worker {
        origin: Origin {
            service_name: config.service_name.clone(),
            service_instance_id: config.service_instance_id.clone(),
        },
        config,
        policy,
        client,
        encode,
        shared: Arc::clone(&shared),
    };
    let thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || runtime.block_on(worker.run(receiver)))?;
    let handle = OtlpHandle {
        thread: Some(thread),
        shared,
    };
    Ok((queue, handle))
}

impl MetricSink for OtlpExporter {
    fn write(&mut self, minute_start_unix: i64, points: Vec<MetricPoint>) {
        if self.queue.try_send((minute_start_unix, points)).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                minute = minute_start_unix,
                "otlp export queue full or stopped; minute dropped"
            );
        }
    }
}

impl OtlpHandle {
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// A function that reads the counters, for status pages, without holding the handle.
    pub fn stats_reader(&self) -> impl Fn() -> OtlpStats + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || stats(&shared)
    }

    pub fn stats(&self) -> OtlpStats {
        stats(&self.shared)
    }

    /// Exports the minutes still queued, one attempt each (so a dead collector delays shutdown by
    /// at most one timeout per queued minute), stops the thread and returns the final counters.
    /// Minutes written after this are dropped and counted.
    pub fn join(mut self) -> OtlpStats {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.close.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("otlp exporter thread panicked");
        }
        self.stats()
    }
}

fn stats(s: &Shared) -> OtlpStats {
    OtlpStats {
        minutes_exported: s.exported.load(Ordering::Acquire),
        minutes_failed: s.failed.load(Ordering::Acquire),
        minutes_dropped: s.dropped.load(Ordering::Acquire),
        retries: s.retries.load(Ordering::Acquire),
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP/1.1 client for `http` and `https` endpoints, verifying servers against the Mozilla
/// roots with the aws-lc-rs provider, like the proxy's upstream client.
fn client() -> Result<HttpsClient, rustls::Error> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("collector answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading the response failed: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

impl AttemptError {
    /// Connection errors, timeouts, 429 and 5xx may pass; other answers will not change.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::Request(_) | Self::Body(_) | Self::Timeout(_) => true,
        }
    }
}

struct Worker<T> {
    origin: Origin,
    config: OtlpConfig,
    policy: ExportPolicy,
    client: HttpsClient,
    encode: Encode<T>,
    shared: Arc<Shared>,
}

impl<T> Worker<T> {
    async fn run(self, mut queue: mpsc::Receiver<T>) {
        let mut closing = false;
        loop {
            let next = if closing {
                queue.recv().await
            } else {
                tokio::select! {
                    minute = queue.recv() => minute,
                    () = self.shared.close.notified() => {
                        // Refuse new minutes but keep those already queued.
                        queue.close();
                        closing = true;
                        continue;
                    }
                }
            };
            let Some(item) = next else { break };
            let body = (self.encode)(&self.origin, &item);
            let counter = match self.export(body).await {
                Ok(()) => &self.shared.exported,
                Err(error) => {
                    tracing::warn!(endpoint = %self.config.endpoint, %error, "otlp export failed; batch lost");
                    &self.shared.failed
                }
            };
            counter.fetch_add(1, Ordering::Release);
        }
    }

    async fn export(&self, body: Bytes) -> Result<(), AttemptError> {
        let mut backoff = self.policy.first_backoff;
        let mut attempt = 1;
        loop {
            let error = match self.attempt(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let closing = self.shared.closing.load(Ordering::Acquire);
            if !error.is_retryable() || attempt >= self.policy.attempts || closing {
                return Err(error);
            }
            tracing::debug!(attempt, %error, ?backoff, "otlp export will be retried");
            self.shared.retries.fetch_add(1, Ordering::Release);
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }

    async fn attempt(&self, body: Bytes) -> Result<(), AttemptError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.config.endpoint.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("gatehouse/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &self.config.headers {
            headers.append(name.clone(), value.clone());
        }
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(AttemptError::Body)?
                .to_bytes();
            Ok::<_, AttemptError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| AttemptError::Timeout(self.config.timeout))??;
        if !status.is_success() {
            let message = String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned();
            return Err(AttemptError::Status { status, message });
        }
        // A 2xx may still reject some points (OTLP partial success); the batch counts as
        // exported since retrying would not help, but the collector's reason is worth a log.
        // The trace service's answer has the same wire form (rejected count, message), so one
        // decoder reads both.
        if let Ok(answer) = ExportMetricsServiceResponse::decode(body)
            && let Some(partial) = answer.partial_success
            && (partial.rejected_data_points > 0 || !partial.error_message.is_empty())
        {
            tracing::warn!(
                rejected = partial.rejected_data_points,
                message = %partial.error_message,
                "otlp collector rejected some data points or spans"
            );
        }
        Ok(())
    }
}

/// A sink that hands every minute to several sinks in order, e.g. the store and an
/// [`OtlpExporter`]; all but the last receive a clone of the points.
pub struct FanOut(pub Vec<Box<dyn MetricSink>>);

impl MetricSink for FanOut {
    fn write(&mut self, minute_start_unix: i64, points: Vec<MetricPoint>) {
        let Some((last, rest)) = self.0.split_last_mut() else {
            return;
        };
        for sink in rest {
            sink.write(minute_start_unix, points.clone());
        }
        last.write(minute_start_unix, points);
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
pub(crate) mod tests;
