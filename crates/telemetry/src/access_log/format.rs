//! The access-log template compiler: `$context.*` variables between literal text, compiled once
//! into segments and rendered per exchange with no parsing and no per-variable allocation.
//!
//! A template's first character decides how values are escaped, so that a value can never break
//! the line's syntax: `{` is JSON, `<` is XML, a template whose literal text is only commas and
//! quotes is CSV, and anything else (CLF, say) is plain text. In JSON a variable inside quotes
//! renders as string content (`-` when absent, as API Gateway does); outside quotes it renders as a
//! JSON value — a number, `true`/`false`, a quoted string, or `null` when absent — so any template
//! yields valid JSON.

use std::fmt;
use std::sync::Arc;

use crate::Exchange;

use super::escape;
use super::presets::Preset;
use super::variables::{self, RenderScratch, VARIABLES, Value, Var};

const PREFIX: &str = "$context.";

/// Why a format was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "unknown access log format '{0}': expected one of {presets}, or a template of $context variables",
        presets = preset_names()
    )]
    UnknownPreset(String),
    #[error(
        "unknown variable `$context.{0}`; valid variables are {valid}",
        valid = variable_names().collect::<Vec<_>>().join(", ")
    )]
    UnknownVariable(String),
    #[error("access log format must include $context.requestId")]
    MissingRequestId,
    #[error(
        "access log format must be one line (use a folded block scalar `>-` to wrap a long template)"
    )]
    MultiLine,
}

fn preset_names() -> String {
    Preset::ALL.map(Preset::name).join(", ")
}

/// Every variable name a template may use, with its `$context.` prefix.
pub fn variable_names() -> impl Iterator<Item = String> {
    VARIABLES.iter().map(|(name, _)| format!("{PREFIX}{name}"))
}

/// How values are escaped, decided by the template's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    Text,
    Json,
    Csv,
    Xml,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(Box<[u8]>),
    /// `quoted`: the variable sits inside a JSON string or a quoted CSV field.
    Var {
        var: Var,
        quoted: bool,
    },
}

/// A compiled access-log format.
#[derive(Clone)]
pub struct AccessLogFormat {
    source: Arc<str>,
    preset: Option<Preset>,
    kind: FormatKind,
    segments: Box<[Segment]>,
}

impl AccessLogFormat {
    /// Compiles a preset name (`clf`, `json`, `csv`, `xml`, `gatehouse`) or a template.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        if let Some(preset) = Preset::from_name(text.trim()) {
            return Ok(Self::preset(preset));
        }
        if !text.contains(PREFIX) {
            return Err(FormatError::UnknownPreset(text.to_owned()));
        }
        Self::compile(text)
    }

    /// The compiled preset.
    pub fn preset(preset: Preset) -> Self {
        let mut format = Self::compile(preset.template())
            .expect("every preset compiles (tested in format_tests)");
        format.preset = Some(preset);
        format
    }

    /// Compiles a template of `$context.*` variables and literal text.
    pub fn compile(template: &str) -> Result<Self, FormatError> {
        if template.contains(['\n', '\r']) {
            return Err(FormatError::MultiLine);
        }
        let mut segments = Vec::new();
        let mut literal_start = 0;
        let mut rest_start = 0;
        while let Some(found) = template[rest_start..].find(PREFIX) {
            let at = rest_start + found;
            let name_start = at + PREFIX.len();
            let run_len = template[name_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(template.len() - name_start);
            let run = &template[name_start..name_start + run_len];
            let Some((name, var)) = variables::longest_match(run) else {
                let name = run.trim_end_matches('.');
                return Err(FormatError::UnknownVariable(name.to_owned()));
            };
            if at > literal_start {
                segments.push(Segment::Literal(
                    template.as_bytes()[literal_start..at].into(),
                ));
            }
            segments.push(Segment::Var { var, quoted: false });
            literal_start = name_start + name.len();
            rest_start = literal_start;
        }
        if literal_start < template.len() {
            segments.push(Segment::Literal(
                template.as_bytes()[literal_start..].into(),
            ));
        }
        if !segments.iter().any(|s| {
            matches!(
                s,
                Segment::Var {
                    var: Var::RequestId,
                    ..
                }
            )
        }) {
            return Err(FormatError::MissingRequestId);
        }
        let kind = kind_of(template.trim_start(), &segments);
        mark_quoted(kind, &mut segments);
        Ok(Self {
            source: Arc::from(template),
            preset: None,
            kind,
            segments: segments.into(),
        })
    }

    /// The template text (a preset's template for a preset).
    pub fn template(&self) -> &str {
        &self.source
    }

    /// The preset this format was built from, if any.
    pub fn preset_name(&self) -> Option<&'static str> {
        self.preset.map(Preset::name)
    }

    /// How values are escaped.
    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    /// Appends one line for `exchange` to `out`, without a line break.
    pub fn render(&self, exchange: &Exchange, out: &mut Vec<u8>) {
        self.render_with(exchange, &mut RenderScratch::default(), out);
    }

    /// Like [`render`](Self::render), reusing `scratch` between lines (the writer keeps one).
    pub fn render_with(&self, exchange: &Exchange, scratch: &mut RenderScratch, out: &mut Vec<u8>) {
        for segment in self.segments.iter() {
            match segment {
                Segment::Literal(bytes) => out.extend_from_slice(bytes),
                Segment::Var { var, quoted } => {
                    let value = variables::value(*var, exchange, scratch);
                    self.write_value(value, *quoted, &scratch.buf, out);
                }
            }
        }
    }

    fn write_value(&self, value: Value<'_>, quoted: bool, scratch: &[u8], out: &mut Vec<u8>) {
        let bare_json = self.kind == FormatKind::Json && !quoted;
        let text: &[u8] = match value {
            Value::Absent if bare_json => return out.extend_from_slice(b"null"),
            Value::Absent => return out.push(b'-'),
            Value::Number(n) => return variables::write_int(out, n),
            Value::Millis(d) => return variables::write_millis(out, d),
            Value::Bool(b) => return out.extend_from_slice(if b { b"true" } else { b"false" }),
            Value::WebSocket(ws) if bare_json => return websocket_json(out, ws),
            Value::WebSocket(ws) => {
                let mut text = Vec::with_capacity(32);
                websocket_text(&mut text, ws);
                return self.write_text(&text, quoted, out);
            }
            Value::Text(text) => text.as_bytes(),
            Value::Scratch => scratch,
        };
        self.write_text(text, quoted, out);
    }

    fn write_text(&self, text: &[u8], quoted: bool, out: &mut Vec<u8>) {
        match self.kind {
            FormatKind::Json if quoted => escape::json(out, text),
            FormatKind::Json => {
                out.push(b'"');
                escape::json(out, text);
                out.push(b'"');
            }
            FormatKind::Xml => escape::xml(out, text),
            FormatKind::Csv => escape::csv(out, text, quoted),
            FormatKind::Text => escape::text(out, text),
        }
    }
}

