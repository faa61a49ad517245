//! The config file: its exact shape ([`FileConfig`], BPG's keys plus `node`, `raft`, `auth`),
//! and [`FileConfig::validate`], which checks every cross-field rule once and produces the
//! [`Valid`] settings each crate receives. A problem names the file, the field and what is
//! wrong; `main` turns it into exit code 2.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bpg_api::auth::{AuthSettings, UserEntry};
use bpg_raft::{ClusterSecret, NodeId, NodeInfo, RaftSettings, StoreOptions};
use bpg_router::config::{
    DEFAULT_MAX_EXECUTOR_INSTANCES, DEFAULT_MAX_RUNNING_MILLIS, DEFAULT_NODE_LABEL_KEY, PodDefaults,
};
use bpg_router::{ClusterConfig, GatewaySettings, Policy, QueueConfig, SparkImage};
use serde::Deserialize;
use serde_json::Value;

/// A config problem, naming the file, the field and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {file}: cannot read it: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("config file {file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("config file {file}: {field}: {problem}")]
    Invalid { file: PathBuf, field: String, problem: String },
}

/// More runtime threads than any machine a node runs on has cores.
const MAX_WORKER_THREADS: usize = 1024;

/// The file as written. Keys are BPG's (camelCase) where BPG has them.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// This node.
    pub node: NodeSection,
    /// The Raft cluster: peers, secret, timing.
    pub raft: RaftSection,
    /// Passwords and header trust.
    #[serde(default)]
    pub auth: AuthSection,
    /// URL prefix of the BPG endpoints. Default `/skatev2`.
    #[serde(default = "default_context_path")]
    pub application_context_path: String,
    /// Target clusters.
    #[serde(default)]
    pub spark_clusters: Vec<SparkClusterSection>,
    /// BPG `allowedUsers`: `*` allows every authenticated user. Default: nobody.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// BPG `blockedUsers`.
    #[serde(default)]
    pub blocked_users: Vec<String>,
    /// BPG `adminUsers`: may see and delete all jobs and change cluster weights.
    #[serde(default)]
    pub admin_users: Vec<String>,
    /// Timing of dispatch, probes and housekeeping (bpg's own section).
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Lowest-priority Spark conf; `{spark-application-resource-name}` is replaced by the id.
    #[serde(default)]
    pub default_spark_conf: BTreeMap<String, String>,
    /// Spark conf enforced over the request's.
    #[serde(default)]
    pub fixed_spark_conf: BTreeMap<String, String>,
    /// Images by type and Spark version.
    #[serde(default)]
    pub spark_images: Vec<SparkImageSection>,
    /// Queues; every queue users submit to must be listed.
    #[serde(default)]
    pub queues: Vec<QueueSection>,
    /// HMAC secrets of queue tokens.
    #[serde(default, rename = "queueTokenSOPS")]
    pub queue_token_sops: Option<QueueTokenSection>,
    /// History Server host, for UI links of finished jobs.
    pub spark_history_dns: Option<String>,

    // BPG keys accepted so existing config files load, but unused by bpg (warned at start):
    // status is served from the replicated state (no cache), there is no database, no S3
    // upload or log fallback, and Dropwizard's blocks do not apply.
    pub status_cache_expire_millis: Option<u64>,
    #[serde(rename = "dbStorageSOPS")]
    pub db_storage_sops: Option<Value>,
    pub s3_bucket: Option<String>,
    pub s3_folder: Option<String>,
    pub spark_log_s3_bucket: Option<String>,
    pub spark_log_index: Option<Value>,
    pub batch_file_limit: Option<Value>,
    pub gateway_dns: Option<String>,
    pub eks_cluster: Option<String>,
    pub spark_history_url: Option<String>,
    pub memory_mb_second_cost: Option<f64>,
    pub v_core_second_cost: Option<f64>,
    pub server: Option<Value>,
    pub logging: Option<Value>,
    pub metrics: Option<Value>,
}

