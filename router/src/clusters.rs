//! One kube client per cluster and the Kubernetes calls bpg makes. The only module that names
//! `kube::Client`; clients are built from explicit settings (URL, CA, token or token file).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, PostParams};
use kube::discovery::ApiResource;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use crate::config::ClusterConfig;
use crate::metrics::{GatewayMetrics, KubeLabels};
use crate::observe::AppStatus;
use crate::translate::{self, SUBMISSION_ANNOTATION};

/// What creating a SparkApplication came to.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// Created now.
    Created,
    /// It exists already and carries our submission id: a retry of ours (kube retries POSTs on
    /// 429/503/504, and a new leader re-creates what it cannot prove exists).
    AlreadyOurs,
    /// The cluster refused it for good (422, a foreign object with the name, no namespace).
    Rejected(String),
    /// Try again later (timeouts, 5xx, connection errors).
    Transient(String),
}

/// A cluster: its settings, its client, its health.
pub struct Cluster {
    pub config: ClusterConfig,
    client: kube::Client,
    apps: Api<DynamicObject>,
    /// The same objects, read as metadata and status only.
    statuses: Api<AppStatus>,
    pods: Api<Pod>,
    events: Api<Event>,
    healthy: AtomicBool,
    metrics: GatewayMetrics,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.config.id).field("healthy", &self.is_healthy()).finish()
    }
}

/// The SparkApplication resource, without discovery.
pub fn spark_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(translate::GROUP, translate::VERSION, translate::KIND),
        translate::PLURAL,
    )
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

