//! Request → `SparkApplication` (BPG §5), a pure function.
//!
//! Where BPG has a quirk, this does what its users would want (and the README says so): the
//! CPU buffer ratio is applied once to `coreLimit` (BPG applies it twice and writes `1000.0m`),
//! fractional memory keeps its size (BPG turns `1.5g` into `1g`), a memory without a unit or a
//! non-integer `coreLimit` is a 400 (BPG: 500), `type` is matched case-insensitively, label
//! values are normalised so the object is never refused for them, request volumes are not
//! emitted twice, and no empty `affinity` is written.

use std::collections::BTreeMap;

use bpg_raft::model::JobResources;
use serde_json::{Map, Value, json};

use crate::config::{ClusterConfig, Policy, QueueConfig};
use crate::naming::normalize_label_value;
use crate::request::{PodSpec, SubmitRequest, Text, text};

pub const GROUP: &str = "sparkoperator.k8s.io";
pub const VERSION: &str = "v1beta2";
/// `GROUP/VERSION`.
pub const API_VERSION: &str = "sparkoperator.k8s.io/v1beta2";
pub const KIND: &str = "SparkApplication";
pub const PLURAL: &str = "sparkapplications";
/// Placeholder substituted with the submission id in default and cluster Spark conf.
pub const RESOURCE_NAME_PLACEHOLDER: &str = "{spark-application-resource-name}";
/// Label on every object bpg creates; the status watcher selects on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "bpg";
/// Annotation carrying the submission id, so a 409 on create can be recognised as ours.
pub const SUBMISSION_ANNOTATION: &str = "bpg/submission-id";
pub const PICKED_ZONES_CONF: &str = "bpg.pickedZones";
pub const MAX_RUNNING_CONF: &str = "bpg.maxRunningMillis";
const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What a translation needs.
#[derive(Debug)]
pub struct Build<'a> {
    pub request: &'a SubmitRequest,
    pub id: &'a str,
    pub cluster: &'a ClusterConfig,
    pub policy: &'a Policy,
    /// The resolved, normalised queue.
    pub queue: &'a str,
    /// The parent queue's settings.
    pub queue_config: &'a QueueConfig,
    pub proxy_user: &'a str,
    pub zone: Option<&'a str>,
    pub max_running_millis: u64,
}

/// The object to create and what the job record keeps of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub manifest: Value,
    pub resources: JobResources,
    pub app_type: String,
}

/// The canonical `spec.type` for a request (the CRD's enum is case-sensitive).
pub fn app_type(request: &SubmitRequest) -> Result<String, String> {
    match text(&request.app_type) {
        Some(t) => ["Java", "Scala", "Python", "R"]
            .iter()
            .find(|c| c.eq_ignore_ascii_case(t))
            .map(|c| (*c).to_owned())
            .ok_or_else(|| format!("type must be one of Java, Scala, Python, R; got {t:?}")),
        None if text(&request.main_class).is_some() => Ok("Java".into()),
        None => Ok("Python".into()),
    }
}

fn strings(v: &Option<Vec<Text>>) -> Option<Value> {
    v.as_ref().map(|l| Value::Array(l.iter().map(|t| Value::String(t.0.clone())).collect()))
}

fn substitute(value: &str, id: &str) -> String {
    value.replace(RESOURCE_NAME_PLACEHOLDER, id)
}

/// Checks a label key and value as the API server would; `where_` names the field.
fn check_label(where_: &str, key: &str, value: &str) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let key_ok = match key.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
                && name_ok(name)
        }
        None => name_ok(key),
    };
    if !key_ok {
        return Err(format!("{where_}: {key:?} is not a valid label key"));
    }
    if !(value.is_empty() || name_ok(value)) {
        return Err(format!(
            "{where_}: value {value:?} of label {key:?} is not a valid label value (alphanumerics, '-', '_', '.', at most 63)"
        ));
    }
    Ok(())
}

