//! What the router is configured with: target clusters, queues, images and Spark conf policy.
//! Built and validated by `node` from the config file (BPG's keys); plain data here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bpg_raft::model::ClusterState;
use serde::Serialize;
use serde_json::Value;

/// A target: one Kubernetes cluster and namespace (BPG `sparkClusters[]`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ClusterConfig {
    /// Short id, the prefix of submission ids; lowercase letters and digits, never `-`.
    pub id: String,
    /// Routing weight from the config file; the replicated state may override it.
    pub weight: u32,
    /// Free text, used as a metric label (`eksCluster`).
    pub eks_cluster: Option<String>,
    /// API server URL.
    pub master_url: String,
    /// CA certificate(s) of the API server, PEM.
    pub ca_cert_pem: Option<String>,
    /// Bearer token (resolved from its secret indirection).
    pub token: Option<String>,
    /// File holding the bearer token, re-read as it changes (EKS tokens expire).
    pub token_file: Option<PathBuf>,
    /// Per-request timeout toward the API server. Default 30 s.
    pub timeout: Duration,
    /// Proxy for the API server.
    pub proxy_url: Option<String>,
    /// Namespace of SparkApplications and pods.
    pub namespace: String,
    /// Default `driver.serviceAccount`.
    pub service_account: Option<String>,
    /// Spark versions accepted (compared case-insensitively).
    pub spark_versions: Vec<String>,
    /// Parent queues routed here (compared case-insensitively).
    pub queues: Vec<String>,
    /// `spec.timeToLiveSeconds` of every application.
    pub ttl_seconds: Option<i64>,
    /// Base URL of the live Spark UI.
    pub spark_ui_url: Option<String>,
    /// Only `yunikorn` has an effect.
    pub batch_scheduler: Option<String>,
    /// Cluster-level Spark conf (middle priority).
    pub spark_conf: BTreeMap<String, String>,
    /// `spec.sparkUIOptions`.
    pub spark_ui_options: Option<Value>,
    /// Default volumes when a request has none.
    pub volumes: Vec<Value>,
    pub driver: PodDefaults,
    pub executor: PodDefaults,
}

/// The parts of a cluster's `driver` / `executor` fragment that apply.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodDefaults {
    pub env: Vec<Value>,
    pub volume_mounts: Vec<Value>,
}

/// A queue (BPG `queues[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    /// Users whose submissions without a queue land here.
    pub users: Vec<String>,
    /// Submissions need a valid queue token.
    pub secure: bool,
    /// Upper bound on a job's `bpg.maxRunningMillis`. Default 12 h.
    pub max_running_millis: u64,
    /// Cap on executor instances. Default 5000.
    pub max_executor_instances: u32,
    pub driver_node_label_key: String,
    pub executor_node_label_key: String,
    pub driver_node_label_values: Vec<String>,
    pub executor_node_label_values: Vec<String>,
    pub executor_spot_node_label_values: Vec<String>,
    pub driver_cpu_buffer_ratio: f64,
    pub executor_cpu_buffer_ratio: f64,
    pub driver_mem_buffer_ratio: f64,
    pub executor_mem_buffer_ratio: f64,
    /// Zones for per-job zone pinning (round robin).
    pub allowed_zones: Vec<String>,
}

/// 12 hours, BPG's default and ceiling for `bpg.maxRunningMillis`.
pub const DEFAULT_MAX_RUNNING_MILLIS: u64 = 12 * 60 * 60 * 1000;
pub const DEFAULT_MAX_EXECUTOR_INSTANCES: u32 = 5000;
pub const DEFAULT_NODE_LABEL_KEY: &str = "node_group_category";

impl QueueConfig {
    /// A queue with BPG's defaults.
    pub fn named(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_owned(),
            users: Vec::new(),
            secure: false,
            max_running_millis: DEFAULT_MAX_RUNNING_MILLIS,
            max_executor_instances: DEFAULT_MAX_EXECUTOR_INSTANCES,
            driver_node_label_key: DEFAULT_NODE_LABEL_KEY.into(),
            executor_node_label_key: DEFAULT_NODE_LABEL_KEY.into(),
            driver_node_label_values: Vec::new(),
            executor_node_label_values: Vec::new(),
            executor_spot_node_label_values: Vec::new(),
            driver_cpu_buffer_ratio: 1.0,
            executor_cpu_buffer_ratio: 1.0,
            driver_mem_buffer_ratio: 1.0,
            executor_mem_buffer_ratio: 1.0,
            allowed_zones: Vec::new(),
        }
    }
}

/// An image for (type, Spark version) (BPG `sparkImages[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct SparkImage {
    pub name: String,
    pub types: Vec<String>,
    pub version: String,
}

/// Everything about requests that is not a cluster.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Policy {
    /// Lowest-priority Spark conf; `{spark-application-resource-name}` is substituted.
    pub default_spark_conf: BTreeMap<String, String>,
    /// Enforced Spark conf, overriding the request.
    pub fixed_spark_conf: BTreeMap<String, String>,
    pub queues: Vec<QueueConfig>,
    pub images: Vec<SparkImage>,
    /// HMAC secrets for queue tokens (all are tried, for rotation).
    pub queue_token_secrets: Vec<String>,
    /// Accounts whose submissions run as the `dagUser` query parameter.
    pub airflow_accounts: Vec<String>,
    /// Host of the Spark History Server, for UI links of finished jobs.
    pub spark_history_dns: Option<String>,
}

impl Policy {
    /// The queue with `name`, compared case-insensitively (BPG's full-name lookup).
    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name.eq_ignore_ascii_case(name))
    }
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
    /// Whether this node's last probes of the API server succeeded.
    pub healthy: bool,
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
            healthy: true,
        }
    }
}
