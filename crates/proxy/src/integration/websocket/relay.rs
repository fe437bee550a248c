//! The relay: one pump per direction forwards frames as they arrive, counts them and enforces the
//! size limits, while a watch ends the connection on idle, lifetime or gateway shutdown. When the
//! connection's trace is sampled, each pump also notes its first data messages (time, size,
//! type) for the connection span's message events; an unsampled connection pays one branch per
//! message for that.
//!
//! Neither `read_frame` nor `write_frame` of fastwebsockets is cancel-safe: dropping one mid-frame
//! loses or truncates a frame. So a pump is never dropped while it writes. To end a connection the
//! relay asks both pumps to stop: a pending read is abandoned at once (that side is never read as
//! frames again), a pending write gets [`CLOSE_GRACE`] to finish, and a writer whose write was cut
//! short is never written to again. When the gateway ends a connection itself it then sends Close,
//! half-closes TCP and reads whatever the peer still sends until it hangs up, so the Close is not
//! lost to a TCP reset caused by unread data (RFC 6455 §7.1.1: the server closes TCP last).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketError, WebSocketRead, WebSocketWrite};
use gatehouse_config::WebSocketIntegration;
use gatehouse_telemetry::{ErrorClass, WebSocketDirection, WebSocketStats};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::Recorder;
use closing::{conclude, finish};
use messages::{MessageLog, first_messages};

mod closing;
mod messages;

/// How long a peer has to answer a Close, and how long a pending write may take once the relay
/// is stopping.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

// Close codes, RFC 6455 §7.4.1.
pub(super) const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Reported (never sent) when a side vanished without a Close frame.
const CLOSE_ABNORMAL: u16 = 1006;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;

/// Per-connection limits, copied out of the route so the relay owns them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    max_frame: usize,
    max_message: usize,
    idle: Duration,
    lifetime: Duration,
}

impl From<&WebSocketIntegration> for Limits {
    fn from(ws: &WebSocketIntegration) -> Self {
        Self {
            max_frame: ws.max_frame_bytes,
            max_message: ws.max_message_bytes,
            idle: ws.idle_timeout,
            lifetime: ws.max_lifetime,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    /// The error class when this side's connection fails.
    fn gone_class(self) -> ErrorClass {
        match self {
            Side::Client => ErrorClass::ClientClosed,
            Side::Upstream => ErrorClass::UpstreamReset,
        }
    }
}

/// Why the gateway itself ended a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Idle,
    Lifetime,
    Shutdown,
}

/// What ended the connection: the first event wins, later ones are consequences.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum First {
    /// The pump reading from this side ended (see its [`PumpEnd`]).
    Side(Side),
    Gateway(Stop),
}

/// How one direction ended; "sender" is the side the pump reads from.
#[derive(Debug)]
enum PumpEnd {
    /// The sender's Close was forwarded, with this code.
    Closed(Option<u16>),
    /// The sender broke a size limit; it is told with this code.
    Limit(u16, ErrorClass),
    /// The sender broke the protocol; it is told with this code.
    Invalid(u16, String),
    /// The sender's connection ended without a Close.
    Gone(String),
    /// Writing to the receiver failed: the receiver's connection is gone.
    WriteFailed(String),
    /// Asked to stop while waiting for a frame.
    Stopped,
    /// Asked to stop, and a pending write did not finish in time: the receiver's stream may hold
    /// half a frame.
    Abandoned,
}

impl PumpEnd {
    /// Whether the gateway may still write a Close to the receiver.
    fn receiver_writable(&self) -> bool {
        !matches!(
            self,
            PumpEnd::Closed(_) | PumpEnd::WriteFailed(_) | PumpEnd::Abandoned
        )
    }
}

/// What one pump counts of the messages it forwards.
struct Counters {
    messages: u64,
    bytes: u64,
    /// `Some` when the connection's trace is sampled.
    log: Option<MessageLog>,
}

impl Counters {
    fn new(direction: WebSocketDirection, log_from: Option<std::time::Instant>) -> Self {
        Self {
            messages: 0,
            bytes: 0,
            log: log_from.map(|origin| MessageLog::new(origin, direction)),
        }
    }
}

/// What both pumps and the watch share. They run on one task, so nothing here is contended.
struct Shared {
    first: OnceLock<First>,
    /// Both pumps stop reading; cancelled once the connection is ending.
    stop: CancellationToken,
    /// One side's Close was forwarded; the other has [`CLOSE_GRACE`] to answer.
    closing: CancellationToken,
    epoch: Instant,
    last_frame_ms: AtomicU64,
}

