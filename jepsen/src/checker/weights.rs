//! Weights changed through the admin API hold after the faults: each cluster's final weight is
//! the last acknowledged change or a change whose outcome was unknown (it may have landed
//! later), and every node reads the same value.

use std::collections::BTreeMap;

use super::{Final, Verdict};
use crate::history::{Call, Op, Outcome};

pub fn check(history: &[Op], fin: &Final) -> Verdict {
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    let mut per_cluster: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        if let Call::SetWeight { cluster, .. } = &op.call {
            per_cluster.entry(cluster).or_default().push(op);
        }
    }
    for (cluster, ops) in per_cluster {
        let weight = |o: &Op| match o.call {
            Call::SetWeight { weight, .. } => u64::from(weight),
            _ => 0,
        };
        let last_ok = ops.iter().filter(|o| o.outcome == Outcome::Ok).max_by_key(|o| o.invoke).map(|o| weight(o));
        let mut allowed: Vec<u64> = ops.iter().filter(|o| o.outcome == Outcome::Info).map(|o| weight(o)).collect();
        allowed.extend(last_ok);
        let Some((leader_read, node_reads)) = fin.weights.get(cluster) else {
            violations.push(format!("{cluster}: weight not read after the faults"));
            continue;
        };
        match leader_read {
            None => violations.push(format!("{cluster}: no linearizable read of the weight after the faults")),
            Some(w) if last_ok.is_some() && !allowed.contains(w) => violations.push(format!(
                "{cluster}: weight {w} after the faults; last acknowledged {last_ok:?}, unknown outcomes {:?}",
                &allowed[..allowed.len() - 1]
            )),
            Some(w) => {
                if node_reads.iter().any(|r| r != &Some(*w)) {
                    violations.push(format!("{cluster}: nodes read {node_reads:?}, the leader {w}"));
                }
            }
        }
        notes.push(format!("{cluster}: {} changes, last acknowledged {last_ok:?}, final {leader_read:?}", ops.len()));
    }
    Verdict::new(
        "weights",
        "after the faults, each weight is the last acknowledged change (or an unknown one) on every node",
        violations,
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::op;

    fn set(weight: u32, at: i64, outcome: Outcome) -> Op {
        op(Call::SetWeight { cluster: "clustera".into(), weight }, None, at, outcome)
    }

    fn fin(leader: Option<u64>, nodes: &[Option<u64>]) -> Final {
        let mut f = Final::default();
        f.weights.insert("clustera".into(), (leader, nodes.to_vec()));
        f
    }

    #[test]
    fn the_last_acknowledged_or_an_unknown_change_may_hold() {
        let history = [set(101, 0, Outcome::Ok), set(102, 10, Outcome::Info), set(103, 20, Outcome::Fail)];
        assert!(check(&history, &fin(Some(101), &[Some(101), Some(101)])).valid);
        assert!(check(&history, &fin(Some(102), &[Some(102), Some(102)])).valid);
        assert!(!check(&history, &fin(Some(103), &[Some(103), Some(103)])).valid, "a failed change took effect");
        assert!(!check(&history, &fin(Some(50), &[Some(50), Some(50)])).valid, "an acknowledged change was lost");
        assert!(!check(&history, &fin(Some(101), &[Some(101), Some(50)])).valid, "a node disagrees");
    }
}
