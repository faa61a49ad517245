//! The simulated Spark Operator: one task per SparkApplication, writing the states the real
//! operator writes — `""` → `SUBMITTED` → `RUNNING` → `COMPLETED` or `FAILED`, or
//! `SUBMISSION_FAILED` — with driver and executor pods, Events and container logs, a capacity
//! limit (applications beyond it wait in `SUBMITTED`), `timeToLiveSeconds`, and the behaviour a
//! gateway relies on when it deletes a driver pod: the application fails.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::rfc3339_now as now;
use crate::object::{Object, Part};
use crate::resource::{Resource, SPARK_GROUP, SPARK_VERSION};
use crate::sim::Sim;
use crate::sparklog::{self, AppInfo};
use crate::store::Key;

const NODE: &str = "kubesim-node-1";
const DRIVER_CONTAINER: &str = "spark-kubernetes-driver";
const EXECUTOR_CONTAINER: &str = "spark-kubernetes-executor";

/// Starts simulating a freshly created application.
pub(crate) fn start(sim: &Sim, app: &Object) {
    let Some(run) = Run::new(sim, app) else { return };
    tokio::spawn(async move { run.drive().await });
}

/// What a stretch of running ended with.
enum Running {
    On,
    AppGone,
    DriverGone,
}

/// Why a run stops early.
enum Stop {
    /// The application is gone (deleted or replaced).
    Gone,
}

struct Run {
    sim: Sim,
    key: Key,
    uid: String,
    info: AppInfo,
    image: String,
    spec: Arc<Part>,
}

impl Run {
    fn new(sim: &Sim, app: &Object) -> Option<Run> {
        let meta = &app["metadata"];
        let (name, ns, uid) = (meta["name"].as_str()?, meta["namespace"].as_str()?, meta["uid"].as_str()?);
        let spec = app.shared("spec");
        let max_exec = sim.operator_config().max_executors;
        let info = AppInfo {
            name: name.to_owned(),
            spark_version: spec["sparkVersion"].as_str().unwrap_or("3.5.0").to_owned(),
            app_id: format!("spark-{}", uuid::Uuid::new_v4().simple()),
            main_class: spec["mainClass"].as_str().map(str::to_owned),
            main_file: spec["mainApplicationFile"].as_str().unwrap_or_default().to_owned(),
            arguments: spec["arguments"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            executors: (spec["executor"]["instances"].as_u64().unwrap_or(1) as u32).clamp(1, max_exec.max(1)),
        };
        let image =
            spec["driver"]["image"].as_str().or(spec["image"].as_str()).unwrap_or("apache/spark:3.5.0").to_owned();
        Some(Run {
            sim: sim.clone(),
            key: (Resource::SparkApplication, ns.to_owned(), name.to_owned()),
            uid: uid.to_owned(),
            info,
            image,
            spec,
        })
    }

    fn ns(&self) -> &str {
        &self.key.1
    }

    fn name(&self) -> &str {
        &self.key.2
    }

    fn driver(&self) -> String {
        format!("{}-driver", self.name())
    }

    fn executor(&self, i: u32) -> String {
        format!("{}-exec-{i}", self.name())
    }

    async fn pause(&self, sim_ms: u64) {
        tokio::time::sleep(self.sim.operator_config().real(sim_ms)).await;
    }

    /// Waits `sim_ms` while the application runs, looking at least once a second (real time)
    /// for the application deleted or its driver pod gone: the operator watches both, so a
    /// deleted driver fails the application within moments, not at the next task boundary.
    async fn run_for(&self, sim_ms: u64) -> Running {
        const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
        let end = tokio::time::Instant::now() + self.sim.operator_config().real(sim_ms);
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(left.min(LOOK_EVERY)).await;
            if !self.alive() {
                return Running::AppGone;
            }
            if self.sim.store().get(&self.pod_key(&self.driver())).is_none() {
                return Running::DriverGone;
            }
            if left <= LOOK_EVERY {
                return Running::On;
            }
        }
    }

    fn alive(&self) -> bool {
        self.sim.store().get(&self.key).is_some_and(|a| a["metadata"]["uid"] == self.uid.as_str())
    }

    /// Merges `status` into the application's status; fails when the application is gone.
    fn set_status(&self, status: Value) -> Result<(), Stop> {
        let uid = self.uid.clone();
        self.sim
            .store()
            .update_status::<()>(&self.key, |cur| {
                if cur["metadata"]["uid"] != uid.as_str() {
                    return Err(());
                }
                let mut next = cur.clone();
                if !next["status"].is_object() {
                    next["status"] = json!({});
                }
                merge(&mut next["status"], &status);
                Ok(Some(next))
            })
            .map(|_| ())
            .map_err(|_| Stop::Gone)
    }

