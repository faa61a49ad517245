use serde_json::json;

use super::*;
use crate::config::SparkImage;

fn cluster() -> ClusterConfig {
    ClusterConfig {
        id: "clustera".into(),
        namespace: "spark-apps".into(),
        service_account: Some("spark".into()),
        spark_conf: [
            ("spark.kubernetes.executor.podNamePrefix".to_owned(), RESOURCE_NAME_PLACEHOLDER.to_owned()),
            ("x.cluster".to_owned(), "c".to_owned()),
        ]
        .into(),
        ttl_seconds: Some(86400),
        ..ClusterConfig::default()
    }
}

fn policy() -> Policy {
    Policy {
        default_spark_conf: [
            ("x.cluster".to_owned(), "d".to_owned()),
            ("x.default".to_owned(), "d".to_owned()),
            ("spark.sql.extensions".to_owned(), "ranger".to_owned()),
        ]
        .into(),
        fixed_spark_conf: [("spark.authenticate".to_owned(), "true".to_owned())].into(),
        images: vec![
            SparkImage { name: "apache/spark-py:3.5".into(), types: vec!["Python".into()], version: "3.5".into() },
            SparkImage {
                name: "apache/spark:3.5".into(),
                types: vec!["Java".into(), "Scala".into()],
                version: "3.5".into(),
            },
        ],
        ..Policy::default()
    }
}

fn request(v: serde_json::Value) -> SubmitRequest {
    serde_json::from_value(v).unwrap()
}

fn build(req: &SubmitRequest, queue: &QueueConfig, zone: Option<&str>) -> Result<Built, String> {
    let (c, p) = (cluster(), policy());
    build_spark_application(&Build {
        request: req,
        id: "clustera-0123456789abcdef0123456789abcdef",
        cluster: &c,
        policy: &p,
        queue: "dev",
        queue_config: queue,
        proxy_user: "alice",
        zone,
        max_running_millis: 3_600_000,
    })
}

fn spark_pi() -> serde_json::Value {
    json!({
        "applicationName": "SparkPiDemo", "queue": "dev", "sparkVersion": "3.5",
        "mainApplicationFile": "local:///usr/lib/spark/examples/jars/spark-examples.jar",
        "mainClass": "org.apache.spark.examples.SparkPi",
        "sparkConf": {"x.cluster": "r", "spark.authenticate": "false", "bpg.pickedZones": "mine"},
        "driver": {"cores": 1, "memory": "2g", "serviceAccount": "emr", "labels": {"version": "3.5.0", "dag_name": "My DAG!"}},
        "executor": {"instances": 1, "cores": 1, "memory": "2g", "labels": {"version": "3.5.0"}}
    })
}

