use super::*;

pub(crate) fn sample_job(id: &str, owner: &str, at_ms: u64) -> Job {
    Job {
        id: id.to_owned(),
        cluster: id.split('-').next().unwrap_or("c1").to_owned(),
        namespace: "spark".into(),
        owner: owner.to_owned(),
        proxy_user: owner.to_owned(),
        queue: "dev".into(),
        spark_version: "3.5".into(),
        application_name: Some("app".into()),
        submitted_at_ms: at_ms,
        max_running_millis: 43_200_000,
        resources: JobResources::default(),
        dispatch: Dispatch::Pending { manifest: format!("{{\"name\":\"{id}\"}}") },
        observed: None,
        deleted_at_ms: None,
    }
}

fn run(state: &mut MemState, cmd: Command) -> Response {
    match apply(state, cmd) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

fn submit(state: &mut MemState, id: &str, owner: &str, key: Option<&str>, at_ms: u64) -> Response {
    let job = Box::new(sample_job(id, owner, at_ms));
    run(state, Command::Submit { job, idempotency_key: key.map(str::to_owned) })
}

fn observed(rv: u64, state: &str) -> Observed {
    Observed { resource_version: rv, state: Some(state.to_owned()), ..Observed::default() }
}

#[test]
fn submit_records_a_pending_job() {
    let mut s = MemState::default();
    assert_eq!(submit(&mut s, "c1-a", "alice", None, 1), Response::Submitted { id: "c1-a".into() });
    let job = &s.jobs["c1-a"];
    assert_eq!(job.phase(), Phase::Accepted);
    assert_eq!(job.application_state(), "UNKNOWN");
}

#[test]
fn an_existing_id_is_never_overwritten() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    assert_eq!(submit(&mut s, "c1-a", "bob", None, 2), Response::IdTaken { id: "c1-a".into() });
    assert_eq!(s.jobs["c1-a"].owner, "alice");
}

#[test]
fn idempotency_key_replays_the_first_submission_per_owner() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", Some("k"), 1_000);
    assert_eq!(submit(&mut s, "c1-b", "alice", Some("k"), 2_000), Response::Replayed { id: "c1-a".into() });
    assert!(!s.jobs.contains_key("c1-b"));
    // The same key from another user is another key.
    assert_eq!(submit(&mut s, "c1-c", "bob", Some("k"), 2_000), Response::Submitted { id: "c1-c".into() });
}

#[test]
fn idempotency_key_expires_after_its_ttl() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", Some("k"), 1_000);
    let later = 1_000 + IDEMPOTENCY_TTL_MS;
    assert_eq!(submit(&mut s, "c1-b", "alice", Some("k"), later), Response::Submitted { id: "c1-b".into() });
    assert_eq!(s.idempotency[&("alice".to_owned(), "k".to_owned())].id, "c1-b");
}

#[test]
fn expiring_an_idempotency_entry_spares_a_newer_reuse() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", Some("k"), 1_000);
    let later = 1_000 + IDEMPOTENCY_TTL_MS;
    submit(&mut s, "c1-b", "alice", Some("k"), later);
    // The leader saw the old entry and asks to expire it; the reuse must survive.
    let stale = IdempotencyKey { owner: "alice".into(), key: "k".into(), at_ms: 1_000 };
    run(&mut s, Command::ExpireIdempotency { keys: vec![stale] });
    assert!(s.idempotency.contains_key(&("alice".to_owned(), "k".to_owned())));
    let current = IdempotencyKey { owner: "alice".into(), key: "k".into(), at_ms: later };
    run(&mut s, Command::ExpireIdempotency { keys: vec![current] });
    assert!(s.idempotency.is_empty());
}

#[test]
fn dispatch_outcome_is_recorded_once() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    let rejected = DispatchOutcome::Rejected { reason: "spec.type: Unsupported value".into() };
    assert_eq!(
        run(&mut s, Command::RecordDispatch { id: "c1-a".into(), outcome: rejected }),
        Response::DispatchRecorded { deleted: false }
    );
    assert_eq!(s.jobs["c1-a"].application_state(), "SUBMISSION_FAILED");
    assert!(s.jobs["c1-a"].is_terminal());
    // A second leader's late record does not change the outcome.
    run(&mut s, Command::RecordDispatch { id: "c1-a".into(), outcome: DispatchOutcome::Created });
    assert_eq!(s.jobs["c1-a"].phase(), Phase::SubmissionFailed);
}

#[test]
fn dispatch_after_delete_tells_the_dispatcher_to_remove_the_object() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    run(&mut s, Command::Delete { id: "c1-a".into(), at_ms: 5 });
    assert_eq!(
        run(&mut s, Command::RecordDispatch { id: "c1-a".into(), outcome: DispatchOutcome::Created }),
        Response::DispatchRecorded { deleted: true }
    );
    assert_eq!(s.jobs["c1-a"].phase(), Phase::Deleted);
}

