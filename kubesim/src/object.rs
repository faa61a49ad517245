//! One version of a stored object, its parts shared between versions.
//!
//! Every write makes a new version, and the old one stays in the watch history until 50,000
//! later changes of its resource push it out. As whole JSON trees, each version was a deep
//! copy of the one before, made for the write and freed when it left the history: `perf` on a
//! kubesim under the gateway's benchmark put a third of its CPU in copying and freeing those
//! trees. Most writes are the operator's status updates, which change `status` and `metadata`
//! and leave `spec`, the largest part, as it was. Here `metadata`, `spec`, `status` and the
//! other top-level fields together each sit behind an `Arc`: a new version copies the parts it
//! changes and shares the rest, and copying a version copies no JSON at all.
//!
//! A version's `metadata.resourceVersion` is kept beside its parts rather than in the
//! `metadata` tree, and written in when the version is sent: a write that changes only the
//! status (the operator's pod phases and application states: every modification under that
//! benchmark) then shares the metadata too, instead of copying a tree of labels, owner
//! references and annotations to change one string in it, and freeing it again when the
//! version leaves the history.
//!
//! Objects written once and seldom read, Events above all (twelve of them per application,
//! two thirds of a kubesim's writes under that benchmark), keep their other top-level fields
//! as the JSON text they were written as, one allocation instead of a tree of dozens, and are
//! parsed the first time something reads them.

use std::ops::{Deref, Index, IndexMut};
use std::sync::{Arc, OnceLock};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

static NULL: Value = Value::Null;

/// The top-level fields kept apart, in the order a JSON object's keys sort.
const PARTS: [&str; 3] = ["metadata", "spec", "status"];

/// One of [`PARTS`] of an object. The `spec` part also keeps its JSON text once it has been
/// sent: every version of an object shares its spec, the largest part of a SparkApplication,
/// and each version goes to every watcher, so the spec is serialized once instead of each time.
#[derive(Debug, Default)]
pub struct Part {
    value: Value,
    sent: OnceLock<Box<RawValue>>,
}

impl Part {
    fn new(value: Value) -> Part {
        Part { value, sent: OnceLock::new() }
    }

    /// The JSON text of the value, written on first use.
    fn text(&self) -> &RawValue {
        self.sent.get_or_init(|| serde_json::value::to_raw_value(&self.value).expect("a JSON value serializes"))
    }
}

/// A copy is made to be changed, so it starts without text.
impl Clone for Part {
    fn clone(&self) -> Part {
        Part::new(self.value.clone())
    }
}

impl PartialEq for Part {
    fn eq(&self, other: &Part) -> bool {
        self.value == other.value
    }
}

impl Deref for Part {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.value
    }
}

/// A JSON object whose parts are shared with the versions it was made from. Indexing reads
/// like a `serde_json::Value`: a missing field is `null`, and writing through `obj["field"]`
/// adds it (copying its part first if another version shares it).
#[derive(Clone, Debug, Default)]
pub struct Object {
    /// `metadata`, `spec`, `status`, each when present.
    parts: [Option<Arc<Part>>; 3],
    /// Every other top-level field (`apiVersion`, `kind`, an Event's fields).
    rest: Arc<Rest>,
    /// The store's revision of this version, sent as `metadata.resourceVersion` (which the
    /// `metadata` tree then does not hold); `None` for an object the store has not written.
    revision: Option<u64>,
}

/// The top-level fields outside [`PARTS`]: a tree, or the JSON text of an object holding them,
/// parsed into the tree on first read. A write turns it into a tree for good.
#[derive(Clone, Debug, Default)]
struct Rest {
    /// Set while the fields have not been written to since they were given as text.
    text: Option<Box<str>>,
    /// The fields; unset only while `text` is set and nothing has read them yet.
    tree: OnceLock<Map<String, Value>>,
}

impl Rest {
    fn tree(tree: Map<String, Value>) -> Rest {
        Rest { text: None, tree: OnceLock::from(tree) }
    }

