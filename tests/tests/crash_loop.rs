//! Crash loop: SIGKILL a node during a burst of writes, 20 rounds. Every restart opens its
//! store without a database error, and no acknowledged write is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bpg_tests::register::{Register, clusters_yaml, read_all, write};
use bpg_tests::{ClusterOptions, TestCluster};
use rand::RngExt;

const CLUSTERS: usize = 4;
const ROUNDS: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_write_bursts_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(CLUSTERS), snapshot_every_logs: 150, ..ClusterOptions::default() },
    )
    .await?;
    cluster.leader().await?;
    let mut registers = [Register::default(); CLUSTERS];
    let mut next_value = 1u32;
    let (mut acked_total, mut acked_after_kill) = (0usize, 0usize);

    for round in 0..ROUNDS {
        let leader = cluster.leader().await?;
        // Even rounds kill the leader, odd rounds a follower.
        let victim = if round % 2 == 0 { leader } else { cluster.followers(leader)[0] };
        tracing::info!(round, victim, "--- burst of writes");

        // One sequential writer per cluster, each sending to random nodes until told to stop.
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3).map(|id| cluster.client(id).with_timeout(Duration::from_secs(8))).collect();
        let mut writers = Vec::new();
        for (i, reg) in registers.iter().copied().enumerate() {
            let (clients, stop, killed) = (clients.clone(), stop.clone(), killed.clone());
            let start = next_value + i as u32 * 10_000;
            writers.push(tokio::spawn(async move {
                let (mut reg, mut acked, mut after_kill) = (reg, 0, 0);
                let mut value = start;
                while !stop.load(Ordering::SeqCst) {
                    let client = &clients[rand::rng().random_range(0..clients.len())];
                    let was_killed = killed.load(Ordering::SeqCst);
                    if write(client, &mut reg, &format!("c{i}"), value).await {
                        acked += 1;
                        after_kill += usize::from(was_killed);
                    }
                    value += 1;
                }
                (reg, acked, after_kill)
            }));
        }

        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(150..500))).await;
        tracing::info!(round, victim, "--- SIGKILL node {victim} mid-burst");
        cluster.kill(victim).await;
        killed.store(true, Ordering::SeqCst);
        if victim == leader {
            cluster.wait_for_new_leader(victim).await?;
        }
        // Let the survivors take writes for a while before the victim comes back.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        for (i, w) in writers.into_iter().enumerate() {
            let (reg, acked, after_kill) = w.await?;
            registers[i] = reg;
            acked_total += acked;
            acked_after_kill += after_kill;
        }
        next_value += CLUSTERS as u32 * 10_000;

        tracing::info!(round, "--- restart node {victim}");
        cluster.start_node(victim)?;
        cluster.wait_ready(victim).await?;
        let log = cluster.log(victim);
        for bad in ["Corruption", "panicked", "sled error", "database error", "StorageError"] {
            assert!(!log.contains(bad), "node {victim} logged {bad:?} after restart in round {round}");
        }
        let leader = cluster.leader().await?;
        let values = read_all(&cluster.client(leader), CLUSTERS).await?;
        for (i, reg) in registers.iter().enumerate() {
            let v = values[&format!("c{i}")];
            assert!(
                reg.admits(v),
                "round {round}: c{i} holds {v}, but acked {:?} / attempted {:?}",
                reg.acked,
                reg.attempted
            );
        }
    }
    eprintln!("crash loop: {acked_total} writes acknowledged, {acked_after_kill} of them after a kill");
    // The check above means something only if writes really crossed the kills.
    assert!(acked_after_kill >= ROUNDS as usize, "only {acked_after_kill} writes were acknowledged after a kill");
    Ok(())
}
