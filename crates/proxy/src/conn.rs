//! Listeners and connections: accept, TLS, HTTP/1.1 and HTTP/2 (ALPN or h2c prior knowledge),
//! the connection limit, timeouts and graceful draining.
//!
//! Timeouts are enforced by one watchdog per connection rather than by hyper's h1 timer, because
//! hyper's header-read timer also runs while a keep-alive connection sits idle, which would make
//! the idle timeout unreachable. The watchdog reads [`ConnActivity`], which the I/O wrapper and
//! the request recorder keep up to date:
//! - header read timeout: bytes of a new request head arrived but the head is not complete;
//! - idle timeout: no request in flight and no bytes either way.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use gatehouse_config::{Limits, ListenerSettings};
use gatehouse_telemetry::{
    Decisions, ErrorClass, Exchange, ExchangeKind, IntegrationOutcome, Timing, new_request_id,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Gateway;
use crate::service::{ConnInfo, handle};

const NONE: u64 = u64::MAX;

/// What the watchdog needs to know about one connection.
#[derive(Debug)]
pub(crate) struct ConnActivity {
    epoch_ms: u64,
    last_io_ms: AtomicU64,
    head_started_ms: AtomicU64,
    in_flight: AtomicU32,
    /// HTTP/2 connections carry control frames between requests; the head timer does not apply.
    multiplexed: AtomicBool,
}

impl ConnActivity {
    fn new() -> Self {
        Self {
            epoch_ms: coarse_clock::now_ms(),
            last_io_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
            in_flight: AtomicU32::new(0),
            multiplexed: AtomicBool::new(false),
        }
    }

    /// Milliseconds since the connection opened, from the coarse clock: reading the real clock on
    /// every read and write showed up in profiles, and timeouts need no better than a few ms.
    fn now_ms(&self) -> u64 {
        coarse_clock::now_ms().saturating_sub(self.epoch_ms)
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == NONE
            && !self.multiplexed.load(Ordering::Relaxed)
        {
            self.head_started_ms.store(now, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn set_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(NONE, Ordering::Relaxed);
    }

    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }
}

enum Fired {
    HeaderTimeout,
    Idle,
}

async fn watchdog(
    activity: &ConnActivity,
    header_timeout: Duration,
    idle_timeout: Duration,
) -> Fired {
    let header_ms = header_timeout.as_millis() as u64;
    let idle_ms = idle_timeout.as_millis() as u64;
    // Nothing wakes the watchdog per request (that cost a task poll and a timer per request);
    // instead, while idle it checks at least every half header timeout whether a head began, so
    // a slow head is closed within 1.5 header timeouts at worst.
    let check_ms = (header_ms / 2).max(1);
    let sleep = tokio::time::sleep(Duration::from_millis(check_ms));
    tokio::pin!(sleep);
    loop {
        let now = activity.now_ms();
        let wait_ms = if activity.in_flight.load(Ordering::Relaxed) > 0 {
            check_ms.min(idle_ms)
        } else {
            let head = activity.head_started_ms.load(Ordering::Relaxed);
            if head != NONE {
                let deadline = head.saturating_add(header_ms);
                if now >= deadline {
                    return Fired::HeaderTimeout;
                }
                deadline - now
            } else {
                let deadline = activity
                    .last_io_ms
                    .load(Ordering::Relaxed)
                    .saturating_add(idle_ms);
                if now >= deadline {
                    return Fired::Idle;
                }
                (deadline - now).min(check_ms)
            }
        };
        sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + Duration::from_millis(wait_ms.max(1)));
        sleep.as_mut().await;
    }
}

/// A millisecond clock that is read with one atomic load. A background thread advances it every
/// few milliseconds, so it may lag the real clock by that much.
mod coarse_clock {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const TICK: Duration = Duration::from_millis(2);

    static NOW_MS: AtomicU64 = AtomicU64::new(0);
    static STARTED: OnceLock<Instant> = OnceLock::new();

    pub(super) fn now_ms() -> u64 {
        STARTED.get_or_init(|| {
            let start = Instant::now();
            let spawned = std::thread::Builder::new()
                .name("gatehouse-clock".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(TICK);
                        NOW_MS.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the coarse clock thread; timeouts will not fire");
            }
            start
        });
        NOW_MS.load(Ordering::Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// Wraps a connection's I/O to feed [`ConnActivity`].
    struct Tracked<T> {
        #[pin]
        io: T,
        activity: Arc<ConnActivity>,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// One bound listener, ready to serve.
pub struct Listener {
    settings: ListenerSettings,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    /// Binds the listener's address and loads its TLS material.
    pub async fn bind(settings: ListenerSettings) -> Result<Self, crate::ListenerError> {
        let tls = match &settings.tls {
            Some(files) => Some(crate::tls::acceptor(
                &files.cert_file,
                &files.key_file,
                settings.http2,
            )?),
            None => None,
        };
        let tcp = bind_tcp(settings.bind).map_err(|source| crate::ListenerError::Bind {
            name: settings.name.clone(),
            addr: settings.bind,
            source,
        })?;
        Ok(Self { settings, tcp, tls })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Connection-wide state shared by every listener of one gateway process.
pub(crate) struct Connections {
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    /// WebSocket connections being relayed now.
    pub(crate) open_websockets: Arc<std::sync::atomic::AtomicI64>,
}

/// Counts one open WebSocket connection for as long as it lives.
pub(crate) struct OpenWebSocket(Arc<std::sync::atomic::AtomicI64>);

impl OpenWebSocket {
    pub(crate) fn new(counter: &Arc<std::sync::atomic::AtomicI64>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counter))
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Heads up to twice the limit are parsed so the service can answer 431 as JSON; larger ones are
/// refused by the parser itself (and still recorded, see `record_parse_error`).
fn head_buffer_bytes(limits: &Limits) -> usize {
    (limits.max_header_bytes * 2).max(16 * 1024)
}

/// The builder for listeners that serve HTTP/2 as well as HTTP/1.1.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(head_buffer_bytes(limits))
        .max_headers(256);
    builder
        .http2()
        // The same headroom as HTTP/1: heads over the limit reach the service, which answers
        // 431 as JSON and records it; at the bare limit, h2 would refuse them unrecorded.
        .max_header_list_size(u32::try_from(head_buffer_bytes(limits)).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}

/// The builder for HTTP/1.1-only listeners. hyper-util's auto builder cannot be used for them:
/// `serve_connection_with_upgrades` ignores `http1_only` and would still serve an HTTP/2 preface.
fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(head_buffer_bytes(limits))
        .max_headers(256);
    builder
}

/// Accepts connections until shutdown. Each connection runs on its own task in the tracker.
pub(crate) async fn accept_loop(listener: Listener, gateway: Arc<Gateway>) {
    let name: Arc<str> = Arc::from(listener.settings.name.as_str());
    let connections = &gateway.connections;
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections.limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = connections.shutdown.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, listener = %name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = connections.shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let info = ConnInfo {
            listener: Arc::clone(&name),
            client: peer,
            tls: listener.tls.is_some(),
            activity: Arc::new(ConnActivity::new()),
            forwarding: crate::headers::ClientForwarding::new(peer.ip(), listener.tls.is_some()),
            permit: std::sync::Mutex::new(Some(permit)),
        };
        let tls = listener.tls.clone();
        let http2 = listener.settings.http2;
        let gateway = Arc::clone(&gateway);
        connections.tracker.spawn(async move {
            serve(stream, tls, http2, info, gateway).await;
        });
    }
}

async fn serve(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    http2: bool,
    info: ConnInfo,
    gateway: Arc<Gateway>,
) {
    let limits = gateway.limits();
    let activity = Arc::clone(&info.activity);
    match tls {
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(stream)) => {
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        activity.set_multiplexed();
                    }
                    let io = Tracked {
                        io: stream,
                        activity,
                    };
                    serve_http(io, http2, info, gateway, &limits).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, client = %info.client, "tls handshake failed")
                }
                Err(_) => tracing::debug!(client = %info.client, "tls handshake timed out"),
            }
        }
        None => {
            let io = Tracked {
                io: stream,
                activity,
            };
            serve_http(io, http2, info, gateway, &limits).await;
        }
    }
}

