//! The leader's periodic chores: kill applications running past their `maxRunningMillis` (by
//! deleting the driver pod, as BPG does: the operator then marks them FAILED), expire
//! idempotency keys, and forget old finished or deleted jobs.

use std::sync::Arc;
use std::time::Duration;

use bpg_raft::RaftNode;
use bpg_raft::model::{Command, IDEMPOTENCY_TTL_MS};

use crate::clusters::Clusters;

/// Kills overdue applications every `every`.
pub async fn enforce_max_running(raft: RaftNode, clusters: Arc<Clusters>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let now = now_ms();
        // The running jobs come from their index; there may be many, so off the runtime.
        let overdue = raft.state().read_blocking(move |state| {
            let running = state.running_jobs().unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading the running jobs failed");
                Vec::new()
            });
            running
                .into_iter()
                .filter_map(|job| {
                    let o = job.observed.as_ref()?;
                    let created = o.creation_ms?;
                    if created.saturating_add(job.max_running_millis) > now {
                        return None;
                    }
                    let driver = o.driver_pod.clone().unwrap_or_else(|| format!("{}-driver", job.id));
                    Some((job, driver))
                })
                .collect::<Vec<_>>()
        });
        for (job, driver) in overdue.await.unwrap_or_default() {
            let Some(cluster) = clusters.get(&job.cluster) else { continue };
            match cluster.delete_pod(&driver).await {
                Ok(()) => {
                    tracing::info!(job = %job.id, max_running_ms = job.max_running_millis, "killed an application running too long")
                }
                Err(e) => tracing::warn!(job = %job.id, error = %e, "could not kill an application running too long"),
            }
        }
    }
}

/// Expires idempotency keys and forgets jobs finished or deleted more than `retention` ago
/// (never, when `retention` is zero), every `every`.
pub async fn prune(raft: RaftNode, retention: Duration, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let now = now_ms();
        if let Ok(keys) = raft.state().expired_idempotency(now.saturating_sub(IDEMPOTENCY_TTL_MS), 1000)
            && !keys.is_empty()
            && let Err(e) = raft.write(Command::ExpireIdempotency { keys }).await
        {
            tracing::warn!(error = %e, "expiring idempotency keys failed");
        }
        if retention.is_zero() {
            continue;
        }
        let horizon = now.saturating_sub(retention.as_millis() as u64);
        let old = raft.state().read_blocking(move |state| match state.ended_before(horizon, 1000) {
            Ok(jobs) => jobs.into_iter().map(|j| j.id).collect::<Vec<String>>(),
            Err(e) => {
                tracing::error!(error = %e, "reading the jobs to forget failed");
                Vec::new()
            }
        });
        let old = old.await.unwrap_or_default();
        if !old.is_empty() {
            let n = old.len();
            match raft.write(Command::Forget { ids: old }).await {
                Ok(_) => tracing::info!(jobs = n, "forgot old jobs"),
                Err(e) => tracing::warn!(error = %e, "forgetting old jobs failed"),
            }
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
