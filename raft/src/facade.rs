//! [`RaftNode`]: the one handle the rest of bpg uses to replicate and read. openraft's
//! generics stop here; callers see [`WriteError`], [`ReadError`] and [`AdminError`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::storage::RaftLogStorage as _;
use openraft::{ServerState, SnapshotPolicy};
use serde::Serialize;
use tokio::sync::watch;

use crate::batch::Proposer;
use crate::model::{Command, Response};
use crate::network::NetworkFactory;
use crate::store::{LogStore, SYNC_EVERY, SnapshotPacing, StateMachine, StateReader, Store};
use crate::typ::{NodeId, NodeInfo, Raft, Vote};

/// Timing and compaction settings of one node.
///
/// openraft 0.9 makes a follower wait out a leader lease of `election_timeout_max` *plus* its
/// random election timeout after the last heartbeat before it campaigns (and `2 ×
/// election_timeout_max` more after seeing a longer log), checking on a tick of 1.5 ×
/// `heartbeat`. The defaults (100 ms, 400–800 ms) therefore give a first campaign 1.2–1.6 s
/// after a leader dies, while a scheduler stall must exceed 1.2 s to cause a needless one.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    /// Name shared by all nodes of the cluster.
    pub cluster_name: String,
    /// Leader heartbeat period. Default 100 ms.
    pub heartbeat: Duration,
    /// Election timeout range. Default 400–800 ms.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot once this many log entries follow the last one *and* the log written
    /// since has reached the last snapshot's size (so that a large state is not rewritten every
    /// few seconds). Default 5000.
    pub snapshot_every_logs: u64,
    /// Log entries kept behind a snapshot, so slow followers catch up without one. Default 1000.
    pub logs_kept_after_snapshot: u64,
    /// How long a write waits to be committed and applied before its outcome is reported as
    /// unknown. Default 10 s.
    pub write_timeout: Duration,
    /// Timeout of one snapshot chunk RPC. Default 10 s.
    pub install_snapshot_timeout: Duration,
    /// A proposal starts at least this long after the one before it started; the writes that
    /// come meanwhile share its entry. Zero proposes as soon as the last proposal is answered.
    /// Default 5 ms: at moderate rates, where commits are quicker than that, it halves the log
    /// entries per submission and takes a fifth off the gateway's CPU, for a few ms of latency
    /// (raft/DESIGN.md).
    pub min_entry_interval: Duration,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            cluster_name: "bpg".into(),
            heartbeat: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(800),
            snapshot_every_logs: 5000,
            logs_kept_after_snapshot: 1000,
            write_timeout: Duration::from_secs(10),
            install_snapshot_timeout: Duration::from_secs(10),
            min_entry_interval: Duration::from_millis(5),
        }
    }
}

/// The current leader as a client needs it: where to forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaderInfo {
    pub id: NodeId,
    pub api_addr: String,
}

/// Why a replicated write did not return a response. `NotLeader` and `NoQuorum` mean "not
/// applied"; `Unknown` means the outcome is unknown and must be reported as such.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; the command was not appended. Safe to send elsewhere.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<LeaderInfo> },
    /// This node leads but no quorum has answered it for a while (it is probably cut off);
    /// the command was not appended. Safe to retry, here or elsewhere.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The command may or may not be committed (timeout, leadership lost, shutting down).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// Why a linearizable read could not be served here.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<LeaderInfo> },
    /// No quorum confirmed the leadership in time.
    #[error("leadership not confirmed: {0}")]
    Unavailable(String),
}

/// Errors of membership operations.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<LeaderInfo> },
    /// The request cannot be done as asked (e.g. a membership change already in progress,
    /// a voter that is not a learner yet).
    #[error("{0}")]
    Refused(String),
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid Raft settings: {0}")]
    Settings(String),
    #[error("Raft failed to start: {0}")]
    Raft(String),
}

/// A running Raft node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    /// Serializes voter changes made through this node, so that two concurrent joins cannot
    /// each compute a voter set without the other's node.
    membership_lock: tokio::sync::Mutex<()>,
    reader: StateReader,
    /// For syncing the applies committed without a sync (see [`sync_applies`]).
    state_machine: StateMachine,
    /// Where writes go to share log entries (see [`crate::batch`]).
    proposer: Proposer,
    write_timeout: Duration,
    /// A leader that has not heard from a quorum for this long refuses new work at once
    /// rather than let it wait out the write timeout: twice the election timeout's upper bound,
    /// so that a loaded machine's late heartbeat responses do not refuse work spuriously.
    quorum_silence: Duration,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A node's view of the cluster, as `GET /admin/raft` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RaftStatus {
    pub id: NodeId,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    pub current_term: u64,
    pub current_leader: Option<NodeId>,
    pub leader_api_addr: Option<String>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// Milliseconds since a quorum last acknowledged this leader; `None` on followers.
    pub millis_since_quorum_ack: Option<u64>,
    pub voters: BTreeMap<NodeId, NodeInfo>,
    pub learners: BTreeMap<NodeId, NodeInfo>,
    /// On the leader: the last log index known to be replicated to each node.
    pub replication: Option<BTreeMap<NodeId, Option<u64>>>,
    /// Jobs in the local replica.
    pub jobs: u64,
}

