//! Weights 100/0 send everything to one cluster; a weight change made on a follower takes
//! effect everywhere.

use bpg_tests::bins;
use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::{FAST, spark_pi};
use serde_json::json;

async fn submit_n(g: &GatewayCluster, n: usize, node: Option<u64>) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let a = g.user(node.unwrap_or_else(|| g.random_node())).submit(&spark_pi(), None).await.unwrap();
        assert!(a.ok(), "{} {}", a.status, a.body);
        ids.push(a.body["submissionId"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_route_and_a_change_on_a_follower_applies_everywhere() -> anyhow::Result<()> {
    let g = GatewayCluster::start(bins!(), &[100, 0], false, FAST).await?;
    let leader = g.nodes.leader().await?;

    tracing::info!("--- 100/0: everything goes to clustera");
    let ids = submit_n(&g, 30, None).await;
    assert!(ids.iter().all(|id| id.starts_with("clustera-")), "{ids:?}");

    tracing::info!("--- flip the weights through a follower");
    let follower = g.nodes.followers(leader)[0];
    for (cluster, weight) in [("clustera", 0), ("clusterb", 100)] {
        let a = g.admin(follower).set_cluster(cluster, json!({"weight": weight})).await?;
        assert!(a.ok(), "{a:?}");
        assert_eq!(a.served_by, Some(leader), "the follower forwarded the change");
    }
    for node in 0..3 {
        let a = g.admin(node).cluster("clusterb", false).await?;
        assert_eq!(a.served_by, Some(node));
        // Local reads may lag a moment behind the commit; a linearizable one may not.
        let lin = g.admin(node).cluster("clusterb", true).await?;
        assert_eq!(lin.body["weight"], 100, "node {node}: {}", lin.body);
    }

    tracing::info!("--- every node now routes to clusterb");
    for node in 0..3 {
        let ids = submit_n(&g, 10, Some(node)).await;
        assert!(ids.iter().all(|id| id.starts_with("clusterb-")), "via node {node}: {ids:?}");
    }
    // Objects landed where the ids say.
    assert_eq!(g.sims[0].applications().await?.len(), 30);
    assert_eq!(g.sims[1].applications().await?.len(), 30);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordoned_or_unreachable_cluster_is_skipped() -> anyhow::Result<()> {
    let mut g = GatewayCluster::start(bins!(), &[50, 50], false, FAST).await?;
    g.nodes.leader().await?;

    tracing::info!("--- cordon clusterb: new submissions avoid it");
    assert!(g.admin(0).set_cluster("clusterb", json!({"cordoned": true})).await?.ok());
    let ids = submit_n(&g, 20, None).await;
    assert!(ids.iter().all(|id| id.starts_with("clustera-")), "{ids:?}");
    assert!(g.admin(0).set_cluster("clusterb", json!({"cordoned": false})).await?.ok());

    tracing::info!("--- clustera goes away: the gateway notices and routes around it");
    g.sims[0].kill().await;
    bpg_tests::wait::until("clustera marked unhealthy", std::time::Duration::from_secs(20), || async {
        let a = g.admin(0).cluster("clustera", true).await.ok()?;
        // The leader's view decides routing; read it through the leader.
        (a.body["healthy"] == false).then_some(())
    })
    .await?;
    let leader = g.nodes.leader().await?;
    let ids = submit_n(&g, 20, Some(leader)).await;
    assert!(ids.iter().all(|id| id.starts_with("clusterb-")), "{ids:?}");
    Ok(())
}
