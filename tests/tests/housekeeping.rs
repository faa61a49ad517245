//! The leader's chores on a live cluster: an application running past its
//! `bpg.maxRunningMillis` is killed (its driver pod deleted, so the operator fails it), and one
//! within its limit is left alone.

use std::time::Duration;

use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::spark_pi;
use bpg_tests::{bins, wait};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_past_its_max_running_time_is_killed_and_others_are_not() -> anyhow::Result<()> {
    // Applications run 3,000 simulated seconds: 60 s here. The harness checks every second.
    let kubesim = ["--time-scale", "0.02", "--run-ms-min", "3000000", "--run-ms-max", "3000000"];
    let g = GatewayCluster::start(bins!(), &[50, 50], false, &kubesim).await?;
    let leader = g.nodes.leader().await?;
    let user = g.user(g.nodes.followers(leader)[0]);

    let mut short = spark_pi();
    short["sparkConf"] = json!({"bpg.maxRunningMillis": "3000"});
    let short = user.submit(&short, None).await?;
    assert!(short.ok(), "{short:?}");
    let short = short.body["submissionId"].as_str().unwrap().to_owned();
    let long = user.submit(&spark_pi(), None).await?;
    assert!(long.ok(), "{long:?}");
    let long = long.body["submissionId"].as_str().unwrap().to_owned();

    wait::until("the job past its limit to fail", Duration::from_secs(30), || async {
        let s = user.status(&short, false).await.ok()?;
        (s.body["applicationState"] == "FAILED").then_some(())
    })
    .await?;
    let other = user.status(&long, false).await?;
    assert_eq!(other.body["applicationState"], "RUNNING", "{other:?}");
    assert!(g.nodes.log(leader).contains("killed an application running too long"), "the leader's log names no kill");
    Ok(())
}
