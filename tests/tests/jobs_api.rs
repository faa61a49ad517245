//! Users see and delete only their own jobs (admins: all); Idempotency-Key replays the first
//! submission; deletion kills the job; status and lists come from the replicated state, so a
//! follower answers them while Kubernetes is down; metrics count what happened.

use std::time::Duration;

use bpg_tests::cluster::ClusterOptions;
use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::{FAST, spark_pi};
use bpg_tests::{bins, wait};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_idempotency_deletion_and_follower_reads() -> anyhow::Result<()> {
    // The clusters run kubesim's multi-threaded runtime here, and the nodes three runtime
    // threads each; every other test runs their defaults.
    let kubesim = [FAST, &["--threads", "2"]].concat();
    let opts = ClusterOptions { worker_threads: Some(3), ..ClusterOptions::default() };
    let g = GatewayCluster::start_with(bins!(), &[50, 50], false, &kubesim, opts).await?;
    let leader = g.nodes.leader().await?;
    let follower = g.nodes.followers(leader)[0];
    let (user, other, admin) = (g.user(follower), g.other(follower), g.admin(follower));

    tracing::info!("--- an Idempotency-Key retry returns the first id, and creates nothing more");
    let first = user.submit(&spark_pi(), Some("nightly-2026-11-23")).await?;
    assert!(first.ok(), "{first:?}");
    let id = first.body["submissionId"].as_str().unwrap().to_owned();
    for node in 0..3 {
        let again = g.user(node).submit(&spark_pi(), Some("nightly-2026-11-23")).await?;
        assert_eq!(again.body["submissionId"], id.as_str(), "retry via node {node}");
    }
    let other_key = other.submit(&spark_pi(), Some("nightly-2026-11-23")).await?;
    assert_ne!(other_key.body["submissionId"], id.as_str(), "keys are per user");
    let other_id = other_key.body["submissionId"].as_str().unwrap().to_owned();
    let objects: usize = {
        let mut n = 0;
        for s in &g.sims {
            n += s.applications().await?.len();
        }
        n
    };
    assert_eq!(objects, 2);

    tracing::info!("--- each user sees their own jobs; admins see all");
    user.until_state(&id, "COMPLETED", Duration::from_secs(60)).await?;
    assert_eq!(other.status(&id, false).await?.status, StatusCode::FORBIDDEN);
    assert!(admin.status(&id, false).await?.ok());
    let mine = user.call(Method::GET, &user.ctx("/spark/mySubmissions"), None).await?;
    let ids: Vec<&str> =
        mine.body["submissions"].as_array().unwrap().iter().map(|s| s["submissionId"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
    let listed = admin.call(Method::GET, &admin.ctx("/admin/submissions?name=SparkPiDemo"), None).await?;
    assert_eq!(listed.body.as_str().unwrap().lines().count(), 2, "NDJSON of both jobs");
    assert_eq!(user.call(Method::GET, &user.ctx("/admin/submissions"), None).await?.status, StatusCode::FORBIDDEN);

    tracing::info!("--- a follower answers status and lists with Kubernetes down");
    for s in &g.sims {
        s.set_faults(json!({"unavailable": true})).await?;
    }
    let status = user.status(&id, false).await?;
    assert_eq!((status.status, status.served_by), (StatusCode::OK, Some(follower)));
    assert_eq!(status.body["applicationState"], "COMPLETED");
    assert!(status.body["sparkApplicationId"].as_str().unwrap().starts_with("spark-"));
    assert!(user.call(Method::GET, &user.ctx("/spark/mySubmissions"), None).await?.ok());
    let spec = user.call(Method::GET, &user.ctx(&format!("/spark/{id}/spec")), None).await?;
    assert_eq!(spec.status, StatusCode::SERVICE_UNAVAILABLE, "spec reads the cluster, which is down");
    for s in &g.sims {
        s.set_faults(json!({})).await?;
    }
    let spec = user.call(Method::GET, &user.ctx(&format!("/spark/{id}/spec")), None).await?;
    assert_eq!(spec.body["mainClass"], "org.apache.spark.examples.SparkPi");
    assert!(spec.body["driver"].get("env").is_none());

    tracing::info!("--- only the owner (or an admin) deletes; a deleted job is gone");
    assert_eq!(other.delete(&id).await?.status, StatusCode::FORBIDDEN);
    let deleted = user.delete(&id).await?;
    assert_eq!(deleted.body, json!({"submissionId": id}));
    assert_eq!(user.status(&id, true).await?.status, StatusCode::NOT_FOUND);
    let cluster = g.sims.iter().find(|s| id.starts_with(&s.id)).unwrap();
    wait::until("the object is gone from its cluster", Duration::from_secs(20), || async {
        let apps = cluster.applications().await.ok()?;
        (!apps.iter().any(|a| a["metadata"]["name"] == id.as_str())).then_some(())
    })
    .await?;
    assert!(admin.delete(&other_id).await?.ok(), "admins delete anyone's job");
    assert_eq!(user.delete("clusterx-0000").await?.status, StatusCode::BAD_REQUEST, "unknown cluster in the id");
    assert_eq!(user.delete(&id).await?.body, json!({"submissionId": id}), "deleting twice is fine, as in BPG");

    tracing::info!("--- the small endpoints");
    let doc = user.call(Method::GET, &user.ctx("/openapi.json"), None).await?;
    assert_eq!(doc.body["openapi"], "3.0.3");
    let submit = &doc.body["paths"]["/skatev2/spark"]["post"];
    assert!(submit["responses"]["503"]["description"].as_str().is_some_and(|d| d.contains("maxSubmissionsInFlight")));
    assert!(submit["parameters"][0]["name"] == "Idempotency-Key", "{submit}");
    assert!(doc.body["components"]["schemas"]["SubmitApplicationRequest"]["properties"].get("sparkConf").is_some());
    let yaml = user.call(Method::GET, &user.ctx("/openapi.yaml"), None).await?;
    assert!(yaml.body.as_str().unwrap().contains("Batch Processing Gateway API"));
    let version = user.call(Method::GET, &user.ctx("/admin/version"), None).await?;
    assert_eq!(version.body["version"], env!("CARGO_PKG_VERSION"));
    let (commit, built) = (version.body["gitCommit"].as_str().unwrap(), version.body["buildTime"].as_str().unwrap());
    match (git(&["rev-parse", "--short", "HEAD"]), git(&["log", "-1", "--format=%cI"])) {
        (Some(head), Some(committed)) => {
            // The binary was built from this checkout: its HEAD, `-dirty` with local changes,
            // after HEAD was committed (by a clock that may have been another machine's).
            assert!(commit == head || commit == format!("{head}-dirty"), "built from {commit}, HEAD is {head}");
            let (built, committed) =
                (chrono::DateTime::parse_from_rfc3339(built)?, chrono::DateTime::parse_from_rfc3339(&committed)?);
            let skew = chrono::Duration::hours(1);
            assert!(
                committed - skew <= built && built <= chrono::Utc::now(),
                "built {built}, HEAD committed {committed}"
            );
        }
        _ => assert_eq!(commit, "unknown", "no git checkout to build from"),
    }
    assert_eq!(user.call(Method::GET, &user.ctx("/healthcheck/status"), None).await?.body, json!({"status": "OK"}));
    let health: serde_json::Value =
        reqwest::get(format!("http://{}/healthcheck", g.nodes.node(follower).admin)).await?.json().await?;
    assert_eq!(
        (health["sparkClusters"]["healthy"].as_bool(), health["raft"]["healthy"].as_bool()),
        (Some(true), Some(true))
    );

    tracing::info!("--- metrics count it all");
    let metrics = reqwest::get(format!("http://{}/metrics", g.nodes.node(leader).admin)).await?.text().await?;
    assert!(metrics.contains("bpg_submissions_total{cluster=\"cluster"), "{metrics}");
    assert!(metrics.contains("outcome=\"accepted\""));
    for series in [
        "bpg_raft_term",
        "bpg_raft_is_leader 1",
        "bpg_submit_duration_seconds_bucket",
        "bpg_kube_request_duration_seconds_bucket",
        "bpg_http_requests_total",
        "bpg_runtime_worker_threads 3",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
    Ok(())
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
