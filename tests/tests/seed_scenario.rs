//! The blog's scenario ("Test the solution"): two clusters serve queue `dev` at weight 50/50;
//! the SparkPi request is submitted 200 times through random nodes; each cluster's share is
//! consistent with 50/50, every job completes, and its driver log says "Pi is roughly".

use std::collections::BTreeMap;
use std::time::Duration;

use bpg_tests::gateway::{GatewayCluster, binomial_two_sided_p};
use bpg_tests::kubesim::{FAST, spark_pi};
use bpg_tests::{bins, wait};
use futures::StreamExt;
use reqwest::Method;

const SUBMISSIONS: usize = 200;
/// A test of a random split: it fails wrongly at most once in a thousand runs.
const ALPHA: f64 = 1e-3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_spark_pi_jobs_split_fifty_fifty_and_complete() -> anyhow::Result<()> {
    // The clusters speak HTTPS with their own CAs, as EKS API servers do.
    let g = GatewayCluster::start(bins!(), &[50, 50], true, FAST).await?;
    g.nodes.leader().await?;

    tracing::info!("--- submit 200 times through random nodes");
    let ids: Vec<String> = futures::stream::iter(0..SUBMISSIONS)
        .map(|_| {
            let client = g.user(g.random_node());
            async move {
                let a = client.submit(&spark_pi(), None).await.expect("submission answered");
                assert!(a.ok(), "submission refused: {} {}", a.status, a.body);
                a.body["submissionId"].as_str().expect("submissionId").to_owned()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut per_cluster: BTreeMap<&str, u64> = BTreeMap::new();
    for id in &ids {
        *per_cluster.entry(id.split('-').next().unwrap()).or_default() += 1;
    }
    let a = per_cluster.get("clustera").copied().unwrap_or(0);
    let p = binomial_two_sided_p(a, SUBMISSIONS as u64, 0.5);
    eprintln!("split: {per_cluster:?}, two-sided binomial p = {p:.4}");
    assert!(p > ALPHA, "a split of {per_cluster:?} is not consistent with 50/50 (p = {p})");

    tracing::info!("--- every job completes");
    let client = g.user(0);
    wait::until("all 200 jobs COMPLETED", Duration::from_secs(120), || async {
        let list = client.call(Method::GET, &client.ctx("/spark/mySubmissions"), None).await.ok()?;
        let subs = list.body["submissions"].as_array()?;
        let done = subs.iter().filter(|s| s["applicationState"] == "COMPLETED").count();
        (subs.len() == SUBMISSIONS && done == SUBMISSIONS).then_some(())
    })
    .await?;

    tracing::info!("--- every driver log has the result");
    for (i, id) in ids.iter().enumerate() {
        let node = (i % 3) as u64;
        let log = g.user(node).call(Method::GET, &g.user(node).ctx(&format!("/log?subId={id}")), None).await?;
        let text = log.body.as_str().unwrap_or_default();
        assert!(
            log.ok() && text.contains("Pi is roughly 3.1"),
            "log of {id}: {}",
            &text[text.len().saturating_sub(300)..]
        );
    }

    tracing::info!("--- a driver log is also found by its Spark application id");
    let id = &ids[0];
    let status = g.user(1).status(id, false).await?;
    let app_id = status.body["sparkApplicationId"].as_str().expect("a completed job has its application id");
    let log = g.user(1).call(Method::GET, &g.user(1).ctx(&format!("/log?appId={app_id}")), None).await?;
    assert!(log.ok() && log.body.as_str().unwrap_or_default().contains("Pi is roughly 3.1"), "{log:?}");
    let unknown = format!("spark-{}", "0".repeat(32));
    let log = g.user(1).call(Method::GET, &g.user(1).ctx(&format!("/log?appId={unknown}")), None).await?;
    assert_eq!(log.status, reqwest::StatusCode::BAD_REQUEST, "{log:?}");
    assert!(log.body.to_string().contains(&unknown), "the error names the id: {log:?}");
    Ok(())
}
