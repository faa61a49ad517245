//! The leader's background pass over pending jobs works from a listing that ages while it
//! runs: a job dispatched (or deleted) since it was listed is left alone.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bpg_raft::model::{Command, Dispatch};
use bpg_router::clusters::Clusters;
use bpg_router::dispatch::{Dispatched, Dispatcher};
use bpg_router::metrics::GatewayMetrics;
use common::{job, kubesim_c1, single_node};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_pass_dispatches_only_what_is_still_pending_when_it_gets_there() {
    let (srv, config) = kubesim_c1().await;
    let metrics = GatewayMetrics::detached();
    let clusters = Arc::new(Clusters::new(vec![config], &metrics).expect("a client"));
    let dir = tempfile::tempdir().expect("tempdir");
    let raft = single_node(dir.path()).await;
    let dispatcher = Arc::new(Dispatcher::new(raft.clone(), clusters.clone(), metrics));
    let cluster = clusters.get("c1").expect("configured");

    let ids = [
        "c1-0000000000000000000000000000000a",
        "c1-0000000000000000000000000000000b",
        "c1-0000000000000000000000000000000c",
    ];
    for id in ids {
        raft.write(Command::Submit { job: Box::new(job(id)), idempotency_key: None }).await.expect("submitted");
    }
    let listing = raft.state().pending_dispatch().expect("pending jobs");
    assert_eq!(listing.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ids, "all three listed as pending");

    // After the listing: `a` is dispatched by its submitter, `b` too and then deleted by its
    // owner (its application removed); `c` is left pending.
    for id in &ids[..2] {
        let claim = dispatcher.reserve(id).expect("nobody dispatches it");
        let dispatched = dispatcher.dispatch(&job(id), Instant::now() + DEADLINE).await;
        assert_eq!(dispatched, Dispatched::Created);
        drop(claim);
    }
    raft.write(Command::Delete { id: ids[1].into(), at_ms: 2 }).await.expect("deleted");
    cluster.delete(ids[1]).await.expect("the application is removed");
    let entries = raft.status().last_log_index;

    assert_eq!(dispatcher.dispatch_listed(listing, DEADLINE).await, 1, "only the job still pending");
    assert!(cluster.get(ids[1]).await.expect("get").is_none(), "the deleted job's application is not created again");
    assert!(cluster.get(ids[2]).await.expect("get").is_some(), "the pending job's application is created");
    assert_eq!(
        raft.status().last_log_index,
        entries.map(|i| i + 1),
        "one entry: the dispatch of the pending job, none for the two done before"
    );
    let c = raft.state().job(ids[2]).expect("read").expect("the job");
    assert_eq!(c.dispatch, Dispatch::Created);
    let b = raft.state().job(ids[1]).expect("read").expect("the tombstone");
    assert!(b.deleted_at_ms.is_some());
    drop(srv);
}
