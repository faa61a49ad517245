//! [`StateAccess`] over the state-machine tables of one write transaction, keeping the
//! secondary indexes in step.

use redb::ReadableTable as _;

use super::keys::{
    SM_TABLES, T_BY_OWNER, T_CLUSTERS, T_IDEMPOTENCY, T_JOBS, T_PENDING, decode, derived_keys, encode, join_job,
    pair_key, pending_manifest, pending_value, stored_job,
};
use crate::model::{ClusterState, IdempotencyEntry, Job, StateAccess};

/// A failed read or write inside an apply, or a record that does not decode.
pub(crate) type TxError = String;

/// One state-machine table, open in a write transaction.
pub(crate) type TxTable<'tx> = redb::Table<'tx, &'static [u8], &'static [u8]>;

/// Opens every state-machine table in `tx`, in `keys::SM_TABLES` order.
pub(crate) fn open_tables(tx: &redb::WriteTransaction) -> Result<Vec<TxTable<'_>>, redb::TableError> {
    SM_TABLES.iter().map(|table| tx.open_table(*table)).collect()
}

/// The state-machine tables of one write transaction, in `keys::SM_TABLES` order.
pub(crate) struct TxState<'a, 'tx> {
    tables: &'a mut [TxTable<'tx>],
}

impl<'a, 'tx> TxState<'a, 'tx> {
    pub(crate) fn new(tables: &'a mut [TxTable<'tx>]) -> Self {
        TxState { tables }
    }

    fn insert(&mut self, table: usize, key: &[u8], value: &[u8]) -> Result<(), TxError> {
        self.tables[table].insert(key, value).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn remove(&mut self, table: usize, key: &[u8]) -> Result<(), TxError> {
        self.tables[table].remove(key).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Makes `key` present in (or absent from) an index whose values are empty. Only a change
    /// writes: an insert of a key already there would still copy its page.
    fn index(&mut self, table: usize, key: &[u8], present: bool) -> Result<(), TxError> {
        if !present {
            return self.remove(table, key);
        }
        if self.tables[table].get(key).map_err(|e| e.to_string())?.is_none() {
            self.insert(table, key, &[])?;
        }
        Ok(())
    }

    fn get<T: serde::de::DeserializeOwned>(&self, table: usize, key: &[u8]) -> Result<Option<T>, TxError> {
        match self.tables[table].get(key).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(bytes) => decode(bytes.value()).map(Some).map_err(|e| e.to_string()),
        }
    }
}

impl StateAccess for TxState<'_, '_> {
    type Error = TxError;

    fn job(&self, id: &str) -> Result<Option<Job>, TxError> {
        let Some(record) = self.tables[T_JOBS].get(id.as_bytes()).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let pending = &self.tables[T_PENDING];
        let job = join_job(record.value(), |id| pending_value(pending, id));
        job.map(Some).map_err(|e| e.to_string())
    }

    fn put_job(&mut self, job: &Job) -> Result<(), TxError> {
        let record = stored_job(job);
        let is_new =
            self.tables[T_JOBS].insert(job.id.as_bytes(), record.as_slice()).map_err(|e| e.to_string())?.is_none();
        // What never changes after submission (the owner, the user the job runs as) is
        // indexed once, when the job is new.
        if is_new {
            self.insert(T_BY_OWNER, &pair_key(&job.owner, &job.id), &[])?;
            self.insert(T_BY_OWNER, &pair_key(&job.proxy_user, &job.id), &[])?;
        }
        match pending_manifest(job) {
            // Written when the job becomes pending (a new job has no entry), and again only for
            // a record of the layout before (an empty value beside an inline manifest).
            Some(manifest) => {
                let stale = is_new
                    || self.tables[T_PENDING]
                        .get(job.id.as_bytes())
                        .map_err(|e| e.to_string())?
                        .is_none_or(|value| value.value() != manifest.as_bytes());
                if stale {
                    self.insert(T_PENDING, job.id.as_bytes(), manifest.as_bytes())?;
                }
            }
            None => self.index(T_PENDING, job.id.as_bytes(), false)?,
        }
        for (table, key, present) in derived_keys(job) {
            // A new job has no entries yet (a removal takes them all), so nothing to look up.
            match (is_new, present) {
                (true, true) => self.insert(table, &key, &[])?,
                (true, false) => {}
                (false, _) => self.index(table, &key, present)?,
            }
        }
        Ok(())
    }

    fn remove_job(&mut self, job: &Job) -> Result<(), TxError> {
        self.remove(T_JOBS, job.id.as_bytes())?;
        self.remove(T_BY_OWNER, &pair_key(&job.owner, &job.id))?;
        self.remove(T_BY_OWNER, &pair_key(&job.proxy_user, &job.id))?;
        self.remove(T_PENDING, job.id.as_bytes())?;
        for (table, key, _) in derived_keys(job) {
            self.remove(table, &key)?;
        }
        Ok(())
    }

    fn cluster(&self, id: &str) -> Result<Option<ClusterState>, TxError> {
        self.get(T_CLUSTERS, id.as_bytes())
    }

    fn put_cluster(&mut self, id: &str, state: &ClusterState) -> Result<(), TxError> {
        self.insert(T_CLUSTERS, id.as_bytes(), &encode(state))
    }

    fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, TxError> {
        self.get(T_IDEMPOTENCY, &pair_key(owner, key))
    }

    fn put_idempotency(&mut self, owner: &str, key: &str, entry: &IdempotencyEntry) -> Result<(), TxError> {
        self.insert(T_IDEMPOTENCY, &pair_key(owner, key), &encode(entry))
    }

    fn remove_idempotency(&mut self, owner: &str, key: &str) -> Result<(), TxError> {
        self.remove(T_IDEMPOTENCY, &pair_key(owner, key))
    }
}
