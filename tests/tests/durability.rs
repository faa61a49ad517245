//! Stop and restart all three: every acknowledged write is still there, with the same values.

use bpg_tests::register::{clusters_yaml, read_all};
use bpg_tests::{ClusterOptions, TestCluster};
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