/// Memory `<number><unit>` scaled by `ratio`: integral sizes keep their unit, fractional ones
/// are expressed in MiB (`1.5g` → `1536m`).
pub fn scale_memory(field: &str, memory: &str, ratio: f64) -> Result<String, String> {
    let split = memory.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(memory.len());
    let (number, unit) = memory.split_at(split);
    let n: f64 =
        number.parse().map_err(|_| format!("{field} {memory:?} must be a number with a unit, e.g. 2g or 512m"))?;
    let unit_lc = unit.trim().to_ascii_lowercase();
    let mib_per_unit = match unit_lc.as_str() {
        "k" | "kb" => 1.0 / 1024.0,
        "m" | "mb" => 1.0,
        "g" | "gb" => 1024.0,
        "t" | "tb" => 1024.0 * 1024.0,
        "" => return Err(format!("{field} {memory:?} must have a unit, e.g. 2g or 512m")),
        _ => return Err(format!("{field} {memory:?} has an unknown unit {unit:?} (use k, m, g or t)")),
    };
    if n <= 0.0 {
        return Err(format!("{field} {memory:?} must be positive"));
    }
    let scaled = n * ratio;
    if scaled.fract() == 0.0 {
        Ok(format!("{}{}", scaled as u64, unit.trim()))
    } else if unit_lc.starts_with('k') {
        Ok(format!("{}{}", scaled.ceil() as u64, unit.trim()))
    } else {
        Ok(format!("{}m", (scaled * mib_per_unit).ceil() as u64))
    }
}

enum Role {
    Driver,
    Executor,
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Executor => "executor",
        }
    }
}

