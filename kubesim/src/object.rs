//! One version of a stored object, its parts shared between versions.
//!
//! Every write makes a new version, and the old one stays in the watch history until 50,000
//! later changes push it out. As whole JSON trees, each version was a deep copy of the one
//! before, made for the write and freed when it left the history: `perf` on a kubesim under
//! the gateway's benchmark put a third of its CPU in copying and freeing those trees. Most
//! writes are the operator's status updates, which change `status` and `metadata` and leave
//! `spec`, the largest part, as it was. Here `metadata`, `spec`, `status` and the other
//! top-level fields together each sit behind an `Arc`: a new version copies the parts it
//! changes and shares the rest, and copying a version copies no JSON at all.

use std::ops::{Index, IndexMut};
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

static NULL: Value = Value::Null;

/// The top-level fields kept apart, in the order a JSON object's keys sort.
const PARTS: [&str; 3] = ["metadata", "spec", "status"];

/// A JSON object whose parts are shared with the versions it was made from. Indexing reads
/// like a `serde_json::Value`: a missing field is `null`, and writing through `obj["field"]`
/// adds it (copying its part first if another version shares it).
#[derive(Clone, Debug, Default)]
pub struct Object {
    /// `metadata`, `spec`, `status`, each when present.
    parts: [Option<Arc<Value>>; 3],
    /// Every other top-level field (`apiVersion`, `kind`, an Event's fields).
    rest: Arc<Map<String, Value>>,
}

fn part_index(field: &str) -> Option<usize> {
    PARTS.iter().position(|p| *p == field)
}

impl Object {
    /// The object `value` holds; `None` when it is not a JSON object.
    pub fn from_value(value: Value) -> Option<Object> {
        let Value::Object(mut rest) = value else { return None };
        let parts = PARTS.map(|p| rest.remove(p).map(Arc::new));
        Some(Object { parts, rest: Arc::new(rest) })
    }

    /// A plain JSON copy, for the rare writes that rework the whole object (a user's replace
    /// or patch).
    pub fn to_value(&self) -> Value {
        let mut map = self.rest.as_ref().clone();
        for (name, part) in PARTS.iter().zip(&self.parts) {
            if let Some(part) = part {
                map.insert((*name).to_owned(), part.as_ref().clone());
            }
        }
        Value::Object(map)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        match part_index(field) {
            Some(i) => self.parts[i].as_deref(),
            None => self.rest.get(field),
        }
    }

    /// The value at a dotted path such as `status.phase` (`null` where it leads nowhere).
    pub fn at(&self, dotted_path: &str) -> &Value {
        let mut parts = dotted_path.split('.');
        let first = &self[parts.next().unwrap_or_default()];
        parts.fold(first, |v, part| &v[part])
    }

    /// `field` itself, shared with this object (`null` when it has none).
    pub fn shared(&self, field: &str) -> Arc<Value> {
        match part_index(field).and_then(|i| self.parts[i].clone()) {
            Some(part) => part,
            None => Arc::new(self.get(field).cloned().unwrap_or(Value::Null)),
        }
    }

    pub fn remove(&mut self, field: &str) {
        match part_index(field) {
            Some(i) => self.parts[i] = None,
            None => {
                if self.rest.contains_key(field) {
                    Arc::make_mut(&mut self.rest).remove(field);
                }
            }
        }
    }

    /// Whether `field` is the same in both: shared, or equal.
    pub fn same_field(&self, other: &Object, field: &str) -> bool {
        match part_index(field) {
            Some(i) => match (&self.parts[i], &other.parts[i]) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            },
            None => self.rest.get(field) == other.rest.get(field),
        }
    }

    /// Serializes the fields in key order, as a JSON object's keys sort, with
    /// `metadata.resourceVersion` written as `revision` when one is given.
    fn serialize_at<S: Serializer>(&self, s: S, revision: Option<&str>) -> Result<S::Ok, S::Error> {
        let len = self.rest.len() + self.parts.iter().flatten().count();
        let mut map = s.serialize_map(Some(len))?;
        let mut parts = PARTS.iter().zip(&self.parts).filter_map(|(name, part)| Some((*name, part.as_deref()?)));
        let mut next_part = parts.next();
        let emit = |map: &mut S::SerializeMap, name: &str, part: &Value| match (name, revision, part) {
            ("metadata", Some(rv), Value::Object(meta)) => map.serialize_entry(name, &MetadataAt { meta, rv }),
            _ => map.serialize_entry(name, part),
        };
        for (k, v) in self.rest.iter() {
            while let Some((name, part)) = next_part.filter(|(name, _)| *name < k.as_str()) {
                emit(&mut map, name, part)?;
                next_part = parts.next();
            }
            map.serialize_entry(k, v)?;
        }
        while let Some((name, part)) = next_part {
            emit(&mut map, name, part)?;
            next_part = parts.next();
        }
        map.end()
    }

    /// This object as sent at revision `rv`: a deleted object goes out with the deletion's
    /// revision, as a real API server sends it, without a copy of it being made.
    pub fn at_revision(&self, rv: u64) -> AtRevision<'_> {
        AtRevision { object: self, rv: rv.to_string() }
    }
}