    async fn drive(self) {
        let mut counted = false;
        let result = self.lifecycle(&mut counted).await;
        if counted {
            self.release();
        }
        if let Err(Stop::Gone) = result {
            self.remove_pods();
        }
    }

    async fn lifecycle(&self, counted: &mut bool) -> Result<(), Stop> {
        let cfg = self.sim.operator_config();
        self.event(
            self.app_ref(),
            "Normal",
            "SparkApplicationAdded",
            &format!("SparkApplication {} was added, enqueuing it for submission", self.name()),
        );
        self.set_status(json!({"applicationState": {"state": ""}, "driverInfo": {}}))?;
        self.pause(cfg.submit_ms).await;
        if !self.alive() {
            return Err(Stop::Gone);
        }
        let submission_fails = self.sim.with_rng(|r| r.random_bool(cfg.submission_failure_probability));
        let attempt_time = now();
        if submission_fails {
            let msg =
                format!("failed to run spark-submit for SparkApplication {}/{}: exit status 1", self.ns(), self.name());
            self.set_status(json!({
                "applicationState": {"state": "SUBMISSION_FAILED", "errorMessage": msg},
                "submissionAttempts": 1, "lastSubmissionAttemptTime": attempt_time, "terminationTime": now(),
            }))?;
            self.event(self.app_ref(), "Warning", "SparkApplicationSubmissionFailed", &msg);
            return self.expire().await;
        }
        self.create_pod(&self.driver(), "driver", DRIVER_CONTAINER, &self.spec["driver"]);
        self.set_status(json!({
            "applicationState": {"state": "SUBMITTED"},
            "submissionID": uuid::Uuid::new_v4().to_string(),
            "sparkApplicationId": self.info.app_id,
            "submissionAttempts": 1,
            "lastSubmissionAttemptTime": attempt_time,
            "driverInfo": {"podName": self.driver(), "webUIServiceName": format!("{}-ui-svc", self.name()), "webUIPort": 4040},
        }))?;
        self.event(
            self.app_ref(),
            "Normal",
            "SparkApplicationSubmitted",
            &format!("SparkApplication {} was submitted successfully", self.name()),
        );

        // Wait for a free slot, staying SUBMITTED.
        self.acquire().await?;
        *counted = true;
        self.pause(cfg.start_ms).await;
        if !self.alive() {
            return Err(Stop::Gone);
        }
        let driver_log = self.sim.inner.logs.open(self.ns(), &self.driver());
        for l in sparklog::driver_start(&self.info) {
            driver_log.push(l);
        }
        self.set_pod_phase(&self.driver(), "Running", None);
        self.event(self.pod_ref(&self.driver()), "Normal", "Started", &format!("Started container {DRIVER_CONTAINER}"));
        let mut executors = serde_json::Map::new();
        for i in 1..=self.info.executors {
            let pod = self.executor(i);
            self.create_pod(&pod, "executor", EXECUTOR_CONTAINER, &self.spec["executor"]);
            self.set_pod_phase(&pod, "Running", None);
            let log = self.sim.inner.logs.open(self.ns(), &pod);
            for l in sparklog::executor_start(&self.info, i) {
                log.push(l);
            }
            executors.insert(pod, json!("RUNNING"));
        }
        self.set_status(
            json!({"applicationState": {"state": "RUNNING"}, "executionAttempts": 1, "executorState": executors}),
        )?;
        self.event(self.app_ref(), "Normal", "SparkDriverRunning", &format!("Driver {} is running", self.driver()));

        // Run, writing task lines as it goes; a driver pod deleted meanwhile fails the app.
        let run_ms = self.sim.with_rng(|r| r.random_range(cfg.run_ms_min..=cfg.run_ms_max));
        let tasks = self.info.tasks();
        let steps = tasks.clamp(1, 20);
        let mut driver_gone = false;
        for step in 0..steps {
            match self.run_for(run_ms / steps as u64).await {
                Running::On => {}
                Running::AppGone => return Err(Stop::Gone),
                Running::DriverGone => {
                    driver_gone = true;
                    break;
                }
            }
            let first = step * tasks / steps;
            let last = (step + 1) * tasks / steps;
            for t in first..last {
                driver_log.push(sparklog::driver_task_done(&self.info, t, t % self.info.executors + 1));
            }
        }
        let failed = driver_gone || self.sim.with_rng(|r| r.random_bool(cfg.failure_probability));
        let end_lines = self.sim.with_rng(|r| sparklog::driver_end(&self.info, !failed, r));
        for l in end_lines {
            driver_log.push(l);
        }
        driver_log.finish();
        let final_exec_state = if failed { "FAILED" } else { "COMPLETED" };
        let mut executors = serde_json::Map::new();
        for i in 1..=self.info.executors {
            let pod = self.executor(i);
            if let Some(log) = self.sim.inner.logs.get(self.ns(), &pod) {
                for l in sparklog::executor_end() {
                    log.push(l);
                }
                log.finish();
            }
            self.set_pod_phase(&pod, if failed { "Failed" } else { "Succeeded" }, Some(if failed { 1 } else { 0 }));
            executors.insert(pod, json!(final_exec_state));
        }
        let terminated = now();
        if failed {
            let msg = if driver_gone {
                "driver pod not found".to_owned()
            } else {
                self.set_pod_phase(&self.driver(), "Failed", Some(1));
                "driver container failed with ExitCode: 1, Reason: Error".to_owned()
            };
            self.set_status(json!({"applicationState": {"state": "FAILED", "errorMessage": msg}, "terminationTime": terminated, "executorState": executors}))?;
            self.event(
                self.app_ref(),
                "Warning",
                "SparkApplicationFailed",
                &format!("SparkApplication {} failed: {msg}", self.name()),
            );
        } else {
            self.set_pod_phase(&self.driver(), "Succeeded", Some(0));
            self.event(
                self.app_ref(),
                "Normal",
                "SparkDriverCompleted",
                &format!("Driver {} completed", self.driver()),
            );
            self.set_status(json!({"applicationState": {"state": "COMPLETED"}, "terminationTime": terminated, "executorState": executors}))?;
            self.event(
                self.app_ref(),
                "Normal",
                "SparkApplicationCompleted",
                &format!("SparkApplication {} completed", self.name()),
            );
        }
        self.release();
        *counted = false;
        self.expire().await
    }

