//! The harness's view of the gateway: the typed client the end-to-end tests use, with every
//! answer mapped to an outcome. Only the documented API and its status codes are used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bpg_tests::client::{Answer, Client as ApiClient, Credentials};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::history::Outcome;
use crate::nodes::USER;

/// What one request came to.
#[derive(Debug, Clone)]
pub struct Reply {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub body: Value,
    pub error: Option<String>,
}

/// Clients for every node the harness talks to, as the workload's user and as an admin (the
/// cluster secret).
/// Cheap to clone: clones share the connections.
#[derive(Clone, Debug)]
pub struct Client {
    secret: String,
    timeout: Duration,
    nodes: Arc<Mutex<HashMap<String, (ApiClient, ApiClient)>>>,
}

/// A mutation's outcome from an HTTP status: 2xx happened; 4xx and 503 (no leader, leader
/// unreachable before sending, quorum lost before proposing) did not; 500, 504 and anything
/// else are unknown.
fn write_outcome(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Ok
    } else if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE {
        Outcome::Fail
    } else {
        Outcome::Info
    }
}

/// A read is ok when it answers 200 or 404 (absent is an answer); anything else failed.
fn read_outcome(status: StatusCode) -> Outcome {
    if status.is_success() || status == StatusCode::NOT_FOUND { Outcome::Ok } else { Outcome::Fail }
}

fn reply(result: reqwest::Result<Answer>, write: bool) -> Reply {
    match result {
        Ok(a) => {
            let outcome = if write { write_outcome(a.status) } else { read_outcome(a.status) };
            let error =
                (!a.status.is_success()).then(|| format!("{} {}", a.status, a.body["message"].as_str().unwrap_or("")));
            Reply { outcome, status: Some(a.status.as_u16()), body: a.body, error }
        }
        // A refused connection never carried the request; any other error may have.
        Err(e) => {
            let outcome = if e.is_connect() || !write { Outcome::Fail } else { Outcome::Info };
            Reply { outcome, status: None, body: Value::Null, error: Some(e.to_string()) }
        }
    }
}

impl Client {
    /// `timeout` bounds every request; make it longer than the gateway's write timeout so
    /// that its own "outcome unknown" answers arrive.
    pub fn new(secret: &str, timeout: Duration) -> Client {
        Client { secret: secret.to_owned(), timeout, nodes: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The (user, admin) clients of `node` (an API address).
    fn of(&self, node: &str) -> (ApiClient, ApiClient) {
        let mut nodes = self.nodes.lock().expect("client map");
        nodes
            .entry(node.to_owned())
            .or_insert_with(|| {
                let user = ApiClient::new(node, Credentials::basic(USER.0, USER.1)).with_timeout(self.timeout);
                let admin = user.with_credentials(Credentials::Bearer(self.secret.clone()));
                (user, admin)
            })
            .clone()
    }

    pub async fn submit(&self, node: &str, body: &Value, key: Option<&str>) -> Reply {
        reply(self.of(node).0.submit(body, key).await, true)
    }

    pub async fn status(&self, node: &str, id: &str, linearizable: bool) -> Reply {
        reply(self.of(node).0.status(id, linearizable).await, false)
    }

    pub async fn delete(&self, node: &str, id: &str) -> Reply {
        reply(self.of(node).0.delete(id).await, true)
    }

    pub async fn set_weight(&self, node: &str, cluster: &str, weight: u32) -> Reply {
        reply(self.of(node).1.set_cluster(cluster, json!({"weight": weight})).await, true)
    }

    /// A cluster's weight as `node` reads it (linearizably or locally).
    pub async fn weight(&self, node: &str, cluster: &str, linearizable: bool) -> Option<u64> {
        let r = reply(self.of(node).1.cluster(cluster, linearizable).await, false);
        if r.status == Some(200) { r.body["weight"].as_u64() } else { None }
    }

    pub async fn remove_member(&self, node: &str, id: u64) -> Reply {
        reply(self.of(node).1.call(Method::DELETE, &format!("/admin/raft/members/{id}"), None).await, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_what_the_status_promises() {
        assert_eq!(write_outcome(StatusCode::OK), Outcome::Ok);
        assert_eq!(write_outcome(StatusCode::BAD_REQUEST), Outcome::Fail);
        assert_eq!(write_outcome(StatusCode::SERVICE_UNAVAILABLE), Outcome::Fail);
        assert_eq!(write_outcome(StatusCode::GATEWAY_TIMEOUT), Outcome::Info);
        assert_eq!(write_outcome(StatusCode::INTERNAL_SERVER_ERROR), Outcome::Info);
        assert_eq!(read_outcome(StatusCode::NOT_FOUND), Outcome::Ok);
        assert_eq!(read_outcome(StatusCode::GATEWAY_TIMEOUT), Outcome::Fail);
    }
}
