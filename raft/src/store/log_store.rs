use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};

use super::keys::{COMMITTED, LAST_PURGED, RAFT_META, VOTE, decode, encode};
use super::reclaim::{Reclaimer, delete_all_gradually};
use super::wal::{Wal, retire};
use super::{SnapshotPacing, get, put_durably};
use crate::typ::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The latest committed log id openraft reported, shared with the state machine, whose next
/// apply transaction stores it.
pub(crate) type CommittedHint = Arc<Mutex<Option<LogId>>>;

/// The Raft log in segment files ([`Wal`]); vote, committed and purge bound in the database's
/// `raft_meta` table. Cheap to clone; clones share the log.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<redb::Database>,
    wal: Arc<Mutex<Wal>>,
    pacing: Arc<SnapshotPacing>,
    committed: CommittedHint,
    /// The last purge openraft asked for; persisted in the background before its files go.
    purged: Arc<Mutex<Option<LogId>>>,
    reclaimer: Arc<Reclaimer>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("last_index", &self.wal().last_index()).finish()
    }
}

fn write_err(e: impl ToString) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into()
}

fn read_err(e: impl ToString) -> StorageError {
    StorageIOError::read_logs(openraft::AnyError::error(e.to_string())).into()
}

fn lock(wal: &Mutex<Wal>) -> MutexGuard<'_, Wal> {
    // The WAL's state is updated only after each file operation succeeded, so a panic
    // elsewhere while holding the lock leaves nothing half-done.
    wal.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs blocking file work (syncs, deletions) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(std::io::Error::other)?
}

impl LogStore {
    /// `purged` is the bound persisted last, as `wal` was opened with.
    pub(crate) fn new(
        db: Arc<redb::Database>,
        wal: Wal,
        purged: Option<LogId>,
        pacing: Arc<SnapshotPacing>,
        committed: CommittedHint,
        reclaimer: Arc<Reclaimer>,
    ) -> Self {
        let purged = Arc::new(Mutex::new(purged));
        LogStore { db, wal: Arc::new(Mutex::new(wal)), pacing, committed, purged, reclaimer }
    }

    pub(super) fn wal(&self) -> MutexGuard<'_, Wal> {
        lock(&self.wal)
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        get(&self.db, RAFT_META, key).map_err(read_err)
    }

    /// Writes one Raft metadata value and commits it durably, on a blocking thread.
    async fn write_meta(&self, key: &'static [u8], value: Vec<u8>) -> std::io::Result<()> {
        let db = self.db.clone();
        blocking(move || put_durably(&db, RAFT_META, key, &value).map_err(std::io::Error::other)).await
    }

    /// Runs `f` on the log with the lock held, on a blocking thread.
    async fn with_wal_blocking(
        &self,
        f: impl FnOnce(&mut Wal) -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<()> {
        let wal = self.wal.clone();
        blocking(move || f(&mut lock(&wal))).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        let spans = self.wal().spans(from, to);
        // Reads come from the kernel's page cache (recent entries) and are short; openraft
        // calls this from its core and replication tasks, like a database read.
        let mut entries = Vec::new();
        for span in spans {
            span.read(|_, payload| {
                entries.push(decode::<Entry>(payload).map_err(std::io::Error::other)?);
                Ok(())
            })
            .map_err(read_err)?;
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = *self.purged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let last_index = self.wal().last_index();
        let last_log_id = match last_index {
            Some(index) => self.try_get_log_entries(index..=index).await?.pop().map(|e| e.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let werr = |e: &dyn std::error::Error| StorageIOError::write_vote(openraft::AnyError::error(e.to_string()));
        self.write_meta(VOTE, encode(vote)).await.map_err(|e| werr(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // A hint for applying sooner after a restart, stored by the next apply transaction:
        // a transaction of its own here would wait for the apply's commit to end.
        *self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let latest = *self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match latest {
            Some(committed) => Ok(Some(committed)),
            None => Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten()),
        }
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let records: Vec<(u64, Vec<u8>)> = entries.into_iter().map(|e| (e.log_id.index, encode(&e))).collect();
        self.pacing.appended(records.iter().map(|(_, bytes)| bytes.len() as u64).sum());
        let written = self.wal().append(&records);
        // The entries are readable now; they are acknowledged only once on disk.
        let synced = match written {
            Ok(Some(file)) => blocking(move || super::timed_sync("log append", || file.sync_data())).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let failed = synced.as_ref().err().map(write_err);
        callback.log_io_completed(synced);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.with_wal_blocking(move |wal| wal.truncate(log_id.index)).await.map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // openraft's core awaits this, so no I/O here: the entries are hidden at once, and the
        // reclaimer persists the new lower bound and only then deletes the files (see
        // `reclaim.rs`). A crash before the bound is on disk finds the files whole, behind the
        // bound persisted before; the log state never reports entries a deletion took.
        let files = self.wal().purge(log_id.index);
        *self.purged.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(log_id);
        let db = self.db.clone();
        self.reclaimer.run(move || {
            // `put_durably` logs a slow commit itself.
            let persisted = put_durably(&db, RAFT_META, LAST_PURGED, &encode(&Some(log_id)));
            if let Err(e) = persisted {
                // The files stay; a restart reads them back behind the bound persisted before.
                tracing::error!(error = %e, purged = %log_id, "persisting the log's purge bound failed; its segments are kept");
                return;
            }
            match retire(files) {
                Ok(retired) => delete_all_gradually(retired),
                Err(e) => tracing::warn!(error = %e, "renaming purged log segments failed; they stay behind the bound"),
            }
        });
        Ok(())
    }
}
