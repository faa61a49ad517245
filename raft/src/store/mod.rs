//! The node's storage behind the crate's own types; the only module that names sled.
//!
//! The Raft log is in append-only segment files (`wal.rs`, under `dir/raft-log`); one
//! `sled::Db` per node holds the Raft metadata (vote, purge bound) and the state machine
//! ([`StateMachine`]); [`StateReader`] is the read-only view the API serves from. The durability
//! rules (tech-notes §1–2): every Raft write is durable before it returns or its callback fires —
//! an append `fdatasync`s its segment, truncate syncs file and directory, vote and purge bound
//! end with `Db::flush()` run in `spawn_blocking` (never `flush_async`, which deadlocks); each
//! apply batch is one multi-tree transaction that also writes `last_applied`, then a flush;
//! a snapshot captures the state at one apply boundary, read while applies go on
//! (`pre_images`); `last_purged` is persisted before any entry is deleted.

// openraft's storage traits fix `StorageError` (over 200 bytes) as the error type; the helpers
// feeding them return it too rather than convert at every call.
#![allow(clippy::result_large_err)]

mod keys;
mod log_store;
mod pacing;
mod pre_images;
mod reader;
mod snapshot;
mod state_machine;
mod tx_state;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use log_store::LogStore;
pub(crate) use pacing::SnapshotPacing;
pub use reader::{Scan, StateReader};
pub use snapshot::SnapshotFile;
pub(crate) use state_machine::StateMachine;

#[cfg(test)]
mod tests;

/// Errors of the storage layer itself (opening, reading, decoding).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled error in {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("corrupt record in tree {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    #[error("snapshot file {path}: {detail}")]
    Snapshot { path: PathBuf, detail: String },
    #[error("corrupt Raft log segment {path} at byte {offset}: {detail}")]
    LogSegment { path: PathBuf, offset: u64, detail: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Tuning of the embedded store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled page-cache size, in bytes.
    pub cache_capacity_bytes: u64,
    /// Size at which the Raft log starts a new segment file; purges delete whole segments.
    pub log_segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_capacity_bytes: 64 * 1024 * 1024, log_segment_bytes: 16 * 1024 * 1024 }
    }
}

/// A node's opened store, to hand to [`crate::RaftNode::start`].
#[derive(Debug)]
pub struct Store {
    pub(crate) log: LogStore,
    pub(crate) state_machine: StateMachine,
    pub(crate) reader: StateReader,
    pub(crate) pacing: Arc<SnapshotPacing>,
}

impl Store {
    /// Opens (or creates) the store in `dir`: `dir/db` for sled, `dir/raft-log` for the log's
    /// segments, `dir/snapshots` for snapshot files. Finishes a snapshot install that a crash
    /// interrupted, and moves a log kept in sled by earlier versions into segments. Blocking;
    /// call at start-up.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let db_path = dir.join("db");
        let sled_err = |source| StoreError::Sled { path: db_path.clone(), source };
        let db =
            sled::Config::new().path(&db_path).cache_capacity(options.cache_capacity_bytes).open().map_err(sled_err)?;
        let open_tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let pacing = Arc::new(SnapshotPacing::default());
        let meta = open_tree(keys::RAFT_META)?;
        let purged = match meta.get(keys::LAST_PURGED).map_err(sled_err)? {
            None => None,
            Some(bytes) => keys::decode::<Option<crate::typ::LogId>>(&bytes)
                .map_err(|e| StoreError::Corrupt { tree: keys::RAFT_META, detail: format!("last_purged: {e}") })?,
        };
        let log_dir = dir.join("raft-log");
        let mut wal = wal::Wal::open(&log_dir, options.log_segment_bytes, purged.map(|l| l.index))?;
        migrate_sled_log(&db, &db_path, &mut wal, &log_dir)?;
        let log = LogStore::new(db.clone(), meta, wal, pacing.clone());
        let sm_trees = keys::SM_TREES.iter().map(|name| open_tree(name)).collect::<Result<Vec<_>, _>>()?;
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|source| StoreError::Io { path: snapshot_dir.clone(), source })?;
        let state_machine = StateMachine::open(db, sm_trees.clone(), snapshot_dir, pacing.clone())?;
        let reader = StateReader::new(sm_trees);
        Ok(Store { log, state_machine, reader, pacing })
    }
}

/// Moves the Raft log out of the sled tree where earlier versions kept it. The tree is
/// authoritative while it has entries (the node has not run on segments since), so segments
/// left by an interrupted migration are discarded and the copy redone; the tree is dropped only
/// once the copy is synced.
fn migrate_sled_log(db: &sled::Db, db_path: &Path, wal: &mut wal::Wal, log_dir: &Path) -> Result<(), StoreError> {
    let sled_err = |source| StoreError::Sled { path: db_path.to_path_buf(), source };
    let wal_err = |source| StoreError::Io { path: log_dir.to_path_buf(), source };
    if !db.tree_names().iter().any(|name| name == keys::LOG.as_bytes()) {
        return Ok(());
    }
    let old = db.open_tree(keys::LOG).map_err(sled_err)?;
    if !old.is_empty() {
        wal.clear().map_err(wal_err)?;
        let mut chunk = Vec::new();
        let mut copied = 0usize;
        for item in old.iter() {
            let (key, value) = item.map_err(sled_err)?;
            let index =
                u64::from_be_bytes(key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: keys::LOG,
                    detail: format!("key of {} bytes", key.len()),
                })?);
            if chunk.last().is_some_and(|(last, _): &(u64, Vec<u8>)| *last + 1 != index) {
                copied += append_synced(wal, &std::mem::take(&mut chunk)).map_err(wal_err)?;
            }
            chunk.push((index, value.to_vec()));
            if chunk.len() == 4096 {
                copied += append_synced(wal, &std::mem::take(&mut chunk)).map_err(wal_err)?;
            }
        }
        copied += append_synced(wal, &chunk).map_err(wal_err)?;
        tracing::info!(entries = copied, "moved the Raft log from sled into segment files");
    }
    db.drop_tree(keys::LOG).map_err(sled_err)?;
    db.flush().map_err(sled_err)?;
    Ok(())
}

fn append_synced(wal: &mut wal::Wal, records: &[(u64, Vec<u8>)]) -> std::io::Result<usize> {
    if let Some(file) = wal.append(records)? {
        file.sync_data()?;
    }
    Ok(records.len())
}

/// Makes every write so far durable. The only way this crate flushes.
async fn flush(db: &sled::Db) -> std::io::Result<()> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        timed_sync("sled flush", || db.flush().map(|_| ()).map_err(std::io::Error::other))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A disk sync taking longer is logged: Raft on this node waits for it (etcd warns likewise).
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs a blocking sync and logs it when slower than [`SLOW_SYNC`].
fn timed_sync<T>(what: &'static str, sync: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let started = std::time::Instant::now();
    let result = sync();
    let took = started.elapsed();
    if took >= SLOW_SYNC {
        tracing::warn!(sync = what, ms = took.as_millis() as u64, "slow disk sync");
    }
    result
}
