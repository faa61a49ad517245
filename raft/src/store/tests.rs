use std::collections::BTreeMap;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tempfile::TempDir;

use super::*;
use crate::model::{
    ClusterState, Command, DispatchOutcome, IdempotencyEntry, IdempotencyKey, Job, MemState, Observed, StatusUpdate,
    apply, sample_job,
};
use crate::typ::{Entry, LogId, StorageError, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open store");
        Ok((dir, store.log, store.state_machine))
    }
}

/// openraft's own conformance suite for log and state-machine storage.
#[test]
fn passes_the_openraft_storage_suite() {
    Suite::test_all(Builder).expect("storage suite");
}

fn entry(index: u64, cmd: Command) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), index), payload: EntryPayload::Normal(cmd) }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, &StoreOptions::default()).unwrap_or_else(|e| panic!("open the store in {}: {e}", dir.display()))
}

/// The database in `dir`, opened directly (the store that had it open is gone).
fn db_of(dir: &std::path::Path) -> redb::Database {
    redb::Database::open(dir.join(keys::DB_FILE)).expect("open the database")
}

/// `sled::open()` once whatever had the directory open has let go of sled's file lock: sled's
/// IO threads may hold it for a moment after the last handle is dropped.
fn sled_open(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(opened) => return opened,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open sled in {}: {e}", path.display()),
        }
    }
}

const IDS: [&str; 12] = ["a-1", "a-2", "a-3", "a-4", "b-1", "b-2", "b-3", "b-4", "c-1", "c-2", "c-3", "c-4"];
const OWNERS: [&str; 3] = ["alice", "bob", "carol"];

fn random_command(rng: &mut StdRng, now: u64, mem: &MemState) -> Command {
    let id = IDS[rng.random_range(0..IDS.len())].to_owned();
    match rng.random_range(0..9) {
        0 | 1 => {
            let owner = OWNERS[rng.random_range(0..OWNERS.len())];
            let key = rng.random_bool(0.5).then(|| format!("k{}", rng.random_range(0..4)));
            let mut job = sample_job(&id, owner, now);
            job.proxy_user = OWNERS[rng.random_range(0..OWNERS.len())].to_owned();
            Command::Submit { job: Box::new(job), idempotency_key: key }
        }
        2 => {
            let outcome = if rng.random_bool(0.8) {
                DispatchOutcome::Created
            } else {
                DispatchOutcome::Rejected { reason: "invalid".into() }
            };
            Command::RecordDispatch { id, outcome }
        }
        3 => {
            let updates = (0..rng.random_range(1..4))
                .map(|_| StatusUpdate {
                    id: IDS[rng.random_range(0..IDS.len())].to_owned(),
                    observed: Observed {
                        resource_version: rng.random_range(0..50),
                        state: Some(["SUBMITTED", "RUNNING", "COMPLETED"][rng.random_range(0..3)].into()),
                        vanished: rng.random_bool(0.1),
                        ..Observed::default()
                    },
                })
                .collect();
            Command::RecordStatus { updates }
        }
        4 => Command::Delete { id, at_ms: now },
        5 => Command::SetCluster {
            id: ["a", "b", "c"][rng.random_range(0..3)].into(),
            weight: rng.random_bool(0.5).then(|| rng.random_range(0..100)),
            cordoned: rng.random_bool(0.5).then(|| rng.random_bool(0.5)),
        },
        6 => Command::Forget { ids: vec![id] },
        7 => {
            let mut keys = Vec::new();
            for ((owner, key), e) in &mem.idempotency {
                if rng.random_bool(0.5) {
                    let at_ms = if rng.random_bool(0.7) { e.at_ms } else { e.at_ms + 1 };
                    keys.push(IdempotencyKey { owner: owner.clone(), key: key.clone(), at_ms });
                }
            }
            Command::ExpireIdempotency { keys }
        }
        _ => Command::Batch((0..rng.random_range(1..4)).map(|_| random_command(rng, now, mem)).collect()),
    }
}