impl Default for AccessLogFormat {
    /// The `gatehouse` preset.
    fn default() -> Self {
        Self::preset(Preset::Gatehouse)
    }
}

impl PartialEq for AccessLogFormat {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for AccessLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.preset {
            Some(preset) => write!(f, "AccessLogFormat({})", preset.name()),
            None => write!(f, "AccessLogFormat({:?})", self.source),
        }
    }
}

fn kind_of(template: &str, segments: &[Segment]) -> FormatKind {
    if template.starts_with('{') {
        return FormatKind::Json;
    }
    if template.starts_with('<') {
        return FormatKind::Xml;
    }
    let literals = || {
        segments.iter().filter_map(|s| match s {
            Segment::Literal(bytes) => Some(bytes),
            Segment::Var { .. } => None,
        })
    };
    let only_separators = literals().all(|l| l.iter().all(|&b| b == b',' || b == b'"'));
    let has_comma = literals().any(|l| l.contains(&b','));
    if only_separators && has_comma {
        FormatKind::Csv
    } else {
        FormatKind::Text
    }
}

/// Marks the variables that sit inside a JSON string or a quoted CSV field, by following the
/// quotes in the literal text around them.
fn mark_quoted(kind: FormatKind, segments: &mut [Segment]) {
    if !matches!(kind, FormatKind::Json | FormatKind::Csv) {
        return;
    }
    let mut in_quotes = false;
    let mut escaped = false;
    for segment in segments {
        match segment {
            Segment::Literal(bytes) => {
                for &b in bytes.iter() {
                    match b {
                        _ if escaped => escaped = false,
                        b'\\' if in_quotes && kind == FormatKind::Json => escaped = true,
                        b'"' => in_quotes = !in_quotes,
                        _ => {}
                    }
                }
            }
            Segment::Var { quoted, .. } => *quoted = in_quotes,
        }
    }
}

fn websocket_json(out: &mut Vec<u8>, ws: &crate::WebSocketStats) {
    out.extend_from_slice(b"{\"messagesIn\":");
    variables::write_int(out, ws.messages_in);
    out.extend_from_slice(b",\"messagesOut\":");
    variables::write_int(out, ws.messages_out);
    out.extend_from_slice(b",\"closeCode\":");
    match ws.close_code {
        Some(code) => variables::write_int(out, code),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"closedBy\":");
    match ws.closed_by {
        Some(by) => {
            out.push(b'"');
            escape::json(out, by.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// `messagesIn/messagesOut/closeCode/closedBy`, e.g. `3/4/1000/client`.
fn websocket_text(out: &mut Vec<u8>, ws: &crate::WebSocketStats) {
    variables::write_int(out, ws.messages_in);
    out.push(b'/');
    variables::write_int(out, ws.messages_out);
    out.push(b'/');
    match ws.close_code {
        Some(code) => variables::write_int(out, code),
        None => out.push(b'-'),
    }
    out.push(b'/');
    out.extend_from_slice(ws.closed_by.unwrap_or("-").as_bytes());
}
