use std::io::Write;

use super::*;

/// A small segment size, so that a few dozen records span several files.
const SMALL: u64 = 512;

fn payload(index: u64, version: u8) -> Vec<u8> {
    format!("entry {index} v{version} ").repeat(1 + (index % 5) as usize).into_bytes()
}

fn append(wal: &mut Wal, indexes: std::ops::RangeInclusive<u64>, version: u8) {
    let records: Vec<_> = indexes.map(|i| (i, payload(i, version))).collect();
    if let Some(file) = wal.append(&records).expect("append") {
        file.sync_data().expect("sync");
    }
}

/// A log in `dir` holding 1..=5×batches, appended five records at a time.
fn filled(dir: &Path, batches: u64) -> Wal {
    let mut wal = Wal::open(dir, SMALL, None).expect("open");
    for batch in 0..batches {
        append(&mut wal, batch * 5 + 1..=batch * 5 + 5, 1);
    }
    wal
}

/// Purges up to `index` and deletes the segments let go, as the log store does once it has
/// persisted the bound.
fn purge(wal: &mut Wal, index: u64) {
    for file in retire(wal.purge(index)).expect("retire") {
        std::fs::remove_file(file).expect("delete");
    }
}

fn read_all(wal: &Wal, from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for span in wal.spans(from, to) {
        span.read(|index, bytes| {
            out.push((index, bytes.to_vec()));
            Ok(())
        })
        .expect("read");
    }
    out
}

fn expected(indexes: std::ops::RangeInclusive<u64>, version: u8) -> Vec<(u64, Vec<u8>)> {
    indexes.map(|i| (i, payload(i, version))).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

#[test]
fn records_survive_reopening_across_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = filled(dir.path(), 20);
    assert!(wal.segment_count() > 3, "{} segments", wal.segment_count());
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=100, 1));
    drop(wal);

    let wal = Wal::open(dir.path(), SMALL, None).expect("reopen");
    assert_eq!(wal.last_index(), Some(100));
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=100, 1));
    assert_eq!(read_all(&wal, 37, 64), expected(37..=63, 1), "a range inside the log, across segments");
}

#[test]
fn an_append_cut_short_by_a_crash_is_dropped_on_open_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path(), 1 << 20, None).expect("open");
    append(&mut wal, 1..=10, 1);
    let acknowledged = wal.bytes();
    drop(wal);
    // What a crash leaves of an append that had not reached its sync: one whole record, then
    // part of the next.
    let last = segment_files(dir.path()).pop().expect("a segment");
    let mut torn = Vec::new();
    frame(&mut torn, 11, &payload(11, 1));
    frame(&mut torn, 12, &payload(12, 1));
    torn.truncate(torn.len() - 3);
    std::fs::OpenOptions::new().append(true).open(&last).expect("open segment").write_all(&torn).expect("tear");

    let mut wal = Wal::open(dir.path(), 1 << 20, None).expect("reopen");
    assert_eq!(wal.last_index(), Some(11), "the whole record stays, the torn one goes");
    assert_eq!(std::fs::metadata(&last).expect("stat").len(), wal.bytes());
    assert!(wal.bytes() > acknowledged);
    append(&mut wal, 12..=13, 2);
    drop(wal);
    let wal = Wal::open(dir.path(), 1 << 20, None).expect("reopen again");
    let mut want = expected(1..=11, 1);
    want.extend(expected(12..=13, 2));
    assert_eq!(read_all(&wal, 0, u64::MAX), want);
}

#[test]
fn a_damaged_record_before_the_last_segment_fails_the_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = filled(dir.path(), 10);
    drop(wal);
    let first = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).expect("read");
    let at = bytes.len() - 2;
    bytes[at] ^= 0xff;
    std::fs::write(&first, &bytes).expect("damage");

    match Wal::open(dir.path(), SMALL, None) {
        Err(StoreError::LogSegment { path, detail, .. }) => {
            assert_eq!(path, first);
            assert!(detail.contains("checksum"), "{detail}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a damaged acknowledged record was accepted"),
    }
    assert_eq!(std::fs::read(&first).expect("read"), bytes, "the failed open changed nothing");
}

#[test]
fn truncated_records_never_come_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = filled(dir.path(), 12);
    let files_before = segment_files(dir.path()).len();
    wal.truncate(23).expect("truncate");
    assert_eq!(wal.last_index(), Some(22));
    assert!(segment_files(dir.path()).len() < files_before, "later segments are deleted");
    append(&mut wal, 23..=30, 2);
    drop(wal);

    let mut wal = Wal::open(dir.path(), SMALL, None).expect("reopen");
    let mut want = expected(1..=22, 1);
    want.extend(expected(23..=30, 2));
    assert_eq!(read_all(&wal, 0, u64::MAX), want);

    // Truncating everything, then starting over at the same index.
    wal.truncate(1).expect("truncate all");
    assert_eq!(wal.last_index(), None);
    append(&mut wal, 1..=3, 3);
    drop(wal);
    let wal = Wal::open(dir.path(), SMALL, None).expect("reopen");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=3, 3));
}