/// Checks every record and every index of the stored state against the model.
fn assert_same_state(mem: &MemState, reader: &StateReader) {
    let jobs: BTreeMap<String, _> = reader.jobs().map(|j| j.expect("decode job")).map(|j| (j.id.clone(), j)).collect();
    assert_eq!(&jobs, &mem.jobs, "jobs differ");
    assert_eq!(reader.job_count().unwrap(), mem.jobs.len() as u64, "job count");
    for owner in OWNERS {
        let got: Vec<String> = reader.jobs_of_owner(owner).unwrap().into_iter().map(|j| j.id).collect();
        let want: Vec<String> =
            mem.jobs.values().filter(|j| j.owner == owner || j.proxy_user == owner).map(|j| j.id.clone()).collect();
        assert_eq!(got, want, "owner index of {owner}");
    }
    let pending: Vec<String> = reader.pending_dispatch().unwrap().into_iter().map(|j| j.id).collect();
    let want: Vec<String> = mem
        .jobs
        .values()
        .filter(|j| matches!(j.dispatch, crate::model::Dispatch::Pending { .. }) && j.deleted_at_ms.is_none())
        .map(|j| j.id.clone())
        .collect();
    assert_eq!(pending, want, "pending index");
    let clusters: BTreeMap<String, ClusterState> = reader.clusters().unwrap();
    assert_eq!(&clusters, &mem.clusters, "clusters");
    let idem: BTreeMap<(String, String), IdempotencyEntry> = reader
        .expired_idempotency(u64::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|k| {
            let e = reader.idempotency(&k.owner, &k.key).unwrap().expect("listed entry exists");
            ((k.owner, k.key), e)
        })
        .collect();
    assert_eq!(&idem, &mem.idempotency, "idempotency index");

    let running: Vec<String> = reader.running_jobs().unwrap().into_iter().map(|j| j.id).collect();
    let want: Vec<String> = mem.jobs.values().filter(|j| j.is_running()).map(|j| j.id.clone()).collect();
    assert_eq!(running, want, "running index");
    let clusters: std::collections::BTreeSet<&str> = mem.jobs.values().map(|j| j.cluster.as_str()).collect();
    for cluster in clusters {
        let want: Vec<String> =
            mem.jobs.values().filter(|j| j.cluster == cluster && j.expects_object()).map(|j| j.id.clone()).collect();
        assert_eq!(reader.live_on(cluster).unwrap(), want, "live index of cluster {cluster}");
    }
    // Every horizon at which the answer changes, and one past them all.
    let mut ends: Vec<u64> = mem.jobs.values().filter_map(|j| j.ended_ms()).collect();
    ends.sort_unstable();
    ends.dedup();
    for horizon in ends.iter().map(|t| t + 1).chain(ends.first().copied()) {
        let mut got: Vec<String> =
            reader.ended_before(horizon, usize::MAX).unwrap().into_iter().map(|j| j.id).collect();
        got.sort();
        let want: Vec<String> =
            mem.jobs.values().filter(|j| j.ended_ms().is_some_and(|t| t < horizon)).map(|j| j.id.clone()).collect();
        assert_eq!(got, want, "jobs ended before {horizon}");
    }
    let ended = mem.jobs.values().filter(|j| j.ended_ms().is_some()).count();
    assert_eq!(reader.ended_before(u64::MAX, 2).unwrap().len(), ended.min(2), "the limit");
}

/// Applies the same random commands to the model and to the store (one entry at a time and in
/// batches), comparing every response and, at the end, the whole state.
async fn apply_random(sm: &mut StateMachine, mem: &mut MemState, seed: u64, n: u64) -> u64 {
    apply_random_from(sm, mem, seed, 0, n, |_, _| {}).await
}

/// [`apply_random`] from log index `first + 1` to `last`, calling `after_batch` with the
/// model state after each applied batch.
async fn apply_random_from(
    sm: &mut StateMachine,
    mem: &mut MemState,
    seed: u64,
    first: u64,
    last: u64,
    mut after_batch: impl FnMut(u64, &MemState),
) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut index = first;
    while index < last {
        let batch_len = rng.random_range(1..6).min(last - index);
        let mut entries = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..batch_len {
            index += 1;
            let cmd = random_command(&mut rng, index * 1000, mem);
            expected.push(apply(mem, cmd.clone()).unwrap_or_else(|never| match never {}));
            entries.push(entry(index, cmd));
        }
        let got = sm.apply(entries).await.expect("apply");
        assert_eq!(got, expected, "responses differ at index {index}");
        after_batch(index, mem);
    }
    index
}

/// Installs `snapshot` on a fresh store and returns it, to compare with a model.
async fn installed(snapshot: &mut crate::typ::Snapshot) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut incoming = store.state_machine.begin_receiving_snapshot().await.unwrap();
    tokio::io::copy(&mut snapshot.snapshot, &mut *incoming).await.unwrap();
    store.state_machine.install_snapshot(&snapshot.meta, incoming).await.expect("install");
    (dir, store)
}

#[tokio::test]
async fn the_stored_state_machine_matches_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let Store { mut state_machine, reader, .. } = open(dir.path());
    let mut mem = MemState::default();
    let last = apply_random(&mut state_machine, &mut mem, 7, 3000).await;
    assert_same_state(&mem, &reader);
    let (applied, _) = state_machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(last));
}

#[tokio::test]
async fn applied_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemState::default();
    {
        let Store { mut state_machine, .. } = open(dir.path());
        apply_random(&mut state_machine, &mut mem, 11, 500).await;
    }
    let Store { mut state_machine, reader, .. } = open(dir.path());
    assert_same_state(&mem, &reader);
    assert_eq!(state_machine.applied_state().await.unwrap().0.map(|l| l.index), Some(500));
}

/// Rewrites the store in `dir` the way versions before the redb file kept it: the same tables
/// as sled trees in `dir/db`, with the job count they stored. Returns the vote it holds.
fn store_to_sled(dir: &std::path::Path) -> Option<crate::typ::Vote> {
    use redb::{ReadableDatabase as _, ReadableTable as _, TableHandle as _};
    let db = db_of(dir);
    let read = db.begin_read().unwrap();
    let old = sled_open(&dir.join(keys::SLED_DIR));
    // Those versions had no derived tables.
    let kept = keys::SM_TABLES.iter().enumerate().filter(|(i, _)| !(keys::SNAPSHOTTED..keys::T_SM_META).contains(i));
    for table in std::iter::once(keys::RAFT_META).chain(kept.map(|(_, t)| *t)) {
        let tree = old.open_tree(table.name()).unwrap();
        for item in read.open_table(table).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            if k.value() != keys::DERIVED_VERSION {
                tree.insert(k.value(), v.value()).unwrap();
            }
        }
    }
    let jobs = redb::ReadableTableMetadata::len(&read.open_table(keys::JOBS).unwrap()).unwrap();
    old.open_tree(keys::SM_META.name()).unwrap().insert(keys::JOB_COUNT, keys::encode(&jobs)).unwrap();
    old.flush().unwrap();
    let vote =
        read.open_table(keys::RAFT_META).unwrap().get(keys::VOTE).unwrap().map(|v| keys::decode(v.value()).unwrap());
    drop((read, db));
    std::fs::remove_file(dir.join(keys::DB_FILE)).unwrap();
    vote
}

