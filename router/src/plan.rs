//! Planning a submission: everything the leader decides before proposing it, in BPG's order
//! (queue, queue token, limits, cluster, id, proxy user, zone, spec). Pure apart from the zone
//! counters; an error is the 400 message for the client.

use std::collections::HashMap;
use std::sync::Mutex;

use bpg_raft::model::{Dispatch, Job};

use crate::config::{DEFAULT_MAX_RUNNING_MILLIS, Policy, QueueConfig};
use crate::naming::{check_suffix, new_submission_id};
use crate::queue::{parent_queue, resolve_queue, verify_queue_token};
use crate::request::{SubmitRequest, text};
use crate::select::{ClusterView, Route, select_cluster};
use crate::translate::{Build, MAX_RUNNING_CONF, build_spark_application};

/// Round-robin zone pickers, one per queue (BPG keeps them per process; here, on the leader).
#[derive(Debug, Default)]
pub struct ZonePicker {
    next: Mutex<HashMap<String, usize>>,
}

impl ZonePicker {
    pub fn pick(&self, queue: &str, zones: &[String]) -> Option<String> {
        if zones.is_empty() {
            return None;
        }
        // A short critical section without await: a std mutex.
        let mut next = self.next.lock().expect("zone picker poisoned");
        let i = next.entry(queue.to_owned()).or_insert(0);
        let zone = zones[*i % zones.len()].clone();
        *i += 1;
        Some(zone)
    }
}

/// Who submits, and when.
#[derive(Debug)]
pub struct Submitter<'a> {
    /// The authenticated user.
    pub user: &'a str,
    /// The `dagUser` query parameter (used for Airflow system accounts only).
    pub dag_user: Option<&'a str>,
    /// Leader's clock, ms since epoch.
    pub now_ms: u64,
}