/// bpg's own gateway timing.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GatewaySection {
    /// How long a submission waits for its SparkApplication to be created before it is
    /// acknowledged as accepted, ms. Default 10000.
    pub dispatch_timeout_millis: u64,
    /// Cluster health probe period, ms. Default 5000.
    pub cluster_probe_millis: u64,
    /// How often applications past their max running time are killed, s. Default 30.
    pub max_running_check_seconds: u64,
    /// Finished or deleted jobs are forgotten after this many days; 0 keeps them. Default 30.
    pub job_retention_days: u64,
    /// Accounts whose submissions run as the `dagUser` query parameter.
    pub airflow_system_accounts: Vec<String>,
    /// Submissions the leader handles at once; beyond, 503 with `Retry-After`, nothing
    /// recorded. 0: no limit. Default 1024.
    pub max_submissions_in_flight: usize,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            dispatch_timeout_millis: 10_000,
            cluster_probe_millis: 5_000,
            max_running_check_seconds: 30,
            job_retention_days: 30,
            airflow_system_accounts: Vec::new(),
            max_submissions_in_flight: bpg_router::gateway::DEFAULT_MAX_SUBMISSIONS_IN_FLIGHT,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SparkImageSection {
    pub name: String,
    #[serde(default)]
    pub types: Vec<String>,
    pub version: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct QueueTokenSection {
    #[serde(default)]
    pub secrets: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueueSection {
    pub name: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub secure: bool,
    pub max_running_millis: Option<u64>,
    pub max_executor_instances: Option<u32>,
    pub driver_node_label_key: Option<String>,
    pub executor_node_label_key: Option<String>,
    #[serde(default)]
    pub driver_node_label_values: Vec<String>,
    #[serde(default)]
    pub executor_node_label_values: Vec<String>,
    #[serde(default)]
    pub executor_spot_node_label_values: Vec<String>,
    #[serde(rename = "driverCPUBufferRatio")]
    pub driver_cpu_buffer_ratio: Option<f64>,
    #[serde(rename = "executorCPUBufferRatio")]
    pub executor_cpu_buffer_ratio: Option<f64>,
    pub driver_mem_buffer_ratio: Option<f64>,
    pub executor_mem_buffer_ratio: Option<f64>,
    #[serde(default)]
    pub allowed_zones: Vec<String>,
    /// Only `round_robin` exists.
    pub zone_picker_name: Option<String>,
}

fn default_context_path() -> String {
    "/skatev2".into()
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSection {
    /// This node's id. Overridden by `--node-id` or `BPG_NODE_ID`; taken from the host name's
    /// trailing `-N` (a StatefulSet ordinal) when `idFromHostname` is set.
    pub id: Option<NodeId>,
    /// Derive the id from the host name's ordinal suffix. Default false.
    #[serde(default)]
    pub id_from_hostname: bool,
    /// Data directory; `{id}` is replaced by the node id.
    pub data_dir: String,
    /// Addresses to bind. Default: the node's advertised addresses (port only, on 0.0.0.0,
    /// when the advertised host is a name).
    #[serde(default)]
    pub listen: ListenSection,
    /// Addresses other nodes use to reach this one, when it is not in `raft.peers` (a node
    /// joining an existing cluster). `{id}` is replaced by the node id.
    pub advertise: Option<PeerAddrs>,
    /// Threads that run the node's requests and Raft. Default: one per core the process may
    /// use. Where several nodes share a machine's cores (`bpg dev`, the benchmark), one each
    /// spends less CPU per submission: fewer threads to wake and hand work between.
    pub worker_threads: Option<usize>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenSection {
    pub api: Option<String>,
    pub raft: Option<String>,
    pub admin: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerAddrs {
    pub raft_addr: String,
    pub api_addr: String,
    /// Admin listener (probes, metrics). Default: the API port + 1 on the API host.
    pub admin_addr: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerSection {
    pub id: NodeId,
    pub raft_addr: String,
    pub api_addr: String,
    pub admin_addr: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RaftSection {
    /// The initial voters. The lowest id initializes the cluster on first start.
    pub peers: Vec<PeerSection>,
    /// Shared secret of the cluster: `localhost:env:VAR`, `file:/path`, `plaintext:value`.
    pub cluster_secret: String,
    /// Leader heartbeat, ms. Default 100.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_millis: u64,
    /// Election timeout range, ms. Default 400–800. openraft 0.9 also honours a leader lease
    /// of `electionTimeoutMaxMillis`, so a follower campaigns `max + random(min..max)` after
    /// the last heartbeat: 1.2–1.6 s with the defaults.
    #[serde(default = "default_election_min")]
    pub election_timeout_min_millis: u64,
    #[serde(default = "default_election_max")]
    pub election_timeout_max_millis: u64,
    /// Snapshot after this many entries. Default 5000.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every_logs: u64,
    /// Entries kept behind a snapshot. Default 1000.
    #[serde(default = "default_logs_kept")]
    pub logs_kept_after_snapshot: u64,
    /// How long a write may take before its outcome is reported unknown, ms. Default 10000.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_millis: u64,
    /// A proposal starts at least this long after the one before it started, µs; the writes
    /// that come meanwhile share its log entry. Default 5000.
    #[serde(default = "default_min_entry_interval")]
    pub min_entry_interval_micros: u64,
    /// The embedded database's page cache, bytes. Default 8 MiB.
    #[serde(default = "default_cache")]
    pub store_cache_bytes: u64,
    /// Bind outgoing Raft connections to this node's Raft listen address, so firewall rules
    /// by source address can tell nodes apart on one host. Default false.
    #[serde(default)]
    pub bind_outgoing: bool,
}

fn default_heartbeat() -> u64 {
    100
}
fn default_election_min() -> u64 {
    400
}
fn default_election_max() -> u64 {
    800
}
fn default_snapshot_every() -> u64 {
    5000
}
fn default_logs_kept() -> u64 {
    1000
}
fn default_write_timeout() -> u64 {
    10_000
}
fn default_min_entry_interval() -> u64 {
    RaftSettings::default().min_entry_interval.as_micros() as u64
}
fn default_cache() -> u64 {
    StoreOptions::default().cache_capacity_bytes
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSection {
    /// Users with passwords (argon2 PHC strings from `bpg hash-password`).
    #[serde(default)]
    pub users: Vec<UserSection>,
    /// Trust the `User-Account` header (an auth proxy in front sets it). Default false.
    #[serde(default)]
    pub trust_user_account_header: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserSection {
    pub name: String,
    pub password_hash: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SparkClusterSection {
    /// Prefix of submission ids: lowercase letters and digits, no `-`.
    pub id: String,
    /// Relative routing probability. Default 0 (reachable only by `clusterId`).
    #[serde(default)]
    pub weight: u32,
    pub eks_cluster: Option<String>,
    /// API server URL (http or https).
    pub master_url: String,
    /// Base64 of the API server's CA PEM (BPG's key), with secret indirections.
    #[serde(rename = "caCertDataSOPS")]
    pub ca_cert_data_sops: Option<String>,
    /// Path of the CA PEM (bpg's addition; for Secrets mounted as files).
    pub ca_cert_file: Option<String>,
    /// Informational, as in BPG.
    pub user_name: Option<String>,
    /// Bearer token, with secret indirections.
    #[serde(rename = "userTokenSOPS")]
    pub user_token_sops: Option<String>,
    /// File holding the bearer token, re-read as it changes (bpg's addition; EKS tokens expire).
    pub user_token_file: Option<String>,
    /// Timeout of one Kubernetes call, ms. Default 30000.
    pub timeout_millis: Option<u64>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    /// Namespace for SparkApplications and their pods.
    pub spark_application_namespace: String,
    pub spark_service_account: Option<String>,
    #[serde(default)]
    pub spark_versions: Vec<String>,
    #[serde(default)]
    pub queues: Vec<String>,
    pub ttl_seconds: Option<i64>,
    #[serde(rename = "sparkUIUrl")]
    pub spark_ui_url: Option<String>,
    pub batch_scheduler: Option<String>,
    #[serde(default)]
    pub spark_conf: BTreeMap<String, String>,
    #[serde(rename = "sparkUIOptions")]
    pub spark_ui_options: Option<Value>,
    #[serde(default)]
    pub volumes: Vec<Value>,
    /// Only `env` and `volumeMounts` apply, as in BPG.
    pub driver: Option<Value>,
    pub executor: Option<Value>,
}

/// Everything `serve` needs, checked.
#[derive(Debug)]
pub struct Valid {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// `node.workerThreads`; `None`: one per core.
    pub worker_threads: Option<usize>,
    pub me: NodeInfo,
    pub listen_api: SocketAddr,
    pub listen_raft: SocketAddr,
    pub listen_admin: SocketAddr,
    pub peers: BTreeMap<NodeId, NodeInfo>,
    /// This node initializes the cluster (lowest peer id).
    pub bootstrap: bool,
    pub secret: ClusterSecret,
    pub raft: RaftSettings,
    pub store: StoreOptions,
    pub bind_outgoing: bool,
    pub auth: AuthSettings,
    pub context_path: String,
    pub clusters: Vec<ClusterConfig>,
    pub policy: Policy,
    pub gateway: GatewaySettings,
}

impl FileConfig {
    /// Reads and parses `path` (blocking).
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.into(), source })?;
        serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse { file: path.into(), message: e.to_string() })
    }

    /// Checks every rule and resolves secrets. `node_id` overrides the file's.
    pub fn validate(self, file: &Path, node_id: Option<NodeId>) -> Result<Valid, ConfigError> {
        let invalid =
            |field: &str, problem: String| ConfigError::Invalid { file: file.into(), field: field.into(), problem };

        let node_id = match (node_id, self.node.id, self.node.id_from_hostname) {
            (Some(id), _, _) => id,
            (None, Some(id), _) => id,
            (None, None, true) => id_from_hostname().map_err(|p| invalid("node.idFromHostname", p))?,
            (None, None, false) => {
                return Err(invalid("node.id", "missing: set it, pass --node-id, or set idFromHostname".into()));
            }
        };

        if let Some(n) = self.node.worker_threads
            && !(1..=MAX_WORKER_THREADS).contains(&n)
        {
            return Err(invalid("node.workerThreads", format!("must be 1 to {MAX_WORKER_THREADS}, got {n}")));
        }

        // Peers.
        if self.raft.peers.is_empty() {
            return Err(invalid("raft.peers", "must list at least one node".into()));
        }
        let mut peers = BTreeMap::new();
        let mut seen_addrs = HashSet::new();
        for (i, p) in self.raft.peers.iter().enumerate() {
            let field = |f: &str| format!("raft.peers[{i}].{f}");
            check_host_port(&p.raft_addr).map_err(|e| invalid(&field("raftAddr"), e))?;
            check_host_port(&p.api_addr).map_err(|e| invalid(&field("apiAddr"), e))?;
            if p.raft_addr == p.api_addr {
                return Err(invalid(&field("apiAddr"), "must differ from raftAddr".into()));
            }
            for addr in [&p.raft_addr, &p.api_addr] {
                if !seen_addrs.insert(addr.clone()) {
                    return Err(invalid(&field("raftAddr"), format!("address {addr} is used twice")));
                }
            }
            let info = NodeInfo { raft_addr: p.raft_addr.clone(), api_addr: p.api_addr.clone() };
            if peers.insert(p.id, info).is_some() {
                return Err(invalid(&field("id"), format!("node id {} is listed twice", p.id)));
            }
        }

        // This node's addresses.
        let own = match (&self.node.advertise, self.raft.peers.iter().find(|p| p.id == node_id)) {
            (Some(a), _) => PeerAddrs {
                raft_addr: a.raft_addr.replace("{id}", &node_id.to_string()),
                api_addr: a.api_addr.replace("{id}", &node_id.to_string()),
                admin_addr: a.admin_addr.as_ref().map(|s| s.replace("{id}", &node_id.to_string())),
            },
            (None, Some(p)) => PeerAddrs {
                raft_addr: p.raft_addr.clone(),
                api_addr: p.api_addr.clone(),
                admin_addr: p.admin_addr.clone(),
            },
            (None, None) => {
                return Err(invalid(
                    "node.id",
                    format!("node {node_id} is not in raft.peers and node.advertise is not set"),
                ));
            }
        };
        check_host_port(&own.raft_addr).map_err(|e| invalid("node.advertise.raftAddr", e))?;
        check_host_port(&own.api_addr).map_err(|e| invalid("node.advertise.apiAddr", e))?;
        let admin_addr = match &own.admin_addr {
            Some(a) => a.clone(),
            None => {
                let (host, port) = own.api_addr.rsplit_once(':').expect("checked host:port");
                let port: u16 = port.parse().expect("checked port");
                format!(
                    "{host}:{}",
                    port.checked_add(1).ok_or_else(|| invalid(
                        "node.listen.admin",
                        "API port 65535 leaves no default admin port".into()
                    ))?
                )
            }
        };
        let listen = |field: &str, given: &Option<String>, advertised: &str| -> Result<SocketAddr, ConfigError> {
            let text = given.clone().unwrap_or_else(|| bind_default(advertised));
            text.parse().map_err(|_| invalid(field, format!("{text:?} is not an IP:port to bind")))
        };
        let listen_api = listen("node.listen.api", &self.node.listen.api, &own.api_addr)?;
        let listen_raft = listen("node.listen.raft", &self.node.listen.raft, &own.raft_addr)?;
        let listen_admin = listen("node.listen.admin", &self.node.listen.admin, &admin_addr)?;
        let ports: BTreeSet<u16> = [listen_api.port(), listen_raft.port(), listen_admin.port()].into();
        if ports.len() != 3 && [listen_api.port(), listen_raft.port(), listen_admin.port()].iter().all(|p| *p != 0) {
            return Err(invalid("node.listen", "api, raft and admin listeners need three different ports".into()));
        }

        // Timing.
        let r = &self.raft;
        if r.election_timeout_min_millis >= r.election_timeout_max_millis {
            return Err(invalid("raft.electionTimeoutMinMillis", "must be less than electionTimeoutMaxMillis".into()));
        }
        if r.heartbeat_millis == 0 || r.heartbeat_millis >= r.election_timeout_min_millis {
            return Err(invalid("raft.heartbeatMillis", "must be above 0 and below electionTimeoutMinMillis".into()));
        }
        if r.snapshot_every_logs == 0 {
            return Err(invalid("raft.snapshotEveryLogs", "must be above 0".into()));
        }
        if r.write_timeout_millis < 100 {
            return Err(invalid("raft.writeTimeoutMillis", "must be at least 100".into()));
        }
        if r.min_entry_interval_micros > 100_000 {
            return Err(invalid("raft.minEntryIntervalMicros", "must be at most 100000 (100 ms)".into()));
        }
        let secret = resolve_secret(&r.cluster_secret).map_err(|p| invalid("raft.clusterSecret", p))?;
        if secret.len() < 16 {
            return Err(invalid("raft.clusterSecret", "must be at least 16 characters".into()));
        }

        // Context path.
        let context_path = self.application_context_path.trim_end_matches('/').to_owned();
        if !context_path.is_empty() && !context_path.starts_with('/') {
            return Err(invalid(
                "applicationContextPath",
                format!("must start with '/', got {:?}", self.application_context_path),
            ));
        }

        // Users.
        let mut names = HashSet::new();
        for (i, u) in self.auth.users.iter().enumerate() {
            if u.name.is_empty() || u.name.contains(['\0', ':']) {
                return Err(invalid(&format!("auth.users[{i}].name"), "must be non-empty, without ':' or NUL".into()));
            }
            if !names.insert(u.name.clone()) {
                return Err(invalid(&format!("auth.users[{i}].name"), format!("user {:?} is listed twice", u.name)));
            }
        }

        // Clusters.
        let mut cluster_ids = HashSet::new();
        let mut clusters = Vec::new();
        for (i, c) in self.spark_clusters.into_iter().enumerate() {
            let field = |f: &str| format!("sparkClusters[{i}].{f}");
            check_cluster_id(&c.id).map_err(|p| invalid(&field("id"), p))?;
            if !cluster_ids.insert(c.id.clone()) {
                return Err(invalid(&field("id"), format!("cluster id {:?} is listed twice", c.id)));
            }
            clusters.push(cluster_config(c, &|f, p| invalid(&field(f), p))?);
        }

        // Queues, images, tokens.
        let mut queue_names = HashSet::new();
        let mut queues = Vec::new();
        for (i, q) in self.queues.into_iter().enumerate() {
            let field = |f: &str| format!("queues[{i}].{f}");
            if q.name.trim().is_empty() {
                return Err(invalid(&field("name"), "must not be empty".into()));
            }
            if !queue_names.insert(q.name.to_ascii_lowercase()) {
                return Err(invalid(&field("name"), format!("queue {:?} is listed twice", q.name)));
            }
            queues.push(queue_config(q, &|f, p| invalid(&field(f), p))?);
        }
        let queue_token_secrets: Vec<String> = match &self.queue_token_sops {
            None => Vec::new(),
            Some(t) => t
                .secrets
                .iter()
                .enumerate()
                .map(|(i, s)| resolve_secret(s).map_err(|p| invalid(&format!("queueTokenSOPS.secrets[{i}]"), p)))
                .collect::<Result<_, _>>()?,
        };
        if let Some(q) = queues.iter().find(|q| q.secure)
            && queue_token_secrets.is_empty()
        {
            return Err(invalid(
                "queueTokenSOPS.secrets",
                format!("queue {} is secure, so at least one secret is needed", q.name),
            ));
        }
        for (i, img) in self.spark_images.iter().enumerate() {
            if img.name.is_empty() || img.types.is_empty() {
                return Err(invalid(&format!("sparkImages[{i}]"), "needs a name and at least one type".into()));
            }
        }
        let g = &self.gateway;
        if g.dispatch_timeout_millis < 100 {
            return Err(invalid("gateway.dispatchTimeoutMillis", "must be at least 100".into()));
        }
        if g.cluster_probe_millis < 100 {
            return Err(invalid("gateway.clusterProbeMillis", "must be at least 100".into()));
        }
        if g.max_running_check_seconds == 0 {
            return Err(invalid("gateway.maxRunningCheckSeconds", "must be at least 1".into()));
        }
        let gateway = GatewaySettings {
            dispatch_timeout: Duration::from_millis(g.dispatch_timeout_millis),
            probe_every: Duration::from_millis(g.cluster_probe_millis),
            max_running_check_every: Duration::from_secs(g.max_running_check_seconds),
            retention: Duration::from_secs(g.job_retention_days * 24 * 3600),
            max_submissions_in_flight: g.max_submissions_in_flight,
            ..GatewaySettings::default()
        };
        let unused: Vec<&str> = [
            ("statusCacheExpireMillis", self.status_cache_expire_millis.is_some()),
            ("dbStorageSOPS", self.db_storage_sops.is_some()),
            ("s3Bucket", self.s3_bucket.is_some()),
            ("s3Folder", self.s3_folder.is_some()),
            ("sparkLogS3Bucket", self.spark_log_s3_bucket.is_some()),
            ("sparkLogIndex", self.spark_log_index.is_some()),
            ("batchFileLimit", self.batch_file_limit.is_some()),
            ("gatewayDns", self.gateway_dns.is_some()),
            ("eksCluster", self.eks_cluster.is_some()),
            ("sparkHistoryUrl", self.spark_history_url.is_some()),
            ("memoryMbSecondCost", self.memory_mb_second_cost.is_some()),
            ("vCoreSecondCost", self.v_core_second_cost.is_some()),
            ("server", self.server.is_some()),
            ("logging", self.logging.is_some()),
            ("metrics", self.metrics.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect();
        if !unused.is_empty() {
            tracing::warn!(keys = ?unused, file = %file.display(), "BPG config keys accepted but not used by bpg");
        }
        let policy = Policy {
            default_spark_conf: self.default_spark_conf,
            fixed_spark_conf: self.fixed_spark_conf,
            queues,
            images: self
                .spark_images
                .into_iter()
                .map(|i| SparkImage { name: i.name, types: i.types, version: i.version })
                .collect(),
            queue_token_secrets,
            airflow_accounts: self.gateway.airflow_system_accounts,
            spark_history_dns: self.spark_history_dns,
        };

        let bootstrap = peers.keys().next() == Some(&node_id);
        let data_dir = PathBuf::from(self.node.data_dir.replace("{id}", &node_id.to_string()));
        Ok(Valid {
            node_id,
            data_dir,
            worker_threads: self.node.worker_threads,
            me: NodeInfo { raft_addr: own.raft_addr, api_addr: own.api_addr },
            listen_api,
            listen_raft,
            listen_admin,
            bootstrap,
            peers,
            secret: ClusterSecret::new(secret),
            raft: RaftSettings {
                cluster_name: "bpg".into(),
                heartbeat: Duration::from_millis(r.heartbeat_millis),
                election_timeout_min: Duration::from_millis(r.election_timeout_min_millis),
                election_timeout_max: Duration::from_millis(r.election_timeout_max_millis),
                snapshot_every_logs: r.snapshot_every_logs,
                logs_kept_after_snapshot: r.logs_kept_after_snapshot,
                write_timeout: Duration::from_millis(r.write_timeout_millis),
                install_snapshot_timeout: Duration::from_secs(10),
                min_entry_interval: Duration::from_micros(r.min_entry_interval_micros),
            },
            store: StoreOptions { cache_capacity_bytes: r.store_cache_bytes, ..StoreOptions::default() },
            bind_outgoing: r.bind_outgoing,
            auth: AuthSettings {
                users: self
                    .auth
                    .users
                    .into_iter()
                    .map(|u| UserEntry { name: u.name, password_hash: u.password_hash, admin: u.admin })
                    .collect(),
                allowed_users: self.allowed_users,
                blocked_users: self.blocked_users,
                admin_users: self.admin_users,
                trust_user_account_header: self.auth.trust_user_account_header,
            },
            context_path,
            clusters,
            policy,
            gateway,
        })
    }
}

type Invalid<'a> = dyn Fn(&str, String) -> ConfigError + 'a;

fn cluster_config(c: SparkClusterSection, invalid: &Invalid<'_>) -> Result<ClusterConfig, ConfigError> {
    if c.weight > bpg_api::MAX_WEIGHT {
        return Err(invalid("weight", format!("must be at most {}", bpg_api::MAX_WEIGHT)));
    }
    if !(c.master_url.starts_with("https://") || c.master_url.starts_with("http://")) {
        return Err(invalid("masterUrl", format!("{:?} must be an http:// or https:// URL", c.master_url)));
    }
    let ns = &c.spark_application_namespace;
    if ns.is_empty()
        || ns.len() > 63
        || !ns.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        return Err(invalid("sparkApplicationNamespace", format!("{ns:?} is not a valid namespace name")));
    }
    let ca_cert_pem = match (&c.ca_cert_data_sops, &c.ca_cert_file) {
        (Some(_), Some(_)) => return Err(invalid("caCertFile", "give caCertDataSOPS or caCertFile, not both".into())),
        (Some(data), None) => {
            let value = resolve_secret(data).map_err(|p| invalid("caCertDataSOPS", p))?;
            let pem = if value.trim_start().starts_with("-----BEGIN") {
                value
            } else {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|e| invalid("caCertDataSOPS", format!("not base64 of a PEM certificate: {e}")))?;
                String::from_utf8(bytes).map_err(|_| invalid("caCertDataSOPS", "does not decode to PEM text".into()))?
            };
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(invalid("caCertDataSOPS", "holds no PEM certificate".into()));
            }
            Some(pem)
        }
        (None, Some(path)) => {
            Some(std::fs::read_to_string(path).map_err(|e| invalid("caCertFile", format!("cannot read {path}: {e}")))?)
        }
        (None, None) => None,
    };
    let token = match &c.user_token_sops {
        Some(t) => Some(resolve_secret(t).map_err(|p| invalid("userTokenSOPS", p))?),
        None => None,
    };
    if token.is_some() && c.user_token_file.is_some() {
        return Err(invalid("userTokenFile", "give userTokenSOPS or userTokenFile, not both".into()));
    }
    if let Some(path) = &c.user_token_file
        && !Path::new(path).is_file()
    {
        return Err(invalid("userTokenFile", format!("{path} is not a readable file")));
    }
    let timeout = c.timeout_millis.unwrap_or(30_000);
    if timeout == 0 {
        return Err(invalid("timeoutMillis", "must be above 0".into()));
    }
    let https = c.master_url.starts_with("https://");
    let proxy_url = if https { c.https_proxy.or(c.http_proxy) } else { c.http_proxy };
    let pod = |v: &Option<Value>| PodDefaults {
        env: v.as_ref().and_then(|d| d["env"].as_array().cloned()).unwrap_or_default(),
        volume_mounts: v.as_ref().and_then(|d| d["volumeMounts"].as_array().cloned()).unwrap_or_default(),
    };
    Ok(ClusterConfig {
        id: c.id,
        weight: c.weight,
        eks_cluster: c.eks_cluster,
        master_url: c.master_url,
        ca_cert_pem,
        token,
        token_file: c.user_token_file.map(PathBuf::from),
        timeout: Duration::from_millis(timeout),
        proxy_url,
        namespace: c.spark_application_namespace,
        service_account: c.spark_service_account,
        spark_versions: c.spark_versions,
        queues: c.queues,
        ttl_seconds: c.ttl_seconds,
        spark_ui_url: c.spark_ui_url,
        batch_scheduler: c.batch_scheduler,
        spark_conf: c.spark_conf,
        spark_ui_options: c.spark_ui_options,
        volumes: c.volumes,
        driver: pod(&c.driver),
        executor: pod(&c.executor),
    })
}

fn queue_config(q: QueueSection, invalid: &Invalid<'_>) -> Result<QueueConfig, ConfigError> {
    for (name, ratio) in [
        ("driverCPUBufferRatio", q.driver_cpu_buffer_ratio),
        ("executorCPUBufferRatio", q.executor_cpu_buffer_ratio),
        ("driverMemBufferRatio", q.driver_mem_buffer_ratio),
        ("executorMemBufferRatio", q.executor_mem_buffer_ratio),
    ] {
        if let Some(r) = ratio
            && !(r > 0.0 && r <= 100.0)
        {
            return Err(invalid(name, format!("must be above 0 and at most 100, got {r}")));
        }
    }
    if let Some(p) = &q.zone_picker_name
        && p != "round_robin"
    {
        return Err(invalid("zonePickerName", format!("only round_robin exists, got {p:?}")));
    }
    if q.max_running_millis == Some(0) || q.max_executor_instances == Some(0) {
        return Err(invalid("maxRunningMillis", "limits must be above 0".into()));
    }
    Ok(QueueConfig {
        name: q.name,
        users: q.users,
        secure: q.secure,
        max_running_millis: q.max_running_millis.unwrap_or(DEFAULT_MAX_RUNNING_MILLIS),
        max_executor_instances: q.max_executor_instances.unwrap_or(DEFAULT_MAX_EXECUTOR_INSTANCES),
        driver_node_label_key: q.driver_node_label_key.unwrap_or_else(|| DEFAULT_NODE_LABEL_KEY.into()),
        executor_node_label_key: q.executor_node_label_key.unwrap_or_else(|| DEFAULT_NODE_LABEL_KEY.into()),
        driver_node_label_values: q.driver_node_label_values,
        executor_node_label_values: q.executor_node_label_values,
        executor_spot_node_label_values: q.executor_spot_node_label_values,
        driver_cpu_buffer_ratio: q.driver_cpu_buffer_ratio.unwrap_or(1.0),
        executor_cpu_buffer_ratio: q.executor_cpu_buffer_ratio.unwrap_or(1.0),
        driver_mem_buffer_ratio: q.driver_mem_buffer_ratio.unwrap_or(1.0),
        executor_mem_buffer_ratio: q.executor_mem_buffer_ratio.unwrap_or(1.0),
        allowed_zones: q.allowed_zones,
    })
}

/// Resolves BPG's secret indirections: `plaintext:V`, `localhost:env:VAR`, plus `file:PATH`.
/// Anything else is the value itself (as BPG does).
pub fn resolve_secret(value: &str) -> Result<String, String> {
    if let Some(v) = value.strip_prefix("plaintext:") {
        Ok(v.to_owned())
    } else if let Some(var) = value.strip_prefix("localhost:env:") {
        std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
    } else if let Some(path) = value.strip_prefix("file:") {
        std::fs::read_to_string(path).map(|s| s.trim_end().to_owned()).map_err(|e| format!("cannot read {path}: {e}"))
    } else if value.starts_with("k8s:secret:") {
        Err("k8s:secret: is not supported; mount the Secret as a file and use file:/path".into())
    } else {
        Ok(value.to_owned())
    }
}

fn check_host_port(addr: &str) -> Result<(), String> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("must be host:port, got {addr:?}")),
    }
}

/// Binds the advertised address itself when it is an IP, else every interface on its port.
fn bind_default(advertised: &str) -> String {
    if advertised.parse::<SocketAddr>().is_ok() {
        advertised.to_owned()
    } else {
        let port = advertised.rsplit_once(':').map(|(_, p)| p).unwrap_or("0");
        format!("0.0.0.0:{port}")
    }
}

fn check_cluster_id(id: &str) -> Result<(), String> {
    if id.contains('-') {
        return Err(format!(
            "{id:?} contains '-': submission ids are <clusterId>-<hex>, so the cluster could not be found again \
             from an id (BPG silently breaks on this); use e.g. {:?}",
            id.replace('-', "")
        ));
    }
    if id.is_empty() || id.len() > 20 || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(format!("{id:?} must be 1-20 lowercase letters or digits (it starts Kubernetes object names)"));
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("{id:?} must start with a letter"));
    }
    Ok(())
}

fn id_from_hostname() -> Result<NodeId, String> {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned()))
        .ok_or("cannot read the host name")?;
    host.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| format!("host name {host:?} does not end in -<number>"))
}
