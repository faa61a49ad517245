//! Exactly-once dispatch through a faulty API server: creates that are applied and then
//! answered 503, plus random 429/500/503/504s. Every acknowledged submission exists exactly
//! once, and completes once the cluster behaves.

use std::time::Duration;

use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::{FAST, spark_pi};
use bpg_tests::{bins, wait};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_then_503_creates_are_not_duplicated() -> anyhow::Result<()> {
    let g = GatewayCluster::start(bins!(), &[100], false, FAST).await?;
    g.nodes.leader().await?;
    let sim = &g.sims[0];
    sim.set_faults(json!({"applyThen503Rate": 1.0, "errorRate": 0.2})).await?;

    let mut ids = Vec::new();
    for _ in 0..20 {
        let a = g.user(g.random_node()).with_timeout(Duration::from_secs(30)).submit(&spark_pi(), None).await?;
        assert!(a.ok(), "{} {}", a.status, a.body);
        ids.push(a.body["submissionId"].as_str().unwrap().to_owned());
    }
    let stats = sim.stats().await?;
    assert!(stats["faultsInjected"].as_u64().unwrap() >= 20, "the faults were exercised: {stats}");
    sim.set_faults(json!({})).await?;

    wait::until("every job created once and completed", Duration::from_secs(60), || async {
        let apps = sim.applications().await.ok()?;
        for id in &ids {
            let matching: Vec<_> = apps.iter().filter(|a| a["metadata"]["name"] == id.as_str()).collect();
            assert!(matching.len() <= 1, "{id} duplicated");
            if matching.first()?["status"]["applicationState"]["state"] != "COMPLETED" {
                return None;
            }
        }
        Some(())
    })
    .await?;
    Ok(())
}