#[test]
fn the_seed_request_becomes_the_expected_spark_application() {
    let b = build(&request(spark_pi()), &QueueConfig::named("dev"), None).unwrap();
    let m = &b.manifest;
    let id = "clustera-0123456789abcdef0123456789abcdef";
    assert_eq!(m["apiVersion"], API_VERSION);
    assert_eq!(m["metadata"]["name"], id);
    assert_eq!(m["metadata"]["namespace"], "spark-apps");
    assert_eq!(
        m["metadata"]["labels"],
        json!({"proxyUser": "alice", "applicationName": "SparkPiDemo", "queue": "root.dev",
        "maxRunningMillis": "3600000", MANAGED_BY_LABEL: MANAGED_BY_VALUE})
    );
    assert_eq!(m["metadata"]["annotations"][SUBMISSION_ANNOTATION], id);
    let spec = &m["spec"];
    assert_eq!(spec["type"], "Java", "mainClass without type means Java");
    assert_eq!(spec["mode"], "cluster");
    assert_eq!(spec["image"], "apache/spark:3.5");
    assert_eq!(spec["proxyUser"], "alice");
    assert_eq!(spec["timeToLiveSeconds"], 86400);
    // Merge order: defaults < cluster < request < fixed < spark.app.name; placeholders substituted.
    assert_eq!(spec["sparkConf"]["x.default"], "d");
    assert_eq!(spec["sparkConf"]["x.cluster"], "r");
    assert_eq!(spec["sparkConf"]["spark.authenticate"], "true");
    assert_eq!(spec["sparkConf"]["spark.app.name"], "SparkPiDemo");
    assert_eq!(spec["sparkConf"]["spark.kubernetes.executor.podNamePrefix"], id);
    assert!(spec["sparkConf"].get(PICKED_ZONES_CONF).is_none(), "a user's bpg.pickedZones is removed without zones");
    assert_eq!(spec["driver"]["serviceAccount"], "emr");
    assert_eq!(spec["driver"]["coreLimit"], "1000m");
    assert_eq!(spec["driver"]["labels"]["dag_name"], "My0DAG0");
    assert_eq!(spec["driver"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
    assert_eq!(spec["executor"]["dnsConfig"], json!({"options": [{"name": "ndots", "value": "1"}]}));
    assert_eq!(spec["executor"]["instances"], 1);
    assert!(spec["driver"].get("affinity").is_none());
    assert_eq!(b.resources.driver_memory, "2g");
    assert_eq!(b.resources.dag_name.as_deref(), Some("My0DAG0"));
}

#[test]
fn buffer_ratios_zones_and_node_labels_apply() {
    let mut q = QueueConfig::named("dev");
    q.driver_cpu_buffer_ratio = 1.5;
    q.executor_mem_buffer_ratio = 1.25;
    q.executor_node_label_values = vec!["on-demand".into()];
    q.executor_spot_node_label_values = vec!["spot".into()];
    let mut r = spark_pi();
    r["driver"]["cores"] = json!(2);
    r["executor"]["memory"] = json!("4g");
    r["spotInstance"] = json!(true);
    let b = build(&request(r), &q, Some("us-west-2a")).unwrap();
    let spec = &b.manifest["spec"];
    assert_eq!(spec["driver"]["cores"], 3);
    assert_eq!(spec["driver"]["coreLimit"], "3000m", "the ratio applies once");
    assert_eq!(spec["executor"]["memory"], "5g");
    assert_eq!(spec["sparkConf"][PICKED_ZONES_CONF], "us-west-2a");
    let exec_terms = &spec["executor"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"];
    assert_eq!(
        exec_terms,
        &json!([{"key": "node_group_category", "operator": "In", "values": ["spot"]},
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a"]}])
    );
    let driver_terms = &spec["driver"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"];
    assert_eq!(
        driver_terms,
        &json!([{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a"]}])
    );
}

#[test]
fn memory_keeps_its_size_and_needs_a_unit() {
    assert_eq!(scale_memory("m", "1.5g", 1.0).unwrap(), "1536m");
    assert_eq!(scale_memory("m", "512m", 1.0).unwrap(), "512m");
    assert_eq!(scale_memory("m", "2G", 2.0).unwrap(), "4G");
    assert!(scale_memory("driver.memory", "2048", 1.0).unwrap_err().contains("must have a unit"));
    assert!(scale_memory("m", "2x", 1.0).is_err());
}

#[test]
fn bad_fields_are_named_in_the_error() {
    let q = QueueConfig::named("dev");
    for (patch, needle) in [
        (json!({"type": "Go"}), "type must be one of"),
        (json!({"driver": {"coreLimit": "2000m"}}), "driver.coreLimit"),
        (json!({"executor": {"memory": "2048"}}), "executor.memory"),
        (json!({"executor": {"instances": 0}}), "executor.instances"),
        (json!({"driver": {"cores": 0}}), "driver.cores"),
        (json!({"pythonVersion": "4"}), "pythonVersion"),
        (json!({"driver": {"labels": {"team": "a@b"}}}), "driver.labels"),
        (json!({"sparkVersion": "9.9"}), "Spark image not found for type: Java, version: 9.9"),
        (json!({"mainApplicationFile": null}), "mainApplicationFile is required"),
    ] {
        let mut r = spark_pi();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_object() {
                for (k2, v2) in v.as_object().unwrap() {
                    r[k][k2] = v2.clone();
                }
            } else {
                r[k] = v.clone();
            }
        }
        let err = build(&request(r), &q, None).unwrap_err();
        assert!(err.contains(needle), "{patch}: {err}");
    }
}

#[test]
fn custom_images_drop_ranger_defaults_and_yunikorn_gets_its_queue() {
    let mut r = spark_pi();
    r["image"] = json!("my/spark:custom");
    let req = request(r);
    let (mut c, p) = (cluster(), policy());
    c.batch_scheduler = Some("yunikorn".into());
    let q = QueueConfig::named("dev");
    let b = build_spark_application(&Build {
        request: &req,
        id: "clustera-x",
        cluster: &c,
        policy: &p,
        queue: "dev",
        queue_config: &q,
        proxy_user: "alice",
        zone: None,
        max_running_millis: 1,
    })
    .unwrap();
    let spec = &b.manifest["spec"];
    assert_eq!(spec["image"], "my/spark:custom");
    assert!(spec["sparkConf"].get("spark.sql.extensions").is_none());
    assert_eq!(spec["batchScheduler"], "yunikorn");
    assert_eq!(spec["batchSchedulerOptions"], json!({"queue": "root.dev"}));
}

#[test]
fn request_env_wins_over_cluster_env_and_comes_first() {
    let mut c = cluster();
    c.driver.env = vec![json!({"name": "A", "value": "cluster"}), json!({"name": "B", "value": "cluster"})];
    let p = policy();
    let mut r = spark_pi();
    r["driver"]["env"] = json!([{"name": "B", "value": "request"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
    let req = request(r);
    let q = QueueConfig::named("dev");
    let b = build_spark_application(&Build {
        request: &req,
        id: "clustera-x",
        cluster: &c,
        policy: &p,
        queue: "dev",
        queue_config: &q,
        proxy_user: "alice",
        zone: None,
        max_running_millis: 1,
    })
    .unwrap();
    assert_eq!(
        b.manifest["spec"]["driver"]["env"],
        json!([
            {"name": "B", "value": "request"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "A", "value": "cluster"},
        ])
    );
}
