//! The node's storage behind the crate's own types; the only module that names redb or sled.
//!
//! The Raft log is in append-only segment files (`wal.rs`, under `dir/raft-log`); one redb
//! database per node (`dir/state.redb`) holds the Raft metadata (vote, purge bound) and the state
//! machine ([`StateMachine`]); [`StateReader`] is the read-only view the API serves from. The
//! durability rules (tech-notes §1–2): every Raft write is durable before it returns or its
//! callback fires — an append `fdatasync`s its segment, truncate syncs file and directory, vote
//! and purge bound are committed with redb's default immediate durability (synced on return);
//! each apply batch is one write transaction that also writes `last_applied`, committed
//! without a sync but for one a second (the log is the durable record; see
//! [`StateMachine`]); a snapshot reads
//! one read transaction, the state at one apply boundary, while applies go on; `last_purged` is
//! persisted before any entry is deleted, and files are deleted in the background, a few MiB at
//! a time (`reclaim.rs`). A directory that versions before redb kept in sled
//! is imported on open (`sled_import.rs`).

// openraft's storage traits fix `StorageError` (over 200 bytes) as the error type; the helpers
// feeding them return it too rather than convert at every call.
#![allow(clippy::result_large_err)]

mod cpu_share;
mod keys;
mod log_store;
mod pacing;
mod reader;
mod reclaim;
mod sled_import;
mod snapshot;
mod state_machine;
mod tx_state;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::ReadableDatabase;

pub(crate) use log_store::LogStore;
pub(crate) use pacing::SnapshotPacing;
pub use reader::{Scan, StateReader};
pub use snapshot::SnapshotFile;
pub(crate) use state_machine::{SYNC_EVERY, StateMachine};

#[cfg(test)]
mod tests;

/// Errors of the storage layer itself (opening, reading, decoding).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error in {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("sled error in {path} (importing a directory of an earlier version): {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("corrupt record in table {tree}: {detail}")]
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
    /// The database's page cache, in bytes. Misses are `pread`s that the kernel's page cache
    /// serves, so a small cache costs little CPU; each cached 4 KiB page costs about 5 KiB of
    /// heap (a 4 KiB page and its header fall in the allocator's next size class).
    pub cache_capacity_bytes: u64,
    /// Size at which the Raft log starts a new segment file; purges delete whole segments.
    pub log_segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_capacity_bytes: 8 * 1024 * 1024, log_segment_bytes: 16 * 1024 * 1024 }
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
    /// Opens (or creates) the store in `dir`: `dir/state.redb` for the database, `dir/raft-log`
    /// for the log's segments, `dir/snapshots` for snapshot files. Finishes a snapshot install
    /// that a crash interrupted, and imports a directory an earlier version kept in sled.
    /// Blocking; call at start-up.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        let db_path = dir.join(keys::DB_FILE);
        let db = Arc::new(open_db(&db_path, options)?.0);
        let log_dir = dir.join("raft-log");
        sled_import::import(dir, &db, &log_dir, options.log_segment_bytes)?;
        let purged = get::<Option<crate::typ::LogId>>(&db, keys::RAFT_META, keys::LAST_PURGED)
            .map_err(|e| StoreError::Corrupt { tree: "raft_meta", detail: format!("last_purged: {e}") })?
            .flatten();
        let wal = wal::Wal::open(&log_dir, options.log_segment_bytes, purged.map(|l| l.index))?;
        let pacing = Arc::new(SnapshotPacing::default());
        let committed = Arc::new(Mutex::new(None));
        let reclaimer = Arc::new(reclaim::Reclaimer::start());
        let log = LogStore::new(db.clone(), wal, purged, pacing.clone(), committed.clone(), reclaimer.clone());
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|source| StoreError::Io { path: snapshot_dir.clone(), source })?;
        let reader = StateReader::new(db.clone(), &db_path);
        let state_machine = StateMachine::open(db, db_path, snapshot_dir, pacing.clone(), committed, reclaimer)?;
        Ok(Store { log, state_machine, reader, pacing })
    }
}

/// Opens (or creates) the database and makes sure every table exists, so that read
/// transactions can open them. Also says whether redb had to repair the file: walk every page
/// of it to rebuild its allocator state, which it does after a crash unless the last durable
/// commit recorded that state (see [`begin_write`]).
fn open_db(path: &Path, options: &StoreOptions) -> Result<(redb::Database, bool), StoreError> {
    let db_err = |e: redb::Error| StoreError::Db { path: path.to_path_buf(), source: e };
    let started = std::time::Instant::now();
    let cache = usize::try_from(options.cache_capacity_bytes).unwrap_or(usize::MAX);
    let repaired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, shown) = (repaired.clone(), path.display().to_string());
    let db = redb::Builder::new()
        .set_cache_size(cache)
        .set_repair_callback(move |_| {
            if !seen.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(path = %shown, "the database holds no allocator state of its last commit: repairing the whole file");
            }
        })
        .create(path)
        .map_err(|e| db_err(e.into()))?;
    let tx = begin_write(&db).map_err(|e| db_err(e.into()))?;
    for table in std::iter::once(keys::RAFT_META).chain(keys::SM_TABLES) {
        tx.open_table(table).map_err(|e| db_err(e.into()))?;
    }
    commit(tx, "open").map_err(|e| db_err(e.into()))?;
    let took = started.elapsed();
    let repaired = repaired.load(std::sync::atomic::Ordering::Relaxed);
    if took >= SLOW_SYNC || repaired {
        tracing::info!(ms = took.as_millis() as u64, repaired, path = %path.display(), "opened the database");
    }
    Ok((db, repaired))
}

