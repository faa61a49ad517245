//! Faults, each with its undo: process crashes and pauses, network partitions of several
//! shapes, misbehaving Kubernetes API servers, membership changes under load, and everything
//! crashing at once.

use std::time::Duration;

use clap::ValueEnum;
use rand::RngExt;
use rand::seq::SliceRandom;
use serde_json::json;

use crate::client::Client;
use crate::history::Outcome;
use crate::nodes::Cluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGKILL the leader; restart it on heal.
    KillLeader,
    /// SIGKILL a random node; restart it on heal.
    KillRandom,
    /// SIGSTOP the leader; SIGCONT on heal.
    PauseLeader,
    /// Cut the leader off from every other node.
    IsolateLeader,
    /// Split the voters into a majority and a minority holding the leader.
    MajorityMinority,
    /// Two halves that only a bridge node connects.
    Bridge,
    /// Cut one follower off from the leader only.
    CutFromLeader,
    /// One Kubernetes API server answers 503 to everything.
    KubesimUnavailable,
    /// Both API servers apply half the writes and then answer 503, and fail 10 % of requests.
    KubesimApplyThen503,
    /// Start one more node (it joins as a voter); on heal, remove it under load.
    AddRemoveNode,
    /// SIGKILL every node at once; restart them all on heal.
    KillAll,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::KillLeader,
        FaultKind::KillRandom,
        FaultKind::PauseLeader,
        FaultKind::IsolateLeader,
        FaultKind::MajorityMinority,
        FaultKind::Bridge,
        FaultKind::CutFromLeader,
        FaultKind::KubesimUnavailable,
        FaultKind::KubesimApplyThen503,
        FaultKind::AddRemoveNode,
        FaultKind::KillAll,
    ];

    pub fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
    }
}

/// What healing a fault takes.
#[derive(Debug)]
pub enum Undo {
    Restart(Vec<u64>),
    Resume(u64),
    Heal,
    ClearKubesim(Vec<usize>),
    RemoveNode(u64),
}

/// A fault in effect.
#[derive(Debug)]
pub struct Active {
    pub detail: String,
    pub undo: Undo,
}

async fn leader_or_any(cluster: &Cluster) -> u64 {
    match cluster.leader().await {
        Some(l) => l,
        None => {
            let running = cluster.running();
            running[rand::rng().random_range(0..running.len())]
        }
    }
}

/// The voters that run (the nodes a partition can split).
async fn members(cluster: &Cluster, leader: u64) -> Vec<u64> {
    let voters = cluster.voters(leader).await;
    let running = cluster.running();
    let m: Vec<u64> = voters.into_iter().filter(|v| running.contains(v)).collect();
    if m.is_empty() { running } else { m }
}

