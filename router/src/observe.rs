//! A SparkApplication as the replicated state records it (pure).

use std::borrow::Cow;

use bpg_raft::model::Observed;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;
use serde_json::Value;

use crate::translate::{GROUP, KIND, PLURAL, VERSION};

/// A SparkApplication as the gateway reads it back (watch events, the create conflict check):
/// metadata and status. The spec, most of the object, is skipped while parsing instead of
/// being built into a tree the gateway would throw away.
#[derive(Clone, Debug, Deserialize)]
pub struct AppStatus {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Value,
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
}