impl Shared {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_frame_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once the relay has been stopping for `CLOSE_GRACE`.
    async fn stopped_for_grace(&self) {
        self.stop.cancelled().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    }
}

/// Relays frames between the upgraded client and upstream connections until either side closes,
/// a limit is broken or the gateway ends it, then publishes the connection's exchange.
pub(super) async fn relay<C, U>(
    client: C,
    upstream: U,
    limits: Limits,
    shutdown: CancellationToken,
    mut recorder: Recorder,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let shared = Shared {
        first: OnceLock::new(),
        stop: CancellationToken::new(),
        closing: CancellationToken::new(),
        epoch: Instant::now(),
        last_frame_ms: AtomicU64::new(0),
    };
    let sampled = recorder
        .exchange_ref()
        .trace
        .is_some_and(|trace| trace.sampled);
    let log_from = sampled.then(|| recorder.origin());
    let mut inbound = Counters::new(WebSocketDirection::In, log_from);
    let mut outbound = Counters::new(WebSocketDirection::Out, log_from);

    let (client_end, upstream_end) = {
        let (mut client_rx, mut client_tx) =
            halves(&mut client_read, &mut client_write, Role::Server, limits);
        let (mut upstream_rx, mut upstream_tx) = halves(
            &mut upstream_read,
            &mut upstream_write,
            Role::Client,
            limits,
        );
        let c2u = pump(
            Side::Client,
            &mut client_rx,
            &mut upstream_tx,
            limits,
            &mut inbound,
            &shared,
        );
        let u2c = pump(
            Side::Upstream,
            &mut upstream_rx,
            &mut client_tx,
            limits,
            &mut outbound,
            &shared,
        );
        let pumps = async { tokio::join!(c2u, u2c) };
        tokio::pin!(pumps);
        tokio::select! {
            ends = &mut pumps => ends,
            () = watch(&shared, limits, &shutdown) => pumps.await,
        }
    };

    let first = shared.first.get().copied();
    debug_assert!(first.is_some(), "the relay ended without a cause");
    let mut ending = conclude(
        first.unwrap_or(First::Gateway(Stop::Shutdown)),
        &client_end,
        &upstream_end,
        limits,
    );
    if let Some((class, message)) = ending.error.take() {
        recorder.set_error(class, message);
    }
    let stats = WebSocketStats {
        messages_in: inbound.messages,
        messages_out: outbound.messages,
        bytes_in: inbound.bytes,
        bytes_out: outbound.bytes,
        close_code: ending.close_code,
        closed_by: Some(ending.closed_by),
        message_events: first_messages(inbound.log, outbound.log),
    };
    let exchange = recorder.exchange();
    exchange.bytes_in = stats.bytes_in;
    exchange.bytes_out = stats.bytes_out;
    exchange.websocket = Some(stats);
    // The connection is over as far as the record goes; how long a peer takes to hang up after
    // the gateway's Close is not part of it.
    recorder.publish();

    let to_client = ending
        .to_client
        .filter(|_| upstream_end.receiver_writable());
    let to_upstream = ending
        .to_upstream
        .filter(|_| client_end.receiver_writable());
    tokio::join!(
        finish(
            client_read,
            client_write,
            Role::Server,
            to_client,
            ending.reason
        ),
        finish(
            upstream_read,
            upstream_write,
            Role::Client,
            to_upstream,
            ending.reason
        ),
    );
}

type Halves<'a, S> = (
    WebSocketRead<&'a mut ReadHalf<S>>,
    WebSocketWrite<&'a mut WriteHalf<S>>,
);

/// Frame-level halves over borrowed stream halves, so the raw streams are still at hand to
/// half-close and drain once the pumps are done.
fn halves<'a, S>(
    read: &'a mut ReadHalf<S>,
    write: &'a mut WriteHalf<S>,
    role: Role,
    limits: Limits,
) -> Halves<'a, S>
where
    S: AsyncRead + AsyncWrite,
{
    let (mut rx, tx) = fastwebsockets::after_handshake_split(read, write, role);
    // Close and Ping are relayed like any frame: the peers answer each other, not the gateway.
    rx.set_auto_close(false);
    rx.set_auto_pong(false);
    // fastwebsockets refuses a frame whose length is `>=` this, before reading its payload.
    rx.set_max_message_size(limits.max_frame.saturating_add(1));
    (rx, tx)
}