fn pod(b: &Build<'_>, role: Role, spec: Option<&PodSpec>, node_affinity: Vec<Value>) -> Result<Value, String> {
    let empty = PodSpec::default();
    let spec = spec.unwrap_or(&empty);
    let r = role.name();
    let q = b.queue_config;
    let (cpu_ratio, mem_ratio) = match role {
        Role::Driver => (q.driver_cpu_buffer_ratio, q.driver_mem_buffer_ratio),
        Role::Executor => (q.executor_cpu_buffer_ratio, q.executor_mem_buffer_ratio),
    };
    let mut out = Map::new();
    let cores = spec.cores.map(|c| c.0).unwrap_or(1);
    if cores < 1 {
        return Err(format!("{r}.cores must be at least 1, got {cores}"));
    }
    let cores = ((cores as f64 * cpu_ratio).round() as i64).max(1);
    out.insert("cores".into(), json!(cores));
    if let Some(req) = text(&spec.core_request) {
        out.insert("coreRequest".into(), json!(req));
    }
    let core_limit = match text(&spec.core_limit) {
        Some(limit) => {
            let n: f64 = limit
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{r}.coreLimit must be a whole number of cores (e.g. \"2\"), got {limit:?}"))?
                as f64;
            format!("{}", (n * cpu_ratio).round() as i64)
        }
        None => format!("{}m", cores * 1000),
    };
    out.insert("coreLimit".into(), json!(core_limit));
    let memory = scale_memory(&format!("{r}.memory"), text(&spec.memory).unwrap_or("1g"), mem_ratio)?;
    out.insert("memory".into(), json!(memory));
    for (key, value) in
        [("memoryOverhead", &spec.memory_overhead), ("image", &spec.image), ("javaOptions", &spec.java_options)]
    {
        if let Some(v) = text(value) {
            out.insert(key.into(), json!(v));
        }
    }
    let service_account = text(&spec.service_account).map(str::to_owned).or(match role {
        Role::Driver => b.cluster.service_account.clone(),
        Role::Executor => None,
    });
    if let Some(sa) = service_account {
        out.insert("serviceAccount".into(), json!(sa));
    }
    if let Some(t) = spec.termination_grace_period_seconds {
        out.insert("terminationGracePeriodSeconds".into(), json!(t.0));
    }
    if let Some(sc) = &spec.security_context {
        let mut ctx = Map::new();
        if let Some(p) = sc.privileged {
            ctx.insert("privileged".into(), json!(p.0));
        }
        if let Some(u) = sc.run_as_user {
            ctx.insert("runAsUser".into(), json!(u.0));
        }
        if let Some(a) = sc.allow_privilege_escalation {
            ctx.insert("allowPrivilegeEscalation".into(), json!(a.0));
        }
        out.insert("securityContext".into(), Value::Object(ctx));
    }

    // Labels: dag_name / task_name normalised, every label checked.
    let mut labels = Map::new();
    for (k, v) in spec.labels.iter().flatten() {
        let value = if k == "dag_name" || k == "task_name" { normalize_label_value(&v.0) } else { v.0.clone() };
        check_label(&format!("{r}.labels"), k, &value)?;
        labels.insert(k.clone(), json!(value));
    }
    if !labels.is_empty() {
        out.insert("labels".into(), Value::Object(labels));
    }
    let mut annotations: Map<String, Value> =
        spec.annotations.iter().flatten().map(|(k, v)| (k.clone(), json!(v.0))).collect();
    if matches!(role, Role::Driver) || annotations.is_empty() {
        annotations.insert(SAFE_TO_EVICT.into(), json!("false"));
    }
    out.insert("annotations".into(), Value::Object(annotations));

    // Env: the request's entries first, then the cluster's it does not override.
    let defaults = match role {
        Role::Driver => &b.cluster.driver,
        Role::Executor => &b.cluster.executor,
    };
    let mut env: Vec<Value> = Vec::new();
    for e in spec.env.iter().flatten() {
        let mut var = json!({"name": e.name.0});
        if let Some(v) = &e.value {
            var["value"] = json!(v.0);
        } else if let Some(f) = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            var["valueFrom"] = json!({"fieldRef": {"fieldPath": f.field_path.0}});
        }
        env.push(var);
    }
    for e in &defaults.env {
        if !env.iter().any(|v| v["name"] == e["name"]) {
            env.push(e.clone());
        }
    }
    if !env.is_empty() {
        out.insert("env".into(), Value::Array(env));
    }

    // Affinity: the user's node affinity, else the queue's node labels and the picked zone.
    match spec.affinity.as_ref().and_then(|a| a.get("nodeAffinity")) {
        Some(na) => {
            out.insert("affinity".into(), json!({"nodeAffinity": na}));
        }
        None if !node_affinity.is_empty() => {
            out.insert(
                "affinity".into(),
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": node_affinity}]}}}),
            );
        }
        None => {}
    }

    let mounts: Vec<Value> = if b.request.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
        spec.volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                let mut v = json!({"name": m.name.0, "mountPath": m.mount_path.0});
                if let Some(ro) = m.read_only {
                    v["readOnly"] = json!(ro.0);
                }
                if let Some(sp) = &m.sub_path {
                    v["subPath"] = json!(sp.0);
                }
                v
            })
            .collect()
    } else if !b.cluster.volumes.is_empty() {
        defaults.volume_mounts.clone()
    } else {
        Vec::new()
    };
    if !mounts.is_empty() {
        out.insert("volumeMounts".into(), Value::Array(mounts));
    }

    match role {
        Role::Driver => {
            if let Some(p) = text(&spec.pod_name) {
                out.insert("podName".into(), json!(p));
            }
            if let Some(m) = text(&spec.kubernetes_master) {
                out.insert("kubernetesMaster".into(), json!(m));
            }
        }
        Role::Executor => {
            let instances = spec.instances.map(|i| i.0).unwrap_or(1);
            if instances < 1 {
                return Err(format!("executor.instances must be at least 1, got {instances}"));
            }
            out.insert("instances".into(), json!(instances));
            if let Some(d) = spec.delete_on_termination {
                out.insert("deleteOnTermination".into(), json!(d.0));
            }
            out.insert("dnsConfig".into(), json!({"options": [{"name": "ndots", "value": "1"}]}));
        }
    }
    Ok(Value::Object(out))
}

fn match_expression(key: &str, values: &[String]) -> Value {
    json!({"key": key, "operator": "In", "values": values})
}

