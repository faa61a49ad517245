//! Tree names and key encodings: the whole on-disk layout in one place.
//!
//! Integers in keys are big-endian so that byte order equals numeric order. Values are bincode.

/// Raft log entries, key = index (u64 BE): where versions before the segment files kept the
/// log; read once, to move it, then dropped (`store::migrate_sled_log`).
pub(crate) const LOG: &str = "raft_log";
/// Raft metadata: vote, last purged log id, committed log id.
pub(crate) const RAFT_META: &str = "raft_meta";
/// Jobs, key = submission id.
pub(crate) const JOBS: &str = "sm_jobs";
/// Index of jobs by owner, key = owner 0x00 submission id, empty value.
pub(crate) const JOBS_BY_OWNER: &str = "sm_jobs_by_owner";
/// Index of jobs whose dispatch is pending, key = submission id, empty value.
pub(crate) const PENDING: &str = "sm_pending";
/// Cluster dynamic state, key = cluster id.
pub(crate) const CLUSTERS: &str = "sm_clusters";
/// Idempotency entries, key = owner 0x00 idempotency key.
pub(crate) const IDEMPOTENCY: &str = "sm_idempotency";
/// State-machine metadata: last applied log id, membership, current snapshot.
pub(crate) const SM_META: &str = "sm_meta";

/// The state-machine trees in the order transactions, snapshots and installs use them.
pub(crate) const SM_TREES: [&str; 6] = [JOBS, JOBS_BY_OWNER, PENDING, CLUSTERS, IDEMPOTENCY, SM_META];
/// Positions in [`SM_TREES`].
pub(crate) const T_JOBS: usize = 0;
pub(crate) const T_BY_OWNER: usize = 1;
pub(crate) const T_PENDING: usize = 2;
pub(crate) const T_CLUSTERS: usize = 3;
pub(crate) const T_IDEMPOTENCY: usize = 4;
pub(crate) const T_SM_META: usize = 5;

pub(crate) const VOTE: &[u8] = b"vote";
pub(crate) const LAST_PURGED: &[u8] = b"last_purged";
pub(crate) const COMMITTED: &[u8] = b"committed";
pub(crate) const LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const MEMBERSHIP: &[u8] = b"membership";
/// Metadata of the snapshot file in the snapshot directory that is current.
pub(crate) const CURRENT_SNAPSHOT: &[u8] = b"current_snapshot";
/// How many jobs `sm_jobs` holds (u64), kept by every apply: counting the tree reads all of it,
/// which at a million jobs takes seconds. Written on open where an earlier version left none.
pub(crate) const JOB_COUNT: &[u8] = b"job_count";
/// Present while a snapshot is being installed; on open, the install is redone.
pub(crate) const INSTALLING: &[u8] = b"installing";

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

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("bincode encoding of plain data cannot fail")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}