/// Begins a write transaction with redb's quick repair: a durable commit also records the
/// allocator state (and commits in two phases), so that opening the file after a crash loads
/// that state instead of walking every page to rebuild it. Such a walk took over 30 s on a
/// follower killed at a million jobs; recording the state costs a few KiB and one more
/// `fdatasync` per durable commit, of which there is about one a second. Every write
/// transaction starts here: one durable commit without the state deletes the last one's.
/// An unsynced commit (`Durability::None`) records nothing either way.
fn begin_write(db: &redb::Database) -> Result<redb::WriteTransaction, redb::TransactionError> {
    let mut tx = db.begin_write()?;
    tx.set_quick_repair(true);
    Ok(tx)
}

/// Reads and decodes one value, in a read transaction of its own.
fn get<T: serde::de::DeserializeOwned>(
    db: &redb::Database,
    table: keys::Table,
    key: &[u8],
) -> Result<Option<T>, String> {
    let read = db.begin_read().map_err(|e| e.to_string())?;
    let table = read.open_table(table).map_err(|e| e.to_string())?;
    match redb::ReadableTable::get(&table, key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(bytes) => keys::decode(bytes.value()).map(Some).map_err(|e| e.to_string()),
    }
}

/// Writes one value and commits durably. Blocking.
fn put_durably(db: &redb::Database, table: keys::Table, key: &[u8], value: &[u8]) -> Result<(), redb::Error> {
    let tx = begin_write(db)?;
    tx.open_table(table)?.insert(key, value)?;
    commit(tx, "raft metadata")?;
    Ok(())
}

/// Commits `tx` (durably, unless it was set otherwise); a slow commit is logged.
fn commit(tx: redb::WriteTransaction, what: &'static str) -> Result<(), redb::CommitError> {
    timed_sync(what, || tx.commit())
}

/// A disk sync taking longer is logged: Raft on this node waits for it (etcd warns likewise).
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs a blocking sync and logs it when slower than [`SLOW_SYNC`].
fn timed_sync<T, E>(what: &'static str, sync: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = sync();
    let took = started.elapsed();
    if took >= SLOW_SYNC {
        tracing::warn!(sync = what, ms = took.as_millis() as u64, "slow disk sync");
    }
    result
}

/// Fsyncs a directory, making the renames and deletions in it durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Fills tables with many records (a snapshot install, an import) in write transactions of
/// [`BulkLoad::CHUNK`] records, so that no transaction holds the whole state in memory. Only
/// the last commit is synced: a crash before it must redo the load, and both callers arrange
/// for that (a flag, or the source still in place).
struct BulkLoad<'a> {
    db: &'a redb::Database,
    tables: &'a [keys::Table],
    chunk: Vec<(usize, Vec<u8>, Vec<u8>)>,
    records: u64,
}

impl<'a> BulkLoad<'a> {
    const CHUNK: usize = 10_000;

    /// Empties `tables` (unsynced, like the chunks) and starts loading into them; records
    /// name their table by its position in `tables`.
    fn replacing(db: &'a redb::Database, tables: &'a [keys::Table]) -> Result<Self, redb::Error> {
        let mut tx = begin_write(db)?;
        tx.set_durability(redb::Durability::None)?;
        for table in tables {
            tx.delete_table(*table)?;
            tx.open_table(*table)?;
        }
        tx.commit()?;
        Ok(BulkLoad { db, tables, chunk: Vec::with_capacity(Self::CHUNK), records: 0 })
    }

    fn insert(&mut self, table: usize, key: Vec<u8>, value: Vec<u8>) -> Result<(), redb::Error> {
        self.chunk.push((table, key, value));
        self.records += 1;
        if self.chunk.len() == Self::CHUNK {
            let mut tx = begin_write(self.db)?;
            tx.set_durability(redb::Durability::None)?;
            self.write_chunk(&tx)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn write_chunk(&mut self, tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
        let mut open: Vec<Option<redb::Table<'_, &[u8], &[u8]>>> = self.tables.iter().map(|_| None).collect();
        for (table, key, value) in self.chunk.drain(..) {
            let opened = match &mut open[table] {
                Some(opened) => opened,
                slot => slot.insert(tx.open_table(self.tables[table])?),
            };
            opened.insert(key.as_slice(), value.as_slice())?;
        }
        Ok(())
    }

    /// Writes the rest, lets `last` add its writes to the same transaction, and commits it
    /// durably, which also makes every chunk before it durable. Returns the records loaded.
    fn finish(
        mut self,
        last: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<u64, redb::Error> {
        let tx = begin_write(self.db)?;
        self.write_chunk(&tx)?;
        last(&tx)?;
        commit(tx, "bulk load")?;
        Ok(self.records)
    }
}
