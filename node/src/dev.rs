//! `bpg dev`: a local gateway for trying bpg out, with no Kubernetes.
//!
//! Starts two simulated Kubernetes clusters (`kubesim`, from the same build directory) and the
//! gateway nodes as child processes, writes their configs, kubeconfigs and logs into `--dir`,
//! prints how to reach everything and the blog's SparkPi submission, and stops them all on
//! Ctrl-C or SIGTERM. Gateway state is kept in `--dir`, so running it again resumes it (the
//! simulated clusters start empty).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use base64::Engine;
use tokio::process::{Child, Command};

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Directory for configs, data and logs.
    #[arg(long, default_value = "bpg-dev")]
    dir: PathBuf,
    /// Number of gateway nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// API port of node 0; node i uses base + 2i for its API and base + 2i + 1 for admin.
    #[arg(long, default_value_t = 8080)]
    base_port: u16,
    /// Raft port of node 0; node i uses base + i.
    #[arg(long, default_value_t = 7000)]
    raft_base_port: u16,
    /// HTTPS port of the first simulated cluster; the second uses the next port.
    #[arg(long, default_value_t = 9443)]
    kubesim_base_port: u16,
    /// Time scale of the simulated Spark Operator (1.0: a job runs 10-20 s; 0.2: 2-4 s).
    #[arg(long, default_value_t = 0.3)]
    time_scale: f64,
}

/// The simulated clusters: id, kubesim port offset.
const CLUSTERS: [&str; 2] = ["clustera", "clusterb"];

/// Demo users: `user:pass` (as in the blog's curl line) and `admin:admin`.
const USERS: [(&str, &str, bool); 2] = [("user", "pass", false), ("admin", "admin", true)];

pub async fn run(args: DevArgs, json_logs: bool) -> anyhow::Result<()> {
    anyhow::ensure!((1..=9).contains(&args.nodes), "--nodes must be between 1 and 9");
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let secret_file = dir.join("cluster-secret");
    if !secret_file.exists() {
        let secret: [u8; 24] = rand::random();
        std::fs::write(&secret_file, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))?;
    }
    let mut users = String::new();
    for (name, password, admin) in USERS {
        let hash = bpg_api::auth::hash_password(password).map_err(anyhow::Error::msg)?;
        writeln!(users, "    - {{name: {name}, passwordHash: '{hash}', admin: {admin}}}")?;
    }
    let exe = std::env::current_exe().context("locating the bpg binary")?;
    let kubesim = exe.with_file_name("kubesim");
    anyhow::ensure!(
        kubesim.is_file(),
        "{} not found: build the workspace first (cargo build --release), so kubesim sits next to bpg",
        kubesim.display()
    );
    let token_file = dir.join("kubesim-token");
    if !token_file.exists() {
        let token: [u8; 18] = rand::random();
        std::fs::write(&token_file, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))?;
    }
    let mut children = Vec::new();
    let mut cluster_yaml = String::new();
    for (i, cluster) in CLUSTERS.iter().enumerate() {
        let port = args.kubesim_base_port + i as u16;
        let ca = dir.join(format!("{cluster}-ca.pem"));
        let _ = std::fs::remove_file(&ca);
        let mut cmd = Command::new(&kubesim);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--token-file")
            .arg(&token_file)
            .arg("--self-signed")
            .arg("--write-ca")
            .arg(&ca)
            .arg("--write-kubeconfig")
            .arg(dir.join(format!("{cluster}.kubeconfig")))
            .arg("--time-scale")
            .arg(args.time_scale.to_string())
            .arg("--seed")
            .arg((i + 1).to_string());
        children.push(spawn_logged(cmd, &dir.join(format!("{cluster}.log")))?);
        wait_for_file(&ca).await?;
        writeln!(
            cluster_yaml,
            "  - id: {cluster}\n    weight: 50\n    masterUrl: 'https://127.0.0.1:{port}'\n    caCertFile: '{ca}'\n    \
             userTokenSOPS: 'file:{token}'\n    sparkApplicationNamespace: spark-operator\n    sparkServiceAccount: spark\n    \
             sparkVersions: ['3.5.0', '3.5', '3.4']\n    queues: [dev, poc]\n    \
             sparkConf: {{spark.kubernetes.executor.podNamePrefix: '{{spark-application-resource-name}}'}}",
            ca = ca.display(),
            token = token_file.display(),
        )?;
    }
    for id in 0..args.nodes {
        let path = dir.join(format!("node-{id}.yaml"));
        std::fs::write(&path, node_config(&args, &dir, &secret_file, &users, &cluster_yaml, id))?;
        let mut cmd = Command::new(&exe);
        if json_logs {
            cmd.arg("--log-format").arg("json");
        }
        cmd.arg("serve").arg("--config").arg(&path);
        children.push(spawn_logged(cmd, &dir.join(format!("node-{id}.log")))?);
    }
    println!("bpg dev: {} nodes running; configs, data and logs in {}", args.nodes, dir.display());
    for id in 0..args.nodes {
        println!(
            "  node {id}: API http://127.0.0.1:{}  admin http://127.0.0.1:{}",
            api_port(&args, id),
            api_port(&args, id) + 1
        );
    }
    for (i, cluster) in CLUSTERS.iter().enumerate() {
        println!(
            "  simulated cluster {cluster}: https://127.0.0.1:{}  (kubectl --kubeconfig {} -n spark-operator get sparkapplications)",
            args.kubesim_base_port + i as u16,
            dir.join(format!("{cluster}.kubeconfig")).display()
        );
    }
    let api = format!("localhost:{}", api_port(&args, 0));
    println!("  users: user:pass, admin:admin\n");
    println!("Submit the blog's SparkPi job (any node accepts it):\n");
    println!("curl -u user:pass {api}/skatev2/spark -i -X POST -H 'Content-Type: application/json' -d '{SPARK_PI}'\n");
    println!("Then, with the returned id:");
    println!("  curl -u user:pass {api}/skatev2/spark/<submissionId>/status");
    println!("  curl -u user:pass '{api}/skatev2/log?subId=<submissionId>'");
    println!("  curl -u admin:admin {api}/skatev2/admin/clusters      # weights, cordons, health");
    println!("  curl -u admin:admin {api}/admin/raft                   # leader, terms, replication");
    println!("Ctrl-C stops everything.");

    crate::serve::shutdown_signal().await;
    println!("bpg dev: stopping");
    for child in &mut children {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
    }
    for child in &mut children {
        let _ = child.wait().await;
    }
    Ok(())
}

