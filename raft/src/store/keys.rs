//! Table names and key encodings: the whole on-disk layout in one place.
//!
//! Every table maps bytes to bytes. Integers in keys are big-endian so that byte order equals
//! numeric order. Values are bincode.

use crate::model::{Dispatch, Job};

/// A table of the store's database.
pub(crate) type Table = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;

/// The database file, in the node's data directory.
pub(crate) const DB_FILE: &str = "state.redb";

/// Raft metadata: vote, last purged log id, committed log id.
pub(crate) const RAFT_META: Table = Table::new("raft_meta");
/// Jobs, key = submission id.
pub(crate) const JOBS: Table = Table::new("sm_jobs");
/// Index of jobs by owner, key = owner 0x00 submission id, empty value.
pub(crate) const JOBS_BY_OWNER: Table = Table::new("sm_jobs_by_owner");
/// Jobs whose dispatch is pending and that are not deleted, key = submission id, value = the
/// job's manifest (see [`stored_job`]; empty in databases written before that layout).
pub(crate) const PENDING: Table = Table::new("sm_pending");
/// Cluster dynamic state, key = cluster id.
pub(crate) const CLUSTERS: Table = Table::new("sm_clusters");
/// Idempotency entries, key = owner 0x00 idempotency key.
pub(crate) const IDEMPOTENCY: Table = Table::new("sm_idempotency");
/// Index of jobs observed running and not deleted, key = submission id, empty value: what the
/// max-running check reads. Derived (see [`SNAPSHOTTED`]).
pub(crate) const RUNNING: Table = Table::new("sm_running");
/// Index of jobs whose SparkApplication should exist ([`crate::model::Job::expects_object`]),
/// key = cluster 0x00 submission id, empty value: what a cluster's listing is compared with.
/// Derived.
pub(crate) const LIVE: Table = Table::new("sm_live");
/// Index of jobs by submission time, key = ms since the epoch (u64 BE) then submission id,
/// empty value: where pruning looks for old jobs. Derived.
pub(crate) const BY_SUBMITTED: Table = Table::new("sm_jobs_by_submitted");
/// State-machine metadata: last applied log id, membership, current snapshot.
pub(crate) const SM_META: Table = Table::new("sm_meta");

/// The state-machine tables in the order applies, snapshots and installs use them; a snapshot
/// record names its table by position here.
pub(crate) const SM_TABLES: [Table; 9] =
    [JOBS, JOBS_BY_OWNER, PENDING, CLUSTERS, IDEMPOTENCY, RUNNING, LIVE, BY_SUBMITTED, SM_META];
/// Positions in [`SM_TABLES`].
pub(crate) const T_JOBS: usize = 0;
pub(crate) const T_BY_OWNER: usize = 1;
pub(crate) const T_PENDING: usize = 2;
pub(crate) const T_CLUSTERS: usize = 3;
pub(crate) const T_IDEMPOTENCY: usize = 4;
pub(crate) const T_RUNNING: usize = 5;
pub(crate) const T_LIVE: usize = 6;
pub(crate) const T_BY_SUBMITTED: usize = 7;
pub(crate) const T_SM_META: usize = 8;
/// Tables before this position are written to snapshot files. The ones from it up to
/// [`T_SM_META`] are derived from the jobs alone: an install or a database of an earlier
/// version rebuilds them, so snapshot files are the same for every version that reads them.
pub(crate) const SNAPSHOTTED: usize = 5;
/// The version of the derived tables; a database whose [`DERIVED_VERSION`] differs has them
/// rebuilt when it opens. 2: a job whose object vanished is not in `sm_running`.
pub(crate) const DERIVED_TABLES_VERSION: u32 = 2;

/// The sled directory of versions before the redb file (`sled_import.rs`), and the name it
/// takes once imported, until it is deleted.
pub(crate) const SLED_DIR: &str = "db";
pub(crate) const SLED_DIR_IMPORTED: &str = "db.imported";
/// sled's tree of the Raft log, in versions before the segment files.
pub(crate) const SLED_LOG: &str = "raft_log";

