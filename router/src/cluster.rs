use bpg_raft::model::ClusterState;
use serde::Serialize;

/// A target cluster as the config file declares it (one Kubernetes cluster and namespace).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Short id, the prefix of submission ids; never contains `-`.
    pub id: String,
    /// Routing weight from the config file; the replicated state may override it.
    pub weight: u32,
}

/// A cluster as routing sees it now: config plus what was changed at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveCluster {
    pub id: String,
    /// The weight routing uses.
    pub weight: u32,
    /// The weight in the config file.
    pub configured_weight: u32,
    /// Whether `weight` comes from a change made at run time.
    pub weight_overridden: bool,
    /// A cordoned cluster gets no new submissions.
    pub cordoned: bool,
}

impl EffectiveCluster {
    pub fn new(config: &ClusterConfig, state: Option<&ClusterState>) -> Self {
        let overridden = state.and_then(|s| s.weight);
        EffectiveCluster {
            id: config.id.clone(),
            weight: overridden.unwrap_or(config.weight),
            configured_weight: config.weight,
            weight_overridden: overridden.is_some(),
            cordoned: state.is_some_and(|s| s.cordoned),
        }
    }
}
