//! Raft RPC without the cluster secret is refused; so are API changes without credentials.

use bpg_tests::register::clusters_yaml;
use bpg_tests::{ClusterOptions, Credentials, TestCluster};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The frame kinds of the Raft RPC protocol (`raft/src/network/wire.rs`), written out here so
// that this test speaks it as a foreign client would.
const HELLO: u8 = 1;
const APPEND: u8 = 2;
const ERROR: u8 = 6;

/// A frame: a 4-byte big-endian length of what follows, the kind, the payload.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// Sends `bytes` on a new connection and reads the one frame that comes back, checking that
/// the server then closes the connection.
async fn exchange(addr: &str, bytes: &[u8]) -> anyhow::Result<(u8, String)> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(bytes).await?;
    conn.shutdown().await?;
    let mut reply = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut reply)).await??;
    anyhow::ensure!(reply.len() >= 5, "a reply of {} bytes", reply.len());
    let len = u32::from_be_bytes(reply[..4].try_into()?) as usize;
    anyhow::ensure!(reply.len() == 4 + len, "{} bytes after a frame of {len}", reply.len() - 4);
    Ok((reply[4], String::from_utf8_lossy(&reply[5..]).into_owned()))
}

#[tokio::test]
async fn raft_rpc_needs_the_cluster_secret() -> anyhow::Result<()> {
    let cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(1), ..ClusterOptions::default() },
    )
    .await?;
    let leader = cluster.leader().await?;
    let raft = &cluster.node(leader).raft;

    // Each connection below sends an append request (a garbage body) after what it presents.
    let garbage_append = frame(APPEND, &[1, 2, 3]);
    let no_hello = exchange(raft, &garbage_append).await?;
    let wrong = exchange(raft, &[frame(HELLO, b"not-the-secret"), garbage_append.clone()].concat()).await?;
    let empty = exchange(raft, &[frame(HELLO, b""), garbage_append.clone()].concat()).await?;
    for (what, (kind, text)) in [("no hello", no_hello), ("a wrong secret", wrong), ("an empty secret", empty)] {
        assert_eq!(kind, ERROR, "{what}: {text}");
        assert!(text.contains("missing or wrong cluster secret"), "{what}: {text}");
    }
    // With the secret, the same garbage gets past authentication and is refused as undecodable.
    let right = exchange(raft, &[frame(HELLO, cluster.secret.as_bytes()), garbage_append].concat()).await?;
    assert_eq!(right.0, ERROR, "{}", right.1);
    assert!(right.1.starts_with("undecodable RPC body"), "{}", right.1);

    // Someone pointing curl at the Raft port is told what it is.
    let http = reqwest::Client::new();
    let answer = http.post(format!("http://{raft}/raft/append")).body(vec![1, 2, 3]).send().await?;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await?.contains("Raft listener"));

    // A write without credentials changes nothing.
    let anonymous = cluster.client(leader).with_credentials(Credentials::None);
    let refused = anonymous.set_cluster("c0", json!({"weight": 9})).await?;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.headers["www-authenticate"], "Basic realm=\"bpg\"");
    assert_eq!(cluster.client(leader).cluster("c0", true).await?.body["weight"], 1);
    Ok(())
}
