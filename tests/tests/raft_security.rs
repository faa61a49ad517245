//! Raft RPC without the cluster secret is refused; so are API changes without credentials.

use bpg_tests::register::clusters_yaml;
use bpg_tests::{ClusterOptions, Credentials, TestCluster};
use serde_json::json;

#[tokio::test]
async fn raft_rpc_needs_the_cluster_secret() -> anyhow::Result<()> {
    let cluster = TestCluster::start(
        env!("CARGO_BIN_EXE_e2e-bpg"),
        ClusterOptions { extra_yaml: clusters_yaml(1), ..ClusterOptions::default() },
    )
    .await?;
    let leader = cluster.leader().await?;
    let http = reqwest::Client::new();
    for path in ["append", "vote", "snapshot"] {
        let url = format!("http://{}/raft/{path}", cluster.node(leader).raft);
        let none = http.post(&url).body(vec![1, 2, 3]).send().await?;
        assert_eq!(none.status(), 401, "{path} without a secret");
        let wrong = http.post(&url).bearer_auth("not-the-secret").body(vec![1, 2, 3]).send().await?;
        assert_eq!(wrong.status(), 401, "{path} with a wrong secret");
        // With the secret, the same garbage body gets past authentication and is refused as undecodable.
        let right = http.post(&url).bearer_auth(&cluster.secret).body(vec![1, 2, 3]).send().await?;
        assert_eq!(right.status(), 400, "{path} with the secret");
    }

    // A write without credentials changes nothing.
    let anonymous = cluster.client(leader).with_credentials(Credentials::None);
    let refused = anonymous.set_cluster("c0", json!({"weight": 9})).await?;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.headers["www-authenticate"], "Basic realm=\"bpg\"");
    assert_eq!(cluster.client(leader).cluster("c0", true).await?.body["weight"], 1);
    Ok(())
}
