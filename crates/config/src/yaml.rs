//! YAML text to a `serde_json::Value`, keeping the position of every node and key.
//!
//! `granit_parser` (re-exported by `serde-saphyr`) gives us a stream of events with source markers.
//! We fold them into a small [`Node`] tree, then build a [`PositionIndex`] from field paths
//! (`apis[0].routes[2].integration.url`) to 1-based (line, column) so that every later error — a
//! serde type error, a validation rule, a routing conflict — can point at the exact spot. Converting
//! the tree to JSON applies `${ENV}` substitution to every scalar and then, for plain scalars only,
//! resolves the type with the YAML 1.2 core schema: `port: ${PORT:-8080}` becomes the integer 8080,
//! while `'8080'` stays a string. Duplicate keys, anchors/aliases, custom tags and multi-document
//! streams are refused with a positioned error: they hide mistakes more often than they help here.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput};

use crate::env;
use crate::error::{Anchor, Diagnostics, join_index, join_key};

/// A 1-based (line, column) position.
pub(crate) type Pos = (u32, u32);

/// A YAML node with its position.
#[derive(Debug)]
pub(crate) enum Node {
    Scalar { text: String, plain: bool, pos: Pos },
    Seq { items: Vec<Node>, pos: Pos },
    Map { entries: Vec<(Key, Node)>, pos: Pos },
}

/// A mapping key: always a scalar here; its text is used verbatim as the field name.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) text: String,
    pub(crate) pos: Pos,
}

impl Node {
    fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. } | Node::Seq { pos, .. } | Node::Map { pos, .. } => *pos,
        }
    }
}

/// A YAML syntax problem, or a YAML feature this loader refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

fn pos_of(span: &Span) -> Pos {
    marker_pos(span.start.line(), span.start.col())
}

fn marker_pos(line: usize, col: usize) -> Pos {
    let line = u32::try_from(line).unwrap_or(u32::MAX).max(1);
    let column = u32::try_from(col.saturating_add(1)).unwrap_or(u32::MAX);
    (line, column)
}

impl From<ScanError> for SyntaxError {
    fn from(error: ScanError) -> Self {
        let marker = error.marker();
        SyntaxError {
            pos: marker_pos(marker.line(), marker.col()),
            message: format!("invalid YAML: {}", error.info()),
        }
    }
}

fn refuse(span: &Span, message: &str) -> SyntaxError {
    SyntaxError {
        pos: pos_of(span),
        message: message.to_owned(),
    }
}

/// Parses one YAML document into a node tree. An empty file is an empty mapping.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let options = serde_saphyr::granit_parser::options! { emit_anchor_events: true };
    let mut events: Events<'_> = Parser::new_from_str_with_options(text, options);
    let mut root = None;
    while let Some(item) = events.next() {
        let (event, span) = item?;
        match event {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(..) if root.is_some() => {
                return Err(refuse(
                    &span,
                    "multiple YAML documents are not supported; keep one document per file",
                ));
            }
            Event::DocumentStart(..) => root = Some(parse_node(&mut events)?),
            _ => {}
        }
    }
    Ok(root.unwrap_or(Node::Map {
        entries: Vec::new(),
        pos: (1, 1),
    }))
}

type Events<'i> = Parser<'i, StrInput<'i>>;

/// The next event that is a node or a collection end, skipping presentation metadata (comments).
fn next_event<'i>(events: &mut Events<'i>) -> Result<(Event<'i>, Span), SyntaxError> {
    for item in events.by_ref() {
        let (event, span) = item?;
        if event.is_node() || matches!(event, Event::SequenceEnd | Event::MappingEnd) {
            // Anchor metadata is skipped here: anchored nodes are refused before it is reached.
            return Ok((event, span));
        }
    }
    Err(SyntaxError {
        pos: (1, 1),
        message: "invalid YAML: unexpected end of input".to_owned(),
    })
}

const NO_ANCHORS: &str = "YAML anchors and aliases are not supported; repeat the value instead";

fn parse_node(events: &mut Events<'_>) -> Result<Node, SyntaxError> {
    let (event, span) = next_event(events)?;
    node_from(event, &span, events)
}

fn node_from(event: Event<'_>, span: &Span, events: &mut Events<'_>) -> Result<Node, SyntaxError> {
    let pos = pos_of(span);
    match event {
        Event::Scalar(_, _, anchor, _)
        | Event::SequenceStart(_, anchor, _)
        | Event::MappingStart(_, anchor, _)
            if anchor != 0 =>
        {
            // The anchor's own event follows its node; point at `&name` when we can.
            let at = match events.peek() {
                Some(Ok((Event::Anchor(..), anchor_span))) => *anchor_span,
                _ => *span,
            };
            Err(refuse(&at, NO_ANCHORS))
        }
        Event::Alias(_) | Event::UnresolvedAlias(_) => Err(refuse(span, NO_ANCHORS)),
        Event::Scalar(text, style, _, tag) => {
            let forced_string = match tag.as_deref() {
                None => false,
                Some(tag) if tag.is_yaml_core_schema_tag("str") => true,
                Some(tag) if tag.is_yaml_core_schema() => false,
                Some(tag) => {
                    return Err(refuse(
                        span,
                        &format!("YAML tag '{}' is not supported", tag.original()),
                    ));
                }
            };
            Ok(Node::Scalar {
                text: text.into_owned(),
                plain: style == ScalarStyle::Plain && !forced_string,
                pos,
            })
        }
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (event, span) = next_event(events)?;
                if matches!(event, Event::SequenceEnd) {
                    return Ok(Node::Seq { items, pos });
                }
                items.push(node_from(event, &span, events)?);
            }
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let (event, span) = next_event(events)?;
                if matches!(event, Event::MappingEnd) {
                    return Ok(Node::Map { entries, pos });
                }
                let key = match node_from(event, &span, events)? {
                    Node::Scalar { text, pos, .. } => Key { text, pos },
                    _ => return Err(refuse(&span, "mapping keys must be plain strings")),
                };
                entries.push((key, parse_node(events)?));
            }
        }
        _ => Err(refuse(span, "invalid YAML: unexpected event")),
    }
}

