//! How the simulated Spark Operator behaves. Settable at start and at run time
//! (`PUT /kubesim/config`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Durations are in simulated milliseconds; `timeScale` turns them into real time (0.01 runs a
/// 30 s job in 300 ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct OperatorConfig {
    /// Real time per simulated time. Default 1.
    pub time_scale: f64,
    /// From creation to `SUBMITTED`. Default 1000.
    pub submit_ms: u64,
    /// From `SUBMITTED` (with a free slot) to `RUNNING`. Default 2000.
    pub start_ms: u64,
    /// Running time, drawn uniformly from this range. Default 10000–20000.
    pub run_ms_min: u64,
    pub run_ms_max: u64,
    /// Probability that a running application ends `FAILED`. Default 0.
    pub failure_probability: f64,
    /// Probability that spark-submit fails (`SUBMISSION_FAILED`). Default 0.
    pub submission_failure_probability: f64,
    /// Applications running at once; beyond it they wait in `SUBMITTED`. Default unlimited.
    pub capacity: Option<usize>,
    /// Most executor pods made for one application. Default 20.
    pub max_executors: u32,
    /// Events are deleted this long after they are recorded, as kube-apiserver's
    /// `--event-ttl` does. Default 3600000 (one hour, the API server's default).
    pub event_ttl_ms: u64,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            time_scale: 1.0,
            submit_ms: 1000,
            start_ms: 2000,
            run_ms_min: 10_000,
            run_ms_max: 20_000,
            failure_probability: 0.0,
            submission_failure_probability: 0.0,
            capacity: None,
            max_executors: 20,
            event_ttl_ms: 3_600_000,
        }
    }
}

impl OperatorConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.time_scale > 0.0 && self.time_scale <= 100.0) {
            return Err(format!("timeScale must be above 0 and at most 100, got {}", self.time_scale));
        }
        if self.run_ms_min > self.run_ms_max {
            return Err("runMsMin must not exceed runMsMax".into());
        }
        for (name, p) in [
            ("failureProbability", self.failure_probability),
            ("submissionFailureProbability", self.submission_failure_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be between 0 and 1, got {p}"));
            }
        }
        Ok(())
    }

    /// Real duration of `ms` simulated milliseconds.
    pub fn real(&self, ms: u64) -> Duration {
        Duration::from_secs_f64(ms as f64 * self.time_scale / 1000.0)
    }
}
