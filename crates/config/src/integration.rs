//! What serves a matched route — an HTTP upstream, a mock response or a WebSocket upstream — and
//! how each is compiled from its spec for one stage.
//!
//! Templates are parsed and checked against the route's path parameters once per route
//! ([`IntegrationSource`]), then bound to each stage's variables ([`IntegrationSource::bind`]),
//! where the rendered shape is checked too: an upstream URL must be absolute with a literal scheme
//! and host, and header values must be valid for any parameter value that is itself valid.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode, Uri};

use crate::error::{Diagnostics, join_index, join_key};
use crate::model::{HeaderOpsSpec, IntegrationSpec, ScalarString};
use crate::routing::PathParams;
use crate::template::{Template, TemplateSource};

/// What serves a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integration {
    /// Proxy to an HTTP upstream.
    Http(HttpIntegration),
    /// Answer from the configuration itself.
    Mock(MockIntegration),
    /// Relay a WebSocket connection.
    WebSocket(WebSocketIntegration),
}

/// Proxy to an HTTP(S) upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpIntegration {
    /// The upstream URL: absolute `http://` or `https://` after rendering.
    pub url: Template,
    /// The whole upstream exchange must finish within this time (504 otherwise).
    pub timeout: Duration,
    /// Speak HTTP/2 to the upstream (prior knowledge for `http://`, ALPN for `https://`).
    pub http2: bool,
    /// Changes to the request before it goes upstream.
    pub request_headers: HeaderOps,
    /// Changes to the response before it goes to the client.
    pub response_headers: HeaderOps,
}

/// Header changes: `remove` applies first, then `set` replaces or adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// Headers to set, replacing any existing values.
    pub set: Vec<(HeaderName, Template)>,
    /// Headers to remove.
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// A fixed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockIntegration {
    /// The response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: Vec<(HeaderName, Template)>,
    /// The response body.
    pub body: Template,
}

/// Relay a WebSocket connection to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketIntegration {
    /// The upstream URL: `ws://` or `wss://` after rendering.
    pub url: Template,
    /// The largest single frame accepted from either side.
    pub max_frame_bytes: usize,
    /// The largest (reassembled) message accepted from either side.
    pub max_message_bytes: usize,
    /// Close the connection after this long without a message either way.
    pub idle_timeout: Duration,
    /// Close the connection after this long regardless.
    pub max_lifetime: Duration,
}

const MIN_HTTP_TIMEOUT_MS: u64 = 50;

/// A template with the field path it came from, for stage-binding errors.
pub(crate) struct Field {
    path: String,
    source: TemplateSource,
}

pub(crate) struct OpsSource {
    set: Vec<(HeaderName, Field)>,
    remove: Vec<HeaderName>,
}

/// An integration checked against its route, with templates parsed but not bound to a stage.
pub(crate) enum IntegrationSource {
    Http {
        url: Field,
        timeout: Duration,
        http2: bool,
        request: OpsSource,
        response: OpsSource,
    },
    Mock {
        status: StatusCode,
        headers: Vec<(HeaderName, Field)>,
        body: Field,
    },
    WebSocket {
        url: Field,
        max_frame_bytes: usize,
        max_message_bytes: usize,
        idle_timeout: Duration,
        max_lifetime: Duration,
    },
}

/// Parses templates and header names while checking a spec, recording errors.
struct Checker<'p, 'd, 'x> {
    params: &'p [&'p str],
    diags: &'d mut Diagnostics<'x>,
}

impl Checker<'_, '_, '_> {
    fn template(&mut self, path: String, text: &str) -> Field {
        let source = match TemplateSource::parse(text, self.params) {
            Ok(source) => source,
            Err(errors) => {
                for error in errors {
                    self.diags.error(&path, error.to_string());
                }
                TemplateSource::default()
            }
        };
        Field { path, source }
    }

    /// Checks header names (no duplicates, ignoring case) and parses their value templates.
    fn headers(
        &mut self,
        path: &str,
        set: &BTreeMap<String, ScalarString>,
    ) -> Vec<(HeaderName, Field)> {
        let mut headers: Vec<(HeaderName, Field)> = Vec::new();
        for (name, value) in set {
            let field = join_key(path, name);
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                self.diags
                    .key_error(&field, format!("invalid header name '{name}'"));
                continue;
            };
            if headers.iter().any(|(h, _)| *h == header) {
                self.diags.key_error(
                    &field,
                    format!("header '{header}' is set twice (names are case-insensitive)"),
                );
                continue;
            }
            let template = self.template(field, &value.0);
            headers.push((header, template));
        }
        headers
    }

    fn header_ops(&mut self, path: &str, ops: &HeaderOpsSpec) -> OpsSource {
        let set = self.headers(&join_key(path, "set"), &ops.set);
        let remove_path = join_key(path, "remove");
        let mut remove = Vec::new();
        for (i, name) in ops.remove.iter().enumerate() {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) => remove.push(header),
                Err(_) => self.diags.error(
                    &join_index(&remove_path, i),
                    format!("invalid header name '{name}'"),
                ),
            }
        }
        OpsSource { set, remove }
    }

    fn at_least_one(&mut self, path: &str, field: &str, value: u64) {
        if value == 0 {
            self.diags
                .error(&join_key(path, field), "must be at least 1");
        }
    }
}

