//! Giving disk space back without stalling the node: purged log segments and stale snapshot
//! files are deleted on a thread of their own, a few MiB at a time.
//!
//! Every node builds a snapshot at about the same moment (they append the same log), and then
//! deletes the last snapshot file and the log segments the new one covers: tens of MB each at
//! the bench's state, hundreds at a million jobs. On ext4 mounted with `discard` (as the bench
//! machine's disk is), freeing blocks sends the disk a discard of them inside the journal
//! commit, and every `fdatasync` that needs a commit waits for it: a 48 MiB unlink held a
//! 4 KiB append's sync for 27 ms, and the same file cut 4 MiB at a time, 10 ms apart, for at
//! most 8 ms. Before, the purge also ran on openraft's core, which awaits it, and deleted its
//! segments holding the log's lock: each node's Raft stopped for the whole deletion (23 to
//! 102 ms per build, measured on the bench's nodes), appends and all.
//!
//! A stale snapshot file that openraft is still sending to a follower is unlinked whole
//! instead, which leaves the open handle readable where a cut would tear the transfer (see
//! `snapshot::SnapshotReaders`). Log segments are never read once purged: openraft postpones a
//! purge while a replication reads the entries it covers.
//!
//! [`Reclaimer::run`] queues a job; the jobs run one after another, in order, and dropping the
//! last handle waits for the queue to empty, so that a store reopened in the same process
//! (tests) never meets a file still being deleted.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Bytes cut from a file's end at each step of [`delete_gradually`].
const STEP_BYTES: u64 = 4 << 20;
/// Pause after each step: the journal commits the freed extents between steps.
const STEP_PAUSE: Duration = Duration::from_millis(10);

type Job = Box<dyn FnOnce() + Send>;

/// The thread that deletes files; shared by the log store and the state machine.
pub(crate) struct Reclaimer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Reclaimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reclaimer").field("running", &self.thread.is_some()).finish()
    }
}

impl Reclaimer {
    pub(crate) fn start() -> Reclaimer {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("reclaim".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .inspect_err(|e| tracing::warn!(error = %e, "could not start the file reclaimer; deleting inline"))
            .ok();
        Reclaimer { jobs: thread.is_some().then_some(jobs), thread }
    }

    /// Runs `job` after the jobs queued before it, on the reclaimer's thread (on the caller's
    /// if that thread could not be started).
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        job();
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the file reclaimer panicked");
        }
    }
}

/// Deletes the file at `path` by cutting [`STEP_BYTES`] at a time from its end, with a pause
/// between cuts, then unlinking it. A file already gone is not an error. The caller makes
/// sure that nothing reads the file any more and that a crash half-way leaves nothing that
/// a restart would take for data (a name it ignores, or a file it deletes anyway).
pub(crate) fn delete_gradually(path: &Path) -> std::io::Result<()> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut len = file.metadata()?.len();
    while len > STEP_BYTES {
        len -= STEP_BYTES;
        file.set_len(len)?;
        std::thread::sleep(STEP_PAUSE);
    }
    unlink(path)
}

/// Unlinks the file at `path`; a file already gone is not an error.
pub(crate) fn unlink(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Deletes each of `paths` with [`delete_gradually`], logging what fails.
pub(crate) fn delete_all_gradually(paths: Vec<PathBuf>) {
    for path in paths {
        if let Err(e) = delete_gradually(&path) {
            tracing::warn!(path = %path.display(), error = %e, "deleting a file failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_and_dropping_the_reclaimer_waits_for_them() {
        let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reclaimer = Reclaimer::start();
        for n in 0..5 {
            let done = done.clone();
            reclaimer.run(move || {
                std::thread::sleep(Duration::from_millis(5));
                done.lock().unwrap().push(n);
            });
        }
        drop(reclaimer);
        assert_eq!(*done.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_file_is_deleted_whole_and_a_missing_one_is_no_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big");
        std::fs::write(&path, vec![7u8; (STEP_BYTES * 2 + 100) as usize]).expect("write");
        delete_gradually(&path).expect("delete");
        assert!(!path.exists());
        delete_gradually(&path).expect("a file already gone");
    }
}
