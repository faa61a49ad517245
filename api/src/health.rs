//! The admin listener: probes and operational views, unauthenticated (keep it off public
//! networks). Dropwizard-compatible `/healthcheck` and `/ping` for BPG's probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// A node this many entries behind the leader is not ready.
const READY_MAX_LAG: u64 = 64;
/// A leader that has not heard from a quorum for this long is not ready.
const READY_MAX_QUORUM_SILENCE_MS: u64 = 1000;

/// `GET /healthcheck`: named checks; 500 when one is unhealthy.
pub(crate) async fn healthcheck(State(app): State<AppState>) -> impl IntoResponse {
    let status = app.raft.status();
    let clusters_ok = app.gateway.clusters().next().is_some();
    let raft_ok = status.current_leader.is_some();
    let body = json!({
        "deadlocks": {"healthy": true},
        "sparkClusters": {"healthy": clusters_ok, "message": if clusters_ok { "" } else { "no sparkClusters configured" }},
        "raft": {"healthy": raft_ok, "message": if raft_ok { format!("leader is node {}", status.current_leader.unwrap_or_default()) } else { "no leader known".to_owned() }},
    });
    let code = if clusters_ok && raft_ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
    (code, Json(body))
}

pub(crate) async fn ping() -> &'static str {
    "pong\n"
}

/// `GET /live`: the process answers.
pub(crate) async fn live() -> &'static str {
    "ok\n"
}

/// `GET /ready`: a leader is known and this node is caught up with it: the leader has
/// replicated its log to this node and this node has applied it (within a few entries). A
/// leader is ready while a quorum acknowledges it. Restart the next node of a rolling update
/// only when this answers 200, or an election may have to wait for a lagging node.
pub(crate) async fn ready(State(app): State<AppState>) -> impl IntoResponse {
    match not_ready_because(&app).await {
        None => (StatusCode::OK, Json(json!({"ready": true, "leader": app.raft.leader().map(|l| l.id)}))),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "reason": why}))),
    }
}

async fn not_ready_because(app: &AppState) -> Option<String> {
    let s = app.raft.status();
    let Some(leader) = app.raft.leader() else { return Some("no leader known".into()) };
    if leader.id == s.id {
        return match s.millis_since_quorum_ack {
            Some(ms) if ms <= READY_MAX_QUORUM_SILENCE_MS => None,
            other => Some(format!("leader without a recent quorum acknowledgement ({other:?} ms)")),
        };
    }
    let Some(view) = app.forwarder.leader_json(&leader, "/admin/raft").await else {
        return Some(format!("the leader (node {}) does not answer", leader.id));
    };
    let leader_last = view["last_log_index"].as_u64().unwrap_or(0);
    let Some(matched) = view["replication"][s.id.to_string()].as_u64() else {
        return Some("the leader has not replicated to this node yet".into());
    };
    let applied = s.last_applied_index.unwrap_or(0);
    if matched + READY_MAX_LAG < leader_last {
        Some(format!("log {} entries behind the leader", leader_last - matched))
    } else if applied + READY_MAX_LAG < matched {
        Some(format!("state machine {} entries behind the log", matched - applied))
    } else {
        None
    }
}

/// `GET /raft` on the admin listener: the same view as `GET /admin/raft`, for probes and tools.
pub(crate) async fn raft_status(State(app): State<AppState>) -> impl IntoResponse {
    Json(app.raft.status())
}
