//! Body wrappers that count bytes, enforce the payload limit and finish the exchange.
//!
//! Bodies are streamed both ways, never buffered whole: [`RequestBody`] counts the bytes it
//! forwards upstream and fails the upload once the payload limit is crossed; [`ResponseBody`]
//! counts what it hands to the client and publishes the exchange at the end of the stream, on an
//! upstream error, or when dropped early because the client went away.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use gatehouse_telemetry::ErrorClass;
use gatehouse_telemetry::execution::{BodyCapture, CapturedBody};
use http::{HeaderMap, Method};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::integration::pool::PoolReturn;
use crate::record::Recorder;
use crate::service::STATUS_CLIENT_CLOSED;

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Shared between the request body (moved into the upstream request) and the handler that needs
/// the counts after the upstream answered.
#[derive(Debug, Default)]
pub(crate) struct UploadCounter {
    bytes: AtomicU64,
    limit_exceeded: AtomicBool,
    client_failed: AtomicBool,
    client_gone: AtomicBool,
    /// Under a data trace, the first bytes of the upload for the execution log.
    capture: Option<Mutex<BodyCapture>>,
}

impl UploadCounter {
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub(crate) fn limit_exceeded(&self) -> bool {
        self.limit_exceeded.load(Ordering::Relaxed)
    }
    pub(crate) fn client_failed(&self) -> bool {
        self.client_failed.load(Ordering::Relaxed)
    }
    /// The client's body failed because its connection ended, not because it was malformed.
    pub(crate) fn client_gone(&self) -> bool {
        self.client_gone.load(Ordering::Relaxed)
    }

    /// The captured start of the upload so far (what streamed upstream until now).
    pub(crate) fn take_capture(&self) -> Option<CapturedBody> {
        let capture = self.capture.as_ref()?;
        let mut capture = capture.lock().unwrap_or_else(PoisonError::into_inner);
        Some(std::mem::replace(&mut *capture, BodyCapture::new(0)).finish())
    }
}

/// Whether a request body error means the client's connection ended (EOF mid-body, reset),
/// as opposed to a body the client sent but that could not be decoded (a bad chunk size).
fn is_disconnect(error: &hyper::Error) -> bool {
    use std::io::ErrorKind;
    let mut source = StdError::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
            );
        }
        source = cause.source();
    }
    error.is_incomplete_message() || error.is_closed() || error.is_canceled()
}

#[derive(Debug, thiserror::Error)]
#[error("request payload exceeds the limit of {limit} bytes")]
pub(crate) struct PayloadTooLarge {
    limit: u64,
}

/// The client's request body on its way upstream.
pub struct RequestBody {
    inner: Option<Incoming>,
    counter: Arc<UploadCounter>,
    limit: u64,
}