#[test]
fn status_updates_never_go_back_to_an_older_resource_version() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    let update = |rv, st| StatusUpdate { id: "c1-a".into(), observed: observed(rv, st) };
    let r = run(&mut s, Command::RecordStatus { updates: vec![update(5, "RUNNING"), update(3, "SUBMITTED")] });
    assert_eq!(r, Response::StatusRecorded { changed: 1, finished: vec![], deleted: vec![] });
    assert_eq!(s.jobs["c1-a"].application_state(), "RUNNING");
    run(&mut s, Command::RecordStatus { updates: vec![update(9, "COMPLETED")] });
    assert_eq!(s.jobs["c1-a"].application_state(), "COMPLETED");
    assert!(s.jobs["c1-a"].is_terminal());
}

#[test]
fn recording_statuses_reports_the_jobs_made_terminal_and_the_deleted_ones_still_seen() {
    let mut s = MemState::default();
    for id in ["c1-a", "c1-b", "c1-c"] {
        submit(&mut s, id, "alice", None, 1);
    }
    run(&mut s, Command::Delete { id: "c1-c".into(), at_ms: 2 });
    let update = |id: &str, rv, st| StatusUpdate { id: id.into(), observed: observed(rv, st) };
    let updates = vec![
        update("c1-a", 5, "RUNNING"),
        update("c1-b", 5, "FAILED"),
        update("c1-b", 6, "FAILED"),
        update("c1-c", 5, "RUNNING"),
        update("c1-c", 6, "RUNNING"),
    ];
    assert_eq!(
        run(&mut s, Command::RecordStatus { updates }),
        Response::StatusRecorded {
            changed: 3,
            finished: vec![("c1-b".into(), "FAILED".into())],
            deleted: vec!["c1-c".into()],
        },
        "c1-b is reported once, c1-c (deleted) is left as it was and reported once"
    );
    assert_eq!(s.jobs["c1-c"].observed, None);
    let updates = vec![
        update("c1-a", 9, "COMPLETED"),
        update("c1-b", 9, "FAILED"),
        StatusUpdate { id: "c1-c".into(), observed: Observed { vanished: true, ..observed(6, "RUNNING") } },
    ];
    assert_eq!(
        run(&mut s, Command::RecordStatus { updates }),
        Response::StatusRecorded { changed: 2, finished: vec![("c1-a".into(), "COMPLETED".into())], deleted: vec![] },
        "a job already terminal is not reported again, and a deleted job's object gone is not"
    );
}

#[test]
fn a_vanished_mark_keeps_the_last_state_and_a_later_sighting_supersedes_it() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    let update = |observed| Command::RecordStatus { updates: vec![StatusUpdate { id: "c1-a".into(), observed }] };
    run(&mut s, update(observed(5, "RUNNING")));
    // Missing from a listing: marked with the last revision seen, keeping the last state.
    run(&mut s, update(Observed { vanished: true, ..observed(5, "RUNNING") }));
    assert!(s.jobs["c1-a"].observed.as_ref().unwrap().vanished);
    assert_eq!(s.jobs["c1-a"].application_state(), "RUNNING");
    // Nothing is left on the cluster to police or to expect.
    assert!(!s.jobs["c1-a"].is_running() && !s.jobs["c1-a"].expects_object());
    // The object shows up again (the listing had missed it): its real state wins.
    run(&mut s, update(observed(7, "COMPLETED")));
    let seen = s.jobs["c1-a"].observed.clone().unwrap();
    assert_eq!((seen.vanished, seen.state.as_deref()), (false, Some("COMPLETED")));
    // An ordinary update at the same revision changes nothing.
    assert_eq!(
        run(&mut s, update(observed(7, "FAILED"))),
        Response::StatusRecorded { changed: 0, finished: vec![], deleted: vec![] }
    );
}

#[test]
fn seeing_the_object_marks_a_pending_job_created() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    let updates = vec![StatusUpdate { id: "c1-a".into(), observed: observed(2, "SUBMITTED") }];
    run(&mut s, Command::RecordStatus { updates });
    assert_eq!(s.jobs["c1-a"].phase(), Phase::Dispatched);
}

#[test]
fn status_of_unknown_jobs_is_ignored() {
    let mut s = MemState::default();
    let updates = vec![StatusUpdate { id: "c9-x".into(), observed: observed(2, "RUNNING") }];
    assert_eq!(
        run(&mut s, Command::RecordStatus { updates }),
        Response::StatusRecorded { changed: 0, finished: vec![], deleted: vec![] }
    );
    assert!(s.jobs.is_empty());
}

#[test]
fn delete_is_idempotent_and_keeps_a_tombstone() {
    let mut s = MemState::default();
    submit(&mut s, "c1-a", "alice", None, 1);
    let first = run(&mut s, Command::Delete { id: "c1-a".into(), at_ms: 7 });
    let second = run(&mut s, Command::Delete { id: "c1-a".into(), at_ms: 9 });
    assert_eq!(first, second);
    assert_eq!(s.jobs["c1-a"].deleted_at_ms, Some(7));
    assert_eq!(run(&mut s, Command::Delete { id: "nope".into(), at_ms: 9 }), Response::NotFound { id: "nope".into() });
    run(&mut s, Command::Forget { ids: vec!["c1-a".into()] });
    assert!(s.jobs.is_empty());
}

