//! `jepsen bench`: throughput, latency, failover time and footprint of a 3-node gateway (release
//! build, fsync on, data directories on the local disk) with two kubesim clusters, and in the
//! same run a 3-member etcd cluster and the disk's fdatasync rate, so that ratios hold on a
//! noisy machine. Results go to `bench/results/` as JSON and Markdown, plots as PNG.

pub mod compare;
pub mod cpu;
mod etcd;
pub mod load;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bpg_tests::client::Client;
use bpg_tests::cluster::ClusterOptions;
use bpg_tests::gateway::{Bins, GatewayCluster};
use bpg_tests::kubesim::spark_pi;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use load::{Load, Step};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Where the `bpg` and `kubesim` binaries are (default: next to this program).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Results directory.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Seconds per load step, measured after its warm-up.
    #[arg(long, default_value_t = 10)]
    pub step_secs: u64,
    /// Seconds each load step runs before it is measured: submissions cause status updates and
    /// deletions seconds later (about 8 s at the default time scale and TTL), and a step is
    /// measured once they flow at its own rate.
    #[arg(long, default_value_t = 10)]
    pub warmup_secs: u64,
    /// Closed-loop client counts tried to find the saturation rate (the same for etcd).
    #[arg(long, value_delimiter = ',', default_value = "8,32,64,128")]
    pub concurrency: Vec<usize>,
    /// Open-loop rates (submissions/s) measured after the 50 % and 90 % steps, to see how the
    /// cost per submission varies with the rate. None by default.
    #[arg(long, value_delimiter = ',')]
    pub open_rates: Vec<f64>,
    /// Jobs in the state at which resident memory (and, at the last, snapshot install and
    /// restart) are measured.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub footprint_jobs: Vec<u64>,
    /// Leader kills to time.
    #[arg(long, default_value_t = 20)]
    pub failovers: usize,
    /// The etcd binary (Debian's `etcd-server`).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd_bin: PathBuf,
    /// Skip the etcd comparison.
    #[arg(long)]
    pub no_etcd: bool,
    /// kubesim's time scale: 0.1 runs a SparkPi (1 s to submit, 2 s to start, 10-20 s to run)
    /// in 1.3-2.3 s, so status updates flow during the measurements as in production.
    #[arg(long, default_value_t = 0.1)]
    pub time_scale: f64,
    /// `ttlSeconds` of the clusters (kubesim's scaled seconds; 0: applications are never
    /// deleted). The operator deletes finished applications after it, as production clusters
    /// are configured to, while the gateway keeps their records; without it each kubesim holds
    /// every application with its pods and logs, and a large fill does not fit in memory.
    #[arg(long, default_value_t = 60)]
    pub app_ttl_seconds: u32,
    /// How long kubesim keeps Events, in its scaled seconds. kube-apiserver keeps them an hour
    /// in etcd; kubesim keeps them in memory as JSON, and at time scale 0.1 an hour is six
    /// real minutes of a full-rate fill: about half a million Events, 5 GiB per cluster. A
    /// minute keeps each cluster's memory flat; the gateway never reads Events.
    #[arg(long, default_value_t = 60)]
    pub event_ttl_seconds: u64,
    /// The database's page cache per node, MiB (default: the product default).
    #[arg(long)]
    pub store_cache_mib: Option<u64>,
    /// `raft.minEntryIntervalMicros` of every node (default: the product default).
    #[arg(long)]
    pub min_entry_interval_micros: Option<u64>,
    /// `raft.snapshotEveryLogs` of every node: the fewest entries between snapshot builds.
    #[arg(long, default_value_t = 5000)]
    pub snapshot_every_logs: u64,
    /// Runtime threads per node (`node.workerThreads`); 0 leaves the product default, one per
    /// core. Three nodes share this machine's cores, as `bpg dev` runs them, with one each.
    #[arg(long, default_value_t = 1)]
    pub worker_threads: usize,
    /// Do not draw the PNG plots (they need python3 with matplotlib, installed into a venv
    /// under `target/` on first use).
    #[arg(long)]
    pub no_plots: bool,
    /// Copy the nodes' logs into `node-logs/` under the results directory when the run ends,
    /// as is always done when it fails: to line the latency timeline up with what the nodes
    /// logged (snapshot builds, slow syncs, elections).
    #[arg(long)]
    pub keep_logs: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub started: String,
    /// Runtime threads per node; `None`: one per core.
    pub worker_threads: Option<usize>,
    /// Seconds each load step ran before it was measured.
    pub warmup_secs: u64,
    pub machine: Machine,
    pub disk: Option<Disk>,
    pub startup: Startup,
    pub saturation: Vec<Step>,
    pub saturation_per_s: f64,
    pub saturation_concurrency: usize,
    pub open_loop: Vec<Step>,
    pub follower_reads: Option<Step>,
    pub etcd: Option<EtcdResult>,
    pub failover: Option<Failover>,
    pub footprint: Vec<Footprint>,
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    /// The commit the measured `bpg` was built from, as its `--version` names it.
    pub commit: String,
}

