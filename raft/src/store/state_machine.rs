use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::SnapshotPacing;
use super::keys::{
    CURRENT_SNAPSHOT, INSTALLING, JOB_COUNT, LAST_APPLIED, MEMBERSHIP, T_JOBS, T_SM_META, decode, encode,
};
use super::pre_images::PreImages;
use super::snapshot::{self, SnapshotFile, SnapshotWriter};
use super::tx_state::TxState;
use super::{StoreError, flush, timed_sync};
use crate::model::{self, Response};
use crate::typ::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// The state machine in sled: every apply batch is one transaction with `last_applied`.
///
/// Cheap to clone; the clone openraft uses as snapshot builder shares the locks and the
/// [`PreImages`] through which a build reads the state as of one apply boundary while applies
/// go on (sled iteration is not snapshot-isolated).
#[derive(Clone)]
pub(crate) struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// In `keys::SM_TREES` order.
    trees: Vec<sled::Tree>,
    snapshot_dir: PathBuf,
    /// Held by apply, snapshot install, and a snapshot build while it freezes.
    lock: tokio::sync::Mutex<()>,
    /// Held by a snapshot build and a snapshot install: one at a time.
    snapshot_lock: tokio::sync::Mutex<()>,
    /// The values a running build needs that applies have since overwritten.
    pre_images: PreImages,
    pacing: Arc<SnapshotPacing>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine").field("snapshot_dir", &self.inner.snapshot_dir).finish()
    }
}

/// What `CURRENT_SNAPSHOT` records: the snapshot's metadata; the file is `<snapshot_id>.snap`.
#[derive(Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
}

fn sm_write_err(e: impl ToString) -> StorageError {
    StorageIOError::write_state_machine(openraft::AnyError::error(e.to_string())).into()
}

fn sm_read_err(e: impl ToString) -> StorageError {
    StorageIOError::read_state_machine(openraft::AnyError::error(e.to_string())).into()
}

fn snapshot_err(e: impl ToString) -> StorageError {
    StorageIOError::write_snapshot(None, openraft::AnyError::error(e.to_string())).into()
}

fn snapshot_path(dir: &Path, snapshot_id: &str) -> PathBuf {
    dir.join(format!("{snapshot_id}.snap"))
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{nanos:x}")
}

