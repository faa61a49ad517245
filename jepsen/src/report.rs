//! The results of a run: availability figures computed from the history, each checker's
//! verdict (`verdicts.json`) and a short human summary (`summary.md`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::checker::Verdict;
use crate::history::{Call, Fault, Op, Outcome};

/// How one fault went for the clients.
#[derive(Debug, Clone, Serialize)]
pub struct FaultStats {
    pub name: String,
    pub detail: String,
    pub start_s: f64,
    pub held_s: f64,
    pub ops: usize,
    /// Share of the operations invoked during the fault that were ok.
    pub ok_share: f64,
    /// From the fault's start to the first acknowledged write invoked after it.
    pub first_write_s: Option<f64>,
}

/// Availability over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Availability {
    pub ops: usize,
    pub ok_share_during_faults: f64,
    pub ok_share_outside_faults: f64,
    pub writes_ok_share_during_faults: f64,
    /// The longest time without an acknowledged submission, and when it started.
    pub longest_gap_s: f64,
    pub longest_gap_at_s: f64,
    /// Leader kill → first acknowledged write, one per leader kill.
    pub leader_kill_to_write_s: Vec<f64>,
    pub faults: Vec<FaultStats>,
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

fn share(ops: &[&Op]) -> f64 {
    if ops.is_empty() { 1.0 } else { ops.iter().filter(|o| o.outcome == Outcome::Ok).count() as f64 / ops.len() as f64 }
}

fn during(op: &Op, faults: &[Fault]) -> bool {
    faults.iter().any(|f| op.invoke >= f.start && op.invoke < f.end)
}

/// The first acknowledged write invoked at or after `t`, as seconds after `t`.
pub fn first_write_after(history: &[Op], t: i64) -> Option<f64> {
    history
        .iter()
        .filter(|o| o.call.is_write() && o.outcome == Outcome::Ok && o.invoke >= t)
        .map(|o| o.complete)
        .min()
        .map(|c| secs(c - t))
}

pub fn availability(history: &[Op], faults: &[Fault], end_of_faults: i64) -> Availability {
    let (inside, outside): (Vec<&Op>, Vec<&Op>) = history.iter().partition(|o| during(o, faults));
    let inside_writes: Vec<&Op> = inside.iter().copied().filter(|o| o.call.is_write()).collect();
    let mut acks: Vec<i64> = history
        .iter()
        .filter(|o| matches!(o.call, Call::Submit { .. }) && o.outcome == Outcome::Ok && o.complete <= end_of_faults)
        .map(|o| o.complete)
        .collect();
    acks.sort_unstable();
    let start = history.iter().map(|o| o.invoke).min().unwrap_or(0);
    let mut points = vec![start];
    points.extend(acks);
    points.push(end_of_faults);
    let (gap, at) = points.windows(2).map(|w| (w[1] - w[0], w[0])).max().unwrap_or((0, 0));
    let stats: Vec<FaultStats> = faults
        .iter()
        .map(|f| {
            let ops: Vec<&Op> = history.iter().filter(|o| o.invoke >= f.start && o.invoke < f.end).collect();
            FaultStats {
                name: f.name.clone(),
                detail: f.detail.clone(),
                start_s: secs(f.start),
                held_s: secs(f.end - f.start),
                ops: ops.len(),
                ok_share: share(&ops),
                first_write_s: first_write_after(history, f.start),
            }
        })
        .collect();
    let leader_kills = stats.iter().filter(|f| f.name == "kill-leader").filter_map(|f| f.first_write_s).collect();
    Availability {
        ops: history.len(),
        ok_share_during_faults: share(&inside),
        ok_share_outside_faults: share(&outside),
        writes_ok_share_during_faults: share(&inside_writes),
        longest_gap_s: secs(gap),
        longest_gap_at_s: secs(at),
        leader_kill_to_write_s: leader_kills,
        faults: stats,
    }
}

#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub valid: bool,
    pub started: String,
    pub nodes: usize,
    pub seed: u64,
    pub duration_s: f64,
    pub verdicts: &'a [Verdict],
    pub availability: &'a Availability,
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