/// Builds the SparkApplication for a validated submission.
pub fn build_spark_application(b: &Build<'_>) -> Result<Built, String> {
    let req = b.request;
    let id = b.id;
    let app_type = app_type(req)?;
    let spark_version = text(&req.spark_version).ok_or("sparkVersion is required")?;
    let main_file = text(&req.main_application_file).ok_or("mainApplicationFile is required")?;
    let custom_image = text(&req.image);
    let image = match custom_image {
        Some(i) => i.to_owned(),
        None => b
            .policy
            .images
            .iter()
            .find(|i| {
                i.version.eq_ignore_ascii_case(spark_version)
                    && i.types.iter().any(|t| t.eq_ignore_ascii_case(&app_type))
            })
            .map(|i| i.name.clone())
            .ok_or_else(|| format!("Spark image not found for type: {app_type}, version: {spark_version}"))?,
    };

    // Spark conf: defaults → cluster → request → fixed → spark.app.name.
    let mut conf: BTreeMap<String, String> = BTreeMap::new();
    let ranger_off = custom_image.is_some()
        && b.policy.default_spark_conf.get("RangerOnCustomImage").map(String::as_str) != Some("On");
    for (k, v) in &b.policy.default_spark_conf {
        if ranger_off && (k == "spark.sql.extensions" || k == "spark.ranger.plugin.spark.env") {
            continue;
        }
        conf.insert(k.clone(), substitute(v, id));
    }
    for (k, v) in &b.cluster.spark_conf {
        conf.insert(k.clone(), substitute(v, id));
    }
    for (k, v) in req.spark_conf.iter().flatten() {
        conf.insert(k.clone(), v.0.clone());
    }
    conf.remove(PICKED_ZONES_CONF);
    if let Some(zone) = b.zone {
        conf.insert(PICKED_ZONES_CONF.into(), zone.to_owned());
    }
    for (k, v) in &b.policy.fixed_spark_conf {
        conf.insert(k.clone(), v.clone());
    }
    let app_name = text(&req.application_name);
    if let Some(name) = app_name {
        conf.insert("spark.app.name".into(), name.to_owned());
    }

    // Node affinity from the queue, plus the zone.
    let q = b.queue_config;
    let zone_expr = b.zone.map(|z| match_expression(ZONE_LABEL, &[z.to_owned()]));
    let mut driver_affinity = Vec::new();
    if !q.driver_node_label_values.is_empty() {
        driver_affinity.push(match_expression(&q.driver_node_label_key, &q.driver_node_label_values));
    }
    let spot = req.spot_instance.is_some_and(|f| f.0);
    let executor_values = if spot { &q.executor_spot_node_label_values } else { &q.executor_node_label_values };
    let mut executor_affinity = Vec::new();
    if !executor_values.is_empty() {
        executor_affinity.push(match_expression(&q.executor_node_label_key, executor_values));
    }
    if let Some(z) = &zone_expr {
        driver_affinity.push(z.clone());
        executor_affinity.push(z.clone());
    }
    let driver = pod(b, Role::Driver, req.driver.as_ref(), driver_affinity)?;
    let executor = pod(b, Role::Executor, req.executor.as_ref(), executor_affinity)?;

    let mut spec = Map::new();
    spec.insert("type".into(), json!(app_type));
    spec.insert("mode".into(), json!("cluster"));
    spec.insert("sparkVersion".into(), json!(spark_version));
    spec.insert("proxyUser".into(), json!(b.proxy_user));
    spec.insert("image".into(), json!(image));
    spec.insert("mainApplicationFile".into(), json!(main_file));
    if let Some(c) = text(&req.main_class) {
        spec.insert("mainClass".into(), json!(c));
    }
    if let Some(args) = strings(&req.arguments) {
        spec.insert("arguments".into(), args);
    }
    if let Some(p) = text(&req.image_pull_policy) {
        if !["Always", "IfNotPresent", "Never"].contains(&p) {
            return Err(format!("imagePullPolicy must be Always, IfNotPresent or Never; got {p:?}"));
        }
        spec.insert("imagePullPolicy".into(), json!(p));
    }
    if let Some(v) = text(&req.python_version) {
        if v != "2" && v != "3" {
            return Err(format!("pythonVersion must be \"2\" or \"3\"; got {v:?}"));
        }
        spec.insert("pythonVersion".into(), json!(v));
    }
    if let Some(rp) = &req.restart_policy {
        let mut out = Map::new();
        if let Some(kind) = text(&rp.kind) {
            if !["Never", "Always", "OnFailure"].contains(&kind) {
                return Err(format!("restartPolicy.type must be Never, Always or OnFailure; got {kind:?}"));
            }
            out.insert("type".into(), json!(kind));
        }
        for (key, value) in [
            ("onSubmissionFailureRetries", rp.on_submission_failure_retries),
            ("onFailureRetries", rp.on_failure_retries),
            ("onSubmissionFailureRetryInterval", rp.on_submission_failure_retry_interval),
            ("onFailureRetryInterval", rp.on_failure_retry_interval),
        ] {
            if let Some(v) = value {
                if v.0 < 0 || (key.ends_with("Interval") && v.0 < 1) {
                    return Err(format!("restartPolicy.{key} must be positive; got {}", v.0));
                }
                out.insert(key.into(), json!(v.0));
            }
        }
        spec.insert("restartPolicy".into(), Value::Object(out));
    }
    if let Some(deps) = &req.deps {
        let mut out = Map::new();
        for (key, v) in [
            ("jars", &deps.jars),
            ("files", &deps.files),
            ("pyFiles", &deps.py_files),
            ("packages", &deps.packages),
            ("excludePackages", &deps.exclude_packages),
            ("repositories", &deps.repositories),
            ("archives", &deps.archives),
        ] {
            if let Some(list) = strings(v) {
                out.insert(key.into(), list);
            }
        }
        spec.insert("deps".into(), Value::Object(out));
    }
    if let Some(ttl) = b.cluster.ttl_seconds {
        spec.insert("timeToLiveSeconds".into(), json!(ttl));
    }
    spec.insert("sparkConf".into(), json!(conf));
    if let Some(ui) = &b.cluster.spark_ui_options {
        let mut ui = ui.clone();
        if let Some(annotations) = ui.get_mut("ingressAnnotations").and_then(Value::as_object_mut) {
            for v in annotations.values_mut() {
                if let Some(s) = v.as_str() {
                    *v = json!(substitute(s, id));
                }
            }
        }
        spec.insert("sparkUIOptions".into(), ui);
    }
    let volumes: Vec<Value> = match req.volumes.as_ref().filter(|v| !v.is_empty()) {
        Some(vs) => vs
            .iter()
            .map(|v| {
                let mut out = json!({"name": v.name.0});
                if let Some(hp) = &v.host_path {
                    out["hostPath"] = json!({"path": hp.path.0});
                    if let Some(k) = &hp.kind {
                        out["hostPath"]["type"] = json!(k.0);
                    }
                }
                if let Some(cm) = &v.config_map {
                    out["configMap"] = json!({"name": cm.name.0});
                }
                out
            })
            .collect(),
        None => b.cluster.volumes.clone(),
    };
    if !volumes.is_empty() {
        spec.insert("volumes".into(), Value::Array(volumes));
    }
    if b.cluster.batch_scheduler.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("yunikorn")) {
        spec.insert("batchScheduler".into(), json!("yunikorn"));
        spec.insert("batchSchedulerOptions".into(), json!({"queue": format!("root.{}", b.queue)}));
    }
    spec.insert("driver".into(), driver.clone());
    spec.insert("executor".into(), executor.clone());

    let mut labels = Map::new();
    labels.insert("proxyUser".into(), json!(normalize_label_value(b.proxy_user)));
    if let Some(name) = app_name {
        labels.insert("applicationName".into(), json!(normalize_label_value(name)));
    }
    labels.insert("queue".into(), json!(normalize_label_value(&format!("root.{}", b.queue))));
    labels.insert("maxRunningMillis".into(), json!(b.max_running_millis.to_string()));
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY_VALUE));
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": id,
            "namespace": b.cluster.namespace,
            "labels": labels,
            "annotations": {SUBMISSION_ANNOTATION: id},
        },
        "spec": spec,
    });
    let resources = JobResources {
        driver_cores: driver["cores"].as_u64().unwrap_or(1) as u32,
        driver_memory: driver["memory"].as_str().unwrap_or("1g").to_owned(),
        executor_instances: executor["instances"].as_u64().unwrap_or(1) as u32,
        executor_cores: executor["cores"].as_u64().unwrap_or(1) as u32,
        executor_memory: executor["memory"].as_str().unwrap_or("1g").to_owned(),
        arguments: req.arguments.iter().flatten().map(|a| a.0.clone()).collect(),
        dag_name: driver["labels"]["dag_name"].as_str().map(str::to_owned),
    };
    Ok(Built { manifest, resources, app_type })
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
