//! Apis × stages × routes → the immutable [`RouteTable`], with the api-level validation rules.
//!
//! A request matches `[host] + stage.path_prefix + api.base_path + route.path`. Each route is checked
//! once (path syntax, integration templates against its parameters) and then bound once per stage,
//! which resolves `${stageVariables.*}` and yields one [`Route`]. Routes are registered in the table
//! in file order, so a conflict is reported at the later route and names the earlier one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use gatehouse_telemetry::ExecutionLogSettings;
use http::Method;

use crate::error::{Diagnostics, join_index, join_key};
use crate::integration::{Integration, IntegrationSource};
use crate::model::{ApiDoc, IntegrationSpec, MethodSpec};
use crate::routing::{Route, RouteTable, TableBuilder, normalize_host};
use crate::template::is_stage_variable_name;

/// What was compiled, for a start-up log line or `gatehouse validate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Apis (name × version).
    pub apis: usize,
    /// Stages across all apis.
    pub stages: usize,
    /// Compiled routes (route × stage).
    pub routes: usize,
    /// Data-plane listeners.
    pub listeners: usize,
    /// One entry per api, in file order.
    pub api_details: Vec<ApiSummary>,
}

/// One api in a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSummary {
    /// The api name.
    pub name: String,
    /// The api version.
    pub version: String,
    /// The host it is bound to, if any.
    pub host: Option<String>,
    /// (stage name, URL prefix) pairs, e.g. `("prod", "/prod/petstore")`.
    pub stages: Vec<(String, String)>,
    /// Routes as written (each compiled once per stage).
    pub routes: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{}, {}, {}, {}",
            plural(self.apis, "api", "apis"),
            plural(self.stages, "stage", "stages"),
            plural(self.routes, "route", "routes"),
            plural(self.listeners, "listener", "listeners"),
        )?;
        for api in &self.api_details {
            write!(f, "\n  {} {}", api.name, api.version)?;
            if let Some(host) = &api.host {
                write!(f, " (host {host})")?;
            }
            write!(f, ": {}; stages:", plural(api.routes, "route", "routes"))?;
            for (i, (stage, prefix)) in api.stages.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}{stage} at {prefix}")?;
            }
        }
        Ok(())
    }
}

/// Compiles every api. The table is meaningful only if no error was recorded.
pub(crate) fn compile(
    apis: &[(usize, ApiDoc)],
    diags: &mut Diagnostics<'_>,
) -> (RouteTable, Summary) {
    let mut builder = TableBuilder::default();
    let mut summary = Summary::default();
    let mut versions: HashMap<(&str, &str), usize> = HashMap::new();
    // api name → stage name → the api index that defined it first.
    let mut stage_owners: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (i, api) in apis {
        let path = join_index("apis", *i);
        let spec = &api.spec;
        if !is_identifier(&spec.name) {
            diags.error(
                &join_key(&path, "name"),
                "must be non-empty and use only letters, digits, '-' and '_'",
            );
        }
        let version = spec.version.0.as_str();
        if version.trim().is_empty() {
            diags.error(&join_key(&path, "version"), "must not be empty");
        } else if let Some(first) = versions.insert((&spec.name, version), *i) {
            diags.error(
                &join_key(&path, "version"),
                format!(
                    "api '{}' version '{version}' is already defined at apis[{first}]",
                    spec.name
                ),
            );
        }
        let base_path = match spec.base_path.as_deref() {
            None => "",
            Some(base) => match check_prefix(base, "base_path") {
                Ok(base) => base,
                Err(message) => {
                    diags.error(&join_key(&path, "base_path"), message);
                    ""
                }
            },
        };
        let host = spec
            .host
            .as_deref()
            .and_then(|host| match check_host(host) {
                Ok(host) => Some(Arc::<str>::from(host)),
                Err(message) => {
                    diags.error(&join_key(&path, "host"), message);
                    None
                }
            });
        let owners = stage_owners.entry(&spec.name).or_default();
        let stages = stages(api, *i, base_path, owners, diags);
        if api.route_count == 0 {
            diags.error(&join_key(&path, "routes"), "at least one route is required");
        }
        let names = ApiNames {
            api: Arc::from(spec.name.as_str()),
            version: Arc::from(version),
            host,
        };
        for (r, route) in &api.routes {
            let route_path = join_index(&join_key(&path, "routes"), *r);
            compile_route(&names, route, &route_path, &stages, &mut builder, diags);
        }
        summary.apis += 1;
        summary.stages += stages.len();
        summary.routes += api.routes.len() * stages.len();
        summary.api_details.push(ApiSummary {
            name: spec.name.clone(),
            version: version.to_owned(),
            host: names.host.as_deref().map(str::to_owned),
            stages: stages
                .iter()
                .map(|s| (s.name.to_string(), or_root(&s.mount)))
                .collect(),
            routes: api.route_count,
        });
    }
    (builder.finish(), summary)
}

