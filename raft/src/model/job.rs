use serde::{Deserialize, Serialize};

/// One submission, as every replica holds it.
///
/// Encoded with bincode in the log and the state machine, so fields are plain data: no
/// `#[serde(skip_serializing_if)]`, no untagged enums, no `serde_json::Value`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Submission id, `<cluster>-<32 hex>[-<suffix>]`; also the SparkApplication's name.
    pub id: String,
    /// The cluster chosen at submission; never changes.
    pub cluster: String,
    /// Namespace of the SparkApplication in that cluster.
    pub namespace: String,
    /// The authenticated user who submitted it (authorisation is by this name).
    pub owner: String,
    /// The user Spark runs as (`proxyUser` label); differs from `owner` for Airflow accounts.
    pub proxy_user: String,
    /// Resolved full queue name, without the `root.` prefix.
    pub queue: String,
    pub spark_version: String,
    pub application_name: Option<String>,
    /// Leader's wall clock when the submission was accepted, in ms since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Upper bound on running time (the `maxRunningMillis` label), in ms.
    pub max_running_millis: u64,
    pub resources: JobResources,
    pub dispatch: Dispatch,
    /// Last status observed on the cluster; `None` until the watcher has seen one.
    pub observed: Option<Observed>,
    /// Set when a user deleted the job (ms since epoch); the record stays as a tombstone.
    pub deleted_at_ms: Option<u64>,
}

/// What a submission asked for, kept for the list endpoints' summaries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct JobResources {
    pub driver_cores: u32,
    pub driver_memory: String,
    pub executor_instances: u32,
    pub executor_cores: u32,
    pub executor_memory: String,
    pub arguments: Vec<String>,
    /// Driver label `dag_name`, if given.
    pub dag_name: Option<String>,
}

/// Where the job is in its creation on the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Committed, not yet known to exist on the cluster. `manifest` is the SparkApplication
    /// JSON to create; the leader's dispatcher creates it and records the outcome.
    Pending { manifest: String },
    /// The SparkApplication was created (or found, carrying our label).
    Created,
    /// The cluster refused the object permanently (e.g. 422); the job is `SUBMISSION_FAILED`.
    Rejected { reason: String },
}

/// Status of the SparkApplication as last observed on the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Observed {
    /// The object's `metadata.resourceVersion`; updates with a lower one are stale and ignored.
    pub resource_version: u64,
    /// `metadata.creationTimestamp`, ms since epoch.
    pub creation_ms: Option<u64>,
    /// `status.applicationState.state`; `None` when the object has no status yet.
    pub state: Option<String>,
    pub error_message: Option<String>,
    pub spark_application_id: Option<String>,
    pub execution_attempts: Option<u32>,
    /// `status.terminationTime`, ms since epoch.
    pub termination_ms: Option<u64>,
    pub driver_pod: Option<String>,
    /// Keys of `status.executorState`.
    pub executor_pods: Vec<String>,
    /// The object disappeared from the cluster without a user delete (TTL, kubectl).
    pub vanished: bool,
}

impl Observed {
    /// Whether this sighting replaces `seen`: an object's revisions only grow, and a vanished
    /// mark carries the last revision seen, so it replaces a sighting at that revision.
    pub fn supersedes(&self, seen: &Observed) -> bool {
        let rv = self.resource_version;
        rv > seen.resource_version || (self.vanished && rv == seen.resource_version)
    }
}

/// The job's life as the gateway reports it; derived, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Committed; the SparkApplication may not exist yet.
    Accepted,
    /// Created on the cluster; see the observed state.
    Dispatched,
    /// The cluster refused the object.
    SubmissionFailed,
    /// Deleted by a user.
    Deleted,
}

/// States after which the operator changes nothing by itself.
pub const TERMINAL_STATES: [&str; 4] = ["COMPLETED", "FAILED", "SUBMISSION_FAILED", "FAILED_SUBMISSION"];

impl Job {
    pub fn phase(&self) -> Phase {
        if self.deleted_at_ms.is_some() {
            return Phase::Deleted;
        }
        match self.dispatch {
            Dispatch::Pending { .. } => Phase::Accepted,
            Dispatch::Created => Phase::Dispatched,
            Dispatch::Rejected { .. } => Phase::SubmissionFailed,
        }
    }

    /// The application state clients see: the operator's state verbatim, `SUBMISSION_FAILED`
    /// when the cluster refused the object, `UNKNOWN` when there is no status yet (as BPG).
    pub fn application_state(&self) -> &str {
        match (&self.dispatch, &self.observed) {
            (Dispatch::Rejected { .. }, _) => "SUBMISSION_FAILED",
            (_, Some(Observed { state: Some(s), .. })) => s,
            _ => "UNKNOWN",
        }
    }

    /// Whether the job will not change by itself any more.
    pub fn is_terminal(&self) -> bool {
        self.deleted_at_ms.is_some() || TERMINAL_STATES.contains(&self.application_state())
    }

    /// Whether the application runs, as last observed, was not deleted, and its object has not
    /// vanished: what the max-running check looks at. An object deleted on the cluster while it
    /// ran (kubectl, the cluster's own cleanup) keeps `RUNNING` as its last state, but there is
    /// nothing left to stop.
    pub fn is_running(&self) -> bool {
        self.deleted_at_ms.is_none()
            && self.observed.as_ref().is_some_and(|o| !o.vanished && o.state.as_deref() == Some("RUNNING"))
    }

    /// The SparkApplication still to be created: the job is pending and was not deleted. What
    /// the leader's dispatcher works on, and what the store lists as pending.
    pub fn pending_manifest(&self) -> Option<&str> {
        match &self.dispatch {
            Dispatch::Pending { manifest } if self.deleted_at_ms.is_none() => Some(manifest),
            _ => None,
        }
    }

    /// Whether the job's SparkApplication should exist on its cluster: created there, not
    /// deleted through bpg, not already known to be gone.
    pub fn expects_object(&self) -> bool {
        matches!(self.dispatch, Dispatch::Created)
            && self.deleted_at_ms.is_none()
            && !self.observed.as_ref().is_some_and(|o| o.vanished)
    }

    /// When the job ended, in ms since the epoch: its deletion, or for a terminal application
    /// its termination time (its submission when the cluster reported none). `None` while it
    /// may still change by itself.
    pub fn ended_ms(&self) -> Option<u64> {
        self.deleted_at_ms.or_else(|| {
            self.is_terminal()
                .then(|| self.observed.as_ref().and_then(|o| o.termination_ms).unwrap_or(self.submitted_at_ms))
        })
    }

    /// The error message clients see.
    pub fn error_message(&self) -> Option<&str> {
        match (&self.dispatch, &self.observed) {
            (Dispatch::Rejected { reason }, _) => Some(reason),
            (_, Some(o)) => o.error_message.as_deref(),
            _ => None,
        }
    }
}
