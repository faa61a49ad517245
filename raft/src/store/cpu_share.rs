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
//!
//! A [`Spread`] adds a second limit, on wall time rather than CPU: work counted in units (a
//! build's bytes, `state_machine::spread_units`) is held back until each unit is due on a
//! straight line from the start to a budget, in short pauses. A build is spread over a share
//! of the time since the build before it (the first, since the state machine opened;
//! `state_machine::build_spread`), so that a small state's build, a tenth of a second of
//! CPU, reaches the CPU and the disk a little at a time instead of in one burst on every node.

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

/// Work spread over a length of time: `total` units, the `done`-th not before
/// `budget × done / total` has passed since the pace started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) budget: Duration,
    pub(crate) total: u64,
}

/// The shortest pause a spread takes: shorter ones cost more in wake-ups than they smooth.
pub(crate) const MIN_SPREAD_PAUSE: Duration = Duration::from_millis(5);

/// How long to sleep, `elapsed` into a spread, before doing unit `done`: the time until it is
/// due, or zero when it is late.
pub(crate) fn spread_pause(done: u64, spread: Spread, elapsed: Duration) -> Duration {
    if spread.total == 0 {
        return Duration::ZERO;
    }
    let due = spread.budget.mul_f64(done.min(spread.total) as f64 / spread.total as f64);
    due.saturating_sub(elapsed)
}

/// The pace of one thread: created on it, [`CpuShare::pace`] called by it between units of
/// work (often enough that a unit is short against [`WINDOW`]).
#[derive(Debug)]
pub(crate) struct CpuShare {
    share: f64,
    started: Instant,
    spread: Option<Spread>,
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
        let now = Instant::now();
        CpuShare {
            share,
            started: now,
            spread: None,
            window_wall: now,
            window_cpu: cpu,
            cpu_at_start: cpu,
            paused: Duration::ZERO,
        }
    }

    /// Spreads the work over `spread.budget` from the start of the pace, as well as holding it
    /// to the share: see [`CpuShare::pace_at`].
    pub(crate) fn spread(&mut self, spread: Spread) {
        self.spread = Some(spread);
    }

    /// As [`CpuShare::pace`], and with a [`Spread`], first sleeps until unit `done` is due if
    /// that is at least [`MIN_SPREAD_PAUSE`] away. Short pauses between small pieces of work
    /// rather than long ones between windows: the work reaches the CPU and the disk a little
    /// at a time.
    pub(crate) fn pace_at(&mut self, done: u64) {
        if let Some(spread) = self.spread {
            let pause = spread_pause(done, spread, self.started.elapsed());
            if pause >= MIN_SPREAD_PAUSE {
                std::thread::sleep(pause);
                self.paused += pause;
                self.window_wall = Instant::now();
                self.window_cpu = thread_cpu_time();
                return;
            }
        }
        self.pace();
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

    #[test]
    fn spread_work_waits_for_its_share_of_the_budget() {
        let ms = Duration::from_millis;
        let spread = Spread { budget: ms(4000), total: 1000 };
        // A quarter done 200 ms in: due at 1 s.
        assert_eq!(spread_pause(250, spread, ms(200)), ms(800));
        // Late: no pause, and no credit taken from later units.
        assert_eq!(spread_pause(250, spread, ms(1500)), Duration::ZERO);
        // Past the count: due at the budget, no later.
        assert_eq!(spread_pause(1500, spread, ms(3000)), ms(1000));
        assert_eq!(spread_pause(10, Spread { budget: ms(4000), total: 0 }, ms(0)), Duration::ZERO);
    }
}
