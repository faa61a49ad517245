//! The Kubernetes REST surface of kubesim, and its control endpoints (`/kubesim/*`).

mod control;
mod discovery;
pub mod error;
mod logs;
mod objects;
mod table;
mod watch;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::RngExt;
use serde::Deserialize;

use self::error::KubeError;
use crate::resource::Resource;
use crate::sim::Sim;

/// Query parameters of list and watch requests. Unknown and empty ones are ignored.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ListQuery {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub watch: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub include_object: Option<String>,
}

/// Query parameters of writes.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct WriteQuery {
    pub dry_run: Option<String>,
    pub field_validation: Option<String>,
    pub field_manager: Option<String>,
}

/// A boolean query parameter, parsed as the API server does (Go's `strconv.ParseBool`).
pub(crate) fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// The whole router: Kubernetes API, discovery, OpenAPI and control endpoints.
pub fn router(sim: Sim) -> Router {
    let mut api = Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/api", get(discovery::core_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/apis/sparkoperator.k8s.io", get(discovery::spark_group))
        .route("/apis/sparkoperator.k8s.io/v1beta2", get(discovery::spark_resources))
        .route("/openapi/v2", get(discovery::openapi_v2))
        .route("/openapi/v3", get(discovery::openapi_v3_index))
        .route("/openapi/v3/apis/sparkoperator.k8s.io/v1beta2", get(discovery::openapi_v3_spark))
        .route("/openapi/v3/api/v1", get(discovery::openapi_v3_core));
    for res in Resource::ALL {
        api = api.merge(resource_routes(res));
    }
    let api = api.layer(middleware::from_fn_with_state(sim.clone(), faults));
    Router::new()
        .merge(api)
        .merge(control::routes())
        .layer(middleware::from_fn_with_state(sim.clone(), authenticate))
        .with_state(sim)
}

fn bases(res: Resource) -> (String, String) {
    let prefix = match res.group() {
        "" => "/api/v1".to_owned(),
        g => format!("/apis/{g}/{}", res.version()),
    };
    (format!("{prefix}/{}", res.plural()), format!("{prefix}/namespaces/{{ns}}/{}", res.plural()))
}

fn resource_routes(res: Resource) -> Router<Sim> {
    use axum::routing::{delete, patch, post, put};
    let (all, ns) = bases(res);
    let one = format!("{ns}/{{name}}");
    let status = format!("{one}/status");
    let mut r = Router::new()
        .route(&all, get(move |State(sim): State<Sim>, Query(q): Query<ListQuery>, h: HeaderMap| async move {
            objects::list(sim, res, None, q, h).await
        }))
        .route(
            &ns,
            get(move |State(sim): State<Sim>, Path(ns): Path<String>, Query(q): Query<ListQuery>, h: HeaderMap| async move {
                objects::list(sim, res, Some(ns), q, h).await
            })
            .merge(post(
                move |State(sim): State<Sim>, Path(ns): Path<String>, Query(q): Query<WriteQuery>, h: HeaderMap, body: Bytes| async move {
                    objects::create(sim, res, ns, q, h, body)
                },
            )),
        )
        .route(
            &one,
            get(move |State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>, h: HeaderMap| async move {
                objects::get(sim, res, ns, name, h)
            })
            .merge(put(
                move |State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>, Query(q): Query<WriteQuery>, h: HeaderMap, body: Bytes| async move {
                    objects::replace(sim, res, ns, name, q, h, body, false)
                },
            ))
            .merge(patch(
                move |State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>, Query(q): Query<WriteQuery>, h: HeaderMap, body: Bytes| async move {
                    objects::patch(sim, res, ns, name, q, h, body, false)
                },
            ))
            .merge(delete(
                move |State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>, Query(q): Query<WriteQuery>, body: Bytes| async move {
                    objects::delete(sim, res, ns, name, q, body)
                },
            )),
        );
    if res.has_status_subresource() {
        r = r.route(
            &status,
            get(move |State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>, h: HeaderMap| async move {
                objects::get(sim, res, ns, name, h)
            })
            .merge(put(
                move |State(sim): State<Sim>,
                      Path((ns, name)): Path<(String, String)>,
                      Query(q): Query<WriteQuery>,
                      h: HeaderMap,
                      body: Bytes| async move { objects::replace(sim, res, ns, name, q, h, body, true) },
            ))
            .merge(patch(
                move |State(sim): State<Sim>,
                      Path((ns, name)): Path<(String, String)>,
                      Query(q): Query<WriteQuery>,
                      h: HeaderMap,
                      body: Bytes| async move { objects::patch(sim, res, ns, name, q, h, body, true) },
            )),
        );
    }
    if res == Resource::Pod {
        r = r.route(&format!("{one}/log"), get(logs::pod_log));
    }
    r
}

/// Bearer-token authentication; `/version` and health probes are public, as on a real server.
async fn authenticate(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let public = matches!(request.uri().path(), "/version" | "/healthz" | "/readyz" | "/livez");
    if let Some(token) = &sim.inner.token
        && !public
    {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if presented != Some(token.as_str()) {
            return KubeError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Injected faults and request counting, for the Kubernetes API only.
async fn faults(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = request.method().clone();
    sim.count_request(format!("{method} {route}"));
    let faults = sim.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.unavailable {
        sim.count_fault();
        return KubeError::injected(503).into_response();
    }
    let (fail, apply_then_503) = sim.with_rng(|r| {
        let fail = (faults.error_rate > 0.0 && r.random_bool(faults.error_rate))
            .then(|| faults.codes()[r.random_range(0..faults.codes().len())]);
        (fail, faults.apply_then_503_rate > 0.0 && r.random_bool(faults.apply_then_503_rate))
    });
    if let Some(code) = fail {
        sim.count_fault();
        return KubeError::injected(code).into_response();
    }
    let is_write = matches!(method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let response = next.run(request).await;
    if is_write && apply_then_503 && response.status().is_success() {
        sim.count_fault();
        return KubeError::injected(503).into_response();
    }
    response
}
