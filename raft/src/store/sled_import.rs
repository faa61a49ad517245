//! Imports a node directory that versions before the redb file kept in sled (`dir/db`).
//!
//! sled 0.34 kept a node's memory growing with its state (about 170 MiB for a million bare
//! records, 400–660 MiB per node at a million jobs), and its iteration has no snapshot
//! isolation. The import copies the Raft metadata and every state-machine tree into the redb
//! file, after moving a Raft log that still older versions kept in sled into segment files.
//! The sled directory stays authoritative until the copy is committed durably: an import cut
//! short is redone whole on the next open. Then the directory is renamed (one atomic step, so
//! that a half-deleted sled directory is never opened) and deleted.

use std::path::Path;

use redb::TableHandle as _;

use super::keys::{self, JOB_COUNT, LAST_PURGED, SLED_DIR, SLED_DIR_IMPORTED, SLED_LOG};
use super::wal::Wal;
use super::{BulkLoad, StoreError, sync_dir};
use crate::typ::LogId;

/// Imports `dir/db` into `db` if it is there; removes what an earlier import left behind.
pub(super) fn import(dir: &Path, db: &redb::Database, log_dir: &Path, segment_bytes: u64) -> Result<(), StoreError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path: path.clone(), source }
    };
    let imported = dir.join(SLED_DIR_IMPORTED);
    if imported.exists() {
        std::fs::remove_dir_all(&imported).map_err(io_err(&imported))?;
    }
    let sled_path = dir.join(SLED_DIR);
    if !sled_path.exists() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let sled_err = |source| StoreError::Sled { path: sled_path.clone(), source };
    let db_err = |source: redb::Error| StoreError::Db { path: dir.join(keys::DB_FILE), source };
    let old = sled::Config::new().path(&sled_path).cache_capacity(16 << 20).open().map_err(sled_err)?;
    let old_meta = old.open_tree(keys::RAFT_META.name()).map_err(sled_err)?;
    let purged = match old_meta.get(LAST_PURGED).map_err(sled_err)? {
        None => None,
        Some(bytes) => keys::decode::<Option<LogId>>(&bytes)
            .map_err(|e| StoreError::Corrupt { tree: "raft_meta", detail: format!("last_purged: {e}") })?,
    };
    let mut wal = Wal::open(log_dir, segment_bytes, purged.map(|l| l.index))?;
    import_sled_log(&old, &sled_path, &mut wal, log_dir)?;
    drop(wal);

    let tables: Vec<keys::Table> = std::iter::once(keys::RAFT_META).chain(keys::SM_TABLES).collect();
    let mut load = BulkLoad::replacing(db, &tables).map_err(db_err)?;
    for (position, table) in tables.iter().enumerate() {
        if !old.tree_names().iter().any(|name| name == table.name().as_bytes()) {
            continue;
        }
        for item in old.open_tree(table.name()).map_err(sled_err)?.iter() {
            let (key, value) = item.map_err(sled_err)?;
            // A redb table knows its length; sled's count is not carried over.
            if table.name() == keys::SM_META.name() && key == JOB_COUNT {
                continue;
            }
            load.insert(position, key.to_vec(), value.to_vec()).map_err(db_err)?;
        }
    }
    let records = load.finish(|_| Ok(())).map_err(db_err)?;
    drop(old_meta);
    drop(old);

    // sled's threads may hold its directory's lock a moment after the last handle went; the
    // rename does not need it, and nothing opens the renamed directory again.
    std::fs::rename(&sled_path, &imported).map_err(io_err(&sled_path))?;
    sync_dir(dir).map_err(io_err(dir))?;
    std::fs::remove_dir_all(&imported).map_err(io_err(&imported))?;
    tracing::info!(
        records,
        ms = started.elapsed().as_millis() as u64,
        "imported the state an earlier version kept in sled"
    );
    Ok(())
}

/// Moves the Raft log out of the sled tree where still earlier versions kept it. The tree is
/// authoritative while it has entries (the node has not run on segments since), so segments
/// left by an interrupted move are discarded and the copy redone; the tree is dropped only
/// once the copy is synced.
fn import_sled_log(db: &sled::Db, db_path: &Path, wal: &mut Wal, log_dir: &Path) -> Result<(), StoreError> {
    let sled_err = |source| StoreError::Sled { path: db_path.to_path_buf(), source };
    let wal_err = |source| StoreError::Io { path: log_dir.to_path_buf(), source };
    if !db.tree_names().iter().any(|name| name == SLED_LOG.as_bytes()) {
        return Ok(());
    }
    let old = db.open_tree(SLED_LOG).map_err(sled_err)?;
    if !old.is_empty() {
        wal.clear().map_err(wal_err)?;
        let mut chunk = Vec::new();
        let mut copied = 0usize;
        for item in old.iter() {
            let (key, value) = item.map_err(sled_err)?;
            let index =
                u64::from_be_bytes(key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: SLED_LOG,
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
    db.drop_tree(SLED_LOG).map_err(sled_err)?;
    db.flush().map_err(sled_err)?;
    Ok(())
}

fn append_synced(wal: &mut Wal, records: &[(u64, Vec<u8>)]) -> std::io::Result<usize> {
    if let Some(file) = wal.append(records)? {
        file.sync_data()?;
    }
    Ok(records.len())
}
