//! The chaos harness: runs a gateway cluster as separate processes, each in its own network
//! namespace, drives a workload, injects faults on a schedule and checks the recorded history.
//! It treats the gateway as a black box over HTTP.
//!
//! Exit codes: 0 every invariant held, 1 an invariant was violated, 2 the harness itself could
//! not run (not root, binaries missing, …).
//!
//! `jepsen bench` measures the gateway instead, and `jepsen compare` puts two series of its
//! runs side by side (see `bench/README.md`).

use std::process::ExitCode;

use bpg_jepsen::bench::compare::{CompareArgs, compare};
use bpg_jepsen::bench::{BenchArgs, bench};
use bpg_jepsen::run::{RunArgs, run};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "jepsen", about = "Chaos testing of the bpg gateway: workload, faults, history checkers")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a gateway cluster under faults and check the history.
    Run(RunArgs),
    /// Measure throughput, latency, failover time and footprint (release build), against etcd.
    Bench(BenchArgs),
    /// Put two series of bench runs side by side, with an exact rank test per figure.
    Compare(CompareArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let result = runtime.block_on(async {
        tokio::select! {
            r = async {
                match cli.command {
                    Cmd::Run(args) => run(args).await,
                    Cmd::Bench(args) => bench(args).await.map(|()| true),
                    Cmd::Compare(args) => compare(args).map(|()| true),
                }
            } => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("jepsen: {e:#}");
            ExitCode::from(2)
        }
    }
}
