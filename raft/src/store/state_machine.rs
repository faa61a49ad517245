use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use redb::{ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _};
use serde::{Deserialize, Serialize};

use super::cpu_share::{CpuShare, SNAPSHOT_BUILD_SHARE, Spread};
use super::keys::{
    self, CURRENT_SNAPSHOT, DERIVED_TABLES_VERSION, DERIVED_VERSION, INSTALLING, JOBS, LAST_APPLIED, MEMBERSHIP,
    SM_META, SM_TABLES, SNAPSHOTTED, T_JOBS, T_PENDING, T_SM_META, decode, derived_entries, encode,
};
use super::log_store::CommittedHint;
use super::reclaim::Reclaimer;
use super::snapshot::{self, SnapshotFile, SnapshotReaders, SnapshotWriter};
use super::tx_state::{TxState, open_tables};
use super::{BulkLoad, SnapshotPacing, StoreError, commit, sync_dir};
use crate::model::{self, Response};
use crate::typ::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// The state machine in the database: every apply batch is one write transaction with
/// `last_applied`. A snapshot build reads one read transaction, the state after one apply
/// batch, while applies go on.
///
/// Apply batches are committed without a sync, except one at least every [`SYNC_EVERY`]
/// (and [`StateMachine::sync_if_due`] syncs when applies stop): the Raft log, synced before
/// anything is acknowledged, is the durable record, and a crash rolls the state machine back
/// to its last synced commit, from which openraft applies the log again on start. Nothing
/// that lets the log go is unsynced: a snapshot's record commits durably (and with it every
/// apply before it) before openraft may purge the entries it covers.
///
/// Cheap to clone; the clone openraft uses as snapshot builder shares the locks.
#[derive(Clone)]
pub(crate) struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<redb::Database>,
    db_path: PathBuf,
    snapshot_dir: PathBuf,
    /// Held by apply and snapshot install.
    lock: tokio::sync::Mutex<()>,
    /// Held by a snapshot build and a snapshot install: one at a time.
    snapshot_lock: tokio::sync::Mutex<()>,
    /// When the last snapshot build started, or the state machine opened if none has since:
    /// the next build's [`build_spread`] is taken from it.
    last_build_started: Mutex<Instant>,
    pacing: Arc<SnapshotPacing>,
    committed: CommittedHint,
    /// When the oldest apply not yet synced was committed; `None` when all are synced.
    unsynced_since: Mutex<Option<Instant>>,
    /// Deletes stale snapshot files (hundreds of MB at a million jobs) off the build's path.
    reclaimer: Arc<Reclaimer>,
    /// The snapshot files open for reading, which a deletion must not cut.
    readers: Arc<SnapshotReaders>,
}

/// The longest an applied batch stays unsynced while applies go on: what a crash can roll the
/// state machine back by, and so what a restart applies again from the log.
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Apply batches of at most this many entries that need no sync run on the task that asks for
/// them rather than on a blocking thread.
const INLINE_APPLY_ENTRIES: usize = 8;

/// A snapshot build spreads its work over this share of the time since the previous build
/// started ([`build_spread`]).
pub(crate) const BUILD_SPREAD: f64 = 0.25;
/// The longest a build is spread over: its read transaction keeps the database from reusing
/// the pages that applies free meanwhile, so the file grows with the spread.
pub(crate) const MAX_BUILD_SPREAD: Duration = Duration::from_secs(5);

/// How long a build started `since_last` after the previous one (or after the state machine
/// opened, for the first) is spread over.
///
/// Every node builds at about the same moment, because they append the same log. At the
/// 0.25-core ceiling alone, three builds at 150,000-250,000 jobs took three quarters of a core
/// for 0.4-0.9 s, writing tens of MB each, on a 2-core machine 85 % busy at half its
/// saturation rate: every such build left a quarter-second window of requests with a p99 of
/// 100-180 ms. Spread over a quarter of the time between builds (5 s at most), the same work
/// is a few per cent of a core; at a million jobs, where a build's CPU alone takes longer than
/// that at the ceiling, the spread changes nothing.
///
/// The first build after a start is spread over a quarter of the time since the open. On a
/// cluster started together that is the time the log took to grow to a build, as it is
/// between builds. Unspread, the first builds of three nodes (160,000 records, 0.45-0.6 s
/// each, writing their files at full speed) slowed each node's log syncs five- to eightfold,
/// and at half the saturation rate left two or three quarter-second windows with a p50 of
/// 59-150 ms (two runs; spread, 35-59 ms at worst). On a node restarted with part of that log
/// already written, the time since the open is shorter than the time between builds, and the
/// build is spread less, not more.
pub(crate) fn build_spread(since_last: Duration) -> Duration {
    since_last.mul_f64(BUILD_SPREAD).min(MAX_BUILD_SPREAD)
}

