use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

use super::{ClusterSecret, RPC_PREFIX};
use crate::typ::Raft;

/// Largest RPC body accepted: a full append batch or a snapshot chunk, with room to spare.
const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone)]
struct RpcState {
    raft: Raft,
}

/// The Raft RPC routes (`/raft/append`, `/raft/vote`, `/raft/snapshot`), refusing (401) any
/// request without the cluster secret. Serve it on the Raft listener only.
pub fn rpc_router(raft: crate::RaftNode, secret: ClusterSecret) -> Router {
    let routes = Router::new()
        .route("/append", post(append))
        .route("/vote", post(vote))
        .route("/snapshot", post(snapshot))
        .with_state(RpcState { raft: raft.raw().clone() });
    Router::new()
        .nest(RPC_PREFIX, routes)
        .layer(middleware::from_fn_with_state(secret, require_secret))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
}

async fn require_secret(State(secret): State<ClusterSecret>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if secret.matches(token) => next.run(request).await,
        _ => (StatusCode::UNAUTHORIZED, "missing or wrong cluster secret\n").into_response(),
    }
}

fn reply<T: Serialize>(result: &T) -> Response {
    match bincode::serialize(result) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the response failed: {e}\n")).into_response(),
    }
}

fn bad_body(e: bincode::Error) -> Response {
    (StatusCode::BAD_REQUEST, format!("undecodable RPC body: {e}\n")).into_response()
}

async fn append(State(s): State<RpcState>, body: Bytes) -> Response {
    match bincode::deserialize(&body) {
        Ok(req) => reply(&s.raft.append_entries(req).await),
        Err(e) => bad_body(e),
    }
}

async fn vote(State(s): State<RpcState>, body: Bytes) -> Response {
    match bincode::deserialize(&body) {
        Ok(req) => reply(&s.raft.vote(req).await),
        Err(e) => bad_body(e),
    }
}

async fn snapshot(State(s): State<RpcState>, body: Bytes) -> Response {
    match bincode::deserialize(&body) {
        Ok(req) => reply(&s.raft.install_snapshot(req).await),
        Err(e) => bad_body(e),
    }
}
