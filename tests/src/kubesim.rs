//! kubesim as a separate process, for end-to-end tests: start it, read its objects, inject
//! faults, kill it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::cluster::{free_port, spawn_logged};
use crate::wait;

/// Namespace the tests' clusters run Spark applications in.
pub const NAMESPACE: &str = "spark-operator";
/// The path of the SparkApplications in [`NAMESPACE`].
fn applications_path() -> String {
    format!("/apis/sparkoperator.k8s.io/v1beta2/namespaces/{NAMESPACE}/sparkapplications")
}

#[derive(Debug)]
pub struct Kubesim {
    pub id: String,
    pub url: String,
    pub token: String,
    /// The CA to trust, when serving HTTPS.
    pub ca: Option<PathBuf>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Kubesim {
    /// Starts `kubesim` for cluster `id` in `dir`. With `tls`, it serves HTTPS with a
    /// self-signed certificate and the test can only reach it through the gateway.
    pub async fn start(bin: &Path, dir: &Path, id: &str, tls: bool, extra: &[&str]) -> anyhow::Result<Kubesim> {
        let port = free_port();
        let token = format!("kubesim-{id}-{:08x}", rand::random::<u32>());
        let log = std::fs::File::create(dir.join(format!("{id}.log")))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--token").arg(&token).args(extra);
        let ca = tls.then(|| dir.join(format!("{id}-ca.pem")));
        if let Some(ca) = &ca {
            cmd.arg("--self-signed").arg("--write-ca").arg(ca);
        }
        let child = spawn_logged(&mut cmd, log)?;
        let scheme = if tls { "https" } else { "http" };
        let sim = Kubesim {
            id: id.to_owned(),
            url: format!("{scheme}://127.0.0.1:{port}"),
            token,
            ca,
            child: Some(child),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        };
        let probe = format!("http://127.0.0.1:{port}/version");
        wait::until(&format!("kubesim {id} listening"), Duration::from_secs(20), || async {
            match &sim.ca {
                Some(ca) => ca.is_file().then_some(()),
                None => sim.http.get(&probe).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()),
            }
        })
        .await?;
        Ok(sim)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// This cluster's entry in `sparkClusters` (queues `dev` and `poc`, Spark 3.5.0 / 3.5).
    pub fn cluster_yaml(&self, weight: u32) -> String {
        let ca = self.ca.as_ref().map(|c| format!("    caCertFile: '{}'\n", c.display())).unwrap_or_default();
        format!(
            "  - id: {id}\n    weight: {weight}\n    masterUrl: '{url}'\n{ca}    userTokenSOPS: 'plaintext:{token}'\n    \
             sparkApplicationNamespace: {NAMESPACE}\n    sparkServiceAccount: spark\n    sparkVersions: ['3.5.0', '3.5']\n    \
             queues: [dev, poc]\n    timeoutMillis: 5000\n    \
             sparkConf: {{spark.kubernetes.executor.podNamePrefix: '{{spark-application-resource-name}}'}}\n",
            id = self.id,
            url = self.url,
            token = self.token,
        )
    }

    fn ensure_plain(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ca.is_none(),
            "kubesim {} serves HTTPS; the test reads it through the gateway only",
            self.id
        );
        Ok(())
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.ensure_plain()?;
        let resp = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await?;
        anyhow::ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
        Ok(resp.json().await?)
    }

    /// Every SparkApplication in the test namespace.
    pub async fn applications(&self) -> anyhow::Result<Vec<Value>> {
        let list = self.get(&applications_path()).await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Deletes a SparkApplication on the cluster directly, as `kubectl delete` would.
    pub async fn delete_application(&self, name: &str) -> anyhow::Result<()> {
        self.ensure_plain()?;
        let url = format!("{}{}/{name}", self.url, applications_path());
        let resp = self.http.delete(url).bearer_auth(&self.token).send().await?;
        anyhow::ensure!(resp.status().is_success(), "DELETE {name}: {}", resp.status());
        Ok(())
    }

    /// Sets the faults (`{"unavailable": true}`, `{"errorRate": 0.5}`, ...); `{}` clears them.
    pub async fn set_faults(&self, faults: Value) -> anyhow::Result<()> {
        self.ensure_plain()?;
        let resp =
            self.http.put(format!("{}/kubesim/faults", self.url)).bearer_auth(&self.token).json(&faults).send().await?;
        anyhow::ensure!(resp.status().is_success(), "setting faults: {}", resp.status());
        Ok(())
    }

    pub async fn stats(&self) -> anyhow::Result<Value> {
        self.get("/kubesim/stats").await
    }

    /// Stops the process (SIGKILL).
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

/// Operator timing for tests: a job runs in well under a second.
pub const FAST: &[&str] = &["--time-scale", "0.02"];

/// Gateway config shared by the end-to-end tests: users, queues, images and `clusters`.
/// `gateway` holds more keys of the `gateway` section (`key: value, ...`), or nothing.
pub fn gateway_yaml(clusters: &str, hashes: &Users, gateway: &str) -> String {
    let gateway = if gateway.is_empty() { String::new() } else { format!(", {gateway}") };
    format!(
        "auth:\n  users:\n    - {{name: user, passwordHash: '{user}'}}\n    - {{name: other, passwordHash: '{other}'}}\n    \
         - {{name: admin, passwordHash: '{admin}', admin: true}}\n\
         allowedUsers: ['*']\n\
         queues: [{{name: dev}}, {{name: poc}}]\n\
         sparkImages:\n  - {{name: 'apache/spark:3.5.0', types: [Java, Scala, Python], version: '3.5.0'}}\n  \
         - {{name: 'apache/spark:3.5.0', types: [Java, Scala, Python], version: '3.5'}}\n\
         gateway: {{dispatchTimeoutMillis: 5000, clusterProbeMillis: 500, maxRunningCheckSeconds: 1{gateway}}}\n\
         sparkClusters:\n{clusters}",
        user = hashes.user,
        other = hashes.other,
        admin = hashes.admin,
    )
}

/// Password hashes of the test users `user:pass`, `other:pass`, `admin:admin`.
#[derive(Clone, Debug)]
pub struct Users {
    pub user: String,
    pub other: String,
    pub admin: String,
}

impl Users {
    pub fn hash() -> Users {
        let h = |p: &str| bpg_node::hash_password(p).expect("hash");
        Users { user: h("pass"), other: h("pass"), admin: h("admin") }
    }
}

/// The blog's SparkPi request, in the `dev` queue.
pub fn spark_pi() -> Value {
    json!({
        "applicationName": "SparkPiDemo",
        "queue": "dev",
        "sparkVersion": "3.5.0",
        "mainApplicationFile": "local:///usr/lib/spark/examples/jars/spark-examples.jar",
        "mainClass": "org.apache.spark.examples.SparkPi",
        "driver": {"cores": 1, "memory": "2g", "serviceAccount": "emr-containers-sa-spark", "labels": {"version": "3.5.0"}},
        "executor": {"instances": 1, "cores": 1, "memory": "2g", "labels": {"version": "3.5.0"}}
    })
}
