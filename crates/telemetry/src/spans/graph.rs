//! The service graph: who called whom in a window of spans, with counts and latency per edge,
//! like X-Ray's service map. Pure: the store reads the spans, the binary renders the graph.
//!
//! Nodes:
//! - `client`: whoever called the gateway (or a service whose caller sent no span);
//! - one per api and stage (`petstore/prod`), from the gateway's server spans;
//! - one per upstream the gateway or a service called whose own spans never arrived, named by
//!   the client span's `server.address` (with `server.port`) or `url.full`'s host and port, else
//!   `{api}/{stage} upstream` for the gateway's integration;
//! - one per `service.name` seen on spans services sent to the receiver.
//!
//! Edges come from the spans that time a call:
//! - client → api/stage: each gateway server span;
//! - api/stage → upstream: each gateway client span (the integration);
//! - service → callee: each client span a service sent.
//!
//! **The merge rule:** when a received server span's parent is a client span (the gateway's
//! integration span or a service's client span), or the gateway's server span (which is the
//! parent the gateway forwards upstream in `traceparent`) that has an integration span, the
//! callee of that client span *is* the receiving service: the edge goes to the service's node, not to an address node, and is
//! counted once, from the caller's client span (the caller's view of the call, as X-Ray counts
//! it). A received server span with no parent, or a parent not in the window, is an edge from
//! `client`, counted from the server span itself.
//!
//! Each edge counts requests, errors (4xx but 429), throttles (429) and faults (5xx) from the
//! span's classification, and its latency percentiles are exact (nearest rank over the
//! durations), which a window of at most the store's read cap keeps cheap.

use std::collections::{BTreeMap, HashMap};

use super::{Classification, Span, SpanKind, attr};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Client,
    Api,
    Upstream,
    Service,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Api => "api",
            Self::Upstream => "upstream",
            Self::Service => "service",
        }
    }
}

/// One node: its kind and name (`client`, `petstore/prod`, `127.0.0.1:8080`, `orders`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    pub kind: NodeKind,
    pub name: String,
}

impl Node {
    fn new(kind: NodeKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }

    fn client() -> Self {
        Self::new(NodeKind::Client, "client")
    }

    /// A stable id: the kind and the name, so a service and an upstream of one name differ.
    pub fn id(&self) -> String {
        match self.kind {
            NodeKind::Client => "client".into(),
            kind => format!("{}:{}", kind.as_str(), self.name),
        }
    }
}

/// The latency percentiles of an edge, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
}

/// The calls from one node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: Node,
    pub to: Node,
    pub requests: u64,
    pub errors: u64,
    pub faults: u64,
    pub throttles: u64,
    pub latency: Latency,
}

/// The graph of a window: nodes sorted by kind and name, edges by their ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceGraph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Default)]
struct Tally {
    errors: u64,
    faults: u64,
    throttles: u64,
    durations: Vec<u64>,
}

impl Tally {
    fn add(&mut self, span: &Span) {
        match span.classification {
            Classification::Ok => {}
            Classification::Error => self.errors += 1,
            Classification::Throttle => self.throttles += 1,
            Classification::Fault => self.faults += 1,
        }
        self.durations.push(span.duration_nanos());
    }
}

