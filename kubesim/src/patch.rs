//! JSON Patch (RFC 6902) for `application/json-patch+json`. Merge patches (RFC 7386) are
//! `operator::merge`.

use serde_json::Value;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(pointer: &str) -> Result<(Vec<String>, String), String> {
    let rest = pointer.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer {pointer:?}"))?;
    let mut parts: Vec<String> = rest.split('/').map(unescape).collect();
    let last = parts.pop().unwrap_or_default();
    Ok((parts, last))
}

fn parent_mut<'a>(doc: &'a mut Value, parts: &[String], pointer: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {pointer:?} does not exist"))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parts, last) = split(pointer)?;
    match parent_mut(doc, &parts, pointer)? {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| format!("bad array index in {pointer:?}"))?
            };
            if i > a.len() {
                return Err(format!("index out of range in {pointer:?}"));
            }
            a.insert(i, value);
        }
        _ => return Err(format!("cannot add at {pointer:?}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, pointer: &str) -> Result<Value, String> {
    let (parts, last) = split(pointer)?;
    match parent_mut(doc, &parts, pointer)? {
        Value::Object(m) => m.remove(&last).ok_or_else(|| format!("path {pointer:?} does not exist")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad array index in {pointer:?}"))?;
            if i >= a.len() {
                return Err(format!("index out of range in {pointer:?}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("path {pointer:?} does not exist")),
    }
}

/// Applies `ops` (a JSON array of operations) to `doc`.
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("every operation needs a path")?;
        match op["op"].as_str() {
            Some("add") => add(doc, path, op["value"].clone())?,
            Some("remove") => {
                remove(doc, path)?;
            }
            Some("replace") => {
                remove(doc, path)?;
                add(doc, path, op["value"].clone())?;
            }
            Some("move") => {
                let from = op["from"].as_str().ok_or("move needs from")?;
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or("copy needs from")?;
                let v = doc.pointer(from).cloned().ok_or_else(|| format!("path {from:?} does not exist"))?;
                add(doc, path, v)?;
            }
            Some("test") => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn applies_rfc_6902_operations() {
        let mut d = json!({"a": {"b": 1}, "l": [1, 2]});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/a/c", "value": 2},
                {"op": "replace", "path": "/a/b", "value": 9},
                {"op": "add", "path": "/l/-", "value": 3},
                {"op": "remove", "path": "/l/0"},
                {"op": "copy", "from": "/a/c", "path": "/x~1y"},
                {"op": "test", "path": "/a/b", "value": 9},
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"b": 9, "c": 2}, "l": [2, 3], "x/y": 2}));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/a/b", "value": 1}])).is_err());
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
