//! Node-to-node Raft RPC over HTTP, on the Raft listener only.
//!
//! Requests and responses are bincode (`application/octet-stream`). Every request carries the
//! shared cluster secret as a bearer token; the server refuses anything else with 401. This
//! module does *not* carry client traffic: followers forward client writes to the leader's API
//! listener (the `api` crate), so faults can cut Raft and client traffic separately.

mod client;
mod secret;
mod server;

pub use client::NetworkFactory;
pub use secret::ClusterSecret;
pub use server::rpc_router;

/// Path prefix of every Raft RPC route.
pub(crate) const RPC_PREFIX: &str = "/raft";
