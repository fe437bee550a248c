//! The compiled routing table: (host, method, path) → route and path parameters.
//!
//! One `matchit` router per distinct api host plus one for host-less apis; a lookup tries the
//! request's host first and falls back to the host-less router. Each router value is a *slot*: all
//! routes registered at one path, keyed by method or ANY. Within a slot an exact method beats
//! HEAD→GET (HEAD is served by a GET route, RFC 9110 §9.3.2), which beats ANY; a path match with no
//! usable method is a 405 whose `Allow` value is precomputed. A greedy `{proxy+}` becomes matchit's
//! `{*proxy}`, which also matches across `/`; an empty remainder is refused here so that
//! `/{proxy+}` does not match `/`, as in Amazon API Gateway. Resolution allocates nothing unless the
//! Host header has uppercase letters.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gatehouse_telemetry::ExecutionLogSettings;
use http::Method;
use smallvec::SmallVec;

use crate::integration::Integration;

/// One compiled (route × stage): everything the data plane needs to serve a matched request.
#[derive(Debug, Clone)]
pub struct Route {
    /// The api name.
    pub api: Arc<str>,
    /// The api version.
    pub api_version: Arc<str>,
    /// The stage name.
    pub stage: Arc<str>,
    /// The route's path template as written, e.g. `/pets/{id}` (a bounded metrics dimension).
    pub resource_path: Arc<str>,
    /// The full path template matched, stage prefix and base path included, e.g. `/prod/pets/{id}`.
    pub full_path: Arc<str>,
    /// The host the api is bound to, lowercase, if any.
    pub host: Option<Arc<str>>,
    /// The method, or `None` for ANY.
    pub method: Option<Method>,
    /// `"GET"`, …, or `"ANY"`.
    pub method_label: Arc<str>,
    /// The stage's variables (already applied to the integration's templates).
    pub stage_variables: Arc<BTreeMap<String, String>>,
    /// The stage variables the integration's templates use, with their values, sorted by name
    /// (for execution logs; computed once here so a request only clones the `Arc`).
    pub stage_variables_used: Arc<[(Arc<str>, Arc<str>)]>,
    /// What serves the request.
    pub integration: Integration,
    /// The stage's execution-log settings, shared by all its routes (OFF unless configured).
    pub execution_log: Arc<ExecutionLogSettings>,
}

/// Path parameters of a matched request, borrowed from the table and the request path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams<'a> {
    entries: SmallVec<[(&'a str, &'a str); 4]>,
}

impl<'a> PathParams<'a> {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter (for callers building parameters by hand, e.g. in tests).
    pub fn push(&mut self, name: &'a str, value: &'a str) {
        self.entries.push((name, value));
    }

    /// The raw (still percent-encoded) value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// (name, value) pairs in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.entries.iter().copied()
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for PathParams<'a> {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

/// The outcome of routing one request.
#[derive(Debug)]
pub enum Resolution<'a> {
    /// A route serves this request.
    Matched {
        /// The route.
        route: &'a Arc<Route>,
        /// Its path parameters.
        params: PathParams<'a>,
    },
    /// The path exists but not for this method.
    MethodNotAllowed {
        /// The `Allow` header value, e.g. `"GET, HEAD, POST"`.
        allow: &'a str,
    },
    /// No route has this path.
    NotFound,
}

#[derive(Debug, Clone)]
struct Slot {
    entries: SmallVec<[(Option<Method>, Arc<Route>); 2]>,
    allow: Box<str>,
    /// The name of the slot's catch-all parameter, whose empty match is refused.
    greedy: Option<Box<str>>,
}

impl Slot {
    fn select(&self, method: &Method) -> Option<&Arc<Route>> {
        let mut get = None;
        let mut any = None;
        for (m, route) in &self.entries {
            match m {
                Some(m) if m == method => return Some(route),
                Some(m) if *m == Method::GET => get = Some(route),
                None => any = Some(route),
                Some(_) => {}
            }
        }
        if *method == Method::HEAD && get.is_some() {
            return get;
        }
        any
    }
}

