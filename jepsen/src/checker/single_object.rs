//! Never more than one SparkApplication per submission, across all clusters, and always on
//! the cluster its id names; an Idempotency-Key always answers the same id.

use std::collections::BTreeMap;

use super::{Final, Verdict};
use crate::history::{Call, Op, Outcome};

pub fn check(history: &[Op], fin: &Final) -> Verdict {
    let mut violations = Vec::new();
    for (name, clusters) in &fin.objects {
        if clusters.len() > 1 {
            violations.push(format!("{name}: {} SparkApplications ({clusters:?})", clusters.len()));
        }
        let prefix = name.split('-').next().unwrap_or("");
        if clusters.iter().any(|c| c != prefix) {
            violations.push(format!("{name}: on {clusters:?}, but its id names {prefix}"));
        }
    }
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for op in history {
        if let (Call::Submit { key: Some(k) }, Outcome::Ok, Some(id)) = (&op.call, op.outcome, &op.id) {
            by_key.entry(k).or_default().push(id);
        }
    }
    let mut replayed = 0;
    for (key, ids) in &by_key {
        if ids.iter().any(|id| *id != ids[0]) {
            violations.push(format!("Idempotency-Key {key} answered different ids: {ids:?}"));
        }
        replayed += ids.len().saturating_sub(1);
    }
    let notes = vec![format!(
        "{} objects; {} idempotency keys acknowledged, {replayed} replays",
        fin.objects.len(),
        by_key.len()
    )];
    Verdict::new(
        "single-object",
        "at most one SparkApplication per submission, on its own cluster; idempotency keys replay one id",
        violations,
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::submit;

    #[test]
    fn duplicates_misplaced_objects_and_diverging_keys_are_violations() {
        let mut fin = Final::default();
        fin.objects.insert("clustera-1".into(), vec!["clustera".into()]);
        assert!(check(&[submit("clustera-1", Some("k"))], &fin).valid);
        fin.objects.insert("clustera-2".into(), vec!["clustera".into(), "clusterb".into()]);
        fin.objects.insert("clustera-3".into(), vec!["clusterb".into()]);
        let history = [submit("clustera-1", Some("k")), submit("clustera-4", Some("k"))];
        let v = check(&history, &fin);
        // clustera-2 twice (and on the wrong cluster once), clustera-3 misplaced, key k split.
        assert_eq!(v.violations.len(), 4, "{:?}", v.violations);
    }
}
