//! `jepsen run`: a gateway cluster under a fault schedule, the workload, the final reads and the
//! checkers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

use crate::checker::{self, Final, TERMINAL, Verdict};
use crate::client::Client;
use crate::history::{Call, Fault, History, Op, Outcome};
use crate::nemesis::{self, FaultKind};
use crate::nodes::Cluster;
use crate::report;
use crate::workload::Workload;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Gateway nodes (voters at start).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=7))]
    nodes: u8,
    /// Every fault kind once, in a seeded order (a few minutes); the CI run.
    #[arg(long, conflicts_with = "duration")]
    short: bool,
    /// Random faults for this many seconds.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Only these fault kinds (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// How long each fault is held, seconds.
    #[arg(long, default_value_t = 6.0)]
    hold: f64,
    /// Quiet time between faults, seconds.
    #[arg(long, default_value_t = 4.0)]
    rest: f64,
    /// Concurrent client processes (default: 2 per node).
    #[arg(long)]
    clients: Option<u32>,
    /// Seed of the fault schedule (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Where results go (default: jepsen/results/<time>); an earlier run's results there are
    /// replaced.
    #[arg(long)]
    results_dir: Option<PathBuf>,
    /// Directory holding the `bpg` and `kubesim` binaries (default: this binary's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// kubesim's time scale: 0.05 runs a SparkPi in about two seconds.
    #[arg(long, default_value_t = 0.05)]
    time_scale: f64,
}

/// Bound on waiting for every acknowledged job to finish once the faults stop.
const SETTLE: Duration = Duration::from_secs(120);
/// Process number of the harness's own final reads in the history.
const FINAL_READER: u32 = 999;

fn binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!("{} not found: build it first (cargo build --workspace --bins) or pass --bin-dir", p.display());
    }
    Ok(p)
}

