//! Every SparkApplication the gateway generates validates against the Spark Operator's CRD
//! (with nothing pruned), over many generated requests.

use bpg_router::config::{ClusterConfig, EffectiveCluster, Policy, QueueConfig, SparkImage};
use bpg_router::plan::{Submitter, ZonePicker, plan};
use bpg_router::request::SubmitRequest;
use bpg_router::select::ClusterView;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

fn pick<'a>(rng: &mut StdRng, options: &[&'a str]) -> &'a str {
    options[rng.random_range(0..options.len())]
}

/// A random request over the whole schema, fields present or not.
fn random_request(rng: &mut StdRng) -> Value {
    let mut r = json!({
        "sparkVersion": pick(rng, &["3.5", "3.5.0"]),
        "mainApplicationFile": pick(rng, &["local:///opt/spark/examples/jars/spark-examples.jar", "s3a://bucket/job.py"]),
    });
    let mut maybe = |key: &str, value: Value, rng: &mut StdRng| {
        if rng.random_bool(0.5) {
            r[key] = value;
        }
    };
    maybe("applicationName", json!(pick(rng, &["daily agg", "Spark_Pi!", "x", "ünïcode name"])), rng);
    maybe("submissionIdSuffix", json!(pick(rng, &["nightly", "run-7"])), rng);
    maybe("type", json!(pick(rng, &["Java", "scala", "PYTHON", "R"])), rng);
    maybe("mainClass", json!("org.apache.spark.examples.SparkPi"), rng);
    maybe("arguments", json!(["--date", "2024-01-01", "100"]), rng);
    maybe(
        "sparkConf",
        json!({"spark.sql.shuffle.partitions": 200, "spark.dynamicAllocation.enabled": true, "bpg.maxRunningMillis": "3600000", "bpg.pickedZones": "z"}),
        rng,
    );
    maybe("deps", json!({"jars": ["s3a://b/a.jar"], "pyFiles": ["s3a://b/lib.zip"], "packages": ["org:x:1"]}), rng);
    maybe("pythonVersion", json!("3"), rng);
    maybe("image", json!("registry.example/spark:custom"), rng);
    maybe("spotInstance", json!(true), rng);
    maybe("queue", json!(pick(rng, &["dev", "zoned", "..dev."])), rng);
    maybe("imagePullPolicy", json!("IfNotPresent"), rng);
    maybe("restartPolicy", json!({"type": "OnFailure", "onFailureRetries": 3, "onFailureRetryInterval": 10}), rng);
    maybe(
        "volumes",
        json!([{"name": "data", "hostPath": {"path": "/mnt/data", "type": "Directory"}}, {"name": "cfg", "configMap": {"name": "spark-cfg"}}]),
        rng,
    );
    for role in ["driver", "executor"] {
        let mut pod = json!({});
        let mut field = |key: &str, value: Value, rng: &mut StdRng| {
            if rng.random_bool(0.5) {
                pod[key] = value;
            }
        };
        field("cores", json!(rng.random_range(1..8)), rng);
        field("coreRequest", json!("500m"), rng);
        field("coreLimit", json!("4"), rng);
        field("memory", json!(pick(rng, &["512m", "2g", "1.5g", "4G"])), rng);
        field("memoryOverhead", json!("512m"), rng);
        field(
            "env",
            json!([{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
            rng,
        );
        field("labels", json!({"dag_name": "My DAG #1", "task_name": "t", "team": "data-eng"}), rng);
        field("annotations", json!({"example.com/owner": "me"}), rng);
        field("terminationGracePeriodSeconds", json!(30), rng);
        field("serviceAccount", json!("spark"), rng);
        field("volumeMounts", json!([{"name": "data", "mountPath": "/data", "readOnly": true}]), rng);
        field("securityContext", json!({"runAsUser": 1000, "privileged": false}), rng);
        field("javaOptions", json!("-XX:+UseG1GC"), rng);
        field(
            "affinity",
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]}}}),
            rng,
        );
        field("dnsConfig", json!({"nameservers": ["1.1.1.1"]}), rng);
        if role == "executor" {
            field("instances", json!(rng.random_range(1..50)), rng);
            field("deleteOnTermination", json!(false), rng);
        } else {
            field("podName", json!("custom-driver"), rng);
        }
        r[role] = pod;
    }
    r
}

