//! [`Gateway`]: what the HTTP layer asks of the router — submit, delete, read from clusters —
//! and the supervisor that runs the leader-only work while this node leads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bpg_raft::model::{Command, Dispatch, IDEMPOTENCY_TTL_MS, Job, Response};
use bpg_raft::{LeaderInfo, RaftNode, StoreError, WriteError};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{AsyncReadExt, StreamExt};

use crate::clusters::{Cluster, Clusters};
use crate::config::{EffectiveCluster, Policy};
use crate::dispatch::{Dispatched, Dispatcher};
use crate::housekeeping::{self, now_ms};
use crate::metrics::{GatewayMetrics, SubmissionLabels};
use crate::plan::{Submitter, ZonePicker, plan};
use crate::request::SubmitRequest;
use crate::select::ClusterView;
use crate::watcher;

/// Timings of the router's background work.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// How long a submission waits for its SparkApplication to be created before it is
    /// acknowledged as accepted (creation then continues in the background). Default 10 s.
    pub dispatch_timeout: Duration,
    /// Cluster health probe period. Default 5 s.
    pub probe_every: Duration,
    /// How often the leader looks for pending jobs to (re)dispatch. Default 1 s.
    pub sweep_every: Duration,
    /// How often the leader kills applications past their max running time. Default 30 s.
    pub max_running_check_every: Duration,
    /// Finished or deleted jobs older than this are forgotten; zero keeps them. Default 30 days.
    pub retention: Duration,
    /// Housekeeping period. Default 10 min.
    pub prune_every: Duration,
    /// Submissions this node handles at once (on the leader: every submission, those that
    /// followers forward included); one beyond it is answered 503 with `Retry-After` and
    /// nothing is recorded. Zero: no limit. Default [`DEFAULT_MAX_SUBMISSIONS_IN_FLIGHT`].
    pub max_submissions_in_flight: usize,
}

/// Without a bound, a leader offered more submissions than it can commit takes them all in,
/// and every one of them waits longer for as long as the load lasts: offered 2,400/s where it
/// committed about 2,150/s, the median submission took 6.2 s and the p99 10.8 s
/// (bench/README.md). 1,024 in flight is about half a second of work at the bench's
/// saturation rate on two cores, and 8-16 times the closed-loop clients that saturate it: a
/// stall of a few hundred milliseconds (a snapshot build, a slow disk sync) is absorbed, and
/// under a load the leader cannot keep up with, those it admits are answered within about half
/// a second and the rest are told at once to come back. Kubernetes' API server bounds its
/// mutating requests the same way (`--max-mutating-requests-inflight`, 200 by default).
pub const DEFAULT_MAX_SUBMISSIONS_IN_FLIGHT: usize = 1024;

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            dispatch_timeout: Duration::from_secs(10),
            probe_every: Duration::from_secs(5),
            sweep_every: Duration::from_secs(1),
            max_running_check_every: Duration::from_secs(30),
            retention: Duration::from_secs(30 * 24 * 3600),
            prune_every: Duration::from_secs(600),
            max_submissions_in_flight: DEFAULT_MAX_SUBMISSIONS_IN_FLIGHT,
        }
    }
}

/// Why a gateway operation failed, grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request is wrong; nothing changed.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// This node does not lead; nothing changed.
    #[error("not the leader")]
    NotLeader { leader: Option<LeaderInfo> },
    /// It may or may not have happened.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A cluster did not answer, or this leader has lost its quorum; nothing changed.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<WriteError> for GatewayError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotLeader { leader } => GatewayError::NotLeader { leader },
            WriteError::NoQuorum(why) => GatewayError::Unavailable(why),
            WriteError::Unknown(why) => GatewayError::OutcomeUnknown(why),
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        GatewayError::Internal(e.to_string())
    }
}

#[derive(Debug)]
pub struct Gateway {
    raft: RaftNode,
    clusters: Arc<Clusters>,
    policy: Arc<Policy>,
    zones: ZonePicker,
    dispatcher: Arc<Dispatcher>,
    metrics: GatewayMetrics,
    settings: GatewaySettings,
    /// One permit per submission being handled, `settings.max_submissions_in_flight` in all;
    /// `None` when there is no limit.
    in_flight: Option<tokio::sync::Semaphore>,
}

