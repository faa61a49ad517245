//! [`StateAccess`] over a sled multi-tree transaction, keeping the secondary indexes in step.

use sled::transaction::{ConflictableTransactionError, TransactionalTree, UnabortableTransactionError};

use super::keys::{T_BY_OWNER, T_CLUSTERS, T_IDEMPOTENCY, T_JOBS, T_PENDING, decode, encode, pair_key};
use super::pre_images::PreImages;
use crate::model::{ClusterState, Dispatch, IdempotencyEntry, Job, StateAccess};

pub(crate) type TxError = ConflictableTransactionError<String>;

/// The state-machine trees inside one transaction, in `keys::SM_TREES` order. Every write goes
/// through [`TxState::insert`] or [`TxState::remove`], which tell a running snapshot build the
/// value being replaced.
pub(crate) struct TxState<'a> {
    trees: &'a [TransactionalTree],
    pre_images: &'a PreImages,
    /// Jobs inserted minus jobs removed in this transaction, for the stored job count.
    pub(crate) jobs_added: i64,
}

impl<'a> TxState<'a> {
    pub(crate) fn new(trees: &'a [TransactionalTree], pre_images: &'a PreImages) -> Self {
        TxState { trees, pre_images, jobs_added: 0 }
    }

    /// Writes `value` under `key`; returns whether the key held a value before.
    fn insert(&self, tree: usize, key: &[u8], value: &[u8]) -> Result<bool, UnabortableTransactionError> {
        self.pre_images.before_write(tree, key, || self.trees[tree].get(key))?;
        Ok(self.trees[tree].insert(key, value)?.is_some())
    }

    /// Removes `key`; returns whether it held a value.
    fn remove(&self, tree: usize, key: &[u8]) -> Result<bool, UnabortableTransactionError> {
        self.pre_images.before_write(tree, key, || self.trees[tree].get(key))?;
        Ok(self.trees[tree].remove(key)?.is_some())
    }
}

fn get<T: serde::de::DeserializeOwned>(tree: &TransactionalTree, key: &[u8]) -> Result<Option<T>, TxError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(&bytes).map(Some).map_err(|e| ConflictableTransactionError::Abort(e.to_string())),
    }
}

impl StateAccess for TxState<'_> {
    type Error = TxError;

    fn job(&self, id: &str) -> Result<Option<Job>, TxError> {
        get(&self.trees[T_JOBS], id.as_bytes())
    }

    fn put_job(&mut self, job: &Job) -> Result<(), TxError> {
        if !self.insert(T_JOBS, job.id.as_bytes(), &encode(job))? {
            self.jobs_added += 1;
        }
        // Indexed under the owner and, when different, the user the job runs as.
        self.insert(T_BY_OWNER, &pair_key(&job.owner, &job.id), &[])?;
        self.insert(T_BY_OWNER, &pair_key(&job.proxy_user, &job.id), &[])?;
        if matches!(job.dispatch, Dispatch::Pending { .. }) && job.deleted_at_ms.is_none() {
            self.insert(T_PENDING, job.id.as_bytes(), &[])?;
        } else {
            self.remove(T_PENDING, job.id.as_bytes())?;
        }
        Ok(())
    }

    fn remove_job(&mut self, job: &Job) -> Result<(), TxError> {
        if self.remove(T_JOBS, job.id.as_bytes())? {
            self.jobs_added -= 1;
        }
        self.remove(T_BY_OWNER, &pair_key(&job.owner, &job.id))?;
        self.remove(T_BY_OWNER, &pair_key(&job.proxy_user, &job.id))?;
        self.remove(T_PENDING, job.id.as_bytes())?;
        Ok(())
    }

    fn cluster(&self, id: &str) -> Result<Option<ClusterState>, TxError> {
        get(&self.trees[T_CLUSTERS], id.as_bytes())
    }

    fn put_cluster(&mut self, id: &str, state: &ClusterState) -> Result<(), TxError> {
        self.insert(T_CLUSTERS, id.as_bytes(), &encode(state))?;
        Ok(())
    }

    fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, TxError> {
        get(&self.trees[T_IDEMPOTENCY], &pair_key(owner, key))
    }

    fn put_idempotency(&mut self, owner: &str, key: &str, entry: &IdempotencyEntry) -> Result<(), TxError> {
        self.insert(T_IDEMPOTENCY, &pair_key(owner, key), &encode(entry))?;
        Ok(())
    }

    fn remove_idempotency(&mut self, owner: &str, key: &str) -> Result<(), TxError> {
        self.remove(T_IDEMPOTENCY, &pair_key(owner, key))?;
        Ok(())
    }
}