/// What a build's spread counts: the straight line to its budget is drawn through these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpreadBy {
    Records,
    Bytes,
}

/// The unit a build is spread in, and how many of them it will write, given the size of the
/// last snapshot file (0 if there is none), the records it held (0 if not known) and the
/// records the build will write.
///
/// Bytes when a snapshot before it says how many: the jobs table, read first, is a third of
/// the records (each job has two `sm_by_owner` entries) and about four fifths of the bytes,
/// so a line drawn through records wrote and synced most of the file, and read most of the
/// pages through the applies' cache, in the first third of the budget. The bytes expected are
/// the last file's, scaled by the records now against the records then: the state can grow
/// several times over between two builds (50,763 records to 189,536 in the bench's closed-loop
/// steps), and a line drawn to the last size left most of the build unpaced at its end, where
/// it ran on all nodes at once and stalled the 50 % step for most of a second. Unscaled when
/// the last file's records are not known (a file found at start-up). Records when there is no
/// snapshot yet.
pub(crate) fn spread_units(last_snapshot_bytes: u64, last_snapshot_records: u64, records: u64) -> (SpreadBy, u64) {
    if last_snapshot_bytes == 0 {
        return (SpreadBy::Records, records);
    }
    if last_snapshot_records == 0 {
        return (SpreadBy::Bytes, last_snapshot_bytes);
    }
    let scaled = u128::from(last_snapshot_bytes) * u128::from(records) / u128::from(last_snapshot_records);
    (SpreadBy::Bytes, u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// Records a snapshot build writes between looks at its CPU clock (a system call, under a
/// microsecond): a record takes one to two microseconds, so a look every ~100 µs.
const PACE_EVERY_RECORDS: u64 = 64;

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

/// How the name of a snapshot being received starts.
const INCOMING: &str = "incoming-";

/// Whether a cleanup of the snapshot directory deletes snapshots being received.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receiving {
    Keep,
    Delete,
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
        db: Arc<redb::Database>,
        db_path: PathBuf,
        snapshot_dir: PathBuf,
        pacing: Arc<SnapshotPacing>,
        committed: CommittedHint,
        reclaimer: Arc<Reclaimer>,
    ) -> Result<Self, StoreError> {
        let sm = StateMachine {
            inner: Arc::new(Inner {
                db,
                db_path,
                snapshot_dir,
                lock: tokio::sync::Mutex::new(()),
                snapshot_lock: tokio::sync::Mutex::new(()),
                last_build_started: Mutex::new(Instant::now()),
                pacing,
                committed,
                unsynced_since: Mutex::new(None),
                reclaimer,
                readers: Arc::default(),
            }),
        };
        let installing = super::get::<()>(&sm.inner.db, SM_META, INSTALLING)
            .map_err(|detail| StoreError::Corrupt { tree: "sm_meta", detail })?
            .is_some();
        if installing {
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
        sm.rebuild_derived_if_stale()?;
        sm.remove_stale_files(None, Receiving::Delete);
        if let Ok(Some(meta)) = sm.current_snapshot_meta() {
            let path = snapshot_path(&sm.inner.snapshot_dir, &meta.snapshot_id);
            sm.inner.pacing.snapshot_is(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0), 0);
        }
        Ok(sm)
    }

    /// Builds the derived tables (see [`keys::SNAPSHOTTED`]) from the jobs when the database
    /// has them at another version or not at all: a new database, or one an earlier version
    /// wrote. Blocking; runs when the node opens.
    fn rebuild_derived_if_stale(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        let built = super::get::<u32>(db, SM_META, DERIVED_VERSION)
            .map_err(|detail| StoreError::Corrupt { tree: "sm_meta", detail })?;
        if built == Some(DERIVED_TABLES_VERSION) {
            return Ok(());
        }
        let started = Instant::now();
        // Loaded by position in the slice of derived tables.
        let mut load = BulkLoad::replacing(db, &SM_TABLES[SNAPSHOTTED..T_SM_META]).map_err(|e| self.db_err(e))?;
        let read = db.begin_read().map_err(|e| self.db_err(e))?;
        let jobs = read.open_table(JOBS).map_err(|e| self.db_err(e))?;
        for item in jobs.iter().map_err(|e| self.db_err(e))? {
            let (_, value) = item.map_err(|e| self.db_err(e))?;
            let job: model::Job =
                decode(value.value()).map_err(|e| StoreError::Corrupt { tree: "sm_jobs", detail: e.to_string() })?;
            for (table, key) in derived_entries(&job) {
                load.insert(table - SNAPSHOTTED, key, Vec::new()).map_err(|e| self.db_err(e))?;
            }
        }
        drop(jobs);
        drop(read);
        let entries = load
            .finish(|tx| {
                tx.open_table(SM_META)?.insert(DERIVED_VERSION, encode(&DERIVED_TABLES_VERSION).as_slice())?;
                Ok(())
            })
            .map_err(|e| self.db_err(e))?;
        tracing::info!(entries, ms = started.elapsed().as_millis() as u64, "built the indexes derived from the jobs");
        Ok(())
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db { path: self.inner.db_path.clone(), source: e.into() }
    }

    fn current_snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let current = super::get::<CurrentSnapshot>(&self.inner.db, SM_META, CURRENT_SNAPSHOT).map_err(sm_read_err)?;
        Ok(current.map(|c| c.meta))
    }

    /// Deletes snapshot files other than `keep` (and any partial file), on the reclaimer's
    /// thread: no record names them, and any left by a crash go at the next open or build. With
    /// `receiving`, a snapshot being received from the leader is left alone.
    fn remove_stale_files(&self, keep: Option<&Path>, receiving: Receiving) {
        let keep = keep.map(Path::to_path_buf).or_else(|| {
            self.current_snapshot_meta().ok().flatten().map(|m| snapshot_path(&self.inner.snapshot_dir, &m.snapshot_id))
        });
        let Ok(dir) = std::fs::read_dir(&self.inner.snapshot_dir) else { return };
        let incoming = |path: &Path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(INCOMING));
        let stale: Vec<PathBuf> = dir
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| Some(path) != keep.as_ref() && !(receiving == Receiving::Keep && incoming(path)))
            .collect();
        if !stale.is_empty() {
            let readers = self.inner.readers.clone();
            self.inner.reclaimer.run(move || {
                for path in stale {
                    if let Err(e) = readers.delete(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "deleting a stale snapshot failed");
                    }
                }
            });
        }
    }

    fn unsynced_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.inner.unsynced_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the next apply batch should commit durably: the oldest unsynced one is
    /// [`SYNC_EVERY`] old.
    fn sync_due(&self) -> bool {
        self.unsynced_since().is_some_and(|since| since.elapsed() >= SYNC_EVERY)
    }

    /// Applies `entries` in one write transaction, durable if `sync`. Blocking.
    fn apply_blocking(&self, entries: Vec<Entry>, sync: bool) -> Result<Vec<Response>, StorageError> {
        let inner = &self.inner;
        let mut tx = super::begin_write(&inner.db).map_err(sm_write_err)?;
        if !sync {
            tx.set_durability(redb::Durability::None).map_err(sm_write_err)?;
        }
        let responses = {
            let mut tables = open_tables(&tx).map_err(sm_write_err)?;
            let mut out = Vec::with_capacity(entries.len());
            let last: Option<LogId> = entries.last().map(|e| e.log_id);
            for entry in entries {
                match entry.payload {
                    EntryPayload::Blank => out.push(Response::Done),
                    EntryPayload::Normal(cmd) => {
                        out.push(model::apply(&mut TxState::new(&mut tables), cmd).map_err(sm_write_err)?)
                    }
                    EntryPayload::Membership(m) => {
                        let stored = StoredMembership::new(Some(entry.log_id), m);
                        tables[T_SM_META].insert(MEMBERSHIP, encode(&stored).as_slice()).map_err(sm_write_err)?;
                        out.push(Response::Done);
                    }
                }
            }
            tables[T_SM_META].insert(LAST_APPLIED, encode(&last).as_slice()).map_err(sm_write_err)?;
            let committed = *inner.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if committed.is_some() {
                let mut raft_meta = tx.open_table(keys::RAFT_META).map_err(sm_write_err)?;
                raft_meta.insert(keys::COMMITTED, encode(&committed).as_slice()).map_err(sm_write_err)?;
            }
            out
        };
        commit(tx, "apply").map_err(sm_write_err)?;
        let mut unsynced_since = self.unsynced_since();
        if sync {
            *unsynced_since = None;
        } else {
            unsynced_since.get_or_insert_with(Instant::now);
        }
        Ok(responses)
    }

    /// Syncs the applies committed without a sync, if the oldest is [`SYNC_EVERY`] old: when
    /// applies stop, no batch would sync them. Run periodically.
    pub(crate) async fn sync_if_due(&self) -> Result<(), StorageError> {
        if !self.sync_due() {
            return Ok(());
        }
        self.sync_now().await
    }

    /// Syncs the applies committed without a sync, if any.
    pub(crate) async fn sync_now(&self) -> Result<(), StorageError> {
        let _guard = self.inner.lock.lock().await;
        let sm = self.clone();
        blocking(move || {
            if sm.unsynced_since().is_none() {
                return Ok(()); // an apply synced meanwhile
            }
            // An empty durable commit makes every commit before it durable.
            let tx = super::begin_write(&sm.inner.db).map_err(sm_write_err)?;
            commit(tx, "apply sync").map_err(sm_write_err)?;
            *sm.unsynced_since() = None;
            Ok(())
        })
        .await
    }

    /// The spread of a build started at `started` ([`build_spread`]), which becomes the start
    /// the next build's spread is taken from.
    pub(super) fn spread_of_build_started(&self, started: Instant) -> Duration {
        let mut last = self.inner.last_build_started.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let since_last = started.saturating_duration_since(*last);
        *last = started;
        build_spread(since_last)
    }

    /// The state a snapshot build reads, as of the last apply batch. Applies go on while it is
    /// read: each is one transaction, so the read sees one apply boundary, whole.
    pub(super) fn begin_snapshot_read(&self) -> Result<redb::ReadTransaction, StorageError> {
        let read = self.inner.db.begin_read().map_err(snapshot_err)?;
        self.inner.pacing.snapshot_started();
        Ok(read)
    }

    /// Writes the state `read` sees (one apply boundary) to a snapshot file; returns its meta,
    /// its path and the records written. [`StateMachine::record_snapshot_blocking`] then makes
    /// it the current snapshot.
    pub(super) fn write_snapshot_file_blocking(
        &self,
        read: redb::ReadTransaction,
        pace: &mut CpuShare,
        spread: Option<Duration>,
    ) -> Result<(SnapshotMeta, PathBuf, u64), StorageError> {
        let inner = &self.inner;
        let by = match spread {
            None => SpreadBy::Records,
            Some(budget) => {
                let mut records = 0;
                for table in &SM_TABLES[..SNAPSHOTTED] {
                    records += read.open_table(*table).map_err(snapshot_err)?.len().map_err(snapshot_err)?;
                }
                let pacing = &inner.pacing;
                let (by, total) = spread_units(pacing.snapshot_bytes(), pacing.snapshot_records(), records);
                pace.spread(Spread { budget, total });
                by
            }
        };
        let (last_log_id, last_membership) = applied_state_in(&read)?;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, unique_suffix()),
            None => format!("empty-{}", unique_suffix()),
        };
        let partial_path = inner.snapshot_dir.join(format!("building-{snapshot_id}.part"));
        let mut writer = SnapshotWriter::create(&partial_path).map_err(snapshot_err)?;
        // Files carry whole job records and empty `sm_pending` values, the layout they had
        // before manifests moved out of the records ([`keys::stored_job`]): the pending jobs
        // are few, so their manifests are read first and put back as the jobs are written.
        let mut manifests = std::collections::HashMap::new();
        for item in read.open_table(keys::PENDING).map_err(snapshot_err)?.iter().map_err(snapshot_err)? {
            let (k, v) = item.map_err(snapshot_err)?;
            if !v.value().is_empty() {
                manifests.insert(k.value().to_vec(), v.value().to_vec());
            }
        }
        let mut n = 0u64;
        for (i, table) in SM_TABLES[..SNAPSHOTTED].iter().enumerate() {
            let table = read.open_table(*table).map_err(snapshot_err)?;
            for item in table.iter().map_err(snapshot_err)? {
                let (k, v) = item.map_err(snapshot_err)?;
                let manifest = if i == T_JOBS { manifests.remove(k.value()) } else { None };
                match (i, manifest) {
                    (_, Some(manifest)) => {
                        let job = keys::join_job(v.value(), |_| Ok(Some(manifest))).map_err(snapshot_err)?;
                        writer.record(i as u8, k.value(), &encode(&job))
                    }
                    (T_PENDING, None) => writer.record(i as u8, k.value(), &[]),
                    (_, None) => writer.record(i as u8, k.value(), v.value()),
                }
                .map_err(snapshot_err)?;
                n += 1;
                if n.is_multiple_of(PACE_EVERY_RECORDS) {
                    pace.pace_at(match by {
                        SpreadBy::Records => n,
                        SpreadBy::Bytes => writer.written(),
                    });
                }
            }
        }
        drop(read);
        let records = writer.finish().map_err(snapshot_err)?;
        let path = snapshot_path(&inner.snapshot_dir, &snapshot_id);
        std::fs::rename(&partial_path, &path).map_err(snapshot_err)?;
        sync_dir(&inner.snapshot_dir).map_err(snapshot_err)?;
        inner.pacing.snapshot_is(std::fs::metadata(&path).map_err(snapshot_err)?.len(), records);
        Ok((SnapshotMeta { last_log_id, last_membership, snapshot_id }, path, records))
    }

    /// Makes the snapshot file at `path` the current snapshot and removes older files.
    pub(super) fn record_snapshot_blocking(&self, meta: &SnapshotMeta, path: &Path) -> Result<(), StorageError> {
        let current = encode(&CurrentSnapshot { meta: meta.clone() });
        // Durable, and with it every apply batch before it, so the state machine on disk is at
        // least at the snapshot before openraft purges the log the snapshot covers.
        super::put_durably(&self.inner.db, SM_META, CURRENT_SNAPSHOT, &current).map_err(snapshot_err)?;
        // A follower may be receiving a snapshot from the leader meanwhile.
        self.remove_stale_files(Some(path), Receiving::Keep);
        Ok(())
    }

    fn applied_state_blocking(&self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        applied_state_in(&self.inner.db.begin_read().map_err(sm_read_err)?)
    }

    /// Replaces the state with the snapshot at `path`. Marks the install in progress first, so
    /// a crash in the middle is finished on the next open rather than leaving a mixed state.
    /// Returns the records the file holds.
    fn load_snapshot_blocking(&self, meta: &SnapshotMeta, path: &Path) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let snap_err = |detail: String| StoreError::Snapshot { path: path.to_path_buf(), detail };
        // Check the whole file before touching the state.
        let records = snapshot::read_records(path, |r| {
            if r.tree as usize >= SNAPSHOTTED {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown tree {}", r.tree)));
            }
            Ok(())
        })
        .map_err(|e| snap_err(e.to_string()))?;

        let tx = super::begin_write(&inner.db).map_err(|e| self.db_err(e))?;
        {
            let mut sm_meta = tx.open_table(SM_META).map_err(|e| self.db_err(e))?;
            let current = encode(&CurrentSnapshot { meta: meta.clone() });
            sm_meta.insert(CURRENT_SNAPSHOT, current.as_slice()).map_err(|e| self.db_err(e))?;
            sm_meta.insert(INSTALLING, encode(&()).as_slice()).map_err(|e| self.db_err(e))?;
        }
        commit(tx, "snapshot install").map_err(|e| self.db_err(e))?;

        let mut load = BulkLoad::replacing(&inner.db, &SM_TABLES[..T_SM_META]).map_err(|e| self.db_err(e))?;
        let mut db_failure = None;
        snapshot::read_records(path, |r| {
            // The derived tables are not in the file: each job brings its entries, and its
            // `sm_pending` entry with its manifest ([`keys::stored_job`]), so the file's own
            // (empty) `sm_pending` entries are passed over.
            let (record, entries) = match usize::from(r.tree) {
                T_JOBS => {
                    let job = decode::<model::Job>(&r.value).map_err(std::io::Error::other)?;
                    let mut entries: Vec<_> =
                        derived_entries(&job).map(|(table, key)| (table, key, Vec::new())).collect();
                    if let Some(manifest) = job.pending_manifest() {
                        entries.push((T_PENDING, r.key.clone(), manifest.as_bytes().to_vec()));
                    }
                    (Some(keys::stored_job(&job)), entries)
                }
                T_PENDING => return Ok(()),
                _ => (None, Vec::new()),
            };
            let written = entries
                .into_iter()
                .try_for_each(|(table, key, value)| load.insert(table, key, value))
                .and_then(|()| load.insert(usize::from(r.tree), r.key, record.unwrap_or(r.value)));
            written.map_err(|e| {
                db_failure = Some(e);
                std::io::Error::other("database write failed")
            })
        })
        .map_err(|e| match db_failure.take() {
            Some(source) => self.db_err(source),
            None => snap_err(e.to_string()),
        })?;
        load.finish(|tx| {
            let mut sm_meta = tx.open_table(SM_META)?;
            sm_meta.insert(LAST_APPLIED, encode(&meta.last_log_id).as_slice())?;
            sm_meta.insert(MEMBERSHIP, encode(&meta.last_membership).as_slice())?;
            sm_meta.insert(DERIVED_VERSION, encode(&DERIVED_TABLES_VERSION).as_slice())?;
            sm_meta.remove(INSTALLING)?;
            Ok(())
        })
        .map_err(|e| self.db_err(e))?;
        Ok(records)
    }
}

