//! `/kubesim/*`: change faults and the operator's behaviour at run time, read statistics.
//! Protected by the same token as the API; faults never apply here.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::error::KubeError;
use crate::config::OperatorConfig;
use crate::faults::Faults;
use crate::resource::Resource;
use crate::sim::Sim;

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/kubesim/faults", get(get_faults).put(put_faults))
        .route("/kubesim/config", get(get_config).put(put_config))
        .route("/kubesim/stats", get(stats))
}

async fn get_faults(State(sim): State<Sim>) -> Json<Faults> {
    Json(sim.faults())
}

async fn put_faults(State(sim): State<Sim>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return KubeError::bad_request(format!("invalid faults: {e}")).into_response(),
    };
    match sim.set_faults(faults.clone()) {
        Ok(()) => {
            tracing::info!(?faults, "faults changed");
            Json(faults).into_response()
        }
        Err(e) => KubeError::bad_request(e).into_response(),
    }
}

async fn get_config(State(sim): State<Sim>) -> Json<OperatorConfig> {
    Json(sim.operator_config())
}

async fn put_config(State(sim): State<Sim>, body: Bytes) -> Response {
    let config: OperatorConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return KubeError::bad_request(format!("invalid config: {e}")).into_response(),
    };
    match sim.set_operator_config(config.clone()) {
        Ok(()) => Json(config).into_response(),
        Err(e) => KubeError::bad_request(e).into_response(),
    }
}

async fn stats(State(sim): State<Sim>) -> Json<Value> {
    let (_, apps) = sim.store().list(Resource::SparkApplication, None);
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    for a in &apps {
        let s = a["status"]["applicationState"]["state"].as_str().unwrap_or("<none>");
        *states.entry(s.to_owned()).or_default() += 1;
    }
    let requests = sim.inner.requests.lock().expect("stats lock").clone();
    Json(json!({
        "resourceVersion": sim.store().current_rv(),
        "objects": {
            "sparkapplications": apps.len(),
            "pods": sim.store().count(Resource::Pod),
            "events": sim.store().count(Resource::Event),
        },
        "applicationStates": states,
        "running": *sim.inner.running.lock().expect("capacity lock"),
        "requests": requests,
        "faultsInjected": sim.inner.faults_injected.load(Ordering::Relaxed),
    }))
}
