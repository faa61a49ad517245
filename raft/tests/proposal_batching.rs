//! Concurrent writes share log entries, and every caller still gets its own command's response.

use std::collections::BTreeMap;
use std::time::Duration;

use bpg_raft::model::{ClusterState, Command, Response};
use bpg_raft::{ClusterSecret, NetworkFactory, NodeInfo, RaftNode, RaftSettings, Store, StoreOptions};

/// A one-node cluster on a fresh data directory, leading.
async fn single_node(dir: &std::path::Path) -> RaftNode {
    single_node_with(dir, &RaftSettings::default()).await
}

async fn single_node_with(dir: &std::path::Path, settings: &RaftSettings) -> RaftNode {
    let store = Store::open(dir, &StoreOptions::default()).expect("store opens");
    let network = NetworkFactory::new(1, ClusterSecret::new("test"), None);
    let raft = RaftNode::start(1, store, network, settings).await.expect("raft starts");
    let me = NodeInfo { raft_addr: "127.0.0.1:1".into(), api_addr: "127.0.0.1:2".into() };
    raft.initialize(BTreeMap::from([(1, me)])).await.expect("initialized");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !raft.is_leader() {
        assert!(tokio::time::Instant::now() < deadline, "a one-node cluster did not elect itself");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    raft
}

// A current-thread runtime: the fifty writes are all queued before the proposer task runs,
// so what they share does not depend on timing.
#[tokio::test]
async fn writes_queued_together_commit_as_one_entry_with_their_own_responses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = single_node(dir.path()).await;
    // One lone write first: it is proposed as itself.
    let lone = raft.write(Command::SetCluster { id: "c-lone".into(), weight: Some(5), cordoned: None }).await;
    assert_eq!(lone.expect("applied"), Response::Cluster(ClusterState { weight: Some(5), cordoned: false }));
    let before = raft.status().last_log_index.expect("entries");

    let writes = (0..50u32).map(|i| {
        let raft = raft.clone();
        async move {
            let cmd = Command::SetCluster { id: format!("c{i}"), weight: Some(i), cordoned: Some(i % 2 == 0) };
            raft.write(cmd).await
        }
    });
    let responses = futures::future::join_all(writes).await;
    for (i, response) in responses.into_iter().enumerate() {
        let want = ClusterState { weight: Some(i as u32), cordoned: i % 2 == 0 };
        assert_eq!(response.expect("applied"), Response::Cluster(want), "write {i}");
    }
    let after = raft.status().last_log_index.expect("entries");
    assert_eq!(after - before, 1, "fifty queued writes took {} log entries", after - before);
    let clusters = raft.state().clusters().expect("readable");
    for i in 0..50u32 {
        assert_eq!(clusters[&format!("c{i}")].weight, Some(i), "c{i} as stored");
    }
    raft.shutdown().await;
}

fn set_cluster(id: &str, weight: u32) -> Command {
    Command::SetCluster { id: id.into(), weight: Some(weight), cordoned: None }
}

// With a minimum interval between proposals, a write that comes soon after one was proposed
// waits for the interval to pass, and the writes that come meanwhile go in the same entry.
// The interval (a second) is far longer than the commit of the first write and the 100 ms
// between the two later writes, so the outcome does not depend on the machine's speed.
#[tokio::test]
async fn writes_within_the_minimum_entry_interval_share_the_next_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = RaftSettings { min_entry_interval: Duration::from_secs(1), ..RaftSettings::default() };
    let raft = single_node_with(dir.path(), &settings).await;
    raft.write(set_cluster("c-first", 1)).await.expect("applied");
    let before = raft.status().last_log_index.expect("entries");

    let second = tokio::spawn({
        let raft = raft.clone();
        async move { raft.write(set_cluster("c-second", 2)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = raft.write(set_cluster("c-third", 3)).await;
    assert_eq!(third.expect("applied"), Response::Cluster(ClusterState { weight: Some(3), cordoned: false }));
    let second = second.await.expect("joined").expect("applied");
    assert_eq!(second, Response::Cluster(ClusterState { weight: Some(2), cordoned: false }));
    let after = raft.status().last_log_index.expect("entries");
    assert_eq!(after - before, 1, "two writes 100 ms apart took {} entries", after - before);
    raft.shutdown().await;
}
