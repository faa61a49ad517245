//! Decisions and Kubernetes for bpg.
//!
//! Owns: the clusters bpg routes to ([`ClusterConfig`]), queue resolution and tokens, weighted
//! cluster selection, the request → `SparkApplication` translation, one kube client per
//! cluster, the leader-only dispatcher and status watcher, cluster health. Uses the job and
//! cluster types of `bpg_raft::model` and proposes through `bpg_raft::RaftNode`; `bpg_raft`
//! never imports kube.
//!
//! Knows nothing of HTTP API shapes (see `api`) or Raft internals. The pure parts —
//! [`select`], [`translate`], [`plan`], [`queue`] — need no runtime; start reading there.

pub mod config;
pub mod naming;
pub mod plan;
pub mod queue;
pub mod request;
pub mod select;
pub mod translate;

pub use config::{ClusterConfig, EffectiveCluster, Policy, QueueConfig, SparkImage};
pub mod clusters;
pub mod dispatch;
pub mod gateway;
pub mod housekeeping;
pub mod metrics;
pub mod observe;
pub mod watcher;

pub use gateway::{Gateway, GatewayError, GatewaySettings};
