use super::command::{ClusterState, Command, DispatchOutcome, IdempotencyEntry, Response};
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
        Command::RecordStatus { updates } => {
            let mut changed = 0;
            let mut finished = Vec::new();
            let mut deleted = Vec::new();
            for update in updates {
                let Some(mut job) = state.job(&update.id)? else { continue };
                if job.deleted_at_ms.is_some() {
                    // The object of a deleted job is still there (its cluster missed the
                    // deletion): the caller deletes it again.
                    if !update.observed.vanished && !deleted.contains(&update.id) {
                        deleted.push(update.id);
                    }
                    continue;
                }
                // An object's revisions only grow; a vanished mark carries the last one seen.
                let newer = job.observed.as_ref().is_none_or(|seen| {
                    let rv = update.observed.resource_version;
                    rv > seen.resource_version || (update.observed.vanished && rv == seen.resource_version)
                });
                if !newer {
                    continue;
                }
                let was_terminal = job.is_terminal();
                // Seeing the object proves it was created, even if the dispatcher's own record
                // has not committed yet (a new leader's watcher can be first).
                if matches!(job.dispatch, Dispatch::Pending { .. }) && !update.observed.vanished {
                    job.dispatch = Dispatch::Created;
                }
                job.observed = Some(update.observed);
                state.put_job(&job)?;
                changed += 1;
                if !was_terminal && job.is_terminal() {
                    finished.push((update.id, job.application_state().to_owned()));
                }
            }
            Response::StatusRecorded { changed, finished, deleted }
        }
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
