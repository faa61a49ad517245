//! `{context}/admin/clusters[/{id}]`: read and change each cluster's routing weight and
//! cordon state. Changes are replicated and survive restarts and failover.

use axum::Json;
use axum::extract::{Path, Query, State};
use bpg_raft::model::{Command, Response};
use bpg_router::EffectiveCluster;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::json::AppJson;
use crate::state::AppState;

/// Largest weight accepted; weights are relative, this only keeps sums far from overflow.
pub const MAX_WEIGHT: u32 = 1_000_000;

#[derive(Deserialize, Debug, Default)]
pub(crate) struct ReadQuery {
    /// `linearizable` reads through the leader; anything else reads the local replica.
    consistency: Option<String>,
}

impl ReadQuery {
    pub(crate) async fn prepare(&self, app: &AppState) -> ApiResult<()> {
        match self.consistency.as_deref() {
            None | Some("default") | Some("local") => Ok(()),
            Some("linearizable") => Ok(app.raft.linearize().await?),
            Some(other) => {
                Err(ApiError::BadRequest(format!("consistency must be 'linearizable' or 'local', got {other:?}")))
            }
        }
    }
}

fn effective(app: &AppState) -> ApiResult<Vec<EffectiveCluster>> {
    Ok(app.gateway.effective_clusters()?)
}

pub(crate) async fn list(State(app): State<AppState>, _: Admin, Query(q): Query<ReadQuery>) -> ApiResult<Json<Value>> {
    q.prepare(&app).await?;
    Ok(Json(json!({"clusters": effective(&app)?})))
}

pub(crate) async fn get(
    State(app): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Json<EffectiveCluster>> {
    q.prepare(&app).await?;
    effective(&app)?.into_iter().find(|c| c.id == id).map(Json).ok_or_else(|| unknown(&id))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterChange {
    weight: Option<u32>,
    cordoned: Option<bool>,
}

pub(crate) async fn update(
    State(app): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    AppJson(change): AppJson<ClusterChange>,
) -> ApiResult<Json<EffectiveCluster>> {
    let config = app.gateway.cluster(&id).map(|c| c.config.clone()).ok_or_else(|| unknown(&id))?;
    if change.weight.is_none() && change.cordoned.is_none() {
        return Err(ApiError::BadRequest("give at least one of weight, cordoned".into()));
    }
    if let Some(w) = change.weight
        && w > MAX_WEIGHT
    {
        return Err(ApiError::BadRequest(format!("weight must be between 0 and {MAX_WEIGHT}, got {w}")));
    }
    let cmd = Command::SetCluster { id: id.clone(), weight: change.weight, cordoned: change.cordoned };
    match app.raft.write(cmd).await? {
        Response::Cluster(state) => {
            tracing::info!(cluster = %id, by = %who.name, weight = ?state.weight, cordoned = state.cordoned, "cluster changed");
            let healthy = app.gateway.cluster(&id).is_some_and(|c| c.is_healthy());
            Ok(Json(EffectiveCluster { healthy, ..EffectiveCluster::new(&config, Some(&state)) }))
        }
        other => Err(ApiError::Internal(format!("unexpected response to SetCluster: {other:?}"))),
    }
}

fn unknown(id: &str) -> ApiError {
    ApiError::NotFound(format!("cluster {id:?} is not configured"))
}
