//! No acknowledged submission is lost: after the faults, every acknowledged submission is in
//! the gateway's state (unless a delete of it was attempted), exists on its cluster (unless
//! deleted or refused by the cluster), and has finished.

use super::{Final, TERMINAL, Verdict, acknowledged, maybe_deleted};
use crate::history::Op;

pub fn check(history: &[Op], fin: &Final) -> Verdict {
    let acked = acknowledged(history);
    let deleted = maybe_deleted(history);
    let mut violations = Vec::new();
    let mut unfinished = 0;
    for id in &acked {
        if deleted.contains(id) {
            continue;
        }
        match fin.gateway.get(id) {
            None => violations.push(format!("{id}: acknowledged, but never read back after the faults")),
            Some(None) => violations.push(format!("{id}: acknowledged, but the gateway no longer knows it")),
            Some(Some(state)) => {
                if state != "SUBMISSION_FAILED" && !fin.objects.contains_key(id) {
                    violations
                        .push(format!("{id}: acknowledged ({state}), but no SparkApplication exists on any cluster"));
                }
                if !TERMINAL.contains(&state.as_str()) {
                    unfinished += 1;
                    violations.push(format!("{id}: still {state:?} long after the faults stopped"));
                }
            }
        }
    }
    let notes = vec![format!(
        "{} acknowledged submissions, {} of them possibly deleted, {unfinished} unfinished",
        acked.len(),
        deleted.len()
    )];
    Verdict::new(
        "lost",
        "every acknowledged submission exists after the faults, on the gateway and on its cluster, and finishes",
        violations,
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{op, submit};
    use crate::history::{Call, Outcome};

    fn fin(gateway: &[(&str, Option<&str>)], objects: &[&str]) -> Final {
        Final {
            gateway: gateway.iter().map(|(id, s)| (id.to_string(), s.map(str::to_owned))).collect(),
            objects: objects.iter().map(|id| (id.to_string(), vec!["clustera".to_owned()])).collect(),
            ..Final::default()
        }
    }

    #[test]
    fn a_completed_submission_with_its_object_is_fine() {
        assert!(check(&[submit("a", None)], &fin(&[("a", Some("COMPLETED"))], &["a"])).valid);
    }

    #[test]
    fn forgotten_missing_or_stuck_submissions_are_violations() {
        let history = [submit("a", None), submit("b", None), submit("c", None), submit("d", None)];
        let v = check(&history, &fin(&[("a", None), ("b", Some("COMPLETED")), ("c", Some("RUNNING"))], &["c"]));
        assert_eq!(v.violations.len(), 4, "{:?}", v.violations);
    }

    #[test]
    fn a_submission_that_may_have_been_deleted_is_not_counted() {
        let history = [submit("a", None), op(Call::Delete, Some("a"), 5, Outcome::Info)];
        assert!(check(&history, &fin(&[], &[])).valid);
    }
}
