//! kubesim: a simulated Kubernetes API server with Spark Operator behaviour, for bpg's tests and
//! local demos. It answers the Kubernetes REST calls a gateway makes — SparkApplications (CRUD,
//! list with selectors and paging, watch, merge/JSON/apply patches, the status subresource,
//! optimistic concurrency), Pods and their logs, Events — validates SparkApplications against
//! the Spark Operator's CRD, serves enough discovery and OpenAPI for kubectl, and runs a
//! simulated operator that moves each application through the real operator's states.
//!
//! It shares no code with the gateway and speaks HTTP only. Start reading at [`http`] (the
//! routes), then `operator` (the simulation) and `store` (objects, revisions, watches).

mod clock;
mod config;
mod crd;
mod faults;
pub mod http;
mod listing;
mod logs;
mod meta;
mod object;
mod operator;
mod patch;
mod resource;
mod schema;
mod selector;
mod sim;
mod sparklog;
mod store;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
pub use config::OperatorConfig;
pub use faults::Faults;
pub use sim::{Settings, Sim};
pub use tls::Tls;
use tokio::net::{TcpListener, TcpSocket};

/// Checks a SparkApplication as an API server with the Spark Operator's CRD would on create:
/// `Ok` with nothing pruned, or the problems (invalid fields, and fields the schema would
/// silently drop, which a generator should not emit).
pub fn validate_spark_application(object: &serde_json::Value) -> Result<(), Vec<String>> {
    let mut copy = object.clone();
    let mut problems: Vec<String> = meta_problems(&mut copy);
    let (causes, pruned) = crd::spark_application().schema.apply(&mut copy);
    problems.extend(causes.iter().map(|c| c.line()));
    problems.extend(pruned.iter().map(|p| format!("{p}: not in the CRD schema (would be pruned)")));
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn meta_problems(object: &mut serde_json::Value) -> Vec<String> {
    meta::check(&mut object["metadata"], "x").iter().map(|c| c.line()).collect()
}

/// Binds a listener that queues as many unaccepted connections as the kernel allows
/// (`net.core.somaxconn`), as kube-apiserver's does, rather than the 128 of
/// `TcpListener::bind`: a burst of new connections beyond it has its SYNs dropped, and each
/// waits out a retransmission (one second, then three).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves `sim` on `listener` (HTTPS when `tls` is given) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    sim: Sim,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => tls::serve(listener, http::router(sim), tls, shutdown).await,
        None => axum::serve(listener, http::router(sim)).with_graceful_shutdown(shutdown).await,
    }
}

/// A kubesim server running in this process (for tests).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub sim: Sim,
    /// The self-signed certificate (PEM) when serving HTTPS.
    pub ca_pem: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Binds `127.0.0.1:0` and serves plain HTTP.
    pub async fn start(settings: Settings) -> std::io::Result<Running> {
        Self::start_with(settings, None).await
    }

    /// Binds `127.0.0.1:0` and serves HTTPS with a fresh self-signed certificate.
    pub async fn start_tls(settings: Settings) -> std::io::Result<Running> {
        let tls = Tls::self_signed(&["127.0.0.1".into(), "localhost".into()]).map_err(std::io::Error::other)?;
        Self::start_with(settings, Some(tls)).await
    }

    async fn start_with(settings: Settings, tls: Option<Tls>) -> std::io::Result<Running> {
        let listener = listen("127.0.0.1:0".parse().expect("an address"))?;
        let addr = listener.local_addr()?;
        let sim = Sim::new(settings);
        let ca_pem = tls.as_ref().map(|t| t.cert_pem.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(listener, sim.clone(), tls, async move {
            let _ = rx.await;
        }));
        Ok(Running { addr, sim, ca_pem, stop: Some(tx), task })
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

#[derive(Parser, Debug)]
#[command(name = "kubesim", version, about = "A simulated Kubernetes API server with Spark Operator behaviour")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Bearer token clients must send.
    #[arg(long, env = "KUBESIM_TOKEN", conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Real time per simulated time (0.01: a 10 s job runs in 100 ms).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Simulated ms from creation to SUBMITTED.
    #[arg(long, default_value_t = 1000)]
    submit_ms: u64,
    /// Simulated ms from SUBMITTED to RUNNING.
    #[arg(long, default_value_t = 2000)]
    start_ms: u64,
    /// Shortest simulated running time, ms.
    #[arg(long, default_value_t = 10_000)]
    run_ms_min: u64,
    /// Longest simulated running time, ms.
    #[arg(long, default_value_t = 20_000)]
    run_ms_max: u64,
    /// Probability that an application fails while running.
    #[arg(long, default_value_t = 0.0)]
    failure_probability: f64,
    /// Probability that spark-submit fails.
    #[arg(long, default_value_t = 0.0)]
    submission_failure_probability: f64,
    /// Most applications running at once (default: unlimited).
    #[arg(long)]
    capacity: Option<usize>,
    /// Simulated ms an Event lives (kube-apiserver's `--event-ttl`; default one hour).
    #[arg(long, default_value_t = 3_600_000)]
    event_ttl_ms: u64,
    /// Seed of the simulation's randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve HTTPS with a self-signed certificate for these names (repeatable; localhost and
    /// 127.0.0.1 are always included).
    #[arg(long)]
    tls_san: Vec<String>,
    /// Serve HTTPS with a self-signed certificate (implied by --tls-san).
    #[arg(long)]
    self_signed: bool,
    /// Serve HTTPS with this certificate (PEM)...
    #[arg(long, requires = "tls_key", conflicts_with = "self_signed")]
    tls_cert: Option<PathBuf>,
    /// ...and this key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write the server certificate (the CA clients trust) to this file.
    #[arg(long)]
    write_ca: Option<PathBuf>,
    /// Write a kubeconfig for this server (server URL, CA, token) to this file, for kubectl.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// Log as JSON.
    #[arg(long)]
    json_logs: bool,
    /// Threads serving requests and running the operator. With one (the default) every task
    /// runs on the main thread: the JSON trees kubesim copies and drops for each change are
    /// then allocated and freed by the same thread: in the gateway's benchmark kubesim took
    /// 10-25 % less CPU per submission than with two threads freeing each other's trees.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
}