/// The immutable routing table compiled from every api × stage × route.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    by_host: HashMap<Box<str>, matchit::Router<usize>>,
    any_host: matchit::Router<usize>,
    slots: Vec<Slot>,
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Routes a request. `host` is the Host header or `:authority` (a port is ignored, case does not
    /// matter); `path` is the request path without the query string, still percent-encoded.
    pub fn resolve<'a>(
        &'a self,
        host: Option<&str>,
        method: &Method,
        path: &'a str,
    ) -> Resolution<'a> {
        let mut outcome = Resolution::NotFound;
        if !self.by_host.is_empty()
            && let Some(host) = host
            && let Some(router) = self.by_host.get(&*host_key(host))
        {
            outcome = self.lookup(router, method, path);
            if matches!(outcome, Resolution::Matched { .. }) {
                return outcome;
            }
        }
        match self.lookup(&self.any_host, method, path) {
            Resolution::NotFound => outcome,
            Resolution::MethodNotAllowed { .. } if !matches!(outcome, Resolution::NotFound) => {
                outcome
            }
            other => other,
        }
    }

    fn lookup<'a>(
        &'a self,
        router: &'a matchit::Router<usize>,
        method: &Method,
        path: &'a str,
    ) -> Resolution<'a> {
        let Ok(found) = router.at(path) else {
            return Resolution::NotFound;
        };
        let slot = &self.slots[*found.value];
        if let Some(greedy) = &slot.greedy
            && found.params.get(&**greedy).is_none_or(str::is_empty)
        {
            return Resolution::NotFound;
        }
        match slot.select(method) {
            Some(route) => Resolution::Matched {
                route,
                params: found.params.iter().collect(),
            },
            None => Resolution::MethodNotAllowed { allow: &slot.allow },
        }
    }

    /// Every compiled route, in file order (api, then route, then stage).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    /// The number of compiled routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes (every request is a 404).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// A copy of this table whose routes log with the settings `settings` picks for each, e.g.
    /// to change one stage's execution-log level without recompiling the configuration, or to
    /// turn logging on in a test. Requests already routed keep the settings they started with.
    pub fn with_execution_logs(
        &self,
        settings: impl Fn(&Route) -> Arc<ExecutionLogSettings>,
    ) -> RouteTable {
        let mut table = self.clone();
        // A route appears in `routes` once and in one slot entry per path; swap each for the
        // same new `Arc`, found by the old one's address (the old ones live until the end).
        let mut replaced: HashMap<*const Route, Arc<Route>> = HashMap::new();
        for route in &mut table.routes {
            let new = Arc::new(Route {
                execution_log: settings(route),
                ..Route::clone(route)
            });
            replaced.insert(Arc::as_ptr(route), Arc::clone(&new));
            *route = new;
        }
        for slot in &mut table.slots {
            for (_, route) in &mut slot.entries {
                if let Some(new) = replaced.get(&Arc::as_ptr(route)) {
                    *route = Arc::clone(new);
                }
            }
        }
        table
    }
}

/// The lookup key for a Host value: no port, no trailing dot, lowercase.
fn host_key(host: &str) -> Cow<'_, str> {
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Normalises a configured host for use as a table key.
pub(crate) fn normalize_host(host: &str) -> String {
    host_key(host).into_owned()
}

/// Builds a [`RouteTable`], reporting conflicts with the origin of the earlier route.
#[derive(Default)]
pub(crate) struct TableBuilder {
    table: RouteTable,
    /// (host, matchit path) → slot index.
    slot_index: HashMap<(Option<String>, String), usize>,
    /// Per slot and entry: where the route came from (a field path) for conflict messages.
    origins: Vec<Vec<String>>,
    /// (host, matchit path) → origin of the first route at that path, for matchit conflicts.
    path_origins: HashMap<(Option<String>, String), String>,
}

