//! The Markdown table of a bench run, and its PNG plots (drawn by `bench/plot.py`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::Results;
use super::load::Step;

/// The targets the figures are read against.
const TARGET_RATE: f64 = 2000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_ETCD_RATIO: f64 = 0.5;
const TARGET_FAILOVER_S: f64 = 2.0;
const TARGET_RSS_MIB: f64 = 100.0;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

pub(super) fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# bpg benchmark\n");
    let _ = writeln!(
        md,
        "Run {} on {} cores ({}), commit `{}`, {} per node. Every figure comes from this one run.\n",
        r.started,
        r.machine.cores,
        r.machine.kernel,
        r.machine.commit,
        match r.worker_threads {
            Some(1) => "one runtime thread".to_owned(),
            Some(n) => format!("{n} runtime threads"),
            None => "a runtime thread per core".to_owned(),
        }
    );
    let _ = writeln!(md, "| measure | value | target |\n|---|---|---|");
    let row = |md: &mut String, what: &str, value: String, target: String| {
        let _ = writeln!(md, "| {what} | {value} | {target} |");
    };
    row(
        &mut md,
        "acknowledged submissions/s at saturation",
        format!("{:.0} ({} clients)", r.saturation_per_s, r.saturation_concurrency),
        format!("≥ {TARGET_RATE:.0}: {}", verdict(r.saturation_per_s >= TARGET_RATE)),
    );
    // The first two steps are the 50 % and 90 % the target speaks of; any further ones are the
    // extra rates asked for with --open-rates.
    for (i, s) in r.open_loop.iter().enumerate() {
        let share = s.offered_per_s.unwrap_or(0.0) / r.saturation_per_s.max(1.0) * 100.0;
        row(
            &mut md,
            &format!(
                "submit latency at {share:.0} % ({:.0}/s offered, {:.0}/s acknowledged)",
                s.offered_per_s.unwrap_or(0.0),
                s.ok_per_s
            ),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms{}{}{}",
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.latency_ms.p999,
                s.per_ok.as_ref().map_or_else(String::new, |c| format!(
                    " (per submission: gateway {:.2} ms CPU, {} log entries)",
                    c.gateway,
                    c.log_entries.map_or_else(|| "?".to_owned(), |e| format!("{e:.2}"))
                )),
                windows_over_target(s).map_or_else(String::new, |w| format!("; {w}")),
                if s.failed > 0 { format!("; failed {}", s.failed_summary()) } else { String::new() }
            ),
            if i < 2 {
                format!("p99 < {TARGET_P99_MS:.0} ms: {}", verdict(s.latency_ms.p99 < TARGET_P99_MS))
            } else {
                String::new()
            },
        );
    }
    let at_saturation = r.saturation.iter().find(|s| s.concurrency == Some(r.saturation_concurrency));
    if let Some(c) = at_saturation.and_then(|s| s.per_ok.as_ref()) {
        let followers = c.followers.iter().map(|f| format!("{f:.2}")).collect::<Vec<_>>().join(" / ");
        row(
            &mut md,
            "CPU per acknowledged submission at saturation",
            format!(
                "gateway {:.2} ms (leader {:.2}, followers {followers}), kubesim {:.2} ms, load generator {:.2} ms; \
                 cores {:.0} % busy. The gateway's share alone would fill {} cores at {:.0}/s",
                c.gateway,
                c.leader,
                c.kubesim,
                c.load_generator,
                c.cores_busy * 100.0,
                r.machine.cores,
                r.machine.cores as f64 * 1e3 / c.gateway.max(1e-9),
            ),
            String::new(),
        );
    }
    if let Some(s) = &r.follower_reads {
        row(
            &mut md,
            "status reads/s served by followers (64 clients)",
            format!("{:.0} (p99 {:.1} ms)", s.ok_per_s, s.latency_ms.p99),
            String::new(),
        );
    }
    if let Some(e) = &r.etcd {
        row(
            &mut md,
            &format!("etcd durable puts/s ({}, {} B values)", e.version, e.value_bytes),
            format!("{:.0}; gateway/etcd = {:.2}", e.best_per_s, e.gateway_ratio),
            format!("≥ {TARGET_ETCD_RATIO}: {}", verdict(e.gateway_ratio >= TARGET_ETCD_RATIO)),
        );
    }
    if let Some(d) = &r.disk {
        row(
            &mut md,
            "disk: 4 KiB write + fdatasync, one at a time",
            format!("{:.0}/s ({:.2} ms each)", d.fdatasync_per_s, d.mean_ms),
            String::new(),
        );
    }
    if let Some(f) = &r.failover {
        row(
            &mut md,
            &format!("leader SIGKILL → first acknowledged submission ({} kills)", f.samples_s.len()),
            format!("median {:.2} s, p90 {:.2} s, max {:.2} s", f.median_s, f.p90_s, f.max_s),
            format!("median < {TARGET_FAILOVER_S} s: {}", verdict(f.median_s < TARGET_FAILOVER_S)),
        );
    }
    for f in &r.footprint {
        let max = f.rss_mib.iter().copied().fold(0.0, f64::max);
        let mib = |v: &[f64]| v.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(" / ");
        row(
            &mut md,
            &format!("resident memory per node with {} jobs", f.jobs),
            format!(
                "{} MiB, peak {} MiB (leader's data dir {:.0} MiB; {})",
                mib(&f.rss_mib),
                mib(&f.peak_rss_mib),
                f.data_dir_mib,
                if f.fill_per_s > 0.0 {
                    format!("filled at {:.0}/s", f.fill_per_s)
                } else {
                    "reached during the load steps".to_owned()
                }
            ),
            if f.jobs >= 1_000_000 {
                format!("< {TARGET_RSS_MIB:.0} MiB: {}", verdict(max < TARGET_RSS_MIB))
            } else {
                String::new()
            },
        );
    }
    if let Some(s) = &r.snapshot {
        row(
            &mut md,
            &format!("snapshot at {} jobs: size, install on an empty follower", s.jobs),
            format!("{:.1} MiB, {:.1} s", s.bytes as f64 / 1048576.0, s.install_s),
            String::new(),
        );
    }
    row(
        &mut md,
        "start-up: empty 3-node cluster to first acknowledged submission",
        format!("{:.2} s", r.startup.cold_cluster_s),
        String::new(),
    );
    for (jobs, secs) in &r.startup.restart_ready_s {
        row(
            &mut md,
            &format!("start-up: follower restarted with {jobs} jobs, to ready"),
            format!("{secs:.2} s"),
            String::new(),
        );
    }
    let _ = writeln!(
        md,
        "\n## Closed-loop steps\n\nEach step runs {} s before it is measured. Per acknowledged request: CPU milliseconds \
         spent by the gateway nodes together and by the two kubesim processes, and the Raft log entries \
         the leader appended; and the share of the machine's cores busy.\n\n\
         | system | clients | ok/s | p50 ms | p99 ms | p99.9 ms | failed | gateway CPU ms | kubesim CPU ms | log entries | cores busy |\n\
         |---|---|---|---|---|---|---|---|---|---|---|",
        r.warmup_secs
    );
    let steps = r
        .saturation
        .iter()
        .map(|s| ("bpg submit", s))
        .chain(r.etcd.iter().flat_map(|e| e.steps.iter().map(|s| ("etcd put", s))));
    for (system, s) in steps {
        let cpu = s.per_ok.as_ref().map_or_else(
            || " | | | ".to_owned(),
            |c| {
                let entries = c.log_entries.map_or_else(String::new, |e| format!("{e:.2}"));
                format!("{:.2} | {:.2} | {entries} | {:.0} %", c.gateway, c.kubesim, c.cores_busy * 100.0)
            },
        );
        let _ = writeln!(
            md,
            "| {system} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {cpu} |",
            s.concurrency.unwrap_or(0),
            s.ok_per_s,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.latency_ms.p999,
            s.failed_summary()
        );
    }
    md
}

/// Draws the PNG plots with `bench/plot.py`, in a venv with matplotlib under `target/`.
pub(super) fn plot(out: &Path) -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(&python).args(["-m", "pip", "install", "-q", "matplotlib==3.9.2"]))?;
    }
    run(Command::new(&python).arg(root.join("bench/plot.py")).arg(out))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} exited with {status}");
    Ok(())
}

/// How the tail of an open-loop step is spread in time: "12 of 160 windows of 250 ms had a
/// p99 over 50 ms (7.5 % of requests)"; `None` for a step without a timeline.
pub(super) fn windows_over_target(s: &Step) -> Option<String> {
    if s.timeline.is_empty() {
        return None;
    }
    let (slow, held) = s.stalls(TARGET_P99_MS);
    Some(format!(
        "{slow} of {} windows of {} ms had a p99 over {TARGET_P99_MS:.0} ms ({:.1} % of requests)",
        s.timeline.len(),
        super::load::WINDOW.as_millis(),
        held * 100.0
    ))
}
