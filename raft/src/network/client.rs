use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use super::{ClusterSecret, wire};
use crate::typ::{NodeId, NodeInfo, TypeConfig};

/// Makes one [`Connection`] per peer and purpose (a replication stream, an election, a
/// linearizable read's round of heartbeats), reusing the connections of dropped ones.
#[derive(Clone, Debug)]
pub struct NetworkFactory {
    id: NodeId,
    secret: ClusterSecret,
    local_address: Option<IpAddr>,
    idle: IdleConnections,
}

impl NetworkFactory {
    /// `id` is this node's id (for error reports). `local_address`, when set, is the source
    /// address outgoing RPCs bind to, so per-address firewall rules can tell nodes apart.
    pub fn new(id: NodeId, secret: ClusterSecret, local_address: Option<IpAddr>) -> Self {
        NetworkFactory { id, secret, local_address, idle: IdleConnections::default() }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Connection {
        Connection {
            id: self.id,
            target,
            stream: self.idle.take(&node.raft_addr),
            addr: node.raft_addr.clone(),
            local_address: self.local_address,
            secret: self.secret.clone(),
            idle: self.idle.clone(),
            in_flight: false,
            out: Vec::new(),
            reply: Vec::new(),
        }
    }
}

/// How long a connection may wait unused for the next client to the same peer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many unused connections are kept per peer.
const MAX_IDLE_PER_PEER: usize = 4;

/// Connections whose clients were dropped between requests, by peer address. openraft makes a
/// new client for each election's vote requests and each linearizable read's heartbeats; without
/// these each would open a connection to every peer.
#[derive(Clone, Debug, Default)]
struct IdleConnections(Arc<Mutex<HashMap<String, Vec<Idle>>>>);

type Stream = BufReader<TcpStream>;

/// An unused connection and when it was last used.
type Idle = (Instant, Stream);

impl IdleConnections {
    fn take(&self, addr: &str) -> Option<Stream> {
        let mut idle = self.0.lock().expect("no panic holds this lock");
        let list = idle.get_mut(addr)?;
        list.retain(|(since, _)| since.elapsed() < IDLE_TIMEOUT);
        list.pop().map(|(_, stream)| stream)
    }

    fn put(&self, addr: &str, stream: Stream) {
        let mut idle = self.0.lock().expect("no panic holds this lock");
        let list = idle.entry(addr.to_owned()).or_default();
        list.retain(|(since, _)| since.elapsed() < IDLE_TIMEOUT);
        if list.len() < MAX_IDLE_PER_PEER {
            list.push((Instant::now(), stream));
        }
    }
}

/// RPCs to one peer over one TCP connection, opened on first use and again after a failure.
/// openraft sends one request at a time on each (it awaits the reply before the next).
#[derive(Debug)]
pub struct Connection {
    id: NodeId,
    target: NodeId,
    addr: String,
    local_address: Option<IpAddr>,
    secret: ClusterSecret,
    stream: Option<Stream>,
    idle: IdleConnections,
    /// Set while an exchange runs. openraft may drop an RPC's future midway (its own timeout),
    /// leaving a request half written or a reply unread: a call that finds this set starts
    /// over on a new connection.
    in_flight: bool,
    /// The outgoing frame and the reply's payload, kept to reuse their allocations.
    out: Vec<u8>,
    reply: Vec<u8>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take().filter(|_| !self.in_flight) {
            self.idle.put(&self.addr, stream);
        }
    }
}

/// Why an exchange failed.
enum Failure {
    /// No reply (connect, write or read failed): the peer is unreachable for now.
    Io(std::io::Error),
    /// The peer refused the request with a reason.
    Refused(String),
}

