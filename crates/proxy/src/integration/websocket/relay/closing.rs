//! How a relay ends: what the record says, which Close frames the gateway still owes each side,
//! and the lingering close that makes sure those frames arrive.

use fastwebsockets::{Frame, Role};
use gatehouse_telemetry::ErrorClass;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::{CLOSE_ABNORMAL, CLOSE_GOING_AWAY, CLOSE_GRACE, First, Limits, PumpEnd, Side, Stop};

/// What the record says and which Close frames the gateway still owes each side.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Ending {
    pub(super) close_code: Option<u16>,
    pub(super) closed_by: &'static str,
    pub(super) error: Option<(ErrorClass, String)>,
    pub(super) to_client: Option<u16>,
    pub(super) to_upstream: Option<u16>,
    /// The reason text of the gateway's Close frames.
    pub(super) reason: &'static str,
}

impl Ending {
    /// The gateway closes: `offender` hears `code`, the other side that the gateway goes away.
    fn gateway(
        offender: Side,
        code: u16,
        reason: &'static str,
        error: (ErrorClass, String),
    ) -> Self {
        let (to_client, to_upstream) = match offender {
            Side::Client => (code, CLOSE_GOING_AWAY),
            Side::Upstream => (CLOSE_GOING_AWAY, code),
        };
        Self {
            close_code: Some(code),
            closed_by: "gateway",
            error: Some(error),
            to_client: Some(to_client),
            to_upstream: Some(to_upstream),
            reason,
        }
    }

    /// `gone`'s connection failed: the other side is told the gateway goes away.
    fn gone(gone: Side, error: String) -> Self {
        Self {
            close_code: Some(CLOSE_ABNORMAL),
            closed_by: gone.label(),
            error: Some((gone.gone_class(), error)),
            to_client: (gone == Side::Upstream).then_some(CLOSE_GOING_AWAY),
            to_upstream: (gone == Side::Client).then_some(CLOSE_GOING_AWAY),
            reason: match gone {
                Side::Client => "client went away",
                Side::Upstream => "upstream went away",
            },
        }
    }
}

/// Decides the record and the Close frames from what ended the connection first.
pub(super) fn conclude(
    first: First,
    client_end: &PumpEnd,
    upstream_end: &PumpEnd,
    limits: Limits,
) -> Ending {
    let side = match first {
        First::Gateway(stop) => {
            let (error, reason) = match stop {
                Stop::Idle => (
                    Some((
                        ErrorClass::WebSocketIdleTimeout,
                        format!("no frame either way for {:?}", limits.idle),
                    )),
                    "idle timeout",
                ),
                Stop::Lifetime => (
                    Some((
                        ErrorClass::WebSocketLifetimeExceeded,
                        format!("open longer than {:?}", limits.lifetime),
                    )),
                    "connection lifetime exceeded",
                ),
                Stop::Shutdown => (None, "gateway shutting down"),
            };
            return Ending {
                close_code: Some(CLOSE_GOING_AWAY),
                closed_by: "gateway",
                error,
                to_client: Some(CLOSE_GOING_AWAY),
                to_upstream: Some(CLOSE_GOING_AWAY),
                reason,
            };
        }
        First::Side(side) => side,
    };
    let end = if side == Side::Client {
        client_end
    } else {
        upstream_end
    };
    let name = side.label();
    match end {
        PumpEnd::Closed(code) => Ending {
            close_code: *code,
            closed_by: name,
            error: None,
            to_client: None,
            to_upstream: None,
            reason: "",
        },
        PumpEnd::Limit(code, class) => {
            let (what, reason) = if *class == ErrorClass::WebSocketFrameTooLarge {
                ("frame", "frame too large")
            } else {
                ("message", "message too large")
            };
            Ending::gateway(
                side,
                *code,
                reason,
                (*class, format!("{name} sent a {what} over the size limit")),
            )
        }
        PumpEnd::Invalid(code, reason) => {
            let class = if side == Side::Client {
                ErrorClass::MalformedRequest
            } else {
                ErrorClass::UpstreamReset
            };
            let error = (
                class,
                format!("{name} broke the WebSocket protocol: {reason}"),
            );
            Ending::gateway(side, *code, "protocol error", error)
        }
        PumpEnd::Gone(reason) => Ending::gone(
            side,
            format!("{name} connection ended without a close frame: {reason}"),
        ),
        PumpEnd::WriteFailed(reason) => {
            let receiver = side.other();
            Ending::gone(
                receiver,
                format!("writing to {} failed: {reason}", receiver.label()),
            )
        }
        PumpEnd::Stopped | PumpEnd::Abandoned => {
            debug_assert!(false, "a stopped pump is never the first cause");
            Ending::gone(side, "stopped".into())
        }
    }
}

