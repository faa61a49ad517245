//! Per-job linearizability of submissions, deletes and linearizable status reads (porcupine,
//! partitioned by job). The model: a job is absent until submitted, deleted after a delete,
//! and in between its state only moves forward (UNKNOWN/"" < SUBMITTED < RUNNING < terminal);
//! the operator's transitions are not client operations, so a read may see any state at or
//! beyond the last one seen. Unknown deletes stay open until the end of time.

use std::collections::BTreeMap;
use std::time::Duration;

use porcupine_rs::{CheckResult, Model, Operation};

use super::{Final, Verdict};
use crate::history::{Call, Op, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Absent,
    Exists(u8),
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOp {
    Submit,
    Delete,
    /// A linearizable read: `None` is a 404.
    Read(Option<u8>),
}

fn rank(state: &str) -> Option<u8> {
    Some(match state {
        "" | "UNKNOWN" => 0,
        "SUBMITTED" => 1,
        "RUNNING" => 2,
        "COMPLETED" | "FAILED" | "SUBMISSION_FAILED" => 3,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub struct JobModel;

impl Model for JobModel {
    type State = JobState;
    type Op = (String, JobOp);
    type Metadata = ();

    fn partition_operations(history: &[Operation<Self>]) -> Vec<Vec<Operation<Self>>> {
        let mut by_job: BTreeMap<String, Vec<Operation<Self>>> = BTreeMap::new();
        for op in history {
            by_job.entry(op.op.0.clone()).or_default().push(op.clone());
        }
        by_job.into_values().collect()
    }

    fn init() -> JobState {
        JobState::Absent
    }

    fn step(state: &JobState, op: &(String, JobOp)) -> (bool, JobState) {
        match (&op.1, *state) {
            (JobOp::Submit, JobState::Absent) => (true, JobState::Exists(0)),
            // A replay of the same submission.
            (JobOp::Submit, s @ JobState::Exists(_)) => (true, s),
            (JobOp::Submit, JobState::Deleted) => (true, JobState::Deleted),
            (JobOp::Delete, _) => (true, JobState::Deleted),
            (JobOp::Read(None), s @ (JobState::Absent | JobState::Deleted)) => (true, s),
            (JobOp::Read(Some(r)), JobState::Exists(cur)) if *r >= cur => (true, JobState::Exists(*r)),
            _ => (false, *state),
        }
    }
}

fn to_operation(op: &Op) -> Option<Operation<JobModel>> {
    let id = op.id.clone()?;
    let (job_op, open) = match (&op.call, op.outcome) {
        (Call::Submit { .. }, Outcome::Ok) => (JobOp::Submit, false),
        (Call::Delete, Outcome::Ok) => (JobOp::Delete, false),
        (Call::Delete, Outcome::Info) => (JobOp::Delete, true),
        (Call::Read { linearizable: true }, Outcome::Ok) => match op.value.as_deref() {
            Some("absent") => (JobOp::Read(None), false),
            Some(s) => (JobOp::Read(Some(rank(s)?)), false),
            None => return None,
        },
        _ => return None,
    };
    Some(Operation {
        client_id: Some(op.process),
        call_time: op.invoke,
        return_time: if open { i64::MAX } else { op.complete },
        op: (id, job_op),
        metadata: None,
    })
}

pub fn check(history: &[Op], _fin: &Final) -> Verdict {
    let ops: Vec<Operation<JobModel>> = history.iter().filter_map(to_operation).collect();
    let jobs = JobModel::partition_operations(&ops);
    let mut violations = Vec::new();
    let mut unknown = 0;
    for job in &jobs {
        match porcupine_rs::check_operations_timeout::<JobModel>(job, Duration::from_secs(10)) {
            CheckResult::Ok => {}
            CheckResult::Unknown => unknown += 1,
            CheckResult::Illegal => {
                let id = &job[0].op.0;
                let mut trace: Vec<String> =
                    job.iter().map(|o| format!("{:?} [{}..{}]", o.op.1, o.call_time, o.return_time)).collect();
                trace.truncate(20);
                violations.push(format!("{id}: not linearizable: {}", trace.join(", ")));
            }
        }
    }
    let notes = vec![format!(
        "{} operations on {} jobs checked; {unknown} jobs undecided within the time limit",
        ops.len(),
        jobs.len()
    )];
    Verdict::new(
        "linearizable",
        "per job, submissions, deletes and linearizable reads are linearizable, and a job's state never goes back",
        violations,
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str, o: JobOp, call: i64, ret: i64) -> Operation<JobModel> {
        Operation { client_id: None, call_time: call, return_time: ret, op: (id.into(), o), metadata: None }
    }

    fn verdict(ops: &[Operation<JobModel>]) -> CheckResult {
        porcupine_rs::check_operations_timeout::<JobModel>(ops, Duration::from_secs(5))
    }

    #[test]
    fn forward_progress_is_linearizable() {
        let h = [
            op("a", JobOp::Submit, 0, 10),
            op("a", JobOp::Read(Some(1)), 11, 12),
            op("a", JobOp::Read(Some(3)), 13, 14),
        ];
        assert_eq!(verdict(&h), CheckResult::Ok);
    }

    #[test]
    fn a_state_going_back_is_caught() {
        let h = [
            op("a", JobOp::Submit, 0, 10),
            op("a", JobOp::Read(Some(3)), 11, 12),
            op("a", JobOp::Read(Some(2)), 13, 14),
        ];
        assert_eq!(verdict(&h), CheckResult::Illegal);
    }

    #[test]
    fn a_lost_job_is_caught() {
        let h = [op("a", JobOp::Submit, 0, 10), op("a", JobOp::Read(None), 11, 12)];
        assert_eq!(verdict(&h), CheckResult::Illegal);
    }

    #[test]
    fn an_unknown_delete_may_or_may_not_have_happened() {
        let before = [
            op("a", JobOp::Submit, 0, 10),
            op("a", JobOp::Delete, 11, i64::MAX),
            op("a", JobOp::Read(Some(2)), 20, 21),
        ];
        assert_eq!(verdict(&before), CheckResult::Ok);
        let after =
            [op("a", JobOp::Submit, 0, 10), op("a", JobOp::Delete, 11, i64::MAX), op("a", JobOp::Read(None), 20, 21)];
        assert_eq!(verdict(&after), CheckResult::Ok);
        let resurrected =
            [op("a", JobOp::Submit, 0, 10), op("a", JobOp::Delete, 11, 12), op("a", JobOp::Read(Some(2)), 20, 21)];
        assert_eq!(verdict(&resurrected), CheckResult::Illegal);
    }
}
