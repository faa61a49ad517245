//! The processes under test: gateway nodes and kubesim clusters, each in its namespace, each
//! node with its own data directory; and the verbs the nemesis needs (kill, restart, pause).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::Child;

use crate::net::{Host, Net, in_namespace};

pub const API_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 8081;
pub const RAFT_PORT: u16 = 7000;
pub const KUBESIM_PORT: u16 = 6443;
/// The workload's user.
pub const USER: (&str, &str) = ("jepsen", "jepsen-password");
/// Namespace of the SparkApplications in the simulated clusters.
pub const SPARK_NAMESPACE: &str = "spark";

#[derive(Debug)]
pub struct GatewayNode {
    pub id: u64,
    pub host: Host,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pub paused: bool,
}

impl GatewayNode {
    pub fn api(&self) -> String {
        format!("{}:{API_PORT}", self.host.ip)
    }

    pub fn admin(&self) -> String {
        format!("{}:{ADMIN_PORT}", self.host.ip)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }
}

#[derive(Debug)]
pub struct Kubesim {
    pub id: String,
    pub host: Host,
    child: Option<Child>,
    log: PathBuf,
}

impl Kubesim {
    pub fn url(&self) -> String {
        format!("http://{}:{KUBESIM_PORT}", self.host.ip)
    }
}

/// Everything that runs, and how to reach it.
#[derive(Debug)]
pub struct Cluster {
    pub net: Net,
    pub nodes: Vec<GatewayNode>,
    pub sims: Vec<Kubesim>,
    pub secret: String,
    pub token: String,
    bpg: PathBuf,
    shared_config: String,
    /// How many nodes were the initial voters.
    pub initial: usize,
    http: reqwest::Client,
}

fn spawn(host: &Host, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut cmd = in_namespace(host);
    cmd.arg(program).args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {} in {}", program.display(), host.ns))
}