fn tls_from(cli: &Cli) -> Result<Option<Tls>, String> {
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        return Tls::from_pem(&read(cert)?, &read(key)?).map(Some);
    }
    if cli.self_signed || !cli.tls_san.is_empty() {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(cli.tls_san.iter().cloned());
        return Tls::self_signed(&names).map(Some);
    }
    Ok(None)
}

fn kubeconfig(server: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!("\n    certificate-authority-data: {}", base64::engine::general_purpose::STANDARD.encode(pem))
        })
        .unwrap_or_default();
    let user = token.map(|t| format!("{{token: {t:?}}}")).unwrap_or_else(|| "{}".into());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {server}{ca}\n\
         users:\n- name: kubesim\n  user: {user}\n\
         contexts:\n- name: kubesim\n  context: {{cluster: kubesim, user: kubesim, namespace: default}}\n\
         current-context: kubesim\n"
    )
}

/// The `kubesim` command line.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    let token = match (&cli.token, &cli.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => {
                eprintln!("kubesim: cannot read --token-file {}: {e}", path.display());
                return std::process::ExitCode::from(2);
            }
        },
        (None, None) => None,
    };
    let operator = OperatorConfig {
        time_scale: cli.time_scale,
        submit_ms: cli.submit_ms,
        start_ms: cli.start_ms,
        run_ms_min: cli.run_ms_min,
        run_ms_max: cli.run_ms_max,
        failure_probability: cli.failure_probability,
        submission_failure_probability: cli.submission_failure_probability,
        capacity: cli.capacity,
        event_ttl_ms: cli.event_ttl_ms,
        ..OperatorConfig::default()
    };
    if let Err(e) = operator.validate() {
        eprintln!("kubesim: {e}");
        return std::process::ExitCode::from(2);
    }
    let tls = match tls_from(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kubesim: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let settings = Settings { token: token.clone(), operator, seed: cli.seed, ..Settings::default() };
    let mut runtime = match cli.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.into());
            b
        }
    };
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async move {
        let listener = listen(cli.listen)?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ca_pem = tls.as_ref().map(|t| t.cert_pem.clone());
        if let Some(path) = &cli.write_ca
            && let Some(pem) = &ca_pem
        {
            std::fs::write(path, pem)?;
        }
        if let Some(path) = &cli.write_kubeconfig {
            std::fs::write(path, kubeconfig(&format!("{scheme}://{addr}"), ca_pem.as_deref(), token.as_deref()))?;
        }
        tracing::info!(%addr, scheme, "kubesim listening");
        serve(listener, Sim::new(settings), tls, async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        })
        .await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubesim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
