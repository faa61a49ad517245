//! Snapshot files: the state-machine trees dumped record by record.
//!
//! Layout: the magic `BPGSNAP1`, then records `[tree u8][key len u32 LE][key][value len u32 LE]
//! [value]`, then the end marker `[0xFF][record count u64 LE]`. A file without a matching end
//! marker is refused, so a torn transfer or write is never installed.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

const MAGIC: &[u8; 8] = b"BPGSNAP1";
const END: u8 = 0xFF;

/// A snapshot as openraft moves it around: an open file plus its path, so that a received
/// snapshot can be renamed into place when it is installed.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
    /// Registers an opened file as being read for as long as it is open.
    _reading: Option<Reading>,
}

impl SnapshotFile {
    pub(crate) async fn create(path: PathBuf) -> io::Result<SnapshotFile> {
        let file = tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).await?;
        Ok(SnapshotFile { file, path, _reading: None })
    }

    /// Opens the snapshot at `path` for reading (openraft sends it to a follower from here),
    /// unless `readers` says it is being deleted.
    pub(crate) async fn open(path: PathBuf, readers: &Arc<SnapshotReaders>) -> io::Result<SnapshotFile> {
        let reading = readers.start_reading(&path)?;
        let file = tokio::fs::OpenOptions::new().read(true).open(&path).await?;
        Ok(SnapshotFile { file, path, _reading: Some(reading) })
    }

    /// Flushes, fsyncs and closes the file; returns its path.
    pub(crate) async fn finish(self) -> io::Result<PathBuf> {
        let SnapshotFile { mut file, path, .. } = self;
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        file.sync_all().await?;
        Ok(path)
    }
}

/// The snapshot files open for reading, and those being deleted. A stale file is cut down a few
/// MiB at a time (see `reclaim.rs`) only when no one reads it: openraft may still be sending it
/// to a follower, and a cut would tear the transfer, where an unlink leaves an open file whole.
#[derive(Debug, Default)]
pub(crate) struct SnapshotReaders {
    state: Mutex<Readers>,
}

#[derive(Debug, Default)]
struct Readers {
    open: HashMap<PathBuf, usize>,
    deleting: HashSet<PathBuf>,
}

impl SnapshotReaders {
    fn state(&self) -> std::sync::MutexGuard<'_, Readers> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn start_reading(self: &Arc<Self>, path: &Path) -> io::Result<Reading> {
        let mut state = self.state();
        if state.deleting.contains(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is being deleted", path.display())));
        }
        *state.open.entry(path.to_path_buf()).or_default() += 1;
        Ok(Reading { readers: self.clone(), path: path.to_path_buf() })
    }

    /// Deletes the file at `path`: cut down gradually when no one reads it (and no one may
    /// open it meanwhile), unlinked at once otherwise. A file already gone is not an error.
    pub(crate) fn delete(&self, path: &Path) -> io::Result<()> {
        {
            let mut state = self.state();
            if state.open.contains_key(path) {
                drop(state);
                return super::reclaim::unlink(path);
            }
            state.deleting.insert(path.to_path_buf());
        }
        let deleted = super::reclaim::delete_gradually(path);
        self.state().deleting.remove(path);
        deleted
    }
}

/// A snapshot file open for reading; see [`SnapshotReaders`].
#[derive(Debug)]
struct Reading {
    readers: Arc<SnapshotReaders>,
    path: PathBuf,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut state = self.readers.state();
        if let Some(n) = state.open.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                state.open.remove(&self.path);
            }
        }
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }
    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.file).poll_complete(cx)
    }
}

/// A snapshot being written is synced every this many bytes rather than once at its end. A
/// whole file's writeback at once (tens of MB at 100,000 jobs, on every node at the same
/// moment) queues ahead of every other sync on the disk: a 100 MiB file's `fsync` held a
/// 4 KiB append's `fdatasync` for 120-130 ms, the same file synced every MiB for at most 34
/// (RocksDB's `bytes_per_sync` does the same for its files).
const SYNC_EVERY_BYTES: u64 = 1 << 20;