#[derive(Debug, Serialize)]
pub struct Disk {
    /// 4 KiB appends each followed by fdatasync, one at a time.
    pub fdatasync_per_s: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Startup {
    /// Processes spawned on empty directories to every node ready and a submission acknowledged.
    pub cold_cluster_s: f64,
    /// A follower SIGKILLed and restarted on its directory, to ready, at each footprint size.
    pub restart_ready_s: Vec<(u64, f64)>,
}

#[derive(Debug, Serialize)]
pub struct EtcdResult {
    pub version: String,
    pub value_bytes: usize,
    pub steps: Vec<Step>,
    pub best_per_s: f64,
    /// Gateway saturation rate over etcd's best put rate.
    pub gateway_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct Failover {
    /// Leader SIGKILL to the first acknowledged submission sent after the kill, seconds.
    pub samples_s: Vec<f64>,
    pub median_s: f64,
    pub p90_s: f64,
    pub max_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Footprint {
    pub jobs: u64,
    /// VmRSS of each node, MiB, after the fill and a pause.
    pub rss_mib: Vec<f64>,
    /// VmHWM of each node, MiB: the most it has held resident since it started, which a single
    /// sample after the fill misses (a snapshot build, a burst of connections).
    pub peak_rss_mib: Vec<f64>,
    /// Sustained acknowledged submissions per second while filling.
    pub fill_per_s: f64,
    /// Size of the leader's data directory (database, Raft log and snapshots), MiB.
    pub data_dir_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub jobs: u64,
    pub bytes: u64,
    /// A follower restarted on an empty directory, to holding every job.
    pub install_s: f64,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("this program's directory")?.to_path_buf(),
    };
    let bins = Bins { bpg: bin_dir.join("bpg"), kubesim: bin_dir.join("kubesim") };
    for b in [&bins.bpg, &bins.kubesim] {
        anyhow::ensure!(
            b.is_file(),
            "{} not found: build with `cargo build --release --workspace --bins`",
            b.display()
        );
    }
    if cfg!(debug_assertions) || bin_dir.ends_with("debug") {
        eprintln!("bench: warning: a debug build is measured; use `cargo run -p bpg-jepsen --release -- bench`");
    }
    std::fs::create_dir_all(&args.out)?;
    let mut results = Results {
        started: chrono::Utc::now().to_rfc3339(),
        warmup_secs: args.warmup_secs,
        worker_threads: (args.worker_threads > 0).then_some(args.worker_threads),
        machine: machine(&bins.bpg),
        ..Default::default()
    };
    let out = Output { dir: args.out.clone() };

    eprintln!("bench: starting 3 gateway nodes and 2 kubesim clusters");
    let started = Instant::now();
    let time_scale = args.time_scale.to_string();
    let event_ttl_ms = (args.event_ttl_seconds * 1000).to_string();
    let opts = ClusterOptions {
        heartbeat_ms: None,
        election_min_ms: None,
        election_max_ms: None,
        app_ttl_seconds: (args.app_ttl_seconds > 0).then_some(args.app_ttl_seconds),
        store_cache_bytes: args.store_cache_mib.map(|m| m << 20),
        min_entry_interval_micros: args.min_entry_interval_micros,
        worker_threads: (args.worker_threads > 0).then_some(args.worker_threads),
        snapshot_every_logs: args.snapshot_every_logs,
        ..ClusterOptions::default()
    };
    let mut g = GatewayCluster::start_with(
        bins,
        &[50, 50],
        false,
        &["--time-scale", &time_scale, "--event-ttl-ms", &event_ttl_ms],
        opts,
    )
    .await?;
    let users: Arc<Vec<Client>> = Arc::new(g.nodes.nodes.iter().map(|n| g.user(n.id)).collect());
    for n in 0..3 {
        g.nodes.wait_ready(n).await?;
    }
    let body = Arc::new(spark_pi());
    bpg_tests::wait::until("a first acknowledged submission", Duration::from_secs(30), || async {
        users[0].submit(&body, None).await.ok().filter(|a| a.ok())
    })
    .await?;
    results.startup.cold_cluster_s = started.elapsed().as_secs_f64();
    eprintln!("bench: cold start {:.2} s", results.startup.cold_cluster_s);

    let dir = g.nodes.dir().to_path_buf();
    results.disk = Some(disk(&dir)?);
    eprintln!("bench: disk {:.0} fdatasync/s", results.disk.as_ref().map_or(0.0, |d| d.fdatasync_per_s));
    out.write(&results)?;

    let step = Duration::from_secs(args.step_secs);
    let warmup = Duration::from_secs(args.warmup_secs);
    let submit = Load::Submit { clients: users.clone(), body: body.clone() };
    let mut ids = Vec::new();
    for &c in &args.concurrency {
        let s = measured(&g, warmup, load::closed(&submit, c, warmup, step, true)).await;
        let cost = s.per_ok.clone().unwrap_or_default();
        eprintln!(
            "bench: submit x{c}: {:.0}/s, p99 {:.1} ms, {} failed; per submission: gateway {:.2} ms CPU, kubesim {:.2} ms, {:.2} log entries; cores {:.0} % busy",
            s.ok_per_s,
            s.latency_ms.p99,
            s.failed_summary(),
            cost.gateway,
            cost.kubesim,
            cost.log_entries.unwrap_or(f64::NAN),
            cost.cores_busy * 100.0
        );
        ids.extend(s.ids.iter().take(10_000).cloned());
        if s.ok_per_s > results.saturation_per_s {
            results.saturation_per_s = s.ok_per_s;
            results.saturation_concurrency = c;
        }
        results.saturation.push(s);
        settle(&g).await;
    }
    out.write(&results)?;

    if !args.no_etcd {
        match etcd_compare(&args, &dir, &body, step).await {
            Ok(mut e) => {
                e.gateway_ratio = results.saturation_per_s / e.best_per_s;
                eprintln!("bench: etcd {:.0} puts/s; gateway/etcd = {:.2}", e.best_per_s, e.gateway_ratio);
                results.etcd = Some(e);
            }
            Err(e) => eprintln!("bench: etcd comparison skipped: {e:#}"),
        }
        out.write(&results)?;
    }

    let shares = [0.5, 0.9].map(|share| results.saturation_per_s * share);
    for rate in shares.into_iter().chain(args.open_rates.iter().copied()) {
        let s = measured(&g, warmup, load::open(&submit, rate, warmup, step * 2, 4096)).await;
        let cost = s.per_ok.clone().unwrap_or_default();
        eprintln!(
            "bench: open loop {:.0}/s ({:.0} %): p50 {:.1} p99 {:.1} p99.9 {:.1} ms, {} failed; per submission: gateway {:.2} ms CPU, {:.2} log entries; cores {:.0} % busy",
            rate,
            rate / results.saturation_per_s * 100.0,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.latency_ms.p999,
            s.failed_summary(),
            cost.gateway,
            cost.log_entries.unwrap_or(f64::NAN),
            cost.cores_busy * 100.0
        );
        if let Some(windows) = report::windows_over_target(&s) {
            eprintln!("bench:   {windows}");
        }
        results.open_loop.push(s);
        settle(&g).await;
    }
    out.write(&results)?;

    let leader = g.nodes.leader().await?;
    let followers: Arc<Vec<Client>> = Arc::new(g.nodes.followers(leader).into_iter().map(|f| g.user(f)).collect());
    let reads = Load::Status { clients: followers, ids: Arc::new(ids) };
    let s = load::closed(&reads, 64, Duration::from_secs(2), step, false).await;
    eprintln!("bench: follower status reads {:.0}/s, p99 {:.1} ms", s.ok_per_s, s.latency_ms.p99);
    results.follower_reads = Some(s);
    out.write(&results)?;

    if args.failovers > 0 {
        let measured = failovers(&mut g, &users, &body, args.failovers).await;
        results.failover = Some(keeping_logs(measured, &dir, &args.out)?);
        out.write(&results)?;
    }

    let mut last_jobs = 0;
    for &target in args.footprint_jobs.iter().filter(|j| **j > 0) {
        let filled = fill(&g, &submit, target, results.saturation_concurrency.max(32)).await;
        let fp = keeping_logs(filled, &dir, &args.out)?;
        eprintln!(
            "bench: {} jobs: RSS {:?} MiB, peak {:?} MiB, filled at {:.0}/s",
            fp.jobs, fp.rss_mib, fp.peak_rss_mib, fp.fill_per_s
        );
        last_jobs = fp.jobs;
        results.footprint.push(fp);
        let restart = keeping_logs(restart_follower(&mut g, false).await, &dir, &args.out)?;
        eprintln!("bench: follower restart at {last_jobs} jobs: ready in {restart:.2} s");
        results.startup.restart_ready_s.push((last_jobs, restart));
        out.write(&results)?;
    }
    if last_jobs > 0 {
        let leader = g.nodes.leader().await?;
        let bytes = snapshot_bytes(&dir.join(format!("data-{leader}")));
        let install_s = keeping_logs(restart_follower(&mut g, true).await, &dir, &args.out)?;
        eprintln!("bench: snapshot of {last_jobs} jobs, {bytes} bytes, installed in {install_s:.2} s");
        results.snapshot = Some(Snapshot { jobs: last_jobs, bytes, install_s });
        out.write(&results)?;
    }

    if args.keep_logs {
        copy_logs(&dir, &args.out);
    }
    if !args.no_plots
        && let Err(e) = report::plot(&args.out)
    {
        eprintln!("bench: plots skipped: {e:#}");
    }
    eprintln!("bench: results in {}", args.out.display());
    Ok(())
}

/// Passes `result` on; when it is an error, first copies the nodes' logs (see [`copy_logs`]),
/// since the run's directory is removed when the run stops and a long fill that failed is
/// expensive to reproduce.
fn keeping_logs<T>(result: anyhow::Result<T>, run_dir: &Path, out: &Path) -> anyhow::Result<T> {
    if result.is_err() {
        copy_logs(run_dir, out);
    }
    result
}

/// Copies the nodes' and clusters' logs of the run into `out/node-logs`, saying where.
fn copy_logs(run_dir: &Path, out: &Path) {
    let kept = out.join("node-logs");
    let copied = std::fs::create_dir_all(&kept).and_then(|()| {
        for item in std::fs::read_dir(run_dir)? {
            let path = item?.path();
            if path.extension().is_some_and(|e| e == "log")
                && let Some(name) = path.file_name()
            {
                std::fs::copy(&path, kept.join(name))?;
            }
        }
        Ok(())
    });
    match copied {
        Ok(()) => eprintln!("bench: node logs kept in {}", kept.display()),
        Err(e) => eprintln!("bench: could not keep the node logs: {e}"),
    }
}

struct Output {
    dir: PathBuf,
}

impl Output {
    /// Writes the results so far (a long run that fails late keeps what it measured).
    fn write(&self, results: &Results) -> anyhow::Result<()> {
        std::fs::write(self.dir.join("results.json"), serde_json::to_string_pretty(results)? + "\n")?;
        std::fs::write(self.dir.join("results.md"), report::markdown(results))?;
        Ok(())
    }
}

fn machine(bpg: &Path) -> Machine {
    let run = |cmd: &Path, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: run(Path::new("uname"), &["-sr"]),
        commit: commit_of_version(&run(bpg, &["--version"])).unwrap_or("unknown").to_owned(),
    }
}

/// The commit in `bpg --version`'s `bpg 0.1.0 (2766e69)`: the binaries measured may come from
/// another checkout than the one the bench runs in.
fn commit_of_version(version: &str) -> Option<&str> {
    let inner = version.trim().strip_suffix(')')?;
    inner.rsplit_once(" (").map(|(_, commit)| commit).filter(|c| !c.is_empty())
}

/// The disk's rate of 4 KiB appends each made durable with fdatasync, for 3 s.
fn disk(dir: &Path) -> anyhow::Result<Disk> {
    use std::io::Write as _;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(Disk { fdatasync_per_s: n as f64 / secs, mean_ms: secs * 1e3 / n as f64 })
}

/// Runs a load step whose measured part starts after `warmup`, and adds what each acknowledged
/// request cost over that part.
async fn measured(g: &GatewayCluster, warmup: Duration, step: impl std::future::Future<Output = Step>) -> Step {
    let pids = pids(g).await;
    let log_index = || async {
        let leader = g.nodes.leader().await.ok()?;
        g.nodes.raft_status(leader).await?["last_log_index"].as_u64()
    };
    let start = async {
        tokio::time::sleep(warmup).await;
        (cpu::sample(&pids), log_index().await)
    };
    let (mut s, (before, first_index)) = tokio::join!(step, start);
    let mut cost = cpu::per_ok(&before, &pids, s.ok);
    if let (Some(first), Some(last)) = (first_index, log_index().await) {
        cost.log_entries = Some(last.saturating_sub(first) as f64 / s.ok.max(1) as f64);
    }
    s.per_ok = Some(cost);
    s
}

/// The processes of the run, the leader told apart.
async fn pids(g: &GatewayCluster) -> cpu::Pids {
    let leader = g.nodes.leader().await.ok();
    cpu::Pids {
        leader: leader.and_then(|l| g.nodes.node(l).pid()),
        followers: g.nodes.nodes.iter().filter(|n| Some(n.id) != leader).map(|n| n.pid()).collect(),
        kubesim: g.sims.iter().map(|k| k.pid()).collect(),
    }
}

/// Lets the previous step's status updates drain before the next step starts.
async fn settle(g: &GatewayCluster) {
    let _ = g.nodes.wait_replicated().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
}

async fn etcd_compare(args: &BenchArgs, dir: &Path, body: &Value, step: Duration) -> anyhow::Result<EtcdResult> {
    // A value the size of a submission's request body, as the gateway stores at least that.
    let value = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, serde_json::to_vec(body)?);
    let value_bytes = serde_json::to_vec(body)?.len();
    let etcd = etcd::Etcd::start(&args.etcd_bin, dir).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let put = Load::EtcdPut { http, urls: Arc::new(etcd.put_urls()), value: Arc::new(value) };
    let mut steps = Vec::new();
    for &c in &args.concurrency {
        let s = load::closed(&put, c, Duration::from_secs(args.warmup_secs), step, false).await;
        eprintln!(
            "bench: etcd put x{c}: {:.0}/s, p99 {:.1} ms, {} failed",
            s.ok_per_s,
            s.latency_ms.p99,
            s.failed_summary()
        );
        steps.push(s);
    }
    let version = etcd.version.clone();
    etcd.stop().await;
    let best_per_s = steps.iter().map(|s| s.ok_per_s).fold(0.0, f64::max);
    Ok(EtcdResult { version, value_bytes, steps, best_per_s, gateway_ratio: 0.0 })
}

