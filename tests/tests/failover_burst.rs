//! The leader is killed during a burst of submissions: every acknowledged submission exists
//! exactly once across the two clusters, and reaches a terminal state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bpg_tests::gateway::GatewayCluster;
use bpg_tests::kubesim::{FAST, spark_pi};
use bpg_tests::{bins, wait};

const TERMINAL: [&str; 3] = ["COMPLETED", "FAILED", "SUBMISSION_FAILED"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_submission_is_lost_or_doubled_across_a_leader_kill() -> anyhow::Result<()> {
    let mut g = GatewayCluster::start(bins!(), &[50, 50], false, FAST).await?;
    let leader = g.nodes.leader().await?;

    tracing::info!("--- six submitters on random nodes");
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3).map(|n| g.user(n).with_timeout(Duration::from_secs(15))).collect();
    let mut submitters = Vec::new();
    for _ in 0..6 {
        let (clients, stop) = (clients.clone(), stop.clone());
        submitters.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0);
            while !stop.load(Ordering::SeqCst) {
                let c = &clients[rand::random_range(0..clients.len())];
                match c.submit(&spark_pi(), None).await {
                    Ok(a) if a.ok() => acked.push(a.body["submissionId"].as_str().unwrap().to_owned()),
                    _ => {
                        // A client backs off a little on 503s and refused connections.
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tracing::info!("--- SIGKILL the leader mid-burst");
    g.nodes.kill(leader).await;
    g.nodes.wait_for_new_leader(leader).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut failed = 0;
    for s in submitters {
        let (a, f) = s.await?;
        acked.extend(a);
        failed += f;
    }
    g.nodes.start_node(leader)?;
    eprintln!("acknowledged {} submissions, {failed} not acknowledged", acked.len());
    assert!(acked.len() > 20, "too few acknowledged submissions to mean anything");
    let unique: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "an id was acknowledged twice");

    tracing::info!("--- every acknowledged id exists exactly once, and ends");
    let sims = &g.sims;
    wait::until("every acknowledged job created and terminal", Duration::from_secs(90), || async {
        let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for sim in sims {
            for app in sim.applications().await.ok()? {
                let name = app["metadata"]["name"].as_str()?.to_owned();
                let state = app["status"]["applicationState"]["state"].as_str().unwrap_or("").to_owned();
                let entry = seen.entry(name).or_insert((0, String::new()));
                entry.0 += 1;
                entry.1 = state;
            }
        }
        for (name, (count, _)) in &seen {
            assert_eq!(*count, 1, "{name} exists in {count} clusters");
        }
        acked.iter().all(|id| seen.get(id).is_some_and(|(_, s)| TERMINAL.contains(&s.as_str()))).then_some(())
    })
    .await?;

    tracing::info!("--- and the replicated state agrees, read linearizably");
    let leader = g.nodes.leader().await?;
    for id in &acked {
        let a = g.user(leader).status(id, true).await?;
        assert!(a.ok() && TERMINAL.contains(&a.body["applicationState"].as_str().unwrap_or("")), "{id}: {}", a.body);
    }
    Ok(())
}