/// Writes a snapshot file (blocking).
pub(crate) struct SnapshotWriter {
    out: BufWriter<std::fs::File>,
    count: u64,
    /// Bytes written since the file was created, and since it was last synced.
    written: u64,
    unsynced: u64,
}

impl SnapshotWriter {
    pub(crate) fn create(path: &Path) -> io::Result<SnapshotWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(SnapshotWriter { out, count: 0, written: MAGIC.len() as u64, unsynced: MAGIC.len() as u64 })
    }

    pub(crate) fn record(&mut self, tree: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
        debug_assert!(tree != END);
        self.out.write_all(&[tree])?;
        self.out.write_all(&(key.len() as u32).to_le_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(&(value.len() as u32).to_le_bytes())?;
        self.out.write_all(value)?;
        self.count += 1;
        let bytes = 9 + key.len() as u64 + value.len() as u64;
        self.written += bytes;
        self.unsynced += bytes;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.out.flush()?;
            self.out.get_ref().sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// The bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Writes the end marker and fsyncs; returns the number of records.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        self.out.write_all(&[END])?;
        self.out.write_all(&self.count.to_le_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.count)
    }
}

/// One record of a snapshot file.
pub(crate) struct Record {
    pub(crate) tree: u8,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// Reads every record of a snapshot file, checking the magic and the end marker.
pub(crate) fn read_records(path: &Path, mut each: impl FnMut(Record) -> io::Result<()>) -> io::Result<u64> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut input = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not a bpg snapshot (bad magic)"));
    }
    let mut count = 0u64;
    loop {
        let mut tree = [0u8; 1];
        input.read_exact(&mut tree).map_err(|_| bad("truncated: no end marker"))?;
        if tree[0] == END {
            let mut n = [0u8; 8];
            input.read_exact(&mut n).map_err(|_| bad("truncated end marker"))?;
            if u64::from_le_bytes(n) != count {
                return Err(bad("record count does not match the end marker"));
            }
            return Ok(count);
        }
        let key = read_chunk(&mut input).map_err(|_| bad("truncated record"))?;
        let value = read_chunk(&mut input).map_err(|_| bad("truncated record"))?;
        each(Record { tree: tree[0], key, value })?;
        count += 1;
    }
}

fn read_chunk(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// openraft may still be sending a snapshot when a newer one makes it stale: deleting it
    /// then leaves the transfer whole, and a file no one reads is deleted all the same.
    #[tokio::test]
    async fn a_stale_snapshot_being_sent_stays_whole_to_its_reader() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (sent, idle) = (dir.path().join("sent.snap"), dir.path().join("idle.snap"));
        let bytes: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&sent, &bytes).expect("write");
        std::fs::write(&idle, &bytes).expect("write");
        let readers = Arc::new(SnapshotReaders::default());

        let mut file = SnapshotFile::open(sent.clone(), &readers).await.expect("open");
        readers.delete(&sent).expect("delete the file being sent");
        readers.delete(&idle).expect("delete the idle file");
        assert!(!sent.exists() && !idle.exists());
        let mut read = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut read).await.expect("read");
        assert!(read == bytes, "the reader got {} of {} bytes, or other bytes", read.len(), bytes.len());
        drop(file);
        assert!(readers.state().open.is_empty() && readers.state().deleting.is_empty());
        assert!(SnapshotFile::open(sent, &readers).await.is_err(), "a deleted snapshot cannot be opened");
    }

    /// A build is paced by the bytes it has written against the last file's size: the count
    /// is the file's size but for the end marker, across the syncs made every MiB.
    #[test]
    fn a_writer_counts_the_bytes_of_the_file_it_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("counted.snap");
        let mut writer = SnapshotWriter::create(&path).expect("create");
        let value = vec![7u8; 300_000];
        for i in 0..10u32 {
            writer.record((i % 3) as u8, &i.to_be_bytes(), &value[..(i as usize * 30_000)]).expect("record");
        }
        let written = writer.written();
        assert_eq!(writer.finish().expect("finish"), 10);
        let end_marker = 1 + 8;
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), written + end_marker);
    }
}
