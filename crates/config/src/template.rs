//! Templates for upstream URLs, header values and mock bodies: parsed once, rendered per request.
//!
//! Syntax (documented for users in docs/configuration.md):
//! - `{name}` — a path parameter of the route (`{proxy}` for a greedy `{proxy+}`), inserted raw, as
//!   it appeared in the request path, so percent-encoding is preserved and URLs stay valid;
//! - `${stageVariables.NAME}` — a variable of the stage, substituted at compile time, because every
//!   route is compiled once per stage; its value is literal text and is not parsed again;
//! - `${context.X}` — a per-request value supplied by the caller through [`ContextVar`];
//! - `{{name}}` — the literal text `{name}`; every other `{`, `}` or `${...}` is literal text, so a
//!   JSON body such as `{"id": "{id}"}` needs no escaping.
//!
//! Parsing and name checks happen once per route in [`TemplateSource::parse`]; binding a stage
//! ([`TemplateSource::bind`]) yields an immutable [`Template`] whose render is one pre-sized `String`
//! and a walk over the parts: no parsing, no lookups beyond the few path parameters.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::env::is_env_name;
use crate::routing::PathParams;

/// A per-request value a template can reference as `${context.X}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextVar {
    /// `${context.requestId}`: the gateway's id for this request.
    RequestId,
    /// `${context.stage}`: the stage name.
    Stage,
    /// `${context.api}`: the api name.
    Api,
    /// `${context.apiVersion}`: the api version.
    ApiVersion,
    /// `${context.httpMethod}`: the request method.
    HttpMethod,
    /// `${context.path}`: the request path as received.
    Path,
    /// `${context.resourcePath}`: the route's path template, e.g. `/pets/{id}`.
    ResourcePath,
    /// `${context.sourceIp}`: the client's IP address.
    SourceIp,
    /// `${context.requestTimeEpoch}`: when the request arrived, in milliseconds since the epoch.
    RequestTimeEpoch,
}

impl ContextVar {
    /// Every context variable, in documentation order.
    pub const ALL: [ContextVar; 9] = [
        ContextVar::RequestId,
        ContextVar::Stage,
        ContextVar::Api,
        ContextVar::ApiVersion,
        ContextVar::HttpMethod,
        ContextVar::Path,
        ContextVar::ResourcePath,
        ContextVar::SourceIp,
        ContextVar::RequestTimeEpoch,
    ];

    /// The name used after `${context.`.
    pub fn name(self) -> &'static str {
        match self {
            ContextVar::RequestId => "requestId",
            ContextVar::Stage => "stage",
            ContextVar::Api => "api",
            ContextVar::ApiVersion => "apiVersion",
            ContextVar::HttpMethod => "httpMethod",
            ContextVar::Path => "path",
            ContextVar::ResourcePath => "resourcePath",
            ContextVar::SourceIp => "sourceIp",
            ContextVar::RequestTimeEpoch => "requestTimeEpoch",
        }
    }

    /// Looks a variable up by its name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// Why a template is invalid for its route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{name}` where the route has no such path parameter.
    #[error("unknown path parameter '{{{name}}}' ({known})")]
    UnknownParam {
        /// The name used in the template.
        name: String,
        /// A description of the valid names.
        known: String,
    },
    /// `{name+}` in a template; greedy parameters are referenced without the `+`.
    #[error("write the greedy parameter as '{{{name}}}' in templates, without '+'")]
    GreedyInTemplate {
        /// The parameter name.
        name: String,
    },
    /// `${context.X}` with an unknown `X`.
    #[error("unknown context variable '${{context.{name}}}', expected one of {known}")]
    UnknownContext {
        /// The name used in the template.
        name: String,
        /// The valid names.
        known: String,
    },
    /// `${stageVariables.}` with an empty or malformed name.
    #[error("invalid stage variable reference '${{stageVariables.{name}}}'")]
    BadStageVariable {
        /// The text after `stageVariables.`.
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SourcePart {
    Literal(String),
    Param(String),
    StageVar(String),
    Context(ContextVar),
}

/// A template checked against its route, not yet bound to a stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TemplateSource {
    parts: Vec<SourcePart>,
}