impl Gateway {
    pub fn new(
        raft: RaftNode,
        clusters: Clusters,
        policy: Policy,
        metrics: GatewayMetrics,
        settings: GatewaySettings,
    ) -> Arc<Gateway> {
        let clusters = Arc::new(clusters);
        let in_flight = match settings.max_submissions_in_flight {
            0 => None,
            n => Some(tokio::sync::Semaphore::new(n.min(tokio::sync::Semaphore::MAX_PERMITS))),
        };
        let dispatcher = Arc::new(Dispatcher::new(raft.clone(), clusters.clone(), metrics.clone()));
        Arc::new(Gateway {
            raft,
            clusters,
            policy: Arc::new(policy),
            zones: ZonePicker::default(),
            dispatcher,
            metrics,
            settings,
            in_flight,
        })
    }

    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn cluster(&self, id: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(id)
    }

    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.clusters.iter()
    }

    /// Each configured cluster with its replicated weight and cordon, and this node's health view.
    pub fn effective_clusters(&self) -> Result<Vec<EffectiveCluster>, GatewayError> {
        let states = self.raft.state().clusters()?;
        Ok(self
            .clusters
            .iter()
            .map(|c| EffectiveCluster {
                healthy: c.is_healthy(),
                ..EffectiveCluster::new(&c.config, states.get(c.id()))
            })
            .collect())
    }

    /// Starts the background work: health probes on every node, leader-only work while leading.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let probes = tokio::spawn(self.clusters.clone().probe_forever(self.settings.probe_every));
        let me = self.clone();
        tokio::spawn(async move {
            me.lead().await;
            probes.abort();
        })
    }

    /// Runs the leader-only tasks while this node leads, and stops them when it stops.
    async fn lead(self: Arc<Self>) {
        let mut leadership = self.raft.leadership();
        loop {
            let term = *leadership.borrow_and_update();
            let mut tasks = tokio::task::JoinSet::new();
            if let Some(term) = term {
                tracing::info!(term, "leading: dispatching pending jobs and watching clusters");
                let me = self.clone();
                tasks.spawn(async move {
                    loop {
                        me.dispatcher.sweep(me.settings.dispatch_timeout).await;
                        tokio::time::sleep(me.settings.sweep_every).await;
                    }
                });
                for cluster in self.clusters.iter() {
                    tasks.spawn(watcher::watch_cluster(self.raft.clone(), cluster.clone(), self.metrics.clone()));
                }
                tasks.spawn(housekeeping::enforce_max_running(
                    self.raft.clone(),
                    self.clusters.clone(),
                    self.settings.max_running_check_every,
                ));
                tasks.spawn(housekeeping::prune(self.raft.clone(), self.settings.retention, self.settings.prune_every));
            }
            if leadership.changed().await.is_err() {
                return;
            }
            tasks.abort_all();
        }
    }

    /// Plans, replicates and dispatches a submission; returns its id. With an idempotency key
    /// seen before (same user, within 24 h), returns the first submission's id instead.
    pub async fn submit(
        &self,
        request: &SubmitRequest,
        who: &Submitter<'_>,
        idempotency_key: Option<String>,
    ) -> Result<String, GatewayError> {
        let _admitted = self.admit()?;
        let started = Instant::now();
        let deadline = started + self.settings.dispatch_timeout;
        if let Some(key) = &idempotency_key
            && let Some(entry) = self.raft.state().idempotency(who.user, key)?
            && who.now_ms < entry.at_ms.saturating_add(IDEMPOTENCY_TTL_MS)
        {
            self.await_dispatch(&entry.id, deadline).await;
            return Ok(entry.id);
        }
        let job = {
            let states = self.raft.state().clusters()?;
            let views: Vec<ClusterView> = self
                .clusters
                .iter()
                .map(|c| ClusterView {
                    config: &c.config,
                    effective: EffectiveCluster::new(&c.config, states.get(c.id())),
                    healthy: c.is_healthy(),
                })
                .collect();
            plan(&self.policy, &views, &self.zones, request, who, &mut rand::rng())
        };
        let job = match job {
            Ok(job) => job,
            Err(why) => {
                let labels =
                    SubmissionLabels { cluster: String::new(), queue: String::new(), outcome: "rejected".into() };
                self.metrics.submissions.get_or_create(&labels).inc();
                return Err(GatewayError::Invalid(why));
            }
        };
        let reservation =
            self.dispatcher.reserve(&job.id).ok_or_else(|| GatewayError::Internal("submission id collision".into()))?;
        let labels =
            SubmissionLabels { cluster: job.cluster.clone(), queue: job.queue.clone(), outcome: "accepted".into() };
        let response = self.raft.write(Command::Submit { job: Box::new(job.clone()), idempotency_key }).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                if let WriteError::Unknown(_) = e {
                    self.metrics
                        .submissions
                        .get_or_create(&SubmissionLabels { outcome: "unknown".into(), ..labels })
                        .inc();
                }
                return Err(e.into());
            }
        };
        match response {
            Response::Submitted { id } => {
                let outcome = self.dispatcher.dispatch(&job, deadline).await;
                drop(reservation);
                if let Dispatched::HandedOver = outcome {
                    tracing::info!(job = %id, "leadership moved during dispatch; the new leader finishes it");
                }
                self.metrics.submissions.get_or_create(&labels).inc();
                self.metrics.submit_seconds.observe(started.elapsed().as_secs_f64());
                Ok(id)
            }
            Response::Replayed { id } => {
                drop(reservation);
                self.await_dispatch(&id, deadline).await;
                Ok(id)
            }
            other => Err(GatewayError::Internal(format!("unexpected answer to a submission: {other:?}"))),
        }
    }

    /// Takes a place among the submissions in flight (given back when the permit drops:
    /// answered, failed, or abandoned by its client), or refuses the submission (503 with
    /// `Retry-After`) when all are taken: before anything is read or proposed, so a refusal
    /// costs next to nothing and changes nothing.
    fn admit(&self) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, GatewayError> {
        let Some(slots) = &self.in_flight else { return Ok(None) };
        slots.try_acquire().map(Some).map_err(|_| {
            let labels =
                SubmissionLabels { cluster: String::new(), queue: String::new(), outcome: "overloaded".into() };
            self.metrics.submissions.get_or_create(&labels).inc();
            GatewayError::Unavailable(format!(
                "the gateway is handling {} submissions, its limit (gateway.maxSubmissionsInFlight); \
                 this one was not recorded: retry after the Retry-After delay",
                self.settings.max_submissions_in_flight
            ))
        })
    }

    /// Waits (until `deadline`) for a job's dispatch to be recorded.
    async fn await_dispatch(&self, id: &str, deadline: Instant) {
        while Instant::now() < deadline {
            match self.raft.state().job(id) {
                Ok(Some(job)) if job.pending_manifest().is_none() => {
                    return;
                }
                Ok(None) | Err(_) => return,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Deletes (kills) a job: replicated first, then its object is removed from the cluster
    /// (if the cluster does not answer, the leader's watcher removes it later). `None` when the
    /// job is unknown.
    pub async fn delete(&self, id: &str) -> Result<Option<Job>, GatewayError> {
        match self.raft.write(Command::Delete { id: id.to_owned(), at_ms: now_ms() }).await? {
            Response::NotFound { .. } => Ok(None),
            Response::Deleted { job } => {
                if !matches!(job.dispatch, Dispatch::Rejected { .. })
                    && let Some(cluster) = self.clusters.get(&job.cluster)
                    && let Err(e) = cluster.delete(&job.id).await
                {
                    tracing::warn!(job = %job.id, error = %e, "deleting the SparkApplication failed; the watcher retries");
                }
                Ok(Some(*job))
            }
            other => Err(GatewayError::Internal(format!("unexpected answer to a delete: {other:?}"))),
        }
    }

    /// The job's live SparkApplication from its cluster.
    pub async fn live_object(&self, job: &Job) -> Result<Option<serde_json::Value>, GatewayError> {
        let cluster = self.cluster_of(job)?;
        cluster.get(&job.id).await.map_err(|e| GatewayError::Unavailable(format!("cluster {}: {e}", job.cluster)))
    }

    fn cluster_of(&self, job: &Job) -> Result<&Arc<Cluster>, GatewayError> {
        self.clusters.get(&job.cluster).ok_or_else(|| {
            GatewayError::Invalid(format!("Cluster {} (in submissionId: {}) not exists", job.cluster, job.id))
        })
    }

    /// A pod of the job's cluster.
    pub async fn pod(&self, job: &Job, pod: &str) -> Result<Option<k8s_openapi::api::core::v1::Pod>, GatewayError> {
        self.cluster_of(job)?
            .pod(pod)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("cluster {}: {e}", job.cluster)))
    }

    /// Events about `name` in the job's cluster.
    pub async fn events(&self, job: &Job, name: &str) -> Result<Vec<k8s_openapi::api::core::v1::Event>, GatewayError> {
        self.cluster_of(job)?
            .events(name)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("cluster {}: {e}", job.cluster)))
    }

    /// A pod's log as a byte stream, followed while the container runs.
    pub async fn log(&self, job: &Job, pod: &str) -> Result<BoxStream<'static, std::io::Result<Bytes>>, GatewayError> {
        let reader = self
            .cluster_of(job)?
            .log_stream(pod, true)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("cluster {}: {e}", job.cluster)))?;
        let reader = Box::pin(reader);
        Ok(futures::stream::unfold(reader, |mut r| async move {
            let mut buf = vec![0u8; 16 * 1024];
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), r))
                }
                Err(e) => Some((Err(e), r)),
            }
        })
        .boxed())
    }
}