pub fn summary(report: &Report<'_>) -> String {
    let a = report.availability;
    let mut s = String::new();
    let verdict = if report.valid { "VALID: every invariant held" } else { "INVALID: an invariant was violated" };
    let _ = writeln!(s, "# jepsen run {}\n", report.started);
    let _ = writeln!(
        s,
        "**{verdict}.** {} nodes, seed {}, {:.0} s, {} operations.\n",
        report.nodes, report.seed, report.duration_s, a.ops
    );
    let _ = writeln!(s, "| checker | property | verdict | notes |\n|---|---|---|---|");
    for v in report.verdicts {
        let mark = if v.valid { "ok".to_owned() } else { format!("**{} violations**", v.violations.len()) };
        let _ = writeln!(s, "| {} | {} | {mark} | {} |", v.checker, v.property, v.notes.join("; "));
    }
    for v in report.verdicts.iter().filter(|v| !v.valid) {
        let _ = writeln!(s, "\n## {} violations\n", v.checker);
        for line in v.violations.iter().take(50) {
            let _ = writeln!(s, "- {line}");
        }
        if v.violations.len() > 50 {
            let _ = writeln!(s, "- … {} more in verdicts.json", v.violations.len() - 50);
        }
    }
    let _ = writeln!(s, "\n## Availability\n");
    let _ = writeln!(
        s,
        "- operations ok during faults: {} (writes {}); outside faults: {}",
        pct(a.ok_share_during_faults),
        pct(a.writes_ok_share_during_faults),
        pct(a.ok_share_outside_faults)
    );
    let _ = writeln!(
        s,
        "- longest time without an acknowledged submission: {:.2} s (from t = {:.1} s)",
        a.longest_gap_s, a.longest_gap_at_s
    );
    let kills: Vec<String> = a.leader_kill_to_write_s.iter().map(|x| format!("{x:.2}")).collect();
    let _ = writeln!(
        s,
        "- leader kill → first acknowledged write: {} s (median {})",
        if kills.is_empty() { "-".to_owned() } else { kills.join(", ") },
        median(&a.leader_kill_to_write_s).map_or("-".to_owned(), |m| format!("{m:.2} s"))
    );
    let _ = writeln!(
        s,
        "\n| t (s) | fault | held (s) | ops | ok | first ack'd write (s) | detail |\n|---|---|---|---|---|---|---|"
    );
    for f in &a.faults {
        let first = f.first_write_s.map_or("-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            s,
            "| {:.1} | {} | {:.1} | {} | {} | {first} | {} |",
            f.start_s,
            f.name,
            f.held_s,
            f.ops,
            pct(f.ok_share),
            f.detail
        );
    }
    s
}

pub fn write(dir: &Path, report: &Report<'_>) -> anyhow::Result<String> {
    std::fs::write(dir.join("verdicts.json"), serde_json::to_vec_pretty(report)?)?;
    let text = summary(report);
    std::fs::write(dir.join("summary.md"), &text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, invoke: i64, complete: i64, outcome: Outcome) -> Op {
        Op { process: 0, call, id: None, node: 0, invoke, complete, outcome, value: None, error: None }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn availability_splits_by_fault_window_and_finds_the_longest_gap() {
        let submit = || Call::Submit { key: None };
        let history = vec![
            op(submit(), 0, S, Outcome::Ok),
            op(submit(), 2 * S, 3 * S, Outcome::Fail),
            op(submit(), 3 * S, 4 * S, Outcome::Info),
            op(submit(), 5 * S, 6 * S, Outcome::Ok),
            op(Call::Read { linearizable: true }, 7 * S, 8 * S, Outcome::Ok),
        ];
        let faults = vec![Fault { name: "kill-leader".into(), detail: String::new(), start: 2 * S, end: 5 * S }];
        let a = availability(&history, &faults, 8 * S);
        assert_eq!(a.ok_share_during_faults, 0.0);
        assert_eq!(a.ok_share_outside_faults, 1.0);
        assert_eq!(a.longest_gap_s, 5.0);
        assert_eq!(a.longest_gap_at_s, 1.0);
        assert_eq!(a.leader_kill_to_write_s, vec![4.0]);
        assert_eq!(a.faults[0].ops, 2);
    }
}
