//! Every route of both listeners, on one screen, with who may call it.

use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::state::AppState;
use crate::{clusters, forward, health, raft_admin};

/// The API listener: BPG endpoints under the context path, plus Raft administration.
/// Every route goes through leader forwarding.
pub fn app(state: AppState) -> Router {
    // Under the context path (default /skatev2).
    let bpg = Router::new()
        // admin (Admin extractor)
        .route("/admin/clusters", get(clusters::list))
        .route("/admin/clusters/{id}", get(clusters::get).put(clusters::update));

    // Raft administration (Admin extractor).
    let raft = Router::new()
        .route("/admin/raft", get(raft_admin::status))
        .route("/admin/raft/learners", post(raft_admin::add_learner))
        .route("/admin/raft/membership", post(raft_admin::change_membership))
        .route("/admin/raft/snapshot", post(raft_admin::snapshot));

    let routes = if state.context_path.is_empty() { raft.merge(bpg) } else { raft.nest(&state.context_path, bpg) };
    routes.layer(middleware::from_fn_with_state(state.clone(), forward::layer)).with_state(state)
}

/// The admin listener: probes and operational views, no authentication.
pub fn admin_app(state: AppState) -> Router {
    Router::new()
        .route("/healthcheck", get(health::healthcheck))
        .route("/ping", get(health::ping))
        .route("/live", get(health::live))
        .route("/ready", get(health::ready))
        .route("/raft", get(health::raft_status))
        .with_state(state)
}
