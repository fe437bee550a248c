//! The recorder: the exchange being built for one request, published exactly once.
//!
//! A [`Recorder`] is created when the request head arrives and travels with the request: into
//! the response body for proxied and answered requests (published when the last byte is handed
//! to the connection, or when the client goes away), or into the WebSocket relay (published
//! when the connection closes). Publishing consumes it, and its `Drop` publishes a record that
//! was never finished, so no exchange is lost and none is counted twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::{PathParams, Route};
use gatehouse_telemetry::execution::{
    ExecutionDetail, ExecutionLogLevel, ExecutionLogSettings, PhaseResult, PhaseStep, is_failed,
};
use gatehouse_telemetry::{Bus, ErrorClass, Exchange};
use http::HeaderMap;

use crate::body::UploadCounter;
use crate::conn::ConnActivity;

/// The exchange under construction plus what is needed to time and publish it.
pub(crate) struct Recorder {
    /// Shared only once published; until then this is the sole reference.
    exchange: Option<Arc<Exchange>>,
    start: Instant,
    bus: Arc<Bus>,
    activity: Option<Arc<ConnActivity>>,
    upload: Option<Arc<UploadCounter>>,
    /// A stage logging at ERROR without a data trace: a detail is made only if the exchange
    /// turns out to have failed, when it is published.
    error_log: Option<Arc<ExecutionLogSettings>>,
}

impl Recorder {
    pub(crate) fn new(
        exchange: Exchange,
        start: Instant,
        bus: Arc<Bus>,
        activity: Option<Arc<ConnActivity>>,
    ) -> Self {
        if let Some(activity) = &activity {
            activity.request_started();
        }
        Self {
            exchange: Some(Arc::new(exchange)),
            start,
            bus,
            activity,
            upload: None,
            error_log: None,
        }
    }

    /// Starts the execution log of a routed request whose stage logs (level ERROR or INFO).
    /// Called only behind `route.execution_log.is_enabled()`, so a stage with logging OFF pays
    /// one branch and nothing else.
    pub(crate) fn start_execution(
        &mut self,
        route: &Route,
        params: &PathParams<'_>,
        request_headers: &HeaderMap,
    ) {
        let settings = &route.execution_log;
        if !settings.captures_detail() {
            debug_assert_eq!(settings.level, ExecutionLogLevel::Error);
            self.error_log = Some(Arc::clone(settings));
            return;
        }
        let mut detail = ExecutionDetail::new(Arc::clone(settings));
        detail.path_params = params.iter().map(|(k, v)| (k.into(), v.into())).collect();
        detail.stage_variables = Arc::clone(&route.stage_variables_used);
        if settings.data_trace {
            detail.request_headers = Some(request_headers.clone());
        }
        self.exchange().execution = Some(Box::new(detail));
    }

    /// The execution-log detail being filled, if this request's stage wants one.
    pub(crate) fn execution(&mut self) -> Option<&mut ExecutionDetail> {
        // A plain read first: most requests have no detail and skip `exchange()`'s uniqueness check.
        self.exchange_ref().execution.as_ref()?;
        self.exchange().execution.as_deref_mut()
    }

    /// Whether headers and bodies are captured for this request (a data trace).
    pub(crate) fn traces_data(&self) -> bool {
        self.exchange_ref()
            .execution
            .as_ref()
            .is_some_and(|detail| detail.settings.data_trace)
    }

    /// How many bytes of each body to capture, under a data trace.
    pub(crate) fn body_capture_limit(&self) -> Option<usize> {
        let detail = self.exchange_ref().execution.as_ref()?;
        detail.settings.body_capture_limit()
    }

    /// Records that a pipeline phase finished, for the execution log.
    pub(crate) fn phase_finished(&mut self, phase: &'static str, result: PhaseResult) {
        if self.exchange_ref().execution.is_none() {
            return;
        }
        let at = self.elapsed();
        if let Some(detail) = self.execution() {
            detail.phases.push(PhaseStep { phase, at, result });
        }
    }

    /// Time since the request head arrived.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The instant the request head arrived: the origin of the exchange's `Timing` offsets, for
    /// work that times steps away from the recorder (the WebSocket relay's messages).
    pub(crate) fn origin(&self) -> Instant {
        self.start
    }

    pub(crate) fn exchange(&mut self) -> &mut Exchange {
        // The Arc is cloned only by `publish`, which consumes `self`, so it is unique here.
        self.exchange
            .as_mut()
            .and_then(Arc::get_mut)
            .unwrap_or_else(|| unreachable!("the exchange is unshared until published"))
    }

    pub(crate) fn exchange_ref(&self) -> &Exchange {
        self.exchange.as_deref().unwrap_or_else(|| unreachable!())
    }

    /// Records an error class and message without changing the status.
    pub(crate) fn set_error(&mut self, class: ErrorClass, message: impl Into<String>) {
        let exchange = self.exchange();
        exchange.error = Some(class);
        exchange.error_message = Some(message.into());
    }

    /// Counts the bytes of this upload into `bytes_in` when the record is published.
    pub(crate) fn track_upload(&mut self, upload: Arc<UploadCounter>) {
        self.upload = Some(upload);
    }

    /// Stamps the end time and hands the record to the bus.
    pub(crate) fn publish(mut self) {
        self.publish_now();
    }

    fn publish_now(&mut self) {
        let done = self.start.elapsed();
        let bytes_in = self.upload.as_ref().map(|upload| upload.bytes());
        let request_body = self
            .upload
            .as_ref()
            .and_then(|upload| upload.take_capture());
        let error_log = self.error_log.take();
        if self.exchange.is_none() {
            return;
        }
        let exchange = self.exchange();
        exchange.timing.done = done;
        if let Some(bytes_in) = bytes_in {
            exchange.bytes_in = bytes_in;
        }
        if let Some(body) = request_body
            && let Some(detail) = exchange.execution.as_deref_mut()
        {
            detail.request_body = Some(body);
        }
        if let Some(settings) = error_log
            && is_failed(exchange)
        {
            exchange.execution = Some(Box::new(ExecutionDetail::new(settings)));
        }
        let Some(exchange) = self.exchange.take() else {
            return;
        };
        if let Some(activity) = &self.activity {
            activity.request_finished();
        }
        self.bus.publish(exchange);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Reached only when a future holding the recorder was dropped mid-way (the connection
        // closed while we waited on the upstream, say): the client never got its answer.
        if let Some(exchange) = self.exchange.as_mut().and_then(Arc::get_mut)
            && exchange.error.is_none()
        {
            exchange.error = Some(ErrorClass::ClientClosed);
            exchange.error_message = Some("client closed the connection".into());
            exchange.status = crate::service::STATUS_CLIENT_CLOSED;
        }
        self.publish_now();
    }
}