impl Connection {
    async fn call<Req, Resp, E>(
        &mut self,
        action: RPCTypes,
        kind: u8,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        self.out.clear();
        wire::put_bincode(&mut self.out, kind, req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if self.in_flight {
            self.stream = None;
        }
        self.in_flight = true;
        let outcome = tokio::time::timeout(timeout, self.exchange()).await;
        self.in_flight = false;
        let failure = match outcome {
            Ok(Ok(())) => {
                let result: Result<Resp, RaftError<NodeId, E>> =
                    bincode::deserialize(&self.reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                return result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)));
            }
            Ok(Err(failure)) => failure,
            Err(_) => {
                self.stream = None;
                return Err(RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout }));
            }
        };
        self.stream = None;
        let err = match failure {
            Failure::Io(e) => {
                std::io::Error::new(e.kind(), format!("raft RPC to node {} at {}: {e}", self.target, self.addr))
            }
            Failure::Refused(reason) => {
                std::io::Error::other(format!("node {} at {} refused the RPC: {reason}", self.target, self.addr))
            }
        };
        Err(RPCError::Unreachable(Unreachable::new(&err)))
    }

    /// Sends the frame in `out` and leaves the reply's payload in `reply`. A request that fails
    /// on a connection opened for an earlier one (the peer restarted, or closed it) is sent once
    /// more on a new connection: every Raft RPC may be repeated.
    async fn exchange(&mut self) -> Result<(), Failure> {
        if let Some(stream) = self.stream.as_mut() {
            match send(stream, &self.out, &mut self.reply).await {
                Err(Failure::Io(_)) => self.stream = None,
                done => return done,
            }
        }
        let stream = self.connect().await.map_err(Failure::Io)?;
        send(self.stream.insert(stream), &self.out, &mut self.reply).await
    }

    async fn connect(&self) -> std::io::Result<Stream> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the address resolves to nothing");
        for addr in tokio::net::lookup_host(&self.addr).await? {
            let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            if let Some(ip) = self.local_address {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            socket.set_nodelay(true)?;
            match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr)).await {
                Ok(Ok(stream)) => {
                    let mut stream = BufReader::with_capacity(wire::READ_BUFFER, stream);
                    let mut hello = Vec::with_capacity(self.secret.expose().len() + 5);
                    wire::put_frame(&mut hello, wire::HELLO, self.secret.expose().as_bytes());
                    stream.get_mut().write_all(&hello).await?;
                    return Ok(stream);
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            }
        }
        Err(last)
    }
}