pub async fn inject(cluster: &mut Cluster, kind: FaultKind) -> anyhow::Result<Active> {
    let leader = leader_or_any(cluster).await;
    let active = match kind {
        FaultKind::KillLeader => {
            cluster.kill(leader).await;
            Active { detail: format!("killed leader n{leader}"), undo: Undo::Restart(vec![leader]) }
        }
        FaultKind::KillRandom => {
            let running = cluster.running();
            let victim = running[rand::rng().random_range(0..running.len())];
            cluster.kill(victim).await;
            Active { detail: format!("killed n{victim}"), undo: Undo::Restart(vec![victim]) }
        }
        FaultKind::PauseLeader => {
            cluster.pause(leader, true);
            Active { detail: format!("paused leader n{leader}"), undo: Undo::Resume(leader) }
        }
        FaultKind::IsolateLeader => {
            let others: Vec<u64> = cluster.running().into_iter().filter(|n| *n != leader).collect();
            for o in &others {
                let (a, b) = (cluster.nodes[leader as usize].host.clone(), cluster.nodes[*o as usize].host.clone());
                cluster.net.cut(&a, &b)?;
            }
            Active { detail: format!("isolated leader n{leader} from {others:?}"), undo: Undo::Heal }
        }
        FaultKind::MajorityMinority => {
            let mut m = members(cluster, leader).await;
            m.shuffle(&mut rand::rng());
            m.retain(|n| *n != leader);
            let minority_size = m.len().div_ceil(2);
            let mut minority = vec![leader];
            minority.extend(m.drain(..minority_size.saturating_sub(1)));
            let majority = m;
            cut_between(cluster, &minority, &majority)?;
            Active {
                detail: format!("minority {minority:?} (with the leader) | majority {majority:?}"),
                undo: Undo::Heal,
            }
        }
        FaultKind::Bridge => {
            let mut m = members(cluster, leader).await;
            m.shuffle(&mut rand::rng());
            let bridge = m.pop().unwrap_or(leader);
            let half = m.len() / 2;
            let (left, right) = m.split_at(half.max(1).min(m.len()));
            let (left, right) = (left.to_vec(), right.to_vec());
            cut_between(cluster, &left, &right)?;
            Active { detail: format!("{left:?} | {right:?}, bridged by n{bridge}"), undo: Undo::Heal }
        }
        FaultKind::CutFromLeader => {
            let others: Vec<u64> = members(cluster, leader).await.into_iter().filter(|n| *n != leader).collect();
            let f = others[rand::rng().random_range(0..others.len())];
            cut_between(cluster, &[leader], &[f])?;
            Active { detail: format!("n{f} cut from leader n{leader} only"), undo: Undo::Heal }
        }
        FaultKind::KubesimUnavailable => {
            cluster.kubesim_faults(0, json!({"unavailable": true})).await?;
            Active { detail: format!("{} answers 503", cluster.sims[0].id), undo: Undo::ClearKubesim(vec![0]) }
        }
        FaultKind::KubesimApplyThen503 => {
            for i in 0..cluster.sims.len() {
                cluster.kubesim_faults(i, json!({"applyThen503Rate": 0.5, "errorRate": 0.1})).await?;
            }
            Active {
                detail: "apply-then-503 on half the writes, 10 % errors".into(),
                undo: Undo::ClearKubesim(vec![0, 1]),
            }
        }
        FaultKind::AddRemoveNode => {
            let id = cluster.initial as u64;
            cluster.start_node(id)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut joined = false;
            while tokio::time::Instant::now() < deadline {
                if let Some(l) = cluster.leader().await
                    && cluster.voters(l).await.contains(&id)
                {
                    joined = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let detail = if joined {
                format!("n{id} joined as a voter")
            } else {
                format!("n{id} started (had not joined in 30 s)")
            };
            Active { detail, undo: Undo::RemoveNode(id) }
        }
        FaultKind::KillAll => {
            let all = cluster.running();
            for n in &all {
                cluster.kill(*n).await;
            }
            Active { detail: format!("killed {all:?}"), undo: Undo::Restart(all) }
        }
    };
    Ok(active)
}

fn cut_between(cluster: &mut Cluster, a: &[u64], b: &[u64]) -> anyhow::Result<()> {
    for x in a {
        for y in b {
            let (hx, hy) = (cluster.nodes[*x as usize].host.clone(), cluster.nodes[*y as usize].host.clone());
            cluster.net.cut(&hx, &hy)?;
        }
    }
    Ok(())
}

pub async fn heal(cluster: &mut Cluster, client: &Client, active: Active) -> anyhow::Result<String> {
    match active.undo {
        Undo::Restart(ids) => {
            for id in ids {
                cluster.start_node(id)?;
            }
            Ok("restarted".into())
        }
        Undo::Resume(id) => {
            cluster.pause(id, false);
            Ok("resumed".into())
        }
        Undo::Heal => {
            cluster.net.heal()?;
            Ok("healed".into())
        }
        Undo::ClearKubesim(sims) => {
            for s in sims {
                cluster.kubesim_faults(s, json!({})).await?;
            }
            Ok("cleared".into())
        }
        Undo::RemoveNode(id) => {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut removed = false;
            while !removed && tokio::time::Instant::now() < deadline {
                for n in cluster.running().into_iter().filter(|n| *n != id) {
                    if client.remove_member(&cluster.nodes[n as usize].api(), id).await.outcome == Outcome::Ok {
                        removed = true;
                        break;
                    }
                }
                if !removed {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            cluster.stop(id).await;
            Ok(if removed {
                format!("removed n{id} and stopped it")
            } else {
                format!("could not remove n{id}; stopped it")
            })
        }
    }
}

/// Ends every fault and makes sure every initial node runs.
pub async fn heal_all(cluster: &mut Cluster) -> anyhow::Result<()> {
    cluster.net.heal()?;
    for i in 0..cluster.sims.len() {
        cluster.kubesim_faults(i, json!({})).await?;
    }
    for id in 0..cluster.initial as u64 {
        if cluster.nodes[id as usize].paused {
            cluster.pause(id, false);
        }
        cluster.start_node(id)?;
    }
    Ok(())
}
