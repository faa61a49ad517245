//! Discovery and OpenAPI documents, enough for kubectl and client libraries.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::crd;
use crate::resource::{Resource, SPARK_GROUP, SPARK_VERSION};
use crate::sim::Sim;

pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-kubesim", "gitCommit": "kubesim",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
        "compiler": "gc", "platform": "linux/amd64",
    }))
}

pub(crate) async fn core_versions() -> Json<Value> {
    Json(json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "kubesim"}]}))
}

fn resource_list(group_version: &str, resources: &[Resource]) -> Json<Value> {
    let mut list = Vec::new();
    for r in resources {
        list.push(r.api_resource());
        if r.has_status_subresource() {
            list.push(json!({"name": format!("{}/status", r.plural()), "singularName": "", "namespaced": true,
                "kind": r.kind(), "verbs": ["get", "patch", "update"]}));
        }
        if *r == Resource::Pod {
            list.push(
                json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}),
            );
        }
    }
    Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}))
}

pub(crate) async fn core_resources() -> Json<Value> {
    resource_list("v1", &[Resource::Pod, Resource::Event])
}

pub(crate) async fn spark_resources() -> Json<Value> {
    resource_list(&format!("{SPARK_GROUP}/{SPARK_VERSION}"), &[Resource::SparkApplication])
}

fn spark_group_json() -> Value {
    let gv = json!({"groupVersion": format!("{SPARK_GROUP}/{SPARK_VERSION}"), "version": SPARK_VERSION});
    json!({"name": SPARK_GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

pub(crate) async fn groups() -> Json<Value> {
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [spark_group_json()]}))
}

pub(crate) async fn spark_group() -> Json<Value> {
    let mut g = spark_group_json();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Json(g)
}

const SPARK_DEF: &str = "io.k8s.sparkoperator.v1beta2.SparkApplication";

fn spark_schema() -> Value {
    let mut schema = crd::spark_application().schema.root().clone();
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": SPARK_GROUP, "kind": "SparkApplication", "version": SPARK_VERSION}]);
    schema
}

pub(crate) async fn openapi_v2() -> Json<Value> {
    Json(json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes (kubesim)", "version": "v1.33.0"},
        "paths": {},
        "definitions": {SPARK_DEF: spark_schema()},
    }))
}

pub(crate) async fn openapi_v3_index(State(_): State<Sim>) -> Json<Value> {
    Json(json!({"paths": {
        "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=kubesim"},
        format!("apis/{SPARK_GROUP}/{SPARK_VERSION}"): {"serverRelativeURL": format!("/openapi/v3/apis/{SPARK_GROUP}/{SPARK_VERSION}?hash=kubesim")},
    }}))
}

/// The operations of one resource, with their query parameters and group-version-kind, which
/// is how kubectl learns that the server validates fields itself (`fieldValidation`).
fn operations(collection: &str, gvk: Value) -> Value {
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": true});
    let write_params = json!([param("dryRun"), param("fieldManager"), param("fieldValidation")]);
    let list_params = json!([
        param("labelSelector"),
        param("fieldSelector"),
        param("limit"),
        param("continue"),
        param("resourceVersion"),
        param("timeoutSeconds"),
        param("watch"),
        param("allowWatchBookmarks")
    ]);
    let op = |action: &str, params: &Value| {
        json!({
            "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params,
            "responses": {"200": {"description": "OK"}},
        })
    };
    let item = format!("{collection}/{{name}}");
    json!({
        collection: {"get": op("list", &list_params), "post": op("post", &write_params)},
        item: {"get": op("get", &json!([])), "put": op("put", &write_params), "patch": op("patch", &write_params),
               "delete": op("delete", &json!([param("dryRun")]))},
    })
}

pub(crate) async fn openapi_v3_spark() -> Json<Value> {
    let gvk = json!({"group": SPARK_GROUP, "version": SPARK_VERSION, "kind": "SparkApplication"});
    let paths =
        operations(&format!("/apis/{SPARK_GROUP}/{SPARK_VERSION}/namespaces/{{namespace}}/sparkapplications"), gvk);
    Json(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kubesim)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {SPARK_DEF: spark_schema()}},
    }))
}

pub(crate) async fn openapi_v3_core() -> Json<Value> {
    let mut paths =
        operations("/api/v1/namespaces/{namespace}/pods", json!({"group": "", "version": "v1", "kind": "Pod"}));
    let events =
        operations("/api/v1/namespaces/{namespace}/events", json!({"group": "", "version": "v1", "kind": "Event"}));
    if let (Some(p), Some(e)) = (paths.as_object_mut(), events.as_object()) {
        p.extend(e.clone());
    }
    let object = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    Json(json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (kubesim)", "version": "v1.33.0"}, "paths": paths,
    "components": {"schemas": {
        "io.k8s.api.core.v1.Pod": {"type": "object", "properties": {"metadata": object, "spec": object, "status": object},
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}]},
        "io.k8s.api.core.v1.Event": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Event"}]},
    }}}))
}
