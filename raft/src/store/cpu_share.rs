//! Holds a background thread to a share of one core, by its own CPU clock.
//!
//! A snapshot build reads and writes the whole state, and every node starts one at about the
//! same moment (they append the same log, so they come due together). Left alone, three
//! builds take both cores of a small machine and stall every request for as long as they
//! run. A lower nice value was the first answer, and it failed the other way: nice 10 weighs
//! a tenth of a request thread, so while the machine was saturated a build at 1.2 million
//! records got next to nothing and ran for 26 to 29 minutes, and for all that time its read
//! transaction kept the database from reusing any page the applies freed (the file grew, its
//! syncs took seconds). An unprivileged process cannot raise its priority again once the
//! build has waited long enough, so there is no deadline to fix that with.
//!
//! Instead the build runs at normal priority, competing for the CPU like any request thread,
//! and holds itself to [`SNAPSHOT_BUILD_SHARE`] of one core: after each window of
//! [`WINDOW`] of its own CPU time it sleeps until that window's wall time is its CPU time
//! over the share. A build therefore takes at most its share when the machine is idle, and
//! under load at least what the scheduler gives any one thread, up to the same share: a
//! ceiling and a floor. Credit is not carried from one window to the next, so a build that
//! was starved for a while does not then take a whole core to catch up.

use std::time::{Duration, Instant};

/// The share of one core a snapshot build may take: three builds at once leave a 2-core
/// machine more than half of its CPU.
pub(crate) const SNAPSHOT_BUILD_SHARE: f64 = 0.25;

/// The thread CPU time after which the pace is checked and a pause taken. Long against the
/// scheduler's slices and the cost of a sleep, short against a build (seconds of CPU).
pub(crate) const WINDOW: Duration = Duration::from_millis(20);

/// The CPU time the calling thread has used since it started.
pub(crate) fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// How long to sleep after a window in which the thread used `cpu` over `wall`, so that the
/// window as a whole holds it to `share` of a core.
pub(crate) fn pause_after(cpu: Duration, wall: Duration, share: f64) -> Duration {
    cpu.div_f64(share).saturating_sub(wall)
}

/// The pace of one thread: created on it, [`CpuShare::pace`] called by it between units of
/// work (often enough that a unit is short against [`WINDOW`]).
#[derive(Debug)]
pub(crate) struct CpuShare {
    share: f64,
    window_wall: Instant,
    window_cpu: Duration,
    /// For the thread's log line: its CPU clock when the pace started, and the time paused.
    cpu_at_start: Duration,
    paused: Duration,
}

impl CpuShare {
    /// Starts pacing the calling thread at `share` of a core.
    pub(crate) fn start(share: f64) -> Self {
        assert!(share > 0.0 && share <= 1.0, "a CPU share is in (0, 1], not {share}");
        let cpu = thread_cpu_time();
        CpuShare { share, window_wall: Instant::now(), window_cpu: cpu, cpu_at_start: cpu, paused: Duration::ZERO }
    }

    /// Sleeps if the current window's CPU time has reached [`WINDOW`] and is above the share of
    /// its wall time. Must be called on the thread that started the pace.
    pub(crate) fn pace(&mut self) {
        let cpu = thread_cpu_time().saturating_sub(self.window_cpu);
        if cpu < WINDOW {
            return;
        }
        let pause = pause_after(cpu, self.window_wall.elapsed(), self.share);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        self.paused += pause;
        self.window_wall = Instant::now();
        self.window_cpu = thread_cpu_time();
    }

    /// The CPU time the thread has used since the pace started, and the time spent paused.
    pub(crate) fn totals(&self) -> (Duration, Duration) {
        (thread_cpu_time().saturating_sub(self.cpu_at_start), self.paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_stretched_to_its_cpu_time_over_the_share() {
        let ms = Duration::from_millis;
        // 20 ms of CPU in 20 ms of wall: a quarter of a core needs 80 ms in all.
        assert_eq!(pause_after(ms(20), ms(20), 0.25), ms(60));
        // A thread that got only a tenth of a core already ran slower than its share.
        assert_eq!(pause_after(ms(20), ms(200), 0.25), Duration::ZERO);
        assert_eq!(pause_after(ms(30), ms(50), 0.5), ms(10));
        assert_eq!(pause_after(ms(20), ms(20), 1.0), Duration::ZERO);
    }
}
