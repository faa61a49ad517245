use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _};

use super::StoreError;
use super::keys::{
    self, BY_SUBMITTED, CLUSTERS, IDEMPOTENCY, JOBS, JOBS_BY_OWNER, JobReadError, LIVE, PENDING, RUNNING, decode,
    join_job, pair_prefix, pending_value,
};
use crate::model::{ClusterState, IdempotencyEntry, IdempotencyKey, Job};

/// One table, open in a read transaction (which it keeps alive).
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Read-only view of the local replica's state machine. Cheap to clone, safe from any task.
///
/// Each call reads one read transaction: the state after some apply batch, whole. For a
/// linearizable read, first wait on the facade.
#[derive(Clone)]
pub struct StateReader {
    db: Arc<redb::Database>,
    path: Arc<Path>,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader").field("path", &self.path).finish_non_exhaustive()
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

    /// The jobs observed running and not deleted ([`Job::is_running`]), from their index.
    pub fn running_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.0.running_jobs()
    }

    /// The ids of the jobs whose SparkApplication should exist on `cluster`
    /// ([`Job::expects_object`]), from their index, in submission-id order.
    pub fn live_on(&self, cluster: &str) -> Result<Vec<String>, StoreError> {
        self.0.live_on(cluster)
    }

    /// Up to `limit` jobs that ended ([`Job::ended_ms`]) before `horizon_ms`, oldest
    /// submissions first. Only jobs submitted before the horizon are read: none submitted
    /// after it ended before it, unless clocks disagree (a deletion stamped by a leader whose
    /// clock is behind, a termination time from the cluster's clock), and such a job is found
    /// once the horizon passes its submission.
    pub fn ended_before(&self, horizon_ms: u64, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.0.ended_before(horizon_ms, limit)
    }
}

impl StateReader {
    pub(crate) fn new(db: Arc<redb::Database>, path: &Path) -> Self {
        StateReader { db, path: path.into() }
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db { path: self.path.to_path_buf(), source: e.into() }
    }

    /// `tables`, open in one read transaction.
    fn read<const N: usize>(&self, tables: [keys::Table; N]) -> Result<[ReadTable; N], StoreError> {
        Ok(self.read_in(tables)?.1)
    }