struct ApiNames {
    api: Arc<str>,
    version: Arc<str>,
    host: Option<Arc<str>>,
}

struct Stage {
    name: Arc<str>,
    /// `path_prefix` + `base_path`, normalised, without a trailing slash ("" for the root).
    mount: String,
    variables: Arc<BTreeMap<String, String>>,
}

fn stages<'a>(
    api: &'a ApiDoc,
    api_index: usize,
    base_path: &str,
    owners: &mut HashMap<&'a str, usize>,
    diags: &mut Diagnostics<'_>,
) -> Vec<Stage> {
    let stages_path = join_key(&join_index("apis", api_index), "stages");
    if api.spec.stages.is_empty() {
        diags.error(&stages_path, "at least one stage is required");
    }
    let mut out = Vec::new();
    for (s, stage) in api.spec.stages.iter().enumerate() {
        let path = join_index(&stages_path, s);
        if !is_identifier(&stage.name) {
            diags.error(
                &join_key(&path, "name"),
                "must be non-empty and use only letters, digits, '-' and '_'",
            );
        } else if let Some(first) = owners.get(stage.name.as_str()) {
            diags.error(
                &join_key(&path, "name"),
                format!(
                    "stage '{}' is already defined for api '{}' at apis[{first}] (stage names are unique across versions)",
                    stage.name, api.spec.name
                ),
            );
            continue;
        }
        let prefix = match stage.path_prefix.as_deref() {
            None => Ok(format!("/{}", stage.name)),
            Some(prefix) => check_prefix(prefix, "path_prefix").map(str::to_owned),
        };
        let prefix = prefix.unwrap_or_else(|message| {
            diags.error(&join_key(&path, "path_prefix"), message);
            String::new()
        });
        for name in stage.variables.keys() {
            if !is_stage_variable_name(name) {
                diags.key_error(
                    &join_key(&join_key(&path, "variables"), name),
                    "stage variable names use only letters, digits and '_'",
                );
            }
        }
        owners.insert(stage.name.as_str(), api_index);
        out.push(Stage {
            name: Arc::from(stage.name.as_str()),
            mount: join_paths(&[&prefix, base_path]),
            variables: Arc::new(
                stage
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
        });
    }
    out
}

fn compile_route(
    names: &ApiNames,
    route: &crate::model::RouteDoc,
    path: &str,
    stages: &[Stage],
    builder: &mut TableBuilder,
    diags: &mut Diagnostics<'_>,
) {
    let params = match route_params(&route.path) {
        Ok(params) => params,
        Err(message) => {
            diags.error(&join_key(path, "path"), message);
            return;
        }
    };
    let (method, label) = method(route.method);
    let Some(spec) = &route.integration else {
        return;
    };
    if matches!(spec, IntegrationSpec::WebSocket(_))
        && !matches!(route.method, MethodSpec::Get | MethodSpec::Any)
    {
        diags.error(
            &join_key(path, "method"),
            "a websocket route must be GET or ANY (the upgrade is a GET request)",
        );
        return;
    }
    let integration_path = join_key(path, "integration");
    let Some(source) = IntegrationSource::check(spec, &integration_path, &params, diags) else {
        return;
    };
    let resource_path: Arc<str> = Arc::from(route.path.as_str());
    let label: Arc<str> = Arc::from(label);
    let used_variables = source.stage_variable_names();
    for stage in stages {
        let Some(integration): Option<Integration> =
            source.bind(&stage.name, &stage.variables, diags)
        else {
            continue;
        };
        let full_path = join_paths(&[&stage.mount, &route.path]);
        let compiled = Arc::new(Route {
            api: Arc::clone(&names.api),
            api_version: Arc::clone(&names.version),
            stage: Arc::clone(&stage.name),
            resource_path: Arc::clone(&resource_path),
            full_path: Arc::from(or_root(&full_path)),
            host: names.host.clone(),
            method: method.clone(),
            method_label: Arc::clone(&label),
            stage_variables: Arc::clone(&stage.variables),
            stage_variables_used: stage_variables_used(&used_variables, &stage.variables),
            integration,
            execution_log: ExecutionLogSettings::off(),
        });
        // The route "/" of a mounted stage answers both "/prod" and "/prod/".
        let mut paths = vec![or_root(&full_path)];
        if route.path == "/" && !stage.mount.is_empty() {
            paths = vec![stage.mount.clone(), format!("{}/", stage.mount)];
        }
        for full in paths {
            if let Err(message) = builder.add(&full, &compiled, path) {
                diags.error(
                    &join_key(path, "path"),
                    format!("{message} (stage '{}')", stage.name),
                );
            }
        }
        builder.list(compiled);
    }
}

/// The values of the stage variables `names` (those a route's integration uses) in `variables`.
fn stage_variables_used(
    names: &[&str],
    variables: &BTreeMap<String, String>,
) -> Arc<[(Arc<str>, Arc<str>)]> {
    names
        .iter()
        .filter_map(|name| {
            let value = variables.get(*name)?;
            Some((Arc::from(*name), Arc::from(value.as_str())))
        })
        .collect()
}

fn method(spec: MethodSpec) -> (Option<Method>, &'static str) {
    match spec {
        MethodSpec::Get => (Some(Method::GET), "GET"),
        MethodSpec::Post => (Some(Method::POST), "POST"),
        MethodSpec::Put => (Some(Method::PUT), "PUT"),
        MethodSpec::Patch => (Some(Method::PATCH), "PATCH"),
        MethodSpec::Delete => (Some(Method::DELETE), "DELETE"),
        MethodSpec::Head => (Some(Method::HEAD), "HEAD"),
        MethodSpec::Options => (Some(Method::OPTIONS), "OPTIONS"),
        MethodSpec::Any => (None, "ANY"),
    }
}

/// Checks a route path and returns its parameter names, greedy one last.
///
/// Parameters are whole segments (`/pets/{id}`), as in Amazon API Gateway; `{name+}` only ends a path.
pub(crate) fn route_params(path: &str) -> Result<Vec<&str>, String> {
    if !path.starts_with('/') {
        return Err(format!("must start with '/', got '{path}'"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '?' | '#' | '*'))
    {
        return Err(format!("must not contain {c:?}"));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut params: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if !segment.contains(['{', '}']) {
            continue;
        }
        let inner = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| {
                format!("segment '{segment}': a parameter must be a whole segment such as '{{id}}'")
            })?;
        let (name, greedy) = match inner.strip_suffix('+') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if !crate::env::is_env_name(name) {
            return Err(format!(
                "segment '{segment}': parameter names use letters, digits and '_' and do not start with a digit"
            ));
        }
        if greedy && i + 1 != segments.len() {
            return Err(format!(
                "segment '{segment}': a greedy parameter can only be the last segment"
            ));
        }
        if params.contains(&name) {
            return Err(format!("parameter '{name}' appears twice"));
        }
        params.push(name);
    }
    Ok(params)
}

/// Checks a `base_path` or `path_prefix`; returns it without trailing slashes ("" for the root).
fn check_prefix<'a>(prefix: &'a str, field: &str) -> Result<&'a str, String> {
    if prefix.is_empty() || prefix == "/" {
        return Ok("");
    }
    if !prefix.starts_with('/') {
        return Err(format!("{field} must start with '/', got '{prefix}'"));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '{' | '}' | '?' | '#' | '*'))
    {
        return Err(format!("{field} must not contain {c:?}"));
    }
    Ok(prefix.trim_end_matches('/'))
}

fn check_host(host: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if host.contains(':') || host.contains('/') {
        return Err(format!(
            "must be a bare host name such as api.example.com (no scheme, port or path), got '{host}'"
        ));
    }
    if !valid {
        return Err(format!("invalid host name '{host}'"));
    }
    Ok(normalize_host(host))
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Joins path pieces with single slashes; `""` stands for the root.
pub(crate) fn join_paths(pieces: &[&str]) -> String {
    let mut out = String::new();
    for piece in pieces {
        for (i, part) in piece.split('/').enumerate() {
            if i == 0 && part.is_empty() {
                continue;
            }
            if part.is_empty() && !out.ends_with('/') {
                out.push('/');
                continue;
            }
            if part.is_empty() {
                continue;
            }
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(part);
        }
    }
    out
}

fn or_root(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}