impl TableBuilder {
    /// Registers `route` at `path` (our syntax: `{id}`, `{proxy+}`), under `host` if any.
    /// `origin` is the field path of the route in the file, used in conflict messages.
    pub(crate) fn add(
        &mut self,
        path: &str,
        route: &Arc<Route>,
        origin: &str,
    ) -> Result<(), String> {
        let host = route.host.as_deref().map(str::to_owned);
        let (router_path, greedy) = to_matchit(path);
        let key = (host.clone(), router_path.clone());
        let slot = match self.slot_index.get(&key) {
            Some(&slot) => slot,
            None => {
                let slot = self.table.slots.len();
                let router = match &host {
                    Some(host) => self.table.by_host.entry(host.as_str().into()).or_default(),
                    None => &mut self.table.any_host,
                };
                if let Err(error) = router.insert(router_path.clone(), slot) {
                    return Err(self.insert_error(&host, error));
                }
                self.table.slots.push(Slot {
                    entries: SmallVec::new(),
                    allow: Box::from(""),
                    greedy: greedy.map(Box::from),
                });
                self.origins.push(Vec::new());
                self.slot_index.insert(key.clone(), slot);
                self.path_origins.insert(key, origin.to_owned());
                slot
            }
        };
        let entries = &mut self.table.slots[slot].entries;
        if let Some(i) = entries.iter().position(|(m, _)| *m == route.method) {
            let earlier = &entries[i].1;
            return Err(format!(
                "route {} {path} conflicts with {} (api '{}' {}, stage '{}')",
                route.method_label,
                self.origins[slot][i],
                earlier.api,
                earlier.api_version,
                earlier.stage
            ));
        }
        entries.push((route.method.clone(), Arc::clone(route)));
        self.origins[slot].push(origin.to_owned());
        Ok(())
    }

    /// Lists a compiled route for [`RouteTable::routes`] (once, however many paths it has).
    pub(crate) fn list(&mut self, route: Arc<Route>) {
        self.table.routes.push(route);
    }

    fn insert_error(&self, host: &Option<String>, error: matchit::InsertError) -> String {
        match error {
            matchit::InsertError::Conflict { with } => {
                let origin = self
                    .path_origins
                    .get(&(host.clone(), with.clone()))
                    .map(|o| format!(" at {o}"))
                    .unwrap_or_default();
                format!(
                    "path conflicts with the route path '{}'{origin}; two routes cannot differ only in parameter names, \
                     and a greedy parameter cannot sit beside another parameter",
                    from_matchit(&with)
                )
            }
            other => format!("invalid route path: {other}"),
        }
    }

    pub(crate) fn finish(mut self) -> RouteTable {
        for slot in &mut self.table.slots {
            slot.allow = allow_header(slot.entries.iter().map(|(m, _)| m.as_ref()));
        }
        self.table
    }
}

/// Our path syntax to matchit's: `{proxy+}` → `{*proxy}`. Returns the greedy name, if any.
fn to_matchit(path: &str) -> (String, Option<&str>) {
    match path.rsplit_once('/') {
        Some((head, last)) if last.starts_with('{') && last.ends_with("+}") => {
            let name = &last[1..last.len() - 2];
            (format!("{head}/{{*{name}}}"), Some(name))
        }
        _ => (path.to_owned(), None),
    }
}

fn from_matchit(path: &str) -> String {
    match path.rsplit_once("/{*") {
        Some((head, tail)) => format!("{head}/{{{}+}}", tail.trim_end_matches('}')),
        None => path.to_owned(),
    }
}

/// Canonical order for `Allow`; HEAD is listed whenever GET is, since GET routes serve HEAD.
const ALLOW_ORDER: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fn allow_header<'m>(methods: impl Iterator<Item = Option<&'m Method>> + Clone) -> Box<str> {
    let has = |wanted: &Method| {
        methods
            .clone()
            .any(|m| m == Some(wanted) || (*wanted == Method::HEAD && m == Some(&Method::GET)))
    };
    let names: Vec<&str> = ALLOW_ORDER
        .iter()
        .filter(|m| has(m))
        .map(Method::as_str)
        .collect();
    names.join(", ").into_boxed_str()
}
