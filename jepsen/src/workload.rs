//! Concurrent clients on all nodes: submissions (with and without Idempotency-Key, retried
//! with the same key like a careful client), status reads (local and linearizable), deletes,
//! and weight changes through the admin API (one sequential writer per cluster, with
//! increasing values, so the final weight can be checked).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngExt;
use serde_json::{Value, json};

use crate::client::{Client, Reply};
use crate::history::{Call, History, Op, Outcome};

/// The request every submission sends (a short SparkPi in the `dev` queue).
pub fn spark_pi() -> Value {
    json!({
        "applicationName": "jepsen-pi", "queue": "dev", "sparkVersion": "3.5.0",
        "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
        "mainClass": "org.apache.spark.examples.SparkPi",
        "driver": {"cores": 1, "memory": "1g"}, "executor": {"instances": 1, "cores": 1, "memory": "1g"}
    })
}

#[derive(Debug)]
pub struct Workload {
    pub history: Arc<History>,
    pub client: Client,
    /// API addresses of every node the clients may talk to (running or not).
    pub endpoints: Vec<String>,
    /// Ids acknowledged so far, for reads and deletes to pick from.
    known: std::sync::Mutex<Vec<String>>,
    pub stop: AtomicBool,
}

impl Workload {
    pub fn new(history: Arc<History>, client: Client, endpoints: Vec<String>) -> Arc<Workload> {
        Arc::new(Workload {
            history,
            client,
            endpoints,
            known: std::sync::Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    fn random_endpoint(&self) -> (u64, String) {
        let i = rand::rng().random_range(0..self.endpoints.len());
        (i as u64, self.endpoints[i].clone())
    }

    fn known_id(&self) -> Option<String> {
        let known = self.known.lock().expect("known ids");
        (!known.is_empty()).then(|| known[rand::rng().random_range(0..known.len())].clone())
    }

    fn record(&self, process: u32, call: Call, id: Option<String>, node: u64, invoke: i64, reply: &Reply) {
        let value = match (&call, reply.status) {
            (Call::Read { .. }, Some(404)) => Some("absent".to_owned()),
            (Call::Read { .. }, Some(200)) => reply.body["applicationState"].as_str().map(str::to_owned),
            _ => None,
        };
        let op = Op {
            process,
            call,
            id,
            node,
            invoke,
            complete: self.history.now(),
            outcome: reply.outcome,
            value,
            error: reply.error.clone(),
        };
        self.history.record(op);
    }

    /// One client process, until stopped.
    pub async fn client_loop(self: Arc<Self>, process: u32) {
        let mut seq = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let roll = rand::rng().random_range(0..100);
            let (node, addr) = self.random_endpoint();
            let started = self.history.now();
            let failed = match roll {
                0..35 => {
                    let reply = self.client.submit(&addr, &spark_pi(), None).await;
                    let id = reply.body["submissionId"].as_str().map(str::to_owned);
                    self.record(process, Call::Submit { key: None }, id.clone(), node, started, &reply);
                    if let (Outcome::Ok, Some(id)) = (reply.outcome, id) {
                        self.known.lock().expect("known ids").push(id);
                    }
                    reply.outcome != Outcome::Ok
                }
                35..50 => {
                    seq += 1;
                    let key = format!("p{process}-k{seq}");
                    let mut failed = true;
                    // A careful client retries with the same key until it gets an answer.
                    for _ in 0..3 {
                        let (node, addr) = self.random_endpoint();
                        let started = self.history.now();
                        let reply = self.client.submit(&addr, &spark_pi(), Some(&key)).await;
                        let id = reply.body["submissionId"].as_str().map(str::to_owned);
                        self.record(
                            process,
                            Call::Submit { key: Some(key.clone()) },
                            id.clone(),
                            node,
                            started,
                            &reply,
                        );
                        if let (Outcome::Ok, Some(id)) = (reply.outcome, id) {
                            let mut known = self.known.lock().expect("known ids");
                            if !known.contains(&id) {
                                known.push(id);
                            }
                            failed = false;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    failed
                }
                50..95 => match self.known_id() {
                    None => false,
                    Some(id) => {
                        let linearizable = roll < 75;
                        let reply = self.client.status(&addr, &id, linearizable).await;
                        self.record(process, Call::Read { linearizable }, Some(id), node, started, &reply);
                        reply.outcome != Outcome::Ok
                    }
                },
                _ => match self.known_id() {
                    None => false,
                    Some(id) => {
                        let reply = self.client.delete(&addr, &id).await;
                        self.record(process, Call::Delete, Some(id), node, started, &reply);
                        reply.outcome != Outcome::Ok
                    }
                },
            };
            // Back off a little after a failure, as a client would.
            let pause = if failed { 100 } else { 10 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// The weight writer of one cluster: sequential, strictly increasing values.
    pub async fn weight_loop(self: Arc<Self>, process: u32, cluster: String) {
        let mut weight = 100u32;
        while !self.stop.load(Ordering::SeqCst) {
            weight += 1;
            let (node, addr) = self.random_endpoint();
            let started = self.history.now();
            let reply = self.client.set_weight(&addr, &cluster, weight).await;
            self.record(process, Call::SetWeight { cluster: cluster.clone(), weight }, None, node, started, &reply);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