    /// Deletes the application `timeToLiveSeconds` after it ended, as the operator does.
    async fn expire(&self) -> Result<(), Stop> {
        let Some(ttl) = self.spec["timeToLiveSeconds"].as_u64() else { return Ok(()) };
        self.pause(ttl * 1000).await;
        if self.alive() {
            self.sim.store().delete(&self.key);
        }
        Err(Stop::Gone)
    }

    async fn acquire(&self) -> Result<(), Stop> {
        loop {
            let freed = self.sim.inner.capacity_freed.notified();
            {
                let capacity = self.sim.operator_config().capacity;
                let mut running = self.sim.inner.running.lock().expect("capacity lock");
                if capacity.is_none_or(|c| *running < c) {
                    *running += 1;
                    return Ok(());
                }
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            if !self.alive() {
                return Err(Stop::Gone);
            }
        }
    }

    fn release(&self) {
        let mut running = self.sim.inner.running.lock().expect("capacity lock");
        *running = running.saturating_sub(1);
        drop(running);
        self.sim.inner.capacity_freed.notify_waiters();
    }

    fn pod_key(&self, pod: &str) -> Key {
        (Resource::Pod, self.ns().to_owned(), pod.to_owned())
    }

    fn create_pod(&self, pod: &str, role: &str, container: &str, pod_spec: &Value) {
        let mut labels = json!({
            "spark-role": role,
            "spark-app-selector": self.info.app_id,
            "spark-app-name": self.name(),
            "sparkoperator.k8s.io/app-name": self.name(),
            "sparkoperator.k8s.io/launched-by-spark-operator": "true",
        });
        if let Some(extra) = pod_spec["labels"].as_object() {
            for (k, v) in extra {
                labels[k] = v.clone();
            }
        }
        let cores = pod_spec["cores"].as_u64().unwrap_or(1);
        let memory = memory_request_mib(pod_spec["memory"].as_str().unwrap_or("1g"));
        let image = pod_spec["image"].as_str().unwrap_or(&self.image);
        let pod_obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod, "labels": labels,
                "annotations": pod_spec["annotations"].clone(),
                "ownerReferences": [{"apiVersion": format!("{SPARK_GROUP}/{SPARK_VERSION}"), "kind": "SparkApplication",
                    "name": self.name(), "uid": self.uid, "controller": true}],
            },
            "spec": {
                "containers": [{"name": container, "image": image,
                    "resources": {"requests": {"cpu": cores.to_string(), "memory": format!("{memory}Mi")},
                                  "limits": {"memory": format!("{memory}Mi")}}}],
                "serviceAccountName": pod_spec["serviceAccount"].as_str().unwrap_or("default"),
                "restartPolicy": "Never", "nodeName": NODE,
            },
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": image,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]},
        });
        let pod_obj = Object::from_value(pod_obj).expect("a pod is a JSON object");
        if let Ok(created) = self.sim.store().create(Resource::Pod, self.ns(), pod_obj) {
            self.sim.pod_made(self.ns(), self.name(), pod);
            let r = pod_ref(self.ns(), pod, created["metadata"]["uid"].clone());
            self.event(
                r.clone(),
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {}/{pod} to {NODE}", self.ns()),
            );
            self.event(
                r.clone(),
                "Normal",
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            );
            self.event(r, "Normal", "Created", &format!("Created container {container}"));
        }
    }

    fn set_pod_phase(&self, pod: &str, phase: &str, exit_code: Option<i32>) {
        let key = self.pod_key(pod);
        let _ = self.sim.store().update_status::<()>(&key, |cur| {
            let mut next = cur.clone();
            let status = &mut next["status"];
            status["phase"] = json!(phase);
            if exit_code.is_none() {
                status["startTime"] = json!(now());
            }
            let container = &mut status["containerStatuses"][0];
            match exit_code {
                None => {
                    container["ready"] = json!(true);
                    container["state"] = json!({"running": {"startedAt": now()}});
                }
                Some(code) => {
                    container["ready"] = json!(false);
                    container["state"] = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "finishedAt": now()}});
                }
            }
            Ok(Some(next))
        });
    }

    fn remove_pods(&self) {
        remove_pods_of(&self.sim, self.ns(), self.name());
    }

    fn app_ref(&self) -> Value {
        json!({"kind": "SparkApplication", "namespace": self.ns(), "name": self.name(), "uid": self.uid,
               "apiVersion": format!("{SPARK_GROUP}/{SPARK_VERSION}")})
    }

    fn pod_ref(&self, pod: &str) -> Value {
        let uid = self.sim.store().get(&self.pod_key(pod)).map(|p| p["metadata"]["uid"].clone()).unwrap_or(Value::Null);
        pod_ref(self.ns(), pod, uid)
    }

    fn event(&self, involved: Value, kind: &str, reason: &str, message: &str) {
        let target = involved["name"].as_str().unwrap_or("x");
        let source = if involved["kind"] == "Pod" { "kubelet" } else { "spark-operator" };
        let at = now();
        let name = format!("{target}.{:016x}", self.sim.with_rng(|r| r.random::<u64>()));
        let fields = EventFields {
            api_version: "v1",
            kind: "Event",
            involved_object: &involved,
            reason,
            message,
            event_type: kind,
            first_timestamp: &at,
            last_timestamp: &at,
            count: 1,
            source: EventSource { component: source, host: NODE },
            reporting_component: source,
        };
        let event = Object::with_text_fields(json!({ "name": name }), &fields).expect("an event is a JSON object");
        if self.sim.store().create(Resource::Event, self.ns(), event).is_ok() {
            self.sim.event_recorded((Resource::Event, self.ns().to_owned(), name));
        }
    }
}