pub(crate) const VOTE: &[u8] = b"vote";
pub(crate) const LAST_PURGED: &[u8] = b"last_purged";
pub(crate) const COMMITTED: &[u8] = b"committed";
pub(crate) const LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const MEMBERSHIP: &[u8] = b"membership";
/// Metadata of the snapshot file in the snapshot directory that is current.
pub(crate) const CURRENT_SNAPSHOT: &[u8] = b"current_snapshot";
/// How many jobs `sm_jobs` held, kept by versions on sled; a redb table knows its length.
pub(crate) const JOB_COUNT: &[u8] = b"job_count";
/// Present while a snapshot is being installed; on open, the install is redone.
pub(crate) const INSTALLING: &[u8] = b"installing";
/// The [`DERIVED_TABLES_VERSION`] the derived tables were built at.
pub(crate) const DERIVED_VERSION: &[u8] = b"derived_version";

/// `a 0x00 b`; user names and submission ids never contain NUL (the API refuses them).
pub(crate) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// The prefix of every [`pair_key`] whose first part is `a`.
pub(crate) fn pair_prefix(a: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k
}

/// A key of [`BY_SUBMITTED`].
pub(crate) fn submitted_key(submitted_at_ms: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&submitted_at_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// `job`'s keys in the derived tables, as (position in [`SM_TABLES`], key, whether the job
/// is in that table); the values are empty. The one definition of what they hold: applies,
/// removals, installs and rebuilds all go by it.
pub(crate) fn derived_keys(job: &crate::model::Job) -> [(usize, Vec<u8>, bool); 3] {
    [
        (T_RUNNING, job.id.as_bytes().to_vec(), job.is_running()),
        (T_LIVE, pair_key(&job.cluster, &job.id), job.expects_object()),
        (T_BY_SUBMITTED, submitted_key(job.submitted_at_ms, &job.id), true),
    ]
}

/// The entries `job` has in the derived tables, as (position in [`SM_TABLES`], key).
pub(crate) fn derived_entries(job: &crate::model::Job) -> impl Iterator<Item = (usize, Vec<u8>)> {
    derived_keys(job).into_iter().filter(|(_, _, present)| *present).map(|(table, key, _)| (table, key))
}

/// `job`'s record in [`JOBS`]. A pending job's manifest (the SparkApplication to create, a few
/// KiB: most of the record while it lasts) is stored as its [`PENDING`] value instead, and the
/// record has an empty one. Kept inline, every job was written large once and rewritten small
/// when dispatched, and since ids are time-ordered no later job ever filled the room that left
/// in its B-tree page: `sm_jobs` pages were about a fifth full (at 47,000 jobs, 101 MiB of
/// leaves for 22 MiB of records). A deleted pending job has no [`PENDING`] entry and keeps its
/// manifest inline. Snapshot files carry whole records ([`join_job`]), as before.
pub(crate) fn stored_job(job: &Job) -> Vec<u8> {
    if job.pending_manifest().is_none_or(str::is_empty) {
        return encode(job);
    }
    let mut stripped = job.clone();
    stripped.dispatch = Dispatch::Pending { manifest: String::new() };
    encode(&stripped)
}

/// Why a [`JOBS`] record could not be read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobReadError {
    #[error(transparent)]
    Db(#[from] redb::Error),
    #[error(transparent)]
    Decode(#[from] bincode::Error),
}

/// The [`PENDING`] value of job `id` in `pending`, for [`join_job`].
pub(crate) fn pending_value(
    pending: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    id: &str,
) -> Result<Option<Vec<u8>>, JobReadError> {
    Ok(pending.get(id.as_bytes()).map_err(redb::Error::from)?.map(|value| value.value().to_vec()))
}

/// Decodes a [`JOBS`] record, taking a pending job's manifest from its [`PENDING`] value,
/// which `pending_value` reads. A manifest found inline (records written before that layout,
/// deleted pending jobs) is the job's own, and no lookup is made.
pub(crate) fn join_job(
    record: &[u8],
    pending_value: impl FnOnce(&str) -> Result<Option<Vec<u8>>, JobReadError>,
) -> Result<Job, JobReadError> {
    let mut job: Job = decode(record)?;
    if let Dispatch::Pending { manifest } = &mut job.dispatch
        && manifest.is_empty()
        && let Some(value) = pending_value(&job.id)?
    {
        *manifest =
            String::from_utf8(value).map_err(|e| bincode::Error::from(bincode::ErrorKind::Custom(e.to_string())))?;
    }
    Ok(job)
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("bincode encoding of plain data cannot fail")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}