impl RequestBody {
    /// Wraps the client's body; `capture` is the data-trace cap, if the body is to be captured.
    pub(crate) fn new(
        inner: Incoming,
        limit: u64,
        capture: Option<usize>,
    ) -> (Self, Arc<UploadCounter>) {
        let counter = Arc::new(UploadCounter {
            capture: capture.map(|cap| Mutex::new(BodyCapture::new(cap))),
            ..UploadCounter::default()
        });
        let inner = (!inner.is_end_stream()).then_some(inner);
        (
            Self {
                inner,
                counter: Arc::clone(&counter),
                limit,
            },
            counter,
        )
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let total = this
                        .counter
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if total > this.limit {
                        this.counter.limit_exceeded.store(true, Ordering::Relaxed);
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(PayloadTooLarge {
                            limit: this.limit,
                        }))));
                    }
                    if let Some(capture) = &this.counter.capture {
                        capture
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.counter.client_failed.store(true, Ordering::Relaxed);
                if is_disconnect(&error) {
                    this.counter.client_gone.store(true, Ordering::Relaxed);
                }
                this.inner = None;
                Poll::Ready(Some(Err(Box::new(error))))
            }
            None => {
                this.inner = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

enum Inner {
    Full(Option<Bytes>),
    Upstream(Incoming),
}

/// The body of every response the gateway sends on the data plane.
pub struct ResponseBody {
    inner: Inner,
    recorder: Option<Recorder>,
    bytes_out: u64,
    /// The upstream connection this body is read from; back to the pool once it has ended.
    loan: Option<PoolReturn>,
    /// Under a data trace, the first bytes sent to the client, for the execution log.
    capture: Option<Box<BodyCapture>>,
}

impl ResponseBody {
    /// A body the gateway made itself (errors, mock integrations).
    pub(crate) fn full(bytes: Bytes, recorder: Option<Recorder>) -> Self {
        let inner = Inner::Full((!bytes.is_empty()).then_some(bytes));
        Self {
            inner,
            capture: body_capture(recorder.as_ref()),
            recorder,
            bytes_out: 0,
            loan: None,
        }
    }

    /// An empty body that records nothing (the 101 answer of a WebSocket upgrade, whose
    /// exchange the relay publishes when the connection ends).
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new(), None)
    }

    /// The upstream's body, streamed through.
    pub(crate) fn upstream(body: Incoming, recorder: Recorder, loan: Option<PoolReturn>) -> Self {
        Self {
            inner: Inner::Upstream(body),
            capture: body_capture(Some(&recorder)),
            recorder: Some(recorder),
            bytes_out: 0,
            loan,
        }
    }

    /// Whether the response headers are wanted for the execution log (a data trace).
    pub(crate) fn traces_data(&self) -> bool {
        self.recorder.as_ref().is_some_and(Recorder::traces_data)
    }

    /// Keeps the response headers as sent to the client, for the execution log.
    pub(crate) fn record_response_headers(&mut self, headers: HeaderMap) {
        if let Some(detail) = self.recorder.as_mut().and_then(Recorder::execution) {
            detail.response_headers = Some(headers);
        }
    }

    /// The upstream body ended: its connection may serve another request.
    fn release_connection(&mut self) {
        if let Some(loan) = self.loan.take() {
            loan.release();
        }
    }

    /// Records that the client, not the answer, ended the exchange: status 499, class
    /// `client_closed`, whatever error the answer carried.
    pub(crate) fn mark_client_closed(&mut self, message: &str) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.exchange().status = STATUS_CLIENT_CLOSED;
            recorder.set_error(ErrorClass::ClientClosed, message);
        }
    }

    fn finish(&mut self, failure: Option<(ErrorClass, String)>) {
        let Some(mut recorder) = self.recorder.take() else {
            return;
        };
        let exchange = recorder.exchange();
        exchange.bytes_out = self.bytes_out;
        if matches!(self.inner, Inner::Upstream(_)) {
            let end = recorder.elapsed();
            recorder.exchange().timing.integration_end = Some(end);
        }
        if let Some((class, message)) = failure {
            recorder.set_error(class, message);
        }
        if let Some(capture) = self.capture.take()
            && let Some(detail) = recorder.execution()
        {
            detail.response_body = Some(capture.finish());
        }
        recorder.publish();
    }
}

/// A capture of the response body when the request's stage traces data.
fn body_capture(recorder: Option<&Recorder>) -> Option<Box<BodyCapture>> {
    let limit = recorder?.body_capture_limit()?;
    Some(Box::new(BodyCapture::new(limit)))
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Inner::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Inner::Upstream(body) => {
                ready!(Pin::new(body).poll_frame(cx)).map(|r| r.map_err(BoxError::from))
            }
        };
        match polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes_out += data.len() as u64;
                    if let Some(capture) = &mut this.capture {
                        capture.push(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                let message = format!("upstream body failed: {error}");
                this.finish(Some((ErrorClass::UpstreamReset, message)));
                Poll::Ready(Some(Err(error)))
            }
            None => {
                this.release_connection();
                this.finish(None);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Upstream(body) => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An upstream body that ended (or never had bytes, as for HEAD) leaves its connection
        // reusable; one dropped mid-way closes it with the loan.
        if self.is_end_stream() {
            self.release_connection();
        }
        let Some(recorder) = &self.recorder else {
            return;
        };
        // Responses that carry no body (HEAD, 204, 304) are dropped unpolled by the connection:
        // that is a complete answer, not a client that went away.
        let exchange = recorder.exchange_ref();
        let bodiless = exchange.method.as_ref() == Some(&Method::HEAD)
            || matches!(exchange.status, 204 | 304)
            || self.is_end_stream();
        if bodiless {
            self.finish(None);
        } else {
            let message = "client closed the connection before the response was complete";
            self.finish(Some((ErrorClass::ClientClosed, message.into())));
        }
    }
}
