//! `gatehouse graph`: the service graph from the terminal, as one line per edge, the admin API's
//! JSON, or Graphviz DOT (`gatehouse graph -o dot | dot -Tsvg > graph.svg`).
//!
//! Text and DOT are rendered from the admin API's JSON, so the CLI shows exactly what the API
//! answers.

use std::fmt::Write as _;

use anyhow::bail;
use clap::{Args, ValueEnum};
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::admin_client::call;

#[derive(Args, Debug)]
pub(crate) struct GraphArgs {
    /// How far back to look, e.g. 15m, 1h, 2d.
    #[arg(long, default_value = "1h")]
    since: String,
    #[arg(short, long, value_enum, default_value_t = GraphOutput::Text)]
    output: GraphOutput,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphOutput {
    /// One line per edge.
    Text,
    /// The admin API's JSON.
    Json,
    /// A Graphviz digraph with an edge label per edge.
    Dot,
}

pub(crate) async fn run(args: GraphArgs, base: &str, token: &str) -> anyhow::Result<()> {
    let since = utf8_percent_encode(&args.since, NON_ALPHANUMERIC);
    let (status, body) = call(
        Method::GET,
        base,
        &format!("/admin/graph?since={since}"),
        token,
    )
    .await?;
    if status != 200 {
        let message = body["message"].as_str().map_or_else(
            || format!("the admin API answered HTTP {status}"),
            str::to_owned,
        );
        bail!("{message}");
    }
    match args.output {
        GraphOutput::Json => println!("{}", serde_json::to_string_pretty(&body)?),
        GraphOutput::Text => print!("{}", text(&body)),
        GraphOutput::Dot => print!("{}", dot(&body)),
    }
    if body["capped"].as_bool() == Some(true) {
        eprintln!(
            "note: the window held more spans than one graph reads; ask for a shorter --since"
        );
    }
    Ok(())
}

/// A node's printed name: its name, or its id when the node is not listed.
fn name<'a>(body: &'a Value, id: &'a str) -> &'a str {
    body["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == id))
        .and_then(|n| n["name"].as_str())
        .unwrap_or(id)
}

fn edges(body: &Value) -> &[Value] {
    body["edges"].as_array().map_or(&[], Vec::as_slice)
}

fn millis(value: &Value) -> String {
    let ms = value.as_f64().unwrap_or(0.0);
    if ms >= 10.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// `client → petstore/prod  120 req  2 err  1 fault  0 thr  p50 3.1ms p90 8.0ms p99 12ms`.
fn text(body: &Value) -> String {
    let mut out = String::new();
    let lines: Vec<(String, &Value)> = edges(body)
        .iter()
        .map(|edge| {
            let from = name(body, edge["from"].as_str().unwrap_or_default());
            let to = name(body, edge["to"].as_str().unwrap_or_default());
            (format!("{from} → {to}"), edge)
        })
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, edge) in lines {
        let pad = width - label.chars().count();
        let _ = writeln!(
            out,
            "{label}{:pad$}  {} req  {} err  {} fault  {} thr  p50 {} p90 {} p99 {}",
            "",
            edge["requests"],
            edge["errors"],
            edge["faults"],
            edge["throttles"],
            millis(&edge["latencyMs"]["p50"]),
            millis(&edge["latencyMs"]["p90"]),
            millis(&edge["latencyMs"]["p99"]),
        );
    }
    if out.is_empty() {
        out.push_str("no calls in the window\n");
    }
    out
}

/// A DOT string literal: quotes and backslashes escaped.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dot(body: &Value) -> String {
    let mut out = String::from("digraph gatehouse {\n  rankdir=LR;\n");
    for node in body["nodes"].as_array().map_or(&[][..], Vec::as_slice) {
        let shape = match node["kind"].as_str() {
            Some("client") => "ellipse",
            Some("api") => "box",
            Some("upstream") => "octagon",
            _ => "component",
        };
        let _ = writeln!(
            out,
            "  {} [label={}, shape={shape}];",
            quoted(node["id"].as_str().unwrap_or_default()),
            quoted(node["name"].as_str().unwrap_or_default()),
        );
    }
    for edge in edges(body) {
        let label = format!(
            "{} req, {} err, {} fault, {} thr\\np50 {} p99 {}",
            edge["requests"],
            edge["errors"],
            edge["faults"],
            edge["throttles"],
            millis(&edge["latencyMs"]["p50"]),
            millis(&edge["latencyMs"]["p99"]),
        );
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"{label}\"];",
            quoted(edge["from"].as_str().unwrap_or_default()),
            quoted(edge["to"].as_str().unwrap_or_default()),
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn answer() -> Value {
        json!({
            "nodes": [
                {"id": "client", "kind": "client", "name": "client"},
                {"id": "api:petstore/prod", "kind": "api", "name": "petstore/prod"},
            ],
            "edges": [{
                "from": "client", "to": "api:petstore/prod", "requests": 120, "errors": 2,
                "faults": 1, "throttles": 0, "latencyMs": {"p50": 3.1, "p90": 8.0, "p99": 12.4},
            }],
        })
    }

    #[test]
    fn text_prints_one_line_per_edge() {
        assert_eq!(
            text(&answer()),
            "client → petstore/prod  120 req  2 err  1 fault  0 thr  p50 3.1ms p90 8.0ms p99 12ms\n"
        );
        assert_eq!(text(&json!({"edges": []})), "no calls in the window\n");
    }

    #[test]
    fn dot_is_a_digraph_with_labelled_edges() {
        assert_eq!(
            dot(&answer()),
            "digraph gatehouse {\n  rankdir=LR;\n\
             \x20 \"client\" [label=\"client\", shape=ellipse];\n\
             \x20 \"api:petstore/prod\" [label=\"petstore/prod\", shape=box];\n\
             \x20 \"client\" -> \"api:petstore/prod\" [label=\"120 req, 2 err, 1 fault, 0 thr\\np50 3.1ms p99 12ms\"];\n\
             }\n"
        );
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
