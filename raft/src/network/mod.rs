//! Node-to-node Raft RPC over TCP, on the Raft listener only.
//!
//! One connection per replication stream (and per election), length-prefixed bincode frames,
//! one request at a time ([`wire`] has the protocol). A connection opens with the shared
//! cluster secret; the server refuses anything else. This module does *not* carry client
//! traffic: followers forward client writes to the leader's API listener (the `api` crate), so
//! faults can cut Raft and client traffic separately.

mod client;
mod secret;
mod server;
mod wire;

pub use client::NetworkFactory;
pub use secret::ClusterSecret;
pub use server::serve_rpc;