/// The fault schedule: every kind once for a short run, a seeded random sequence otherwise.
fn schedule(args: &RunArgs, rng: &mut StdRng) -> Vec<FaultKind> {
    let kinds: Vec<FaultKind> = if args.faults.is_empty() { FaultKind::ALL.to_vec() } else { args.faults.clone() };
    if args.short {
        let mut all = kinds;
        all.shuffle(rng);
        // All nodes down last but one: the run then also checks a full restart mid-run.
        if let Some(i) = all.iter().position(|k| *k == FaultKind::KillAll)
            && all.len() > 1
        {
            let k = all.remove(i);
            all.insert(all.len() - 1, k);
        }
        all
    } else {
        let per_fault = args.hold + args.rest + 2.0;
        let n = (args.duration as f64 / per_fault).ceil().max(1.0) as usize;
        (0..n).map(|_| *kinds.choose(rng).expect("at least one fault kind")).collect()
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("this binary's directory")?.to_path_buf(),
    };
    let (bpg, kubesim) = (binary(&bin_dir, "bpg")?, binary(&bin_dir, "kubesim")?);
    let started = chrono::Local::now();
    let dir = match &args.results_dir {
        Some(d) => d.clone(),
        None => PathBuf::from("jepsen/results").join(started.format("%Y%m%dT%H%M%S").to_string()),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    // A directory used before holds that run's nodes, whose data would start this cluster
    // with another cluster's membership and addresses.
    let stale = dir.join("nodes");
    if stale.exists() {
        std::fs::remove_dir_all(&stale).with_context(|| format!("removing the earlier run's {}", stale.display()))?;
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = schedule(&args, &mut rng);
    let nodes = usize::from(args.nodes);
    eprintln!("jepsen: {nodes} nodes, seed {seed}, {} faults, results in {}", plan.len(), dir.display());

    let net = crate::net::Net::create(std::process::id() as u16)?;
    let mut cluster = Cluster::start(net, &bpg, &kubesim, &dir, nodes, args.time_scale).await?;
    let outcome = exercise(&args, &mut cluster, &plan, &dir, seed, started).await;
    cluster.shutdown().await;
    outcome
}

async fn wait_ready(cluster: &Cluster, ids: &[u64], within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = tokio::time::Instant::now() + within;
    for id in ids {
        let url = format!("http://{}/ready", cluster.nodes[*id as usize].admin());
        loop {
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("node n{id} not ready within {within:?} (see its log in the results directory)");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn exercise(
    args: &RunArgs,
    cluster: &mut Cluster,
    plan: &[FaultKind],
    dir: &Path,
    seed: u64,
    started: chrono::DateTime<chrono::Local>,
) -> anyhow::Result<bool> {
    let initial: Vec<u64> = (0..cluster.initial as u64).collect();
    wait_ready(cluster, &initial, Duration::from_secs(60)).await?;
    let history = Arc::new(History::create(&dir.join("history.jsonl"))?);
    let client = Client::new(&cluster.secret, Duration::from_secs(10));
    let endpoints: Vec<String> = initial.iter().map(|i| cluster.nodes[*i as usize].api()).collect();
    let sims: Vec<String> = cluster.sims.iter().map(|s| s.id.clone()).collect();
    let workload = Workload::new(history.clone(), client.clone(), endpoints.clone());
    let clients = args.clients.unwrap_or(2 * u32::from(args.nodes));
    let mut tasks = Vec::new();
    for p in 0..clients {
        tasks.push(tokio::spawn(workload.clone().client_loop(p)));
    }
    for (i, s) in sims.iter().enumerate() {
        tasks.push(tokio::spawn(workload.clone().weight_loop(100 + i as u32, s.clone())));
    }

    tokio::time::sleep(Duration::from_secs_f64(args.rest)).await;
    for (n, kind) in plan.iter().enumerate() {
        let start = history.now();
        let active = nemesis::inject(cluster, *kind).await.with_context(|| format!("injecting {}", kind.name()))?;
        eprintln!("jepsen: [{}/{}] {}: {}", n + 1, plan.len(), kind.name(), active.detail);
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
        let detail = active.detail.clone();
        let healed =
            nemesis::heal(cluster, &client, active).await.with_context(|| format!("healing {}", kind.name()))?;
        history.fault(Fault { name: kind.name(), detail: format!("{detail}; {healed}"), start, end: history.now() });
        tokio::time::sleep(Duration::from_secs_f64(args.rest)).await;
    }
    nemesis::heal_all(cluster).await?;
    let end_of_faults = history.now();
    eprintln!("jepsen: faults over; waiting for the cluster to serve again");

    // Keep the workload going until a write is acknowledged again (or the bound passes), and a
    // little longer so the recovered cluster is exercised too.
    let bound = Duration::from_secs_f64(checker::recovery::BOUND_SECS);
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline && report::first_write_after(&history.ops(), end_of_faults).is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    workload.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let recovery_secs = report::first_write_after(&history.ops(), end_of_faults);

    eprintln!("jepsen: workload stopped; reading the final state");
    let mut fin = Final { recovery_secs, ..Final::default() };
    settle(&history, &client, &endpoints, &mut fin).await;
    let objects = cluster.spark_applications().await?;
    for (cluster_id, object) in &objects {
        if let Some(name) = object["metadata"]["name"].as_str() {
            fin.objects.entry(name.to_owned()).or_default().push(cluster_id.clone());
        }
    }
    // The clusters' final objects, for reading a violation against what Kubernetes held.
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("objects.jsonl"))?);
    for (cluster_id, object) in &objects {
        use std::io::Write;
        writeln!(out, "{}", serde_json::json!({"cluster": cluster_id, "object": object}))?;
    }
    read_weights(cluster, &client, &sims, &mut fin).await;
    history.flush();
    let crashes = cluster.crashes();

    let ops = history.ops();
    let verdicts: Vec<Verdict> = vec![
        checker::lost::check(&ops, &fin),
        checker::single_object::check(&ops, &fin),
        checker::linearizable::check(&ops, &fin),
        checker::weights::check(&ops, &fin),
        checker::recovery::check(&ops, &fin),
        Verdict::new("processes", "no process exits by itself or panics", crashes, vec![]),
    ];
    let availability = report::availability(&ops, &history.faults(), end_of_faults);
    let valid = verdicts.iter().all(|v| v.valid);
    let report = report::Report {
        valid,
        started: started.to_rfc3339(),
        nodes: cluster.initial,
        seed,
        duration_s: history.now() as f64 / 1e9,
        verdicts: &verdicts,
        availability: &availability,
    };
    let text = report::write(dir, &report)?;
    println!("{text}");
    println!("results: {}", dir.display());
    Ok(valid)
}

/// Reads every acknowledged, undeleted submission linearizably until it is terminal (or the
/// settle bound passes), recording each read in the history.
async fn settle(history: &History, client: &Client, endpoints: &[String], fin: &mut Final) {
    let ops = history.ops();
    let deleted = checker::maybe_deleted(&ops);
    let mut pending: Vec<String> = checker::acknowledged(&ops).into_iter().filter(|id| !deleted.contains(id)).collect();
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut round = 0usize;
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        let mut next = Vec::new();
        for id in pending {
            let node = round % endpoints.len();
            round += 1;
            let invoke = history.now();
            let reply = client.status(&endpoints[node], &id, true).await;
            let value = match reply.status {
                Some(404) => Some("absent".to_owned()),
                Some(200) => reply.body["applicationState"].as_str().map(str::to_owned),
                _ => None,
            };
            history.record(Op {
                process: FINAL_READER,
                call: Call::Read { linearizable: true },
                id: Some(id.clone()),
                node: node as u64,
                invoke,
                complete: history.now(),
                outcome: reply.outcome,
                value: value.clone(),
                error: reply.error.clone(),
            });
            match (reply.outcome, value) {
                (Outcome::Ok, Some(v)) if v == "absent" => {
                    fin.gateway.insert(id, None);
                }
                (Outcome::Ok, Some(v)) => {
                    let done = TERMINAL.contains(&v.as_str());
                    fin.gateway.insert(id.clone(), Some(v));
                    if !done {
                        next.push(id);
                    }
                }
                _ => next.push(id),
            }
        }
        pending = next;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Each cluster's weight through a linearizable read, then on every running node locally
/// (retried briefly: a follower applies what the leader committed a moment later).
async fn read_weights(cluster: &Cluster, client: &Client, sims: &[String], fin: &mut Final) {
    let running = cluster.running();
    for sim in sims {
        let mut through_leader = None;
        for attempt in 0..50 {
            let node = &cluster.nodes[running[attempt % running.len()] as usize];
            through_leader = client.weight(&node.api(), sim, true).await;
            if through_leader.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut locals = Vec::new();
        for _ in 0..50 {
            locals.clear();
            for n in &running {
                locals.push(client.weight(&cluster.nodes[*n as usize].api(), sim, false).await);
            }
            if locals.iter().all(|w| *w == through_leader) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        fin.weights.insert(sim.clone(), (through_leader, locals));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        use clap::Parser;
        let mut argv = vec!["jepsen"];
        argv.extend(extra);
        Cli::parse_from(argv).run
    }

    #[test]
    fn a_short_run_injects_every_fault_kind_once() {
        let a = args(&["--short"]);
        let plan = schedule(&a, &mut StdRng::seed_from_u64(5));
        assert_eq!(plan.len(), FaultKind::ALL.len());
        for k in FaultKind::ALL {
            assert_eq!(plan.iter().filter(|p| **p == k).count(), 1, "{k:?}");
        }
        assert_eq!(plan[plan.len() - 2], FaultKind::KillAll);
    }

    #[test]
    fn a_long_run_fills_its_duration_with_the_chosen_kinds() {
        let a = args(&["--duration", "120", "--faults", "kill-leader,bridge"]);
        let plan = schedule(&a, &mut StdRng::seed_from_u64(5));
        assert_eq!(plan.len(), 10);
        assert!(plan.iter().all(|k| matches!(k, FaultKind::KillLeader | FaultKind::Bridge)));
    }
}
