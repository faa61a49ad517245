use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};

use super::SnapshotPacing;
use super::keys::{COMMITTED, LAST_PURGED, VOTE, decode, encode, log_key};
use crate::typ::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The Raft log and vote in sled. Cheap to clone; clones share the trees.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    pacing: Arc<SnapshotPacing>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("entries", &self.log.len()).finish()
    }
}

impl LogStore {
    pub(crate) fn new(db: sled::Db, log: sled::Tree, meta: sled::Tree, pacing: Arc<SnapshotPacing>) -> Self {
        LogStore { db, log, meta, pacing }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let read_err = |e: &dyn std::error::Error| StorageIOError::read_logs(openraft::AnyError::error(e.to_string()));
        match self.meta.get(key).map_err(|e| read_err(&e))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| read_err(&e))?)),
        }
    }

    async fn flush(&self) -> std::io::Result<()> {
        super::flush(&self.db).await
    }
}

fn write_err(e: impl std::error::Error) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into()
}

fn read_err(e: impl std::error::Error) -> StorageError {
    StorageIOError::read_logs(openraft::AnyError::error(e.to_string())).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(log_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(log_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (_, value) = item.map_err(read_err)?;
            entries.push(decode::<Entry>(&value).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?.flatten();
        let last_log_id = match self.log.last().map_err(read_err)? {
            Some((_, value)) => Some(decode::<Entry>(&value).map_err(read_err)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let werr = |e: &dyn std::error::Error| StorageIOError::write_vote(openraft::AnyError::error(e.to_string()));
        self.meta.insert(VOTE, encode(vote)).map_err(|e| werr(&e))?;
        self.flush().await.map_err(|e| werr(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // A hint for applying sooner after a restart; made durable by the next flush.
        self.meta.insert(COMMITTED, encode(&committed)).map_err(write_err)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry);
            self.pacing.appended(bytes.len() as u64);
            batch.insert(&log_key(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        // The entries are readable now; they are acknowledged only once on disk.
        let flushed = self.flush().await;
        let failed = flushed.as_ref().err().map(|e| write_err(std::io::Error::other(e.to_string())));
        callback.log_io_completed(flushed);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(log_key(log_id.index)..) {
            let (key, _) = item.map_err(read_err)?;
            batch.remove(key);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        self.flush().await.map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Persist the new lower bound first: after a crash, the log state must never report
        // entries at or below a purge that already started deleting.
        self.meta.insert(LAST_PURGED, encode(&Some(log_id))).map_err(write_err)?;
        self.flush().await.map_err(write_err)?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=log_key(log_id.index)) {
            let (key, _) = item.map_err(read_err)?;
            batch.remove(key);
        }
        self.log.apply_batch(batch).map_err(write_err)?;
        Ok(())
    }
}