/// Most log entries in one AppendEntries. openraft 0.9 gives every AppendEntries the
/// heartbeat interval (100 ms) to be answered, and a batched entry holds up to
/// [`crate::batch::MAX_BATCH`] commands (~70 KB); openraft's default of 300 entries made the
/// first AppendEntries of a new leader to a lagging follower up to ~20 MB, which cannot be
/// answered within 100 ms on a loaded machine and is resent as large each time: the likely
/// cause of the benchmark's fill losing its leader for 30 s at ~620,000 jobs, when each new
/// leader's first AppendEntries timed out. 16 entries stay near 1 MB.
const MAX_PAYLOAD_ENTRIES: u64 = 16;

/// Syncs the state machine's unsynced applies once they are [`SYNC_EVERY`] old, for when
/// applies stop and no batch syncs them. Stops with Raft.
fn sync_applies(raft: Raft, state_machine: StateMachine) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_EVERY / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if raft.metrics().borrow().state == ServerState::Shutdown {
                break;
            }
            if let Err(e) = state_machine.sync_if_due().await {
                tracing::error!(error = %e, "syncing the state machine failed");
            }
        }
    });
}

/// Starts a snapshot build whenever one is due: at least `every_logs` entries applied since the
/// last snapshot and enough log written since (see `store::pacing`). Stops with Raft.
fn pace_snapshots(raft: Raft, pacing: Arc<SnapshotPacing>, every_logs: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (state, applied, snapshot) = {
                let m = raft.metrics();
                let m = m.borrow();
                (m.state, m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
            };
            if state == ServerState::Shutdown {
                break;
            }
            let since = match (applied, snapshot) {
                (Some(a), Some(s)) => a.saturating_sub(s),
                (Some(a), None) => a + 1,
                (None, _) => 0,
            };
            // openraft ignores a trigger while a build is running.
            if since >= every_logs && pacing.log_outweighs_snapshot() && raft.trigger().snapshot().await.is_err() {
                break;
            }
        }
    });
}

/// Turns a vote that made this node leader into a plain vote for itself in the same term, so
/// that it starts as a follower and wins a new term, with a first entry of its own, before it
/// serves anything.
///
/// openraft 0.9 resumes such a node as leader of its old term at once, knowing as committed
/// only what it had applied. Applies are synced about once a second (the log is the durable
/// record), so after a crash that can be short of writes it acknowledged; and a linearizable
/// read waits for no more than that and the term's first entry, long committed: it would
/// answer from the state before those writes. A new term's first entry commits only after
/// everything before it. The vote keeps its term and candidate, so this node still votes for
/// no one else in that term.
async fn step_down_from_restored_leadership(id: NodeId, log: &mut LogStore) -> Result<(), StartError> {
    let vote = log.read_vote().await.map_err(|e| StartError::Raft(e.to_string()))?;
    if let Some(vote) = vote.filter(|v| v.is_committed() && v.leader_id().voted_for() == Some(id)) {
        let term = vote.leader_id().term;
        log.save_vote(&Vote::new(term, id)).await.map_err(|e| StartError::Raft(e.to_string()))?;
        tracing::info!(term, "was leader before this start; standing for a new term instead of resuming it");
    }
    Ok(())
}

/// Asked by every API request that needs the leader: reads the two fields under the metrics'
/// lock rather than copying all of them (a map of the replication state among them).
fn leader_of(raft: &Raft) -> Option<LeaderInfo> {
    leader_in(&raft.metrics().borrow())
}

/// The leader `m` names, with its address from the membership `m` holds.
fn leader_in(m: &openraft::RaftMetrics<NodeId, NodeInfo>) -> Option<LeaderInfo> {
    let id = m.current_leader?;
    let node = m.membership_config.membership().get_node(&id)?;
    Some(LeaderInfo { id, api_addr: node.api_addr.clone() })
}

