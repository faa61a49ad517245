//! Exactly-once dispatch through a faulty API server: creates that are applied and then
//! answered 503, plus random 429/500/503/504s. Every acknowledged submission exists exactly
//! once, and completes once the cluster behaves. A cluster too slow for the load makes the
//! leader refuse what it cannot take in, instead of queueing without bound.

use std::time::Duration;

use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::{FAST, spark_pi};
use bpg_tests::{ClusterOptions, bins, wait};
use reqwest::StatusCode;
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

/// A leader whose cluster is too slow for the load does not take in submissions without
/// bound: with `gateway.maxSubmissionsInFlight` taken by creates that hang, one more is
/// refused at once with 503 and `Retry-After`, through a follower as well, and nothing of it
/// is recorded; the places come back when the ones in flight are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_beyond_the_in_flight_limit_are_refused_and_leave_nothing() -> anyhow::Result<()> {
    let opts = ClusterOptions { max_submissions_in_flight: Some(2), ..ClusterOptions::default() };
    let g = GatewayCluster::start_with(bins!(), &[100], false, FAST, opts).await?;
    let leader = g.nodes.leader().await?;
    let follower = g.nodes.followers(leader)[0];
    // Every create takes 3 s: the first two submissions hold their places that long.
    g.sims[0].set_faults(json!({"latencyMs": 3000})).await?;

    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let client = g.user(leader).with_timeout(Duration::from_secs(30));
            tokio::spawn(async move { client.submit(&spark_pi(), None).await })
        })
        .collect();
    let jobs = || async { g.nodes.raft_status(leader).await.and_then(|s| s["jobs"].as_u64()) };
    wait::until("both submissions to be recorded", Duration::from_secs(20), || async {
        (jobs().await? == 2).then_some(())
    })
    .await?;

    let refused = g.user(follower).submit(&spark_pi(), None).await?;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{refused:?}");
    assert_eq!(refused.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"), "{refused:?}");
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("gateway.maxSubmissionsInFlight"), "the refusal names the limit: {message}");
    assert_eq!(jobs().await, Some(2), "the refused submission was recorded");

    for submission in in_flight {
        let answer = submission.await??;
        assert!(answer.ok(), "an admitted submission: {answer:?}");
    }
    g.sims[0].set_faults(json!({})).await?;
    let after = g.user(follower).submit(&spark_pi(), None).await?;
    assert!(after.ok(), "the places were given back: {after:?}");
    assert_eq!(jobs().await, Some(3));
    Ok(())
}
