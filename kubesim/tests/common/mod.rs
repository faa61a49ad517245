//! Shared helpers: an in-process kubesim over HTTPS and a kube client for it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use kubesim::{OperatorConfig, Running, Settings};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

pub const TOKEN: &str = "kubesim-test-token";

/// Operator timing 100× faster than real: a job runs 100–200 ms.
pub fn fast() -> OperatorConfig {
    OperatorConfig { time_scale: 0.01, ..OperatorConfig::default() }
}

/// Operator timing slow enough that nothing moves during a test.
pub fn frozen() -> OperatorConfig {
    OperatorConfig { time_scale: 100.0, ..OperatorConfig::default() }
}

pub async fn server(operator: OperatorConfig) -> Running {
    server_with(Settings { operator, ..Settings::default() }).await
}

/// A kubesim over HTTPS with `settings`, requiring [`TOKEN`].
pub async fn server_with(settings: Settings) -> Running {
    Running::start_tls(Settings { token: Some(TOKEN.into()), ..settings }).await.expect("kubesim starts")
}

pub fn client_with(srv: &Running, token: Option<&str>, retry: bool) -> kube::Client {
    let mut cfg = kube::Config::new(srv.url().parse().expect("url"));
    let pem = srv.ca_pem.as_ref().expect("TLS server");
    cfg.root_cert = Some(vec![CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM").to_vec()]);
    cfg.auth_info.token = token.map(|t| t.to_owned().into());
    cfg.default_namespace = "spark".into();
    cfg.default_retry = retry;
    kube::Client::try_from(cfg).expect("client")
}

pub fn client(srv: &Running) -> kube::Client {
    client_with(srv, Some(TOKEN), false)
}

pub fn spark_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sparkoperator.k8s.io", "v1beta2", "SparkApplication"),
        "sparkapplications",
    )
}

pub fn apps(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &spark_resource())
}

pub fn spark_pi(name: &str, labels: Value) -> DynamicObject {
    let ar = spark_resource();
    let mut obj = DynamicObject::new(name, &ar).data(json!({
        "spec": {
            "type": "Scala", "mode": "cluster", "sparkVersion": "3.5.0",
            "mainClass": "org.apache.spark.examples.SparkPi",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "arguments": ["4"],
            "driver": {"cores": 1, "memory": "1g"},
            "executor": {"cores": 1, "instances": 2, "memory": "1g"}
        }
    }));
    if let Some(map) = labels.as_object() {
        obj.metadata.labels = Some(map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect());
    }
    obj
}

pub fn state(o: &DynamicObject) -> Option<String> {
    o.data["status"]["applicationState"]["state"].as_str().map(str::to_owned)
}

/// Polls until the application reaches `want` (or fails the test after 20 s).
pub async fn wait_state(api: &Api<DynamicObject>, name: &str, want: &str) -> DynamicObject {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let o = api.get(name).await.expect("get");
        if state(&o).as_deref() == Some(want) {
            return o;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never reached {want}; last {:?}", state(&o));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}
