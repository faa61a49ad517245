//! The listings behind paginated lists.
//!
//! Every page of a paginated list shows the objects as they were at its first page: etcd
//! serves the later pages from the first page's revision until kube-apiserver compacts it
//! away (every five minutes by default); a continue token older than that gets 410 Expired.
//! kubesim keeps the first page's listing itself, sorted, for as long, and cuts the later
//! pages from it by position: a list of N objects in pages costs one sort, not one per page,
//! and no write to the store can expire it early, however many come between pages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::object::Object;
use crate::resource::Resource;

/// How long a listing serves continue tokens: kube-apiserver's `--etcd-compaction-interval`.
pub(crate) const RETENTION: Duration = Duration::from_secs(300);

/// Listings kept at once; beyond it the oldest goes first. Each holds one pointer per object
/// (and keeps alive the versions of objects changed since), so this bounds what many
/// concurrent paginated lists of a large collection can hold.
const MAX_KEPT: usize = 64;

/// The objects of one list, sorted by namespace and name.
pub(crate) type Items = Arc<[Arc<Object>]>;

#[derive(Debug)]
pub(crate) struct Listings {
    retention: Duration,
    /// Oldest first.
    kept: Mutex<VecDeque<Kept>>,
}

#[derive(Debug)]
struct Kept {
    taken: Instant,
    resource: Resource,
    namespace: Option<String>,
    rv: u64,
    items: Items,
}

impl Kept {
    fn is(&self, resource: Resource, namespace: Option<&str>, rv: u64) -> bool {
        self.resource == resource && self.namespace.as_deref() == namespace && self.rv == rv
    }
}

impl Listings {
    pub(crate) fn new(retention: Duration) -> Listings {
        Listings { retention, kept: Mutex::new(VecDeque::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Kept>> {
        let mut kept = self.kept.lock().expect("listings lock poisoned");
        let now = Instant::now();
        while kept.front().is_some_and(|k| now.duration_since(k.taken) >= self.retention) {
            kept.pop_front();
        }
        kept
    }

    /// Keeps `items`, the objects of `resource` (in `namespace`, or all) at revision `rv`,
    /// for the list's later pages. A listing already kept for the same revision stays as it is.
    pub(crate) fn keep(&self, resource: Resource, namespace: Option<&str>, rv: u64, items: Items) {
        let mut kept = self.lock();
        if kept.iter().any(|k| k.is(resource, namespace, rv)) {
            return;
        }
        if kept.len() == MAX_KEPT {
            kept.pop_front();
        }
        kept.push_back(Kept { taken: Instant::now(), resource, namespace: namespace.map(str::to_owned), rv, items });
    }

    /// The listing kept for `resource` in `namespace` at `rv`, unless it has expired.
    pub(crate) fn get(&self, resource: Resource, namespace: Option<&str>, rv: u64) -> Option<Items> {
        self.lock().iter().find(|k| k.is(resource, namespace, rv)).map(|k| k.items.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn items(names: &[&str]) -> Items {
        names
            .iter()
            .map(|n| Arc::new(Object::from_value(json!({"metadata": {"name": n}})).expect("an object")))
            .collect()
    }

    #[test]
    fn a_listing_is_found_by_resource_namespace_and_revision_until_it_expires() {
        let retention = Duration::from_millis(200);
        let listings = Listings::new(retention);
        listings.keep(Resource::SparkApplication, Some("a"), 7, items(&["x", "y"]));
        listings.keep(Resource::SparkApplication, Some("a"), 7, items(&["other"]));
        let found = listings.get(Resource::SparkApplication, Some("a"), 7).expect("kept");
        assert_eq!(found.len(), 2, "the first listing kept for a revision stays");
        assert!(listings.get(Resource::SparkApplication, Some("a"), 8).is_none());
        assert!(listings.get(Resource::SparkApplication, None, 7).is_none());
        assert!(listings.get(Resource::Pod, Some("a"), 7).is_none());
        std::thread::sleep(retention);
        assert!(listings.get(Resource::SparkApplication, Some("a"), 7).is_none(), "expired after the retention");
    }

    #[test]
    fn the_oldest_listing_goes_when_too_many_are_kept() {
        let listings = Listings::new(RETENTION);
        for rv in 0..=MAX_KEPT as u64 {
            listings.keep(Resource::Pod, None, rv, items(&["p"]));
        }
        assert!(listings.get(Resource::Pod, None, 0).is_none());
        assert!(listings.get(Resource::Pod, None, 1).is_some());
        assert!(listings.get(Resource::Pod, None, MAX_KEPT as u64).is_some());
    }
}
