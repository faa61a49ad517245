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

/// A volume lost and replaced: the node comes back with its id and an empty directory, after
/// the log it had was compacted. Its log went backwards, which the leader must accept and
/// answer with a snapshot (openraft's `loosen-follower-log-revert`).
#[tokio::test]
async fn a_node_restarted_on_an_empty_directory_recovers_from_a_snapshot() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions {
            extra_yaml: clusters_yaml(2),
            snapshot_every_logs: 20,
            logs_kept_after_snapshot: 0,
            ..ClusterOptions::default()
        },
    )
    .await?;
    let leader = cluster.leader().await?;
    // Not node 0, which initializes a new cluster when it finds no state.
    let wiped = cluster.followers(leader).into_iter().find(|n| *n != 0).expect("a follower other than node 0");
    let client = cluster.client(leader);
    for v in 0..60u32 {
        assert!(client.set_cluster(&format!("c{}", v % 2), json!({"weight": 100 + v})).await?.ok());
    }
    cluster.wait_replicated().await?;

    tracing::info!("--- the follower loses its directory and comes back empty");
    cluster.kill(wiped).await;
    std::fs::remove_dir_all(cluster.dir().join(format!("data-{wiped}")))?;
    // Snapshots are started on a 250 ms tick, so the writes above may all be done before the
    // leader's first one: until it has purged, it can still send the whole log instead.
    wait::until("the leader to purge its log", Duration::from_secs(20), || async {
        let purged = cluster.raft_status(leader).await?["purged_index"].as_u64()?;
        (purged > 0).then_some(())
    })
    .await?;
    cluster.start_node(wiped)?;
    let restored = cluster.client(wiped);
    wait::until("the wiped node to hold the latest values", Duration::from_secs(30), || async {
        let a = restored.cluster("c1", false).await.ok()?;
        (a.served_by == Some(wiped) && a.body["weight"] == json!(159)).then_some(())
    })
    .await?;
    let status = cluster.raft_status(wiped).await.expect("status");
    assert_eq!(status["state"], "Follower", "{status}");
    assert!(status["snapshot_index"].as_u64().is_some(), "{status}");

    tracing::info!("--- and it keeps replicating");
    assert!(client.set_cluster("c0", json!({"weight": 7})).await?.ok());
    wait::until("the wiped node to apply a new write", Duration::from_secs(30), || async {
        let a = restored.cluster("c0", false).await.ok()?;
        (a.body["weight"] == json!(7)).then_some(())
    })
    .await?;
    Ok(())
}
