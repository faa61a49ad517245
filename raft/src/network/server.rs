use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::ClusterSecret;
use super::wire::{self, ReadError};
use crate::typ::Raft;

/// How long a new connection gets to present its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request for this long is closed: its client is gone without a word (a
/// network cut), or idle longer than clients keep unused connections (30 s). A replication
/// stream sends a heartbeat every 100 ms.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

const HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n\
this is a bpg node's Raft listener; it speaks the nodes' framed RPC, not HTTP (the API is on the API listener)\n";

/// Serves Raft RPC on `listener` (see [`wire`](super::wire) for the protocol) until `stop` is
/// cancelled, refusing any connection that does not open with the cluster secret. Each
/// connection is served in order, one request at a time, as openraft sends them.
pub async fn serve_rpc(listener: TcpListener, raft: crate::RaftNode, secret: ClusterSecret, stop: CancellationToken) {
    let raft = raft.raw().clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (raft, secret) = (raft.clone(), secret.clone());
                    connections.spawn(async move {
                        if let Err(reason) = serve_connection(stream, &raft, &secret).await {
                            debug!(%peer, %reason, "raft RPC connection closed");
                        }
                    });
                }
                // Out of file descriptors or a connection reset before it was accepted: keep
                // listening, after a pause so that a persistent error does not spin.
                Err(e) => {
                    debug!(error = %e, "accepting a raft RPC connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    // Dropping the set aborts the connections; Raft has shut down by now.
}

async fn serve_connection(stream: TcpStream, raft: &Raft, secret: &ClusterSecret) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut conn = BufReader::with_capacity(wire::READ_BUFFER, stream);
    let mut buf = Vec::new();
    let mut out = Vec::new();

    let hello = tokio::time::timeout(HELLO_TIMEOUT, wire::read_frame(&mut conn, wire::MAX_HELLO, &mut buf)).await;
    let refusal = match hello {
        Err(_) => Some("no hello within 10 s".to_owned()),
        Ok(Err(ReadError::Http)) => {
            close_with(&mut conn, HTTP_REFUSAL).await;
            return Err("refused an HTTP request".into());
        }
        Ok(Err(e)) => Some(format!("missing or wrong cluster secret ({e})")),
        Ok(Ok(wire::HELLO)) if std::str::from_utf8(&buf).is_ok_and(|s| secret.matches(s)) => None,
        Ok(Ok(_)) => Some("missing or wrong cluster secret".to_owned()),
    };
    if let Some(reason) = refusal {
        refuse(&mut conn, &reason).await;
        return Err(reason);
    }

    loop {
        let next = tokio::time::timeout(IDLE_TIMEOUT, wire::read_frame(&mut conn, wire::MAX_FRAME, &mut buf)).await;
        let Ok(next) = next else {
            return Err(format!("no request for {IDLE_TIMEOUT:?}"));
        };
        let kind = match next {
            Ok(kind) => kind,
            Err(ReadError::Closed) => return Ok(()),
            Err(e) => {
                let reason = e.to_string();
                refuse(&mut conn, &reason).await;
                return Err(reason);
            }
        };
        out.clear();
        let encoded = match kind {
            wire::APPEND => answer(&buf, &mut out, |req| raft.append_entries(req)).await,
            wire::VOTE => answer(&buf, &mut out, |req| raft.vote(req)).await,
            wire::SNAPSHOT => answer(&buf, &mut out, |req| raft.install_snapshot(req)).await,
            other => Err(format!("unknown request kind {other}")),
        };
        if let Err(reason) = encoded {
            refuse(&mut conn, &reason).await;
            return Err(reason);
        }
        conn.get_mut().write_all(&out).await.map_err(|e| format!("writing a reply: {e}"))?;
    }
}

/// Decodes the request in `body`, runs it, and puts its result in `out` as a [`wire::REPLY`].
async fn answer<Req, Resp, Fut>(body: &[u8], out: &mut Vec<u8>, run: impl FnOnce(Req) -> Fut) -> Result<(), String>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp>,
{
    let req = bincode::deserialize(body).map_err(|e| format!("undecodable RPC body: {e}"))?;
    let result = run(req).await;
    wire::put_bincode(out, wire::REPLY, &result).map_err(|e| format!("encoding the reply failed: {e}"))
}

/// Answers with an [`wire::ERROR`] frame and closes.
async fn refuse(conn: &mut BufReader<TcpStream>, reason: &str) {
    let mut frame = Vec::with_capacity(reason.len() + 5);
    wire::put_frame(&mut frame, wire::ERROR, reason.as_bytes());
    close_with(conn, &frame).await;
}

/// Writes `last` and closes. What the peer sent after the refused request is read and dropped
/// first (for a second at most): closing a socket with unread input resets the connection,
/// and the peer could lose the answer with it.
async fn close_with(conn: &mut BufReader<TcpStream>, last: &[u8]) {
    let _ = conn.get_mut().write_all(last).await;
    let _ = conn.get_mut().shutdown().await;
    let drain = async {
        let mut sink = [0u8; 8192];
        while let Ok(1..) = conn.read(&mut sink).await {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
