//! `bpg serve`: one gateway node, as a linear runbook.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bpg_api::auth::Auth;
use bpg_api::{ApiMetrics, AppState, Forwarder};
use bpg_raft::{NetworkFactory, RaftNode, Store};
use bpg_router::Gateway;
use bpg_router::clusters::Clusters;
use bpg_router::metrics::GatewayMetrics;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Valid;

/// How long in-flight API requests get to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(cfg: Valid) -> anyhow::Result<()> {
    info!(node = cfg.node_id, raft = %cfg.me.raft_addr, api = %cfg.me.api_addr, "starting bpg node");

    // 1. Open the store, creating its directory (blocking: after a crash the database checks
    //    its file first).
    info!(dir = %cfg.data_dir.display(), "opening the store");
    let (dir, store_opts) = (cfg.data_dir.clone(), cfg.store.clone());
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, &store_opts))
        .await?
        .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;

    // 2. Start Raft. Its RPC listener is bound first so peers can reach it at once.
    let raft_listener = bind(cfg.listen_raft, "raft")?;
    let local_ip = cfg.bind_outgoing.then(|| cfg.listen_raft.ip());
    let network = NetworkFactory::new(cfg.node_id, cfg.secret.clone(), local_ip);
    let raft = RaftNode::start(cfg.node_id, store, network, &cfg.raft).await?;
    let raft_stop = CancellationToken::new();
    let raft_server =
        tokio::spawn(bpg_raft::serve_rpc(raft_listener, raft.clone(), cfg.secret.clone(), raft_stop.clone()));

    // 3. The lowest-id peer initializes a new cluster; on a restart this is a no-op.
    if cfg.bootstrap {
        if raft.initialize(cfg.peers.clone()).await? {
            info!(members = ?cfg.peers.keys().collect::<Vec<_>>(), "initialized a new cluster");
        } else {
            info!("cluster already initialized");
        }
    }

    // A node that is not a member (a StatefulSet scaled up) asks the cluster to add it.
    let joiner = (!cfg.bootstrap).then(|| tokio::spawn(join_if_needed(&cfg)));

    // 4. The gateway: a kube client per cluster, health probes on every node, and the
    //    leader-only work (dispatch, status watchers, housekeeping) while this node leads.
    let mut registry = prometheus_client::registry::Registry::default();
    let gateway_metrics = GatewayMetrics::register(&mut registry);
    let api_metrics = ApiMetrics::register(&mut registry);
    let clusters = Clusters::new(cfg.clusters.clone(), &gateway_metrics).map_err(anyhow::Error::msg)?;
    let gateway = Gateway::new(raft.clone(), clusters, cfg.policy.clone(), gateway_metrics, cfg.gateway.clone());
    let gateway_tasks = gateway.start();

    // 5. The API and admin listeners.
    let auth = Arc::new(Auth::new(cfg.auth.clone(), cfg.secret.clone()).map_err(anyhow::Error::msg)?);
    let forward_timeout = cfg.raft.write_timeout.max(cfg.gateway.dispatch_timeout) * 2 + Duration::from_secs(5);
    let state = AppState::new(
        raft.clone(),
        gateway,
        auth,
        Forwarder::new(cfg.node_id, cfg.secret.clone(), forward_timeout),
        &cfg.context_path,
        api_metrics,
        Arc::new(registry),
        crate::build_info(),
    );
    let api_stop = CancellationToken::new();
    let api_server = tokio::spawn(serve(bind(cfg.listen_api, "api")?, bpg_api::app(state.clone()), api_stop.clone()));
    let admin_server =
        tokio::spawn(serve(bind(cfg.listen_admin, "admin")?, bpg_api::admin_app(state), api_stop.clone()));
    info!(api = %cfg.listen_api, admin = %cfg.listen_admin, raft = %cfg.listen_raft, "listening");

    // 6. Run until SIGTERM or SIGINT.
    shutdown_signal().await;
    info!("shutting down");

    // 7. Stop taking client requests first, so clients learn at once and go elsewhere.
    api_stop.cancel();
    for server in [api_server, admin_server] {
        if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
            tracing::warn!("API requests still running after {DRAIN_TIMEOUT:?}; dropping them");
        }
    }
    // 8. Stop the gateway's background work, leave Raft, stop its listener, flush the store.
    gateway_tasks.abort();
    if let Some(j) = joiner {
        j.abort();
    }
    raft.shutdown().await;
    raft_stop.cancel();
    let _ = raft_server.await;
    info!("stopped");
    Ok(())
}

/// Asks the peers' API to make this node a voter (`POST /admin/raft/join`, forwarded to the
/// leader, a no-op for a node that already votes) until one accepts. The cluster's membership
/// decides, not the one stored here: a node restarted on the volume it kept after it was
/// removed (a StatefulSet scaled down and up again) still finds itself among the voters of
/// the last membership it saw. Runs once per start, so a node removed while running does not
/// re-add itself.
fn join_if_needed(cfg: &Valid) -> impl std::future::Future<Output = ()> + use<> {
    let (id, me, secret) = (cfg.node_id, cfg.me.clone(), cfg.secret.clone());
    let peers: Vec<String> = cfg.peers.iter().filter(|(p, _)| **p != id).map(|(_, n)| n.api_addr.clone()).collect();
    async move {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("a plain-HTTP client builds");
        let body = serde_json::json!({"id": id, "raftAddr": me.raft_addr, "apiAddr": me.api_addr});
        loop {
            for peer in &peers {
                let url = format!("http://{peer}/admin/raft/join");
                match http.post(&url).bearer_auth(secret.expose()).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        info!(via = %peer, "a voter of the cluster");
                        return;
                    }
                    Ok(r) => tracing::debug!(via = %peer, status = %r.status(), "join refused; retrying"),
                    Err(e) => tracing::debug!(via = %peer, error = %e, "join failed; retrying"),
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Connections the kernel queues on a listener until they are accepted: as many as it allows
/// (`net.core.somaxconn` caps it, 4096 by default), as the Go servers next to a gateway
/// (kube-apiserver, etcd) ask for. The 128 that `TcpListener::bind` asks for overflows when
/// hundreds of clients connect at once, as they do when a stall leaves their requests in
/// flight and each opens another connection: the kernel then drops the SYNs beyond it, and
/// each such client waits out a retransmission, one second and then three.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| format!("binding the {what} listener on {addr}"))
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains in-flight requests.
async fn serve(listener: TcpListener, app: axum::Router, stop: CancellationToken) {
    let result = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "listener failed");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_listener_queues_hundreds_of_connections_before_it_accepts_any() {
        const CLIENTS: usize = 300;
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
        assert!(somaxconn >= CLIENTS, "net.core.somaxconn is {somaxconn}; this test needs {CLIENTS}");
        let listener = bind("127.0.0.1:0".parse().unwrap(), "test").unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts. A connection the kernel does not queue has its SYN dropped and is
        // retried after a second, then three: the timeout tells the two apart.
        let mut connected = Vec::with_capacity(CLIENTS);
        for n in 0..CLIENTS {
            let connect = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
            match connect {
                Ok(Ok(stream)) => connected.push(stream),
                Ok(Err(e)) => panic!("connection {n} failed: {e}"),
                Err(_) => panic!("connection {n} was not queued: the listener's backlog is full"),
            }
        }
        assert_eq!(connected.len(), CLIENTS);
    }
}
