//! Create, read, list, replace, patch and delete, for every served resource.

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngExt;
use serde_json::{Value, json};

use super::error::{KubeError, KubeResult};
use super::{ListQuery, WriteQuery, flag, table, watch};
use crate::listing::Items;
use crate::object::Object;
use crate::resource::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::Sim;
use crate::store::{Key, WriteError};
use crate::{crd, meta, operator, patch};

fn wants_table(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=Table"))
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_ascii_lowercase()
}

fn parse_body(h: &HeaderMap, body: &[u8]) -> KubeResult<Value> {
    let text = std::str::from_utf8(body).map_err(|_| KubeError::bad_request("the request body is not UTF-8"))?;
    if content_type(h).contains("yaml") {
        serde_saphyr::from_str(text).map_err(|e| KubeError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_str(text).map_err(|e| KubeError::bad_request(format!("error decoding JSON: {e}")))
    }
}

fn selectors(q: &ListQuery) -> KubeResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or("")).map_err(KubeError::bad_request)?;
    let fields = FieldSelector::parse(q.field_selector.as_deref().unwrap_or("")).map_err(KubeError::bad_request)?;
    Ok((labels, fields))
}

fn key(res: Resource, ns: &str, name: &str) -> Key {
    (res, ns.to_owned(), name.to_owned())
}

fn namespace_and_name(o: &Object) -> (&str, &str) {
    let m = &o["metadata"];
    (m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""))
}

/// The continue token: the list's revision and the last (namespace, name) returned.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> KubeResult<(u64, String, String)> {
    let bad = || {
        KubeError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["ns"].as_str().ok_or_else(bad)?.into(),
        v["name"].as_str().ok_or_else(bad)?.into(),
    ))
}