/// Fills a store with random commands (`seed`), lets `earlier` leave its database as an
/// earlier version would have, and checks the reopened store against the model, before and
/// after more commands.
async fn reopens_matching_the_model_after(seed: u64, earlier: impl FnOnce(&redb::WriteTransaction)) {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemState::default();
    {
        let Store { mut state_machine, .. } = open(dir.path());
        apply_random(&mut state_machine, &mut mem, seed, 600).await;
    }
    let db = db_of(dir.path());
    let tx = db.begin_write().unwrap();
    earlier(&tx);
    tx.commit().unwrap();
    drop(db);

    let Store { mut state_machine, reader, .. } = open(dir.path());
    assert_same_state(&mem, &reader);
    apply_random_from(&mut state_machine, &mut mem, seed + 1, 600, 800, |_, _| {}).await;
    assert_same_state(&mem, &reader);
}

#[tokio::test]
async fn a_database_without_the_derived_tables_has_them_built_when_it_opens() {
    use redb::TableHandle as _;
    // What a version before them left: no derived tables, no mark of their version.
    reopens_matching_the_model_after(21, |tx| {
        for table in &keys::SM_TABLES[keys::SNAPSHOTTED..keys::T_SM_META] {
            assert!(tx.delete_table(*table).unwrap(), "{} was there", table.name());
        }
        assert!(tx.open_table(keys::SM_META).unwrap().remove(keys::DERIVED_VERSION).unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn derived_tables_of_an_earlier_version_are_rebuilt_when_the_database_opens() {
    // An earlier version's rules put entries where this one's do not (version 1 kept jobs
    // whose objects had vanished among the running): here, every job in every derived table.
    reopens_matching_the_model_after(23, |tx| {
        let jobs: Vec<Job> = {
            let table = tx.open_table(keys::JOBS).unwrap();
            redb::ReadableTable::iter(&table)
                .unwrap()
                .map(|r| keys::decode::<Job>(r.unwrap().1.value()).unwrap())
                .collect()
        };
        for job in &jobs {
            for (table, key, _) in keys::derived_keys(job) {
                tx.open_table(keys::SM_TABLES[table]).unwrap().insert(key.as_slice(), [].as_slice()).unwrap();
            }
        }
        let version = keys::encode(&(keys::DERIVED_TABLES_VERSION - 1));
        tx.open_table(keys::SM_META).unwrap().insert(keys::DERIVED_VERSION, version.as_slice()).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_state_kept_in_sled_by_an_earlier_version_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemState::default();
    let vote = crate::typ::Vote::new(3, 1);
    {
        let Store { mut state_machine, mut log, .. } = open(dir.path());
        apply_random(&mut state_machine, &mut mem, 5, 400).await;
        log.save_vote(&vote).await.unwrap();
    }
    assert!(!mem.jobs.is_empty());
    assert_eq!(store_to_sled(dir.path()), Some(vote));

    let Store { mut state_machine, mut log, reader, .. } = open(dir.path());
    assert!(!dir.path().join(keys::SLED_DIR).exists(), "the sled directory goes once imported");
    assert_same_state(&mem, &reader);
    assert_eq!(state_machine.applied_state().await.unwrap().0.map(|l| l.index), Some(400));
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    // And applies go on from there.
    apply_random_from(&mut state_machine, &mut mem, 6, 400, 600, |_, _| {}).await;
    assert_same_state(&mem, &reader);
}

#[tokio::test]
async fn an_import_cut_short_by_a_crash_is_redone_from_sled() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemState::default();
    {
        let Store { mut state_machine, .. } = open(dir.path());
        apply_random(&mut state_machine, &mut mem, 15, 300).await;
    }
    store_to_sled(dir.path());
    // What a crash during the import leaves: the sled directory whole, and a database holding
    // something else (here another state, so that any record kept from it would show).
    let other_dir = tempfile::tempdir().unwrap();
    {
        let Store { mut state_machine, .. } = open(other_dir.path());
        apply_random(&mut state_machine, &mut MemState::default(), 16, 200).await;
    }
    std::fs::rename(other_dir.path().join(keys::DB_FILE), dir.path().join(keys::DB_FILE)).unwrap();

    let Store { mut state_machine, reader, .. } = open(dir.path());
    assert_same_state(&mem, &reader);
    assert_eq!(state_machine.applied_state().await.unwrap().0.map(|l| l.index), Some(300));
}

#[test]
fn a_build_is_spread_over_a_quarter_of_the_time_since_the_last_up_to_a_cap() {
    use std::time::Duration;
    assert_eq!(state_machine::build_spread(Duration::from_secs(8)), Duration::from_secs(2));
    assert_eq!(state_machine::build_spread(Duration::from_secs(600)), state_machine::MAX_BUILD_SPREAD);
}

/// A build is spread over the bytes it will write, taken from the last snapshot's size, so
/// that the jobs table (read first, a third of the records and most of the bytes) is not
/// written in the first third of the budget; over records when no snapshot says how many.
/// The bytes expected grow with the records since the last snapshot: a state that grew
/// from 50,763 records to 189,536 between two builds is expected at 3.7 times the last
/// file, not at its size (which left three quarters of the build unpaced at its end).
#[test]
fn a_build_is_spread_by_bytes_once_a_snapshot_gives_their_number() {
    use state_machine::{SpreadBy, spread_units};
    assert_eq!(spread_units(0, 0, 480_000), (SpreadBy::Records, 480_000), "no snapshot yet");
    assert_eq!(spread_units(52_000_000, 0, 480_000), (SpreadBy::Bytes, 52_000_000), "records then not known");
    assert_eq!(spread_units(52_000_000, 480_000, 480_000), (SpreadBy::Bytes, 52_000_000));
    assert_eq!(spread_units(13_000_000, 50_763, 189_536), (SpreadBy::Bytes, 48_538_660), "grown");
    assert_eq!(spread_units(52_000_000, 480_000, 240_000), (SpreadBy::Bytes, 26_000_000), "shrunk (pruned)");
    assert_eq!(spread_units(u64::MAX, 1, 2), (SpreadBy::Bytes, u64::MAX), "no overflow");
}

/// Three nodes started together build their first snapshots together: the first build is
/// spread over a quarter of the time since the state machine opened, and each later one over a
/// quarter of the time since the build before it.
#[test]
fn the_first_build_is_spread_from_the_open_and_each_later_one_from_the_build_before() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let opened = Instant::now();
    let Store { state_machine, .. } = open(dir.path());
    // The open took some time of its own: the first spread is at most a quarter of 8 s counted
    // from before it, and at least a quarter of 8 s less the open.
    let first = state_machine.spread_of_build_started(opened + Duration::from_secs(8));
    let open_took = opened.elapsed();
    assert!(first <= Duration::from_secs(2), "first build spread over {first:?}");
    assert!(
        first + open_took.mul_f64(state_machine::BUILD_SPREAD) >= Duration::from_secs(2),
        "first build spread over {first:?} (the open took {open_took:?})"
    );
    let second = state_machine.spread_of_build_started(opened + Duration::from_secs(12));
    assert_eq!(second, Duration::from_secs(1), "4 s after the first build");
    let third = state_machine.spread_of_build_started(opened + Duration::from_secs(612));
    assert_eq!(third, state_machine::MAX_BUILD_SPREAD);
}

#[tokio::test]
async fn a_snapshot_build_uses_no_more_than_its_share_of_a_core() {
    use super::cpu_share::{SNAPSHOT_BUILD_SHARE, WINDOW, thread_cpu_time};
    use std::time::{Duration, Instant};
    let work = Duration::from_millis(100);
    let caller = std::thread::current().id();
    let (thread, cpu, wall) = state_machine::in_background(move |pace| {
        let started = Instant::now();
        let cpu_at_start = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - cpu_at_start < work {
            for i in 0..10_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            pace.pace();
        }
        Ok((std::thread::current().id(), thread_cpu_time() - cpu_at_start, started.elapsed()))
    })
    .await
    .unwrap();
    assert_ne!(thread, caller, "the build runs on a thread of its own");
    // An upper bound whatever else the machine does: a loaded machine stretches the wall time,
    // which only loosens it. The last window ends unpaced, and a unit of work may overrun a
    // window. Unpaced, 100 ms of CPU would take about 100 ms and fail this.
    let bound = wall.mul_f64(SNAPSHOT_BUILD_SHARE) + WINDOW * 2;
    assert!(cpu <= bound, "used {cpu:?} of CPU in {wall:?}, more than {SNAPSHOT_BUILD_SHARE} of a core ({bound:?})");
}

#[tokio::test]
async fn a_snapshot_moves_the_whole_state_to_another_node() {
    let src_dir = tempfile::tempdir().unwrap();
    let Store { state_machine: mut src, .. } = open(src_dir.path());
    let mut mem = MemState::default();
    apply_random(&mut src, &mut mem, 3, 800).await;
    let mut snapshot = src.get_snapshot_builder().await.build_snapshot().await.expect("build");
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(800));

    let dst_dir = tempfile::tempdir().unwrap();
    {
        let Store { state_machine: mut dst, reader, .. } = open(dst_dir.path());
        // Something the snapshot must replace.
        let mut other = MemState::default();
        apply_random(&mut dst, &mut other, 99, 50).await;
        let mut incoming = dst.begin_receiving_snapshot().await.unwrap();
        tokio::io::copy(&mut snapshot.snapshot, &mut *incoming).await.unwrap();
        dst.install_snapshot(&snapshot.meta, incoming).await.expect("install");
        assert_same_state(&mem, &reader);
        assert_eq!(dst.applied_state().await.unwrap().0, snapshot.meta.last_log_id);
        let current = dst.get_current_snapshot().await.unwrap().expect("current snapshot");
        assert_eq!(current.meta, snapshot.meta);
    }
    // After a restart the installed state is still there.
    let Store { reader, .. } = open(dst_dir.path());
    assert_same_state(&mem, &reader);
}

#[tokio::test]
async fn a_torn_snapshot_is_refused_and_changes_nothing() {
    let src_dir = tempfile::tempdir().unwrap();
    let Store { state_machine: mut src, .. } = open(src_dir.path());
    let mut mem = MemState::default();
    apply_random(&mut src, &mut mem, 5, 200).await;
    let snapshot = src.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let path = src_dir.path().join("snapshots").join(format!("{}.snap", snapshot.meta.snapshot_id));
    let bytes = std::fs::read(&path).unwrap();

    let dst_dir = tempfile::tempdir().unwrap();
    let Store { state_machine: mut dst, reader, .. } = open(dst_dir.path());
    let mut kept = MemState::default();
    apply_random(&mut dst, &mut kept, 8, 40).await;
    let mut incoming = dst.begin_receiving_snapshot().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut *incoming, &bytes[..bytes.len() / 2]).await.unwrap();
    assert!(dst.install_snapshot(&snapshot.meta, incoming).await.is_err());
    assert_same_state(&kept, &reader);
}

#[tokio::test]
async fn an_install_cut_short_by_a_crash_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemState::default();
    {
        let Store { state_machine: mut sm, .. } = open(dir.path());
        apply_random(&mut sm, &mut mem, 21, 300).await;
        sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    }
    // Simulate a crash in the middle of an install: the flag is set, the data half gone.
    {
        let db = db_of(dir.path());
        let tx = db.begin_write().unwrap();
        tx.open_table(keys::SM_META).unwrap().insert(keys::INSTALLING, keys::encode(&()).as_slice()).unwrap();
        tx.delete_table(keys::JOBS).unwrap();
        tx.commit().unwrap();
    }
    let Store { reader, .. } = open(dir.path());
    assert_same_state(&mem, &reader);
}

/// Applies that land while a build reads the tables change, create and delete the very keys it
/// reads; the snapshot still holds the state of the apply boundary it claims, and the live
/// state holds every apply.
#[tokio::test]
async fn a_snapshot_is_the_state_it_began_reading_whatever_applies_follow() {
    let dir = tempfile::tempdir().unwrap();
    let Store { mut state_machine, reader, .. } = open(dir.path());
    let mut mem = MemState::default();
    apply_random(&mut state_machine, &mut mem, 31, 400).await;
    let at_read = mem.clone();
    let read = state_machine.begin_snapshot_read().unwrap();
    // The 12 job ids are all rewritten, removed or re-created many times over.
    apply_random_from(&mut state_machine, &mut mem, 32, 400, 800, |_, _| {}).await;
    assert_ne!(mem, at_read, "the later applies changed the state");
    let sm = state_machine.clone();
    // Spread, as builds are: the pauses change when it reads, not what.
    let spread = Some(std::time::Duration::from_millis(200));
    let (meta, path, _) = state_machine::in_background(move |pace| {
        let (meta, path, records) = sm.write_snapshot_file_blocking(read, pace, spread)?;
        sm.record_snapshot_blocking(&meta, &path).map(|()| (meta, path, records))
    })
    .await
    .expect("write snapshot");
    assert_eq!(meta.last_log_id.map(|l| l.index), Some(400));
    assert_same_state(&mem, &reader);

    let file = SnapshotFile::open(path, &Arc::default()).await.unwrap();
    let mut snapshot = crate::typ::Snapshot { meta, snapshot: Box::new(file) };
    let (_dst_dir, dst) = installed(&mut snapshot).await;
    assert_same_state(&at_read, &dst.reader);
}

/// The same, with the build running concurrently with applies as openraft runs it: whatever
/// boundary the build froze at, the snapshot equals the model there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_built_during_applies_matches_the_model_at_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let Store { mut state_machine, .. } = open(dir.path());
    let mut mem = MemState::default();
    let mut history = BTreeMap::new();
    apply_random_from(&mut state_machine, &mut mem, 41, 0, 300, |i, m| {
        history.insert(i, m.clone());
    })
    .await;
    let mut builder = state_machine.get_snapshot_builder().await;
    let build = tokio::spawn(async move { builder.build_snapshot().await });
    let mut index = 300;
    while !build.is_finished() || index < 600 {
        index = apply_random_from(&mut state_machine, &mut mem, index, index, index + 20, |i, m| {
            history.insert(i, m.clone());
        })
        .await;
    }
    let mut snapshot = build.await.unwrap().expect("build");
    let at = snapshot.meta.last_log_id.map(|l| l.index).expect("a non-empty snapshot");
    let (_dst_dir, dst) = installed(&mut snapshot).await;
    assert_same_state(&history[&at], &dst.reader);
}

