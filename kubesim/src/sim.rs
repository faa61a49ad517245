//! [`Sim`]: the shared state of one kubesim server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::OperatorConfig;
use crate::faults::Faults;
use crate::logs::LogHub;
use crate::store::Store;

/// Settings of a kubesim server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Bearer token every request must carry; `None` accepts anonymous requests.
    pub token: Option<String>,
    pub operator: OperatorConfig,
    /// Seed of the simulation's randomness (durations, failures, faults).
    pub seed: u64,
    /// Changes kept for resuming watches.
    pub watch_history: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { token: None, operator: OperatorConfig::default(), seed: 1, watch_history: 50_000 }
    }
}

/// Cheap to clone; everything is shared.
#[derive(Clone, Debug)]
pub struct Sim {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) logs: LogHub,
    pub(crate) token: Option<String>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) operator: Mutex<OperatorConfig>,
    pub(crate) rng: Mutex<StdRng>,
    /// Applications currently counted against `capacity`.
    pub(crate) running: Mutex<usize>,
    pub(crate) capacity_freed: tokio::sync::Notify,
    /// Requests served, by "METHOD resource".
    pub(crate) requests: Mutex<BTreeMap<String, u64>>,
    pub(crate) faults_injected: AtomicU64,
}

impl Sim {
    pub fn new(settings: Settings) -> Sim {
        Sim {
            inner: Arc::new(Inner {
                store: Store::new(settings.watch_history, 65_536),
                logs: LogHub::default(),
                token: settings.token,
                faults: Mutex::new(Faults::default()),
                operator: Mutex::new(settings.operator),
                rng: Mutex::new(StdRng::seed_from_u64(settings.seed)),
                running: Mutex::new(0),
                capacity_freed: tokio::sync::Notify::new(),
                requests: Mutex::new(BTreeMap::new()),
                faults_injected: AtomicU64::new(0),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        *self.inner.faults.lock().expect("faults lock") = faults;
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.inner.faults.lock().expect("faults lock").clone()
    }

    pub fn set_operator_config(&self, config: OperatorConfig) -> Result<(), String> {
        config.validate()?;
        *self.inner.operator.lock().expect("operator lock") = config;
        // A larger capacity may free waiting applications.
        self.inner.capacity_freed.notify_waiters();
        Ok(())
    }

    pub fn operator_config(&self) -> OperatorConfig {
        self.inner.operator.lock().expect("operator lock").clone()
    }

    /// Runs `f` with the simulation's random generator.
    pub(crate) fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.inner.rng.lock().expect("rng lock"))
    }

    pub(crate) fn count_request(&self, what: String) {
        *self.inner.requests.lock().expect("stats lock").entry(what).or_default() += 1;
    }

    pub(crate) fn count_fault(&self) {
        self.inner.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
}
