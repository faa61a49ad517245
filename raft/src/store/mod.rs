//! sled behind the crate's own storage types; the only module that names sled.
//!
//! One `sled::Db` per node holds both the Raft log ([`LogStore`]) and the state machine
//! ([`StateMachine`]); [`StateReader`] is the read-only view the API serves from. The durability
//! rules (tech-notes §1–2): every Raft write — vote, append before its callback, truncate, purge —
//! ends with `Db::flush()` run in `spawn_blocking` (never `flush_async`, which deadlocks); each
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use log_store::LogStore;
pub(crate) use pacing::SnapshotPacing;
pub use reader::StateReader;
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
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Tuning of the embedded store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled page-cache size, in bytes.
    pub cache_capacity_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_capacity_bytes: 64 * 1024 * 1024 }
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
    /// Opens (or creates) the store in `dir`: `dir/db` for sled, `dir/snapshots` for snapshot
    /// files. Finishes a snapshot install that a crash interrupted. Blocking; call at start-up.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let db_path = dir.join("db");
        let sled_err = |source| StoreError::Sled { path: db_path.clone(), source };
        let db =
            sled::Config::new().path(&db_path).cache_capacity(options.cache_capacity_bytes).open().map_err(sled_err)?;
        let open_tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let pacing = Arc::new(SnapshotPacing::default());
        let log = LogStore::new(db.clone(), open_tree(keys::LOG)?, open_tree(keys::RAFT_META)?, pacing.clone());
        let sm_trees = keys::SM_TREES.iter().map(|name| open_tree(name)).collect::<Result<Vec<_>, _>>()?;
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|source| StoreError::Io { path: snapshot_dir.clone(), source })?;
        let state_machine = StateMachine::open(db, sm_trees.clone(), snapshot_dir, pacing.clone())?;
        let reader = StateReader::new(sm_trees);
        Ok(Store { log, state_machine, reader, pacing })
    }
}

/// Makes every write so far durable. The only way this crate flushes.
async fn flush(db: &sled::Db) -> std::io::Result<()> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.flush().map(|_| ()))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)
}
