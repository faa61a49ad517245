//! The leader's chores on a live cluster: an application running past its
//! `bpg.maxRunningMillis` is killed (its driver pod deleted, so the operator fails it), one
//! within its limit is left alone, one whose object was deleted on the cluster is not
//! "killed" again and again, and the object of a job deleted while its cluster refused
//! requests is removed once the leader's watcher sees it again.

use std::time::Duration;

use bpg_tests::bins;
use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::spark_pi;
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

    user.until_state(&short, "FAILED", Duration::from_secs(30)).await?;
    let other = user.status(&long, false).await?;
    assert_eq!(other.body["applicationState"], "RUNNING", "{other:?}");
    assert!(g.nodes.log(leader).contains("killed an application running too long"), "the leader's log names no kill");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_deleted_on_its_cluster_while_running_is_not_policed_any_more() -> anyhow::Result<()> {
    // Applications run 3,000 simulated seconds: 60 s here. The harness checks every second.
    let kubesim = ["--time-scale", "0.02", "--run-ms-min", "3000000", "--run-ms-max", "3000000"];
    let g = GatewayCluster::start(bins!(), &[100], false, &kubesim).await?;
    let leader = g.nodes.leader().await?;
    let user = g.user(leader);
    let mut limited = spark_pi();
    limited["sparkConf"] = json!({"bpg.maxRunningMillis": "8000"});
    // Submitted one after the other, so the first object is created first: any pass that finds
    // the second past its limit finds the first past it too.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let answer = user.submit(&limited, None).await?;
        assert!(answer.ok(), "{answer:?}");
        ids.push(answer.body["submissionId"].as_str().unwrap().to_owned());
    }
    let (gone, control) = (ids[0].clone(), ids[1].clone());
    for id in [&gone, &control] {
        user.until_state(id, "RUNNING", Duration::from_secs(30)).await?;
    }
    // Deleted with kubectl while it runs: its last state stays RUNNING, and there is nothing
    // left on the cluster to stop.
    g.sims[0].delete_application(&gone).await?;

    user.until_state(&control, "FAILED", Duration::from_secs(30)).await?;
    let status = user.status(&gone, false).await?;
    assert_eq!(status.body["applicationState"], "RUNNING", "{status:?}");
    let leader = g.nodes.leader().await?;
    let log = g.nodes.log(leader);
    let kills = |id: &str| log.lines().filter(|l| l.contains("running too long") && l.contains(id)).count();
    // A pass may find it again before its failure is recorded; the pod is gone by then.
    assert!(kills(&control) >= 1, "the application past its limit is killed");
    assert_eq!(kills(&gone), 0, "the deleted application is not killed: nothing is left to kill");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_of_a_job_deleted_while_its_cluster_was_down_is_removed_later() -> anyhow::Result<()> {
    // Applications run 200 simulated seconds: 20 s here.
    let kubesim = ["--time-scale", "0.1", "--run-ms-min", "200000", "--run-ms-max", "200000"];
    let g = GatewayCluster::start(bins!(), &[100], false, &kubesim).await?;
    let leader = g.nodes.leader().await?;
    let user = g.user(g.nodes.followers(leader)[0]);
    let answer = user.submit(&spark_pi(), None).await?;
    assert!(answer.ok(), "{answer:?}");
    let id = answer.body["submissionId"].as_str().unwrap().to_owned();
    user.until_state(&id, "RUNNING", Duration::from_secs(30)).await?;

    // The cluster answers every request 503: the job is deleted, its object is not.
    g.sims[0].set_faults(json!({"unavailable": true})).await?;
    let deleted = user.delete(&id).await?;
    assert_eq!(deleted.body, json!({"submissionId": id}), "the deletion is recorded although the cluster is down");
    g.sims[0].set_faults(json!({})).await?;
    let names = |apps: Vec<serde_json::Value>| -> Vec<String> {
        apps.iter().filter_map(|a| a["metadata"]["name"].as_str().map(str::to_owned)).collect()
    };
    assert!(names(g.sims[0].applications().await?).contains(&id), "the cluster still holds the object");

    // Its next change (the application finishing) reaches the watcher, which deletes it.
    bpg_tests::wait::until("the object to be deleted", Duration::from_secs(60), || async {
        let apps = g.sims[0].applications().await.ok()?;
        (!names(apps).contains(&id)).then_some(())
    })
    .await?;
    assert_eq!(user.status(&id, true).await?.status, reqwest::StatusCode::NOT_FOUND, "the job stays deleted");
    Ok(())
}
