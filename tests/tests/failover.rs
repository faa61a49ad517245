//! Kill the leader: a new one is elected and accepts writes; the old node restarts from its
//! directory and catches up.

use std::time::Duration;

use bpg_tests::register::clusters_yaml;
use bpg_tests::{ClusterOptions, TestCluster, wait};
use serde_json::json;

#[tokio::test]
async fn a_killed_leader_is_replaced_and_catches_up_after_restart() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(2), ..ClusterOptions::default() },
    )
    .await?;
    let old = cluster.leader().await?;
    assert!(cluster.client(old).set_cluster("c0", json!({"weight": 10})).await?.ok());

    tracing::info!("--- SIGKILL the leader");
    cluster.kill(old).await;
    let new = cluster.wait_for_new_leader(old).await?;
    assert_ne!(new, old);

    tracing::info!("--- the new leader accepts writes, also through the other survivor");
    let survivor = cluster.followers(new)[0];
    let answer = cluster.client(survivor).set_cluster("c1", json!({"weight": 77})).await?;
    assert!(answer.ok(), "{answer:?}");
    assert_eq!(answer.served_by, Some(new));

    tracing::info!("--- restart the old leader from its directory; it catches up");
    cluster.start_node(old)?;
    cluster.wait_ready(old).await?;
    let client = cluster.client(old);
    wait::until("old leader to see the write made while it was down", Duration::from_secs(20), || async {
        let a = client.cluster("c1", false).await.ok()?;
        (a.served_by == Some(old) && a.body["weight"] == 77).then_some(())
    })
    .await?;
    let before = client.cluster("c0", false).await?;
    assert_eq!(before.body["weight"], 10, "the write acknowledged before the kill is still there");
    Ok(())
}