/// Kills the leader `rounds` times under a steady submission load, each time timing the kill
/// to the first acknowledged submission that was sent after it; then restarts the old leader
/// and waits until it has caught up.
async fn failovers(
    g: &mut GatewayCluster,
    users: &Arc<Vec<Client>>,
    body: &Arc<Value>,
    rounds: usize,
) -> anyhow::Result<Failover> {
    // Short timeouts: a request stuck on the dead leader must not hold a client for long.
    let clients: Arc<Vec<Client>> = Arc::new(users.iter().map(|c| c.with_timeout(Duration::from_secs(2))).collect());
    let acks: Arc<Mutex<Vec<Instant>>> = Arc::default(); // send times of acknowledged submissions
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..12u64)
        .map(|w| {
            let (clients, body, acks, stop) = (clients.clone(), body.clone(), acks.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let client = &clients[n as usize % clients.len()];
                    match client.submit(&body, None).await {
                        Ok(a) if a.ok() => acks.lock().expect("acks lock").push(sent),
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    n += 12;
                    // ~25 submissions per second per worker: a steady load, far from saturation.
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
            })
        })
        .collect();
    let mut samples = Vec::new();
    for round in 0..rounds {
        let leader = g.nodes.leader().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let killed = Instant::now();
        g.nodes.kill(leader).await;
        let first =
            bpg_tests::wait::until("a submission acknowledged after the kill", Duration::from_secs(60), || async {
                acks.lock().expect("acks lock").iter().copied().find(|t| *t >= killed)
            })
            .await?;
        let secs = (first - killed).as_secs_f64();
        eprintln!("bench: failover {}/{rounds}: node {leader} killed, first ack sent {secs:.2} s after", round + 1);
        samples.push(secs);
        g.nodes.start_node(leader)?;
        g.nodes.wait_ready(leader).await?;
        g.nodes.wait_replicated().await?;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let p = load::Percentiles::of(samples.iter().map(|s| (s * 1e6) as u64).collect());
    Ok(Failover { median_s: p.p50 / 1e3, p90_s: p.p90 / 1e3, max_s: p.max / 1e3, samples_s: samples })
}