/// Sends the gateway's own Close (if any), half-closes, and reads until the peer hangs up, all
/// within [`CLOSE_GRACE`]. Without a Close to send the streams are simply dropped: either the
/// closing handshake is complete or the stream cannot take another frame.
pub(super) async fn finish<S>(
    mut read: ReadHalf<S>,
    mut write: WriteHalf<S>,
    role: Role,
    close: Option<u16>,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite,
{
    let Some(code) = close else {
        return;
    };
    let goodbye = async {
        let (_, mut tx) =
            fastwebsockets::after_handshake_split(tokio::io::empty(), &mut write, role);
        tx.write_frame(Frame::close(code, reason.as_bytes()))
            .await
            .ok()?;
        tx.flush().await.ok()?;
        write.shutdown().await.ok()?;
        let mut scratch = vec![0; 16 * 1024];
        while read.read(&mut scratch).await.ok()? > 0 {}
        Some(())
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: Limits = Limits {
        max_frame: 1024,
        max_message: 4096,
        idle: Duration::from_millis(300),
        lifetime: Duration::from_secs(60),
    };

    /// Each case: what ended first, how each pump ended (client→upstream, upstream→client), and
    /// the expected (close code, closed by, error class, Close to the client, Close to the upstream).
    #[test]
    fn conclusion_table() {
        use PumpEnd::*;
        let too_big = || Limit(1009, ErrorClass::WebSocketFrameTooLarge);
        let gone = || Gone("eof".into());
        type Expected = (
            Option<u16>,
            &'static str,
            Option<ErrorClass>,
            Option<u16>,
            Option<u16>,
        );
        let cases: Vec<(First, PumpEnd, PumpEnd, Expected)> = vec![
            (
                First::Side(Side::Client),
                Closed(Some(1000)),
                Closed(Some(1000)),
                (Some(1000), "client", None, None, None),
            ),
            (
                First::Side(Side::Upstream),
                Stopped,
                Closed(Some(4000)),
                (Some(4000), "upstream", None, None, None),
            ),
            (
                First::Side(Side::Client),
                too_big(),
                Stopped,
                (
                    Some(1009),
                    "gateway",
                    Some(ErrorClass::WebSocketFrameTooLarge),
                    Some(1009),
                    Some(1001),
                ),
            ),
            (
                First::Side(Side::Upstream),
                Stopped,
                too_big(),
                (
                    Some(1009),
                    "gateway",
                    Some(ErrorClass::WebSocketFrameTooLarge),
                    Some(1001),
                    Some(1009),
                ),
            ),
            (
                First::Side(Side::Client),
                Invalid(1007, "utf-8".into()),
                Stopped,
                (
                    Some(1007),
                    "gateway",
                    Some(ErrorClass::MalformedRequest),
                    Some(1007),
                    Some(1001),
                ),
            ),
            (
                First::Side(Side::Client),
                gone(),
                Stopped,
                (
                    Some(1006),
                    "client",
                    Some(ErrorClass::ClientClosed),
                    None,
                    Some(1001),
                ),
            ),
            (
                First::Side(Side::Upstream),
                Stopped,
                gone(),
                (
                    Some(1006),
                    "upstream",
                    Some(ErrorClass::UpstreamReset),
                    Some(1001),
                    None,
                ),
            ),
            // Writing to the upstream failed: the upstream is the one gone.
            (
                First::Side(Side::Client),
                WriteFailed("reset".into()),
                Stopped,
                (
                    Some(1006),
                    "upstream",
                    Some(ErrorClass::UpstreamReset),
                    Some(1001),
                    None,
                ),
            ),
            (
                First::Gateway(Stop::Idle),
                Stopped,
                Stopped,
                (
                    Some(1001),
                    "gateway",
                    Some(ErrorClass::WebSocketIdleTimeout),
                    Some(1001),
                    Some(1001),
                ),
            ),
            (
                First::Gateway(Stop::Lifetime),
                Stopped,
                Abandoned,
                (
                    Some(1001),
                    "gateway",
                    Some(ErrorClass::WebSocketLifetimeExceeded),
                    Some(1001),
                    Some(1001),
                ),
            ),
            (
                First::Gateway(Stop::Shutdown),
                Stopped,
                Stopped,
                (Some(1001), "gateway", None, Some(1001), Some(1001)),
            ),
        ];
        for (first, client_end, upstream_end, expected) in cases {
            let ending = conclude(first, &client_end, &upstream_end, LIMITS);
            let got = (
                ending.close_code,
                ending.closed_by,
                ending.error.map(|(class, _)| class),
                ending.to_client,
                ending.to_upstream,
            );
            assert_eq!(got, expected, "{first:?} {client_end:?} {upstream_end:?}");
        }
    }
}
