//! Cluster selection (BPG §4.2), as pure functions.
//!
//! Pinned by `clusterId` (with a Spark version match), else the clusters with weight > 0 that
//! accept the Spark version and the parent queue; among those, clusters that are reachable and
//! not cordoned are preferred while any exists; then a weighted random choice.

use rand::RngExt;

use crate::config::{ClusterConfig, EffectiveCluster};

/// A cluster as selection sees it.
#[derive(Clone, Debug)]
pub struct ClusterView<'a> {
    pub config: &'a ClusterConfig,
    pub effective: EffectiveCluster,
    pub healthy: bool,
}

/// What a submission asks of its cluster.
#[derive(Clone, Debug)]
pub struct Route<'a> {
    pub pinned: Option<&'a str>,
    pub spark_version: &'a str,
    pub parent_queue: &'a str,
}

/// Index of the weight that `draw` (uniform in `0..sum`) falls into. `None` when all are 0.
pub fn weighted_pick(weights: &[u32], draw: u64) -> Option<usize> {
    let mut acc = 0u64;
    for (i, w) in weights.iter().enumerate() {
        acc += u64::from(*w);
        if draw < acc {
            return Some(i);
        }
    }
    None
}

fn has_ci(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v.eq_ignore_ascii_case(value))
}

/// Picks the cluster for a submission; the error is the 400 message BPG gives.
pub fn select_cluster<'a>(
    clusters: &[ClusterView<'a>],
    route: &Route<'_>,
    rng: &mut impl rand::Rng,
) -> Result<&'a ClusterConfig, String> {
    let version = route.spark_version;
    if let Some(pin) = route.pinned {
        let found = clusters.iter().find(|c| c.config.id == pin && has_ci(&c.config.spark_versions, version));
        return match found {
            Some(c) if c.effective.cordoned => Err(format!("Cluster {pin} is cordoned")),
            Some(c) => Ok(c.config),
            None => Err(format!("Cluster with id {pin} having Spark version {version} not found")),
        };
    }
    let candidates: Vec<&ClusterView> =
        clusters.iter().filter(|c| c.effective.weight > 0 && has_ci(&c.config.spark_versions, version)).collect();
    if candidates.is_empty() {
        return Err(format!("Spark version not supported: {version}"));
    }
    let candidates: Vec<&ClusterView> =
        candidates.into_iter().filter(|c| has_ci(&c.config.queues, route.parent_queue)).collect();
    if candidates.is_empty() {
        return Err(format!("Cluster with queue {} having Spark version {version} not found", route.parent_queue));
    }
    let tiers: [&dyn Fn(&ClusterView) -> bool; 2] =
        [&|c| c.healthy && !c.effective.cordoned, &|c| !c.effective.cordoned];
    let tier: Vec<&ClusterView> = tiers
        .iter()
        .map(|keep| candidates.iter().copied().filter(|c| keep(c)).collect::<Vec<_>>())
        .find(|t| !t.is_empty())
        .unwrap_or(candidates);
    let weights: Vec<u32> = tier.iter().map(|c| c.effective.weight).collect();
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let draw = rng.random_range(0..total);
    Ok(tier[weighted_pick(&weights, draw).expect("draw below the total")].config)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn cluster(id: &str, weight: u32, versions: &[&str], queues: &[&str]) -> ClusterConfig {
        ClusterConfig {
            id: id.into(),
            weight,
            spark_versions: versions.iter().map(|s| s.to_string()).collect(),
            queues: queues.iter().map(|s| s.to_string()).collect(),
            ..ClusterConfig::default()
        }
    }

    fn views(cs: &[ClusterConfig]) -> Vec<ClusterView<'_>> {
        cs.iter().map(|c| ClusterView { config: c, effective: EffectiveCluster::new(c, None), healthy: true }).collect()
    }

    /// The naive reference: expand each cluster into `weight` slots and index them.
    fn naive(weights: &[u32], draw: u64) -> Option<usize> {
        let slots: Vec<usize> =
            weights.iter().enumerate().flat_map(|(i, w)| std::iter::repeat_n(i, *w as usize)).collect();
        slots.get(draw as usize).copied()
    }

    #[test]
    fn weighted_pick_agrees_with_the_naive_expansion_for_every_draw() {
        for weights in [vec![10, 10, 80, 0], vec![0, 5], vec![1], vec![3, 0, 0, 7, 2], vec![0, 0]] {
            let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
            for draw in 0..total + 2 {
                assert_eq!(weighted_pick(&weights, draw), naive(&weights, draw), "{weights:?} {draw}");
            }
        }
    }

    #[test]
    fn filters_by_version_and_queue_with_bpg_messages() {
        let cs = [
            cluster("a", 10, &["3.5"], &["poc"]),
            cluster("b", 0, &["3.4"], &["poc"]),
            cluster("c", 5, &["3.5"], &["etl"]),
        ];
        let v = views(&cs);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let route = |version, queue| Route { pinned: None, spark_version: version, parent_queue: queue };
        assert_eq!(select_cluster(&v, &route("3.5", "ETL"), &mut rng).unwrap().id, "c");
        assert_eq!(select_cluster(&v, &route("3.4", "poc"), &mut rng).unwrap_err(), "Spark version not supported: 3.4");
        assert_eq!(
            select_cluster(&v, &route("3.5", "vip"), &mut rng).unwrap_err(),
            "Cluster with queue vip having Spark version 3.5 not found"
        );
        let pinned = Route { pinned: Some("b"), spark_version: "3.4", parent_queue: "x" };
        assert_eq!(select_cluster(&v, &pinned, &mut rng).unwrap().id, "b", "a pin ignores weight and queue");
        let wrong = Route { pinned: Some("b"), spark_version: "3.5", parent_queue: "x" };
        assert_eq!(
            select_cluster(&v, &wrong, &mut rng).unwrap_err(),
            "Cluster with id b having Spark version 3.5 not found"
        );
    }

    #[test]
    fn unhealthy_and_cordoned_clusters_are_skipped_while_another_exists() {
        let cs = [cluster("a", 50, &["3.5"], &["dev"]), cluster("b", 50, &["3.5"], &["dev"])];
        let mut v = views(&cs);
        let route = Route { pinned: None, spark_version: "3.5", parent_queue: "dev" };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        v[0].healthy = false;
        assert!((0..200).all(|_| select_cluster(&v, &route, &mut rng).unwrap().id == "b"));
        v[0].healthy = true;
        v[1].effective.cordoned = true;
        assert!((0..200).all(|_| select_cluster(&v, &route, &mut rng).unwrap().id == "a"));
        v[0].healthy = false;
        assert!(
            (0..200).all(|_| select_cluster(&v, &route, &mut rng).unwrap().id == "a"),
            "uncordoned before cordoned"
        );
    }
}
