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

use crate::clusters::Cluster;
use crate::metrics::{FinishLabels, GatewayMetrics};
use crate::observe::observe;
use crate::translate::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Largest batch of status updates in one command, and the longest a batch waits.
const BATCH_MAX: usize = 256;
const BATCH_WAIT: Duration = Duration::from_millis(100);

/// Watches `cluster` until the task is dropped (when this node stops leading).
pub async fn watch_cluster(raft: RaftNode, cluster: Arc<Cluster>, metrics: GatewayMetrics) {
    let pending = Arc::new(Pending::default());
    let _proposer = AbortOnDrop(tokio::spawn(propose(raft.clone(), cluster.clone(), pending.clone(), metrics)));
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
                        pending.add(StatusUpdate { id, observed });
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
        if !pending.add(StatusUpdate { id: name, observed }) {
            break;
        }
    }
}

/// Aborts a task when dropped: the proposer goes with its watcher, which is dropped when this
/// node stops leading.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The status updates not proposed yet: the newest of each job, in the order the jobs first
/// changed. The watcher only adds to it and never waits for Raft, so a slow commit (a snapshot
/// build, an election, a burst) does not stop it reading its watch: an API server cuts off a
/// watcher that stops reading, and the re-list after that costs far more than the wait. While
/// the proposer is behind, the updates of one job collapse into its newest (`SUBMITTED`,
/// `RUNNING` and `COMPLETED` into one), so it catches up with fewer, and the set holds at most
/// one update per object of the cluster.
#[derive(Default)]
struct Pending {
    state: std::sync::Mutex<PendingState>,
    added: tokio::sync::Notify,
}

#[derive(Default)]
struct PendingState {
    order: std::collections::VecDeque<String>,
    newest: std::collections::HashMap<String, Observed>,
    /// Set when the proposer stopped (this node no longer leads).
    closed: bool,
}

impl Pending {
    fn state(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `update` unless one at least as new is pending for its job (by the rule the apply
    /// uses, [`Observed::supersedes`]). False once the proposer has stopped.
    fn add(&self, update: StatusUpdate) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        let StatusUpdate { id, observed } = update;
        match state.newest.get_mut(&id) {
            Some(held) => {
                if observed.supersedes(held) {
                    *held = observed;
                }
            }
            None => {
                state.order.push_back(id.clone());
                state.newest.insert(id, observed);
            }
        }
        drop(state);
        self.added.notify_one();
        true
    }

    fn len(&self) -> usize {
        self.state().order.len()
    }

    /// Takes up to `max` updates, the oldest first.
    fn take(&self, max: usize) -> Vec<StatusUpdate> {
        let mut state = self.state();
        let n = max.min(state.order.len());
        let ids: Vec<String> = state.order.drain(..n).collect();
        ids.into_iter()
            .map(|id| {
                let observed = state.newest.remove(&id).expect("every pending id has an update");
                StatusUpdate { id, observed }
            })
            .collect()
    }

    fn close(&self) {
        self.state().closed = true;
    }
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
        Ok(Some(job)) => job.deleted_at_ms.is_some() || job.observed.is_none_or(|seen| observed.supersedes(&seen)),
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
async fn propose(raft: RaftNode, cluster: Arc<Cluster>, pending: Arc<Pending>, metrics: GatewayMetrics) {
    loop {
        // A batch is proposed once it is full or the first of it has waited BATCH_WAIT.
        pending.added.notified().await;
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while pending.len() < BATCH_MAX {
            if tokio::time::timeout_at(deadline, pending.added.notified()).await.is_err() {
                break;
            }
        }
        let batch = pending.take(BATCH_MAX);
        if batch.is_empty() {
            continue;
        }
        if pending.len() > 0 {
            // More than a batch is waiting: go round again without waiting for an addition.
            pending.added.notify_one();
        }
        let mut backoff = Duration::from_millis(50);
        let response = loop {
            match raft.write(Command::RecordStatus { updates: batch.clone() }).await {
                Ok(response) => break response,
                Err(bpg_raft::WriteError::NotLeader { .. }) => {
                    pending.close();
                    return;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, resource_version: u64, vanished: bool) -> StatusUpdate {
        StatusUpdate { id: id.into(), observed: Observed { resource_version, vanished, ..Observed::default() } }
    }

    fn held(batch: &[StatusUpdate]) -> Vec<(&str, u64, bool)> {
        batch.iter().map(|u| (u.id.as_str(), u.observed.resource_version, u.observed.vanished)).collect()
    }

    #[test]
    fn pending_updates_keep_the_newest_of_each_job_in_the_order_jobs_first_changed() {
        let pending = Pending::default();
        for u in [update("a", 5, false), update("b", 3, false), update("a", 9, false), update("a", 7, false)] {
            assert!(pending.add(u));
        }
        assert_eq!(pending.len(), 2, "one update per job");
        // A vanished mark supersedes a sighting at its own revision, not a newer one.
        pending.add(update("b", 3, true));
        pending.add(update("a", 8, true));
        pending.add(update("c", 1, false));
        assert_eq!(held(&pending.take(2)), [("a", 9, false), ("b", 3, true)]);
        assert_eq!(held(&pending.take(10)), [("c", 1, false)]);
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn nothing_is_added_once_the_proposer_has_stopped() {
        let pending = Pending::default();
        pending.close();
        assert!(!pending.add(update("a", 1, false)));
        assert_eq!(pending.len(), 0);
    }
}
