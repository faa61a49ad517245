use std::sync::Arc;

use axum::extract::FromRef;
use bpg_raft::RaftNode;
use bpg_router::Gateway;

use crate::auth::Auth;
use crate::forward::Forwarder;
use crate::metrics::{ApiMetrics, SharedRegistry};
use crate::misc::BuildInfo;
use crate::ratelimit::ListLimits;

/// Everything a handler may need, built once by `node`. One `Arc`: axum clones the state for
/// each extractor and middleware layer that asks for it, several times per request, and a
/// clone of the fields themselves touched a reference count per `Arc` among them (a score):
/// `perf` on a leader at saturation put 2 % of its CPU in cloning and dropping them.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`], which derefs to them.
#[derive(Debug)]
pub struct Shared {
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
    pub(crate) limits: ListLimits,
    /// What `/admin/version` reports.
    pub build: BuildInfo,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        raft: RaftNode,
        gateway: Arc<Gateway>,
        auth: Arc<Auth>,
        forwarder: Forwarder,
        context_path: &str,
        metrics: ApiMetrics,
        registry: SharedRegistry,
        build: BuildInfo,
    ) -> AppState {
        AppState(Arc::new(Shared {
            raft,
            gateway,
            auth,
            forwarder,
            context_path: context_path.into(),
            metrics,
            registry,
            limits: ListLimits::default(),
            build,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
