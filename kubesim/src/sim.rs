//! [`Sim`]: the shared state of one kubesim server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::OperatorConfig;
use crate::faults::Faults;
use crate::listing::Listings;
use crate::logs::LogHub;
use crate::store::{Key, Store};

/// Settings of a kubesim server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Bearer token every request must carry; `None` accepts anonymous requests.
    pub token: Option<String>,
    pub operator: OperatorConfig,
    /// Seed of the simulation's randomness (durations, failures, faults).
    pub seed: u64,
    /// Changes of each resource kept for resuming watches.
    pub watch_history: usize,
    /// How long the later pages of a paginated list can be fetched (continue tokens expire
    /// after it, as etcd's revisions are compacted).
    pub list_retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token: None,
            operator: OperatorConfig::default(),
            seed: 1,
            watch_history: 50_000,
            list_retention: crate::listing::RETENTION,
        }
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
    pub(crate) listings: Listings,
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
    /// Events with the time they expire, oldest first.
    pub(crate) event_expiry: Mutex<VecDeque<(Instant, Key)>>,
    /// The pods the operator made for each application, by (namespace, application): what
    /// garbage collection removes with it, found without scanning every pod.
    pub(crate) pods_of: Mutex<HashMap<(String, String), Vec<String>>>,
}

impl Sim {
    pub fn new(settings: Settings) -> Sim {
        Sim {
            inner: Arc::new(Inner {
                store: Store::new(settings.watch_history, 65_536),
                listings: Listings::new(settings.list_retention),
                logs: LogHub::default(),
                token: settings.token,
                faults: Mutex::new(Faults::default()),
                operator: Mutex::new(settings.operator),
                rng: Mutex::new(StdRng::seed_from_u64(settings.seed)),
                running: Mutex::new(0),
                capacity_freed: tokio::sync::Notify::new(),
                requests: Mutex::new(BTreeMap::new()),
                faults_injected: AtomicU64::new(0),
                event_expiry: Mutex::new(VecDeque::new()),
                pods_of: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The listings of paginated lists still being paged through.
    pub(crate) fn listings(&self) -> &Listings {
        &self.inner.listings
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

    /// Records that the event at `key`, just created, expires after the configured TTL, and
    /// deletes the events whose TTL has passed.
    pub(crate) fn event_recorded(&self, key: Key) {
        let config = self.operator_config();
        let expires = Instant::now() + config.real(config.event_ttl_ms);
        self.inner.event_expiry.lock().expect("event expiry lock").push_back((expires, key));
        self.expire_events();
    }

    /// Deletes the events whose TTL has passed (run when events are recorded or read).
    pub(crate) fn expire_events(&self) {
        let now = Instant::now();
        let mut expiry = self.inner.event_expiry.lock().expect("event expiry lock");
        while expiry.front().is_some_and(|(at, _)| *at <= now) {
            let (_, key) = expiry.pop_front().expect("checked front");
            self.store().delete(&key);
        }
    }

    /// Records that the operator made `pod` for application `app`.
    pub(crate) fn pod_made(&self, namespace: &str, app: &str, pod: &str) {
        let mut pods = self.inner.pods_of.lock().expect("pods lock");
        pods.entry((namespace.to_owned(), app.to_owned())).or_default().push(pod.to_owned());
    }

    /// The pods made for application `app`, forgotten here (its deletion takes them along,
    /// or orphans them).
    pub(crate) fn take_pods_of(&self, namespace: &str, app: &str) -> Vec<String> {
        let mut pods = self.inner.pods_of.lock().expect("pods lock");
        pods.remove(&(namespace.to_owned(), app.to_owned())).unwrap_or_default()
    }

    pub(crate) fn count_fault(&self) {
        self.inner.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
}
