//! A SparkApplication as the replicated state records it (pure).

use std::borrow::Cow;
use std::collections::BTreeMap;

use bpg_raft::model::Observed;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::translate::{GROUP, KIND, PLURAL, VERSION};

/// A SparkApplication as the gateway reads it back (watch events, the create conflict check):
/// metadata and status. The spec, most of the object, is skipped while parsing instead of
/// being built into a tree the gateway would throw away, and so is the part of the metadata
/// nothing reads ([`WatchedMeta`]).
#[derive(Clone, Debug, Deserialize)]
pub struct AppStatus {
    #[serde(deserialize_with = "watched_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Value,
}

/// The fields of `metadata` that the watcher, kube's watch machinery and the create conflict
/// check read. Labels, owner references and above all `managedFields` (which a real API
/// server adds to every object: one entry per writer, each a tree of the fields it set, the
/// spec's among them) are skipped while parsing, where `ObjectMeta` built them all for each
/// watch event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    annotations: Option<BTreeMap<String, String>>,
}

fn watched_meta<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = WatchedMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        annotations: m.annotations,
        ..ObjectMeta::default()
    })
}

impl kube::Resource for AppStatus {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn millis(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis().max(0) as u64)
}

/// The object's name and status, or `None` when it carries no numeric resourceVersion.
pub fn observe(app: &AppStatus, vanished: bool) -> Option<(String, Observed)> {
    let meta = &app.metadata;
    let name = meta.name.clone()?;
    let resource_version = meta.resource_version.as_deref()?.parse().ok()?;
    let status = &app.status;
    let mut executor_pods: Vec<String> =
        status["executorState"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    executor_pods.sort();
    let observed = Observed {
        resource_version,
        creation_ms: meta.creation_timestamp.as_ref().map(|t| t.0.as_millisecond().max(0) as u64),
        state: status["applicationState"]["state"].as_str().map(str::to_owned),
        error_message: status["applicationState"]["errorMessage"].as_str().filter(|s| !s.is_empty()).map(str::to_owned),
        spark_application_id: status["sparkApplicationId"].as_str().filter(|s| !s.is_empty()).map(str::to_owned),
        execution_attempts: status["executionAttempts"].as_u64().map(|n| n as u32),
        termination_ms: millis(&status["terminationTime"]),
        driver_pod: status["driverInfo"]["podName"].as_str().map(str::to_owned),
        executor_pods,
        vanished,
    };
    Some((name, observed))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app(v: Value) -> AppStatus {
        serde_json::from_value(v).expect("a SparkApplication")
    }

    #[test]
    fn reads_the_fields_bpg_reports() {
        let obj = app(json!({
            "apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
            "metadata": {"name": "c1-x", "resourceVersion": "42", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "Scala", "mode": "cluster", "driver": {"cores": 1}, "arguments": ["1000"]},
            "status": {"applicationState": {"state": "COMPLETED", "errorMessage": ""}, "sparkApplicationId": "spark-1",
                "executionAttempts": 1, "terminationTime": "2024-01-01T00:01:00Z", "driverInfo": {"podName": "c1-x-driver"},
                "executorState": {"c1-x-exec-2": "COMPLETED", "c1-x-exec-1": "COMPLETED"}}
        }));
        let (name, o) = observe(&obj, false).unwrap();
        assert_eq!(name, "c1-x");
        assert_eq!(o.resource_version, 42);
        assert_eq!(o.state.as_deref(), Some("COMPLETED"));
        assert_eq!(o.error_message, None, "an empty message is no message");
        assert_eq!(o.creation_ms, Some(1_704_067_200_000));
        assert_eq!(o.termination_ms.unwrap() - o.creation_ms.unwrap(), 60_000);
        assert_eq!(o.executor_pods, ["c1-x-exec-1", "c1-x-exec-2"]);
        assert!(observe(&app(json!({"metadata": {"name": "x", "resourceVersion": "abc"}})), false).is_none());
        let (_, no_status) = observe(&app(json!({"metadata": {"name": "x", "resourceVersion": "1"}})), false).unwrap();
        assert_eq!(no_status.state, None);
    }

    /// An object as kube-apiserver sends it, with the metadata it adds (`managedFields`, a
    /// generation, owner references, finalizers): what the watcher, kube's watch machinery
    /// (the resource version) and the create conflict check (the submission annotation) read
    /// comes through; what they do not read is not kept.
    #[test]
    fn keeps_the_metadata_that_is_read_from_a_full_object() {
        let obj = app(json!({
            "apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
            "metadata": {
                "name": "c1-x", "namespace": "spark-jobs", "uid": "6a1f", "resourceVersion": "7",
                "generation": 1, "creationTimestamp": "2024-01-01T00:00:00Z",
                "deletionTimestamp": "2024-01-01T00:05:00Z", "finalizers": ["example.com/keep"],
                "labels": {"proxyUser": "alice", "queue": "root.poc"},
                "annotations": {"bpg/submission-id": "c1-x"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}],
                "managedFields": [{"manager": "bpg", "operation": "Update", "apiVersion": "sparkoperator.k8s.io/v1beta2",
                    "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:driver": {"f:cores": {}}, "f:arguments": {}}}}]
            },
            "spec": {"type": "Scala", "driver": {"cores": 1}, "arguments": ["1000"]},
            "status": {"applicationState": {"state": "RUNNING"}}
        }));
        let meta = &obj.metadata;
        assert_eq!(meta.name.as_deref(), Some("c1-x"));
        assert_eq!(meta.namespace.as_deref(), Some("spark-jobs"));
        assert_eq!(meta.uid.as_deref(), Some("6a1f"));
        assert_eq!(kube::ResourceExt::resource_version(&obj).as_deref(), Some("7"));
        assert_eq!(meta.deletion_timestamp.as_ref().map(|t| t.0.as_millisecond()), Some(1_704_067_500_000));
        assert_eq!(
            meta.annotations.as_ref().and_then(|a| a.get(crate::translate::SUBMISSION_ANNOTATION)).unwrap(),
            "c1-x"
        );
        assert_eq!(
            (meta.labels.as_ref(), meta.managed_fields.as_ref(), meta.owner_references.as_ref()),
            (None, None, None)
        );
        let (name, o) = observe(&obj, false).unwrap();
        assert_eq!((name.as_str(), o.resource_version, o.state.as_deref()), ("c1-x", 7, Some("RUNNING")));
        assert_eq!(o.creation_ms, Some(1_704_067_200_000));
    }
}
