//! [`StateAccess`] over a sled multi-tree transaction, keeping the secondary indexes in step.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::keys::{T_BY_OWNER, T_CLUSTERS, T_IDEMPOTENCY, T_JOBS, T_PENDING, decode, encode, pair_key};
use crate::model::{ClusterState, Dispatch, IdempotencyEntry, Job, StateAccess};

pub(crate) type TxError = ConflictableTransactionError<String>;

/// The state-machine trees inside one transaction, in `keys::SM_TREES` order.
pub(crate) struct TxState<'a> {
    pub(crate) trees: &'a [TransactionalTree],
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
        self.trees[T_JOBS].insert(job.id.as_bytes(), encode(job))?;
        // Indexed under the owner and, when different, the user the job runs as.
        self.trees[T_BY_OWNER].insert(pair_key(&job.owner, &job.id), &[])?;
        self.trees[T_BY_OWNER].insert(pair_key(&job.proxy_user, &job.id), &[])?;
        if matches!(job.dispatch, Dispatch::Pending { .. }) && job.deleted_at_ms.is_none() {
            self.trees[T_PENDING].insert(job.id.as_bytes(), &[])?;
        } else {
            self.trees[T_PENDING].remove(job.id.as_bytes())?;
        }
        Ok(())
    }

    fn remove_job(&mut self, job: &Job) -> Result<(), TxError> {
        self.trees[T_JOBS].remove(job.id.as_bytes())?;
        self.trees[T_BY_OWNER].remove(pair_key(&job.owner, &job.id))?;
        self.trees[T_BY_OWNER].remove(pair_key(&job.proxy_user, &job.id))?;
        self.trees[T_PENDING].remove(job.id.as_bytes())?;
        Ok(())
    }

    fn cluster(&self, id: &str) -> Result<Option<ClusterState>, TxError> {
        get(&self.trees[T_CLUSTERS], id.as_bytes())
    }

    fn put_cluster(&mut self, id: &str, state: &ClusterState) -> Result<(), TxError> {
        self.trees[T_CLUSTERS].insert(id.as_bytes(), encode(state))?;
        Ok(())
    }

    fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, TxError> {
        get(&self.trees[T_IDEMPOTENCY], &pair_key(owner, key))
    }

    fn put_idempotency(&mut self, owner: &str, key: &str, entry: &IdempotencyEntry) -> Result<(), TxError> {
        self.trees[T_IDEMPOTENCY].insert(pair_key(owner, key), encode(entry))?;
        Ok(())
    }

    fn remove_idempotency(&mut self, owner: &str, key: &str) -> Result<(), TxError> {
        self.trees[T_IDEMPOTENCY].remove(pair_key(owner, key))?;
        Ok(())
    }
}
