//! The router's Prometheus metrics. Registered once by `node` into the node's registry; no
//! global state.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubmissionLabels {
    pub cluster: String,
    pub queue: String,
    /// `accepted`, `rejected` (refused before proposing), `submission_failed` (refused by the
    /// cluster), `unknown` (outcome unknown), `overloaded` (refused, with `cluster` and `queue`
    /// empty, because `gateway.maxSubmissionsInFlight` were in flight).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeLabels {
    pub cluster: String,
    /// `create`, `delete`, `get`, `watch`, `logs`, `events`, `probe`, `delete_pod`.
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishLabels {
    pub cluster: String,
    pub state: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Cheap to clone; clones share the series.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    pub submissions: Family<SubmissionLabels, Counter>,
    pub submit_seconds: Histogram,
    pub kube_seconds: Family<KubeLabels, Histogram>,
    pub kube_errors: Family<KubeLabels, Counter>,
    pub finished: Family<FinishLabels, Counter>,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> GatewayMetrics {
        let m = GatewayMetrics {
            submissions: Family::default(),
            submit_seconds: latency_histogram(),
            kube_seconds: Family::new_with_constructor(latency_histogram),
            kube_errors: Family::default(),
            finished: Family::default(),
        };
        registry.register("bpg_submissions", "Submissions by cluster, queue and outcome", m.submissions.clone());
        registry.register(
            "bpg_submit_duration_seconds",
            "Time to answer an accepted submission",
            m.submit_seconds.clone(),
        );
        registry.register(
            "bpg_kube_request_duration_seconds",
            "Kubernetes API calls by cluster and operation",
            m.kube_seconds.clone(),
        );
        registry.register(
            "bpg_kube_request_errors",
            "Failed Kubernetes API calls by cluster and operation",
            m.kube_errors.clone(),
        );
        registry.register(
            "bpg_applications_finished",
            "Applications seen reaching a terminal state",
            m.finished.clone(),
        );
        m
    }

    /// Unregistered metrics, for tests.
    pub fn detached() -> GatewayMetrics {
        GatewayMetrics::register(&mut Registry::default())
    }
}