async fn serve_http<T>(
    io: Tracked<T>,
    http2: bool,
    info: ConnInfo,
    gateway: Arc<Gateway>,
    limits: &Limits,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let service_info = Arc::clone(&info);
    let service_gateway = Arc::clone(&gateway);
    let service = service_fn(move |request| {
        handle(
            Arc::clone(&service_gateway),
            Arc::clone(&service_info),
            request,
        )
    });
    let io = TokioIo::new(io);
    let result = if http2 {
        let builder = builder(limits);
        let connection = builder.serve_connection_with_upgrades(io, service);
        drive(
            connection,
            |c| c.graceful_shutdown(),
            &info,
            &gateway,
            limits,
        )
        .await
    } else {
        let connection = http1_builder(limits)
            .serve_connection(io, service)
            .with_upgrades();
        drive(
            connection,
            |c| c.graceful_shutdown(),
            &info,
            &gateway,
            limits,
        )
        .await
    };
    if let Some(Err(error)) = result {
        record_parse_error(&gateway, &info, error.as_ref());
    }
}

/// Runs a connection until it ends, the watchdog fires or the gateway shuts down. `None` when it
/// was dropped because the request head did not complete in time.
async fn drive<C, E>(
    connection: C,
    graceful_shutdown: fn(Pin<&mut C>),
    info: &ConnInfo,
    gateway: &Gateway,
    limits: &Limits,
) -> Option<Result<(), Box<dyn std::error::Error + Send + Sync>>>
where
    C: Future<Output = Result<(), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    let watchdog = watchdog(
        &info.activity,
        limits.header_read_timeout,
        limits.idle_timeout,
    );
    tokio::pin!(watchdog);
    let shutdown = gateway.connections.shutdown.clone();
    let result = tokio::select! {
        result = connection.as_mut() => result,
        fired = &mut watchdog => match fired {
            Fired::HeaderTimeout => {
                tracing::debug!(client = %info.client, "request head not complete in time; closing");
                return None;
            }
            Fired::Idle => {
                graceful_shutdown(connection.as_mut());
                connection.await
            }
        },
        () = shutdown.cancelled() => {
            graceful_shutdown(connection.as_mut());
            connection.await
        }
    };
    Some(result.map_err(Into::into))
}

