//! Reading submissions: status and both lists from the replicated state (any node answers
//! without calling Kubernetes); spec, driver, describe and logs from the job's cluster.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bpg_raft::model::Job;
use bpg_router::naming::{cluster_of, normalize_label_value};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, Caller, Identity};
use crate::clusters::ReadQuery;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::{ViewContext, status, summary};

/// The owner, the user it runs as, and admins may see and delete a job.
pub(crate) fn may_see(who: &Identity, job: &Job) -> bool {
    who.admin || job.owner == who.name || job.proxy_user == who.name
}

fn context<'a>(app: &'a AppState, job: &Job) -> ViewContext<'a> {
    ViewContext {
        cluster: app.gateway.cluster(&job.cluster).map(|c| &c.config),
        history_dns: app.gateway.policy().spark_history_dns.as_deref(),
        now_ms: crate::now_ms(),
    }
}

/// The job `id`, if the caller may see it: 400 for a malformed id or unknown cluster, 404
/// when there is no such (undeleted) job, 403 when it is someone else's.
fn visible_job(app: &AppState, who: &Identity, id: &str) -> ApiResult<Job> {
    let cluster = cluster_of(id).map_err(ApiError::BadRequest)?;
    if app.gateway.cluster(cluster).is_none() {
        return Err(ApiError::BadRequest(format!("Cluster {cluster} (in submissionId: {id}) not exists")));
    }
    let job = app
        .raft
        .state()
        .job(id)?
        .filter(|j| j.deleted_at_ms.is_none())
        .ok_or_else(|| ApiError::NotFound("HTTP 404 Not Found".into()))?;
    if !may_see(who, &job) {
        return Err(ApiError::Forbidden(format!("submission {id} belongs to another user")));
    }
    Ok(job)
}

pub(crate) async fn get_status(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Json<Value>> {
    q.prepare(&app).await?;
    let job = visible_job(&app, &who, &id)?;
    Ok(Json(Value::Object(status(&job, &context(&app, &job)))))
}

fn without_env(mut spec: Value) -> Value {
    for role in ["driver", "executor"] {
        if let Some(pod) = spec.get_mut(role).and_then(Value::as_object_mut) {
            pod.remove("env");
        }
    }
    spec
}

async fn live_spec(app: &AppState, job: &Job) -> ApiResult<Value> {
    let object = app.gateway.live_object(job).await?.ok_or_else(|| ApiError::NotFound("HTTP 404 Not Found".into()))?;
    Ok(without_env(object["spec"].clone()))
}

pub(crate) async fn get_spec(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = visible_job(&app, &who, &id)?;
    Ok(Json(live_spec(&app, &job).await?))
}

pub(crate) async fn get_driver(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = visible_job(&app, &who, &id)?;
    let Some(pod_name) = job.observed.as_ref().and_then(|o| o.driver_pod.clone()) else { return Ok(Json(json!({}))) };
    let Some(pod) = app.gateway.pod(&job, &pod_name).await? else { return Ok(Json(json!({}))) };
    let mut out = json!({"podName": pod_name});
    if let Some(start) = pod.status.and_then(|s| s.start_time) {
        out["startTime"] = json!(start.0.as_millisecond());
    }
    Ok(Json(out))
}

pub(crate) async fn describe(
    State(app): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let job = visible_job(&app, &who, &id)?;
    let spec = live_spec(&app, &job).await?;
    let mut text = String::from("--- Spark Spec ---\n");
    text.push_str(&serde_saphyr::to_string(&spec).unwrap_or_else(|e| format!("(spec not printable: {e})\n")));
    let driver = job.observed.as_ref().and_then(|o| o.driver_pod.clone()).unwrap_or_else(|| format!("{id}-driver"));
    for (title, name) in [("Spark Application Events", id.as_str()), ("Spark Driver Events", driver.as_str())] {
        text.push_str(&format!("--- {title} ---\n"));
        for e in app.gateway.events(&job, name).await? {
            let at = e.last_timestamp.map(|t| t.0.to_string()).unwrap_or_default();
            text.push_str(&format!("{at} {} {}\n", e.reason.unwrap_or_default(), e.message.unwrap_or_default()));
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], text).into_response())
}

