//! The JSON access log: one line per [`Exchange`], written by a dedicated thread.
//!
//! The writer owns its own OS thread because writing to a file or a pipe may block; a blocked
//! write stalls only this consumer, whose queue then fills and drops (counted by the bus), never
//! the request path. Lines are buffered and flushed whenever the queue runs dry.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use crate::{Exchange, ExchangeKind};

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogDestination {
    Stdout,
    File(PathBuf),
}

/// The access-log consumer of the bus.
#[derive(Debug)]
pub struct AccessLogWriter {
    thread: JoinHandle<()>,
    write_errors: Arc<AtomicU64>,
}

impl AccessLogWriter {
    /// Opens the destination (creating parent directories of a file) and starts the writer thread.
    /// The thread ends, after flushing, once every sender of `rx` is dropped.
    pub fn spawn(
        rx: mpsc::Receiver<Arc<Exchange>>,
        destination: &AccessLogDestination,
    ) -> io::Result<Self> {
        let sink: Box<dyn Write + Send> = match destination {
            AccessLogDestination::Stdout => Box::new(io::stdout()),
            AccessLogDestination::File(path) => Box::new(open_append(path)?),
        };
        let write_errors = Arc::new(AtomicU64::new(0));
        let errors = Arc::clone(&write_errors);
        let thread = std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || run(rx, BufWriter::with_capacity(64 * 1024, sink), &errors))?;
        Ok(Self {
            thread,
            write_errors,
        })
    }

    /// Failed writes so far (each loses one batch of lines).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Waits for the thread to flush and end; call after the bus is dropped.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("access log writer thread panicked");
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn run(
    mut rx: mpsc::Receiver<Arc<Exchange>>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    errors: &AtomicU64,
) {
    let mut batch = Vec::with_capacity(1024);
    let mut line = Vec::with_capacity(512);
    while rx.blocking_recv_many(&mut batch, 1024) > 0 {
        let mut result = Ok(());
        for exchange in batch.drain(..) {
            line.clear();
            access_log_line(&exchange, &mut line);
            if result.is_ok() {
                result = out.write_all(&line);
            }
        }
        if rx.is_empty() && result.is_ok() {
            result = out.flush();
        }
        if let Err(error) = result {
            let n = errors.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(%error, failures = n + 1, "access log write failed");
            }
        }
    }
    if let Err(error) = out.flush() {
        tracing::warn!(%error, "access log flush failed at shutdown");
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    request_id: &'a str,
    time: String,
    request_time_epoch: u128,
    kind: &'static str,
    ip: String,
    method: Option<&'a str>,
    host: Option<&'a str>,
    path: &'a str,
    protocol: &'static str,
    route: Option<&'a str>,
    api: Option<&'a str>,
    api_version: Option<&'a str>,
    stage: Option<&'a str>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    latency_ms: f64,
    integration_latency_ms: Option<f64>,
    integration_status: Option<u16>,
    error: Option<&'static str>,
    error_message: Option<&'a str>,
    integration_error: Option<&'a str>,
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    websocket: Option<WebSocketLine>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebSocketLine {
    messages_in: u64,
    messages_out: u64,
    close_code: Option<u16>,
    closed_by: Option<&'static str>,
}

fn millis(d: Duration) -> f64 {
    // Microsecond resolution is what the timestamps carry.
    (d.as_micros() as f64) / 1000.0
}

fn protocol_label(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Appends the JSON line (with its trailing newline) for one exchange to `out`.
pub fn access_log_line(exchange: &Exchange, out: &mut Vec<u8>) {
    let received = exchange.timing.received_at;
    let time = OffsetDateTime::from(received)
        .format(&Rfc3339)
        .unwrap_or_default();
    let route = exchange.route.as_ref();
    let line = Line {
        request_id: exchange.request_id.as_str(),
        time,
        request_time_epoch: received
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default(),
        kind: match exchange.kind {
            ExchangeKind::Http => "http",
            ExchangeKind::WebSocket => "websocket",
        },
        ip: exchange.client.ip().to_string(),
        method: exchange.method.as_ref().map(http::Method::as_str),
        host: exchange.host.as_ref().and_then(|h| h.to_str().ok()),
        path: &exchange.path,
        protocol: protocol_label(exchange.protocol),
        route: route.map(|r| &*r.resource_path),
        api: route.map(|r| &*r.api),
        api_version: route.map(|r| &*r.api_version),
        stage: route.map(|r| &*r.stage),
        status: exchange.status,
        bytes_in: exchange.bytes_in,
        bytes_out: exchange.bytes_out,
        latency_ms: millis(exchange.timing.latency()),
        integration_latency_ms: exchange.timing.integration_latency().map(millis),
        integration_status: exchange.integration.status,
        error: exchange.error.map(|e| e.as_str()),
        error_message: exchange.error_message.as_deref(),
        integration_error: exchange.integration.error.as_deref(),
        user_agent: exchange.user_agent.as_ref().and_then(|h| h.to_str().ok()),
        websocket: exchange.websocket.as_ref().map(|ws| WebSocketLine {
            messages_in: ws.messages_in,
            messages_out: ws.messages_out,
            close_code: ws.close_code,
            closed_by: ws.closed_by,
        }),
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::tests::sample;
    use crate::{BusBuilder, ErrorClass, RouteLabels};

    #[test]
    fn line_has_the_documented_fields() {
        let mut exchange = sample();
        exchange.route = Some(RouteLabels {
            api: Arc::from("pets"),
            api_version: Arc::from("v1"),
            stage: Arc::from("prod"),
            resource_path: Arc::from("/pets/{id}"),
        });
        exchange.status = 502;
        exchange.error = Some(ErrorClass::UpstreamConnect);
        exchange.timing.integration_start = Some(Duration::from_micros(100));
        exchange.timing.integration_response = Some(Duration::from_micros(1100));
        let mut out = Vec::new();
        access_log_line(&exchange, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["requestId"], exchange.request_id.as_str());
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["ip"], "127.0.0.1");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/x");
        assert_eq!(v["route"], "/pets/{id}");
        assert_eq!(v["api"], "pets");
        assert_eq!(v["stage"], "prod");
        assert_eq!(v["status"], 502);
        assert_eq!(v["bytesOut"], 10);
        assert_eq!(v["latencyMs"], 1.5);
        assert_eq!(v["integrationLatencyMs"], 1.0);
        assert_eq!(v["error"], "upstream_connect");
        assert!(v.get("websocket").is_none());
    }

    #[test]
    fn writer_thread_writes_every_record_and_flushes_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/access.log");
        let mut builder = BusBuilder::new(1024);
        let rx = builder.subscribe("access_log");
        let bus = builder.build();
        let writer = AccessLogWriter::spawn(rx, &AccessLogDestination::File(path.clone())).unwrap();
        for _ in 0..100 {
            bus.publish(sample());
        }
        drop(bus);
        writer.join();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count(), 100);
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