/// The last applied log id and membership as `read` sees them.
fn applied_state_in(read: &redb::ReadTransaction) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let meta = read.open_table(SM_META).map_err(sm_read_err)?;
    let last_applied = match meta.get(LAST_APPLIED).map_err(sm_read_err)? {
        Some(bytes) => decode::<Option<LogId>>(bytes.value()).map_err(sm_read_err)?,
        None => None,
    };
    let membership = match meta.get(MEMBERSHIP).map_err(sm_read_err)? {
        Some(bytes) => decode::<StoredMembership>(bytes.value()).map_err(sm_read_err)?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

/// Runs `f` on a thread of its own, held to [`SNAPSHOT_BUILD_SHARE`] of a core by the pace it
/// is given (see [`super::cpu_share`] for why a share and not a lower priority). Nothing the
/// build holds is waited for by requests: its read transaction blocks no writer.
pub(super) async fn in_background<T: Send + 'static>(
    f: impl FnOnce(&mut CpuShare) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("snapshot-build".into())
        .spawn(move || {
            let mut pace = CpuShare::start(SNAPSHOT_BUILD_SHARE);
            let _ = done.send(f(&mut pace));
        })
        .map_err(snapshot_err)?;
    result.await.map_err(|_| snapshot_err("the snapshot build's thread stopped without an answer"))?
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(sm_write_err)?
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let _one_at_a_time = self.inner.snapshot_lock.lock().await;
        let started = Instant::now();
        let spread = self.spread_of_build_started(started);
        let read = self.begin_snapshot_read()?;
        let sm = self.clone();
        let (meta, path, records, cpu, paused) = in_background(move |pace| {
            let (meta, path, records) = sm.write_snapshot_file_blocking(read, pace, Some(spread))?;
            let (cpu, paused) = pace.totals();
            Ok((meta, path, records, cpu, paused))
        })
        .await?;
        // Unpaced: the record is a write transaction, which applies wait for.
        let (sm, current, current_path) = (self.clone(), meta.clone(), path.clone());
        blocking(move || sm.record_snapshot_blocking(&current, &current_path)).await?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            records,
            build_ms = started.elapsed().as_millis() as u64,
            cpu_ms = cpu.as_millis() as u64,
            paused_ms = paused.as_millis() as u64,
            spread_ms = spread.as_millis() as u64,
            "built snapshot"
        );
        let file = SnapshotFile::open(path, &self.inner.readers).await.map_err(snapshot_err)?;
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
        let sync = self.sync_due();
        if !sync && entries.len() <= INLINE_APPLY_ENTRIES {
            // An unsynced commit of a few entries is B-tree work in the cache and page writes to
            // the kernel; sending it to a blocking thread and back costs two thread wake-ups.
            return self.apply_blocking(entries, false);
        }
        let sm = self.clone();
        blocking(move || sm.apply_blocking(entries, sync)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let path = self.inner.snapshot_dir.join(format!("{INCOMING}{}.part", unique_suffix()));
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
            let records = sm.load_snapshot_blocking(&meta, &path).map_err(snapshot_err)?;
            sm.inner.pacing.snapshot_started();
            sm.inner.pacing.snapshot_is(std::fs::metadata(&path).map_err(snapshot_err)?.len(), records);
            sm.remove_stale_files(Some(&path), Receiving::Delete);
            tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot");
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self.current_snapshot_meta()? else { return Ok(None) };
        let path = snapshot_path(&self.inner.snapshot_dir, &meta.snapshot_id);
        let file = SnapshotFile::open(path, &self.inner.readers).await.map_err(snapshot_err)?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}