    fn map(&self) -> &Map<String, Value> {
        self.tree.get_or_init(|| {
            let text = self.text.as_deref().unwrap_or("{}");
            serde_json::from_str(text).expect("the text was written by serde_json from a value that is a JSON object")
        })
    }

    fn map_mut(&mut self) -> &mut Map<String, Value> {
        self.map();
        self.text = None;
        self.tree.get_mut().expect("`map` has just filled it")
    }
}

fn part_index(field: &str) -> Option<usize> {
    PARTS.iter().position(|p| *p == field)
}

impl Object {
    /// The object `value` holds; `None` when it is not a JSON object.
    pub fn from_value(value: Value) -> Option<Object> {
        let Value::Object(mut rest) = value else { return None };
        let parts = PARTS.map(|p| rest.remove(p).map(|v| Arc::new(Part::new(v))));
        Some(Object { parts, rest: Arc::new(Rest::tree(rest)), revision: None })
    }

    /// An object of `metadata` and the top-level fields `fields` serializes to, kept as that
    /// JSON text until something reads them. `None` when `fields` does not serialize to a JSON
    /// object; it must not have a `metadata`, `spec` or `status` field of its own.
    pub fn with_text_fields(metadata: Value, fields: &impl Serialize) -> Option<Object> {
        let text = serde_json::to_string(fields).ok().filter(|t| t.starts_with('{'))?;
        debug_assert!(
            serde_json::from_str::<Map<String, Value>>(&text).is_ok_and(|m| PARTS.iter().all(|p| !m.contains_key(*p))),
            "text fields that are an object without metadata, spec or status: {text}"
        );
        let rest = Rest { text: Some(text.into_boxed_str()), tree: OnceLock::new() };
        Some(Object { parts: [Some(Arc::new(Part::new(metadata))), None, None], rest: Arc::new(rest), revision: None })
    }

    /// A plain JSON copy, for the rare writes that rework the whole object (a user's replace
    /// or patch).
    pub fn to_value(&self) -> Value {
        let mut map = self.rest.map().clone();
        for (name, part) in PARTS.iter().zip(&self.parts) {
            if let Some(part) = part {
                let value = if *name == "metadata" { self.metadata_value() } else { part.value.clone() };
                map.insert((*name).to_owned(), value);
            }
        }
        Value::Object(map)
    }

    /// `metadata` as it is sent, with the `resourceVersion` of this version.
    pub fn metadata_value(&self) -> Value {
        let mut meta = self["metadata"].clone();
        if let (Some(rv), Value::Object(m)) = (self.revision, &mut meta) {
            m.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
        }
        meta
    }

    /// `metadata.resourceVersion`: the store's revision of this version, or for an object the
    /// store has not written (a request's body), the one its metadata holds.
    pub fn resource_version(&self) -> Option<String> {
        match self.revision {
            Some(rv) => Some(rv.to_string()),
            None => self["metadata"]["resourceVersion"].as_str().map(str::to_owned),
        }
    }

    /// Makes this the store's version `rv`: the revision is kept beside the metadata, and a
    /// `resourceVersion` in the metadata tree (a request's) is dropped.
    pub(crate) fn set_revision(&mut self, rv: u64) {
        if self["metadata"].get("resourceVersion").is_some()
            && let Value::Object(meta) = &mut self["metadata"]
        {
            meta.remove("resourceVersion");
        }
        self.revision = Some(rv);
    }

