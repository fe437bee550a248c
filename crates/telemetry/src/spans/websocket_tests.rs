//! A WebSocket connection's message events on its server span.
#![allow(clippy::unwrap_used)]

use super::tests::{BASE_NS, exchange};
use super::*;
use crate::{
    ExchangeKind, WebSocketDirection, WebSocketMessage, WebSocketMessageKind, WebSocketStats,
};

fn message(
    at_ms: u64,
    direction: WebSocketDirection,
    kind: WebSocketMessageKind,
    size: u64,
) -> WebSocketMessage {
    WebSocketMessage {
        at_nanos: at_ms * 1_000_000,
        size,
        direction,
        kind,
    }
}

fn server_span(stats: WebSocketStats) -> Span {
    let mut e = exchange(101);
    e.kind = ExchangeKind::WebSocket;
    e.integration.kind = Some("websocket");
    e.websocket = Some(stats);
    spans_from_exchange(&e).swap_remove(0)
}

/// Each event as (name, ms after the request head, message.type, message.id, size, opcode).
fn events(span: &Span) -> Vec<(String, u64, String, i64, i64, String)> {
    span.events
        .iter()
        .map(|event| {
            let get = |key: &str| {
                event
                    .attributes
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
            };
            let text = |key| get(key).map(|v| v.to_string()).unwrap_or_default();
            let int = |key| match get(key) {
                Some(AttrValue::Int(n)) => *n,
                _ => -1,
            };
            (
                event.name.clone(),
                (event.unix_nanos - BASE_NS) / 1_000_000,
                text(attr::MESSAGE_TYPE),
                int(attr::MESSAGE_ID),
                int(attr::MESSAGE_UNCOMPRESSED_SIZE),
                text(attr::WS_OPCODE),
            )
        })
        .collect()
}

#[test]
fn recorded_messages_are_events_between_open_and_close_numbered_per_direction() {
    use WebSocketDirection::{In, Out};
    use WebSocketMessageKind::{Binary, Text};
    let span = server_span(WebSocketStats {
        messages_in: 2,
        messages_out: 1,
        bytes_in: 8,
        bytes_out: 5,
        message_events: vec![
            message(31, In, Text, 5),
            message(32, Out, Text, 5),
            message(33, In, Binary, 3),
        ],
        ..WebSocketStats::default()
    });
    let e = |name: &str, ms, ty: &str, id, size, op: &str| {
        (name.to_owned(), ms, ty.to_owned(), id, size, op.to_owned())
    };
    assert_eq!(
        events(&span),
        [
            e("websocket.open", 30, "", -1, -1, ""),
            e("message", 31, "RECEIVED", 1, 5, "text"),
            e("message", 32, "SENT", 1, 5, "text"),
            e("message", 33, "RECEIVED", 2, 3, "binary"),
            e("websocket.close", 40, "", -1, -1, ""),
        ]
    );
    assert_eq!(span.attribute(attr::WS_EVENTS_DROPPED), None);
}

#[test]
fn messages_beyond_the_recorded_ones_are_counted_as_dropped() {
    let recorded = vec![
        message(31, WebSocketDirection::In, WebSocketMessageKind::Text, 1);
        crate::MAX_WEBSOCKET_MESSAGE_EVENTS
    ];
    let span = server_span(WebSocketStats {
        messages_in: 200,
        messages_out: 100,
        message_events: recorded,
        ..WebSocketStats::default()
    });
    let messages = span.events.iter().filter(|e| e.name == "message").count();
    assert_eq!(messages, 128);
    assert_eq!(span.attribute_int(attr::WS_EVENTS_DROPPED), Some(300 - 128));
}
