//! The messages a sampled WebSocket connection notes for its span's message events
//! (docs/traces.md): each pump keeps the first [`MAX_WEBSOCKET_MESSAGE_EVENTS`] data messages of
//! its direction, so the pumps share nothing and memory is bounded however long the connection
//! lives; the connection's first messages overall are among them, and [`first_messages`] merges
//! them when it ends.

use std::time::Instant;

use fastwebsockets::OpCode;
use gatehouse_telemetry::{
    MAX_WEBSOCKET_MESSAGE_EVENTS, WebSocketDirection, WebSocketMessage, WebSocketMessageKind,
};

/// The first data messages of one direction.
pub(super) struct MessageLog {
    /// The request head's arrival: message times are offsets from it, like the exchange's
    /// `Timing`, and from the same clock.
    origin: Instant,
    direction: WebSocketDirection,
    messages: Vec<WebSocketMessage>,
}

impl MessageLog {
    pub(super) fn new(origin: Instant, direction: WebSocketDirection) -> Self {
        Self {
            origin,
            direction,
            messages: Vec::new(),
        }
    }

    /// Notes a message whose last frame was just read; `opcode` is its first frame's.
    pub(super) fn record(&mut self, opcode: OpCode, size: usize) {
        if self.messages.len() >= MAX_WEBSOCKET_MESSAGE_EVENTS {
            return;
        }
        self.messages.push(WebSocketMessage {
            at_nanos: u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            size: size as u64,
            direction: self.direction,
            kind: match opcode {
                OpCode::Binary => WebSocketMessageKind::Binary,
                _ => WebSocketMessageKind::Text,
            },
        });
    }
}

/// The connection's first [`MAX_WEBSOCKET_MESSAGE_EVENTS`] messages of both directions in the
/// order they were read (a client's message first when two share an instant).
pub(super) fn first_messages(
    inbound: Option<MessageLog>,
    outbound: Option<MessageLog>,
) -> Vec<WebSocketMessage> {
    let mut messages: Vec<WebSocketMessage> = [inbound, outbound]
        .into_iter()
        .flatten()
        .flat_map(|log| log.messages)
        .collect();
    // Stable, so equal times keep the inbound message first.
    messages.sort_by_key(|message| message.at_nanos);
    messages.truncate(MAX_WEBSOCKET_MESSAGE_EVENTS);
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(direction: WebSocketDirection, times: &[u64]) -> MessageLog {
        let mut log = MessageLog::new(Instant::now(), direction);
        log.messages = times
            .iter()
            .map(|&at_nanos| WebSocketMessage {
                at_nanos,
                size: 1,
                direction,
                kind: WebSocketMessageKind::Text,
            })
            .collect();
        log
    }

    #[test]
    fn a_direction_keeps_its_first_messages_only() {
        let mut log = MessageLog::new(Instant::now(), WebSocketDirection::Out);
        for size in 0..MAX_WEBSOCKET_MESSAGE_EVENTS + 10 {
            log.record(OpCode::Binary, size);
        }
        assert_eq!(log.messages.len(), MAX_WEBSOCKET_MESSAGE_EVENTS);
        assert_eq!(log.messages.last().map(|m| m.size), Some(127));
        assert!(
            log.messages
                .windows(2)
                .all(|w| w[0].at_nanos <= w[1].at_nanos)
        );
        assert!(
            log.messages
                .iter()
                .all(|m| m.kind == WebSocketMessageKind::Binary)
        );
    }

    #[test]
    fn directions_merge_by_time_and_keep_the_first_overall() {
        use WebSocketDirection::{In, Out};
        let inbound = log(In, &[10, 30, 30]);
        let outbound = log(Out, &[20, 30, 40]);
        let merged = first_messages(Some(inbound), Some(outbound));
        let order: Vec<_> = merged.iter().map(|m| (m.at_nanos, m.direction)).collect();
        assert_eq!(
            order,
            [
                (10, In),
                (20, Out),
                (30, In),
                (30, In),
                (30, Out),
                (40, Out)
            ]
        );

        let many: Vec<u64> = (0..128).map(|i| i * 2).collect();
        let late: Vec<u64> = (0..128).map(|i| 1_000 + i).collect();
        let merged = first_messages(Some(log(In, &late)), Some(log(Out, &many)));
        assert_eq!(merged.len(), MAX_WEBSOCKET_MESSAGE_EVENTS);
        assert!(merged.iter().all(|m| m.direction == Out));
        assert!(first_messages(None, None).is_empty());
    }
}
