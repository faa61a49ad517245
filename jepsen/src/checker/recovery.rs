//! The cluster serves again within a stated bound once the faults stop.

use super::{Final, Verdict};
use crate::history::Op;

/// The bound: a new election plus a few retries, with room for a loaded 2-core machine.
pub const BOUND_SECS: f64 = 30.0;

pub fn check(_history: &[Op], fin: &Final) -> Verdict {
    let (violations, notes) = match fin.recovery_secs {
        Some(s) if s <= BOUND_SECS => {
            (vec![], vec![format!("first acknowledged write {s:.2} s after the faults stopped")])
        }
        Some(s) => (
            vec![format!("first acknowledged write only {s:.2} s after the faults stopped (bound {BOUND_SECS} s)")],
            vec![],
        ),
        None => (vec![format!("no acknowledged write within {BOUND_SECS} s after the faults stopped")], vec![]),
    };
    Verdict::new("recovery", "after the faults stop, a write is acknowledged within 30 s", violations, notes)
}
