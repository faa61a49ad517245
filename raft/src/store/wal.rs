//! The Raft log as append-only segment files, beside sled rather than in it.
//!
//! In a sled tree every append rewrote B-tree pages and every purge read the purged pages back
//! from disk, values and all, only to delete their keys: heaptrack showed ~100 MB of transient
//! heap per purge at 60,000 jobs, which glibc then kept resident. Here an append is one write at
//! the end of the active segment and one `fdatasync`; a purge deletes whole files; reads are
//! `pread`s, served from the kernel's page cache rather than the heap.
//!
//! Layout: `<dir>/<index of the first record, 20 digits>.wal`. A record is
//! `len: u32 LE | crc32: u32 LE | index: u64 LE | payload (len bytes)`; the CRC covers index and
//! payload. The records of a segment have consecutive indexes. An append opens a new segment when
//! the active one has reached `segment_bytes`, or when it does not follow the last index (after a
//! snapshot install purged past the log's end); a batch never spans two segments.
//!
//! Durability: [`Wal::append`] writes; the caller syncs the returned file before acknowledging.
//! Creating a segment syncs the directory. [`Wal::truncate`] deletes later segments newest first,
//! then cuts the file, syncing both before it returns, so a crash never leaves a gap or brings
//! removed records back. [`Wal::purge`] only lets go of whole segments: the caller persists the
//! bound, then [`retire`]s their files and deletes them in the background, so a crash leaves
//! each one whole under its name or under a name the open deletes. Recovery reads every
//! segment: a record cut short or failing its CRC in the last segment is an append a crash
//! interrupted before its sync (never acknowledged), and the segment is cut there; anywhere
//! else it is corruption, and the open fails naming the file and offset.
//!
//! Preallocation: a new segment is, when one is ready, a file of `segment_bytes` zeros written
//! and synced in the background beforehand ([`SPARE`]), renamed into place. Appending into a
//! growing file makes every `fdatasync` also write the inode (its size changed) and the
//! block-mapping metadata of the new blocks, each a synchronous disk write of its own; into
//! blocks already written, an `fdatasync` writes the data and flushes, nothing more (measured
//! under the bench's load: two of the four waits of every log sync were that metadata). A
//! record's length is never zero (a payload is an encoded entry), so a zero length where a
//! record would start is the end of the records; after it the segment must hold only zeros. When
//! no spare is ready the segment grows as before, and both kinds read the same.
//!
//! Every node rolls to a new segment at about the same moment (they append the same log), and
//! each then writes a whole segment of zeros: written at once, three 16 MiB spares took the
//! disk from the log syncs for half a second, and every such roll left a request window with a
//! p99 of 60-130 ms (the bench at half its saturation rate, a roll every ~6.3 s). A spare is
//! therefore spread over a share of the time the segment before took to fill
//! ([`spare_spread`]), in small synced chunks, and is still ready long before it is needed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::StoreError;

const HEADER: u64 = 16;
const SUFFIX: &str = ".wal";
/// A purged segment being deleted is renamed to its name + `DELETING` first (see [`retire`]).
const DELETING: &str = ".deleting";
/// A preallocated segment waiting to become the next one; a partial one is `SPARE` + `.part`.
const SPARE: &str = "spare-segment";
/// Zeros are written to a spare in chunks of this size, each synced before the next, so the
/// disk never has more than a chunk of them queued ahead of the log's own syncs.
const ZERO_CHUNK: usize = 256 << 10;
/// A spare is written over this share of the time the last segment took to fill...
const SPARE_SPREAD: f64 = 0.5;
/// ...and over this much at most: a segment can take hours to fill on a quiet node, and a spare
/// spread that thin would not be ready when a busy spell starts.
const MAX_SPARE_SPREAD: Duration = Duration::from_secs(10);

/// How long to spread the writing of the next spare over, given how long the segment just
/// filled took (`None`: not known, as for the first spare after opening the log; written at
/// once).
pub(crate) fn spare_spread(filled_in: Option<Duration>) -> Option<Duration> {
    filled_in.map(|d| d.mul_f64(SPARE_SPREAD).min(MAX_SPARE_SPREAD))
}

/// The segment files of one node's Raft log. Not synchronized: [`super::LogStore`] holds it in
/// a mutex and does blocking I/O (syncs, reads) outside it where it can.
pub(crate) struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Oldest first; the last is the one appends go to.
    segments: Vec<Segment>,
    /// Records at or below this index are purged: never returned, and their files deleted once
    /// no record above it shares them.
    purged: Option<u64>,
    /// The next segment's file, preallocated in the background (see the module doc).
    spare: Spare,
}

enum Spare {
    None,
    Writing(std::thread::JoinHandle<io::Result<PathBuf>>),
    Ready(PathBuf),
}

struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Byte offset of each record; record `i` has index `first + i`.
    starts: Vec<u64>,
    len: u64,
    /// When this process opened or created the segment: how long it takes to fill paces the
    /// writing of the next spare.
    opened: Instant,
}

impl Segment {
    fn last(&self) -> Option<u64> {
        (!self.starts.is_empty()).then(|| self.first + self.starts.len() as u64 - 1)
    }

    fn end_of(&self, i: usize) -> u64 {
        self.starts.get(i + 1).copied().unwrap_or(self.len)
    }
}

/// Consecutive records of one segment, to read without holding the [`Wal`]: see [`Span::read`].
pub(crate) struct Span {
    file: Arc<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
    first: u64,
    count: usize,
}

impl Span {
    /// Reads the span with one `pread` and hands each record's index and payload to `each`.
    pub(crate) fn read(&self, mut each: impl FnMut(u64, &[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.offset)?;
        let mut at = 0usize;
        for i in 0..self.count {
            let expected = self.first + i as u64;
            let payload = parse(&buf[at..], expected).map_err(|detail| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("Raft log segment {} at byte {}: {detail}", self.path.display(), self.offset + at as u64),
                )
            })?;
            each(expected, payload)?;
            at += HEADER as usize + payload.len();
        }
        Ok(())
    }
}

