//! Every object kubesim holds, under one global resourceVersion like etcd's revision.
//!
//! Each change bumps the revision, is kept in a bounded history (so a watch can resume from a
//! recent resourceVersion; older ones get 410 Expired) and is broadcast to live watchers. All
//! of it happens under one short lock, so events reach every watcher in revision order.
//!
//! The history and the broadcast are kept per resource, as kube-apiserver keeps one watch
//! cache per resource: a watcher of SparkApplications is cut off, or finds its revision
//! forgotten, because of the SparkApplication changes it missed, not because the Pods and
//! Events it does not watch (nine in ten of a simulated application's changes) went by.
//!
//! Objects are kept in a hash map: every write looks its object up, while lists (sorted by
//! namespace and name, as an API server returns them) are rare, and sort what they return.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::object::Object;
use crate::resource::Resource;

/// Identifies an object: kind, namespace, name.
pub(crate) type Key = (Resource, String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers receive it.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub resource: Resource,
    pub kind: ChangeKind,
    /// The object after the change; for a deletion, its last state, whose `resourceVersion`
    /// is still that of its last modification (see [`Change::revision_override`]).
    pub object: Arc<Object>,
    /// The object before a modification (to tell when it leaves or enters a selector).
    pub previous: Option<Arc<Object>>,
}

impl Change {
    /// The revision to write into `object` when it is sent: a deleted object is sent with the
    /// deletion's revision, as a real API server does.
    pub fn revision_override(&self) -> Option<u64> {
        (self.kind == ChangeKind::Deleted).then_some(self.rv)
    }
}

/// Why a write failed.
#[derive(Debug)]
pub enum WriteError<E> {
    NotFound,
    AlreadyExists,
    /// The closure refused the change.
    Rejected(E),
}

/// A watch resuming from a revision the history no longer holds.
#[derive(Debug)]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    /// One channel per resource, by [`Resource::slot`].
    tx: [broadcast::Sender<Change>; Resource::ALL.len()],
    history_capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    objects: HashMap<Key, Arc<Object>, foldhash::fast::RandomState>,
    /// One history per resource, by [`Resource::slot`].
    history: [History; Resource::ALL.len()],
}

/// The latest changes of one resource.
#[derive(Debug, Default)]
struct History {
    changes: VecDeque<Change>,
    /// The revision of the last change that left `changes` (0: none has): a watch can resume
    /// from it or any later revision.
    forgotten_up_to: u64,
}

impl Inner {
    /// The objects of `resource` (in `namespace`, or all), sorted by namespace and name.
    fn sorted(&self, resource: Resource, namespace: Option<&str>) -> Vec<Arc<Object>> {
        let mut items: Vec<_> =
            self.objects.iter().filter(|((r, ns, _), _)| *r == resource && namespace.is_none_or(|n| n == ns)).collect();
        items.sort_unstable_by(|a, b| a.0.cmp(b.0));
        items.into_iter().map(|(_, v)| v.clone()).collect()
    }
}

