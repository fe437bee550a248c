//! Telemetry for the data plane: the [`Exchange`] record that every request and every WebSocket
//! connection yields exactly once, the bounded [`Bus`] that carries those records off the request
//! path, and the consumers that turn them into something a person reads (the access log, rendered
//! from `$context.*` templates, and per-minute metrics; traces and stream sinks subscribe to the
//! same bus in later work), and the trace context every request carries (`trace`).
//!
//! **Architecture invariant:** the request path never waits on telemetry. [`Bus::publish`] never
//! blocks or awaits; a full queue drops the record and counts the drop per consumer.

pub mod access_log;
mod bus;
mod exchange;
pub mod execution;
pub mod metrics;
mod request_id;
pub mod spans;
pub mod trace;

pub use access_log::{AccessLogConfig, AccessLogFormat, AccessLogHandle, AccessLogWriter, LogSink};
pub use bus::{Bus, BusBuilder, ConsumerStats, ExchangeFilter};
pub use exchange::{
    Decision, Decisions, ErrorClass, Exchange, ExchangeKind, IntegrationOutcome,
    MAX_WEBSOCKET_MESSAGE_EVENTS, RouteLabels, Timing, TraceIds, WebSocketDirection,
    WebSocketMessage, WebSocketMessageKind, WebSocketStats,
};
pub use execution::{ExecutionDetail, ExecutionLogLevel, ExecutionLogSettings, execution_events};
pub use request_id::{RequestId, new_request_id};
