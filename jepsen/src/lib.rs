//! Chaos testing of bpg in the spirit of Jepsen: the gateway is a black box over HTTP, run as
//! separate processes in their own network namespaces; a workload records every operation
//! with its outcome (ok / fail / info), a nemesis injects faults on a schedule, and checkers
//! decide over the recorded history and the final state whether the invariants held.

pub mod bench;
pub mod checker;
pub mod client;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod report;
pub mod run;
pub mod workload;