/// A key that appears twice in one mapping.
#[derive(Debug)]
pub(crate) struct Duplicate {
    pub(crate) path: String,
    pub(crate) key: String,
    pub(crate) pos: Pos,
}

/// Field path → position, for values and for the keys that name them.
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl PositionIndex {
    /// Indexes every node of `root`; returns the index and the paths of duplicate keys.
    pub(crate) fn build(root: &Node) -> (Self, Vec<Duplicate>) {
        let mut index = PositionIndex::default();
        let mut duplicates = Vec::new();
        index.visit(root, String::new(), &mut duplicates);
        (index, duplicates)
    }

    /// An index holding only the root position, for errors found before parsing succeeded.
    pub(crate) fn at_root(pos: Pos) -> Self {
        let mut index = PositionIndex::default();
        index.values.insert(String::new(), pos);
        index
    }

    fn visit(&mut self, node: &Node, path: String, duplicates: &mut Vec<Duplicate>) {
        match node {
            Node::Scalar { .. } => {}
            Node::Seq { items, .. } => {
                for (i, item) in items.iter().enumerate() {
                    self.visit(item, join_index(&path, i), duplicates);
                }
            }
            Node::Map { entries, .. } => {
                for (key, value) in entries {
                    let child = join_key(&path, &key.text);
                    if self.keys.contains_key(&child) {
                        // Keep the first occurrence indexed; the duplicate is reported by position.
                        duplicates.push(Duplicate {
                            path: child,
                            key: key.text.clone(),
                            pos: key.pos,
                        });
                        continue;
                    }
                    self.keys.insert(child.clone(), key.pos);
                    self.visit(value, child, duplicates);
                }
            }
        }
        self.values.insert(path, node.pos());
    }

    /// The position for `path`, walking up to the closest indexed ancestor; (0, 0) if none.
    pub(crate) fn locate(&self, path: &str, anchor: Anchor) -> Pos {
        if anchor == Anchor::Key
            && let Some(pos) = self.keys.get(path)
        {
            return *pos;
        }
        let mut current = path;
        loop {
            if let Some(pos) = self.values.get(current) {
                return *pos;
            }
            match parent(current) {
                Some(up) => current = up,
                None => return (0, 0),
            }
        }
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Converts the tree to JSON, substituting `${ENV}` and resolving plain scalars' types.
///
/// Unset variables and duplicate keys are recorded in `diags`; the returned value is then only
/// good for finding more errors, not for use.
pub(crate) fn to_value(
    node: &Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics<'_>,
) -> Value {
    match node {
        Node::Scalar { text, plain, .. } => {
            let text = match env::substitute(text, env) {
                Ok(text) => text,
                Err(errors) => {
                    for error in errors {
                        diags.error(path, error.to_string());
                    }
                    return Value::Null;
                }
            };
            if *plain {
                resolve_plain(&text)
            } else {
                Value::String(text.into_owned())
            }
        }
        Node::Seq { items, .. } => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_value(item, &join_index(path, i), env, diags))
                .collect(),
        ),
        Node::Map { entries, .. } => {
            let mut map = Map::new();
            for (key, value) in entries {
                let child = join_key(path, &key.text);
                if map.contains_key(&key.text) {
                    continue;
                }
                let value = to_value(value, &child, env, diags);
                map.insert(key.text.clone(), value);
            }
            Value::Object(map)
        }
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
///
/// Non-finite floats (`.inf`, `.nan`) stay strings: JSON cannot hold them and no field takes them.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = parse_int(text) {
        return Value::Number(number);
    }
    if is_core_float(text)
        && let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Number> {
    let radix =
        |digits: &str, radix: u32| i64::from_str_radix(digits, radix).ok().map(Number::from);
    if let Some(octal) = text.strip_prefix("0o") {
        return radix(octal, 8).filter(|_| !octal.starts_with(['+', '-']));
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return radix(hex, 16).filter(|_| !hex.starts_with(['+', '-']));
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(Number::from(n));
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| !text.starts_with('-'))
        .map(Number::from)
}

/// `[-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let s = text.strip_prefix(['+', '-']).unwrap_or(text).as_bytes();
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let int = digits(s);
    let mut i = int;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        frac = digits(&s[i + 1..]);
        i += 1 + frac;
    }
    if int == 0 && frac == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = digits(&s[i..]);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == s.len()
}
