//! Exactly-once creation of SparkApplications (DESIGN.md, "a submission, end to end", 5–6).
//!
//! A job is committed as `Pending` before anything touches Kubernetes. The leader then creates
//! the object named after the submission id, carrying the id in an annotation; `201`, or a
//! `409` on an object with our annotation, counts as created; `RecordDispatch` commits the
//! outcome. A new leader re-creates every job still pending — its own `409` is success — so a
//! submission is created at most once per cluster, and its cluster is fixed in its id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bpg_raft::RaftNode;
use bpg_raft::model::{Command, Dispatch, DispatchOutcome, Job, Response};

use crate::clusters::{Clusters, CreateOutcome};
use crate::metrics::{GatewayMetrics, SubmissionLabels};

/// How a dispatch ended, from the submitter's point of view.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatched {
    Created,
    Rejected(String),
    /// Not done within the deadline; the leader keeps trying in the background.
    StillPending,
    /// This node stopped leading; the new leader finishes the job.
    HandedOver,
}

#[derive(Debug)]
pub struct Dispatcher {
    raft: RaftNode,
    clusters: Arc<Clusters>,
    metrics: GatewayMetrics,
    /// Jobs a task of this node is dispatching now; the background loop leaves them alone.
    in_flight: Mutex<HashSet<String>>,
}

/// Removes a job from the in-flight set when its dispatch ends, however it ends.
struct InFlight<'a> {
    dispatcher: &'a Dispatcher,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.dispatcher.in_flight.lock().expect("in-flight set poisoned").remove(&self.id);
    }
}

impl Dispatcher {
    pub fn new(raft: RaftNode, clusters: Arc<Clusters>, metrics: GatewayMetrics) -> Dispatcher {
        Dispatcher { raft, clusters, metrics, in_flight: Mutex::new(HashSet::new()) }
    }

    /// Claims `id` for this node's dispatching; `None` when another task has it.
    fn claim(&self, id: &str) -> Option<InFlight<'_>> {
        let mut set = self.in_flight.lock().expect("in-flight set poisoned");
        set.insert(id.to_owned()).then(|| InFlight { dispatcher: self, id: id.to_owned() })
    }

    /// Marks a job as being dispatched before it is even proposed, so the background loop
    /// cannot race the submitter for it.
    pub fn reserve(&self, id: &str) -> Option<impl Drop + '_> {
        self.claim(id)
    }

    /// Creates `job`'s object and records the outcome, retrying transient failures until
    /// `deadline`. Call with a reservation held for the job.
    pub async fn dispatch(&self, job: &Job, deadline: Instant) -> Dispatched {
        let Dispatch::Pending { manifest } = &job.dispatch else {
            return match &job.dispatch {
                Dispatch::Rejected { reason } => Dispatched::Rejected(reason.clone()),
                _ => Dispatched::Created,
            };
        };
        let Some(cluster) = self.clusters.get(&job.cluster) else {
            return self
                .record(
                    job,
                    DispatchOutcome::Rejected { reason: format!("cluster {} is no longer configured", job.cluster) },
                )
                .await;
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match cluster.create(&job.id, manifest).await {
                CreateOutcome::Created | CreateOutcome::AlreadyOurs => {
                    return self.record(job, DispatchOutcome::Created).await;
                }
                CreateOutcome::Rejected(reason) => {
                    tracing::warn!(job = %job.id, %reason, "cluster refused the SparkApplication");
                    return self.record(job, DispatchOutcome::Rejected { reason }).await;
                }
                CreateOutcome::Transient(why) => {
                    if Instant::now() + backoff >= deadline || !self.raft.is_leader() {
                        tracing::warn!(job = %job.id, cluster = %job.cluster, error = %why, "create not done yet; will retry");
                        return if self.raft.is_leader() { Dispatched::StillPending } else { Dispatched::HandedOver };
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn record(&self, job: &Job, outcome: DispatchOutcome) -> Dispatched {
        let result = match &outcome {
            DispatchOutcome::Created => Dispatched::Created,
            DispatchOutcome::Rejected { reason } => Dispatched::Rejected(reason.clone()),
        };
        let cmd = Command::RecordDispatch { id: job.id.clone(), outcome };
        match self.raft.write(cmd).await {
            Ok(Response::DispatchRecorded { deleted: true }) => {
                // Deleted while being created: remove what was just made.
                if let Some(c) = self.clusters.get(&job.cluster)
                    && let Err(e) = c.delete(&job.id).await
                {
                    tracing::warn!(job = %job.id, error = %e, "deleting a job deleted during its creation failed; the watcher retries");
                }
                result
            }
            Ok(_) => {
                if let Dispatched::Rejected(_) = result {
                    let labels = SubmissionLabels {
                        cluster: job.cluster.clone(),
                        queue: job.queue.clone(),
                        outcome: "submission_failed".into(),
                    };
                    self.metrics.submissions.get_or_create(&labels).inc();
                }
                result
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "recording the dispatch failed; the next leader re-checks it");
                Dispatched::HandedOver
            }
        }
    }

    /// Dispatches every pending job nobody here is working on (the leader's background pass).
    pub async fn sweep(self: &Arc<Self>, deadline: Duration) {
        let pending = match self.raft.state().pending_dispatch() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read pending jobs");
                return;
            }
        };
        self.dispatch_listed(pending, deadline).await;
    }

    /// Dispatches the jobs of `listed`, a listing of pending jobs, that are still pending when
    /// their turn comes, 32 at a time; returns how many it dispatched. The listing ages while
    /// the pass goes on: a job in it may have been dispatched since by its submitter, which
    /// then let go of its claim, and even deleted by its owner. Each job is read again once
    /// claimed, so a finished dispatch is not repeated (a create answered 409 and a second
    /// `RecordDispatch`, at saturation hundreds per pass) and a deleted job's application is
    /// not created again.
    pub async fn dispatch_listed(self: &Arc<Self>, listed: Vec<Job>, deadline: Duration) -> usize {
        let mut tasks = tokio::task::JoinSet::new();
        let mut dispatched = 0;
        for job in listed {
            if tasks.len() >= 32 {
                dispatched += usize::from(matches!(tasks.join_next().await, Some(Ok(true))));
            }
            let me = self.clone();
            tasks.spawn(async move {
                let Some(_claim) = me.claim(&job.id) else { return false };
                let job = match me.raft.state().job(&job.id) {
                    Ok(Some(job)) if job.pending_manifest().is_some() => job,
                    Ok(_) => return false,
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "cannot read a pending job");
                        return false;
                    }
                };
                let outcome = me.dispatch(&job, Instant::now() + deadline).await;
                tracing::info!(job = %job.id, ?outcome, "dispatched a pending job");
                true
            });
        }
        while let Some(done) = tasks.join_next().await {
            dispatched += usize::from(matches!(done, Ok(true)));
        }
        dispatched
    }
}
