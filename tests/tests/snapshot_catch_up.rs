//! A node that was down while the log was compacted catches up through snapshot install.

use std::time::Duration;

use bpg_tests::register::clusters_yaml;
use bpg_tests::{ClusterOptions, TestCluster, wait};
use serde_json::json;

#[tokio::test]
async fn a_node_behind_a_purged_log_catches_up_from_a_snapshot() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions {
            extra_yaml: clusters_yaml(4),
            snapshot_every_logs: 20,
            logs_kept_after_snapshot: 0,
            ..ClusterOptions::default()
        },
    )
    .await?;
    let leader = cluster.leader().await?;
    let lagger = cluster.followers(leader)[0];
    assert!(cluster.client(leader).set_cluster("c0", json!({"weight": 5})).await?.ok());
    let lagger_last = cluster.raft_status(lagger).await.and_then(|s| s["last_log_index"].as_u64()).unwrap_or(0);

    tracing::info!("--- stop one follower, write past several snapshots");
    cluster.kill(lagger).await;
    let client = cluster.client(leader);
    for v in 0..120u32 {
        let answer = client.set_cluster(&format!("c{}", v % 4), json!({"weight": 1000 + v})).await?;
        assert!(answer.ok(), "{answer:?}");
    }
    wait::until("the leader to purge past the stopped follower's log", Duration::from_secs(20), || async {
        let purged = cluster.raft_status(leader).await?["purged_index"].as_u64()?;
        (purged > lagger_last + 20).then_some(())
    })
    .await?;

    tracing::info!("--- restart it: the entries it needs are gone, so it must install a snapshot");
    cluster.start_node(lagger)?;
    let lagging = cluster.client(lagger);
    wait::until("the restarted node to hold the latest values", Duration::from_secs(30), || async {
        for i in 0..4u32 {
            let a = lagging.cluster(&format!("c{i}"), false).await.ok()?;
            let want = 1000 + 116 + i;
            if a.served_by != Some(lagger) || a.body["weight"] != json!(want) {
                return None;
            }
        }
        Some(())
    })
    .await?;
    let status = cluster.raft_status(lagger).await.expect("status");
    assert!(status["snapshot_index"].as_u64().unwrap_or(0) > lagger_last, "{status}");
    assert!(cluster.log(lagger).contains("installed snapshot"), "the node's log shows no snapshot install");
    Ok(())
}
