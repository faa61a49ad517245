//! `TestCluster`: gateway nodes as real `bpg serve` processes on loopback, each with its own
//! data directory in a temporary directory, and the verbs tests need (leader, kill, restart).
//! When a test panics, the directory (configs, data, logs) is kept and its path printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::client::{Client, Credentials};
use crate::wait;

/// How a test cluster is configured.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// Raft timing, ms; `None` leaves the product default.
    pub heartbeat_ms: Option<u64>,
    pub election_min_ms: Option<u64>,
    pub election_max_ms: Option<u64>,
    pub snapshot_every_logs: u64,
    pub logs_kept_after_snapshot: u64,
    /// Top-level YAML appended to every node's config (clusters, queues, users...).
    pub extra_yaml: String,
    /// `ttlSeconds` of the Spark clusters a `GatewayCluster` configures: finished
    /// SparkApplications are deleted that long after they end.
    pub app_ttl_seconds: Option<u32>,
    /// `raft.storeCacheBytes` (the database's page cache); `None` leaves the product default.
    pub store_cache_bytes: Option<u64>,
    /// `node.workerThreads`; `None` leaves the product default (one per core).
    pub worker_threads: Option<usize>,
    /// `raft.minEntryIntervalMicros`; `None` leaves the product default.
    pub min_entry_interval_micros: Option<u64>,
    /// `gateway.maxSubmissionsInFlight` of a `GatewayCluster`; `None` leaves the product default.
    pub max_submissions_in_flight: Option<usize>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            // Slower than the product default: test suites load 2-core machines heavily, and a
            // needless election only makes a test slower to read.
            heartbeat_ms: Some(100),
            election_min_ms: Some(800),
            election_max_ms: Some(1600),
            snapshot_every_logs: 5000,
            logs_kept_after_snapshot: 1000,
            extra_yaml: String::new(),
            app_ttl_seconds: None,
            store_cache_bytes: None,
            worker_threads: None,
            min_entry_interval_micros: None,
            max_submissions_in_flight: None,
        }
    }
}

/// One node's addresses and process.
#[derive(Debug)]
pub struct Node {
    pub id: u64,
    pub api: String,
    pub raft: String,
    pub admin: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
}

#[derive(Debug)]
pub struct TestCluster {
    dir: Option<tempfile::TempDir>,
    pub nodes: Vec<Node>,
    pub secret: String,
    bin: PathBuf,
    /// Everything of a node's config but its `node:` section.
    shared_config: String,
    /// Lines every `node:` section ends with.
    node_extra: String,
}

/// A loopback port nobody listens on right now, for a process started later to bind.
///
/// Taken below the kernel's ephemeral range: a port bound to 0 and released comes from that
/// range, where any outgoing connection (another test's client, a peer's raft stream) may
/// take it before the process it was meant for binds it, and that process then fails to
/// start. Ports below the range are only ever taken by an explicit bind. Each process walks
/// the range from its own offset, and a counter keeps the tests of one binary apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = (10_000u32, ephemeral_range_start().max(10_001));
    let span = high - low;
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = (low + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}")
}

/// The first port of the kernel's ephemeral range (32768 if it cannot be read), read once.
fn ephemeral_range_start() -> u32 {
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(32_768)
    })
}

