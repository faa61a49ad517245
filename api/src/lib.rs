//! The HTTP surface of bpg.
//!
//! Owns: the BPG-compatible endpoints under the context path, the admin endpoints (cluster
//! weights, Raft membership), authentication ([`auth`]), the error body ([`ApiError`]) and
//! forwarding to the leader ([`forward`]). Two routers: [`app`] for the API listener and
//! [`admin_app`] for the admin listener (probes).
//!
//! Does not store anything itself (see `bpg_raft`) nor talk to Kubernetes (see `bpg_router`).
//! Start reading at `routes.rs`.

pub mod auth;
mod clusters;
mod error;
pub mod forward;
mod health;
mod json;
mod raft_admin;
mod routes;
mod state;

pub use clusters::MAX_WEIGHT;
pub use error::{ApiError, ApiResult};
pub use forward::Forwarder;
pub use routes::{admin_app, app};
pub use state::AppState;