impl Store {
    /// `history_capacity` changes of each resource are kept for resuming watches; live
    /// watchers that fall more than `channel_capacity` changes of their resource behind are cut
    /// off (and re-list, as with a real API server).
    pub fn new(history_capacity: usize, channel_capacity: usize) -> Store {
        let tx = std::array::from_fn(|_| broadcast::channel(channel_capacity).0);
        Store { inner: Mutex::new(Inner::default()), tx, history_capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("store lock poisoned")
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Object>> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object of `resource` (in `namespace`, or all), sorted by namespace and name, and
    /// the revision the listing reflects.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> (u64, Vec<Arc<Object>>) {
        let inner = self.lock();
        let items = inner.sorted(resource, namespace);
        (inner.rv, items)
    }

    /// Number of objects of `resource`.
    pub fn count(&self, resource: Resource) -> usize {
        self.lock().objects.keys().filter(|(r, _, _)| *r == resource).count()
    }

    /// Creates an object, filling `uid`, `resourceVersion`, `creationTimestamp`, `generation`.
    pub fn create(
        &self,
        resource: Resource,
        namespace: &str,
        mut object: Object,
    ) -> Result<Arc<Object>, WriteError<()>> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let key = (resource, namespace.to_owned(), name);
        let mut inner = self.lock();
        if inner.objects.contains_key(&key) {
            return Err(WriteError::AlreadyExists);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = &mut object["metadata"];
        meta["namespace"] = Value::from(namespace);
        meta["uid"] = Value::from(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = Value::from(crate::clock::rfc3339_now());
        meta["generation"] = Value::from(1);
        object.set_revision(rv);
        let object = Arc::new(object);
        inner.objects.insert(key, object.clone());
        self.record(
            &mut inner,
            Change { rv, resource, kind: ChangeKind::Added, object: object.clone(), previous: None },
        );
        Ok(object)
    }

    /// Read-modify-write of one object. `change` gets the current object and returns the new
    /// one, `Ok(None)` for "no change", or an error that aborts. The new object gets a new
    /// `resourceVersion`; `generation` goes up when `spec` changed.
    pub fn update<E>(
        &self,
        key: &Key,
        change: impl FnOnce(&Object) -> Result<Option<Object>, E>,
    ) -> Result<Arc<Object>, WriteError<E>> {
        self.write(key, change, true)
    }

    /// [`Store::update`] for a writer that changes only `status`, as the status subresource
    /// does: `generation` stays, and the specs are not compared.
    pub fn update_status<E>(
        &self,
        key: &Key,
        change: impl FnOnce(&Object) -> Result<Option<Object>, E>,
    ) -> Result<Arc<Object>, WriteError<E>> {
        self.write(key, change, false)
    }

    fn write<E>(
        &self,
        key: &Key,
        change: impl FnOnce(&Object) -> Result<Option<Object>, E>,
        spec_may_change: bool,
    ) -> Result<Arc<Object>, WriteError<E>> {
        let mut inner = self.lock();
        let current = inner.objects.get(key).cloned().ok_or(WriteError::NotFound)?;
        let Some(mut next) = change(&current).map_err(WriteError::Rejected)? else {
            return Ok(current);
        };
        inner.rv += 1;
        let rv = inner.rv;
        let spec_changed = spec_may_change && !next.same_field(&current, "spec");
        // Metadata the writer left as it was (a status update's) is shared as it is: its
        // fixed fields are the current ones, and the revision is kept beside it.
        if spec_changed || !next.shares(&current, "metadata") {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            let meta = &mut next["metadata"];
            for field in ["uid", "creationTimestamp", "namespace", "name"] {
                meta[field] = current["metadata"][field].clone();
            }
            meta["generation"] = Value::from(if spec_changed { generation + 1 } else { generation });
        }
        next.set_revision(rv);
        let next = Arc::new(next);
        *inner.objects.get_mut(key).expect("looked up above, under the same lock") = next.clone();
        let change =
            Change { rv, resource: key.0, kind: ChangeKind::Modified, object: next.clone(), previous: Some(current) };
        self.record(&mut inner, change);
        Ok(next)
    }

    /// Removes an object and returns the deletion's revision. The DELETED change carries the
    /// object's last state, shared rather than copied; watch events write the deletion's
    /// revision into it as they are serialized (`Change::revision_override`).
    pub fn delete(&self, key: &Key) -> Option<u64> {
        let mut inner = self.lock();
        let current = inner.objects.remove(key)?;
        inner.rv += 1;
        let rv = inner.rv;
        self.record(
            &mut inner,
            Change { rv, resource: key.0, kind: ChangeKind::Deleted, object: current.clone(), previous: Some(current) },
        );
        Some(rv)
    }

    fn record(&self, inner: &mut Inner, change: Change) {
        let slot = change.resource.slot();
        let history = &mut inner.history[slot];
        if history.changes.len() == self.history_capacity
            && let Some(gone) = history.changes.pop_front()
        {
            history.forgotten_up_to = gone.rv;
        }
        history.changes.push_back(change.clone());
        // No receivers is fine: nobody watches.
        let _ = self.tx[slot].send(change);
    }

    /// Changes of `resource` after revision `since`, and a receiver for the ones to come,
    /// with nothing missed or repeated between them.
    pub fn watch_from(
        &self,
        resource: Resource,
        since: u64,
    ) -> Result<(Vec<Change>, broadcast::Receiver<Change>), TooOld> {
        let inner = self.lock();
        let history = &inner.history[resource.slot()];
        // Resuming is possible when every change after `since` is still in the history.
        if since < history.forgotten_up_to {
            let oldest = history.changes.front().map_or(inner.rv + 1, |c| c.rv);
            return Err(TooOld { requested: since, oldest });
        }
        let backlog = history.changes.iter().filter(|c| c.rv > since).cloned().collect();
        Ok((backlog, self.tx[resource.slot()].subscribe()))
    }

    /// The current objects of `resource` and a receiver for the changes after them.
    pub fn watch_now(
        &self,
        resource: Resource,
        namespace: Option<&str>,
    ) -> (u64, Vec<Arc<Object>>, broadcast::Receiver<Change>) {
        let inner = self.lock();
        let items = inner.sorted(resource, namespace);
        (inner.rv, items, self.tx[resource.slot()].subscribe())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app(name: &str) -> Object {
        Object::from_value(json!({"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "metadata": {"name": name}, "spec": {"a": 1}}))
            .expect("an object")
    }

    #[test]
    fn revisions_increase_and_generation_follows_spec() {
        let s = Store::new(100, 100);
        let a = s.create(Resource::SparkApplication, "ns", app("a")).unwrap();
        assert_eq!(a.resource_version().as_deref(), Some("1"));
        assert!(matches!(s.create(Resource::SparkApplication, "ns", app("a")), Err(WriteError::AlreadyExists)));
        let key = (Resource::SparkApplication, "ns".to_owned(), "a".to_owned());
        let b = s.update::<()>(&key, |cur| {
            let mut v = cur.clone();
            v["status"] = json!({"x": 1});
            Ok(Some(v))
        });
        let b = b.unwrap();
        assert_eq!(b.resource_version().as_deref(), Some("2"));
        assert_eq!(b["metadata"]["generation"], 1, "a status change keeps the generation");
        let c = s
            .update::<()>(&key, |cur| {
                let mut v = cur.clone();
                v["spec"]["a"] = json!(2);
                Ok(Some(v))
            })
            .unwrap();
        assert_eq!(c["metadata"]["generation"], 2);
        assert_eq!(s.delete(&key), Some(4), "a deletion is a revision of its own");
        assert!(s.get(&key).is_none());
        let (changes, _) = s.watch_from(Resource::SparkApplication, 3).unwrap();
        let deleted = &changes[0];
        assert_eq!(deleted.kind, ChangeKind::Deleted);
        assert_eq!(deleted.revision_override(), Some(4), "sent at the deletion's revision");
        let sent = serde_json::to_value(deleted.object.at_revision(4)).unwrap();
        assert_eq!(sent["metadata"]["resourceVersion"], "4");
        assert_eq!(sent["spec"], json!({"a": 2}), "with its last state");
    }

    #[test]
    fn a_status_update_shares_the_metadata_and_is_sent_with_its_own_revision() {
        let s = Store::new(100, 100);
        let first = s.create(Resource::Pod, "ns", app("p")).unwrap();
        let key = (Resource::Pod, "ns".to_owned(), "p".to_owned());
        let second = s
            .update_status::<()>(&key, |cur| {
                let mut v = cur.clone();
                v["status"] = json!({"phase": "Running"});
                Ok(Some(v))
            })
            .unwrap();
        assert!(Arc::ptr_eq(&first.shared("metadata"), &second.shared("metadata")), "shared, not copied");
        let sent = |o: &Object| serde_json::to_value(o).unwrap();
        assert_eq!(sent(&first)["metadata"]["resourceVersion"], "1", "each version keeps its own revision");
        assert_eq!(sent(&second)["metadata"]["resourceVersion"], "2");
        assert_eq!(sent(&second)["metadata"]["uid"], sent(&first)["metadata"]["uid"]);
        assert_eq!(second.to_value()["metadata"], sent(&second)["metadata"]);
        assert_eq!(second.metadata_value(), sent(&second)["metadata"]);

        // A writer's own metadata (a user's replace) loses the resourceVersion it carried and
        // keeps the fields only the store sets.
        let third = s
            .update::<()>(&key, |cur| {
                let mut v = cur.to_value();
                v["metadata"]["uid"] = json!("forged");
                v["metadata"]["labels"] = json!({"a": "b"});
                Ok(Object::from_value(v))
            })
            .unwrap();
        let sent_third = sent(&third);
        assert_eq!(sent_third["metadata"]["resourceVersion"], "3");
        assert_eq!(sent_third["metadata"]["uid"], sent(&first)["metadata"]["uid"]);
        assert_eq!(sent_third["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(third["metadata"]["resourceVersion"], Value::Null, "the tree does not hold it");
        let text = serde_json::to_string(third.as_ref()).unwrap();
        assert_eq!(text, sent_third.to_string(), "keys in sorted order, resourceVersion among them");
    }

    #[test]
    fn lists_come_sorted_by_namespace_and_name_whatever_the_order_of_creation() {
        let s = Store::new(100, 100);
        for (ns, name) in [("b", "x"), ("a", "z"), ("a", "y"), ("b", "a")] {
            s.create(Resource::SparkApplication, ns, app(name)).unwrap();
        }
        s.create(Resource::Pod, "a", app("p")).unwrap();
        let listed = |items: Vec<Arc<Object>>| -> Vec<String> {
            items
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap(),
                        o["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(listed(s.list(Resource::SparkApplication, None).1), ["a/y", "a/z", "b/a", "b/x"]);
        assert_eq!(listed(s.list(Resource::SparkApplication, Some("b")).1), ["b/a", "b/x"]);
        assert_eq!(listed(s.watch_now(Resource::SparkApplication, Some("a")).1), ["a/y", "a/z"]);
        assert_eq!(s.count(Resource::Pod), 1);
    }

    #[test]
    fn a_resource_keeps_its_history_and_its_watchers_whatever_other_resources_do() {
        let s = Store::new(3, 2);
        s.create(Resource::SparkApplication, "ns", app("a")).unwrap();
        let (_, _, mut apps) = s.watch_now(Resource::SparkApplication, None);
        for i in 0..10 {
            s.create(Resource::Pod, "ns", app(&format!("p{i}"))).unwrap();
        }
        let (backlog, _) = s.watch_from(Resource::SparkApplication, 0).unwrap();
        assert_eq!(backlog.iter().map(|c| c.rv).collect::<Vec<_>>(), vec![1], "ten pods later");
        assert!(s.watch_from(Resource::Pod, 1).is_err(), "the pods' own history holds three");
        assert!(
            matches!(apps.try_recv(), Err(broadcast::error::TryRecvError::Empty)),
            "a watcher of applications neither gets the pods nor falls behind on them"
        );
        s.create(Resource::SparkApplication, "ns", app("b")).unwrap();
        assert_eq!(apps.try_recv().unwrap().rv, 12);
    }

    #[test]
    fn a_watch_resumes_from_history_or_expires() {
        let s = Store::new(3, 100);
        for i in 0..5 {
            s.create(Resource::Pod, "ns", app(&format!("p{i}"))).unwrap();
        }
        // History holds revisions 3, 4, 5.
        let (backlog, _) = s.watch_from(Resource::Pod, 3).unwrap();
        assert_eq!(backlog.iter().map(|c| c.rv).collect::<Vec<_>>(), vec![4, 5]);
        assert!(s.watch_from(Resource::Pod, 2).is_ok(), "revision 2 resumes with 3, 4, 5");
        assert!(s.watch_from(Resource::Pod, 1).is_err(), "revision 2 is gone");
        assert!(s.watch_from(Resource::Pod, 5).unwrap().0.is_empty());
    }
}