impl StateMachine {
    pub(crate) fn open(
        db: sled::Db,
        trees: Vec<sled::Tree>,
        snapshot_dir: PathBuf,
        pacing: Arc<SnapshotPacing>,
    ) -> Result<Self, StoreError> {
        let sm = StateMachine {
            inner: Arc::new(Inner {
                db,
                trees,
                snapshot_dir,
                lock: tokio::sync::Mutex::new(()),
                snapshot_lock: tokio::sync::Mutex::new(()),
                pre_images: PreImages::default(),
                pacing,
            }),
        };
        let meta_tree = &sm.inner.trees[T_SM_META];
        let sled_err = |source| StoreError::Sled { path: sm.inner.snapshot_dir.clone(), source };
        if meta_tree.contains_key(INSTALLING).map_err(sled_err)? {
            let current = sm
                .current_snapshot_meta()
                .map_err(|e| StoreError::Corrupt { tree: "sm_meta", detail: e.to_string() })?;
            let Some(meta) = current else {
                return Err(StoreError::Corrupt { tree: "sm_meta", detail: "install flag without a snapshot".into() });
            };
            tracing::warn!(snapshot = %meta.snapshot_id, "finishing a snapshot install interrupted by a crash");
            let path = snapshot_path(&sm.inner.snapshot_dir, &meta.snapshot_id);
            sm.load_snapshot_blocking(&meta, &path)?;
        }
        if !meta_tree.contains_key(JOB_COUNT).map_err(sled_err)? {
            // Written by versions before the stored count: count once.
            let count = sm.inner.trees[T_JOBS].len() as u64;
            meta_tree.insert(JOB_COUNT, encode(&count)).map_err(sled_err)?;
            sm.inner.db.flush().map_err(sled_err)?;
        }
        sm.remove_stale_files(None);
        if let Ok(Some(meta)) = sm.current_snapshot_meta() {
            let path = snapshot_path(&sm.inner.snapshot_dir, &meta.snapshot_id);
            sm.inner.pacing.snapshot_is(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
        }
        Ok(sm)
    }

    fn current_snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        match self.inner.trees[T_SM_META].get(CURRENT_SNAPSHOT).map_err(sm_read_err)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode::<CurrentSnapshot>(&bytes).map_err(sm_read_err)?.meta)),
        }
    }

    /// Deletes snapshot files other than `keep` (and any partial file).
    fn remove_stale_files(&self, keep: Option<&Path>) {
        let keep = keep.map(Path::to_path_buf).or_else(|| {
            self.current_snapshot_meta().ok().flatten().map(|m| snapshot_path(&self.inner.snapshot_dir, &m.snapshot_id))
        });
        let Ok(dir) = std::fs::read_dir(&self.inner.snapshot_dir) else { return };
        for entry in dir.flatten() {
            let path = entry.path();
            if Some(&path) != keep.as_ref() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn apply_blocking(&self, entries: Vec<Entry>) -> Result<Vec<Response>, StorageError> {
        let inner = &self.inner;
        let responses = inner.trees[..]
            .transaction(|tx| {
                let mut state = TxState::new(tx, &inner.pre_images);
                let mut out = Vec::with_capacity(entries.len());
                for entry in &entries {
                    match &entry.payload {
                        EntryPayload::Blank => out.push(Response::Done),
                        EntryPayload::Normal(cmd) => out.push(model::apply(&mut state, cmd.clone())?),
                        EntryPayload::Membership(m) => {
                            let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                            tx[T_SM_META].insert(MEMBERSHIP, encode(&stored))?;
                            out.push(Response::Done);
                        }
                    }
                }
                if state.jobs_added != 0 {
                    let stored = tx[T_SM_META].get(JOB_COUNT)?.map(|b| decode::<u64>(&b));
                    let before = stored.transpose().map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                    let after = before.unwrap_or(0).saturating_add_signed(state.jobs_added);
                    tx[T_SM_META].insert(JOB_COUNT, encode(&after))?;
                }
                let last: Option<LogId> = entries.last().map(|e| e.log_id);
                tx[T_SM_META].insert(LAST_APPLIED, encode(&last))?;
                Ok(out)
            })
            .map_err(|e| sm_write_err(format!("{e:?}")))?;
        timed_sync("apply flush", || inner.db.flush().map_err(std::io::Error::other)).map_err(sm_write_err)?;
        Ok(responses)
    }

    /// Marks the apply boundary a snapshot will capture: applies are held off only for this.
    /// Returns the applied state there; after `Ok`, the build must call
    /// [`StateMachine::write_snapshot_blocking`], which ends the freeze.
    pub(super) async fn freeze_for_snapshot(&self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let _applies_held_off = self.inner.lock.lock().await;
        let applied = self.applied_state_blocking()?;
        self.inner.pre_images.freeze();
        self.inner.pacing.snapshot_started();
        Ok(applied)
    }

    /// Writes the state as of the freeze to a snapshot file and makes it the current snapshot.
    pub(super) fn write_snapshot_blocking(
        &self,
        (last_log_id, last_membership): (Option<LogId>, StoredMembership),
    ) -> Result<(SnapshotMeta, PathBuf, u64), StorageError> {
        // Recording stops whether or not the iteration succeeded.
        let iterated = self.write_live_state(last_log_id);
        let images = self.inner.pre_images.thaw();
        let (mut writer, snapshot_id) = iterated?;
        for ((tree, key), image) in images {
            if let Some(value) = image
                && usize::from(tree) != T_SM_META
            {
                writer.record(tree, &key, &value).map_err(snapshot_err)?;
            }
        }
        let partial_path = writer.path().to_path_buf();
        let records = writer.finish().map_err(snapshot_err)?;
        let inner = &self.inner;
        let path = snapshot_path(&inner.snapshot_dir, &snapshot_id);
        std::fs::rename(&partial_path, &path).map_err(snapshot_err)?;
        sync_dir(&inner.snapshot_dir).map_err(snapshot_err)?;
        inner.pacing.snapshot_is(std::fs::metadata(&path).map_err(snapshot_err)?.len());
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        inner.trees[T_SM_META]
            .insert(CURRENT_SNAPSHOT, encode(&CurrentSnapshot { meta: meta.clone() }))
            .map_err(snapshot_err)?;
        inner.db.flush().map_err(snapshot_err)?;
        self.remove_stale_files(Some(&path));
        Ok((meta, path, records))
    }

    /// Iterates the live trees, writing every key not written since the freeze (its live value
    /// is its freeze-time one). Returns the open writer and the snapshot id.
    fn write_live_state(&self, last_log_id: Option<LogId>) -> Result<(SnapshotWriter, String), StorageError> {
        let inner = &self.inner;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, unique_suffix()),
            None => format!("empty-{}", unique_suffix()),
        };
        let partial = inner.snapshot_dir.join(format!("building-{snapshot_id}.part"));
        let mut writer = SnapshotWriter::create(&partial).map_err(snapshot_err)?;
        for (i, tree) in inner.trees.iter().enumerate().filter(|(i, _)| *i != T_SM_META) {
            for item in tree.iter() {
                let (k, v) = item.map_err(snapshot_err)?;
                if !inner.pre_images.written_since_freeze(i, &k) {
                    writer.record(i as u8, &k, &v).map_err(snapshot_err)?;
                }
            }
        }
        Ok((writer, snapshot_id))
    }

    fn applied_state_blocking(&self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let meta = &self.inner.trees[T_SM_META];
        let last_applied = match meta.get(LAST_APPLIED).map_err(sm_read_err)? {
            Some(bytes) => decode::<Option<LogId>>(&bytes).map_err(sm_read_err)?,
            None => None,
        };
        let membership = match meta.get(MEMBERSHIP).map_err(sm_read_err)? {
            Some(bytes) => decode::<StoredMembership>(&bytes).map_err(sm_read_err)?,
            None => StoredMembership::default(),
        };
        Ok((last_applied, membership))
    }

    /// Replaces the state with the snapshot at `path`. Marks the install in progress first, so
    /// a crash in the middle is finished on the next open rather than leaving a mixed state.
    fn load_snapshot_blocking(&self, meta: &SnapshotMeta, path: &Path) -> Result<(), StoreError> {
        let inner = &self.inner;
        let snap_err = |detail: String| StoreError::Snapshot { path: path.to_path_buf(), detail };
        let sled_err = |source| StoreError::Sled { path: inner.snapshot_dir.clone(), source };
        // Check the whole file before touching the state.
        snapshot::read_records(path, |r| {
            if r.tree as usize >= T_SM_META {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown tree {}", r.tree)));
            }
            Ok(())
        })
        .map_err(|e| snap_err(e.to_string()))?;

        let meta_tree = &inner.trees[T_SM_META];
        meta_tree.insert(CURRENT_SNAPSHOT, encode(&CurrentSnapshot { meta: meta.clone() })).map_err(sled_err)?;
        meta_tree.insert(INSTALLING, &[]).map_err(sled_err)?;
        inner.db.flush().map_err(sled_err)?;

        for tree in inner.trees.iter().take(T_SM_META) {
            tree.clear().map_err(sled_err)?;
        }
        let mut batches: Vec<sled::Batch> = (0..T_SM_META).map(|_| sled::Batch::default()).collect();
        let mut pending = 0usize;
        let mut jobs = 0u64;
        let mut sled_failure = None;
        snapshot::read_records(path, |r| {
            jobs += u64::from(usize::from(r.tree) == T_JOBS);
            batches[r.tree as usize].insert(r.key, r.value);
            pending += 1;
            if pending == 10_000 {
                pending = 0;
                for (i, batch) in batches.iter_mut().enumerate() {
                    if let Err(e) = inner.trees[i].apply_batch(std::mem::take(batch)) {
                        sled_failure = Some(e);
                        return Err(std::io::Error::other("sled write failed"));
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| match sled_failure.take() {
            Some(source) => sled_err(source),
            None => snap_err(e.to_string()),
        })?;
        for (i, batch) in batches.into_iter().enumerate() {
            inner.trees[i].apply_batch(batch).map_err(sled_err)?;
        }
        let membership = meta.last_membership.clone();
        meta_tree.insert(LAST_APPLIED, encode(&meta.last_log_id)).map_err(sled_err)?;
        meta_tree.insert(MEMBERSHIP, encode(&membership)).map_err(sled_err)?;
        meta_tree.insert(JOB_COUNT, encode(&jobs)).map_err(sled_err)?;
        meta_tree.remove(INSTALLING).map_err(sled_err)?;
        inner.db.flush().map_err(sled_err)?;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(sm_write_err)?
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let _one_at_a_time = self.inner.snapshot_lock.lock().await;
        let started = std::time::Instant::now();
        let applied = self.freeze_for_snapshot().await?;
        // An upper bound: it includes waiting for the apply in progress to end.
        let applies_held = started.elapsed();
        let sm = self.clone();
        let (meta, path, records) = blocking(move || sm.write_snapshot_blocking(applied)).await?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            records,
            build_ms = started.elapsed().as_millis() as u64,
            applies_held_us = applies_held.as_micros() as u64,
            "built snapshot"
        );
        let file = SnapshotFile::open(path).await.map_err(snapshot_err)?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.applied_state_blocking()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = self.inner.lock.lock().await;
        let sm = self.clone();
        blocking(move || sm.apply_blocking(entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let path = self.inner.snapshot_dir.join(format!("incoming-{}.part", unique_suffix()));
        Ok(Box::new(SnapshotFile::create(path).await.map_err(snapshot_err)?))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<SnapshotFile>) -> Result<(), StorageError> {
        let _no_build = self.inner.snapshot_lock.lock().await;
        let _guard = self.inner.lock.lock().await;
        let received = snapshot.finish().await.map_err(snapshot_err)?;
        let sm = self.clone();
        let meta = meta.clone();
        blocking(move || {
            let path = snapshot_path(&sm.inner.snapshot_dir, &meta.snapshot_id);
            if received != path {
                std::fs::rename(&received, &path).map_err(snapshot_err)?;
                sync_dir(&sm.inner.snapshot_dir).map_err(snapshot_err)?;
            }
            sm.load_snapshot_blocking(&meta, &path).map_err(snapshot_err)?;
            sm.inner.pacing.snapshot_started();
            sm.inner.pacing.snapshot_is(std::fs::metadata(&path).map_err(snapshot_err)?.len());
            sm.remove_stale_files(Some(&path));
            tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self.current_snapshot_meta()? else { return Ok(None) };
        let path = snapshot_path(&self.inner.snapshot_dir, &meta.snapshot_id);
        let file = SnapshotFile::open(path).await.map_err(snapshot_err)?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}

// The database handle also serves async callers that only need durability.
impl StateMachine {
    /// Makes every applied write durable (used at shutdown).
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        flush(&self.inner.db).await
    }
}
