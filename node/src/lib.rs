//! The `bpg` binary: configuration, wiring, membership bootstrap, signals.
//!
//! `bpg serve --config FILE` runs one node; `bpg dev` runs a local cluster for trying bpg out;
//! `bpg check-config` validates a file; `bpg hash-password` makes a password hash for it.
//! The binary is a thin `main` over this library, so end-to-end tests can build the same
//! program. Start reading at [`serve::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod config;
pub mod dev;
pub mod serve;

pub use bpg_api::auth::hash_password;

/// `bpg --version`: the crate version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BPG_GIT_COMMIT"), ")");

/// What `GET {context}/admin/version` reports for this binary.
pub fn build_info() -> bpg_api::BuildInfo {
    bpg_api::BuildInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("BPG_GIT_COMMIT").into(),
        build_time: env!("BPG_BUILD_TIME").into(),
    }
}

#[derive(Parser, Debug)]
#[command(name = "bpg", version = VERSION, about = "Replicated Batch Processing Gateway for Spark on Kubernetes")]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one gateway node.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// This node's id (overrides the file).
        #[arg(long, env = "BPG_NODE_ID")]
        node_id: Option<u64>,
    },
    /// Validate a config file and exit (0 when valid, 2 otherwise).
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, env = "BPG_NODE_ID")]
        node_id: Option<u64>,
    },
    /// Run a local cluster: gateway nodes as child processes on this machine.
    Dev(dev::DevArgs),
    /// Read a password from standard input and print its argon2 hash for `auth.users`.
    HashPassword,
    /// Cluster administration through the peers' API, authenticated with the cluster secret
    /// from the config (run it where the config and its secrets are, e.g. kubectl exec).
    Admin {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, env = "BPG_NODE_ID")]
        node_id: Option<u64>,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// GET a URL and exit 0 on a 2xx answer (container health checks; images have no curl).
    Probe {
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 2)]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
enum AdminAction {
    /// Print the cluster's Raft status as the leader sees it.
    Status,
    /// Remove a node from the voters (before scaling a StatefulSet down past it).
    RemoveMember { id: u64 },
}

/// Sends an admin request to the first peer that answers; returns its body.
async fn admin(cfg: config::Valid, action: AdminAction) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let mut last = String::from("no peer configured");
    for peer in cfg.peers.values() {
        let request = match &action {
            AdminAction::Status => http.get(format!("http://{}/admin/raft", peer.api_addr)),
            AdminAction::RemoveMember { id } => {
                http.delete(format!("http://{}/admin/raft/members/{id}", peer.api_addr))
            }
        };
        match request.bearer_auth(cfg.secret.expose()).send().await {
            Ok(r) if r.status().is_success() => {
                println!("{}", r.text().await.unwrap_or_default());
                return Ok(());
            }
            Ok(r) => last = format!("{}: {} {}", peer.api_addr, r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = format!("{}: {e}", peer.api_addr),
        }
    }
    anyhow::bail!("no peer accepted the request; last answer: {last}")
}

/// The `bpg` command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve { config, node_id } => {
            let valid = match config::FileConfig::load(&config).and_then(|c| c.validate(&config, node_id)) {
                Ok(v) => v,
                Err(e) => return config_error(e),
            };
            runtime_with(valid.worker_threads, serve::run(valid))
        }
        Command::CheckConfig { config, node_id } => {
            match config::FileConfig::load(&config).and_then(|c| c.validate(&config, node_id)) {
                Ok(v) => {
                    println!(
                        "{}: valid (node {}, {} peers, {} clusters)",
                        config.display(),
                        v.node_id,
                        v.peers.len(),
                        v.clusters.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        Command::Dev(args) => runtime(dev::run(args, cli.log_format == LogFormat::Json)),
        Command::Admin { config, node_id, action } => {
            let valid = match config::FileConfig::load(&config).and_then(|c| c.validate(&config, node_id)) {
                Ok(v) => v,
                Err(e) => return config_error(e),
            };
            runtime(admin(valid, action))
        }
        Command::Probe { url, timeout } => {
            let probe = async move {
                let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(timeout)).build()?;
                let status = client.get(&url).send().await?.status();
                anyhow::ensure!(status.is_success(), "{url}: {status}");
                Ok(())
            };
            runtime(probe)
        }
        Command::HashPassword => {
            let mut password = String::new();
            if std::io::stdin().read_line(&mut password).is_err() {
                eprintln!("could not read a password from standard input");
                return ExitCode::from(2);
            }
            match bpg_api::auth::hash_password(password.trim_end_matches(['\r', '\n'])) {
                Ok(hash) => {
                    println!("{hash}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hashing failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_error(e: config::ConfigError) -> ExitCode {
    eprintln!("bpg: {e}");
    ExitCode::from(2)
}

fn runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    runtime_with(None, fut)
}

/// Runs `fut` on a runtime of `threads` workers (`None`: one per core).
fn runtime_with(threads: Option<usize>, fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bpg: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("bpg: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: as JSON, or as text coloured only when stderr is a terminal. A node's
/// stderr is most often a file or a pipe (`kubectl logs`, a log shipper, `bpg dev`'s log
/// files), where colour codes would be escape sequences in every line.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,sled=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