/// Writes a log the way versions before the segment files kept it: a sled tree keyed by index.
fn write_sled_log(dir: &std::path::Path, entries: &[Entry], purged: Option<LogId>) {
    let db = sled::open(dir.join(keys::SLED_DIR)).unwrap();
    let log = db.open_tree(keys::SLED_LOG).unwrap();
    for e in entries {
        log.insert(e.log_id.index.to_be_bytes(), keys::encode(e)).unwrap();
    }
    let meta = db.open_tree(redb::TableHandle::name(&keys::RAFT_META)).unwrap();
    meta.insert(keys::LAST_PURGED, keys::encode(&purged)).unwrap();
    db.flush().unwrap();
}

fn sled_log_entries() -> Vec<Entry> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut mem = MemState::default();
    let mut entries = Vec::new();
    for index in 41..=5000 {
        let cmd = random_command(&mut rng, index * 1000, &mem);
        apply(&mut mem, cmd.clone()).unwrap_or_else(|never| match never {});
        entries.push(entry(index, cmd));
    }
    entries
}

#[tokio::test]
async fn a_log_kept_in_sled_by_an_earlier_version_moves_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sled_log_entries();
    let purged = Some(LogId::new(CommittedLeaderId::new(1, 0), 40));
    write_sled_log(dir.path(), &entries, purged);

    let mut store = open(dir.path());
    let state = store.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, purged);
    assert_eq!(state.last_log_id, entries.last().map(|e| e.log_id));
    assert_eq!(store.log.try_get_log_entries(0..).await.unwrap(), entries);
    drop(store);
    assert!(!dir.path().join(keys::SLED_DIR).exists(), "the sled directory goes once imported");

    // The moved log is what later opens read; it goes on from there.
    let mut store = open(dir.path());
    assert_eq!(store.log.try_get_log_entries(0..).await.unwrap(), entries);
    let next = entry(5001, Command::Batch(vec![]));
    store.log.wal().append(&[(5001, keys::encode(&next))]).unwrap().unwrap().sync_data().unwrap();
    assert_eq!(store.log.try_get_log_entries(5001..).await.unwrap(), vec![next]);
}