pub(crate) async fn list(sim: Sim, res: Resource, ns: Option<String>, q: ListQuery, h: HeaderMap) -> Response {
    match list_inner(sim, res, ns, q, h).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn list_inner(sim: Sim, res: Resource, ns: Option<String>, q: ListQuery, h: HeaderMap) -> KubeResult<Response> {
    let (labels, fields) = selectors(&q)?;
    if res == Resource::Event {
        sim.expire_events();
    }
    if flag(&q.watch) {
        return Ok(watch::serve(sim, res, ns, labels, fields, &q));
    }
    // Every page of a paginated list shows the objects as of the first page's revision.
    let continued = q.continue_token.as_deref().filter(|t| !t.is_empty());
    let (rv, items, start) = match continued {
        Some(token) => {
            let (rv, after_ns, after_name) = decode_continue(token)?;
            let items = sim.listings().get(res, ns.as_deref(), rv).ok_or_else(|| {
                KubeError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                )
            })?;
            let start = items.partition_point(|o| namespace_and_name(o) <= (after_ns.as_str(), after_name.as_str()));
            (rv, items, start)
        }
        None => {
            let (rv, items) = sim.store().list(res, ns.as_deref());
            (rv, Items::from(items), 0)
        }
    };
    let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut page = Vec::new();
    let mut next = start;
    while next < items.len() && page.len() < limit {
        let o = &items[next];
        next += 1;
        if labels.matches(o) && fields.matches(o) {
            page.push(o.clone());
        }
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if next < items.len()
        && let Some(last) = page.last()
    {
        let (last_ns, last_name) = namespace_and_name(last);
        metadata["continue"] = json!(encode_continue(rv, last_ns, last_name));
        // As with a real API server, the count is given only when no selector hides items
        // (a selective list can end with an empty page).
        if labels.is_empty() && fields.is_empty() {
            metadata["remainingItemCount"] = json!(items.len() - next);
        }
        // A later page comes from the listing its first page kept.
        if continued.is_none() {
            sim.listings().keep(res, ns.as_deref(), rv, items);
        }
    }
    if wants_table(&h) {
        return Ok(Json(table::table(res, &page, metadata, q.include_object.as_deref())).into_response());
    }
    let items: Vec<&Object> = page.iter().map(|o| o.as_ref()).collect();
    Ok(Json(json!({"apiVersion": res.api_version(), "kind": format!("{}List", res.kind()), "metadata": metadata, "items": items}))
        .into_response())
}

pub(crate) fn get(sim: Sim, res: Resource, ns: String, name: String, h: HeaderMap) -> Response {
    if res == Resource::Event {
        sim.expire_events();
    }
    match sim.store().get(&key(res, &ns, &name)) {
        None => KubeError::not_found(res, &name).into_response(),
        Some(o) if wants_table(&h) => {
            let rv = o.resource_version();
            Json(table::table(res, &[o], json!({"resourceVersion": rv}), None)).into_response()
        }
        Some(o) => Json(o.as_ref()).into_response(),
    }
}

/// Checks apiVersion and kind, cleans ObjectMeta, and for SparkApplications prunes, defaults
/// and validates against the CRD. Returns the warnings to send (unknown fields).
fn admit(res: Resource, obj: &mut Value, q: &WriteQuery, generated: &str) -> KubeResult<Vec<String>> {
    if !obj.is_object() {
        return Err(KubeError::bad_request("the request body must be a JSON object"));
    }
    let kind = obj["kind"].as_str().unwrap_or("");
    if kind.is_empty() {
        return Err(KubeError::bad_request(format!("Object 'Kind' is missing in '{}'", truncate(&obj.to_string()))));
    }
    if kind != res.kind() {
        return Err(KubeError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            res.kind()
        )));
    }
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    if api_version != res.api_version() {
        return Err(KubeError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    let mut causes = meta::check(&mut obj["metadata"], generated);
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mut warnings = Vec::new();
    if res == Resource::SparkApplication {
        let (schema_causes, pruned) = crd::spark_application().schema.apply(obj);
        causes.extend(schema_causes);
        let unknown: Vec<String> = pruned.iter().map(|p| format!("unknown field \"{p}\"")).collect();
        match q.field_validation.as_deref() {
            Some("Strict") if !unknown.is_empty() => {
                return Err(KubeError::bad_request(format!("strict decoding error: {}", unknown.join(", "))));
            }
            Some("Ignore") => {}
            _ => warnings = unknown,
        }
    }
    if !causes.is_empty() {
        return Err(KubeError::invalid(res, &name, &causes));
    }
    Ok(warnings)
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

fn with_warnings(code: StatusCode, obj: impl serde::Serialize, warnings: &[String]) -> Response {
    let mut resp = (code, Json(obj)).into_response();
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn random_suffix(sim: &Sim) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    sim.with_rng(|r| (0..5).map(|_| CHARS[r.random_range(0..CHARS.len())] as char).collect())
}

pub(crate) fn create(sim: Sim, res: Resource, ns: String, q: WriteQuery, h: HeaderMap, body: Bytes) -> Response {
    match create_inner(&sim, res, ns, &q, &h, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn create_inner(
    sim: &Sim,
    res: Resource,
    ns: String,
    q: &WriteQuery,
    h: &HeaderMap,
    body: &[u8],
) -> KubeResult<Response> {
    let mut obj = parse_body(h, body)?;
    if let Some(body_ns) = obj["metadata"]["namespace"].as_str()
        && body_ns != ns
    {
        return Err(KubeError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let warnings = admit(res, &mut obj, q, &random_suffix(sim))?;
    if res.has_status_subresource() && res == Resource::SparkApplication {
        // With a status subresource, create ignores status.
        obj.as_object_mut().expect("object").remove("status");
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if q.dry_run.as_deref() == Some("All") {
        if sim.store().get(&key(res, &ns, &name)).is_some() {
            return Err(KubeError::already_exists(res, &name));
        }
        obj["metadata"]["namespace"] = json!(ns);
        return Ok(with_warnings(StatusCode::CREATED, obj, &warnings));
    }
    let obj = Object::from_value(obj).ok_or_else(|| KubeError::bad_request("the object is not a JSON object"))?;
    let created = sim.store().create(res, &ns, obj).map_err(|_| KubeError::already_exists(res, &name))?;
    if res == Resource::SparkApplication {
        operator::start(sim, &created);
    }
    Ok(with_warnings(StatusCode::CREATED, created.as_ref(), &warnings))
}

/// The object a replace or patch leaves: `proposed` for the main resource (keeping the stored
/// status when there is a status subresource), or only `proposed`'s status for `/status`.
fn next_object(
    res: Resource,
    current: &Value,
    mut proposed: Value,
    status_only: bool,
    q: &WriteQuery,
) -> KubeResult<(Value, Vec<String>)> {
    let name = current["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if let Some(rv) = proposed["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        return Err(KubeError::conflict(res, &name));
    }
    if proposed["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(KubeError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            proposed["metadata"]["name"].as_str().unwrap_or("")
        )));
    }
    let mut next = if status_only {
        let mut n = current.clone();
        n["status"] = proposed.get("status").cloned().unwrap_or(Value::Null);
        n
    } else {
        if res.has_status_subresource() {
            proposed["status"] = current.get("status").cloned().unwrap_or(Value::Null);
        }
        proposed
    };
    if next.get("status") == Some(&Value::Null) {
        next.as_object_mut().expect("object").remove("status");
    }
    next["metadata"]["name"] = json!(name);
    let warnings = admit(res, &mut next, q, "")?;
    Ok((next, warnings))
}

fn unchanged(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            for k in ["resourceVersion", "uid", "creationTimestamp", "generation", "namespace"] {
                m.remove(k);
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Runs a read-modify-write where `compute` gives the next object from the current one.
fn write(
    sim: &Sim,
    res: Resource,
    ns: &str,
    name: &str,
    q: &WriteQuery,
    compute: impl Fn(&Value) -> KubeResult<(Value, Vec<String>)>,
) -> KubeResult<Response> {
    let k = key(res, ns, name);
    if q.dry_run.as_deref() == Some("All") {
        let current = sim.store().get(&k).ok_or_else(|| KubeError::not_found(res, name))?;
        let (next, warnings) = compute(&current.to_value())?;
        return Ok(with_warnings(StatusCode::OK, next, &warnings));
    }
    let mut warnings = Vec::new();
    let result = sim.store().update(&k, |current| {
        // A user's replace or patch reworks the whole object, as plain JSON.
        let current = current.to_value();
        let (next, w) = compute(&current)?;
        warnings = w;
        if unchanged(&current, &next) {
            return Ok(None);
        }
        Object::from_value(next).map(Some).ok_or_else(|| KubeError::bad_request("the object is not a JSON object"))
    });
    match result {
        Ok(obj) => Ok(with_warnings(StatusCode::OK, obj.as_ref(), &warnings)),
        Err(WriteError::NotFound) => Err(KubeError::not_found(res, name)),
        Err(WriteError::Rejected(e)) => Err(e),
        Err(WriteError::AlreadyExists) => Err(KubeError::already_exists(res, name)),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn replace(
    sim: Sim,
    res: Resource,
    ns: String,
    name: String,
    q: WriteQuery,
    h: HeaderMap,
    body: Bytes,
    status_only: bool,
) -> Response {
    let proposed = match parse_body(&h, &body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    write(&sim, res, &ns, &name, &q, |cur| next_object(res, cur, proposed.clone(), status_only, &q))
        .unwrap_or_else(|e| e.into_response())
}

enum PatchKind {
    Merge,
    Json,
    Apply,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    sim: Sim,
    res: Resource,
    ns: String,
    name: String,
    q: WriteQuery,
    h: HeaderMap,
    body: Bytes,
    status_only: bool,
) -> Response {
    let ct = content_type(&h);
    let kind = if ct.starts_with("application/merge-patch+json") {
        PatchKind::Merge
    } else if ct.starts_with("application/json-patch+json") {
        PatchKind::Json
    } else if ct.starts_with("application/apply-patch+yaml") {
        PatchKind::Apply
    } else if ct.starts_with("application/strategic-merge-patch+json") && res == Resource::Pod {
        PatchKind::Merge
    } else {
        return KubeError::unsupported_media_type(&ct).into_response();
    };
    let patch_doc = match parse_body(&h, &body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if matches!(kind, PatchKind::Apply) {
        if q.field_manager.as_deref().unwrap_or("").is_empty() {
            return KubeError::bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
                .into_response();
        }
        // Server-side apply creates what does not exist.
        if !status_only && sim.store().get(&key(res, &ns, &name)).is_none() {
            let mut obj = patch_doc;
            obj["metadata"]["name"] = json!(name);
            return create(sim, res, ns, q, HeaderMap::new(), Bytes::from(obj.to_string()));
        }
    }
    write(&sim, res, &ns, &name, &q, |cur| {
        let mut patched = cur.clone();
        if let Some(m) = patched["metadata"].as_object_mut() {
            // A patch only carries a resourceVersion when the client wants the precondition.
            m.remove("resourceVersion");
        }
        match kind {
            PatchKind::Merge | PatchKind::Apply => operator::merge(&mut patched, &patch_doc),
            PatchKind::Json => {
                patch::json_patch(&mut patched, &patch_doc).map_err(|e| KubeError::new(422, "Invalid", e))?
            }
        }
        next_object(res, cur, patched, status_only, &q)
    })
    .unwrap_or_else(|e| e.into_response())
}

pub(crate) fn delete(sim: Sim, res: Resource, ns: String, name: String, q: WriteQuery, body: Bytes) -> Response {
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return KubeError::bad_request(format!("error decoding DeleteOptions: {e}")).into_response(),
        }
    };
    let k = key(res, &ns, &name);
    let Some(current) = sim.store().get(&k) else { return KubeError::not_found(res, &name).into_response() };
    let pre = &options["preconditions"];
    let uid = current["metadata"]["uid"].as_str().map(str::to_owned);
    for (field, actual) in [("uid", uid), ("resourceVersion", current.resource_version())] {
        if let Some(want) = pre[field].as_str()
            && Some(want) != actual.as_deref()
        {
            return KubeError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: {field} in precondition: {want}, {field} in object meta: {}",
                    actual.as_deref().unwrap_or("")
                ),
            )
            .into_response();
        }
    }
    let dry = q.dry_run.as_deref() == Some("All")
        || options["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
    let mut shown = current.as_ref().clone();
    shown["metadata"]["deletionTimestamp"] = json!(crate::clock::rfc3339_now());
    if dry {
        return Json(shown).into_response();
    }
    let policy = options["propagationPolicy"].as_str().unwrap_or("Background");
    if options["orphanDependents"] == Value::Bool(true) && policy != "Orphan" {
        return KubeError::bad_request("orphanDependents and propagationPolicy are mutually exclusive").into_response();
    }
    if policy == "Foreground" {
        shown["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
    }
    if res == Resource::SparkApplication {
        if policy == "Orphan" {
            sim.take_pods_of(&ns, &name);
        } else {
            operator::remove_pods_of(&sim, &ns, &name);
        }
    }
    if res == Resource::Pod {
        sim.inner.logs.remove(&ns, &name);
    }
    sim.store().delete(&k);
    Json(shown).into_response()
}