impl IntegrationSource {
    /// Checks a spec against its route's parameters; `None` after reporting errors.
    pub(crate) fn check(
        spec: &IntegrationSpec,
        path: &str,
        params: &[&str],
        diags: &mut Diagnostics<'_>,
    ) -> Option<Self> {
        let before = diags.error_count();
        let mut c = Checker { params, diags };
        let source = match spec {
            IntegrationSpec::Http(http) => {
                let url = c.template(join_key(path, "url"), &http.url);
                if http.timeout_ms < MIN_HTTP_TIMEOUT_MS {
                    c.diags.error(
                        &join_key(path, "timeout_ms"),
                        format!("must be at least {MIN_HTTP_TIMEOUT_MS} (milliseconds)"),
                    );
                }
                IntegrationSource::Http {
                    url,
                    timeout: Duration::from_millis(http.timeout_ms),
                    http2: http.http2,
                    request: c
                        .header_ops(&join_key(path, "request_headers"), &http.request_headers),
                    response: c
                        .header_ops(&join_key(path, "response_headers"), &http.response_headers),
                }
            }
            IntegrationSpec::Mock(mock) => {
                let status = StatusCode::from_u16(mock.status)
                    .ok()
                    .filter(|_| (100..=599).contains(&mock.status));
                if status.is_none() {
                    c.diags.error(
                        &join_key(path, "status"),
                        "must be an HTTP status code from 100 to 599",
                    );
                }
                IntegrationSource::Mock {
                    status: status.unwrap_or(StatusCode::OK),
                    headers: c.headers(&join_key(path, "headers"), &mock.headers),
                    body: c.template(join_key(path, "body"), &mock.body),
                }
            }
            IntegrationSpec::WebSocket(ws) => {
                let url = c.template(join_key(path, "url"), &ws.url);
                c.at_least_one(path, "max_frame_bytes", ws.max_frame_bytes as u64);
                c.at_least_one(path, "idle_timeout_ms", ws.idle_timeout_ms);
                c.at_least_one(path, "max_lifetime_ms", ws.max_lifetime_ms);
                if ws.max_message_bytes < ws.max_frame_bytes {
                    c.diags.error(
                        &join_key(path, "max_message_bytes"),
                        format!("must be at least max_frame_bytes ({})", ws.max_frame_bytes),
                    );
                }
                IntegrationSource::WebSocket {
                    url,
                    max_frame_bytes: ws.max_frame_bytes,
                    max_message_bytes: ws.max_message_bytes,
                    idle_timeout: Duration::from_millis(ws.idle_timeout_ms),
                    max_lifetime: Duration::from_millis(ws.max_lifetime_ms),
                }
            }
        };
        (diags.error_count() == before).then_some(source)
    }