#[test]
fn a_purge_deletes_whole_segments_and_hides_what_it_covers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = filled(dir.path(), 12);
    let files_before = segment_files(dir.path()).len();
    purge(&mut wal, 40);
    assert!(segment_files(dir.path()).len() < files_before, "segments wholly below 41 are deleted");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(41..=60, 1));
    drop(wal);
    // Records at or below the bound may remain in a shared segment; the persisted bound hides them.
    let mut wal = Wal::open(dir.path(), SMALL, Some(40)).expect("reopen");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(41..=60, 1));

    // A snapshot install purges past the end of the log; the next append follows the bound.
    purge(&mut wal, 100);
    assert_eq!(wal.last_index(), None);
    append(&mut wal, 101..=103, 2);
    drop(wal);
    let wal = Wal::open(dir.path(), SMALL, Some(100)).expect("reopen");
    assert_eq!(wal.last_index(), Some(103));
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(101..=103, 2));
}

#[test]
fn a_purged_segment_cut_short_by_a_crash_while_it_was_deleted_is_removed_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = filled(dir.path(), 12);
    let let_go = wal.purge(40);
    assert!(!let_go.is_empty());
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(41..=60, 1), "purged records are hidden at once");
    // Until the bound is persisted the files stay whole, so a restart behind the old bound
    // reads every record.
    drop(wal);
    let wal = Wal::open(dir.path(), SMALL, None).expect("reopen behind the old bound");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=60, 1));
    drop(wal);

    // With the bound persisted: renamed, then the crash came half-way through cutting one.
    let retired = retire(let_go).expect("retire");
    let half = std::fs::metadata(&retired[0]).expect("stat").len() / 2 + 3;
    std::fs::OpenOptions::new().write(true).open(&retired[0]).expect("open").set_len(half).expect("cut");
    let wal = Wal::open(dir.path(), SMALL, Some(40)).expect("a half-deleted segment does not fail the open");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(41..=60, 1));
    for file in &retired {
        assert!(!file.exists(), "{} is deleted on open", file.display());
    }
}

#[test]
fn an_append_that_does_not_follow_the_log_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path(), SMALL, None).expect("open");
    append(&mut wal, 1..=5, 1);
    let err = wal.append(&[(3, payload(3, 2))]).expect_err("an overwrite without truncate is refused");
    assert!(err.to_string().contains("truncate first"), "{err}");
    let err = wal.append(&[(6, payload(6, 2)), (8, payload(8, 2))]).expect_err("a gap inside a batch is refused");
    assert!(err.to_string().contains("consecutive"), "{err}");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=5, 1), "refused appends change nothing");
}

/// A log whose segments after the first are preallocated: `batches` batches of five records
/// with the spare finished before each, in segments of `bytes`.
fn preallocated(dir: &Path, bytes: u64, batches: u64) -> Wal {
    let mut wal = Wal::open(dir, bytes, None).expect("open");
    for batch in 0..batches {
        wal.wait_for_spare();
        append(&mut wal, batch * 5 + 1..=batch * 5 + 5, 1);
    }
    wal
}

#[test]
fn preallocated_segments_are_zeros_past_their_records_and_read_like_grown_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path(), 4096, None).expect("open");
    wal.wait_for_spare();
    append(&mut wal, 1..=5, 1);
    let first = segment_files(dir.path()).remove(0);
    assert_eq!(std::fs::metadata(&first).expect("stat").len(), 4096, "the segment came preallocated");
    let bytes = std::fs::read(&first).expect("read");
    assert!(bytes[wal.bytes() as usize..].iter().all(|b| *b == 0), "zeros after the records");
    drop(wal);

    let mut wal = Wal::open(dir.path(), 4096, None).expect("reopen");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=5, 1), "reading stops at the zeros");
    append(&mut wal, 6..=8, 2);
    drop(wal);
    let wal = Wal::open(dir.path(), 4096, None).expect("reopen again");
    let mut want = expected(1..=5, 1);
    want.extend(expected(6..=8, 2));
    assert_eq!(read_all(&wal, 0, u64::MAX), want, "appends after a reopen go where the records end");

    // Many preallocated segments, rolled over and reopened.
    let dir = tempfile::tempdir().expect("temp dir");
    let wal = preallocated(dir.path(), SMALL, 20);
    assert!(wal.segment_count() > 3, "{} segments", wal.segment_count());
    let files = segment_files(dir.path());
    assert!(files[1..].iter().all(|f| std::fs::metadata(f).expect("stat").len() >= SMALL));
    drop(wal);
    let wal = Wal::open(dir.path(), SMALL, None).expect("reopen");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=100, 1));
}

