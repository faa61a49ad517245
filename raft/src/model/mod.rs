//! The replicated domain, with no openraft or database in sight.
//!
//! Everything the gateway replicates is here: [`Job`]s, each Kubernetes cluster's dynamic
//! [`ClusterState`] and the idempotency index. A [`Command`] goes in, [`apply`] decides, a
//! [`Response`] comes out. `apply` is deterministic: it reads only the command and the state it
//! is given (time comes inside commands, stamped by the leader), so every replica that applies
//! the same log reaches the same state.
//!
//! Storage is abstracted by [`StateAccess`]; [`MemState`] is the in-memory implementation used by
//! unit tests and as the reference the stored implementation is checked against.

mod apply;
mod command;
mod job;
mod memory;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::sample_job;

pub use apply::{IDEMPOTENCY_TTL_MS, StateAccess, apply};
pub use command::{ClusterState, Command, DispatchOutcome, IdempotencyEntry, IdempotencyKey, Response, StatusUpdate};
pub use job::{Dispatch, Job, JobResources, Observed, Phase, TERMINAL_STATES};
pub use memory::MemState;
