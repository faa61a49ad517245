//! Reading submissions: status and both lists from the replicated state (any node answers
//! without calling Kubernetes); spec, driver, describe and logs from the job's cluster.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bpg_raft::model::Job;
use bpg_router::naming::{cluster_of, normalize_label_value};
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
    let lines = app.raft.state().jobs().filter_map(move |j| {
        let job = match j {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "listing jobs stopped");
                return None;
            }
        };
        if job.deleted_at_ms.is_some() {
            return None;
        }
        if let Some(w) = &wanted
            && job.application_name.as_deref().map(normalize_label_value).as_ref() != Some(w)
        {
            return None;
        }
        let mut line = summary(&job, &context(&app, &job)).to_string();
        line.push('\n');
        Some(Ok::<_, std::convert::Infallible>(line))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(futures::stream::iter(lines))).into_response())
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