impl Index<&str> for Object {
    type Output = Value;

    fn index(&self, field: &str) -> &Value {
        self.get(field).unwrap_or(&NULL)
    }
}

impl IndexMut<&str> for Object {
    fn index_mut(&mut self, field: &str) -> &mut Value {
        match part_index(field) {
            Some(i) => Arc::make_mut(self.parts[i].get_or_insert_with(|| Arc::new(Value::Null))),
            None => Arc::make_mut(&mut self.rest).entry(field).or_insert(Value::Null),
        }
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Object) -> bool {
        PARTS.iter().all(|p| self.same_field(other, p))
            && (Arc::ptr_eq(&self.rest, &other.rest) || self.rest == other.rest)
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_at(s, None)
    }
}

/// An [`Object`] serialized with another `metadata.resourceVersion`.
#[derive(Debug)]
pub struct AtRevision<'a> {
    object: &'a Object,
    rv: String,
}

impl Serialize for AtRevision<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.object.serialize_at(s, Some(&self.rv))
    }
}

struct MetadataAt<'a> {
    meta: &'a Map<String, Value>,
    rv: &'a str,
}

impl Serialize for MetadataAt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let has_rv = self.meta.contains_key("resourceVersion");
        let mut map = s.serialize_map(Some(self.meta.len() + usize::from(!has_rv)))?;
        for (k, v) in self.meta {
            if k == "resourceVersion" {
                map.serialize_entry(k, self.rv)?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        if !has_rv {
            map.serialize_entry("resourceVersion", self.rv)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app() -> Object {
        Object::from_value(json!({"kind": "SparkApplication", "metadata": {"name": "a"}, "spec": {"big": [1, 2, 3]}}))
            .expect("an object")
    }

    #[test]
    fn a_new_version_shares_the_parts_it_does_not_change() {
        let first = app();
        let mut next = first.clone();
        next["status"]["state"] = json!("RUNNING");
        next["metadata"]["resourceVersion"] = json!("2");
        assert!(Arc::ptr_eq(&first.shared("spec"), &next.shared("spec")), "spec is shared, not copied");
        assert_eq!(first["metadata"], json!({"name": "a"}), "the first version is unchanged");
        assert_eq!(first["status"], Value::Null);
        assert_eq!(
            next.to_value(),
            json!({"kind": "SparkApplication", "metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"big": [1, 2, 3]}, "status": {"state": "RUNNING"}})
        );
    }

    #[test]
    fn serializes_as_the_json_it_was_made_from() {
        for value in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": null}, "status": {}}),
            json!({"count": 1, "involvedObject": {}, "metadata": {"name": "e"}, "reason": "r", "type": "Normal"}),
            json!({"zzz": 1}),
            json!({"status": 2}),
            json!({}),
        ] {
            let object = Object::from_value(value.clone()).expect("an object");
            assert_eq!(serde_json::to_string(&object).expect("serializes"), value.to_string());
        }
        assert!(Object::from_value(json!([1])).is_none(), "an array is no object");
    }

    #[test]
    fn at_a_revision_only_the_resource_version_differs() {
        let object =
            Object::from_value(json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "3"}, "spec": {}}))
                .expect("an object");
        let sent: Value = serde_json::to_value(object.at_revision(9)).expect("serializes");
        assert_eq!(sent, json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "9"}, "spec": {}}));
        assert_eq!(object["metadata"]["resourceVersion"], "3", "the stored version keeps its own");
    }

    #[test]
    fn equality_is_by_content_whether_shared_or_not() {
        let a = app();
        let b = Object::from_value(a.to_value()).expect("an object");
        assert_eq!(a, b);
        assert!(a.same_field(&b, "spec") && a.same_field(&b, "status") && a.same_field(&b, "kind"));
        let mut c = a.clone();
        c["spec"]["big"] = json!([]);
        assert_ne!(a, c);
        assert!(!a.same_field(&c, "spec"));
        let mut d = a.clone();
        d["kind"] = json!("Pod");
        assert_ne!(a, d);
        d.remove("kind");
        assert_eq!(d["kind"], Value::Null);
    }

    #[test]
    fn a_dotted_path_reads_through_the_parts() {
        let a = app();
        assert_eq!(a.at("metadata.name"), "a");
        assert_eq!(a.at("spec.big"), &json!([1, 2, 3]));
        assert_eq!(a.at("kind"), "SparkApplication");
        assert_eq!(a.at("status.phase"), &Value::Null);
    }
}