#[test]
fn a_spare_is_written_over_half_the_time_the_last_segment_took_to_fill() {
    // Rolls every ~6 s (the bench's log at 1,000 submissions/s) spread each spare over ~3 s; a
    // quiet log's spare is still ready within ten seconds; the first after an open is written
    // at once.
    assert_eq!(spare_spread(Some(Duration::from_secs(6))), Some(Duration::from_secs(3)));
    assert_eq!(spare_spread(Some(Duration::from_secs(3600))), Some(MAX_SPARE_SPREAD));
    assert_eq!(spare_spread(None), None);

    // A spread spare: its last chunk is written no earlier than its share of the spread, and
    // the file is whole zeros of the segment's size.
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = 4 * ZERO_CHUNK as u64;
    let spread = Duration::from_millis(400);
    let started = Instant::now();
    let path = write_spare(dir.path(), bytes, Some(spread)).expect("spare");
    assert!(started.elapsed() >= spread.mul_f64(0.75), "the last of four chunks waits for 3/4 of the spread");
    let written = std::fs::read(&path).expect("read spare");
    assert_eq!(written.len() as u64, bytes);
    assert!(written.iter().all(|b| *b == 0));
    assert!(!dir.path().join(format!("{SPARE}.part")).exists(), "renamed once whole");
}

#[test]
fn a_torn_append_into_a_preallocated_segment_is_cut_wherever_its_bytes_landed() {
    // What a crash leaves of an unsynced append: any of its pages, in any combination. Here the
    // first record and the start of the second did not reach the disk, the rest of the second
    // did: zeros where the next record should start, the torn record's bytes further on.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path(), 1 << 16, None).expect("open");
    wal.wait_for_spare();
    append(&mut wal, 1..=10, 1);
    let end = wal.bytes();
    drop(wal);
    let last = segment_files(dir.path()).pop().expect("a segment");
    let mut torn = Vec::new();
    frame(&mut torn, 11, &payload(11, 1));
    frame(&mut torn, 12, &payload(12, 1));
    let file = std::fs::OpenOptions::new().write(true).open(&last).expect("open segment");
    file.write_all_at(&torn[40..], end + 40).expect("tear");
    drop(file);

    let mut wal = Wal::open(dir.path(), 1 << 16, None).expect("reopen");
    assert_eq!(wal.last_index(), Some(10), "neither torn record stays");
    assert_eq!(std::fs::metadata(&last).expect("stat").len(), end, "the segment is cut where its records end");
    append(&mut wal, 11..=12, 2);
    drop(wal);
    let wal = Wal::open(dir.path(), 1 << 16, None).expect("reopen again");
    let mut want = expected(1..=10, 1);
    want.extend(expected(11..=12, 2));
    assert_eq!(read_all(&wal, 0, u64::MAX), want, "the torn records never come back");
}

#[test]
fn bytes_after_the_zeros_of_an_earlier_segment_fail_the_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path(), 4096, None).expect("open");
    wal.wait_for_spare();
    append(&mut wal, 1..=5, 1);
    // A snapshot install purges past the end; the next record starts a second segment, so the
    // first keeps its zeros.
    purge(&mut wal, 3);
    purge(&mut wal, 20);
    append(&mut wal, 21..=22, 1);
    drop(wal);
    let first = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).expect("read");
    let at = bytes.len() - 100;
    bytes[at] = 7;
    std::fs::write(&first, &bytes).expect("damage");

    match Wal::open(dir.path(), 4096, Some(20)) {
        Err(StoreError::LogSegment { path, detail, .. }) => {
            assert_eq!(path, first);
            assert!(detail.contains("after the end of the records"), "{detail}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a damaged segment was accepted"),
    }
}

#[test]
fn a_spare_cut_short_by_a_crash_is_discarded_and_a_finished_one_is_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = Wal::open(dir.path(), 4096, None).expect("open");
    wal.wait_for_spare();
    drop(wal);
    let spare = dir.path().join(SPARE);
    assert_eq!(std::fs::metadata(&spare).expect("a finished spare").len(), 4096);
    // A spare being written when the node stopped, with something that is not zeros in it.
    let part = dir.path().join(format!("{SPARE}.part"));
    std::fs::write(&part, [1u8; 100]).expect("partial spare");

    let mut wal = Wal::open(dir.path(), 4096, None).expect("reopen");
    assert!(!part.exists(), "the partial spare is removed");
    wal.wait_for_spare();
    append(&mut wal, 1..=5, 1);
    let first = segment_files(dir.path()).remove(0);
    assert_eq!(std::fs::metadata(&first).expect("stat").len(), 4096, "the finished spare became the segment");
    drop(wal);
    let wal = Wal::open(dir.path(), 4096, None).expect("reopen");
    assert_eq!(read_all(&wal, 0, u64::MAX), expected(1..=5, 1));
}
