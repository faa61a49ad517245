//! Version, the authenticated health check, and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::state::AppState;

/// What `GET {context}/admin/version` reports, as the binary fills it in
/// (`bpg_node::build_info`): its version, commit and build time.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    pub git_commit: String,
    pub build_time: String,
}

pub(crate) async fn version(State(app): State<AppState>) -> Response {
    let b = &app.build;
    let body = json!({"version": b.version, "gitCommit": b.git_commit, "buildTime": b.build_time});
    ([(header::CONTENT_TYPE, "application/json")], serde_json::to_string_pretty(&body).unwrap_or_default())
        .into_response()
}

pub(crate) async fn healthcheck_status(_: Caller) -> Json<Value> {
    Json(json!({"status": "OK"}))
}

pub(crate) async fn openapi_json(State(app): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&app.context_path))
}

pub(crate) async fn openapi_yaml(State(app): State<AppState>) -> Response {
    let yaml = serde_saphyr::to_string(&crate::openapi::document(&app.context_path)).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response()
}
