//! The JSON access log: one line per [`Exchange`], written by a dedicated thread.
//!
//! The writer owns its own OS thread because writing to a file or a pipe may block; a blocked
//! write stalls only this consumer, whose queue then fills and drops (counted by the bus), never
//! the request path. Lines are buffered and flushed whenever the queue runs dry.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
            .spawn(move || run(rx, sink, &errors))?;
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

/// How long the writer sleeps when its queue is empty. Polling, rather than parking on the
/// channel, means a request never pays for waking the writer thread (a futex call and a context
/// switch per record under load); lines reach the destination at most this late.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// Write to the destination once this much is buffered, even if the queue is not yet empty.
const WRITE_CHUNK: usize = 256 * 1024;

fn run(mut rx: mpsc::Receiver<Arc<Exchange>>, mut out: Box<dyn Write + Send>, errors: &AtomicU64) {
    let mut buffer = Vec::with_capacity(WRITE_CHUNK + 4096);
    let mut clock = SecondClock::default();
    loop {
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(exchange) => {
                    write_line(&exchange, &mut clock, &mut buffer);
                    if buffer.len() >= WRITE_CHUNK {
                        write_out(&mut out, &mut buffer, errors);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !buffer.is_empty() {
            write_out(&mut out, &mut buffer, errors);
        }
        if closed {
            return;
        }
        std::thread::sleep(IDLE_POLL);
    }
}

fn write_out(out: &mut Box<dyn Write + Send>, buffer: &mut Vec<u8>, errors: &AtomicU64) {
    let result = out.write_all(buffer).and_then(|()| out.flush());
    buffer.clear();
    if let Err(error) = result {
        let n = errors.fetch_add(1, Ordering::Relaxed);
        if n == 0 || n.is_power_of_two() {
            tracing::warn!(%error, failures = n + 1, "access log write failed");
        }
    }
}

/// Formats timestamps, reusing the `YYYY-MM-DDTHH:MM:SS` part within one second.
#[derive(Default)]
struct SecondClock {
    second: u64,
    prefix: String,
}

impl SecondClock {
    /// `2026-11-26T06:59:24.942Z`: RFC 3339, UTC, millisecond precision.
    fn format(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        if second != self.second || self.prefix.is_empty() {
            self.second = second;
            self.prefix = OffsetDateTime::from_unix_timestamp(second as i64)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .map(|t| t.trim_end_matches('Z').to_owned())
                .unwrap_or_default();
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let _ = write!(out, ".{:03}Z", since_epoch.subsec_millis());
    }
}

/// Writes a duration as milliseconds with microsecond resolution (`12.345`), which is what the
/// timestamps carry, without going through float formatting.
fn write_millis(out: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros();
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(micros / 1000).as_bytes());
    let fraction = (micros % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

fn write_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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

/// Appends a JSON string literal, escaping per RFC 8259.
fn json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes `,"key":`; every line starts with `requestId`, so every other key follows a comma.
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn opt_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => json_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_int(out: &mut Vec<u8>, value: Option<impl itoa::Integer>) {
    match value {
        Some(n) => write_int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

fn header_str(value: Option<&http::HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// Appends the JSON line (with its trailing newline) for one exchange to `out`.
pub fn access_log_line(exchange: &Exchange, out: &mut Vec<u8>) {
    write_line(exchange, &mut SecondClock::default(), out);
}

fn write_line(exchange: &Exchange, clock: &mut SecondClock, out: &mut Vec<u8>) {
    let route = exchange.route.as_ref();
    let received = exchange.timing.received_at;
    out.extend_from_slice(b"{\"requestId\":");
    json_str(out, exchange.request_id.as_str());
    out.extend_from_slice(b",\"time\":\"");
    clock.format(received, out);
    out.push(b'"');
    let epoch_ms = received
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    out.extend_from_slice(b",\"requestTimeEpoch\":");
    write_int(out, epoch_ms);
    out.extend_from_slice(match exchange.kind {
        ExchangeKind::Http => b",\"kind\":\"http\",\"ip\":\"",
        ExchangeKind::WebSocket => b",\"kind\":\"websocket\",\"ip\":\"",
    });
    match exchange.client.ip() {
        std::net::IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_int(out, octet);
            }
        }
        std::net::IpAddr::V6(ip) => {
            let _ = write!(out, "{ip}");
        }
    }
    out.push(b'"');
    key(out, "method");
    opt_str(out, exchange.method.as_ref().map(http::Method::as_str));
    key(out, "host");
    opt_str(out, header_str(exchange.host.as_ref()));
    key(out, "path");
    json_str(out, &exchange.path);
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(protocol_label(exchange.protocol).as_bytes());
    out.push(b'"');
    key(out, "route");
    opt_str(out, route.map(|r| &*r.resource_path));
    key(out, "api");
    opt_str(out, route.map(|r| &*r.api));
    key(out, "apiVersion");
    opt_str(out, route.map(|r| &*r.api_version));
    key(out, "stage");
    opt_str(out, route.map(|r| &*r.stage));
    out.extend_from_slice(b",\"status\":");
    write_int(out, exchange.status);
    out.extend_from_slice(b",\"bytesIn\":");
    write_int(out, exchange.bytes_in);
    out.extend_from_slice(b",\"bytesOut\":");
    write_int(out, exchange.bytes_out);
    out.extend_from_slice(b",\"latencyMs\":");
    write_millis(out, exchange.timing.latency());
    key(out, "integrationLatencyMs");
    match exchange.timing.integration_latency() {
        Some(latency) => write_millis(out, latency),
        None => out.extend_from_slice(b"null"),
    }
    key(out, "integrationStatus");
    opt_int(out, exchange.integration.status);
    key(out, "error");
    opt_str(out, exchange.error.map(|e| e.as_str()));
    key(out, "errorMessage");
    opt_str(out, exchange.error_message.as_deref());
    key(out, "integrationError");
    opt_str(out, exchange.integration.error.as_deref());
    key(out, "userAgent");
    opt_str(out, header_str(exchange.user_agent.as_ref()));
    if let Some(ws) = &exchange.websocket {
        out.extend_from_slice(b",\"websocket\":{\"messagesIn\":");
        write_int(out, ws.messages_in);
        out.extend_from_slice(b",\"messagesOut\":");
        write_int(out, ws.messages_out);
        out.extend_from_slice(b",\"closeCode\":");
        opt_int(out, ws.close_code);
        out.extend_from_slice(b",\"closedBy\":");
        opt_str(out, ws.closed_by);
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
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
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
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
    fn strings_are_escaped_and_times_formatted() {
        let mut exchange = sample();
        exchange.path = "/a\"b\\c\n\u{1}ü/€".into();
        exchange.user_agent = Some(http::HeaderValue::from_static("agent \"quoted\""));
        exchange.timing.received_at = UNIX_EPOCH + Duration::from_millis(1_795_676_364_942);
        exchange.websocket = Some(crate::WebSocketStats {
            messages_in: 3,
            close_code: Some(1000),
            closed_by: Some("client"),
            ..Default::default()
        });
        let mut clock = SecondClock::default();
        let mut out = Vec::new();
        write_line(&exchange, &mut clock, &mut out);
        exchange.timing.received_at += Duration::from_millis(1_500);
        write_line(&exchange, &mut clock, &mut out);
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["path"], "/a\"b\\c\n\u{1}ü/€");
        assert_eq!(lines[0]["userAgent"], "agent \"quoted\"");
        assert_eq!(lines[0]["time"], "2026-11-26T06:59:24.942Z");
        assert_eq!(lines[1]["time"], "2026-11-26T06:59:26.442Z");
        assert_eq!(lines[0]["requestTimeEpoch"], 1_795_676_364_942u64);
        assert_eq!(lines[0]["method"], "GET");
        assert_eq!(lines[0]["integrationLatencyMs"], serde_json::Value::Null);
        assert_eq!(lines[0]["websocket"]["messagesIn"], 3);
        assert_eq!(lines[0]["websocket"]["closeCode"], 1000);
        assert_eq!(lines[0]["websocket"]["closedBy"], "client");
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
