//! Decisions and Kubernetes for bpg.
//!
//! Owns: the clusters bpg routes to ([`ClusterConfig`], [`EffectiveCluster`]), weighted cluster
//! selection, the request → `SparkApplication` translation, one kube client per cluster, the
//! leader-only dispatcher and status watcher. Uses the job and cluster types of
//! `bpg_raft::model`; `bpg_raft` never imports kube.
//!
//! Knows nothing of HTTP API shapes (see `api`) or of Raft internals (it only proposes
//! commands through `bpg_raft::RaftNode`).

mod cluster;

pub use cluster::{ClusterConfig, EffectiveCluster};
