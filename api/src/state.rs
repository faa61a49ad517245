use std::sync::Arc;

use axum::extract::FromRef;
use bpg_raft::RaftNode;
use bpg_router::Gateway;

use crate::auth::Auth;
use crate::forward::Forwarder;
use crate::metrics::{ApiMetrics, SharedRegistry};
use crate::misc::BuildInfo;
use crate::ratelimit::ListLimits;

/// Everything a handler may need, built once by `node`. Cheap to clone (all `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    /// The replicated store: writes go through it, reads come from its local replica.
    pub raft: RaftNode,
    /// Submissions, deletions and reads from clusters.
    pub gateway: Arc<Gateway>,
    pub auth: Arc<Auth>,
    /// Sends requests this node cannot serve to the leader.
    pub forwarder: Forwarder,
    /// Prefix of the BPG endpoints, e.g. `/skatev2` (no trailing slash; empty for none).
    pub context_path: Arc<str>,
    pub metrics: ApiMetrics,
    /// Every series of the node (API and router), for `/metrics`.
    pub registry: SharedRegistry,
    pub(crate) limits: Arc<ListLimits>,
    /// What `/admin/version` reports; `node` sets it after [`AppState::new`].
    pub build: Arc<BuildInfo>,
}

impl AppState {
    pub fn new(
        raft: RaftNode,
        gateway: Arc<Gateway>,
        auth: Arc<Auth>,
        forwarder: Forwarder,
        context_path: &str,
        metrics: ApiMetrics,
        registry: SharedRegistry,
    ) -> AppState {
        AppState {
            raft,
            gateway,
            auth,
            forwarder,
            context_path: context_path.into(),
            metrics,
            registry,
            limits: Arc::new(ListLimits::default()),
            build: Arc::new(BuildInfo::default()),
        }
    }
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
