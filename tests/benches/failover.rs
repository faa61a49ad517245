//! Leader SIGKILL → first acknowledged write, median of N trials, with the product's default
//! Raft timing.
//!
//! `cargo bench -p bpg-tests --bench failover [-- TRIALS]`

use std::time::{Duration, Instant};

use bpg_tests::register::clusters_yaml;
use bpg_tests::{ClusterOptions, TestCluster};
use rand::RngExt;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    let opts = ClusterOptions {
        extra_yaml: clusters_yaml(1),
        heartbeat_ms: None,
        election_min_ms: None,
        election_max_ms: None,
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::start(env!("CARGO_BIN_EXE_e2e-bpg"), opts).await?;
    let mut samples = Vec::new();
    for trial in 0..trials {
        let leader = cluster.leader().await?;
        let survivors = cluster.followers(leader);
        let clients: Vec<_> =
            survivors.iter().map(|id| cluster.client(*id).with_timeout(Duration::from_millis(1500))).collect();
        assert!(clients[0].set_cluster("c0", json!({"weight": 1})).await?.ok());
        // Measure from a healthy cluster: every node holds the whole log.
        cluster.wait_replicated().await?;

        let killed_at = Instant::now();
        cluster.kill(leader).await;
        let mut value = 2;
        let elapsed = loop {
            let client = &clients[rand::rng().random_range(0..clients.len())];
            value += 1;
            if let Ok(a) = client.set_cluster("c0", json!({"weight": value})).await
                && a.ok()
            {
                break killed_at.elapsed();
            }
            anyhow::ensure!(killed_at.elapsed() < Duration::from_secs(30), "no write acknowledged 30 s after the kill");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!("trial {trial}: leader {leader} killed, first acknowledged write after {} ms", elapsed.as_millis());
        samples.push(elapsed);
        cluster.start_node(leader)?;
        cluster.wait_ready(leader).await?;
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "failover: median {} ms, min {} ms, max {} ms over {} trials",
        median.as_millis(),
        samples[0].as_millis(),
        samples[samples.len() - 1].as_millis(),
        samples.len()
    );
    Ok(())
}