#[tokio::test]
async fn a_move_out_of_sled_cut_short_by_a_crash_is_redone_from_sled() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sled_log_entries();
    write_sled_log(dir.path(), &entries, None);
    // What a crash during the move leaves: the sled tree whole, and segments holding part of
    // the copy (here, different records at the same indexes, so that a kept one would show).
    let mut partial = wal::Wal::open(&dir.path().join("raft-log"), 1 << 20, None).unwrap();
    let stale: Vec<_> = entries[..100].iter().map(|e| (e.log_id.index, b"stale".to_vec())).collect();
    partial.append(&stale).unwrap().unwrap().sync_data().unwrap();
    drop(partial);

    let mut store = open(dir.path());
    assert_eq!(store.log.try_get_log_entries(0..).await.unwrap(), entries);
}

/// A one-node cluster on `dir`, initialized unless it already was, leading.
async fn single_node(dir: &std::path::Path, initialize: bool) -> crate::RaftNode {
    let network = crate::NetworkFactory::new(1, crate::ClusterSecret::new("test"), None);
    let raft =
        crate::RaftNode::start(1, open(dir), network, &crate::RaftSettings::default()).await.expect("raft starts");
    if initialize {
        let me = crate::NodeInfo { raft_addr: "127.0.0.1:1".into(), api_addr: "127.0.0.1:2".into() };
        raft.initialize(BTreeMap::from([(1, me)])).await.expect("initialized");
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !raft.is_leader() {
        assert!(tokio::time::Instant::now() < deadline, "a one-node cluster did not elect itself");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    raft
}

/// Copies a running node's files as a crash would leave them: the database first, then the
/// log, which only grows meanwhile (a database copied after the log could hold applies of
/// entries the copied log lacks, which no crash produces).
fn crash_image(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(from.join(keys::DB_FILE), to.join(keys::DB_FILE)).expect("copy the database");
    for sub in ["raft-log", "snapshots"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for file in std::fs::read_dir(from.join(sub)).expect("read dir").flatten() {
            std::fs::copy(file.path(), to.join(sub).join(file.file_name())).expect("copy");
        }
    }
}

/// Applies are committed without a sync; a crash loses the latest of them from the database.
/// The log holds them, so the node applies them again on start: every acknowledged write is
/// there after the crash.
#[tokio::test]
async fn applies_a_crash_loses_from_the_database_are_applied_again_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let raft = single_node(dir.path(), true).await;
    let image = tempfile::tempdir().unwrap();
    let mut written = 0u32;
    let image_applied = loop {
        // Writes one by one: each is its own apply batch.
        for _ in 0..50 {
            let cmd = Command::SetCluster { id: format!("c{written}"), weight: Some(written), cordoned: None };
            raft.write(cmd).await.expect("acknowledged");
            written += 1;
        }
        let _ = std::fs::remove_dir_all(image.path());
        std::fs::create_dir_all(image.path()).unwrap();
        crash_image(dir.path(), image.path());
        let Store { mut state_machine, .. } = open(image.path());
        let applied = state_machine.applied_state().await.unwrap().0.map_or(0, |l| l.index);
        // Unless the last batch happened to be the one synced each second, the image is behind.
        if applied < raft.last_applied_index().unwrap() {
            break applied;
        }
        assert!(written < 1000, "every crash image held the latest apply: applies are synced");
    };
    assert!(raft.last_applied_index().unwrap() > image_applied);
    raft.shutdown().await;

    let restarted = single_node(image.path(), false).await;
    restarted.linearize().await.expect("a linearized read");
    let clusters = restarted.state().clusters().expect("readable");
    for i in 0..written {
        assert_eq!(clusters.get(&format!("c{i}")).and_then(|c| c.weight), Some(i), "acknowledged write c{i}");
    }
    restarted.shutdown().await;
}

/// The index a crash image of `dir` has applied.
async fn applied_in_crash_image(dir: &std::path::Path) -> u64 {
    let image = tempfile::tempdir().unwrap();
    crash_image(dir, image.path());
    let Store { mut state_machine, .. } = open(image.path());
    state_machine.applied_state().await.unwrap().0.map_or(0, |l| l.index)
}

/// What the timer and shutdown rely on: a sync makes every apply committed before it durable.
#[tokio::test]
async fn a_sync_makes_every_apply_before_it_durable() {
    let dir = tempfile::tempdir().unwrap();
    let Store { mut state_machine, .. } = open(dir.path());
    let mut mem = MemState::default();
    let last = apply_random(&mut state_machine, &mut mem, 23, 200).await;
    assert!(applied_in_crash_image(dir.path()).await < last, "applies are committed without a sync");
    state_machine.sync_now().await.unwrap();
    assert_eq!(applied_in_crash_image(dir.path()).await, last, "after the sync, a crash keeps them all");
}

/// A durable commit records redb's allocator state, so a node that crashed opens its database
/// without walking every page of it (over 30 s for a follower killed at a million jobs), and
/// applies what the crash lost again from the log as before.
#[tokio::test]
async fn a_crashed_database_opens_without_walking_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let Store { mut state_machine, .. } = open(dir.path());
    let mut mem = MemState::default();
    let synced = apply_random(&mut state_machine, &mut mem, 41, 300).await;
    state_machine.sync_now().await.unwrap();
    // Then unsynced applies, which a crash loses.
    apply_random_from(&mut state_machine, &mut mem, 42, synced, synced + 100, |_, _| {}).await;
    let image = tempfile::tempdir().unwrap();
    crash_image(dir.path(), image.path());

    let (db, repaired) = open_db(&image.path().join(keys::DB_FILE), &StoreOptions::default()).expect("open the image");
    assert!(!repaired, "the crash image was repaired: its last durable commit kept no allocator state");
    drop(db);
    let Store { mut state_machine, .. } = open(image.path());
    let applied = state_machine.applied_state().await.unwrap().0.map_or(0, |l| l.index);
    assert!(applied >= synced, "the image holds the synced applies: applied {applied}, synced {synced}");
}

