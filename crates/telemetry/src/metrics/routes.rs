//! Resolves each record's route to a small integer id, once per record, so that the minute
//! buckets and the Prometheus exposition keep their per-route state in arrays indexed by that id
//! instead of hashing the route's label strings (twice, and comparing them) on every record.
//!
//! The routing table shares its label strings (`Arc<str>`) with every record of a route, so the
//! addresses of those `Arc`s identify the route while that table lives: the fast map hashes three
//! addresses and the method's index. Its entries hold clones of the `Arc`s, so an address cannot
//! be freed and handed to another string while it is a key. A reload builds new `Arc`s with equal
//! strings; the first record of the new table misses the fast map, and the content map (keyed by
//! the strings) finds the same id, so each logical series carries on across reloads.
//!
//! Ids go to the first `capacity` distinct route label sets (the series cap); later ones resolve
//! to [`RouteRef::Refused`], and the callers fold them into their overflow series.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::names::{MethodIndex, MethodLabels};
use crate::Exchange;

/// The id of one route label set (api, stage, route template, method label), dense from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RouteId(u32);

impl RouteId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a record's route resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteRef {
    /// No route matched; one label set per method label, bounded without the cap.
    Unrouted(MethodIndex),
    /// A route label set within the cap.
    Admitted(RouteId),
    /// A route label set past the cap.
    Refused,
}

/// The addresses of a route's label strings plus its method index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct IdentityKey {
    api: usize,
    stage: usize,
    route: usize,
    method: MethodIndex,
}

/// A fast-map entry: the `Arc`s whose addresses make its key (kept alive by holding them) and
/// what they resolved to (`None`: refused by the cap).
struct IdentityEntry {
    _strings: [Arc<str>; 3],
    id: Option<RouteId>,
}

/// The label strings of a route label set, compared by content.
type ContentKey = (Arc<str>, Arc<str>, Arc<str>, MethodIndex);

/// Route label sets to ids; see the module documentation.
pub(crate) struct RouteIndex {
    methods: MethodLabels,
    /// FxHash: keys are addresses and small numbers, never chosen by a client.
    by_identity: FxHashMap<IdentityKey, IdentityEntry>,
    /// Only consulted when the fast map misses: once per route and method per routing table.
    by_content: FxHashMap<ContentKey, RouteId>,
    capacity: usize,
    /// The fast map is cleared when it reaches this size, dropping the `Arc`s of tables that
    /// reloads replaced (and those of refused label sets); it refills from the content map.
    identity_limit: usize,
}

fn address(string: &Arc<str>) -> usize {
    Arc::as_ptr(string).cast::<u8>() as usize
}

impl RouteIndex {
    /// Ids for at most `capacity` distinct route label sets.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            methods: MethodLabels::new(),
            by_identity: FxHashMap::default(),
            by_content: FxHashMap::default(),
            capacity,
            identity_limit: capacity.saturating_mul(4).max(1024),
        }
    }

    /// The method labels the ids were made with, for callers that render a label set.
    pub(crate) fn methods(&self) -> &MethodLabels {
        &self.methods
    }

    /// The id (or refusal) of a record's route label set.
    pub(crate) fn resolve(&mut self, exchange: &Exchange) -> RouteRef {
        let method = self.methods.index(exchange.method.as_ref());
        let Some(route) = &exchange.route else {
            return RouteRef::Unrouted(method);
        };
        let key = IdentityKey {
            api: address(&route.api),
            stage: address(&route.stage),
            route: address(&route.resource_path),
            method,
        };
        if let Some(entry) = self.by_identity.get(&key) {
            return entry.id.map_or(RouteRef::Refused, RouteRef::Admitted);
        }
        let content = (
            Arc::clone(&route.api),
            Arc::clone(&route.stage),
            Arc::clone(&route.resource_path),
            method,
        );
        let id = match self.by_content.get(&content) {
            Some(id) => Some(*id),
            None if self.by_content.len() < self.capacity => {
                // The content map never holds more than `capacity` (a u32 or less) entries.
                let id = RouteId(u32::try_from(self.by_content.len()).unwrap_or(u32::MAX));
                self.by_content.insert(content, id);
                Some(id)
            }
            None => None,
        };
        if self.by_identity.len() >= self.identity_limit {
            self.by_identity.clear();
        }
        let strings = [
            Arc::clone(&route.api),
            Arc::clone(&route.stage),
            Arc::clone(&route.resource_path),
        ];
        self.by_identity.insert(
            key,
            IdentityEntry {
                _strings: strings,
                id,
            },
        );
        id.map_or(RouteRef::Refused, RouteRef::Admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::test_support::{routed, unrouted};

    #[test]
    fn equal_labels_resolve_to_one_id_whether_or_not_the_strings_are_shared() {
        let mut index = RouteIndex::new(10);
        let first = routed("a/s//r", "GET", 200, 0);
        let same_arcs = first.clone();
        // `routed` allocates fresh strings, as a reloaded routing table does.
        let reloaded = routed("a/s//r", "GET", 500, 0);
        let id = index.resolve(&first);
        assert!(matches!(id, RouteRef::Admitted(_)));
        assert_eq!(index.resolve(&same_arcs), id);
        assert_eq!(index.resolve(&reloaded), id);
        assert_ne!(index.resolve(&routed("a/s//r", "PUT", 200, 0)), id);
        assert_ne!(index.resolve(&routed("a/t//r", "GET", 200, 0)), id);
    }

    #[test]
    fn ids_are_dense_and_label_sets_past_the_capacity_are_refused() {
        let mut index = RouteIndex::new(2);
        let resolved: Vec<RouteRef> = ["a/s//one", "a/s//two", "a/s//three", "a/s//one"]
            .into_iter()
            .map(|route| index.resolve(&routed(route, "GET", 200, 0)))
            .collect();
        assert_eq!(
            resolved,
            [
                RouteRef::Admitted(RouteId(0)),
                RouteRef::Admitted(RouteId(1)),
                RouteRef::Refused,
                RouteRef::Admitted(RouteId(0)),
            ]
        );
        let refused = routed("a/s//three", "GET", 200, 0);
        assert_eq!(index.resolve(&refused), RouteRef::Refused);
        assert_eq!(index.resolve(&refused), RouteRef::Refused);
    }

    #[test]
    fn unrouted_records_resolve_by_method() {
        let mut index = RouteIndex::new(0);
        let get = index.resolve(&unrouted(0));
        let mut head = unrouted(0);
        head.method = Some(http::Method::HEAD);
        assert!(matches!(get, RouteRef::Unrouted(_)));
        assert_ne!(index.resolve(&head), get);
    }

    #[test]
    fn the_fast_map_stays_bounded_across_many_reloads() {
        let mut index = RouteIndex::new(1);
        for _ in 0..3000 {
            // Each record brings new strings, like a reload per request.
            let resolved = index.resolve(&routed("a/s//r", "GET", 200, 0));
            assert_eq!(resolved, RouteRef::Admitted(RouteId(0)));
        }
        assert!(index.by_identity.len() <= index.identity_limit);
        assert_eq!(index.by_content.len(), 1);
    }
}