    /// Whether `field` is the very same part in both (not merely equal).
    pub(crate) fn shares(&self, other: &Object, field: &str) -> bool {
        match part_index(field).map(|i| (&self.parts[i], &other.parts[i])) {
            Some((Some(a), Some(b))) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        match part_index(field) {
            Some(i) => self.parts[i].as_deref().map(|part| &part.value),
            None => self.rest.map().get(field),
        }
    }

    /// The value at a dotted path such as `status.phase` (`null` where it leads nowhere).
    pub fn at(&self, dotted_path: &str) -> &Value {
        let mut parts = dotted_path.split('.');
        let first = &self[parts.next().unwrap_or_default()];
        parts.fold(first, |v, part| &v[part])
    }

    /// `field` itself, shared with this object (`null` when it has none).
    pub fn shared(&self, field: &str) -> Arc<Part> {
        match part_index(field).and_then(|i| self.parts[i].clone()) {
            Some(part) => part,
            None => Arc::new(Part::new(self.get(field).cloned().unwrap_or(Value::Null))),
        }
    }

    pub fn remove(&mut self, field: &str) {
        match part_index(field) {
            Some(i) => self.parts[i] = None,
            None => {
                if self.rest.map().contains_key(field) {
                    Arc::make_mut(&mut self.rest).map_mut().remove(field);
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
            None => self.rest.map().get(field) == other.rest.map().get(field),
        }
    }

    /// Serializes the fields in key order, as a JSON object's keys sort, with
    /// `metadata.resourceVersion` written as `revision` when one is given, else as this
    /// version's own.
    fn serialize_at<S: Serializer>(&self, s: S, revision: Option<u64>) -> Result<S::Ok, S::Error> {
        let revision = revision.or(self.revision);
        let rest = self.rest.map();
        let len = rest.len() + self.parts.iter().flatten().count();
        let mut map = s.serialize_map(Some(len))?;
        let mut parts = PARTS.iter().zip(&self.parts).filter_map(|(name, part)| Some((*name, part.as_deref()?)));
        let mut next_part = parts.next();
        let emit = |map: &mut S::SerializeMap, name: &str, part: &Part| match (name, revision, &part.value) {
            ("metadata", Some(rv), Value::Object(meta)) => map.serialize_entry(name, &MetadataAt { meta, rv }),
            ("spec", _, _) => map.serialize_entry(name, part.text()),
            (_, _, value) => map.serialize_entry(name, value),
        };
        for (k, v) in rest.iter() {
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
        AtRevision { object: self, rv }
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
            Some(i) => {
                let part = Arc::make_mut(self.parts[i].get_or_insert_with(|| Arc::new(Part::default())));
                part.sent = OnceLock::new();
                &mut part.value
            }
            None => Arc::make_mut(&mut self.rest).map_mut().entry(field).or_insert(Value::Null),
        }
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Object) -> bool {
        self.revision == other.revision
            && PARTS.iter().all(|p| self.same_field(other, p))
            && (Arc::ptr_eq(&self.rest, &other.rest) || self.rest.map() == other.rest.map())
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
    rv: u64,
}

impl Serialize for AtRevision<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.object.serialize_at(s, Some(self.rv))
    }
}

struct MetadataAt<'a> {
    meta: &'a Map<String, Value>,
    rv: u64,
}

/// A revision as a resourceVersion is sent: a decimal string.
struct RevisionText(u64);

impl Serialize for RevisionText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl Serialize for MetadataAt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Keys in order, as a JSON object's sort: the resourceVersion goes in its place.
        let has_rv = self.meta.contains_key("resourceVersion");
        let mut map = s.serialize_map(Some(self.meta.len() + usize::from(!has_rv)))?;
        let rv = RevisionText(self.rv);
        let mut pending = !has_rv;
        for (k, v) in self.meta {
            if pending && k.as_str() > "resourceVersion" {
                map.serialize_entry("resourceVersion", &rv)?;
                pending = false;
            }
            if k == "resourceVersion" {
                map.serialize_entry(k, &rv)?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        if pending {
            map.serialize_entry("resourceVersion", &rv)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
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

    #[derive(Serialize)]
    struct Fields {
        kind: &'static str,
        reason: &'static str,
        #[serde(rename = "involvedObject")]
        involved_object: Value,
    }

    fn event_fields() -> Fields {
        Fields { kind: "Event", reason: "Scheduled \"quoted\"", involved_object: json!({"kind": "Pod", "name": "p"}) }
    }

    fn event_value() -> Value {
        json!({"involvedObject": {"kind": "Pod", "name": "p"}, "kind": "Event", "metadata": {"name": "e"}, "reason": "Scheduled \"quoted\""})
    }

    #[test]
    fn fields_given_as_text_read_and_serialize_as_the_same_fields_given_as_a_tree() {
        let text = Object::with_text_fields(json!({"name": "e"}), &event_fields()).expect("an object");
        let tree = Object::from_value(event_value()).expect("an object");
        let sent = serde_json::to_string(&text).expect("serializes");
        assert_eq!(sent, serde_json::to_string(&tree).expect("serializes"), "same bytes, keys in the same order");
        assert_eq!(sent, event_value().to_string());
        assert_eq!(text.at("involvedObject.name"), "p");
        assert_eq!(text["reason"], "Scheduled \"quoted\"");
        assert_eq!(text["message"], Value::Null, "a field it lacks is null");
        assert_eq!(text, tree);
        assert!(text.same_field(&tree, "involvedObject") && text.same_field(&tree, "metadata"));
        assert_eq!(text.to_value(), event_value());
        let at: Value = serde_json::to_value(text.at_revision(7)).expect("serializes");
        assert_eq!(at["metadata"]["resourceVersion"], "7");
        assert_eq!(at["reason"], "Scheduled \"quoted\"");
    }

    #[test]
    fn writing_a_field_given_as_text_leaves_the_versions_sharing_it_unchanged() {
        let first = Object::with_text_fields(json!({"name": "e"}), &event_fields()).expect("an object");
        let mut second = first.clone();
        second["count"] = json!(2);
        let mut third = first.clone();
        third.remove("reason");
        assert_eq!(second["count"], 2);
        assert_eq!(second["reason"], "Scheduled \"quoted\"", "the other fields are kept");
        assert_eq!(third["reason"], Value::Null);
        assert_eq!(third["kind"], "Event");
        assert_eq!(first, Object::from_value(event_value()).expect("an object"), "the first version is unchanged");
        assert_ne!(first, second);
        assert_ne!(first, third);
    }

    #[test]
    fn text_fields_must_be_an_object() {
        assert!(Object::with_text_fields(json!({"name": "e"}), &[1, 2]).is_none());
        assert!(Object::with_text_fields(json!({"name": "e"}), &"text").is_none());
        let empty = Object::with_text_fields(json!({"name": "e"}), &serde_json::Map::new()).expect("an object");
        assert_eq!(serde_json::to_value(&empty).expect("serializes"), json!({"metadata": {"name": "e"}}));
    }

    #[test]
    fn the_spec_is_serialized_once_and_a_changed_spec_afresh() {
        let first = app();
        assert_eq!(serde_json::to_value(&first).expect("serializes")["spec"], json!({"big": [1, 2, 3]}));
        let sent = first.parts[1].as_ref().and_then(|p| p.sent.get()).expect("the spec's text is kept");
        assert_eq!(sent.get(), r#"{"big":[1,2,3]}"#);
        let mut status_only = first.clone();
        status_only["status"] = json!({"state": "RUNNING"});
        assert!(Arc::ptr_eq(&first.shared("spec"), &status_only.shared("spec")), "the text goes with the shared spec");
        let mut changed = first.clone();
        changed["spec"]["big"] = json!([4]);
        let text = serde_json::to_string(&changed).expect("serializes");
        assert!(text.contains(r#""spec":{"big":[4]}"#), "{text}");
        assert_eq!(serde_json::to_value(&first).expect("serializes")["spec"], json!({"big": [1, 2, 3]}));
        // Written through while no other version shares it, the spec is sent as it is now.
        let mut only = Object::from_value(json!({"spec": {"a": 1}})).expect("an object");
        serde_json::to_string(&only).expect("serializes");
        only["spec"]["a"] = json!(2);
        assert_eq!(serde_json::to_string(&only).expect("serializes"), r#"{"spec":{"a":2}}"#);
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
