//! Where the machine's CPU goes during a load step: the gateway nodes, the kubesim clusters
//! standing in for Kubernetes, and this load generator all share the same cores, so a rate
//! reads right only next to what each of them spent on it.

use std::time::Instant;

use serde::Serialize;

/// What one acknowledged request cost over a step: CPU milliseconds by process, and Raft log
/// entries.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PerOk {
    /// The node that led during the step.
    pub leader: f64,
    /// The other nodes, each.
    pub followers: Vec<f64>,
    /// Every gateway node together.
    pub gateway: f64,
    /// Both kubesim processes together.
    pub kubesim: f64,
    pub load_generator: f64,
    /// Share of the machine's cores busy during the step (all processes, not only these).
    pub cores_busy: f64,
    /// Log entries the leader appended: under load, commands share entries (a submission is
    /// at least two commands), and each entry costs a sync and an apply batch on every node.
    pub log_entries: Option<f64>,
}

/// CPU seconds used so far by each process of a run, and by the whole machine.
#[derive(Clone, Debug)]
pub struct Sample {
    at: Instant,
    leader: f64,
    followers: Vec<f64>,
    kubesim: f64,
    load_generator: f64,
    machine_busy: f64,
}

/// Where the processes of a run are.
#[derive(Clone, Debug)]
pub struct Pids {
    pub leader: Option<u32>,
    pub followers: Vec<Option<u32>>,
    pub kubesim: Vec<Option<u32>>,
}

pub fn sample(pids: &Pids) -> Sample {
    let of = |pid: Option<u32>| pid.map_or(0.0, |p| process_seconds(&format!("/proc/{p}/stat")));
    Sample {
        at: Instant::now(),
        leader: of(pids.leader),
        followers: pids.followers.iter().map(|p| of(*p)).collect(),
        kubesim: pids.kubesim.iter().map(|p| of(*p)).sum(),
        load_generator: process_seconds("/proc/self/stat"),
        machine_busy: machine_busy_seconds(),
    }
}

/// The CPU each process spent between `before` and now, per acknowledged request.
pub fn per_ok(before: &Sample, pids: &Pids, ok: u64) -> PerOk {
    let after = sample(pids);
    let ms = |a: f64, b: f64| (a - b).max(0.0) * 1e3 / ok.max(1) as f64;
    let followers: Vec<f64> = after.followers.iter().zip(&before.followers).map(|(a, b)| ms(*a, *b)).collect();
    let leader = ms(after.leader, before.leader);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    PerOk {
        leader,
        gateway: leader + followers.iter().sum::<f64>(),
        followers,
        kubesim: ms(after.kubesim, before.kubesim),
        load_generator: ms(after.load_generator, before.load_generator),
        cores_busy: ((after.machine_busy - before.machine_busy) / wall / cores).clamp(0.0, 1.0),
        log_entries: None,
    }
}

/// Clock ticks per second of the times in `/proc`.
fn ticks_per_s() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// User + system CPU seconds of a process, from its `stat` file; 0 if it is gone.
fn process_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else { return 0.0 };
    parse_stat_ticks(&stat).map_or(0.0, |t| t as f64 / ticks_per_s())
}

/// utime + stime of a `/proc/PID/stat` line (fields 14 and 15; the name, field 2, may hold
/// spaces and parentheses, so fields are counted after its last `)`).
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after the name
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Non-idle CPU seconds of the whole machine since boot, from `/proc/stat`.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_busy_ticks(&stat).map_or(0.0, |t| t as f64 / ticks_per_s())
}

/// The `cpu` line's ticks except idle and iowait.
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|t| t.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let (idle, iowait) = (*ticks.get(3)?, *ticks.get(4)?);
    Some(ticks.iter().take(8).sum::<u64>() - idle - iowait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_times_of_a_process_whose_name_has_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 2019 0 0 0 731 269 0 0 20 0 9 0 3614 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(1000));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 40 3 2 0 7 0\ncpu0 50 2 25 500 20 1 1 0 0 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(160));
    }

    #[test]
    fn this_process_is_seen_spending_cpu() {
        let before = process_seconds("/proc/self/stat");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(process_seconds("/proc/self/stat") > before, "300 ms of spinning shows in utime");
    }
}
