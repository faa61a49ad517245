//! The HTTP surface of bpg.
//!
//! Owns: the BPG-compatible endpoints under the context path (submissions, status, lists,
//! logs), the admin endpoints (cluster weights, Raft membership), authentication ([`auth`]),
//! the error body ([`ApiError`]), forwarding to the leader ([`forward`]), metrics and the
//! OpenAPI document. Two routers: [`app`] for the API listener and [`admin_app`] for the admin
//! listener (probes, metrics).
//!
//! Does not store anything itself (see `bpg_raft`) nor talk to Kubernetes (see `bpg_router`).
//! Start reading at `routes.rs`.

pub mod auth;
mod clusters;
mod error;
pub mod forward;
mod health;
mod jobs;
mod json;
pub mod metrics;
mod misc;
mod openapi;
mod raft_admin;
mod ratelimit;
mod routes;
mod state;
mod submissions;
mod views;

pub use clusters::MAX_WEIGHT;
pub use error::{ApiError, ApiResult};
pub use forward::Forwarder;
pub use metrics::ApiMetrics;
pub use misc::BuildInfo;
pub use routes::{admin_app, app};
pub use state::AppState;

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
