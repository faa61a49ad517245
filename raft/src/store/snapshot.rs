//! Snapshot files: the state-machine trees dumped record by record.
//!
//! Layout: the magic `BPGSNAP1`, then records `[tree u8][key len u32 LE][key][value len u32 LE]
//! [value]`, then the end marker `[0xFF][record count u64 LE]`. A file without a matching end
//! marker is refused, so a torn transfer or write is never installed.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
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
}

impl SnapshotFile {
    pub(crate) async fn create(path: PathBuf) -> io::Result<SnapshotFile> {
        let file = tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).await?;
        Ok(SnapshotFile { file, path })
    }

    pub(crate) async fn open(path: PathBuf) -> io::Result<SnapshotFile> {
        let file = tokio::fs::OpenOptions::new().read(true).open(&path).await?;
        Ok(SnapshotFile { file, path })
    }

    /// Flushes, fsyncs and closes the file; returns its path.
    pub(crate) async fn finish(self) -> io::Result<PathBuf> {
        let SnapshotFile { mut file, path } = self;
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        file.sync_all().await?;
        Ok(path)
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
    /// Bytes written since the file was last synced.
    unsynced: u64,
}

impl SnapshotWriter {
    pub(crate) fn create(path: &Path) -> io::Result<SnapshotWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(SnapshotWriter { out, count: 0, unsynced: MAGIC.len() as u64 })
    }

    pub(crate) fn record(&mut self, tree: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
        debug_assert!(tree != END);
        self.out.write_all(&[tree])?;
        self.out.write_all(&(key.len() as u32).to_le_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(&(value.len() as u32).to_le_bytes())?;
        self.out.write_all(value)?;
        self.count += 1;
        self.unsynced += 9 + key.len() as u64 + value.len() as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.out.flush()?;
            self.out.get_ref().sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
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
