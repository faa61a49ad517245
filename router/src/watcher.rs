//! The leader's view of every cluster: one kube-runtime watcher per cluster on the objects bpg
//! created, turned into batched `RecordStatus` commands so every replica can answer status and
//! list requests without calling Kubernetes. It also finishes deletions the cluster missed:
//! an object whose job is deleted is deleted again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bpg_raft::RaftNode;
use bpg_raft::model::{Command, Job, Observed, Response, StatusUpdate, TERMINAL_STATES};
use futures::{StreamExt, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use crate::clusters::Cluster;
use crate::metrics::{FinishLabels, GatewayMetrics};
use crate::observe::observe;
use crate::translate::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Largest batch of status updates in one command, and the longest a batch waits.
const BATCH_MAX: usize = 256;
const BATCH_WAIT: Duration = Duration::from_millis(100);

/// Watches `cluster` until the task is dropped (when this node stops leading).
pub async fn watch_cluster(raft: RaftNode, cluster: Arc<Cluster>, metrics: GatewayMetrics) {
    let (tx, rx) = mpsc::channel::<StatusUpdate>(4096);
    let proposer = tokio::spawn(propose(raft.clone(), cluster.clone(), rx, metrics));
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let mut stream = watcher::watcher(cluster.statuses().clone(), config).default_backoff().boxed();
    let mut seen_in_list: HashSet<String> = HashSet::new();
    // Jobs whose object existed when the current listing began: only these can be missing
    // from it because they are gone (a job dispatched meanwhile may be created after the
    // listing's revision and arrive through the watch instead).
    let mut listed_from: HashSet<String> = HashSet::new();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(cluster = %cluster.id(), error = %e, "watch error; retrying");
                continue;
            }
        };
        let listing = matches!(event, Event::InitApply(_));
        let (object, vanished) = match event {
            Event::Init => {
                seen_in_list.clear();
                listed_from = live_objects(&raft, cluster.id()).await;
                continue;
            }
            Event::InitDone => {
                // Objects of ours the listing did not contain are gone (if their jobs still
                // expect them). The mark carries the last revision seen of the object, so any
                // later sighting supersedes it.
                for id in listed_from.drain().filter(|id| !seen_in_list.contains(id)) {
                    if let Ok(Some(job)) = raft.state().job(&id)
                        && expects_object(&job, cluster.id())
                    {
                        let observed = Observed { vanished: true, ..job.observed.unwrap_or_default() };
                        let _ = tx.send(StatusUpdate { id, observed }).await;
                    }
                }
                continue;
            }
            Event::InitApply(o) => {
                if let Some(name) = &o.metadata.name {
                    seen_in_list.insert(name.clone());
                }
                (o, false)
            }
            Event::Apply(o) => (o, false),
            Event::Delete(o) => (o, true),
        };
        let Some((name, observed)) = observe(&object, vanished) else { continue };
        if listing && !news_to(&raft, &name, &observed) {
            continue;
        }
        if tx.send(StatusUpdate { id: name, observed }).await.is_err() {
            break;
        }
    }
    proposer.abort();
}

/// The jobs whose objects `cluster` should hold now, from their index. A cluster can hold many
/// (finished applications stay until their TTL), so the read runs on a blocking thread. Empty
/// if the read failed (no object is then marked gone).
async fn live_objects(raft: &RaftNode, cluster: &str) -> HashSet<String> {
    let cluster = cluster.to_owned();
    let read = raft.state().read_blocking(move |state| state.live_on(&cluster));
    match read.await.map_err(|e| e.to_string()).and_then(|ids| ids.map_err(|e| e.to_string())) {
        Ok(ids) => ids.into_iter().collect(),
        Err(e) => {
            tracing::error!(error = %e, "reading the jobs a cluster should hold failed");
            HashSet::new()
        }
    }
}

/// Whether recording `observed` for job `id` would change anything, as `RecordStatus` applies
/// it: a listing (a new leader's, or a re-list after the watch was cut off) returns every
/// object, most of them at the revision already recorded, and proposing those would put the
/// whole cluster through the log again. The object of a deleted job is news (it is deleted
/// again), and so is anything when the read fails.
fn news_to(raft: &RaftNode, id: &str, observed: &Observed) -> bool {
    match raft.state().job(id) {
        Ok(Some(job)) => {
            job.deleted_at_ms.is_some()
                || job.observed.is_none_or(|seen| observed.resource_version > seen.resource_version)
        }
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Whether `job`'s object should exist on `cluster`.
fn expects_object(job: &Job, cluster: &str) -> bool {
    job.cluster == cluster && job.expects_object()
}

/// Batches updates into `RecordStatus` commands. What their apply reports is acted on here:
/// applications that reached a terminal state are counted, and the objects of deleted jobs
/// that were seen alive (the cluster was unreachable when the job was deleted) are deleted
/// again.
async fn propose(raft: RaftNode, cluster: Arc<Cluster>, mut rx: mpsc::Receiver<StatusUpdate>, metrics: GatewayMetrics) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(u)) => batch.push(u),
                _ => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        let response = loop {
            match raft.write(Command::RecordStatus { updates: batch.clone() }).await {
                Ok(response) => break response,
                Err(bpg_raft::WriteError::NotLeader { .. }) => return,
                Err(e) => {
                    tracing::warn!(cluster = %cluster.id(), error = %e, "recording statuses failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        let Response::StatusRecorded { finished, deleted, .. } = response else {
            tracing::error!(cluster = %cluster.id(), ?response, "unexpected answer to recording statuses");
            continue;
        };
        for (_, state) in finished {
            metrics.finished.get_or_create(&FinishLabels { cluster: cluster.id().to_owned(), state }).inc();
        }
        if !deleted.is_empty() {
            // Off the batching loop: a cluster slow to answer does not hold up statuses.
            let cluster = cluster.clone();
            tokio::spawn(async move {
                for id in deleted {
                    if let Err(e) = cluster.delete(&id).await {
                        tracing::warn!(job = %id, error = %e, "deleting the object of a deleted job failed");
                    }
                }
            });
        }
    }
}

/// Whether a state is terminal (re-exported for callers that hold a state string).
pub fn is_terminal(state: &str) -> bool {
    TERMINAL_STATES.contains(&state)
}
