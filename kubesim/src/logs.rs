//! Container logs of the simulated pods, appended while they run and streamed to followers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// One container's log.
#[derive(Debug)]
pub(crate) struct ContainerLog {
    lines: Mutex<Vec<String>>,
    /// (lines so far, finished)
    progress: watch::Sender<(usize, bool)>,
}

impl ContainerLog {
    fn new() -> Self {
        ContainerLog { lines: Mutex::new(Vec::new()), progress: watch::channel((0, false)).0 }
    }

    pub(crate) fn push(&self, line: impl Into<String>) {
        let mut lines = self.lines.lock().expect("log lock");
        lines.push(line.into());
        let n = lines.len();
        self.progress.send_modify(|p| p.0 = n);
    }

    pub(crate) fn finish(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    /// Lines from `from` on.
    pub(crate) fn lines_from(&self, from: usize) -> Vec<String> {
        let lines = self.lines.lock().expect("log lock");
        lines.get(from..).map(<[String]>::to_vec).unwrap_or_default()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<(usize, bool)> {
        self.progress.subscribe()
    }
}

/// Logs by (namespace, pod).
#[derive(Debug, Default)]
pub(crate) struct LogHub {
    logs: Mutex<HashMap<(String, String), Arc<ContainerLog>>>,
}

impl LogHub {
    pub(crate) fn open(&self, namespace: &str, pod: &str) -> Arc<ContainerLog> {
        let mut logs = self.logs.lock().expect("log hub lock");
        logs.entry((namespace.to_owned(), pod.to_owned())).or_insert_with(|| Arc::new(ContainerLog::new())).clone()
    }

    pub(crate) fn get(&self, namespace: &str, pod: &str) -> Option<Arc<ContainerLog>> {
        self.logs.lock().expect("log hub lock").get(&(namespace.to_owned(), pod.to_owned())).cloned()
    }

    pub(crate) fn remove(&self, namespace: &str, pod: &str) {
        if let Some(log) = self.logs.lock().expect("log hub lock").remove(&(namespace.to_owned(), pod.to_owned())) {
            log.finish();
        }
    }
}