#[test]
fn two_thousand_generated_spark_applications_validate_against_the_crd() {
    let mut zoned = QueueConfig::named("zoned");
    zoned.allowed_zones = vec!["us-west-2a".into(), "us-west-2b".into()];
    zoned.executor_node_label_values = vec!["compute".into()];
    zoned.executor_spot_node_label_values = vec!["spot".into()];
    zoned.driver_node_label_values = vec!["system".into()];
    zoned.driver_cpu_buffer_ratio = 1.5;
    zoned.executor_mem_buffer_ratio = 1.2;
    let policy = Policy {
        default_spark_conf: [(
            "spark.kubernetes.driver.annotation.x".to_owned(),
            "{spark-application-resource-name}".to_owned(),
        )]
        .into(),
        fixed_spark_conf: [("spark.authenticate".to_owned(), "true".to_owned())].into(),
        queues: vec![QueueConfig::named("dev"), QueueConfig::named("poc"), zoned],
        images: vec![
            SparkImage {
                name: "apache/spark:3.5.0".into(),
                types: vec!["Java".into(), "Scala".into(), "Python".into(), "R".into()],
                version: "3.5".into(),
            },
            SparkImage {
                name: "apache/spark:3.5.0".into(),
                types: vec!["Java".into(), "Scala".into(), "Python".into(), "R".into()],
                version: "3.5.0".into(),
            },
        ],
        ..Policy::default()
    };
    let cluster = ClusterConfig {
        id: "clustera".into(),
        weight: 1,
        namespace: "spark".into(),
        service_account: Some("spark".into()),
        spark_versions: vec!["3.5".into(), "3.5.0".into()],
        queues: vec!["dev".into(), "poc".into(), "zoned".into()],
        ttl_seconds: Some(3600),
        batch_scheduler: Some("yunikorn".into()),
        spark_ui_options: Some(
            json!({"servicePort": 4040, "ingressAnnotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/{spark-application-resource-name}"}}),
        ),
        volumes: vec![json!({"name": "scratch", "emptyDir": {}})],
        driver: bpg_router::config::PodDefaults {
            env: vec![json!({"name": "CLUSTER", "value": "a"})],
            volume_mounts: vec![json!({"name": "scratch", "mountPath": "/scratch"})],
        },
        ..ClusterConfig::default()
    };
    let views = [ClusterView { config: &cluster, effective: EffectiveCluster::new(&cluster, None), healthy: true }];
    let zones = ZonePicker::default();
    let mut rng = StdRng::seed_from_u64(2026);
    let mut validated = 0;
    for i in 0..2000 {
        let body = random_request(&mut rng);
        let request: SubmitRequest =
            serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("request {i} does not parse: {e}\n{body}"));
        let who = Submitter { user: "alice@example.com", dag_user: None, now_ms: 0 };
        let job = match plan(&policy, &views, &zones, &request, &who, &mut rng) {
            Ok(job) => job,
            Err(e) => panic!("request {i} refused: {e}\n{body}"),
        };
        let bpg_raft::model::Dispatch::Pending { manifest } = &job.dispatch else { unreachable!() };
        let object: Value = serde_json::from_str(manifest).unwrap();
        if let Err(problems) = kubesim::validate_spark_application(&object) {
            panic!("request {i} gave an invalid object: {problems:?}\nrequest: {body}\nobject: {object}");
        }
        validated += 1;
    }
    assert_eq!(validated, 2000);
}