#[tokio::test]
async fn records_of_the_layout_before_manifests_moved_out_are_read_whole() {
    // Before: every pending job's manifest inline in its record, its `sm_pending` value empty.
    reopens_matching_the_model_after(27, |tx| {
        let mut jobs = tx.open_table(keys::JOBS).unwrap();
        let mut pending = tx.open_table(keys::PENDING).unwrap();
        let ids: Vec<Vec<u8>> =
            redb::ReadableTable::iter(&pending).unwrap().map(|r| r.unwrap().0.value().to_vec()).collect();
        assert!(!ids.is_empty(), "the seed leaves pending jobs");
        for id in ids {
            let record = redb::ReadableTable::get(&jobs, id.as_slice()).unwrap().expect("its record").value().to_vec();
            let manifest =
                redb::ReadableTable::get(&pending, id.as_slice()).unwrap().expect("manifest").value().to_vec();
            let job = keys::join_job(&record, |_| Ok(Some(manifest))).unwrap();
            assert!(matches!(&job.dispatch, crate::model::Dispatch::Pending { manifest } if !manifest.is_empty()));
            jobs.insert(id.as_slice(), keys::encode(&job).as_slice()).unwrap();
            pending.insert(id.as_slice(), [].as_slice()).unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn snapshot_files_carry_whole_records_so_older_nodes_can_install_them() {
    let dir = tempfile::tempdir().unwrap();
    let Store { state_machine: mut sm, .. } = open(dir.path());
    let mut mem = MemState::default();
    apply_random(&mut sm, &mut mem, 27, 600).await;
    let pending: Vec<&Job> = mem
        .jobs
        .values()
        .filter(|j| matches!(j.dispatch, crate::model::Dispatch::Pending { .. }) && j.deleted_at_ms.is_none())
        .collect();
    assert!(!pending.is_empty(), "the seed leaves pending jobs");
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
    let path = dir.path().join("snapshots").join(format!("{}.snap", snapshot.meta.snapshot_id));
    let (mut jobs, mut pending_values) = (BTreeMap::new(), Vec::new());
    snapshot::read_records(&path, |r| {
        match usize::from(r.tree) {
            keys::T_JOBS => drop(jobs.insert(r.key, keys::decode::<Job>(&r.value).unwrap())),
            keys::T_PENDING => pending_values.push(r.value),
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    // Each job record whole, manifest and all, as a node of the layout before reads it.
    let want: BTreeMap<Vec<u8>, Job> = mem.jobs.iter().map(|(id, j)| (id.as_bytes().to_vec(), j.clone())).collect();
    assert_eq!(jobs, want, "the file's job records");
    assert_eq!(pending_values.len(), pending.len());
    assert!(pending_values.iter().all(Vec::is_empty), "sm_pending values in the file are empty, as before");
}

#[tokio::test]
async fn dispatched_jobs_fill_their_pages_though_each_came_with_a_large_manifest() {
    // As on a leader: time-ordered ids, each job submitted with a manifest of a few KiB and
    // dispatched an apply later, when its record loses the manifest.
    let dir = tempfile::tempdir().unwrap();
    {
        let Store { mut state_machine, .. } = open(dir.path());
        let manifest = format!("{{\"spec\":{{\"sparkConf\":\"{}\"}}}}", "x".repeat(3000));
        let id = |n: u64| format!("a-{n:08}");
        let mut index = 0;
        for batch in 0..200u64 {
            let mut cmds: Vec<Command> = (0..10)
                .map(|i| {
                    let mut job = sample_job(&id(batch * 10 + i), "alice", batch);
                    job.dispatch = crate::model::Dispatch::Pending { manifest: manifest.clone() };
                    Command::Submit { job: Box::new(job), idempotency_key: None }
                })
                .collect();
            if batch > 0 {
                cmds.extend((0..10).map(|i| Command::RecordDispatch {
                    id: id((batch - 1) * 10 + i),
                    outcome: DispatchOutcome::Created,
                }));
            }
            index += 1;
            state_machine.apply(vec![entry(index, Command::Batch(cmds))]).await.expect("apply");
        }
    }
    let db = db_of(dir.path());
    let read = db.begin_read().unwrap();
    let stats = redb::ReadableTableMetadata::stats(&read.open_table(keys::JOBS).unwrap()).unwrap();
    let leaves = stats.leaf_pages() * db.begin_write().unwrap().stats().unwrap().page_size() as u64;
    eprintln!("sm_jobs: {leaves} bytes of leaves for {} bytes of records", stats.stored_bytes());
    assert!(
        leaves <= 2 * stats.stored_bytes(),
        "sm_jobs holds {leaves} bytes of leaf pages for {} bytes of records",
        stats.stored_bytes()
    );
}

#[tokio::test]
async fn a_pending_job_of_the_layout_before_keeps_its_manifest_when_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let job = sample_job("a-1", "alice", 1);
    {
        let Store { mut state_machine, .. } = open(dir.path());
        let submit = Command::Submit { job: Box::new(job.clone()), idempotency_key: None };
        state_machine.apply(vec![entry(1, submit)]).await.expect("apply");
    }
    {
        // The record as the layout before stored it: the manifest inline, no `sm_pending` value.
        let db = db_of(dir.path());
        let tx = db.begin_write().unwrap();
        tx.open_table(keys::JOBS).unwrap().insert(b"a-1".as_slice(), keys::encode(&job).as_slice()).unwrap();
        tx.open_table(keys::PENDING).unwrap().insert(b"a-1".as_slice(), [].as_slice()).unwrap();
        tx.commit().unwrap();
    }
    let Store { mut state_machine, reader, .. } = open(dir.path());
    // A vanished mark leaves the job pending, and its record is rewritten in this layout.
    let observed = Observed { resource_version: 3, vanished: true, ..Observed::default() };
    let status = Command::RecordStatus { updates: vec![StatusUpdate { id: "a-1".into(), observed: observed.clone() }] };
    state_machine.apply(vec![entry(2, status)]).await.expect("apply");
    let want = Job { observed: Some(observed), ..job };
    assert_eq!(reader.job("a-1").unwrap().as_ref(), Some(&want));
    assert_eq!(reader.pending_dispatch().unwrap(), vec![want]);
}

/// openraft's core waits for a purge, so the purge only hides the entries; the reclaimer then
/// persists the bound and deletes the segments behind it. Once the node has stopped, both are
/// done: the reopened store reports the bound and the files are gone.
#[tokio::test]
async fn a_snapshot_lets_the_log_behind_it_go_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { log_segment_bytes: 4096, ..StoreOptions::default() };
    let store = Store::open(dir.path(), &options).expect("open");
    let network = crate::NetworkFactory::new(1, crate::ClusterSecret::new("test"), None);
    let settings = crate::RaftSettings { logs_kept_after_snapshot: 0, ..crate::RaftSettings::default() };
    let raft = crate::RaftNode::start(1, store, network, &settings).await.expect("raft starts");
    let me = crate::NodeInfo { raft_addr: "127.0.0.1:1".into(), api_addr: "127.0.0.1:2".into() };
    raft.initialize(BTreeMap::from([(1, me)])).await.expect("initialized");
    for i in 0..400u32 {
        let cmd = Command::SetCluster { id: format!("cluster-{i}"), weight: Some(i), cordoned: None };
        raft.write(cmd).await.expect("acknowledged");
    }
    let log_dir = dir.path().join("raft-log");
    let files = |suffix: &str| -> usize {
        std::fs::read_dir(&log_dir)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .count()
    };
    let segments_before = files(".wal");
    assert!(segments_before > 3, "{segments_before} segments");
    raft.trigger_snapshot().await.expect("snapshot");
    let applied = raft.last_applied_index().expect("applied");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while raft.status().purged_index < Some(applied) {
        assert!(tokio::time::Instant::now() < deadline, "the log was not purged: {:?}", raft.status());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    raft.shutdown().await;
    drop(raft);

    // The database is free once every handle, the reclaimer's among them, is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut store = loop {
        match Store::open(dir.path(), &options) {
            Ok(store) => break store,
            Err(e) => assert!(std::time::Instant::now() < deadline, "reopen: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let state = store.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(applied), "the bound was persisted");
    assert_eq!(files(".wal"), 1, "only the active segment is left of {segments_before}");
    assert_eq!(files(".deleting"), 0);
    let cluster = store.reader.clusters().expect("readable").remove("cluster-399").expect("the last write");
    assert_eq!(cluster.weight, Some(399));
}
