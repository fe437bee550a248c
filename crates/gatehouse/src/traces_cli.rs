//! `gatehouse traces get|search`: the trace store from the terminal.
//!
//! `get` prints a trace as a waterfall: one line per span, indented under its parent, with a bar
//! placed and sized on the trace's time line, its duration and its status. `search` lists the
//! matching requests newest first. Both can print the admin API's JSON instead.

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::admin_client::call;

/// The width of the waterfall's bar.
const BAR_WIDTH: usize = 40;
/// The widest a span's (indented) name is printed; longer names are cut with `…`.
const MAX_NAME: usize = 40;

#[derive(Subcommand, Debug)]
pub(crate) enum TracesCommand {
    /// Print one trace as a waterfall.
    Get {
        /// The trace id: 32 hex digits (W3C) or 1-8hex-24hex (X-Ray).
        id: String,
        #[arg(short, long, value_enum, default_value_t = GetOutput::Text)]
        output: GetOutput,
    },
    /// List the requests whose traces match, newest first.
    Search {
        /// Only this api (by name).
        #[arg(long)]
        api: Option<String>,
        /// Only this stage.
        #[arg(long)]
        stage: Option<String>,
        /// A route template as in the config, e.g. /pets/{id}.
        #[arg(long)]
        route: Option<String>,
        /// Only this response status, e.g. 503.
        #[arg(long)]
        status: Option<u16>,
        /// Only requests that took at least this long, e.g. 200ms, 2s.
        #[arg(long)]
        min_duration: Option<String>,
        /// Only faults (5xx).
        #[arg(long)]
        fault: bool,
        /// How far back to look, e.g. 15m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        since: String,
        /// At most this many traces.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(short, long, value_enum, default_value_t = SearchOutput::Table)]
        output: SearchOutput,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum GetOutput {
    /// A waterfall.
    Text,
    /// The admin API's JSON.
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SearchOutput {
    /// Aligned columns.
    Table,
    /// The admin API's JSON.
    Json,
}

pub(crate) async fn run(command: TracesCommand, base: &str, token: &str) -> anyhow::Result<()> {
    match command {
        TracesCommand::Get { id, output } => {
            let path = format!("/admin/traces/{}", encode(&id));
            let (status, body) = call(Method::GET, base, &path, token).await?;
            if status != 200 {
                bail!("{}", message(&body, status));
            }
            match output {
                GetOutput::Json => println!("{}", serde_json::to_string_pretty(&body)?),
                GetOutput::Text => print!("{}", waterfall(&body)),
            }
            Ok(())
        }
        TracesCommand::Search {
            api,
            stage,
            route,
            status,
            min_duration,
            fault,
            since,
            limit,
            output,
        } => {
            let mut params = vec![
                format!("since={}", encode(&since)),
                format!("limit={limit}"),
            ];
            let optional = [
                ("api", api),
                ("stage", stage),
                ("route", route),
                ("status", status.map(|s| s.to_string())),
                ("min_duration", min_duration),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    params.push(format!("{name}={}", encode(&value)));
                }
            }
            if fault {
                params.push("fault=true".into());
            }
            let path = format!("/admin/traces?{}", params.join("&"));
            let (status, body) = call(Method::GET, base, &path, token).await?;
            if status != 200 {
                bail!("{}", message(&body, status));
            }
            match output {
                SearchOutput::Json => println!("{}", serde_json::to_string_pretty(&body)?),
                SearchOutput::Table => print!("{}", table(&body)),
            }
            Ok(())
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

/// A span as the waterfall needs it.
struct Row<'a> {
    id: &'a str,
    parent: Option<&'a str>,
    name: &'a str,
    start: u64,
    end: u64,
    status: String,
}

/// Renders `GET /admin/traces/{id}`'s answer as a waterfall: a header line, then each span under
/// its parent (children by start time), its bar on the trace's time line, duration and status.
pub(crate) fn waterfall(body: &Value) -> String {
    let spans = body["spans"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Row<'_>> = spans
        .iter()
        .map(|span| {
            let code = span["attributes"]["http.response.status_code"].as_i64();
            let class = span["classification"].as_str().unwrap_or("?");
            Row {
                id: span["spanId"].as_str().unwrap_or_default(),
                parent: span["parentSpanId"].as_str(),
                name: span["name"].as_str().unwrap_or("?"),
                start: span["startUnixNano"].as_u64().unwrap_or(0),
                end: span["endUnixNano"].as_u64().unwrap_or(0),
                status: match code {
                    Some(code) => format!("{code} {class}"),
                    None => class.to_owned(),
                },
            }
        })
        .collect();
    let trace_start = rows.iter().map(|r| r.start).min().unwrap_or(0);
    let trace_end = rows.iter().map(|r| r.end).max().unwrap_or(0);
    let total = trace_end.saturating_sub(trace_start);
    let mut out = format!(
        "trace {} ({})  {} span{}, {:.2} ms\n",
        body["traceId"].as_str().unwrap_or("?"),
        body["xrayTraceId"].as_str().unwrap_or("?"),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        total as f64 / 1e6,
    );

    // Depth-first from the roots (spans whose parent is not in the trace), children by start.
    let known = |id: &str| rows.iter().any(|r| r.id == id);
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
    let mut stack: Vec<(usize, usize)> = children(&rows, |r| r.parent.is_none_or(|p| !known(p)))
        .into_iter()
        .rev()
        .map(|i| (i, 0))
        .collect();
    while let Some((index, depth)) = stack.pop() {
        order.push((index, depth));
        let id = rows[index].id;
        for child in children(&rows, |r| r.parent == Some(id)).into_iter().rev() {
            // A span cannot be its own ancestor in data we wrote; guard against a loop anyway.
            if !order.iter().any(|&(seen, _)| seen == child) {
                stack.push((child, depth + 1));
            }
        }
    }

    let labels: Vec<String> = order
        .iter()
        .map(|&(index, depth)| cut(&format!("{}{}", "  ".repeat(depth), rows[index].name)))
        .collect();
    let name_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (&(index, _), label) in order.iter().zip(&labels) {
        let row = &rows[index];
        let scale = |at: u64| -> usize {
            if total == 0 {
                return 0;
            }
            let offset = u128::from(at.saturating_sub(trace_start)) * BAR_WIDTH as u128;
            usize::try_from(offset / u128::from(total)).unwrap_or(BAR_WIDTH)
        };
        let from = scale(row.start).min(BAR_WIDTH - 1);
        let to = scale(row.end).clamp(from + 1, BAR_WIDTH);
        let bar: String = (0..BAR_WIDTH)
            .map(|i| if (from..to).contains(&i) { '█' } else { ' ' })
            .collect();
        let pad = name_width - label.chars().count();
        out.push_str(&format!(
            "{label}{:pad$}  |{bar}| {:>9.2} ms  {}\n",
            "",
            row.end.saturating_sub(row.start) as f64 / 1e6,
            row.status,
        ));
    }
    out
}

/// The indices of the rows `pick` selects, by start time (then as listed).
fn children(rows: &[Row<'_>], pick: impl Fn(&Row<'_>) -> bool) -> Vec<usize> {
    let mut picked: Vec<usize> = (0..rows.len()).filter(|&i| pick(&rows[i])).collect();
    picked.sort_by_key(|&i| rows[i].start);
    picked
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_NAME {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_NAME - 1).collect();
    cut.push('…');
    cut
}

/// Renders `GET /admin/traces`'s answer as aligned columns.
pub(crate) fn table(body: &Value) -> String {
    let traces = body["traces"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if traces.is_empty() {
        return "no traces match\n".to_owned();
    }
    let mut out = format!(
        "{:<24} {:<32} {:<12} {:<30} {:>6} {:>10} {:<8} {:>5}\n",
        "START", "TRACE ID", "API/STAGE", "NAME", "STATUS", "DURATION", "CLASS", "SPANS"
    );
    for trace in traces {
        let place = match (trace["api"].as_str(), trace["stage"].as_str()) {
            (Some(api), Some(stage)) => format!("{api}/{stage}"),
            _ => "-".to_owned(),
        };
        let status = trace["status"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        out.push_str(&format!(
            "{:<24} {:<32} {:<12} {:<30} {:>6} {:>7.1} ms {:<8} {:>5}\n",
            trace["start"].as_str().unwrap_or("?"),
            trace["traceId"].as_str().unwrap_or("?"),
            place,
            cut(trace["name"].as_str().unwrap_or("?")),
            status,
            trace["durationMs"].as_f64().unwrap_or(0.0),
            trace["classification"].as_str().unwrap_or("?"),
            trace["spans"],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    const BASE: u64 = 1_767_225_600_000_000_000;

    fn span(
        id: &str,
        parent: Option<&str>,
        name: &str,
        start_ms: u64,
        end_ms: u64,
        status: Option<u16>,
        class: &str,
    ) -> Value {
        json!({
            "spanId": id,
            "parentSpanId": parent,
            "name": name,
            "startUnixNano": BASE + start_ms * 1_000_000,
            "endUnixNano": BASE + end_ms * 1_000_000,
            "classification": class,
            "attributes": status.map_or(json!({}), |s| json!({"http.response.status_code": s})),
        })
    }

    #[test]
    fn a_trace_renders_as_an_indented_waterfall_on_one_time_line() {
        // Listed out of order on purpose: the renderer nests and sorts.
        let body = json!({
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "xrayTraceId": "1-4bf92f35-77b34da6a3ce929d0e0e4736",
            "spans": [
                span("c", Some("a"), "GET", 10, 30, Some(503), "fault"),
                span("a", None, "GET /pets/{id}", 0, 40, Some(503), "fault"),
                span("b", Some("a"), "waf", 0, 2, None, "ok"),
            ],
        });
        let expected = "\
trace 4bf92f3577b34da6a3ce929d0e0e4736 (1-4bf92f35-77b34da6a3ce929d0e0e4736)  3 spans, 40.00 ms
GET /pets/{id}  |████████████████████████████████████████|     40.00 ms  503 fault
  waf           |██                                      |      2.00 ms  ok
  GET           |          ████████████████████          |     20.00 ms  503 fault
";
        assert_eq!(waterfall(&body), expected);
    }

    #[test]
    fn a_zero_length_trace_and_an_orphan_span_still_render() {
        let body = json!({
            "traceId": "t",
            "xrayTraceId": "x",
            "spans": [span("b", Some("gone"), "orphan", 5, 5, None, "ok")],
        });
        assert_eq!(
            waterfall(&body),
            format!(
                "trace t (x)  1 span, 0.00 ms\norphan  |█{}|      0.00 ms  ok\n",
                " ".repeat(39)
            )
        );
    }

    #[test]
    fn an_empty_search_says_so() {
        assert_eq!(table(&json!({"traces": []})), "no traces match\n");
    }
}