    /// `tables`, open in one read transaction, which is returned too (to open more lazily).
    fn read_in<const N: usize>(
        &self,
        tables: [keys::Table; N],
    ) -> Result<(redb::ReadTransaction, [ReadTable; N]), StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let mut open = Vec::with_capacity(N);
        for table in tables {
            open.push(tx.open_table(table).map_err(|e| self.db_err(e))?);
        }
        Ok((tx, open.try_into().unwrap_or_else(|_| unreachable!("one table opened per name"))))
    }

    fn job_err(&self, e: JobReadError) -> StoreError {
        match e {
            JobReadError::Db(e) => self.db_err(e),
            JobReadError::Decode(e) => corrupt("sm_jobs", e),
        }
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
        let (tx, [jobs]) = self.read_in([JOBS])?;
        self.job_in(&tx, &jobs, id)
    }

    /// The job `id` in `jobs`, open in `tx`; a pending job's manifest is read from `sm_pending`
    /// ([`keys::stored_job`]), opened only then.
    fn job_in(&self, tx: &redb::ReadTransaction, jobs: &ReadTable, id: &str) -> Result<Option<Job>, StoreError> {
        let Some(record) = jobs.get(id.as_bytes()).map_err(|e| self.db_err(e))? else { return Ok(None) };
        let job = join_job(record.value(), |id| pending_value(&tx.open_table(PENDING).map_err(redb::Error::from)?, id));
        job.map(Some).map_err(|e| self.job_err(e))
    }

    /// Every job `user` owns or runs as (the proxy user), in submission-id order.
    pub(crate) fn jobs_of_owner(&self, user: &str) -> Result<Vec<Job>, StoreError> {
        let prefix = pair_prefix(user);
        let (tx, [by_owner, jobs]) = self.read_in([JOBS_BY_OWNER, JOBS])?;
        let mut out = Vec::new();
        for item in by_owner.range::<&[u8]>(prefix.as_slice()..).map_err(|e| self.db_err(e))? {
            let (key, _) = item.map_err(|e| self.db_err(e))?;
            let Some(id) = key.value().strip_prefix(prefix.as_slice()) else { break };
            let id = std::str::from_utf8(id).map_err(|e| corrupt("sm_jobs_by_owner", e))?;
            if let Some(job) = self.job_in(&tx, &jobs, id)? {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Every job, in submission-id order, decoded lazily.
    pub(crate) fn jobs(&self) -> impl Iterator<Item = Result<Job, StoreError>> + Send + 'static {
        let opened = self
            .read([JOBS, PENDING])
            .and_then(|[jobs, pending]| Ok((jobs.range::<&[u8]>(..).map_err(|e| self.db_err(e))?, pending)));
        let (failed, scan) = match opened {
            Ok(scan) => (None, Some(scan)),
            Err(e) => (Some(Err(e)), None),
        };
        let reader = self.clone();
        failed.into_iter().chain(scan.into_iter().flat_map(move |(range, pending)| {
            let reader = reader.clone();
            range.map(move |item| {
                let (_, value) = item.map_err(|e| reader.db_err(e))?;
                join_job(value.value(), |id| pending_value(&pending, id)).map_err(|e| reader.job_err(e))
            })
        }))
    }

    /// See [`Scan::running_jobs`].
    pub(crate) fn running_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let (tx, [running, jobs]) = self.read_in([RUNNING, JOBS])?;
        let mut out = Vec::new();
        for item in running.iter().map_err(|e| self.db_err(e))? {
            let (key, _) = item.map_err(|e| self.db_err(e))?;
            let id = std::str::from_utf8(key.value()).map_err(|e| corrupt("sm_running", e))?;
            out.extend(self.job_in(&tx, &jobs, id)?);
        }
        Ok(out)
    }

    /// See [`Scan::live_on`].
    pub(crate) fn live_on(&self, cluster: &str) -> Result<Vec<String>, StoreError> {
        let prefix = pair_prefix(cluster);
        let [live] = self.read([LIVE])?;
        let mut out = Vec::new();
        for item in live.range::<&[u8]>(prefix.as_slice()..).map_err(|e| self.db_err(e))? {
            let (key, _) = item.map_err(|e| self.db_err(e))?;
            let Some(id) = key.value().strip_prefix(prefix.as_slice()) else { break };
            out.push(String::from_utf8(id.to_vec()).map_err(|e| corrupt("sm_live", e))?);
        }
        Ok(out)
    }

    /// See [`Scan::ended_before`].
    pub(crate) fn ended_before(&self, horizon_ms: u64, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (tx, [by_submitted, jobs]) = self.read_in([BY_SUBMITTED, JOBS])?;
        let end = horizon_ms.to_be_bytes();
        let mut out = Vec::new();
        for item in by_submitted.range::<&[u8]>(..end.as_slice()).map_err(|e| self.db_err(e))? {
            let (key, _) = item.map_err(|e| self.db_err(e))?;
            let id = key.value().get(8..).ok_or_else(|| corrupt("sm_jobs_by_submitted", "key shorter than 8 bytes"))?;
            let id = std::str::from_utf8(id).map_err(|e| corrupt("sm_jobs_by_submitted", e))?;
            if let Some(job) = self.job_in(&tx, &jobs, id)?
                && job.ended_ms().is_some_and(|t| t < horizon_ms)
            {
                out.push(job);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many jobs the state holds, as of the last applied batch (the table's stored
    /// length: O(1)).
    pub fn job_count(&self) -> Result<u64, StoreError> {
        let [jobs] = self.read([JOBS])?;
        jobs.len().map_err(|e| self.db_err(e))
    }

    /// Jobs committed but not yet known to exist on their cluster (and not deleted).
    pub fn pending_dispatch(&self) -> Result<Vec<Job>, StoreError> {
        let [pending, jobs] = self.read([PENDING, JOBS])?;
        let mut out = Vec::new();
        for item in pending.iter().map_err(|e| self.db_err(e))? {
            let (key, manifest) = item.map_err(|e| self.db_err(e))?;
            let id = std::str::from_utf8(key.value()).map_err(|e| corrupt("sm_pending", e))?;
            let Some(record) = jobs.get(id.as_bytes()).map_err(|e| self.db_err(e))? else { continue };
            let job = join_job(record.value(), |_| Ok(Some(manifest.value().to_vec())));
            out.push(job.map_err(|e| self.job_err(e))?);
        }
        Ok(out)
    }

    /// Clusters whose state was changed at run time.
    pub fn clusters(&self) -> Result<BTreeMap<String, ClusterState>, StoreError> {
        let [clusters] = self.read([CLUSTERS])?;
        let mut out = BTreeMap::new();
        for item in clusters.iter().map_err(|e| self.db_err(e))? {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            let id = String::from_utf8(key.value().to_vec()).map_err(|e| corrupt("sm_clusters", e))?;
            out.insert(id, decode(value.value()).map_err(|e| corrupt("sm_clusters", e))?);
        }
        Ok(out)
    }

    pub fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, StoreError> {
        let [entries] = self.read([IDEMPOTENCY])?;
        match entries.get(keys::pair_key(owner, key).as_slice()).map_err(|e| self.db_err(e))? {
            None => Ok(None),
            Some(bytes) => decode(bytes.value()).map(Some).map_err(|e| corrupt("sm_idempotency", e)),
        }
    }

    /// Idempotency entries created before `before_ms`, at most `limit` of them.
    pub fn expired_idempotency(&self, before_ms: u64, limit: usize) -> Result<Vec<IdempotencyKey>, StoreError> {
        let [entries] = self.read([IDEMPOTENCY])?;
        let mut out = Vec::new();
        for item in entries.iter().map_err(|e| self.db_err(e))? {
            let (key, value) = item.map_err(|e| self.db_err(e))?;
            let entry: IdempotencyEntry = decode(value.value()).map_err(|e| corrupt("sm_idempotency", e))?;
            if entry.at_ms < before_ms {
                let text = String::from_utf8(key.value().to_vec()).map_err(|e| corrupt("sm_idempotency", e))?;
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