    /// The stage variables any of the integration's templates use, sorted, each once.
    pub(crate) fn stage_variable_names(&self) -> Vec<&str> {
        let mut fields: Vec<&Field> = Vec::new();
        match self {
            IntegrationSource::Http {
                url,
                request,
                response,
                ..
            } => {
                fields.push(url);
                for ops in [request, response] {
                    fields.extend(ops.set.iter().map(|(_, field)| field));
                }
            }
            IntegrationSource::Mock { headers, body, .. } => {
                fields.push(body);
                fields.extend(headers.iter().map(|(_, field)| field));
            }
            IntegrationSource::WebSocket { url, .. } => fields.push(url),
        }
        let mut names: Vec<&str> = fields
            .iter()
            .flat_map(|field| field.source.stage_variables())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Compiles the integration for one stage; `None` after reporting errors.
    pub(crate) fn bind(
        &self,
        stage: &str,
        variables: &BTreeMap<String, String>,
        diags: &mut Diagnostics<'_>,
    ) -> Option<Integration> {
        let mut b = Binder {
            stage,
            variables,
            diags,
            ok: true,
        };
        let integration = match self {
            IntegrationSource::Http {
                url,
                timeout,
                http2,
                request,
                response,
            } => Integration::Http(HttpIntegration {
                url: b.bind(url, Rule::Url(&["http", "https"])),
                timeout: *timeout,
                http2: *http2,
                request_headers: b.ops(request),
                response_headers: b.ops(response),
            }),
            IntegrationSource::Mock {
                status,
                headers,
                body,
            } => Integration::Mock(MockIntegration {
                status: *status,
                headers: b.headers(headers),
                body: b.bind(body, Rule::Any),
            }),
            IntegrationSource::WebSocket {
                url,
                max_frame_bytes,
                max_message_bytes,
                idle_timeout,
                max_lifetime,
            } => Integration::WebSocket(WebSocketIntegration {
                url: b.bind(url, Rule::Url(&["ws", "wss"])),
                max_frame_bytes: *max_frame_bytes,
                max_message_bytes: *max_message_bytes,
                idle_timeout: *idle_timeout,
                max_lifetime: *max_lifetime,
            }),
        };
        b.ok.then_some(integration)
    }
}

/// What a bound template must look like once rendered.
#[derive(Clone, Copy)]
enum Rule {
    Any,
    HeaderValue,
    /// An absolute URL with one of these schemes and a literal host.
    Url(&'static [&'static str]),
}

impl Rule {
    fn check(self, template: &Template) -> Result<(), String> {
        // Any parameter or context value renders as "x": the check is about the template's own text.
        let sample = template.render(&PathParams::new(), &|_| Cow::Borrowed("x"));
        match self {
            Rule::Any => Ok(()),
            Rule::HeaderValue => HeaderValue::from_str(&sample)
                .map(drop)
                .map_err(|_| format!("invalid header value '{sample}'")),
            Rule::Url(schemes) => check_url(template, &sample, schemes),
        }
    }
}

fn check_url(template: &Template, sample: &str, schemes: &[&str]) -> Result<(), String> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let prefix = template.literal_prefix();
    let Some((scheme, after)) = prefix.split_once("://") else {
        return Err(format!(
            "must be an absolute URL starting with {expected}, got '{template}'"
        ));
    };
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(format!(
            "must be an absolute URL starting with {expected}, got '{template}'"
        ));
    }
    // The host must not depend on the request: an open proxy is one template away otherwise.
    let host_is_literal = template.is_static() || after.contains(['/', '?', '#']);
    if !host_is_literal {
        return Err(format!(
            "the scheme and host of '{template}' must be literal text or stage variables, not path parameters or context values"
        ));
    }
    match sample.parse::<Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(format!("'{template}' has no host")),
        Err(error) => Err(format!("invalid URL '{template}': {error}")),
    }
}

/// Binds templates to one stage, recording errors and remembering whether any occurred.
struct Binder<'s, 'd, 'x> {
    stage: &'s str,
    variables: &'s BTreeMap<String, String>,
    diags: &'d mut Diagnostics<'x>,
    ok: bool,
}

impl Binder<'_, '_, '_> {
    fn bind(&mut self, field: &Field, rule: Rule) -> Template {
        let stage = self.stage;
        match field.source.bind(self.variables) {
            Ok(template) => {
                if let Err(message) = rule.check(&template) {
                    self.diags
                        .error(&field.path, format!("{message} (stage '{stage}')"));
                    self.ok = false;
                }
                template
            }
            Err(missing) => {
                let defined: Vec<&str> = self.variables.keys().map(String::as_str).collect();
                let defined = if defined.is_empty() {
                    "no variables".to_owned()
                } else {
                    defined.join(", ")
                };
                for name in missing {
                    self.diags.error(
                        &field.path,
                        format!(
                            "unknown stage variable '{name}' (stage '{stage}' defines: {defined})"
                        ),
                    );
                }
                self.ok = false;
                Template::literal("")
            }
        }
    }

    fn headers(&mut self, headers: &[(HeaderName, Field)]) -> Vec<(HeaderName, Template)> {
        headers
            .iter()
            .map(|(name, field)| (name.clone(), self.bind(field, Rule::HeaderValue)))
            .collect()
    }

    fn ops(&mut self, ops: &OpsSource) -> HeaderOps {
        HeaderOps {
            set: self.headers(&ops.set),
            remove: ops.remove.clone(),
        }
    }
}
