//! Weight registers: a replicated value per cluster, written by one sequential writer each,
//! so that after any crash the stored value must lie between the last acknowledged write and
//! the last attempted one.

use std::collections::BTreeMap;

use serde_json::json;

use crate::client::Client;

/// `sparkClusters` YAML declaring clusters `c0..c{n-1}`, weight 1. No API server listens at
/// their URL: these tests exercise replication, not Kubernetes.
pub fn clusters_yaml(n: usize) -> String {
    let mut s = String::from("sparkClusters:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - {{id: c{i}, weight: 1, masterUrl: 'http://127.0.0.1:9', sparkApplicationNamespace: spark}}\n"
        ));
    }
    s
}

/// What one writer did to one cluster's weight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Register {
    /// The highest value the gateway acknowledged (writes are sequential and increasing).
    pub acked: Option<u32>,
    /// The highest value ever sent.
    pub attempted: Option<u32>,
}

impl Register {
    /// Checks a value read after the fact.
    pub fn admits(&self, value: u32) -> bool {
        self.acked.is_none_or(|a| value >= a) && self.attempted.is_none_or(|t| value <= t)
    }
}

/// Writes `value` as the weight of `cluster`; records it as attempted, and as acked on 200.
pub async fn write(client: &Client, reg: &mut Register, cluster: &str, value: u32) -> bool {
    reg.attempted = Some(value);
    match client.set_cluster(cluster, json!({"weight": value})).await {
        Ok(a) if a.status.is_success() => {
            assert_eq!(a.body["weight"], json!(value), "acknowledged write of {cluster} answered another value");
            reg.acked = Some(value);
            true
        }
        _ => false,
    }
}

/// Reads every cluster's weight through the leader (linearizable).
pub async fn read_all(client: &Client, clusters: usize) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for i in 0..clusters {
        let id = format!("c{i}");
        let answer = client.cluster(&id, true).await?;
        anyhow::ensure!(answer.ok(), "reading {id}: {} {}", answer.status, answer.body);
        let w = answer.body["weight"].as_u64().ok_or_else(|| anyhow::anyhow!("no weight in {}", answer.body))?;
        out.insert(id, w as u32);
    }
    Ok(out)
}
