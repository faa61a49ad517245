//! Scaling 3 → 5 → 3 → 4, as a StatefulSet does: new ordinals join by themselves; before
//! scaling down, the departing nodes are removed from the voters; scaling up again restarts an
//! ordinal on the volume it kept, and it joins again; writes keep working throughout and
//! nothing acknowledged is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use bpg_tests::register::{clusters_yaml, read_all};
use bpg_tests::{ClusterOptions, TestCluster, wait};
use reqwest::Method;
use serde_json::json;

async fn voters(cluster: &TestCluster, node: u64) -> BTreeSet<u64> {
    let s = cluster.raft_status(node).await.unwrap_or_default();
    s["voters"].as_object().map(|m| m.keys().filter_map(|k| k.parse().ok()).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_to_five_to_three_changes_the_raft_membership() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(2), ..ClusterOptions::default() },
    )
    .await?;
    let leader = cluster.leader().await?;
    assert!(cluster.client(leader).set_cluster("c0", json!({"weight": 3})).await?.ok());

    tracing::info!("--- scale up: nodes 3 and 4 start and join as voters");
    let three = cluster.add_node()?;
    let four = cluster.add_node()?;
    wait::until("five voters", Duration::from_secs(60), || async {
        (voters(&cluster, leader).await == BTreeSet::from([0, 1, 2, 3, 4])).then_some(())
    })
    .await?;
    for id in [three, four] {
        cluster.wait_ready(id).await?;
        let a = cluster.client(id).cluster("c0", false).await?;
        assert_eq!((a.served_by, &a.body["weight"]), (Some(id), &json!(3)), "node {id} holds the state");
    }
    assert!(cluster.client(four).set_cluster("c1", json!({"weight": 9})).await?.ok(), "the new nodes take writes");

    tracing::info!("--- scale down: remove 4 and 3 from the voters, then stop them");
    for id in [four, three] {
        let a = cluster.client(0).call(Method::DELETE, &format!("/admin/raft/members/{id}"), None).await?;
        assert!(a.ok(), "{a:?}");
    }
    let leader = cluster.leader().await?;
    assert_eq!(voters(&cluster, leader).await, BTreeSet::from([0, 1, 2]));
    cluster.stop(four).await?;
    cluster.stop(three).await?;

    tracing::info!("--- three nodes carry on, with everything acknowledged");
    let leader = cluster.leader().await?;
    assert!(cluster.client(leader).set_cluster("c0", json!({"weight": 4})).await?.ok());
    let values = read_all(&cluster.client(leader), 2).await?;
    assert_eq!((values["c0"], values["c1"]), (4, 9));
    // Losing one more node still leaves a majority of the three.
    let follower = cluster.followers(leader)[0];
    cluster.kill(follower).await;
    assert!(cluster.client(leader).set_cluster("c1", json!({"weight": 10})).await?.ok());
    cluster.start_node(follower)?;

    tracing::info!("--- scale up again: node 3 restarts on its old volume and joins again");
    cluster.start_node(three)?;
    wait::until("four voters", Duration::from_secs(60), || async {
        let leader = cluster.leader().await.ok()?;
        (voters(&cluster, leader).await == BTreeSet::from([0, 1, 2, 3])).then_some(())
    })
    .await?;
    cluster.wait_ready(three).await?;
    let a = cluster.client(three).cluster("c1", false).await?;
    assert_eq!((a.served_by, &a.body["weight"]), (Some(three), &json!(10)), "node 3 caught up");
    Ok(())
}
