//! An in-process kubesim, the configuration of a cluster "c1" on it, and a SparkApplication,
//! shared by the tests that create SparkApplications.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bpg_raft::model::{Dispatch, Job, JobResources};
use bpg_raft::{ClusterSecret, NetworkFactory, NodeInfo, RaftNode, RaftSettings, Store, StoreOptions};
use bpg_router::ClusterConfig;
use bpg_router::translate::SUBMISSION_ANNOTATION;
use kubesim::{OperatorConfig, Running, Settings};
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "router-test-token";

/// A kubesim with slow operator timing, so the objects stay as created, and the
/// configuration of cluster "c1" on it (namespace `spark`).
pub(crate) async fn kubesim_c1() -> (Running, ClusterConfig) {
    let operator = OperatorConfig { time_scale: 100.0, ..OperatorConfig::default() };
    let srv = Running::start(Settings { token: Some(TOKEN.into()), operator, ..Settings::default() })
        .await
        .expect("kubesim starts");
    let config = ClusterConfig {
        id: "c1".into(),
        weight: 1,
        master_url: srv.url(),
        token: Some(TOKEN.into()),
        timeout: Duration::from_secs(10),
        namespace: "spark".into(),
        ..ClusterConfig::default()
    };
    (srv, config)
}

/// A SparkPi application `name` in namespace `spark`, carrying `submission` in bpg's
/// annotation when given (an object bpg created).
pub(crate) fn app(name: &str, submission: Option<&str>) -> Value {
    let mut metadata = json!({"name": name, "namespace": "spark"});
    if let Some(id) = submission {
        metadata["annotations"] = json!({SUBMISSION_ANNOTATION: id});
    }
    json!({
        "apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "metadata": metadata,
        "spec": {
            "type": "Scala", "mode": "cluster", "sparkVersion": "3.5.0", "image": "spark:3.5.0",
            "mainClass": "org.apache.spark.examples.SparkPi",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "driver": {"cores": 1, "memory": "1g"},
            "executor": {"cores": 1, "instances": 1, "memory": "1g"}
        }
    })
}

/// A one-node cluster on a fresh data directory, leading.
pub(crate) async fn single_node(dir: &std::path::Path) -> RaftNode {
    let store = Store::open(dir, &StoreOptions::default()).expect("store opens");
    let network = NetworkFactory::new(1, ClusterSecret::new("test"), None);
    let raft = RaftNode::start(1, store, network, &RaftSettings::default()).await.expect("raft starts");
    let me = NodeInfo { raft_addr: "127.0.0.1:1".into(), api_addr: "127.0.0.1:2".into() };
    raft.initialize(BTreeMap::from([(1, me)])).await.expect("initialized");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raft.is_leader() {
        assert!(Instant::now() < deadline, "a one-node cluster did not elect itself");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    raft
}

pub(crate) fn job(id: &str) -> Job {
    let manifest = app(id, Some(id));
    Job {
        id: id.to_owned(),
        cluster: "c1".into(),
        namespace: "spark".into(),
        owner: "alice".into(),
        proxy_user: "alice".into(),
        queue: "poc".into(),
        spark_version: "3.5".into(),
        application_name: None,
        submitted_at_ms: 1,
        max_running_millis: 3_600_000,
        resources: JobResources::default(),
        dispatch: Dispatch::Pending { manifest: manifest.to_string() },
        observed: None,
        deleted_at_ms: None,
    }
}