/// Submits at saturation until the leader's state holds `target` jobs, then measures each
/// node's resident memory.
async fn fill(g: &GatewayCluster, submit: &Load, target: u64, concurrency: usize) -> anyhow::Result<Footprint> {
    let jobs = |s: Option<Value>| s.and_then(|s| s["jobs"].as_u64()).unwrap_or(0);
    let start = Instant::now();
    let mut acked = 0;
    let mut last_report = Instant::now();
    loop {
        let leader = g.nodes.leader().await?;
        let now = jobs(g.nodes.raft_status(leader).await);
        if now >= target {
            break;
        }
        let s = load::closed(submit, concurrency, Duration::ZERO, Duration::from_secs(5), false).await;
        acked += s.ok;
        if last_report.elapsed() > Duration::from_secs(60) {
            eprintln!("bench: filling: {now} of {target} jobs, {:.0}/s", acked as f64 / start.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
    }
    let fill_per_s = acked as f64 / start.elapsed().as_secs_f64();
    settle(g).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let leader = g.nodes.leader().await?;
    let of_nodes = |field| g.nodes.nodes.iter().map(|n| n.pid().map_or(0.0, |pid| status_mib(pid, field))).collect();
    let (rss_mib, peak_rss_mib) = (of_nodes("VmRSS:"), of_nodes("VmHWM:"));
    let data_dir_mib = dir_bytes(&g.nodes.dir().join(format!("data-{leader}"))) as f64 / 1048576.0;
    Ok(Footprint { jobs: jobs(g.nodes.raft_status(leader).await), rss_mib, peak_rss_mib, fill_per_s, data_dir_mib })
}

/// SIGKILLs a follower other than node 0 (which initializes new clusters) and restarts it, on
/// its directory or, with `wipe`, on an empty one (so that it must install a snapshot).
/// Returns the seconds from the restart to ready (on its directory) or to holding every job.
async fn restart_follower(g: &mut GatewayCluster, wipe: bool) -> anyhow::Result<f64> {
    let leader = g.nodes.leader().await?;
    let node = g.nodes.followers(leader).into_iter().find(|f| *f != 0).context("no follower but node 0")?;
    let jobs = g.nodes.raft_status(leader).await.and_then(|s| s["jobs"].as_u64()).context("leader status")?;
    g.nodes.kill(node).await;
    if wipe {
        std::fs::remove_dir_all(g.nodes.dir().join(format!("data-{node}")))?;
    }
    let start = Instant::now();
    g.nodes.start_node(node)?;
    if wipe {
        bpg_tests::wait::until("the wiped follower to hold every job", Duration::from_secs(900), || async {
            let held = g.nodes.raft_status(node).await?["jobs"].as_u64()?;
            (held >= jobs).then_some(())
        })
        .await?;
    } else {
        g.nodes.wait_ready(node).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    g.nodes.wait_replicated().await?;
    Ok(secs)
}

/// A memory figure of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in MiB; 0 if it cannot be read.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The size of the newest complete snapshot file (`BPGSNAP1` magic) under a node's data
/// directory. A snapshot being built or received is written as a `.part` file with the same
/// magic and renamed when complete; taking the newest such file measured a build in progress.
fn snapshot_bytes(dir: &Path) -> u64 {
    let mut newest: Option<(std::time::SystemTime, u64)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
                continue;
            }
            if e.path().extension().is_some_and(|x| x == "part") {
                continue;
            }
            let mut magic = [0u8; 8];
            let is_snapshot = std::fs::File::open(e.path())
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok_and(|_| &magic == b"BPGSNAP1");
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if is_snapshot && newest.is_none_or(|(t, _)| modified > t) {
                newest = Some((modified, meta.len()));
            }
        }
    }
    newest.map_or(0, |(_, len)| len)
}

