//! `POST {context}/spark` and `DELETE {context}/spark/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use bpg_router::naming::cluster_of;
use bpg_router::plan::Submitter;
use bpg_router::request::SubmitRequest;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::jobs::may_see;
use crate::state::AppState;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubmitQuery {
    /// The user Airflow system accounts submit for.
    dag_user: Option<String>,
}

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Whether a body that is not JSON is really a path (`curl -d /path` instead of `-d @/path`).
fn looks_like_file_path(body: &str) -> bool {
    let s = body.trim();
    let s = s
        .strip_prefix('~')
        .or_else(|| s.strip_prefix(|c: char| c.is_ascii_alphabetic()).filter(|r| r.starts_with('/')))
        .unwrap_or(s);
    s.starts_with('/')
        && s.len() > 1
        && s.split('/')
            .skip(1)
            .all(|seg| seg.is_empty() || seg.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
}

/// Parses the body as YAML when the Content-Type says so, else as JSON.
pub(crate) fn parse_request(headers: &HeaderMap, body: &[u8]) -> ApiResult<SubmitRequest> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("the request body is not UTF-8".into()))?;
    if content_type.contains("yaml") {
        return serde_saphyr::from_str(text).map_err(|e| ApiError::BadRequest(format!("Invalid YAML request: {e}")));
    }
    serde_json::from_str(text).map_err(|e| {
        if looks_like_file_path(text) {
            ApiError::BadRequest(format!(
                "The request body looks like a file path ({}), not JSON; with curl, send the file's content with -d @{}",
                text.trim(),
                text.trim()
            ))
        } else {
            ApiError::BadRequest(format!("Invalid JSON request: {e}"))
        }
    })
}

pub(crate) async fn submit(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let request = parse_request(&headers, &body)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be printable ASCII".into()))?;
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY || k.contains('\0') {
                return Err(ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                )));
            }
            Some(k.to_owned())
        }
    };
    let submitter = Submitter { user: &who.name, dag_user: q.dag_user.as_deref(), now_ms: crate::now_ms() };
    let id = app.gateway.submit(&request, &submitter, key).await?;
    tracing::info!(submission = %id, user = %who.name, "submitted");
    Ok(Json(json!({"submissionId": id})))
}

/// Deletes (kills) a submission. Answers `{"submissionId": id}` whether or not it existed, as
/// BPG does, but only after a linearizable read found it absent; only its owner or an admin
/// may delete it.
pub(crate) async fn delete(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cluster = cluster_of(&id).map_err(ApiError::BadRequest)?;
    if app.gateway.cluster(cluster).is_none() {
        return Err(ApiError::BadRequest(format!("Cluster {cluster} (in submissionId: {id}) not exists")));
    }
    let mut job = app.raft.state().job(&id)?;
    if job.is_none() {
        // "Not found" must come from an up-to-date replica: a leader cut off from its quorum
        // (or one that has not applied the submission yet) would otherwise answer success for
        // a job that exists, and the caller would believe it killed.
        app.raft.linearize().await?;
        job = app.raft.state().job(&id)?;
    }
    if let Some(job) = job {
        if !may_see(&who, &job) {
            return Err(ApiError::Forbidden(format!("submission {id} belongs to another user")));
        }
        if job.deleted_at_ms.is_none() {
            app.gateway.delete(&id).await?;
            tracing::info!(submission = %id, user = %who.name, "deleted");
        }
    }
    Ok(Json(json!({"submissionId": id})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_are_recognised() {
        for p in ["/home/me/job.json", "~/jobs/pi.yaml", "C/tmp/x"] {
            assert!(looks_like_file_path(p), "{p}");
        }
        for p in ["{\"a\":1}", "hello", "/", "/a b"] {
            assert!(!looks_like_file_path(p), "{p}");
        }
    }

    #[test]
    fn yaml_bodies_parse_with_the_same_schema() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/yaml".parse().unwrap());
        let r = parse_request(&h, b"sparkVersion: 3.5\ndriver:\n  cores: \"2\"\nsparkConf:\n  a: 1\n").unwrap();
        assert_eq!(r.spark_version.unwrap().0, "3.5");
        assert_eq!(r.driver.unwrap().cores.unwrap().0, 2);
        assert_eq!(r.spark_conf.unwrap()["a"].0, "1");
        let e = parse_request(&h, b"bogus: 1\n").unwrap_err();
        assert!(e.to_string().starts_with("Invalid YAML request"), "{e}");
    }
}