#[test]
fn cluster_changes_keep_fields_not_mentioned() {
    let mut s = MemState::default();
    run(&mut s, Command::SetCluster { id: "a".into(), weight: Some(30), cordoned: None });
    let r = run(&mut s, Command::SetCluster { id: "a".into(), weight: None, cordoned: Some(true) });
    assert_eq!(r, Response::Cluster(ClusterState { weight: Some(30), cordoned: true }));
}

#[test]
fn a_batch_answers_each_command_in_order() {
    let mut s = MemState::default();
    let r = run(
        &mut s,
        Command::Batch(vec![
            Command::Submit { job: Box::new(sample_job("c1-a", "alice", 1)), idempotency_key: None },
            Command::Submit { job: Box::new(sample_job("c1-a", "alice", 1)), idempotency_key: None },
        ]),
    );
    assert_eq!(
        r,
        Response::Batch(vec![Response::Submitted { id: "c1-a".into() }, Response::IdTaken { id: "c1-a".into() }])
    );
}

/// Counts the job writes a [`MemState`] receives.
#[derive(Default)]
struct CountingState {
    inner: MemState,
    job_writes: usize,
}

impl StateAccess for CountingState {
    type Error = std::convert::Infallible;
    fn job(&self, id: &str) -> Result<Option<Job>, Self::Error> {
        self.inner.job(id)
    }
    fn put_job(&mut self, job: &Job) -> Result<(), Self::Error> {
        self.job_writes += 1;
        self.inner.put_job(job)
    }
    fn remove_job(&mut self, job: &Job) -> Result<(), Self::Error> {
        self.inner.remove_job(job)
    }
    fn cluster(&self, id: &str) -> Result<Option<ClusterState>, Self::Error> {
        self.inner.cluster(id)
    }
    fn put_cluster(&mut self, id: &str, state: &ClusterState) -> Result<(), Self::Error> {
        self.inner.put_cluster(id, state)
    }
    fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, Self::Error> {
        self.inner.idempotency(owner, key)
    }
    fn put_idempotency(&mut self, owner: &str, key: &str, entry: &IdempotencyEntry) -> Result<(), Self::Error> {
        self.inner.put_idempotency(owner, key, entry)
    }
    fn remove_idempotency(&mut self, owner: &str, key: &str) -> Result<(), Self::Error> {
        self.inner.remove_idempotency(owner, key)
    }
}

#[test]
fn a_batch_of_statuses_ends_where_the_same_updates_one_by_one_end_writing_each_job_once() {
    let update = |id: &str, observed| StatusUpdate { id: id.into(), observed };
    // Interleaved revisions of three jobs, one of them stale, one job made terminal and then
    // marked vanished, one job pending until its object is seen.
    let updates = vec![
        update("c1-a", Observed { state: None, ..observed(2, "") }),
        update("c1-b", observed(3, "SUBMITTED")),
        update("c1-a", observed(4, "")),
        update("c1-b", observed(2, "")),
        update("c1-a", observed(6, "SUBMITTED")),
        update("c1-c", observed(7, "RUNNING")),
        update("c1-b", observed(8, "COMPLETED")),
        update("c1-b", Observed { vanished: true, ..observed(8, "COMPLETED") }),
        update("c1-x", observed(9, "RUNNING")),
    ];
    let fresh = || {
        let mut s = CountingState::default();
        for id in ["c1-a", "c1-b", "c1-c"] {
            let job = Box::new(sample_job(id, "alice", 1));
            apply(&mut s, Command::Submit { job, idempotency_key: None }).unwrap();
        }
        s.job_writes = 0;
        s
    };

    let mut one_by_one = fresh();
    let mut changed = 0;
    let mut finished = Vec::new();
    for u in updates.clone() {
        match apply(&mut one_by_one, Command::RecordStatus { updates: vec![u] }).unwrap() {
            Response::StatusRecorded { changed: c, finished: f, .. } => {
                changed += c;
                finished.extend(f);
            }
            other => panic!("{other:?}"),
        }
    }
    let mut batched = fresh();
    let response = apply(&mut batched, Command::RecordStatus { updates }).unwrap();

    assert_eq!(batched.inner, one_by_one.inner, "the same state either way");
    assert_eq!(response, Response::StatusRecorded { changed, finished, deleted: vec![] });
    assert_eq!(changed, 7, "every update but the stale one and the unknown job's");
    assert_eq!(one_by_one.job_writes, 7);
    assert_eq!(batched.job_writes, 3, "one write per job in the batch");
    assert_eq!(batched.inner.jobs["c1-a"].phase(), Phase::Dispatched);
    assert!(batched.inner.jobs["c1-b"].observed.as_ref().unwrap().vanished);
}
