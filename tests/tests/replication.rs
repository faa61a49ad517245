//! Three nodes elect a leader; a write sent to a follower is applied on every node.

use std::time::Duration;

use bpg_tests::register::clusters_yaml;
use bpg_tests::{ClusterOptions, TestCluster, wait};
use serde_json::json;

#[tokio::test]
async fn a_write_sent_to_a_follower_is_applied_on_all_three() -> anyhow::Result<()> {
    let cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(2), ..ClusterOptions::default() },
    )
    .await?;

    tracing::info!("--- elect a leader");
    let leader = cluster.leader().await?;
    let follower = cluster.followers(leader)[0];

    tracing::info!("--- write through a follower");
    let answer = cluster.client(follower).set_cluster("c1", json!({"weight": 42, "cordoned": true})).await?;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(answer.served_by, Some(leader), "the follower forwards writes to the leader");
    assert_eq!(answer.body["weight"], 42);

    tracing::info!("--- every replica holds it, read locally on each node");
    for node in 0..3 {
        let client = cluster.client(node);
        wait::until(&format!("c1 on node {node}"), Duration::from_secs(10), || async {
            let a = client.cluster("c1", false).await.ok()?;
            (a.served_by == Some(node) && a.body["weight"] == 42 && a.body["cordoned"] == true).then_some(())
        })
        .await?;
    }
    // The other cluster kept its configured weight.
    let other = cluster.client(follower).cluster("c0", true).await?;
    assert_eq!(other.body["weight"], 1);
    assert_eq!(other.body["weightOverridden"], false);
    Ok(())
}
