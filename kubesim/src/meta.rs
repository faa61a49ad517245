//! ObjectMeta as the API server checks it: a name, valid labels and annotations; fields that
//! are not ObjectMeta's, or that the server owns, are dropped.

use serde_json::{Map, Value};

use crate::schema::Cause;

/// ObjectMeta fields a client may set.
const CLIENT_FIELDS: [&str; 8] =
    ["name", "generateName", "namespace", "labels", "annotations", "ownerReferences", "finalizers", "resourceVersion"];

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A lowercase RFC 1123 subdomain: object names, label prefixes.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// Cleans and checks `metadata` of an object being written. `generated` is appended to a
/// `generateName` when there is no name.
pub(crate) fn check(meta: &mut Value, generated: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let invalid = |field: &str, value: &str, why: &str| Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value:?}: {why}"),
        field: field.to_owned(),
    };
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let obj = meta.as_object_mut().expect("object");
    obj.retain(|k, _| CLIENT_FIELDS.contains(&k.as_str()));
    if obj.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
        match obj.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let name = format!("{prefix}{generated}");
                obj.insert("name".into(), Value::from(name));
            }
            _ => {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                });
                return causes;
            }
        }
    }
    let name = obj["name"].as_str().unwrap_or_default().to_owned();
    if !is_dns1123_subdomain(&name) {
        causes.push(invalid(
            "metadata.name",
            &name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
             start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    if let Some(labels) = obj.get("labels") {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    if !is_qualified_name(k) {
                        causes.push(invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
                    }
                    match v.as_str() {
                        Some(v) if is_label_value(v) => {}
                        Some(v) => causes.push(invalid(
                            "metadata.labels",
                            v,
                            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                        )),
                        None => causes.push(invalid("metadata.labels", &v.to_string(), "label values must be strings")),
                    }
                }
            }
            None => causes.push(invalid("metadata.labels", &labels.to_string(), "must be a map of strings")),
        }
    }
    if let Some(annotations) = obj.get("annotations") {
        match annotations.as_object() {
            Some(a) => {
                for (k, v) in a {
                    if !is_qualified_name(k) {
                        causes.push(invalid(
                            "metadata.annotations",
                            k,
                            "name part must consist of alphanumeric characters, '-', '_' or '.'",
                        ));
                    }
                    if !v.is_string() {
                        causes.push(invalid(
                            "metadata.annotations",
                            &v.to_string(),
                            "annotation values must be strings",
                        ));
                    }
                }
                if serde_json::to_string(a).map(|s| s.len()).unwrap_or(0) > 256 * 1024 {
                    causes.push(invalid("metadata.annotations", "", "Too long: must have at most 262144 bytes"));
                }
            }
            None => causes.push(invalid("metadata.annotations", &annotations.to_string(), "must be a map of strings")),
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_and_labels_are_checked() {
        let mut ok = json!({"name": "c1-abc", "labels": {"proxyUser": "alice", "app.kubernetes.io/name": "x"}, "uid": "drop-me"});
        assert!(check(&mut ok, "xyz").is_empty());
        assert_eq!(ok.get("uid"), None, "server-owned fields are dropped");

        let mut bad = json!({"name": "Bad_Name", "labels": {"proxyUser": "a@b.com"}});
        let causes = check(&mut bad, "xyz");
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(causes[0].field, "metadata.name");
        assert_eq!(causes[1].field, "metadata.labels");

        let mut generated = json!({"generateName": "job-"});
        assert!(check(&mut generated, "k2x9q").is_empty());
        assert_eq!(generated["name"], "job-k2x9q");

        let mut none = json!({});
        assert_eq!(check(&mut none, "x")[0].reason, "FieldValueRequired");
    }
}
