//! Every route of both listeners, on one screen, with who may call it.

use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::state::AppState;
use crate::{clusters, forward, health, jobs, metrics, misc, raft_admin, submissions};

/// The API listener: BPG endpoints under the context path, plus Raft administration.
/// Every route goes through leader forwarding.
pub fn app(state: AppState) -> Router {
    // Under the context path (default /skatev2).
    let bpg = Router::new()
        // any authenticated user (Caller), on their own jobs (admins: on all)
        .route("/spark", post(submissions::submit))
        .route("/spark/mySubmissions", get(jobs::my_submissions))
        .route("/spark/{id}", axum::routing::delete(submissions::delete))
        .route("/spark/{id}/status", get(jobs::get_status))
        .route("/spark/{id}/spec", get(jobs::get_spec))
        .route("/spark/{id}/driver", get(jobs::get_driver))
        .route("/spark/{id}/describe", get(jobs::describe))
        .route("/log", get(jobs::log))
        .route("/healthcheck/status", get(misc::healthcheck_status))
        // admins (Admin)
        .route("/admin/submissions", get(jobs::admin_submissions))
        .route("/admin/clusters", get(clusters::list))
        .route("/admin/clusters/{id}", get(clusters::get).put(clusters::update))
        // anyone
        .route("/admin/version", get(misc::version))
        .route("/openapi.json", get(misc::openapi_json))
        .route("/openapi.yaml", get(misc::openapi_yaml));

    // Raft administration (Admin).
    let raft = Router::new()
        .route("/admin/raft", get(raft_admin::status))
        .route("/admin/raft/learners", post(raft_admin::add_learner))
        .route("/admin/raft/membership", post(raft_admin::change_membership))
        .route("/admin/raft/join", post(raft_admin::join))
        .route("/admin/raft/members/{id}", axum::routing::delete(raft_admin::remove_member))
        .route("/admin/raft/snapshot", post(raft_admin::snapshot));

    let routes = if state.context_path.is_empty() { raft.merge(bpg) } else { raft.nest(&state.context_path, bpg) };
    routes
        .layer(middleware::from_fn_with_state(state.clone(), forward::layer))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

/// The admin listener: probes, metrics and operational views, no authentication.
pub fn admin_app(state: AppState) -> Router {
    Router::new()
        .route("/healthcheck", get(health::healthcheck))
        .route("/ping", get(health::ping))
        .route("/live", get(health::live))
        .route("/ready", get(health::ready))
        .route("/raft", get(health::raft_status))
        .route("/metrics", get(metrics::scrape))
        .with_state(state)
}