#[cfg(test)]
mod tests {
    use super::{commit_of_version, snapshot_bytes};

    #[test]
    fn the_snapshot_measured_is_the_newest_complete_one_not_a_build_in_progress() {
        let dir = std::env::temp_dir().join(format!("bpg-bench-snapshot-{}", std::process::id()));
        let snapshots = dir.join("data-0").join("snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        let write = |name: &str, len: usize| {
            let mut bytes = b"BPGSNAP1".to_vec();
            bytes.resize(len, 7);
            std::fs::write(snapshots.join(name), bytes).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        write("older.snap", 1_000);
        write("newest.snap", 3_000);
        std::fs::write(snapshots.join("not-a-snapshot"), vec![0u8; 9_000]).unwrap();
        write("building-x.part", 500);
        write("incoming-y.part", 700);
        let measured = snapshot_bytes(&dir.join("data-0"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(measured, 3_000, "the complete snapshot written last, not the partial files after it");
    }

    #[test]
    fn the_commit_is_read_from_the_version_line() {
        assert_eq!(commit_of_version("bpg 0.1.0 (2766e69)\n"), Some("2766e69"));
        assert_eq!(commit_of_version("bpg 0.1.0 (2766e69-dirty)"), Some("2766e69-dirty"));
        assert_eq!(commit_of_version("bpg 0.1.0"), None, "a build without the commit");
        assert_eq!(commit_of_version("bpg 0.1.0 ()"), None);
        assert_eq!(commit_of_version(""), None, "no binary, or it failed");
    }
}
