use std::sync::Arc;

use axum::extract::FromRef;
use bpg_raft::RaftNode;
use bpg_router::ClusterConfig;

use crate::auth::Auth;
use crate::forward::Forwarder;

/// Everything a handler may need, built once by `node`. Cheap to clone (all `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    /// The replicated store: writes go through it, reads come from its local replica.
    pub raft: RaftNode,
    pub auth: Arc<Auth>,
    /// Sends requests this node cannot serve to the leader.
    pub forwarder: Forwarder,
    /// The clusters of the config file, in file order.
    pub clusters: Arc<Vec<ClusterConfig>>,
    /// Prefix of the BPG endpoints, e.g. `/skatev2` (no trailing slash; empty for none).
    pub context_path: Arc<str>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
