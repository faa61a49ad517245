//! Cluster membership and Raft status, for operators (`/admin/raft...`, admin only).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use bpg_raft::{NodeId, NodeInfo, RaftStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::json::AppJson;
use crate::state::AppState;

/// `GET /admin/raft`: this node's view of the cluster.
pub(crate) async fn status(State(app): State<AppState>, _: Admin) -> Json<RaftStatus> {
    Json(app.raft.status())
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AddLearner {
    id: NodeId,
    raft_addr: String,
    api_addr: String,
}

/// `POST /admin/raft/learners`: adds a node as a learner and waits until it has caught up.
pub(crate) async fn add_learner(
    State(app): State<AppState>,
    _: Admin,
    AppJson(req): AppJson<AddLearner>,
) -> ApiResult<Json<Value>> {
    check_addr("raftAddr", &req.raft_addr)?;
    check_addr("apiAddr", &req.api_addr)?;
    let node = NodeInfo { raft_addr: req.raft_addr, api_addr: req.api_addr };
    app.raft.add_learner(req.id, node).await?;
    Ok(Json(json!({"learner": req.id})))
}

/// `POST /admin/raft/join`: adds a node as a learner, waits until it caught up, then makes it
/// a voter. Nodes call it for themselves on start when they are not members (scaling up).
pub(crate) async fn join(
    State(app): State<AppState>,
    _: Admin,
    AppJson(req): AppJson<AddLearner>,
) -> ApiResult<Json<Value>> {
    check_addr("raftAddr", &req.raft_addr)?;
    check_addr("apiAddr", &req.api_addr)?;
    let node = NodeInfo { raft_addr: req.raft_addr, api_addr: req.api_addr };
    if !app.raft.status().voters.contains_key(&req.id) {
        app.raft.add_learner(req.id, node).await?;
        app.raft.add_voter(req.id).await?;
        tracing::info!(node = req.id, "node joined as a voter");
    }
    Ok(Json(json!({"voter": req.id})))
}

/// `DELETE /admin/raft/members/{id}`: removes a node from the cluster (before scaling down).
pub(crate) async fn remove_member(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<NodeId>,
) -> ApiResult<Json<Value>> {
    app.raft.remove_voter(id).await?;
    tracing::info!(node = id, "node removed from the cluster");
    Ok(Json(json!({"removed": id})))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeMembership {
    voters: BTreeSet<NodeId>,
}

/// `POST /admin/raft/membership`: makes exactly `voters` the voting members.
pub(crate) async fn change_membership(
    State(app): State<AppState>,
    _: Admin,
    AppJson(req): AppJson<ChangeMembership>,
) -> ApiResult<Json<Value>> {
    if req.voters.is_empty() {
        return Err(ApiError::BadRequest("voters must not be empty".into()));
    }
    let known = app.raft.status();
    if let Some(unknown) =
        req.voters.iter().find(|id| !known.voters.contains_key(id) && !known.learners.contains_key(id))
    {
        return Err(ApiError::BadRequest(format!(
            "node {unknown} is neither a voter nor a learner; add it as a learner first"
        )));
    }
    app.raft.change_membership(req.voters.clone()).await?;
    Ok(Json(json!({"voters": req.voters})))
}

/// `POST /admin/raft/snapshot`: builds a snapshot on this node now.
pub(crate) async fn snapshot(State(app): State<AppState>, _: Admin) -> ApiResult<Json<Value>> {
    app.raft.trigger_snapshot().await?;
    Ok(Json(json!({"snapshot": "triggered"})))
}

fn check_addr(field: &str, addr: &str) -> ApiResult<()> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(ApiError::BadRequest(format!("{field} must be host:port, got {addr:?}"))),
    }
}
