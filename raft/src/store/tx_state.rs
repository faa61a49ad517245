//! [`StateAccess`] over the state-machine tables of one write transaction, keeping the
//! secondary indexes in step.

use std::cell::Cell;

use redb::ReadableTable as _;

use super::keys::{
    SM_TABLES, T_BY_OWNER, T_CLUSTERS, T_IDEMPOTENCY, T_JOBS, T_PENDING, decode, derived_keys, encode, join_job,
    pair_key, pending_value, stored_job,
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
    /// The index entries of the job record read or written last, by id (`None`: no record),
    /// so that writing it back changes only the entries that differ instead of looking each
    /// one up: an apply reads a job, changes it and writes it, and a status update, the most
    /// common write, moves one entry at most.
    known: Cell<Option<(String, Option<Indexed>)>>,
}

/// The entries a job record has outside `sm_jobs` that can change with it.
struct Indexed {
    derived: [(usize, Vec<u8>, bool); 3],
    pending: bool,
}

impl Indexed {
    fn of(job: &Job) -> Indexed {
        Indexed { derived: derived_keys(job), pending: job.pending_manifest().is_some() }
    }

    /// A job with no record: in no table.
    fn absent() -> Indexed {
        Indexed { derived: [(0, Vec::new(), false), (0, Vec::new(), false), (0, Vec::new(), false)], pending: false }
    }
}

impl<'a, 'tx> TxState<'a, 'tx> {
    pub(crate) fn new(tables: &'a mut [TxTable<'tx>]) -> Self {
        TxState { tables, known: Cell::new(None) }
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
        let job = match self.tables[T_JOBS].get(id.as_bytes()).map_err(|e| e.to_string())? {
            None => None,
            Some(record) => {
                let pending = &self.tables[T_PENDING];
                Some(join_job(record.value(), |id| pending_value(pending, id)).map_err(|e| e.to_string())?)
            }
        };
        self.known.set(Some((id.to_owned(), job.as_ref().map(Indexed::of))));
        Ok(job)
    }

    fn put_job(&mut self, job: &Job) -> Result<(), TxError> {
        let known = self.known.take().filter(|(id, _)| *id == job.id).map(|(_, indexed)| indexed);
        let record = stored_job(job);
        let is_new =
            self.tables[T_JOBS].insert(job.id.as_bytes(), record.as_slice()).map_err(|e| e.to_string())?.is_none();
        // What never changes after submission (the owner, the user the job runs as) is
        // indexed once, when the job is new.
        if is_new {
            self.insert(T_BY_OWNER, &pair_key(&job.owner, &job.id), &[])?;
            self.insert(T_BY_OWNER, &pair_key(&job.proxy_user, &job.id), &[])?;
        }
        // The entries the record had: none for a new job (a removal takes them all), those of
        // the job read last when it is this one, otherwise unknown.
        let before = match (is_new, known) {
            (true, _) => Some(Indexed::absent()),
            (false, Some(Some(indexed))) => Some(indexed),
            (false, _) => None,
        };
        let after = Indexed::of(job);
        match job.pending_manifest() {
            // Written when the job becomes pending, and again only for a record of the layout
            // before (an empty value beside an inline manifest).
            Some(manifest) => {
                let stale = before.as_ref().is_some_and(|b| !b.pending)
                    || self.tables[T_PENDING]
                        .get(job.id.as_bytes())
                        .map_err(|e| e.to_string())?
                        .is_none_or(|value| value.value() != manifest.as_bytes());
                if stale {
                    self.insert(T_PENDING, job.id.as_bytes(), manifest.as_bytes())?;
                }
            }
            None if before.as_ref().is_some_and(|b| !b.pending) => {}
            None => self.remove(T_PENDING, job.id.as_bytes())?,
        }
        match &before {
            Some(had) => {
                for ((table, key, present), (_, old_key, was)) in after.derived.iter().zip(&had.derived) {
                    if *was && (!present || key != old_key) {
                        self.remove(*table, old_key)?;
                    }
                    if *present && (!was || key != old_key) {
                        self.insert(*table, key, &[])?;
                    }
                }
            }
            None => {
                for (table, key, present) in &after.derived {
                    self.index(*table, key, *present)?;
                }
            }
        }
        self.known.set(Some((job.id.clone(), Some(after))));
        Ok(())
    }

    fn remove_job(&mut self, job: &Job) -> Result<(), TxError> {
        self.known.set(None);
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