impl TemplateSource {
    /// Parses `text`, checking `{param}` names against `params` (the route's parameter names).
    pub(crate) fn parse(text: &str, params: &[&str]) -> Result<Self, Vec<TemplateError>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '$']) {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            match scan(rest) {
                Some((token, len)) => {
                    match token {
                        Token::Verbatim(text) => literal.push_str(text),
                        Token::Escaped(name) => {
                            literal.push('{');
                            literal.push_str(name);
                            literal.push('}');
                        }
                        Token::Param(name) if params.contains(&name) => {
                            flush(&mut literal, &mut parts);
                            parts.push(SourcePart::Param(name.to_owned()));
                        }
                        Token::Param(name) => errors.push(TemplateError::UnknownParam {
                            name: name.to_owned(),
                            known: describe_params(params),
                        }),
                        Token::Greedy(name) => errors.push(TemplateError::GreedyInTemplate {
                            name: name.to_owned(),
                        }),
                        Token::StageVar(name) if is_stage_variable_name(name) => {
                            flush(&mut literal, &mut parts);
                            parts.push(SourcePart::StageVar(name.to_owned()));
                        }
                        Token::StageVar(name) => errors.push(TemplateError::BadStageVariable {
                            name: name.to_owned(),
                        }),
                        Token::Context(name) => match ContextVar::from_name(name) {
                            Some(var) => {
                                flush(&mut literal, &mut parts);
                                parts.push(SourcePart::Context(var));
                            }
                            None => errors.push(TemplateError::UnknownContext {
                                name: name.to_owned(),
                                known: ContextVar::ALL.map(ContextVar::name).join(", "),
                            }),
                        },
                    }
                    rest = &rest[len..];
                }
                None => {
                    // `{` and `$` are one byte each, so this stays on a char boundary.
                    literal.push_str(&rest[..1]);
                    rest = &rest[1..];
                }
            }
        }
        literal.push_str(rest);
        flush(&mut literal, &mut parts);
        if errors.is_empty() {
            Ok(Self { parts })
        } else {
            Err(errors)
        }
    }

    /// The names of the stage variables the template uses.
    pub(crate) fn stage_variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            SourcePart::StageVar(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Substitutes stage variables; `Err` lists the names the stage does not define.
    pub(crate) fn bind(
        &self,
        variables: &BTreeMap<String, String>,
    ) -> Result<Template, Vec<String>> {
        let mut parts = Vec::with_capacity(self.parts.len());
        let mut literal = String::new();
        let mut missing = Vec::new();
        for part in &self.parts {
            match part {
                SourcePart::Literal(text) => literal.push_str(text),
                SourcePart::StageVar(name) => match variables.get(name) {
                    Some(value) => literal.push_str(value),
                    None => missing.push(name.clone()),
                },
                SourcePart::Param(name) => {
                    push_literal(&mut literal, &mut parts);
                    parts.push(Part::Param(name.as_str().into()));
                }
                SourcePart::Context(var) => {
                    push_literal(&mut literal, &mut parts);
                    parts.push(Part::Context(*var));
                }
            }
        }
        push_literal(&mut literal, &mut parts);
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(Template::from_parts(parts))
    }
}

enum Token<'t> {
    /// Text kept verbatim, such as a `${...}` that is not a template variable.
    Verbatim(&'t str),
    Escaped(&'t str),
    Param(&'t str),
    Greedy(&'t str),
    StageVar(&'t str),
    Context(&'t str),
}

/// Recognises a template token at the start of `text` (which starts with `{` or `$`).
fn scan(text: &str) -> Option<(Token<'_>, usize)> {
    if let Some(inner) = text.strip_prefix("${") {
        let close = inner.find('}')?;
        let content = &inner[..close];
        let len = close + 3;
        if let Some(name) = content.strip_prefix("stageVariables.") {
            return Some((Token::StageVar(name), len));
        }
        if let Some(name) = content.strip_prefix("context.") {
            return Some((Token::Context(name), len));
        }
        return Some((Token::Verbatim(&text[..len]), len));
    }
    if let Some(inner) = text.strip_prefix("{{") {
        let close = inner.find("}}")?;
        let name = &inner[..close];
        return is_env_name(name).then_some((Token::Escaped(name), close + 4));
    }
    let inner = text.strip_prefix('{')?;
    let close = inner.find('}')?;
    let content = &inner[..close];
    let len = close + 2;
    if let Some(name) = content.strip_suffix('+')
        && is_env_name(name)
    {
        return Some((Token::Greedy(name), len));
    }
    is_env_name(content).then_some((Token::Param(content), len))
}

fn flush(literal: &mut String, parts: &mut Vec<SourcePart>) {
    if !literal.is_empty() {
        parts.push(SourcePart::Literal(std::mem::take(literal)));
    }
}

fn push_literal(literal: &mut String, parts: &mut Vec<Part>) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal).into_boxed_str()));
    }
}

