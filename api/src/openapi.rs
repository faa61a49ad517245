//! The OpenAPI document served at `{context}/openapi.json` and `.yaml`. Unlike BPG's, it
//! describes the wire format as it is: `sparkConf` (not `annotations`), pod `labels`, and the
//! fields BPG hides (`clusterId`, `queueToken`, `volumes`, ...).

use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn int() -> Value {
    json!({"type": "integer", "format": "int64"})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn pod_spec(executor: bool) -> Value {
    let mut props = json!({
        "cores": {"type": "integer", "minimum": 1, "default": 1},
        "coreRequest": string(),
        "coreLimit": {"type": "string", "description": "Whole cores, e.g. \"2\"; default cores × 1000 millicores"},
        "memory": {"type": "string", "default": "1g", "description": "With a unit: 512m, 2g"},
        "memoryOverhead": string(),
        "image": string(),
        "env": {"type": "array", "items": reference("EnvVar")},
        "labels": string_map(),
        "annotations": string_map(),
        "terminationGracePeriodSeconds": int(),
        "serviceAccount": string(),
        "volumeMounts": {"type": "array", "items": reference("VolumeMount")},
        "securityContext": {"type": "object", "properties": {"privileged": {"type": "boolean"}, "runAsUser": int(), "allowPrivilegeEscalation": {"type": "boolean"}}},
        "affinity": {"type": "object", "description": "Only nodeAffinity is kept"},
        "javaOptions": string(),
    });
    if executor {
        props["instances"] = json!({"type": "integer", "minimum": 1, "default": 1});
        props["deleteOnTermination"] = json!({"type": "boolean"});
    } else {
        props["podName"] = string();
        props["kubernetesMaster"] = string();
    }
    json!({"type": "object", "properties": props, "description": "Unknown fields are ignored"})
}

fn status_props() -> Value {
    json!({
        "creationTime": {"type": "integer", "format": "int64", "description": "ms since epoch"},
        "sparkApplicationId": string(),
        "executionAttempts": {"type": "integer"},
        "terminationTime": {"type": "integer", "format": "int64"},
        "duration": {"type": "integer", "format": "int64", "description": "ms"},
        "applicationState": {"type": "string", "description": "The operator's state (SUBMITTED, RUNNING, COMPLETED, FAILED, SUBMISSION_FAILED, ...), UNKNOWN before any"},
        "applicationErrorMessage": string(),
        "sparkUIUrl": string(),
    })
}

/// An error answer: BPG's `{"code", "message"}` body.
fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": reference("ErrorMessage")}}})
}

fn op(tag: &str, summary: &str, ok: Value, extra: Value) -> Value {
    let mut o = json!({
        "tags": [tag],
        "summary": summary,
        "responses": {
            "200": ok,
            "400": error("Invalid request"),
            "401": {"description": "Not authenticated"},
        },
    });
    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    o
}

