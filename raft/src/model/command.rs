use serde::{Deserialize, Serialize};

use super::job::{Job, Observed};

/// A change to the replicated state. Built by the leader, applied by every replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Record a new job (dispatch pending). With an idempotency key, a live entry for the same
    /// owner and key turns this into a replay of the first submission.
    Submit { job: Box<Job>, idempotency_key: Option<String> },
    /// The dispatcher's result of creating the SparkApplication.
    RecordDispatch { id: String, outcome: DispatchOutcome },
    /// Statuses seen by the leader's watcher on one cluster, batched.
    RecordStatus { updates: Vec<StatusUpdate> },
    /// A user deletes (kills) a job. `at_ms` is the leader's clock.
    Delete { id: String, at_ms: u64 },
    /// Change a cluster's routing weight and/or cordon state; `None` leaves a field as it is.
    SetCluster { id: String, weight: Option<u32>, cordoned: Option<bool> },
    /// Drop idempotency entries the leader found expired. An entry is dropped only if it is
    /// still the one the leader saw (same `at_ms`), so a fresh reuse of the key survives.
    ExpireIdempotency { keys: Vec<IdempotencyKey> },
    /// Drop job records for good (housekeeping of old tombstones and finished jobs).
    Forget { ids: Vec<String> },
    /// Several commands in one log entry; responses come back in the same order.
    Batch(Vec<Command>),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum DispatchOutcome {
    Created,
    Rejected { reason: String },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    pub id: String,
    pub observed: Observed,
}

/// A cluster's state as changed at run time. Fields left `None` fall back to the config file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ClusterState {
    pub weight: Option<u32>,
    pub cordoned: bool,
}

/// Names one idempotency entry as the leader saw it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub owner: String,
    pub key: String,
    pub at_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyEntry {
    pub id: String,
    pub at_ms: u64,
}

/// The outcome of applying one [`Command`]. A business refusal is a value here, not an error.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The job was recorded.
    Submitted {
        id: String,
    },
    /// The idempotency key was seen before: this is the first submission's id.
    Replayed {
        id: String,
    },
    /// A job with that id exists already (ids are random; this guards the invariant).
    IdTaken {
        id: String,
    },
    /// The dispatch outcome was recorded. `deleted`: the job was deleted meanwhile, so the
    /// object just created must be removed.
    DispatchRecorded {
        deleted: bool,
    },
    /// Number of status updates that changed a job (stale or unknown ones are skipped); the
    /// jobs they made terminal, with their state; and the deleted jobs whose object was seen
    /// alive, which the caller deletes again.
    StatusRecorded {
        changed: u32,
        finished: Vec<(String, String)>,
        deleted: Vec<String>,
    },
    /// The job is now deleted; carries the record so the caller can remove the object.
    Deleted {
        job: Box<Job>,
    },
    /// The state of the cluster after the change.
    Cluster(ClusterState),
    NotFound {
        id: String,
    },
    Done,
    Batch(Vec<Response>),
}
