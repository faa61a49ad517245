//! The one error type of the HTTP surface and its one mapping to HTTP.
//!
//! Body shape for every error is BPG's: `{"code": <int>, "message": "<text>"}`, except 401,
//! which is BPG's exact `{"code":"401","message":"HTTP 401 Unauthorized."}` with
//! `WWW-Authenticate: Basic realm="bpg"`. Internal causes are logged, never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bpg_raft::LeaderInfo;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // ---- the caller's fault -------------------------------------------------------------
    #[error("{0}")]
    BadRequest(String),
    #[error("HTTP 401 Unauthorized.")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),

    // ---- not here, not now: the caller may retry -------------------------------------------
    /// This node cannot serve the request because it is not the leader. The forwarding layer
    /// turns this into one hop to the leader, or a 503 when none is known.
    #[error("this node is not the leader")]
    NotLeader { leader: Option<LeaderInfo> },
    /// 503 with `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// The request may or may not have taken effect (504). Retrying a submission is safe with
    /// an `Idempotency-Key`.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),

    // ---- ours -----------------------------------------------------------------------------
    /// 500 with a generic body; the cause goes to the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Marks a response that came from an [`ApiError::NotLeader`], for the forwarding layer.
#[derive(Clone, Debug)]
pub(crate) struct NotLeaderMark(pub(crate) Option<LeaderInfo>);

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotLeader { .. } | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<bpg_raft::WriteError> for ApiError {
    fn from(e: bpg_raft::WriteError) -> Self {
        match e {
            bpg_raft::WriteError::NotLeader { leader } => ApiError::NotLeader { leader },
            bpg_raft::WriteError::NoQuorum(why) => ApiError::Unavailable(why),
            bpg_raft::WriteError::Unknown(why) => ApiError::OutcomeUnknown(why),
        }
    }
}

impl From<bpg_raft::ReadError> for ApiError {
    fn from(e: bpg_raft::ReadError) -> Self {
        match e {
            bpg_raft::ReadError::NotLeader { leader } => ApiError::NotLeader { leader },
            bpg_raft::ReadError::Unavailable(why) => ApiError::Unavailable(why),
        }
    }
}

impl From<bpg_raft::AdminError> for ApiError {
    fn from(e: bpg_raft::AdminError) -> Self {
        match e {
            bpg_raft::AdminError::NotLeader { leader } => ApiError::NotLeader { leader },
            bpg_raft::AdminError::Refused(why) => ApiError::BadRequest(why),
            bpg_raft::AdminError::Unknown(why) => ApiError::OutcomeUnknown(why),
        }
    }
}

impl From<bpg_router::GatewayError> for ApiError {
    fn from(e: bpg_router::GatewayError) -> Self {
        use bpg_router::GatewayError as G;
        match e {
            G::Invalid(m) => ApiError::BadRequest(m),
            G::NotFound(m) => ApiError::NotFound(m),
            G::NotLeader { leader } => ApiError::NotLeader { leader },
            G::OutcomeUnknown(m) => ApiError::OutcomeUnknown(m),
            G::Unavailable(m) => ApiError::Unavailable(m),
            G::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<bpg_raft::StoreError> for ApiError {
    fn from(e: bpg_raft::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Unauthorized = self {
            let body = json!({"code": "401", "message": "HTTP 401 Unauthorized."});
            let mut resp = (status, Json(body)).into_response();
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"bpg\""));
            return resp;
        }
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error; see the gateway's log".to_owned()
            }
            ApiError::NotLeader { .. } => "no leader is known; retry shortly".to_owned(),
            other => other.to_string(),
        };
        let mut resp = (status, Json(json!({"code": status.as_u16(), "message": message}))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if let ApiError::NotLeader { leader } = self {
            resp.extensions_mut().insert(NotLeaderMark(leader));
        }
        resp
    }
}

/// `Result` of every handler.
pub type ApiResult<T> = Result<T, ApiError>;