/// Spawns `cmd` with stdin closed and stdout and stderr appended to `log`; the process is
/// killed when its handle is dropped.
pub fn spawn_logged(cmd: &mut Command, log: std::fs::File) -> anyhow::Result<Child> {
    let program = PathBuf::from(cmd.as_std().get_program());
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

impl TestCluster {
    /// Writes configs for `opts.nodes` nodes with ids `0..n` and starts them all.
    pub async fn start(bin: impl AsRef<Path>, opts: ClusterOptions) -> anyhow::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("bpg-test-").tempdir()?;
        let secret = format!("test-secret-{:016x}", rand::random::<u64>());
        let secret_file = dir.path().join("cluster-secret");
        std::fs::write(&secret_file, &secret)?;
        let mut nodes = Vec::new();
        for id in 0..opts.nodes as u64 {
            let (api, raft, admin) = (free_port(), free_port(), free_port());
            nodes.push(Node {
                id,
                api: format!("127.0.0.1:{api}"),
                raft: format!("127.0.0.1:{raft}"),
                admin: format!("127.0.0.1:{admin}"),
                config: dir.path().join(format!("node-{id}.yaml")),
                log: dir.path().join(format!("node-{id}.log")),
                child: None,
            });
        }
        let mut peers = String::new();
        for n in &nodes {
            writeln!(
                peers,
                "    - {{id: {}, raftAddr: '{}', apiAddr: '{}', adminAddr: '{}'}}",
                n.id, n.raft, n.api, n.admin
            )?;
        }
        let mut timing = String::new();
        for (key, value) in [
            ("heartbeatMillis", opts.heartbeat_ms),
            ("electionTimeoutMinMillis", opts.election_min_ms),
            ("electionTimeoutMaxMillis", opts.election_max_ms),
            ("storeCacheBytes", opts.store_cache_bytes),
            ("minEntryIntervalMicros", opts.min_entry_interval_micros),
        ] {
            if let Some(v) = value {
                writeln!(timing, "  {key}: {v}")?;
            }
        }
        let shared_config = format!(
            "raft:\n  clusterSecret: 'file:{secret}'\n{timing}  snapshotEveryLogs: {snap}\n  \
             logsKeptAfterSnapshot: {keep}\n  writeTimeoutMillis: 5000\n  peers:\n{peers}{extra}\n",
            secret = secret_file.display(),
            snap = opts.snapshot_every_logs,
            keep = opts.logs_kept_after_snapshot,
            extra = opts.extra_yaml,
        );
        let node_extra = opts.worker_threads.map(|n| format!("  workerThreads: {n}\n")).unwrap_or_default();
        for n in &nodes {
            let node = format!(
                "node:\n  id: {}\n  dataDir: '{}'\n{node_extra}",
                n.id,
                dir.path().join(format!("data-{}", n.id)).display()
            );
            std::fs::write(&n.config, format!("{node}{shared_config}"))?;
        }
        let mut cluster =
            TestCluster { dir: Some(dir), nodes, secret, bin: bin.as_ref().to_path_buf(), shared_config, node_extra };
        for id in 0..opts.nodes as u64 {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    /// Adds (and starts) a node that is not among the configured peers, as a StatefulSet
    /// scaled up does: it advertises its own addresses and asks the cluster to add it.
    pub fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.nodes.len() as u64;
        let dir = self.dir().to_path_buf();
        let (api, raft, admin) = (free_port(), free_port(), free_port());
        let node = Node {
            id,
            api: format!("127.0.0.1:{api}"),
            raft: format!("127.0.0.1:{raft}"),
            admin: format!("127.0.0.1:{admin}"),
            config: dir.join(format!("node-{id}.yaml")),
            log: dir.join(format!("node-{id}.log")),
            child: None,
        };
        let section = format!(
            "node:\n  id: {id}\n  dataDir: '{}'\n  advertise: {{raftAddr: '{}', apiAddr: '{}', adminAddr: '{}'}}\n{}",
            dir.join(format!("data-{id}")).display(),
            node.raft,
            node.api,
            node.admin,
            self.node_extra
        );
        std::fs::write(&node.config, format!("{section}{}", self.shared_config))?;
        self.nodes.push(node);
        self.start_node(id)?;
        Ok(id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir kept until drop").path()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize]
    }

    /// A client for node `id` using the cluster secret (an admin credential).
    pub fn client(&self, id: u64) -> Client {
        Client::new(&self.node(id).api, Credentials::Bearer(self.secret.clone()))
    }

    /// (Re)starts node `id` from its directory.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let node = &mut self.nodes[id as usize];
        anyhow::ensure!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = spawn_logged(
            Command::new(&self.bin)
                .arg("serve")
                .arg("--config")
                .arg(&node.config)
                .env("RUST_LOG", "info,openraft=warn,sled=warn"),
            log,
        )?;
        node.child = Some(child);
        Ok(())
    }

    /// SIGKILL: the process dies at once, with whatever it had not made durable.
    pub async fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[id as usize].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        if let Some(mut child) = self.nodes[id as usize].child.take() {
            signal(&child, nix::sys::signal::Signal::SIGTERM);
            let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .context("node did not stop within 20 s of SIGTERM")??;
            anyhow::ensure!(status.success(), "node {id} exited with {status} after SIGTERM");
        }
        Ok(())
    }

    /// SIGSTOP / SIGCONT.
    pub fn pause(&self, id: u64, paused: bool) {
        if let Some(child) = &self.node(id).child {
            let sig = if paused { nix::sys::signal::Signal::SIGSTOP } else { nix::sys::signal::Signal::SIGCONT };
            signal(child, sig);
        }
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }

    /// The last `lines` lines of every node's log, for an error that needs explaining.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::from("the nodes' logs end with:");
        for node in &self.nodes {
            let log = self.log(node.id);
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            let _ = write!(out, "\n--- node {} (pid {:?})", node.id, node.pid());
            for line in tail.into_iter().rev() {
                let _ = write!(out, "\n{line}");
            }
        }
        out
    }

    /// `GET /raft` on a node's admin listener.
    pub async fn raft_status(&self, id: u64) -> Option<Value> {
        let url = format!("http://{}/raft", self.node(id).admin);
        let resp = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
        resp.json().await.ok()
    }

    /// The leader every running node agrees on, once there is one.
    pub async fn leader(&self) -> anyhow::Result<u64> {
        self.leader_other_than(None).await
    }

    /// A leader other than `old`, agreed by every running node.
    pub async fn wait_for_new_leader(&self, old: u64) -> anyhow::Result<u64> {
        self.leader_other_than(Some(old)).await
    }

    async fn leader_other_than(&self, old: Option<u64>) -> anyhow::Result<u64> {
        wait::until("an agreed leader", Duration::from_secs(30), || async {
            let mut agreed = None;
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let leader = self.raft_status(node.id).await?.get("current_leader")?.as_u64()?;
                if agreed.is_some_and(|a| a != leader) || Some(leader) == old || !self.node(leader).is_running() {
                    return None;
                }
                agreed = Some(leader);
            }
            agreed
        })
        .await
        .with_context(|| self.log_tails(20))
    }

    /// Waits until the leader has replicated its whole log to every running node.
    pub async fn wait_replicated(&self) -> anyhow::Result<()> {
        wait::until("every running node to hold the leader's whole log", Duration::from_secs(30), || async {
            let leader = self.leader().await.ok()?;
            let status = self.raft_status(leader).await?;
            let last = status["last_log_index"].as_u64()?;
            let replication = status["replication"].as_object()?;
            self.nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| replication.get(&n.id.to_string()).and_then(|m| m.as_u64()) == Some(last))
                .then_some(())
        })
        .await
    }

    /// Waits until node `id` answers `/ready` with 200.
    pub async fn wait_ready(&self, id: u64) -> anyhow::Result<()> {
        let url = format!("http://{}/ready", self.node(id).admin);
        let http = reqwest::Client::new();
        wait::until(&format!("node {id} ready"), Duration::from_secs(30), || async {
            let resp = http.get(&url).timeout(Duration::from_secs(2)).send().await.ok()?;
            resp.status().is_success().then_some(())
        })
        .await
    }

    /// Ids of the running nodes that are not `leader`.
    pub fn followers(&self, leader: u64) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.is_running() && n.id != leader).map(|n| n.id).collect()
    }

    /// Raw request helper against a node's API with the cluster secret.
    pub async fn call(&self, id: u64, method: Method, path: &str) -> reqwest::Result<crate::client::Answer> {
        self.client(id).call(method, path, None).await
    }
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.start_kill();
            }
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("test cluster files kept in {}", kept.display());
        }
    }
}
