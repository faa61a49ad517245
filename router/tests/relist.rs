//! A listing of a cluster (a new leader's first, or a re-list after the watch was cut off)
//! returns every object; those already recorded at their revision are not proposed again.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bpg_raft::model::{Command, Dispatch, Job};
use bpg_router::clusters::Clusters;
use bpg_router::dispatch::{Dispatched, Dispatcher};
use bpg_router::metrics::GatewayMetrics;
use bpg_router::translate::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use bpg_router::watcher::watch_cluster;
use common::{app, job, kubesim_c1, single_node};
use kube::api::{Patch, PatchParams};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(10);

/// Job `id`, its application labelled as bpg labels the ones it creates (what its watcher
/// selects).
fn labelled_job(id: &str) -> Job {
    let mut job = job(id);
    let mut manifest = app(id, Some(id));
    manifest["metadata"]["labels"] = json!({MANAGED_BY_LABEL: MANAGED_BY_VALUE});
    job.dispatch = Dispatch::Pending { manifest: manifest.to_string() };
    job
}

/// Waits until `done` holds, failing after [`DEADLINE`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_listing_proposes_only_the_objects_that_changed_since_they_were_recorded() {
    let (srv, config) = kubesim_c1().await;
    let metrics = GatewayMetrics::detached();
    let clusters = Arc::new(Clusters::new(vec![config], &metrics).expect("a client"));
    let cluster = clusters.get("c1").expect("configured").clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = single_node(dir.path()).await;
    let dispatcher = Dispatcher::new(raft.clone(), clusters.clone(), metrics.clone());
    let ids = ["c1-0000000000000000000000000000000a", "c1-0000000000000000000000000000000b"];
    for id in ids {
        raft.write(Command::Submit { job: Box::new(labelled_job(id)), idempotency_key: None })
            .await
            .expect("submitted");
        let claim = dispatcher.reserve(id).expect("nobody dispatches it");
        assert_eq!(dispatcher.dispatch(&labelled_job(id), Instant::now() + DEADLINE).await, Dispatched::Created);
        drop(claim);
    }
    let observed = |id: &str| raft.state().job(id).expect("read").expect("the job").observed;

    // The first leader's watcher records both objects.
    let first = tokio::spawn(watch_cluster(raft.clone(), cluster.clone(), metrics.clone()));
    until("both objects recorded", || ids.iter().all(|id| observed(id).is_some_and(|o| !o.vanished))).await;
    first.abort();
    let _ = first.await;
    let entries = raft.status().last_log_index;
    let other = observed(ids[1]);

    // The next one lists them again, unchanged: nothing to propose. The time allowed is many
    // times what listing two objects and one 100 ms batch take.
    let second = tokio::spawn(watch_cluster(raft.clone(), cluster.clone(), metrics.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(raft.status().last_log_index, entries, "no entry for objects recorded at their revision");

    // It is watching: a change is recorded, in one entry.
    let status = json!({"status": {"applicationState": {"state": "RUNNING"}}});
    cluster.statuses().patch_status(ids[0], &PatchParams::default(), &Patch::Merge(&status)).await.expect("patched");
    until("the change recorded", || observed(ids[0]).and_then(|o| o.state).as_deref() == Some("RUNNING")).await;
    assert_eq!(raft.status().last_log_index, entries.map(|i| i + 1));
    assert_eq!(observed(ids[1]), other, "the other object as it was");
    second.abort();
    drop(srv);
}