/// Plans a submission into the job record to propose (dispatch pending).
pub fn plan(
    policy: &Policy,
    clusters: &[ClusterView<'_>],
    zones: &ZonePicker,
    request: &SubmitRequest,
    who: &Submitter<'_>,
    rng: &mut impl rand::Rng,
) -> Result<Job, String> {
    // 1–2. Queue and queue token.
    let queue = resolve_queue(policy, text(&request.queue), who.user, rng);
    let queue_config = policy.queue(&queue).ok_or_else(|| {
        format!(
            "The queue {queue} does not exist; configured queues: {}",
            policy.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    if queue_config.secure {
        let token =
            text(&request.queue_token).ok_or_else(|| format!("queue {queue} is secure: a queueToken is required"))?;
        let now_secs = who.now_ms / 1000;
        verify_queue_token(token, &queue, &policy.queue_token_secrets, now_secs)?;
    }
    let parent = parent_queue(&queue).to_owned();
    let parent_config: &QueueConfig = policy.queue(&parent).unwrap_or(queue_config);

    // 3. Limits.
    let max = queue_config.max_executor_instances;
    if let Some(n) = request.executor.as_ref().and_then(|e| e.instances)
        && n.0 > i64::from(max)
    {
        return Err(format!("executor.instances {} exceeds the limit {max} of queue {queue}", n.0));
    }
    if let Some(v) = request.spark_conf.as_ref().and_then(|c| c.get("spark.executor.instances")) {
        let n: i64 =
            v.0.trim().parse().map_err(|_| format!("spark.executor.instances must be an integer, got {:?}", v.0))?;
        if n > i64::from(max) {
            return Err(format!("spark.executor.instances {n} exceeds the limit {max} of queue {queue}"));
        }
    }
    let max_running_millis = match request.spark_conf.as_ref().and_then(|c| c.get(MAX_RUNNING_CONF)) {
        None => DEFAULT_MAX_RUNNING_MILLIS,
        Some(v) => {
            let ms: u64 =
                v.0.trim()
                    .parse()
                    .map_err(|_| format!("{MAX_RUNNING_CONF} must be a whole number of milliseconds, got {:?}", v.0))?;
            if ms > parent_config.max_running_millis {
                return Err(format!(
                    "{MAX_RUNNING_CONF} {ms} exceeds the limit {} of queue {parent}",
                    parent_config.max_running_millis
                ));
            }
            ms
        }
    };

    // 4. Cluster.
    let spark_version = text(&request.spark_version).ok_or("sparkVersion is required")?;
    let route = Route { pinned: text(&request.cluster_id), spark_version, parent_queue: &parent };
    let cluster = select_cluster(clusters, &route, rng)?;

    // 5–7. Id, proxy user, zone.
    let suffix = text(&request.submission_id_suffix);
    if let Some(s) = suffix {
        check_suffix(s)?;
    }
    let id = new_submission_id(&cluster.id, suffix, who.now_ms, rng);
    let proxy_user = match who.dag_user {
        Some(dag) if !dag.is_empty() && policy.airflow_accounts.iter().any(|a| a == who.user) => dag,
        _ => who.user,
    };
    let zone = zones.pick(&parent, &parent_config.allowed_zones);

    // 8. Spec.
    let build = Build {
        request,
        id: &id,
        cluster,
        policy,
        queue: &queue,
        queue_config: parent_config,
        proxy_user,
        zone: zone.as_deref(),
        max_running_millis,
    };
    let built = build_spark_application(&build)?;
    Ok(Job {
        id: id.clone(),
        cluster: cluster.id.clone(),
        namespace: cluster.namespace.clone(),
        owner: who.user.to_owned(),
        proxy_user: proxy_user.to_owned(),
        queue,
        spark_version: spark_version.to_owned(),
        application_name: text(&request.application_name).map(str::to_owned),
        submitted_at_ms: who.now_ms,
        max_running_millis,
        resources: built.resources,
        dispatch: Dispatch::Pending { manifest: built.manifest.to_string() },
        observed: None,
        deleted_at_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;
    use crate::config::{ClusterConfig, EffectiveCluster, SparkImage};
    use crate::queue::issue_queue_token;

    fn policy() -> Policy {
        let mut vip = QueueConfig::named("vip");
        vip.secure = true;
        vip.max_executor_instances = 10;
        vip.max_running_millis = 1_000_000;
        vip.allowed_zones = vec!["z1".into(), "z2".into()];
        Policy {
            queues: vec![QueueConfig::named("dev"), vip],
            images: vec![SparkImage { name: "img".into(), types: vec!["Java".into()], version: "3.5".into() }],
            queue_token_secrets: vec!["secret".into()],
            airflow_accounts: vec!["airflow".into()],
            ..Policy::default()
        }
    }

    fn cluster() -> ClusterConfig {
        ClusterConfig {
            id: "c1".into(),
            weight: 1,
            namespace: "ns".into(),
            spark_versions: vec!["3.5".into()],
            queues: vec!["dev".into(), "vip".into()],
            ..ClusterConfig::default()
        }
    }

    fn run(request: serde_json::Value, user: &str, dag_user: Option<&str>, zones: &ZonePicker) -> Result<Job, String> {
        let c = cluster();
        let views = [ClusterView { config: &c, effective: EffectiveCluster::new(&c, None), healthy: true }];
        let req: SubmitRequest = serde_json::from_value(request).unwrap();
        let who = Submitter { user, dag_user, now_ms: 5 };
        plan(&policy(), &views, zones, &req, &who, &mut rand::rngs::StdRng::seed_from_u64(1))
    }

    fn base(queue: &str) -> serde_json::Value {
        json!({"sparkVersion": "3.5", "mainApplicationFile": "local:///a.jar", "mainClass": "A", "queue": queue})
    }

    #[test]
    fn secure_queues_need_a_valid_token() {
        let z = ZonePicker::default();
        assert!(run(base("vip"), "u", None, &z).unwrap_err().contains("queueToken is required"));
        let mut r = base("vip");
        r["queueToken"] = json!(issue_queue_token("secret", "u", &["dev"], "admin"));
        assert!(run(r.clone(), "u", None, &z).unwrap_err().contains("does not allow queue vip"));
        r["queueToken"] = json!(issue_queue_token("secret", "u", &["vip"], "airflow"));
        let job = run(r, "u", None, &z).unwrap();
        assert_eq!(job.queue, "vip");
    }

    #[test]
    fn limits_are_those_of_the_queue() {
        let z = ZonePicker::default();
        let token = issue_queue_token("secret", "u", &["vip"], "admin");
        let mut r = base("vip");
        r["queueToken"] = json!(token);
        r["executor"] = json!({"instances": 11});
        assert!(run(r.clone(), "u", None, &z).unwrap_err().contains("exceeds the limit 10"));
        r["executor"] = json!({"instances": 2});
        r["sparkConf"] = json!({"spark.executor.instances": "x"});
        assert!(run(r.clone(), "u", None, &z).unwrap_err().contains("must be an integer"));
        r["sparkConf"] = json!({"bpg.maxRunningMillis": 2_000_000});
        assert!(run(r.clone(), "u", None, &z).unwrap_err().contains("exceeds the limit 1000000"));
        r["sparkConf"] = json!({"bpg.maxRunningMillis": 500_000});
        assert_eq!(run(r, "u", None, &z).unwrap().max_running_millis, 500_000);
        assert_eq!(run(base("dev"), "u", None, &z).unwrap().max_running_millis, DEFAULT_MAX_RUNNING_MILLIS);
    }

    #[test]
    fn airflow_accounts_submit_as_the_dag_user() {
        let z = ZonePicker::default();
        let job = run(base("dev"), "airflow", Some("jane"), &z).unwrap();
        assert_eq!((job.owner.as_str(), job.proxy_user.as_str()), ("airflow", "jane"));
        let job = run(base("dev"), "bob", Some("jane"), &z).unwrap();
        assert_eq!(job.proxy_user, "bob", "dagUser is ignored for other users");
    }

    #[test]
    fn zones_rotate_per_queue() {
        let z = ZonePicker::default();
        let mut r = base("vip");
        r["queueToken"] = json!(issue_queue_token("secret", "u", &["vip"], "admin"));
        let zones: Vec<String> = (0..3)
            .map(|_| {
                let job = run(r.clone(), "u", None, &z).unwrap();
                let Dispatch::Pending { manifest } = job.dispatch else { unreachable!() };
                let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
                m["spec"]["sparkConf"]["bpg.pickedZones"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(zones, ["z1", "z2", "z1"]);
    }

    #[test]
    fn the_id_carries_the_cluster_and_suffix() {
        let mut r = base("dev");
        r["submissionIdSuffix"] = json!("nightly");
        let job = run(r.clone(), "u", None, &ZonePicker::default()).unwrap();
        assert!(job.id.starts_with("c1-") && job.id.ends_with("-nightly"));
        r["submissionIdSuffix"] = json!("Not_OK");
        assert!(run(r, "u", None, &ZonePicker::default()).unwrap_err().contains("submissionIdSuffix"));
    }
}
