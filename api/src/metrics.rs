//! Prometheus `/metrics` on the admin listener: HTTP requests by route and status, Raft term,
//! leader and indexes (read from Raft at scrape time), plus the router's series registered in
//! the same registry by `node`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

/// The API's series. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    pub requests: Family<RouteLabels, Counter>,
    pub request_seconds: Family<RouteOnly, Histogram>,
    pub raft_term: Gauge,
    pub raft_is_leader: Gauge,
    pub raft_leader_id: Gauge,
    pub raft_applied_index: Gauge,
    pub raft_last_log_index: Gauge,
    pub jobs: Gauge,
    pub runtime_worker_threads: Gauge,
}

impl ApiMetrics {
    pub fn register(registry: &mut Registry) -> ApiMetrics {
        let m = ApiMetrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 15))),
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_leader_id: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            jobs: Gauge::default(),
            runtime_worker_threads: Gauge::default(),
        };
        registry.register("bpg_http_requests", "HTTP requests by method, route and status", m.requests.clone());
        registry.register(
            "bpg_http_request_duration_seconds",
            "HTTP request latency by route",
            m.request_seconds.clone(),
        );
        registry.register("bpg_raft_term", "Current Raft term", m.raft_term.clone());
        registry.register("bpg_raft_is_leader", "1 when this node leads", m.raft_is_leader.clone());
        registry.register("bpg_raft_leader_id", "Id of the known leader, -1 when none", m.raft_leader_id.clone());
        registry.register(
            "bpg_raft_applied_index",
            "Last log index applied here (the commit index, as this node knows it)",
            m.raft_applied_index.clone(),
        );
        registry.register("bpg_raft_last_log_index", "Last log index appended here", m.raft_last_log_index.clone());
        registry.register("bpg_jobs", "Jobs in this node's replica", m.jobs.clone());
        registry.register(
            "bpg_runtime_worker_threads",
            "Threads of the node's async runtime (node.workerThreads)",
            m.runtime_worker_threads.clone(),
        );
        m
    }
}

/// Counts and times every API request (as middleware on the API router).
pub(crate) async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics
        .request_seconds
        .get_or_create(&RouteOnly { route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    let code = response.status().as_u16().to_string();
    app.metrics.requests.get_or_create(&RouteLabels { method, route, code }).inc();
    response
}

/// `GET /metrics` (admin listener).
pub(crate) async fn scrape(State(app): State<AppState>) -> Response {
    let s = app.raft.status();
    let m = &app.metrics;
    m.raft_term.set(s.current_term as i64);
    m.raft_is_leader.set(i64::from(s.current_leader == Some(s.id)));
    m.raft_leader_id.set(s.current_leader.map(|l| l as i64).unwrap_or(-1));
    m.raft_applied_index.set(s.last_applied_index.unwrap_or(0) as i64);
    m.raft_last_log_index.set(s.last_log_index.unwrap_or(0) as i64);
    m.jobs.set(s.jobs as i64);
    m.runtime_worker_threads.set(tokio::runtime::Handle::current().metrics().num_workers() as i64);
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &app.registry) {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics failed: {e}"))
            .into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// The registry, shared read-only after start-up.
pub type SharedRegistry = Arc<Registry>;
