//! The config file: its exact shape ([`FileConfig`], BPG's keys plus `node`, `raft`, `auth`),
//! and [`FileConfig::validate`], which checks every cross-field rule once and produces the
//! [`Valid`] settings each crate receives. A problem names the file, the field and what is
//! wrong; `main` turns it into exit code 2.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bpg_api::auth::{AuthSettings, UserEntry};
use bpg_raft::{ClusterSecret, NodeId, NodeInfo, RaftSettings, StoreOptions};
use bpg_router::ClusterConfig;
use serde::Deserialize;

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
    /// sled page cache, bytes. Default 64 MiB.
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
fn default_cache() -> u64 {
    64 * 1024 * 1024
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
}

/// Everything `serve` needs, checked.
#[derive(Debug)]
pub struct Valid {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
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
        for (i, c) in self.spark_clusters.iter().enumerate() {
            let field = format!("sparkClusters[{i}].id");
            check_cluster_id(&c.id).map_err(|p| invalid(&field, p))?;
            if !cluster_ids.insert(c.id.clone()) {
                return Err(invalid(&field, format!("cluster id {:?} is listed twice", c.id)));
            }
            if c.weight > bpg_api::MAX_WEIGHT {
                return Err(invalid(
                    &format!("sparkClusters[{i}].weight"),
                    format!("must be at most {}", bpg_api::MAX_WEIGHT),
                ));
            }
            clusters.push(ClusterConfig { id: c.id.clone(), weight: c.weight });
        }

        let bootstrap = peers.keys().next() == Some(&node_id);
        let data_dir = PathBuf::from(self.node.data_dir.replace("{id}", &node_id.to_string()));
        Ok(Valid {
            node_id,
            data_dir,
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
            },
            store: StoreOptions { cache_capacity_bytes: r.store_cache_bytes },
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
        })
    }
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
