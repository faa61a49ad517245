//! The history: every operation with its invocation and completion times and outcome, and
//! every fault with its window. Written to `history.jsonl` as it happens.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// How an operation ended (Jepsen's ok / fail / info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened, with this result.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may or may not have happened (timeouts, 504s, cut connections).
    Info,
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Call {
    /// `POST /spark`; `key` is the Idempotency-Key.
    Submit { key: Option<String> },
    /// `GET /spark/{id}/status`.
    Read { linearizable: bool },
    /// `DELETE /spark/{id}`.
    Delete,
    /// `PUT /admin/clusters/{cluster}` with a weight.
    SetWeight { cluster: String, weight: u32 },
}

impl Call {
    pub fn is_write(&self) -> bool {
        !matches!(self, Call::Read { .. })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    pub process: u32,
    #[serde(flatten)]
    pub call: Call,
    /// The job: a submission's returned id, or the target of a read or delete.
    pub id: Option<String>,
    pub node: u64,
    /// Nanoseconds since the run started.
    pub invoke: i64,
    pub complete: i64,
    pub outcome: Outcome,
    /// A read's result: the application state, or `absent` (404).
    pub value: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub name: String,
    pub detail: String,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug)]
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    faults: Mutex<Vec<Fault>>,
    out: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl History {
    pub fn create(path: &std::path::Path) -> anyhow::Result<History> {
        Ok(History {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            out: Mutex::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        })
    }

    pub fn now(&self) -> i64 {
        self.start.elapsed().as_nanos() as i64
    }

    pub fn record(&self, op: Op) {
        if let Ok(line) = serde_json::to_string(&op) {
            let _ = writeln!(self.out.lock().expect("history file"), "{line}");
        }
        self.ops.lock().expect("history").push(op);
    }

    pub fn fault(&self, fault: Fault) {
        if let Ok(line) = serde_json::to_string(&serde_json::json!({"fault": fault})) {
            let _ = writeln!(self.out.lock().expect("history file"), "{line}");
        }
        self.faults.lock().expect("faults").push(fault);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().expect("history").clone()
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.faults.lock().expect("faults").clone()
    }

    pub fn flush(&self) {
        let _ = self.out.lock().expect("history file").flush();
    }
}
