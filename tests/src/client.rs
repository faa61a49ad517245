//! A small typed client for the gateway's HTTP API, shared by the tests and the chaos harness.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Credentials for one request.
#[derive(Clone, Debug)]
pub enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
    UserAccount(String),
    None,
}

impl Credentials {
    pub fn basic(user: &str, password: &str) -> Self {
        Credentials::Basic { user: user.into(), password: password.into() }
    }
}

/// One answer: status, the node that served it, and the body as JSON (or text in `Value::String`).
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub served_by: Option<u64>,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }
}

/// A client bound to one node's API address.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    context: String,
    credentials: Credentials,
}

impl Client {
    /// `addr` is `host:port` of a node's API listener.
    pub fn new(addr: &str, credentials: Credentials) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("reqwest client");
        Client { http, base: format!("http://{addr}"), context: "/skatev2".into(), credentials }
    }

    pub fn with_credentials(&self, credentials: Credentials) -> Self {
        Client { credentials, ..self.clone() }
    }

    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        Client { http, ..self.clone() }
    }

    /// Sends a request to `path` (absolute, e.g. `/admin/raft`) with an optional body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Body>) -> reqwest::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = match body {
                Body::Json(v) => req.json(&v),
                Body::Raw { content_type, bytes } => req.header("content-type", content_type).body(bytes),
            };
        }
        self.send(req).await
    }

    /// A path under the context path (`/skatev2` by default).
    pub fn ctx(&self, path: &str) -> String {
        format!("{}{}", self.context, path)
    }

    /// `POST /spark` with a JSON body (and an optional `Idempotency-Key`).
    pub async fn submit(&self, body: &Value, idempotency_key: Option<&str>) -> reqwest::Result<Answer> {
        let mut req = self.http.post(format!("{}{}", self.base, self.ctx("/spark"))).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    /// `GET /spark/{id}/status`, locally or linearizably.
    pub async fn status(&self, id: &str, linearizable: bool) -> reqwest::Result<Answer> {
        let q = if linearizable { "?consistency=linearizable" } else { "" };
        self.call(Method::GET, &self.ctx(&format!("/spark/{id}/status{q}")), None).await
    }

    /// Waits until the job's status (default consistency) reports `state`.
    pub async fn until_state(&self, id: &str, state: &str, timeout: Duration) -> anyhow::Result<()> {
        crate::wait::until(&format!("{id} to be {state}"), timeout, || async {
            let s = self.status(id, false).await.ok()?;
            (s.body["applicationState"] == state).then_some(())
        })
        .await
    }

    pub async fn delete(&self, id: &str) -> reqwest::Result<Answer> {
        self.call(Method::DELETE, &self.ctx(&format!("/spark/{id}")), None).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
        let req = match &self.credentials {
            Credentials::Basic { user, password } => req.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => req.bearer_auth(token),
            Credentials::UserAccount(name) => req.header("User-Account", name),
            Credentials::None => req,
        };
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let served_by = headers.get("x-bpg-served-by").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, served_by, body, headers })
    }

    pub async fn raft_status(&self) -> reqwest::Result<Answer> {
        self.call(Method::GET, "/admin/raft", None).await
    }

    pub async fn set_cluster(&self, id: &str, change: Value) -> reqwest::Result<Answer> {
        self.call(Method::PUT, &self.ctx(&format!("/admin/clusters/{id}")), Some(Body::Json(change))).await
    }

    /// A cluster's effective state, read locally or through the leader.
    pub async fn cluster(&self, id: &str, linearizable: bool) -> reqwest::Result<Answer> {
        let q = if linearizable { "?consistency=linearizable" } else { "" };
        self.call(Method::GET, &self.ctx(&format!("/admin/clusters/{id}{q}")), None).await
    }
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    Json(Value),
    Raw { content_type: String, bytes: Vec<u8> },
}