/// An Event's fields other than its metadata, as the operator and the kubelet write them;
/// stored as their JSON text (see [`Object::with_text_fields`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventFields<'a> {
    api_version: &'static str,
    kind: &'static str,
    involved_object: &'a Value,
    reason: &'a str,
    message: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    first_timestamp: &'a str,
    last_timestamp: &'a str,
    count: u32,
    source: EventSource<'a>,
    reporting_component: &'a str,
}

#[derive(Serialize)]
struct EventSource<'a> {
    component: &'a str,
    host: &'a str,
}

/// An Event's `involvedObject` for a pod.
fn pod_ref(namespace: &str, pod: &str, uid: Value) -> Value {
    json!({"kind": "Pod", "namespace": namespace, "name": pod, "uid": uid, "apiVersion": "v1"})
}

/// Deletes the pods (and their logs) of application `name`, as garbage collection does.
pub(crate) fn remove_pods_of(sim: &Sim, namespace: &str, name: &str) {
    for pod_name in sim.take_pods_of(namespace, name) {
        sim.store().delete(&(Resource::Pod, namespace.to_owned(), pod_name.clone()));
        sim.inner.logs.remove(namespace, &pod_name);
    }
}

/// Spark's memory request: the heap plus an overhead of max(384 MiB, 10 %), in MiB.
fn memory_request_mib(memory: &str) -> u64 {
    let digits: String = memory.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().unwrap_or(1);
    let mib = match memory[digits.len()..].trim().to_ascii_lowercase().as_str() {
        "k" | "kb" => n / 1024,
        "g" | "gb" => n * 1024,
        "t" | "tb" => n * 1024 * 1024,
        "m" | "mb" => n,
        _ => n / (1024 * 1024),
    };
    mib + (mib / 10).max(384)
}

/// RFC 7386 merge of `patch` into `target`.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_requests_add_spark_overhead() {
        assert_eq!(memory_request_mib("1g"), 1024 + 384);
        assert_eq!(memory_request_mib("8g"), 8192 + 819);
        assert_eq!(memory_request_mib("512m"), 512 + 384);
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut t, &json!({"a": {"b": null, "e": 3}, "d": [2, 3]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [2, 3]}));
    }
}
