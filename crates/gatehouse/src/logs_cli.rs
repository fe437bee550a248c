//! `gatehouse logs query|tail|groups`: the log store from the terminal.
//!
//! `query` prints the rows as aligned columns (or the admin API's JSON), `tail` follows the
//! admin API's server-sent events and prints one event per line until interrupted.

use anyhow::{Context, bail};
use http::Method;
use http_body_util::BodyExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::admin_client::{call, call_with_body, stream};
use crate::{LogsCommand, Output};

/// The widest a table cell is printed; longer values are cut with `…` (JSON output is whole).
const MAX_CELL: usize = 120;

pub(crate) async fn run(command: LogsCommand, base: &str, token: &str) -> anyhow::Result<()> {
    match command {
        LogsCommand::Query {
            query,
            group,
            since,
            start,
            end,
            output,
        } => {
            let mut request = json!({ "query": query, "groups": group });
            if let Some(start) = start {
                request["start"] = json!(start);
            } else {
                request["since"] = json!(since);
            }
            if let Some(end) = end {
                request["end"] = json!(end);
            }
            let (status, body) = call_with_body(
                Method::POST,
                base,
                "/admin/logs/query",
                token,
                Some(&request),
            )
            .await?;
            if status != 200 {
                bail!("{}", message(&body, status));
            }
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            print!("{}", table(&body));
            let stats = &body["statistics"];
            eprintln!(
                "{} rows; {} of {} records matched, {} ms",
                body["rows"].as_array().map_or(0, Vec::len),
                stats["recordsMatched"],
                stats["recordsScanned"],
                stats["elapsedMs"]
            );
            Ok(())
        }
        LogsCommand::Groups { output } => {
            let (status, body) = call(Method::GET, base, "/admin/logs/groups", token).await?;
            if status != 200 {
                bail!("{}", message(&body, status));
            }
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let groups = body["groups"].as_array().cloned().unwrap_or_default();
            if groups.is_empty() {
                println!("no log groups yet");
            }
            println!(
                "{:<40} {:>10} {:>12} {:>9}  LAST EVENT",
                "GROUP", "EVENTS", "STORED", "RETENTION"
            );
            for group in groups {
                let retention = group["retentionDays"]
                    .as_u64()
                    .map_or_else(|| "default".to_owned(), |d| format!("{d}d"));
                println!(
                    "{:<40} {:>10} {:>12} {:>9}  {}",
                    group["name"].as_str().unwrap_or("?"),
                    group["events"],
                    bytes_text(group["storedBytes"].as_u64().unwrap_or(0)),
                    retention,
                    group["lastEvent"].as_str().unwrap_or("-"),
                );
            }
            Ok(())
        }
        LogsCommand::Tail {
            group,
            filter,
            output,
        } => {
            let mut path = "/admin/logs/tail?".to_owned();
            if let Some(group) = &group {
                path.push_str(&format!("group={}&", encode(group)));
            }
            if let Some(filter) = &filter {
                path.push_str(&format!("filter={}", encode(filter)));
            }
            follow(base, &path, token, output).await
        }
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn message(body: &Value, status: u16) -> String {
    body["message"].as_str().map_or_else(
        || format!("the admin API answered HTTP {status}"),
        str::to_owned,
    )
}

fn bytes_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The rows of a query answer as aligned columns with a header line.
pub(crate) fn table(body: &Value) -> String {
    let columns: Vec<String> = body["columns"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|v| v.as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = body["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|cells| cells.iter().map(cell_text).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0) - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push('\n');
    };
    line(&columns);
    for row in &rows {
        line(row);
    }
    out
}

fn cell_text(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Follows the server-sent events of a tail and prints each event as it arrives.
async fn follow(base: &str, path: &str, token: &str, output: Output) -> anyhow::Result<()> {
    let mut body = stream(base, path, token).await?;
    let mut parser = SseParser::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the tail stream broke")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for (event, data) in parser.feed(&data) {
            print_tail_event(event.as_deref(), &data, output);
        }
    }
    Ok(())
}

fn print_tail_event(event: Option<&str>, data: &str, output: Output) {
    let value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    if event == Some("dropped") {
        eprintln!(
            "… {} events skipped (the terminal fell behind)",
            value["dropped"]
        );
        return;
    }
    if output == Output::Json {
        println!("{data}");
        return;
    }
    println!(
        "{} {} {}",
        value["timestamp"].as_str().unwrap_or("-"),
        value["group"].as_str().unwrap_or("-"),
        value["message"].as_str().unwrap_or("").trim_end()
    );
}

/// A minimal `text/event-stream` parser: `event:` and `data:` fields, events ended by a blank
/// line, comments (keep-alives) ignored.
#[derive(Default)]
pub(crate) struct SseParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<(Option<String>, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push((self.event.take(), self.data.join("\n")));
                    self.data.clear();
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_parse_across_chunk_boundaries() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b": keep-alive\n\ndata: {\"a\"").is_empty());
        let events = parser.feed(b":1}\n\nevent: dropped\ndata: {\"dropped\":3}\n\n");
        assert_eq!(
            events,
            vec![
                (None, "{\"a\":1}".to_owned()),
                (Some("dropped".to_owned()), "{\"dropped\":3}".to_owned()),
            ]
        );
    }

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        let body = json!({
            "columns": ["resourcePath", "p99"],
            "rows": [["/pets/{id}", 12.5], ["/a", null]],
        });
        assert_eq!(
            table(&body),
            "resourcePath  p99\n/pets/{id}    12.5\n/a            -\n"
        );
    }
}
