//! Stop and restart all three: every acknowledged write is still there, with the same values,
//! and a linearizable read right after a crash sees all of them.

use std::time::{Duration, Instant};

use bpg_tests::register::{Register, clusters_yaml, read_all, write};
use bpg_tests::{ClusterOptions, TestCluster, wait};
use serde_json::json;

const CLUSTERS: usize = 6;

#[tokio::test]
async fn acknowledged_writes_survive_a_full_restart() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(CLUSTERS), ..ClusterOptions::default() },
    )
    .await?;
    let leader = cluster.leader().await?;

    tracing::info!("--- write distinct values, several times each");
    let mut expected = std::collections::BTreeMap::new();
    for round in 0..5u32 {
        for i in 0..CLUSTERS {
            let node = (i as u64 + round as u64) % 3;
            let value = 100 * round + i as u32;
            let answer = cluster.client(node).set_cluster(&format!("c{i}"), json!({"weight": value})).await?;
            assert!(answer.ok(), "{answer:?}");
            expected.insert(format!("c{i}"), value);
        }
    }
    let _ = leader;

    tracing::info!("--- graceful stop of every node, then restart");
    for id in 0..3 {
        cluster.stop(id).await?;
    }
    for id in 0..3 {
        cluster.start_node(id)?;
    }
    let leader = cluster.leader().await?;
    assert_eq!(read_all(&cluster.client(leader), CLUSTERS).await?, expected);

    tracing::info!("--- SIGKILL every node at once, then restart");
    for id in 0..3 {
        cluster.kill(id).await;
    }
    for id in 0..3 {
        cluster.start_node(id)?;
    }
    let leader = cluster.leader().await?;
    assert_eq!(read_all(&cluster.client(leader), CLUSTERS).await?, expected);
    Ok(())
}

/// A node applies without a sync and syncs about once a second (the log is the durable
/// record), so a crash rolls its state back by up to a second. A leader that comes back must
/// not answer a linearizable read from that rolled-back state: the writes of its last second
/// were acknowledged. The leader restarts first and alone, is asked at once and again until it
/// answers, and the answer comes when one follower is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_after_a_crash_sees_the_last_acknowledged_write() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(1), ..ClusterOptions::default() },
    )
    .await?;
    let leader = cluster.leader().await?;
    let client = cluster.client(leader).with_timeout(Duration::from_secs(2));

    tracing::info!("--- sequential writes to the leader for 400 ms, then SIGKILL all three");
    let mut reg = Register::default();
    let started = Instant::now();
    let mut value = 1;
    while started.elapsed() < Duration::from_millis(400) {
        write(&client, &mut reg, "c0", value).await;
        value += 1;
    }
    anyhow::ensure!(reg.acked.is_some(), "no write was acknowledged");
    for id in 0..3 {
        cluster.kill(id).await;
    }

    tracing::info!(?reg, "--- the old leader alone, then one follower");
    cluster.start_node(leader)?;
    let reader = tokio::spawn(async move {
        let client = &client;
        wait::until("a linearizable read to be answered", Duration::from_secs(30), || async move {
            let answer = client.cluster("c0", true).await.ok().filter(|a| a.ok())?;
            answer.body["weight"].as_u64()
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every node is down, so `followers` would name none.
    cluster.start_node((leader + 1) % 3)?;
    let read = reader.await??;
    assert!(reg.admits(read as u32), "read {read} after the crash; the writes were {reg:?}");
    Ok(())
}
