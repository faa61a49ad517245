//! Forwarding to the leader: one small module with one rule.
//!
//! Requests that need the leader (anything but `GET`, and `GET` with
//! `consistency=linearizable`) go straight to the leader when this node knows another node
//! leads. Everything else runs here; if a handler still answers [`ApiError::NotLeader`]
//! (leadership moved meanwhile), the request is sent once to the leader. A forwarded request
//! carries a signed hop header and is never forwarded again: the leader answers 503 instead.
//! While a request is out, a new election ends the wait for the deposed leader: a read goes to
//! the new one, a write is answered "outcome unknown".
//! Every response says which node served it in `x-bpg-served-by`.
//!
//! Credentials travel unchanged and the leader authenticates them: all nodes share the
//! config, so the answer is the same, and a follower never vouches for anyone.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bpg_raft::{ClusterSecret, LeaderInfo, NodeId, RaftNode};

use crate::error::{ApiError, NotLeaderMark};
use crate::state::AppState;

const FORWARDED_BY: HeaderName = HeaderName::from_static("x-bpg-forwarded-by");
const FORWARD_SIGNATURE: HeaderName = HeaderName::from_static("x-bpg-forward-signature");
/// The node that produced the response.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-bpg-served-by");

/// Largest request body the API accepts (a Spark application is a few KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Sends requests to the leader's API listener.
#[derive(Clone, Debug)]
pub struct Forwarder {
    node_id: NodeId,
    client: reqwest::Client,
    secret: ClusterSecret,
}

impl Forwarder {
    /// `timeout` bounds a whole forwarded exchange; make it longer than the write timeout so
    /// the leader's own "outcome unknown" answer arrives first.
    pub fn new(node_id: NodeId, secret: ClusterSecret, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .expect("a plain-HTTP reqwest client always builds");
        Forwarder { node_id, client, secret }
    }

    /// `GET path` on the leader's API with the cluster secret; `None` when it does not answer.
    pub(crate) async fn leader_json(&self, leader: &LeaderInfo, path: &str) -> Option<serde_json::Value> {
        let url = format!("http://{}{}", leader.api_addr, path);
        let resp =
            self.client.get(url).bearer_auth(self.secret.expose()).timeout(Duration::from_secs(2)).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    fn sign(&self, method: &Method, uri: &Uri) -> String {
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        self.secret.sign(&[self.node_id.to_string().as_bytes(), method.as_str().as_bytes(), path.as_bytes()])
    }

    /// Whether the request is a valid hop from another node.
    fn is_hop(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        let (Some(by), Some(sig)) = (headers.get(&FORWARDED_BY), headers.get(&FORWARD_SIGNATURE)) else {
            return false;
        };
        let (Ok(by), Ok(sig)) = (by.to_str(), sig.to_str()) else { return false };
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        self.secret.verify(&[by.as_bytes(), method.as_str().as_bytes(), path.as_bytes()], sig)
    }

    /// Forwards to `leader`, following a new election while the request is out: a read is
    /// sent again to the new leader; a write's outcome is then unknown (the deposed leader may
    /// have appended it, and the new one may yet commit it), and the client hears so at once
    /// instead of when the deposed leader's answer times out.
    async fn send(
        &self,
        raft: &RaftNode,
        leader: &LeaderInfo,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let mut target = leader.clone();
        let mut known: Vec<NodeId> = raft.leader().map(|l| l.id).into_iter().collect();
        for _ in 0..3 {
            known.push(target.id);
            tokio::select! {
                response = self.exchange(&target, method.clone(), uri, headers, body.clone()) => return response,
                moved = raft.leader_other_than(&known) => {
                    if method != Method::GET {
                        return ApiError::OutcomeUnknown(format!(
                            "node {} was deposed (node {} leads now) while it had the request; it may or may not have been applied",
                            target.id, moved.id
                        ))
                        .into_response();
                    }
                    target = moved;
                }
            }
        }
        ApiError::Unavailable("leadership keeps moving; try again".into()).into_response()
    }

    async fn exchange(
        &self,
        leader: &LeaderInfo,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let url = format!("http://{}{}", leader.api_addr, path);
        let mut request = self.client.request(method.clone(), &url).body(body);
        for (name, value) in headers {
            if !is_hop_by_hop(name) {
                request = request.header(name, value);
            }
        }
        let signature = self.sign(&method, uri);
        request = request.header(FORWARDED_BY, self.node_id.to_string()).header(FORWARD_SIGNATURE, signature);
        match request.send().await {
            Ok(resp) => {
                let mut out = Response::builder().status(resp.status());
                for (name, value) in resp.headers() {
                    if !is_hop_by_hop(name) {
                        out = out.header(name, value);
                    }
                }
                out.body(Body::from_stream(resp.bytes_stream()))
                    .unwrap_or_else(|e| ApiError::Internal(e.to_string()).into_response())
            }
            Err(e) if e.is_connect() => {
                ApiError::Unavailable(format!("the leader (node {}) is unreachable: {e}", leader.id)).into_response()
            }
            Err(e) => {
                ApiError::OutcomeUnknown(format!("no answer from the leader (node {}): {e}", leader.id)).into_response()
            }
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive" | "upgrade")
        || name == FORWARDED_BY
        || name == FORWARD_SIGNATURE
}

fn needs_leader(method: &Method, uri: &Uri) -> bool {
    *method != Method::GET
        || uri.query().is_some_and(|q| q.split('&').any(|kv| kv.eq_ignore_ascii_case("consistency=linearizable")))
}

/// The forwarding middleware, applied to every route of the API listener.
pub(crate) async fn layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge(format!("request body larger than {MAX_BODY_BYTES} bytes"))
                .into_response();
        }
    };
    let forwarder = &app.forwarder;
    let me = app.raft.id();
    let hop = forwarder.is_hop(&parts.method, &parts.uri, &parts.headers);
    if !hop && needs_leader(&parts.method, &parts.uri) {
        match app.raft.leader() {
            Some(leader) if leader.id != me => {
                return forwarder.send(&app.raft, &leader, parts.method, &parts.uri, &parts.headers, body).await;
            }
            None => return ApiError::NotLeader { leader: None }.into_response(),
            Some(_) => {}
        }
    }
    let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
    let mut response = next.run(Request::from_parts(parts, Body::from(body.clone()))).await;
    if let Some(NotLeaderMark(leader)) = response.extensions().get::<NotLeaderMark>().cloned()
        && !hop
        && let Some(leader) = leader.or_else(|| app.raft.leader()).filter(|l| l.id != me)
    {
        return forwarder.send(&app.raft, &leader, method, &uri, &headers, body).await;
    }
    if let Ok(value) = HeaderValue::from_str(&me.to_string()) {
        response.headers_mut().insert(SERVED_BY, value);
    }
    response
}