/// The payload of the record at the start of `bytes`, which must have index `expected`, or why
/// it is not that whole record.
fn parse(bytes: &[u8], expected: u64) -> Result<&[u8], String> {
    if bytes.len() < HEADER as usize {
        return Err(format!("record header cut short ({} bytes)", bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let Some(body) = bytes.get(8..HEADER as usize + len) else {
        return Err(format!("record of {len} bytes cut short ({} present)", bytes.len() - HEADER as usize));
    };
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".to_string());
    }
    let index = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    if index != expected {
        return Err(format!("index {index}, expected {expected}"));
    }
    Ok(&body[8..])
}

fn frame(buf: &mut Vec<u8>, index: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a log entry is far below 4 GiB");
    buf.extend_from_slice(&len.to_le_bytes());
    let crc_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let body_at = buf.len();
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[body_at..]);
    buf[crc_at..body_at].copy_from_slice(&crc.to_le_bytes());
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` zeros to `dir/SPARE`, synced, and returns its path; reuses a finished one.
/// The name changes only once the zeros are on disk, so a spare is never half written. With a
/// `spread`, a chunk is not written before its share of it has passed.
fn write_spare(dir: &Path, bytes: u64, spread: Option<Duration>) -> io::Result<PathBuf> {
    let started = Instant::now();
    let ready = dir.join(SPARE);
    if std::fs::metadata(&ready).is_ok_and(|m| m.len() == bytes) {
        return Ok(ready);
    }
    let part = dir.join(format!("{SPARE}.part"));
    let file = OpenOptions::new().write(true).create(true).truncate(true).open(&part)?;
    let zeros = vec![0u8; ZERO_CHUNK.min(bytes as usize)];
    let mut at = 0u64;
    while at < bytes {
        if let Some(spread) = spread {
            let due = started + spread.mul_f64(at as f64 / bytes as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let n = zeros.len().min((bytes - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        file.sync_data()?;
        at += n as u64;
    }
    std::fs::rename(&part, &ready)?;
    Ok(ready)
}

/// Renames purged segment files (from [`Wal::purge`], their bound persisted) to names
/// [`Wal::open`] deletes, durably, and returns the new names: a file is then deleted a few MiB
/// at a time, and a crash half-way through leaves a cut file that the open must not take for
/// a damaged segment.
pub(crate) fn retire(files: Vec<PathBuf>) -> io::Result<Vec<PathBuf>> {
    let mut retired = Vec::with_capacity(files.len());
    for path in files {
        let mut name = path.clone().into_os_string();
        name.push(DELETING);
        let to = PathBuf::from(name);
        match std::fs::rename(&path, &to) {
            Ok(()) => retired.push(to),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    // The segments of one log share its directory.
    if let Some(dir) = retired.first().and_then(|path| path.parent()) {
        sync_dir(dir)?;
    }
    Ok(retired)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

impl Wal {
    /// Opens the log in `dir` (created if missing), recovering from an interrupted append.
    /// `purged` is the last purged index, as persisted before the purge deleted anything.
    pub(crate) fn open(dir: &Path, segment_bytes: u64, purged: Option<u64>) -> Result<Wal, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut firsts = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let item = item.map_err(io_err(dir))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name.strip_suffix(SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
                firsts.push(first);
            } else if name.ends_with(DELETING) {
                // A purged segment whose deletion the stop interrupted.
                let _ = std::fs::remove_file(item.path());
            }
        }
        firsts.sort_unstable();
        let mut segments: Vec<Segment> = Vec::with_capacity(firsts.len());
        for (n, &first) in firsts.iter().enumerate() {
            let segment = Self::recover(dir, first, n + 1 == firsts.len())?;
            if let Some(prev) = segments.last().and_then(Segment::last)
                && first <= prev
            {
                return Err(StoreError::LogSegment {
                    path: segment.path,
                    offset: 0,
                    detail: format!("starts at index {first}, at or below the previous segment's last ({prev})"),
                });
            }
            segments.push(segment);
        }
        // A spare that was still being written when the node stopped is of no use.
        let _ = std::fs::remove_file(dir.join(format!("{SPARE}.part")));
        let mut wal = Wal { dir: dir.to_path_buf(), segment_bytes, segments, purged, spare: Spare::None };
        wal.prepare_spare(None);
        Ok(wal)
    }

    /// Starts writing the next segment's file in the background, spread over `spread`, unless
    /// one is ready or being written.
    fn prepare_spare(&mut self, spread: Option<Duration>) {
        if !matches!(self.spare, Spare::None) {
            return;
        }
        let (dir, bytes) = (self.dir.clone(), self.segment_bytes);
        let write = move || write_spare(&dir, bytes, spread);
        match std::thread::Builder::new().name("wal-prealloc".into()).spawn(write) {
            Ok(handle) => self.spare = Spare::Writing(handle),
            Err(e) => tracing::warn!(error = %e, "could not start preallocating the next log segment"),
        }
    }

    /// Collects a finished preparation (blocking until it ends if `wait`).
    fn poll_spare(&mut self, wait: bool) {
        let Spare::Writing(handle) = &self.spare else { return };
        if !wait && !handle.is_finished() {
            return;
        }
        let Spare::Writing(handle) = std::mem::replace(&mut self.spare, Spare::None) else { unreachable!() };
        match handle.join() {
            Ok(Ok(path)) => self.spare = Spare::Ready(path),
            Ok(Err(e)) => tracing::warn!(dir = %self.dir.display(), error = %e, "preallocating a log segment failed"),
            Err(_) => tracing::warn!(dir = %self.dir.display(), "preallocating a log segment panicked"),
        }
    }

    /// The preallocated file for a new segment, if one is ready. The caller renames it before
    /// preparing the next: started earlier, the preparation would find this finished spare
    /// still in place and hand it out a second time.
    fn take_spare(&mut self) -> Option<PathBuf> {
        self.poll_spare(false);
        match std::mem::replace(&mut self.spare, Spare::None) {
            Spare::Ready(path) => Some(path),
            other => {
                self.spare = other;
                None
            }
        }
    }

    fn recover(dir: &Path, first: u64, is_last: bool) -> Result<Segment, StoreError> {
        let path = dir.join(format!("{first:020}{SUFFIX}"));
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let mut starts = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let expected = first + starts.len() as u64;
            let found = if bytes[at..].starts_with(&[0; 4]) {
                // The zeros of a preallocated segment follow its last record.
                match bytes[at..].iter().position(|b| *b != 0) {
                    None => break,
                    Some(n) => Err(format!("a non-zero byte {n} bytes after the end of the records")),
                }
            } else {
                parse(&bytes[at..], expected).map(<[u8]>::len)
            };
            let payload_len = match found {
                Ok(len) => len,
                Err(detail) if !is_last => {
                    return Err(StoreError::LogSegment { path, offset: at as u64, detail });
                }
                Err(detail) => {
                    tracing::warn!(
                        path = %path.display(), offset = at, cut = bytes.len() - at, %detail,
                        "cutting an append a crash interrupted before its sync"
                    );
                    file.set_len(at as u64).map_err(io_err(&path))?;
                    file.sync_data().map_err(io_err(&path))?;
                    break;
                }
            };
            starts.push(at as u64);
            at += HEADER as usize + payload_len;
        }
        Ok(Segment { first, path, file: Arc::new(file), starts, len: at as u64, opened: Instant::now() })
    }

    /// The index of the last record not purged.
    pub(crate) fn last_index(&self) -> Option<u64> {
        let last = self.segments.iter().rev().find_map(Segment::last)?;
        (Some(last) > self.purged).then_some(last)
    }

    /// The spans holding the records with indexes in `from..to` that are not purged.
    pub(crate) fn spans(&self, from: u64, to: u64) -> Vec<Span> {
        let from = from.max(self.purged.map_or(0, |p| p + 1));
        let mut spans = Vec::new();
        for s in &self.segments {
            let Some(last) = s.last() else { continue };
            let (lo, hi) = (from.max(s.first), to.min(last + 1));
            if lo >= hi {
                continue;
            }
            let (i, j) = ((lo - s.first) as usize, (hi - s.first) as usize);
            let offset = s.starts[i];
            spans.push(Span {
                file: s.file.clone(),
                path: s.path.clone(),
                offset,
                len: s.end_of(j - 1) - offset,
                first: lo,
                count: j - i,
            });
        }
        spans
    }

    /// Writes `records` (consecutive indexes, in order) at the end of the log and returns the
    /// file to sync before they count as durable (`None`: nothing was written). They are
    /// readable at once.
    pub(crate) fn append(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<Option<Arc<File>>> {
        let Some(&(first, _)) = records.first() else {
            return Ok(None);
        };
        let last = self.segments.iter().rev().find_map(Segment::last);
        if let Some(last) = last
            && first <= last
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("append at index {first} over the log's last index {last}; truncate first"),
            ));
        }
        if records.iter().enumerate().any(|(n, (index, _))| *index != first + n as u64) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "appended indexes are not consecutive"));
        }
        let full = self.segments.last().filter(|s| s.len >= self.segment_bytes);
        let filled_in = full.map(|s| s.opened.elapsed());
        let roll = match self.segments.last() {
            None => true,
            Some(s) => full.is_some() || (s.last().is_some() && last.map(|l| l + 1) != Some(first)),
        };
        if roll {
            self.create(first, filled_in)?;
        } else if let Some(s) = self.segments.last_mut()
            && s.starts.is_empty()
            && s.first != first
        {
            // An empty segment named for another index (its records were truncated away).
            let path = s.path.clone();
            self.segments.pop();
            std::fs::remove_file(&path)?;
            self.create(first, None)?;
        }
        let s = self.segments.last_mut().expect("a segment to append to");
        let mut buf = Vec::with_capacity(records.iter().map(|(_, p)| p.len() + HEADER as usize).sum());
        let mut starts = Vec::with_capacity(records.len());
        for (index, payload) in records {
            starts.push(s.len + buf.len() as u64);
            frame(&mut buf, *index, payload);
        }
        s.file.write_all_at(&buf, s.len)?;
        s.len += buf.len() as u64;
        s.starts.extend(starts);
        Ok(Some(s.file.clone()))
    }

    /// Starts the segment whose first record is `first`: the preallocated spare if one is
    /// ready, otherwise an empty file that grows with its records. `filled_in`: how long the
    /// segment before took to fill, if it is full.
    fn create(&mut self, first: u64, filled_in: Option<Duration>) -> io::Result<()> {
        let path = self.dir.join(format!("{first:020}{SUFFIX}"));
        let preallocated = self.take_spare().and_then(|spare| {
            std::fs::rename(&spare, &path)
                .and_then(|()| OpenOptions::new().read(true).write(true).open(&path))
                .inspect_err(
                    |e| tracing::warn!(path = %path.display(), error = %e, "using a preallocated log segment failed"),
                )
                .ok()
        });
        self.prepare_spare(spare_spread(filled_in));
        let file = match preallocated {
            Some(file) => file,
            None => OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?,
        };
        sync_dir(&self.dir)?;
        let opened = Instant::now();
        self.segments.push(Segment { first, path, file: Arc::new(file), starts: Vec::new(), len: 0, opened });
        Ok(())
    }

    /// Removes every record at or after `index`, durably, before returning. Blocking.
    pub(crate) fn truncate(&mut self, index: u64) -> io::Result<()> {
        let mut removed_files = false;
        while let Some(s) = self.segments.last()
            && s.first >= index
            && self.segments.len() > 1
        {
            std::fs::remove_file(&s.path)?;
            self.segments.pop();
            removed_files = true;
        }
        if removed_files {
            sync_dir(&self.dir)?;
        }
        if let Some(s) = self.segments.last_mut()
            && index < s.first + s.starts.len() as u64
        {
            let keep = index.saturating_sub(s.first) as usize;
            let cut = s.starts[keep];
            s.file.set_len(cut)?;
            s.file.sync_data()?;
            s.starts.truncate(keep);
            s.len = cut;
        }
        Ok(())
    }

    /// Marks every record at or below `index` purged and lets go of the segments holding only
    /// such records, the active one excepted; returns their files. The caller persists `index`
    /// and then deletes them (see [`retire`]): until then a restart finds them whole, behind
    /// the bound it persisted last.
    pub(crate) fn purge(&mut self, index: u64) -> Vec<PathBuf> {
        self.purged = self.purged.max(Some(index));
        let mut files = Vec::new();
        while self.segments.len() > 1 && self.segments[0].last().is_none_or(|last| last <= index) {
            files.push(self.segments.remove(0).path);
        }
        files
    }

    /// Deletes every segment (a migration that must start over). Blocking.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        for s in self.segments.drain(..) {
            std::fs::remove_file(&s.path)?;
        }
        sync_dir(&self.dir)
    }

    /// Bytes in the segment files.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Waits for the spare being written, so that the next segment is preallocated.
    #[cfg(test)]
    pub(crate) fn wait_for_spare(&mut self) {
        self.poll_spare(true);
    }
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
