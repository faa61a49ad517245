//! BPG's `SubmitApplicationRequest`, as its clients send it.
//!
//! Unknown top-level fields are refused; unknown nested fields are ignored (as BPG's Jackson
//! setup does). Scalars are coerced the way Jackson coerces them: `"cores": "2"` is 2, and
//! numbers or booleans in `sparkConf` become strings.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string that may arrive as a JSON/YAML number or boolean.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer that may arrive as a numeric string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v).map(Int).map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                if v.fract() == 0.0 && v.abs() < 9e15 {
                    Ok(Int(v as i64))
                } else {
                    Err(E::custom(format!("{v} is not an integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim().parse().map(Int).map_err(|_| E::custom(format!("{v:?} is not an integer")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean that may arrive as `"true"` / `"false"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(transparent)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(Flag(true)),
                    "false" => Ok(Flag(false)),
                    _ => Err(E::custom(format!("{v:?} is not a boolean"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The body of `POST /spark`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmitRequest {
    pub application_name: Option<Text>,
    pub submission_id_suffix: Option<Text>,
    #[serde(rename = "type")]
    pub app_type: Option<Text>,
    pub spark_version: Option<Text>,
    pub main_application_file: Option<Text>,
    pub main_class: Option<Text>,
    pub arguments: Option<Vec<Text>>,
    pub spark_conf: Option<BTreeMap<String, Text>>,
    pub driver: Option<PodSpec>,
    pub executor: Option<PodSpec>,
    pub deps: Option<Deps>,
    pub python_version: Option<Text>,
    pub image: Option<Text>,
    pub spot_instance: Option<Flag>,
    pub queue: Option<Text>,
    pub queue_token: Option<Text>,
    pub cluster_id: Option<Text>,
    pub volumes: Option<Vec<Volume>>,
    pub image_pull_policy: Option<Text>,
    pub restart_policy: Option<RestartPolicy>,
    /// Accepted and ignored, as by BPG (`spec.mode` is always `cluster`).
    pub mode: Option<Value>,
    pub driver_overhead_factor: Option<Value>,
    pub executor_overhead_factor: Option<Value>,
    pub overhead_factor: Option<Value>,
}

/// Driver or executor (BPG `DriverSpec` / `ExecutorSpec`); unknown fields are ignored.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub cores: Option<Int>,
    pub core_request: Option<Text>,
    pub core_limit: Option<Text>,
    pub memory: Option<Text>,
    pub memory_overhead: Option<Text>,
    pub image: Option<Text>,
    pub env: Option<Vec<EnvVar>>,
    pub labels: Option<BTreeMap<String, Text>>,
    pub annotations: Option<BTreeMap<String, Text>>,
    pub termination_grace_period_seconds: Option<Int>,
    pub service_account: Option<Text>,
    pub volume_mounts: Option<Vec<VolumeMount>>,
    pub security_context: Option<SecurityContext>,
    /// Only `nodeAffinity` is kept.
    pub affinity: Option<Value>,
    pub java_options: Option<Text>,
    /// Accepted and dropped, as by BPG.
    pub dns_config: Option<Value>,
    /// Driver only.
    pub pod_name: Option<Text>,
    /// Driver only.
    pub kubernetes_master: Option<Text>,
    /// Executor only. Default 1.
    pub instances: Option<Int>,
    /// Executor only.
    pub delete_on_termination: Option<Flag>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: Text,
    pub value: Option<Text>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub field_ref: Option<FieldRef>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: Text,
    pub read_only: Option<Flag>,
    pub mount_path: Text,
    pub sub_path: Option<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub privileged: Option<Flag>,
    pub run_as_user: Option<Int>,
    pub allow_privilege_escalation: Option<Flag>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Deps {
    pub jars: Option<Vec<Text>>,
    pub files: Option<Vec<Text>>,
    pub py_files: Option<Vec<Text>>,
    pub packages: Option<Vec<Text>>,
    pub exclude_packages: Option<Vec<Text>>,
    pub repositories: Option<Vec<Text>>,
    pub archives: Option<Vec<Text>>,
}

/// Only `hostPath` and `configMap` volumes are modelled, as in BPG.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: Text,
    pub host_path: Option<HostPath>,
    pub config_map: Option<ConfigMapRef>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostPath {
    pub path: Text,
    #[serde(rename = "type")]
    pub kind: Option<Text>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapRef {
    pub name: Text,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    #[serde(rename = "type")]
    pub kind: Option<Text>,
    pub on_submission_failure_retries: Option<Int>,
    pub on_failure_retries: Option<Int>,
    pub on_submission_failure_retry_interval: Option<Int>,
    pub on_failure_retry_interval: Option<Int>,
}

/// Reads an optional text field.
pub fn text(t: &Option<Text>) -> Option<&str> {
    t.as_ref().map(|t| t.0.as_str()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_are_coerced_like_jackson() {
        let r: SubmitRequest = serde_json::from_value(json!({
            "sparkVersion": 3.5,
            "driver": {"cores": "2", "memory": "1g", "unknownNested": 1},
            "executor": {"instances": 3.0},
            "sparkConf": {"a": 1, "b": true, "c": "x"},
            "spotInstance": "true"
        }))
        .unwrap();
        assert_eq!(text(&r.spark_version), Some("3.5"));
        assert_eq!(r.driver.unwrap().cores, Some(Int(2)));
        assert_eq!(r.executor.unwrap().instances, Some(Int(3)));
        let conf = r.spark_conf.unwrap();
        assert_eq!((conf["a"].0.as_str(), conf["b"].0.as_str()), ("1", "true"));
        assert_eq!(r.spot_instance, Some(Flag(true)));
    }

    #[test]
    fn unknown_top_level_fields_are_refused() {
        let e = serde_json::from_value::<SubmitRequest>(json!({"hadoopConf": {}})).unwrap_err();
        assert!(e.to_string().contains("unknown field `hadoopConf`"), "{e}");
    }

    #[test]
    fn non_integers_are_refused_with_the_value() {
        let e = serde_json::from_value::<SubmitRequest>(json!({"driver": {"cores": "two"}})).unwrap_err();
        assert!(e.to_string().contains("\"two\" is not an integer"), "{e}");
    }
}