fn api_port(args: &DevArgs, id: u16) -> u16 {
    args.base_port + 2 * id
}

/// The blog's SparkPi request, as one line.
const SPARK_PI: &str = r#"{"applicationName": "SparkPiDemo", "queue": "dev", "sparkVersion": "3.5.0", "mainApplicationFile": "local:///usr/lib/spark/examples/jars/spark-examples.jar", "mainClass": "org.apache.spark.examples.SparkPi", "driver": {"cores": 1, "memory": "2g", "serviceAccount": "emr-containers-sa-spark", "labels": {"version": "3.5.0"}}, "executor": {"instances": 1, "cores": 1, "memory": "2g", "labels": {"version": "3.5.0"}}}"#;

async fn wait_for_file(path: &Path) -> anyhow::Result<()> {
    for _ in 0..200 {
        if path.is_file() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("{} did not appear; see the kubesim log next to it", path.display())
}

fn node_config(args: &DevArgs, dir: &Path, secret_file: &Path, users: &str, clusters: &str, id: u16) -> String {
    let mut peers = String::new();
    for p in 0..args.nodes {
        let _ = writeln!(
            peers,
            "    - {{id: {p}, raftAddr: '127.0.0.1:{}', apiAddr: '127.0.0.1:{}'}}",
            args.raft_base_port + p,
            api_port(args, p)
        );
    }
    format!(
        "# Generated by `bpg dev`.\n\
         node:\n  id: {id}\n  dataDir: '{data}'\n  workerThreads: 1\n\
         raft:\n  clusterSecret: 'file:{secret}'\n  peers:\n{peers}\
         auth:\n  users:\n{users}\
         allowedUsers: ['*']\n\
         queues: [{{name: dev}}, {{name: poc}}]\n\
         sparkImages:\n  - {{name: 'apache/spark:3.5.0', types: [Java, Scala], version: '3.5.0'}}\n  \
         - {{name: 'apache/spark-py:3.5.0', types: [Python], version: '3.5.0'}}\n  \
         - {{name: 'apache/spark:3.5.0', types: [Java, Scala, Python], version: '3.5'}}\n  \
         - {{name: 'apache/spark:3.4.4', types: [Java, Scala, Python], version: '3.4'}}\n\
         sparkClusters:\n{clusters}",
        data = dir.join(format!("node-{id}")).display(),
        secret = secret_file.display(),
    )
}

fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file).kill_on_drop(true);
    let program = cmd.as_std().get_program().to_owned();
    cmd.spawn().with_context(|| format!("starting {}", program.display()))
}
