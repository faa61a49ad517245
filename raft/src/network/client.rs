use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ClusterSecret, RPC_PREFIX};
use crate::typ::{NodeId, NodeInfo, TypeConfig};

/// Builds one lazy HTTP connection per peer; they share one connection pool.
#[derive(Clone, Debug)]
pub struct NetworkFactory {
    id: NodeId,
    client: reqwest::Client,
    secret: ClusterSecret,
}

impl NetworkFactory {
    /// `id` is this node's id (for error reports). `local_address`, when set, is the source
    /// address outgoing RPCs bind to, so per-address firewall rules can tell nodes apart.
    pub fn new(id: NodeId, secret: ClusterSecret, local_address: Option<std::net::IpAddr>) -> Self {
        let client = reqwest::Client::builder()
            .local_address(local_address)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a plain-HTTP reqwest client always builds");
        NetworkFactory { id, client, secret }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Connection {
        Connection {
            id: self.id,
            target,
            base: format!("http://{}{}", node.raft_addr, RPC_PREFIX),
            client: self.client.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// RPCs to one peer.
#[derive(Debug)]
pub struct Connection {
    id: NodeId,
    target: NodeId,
    base: String,
    client: reqwest::Client,
    secret: ClusterSecret,
}

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        action: RPCTypes,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        let timed_out = || RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout });
        let body = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let response = self
            .client
            .post(format!("{}/{path}", self.base))
            .bearer_auth(self.secret.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { timed_out() } else { RPCError::Unreachable(Unreachable::new(&e)) })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| if e.is_timeout() { timed_out() } else { RPCError::Unreachable(Unreachable::new(&e)) })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let err = std::io::Error::other(format!("HTTP {status} from node {}: {text}", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&err)));
        }
        let result: Result<Resp, RaftError<NodeId, E>> =
            bincode::deserialize(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call(RPCTypes::AppendEntries, "append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(RPCTypes::InstallSnapshot, "snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call(RPCTypes::Vote, "vote", &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        // Retry an unreachable peer soon enough that a restarted node rejoins within an
        // election timeout, without spinning on a dead one.
        Backoff::new(std::iter::repeat(Duration::from_millis(250)))
    }
}
