//! Faults injected into API requests, settable at run time (`PUT /kubesim/faults`).

use serde::{Deserialize, Serialize};

/// What goes wrong, applied to every Kubernetes API request (never to `/kubesim/*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Faults {
    /// Every request is answered 503.
    pub unavailable: bool,
    /// Share of requests (0–1) answered with one of `error_codes` instead of being served.
    pub error_rate: f64,
    /// Codes drawn for `error_rate`; default 429, 500, 503, 504.
    pub error_codes: Vec<u16>,
    /// Share of writes (0–1) that are applied and then answered 503.
    pub apply_then_503_rate: f64,
    /// Latency added to every request, in ms.
    pub latency_ms: u64,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [("errorRate", self.error_rate), ("applyThen503Rate", self.apply_then_503_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(c) = self.error_codes.iter().find(|c| !(400..=599).contains(*c)) {
            return Err(format!("errorCodes must be HTTP error codes, got {c}"));
        }
        Ok(())
    }

    pub fn codes(&self) -> &[u16] {
        if self.error_codes.is_empty() { &[429, 500, 503, 504] } else { &self.error_codes }
    }
}
