//! Structural-schema handling as an API server does it for a CRD: prune fields the schema does
//! not know, drop nulls that are not `nullable`, fill `default`s, then validate, collecting
//! every problem as a `Status` cause naming the field.

use std::collections::HashMap;
use std::sync::Mutex;

use regex::Regex;
use serde_json::{Map, Value};

/// One validation problem, as a `StatusCause`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueTypeInvalid`.
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    /// `field: message`, as the API server joins them into the Status message.
    pub fn line(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Where a walk reports.
struct Walk<'a> {
    causes: &'a mut Vec<Cause>,
    pruned: &'a mut Vec<String>,
}

/// An `openAPIV3Schema` with its compiled patterns.
#[derive(Debug)]
pub(crate) struct Schema {
    root: Value,
    patterns: Mutex<HashMap<String, Regex>>,
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Schema {
    pub(crate) fn new(root: Value) -> Schema {
        Schema { root, patterns: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn root(&self) -> &Value {
        &self.root
    }

    /// Prunes, defaults and validates `object` (without `metadata`, which the API server
    /// checks on its own). Returns the problems (empty means valid) and the paths of the
    /// fields pruned because the schema does not declare them.
    pub(crate) fn apply(&self, object: &mut Value) -> (Vec<Cause>, Vec<String>) {
        let mut causes = Vec::new();
        let mut pruned = Vec::new();
        let Some(obj) = object.as_object_mut() else {
            causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                message: "must be an object".into(),
                field: "<root>".into(),
            });
            return (causes, pruned);
        };
        let props = &self.root["properties"];
        // metadata is ObjectMeta, checked elsewhere; apiVersion and kind are checked by the caller.
        let metadata = obj.remove("metadata");
        self.walk_object(&self.root, props, obj, "", &mut Walk { causes: &mut causes, pruned: &mut pruned });
        if let Some(m) = metadata {
            obj.insert("metadata".into(), m);
        }
        (causes, pruned)
    }

    fn walk_object(&self, schema: &Value, props: &Value, obj: &mut Map<String, Value>, path: &str, out: &mut Walk<'_>) {
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
        let additional = &schema["additionalProperties"];
        let keys: Vec<String> = obj.keys().cloned().collect();
        for key in keys {
            if path.is_empty() && (key == "apiVersion" || key == "kind") {
                continue;
            }
            let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            let child_schema = match props.get(&key) {
                Some(s) => s,
                None if additional.is_object() => additional,
                None if preserve || *additional == Value::Bool(true) => continue,
                None => {
                    obj.remove(&key);
                    out.pruned.push(child_path);
                    continue;
                }
            };
            if obj[&key].is_null() && child_schema["nullable"] != Value::Bool(true) {
                obj.remove(&key);
                continue;
            }
            let value = obj.get_mut(&key).expect("key present");
            self.walk(child_schema, value, &child_path, out);
        }
        if let Some(props) = props.as_object() {
            for (key, s) in props {
                if !obj.contains_key(key)
                    && let Some(default) = s.get("default")
                {
                    let mut v = default.clone();
                    let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    self.walk(s, &mut v, &child_path, out);
                    obj.insert(key.clone(), v);
                }
            }
        }
        if let Some(required) = schema["required"].as_array() {
            for r in required.iter().filter_map(Value::as_str) {
                if r != "metadata" && !obj.contains_key(r) {
                    let field = if path.is_empty() { r.to_owned() } else { format!("{path}.{r}") };
                    out.causes.push(Cause { reason: "FieldValueRequired", message: "Required value".into(), field });
                }
            }
        }
    }

    fn walk(&self, schema: &Value, value: &mut Value, path: &str, out: &mut Walk<'_>) {
        let invalid = |message: String| Cause { reason: "FieldValueInvalid", message, field: path.to_owned() };
        if value.is_null() {
            return; // nullable, or pruned by the parent
        }
        if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                out.causes.push(invalid(format!(
                    "Invalid value: {}: {path} in body must be of type integer,string: {:?}",
                    quoted(value),
                    type_name(value)
                )));
            }
            return;
        }
        let Some(ty) = schema["type"].as_str() else { return };
        let type_ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !type_ok {
            out.causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: {}: {path} in body must be of type {ty}: {:?}",
                    quoted(value),
                    type_name(value)
                ),
                field: path.to_owned(),
            });
            return;
        }
        match ty {
            "object" => {
                // Borrowed, not cloned: the CRD's pod-template schemas are large, and cloning
                // them at every object node made admission dominate kubesim's CPU.
                let props = schema.get("properties").unwrap_or(&Value::Null);
                let obj = value.as_object_mut().expect("checked object");
                self.walk_object(schema, props, obj, path, out);
            }
            "array" => {
                let items = &schema["items"];
                if let Some(arr) = value.as_array_mut() {
                    arr.retain(|v| !v.is_null() || items["nullable"] == Value::Bool(true));
                    for (i, v) in arr.iter_mut().enumerate() {
                        self.walk(items, v, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            let list = allowed.iter().map(quoted).collect::<Vec<_>>().join(", ");
            out.causes.push(Cause {
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {}: supported values: {list}", quoted(value)),
                field: path.to_owned(),
            });
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema["minimum"].as_f64()
                && n < min
            {
                out.causes.push(invalid(format!(
                    "Invalid value: {value}: {path} in body should be greater than or equal to {min}"
                )));
            }
            if let Some(max) = schema["maximum"].as_f64()
                && n > max
            {
                out.causes.push(invalid(format!(
                    "Invalid value: {value}: {path} in body should be less than or equal to {max}"
                )));
            }
            if schema["format"] == "int32" && (n < i32::MIN as f64 || n > i32::MAX as f64) {
                out.causes.push(invalid(format!("Invalid value: {value}: {path} in body must be of type int32")));
            }
        }
        if let Some(s) = value.as_str() {
            if let Some(pattern) = schema["pattern"].as_str()
                && !self.matches(pattern, s)
            {
                out.causes.push(invalid(format!("Invalid value: {s:?}: {path} in body should match '{pattern}'")));
            }
            if schema["format"] == "date-time" && chrono::DateTime::parse_from_rfc3339(s).is_err() {
                out.causes
                    .push(invalid(format!("Invalid value: {s:?}: {path} in body must be of type date-time: {s:?}")));
            }
            if let Some(max) = schema["maxLength"].as_u64()
                && s.chars().count() as u64 > max
            {
                out.causes
                    .push(invalid(format!("Invalid value: {s:?}: {path} in body should be at most {max} chars long")));
            }
        }
    }

    fn matches(&self, pattern: &str, s: &str) -> bool {
        let mut cache = self.patterns.lock().expect("pattern cache poisoned");
        if !cache.contains_key(pattern) {
            match Regex::new(pattern) {
                Ok(re) => {
                    cache.insert(pattern.to_owned(), re);
                }
                // A pattern Rust's engine cannot compile is not enforced.
                Err(_) => return true,
            }
        }
        cache[pattern].is_match(s)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::new(json!({
            "type": "object",
            "required": ["metadata", "spec"],
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["type", "file"],
                    "properties": {
                        "type": {"type": "string", "enum": ["Java", "Python"]},
                        "file": {"type": "string"},
                        "cores": {"type": "integer", "format": "int32", "minimum": 1},
                        "mode": {"type": "string", "default": "cluster"},
                        "conf": {"type": "object", "additionalProperties": {"type": "string"}},
                        "mem": {"type": "string", "pattern": "^[0-9]+[mg]$"},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "when": {"type": "string", "format": "date-time", "nullable": true},
                        "list": {"type": "array", "items": {"type": "integer"}}
                    }
                }
            }
        }))
    }

    #[test]
    fn prunes_unknown_fields_and_fills_defaults() {
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {"type": "Java", "file": "f", "bogus": 1,
            "conf": {"a": "b"}, "template": {"anything": {"goes": true}}, "when": null}, "extra": true});
        let (causes, pruned) = schema().apply(&mut obj);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(pruned, vec!["extra".to_owned(), "spec.bogus".to_owned()]);
        assert_eq!(obj["spec"].get("bogus"), None);
        assert_eq!(obj.get("extra"), None);
        assert_eq!(obj["spec"]["mode"], "cluster");
        assert_eq!(obj["spec"]["template"]["anything"]["goes"], true);
        assert_eq!(obj["spec"]["when"], Value::Null, "nullable null is kept");
        assert_eq!(obj["metadata"]["name"], "x");
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let mut obj = json!({"metadata": {}, "spec": {"type": "java", "cores": 0, "conf": {"a": 1},
            "mem": "2048", "port": true, "list": [1, "x"]}});
        let (causes, _) = schema().apply(&mut obj);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        for f in ["spec.type", "spec.cores", "spec.conf.a", "spec.mem", "spec.port", "spec.list[1]", "spec.file"] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let enum_cause = causes.iter().find(|c| c.field == "spec.type").unwrap();
        assert_eq!(enum_cause.reason, "FieldValueNotSupported");
        assert_eq!(enum_cause.message, r#"Unsupported value: "java": supported values: "Java", "Python""#);
        assert_eq!(causes.iter().find(|c| c.field == "spec.file").unwrap().message, "Required value");
    }

    #[test]
    fn int_or_string_accepts_both() {
        for port in [json!(8080), json!("http")] {
            let mut obj = json!({"metadata": {}, "spec": {"type": "Java", "file": "f", "port": port}});
            assert!(schema().apply(&mut obj).0.is_empty());
        }
    }
}