pub(crate) async fn my_submissions(State(app): State<AppState>, Caller(who): Caller) -> ApiResult<Json<Value>> {
    if !app.limits.my_submissions.try_take() {
        return Err(ApiError::TooManyRequests(
            "Too many requests for mySubmissions endpoint (limit: 20 requests per second)".into(),
        ));
    }
    let owner = who.name.clone();
    let jobs = off_runtime(app.raft.state().read_blocking(move |state| state.jobs_of_owner(&owner)).await)??;
    let submissions: Vec<Value> =
        jobs.iter().filter(|j| j.deleted_at_ms.is_none()).map(|j| summary(j, &context(&app, j))).collect();
    Ok(Json(json!({"submissions": submissions})))
}

/// The outcome of [`bpg_raft::StateReader::read_blocking`] as the API reports it.
fn off_runtime<T>(read: Result<T, tokio::task::JoinError>) -> ApiResult<T> {
    read.map_err(|e| ApiError::Internal(format!("a state read failed: {e}")))
}

#[derive(Deserialize, Debug, Default)]
pub(crate) struct NameQuery {
    name: Option<String>,
}

/// NDJSON, one `SubmissionSummary` per line, streamed.
pub(crate) async fn admin_submissions(
    State(app): State<AppState>,
    _: Admin,
    Query(q): Query<NameQuery>,
) -> ApiResult<Response> {
    if !app.limits.admin_submissions.try_take() {
        return Err(ApiError::TooManyRequests(
            "Too many requests for admin/submissions endpoint (limit: 20 requests per second)".into(),
        ));
    }
    let wanted = q.name.filter(|n| !n.is_empty()).map(|n| normalize_label_value(&n));
    // The scan covers every job, so it runs on a blocking thread and hands the body over in
    // chunks; a slow reader holds back the scan (the channel is bounded), and a reader that
    // goes away stops it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(LISTING_CHUNKS_IN_FLIGHT);
    let scan = app.clone();
    tokio::spawn(async move {
        let state = scan.raft.state().clone();
        let listed = state.read_blocking(move |state| {
            let lines = state.jobs().filter_map(|j| {
                let job = j.map_err(|e| tracing::error!(error = %e, "listing jobs: a record was skipped")).ok()?;
                let listed = job.deleted_at_ms.is_none()
                    && wanted
                        .as_ref()
                        .is_none_or(|w| job.application_name.as_deref().map(normalize_label_value).as_ref() == Some(w));
                listed.then(|| summary(&job, &context(&scan, &job)).to_string())
            });
            send_in_chunks(lines, LISTING_CHUNK_BYTES, |chunk| tx.blocking_send(chunk).is_ok())
        });
        if let Err(e) = listed.await {
            tracing::error!(error = %e, "listing jobs failed");
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

/// About how many bytes of NDJSON the admin listing sends at a time.
const LISTING_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks the listing's scan may run ahead of the reader.
const LISTING_CHUNKS_IN_FLIGHT: usize = 4;

/// `lines`, each followed by a newline, gathered into chunks of at least `chunk_bytes` (the
/// last may be shorter) that each end at a line's end. Stops early when `send` returns false.
fn send_in_chunks(lines: impl Iterator<Item = String>, chunk_bytes: usize, mut send: impl FnMut(Bytes) -> bool) {
    let mut chunk = Vec::with_capacity(chunk_bytes);
    for line in lines {
        chunk.extend_from_slice(line.as_bytes());
        chunk.push(b'\n');
        if chunk.len() >= chunk_bytes
            && !send(Bytes::from(std::mem::replace(&mut chunk, Vec::with_capacity(chunk_bytes))))
        {
            return;
        }
    }
    if !chunk.is_empty() {
        send(Bytes::from(chunk));
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogQuery {
    sub_id: Option<String>,
    app_id: Option<String>,
    exec_id: Option<String>,
}

const NO_LOG: &str = "Cannot find matched log files. Please try again in 5 minutes if this is a new job which was just started within 5 minutes.";

/// `GET {context}/log`: a driver's or executor's live log, followed while it runs.
pub(crate) async fn log(
    State(app): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let sub_id = q.sub_id.filter(|s| !s.is_empty());
    let app_id = q.app_id.filter(|s| !s.is_empty());
    for (name, v) in [("subId", &sub_id), ("appId", &app_id)] {
        if let Some(v) = v
            && v.len() < 32
        {
            return Err(ApiError::BadRequest(format!("{name} {v:?} is too short to be one (at least 32 characters)")));
        }
    }
    let id = match (sub_id, app_id) {
        (Some(id), _) => id,
        (None, Some(app_id)) => {
            let wanted = app_id.clone();
            let found = app.raft.state().read_blocking(move |state| {
                state
                    .jobs()
                    .filter_map(Result::ok)
                    .find(|j| j.observed.as_ref().and_then(|o| o.spark_application_id.as_deref()) == Some(&*wanted))
                    .map(|j| j.id)
            });
            off_runtime(found.await)?
                .ok_or_else(|| ApiError::BadRequest(format!("no submission found for application id {app_id}")))?
        }
        (None, None) => return Err(ApiError::BadRequest("subId or appId is required".into())),
    };
    let job = visible_job(&app, &who, &id)?;
    let observed = job.observed.clone().unwrap_or_default();
    let pod = match q.exec_id.as_deref().filter(|e| !e.is_empty() && !e.ends_with("driver")) {
        None => observed.driver_pod.clone().unwrap_or_else(|| format!("{id}-driver")),
        Some(exec) => {
            let suffix = format!("exec-{exec}");
            observed
                .executor_pods
                .iter()
                .find(|p| p.ends_with(&suffix))
                .cloned()
                .unwrap_or_else(|| format!("{id}-{suffix}"))
        }
    };
    let octet = [(header::CONTENT_TYPE, "application/octet-stream")];
    let phase = app.gateway.pod(&job, &pod).await?.and_then(|p| p.status).and_then(|s| s.phase);
    match phase.as_deref() {
        Some(p) if p != "Pending" && p != "Unknown" => {
            let stream = app.gateway.log(&job, &pod).await?;
            Ok((octet, Body::from_stream(stream)).into_response())
        }
        _ => Ok((octet, NO_LOG).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(lines: &[String], chunk_bytes: usize, stop_after: usize) -> Vec<Bytes> {
        let mut sent = Vec::new();
        send_in_chunks(lines.iter().cloned(), chunk_bytes, |c| {
            sent.push(c);
            sent.len() < stop_after
        });
        sent
    }

    #[test]
    fn the_listing_arrives_whole_in_chunks_that_end_at_line_ends() {
        let lines: Vec<String> = (0..1000).map(|i| format!("{{\"submissionId\":\"job-{i}\"}}")).collect();
        let expected: String = lines.iter().map(|l| format!("{l}\n")).collect();
        for chunk_bytes in [1, 7, 100, 4096, 1 << 20] {
            let sent = chunks_of(&lines, chunk_bytes, usize::MAX);
            let joined: Vec<u8> = sent.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(String::from_utf8(joined).unwrap(), expected, "chunk size {chunk_bytes}");
            assert!(sent.iter().all(|c| c.ends_with(b"\n")), "chunk size {chunk_bytes}: a chunk split a line");
            let short = sent.iter().rev().skip(1).filter(|c| c.len() < chunk_bytes).count();
            assert_eq!(short, 0, "chunk size {chunk_bytes}: only the last chunk may be short");
        }
        assert!(chunks_of(&[], 100, usize::MAX).is_empty(), "no jobs, no chunks");
    }

    #[test]
    fn the_listing_stops_when_the_reader_goes_away() {
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        let sent = chunks_of(&lines, 100, 3);
        assert_eq!(sent.len(), 3, "no chunk is built after a send fails");
    }
}