impl Cluster {
    /// Starts `sims` kubesim clusters and `nodes` gateway nodes (ids 0..nodes) in `dir`.
    pub async fn start(
        mut net: Net,
        bpg: &Path,
        kubesim: &Path,
        dir: &Path,
        nodes: usize,
        time_scale: f64,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir.join("nodes"))?;
        let secret = format!("jepsen-cluster-secret-{:016x}", rand::random::<u64>());
        let token = format!("jepsen-kubesim-{:08x}", rand::random::<u32>());
        std::fs::write(dir.join("cluster-secret"), &secret)?;
        let mut sims = Vec::new();
        for (i, id) in ["clustera", "clusterb"].iter().enumerate() {
            let host = net.add_host(&format!("k{i}"), 101 + i as u8)?;
            let args = vec![
                "--listen".into(),
                format!("{}:{KUBESIM_PORT}", host.ip),
                "--token".into(),
                token.clone(),
                "--time-scale".into(),
                time_scale.to_string(),
                "--seed".into(),
                (i + 1).to_string(),
            ];
            let log = dir.join(format!("nodes/{id}.log"));
            let child = spawn(&host, kubesim, &args, &log)?;
            sims.push(Kubesim { id: (*id).to_owned(), host, child: Some(child), log });
        }
        // Room for two nodes beyond the initial ones (membership changes).
        let mut hosts = Vec::new();
        for i in 0..nodes + 2 {
            hosts.push(net.add_host(&format!("n{i}"), 1 + i as u8)?);
        }
        let hash = std::process::Command::new(bpg)
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(format!("{}\n", USER.1).as_bytes())?;
                c.wait_with_output()
            })
            .context("running bpg hash-password")?;
        let hash = String::from_utf8(hash.stdout)?.trim().to_owned();
        let mut peers = String::new();
        for (i, h) in hosts.iter().take(nodes).enumerate() {
            writeln!(
                peers,
                "    - {{id: {i}, raftAddr: '{0}:{RAFT_PORT}', apiAddr: '{0}:{API_PORT}', adminAddr: '{0}:{ADMIN_PORT}'}}",
                h.ip
            )?;
        }
        let mut clusters = String::new();
        for s in &sims {
            writeln!(
                clusters,
                "  - {{id: {}, weight: 50, masterUrl: '{}', userTokenSOPS: 'plaintext:{token}', sparkApplicationNamespace: {SPARK_NAMESPACE}, \
                 sparkVersions: ['3.5.0'], queues: [dev], timeoutMillis: 3000}}",
                s.id,
                s.url()
            )?;
        }
        let shared_config = format!(
            "raft:\n  clusterSecret: 'file:{secret_file}'\n  snapshotEveryLogs: 300\n  logsKeptAfterSnapshot: 100\n  \
             writeTimeoutMillis: 5000\n  peers:\n{peers}\
             auth:\n  users:\n    - {{name: {user}, passwordHash: '{hash}'}}\n\
             allowedUsers: ['*']\n\
             queues: [{{name: dev}}]\n\
             sparkImages: [{{name: 'apache/spark:3.5.0', types: [Java, Scala, Python], version: '3.5.0'}}]\n\
             gateway: {{dispatchTimeoutMillis: 4000, clusterProbeMillis: 1000}}\n\
             sparkClusters:\n{clusters}",
            secret_file = dir.join("cluster-secret").display(),
            user = USER.0,
        );
        let mut cluster = Cluster {
            net,
            nodes: Vec::new(),
            sims,
            secret,
            token,
            bpg: bpg.to_path_buf(),
            shared_config,
            initial: nodes,
            http: reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?,
        };
        for (i, host) in hosts.into_iter().enumerate() {
            let id = i as u64;
            let mut section =
                format!("node:\n  id: {id}\n  dataDir: '{}'\n", dir.join(format!("nodes/n{id}")).display());
            if i >= nodes {
                writeln!(
                    section,
                    "  advertise: {{raftAddr: '{0}:{RAFT_PORT}', apiAddr: '{0}:{API_PORT}', adminAddr: '{0}:{ADMIN_PORT}'}}",
                    host.ip
                )?;
            }
            let config = dir.join(format!("nodes/n{id}.yaml"));
            std::fs::write(&config, format!("{section}{}", cluster.shared_config))?;
            cluster.nodes.push(GatewayNode {
                id,
                host,
                config,
                log: dir.join(format!("nodes/n{id}.log")),
                child: None,
                paused: false,
            });
        }
        for id in 0..nodes as u64 {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let node = &mut self.nodes[id as usize];
        if node.child.is_none() {
            let args = vec!["serve".into(), "--config".into(), node.config.display().to_string()];
            node.child = Some(spawn(&node.host, &self.bpg, &args, &node.log)?);
            node.paused = false;
        }
        Ok(())
    }

    /// SIGKILL.
    pub async fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[id as usize].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.nodes[id as usize].paused = false;
    }

    /// SIGTERM and wait (up to 20 s, then SIGKILL).
    pub async fn stop(&mut self, id: u64) {
        let node = &mut self.nodes[id as usize];
        node.signal(Signal::SIGCONT);
        node.signal(Signal::SIGTERM);
        if let Some(mut child) = node.child.take()
            && tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub fn pause(&mut self, id: u64, paused: bool) {
        let node = &mut self.nodes[id as usize];
        node.signal(if paused { Signal::SIGSTOP } else { Signal::SIGCONT });
        node.paused = paused;
    }

    /// `GET /raft` on a node's admin listener.
    pub async fn raft_status(&self, id: u64) -> Option<Value> {
        let url = format!("http://{}/raft", self.nodes[id as usize].admin());
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    /// The node a majority of the running, unpaused nodes report as leader (and which says so).
    pub async fn leader(&self) -> Option<u64> {
        let mut votes = std::collections::BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.is_running() && !n.paused) {
            if let Some(l) = self.raft_status(n.id).await.and_then(|s| s["current_leader"].as_u64()) {
                *votes.entry(l).or_insert(0) += 1;
            }
        }
        let (leader, _) = votes.into_iter().max_by_key(|(_, v)| *v)?;
        let s = self.raft_status(leader).await?;
        (s["state"] == "Leader").then_some(leader)
    }

    /// Voters as `node` sees them.
    pub async fn voters(&self, node: u64) -> Vec<u64> {
        let s = self.raft_status(node).await.unwrap_or_default();
        s["voters"].as_object().map(|m| m.keys().filter_map(|k| k.parse().ok()).collect()).unwrap_or_default()
    }

    /// Processes that ended by themselves (the nemesis reaps the ones it kills), and log
    /// lines of any process that reported a panic: each is a bug.
    pub fn crashes(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(Ok(Some(status))) = n.child.as_mut().map(|c| c.try_wait()) {
                out.push(format!("n{} exited by itself: {status}", n.id));
                n.child = None;
            }
        }
        for s in &mut self.sims {
            if let Some(Ok(Some(status))) = s.child.as_mut().map(|c| c.try_wait()) {
                out.push(format!("{} exited by itself: {status}", s.id));
            }
        }
        let logs = self.nodes.iter().map(|n| (format!("n{}", n.id), n.log.clone()));
        let logs = logs.chain(self.sims.iter().map(|s| (s.id.clone(), s.log.clone())));
        for (name, log) in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            out.extend(text.lines().filter(|l| l.contains("panicked at")).take(5).map(|l| format!("{name}: {l}")));
        }
        out
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect()
    }

    /// Sets kubesim faults (`{}` clears them).
    pub async fn kubesim_faults(&self, sim: usize, faults: Value) -> anyhow::Result<()> {
        let url = format!("{}/kubesim/faults", self.sims[sim].url());
        let r = self.http.put(url).bearer_auth(&self.token).json(&faults).send().await?;
        anyhow::ensure!(r.status().is_success(), "setting kubesim faults: {}", r.status());
        Ok(())
    }

    /// Every SparkApplication of every simulated cluster: (cluster, object).
    pub async fn spark_applications(&self) -> anyhow::Result<Vec<(String, Value)>> {
        let mut out = Vec::new();
        for s in &self.sims {
            let url =
                format!("{}/apis/sparkoperator.k8s.io/v1beta2/namespaces/{SPARK_NAMESPACE}/sparkapplications", s.url());
            let list: Value = self
                .http
                .get(url)
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(30))
                .send()
                .await?
                .json()
                .await?;
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                out.push((s.id.clone(), item));
            }
        }
        Ok(out)
    }

    /// Stops every process.
    pub async fn shutdown(&mut self) {
        for id in 0..self.nodes.len() as u64 {
            self.kill(id).await;
        }
        for s in &mut self.sims {
            if let Some(mut c) = s.child.take() {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }
}
