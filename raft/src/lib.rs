//! The replicated store of bpg.
//!
//! Owns: the openraft type configuration ([`TypeConfig`]), the [`model`] of jobs, clusters'
//! dynamic state and the idempotency index with its deterministic `apply`, the log in segment
//! files and the state machine in redb ([`Store`]), snapshots, and the node-to-node Raft RPC ([`serve_rpc`],
//! [`NetworkFactory`]). The rest of bpg talks to it through [`RaftNode`].
//!
//! Knows nothing of HTTP API shapes or Kubernetes: see `router` and `api`.
//!
//! Start reading at [`model`] (what is replicated), then [`RaftNode`] (how it is used), then
//! `store` (how it is kept). `DESIGN.md` in this crate gives the invariants and trade-offs.

mod batch;
mod facade;
pub mod model;
mod network;
mod store;
mod typ;

pub use facade::{AdminError, LeaderInfo, RaftNode, RaftSettings, RaftStatus, ReadError, StartError, WriteError};
pub use network::{ClusterSecret, NetworkFactory, serve_rpc};
pub use store::{Scan, SnapshotFile, StateReader, Store, StoreError, StoreOptions};
pub use typ::{NodeId, NodeInfo, TypeConfig};