/// Runs one direction and, when it ends on its own, tells the rest of the relay.
async fn pump<R, W>(
    sender: Side,
    from: &mut WebSocketRead<R>,
    to: &mut WebSocketWrite<W>,
    limits: Limits,
    counters: &mut Counters,
    shared: &Shared,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let end = forward(from, to, limits, counters, shared).await;
    match end {
        PumpEnd::Stopped | PumpEnd::Abandoned => {}
        PumpEnd::Closed(_) => {
            let _ = shared.first.set(First::Side(sender));
            shared.closing.cancel();
        }
        _ => {
            let _ = shared.first.set(First::Side(sender));
            shared.stop.cancel();
        }
    }
    end
}

async fn forward<R, W>(
    from: &mut WebSocketRead<R>,
    to: &mut WebSocketWrite<W>,
    limits: Limits,
    counters: &mut Counters,
    shared: &Shared,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Bytes so far of a fragmented message and its first frame's opcode, `None` between
    // messages.
    let mut partial: Option<(usize, OpCode)> = None;
    // With auto_close and auto_pong off the reader never asks us to send anything.
    let mut no_obligations = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
    loop {
        let read = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return PumpEnd::Stopped,
            read = from.read_frame(&mut no_obligations) => read,
        };
        let frame = match read {
            Ok(frame) => frame,
            Err(error) => return read_failure(error),
        };
        shared.touch();
        if matches!(
            frame.opcode,
            OpCode::Text | OpCode::Binary | OpCode::Continuation
        ) {
            // RFC 6455 §5.4: a message is one start frame and continuations up to `fin`.
            let (so_far, opcode) = match (frame.opcode, partial) {
                (OpCode::Continuation, Some(partial)) => partial,
                (OpCode::Continuation, None) => {
                    return PumpEnd::Invalid(
                        CLOSE_PROTOCOL_ERROR,
                        "continuation frame outside a message".into(),
                    );
                }
                (_, Some(_)) => {
                    return PumpEnd::Invalid(
                        CLOSE_PROTOCOL_ERROR,
                        "new message inside a fragmented one".into(),
                    );
                }
                (opcode, None) => (0, opcode),
            };
            let size = so_far + frame.payload.len();
            if size > limits.max_message {
                return PumpEnd::Limit(CLOSE_TOO_BIG, ErrorClass::WebSocketMessageTooLarge);
            }
            counters.bytes += frame.payload.len() as u64;
            if frame.fin {
                counters.messages += 1;
                if let Some(log) = &mut counters.log {
                    log.record(opcode, size);
                }
                partial = None;
            } else {
                partial = Some((size, opcode));
            }
        }
        let close = (frame.opcode == OpCode::Close).then(|| close_code(&frame.payload));
        let write = async {
            to.write_frame(frame).await?;
            to.flush().await
        };
        let written = tokio::select! {
            biased;
            written = write => written,
            () = shared.stopped_for_grace() => return PumpEnd::Abandoned,
        };
        if let Err(error) = written {
            return PumpEnd::WriteFailed(error.to_string());
        }
        if let Some(code) = close {
            return PumpEnd::Closed(code);
        }
    }
}

fn read_failure(error: WebSocketError) -> PumpEnd {
    match error {
        WebSocketError::FrameTooLarge => {
            PumpEnd::Limit(CLOSE_TOO_BIG, ErrorClass::WebSocketFrameTooLarge)
        }
        WebSocketError::UnexpectedEOF | WebSocketError::IoError(_) => {
            PumpEnd::Gone(error.to_string())
        }
        WebSocketError::InvalidUTF8 => PumpEnd::Invalid(CLOSE_INVALID_PAYLOAD, error.to_string()),
        other => PumpEnd::Invalid(CLOSE_PROTOCOL_ERROR, other.to_string()),
    }
}

fn close_code(payload: &Payload<'_>) -> Option<u16> {
    match **payload {
        [high, low, ..] => Some(u16::from_be_bytes([high, low])),
        _ => None,
    }
}

/// Ends the relay on idle, lifetime or shutdown, and bounds the wait for an answer to a Close.
/// Returns once the pumps have been told to stop.
async fn watch(shared: &Shared, limits: Limits, shutdown: &CancellationToken) {
    let idle = async {
        loop {
            let last = Duration::from_millis(shared.last_frame_ms.load(Ordering::Relaxed));
            let deadline = shared.epoch + last + limits.idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    let close_answer = async {
        shared.closing.cancelled().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    let stop = tokio::select! {
        () = idle => Some(Stop::Idle),
        () = tokio::time::sleep(limits.lifetime) => Some(Stop::Lifetime),
        () = shutdown.cancelled() => Some(Stop::Shutdown),
        () = close_answer => None,
        () = shared.stop.cancelled() => None,
    };
    if let Some(stop) = stop {
        let _ = shared.first.set(First::Gateway(stop));
    }
    shared.stop.cancel();
}