impl Cluster {
    /// Builds the client; fails on a malformed URL or certificate. Must run inside Tokio.
    pub fn new(config: ClusterConfig, metrics: GatewayMetrics) -> Result<Cluster, String> {
        let url = config
            .master_url
            .parse()
            .map_err(|e| format!("cluster {}: masterUrl {:?}: {e}", config.id, config.master_url))?;
        let mut cfg = kube::Config::new(url);
        if let Some(pem) = &config.ca_cert_pem {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cluster {}: CA certificate: {e}", config.id))?;
            if certs.is_empty() {
                return Err(format!("cluster {}: CA certificate data holds no PEM certificate", config.id));
            }
            cfg.root_cert = Some(certs);
        }
        cfg.auth_info.token = config.token.clone().map(Into::into);
        cfg.auth_info.token_file = config.token_file.as_ref().map(|p| p.display().to_string());
        cfg.default_namespace = config.namespace.clone();
        // kube's built-in retry of 429/503/504 (which re-POSTs creates) does not stop on a
        // cluster that keeps answering 503; the dispatcher retries with its own deadline.
        cfg.default_retry = false;
        cfg.connect_timeout = Some(config.timeout.min(Duration::from_secs(10)));
        cfg.read_timeout = Some(config.timeout);
        cfg.write_timeout = Some(config.timeout);
        if let Some(proxy) = &config.proxy_url {
            cfg.proxy_url = Some(proxy.parse().map_err(|e| format!("cluster {}: proxy {proxy:?}: {e}", config.id))?);
        }
        let client = kube::Client::try_from(cfg).map_err(|e| format!("cluster {}: {e}", config.id))?;
        let ns = config.namespace.clone();
        Ok(Cluster {
            apps: Api::namespaced_with(client.clone(), &ns, &spark_resource()),
            statuses: Api::namespaced(client.clone(), &ns),
            pods: Api::namespaced(client.clone(), &ns),
            events: Api::namespaced(client.clone(), &ns),
            client,
            config,
            healthy: AtomicBool::new(true),
            metrics,
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            if healthy {
                tracing::info!(cluster = %self.config.id, "cluster reachable again");
            } else {
                tracing::warn!(cluster = %self.config.id, "cluster unreachable; routing around it");
            }
        }
    }

    /// SparkApplications in the cluster's namespace, as the watcher reads them.
    pub fn statuses(&self) -> &Api<AppStatus> {
        &self.statuses
    }

    /// Times `call`, bounds it by the cluster's timeout, and counts its failure under `op`.
    async fn timed<T>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        let labels = KubeLabels { cluster: self.config.id.clone(), op: op.to_owned() };
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Service(format!("no answer within {:?}", self.config.timeout).into())),
        };
        self.metrics.kube_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        if result.as_ref().is_err_and(|e| api_code(e) != Some(404)) {
            self.metrics.kube_errors.get_or_create(&labels).inc();
        }
        result
    }

    /// Creates the SparkApplication `manifest`, JSON text as planned and replicated, whose
    /// `metadata.name` is `name` (the submission id). The text is sent as it is, not parsed and
    /// written again. The answer, the object as stored, is not parsed either: only its status
    /// code matters.
    pub async fn create(&self, name: &str, manifest: &str) -> CreateOutcome {
        let url = self.statuses.resource_url();
        let request = match kube::core::Request::new(url).create(&PostParams::default(), manifest.as_bytes().to_vec()) {
            Ok(r) => r,
            Err(e) => return CreateOutcome::Rejected(format!("the generated object cannot be sent: {e}")),
        };
        match self.timed("create", self.client.request_text(request)).await {
            Ok(_) => CreateOutcome::Created,
            Err(e) if api_code(&e) == Some(409) => match self.timed("get", self.statuses.get_opt(name)).await {
                Ok(Some(existing)) => {
                    let ours = existing
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(SUBMISSION_ANNOTATION))
                        .is_some_and(|id| id == name);
                    if ours {
                        CreateOutcome::AlreadyOurs
                    } else {
                        CreateOutcome::Rejected(format!(
                            "a SparkApplication named {name} that bpg did not create already exists"
                        ))
                    }
                }
                // Deleted in between: creating again is safe.
                Ok(None) => CreateOutcome::Transient("the conflicting object disappeared".into()),
                Err(e) => CreateOutcome::Transient(describe(&e)),
            },
            Err(e) if matches!(api_code(&e), Some(400 | 404 | 422)) => CreateOutcome::Rejected(describe(&e)),
            Err(e) => CreateOutcome::Transient(describe(&e)),
        }
    }

    /// Deletes a SparkApplication; a missing one is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), String> {
        match self.timed("delete", self.apps.delete(name, &DeleteParams::background())).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Value>, String> {
        match self.timed("get", self.apps.get_opt(name)).await {
            Ok(o) => Ok(o.map(|o| serde_json::to_value(o).unwrap_or(Value::Null))),
            Err(e) => Err(describe(&e)),
        }
    }

    pub async fn pod(&self, name: &str) -> Result<Option<Pod>, String> {
        self.timed("get_pod", self.pods.get_opt(name)).await.map_err(|e| describe(&e))
    }

    pub async fn delete_pod(&self, name: &str) -> Result<(), String> {
        match self.timed("delete_pod", self.pods.delete(name, &DeleteParams::default())).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// A container log, followed while it runs.
    pub async fn log_stream(&self, pod: &str, follow: bool) -> Result<impl futures::AsyncBufRead + use<>, String> {
        let params = LogParams { follow, ..LogParams::default() };
        self.timed("logs", self.pods.log_stream(pod, &params)).await.map_err(|e| describe(&e))
    }

    /// Events about the object named `name`, oldest first.
    pub async fn events(&self, name: &str) -> Result<Vec<Event>, String> {
        let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
        let mut items = self.timed("events", self.events.list(&params)).await.map_err(|e| describe(&e))?.items;
        items.sort_by(|a, b| a.last_timestamp.cmp(&b.last_timestamp));
        Ok(items)
    }

    /// Probes the API server (`GET /version`).
    pub async fn probe(&self) -> Result<(), String> {
        self.timed("probe", self.client.apiserver_version()).await.map(|_| ()).map_err(|e| describe(&e))
    }
}

/// Every configured cluster, by id.
#[derive(Debug, Default)]
pub struct Clusters {
    by_id: BTreeMap<String, Arc<Cluster>>,
    order: Vec<String>,
}

impl Clusters {
    /// Builds a client for each cluster, in config order.
    pub fn new(configs: Vec<ClusterConfig>, metrics: &GatewayMetrics) -> Result<Clusters, String> {
        let mut out = Clusters::default();
        for c in configs {
            out.order.push(c.id.clone());
            out.by_id.insert(c.id.clone(), Arc::new(Cluster::new(c, metrics.clone())?));
        }
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Cluster>> {
        self.by_id.get(id)
    }

    /// In config-file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }

    /// Probes every cluster every `every`, marking one unhealthy after two failures in a row.
    pub async fn probe_forever(self: Arc<Self>, every: Duration) {
        let mut failures: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            for cluster in self.iter() {
                let n = failures.entry(cluster.id().to_owned()).or_default();
                match tokio::time::timeout(every.max(Duration::from_secs(2)), cluster.probe()).await {
                    Ok(Ok(())) => *n = 0,
                    Ok(Err(e)) => {
                        *n += 1;
                        tracing::debug!(cluster = %cluster.id(), error = %e, "probe failed");
                    }
                    Err(_) => *n += 1,
                }
                cluster.set_healthy(*n < 2);
            }
            tokio::time::sleep(every).await;
        }
    }
}
