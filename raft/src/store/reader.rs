use std::collections::BTreeMap;

use super::StoreError;
use super::keys::{
    JOB_COUNT, T_BY_OWNER, T_CLUSTERS, T_IDEMPOTENCY, T_JOBS, T_PENDING, T_SM_META, decode, pair_prefix,
};
use crate::model::{ClusterState, IdempotencyEntry, IdempotencyKey, Job};

/// Read-only view of the local replica's state machine. Cheap to clone, safe from any task.
///
/// Reads see every applied batch whole or not at all for a single record; a listing may
/// interleave with a concurrent apply. For a linearizable read, first wait on the facade.
#[derive(Clone)]
pub struct StateReader {
    trees: Vec<sled::Tree>,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader").finish_non_exhaustive()
    }
}

fn corrupt(tree: &'static str, e: impl ToString) -> StoreError {
    StoreError::Corrupt { tree, detail: e.to_string() }
}

/// The reads of a [`StateReader`] that cover many jobs, handed out on a blocking thread by
/// [`StateReader::read_blocking`] and nowhere else, so that no async task can run one.
#[derive(Debug)]
pub struct Scan<'a>(&'a StateReader);

impl Scan<'_> {
    /// Every job, in submission-id order, decoded lazily.
    pub fn jobs(&self) -> impl Iterator<Item = Result<Job, StoreError>> + Send + 'static {
        self.0.jobs()
    }

    /// Every job `user` owns or runs as (the proxy user), in submission-id order.
    pub fn jobs_of_owner(&self, user: &str) -> Result<Vec<Job>, StoreError> {
        self.0.jobs_of_owner(user)
    }
}

impl StateReader {
    pub(crate) fn new(trees: Vec<sled::Tree>) -> Self {
        StateReader { trees }
    }

    /// Runs `read` on a blocking thread, the only place the reads that cover many jobs
    /// ([`Scan`]) are available: at a million jobs a pass takes seconds, and on the async
    /// runtime it would hold off this node's Raft heartbeats and RPC answers for as long.
    /// Fails only if `read` panicked or the runtime is shutting down.
    pub async fn read_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Scan<'_>) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let reader = self.clone();
        tokio::task::spawn_blocking(move || read(&Scan(&reader))).await
    }

    pub fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        match self.trees[T_JOBS].get(id.as_bytes()).map_err(|e| corrupt("sm_jobs", e))? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(|e| corrupt("sm_jobs", e)),
        }
    }

    /// Every job `user` owns or runs as (the proxy user), in submission-id order.
    pub(crate) fn jobs_of_owner(&self, user: &str) -> Result<Vec<Job>, StoreError> {
        let prefix = pair_prefix(user);
        let mut jobs = Vec::new();
        for item in self.trees[T_BY_OWNER].scan_prefix(&prefix) {
            let (key, _) = item.map_err(|e| corrupt("sm_jobs_by_owner", e))?;
            let id = std::str::from_utf8(&key[prefix.len()..]).map_err(|e| corrupt("sm_jobs_by_owner", e))?;
            if let Some(job) = self.job(id)? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Every job, in submission-id order, decoded lazily.
    pub(crate) fn jobs(&self) -> impl Iterator<Item = Result<Job, StoreError>> + Send + 'static {
        self.trees[T_JOBS].iter().map(|item| {
            let (_, value) = item.map_err(|e| corrupt("sm_jobs", e))?;
            decode(&value).map_err(|e| corrupt("sm_jobs", e))
        })
    }

    /// How many jobs the state holds, as of the last applied batch (a stored count: O(1)).
    pub fn job_count(&self) -> Result<u64, StoreError> {
        match self.trees[T_SM_META].get(JOB_COUNT).map_err(|e| corrupt("sm_meta", e))? {
            None => Ok(0),
            Some(bytes) => decode(&bytes).map_err(|e| corrupt("sm_meta", e)),
        }
    }

    /// Jobs committed but not yet known to exist on their cluster (and not deleted).
    pub fn pending_dispatch(&self) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::new();
        for item in self.trees[T_PENDING].iter() {
            let (key, _) = item.map_err(|e| corrupt("sm_pending", e))?;
            let id = std::str::from_utf8(&key).map_err(|e| corrupt("sm_pending", e))?;
            if let Some(job) = self.job(id)? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Clusters whose state was changed at run time.
    pub fn clusters(&self) -> Result<BTreeMap<String, ClusterState>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.trees[T_CLUSTERS].iter() {
            let (key, value) = item.map_err(|e| corrupt("sm_clusters", e))?;
            let id = String::from_utf8(key.to_vec()).map_err(|e| corrupt("sm_clusters", e))?;
            out.insert(id, decode(&value).map_err(|e| corrupt("sm_clusters", e))?);
        }
        Ok(out)
    }

    pub fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, StoreError> {
        match self.trees[T_IDEMPOTENCY]
            .get(super::keys::pair_key(owner, key))
            .map_err(|e| corrupt("sm_idempotency", e))?
        {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(|e| corrupt("sm_idempotency", e)),
        }
    }

    /// Idempotency entries created before `before_ms`, at most `limit` of them.
    pub fn expired_idempotency(&self, before_ms: u64, limit: usize) -> Result<Vec<IdempotencyKey>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees[T_IDEMPOTENCY].iter() {
            let (key, value) = item.map_err(|e| corrupt("sm_idempotency", e))?;
            let entry: IdempotencyEntry = decode(&value).map_err(|e| corrupt("sm_idempotency", e))?;
            if entry.at_ms < before_ms {
                let text = String::from_utf8(key.to_vec()).map_err(|e| corrupt("sm_idempotency", e))?;
                let (owner, k) =
                    text.split_once('\0').ok_or_else(|| corrupt("sm_idempotency", "key without separator"))?;
                out.push(IdempotencyKey { owner: owner.to_owned(), key: k.to_owned(), at_ms: entry.at_ms });
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