fn describe_params(params: &[&str]) -> String {
    if params.is_empty() {
        "the route has no path parameters".to_owned()
    } else {
        let names: Vec<String> = params.iter().map(|p| format!("{{{p}}}")).collect();
        format!("the route's path parameters: {}", names.join(", "))
    }
}

/// Whether `name` is a valid stage variable name: `[A-Za-z0-9_]+`, as in Amazon API Gateway.
pub(crate) fn is_stage_variable_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Param(Box<str>),
    Context(ContextVar),
}

/// An immutable, stage-bound template, cheap to render on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Box<[Part]>,
    literal_len: usize,
    dynamic_parts: usize,
}

/// Bytes reserved per dynamic part when pre-sizing the output.
const DYNAMIC_PART_HINT: usize = 24;

impl Template {
    /// A template that renders `text` verbatim (no parsing).
    pub fn literal(text: impl Into<String>) -> Self {
        let text: String = text.into();
        if text.is_empty() {
            return Self::from_parts(Vec::new());
        }
        Self::from_parts(vec![Part::Literal(text.into_boxed_str())])
    }

    fn from_parts(parts: Vec<Part>) -> Self {
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Literal(text) => text.len(),
                _ => 0,
            })
            .sum();
        let dynamic_parts = parts
            .iter()
            .filter(|p| !matches!(p, Part::Literal(_)))
            .count();
        Self {
            parts: parts.into_boxed_slice(),
            literal_len,
            dynamic_parts,
        }
    }

    /// Renders the template for one request.
    pub fn render<'c>(
        &self,
        params: &PathParams<'_>,
        context: &dyn Fn(ContextVar) -> Cow<'c, str>,
    ) -> String {
        let mut out =
            String::with_capacity(self.literal_len + self.dynamic_parts * DYNAMIC_PART_HINT);
        self.render_into(&mut out, params, context);
        out
    }

    /// Renders the template, appending to `out` (lets callers reuse a buffer).
    pub fn render_into<'c>(
        &self,
        out: &mut String,
        params: &PathParams<'_>,
        context: &dyn Fn(ContextVar) -> Cow<'c, str>,
    ) {
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                // Names were checked against the route at compile time, so a miss means the
                // caller passed parameters from another route; render nothing rather than panic.
                Part::Param(name) => out.push_str(params.get(name).unwrap_or_default()),
                Part::Context(var) => out.push_str(&context(*var)),
            }
        }
    }

    /// Whether the template has no per-request parts.
    pub fn is_static(&self) -> bool {
        self.dynamic_parts == 0
    }

    /// The rendered text when the template has no per-request parts.
    pub fn as_static(&self) -> Option<&str> {
        match &*self.parts {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The literal text before the first per-request part (all of it for a static template).
    pub(crate) fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(text)) => text,
            _ => "",
        }
    }

    /// The context variables this template uses, so callers can skip computing the others.
    pub fn context_vars(&self) -> impl Iterator<Item = ContextVar> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Context(var) => Some(*var),
            _ => None,
        })
    }
}

/// Shows the template in source syntax, with stage variables already substituted.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Param(name) => write!(f, "{{{name}}}")?,
                Part::Context(var) => write!(f, "${{context.{}}}", var.name())?,
            }
        }
        Ok(())
    }
}
