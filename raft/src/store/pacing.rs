//! What decides when the next snapshot is worth building: how much log has been written since
//! the last one, against how big that one was.
//!
//! A snapshot rewrites the whole state, so building one every fixed number of log entries costs
//! more and more as the state grows (at a million jobs, hundreds of MB per build). Instead a
//! build waits until the log written since the previous snapshot reaches a share of that
//! snapshot's size ([`LOG_SHARE_OF_SNAPSHOT`]): snapshot writes then stay within a fixed
//! multiple of log writes, whatever the size of the state, and the log kept on disk (read
//! whole when a node starts) stays within a fixed share of the state.
//!
//! The share trades build CPU against log on disk. At a quarter, the 1M benchmark fill built
//! every 5,000 entries (the `snapshotEveryLogs` floor) up to ~500,000 jobs, then as the size
//! rule took over every 5,550–9,117 entries; a million-job state (1.9 M records) took 40 s to
//! read on a loaded 2-core machine, every 160 s: a quarter of every node's time, on all nodes
//! at once (they append the same log, so they come due together). At the whole size the size
//! rule spaces builds four times as far apart, and governs from ~150,000 jobs (8,400–10,200
//! entries apart at 250,000–300,000 jobs); the log grows to about the snapshot's size (TiKV's
//! default keeps up to three quarters of a region's size in log before it compacts).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot is due once the log written since the last one is this share of its size.
pub(crate) const LOG_SHARE_OF_SNAPSHOT: f64 = 1.0;

/// Counters shared by the log store (bytes appended) and the state machine (snapshots made).
#[derive(Debug, Default)]
pub(crate) struct SnapshotPacing {
    /// Bytes of log entries appended since the process started.
    log_bytes: AtomicU64,
    /// `log_bytes` when the current snapshot was frozen or installed.
    log_bytes_at_snapshot: AtomicU64,
    /// Size of the current snapshot file.
    snapshot_bytes: AtomicU64,
    /// Records in the current snapshot file; 0 when not known (a file found at start-up).
    snapshot_records: AtomicU64,
}

impl SnapshotPacing {
    pub(crate) fn appended(&self, bytes: u64) {
        self.log_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The state as of now is being captured in a snapshot.
    pub(crate) fn snapshot_started(&self) {
        self.log_bytes_at_snapshot.store(self.log_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The current snapshot (built, installed or found at start-up) has this size and holds
    /// this many records (0: not known).
    pub(crate) fn snapshot_is(&self, bytes: u64, records: u64) {
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.snapshot_records.store(records, Ordering::Relaxed);
    }

    /// The size of the current snapshot file; 0 when there is none.
    pub(crate) fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes.load(Ordering::Relaxed)
    }

    /// The records in the current snapshot file; 0 when there is none or it is not known.
    pub(crate) fn snapshot_records(&self) -> u64 {
        self.snapshot_records.load(Ordering::Relaxed)
    }

    /// Whether the log since the last snapshot has reached its share of that snapshot's size.
    pub(crate) fn log_outweighs_snapshot(&self) -> bool {
        let since = self.log_bytes.load(Ordering::Relaxed) - self.log_bytes_at_snapshot.load(Ordering::Relaxed);
        since as f64 >= LOG_SHARE_OF_SNAPSHOT * self.snapshot_bytes.load(Ordering::Relaxed) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_once_the_log_since_reaches_its_share_of_the_last_one() {
        let pacing = SnapshotPacing::default();
        // No snapshot yet: due as soon as there is any log.
        assert!(pacing.log_outweighs_snapshot());
        pacing.appended(10_000);
        pacing.snapshot_started();
        pacing.snapshot_is(4_000_000, 0);
        pacing.appended(3_999_999);
        assert!(!pacing.log_outweighs_snapshot(), "due at 4 MB of log");
        pacing.appended(1);
        assert!(pacing.log_outweighs_snapshot());
        // Log appended while the next build reads the state counts toward the one after.
        pacing.snapshot_started();
        pacing.appended(2_000_000);
        pacing.snapshot_is(4_000_000, 0);
        assert!(!pacing.log_outweighs_snapshot());
        pacing.appended(2_000_000);
        assert!(pacing.log_outweighs_snapshot());
    }
}