/// Requests the HTTP/1 parser refused never reach the service; they still get a record (the
/// parser has already answered 400 or 431 on the wire), because no request may be invisible.
fn record_parse_error(
    gateway: &Gateway,
    info: &ConnInfo,
    error: &(dyn std::error::Error + 'static),
) {
    let Some(error) = error.downcast_ref::<hyper::Error>() else {
        tracing::debug!(%error, client = %info.client, "connection ended with an error");
        return;
    };
    if !error.is_parse() || error.is_parse_version_h2() {
        tracing::debug!(%error, client = %info.client, "connection ended with an error");
        return;
    }
    let (status, class) = if error.is_parse_too_large() {
        (431, ErrorClass::HeadersTooLarge)
    } else {
        (400, ErrorClass::MalformedRequest)
    };
    gateway.bus.publish(Exchange {
        kind: ExchangeKind::Http,
        request_id: new_request_id(),
        trace: None,
        listener: Arc::clone(&info.listener),
        route: None,
        canary: false,
        method: None,
        host: None,
        path: String::new(),
        protocol: http::Version::HTTP_11,
        tls: info.tls,
        client: info.client,
        user_agent: None,
        status,
        error: Some(class),
        error_message: Some(error.to_string()),
        integration: IntegrationOutcome::default(),
        decisions: Decisions::default(),
        bytes_in: 0,
        bytes_out: 0,
        timing: Timing {
            received_at: SystemTime::now(),
            routed: None,
            integration_start: None,
            integration_response: None,
            integration_end: None,
            done: Duration::ZERO,
        },
        websocket: None,
        execution: None,
    });
}
