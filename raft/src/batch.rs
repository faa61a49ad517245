//! Proposal batching: concurrent writes share one log entry.
//!
//! openraft 0.9 appends each `client_write` as its own entry and waits for that append's flush
//! before it takes the next message, so a leader that proposes every command alone commits at
//! most one command per fsync. Here writes queue for a proposer task that has one proposal open
//! at a time: an idle node proposes a write at once, as before, while under load the writes
//! that arrive while a proposal is open go out together as the next [`Command::Batch`], one
//! append and one fsync on each node. Apply runs a batch's commands in order in one
//! transaction, exactly as it would run them as consecutive entries, and each caller gets its
//! own command's response.
//!
//! One proposal at a time, not several: every log entry costs each node an append, a sync, an
//! RPC and an apply, and openraft sends each follower one more RPC to tell it the entry
//! committed, so the fewer entries the better. Two open proposals gave 0.13 entries per
//! submission at saturation against 0.07 for one, and 7 % more gateway CPU at 600
//! submissions/s, with no better tail (raft/DESIGN.md, bench/README.md "What changed").
//!
//! And not too soon after the last: a proposal starts at least `min_interval` after the one
//! before it started, so that at moderate rates, where a commit is quicker than that, the
//! writes of several submissions share each entry. A write that finds the last proposal older
//! than that (an idle node's) goes at once.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::facade::{WriteError, leader_from};
use crate::model::{Command, Response};
use crate::typ::Raft;

/// Commands in one entry at most (an entry is replicated and applied as a whole).
pub(crate) const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<Response, WriteError>>;

/// The sending side; dropping every clone ends the proposer.
#[derive(Clone, Debug)]
pub(crate) struct Proposer {
    tx: mpsc::UnboundedSender<(Command, Reply)>,
}

impl Proposer {
    /// Starts the proposer task for `raft`; each proposal waits at most `timeout`, and starts
    /// at least `min_interval` after the one before it started.
    pub(crate) fn start(raft: Raft, timeout: Duration, min_interval: Duration) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx, timeout, min_interval));
        Proposer { tx }
    }

    /// Queues `cmd` and waits for its response.
    pub(crate) async fn write(&self, cmd: Command) -> Result<Response, WriteError> {
        let (reply, response) = oneshot::channel();
        self.tx.send((cmd, reply)).map_err(|_| WriteError::Unknown("the node is shutting down".into()))?;
        response.await.unwrap_or_else(|_| Err(WriteError::Unknown("the proposer stopped".into())))
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<(Command, Reply)>, timeout: Duration, min_interval: Duration) {
    let mut last_start: Option<Instant> = None;
    while let Some(first) = rx.recv().await {
        // A command that finds the last proposal started less than `min_interval` ago waits
        // out the rest, and the commands that come meanwhile join it.
        if let Some(due) = last_start.map(|t| t + min_interval).filter(|due| *due > Instant::now()) {
            tokio::time::sleep_until(due).await;
        }
        last_start = Some(Instant::now());
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // The writes that arrive meanwhile queue up and form the next batch.
        propose(&raft, batch, timeout).await;
    }
}

/// Proposes the commands as one entry (a lone command as itself) and answers every caller.
async fn propose(raft: &Raft, batch: Vec<(Command, Reply)>, timeout: Duration) {
    let single = batch.len() == 1;
    let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
    let cmd = if single { cmds.into_iter().next().expect("one command") } else { Command::Batch(cmds) };
    let outcome = match tokio::time::timeout(timeout, raft.client_write(cmd)).await {
        Err(_) => Err(WriteError::Unknown(format!("not applied within {timeout:?}"))),
        Ok(Ok(resp)) => Ok(resp.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(WriteError::NotLeader { leader: leader_from(f.leader_id, f.leader_node) })
        }
        Ok(Err(e)) => Err(WriteError::Unknown(e.to_string())),
    };
    match outcome {
        Ok(response) if single => {
            let _ = replies.into_iter().next().expect("one reply").send(Ok(response));
        }
        Ok(Response::Batch(responses)) if responses.len() == replies.len() => {
            for (reply, response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(other) => {
            // Apply answers a batch with one response per command; anything else is a bug,
            // and the commands' outcome cannot be told apart.
            tracing::error!(response = ?other, "a batch was answered with something else than one response per command");
            for reply in replies {
                let _ = reply.send(Err(WriteError::Unknown("the batch's response did not match it".into())));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
