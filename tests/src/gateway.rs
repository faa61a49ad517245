//! A whole gateway for end-to-end tests: kubesim clusters as processes and gateway nodes as
//! processes, configured for each other.

use std::path::PathBuf;

use rand::RngExt;

use crate::client::{Client, Credentials};
use crate::cluster::{ClusterOptions, TestCluster};
use crate::kubesim::{Kubesim, Users, gateway_yaml};

/// The programs under test (see the [`bins!`](crate::bins) macro).
#[derive(Clone, Debug)]
pub struct Bins {
    pub bpg: PathBuf,
    pub kubesim: PathBuf,
}

/// The binaries of this package, from an integration test.
#[macro_export]
macro_rules! bins {
    () => {
        $crate::gateway::Bins {
            bpg: env!("CARGO_BIN_EXE_e2e-bpg").into(),
            kubesim: env!("CARGO_BIN_EXE_e2e-kubesim").into(),
        }
    };
}

#[derive(Debug)]
pub struct GatewayCluster {
    pub nodes: TestCluster,
    pub sims: Vec<Kubesim>,
    _dir: tempfile::TempDir,
}

/// Cluster ids the harness uses, in order.
pub const CLUSTER_IDS: [&str; 3] = ["clustera", "clusterb", "clusterc"];

impl GatewayCluster {
    /// One kubesim per weight (`clustera`, `clusterb`, ...), then three gateway nodes.
    pub async fn start(
        bins: Bins,
        weights: &[u32],
        tls: bool,
        kubesim_args: &[&str],
    ) -> anyhow::Result<GatewayCluster> {
        Self::start_with(bins, weights, tls, kubesim_args, ClusterOptions::default()).await
    }

    pub async fn start_with(
        bins: Bins,
        weights: &[u32],
        tls: bool,
        kubesim_args: &[&str],
        mut opts: ClusterOptions,
    ) -> anyhow::Result<GatewayCluster> {
        let dir = tempfile::Builder::new().prefix("bpg-kubesim-").tempdir()?;
        let mut sims = Vec::new();
        let mut clusters = String::new();
        for (i, w) in weights.iter().enumerate() {
            let sim = Kubesim::start(&bins.kubesim, dir.path(), CLUSTER_IDS[i], tls, kubesim_args).await?;
            clusters.push_str(&sim.cluster_yaml(*w));
            if let Some(ttl) = opts.app_ttl_seconds {
                clusters.push_str(&format!("    ttlSeconds: {ttl}\n"));
            }
            sims.push(sim);
        }
        let gateway =
            opts.max_submissions_in_flight.map(|n| format!("maxSubmissionsInFlight: {n}")).unwrap_or_default();
        opts.extra_yaml = format!("{}{}", gateway_yaml(&clusters, &Users::hash(), &gateway), opts.extra_yaml);
        let nodes = TestCluster::start(&bins.bpg, opts).await?;
        Ok(GatewayCluster { nodes, sims, _dir: dir })
    }

    pub fn client(&self, node: u64, credentials: Credentials) -> Client {
        Client::new(&self.nodes.node(node).api, credentials)
    }

    pub fn user(&self, node: u64) -> Client {
        self.client(node, Credentials::basic("user", "pass"))
    }

    pub fn other(&self, node: u64) -> Client {
        self.client(node, Credentials::basic("other", "pass"))
    }

    pub fn admin(&self, node: u64) -> Client {
        self.client(node, Credentials::basic("admin", "admin"))
    }

    /// A running node, at random.
    pub fn random_node(&self) -> u64 {
        let running: Vec<u64> = self.nodes.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect();
        running[rand::rng().random_range(0..running.len())]
    }
}

/// Two-sided exact binomial test: the probability, under Bin(n, p), of a count at least as
/// far from the mean as `k` (doubling the smaller tail, capped at 1).
pub fn binomial_two_sided_p(k: u64, n: u64, p: f64) -> f64 {
    let ln_fact = |m: u64| (1..=m).map(|i| (i as f64).ln()).sum::<f64>();
    let pmf =
        |i: u64| (ln_fact(n) - ln_fact(i) - ln_fact(n - i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp();
    let lower: f64 = (0..=k).map(pmf).sum();
    let upper: f64 = (k..=n).map(pmf).sum();
    (2.0 * lower.min(upper)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_test_matches_known_values() {
        // Bin(200, 0.5): P(X <= 100) just over 0.5, so a perfect split has p = 1.
        assert!((binomial_two_sided_p(100, 200, 0.5) - 1.0).abs() < 1e-9);
        // Exact values from integer binomial coefficients (Python's math.comb).
        for (k, exact) in [(80, 0.005_685_155_996_750_305_5), (60, 1.507_061_557_352_612e-8)] {
            let p = binomial_two_sided_p(k, 200, 0.5);
            assert!((p - exact).abs() / exact < 1e-9, "k={k}: {p} vs {exact}");
        }
    }
}