/// Builds the graph of `spans` (any order; spans of many traces).
pub fn build_graph(spans: &[Span]) -> ServiceGraph {
    let by_id: HashMap<([u8; 16], [u8; 8]), &Span> = spans
        .iter()
        .map(|span| ((span.trace_id, span.span_id), span))
        .collect();
    // The gateway's integration span under each of its server spans.
    let mut integration: HashMap<([u8; 16], [u8; 8]), [u8; 8]> = HashMap::new();
    for span in spans {
        if span.kind == SpanKind::Client
            && span.attribute_str(attr::SERVICE_NAME).is_none()
            && let Some(parent) = span.parent_span_id
        {
            integration
                .entry((span.trace_id, parent))
                .or_insert(span.span_id);
        }
    }
    // The service that received each client span's call, by the merge rule.
    let mut callee: HashMap<([u8; 16], [u8; 8]), &str> = HashMap::new();
    for span in spans {
        let (SpanKind::Server, Some(service), Some(parent)) = (
            span.kind,
            span.attribute_str(attr::SERVICE_NAME),
            span.parent_span_id,
        ) else {
            continue;
        };
        let Some(parent_span) = by_id.get(&(span.trace_id, parent)) else {
            continue;
        };
        let call = match parent_span.kind {
            SpanKind::Client => Some(parent),
            // The gateway forwards its server span as the upstream's parent.
            SpanKind::Server if parent_span.attribute_str(attr::SERVICE_NAME).is_none() => {
                integration.get(&(span.trace_id, parent)).copied()
            }
            _ => None,
        };
        if let Some(call) = call {
            callee.entry((span.trace_id, call)).or_insert(service);
        }
    }

    let mut tallies: BTreeMap<(Node, Node), Tally> = BTreeMap::new();
    for span in spans {
        let service = span.attribute_str(attr::SERVICE_NAME);
        let ends = match (span.kind, service) {
            (SpanKind::Server, None) => Some((Node::client(), api_node(span))),
            (SpanKind::Server, Some(service)) => {
                let called_by_a_span = span
                    .parent_span_id
                    .and_then(|parent| by_id.get(&(span.trace_id, parent)))
                    .is_some();
                (!called_by_a_span).then(|| (Node::client(), Node::new(NodeKind::Service, service)))
            }
            (SpanKind::Client, caller) => {
                let from = match caller {
                    Some(service) => Node::new(NodeKind::Service, service),
                    None => span
                        .parent_span_id
                        .and_then(|parent| by_id.get(&(span.trace_id, parent)))
                        .map_or_else(|| api_node(span), |parent| api_node(parent)),
                };
                let to = match callee.get(&(span.trace_id, span.span_id)) {
                    Some(service) => Node::new(NodeKind::Service, *service),
                    None => upstream_node(span, &from),
                };
                Some((from, to))
            }
            (SpanKind::Internal, _) => None,
        };
        if let Some(ends) = ends {
            tallies.entry(ends).or_default().add(span);
        }
    }

    let mut nodes = std::collections::BTreeSet::new();
    let edges = tallies
        .into_iter()
        .map(|((from, to), mut tally)| {
            nodes.insert(from.clone());
            nodes.insert(to.clone());
            tally.durations.sort_unstable();
            Edge {
                from,
                to,
                requests: tally.durations.len() as u64,
                errors: tally.errors,
                faults: tally.faults,
                throttles: tally.throttles,
                latency: Latency {
                    p50: nearest_rank(&tally.durations, 50),
                    p90: nearest_rank(&tally.durations, 90),
                    p99: nearest_rank(&tally.durations, 99),
                },
            }
        })
        .collect();
    ServiceGraph {
        nodes: nodes.into_iter().collect(),
        edges,
    }
}

/// The gateway's api/stage of a span (`unrouted` for a request no route matched).
fn api_node(span: &Span) -> Node {
    match (
        span.attribute_str(attr::API),
        span.attribute_str(attr::STAGE),
    ) {
        (Some(api), Some(stage)) => Node::new(NodeKind::Api, format!("{api}/{stage}")),
        (Some(api), None) => Node::new(NodeKind::Api, api),
        _ => Node::new(NodeKind::Api, "unrouted"),
    }
}

/// The node a client span called when no span of the callee arrived.
fn upstream_node(span: &Span, caller: &Node) -> Node {
    if let Some(address) = span.attribute_str(attr::SERVER_ADDRESS) {
        let name = match span.attribute_int("server.port") {
            Some(port) => format!("{address}:{port}"),
            None => address.to_owned(),
        };
        return Node::new(NodeKind::Upstream, name);
    }
    if let Some(authority) = span.attribute_str(attr::URL_FULL).and_then(url_authority) {
        return Node::new(NodeKind::Upstream, authority);
    }
    let kind = span.attribute_str(attr::INTEGRATION).unwrap_or("upstream");
    Node::new(NodeKind::Upstream, format!("{} {kind}", caller.name))
}

/// `host:port` of an absolute URL, without user info.
fn url_authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then_some(authority)
}

/// The `pct` percentile of sorted `values` by nearest rank; 0 for none.
fn nearest_rank(sorted: &[u64], pct: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (pct * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
