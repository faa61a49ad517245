//! Kubernetes `Status` errors: every failure kubesim answers is one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resource::Resource;
use crate::schema::Cause;

/// A failed request, answered as a `Status` object.
#[derive(Debug, Clone)]
pub struct KubeError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl KubeError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        KubeError { code, reason, message: message.into(), details: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_found(resource: Resource, name: &str) -> Self {
        KubeError {
            details: Some(json!({"name": name, "group": resource.group(), "kind": resource.plural()})),
            ..Self::new(404, "NotFound", format!("{} {name:?} not found", resource.qualified()))
        }
    }

    pub fn already_exists(resource: Resource, name: &str) -> Self {
        KubeError {
            details: Some(json!({"name": name, "group": resource.group(), "kind": resource.plural()})),
            ..Self::new(409, "AlreadyExists", format!("{} {name:?} already exists", resource.qualified()))
        }
    }

    pub fn conflict(resource: Resource, name: &str) -> Self {
        KubeError {
            details: Some(json!({"name": name, "group": resource.group(), "kind": resource.plural()})),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your \
                     changes to the latest version and try again",
                    resource.qualified()
                ),
            )
        }
    }

    /// 422 with one cause per problem, the message listing them as the API server does.
    pub fn invalid(resource: Resource, name: &str, causes: &[Cause]) -> Self {
        let lines: Vec<String> = causes.iter().map(Cause::line).collect();
        let joined = if lines.len() == 1 { lines[0].clone() } else { format!("[{}]", lines.join(", ")) };
        let causes: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        KubeError {
            details: Some(json!({"name": name, "group": resource.group(), "kind": resource.kind(), "causes": causes})),
            ..Self::new(422, "Invalid", format!("{} {name:?} is invalid: {joined}", resource.qualified_kind()))
        }
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// An injected fault.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, format!("kubesim: injected {code}"))
    }

    pub fn status_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, Json(self.status_json())).into_response();
        if self.code == 429 {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type KubeResult<T> = Result<T, KubeError>;