pub(crate) fn leader_from(id: Option<NodeId>, node: Option<NodeInfo>) -> Option<LeaderInfo> {
    Some(LeaderInfo { id: id?, api_addr: node?.api_addr })
}

impl RaftNode {
    /// Starts Raft on an opened store. Does not initialize a cluster; see [`RaftNode::initialize`].
    pub async fn start(
        id: NodeId,
        store: Store,
        network: NetworkFactory,
        settings: &RaftSettings,
    ) -> Result<RaftNode, StartError> {
        let config = openraft::Config {
            cluster_name: settings.cluster_name.clone(),
            heartbeat_interval: settings.heartbeat.as_millis() as u64,
            election_timeout_min: settings.election_timeout_min.as_millis() as u64,
            election_timeout_max: settings.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: settings.install_snapshot_timeout.as_millis() as u64,
            // Builds are started by `pace_snapshots` instead.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: settings.logs_kept_after_snapshot,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Settings(e.to_string()))?;
        let Store { mut log, state_machine, reader, pacing } = store;
        step_down_from_restored_leadership(id, &mut log).await?;
        let raft = Raft::new(id, Arc::new(config), network, log, state_machine.clone())
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        pace_snapshots(raft.clone(), pacing, settings.snapshot_every_logs);
        sync_applies(raft.clone(), state_machine.clone());
        let proposer = Proposer::start(raft.clone(), settings.write_timeout, settings.min_entry_interval);
        Ok(RaftNode {
            inner: Arc::new(Inner {
                id,
                raft,
                membership_lock: tokio::sync::Mutex::new(()),
                reader,
                state_machine,
                proposer,
                write_timeout: settings.write_timeout,
                quorum_silence: 2 * settings.election_timeout_max,
            }),
        })
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The local replica's state. Reads here may lag the leader; see [`RaftNode::linearize`].
    pub fn state(&self) -> &StateReader {
        &self.inner.reader
    }

    pub(crate) fn raw(&self) -> &Raft {
        &self.inner.raft
    }

    /// Replicates `cmd` and returns the state machine's response once it is applied here.
    /// Cancellation-safe in the sense that dropping the future leaves the outcome unknown.
    pub async fn write(&self, cmd: Command) -> Result<Response, WriteError> {
        if let Some(why) = self.quorum_lost() {
            return Err(WriteError::NoQuorum(why));
        }
        let timeout = self.inner.write_timeout;
        match tokio::time::timeout(timeout, self.inner.proposer.write(cmd)).await {
            Err(_) => Err(WriteError::Unknown(format!("not applied within {timeout:?}"))),
            Ok(outcome) => outcome,
        }
    }

    /// Waits until every write committed before this call is applied locally, confirming with
    /// a quorum that this node is still the leader. After `Ok`, reads of [`RaftNode::state`]
    /// are linearizable.
    pub async fn linearize(&self) -> Result<(), ReadError> {
        let raft = &self.inner.raft;
        if let Some(why) = self.quorum_lost() {
            return Err(ReadError::Unavailable(why));
        }
        match tokio::time::timeout(self.inner.write_timeout, raft.ensure_linearizable()).await {
            Err(_) => Err(ReadError::Unavailable(format!("no quorum within {:?}", self.inner.write_timeout))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(ReadError::NotLeader { leader: leader_from(f.leader_id, f.leader_node) })
            }
            Ok(Err(e)) => Err(ReadError::Unavailable(e.to_string())),
        }
    }

    /// Why this node, leading, should not take new work: no quorum has acknowledged it (a
    /// heartbeat or an append) for longer than two election timeouts. openraft 0.9 keeps such a
    /// leader leading until it hears a higher term, so without this check every request it
    /// takes would wait out the write timeout while the rest of the cluster elects another.
    fn quorum_lost(&self) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let silent = m.millis_since_quorum_ack.filter(|_| m.state == ServerState::Leader)?;
        (silent > self.inner.quorum_silence.as_millis() as u64)
            .then(|| format!("this leader (node {}) has not heard from a quorum for {silent} ms", self.inner.id))
    }

    /// The leader as this node currently knows it.
    pub fn leader(&self) -> Option<LeaderInfo> {
        leader_of(&self.inner.raft)
    }

    /// Resolves when this node knows of a leader that is none of `known` (a new election
    /// happened), with that leader. Pending forever on a node that is shutting down.
    pub async fn leader_other_than(&self, known: &[NodeId]) -> LeaderInfo {
        let mut metrics = self.inner.raft.metrics();
        loop {
            let moved = leader_in(&metrics.borrow_and_update()).filter(|l| !known.contains(&l.id));
            if let Some(leader) = moved {
                return leader;
            }
            if metrics.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.id)
    }

    /// Changes of leadership: `Some(term)` while this node leads in `term`, else `None`.
    pub fn leadership(&self) -> watch::Receiver<Option<u64>> {
        let mut metrics = self.inner.raft.metrics();
        let id = self.inner.id;
        let lead = move |m: &openraft::RaftMetrics<NodeId, NodeInfo>| {
            (m.state == ServerState::Leader && m.current_leader == Some(id)).then_some(m.current_term)
        };
        let (tx, rx) = watch::channel(lead(&metrics.borrow()));
        tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                let now = lead(&metrics.borrow_and_update());
                tx.send_if_modified(|seen| {
                    let changed = *seen != now;
                    *seen = now;
                    changed
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        rx
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut voters = BTreeMap::new();
        let mut learners = BTreeMap::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.insert(*id, node.clone());
            } else {
                learners.insert(*id, node.clone());
            }
        }
        let leader_api_addr = leader_in(&m).map(|l| l.api_addr);
        RaftStatus {
            id: m.id,
            state: format!("{:?}", m.state),
            current_term: m.current_term,
            current_leader: m.current_leader,
            leader_api_addr,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            voters,
            learners,
            replication: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, log)| (*id, log.as_ref().map(|l| l.index))).collect()),
            jobs: self.inner.reader.job_count().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the job count failed");
                0
            }),
        }
    }

    /// Initializes a brand-new cluster with `members` as voters. Returns `false` when this
    /// node was initialized before (a restart), which is not an error.
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeInfo>) -> Result<bool, AdminError> {
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(AdminError::Refused(e.to_string())),
        }
    }

    /// Adds (or updates) a learner and waits until it has caught up with the log.
    pub async fn add_learner(&self, id: NodeId, node: NodeInfo) -> Result<(), AdminError> {
        match self.inner.raft.add_learner(id, node, true).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(AdminError::NotLeader { leader: leader_from(f.leader_id, f.leader_node) })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(AdminError::Refused(e.to_string()))
            }
            Err(e) => Err(AdminError::Unknown(e.to_string())),
        }
    }

    /// Makes `voters` the voting members (joint consensus inside). Nodes removed from the
    /// voters are removed from the cluster entirely.
    pub async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), AdminError> {
        match self.inner.raft.change_membership(voters, false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(AdminError::NotLeader { leader: leader_from(f.leader_id, f.leader_node) })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(AdminError::Refused(e.to_string()))
            }
            Err(e) => Err(AdminError::Unknown(e.to_string())),
        }
    }

    /// Adds `id` (a learner already) to the voters, keeping the others. No-op if it votes.
    pub async fn add_voter(&self, id: NodeId) -> Result<(), AdminError> {
        let _serialized = self.inner.membership_lock.lock().await;
        let mut voters: BTreeSet<NodeId> = self.status().voters.keys().copied().collect();
        if !voters.insert(id) {
            return Ok(());
        }
        self.change_membership(voters).await
    }

    /// Removes `id` from the voters (and the cluster). No-op if it is not a member.
    pub async fn remove_voter(&self, id: NodeId) -> Result<(), AdminError> {
        let _serialized = self.inner.membership_lock.lock().await;
        let status = self.status();
        let mut voters: BTreeSet<NodeId> = status.voters.keys().copied().collect();
        if !voters.remove(&id) && !status.learners.contains_key(&id) {
            return Ok(());
        }
        if voters.is_empty() {
            return Err(AdminError::Refused("cannot remove the last voter".into()));
        }
        self.change_membership(voters).await
    }

    /// Whether this node is a voter in the membership it knows.
    pub fn is_voter(&self) -> bool {
        self.status().voters.contains_key(&self.inner.id)
    }

    /// Builds a snapshot now (and lets openraft purge the log behind it).
    pub async fn trigger_snapshot(&self) -> Result<(), AdminError> {
        self.inner.raft.trigger().snapshot().await.map_err(|e| AdminError::Unknown(e.to_string()))
    }

    /// Stops Raft. Call once, at the end of shutdown. Every Raft write the store took is
    /// already durable; the applies not yet synced are synced here, so that a restart has
    /// nothing to apply again.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "Raft did not shut down cleanly");
        }
        if let Err(e) = self.inner.state_machine.sync_now().await {
            tracing::warn!(error = %e, "syncing the state machine at shutdown failed");
        }
    }
}

/// Convenience for the leader-side housekeeping and status answers.
impl RaftNode {
    /// The leader's last known log index (`None` before any entry).
    pub fn last_applied_index(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow().last_applied.map(|l| l.index)
    }
}
