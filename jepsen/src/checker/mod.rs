//! Checkers over the recorded history and the final state, one file per invariant. Each gives
//! a [`Verdict`]; any violation makes the run fail.

pub mod linearizable;
pub mod lost;
pub mod recovery;
pub mod single_object;
pub mod weights;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{Call, Op, Outcome};

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub checker: &'static str,
    /// The property, in one sentence.
    pub property: &'static str,
    pub valid: bool,
    pub violations: Vec<String>,
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn new(checker: &'static str, property: &'static str, violations: Vec<String>, notes: Vec<String>) -> Verdict {
        Verdict { checker, property, valid: violations.is_empty(), violations, notes }
    }
}

/// What was observed after the faults stopped.
#[derive(Debug, Default)]
pub struct Final {
    /// Linearizable status of each acknowledged id: the application state, or `None` (404).
    pub gateway: BTreeMap<String, Option<String>>,
    /// SparkApplications in the clusters: name → the clusters holding one.
    pub objects: BTreeMap<String, Vec<String>>,
    /// Each cluster's weight read through the leader, and as each node reads it locally.
    pub weights: BTreeMap<String, (Option<u64>, Vec<Option<u64>>)>,
    /// Seconds from the end of the faults to the first acknowledged write, if any.
    pub recovery_secs: Option<f64>,
}

/// Ids of acknowledged submissions, in acknowledgement order, without repeats.
pub fn acknowledged(history: &[Op]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    history
        .iter()
        .filter(|o| matches!(o.call, Call::Submit { .. }) && o.outcome == Outcome::Ok)
        .filter_map(|o| o.id.clone())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Ids some delete may have removed (acknowledged or unknown deletes).
pub fn maybe_deleted(history: &[Op]) -> std::collections::BTreeSet<String> {
    history
        .iter()
        .filter(|o| o.call == Call::Delete && o.outcome != Outcome::Fail)
        .filter_map(|o| o.id.clone())
        .collect()
}

pub const TERMINAL: [&str; 3] = ["COMPLETED", "FAILED", "SUBMISSION_FAILED"];

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::history::{Call, Op, Outcome};

    pub(crate) fn op(call: Call, id: Option<&str>, invoke: i64, outcome: Outcome) -> Op {
        Op {
            process: 0,
            call,
            id: id.map(str::to_owned),
            node: 0,
            invoke,
            complete: invoke + 1,
            outcome,
            value: None,
            error: None,
        }
    }

    pub(crate) fn submit(id: &str, key: Option<&str>) -> Op {
        op(Call::Submit { key: key.map(str::to_owned) }, Some(id), 0, Outcome::Ok)
    }
}
