use std::collections::BTreeMap;
use std::convert::Infallible;

use super::apply::StateAccess;
use super::command::{ClusterState, IdempotencyEntry};
use super::job::Job;

/// The replicated state held in memory: the reference implementation of [`StateAccess`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemState {
    pub jobs: BTreeMap<String, Job>,
    pub clusters: BTreeMap<String, ClusterState>,
    pub idempotency: BTreeMap<(String, String), IdempotencyEntry>,
}

impl StateAccess for MemState {
    type Error = Infallible;

    fn job(&self, id: &str) -> Result<Option<Job>, Infallible> {
        Ok(self.jobs.get(id).cloned())
    }
    fn put_job(&mut self, job: &Job) -> Result<(), Infallible> {
        self.jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }
    fn remove_job(&mut self, job: &Job) -> Result<(), Infallible> {
        self.jobs.remove(&job.id);
        Ok(())
    }
    fn cluster(&self, id: &str) -> Result<Option<ClusterState>, Infallible> {
        Ok(self.clusters.get(id).cloned())
    }
    fn put_cluster(&mut self, id: &str, state: &ClusterState) -> Result<(), Infallible> {
        self.clusters.insert(id.to_owned(), state.clone());
        Ok(())
    }
    fn idempotency(&self, owner: &str, key: &str) -> Result<Option<IdempotencyEntry>, Infallible> {
        Ok(self.idempotency.get(&(owner.to_owned(), key.to_owned())).cloned())
    }
    fn put_idempotency(&mut self, owner: &str, key: &str, entry: &IdempotencyEntry) -> Result<(), Infallible> {
        self.idempotency.insert((owner.to_owned(), key.to_owned()), entry.clone());
        Ok(())
    }
    fn remove_idempotency(&mut self, owner: &str, key: &str) -> Result<(), Infallible> {
        self.idempotency.remove(&(owner.to_owned(), key.to_owned()));
        Ok(())
    }
}
