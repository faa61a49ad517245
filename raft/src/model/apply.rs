use std::collections::HashMap;

use super::command::{ClusterState, Command, DispatchOutcome, IdempotencyEntry, Response, StatusUpdate};
use super::job::Observed;
use super::job::{Dispatch, Job};

/// How long an `Idempotency-Key` keeps returning the first submission's id: 24 h, in ms.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The storage `apply` works on. Each implementation keeps its own secondary indexes up to date
/// inside these calls; `apply` only speaks of records.
pub trait StateAccess {
    type Error;

    fn job(&self, id: &str) -> Result<Option<Job>, Self::Error>;
    fn put_job(&mut self, job: &Job) -> Result<(), Self::Error>;
    fn remove_job(&mut self, job: &Job) -> Result<(), Self::Error>;
    fn cluster(&self, id: &str) -> Result<Option<ClusterState>, Self::Error>;
    fn put_cluster(&mut self, id: &str, state: &ClusterState) -> Result<(), Self::Error>;
    fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, Self::Error>;
    fn put_idempotency(&mut self, owner: &str, key: &str, entry: &IdempotencyEntry) -> Result<(), Self::Error>;
    fn remove_idempotency(&mut self, owner: &str, key: &str) -> Result<(), Self::Error>;
}

/// Applies one command. Deterministic: the result depends only on `state` and `cmd`.
pub fn apply<S: StateAccess>(state: &mut S, cmd: Command) -> Result<Response, S::Error> {
    Ok(match cmd {
        Command::Submit { job, idempotency_key } => submit(state, *job, idempotency_key)?,
        Command::RecordDispatch { id, outcome } => record_dispatch(state, id, outcome)?,
        Command::RecordStatus { updates } => record_status(state, updates)?,
        Command::Delete { id, at_ms } => match state.job(&id)? {
            None => Response::NotFound { id },
            Some(mut job) => {
                if job.deleted_at_ms.is_none() {
                    job.deleted_at_ms = Some(at_ms);
                    state.put_job(&job)?;
                }
                Response::Deleted { job: Box::new(job) }
            }
        },
        Command::SetCluster { id, weight, cordoned } => {
            let mut cluster = state.cluster(&id)?.unwrap_or_default();
            if weight.is_some() {
                cluster.weight = weight;
            }
            if let Some(cordoned) = cordoned {
                cluster.cordoned = cordoned;
            }
            state.put_cluster(&id, &cluster)?;
            Response::Cluster(cluster)
        }
        Command::ExpireIdempotency { keys } => {
            for k in keys {
                if let Some(entry) = state.idempotency(&k.owner, &k.key)?
                    && entry.at_ms == k.at_ms
                {
                    state.remove_idempotency(&k.owner, &k.key)?;
                }
            }
            Response::Done
        }
        Command::Forget { ids } => {
            for id in ids {
                if let Some(job) = state.job(&id)? {
                    state.remove_job(&job)?;
                }
            }
            Response::Done
        }
        Command::Batch(cmds) => {
            let mut out = Vec::with_capacity(cmds.len());
            for cmd in cmds {
                out.push(apply(state, cmd)?);
            }
            Response::Batch(out)
        }
    })
}

fn submit<S: StateAccess>(state: &mut S, job: Job, idempotency_key: Option<String>) -> Result<Response, S::Error> {
    if let Some(key) = &idempotency_key
        && let Some(entry) = state.idempotency(&job.owner, key)?
        && job.submitted_at_ms < entry.at_ms.saturating_add(IDEMPOTENCY_TTL_MS)
    {
        return Ok(Response::Replayed { id: entry.id });
    }
    if state.job(&job.id)?.is_some() {
        return Ok(Response::IdTaken { id: job.id });
    }
    if let Some(key) = &idempotency_key {
        let entry = IdempotencyEntry { id: job.id.clone(), at_ms: job.submitted_at_ms };
        state.put_idempotency(&job.owner, key, &entry)?;
    }
    state.put_job(&job)?;
    Ok(Response::Submitted { id: job.id })
}

fn record_dispatch<S: StateAccess>(state: &mut S, id: String, outcome: DispatchOutcome) -> Result<Response, S::Error> {
    let Some(mut job) = state.job(&id)? else {
        return Ok(Response::NotFound { id });
    };
    if matches!(job.dispatch, Dispatch::Pending { .. }) {
        job.dispatch = match outcome {
            DispatchOutcome::Created => Dispatch::Created,
            DispatchOutcome::Rejected { reason } => Dispatch::Rejected { reason },
        };
        state.put_job(&job)?;
    }
    Ok(Response::DispatchRecorded { deleted: job.deleted_at_ms.is_some() })
}

/// Records a batch of observed statuses. The updates of one job are applied in their order, as
/// consecutive commands would be, but the job is read and written once: a watcher's batch often
/// holds several revisions of one object (its creation and the operator's first status come
/// together). Jobs are taken in the order of their first update.
fn record_status<S: StateAccess>(state: &mut S, updates: Vec<StatusUpdate>) -> Result<Response, S::Error> {
    let mut groups: Vec<(String, Vec<Observed>)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for update in updates {
        match position.get(&update.id) {
            Some(&i) => groups[i].1.push(update.observed),
            None => {
                position.insert(update.id.clone(), groups.len());
                groups.push((update.id, vec![update.observed]));
            }
        }
    }
    let mut changed = 0;
    let mut finished = Vec::new();
    let mut deleted = Vec::new();
    for (id, observations) in groups {
        let Some(mut job) = state.job(&id)? else { continue };
        if job.deleted_at_ms.is_some() {
            // The object of a deleted job is still there (its cluster missed the deletion):
            // the caller deletes it again.
            if observations.iter().any(|o| !o.vanished) {
                deleted.push(id);
            }
            continue;
        }
        let was_terminal = job.is_terminal();
        let mut job_changed = false;
        for observed in observations {
            if !job.observed.as_ref().is_none_or(|seen| observed.supersedes(seen)) {
                continue;
            }
            // Seeing the object proves it was created, even if the dispatcher's own record has
            // not committed yet (a new leader's watcher can be first).
            if matches!(job.dispatch, Dispatch::Pending { .. }) && !observed.vanished {
                job.dispatch = Dispatch::Created;
            }
            job.observed = Some(observed);
            changed += 1;
            job_changed = true;
        }
        if job_changed {
            state.put_job(&job)?;
            if !was_terminal && job.is_terminal() {
                finished.push((id, job.application_state().to_owned()));
            }
        }
    }
    Ok(Response::StatusRecorded { changed, finished, deleted })
}
