//! `Cluster::create` against an in-process kubesim: what each answer of the API server comes
//! to for the dispatcher, which must neither duplicate an application nor take over one it
//! did not create.

mod common;

use bpg_router::clusters::{Cluster, CreateOutcome, spark_resource};
use bpg_router::metrics::GatewayMetrics;
use bpg_router::translate::SUBMISSION_ANNOTATION;
use common::{TOKEN, app, kubesim_c1};
use kube::api::{Api, DynamicObject, ListParams};
use kubesim::Running;
use serde_json::json;

async fn cluster() -> (Running, Cluster) {
    let (srv, config) = kubesim_c1().await;
    let cluster = Cluster::new(config, GatewayMetrics::detached()).expect("a client");
    (srv, cluster)
}

/// The names of the SparkApplications the cluster holds, read with a client of its own.
async fn names(srv: &Running) -> Vec<String> {
    let mut cfg = kube::Config::new(srv.url().parse().expect("url"));
    cfg.auth_info.token = Some(TOKEN.to_owned().into());
    let client = kube::Client::try_from(cfg).expect("client");
    let apps: Api<DynamicObject> = Api::namespaced_with(client, "spark", &spark_resource());
    let list = apps.list(&ListParams::default()).await.expect("list");
    list.items.into_iter().filter_map(|o| o.metadata.name).collect()
}

#[tokio::test]
async fn a_repeated_create_is_recognised_and_a_foreign_object_is_not_taken_over() {
    let (srv, cluster) = cluster().await;

    assert_eq!(cluster.create("c1-a", &app("c1-a", Some("c1-a")).to_string()).await, CreateOutcome::Created);
    let stored = cluster.get("c1-a").await.expect("get").expect("the object exists");
    assert_eq!(stored["spec"]["mainClass"], "org.apache.spark.examples.SparkPi", "the whole manifest was sent");

    // A retry of the same create (an answer lost, a new leader) finds its own object.
    assert_eq!(cluster.create("c1-a", &app("c1-a", Some("c1-a")).to_string()).await, CreateOutcome::AlreadyOurs);

    // An object of that name that bpg did not create is left alone.
    assert_eq!(cluster.create("c1-b", &app("c1-b", None).to_string()).await, CreateOutcome::Created);
    match cluster.create("c1-b", &app("c1-b", Some("c1-b")).to_string()).await {
        CreateOutcome::Rejected(why) => assert!(why.contains("did not create"), "{why}"),
        other => panic!("a foreign object's name: {other:?}"),
    }
    let foreign = cluster.get("c1-b").await.expect("get").expect("the foreign object exists");
    assert!(foreign["metadata"]["annotations"][SUBMISSION_ANNOTATION].is_null(), "left as it was");
    assert_eq!(names(&srv).await, ["c1-a", "c1-b"], "nothing was created twice");
    srv.stop().await;
}

#[tokio::test]
async fn an_object_the_cluster_refuses_is_rejected_with_its_reason() {
    let (srv, cluster) = cluster().await;
    let mut invalid = app("c1-c", Some("c1-c"));
    invalid["spec"]["driver"]["cores"] = json!("one");
    match cluster.create("c1-c", &invalid.to_string()).await {
        CreateOutcome::Rejected(why) => assert!(why.contains("cores"), "the reason names the field: {why}"),
        other => panic!("an invalid object: {other:?}"),
    }
    let mut nameless = app("x", Some("x"));
    nameless["metadata"].as_object_mut().expect("metadata").remove("name");
    match cluster.create("x", &nameless.to_string()).await {
        CreateOutcome::Rejected(why) => assert!(why.contains("name or generateName is required"), "{why}"),
        other => panic!("an object without a name: {other:?}"),
    }
    // A stored manifest that is not JSON (a damaged record) is the cluster's 400: rejected,
    // never retried for ever.
    match cluster.create("c1-d", "{\"apiVersion\": ").await {
        CreateOutcome::Rejected(why) => assert!(why.contains("error decoding JSON"), "{why}"),
        other => panic!("a manifest that is not JSON: {other:?}"),
    }
    assert!(names(&srv).await.is_empty(), "nothing was created");
    srv.stop().await;
}
