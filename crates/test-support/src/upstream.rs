//! A real HTTP upstream on loopback, for tests to proxy to.
//!
//! It speaks HTTP/1.1 and HTTP/2 with prior knowledge (hyper-util's auto builder), counts the
//! connections it accepted and the requests it received, and remembers each request head, so a
//! test can assert what reached it — or that nothing did. Endpoints:
//!
//! | path | answer |
//! |---|---|
//! | `/echo/...` | JSON: method, path, query, version, headers, body length and checksum |
//! | `/status/{code}` | that status, JSON body |
//! | `/delay/{ms}` | sleeps, then 200 |
//! | `/stream/{bytes}` | that many pattern bytes, generated chunk by chunk; with `?hold_at=N` it pauses after N bytes until [`Upstream::release_streams`] |
//! | `/upload` | reads the body as it arrives; JSON with its length and checksum |
//! | `/reset` | drops the connection without answering |
//! | `/close-mid-body` | sends the head and part of the body, then drops the connection |
//! | `/headers` | an answer carrying hop-by-hop headers and a `server` header |

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::checksum::{Checksum, PATTERN_CHUNK, pattern_chunks};

type BoxError = Box<dyn StdError + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// How many bytes `/close-mid-body` sends before dropping the connection (it announces 1 MiB).
pub const CLOSE_MID_BODY_SENT: usize = 2 * PATTERN_CHUNK;

/// The head of one request the upstream received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: Method,
    /// Path and query, as received.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
}

#[derive(Debug)]
struct State {
    connections: AtomicU64,
    requests: AtomicU64,
    uploaded: AtomicU64,
    streamed: AtomicU64,
    seen: Mutex<Vec<SeenRequest>>,
    release: watch::Sender<bool>,
}

/// A running upstream; it stops when the last clone is dropped. Clones share the counters, so a
/// clone can be moved into a request body stream that watches the upstream's progress.
#[derive(Debug, Clone)]
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
    _stop: Arc<DropGuard>,
}

impl Upstream {
    /// Starts an upstream on 127.0.0.1 with an ephemeral port, on the current tokio runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test upstream");
        let addr = listener.local_addr().expect("upstream address");
        let state = Arc::new(State {
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            streamed: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            release: watch::channel(false).0,
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, Arc::clone(&state), stop.clone()));
        Self {
            addr,
            state,
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far (counted when the head arrives, before any body).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Body bytes `/upload` has read so far, over all requests.
    pub fn uploaded_bytes(&self) -> u64 {
        self.state.uploaded.load(Ordering::SeqCst)
    }

    /// Body bytes `/stream` has handed to the connection so far, over all requests.
    pub fn streamed_bytes(&self) -> u64 {
        self.state.streamed.load(Ordering::SeqCst)
    }

    /// Lets every `/stream?hold_at=N` answer, present and future, continue past its hold.
    pub fn release_streams(&self) {
        self.state.release.send_replace(true);
    }

    /// The heads of all requests received so far, in arrival order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock_seen().clone()
    }

    /// The head of the last request received.
    pub fn last_seen(&self) -> Option<SeenRequest> {
        self.lock_seen().last().cloned()
    }

    fn lock_seen(&self) -> MutexGuard<'_, Vec<SeenRequest>> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let state = Arc::clone(&state);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&state), request));
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn answer(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    {
        let seen = SeenRequest {
            method: request.method().clone(),
            target: request
                .uri()
                .path_and_query()
                .map_or_else(String::new, |pq| pq.to_string()),
            version: request.version(),
            headers: request.headers().clone(),
        };
        state
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(seen);
    }
    let path = request.uri().path().to_owned();
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    match (segments.next().unwrap_or_default(), segments.next()) {
        ("echo", _) => echo(request).await,
        ("status", Some(code)) => {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok());
            match status {
                Some(status) => Ok(json_response(status, &json!({ "status": status.as_u16() }))),
                None => Ok(json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({ "error": "bad status" }),
                )),
            }
        }
        ("delay", Some(ms)) => {
            let ms: u64 = ms.parse()?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json_response(StatusCode::OK, &json!({ "delayed_ms": ms })))
        }
        ("stream", Some(bytes)) => {
            let hold_at =
                query_param(request.uri().query(), "hold_at").and_then(|v| v.parse().ok());
            Ok(stream(state, bytes.parse()?, hold_at))
        }
        ("upload", None) => upload(state, request).await,
        ("reset", None) => Err("the test asked the upstream to drop the connection".into()),
        ("close-mid-body", None) => Ok(close_mid_body()),
        ("headers", None) => Ok(hop_by_hop_headers()),
        _ => Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "no such upstream endpoint" }),
        )),
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// Reads a body to its end, frame by frame, returning its length and checksum.
async fn consume(mut body: Incoming, progress: Option<&AtomicU64>) -> Result<Checksum, BoxError> {
    let mut sum = Checksum::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            sum.update(data);
            if let Some(progress) = progress {
                progress.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
        }
    }
    Ok(sum)
}

async fn echo(request: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let (parts, body) = request.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<serde_json::Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        headers.insert(name.as_str().to_owned(), values.into());
    }
    let sum = consume(body, None).await?;
    let answer = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": sum.len(),
        "checksum": sum.hex(),
    });
    Ok(json_response(StatusCode::OK, &answer))
}

async fn upload(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let sum = consume(request.into_body(), Some(&state.uploaded)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "length": sum.len(), "checksum": sum.hex() }),
    ))
}

fn stream(state: Arc<State>, total: u64, hold_at: Option<u64>) -> Response<Body> {
    let release = state.release.subscribe();
    let frames = futures_util::stream::unfold(
        (pattern_chunks(total), 0u64, release, state),
        move |(mut chunks, sent, mut release, state)| async move {
            if hold_at.is_some_and(|hold| sent >= hold) {
                // An error means the upstream is gone; then there is nobody left to wait for.
                let _ = release.wait_for(|released| *released).await;
            }
            let chunk = chunks.next()?;
            let len = chunk.len() as u64;
            state.streamed.fetch_add(len, Ordering::SeqCst);
            Some((
                Ok::<_, BoxError>(Frame::data(chunk)),
                (chunks, sent + len, release, state),
            ))
        },
    );
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn close_mid_body() -> Response<Body> {
    let sent = futures_util::stream::iter(pattern_chunks(CLOSE_MID_BODY_SENT as u64))
        .map(|chunk| Ok::<_, BoxError>(Frame::data(chunk)));
    // Pausing first makes hyper flush the head and what it has of the body before the failure
    // aborts the connection; otherwise it could discard them unsent.
    let failure = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err::<Frame<Bytes>, BoxError>("the test asked the upstream to stop mid-body".into())
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(sent.chain(failure))));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(1024 * 1024u64));
    response
}

fn hop_by_hop_headers() -> Response<Body> {
    let mut response = json_response(StatusCode::OK, &json!({ "hop_by_hop": true }));
    let headers = response.headers_mut();
    for (name, value) in [
        ("connection", "keep-alive, x-upstream-hop"),
        ("x-upstream-hop", "connection-specific"),
        ("keep-alive", "timeout=30"),
        ("proxy-authenticate", "Basic realm=\"upstream\""),
        ("upgrade", "h2c"),
        ("server", "gatehouse-test-upstream"),
        ("x-upstream-kept", "yes"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