/// How long a connection attempt may take, within the RPC's own deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn send(stream: &mut Stream, request: &[u8], reply: &mut Vec<u8>) -> Result<(), Failure> {
    stream.get_mut().write_all(request).await.map_err(Failure::Io)?;
    match wire::read_frame(stream, wire::MAX_FRAME, reply).await.map_err(|e| Failure::Io(e.into()))? {
        wire::REPLY => Ok(()),
        wire::ERROR => Err(Failure::Refused(String::from_utf8_lossy(reply).into_owned())),
        other => Err(Failure::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a reply frame of unknown kind {other}"),
        ))),
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call(RPCTypes::AppendEntries, wire::APPEND, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(RPCTypes::InstallSnapshot, wire::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call(RPCTypes::Vote, wire::VOTE, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        // Retry an unreachable peer soon enough that a restarted node rejoins within an
        // election timeout, without spinning on a dead one.
        Backoff::new(std::iter::repeat(Duration::from_millis(250)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openraft::Vote;
    use tokio::net::TcpListener;

    use super::*;

    const SECRET: &str = "test-secret";

    /// A peer that checks the hello, answers each vote request with the vote it carried
    /// (after `delay` for the first request of the first connection), and closes each
    /// connection after `per_connection` replies. Returns its address and a count of the
    /// connections it accepted.
    async fn fake_peer(per_connection: usize, delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let first_connection = count.fetch_add(1, Ordering::SeqCst) == 0;
                tokio::spawn(async move {
                    let mut conn = BufReader::new(stream);
                    let mut buf = Vec::new();
                    assert_eq!(wire::read_frame(&mut conn, wire::MAX_HELLO, &mut buf).await.unwrap(), wire::HELLO);
                    assert_eq!(buf, SECRET.as_bytes());
                    for served in 0..per_connection {
                        let Ok(kind) = wire::read_frame(&mut conn, wire::MAX_FRAME, &mut buf).await else { return };
                        assert_eq!(kind, wire::VOTE);
                        let req: VoteRequest<NodeId> = bincode::deserialize(&buf).unwrap();
                        if first_connection && served == 0 {
                            tokio::time::sleep(delay).await;
                        }
                        let reply: Result<VoteResponse<NodeId>, RaftError<NodeId>> =
                            Ok(VoteResponse { vote: req.vote, vote_granted: true, last_log_id: None });
                        let mut out = Vec::new();
                        wire::put_bincode(&mut out, wire::REPLY, &reply).unwrap();
                        conn.get_mut().write_all(&out).await.unwrap();
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn connection(addr: String) -> Connection {
        client_of(&mut factory(), addr).await
    }

    fn factory() -> NetworkFactory {
        NetworkFactory::new(1, ClusterSecret::new(SECRET), None)
    }

    async fn client_of(factory: &mut NetworkFactory, addr: String) -> Connection {
        factory.new_client(2, &NodeInfo { raft_addr: addr, api_addr: "unused:1".into() }).await
    }

    fn vote(term: u64) -> VoteRequest<NodeId> {
        VoteRequest { vote: Vote::new(term, 1), last_log_id: None }
    }

    fn option() -> RPCOption {
        RPCOption::new(Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_peer_that_closed_the_connection_is_reached_again_on_a_new_one() {
        let (addr, accepted) = fake_peer(1, Duration::ZERO).await;
        let mut conn = connection(addr).await;
        for term in 1..=3 {
            let reply = conn.vote(vote(term), option()).await.expect("the repeated request is answered");
            assert_eq!(reply.vote, Vote::new(term, 1));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "one connection per request, as the peer closes each");
    }

    #[tokio::test]
    async fn requests_share_one_connection() {
        let (addr, accepted) = fake_peer(usize::MAX, Duration::ZERO).await;
        let mut conn = connection(addr).await;
        for term in 1..=5 {
            assert_eq!(conn.vote(vote(term), option()).await.unwrap().vote, Vote::new(term, 1));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_reply_to_a_dropped_call_is_never_taken_for_the_next_ones() {
        // openraft drops an RPC's future when its own timeout fires; the late reply to it
        // must not answer the request after.
        let (addr, accepted) = fake_peer(usize::MAX, Duration::from_millis(300)).await;
        let mut conn = connection(addr).await;
        let dropped = tokio::time::timeout(Duration::from_millis(50), conn.vote(vote(1), option())).await;
        assert!(dropped.is_err(), "the first call is still waiting when it is dropped");
        let reply = conn.vote(vote(2), option()).await.unwrap();
        assert_eq!(reply.vote, Vote::new(2, 1), "the answer to this request, not the late one");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_new_client_takes_over_the_connection_of_a_dropped_one() {
        // openraft makes a client per election and per linearizable read.
        let (addr, accepted) = fake_peer(usize::MAX, Duration::ZERO).await;
        let mut factory = factory();
        for term in 1..=3 {
            let mut conn = client_of(&mut factory, addr.clone()).await;
            assert_eq!(conn.vote(vote(term), option()).await.unwrap().vote, Vote::new(term, 1));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_dropped_with_a_request_in_flight_is_not_reused() {
        let (addr, accepted) = fake_peer(usize::MAX, Duration::from_millis(300)).await;
        let mut factory = factory();
        let mut first = client_of(&mut factory, addr.clone()).await;
        let dropped = tokio::time::timeout(Duration::from_millis(50), first.vote(vote(1), option())).await;
        assert!(dropped.is_err());
        drop(first);
        let mut second = client_of(&mut factory, addr).await;
        assert_eq!(second.vote(vote(2), option()).await.unwrap().vote, Vote::new(2, 1));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_peer_that_is_not_listening_is_unreachable() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().to_string()
        };
        let mut conn = connection(addr.clone()).await;
        match conn.vote(vote(1), option()).await {
            Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains(&addr), "{e}"),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
}