fn json_ok(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

fn id_param() -> Value {
    json!([{"name": "submissionId", "in": "path", "required": true, "schema": {"type": "string"}}])
}

/// The document, with paths under `context`.
pub(crate) fn document(context: &str) -> Value {
    let p = |path: &str| format!("{context}{path}");
    let request_props = json!({
        "applicationName": string(),
        "submissionIdSuffix": {"type": "string", "description": "Lowercase letters, digits, '-'"},
        "type": {"type": "string", "enum": ["Java", "Scala", "Python", "R"], "description": "Default Java with mainClass, else Python"},
        "sparkVersion": string(),
        "mainApplicationFile": string(),
        "mainClass": string(),
        "arguments": strings(),
        "sparkConf": {"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
            "description": "bpg.maxRunningMillis and spark.executor.instances are checked against the queue's limits"},
        "driver": reference("DriverSpec"),
        "executor": reference("ExecutorSpec"),
        "deps": {"type": "object", "properties": {"jars": strings(), "files": strings(), "pyFiles": strings(), "packages": strings(),
            "excludePackages": strings(), "repositories": strings(), "archives": strings()}},
        "pythonVersion": {"type": "string", "enum": ["2", "3"]},
        "image": string(),
        "spotInstance": {"type": "boolean"},
        "queue": string(),
        "queueToken": {"type": "string", "description": "HS256 JWT, required on secure queues"},
        "clusterId": {"type": "string", "description": "Pins the cluster"},
        "volumes": {"type": "array", "items": {"type": "object", "properties": {"name": string(),
            "hostPath": {"type": "object", "properties": {"path": string(), "type": string()}},
            "configMap": {"type": "object", "properties": {"name": string()}}}}},
        "imagePullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
        "restartPolicy": {"type": "object", "properties": {"type": {"type": "string", "enum": ["Never", "Always", "OnFailure"]},
            "onSubmissionFailureRetries": int(), "onFailureRetries": int(), "onSubmissionFailureRetryInterval": int(), "onFailureRetryInterval": int()}},
    });
    let mut summary_props = status_props();
    for (k, v) in [
        ("submissionId", string()),
        ("user", string()),
        ("queue", string()),
        ("dagName", string()),
        ("driverCores", int()),
        ("driverMemoryGB", int()),
        ("executorInstances", int()),
        ("executorCores", int()),
        ("executorMemoryGB", int()),
        ("totalCores", int()),
        ("totalMemoryGB", int()),
        ("sparkVersion", string()),
        ("applicationName", string()),
        ("applicationArguments", strings()),
    ] {
        summary_props[k] = v;
    }
    let submit_ok = json_ok(reference("SubmitApplicationResponse"));
    let mut submit = op(
        "Submission",
        "Submit a Spark application",
        submit_ok,
        json!({
        "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255},
            "description": "A retry with the same key (same user, within 24 h) returns the first submission's id"}],
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": reference("SubmitApplicationRequest")},
            "application/yaml": {"schema": reference("SubmitApplicationRequest")}}}}),
    );
    submit["responses"]["503"] = error(
        "Nothing was recorded: no leader is known, the leader has lost its quorum, or it is handling gateway.maxSubmissionsInFlight submissions; retry after Retry-After seconds",
    );
    submit["responses"]["504"] = error("The outcome is unknown; a retry with the same Idempotency-Key is safe");
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Batch Processing Gateway API", "version": "2.0", "description": "bpg: a replicated, BPG-compatible gateway for Spark on Kubernetes"},
        "security": [{"basicAuth": []}, {"userAccount": []}],
        "paths": {
            p("/spark"): {"post": submit},
            p("/spark/{submissionId}"): {"delete": op("Deletion", "Delete (kill) a submission", json_ok(reference("DeleteSubmissionResponse")), json!({"parameters": id_param()}))},
            p("/spark/{submissionId}/status"): {"get": op("Examination", "Status of a submission", json_ok(reference("GetSubmissionStatusResponse")), json!({"parameters": [
                {"name": "submissionId", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "consistency", "in": "query", "schema": {"type": "string", "enum": ["local", "linearizable"]}}]}))},
            p("/spark/{submissionId}/spec"): {"get": op("Examination", "The SparkApplication spec, without env", json_ok(json!({"type": "object"})), json!({"parameters": id_param()}))},
            p("/spark/{submissionId}/driver"): {"get": op("Examination", "Driver pod name and start time", json_ok(json!({"type": "object", "properties": {"podName": string(), "startTime": int()}})), json!({"parameters": id_param()}))},
            p("/spark/{submissionId}/describe"): {"get": op("Examination", "Spec and events as text", json!({"description": "OK", "content": {"application/octet-stream": {"schema": string()}}}), json!({"parameters": id_param()}))},
            p("/spark/mySubmissions"): {"get": op("Examination", "The caller's submissions (20 requests/s)", json_ok(json!({"type": "object", "properties": {"submissions": {"type": "array", "items": reference("SubmissionSummary")}}})), json!({}))},
            p("/log"): {"get": op("Examination", "Driver or executor log, followed while it runs", json!({"description": "OK", "content": {"application/octet-stream": {"schema": string()}}}), json!({"parameters": [
                {"name": "subId", "in": "query", "schema": {"type": "string"}},
                {"name": "appId", "in": "query", "schema": {"type": "string"}},
                {"name": "execId", "in": "query", "schema": {"type": "string"}}]}))},
            p("/admin/submissions"): {"get": op("Admin", "All submissions as NDJSON (admins, 20 requests/s)", json!({"description": "One SubmissionSummary per line", "content": {"application/json": {"schema": reference("SubmissionSummary")}}}), json!({"parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}]}))},
            p("/admin/clusters"): {"get": op("Admin", "Clusters with their effective weight and cordon state", json_ok(json!({"type": "object", "properties": {"clusters": {"type": "array", "items": reference("Cluster")}}})), json!({}))},
            p("/admin/clusters/{id}"): {
                "get": op("Admin", "One cluster", json_ok(reference("Cluster")), json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]})),
                "put": op("Admin", "Change a cluster's weight or cordon (replicated)", json_ok(reference("Cluster")), json!({
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"weight": {"type": "integer", "minimum": 0}, "cordoned": {"type": "boolean"}}}}}}})),
            },
            p("/admin/version"): {"get": op("Admin", "Build information", json_ok(json!({"type": "object", "properties": {"version": string(), "gitCommit": string(), "buildTime": string()}})), json!({}))},
            p("/healthcheck/status"): {"get": op("Health Check", "Liveness for authenticated callers", json_ok(json!({"type": "object", "properties": {"status": string()}})), json!({}))},
        },
        "components": {
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "userAccount": {"type": "apiKey", "in": "header", "name": "User-Account", "description": "Only when the gateway trusts the header"},
            },
            "schemas": {
                "SubmitApplicationRequest": {"type": "object", "additionalProperties": false, "properties": request_props},
                "DriverSpec": pod_spec(false),
                "ExecutorSpec": pod_spec(true),
                "EnvVar": {"type": "object", "properties": {"name": string(), "value": string(),
                    "valueFrom": {"type": "object", "properties": {"fieldRef": {"type": "object", "properties": {"fieldPath": string()}}}}}},
                "VolumeMount": {"type": "object", "properties": {"name": string(), "readOnly": {"type": "boolean"}, "mountPath": string(), "subPath": string()}},
                "SubmitApplicationResponse": {"type": "object", "properties": {"submissionId": string()}},
                "DeleteSubmissionResponse": {"type": "object", "properties": {"submissionId": string()}},
                "GetSubmissionStatusResponse": {"type": "object", "properties": status_props()},
                "SubmissionSummary": {"type": "object", "properties": summary_props},
                "Cluster": {"type": "object", "properties": {"id": string(), "weight": int(), "configuredWeight": int(),
                    "weightOverridden": {"type": "boolean"}, "cordoned": {"type": "boolean"}, "healthy": {"type": "boolean"}}},
                "ErrorMessage": {"type": "object", "properties": {"code": {"type": "integer"}, "message": string()}},
            },
        },
    })
}
