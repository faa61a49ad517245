//! Load generators: a closed loop (a fixed number of clients, each sending its next request when
//! the last one is answered) to find the saturation rate, and an open loop (requests sent on a
//! fixed schedule whatever the answers) to measure latency at a given rate. Open-loop latency
//! is measured from the time a request was *scheduled*, so a stalled server is charged for the
//! requests it kept waiting (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bpg_tests::client::Client;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// One kind of request, against a set of servers taken round-robin.
#[derive(Clone, Debug)]
pub enum Load {
    /// `POST /spark` through every gateway node (followers forward to the leader).
    Submit { clients: Arc<Vec<Client>>, body: Arc<Value> },
    /// Default-consistency `GET /spark/{id}/status`, served by the node asked.
    Status { clients: Arc<Vec<Client>>, ids: Arc<Vec<String>> },
    /// An etcd `Put` through its JSON gateway: one durable Raft commit.
    EtcdPut { http: reqwest::Client, urls: Arc<Vec<String>>, value: Arc<String> },
}

impl Load {
    /// Sends request number `n`: `Ok(id)` when acknowledged (the submission id, or empty),
    /// else why not, in a few words ("HTTP 503", "timeout", "connection").
    pub async fn send(&self, n: u64) -> Result<String, String> {
        match self {
            Load::Submit { clients, body } => {
                let answer = clients[n as usize % clients.len()].submit(body, None).await.map_err(transport)?;
                refused(answer.status, answer.body["message"].as_str())?;
                Ok(answer.body["submissionId"].as_str().unwrap_or_default().to_owned())
            }
            Load::Status { clients, ids } => {
                let id = &ids[(n as usize).wrapping_mul(7919) % ids.len()];
                let answer = clients[n as usize % clients.len()].status(id, false).await.map_err(transport)?;
                refused(answer.status, answer.body["message"].as_str())?;
                Ok(String::new())
            }
            Load::EtcdPut { http, urls, value } => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let body = json!({"key": b64.encode(format!("bench/{n:012}")), "value": value.as_str()});
                let resp = http.post(&urls[n as usize % urls.len()]).json(&body).send().await.map_err(transport)?;
                refused(resp.status(), None)?;
                // The gateway answers 200 with an error body when the put failed.
                let answer: Value = resp.json().await.map_err(transport)?;
                match answer.get("error") {
                    None => Ok(String::new()),
                    Some(_) => Err("etcd error".to_owned()),
                }
            }
        }
    }
}

/// An answer that is not a success, as its cause: the status and the gateway's message with
/// its numbers as `N`, so that answers refused for one reason count together ("HTTP 503: no
/// quorum: this leader (node N) has not heard from a quorum for N ms").
fn refused(status: reqwest::StatusCode, message: Option<&str>) -> Result<(), String> {
    if status.is_success() {
        return Ok(());
    }
    let mut cause = format!("HTTP {}", status.as_u16());
    if let Some(message) = message.filter(|m| !m.is_empty()) {
        cause.push_str(": ");
        let mut in_number = false;
        for c in message.chars().take(120) {
            if c.is_ascii_digit() {
                if !in_number {
                    cause.push('N');
                }
                in_number = true;
            } else {
                cause.push(c);
                in_number = false;
            }
        }
    }
    Err(cause)
}

/// A request that got no HTTP answer, by cause.
fn transport(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect failed"
    } else if e.is_decode() {
        "undecodable answer"
    } else {
        "connection"
    }
    .to_owned()
}

/// What a load step measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Step {
    /// Clients (closed loop) or offered rate per second (open loop).
    pub concurrency: Option<usize>,
    pub offered_per_s: Option<f64>,
    pub ok: u64,
    pub failed: u64,
    /// The failed requests by cause: the status and the gateway's message, or what went wrong
    /// without an answer ("HTTP 503: leadership keeps moving; try again": 12, "timeout": 3).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, u64>,
    pub seconds: f64,
    pub ok_per_s: f64,
    pub latency_ms: Percentiles,
    /// What each acknowledged request cost (measured for the submission steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_ok: Option<super::cpu::PerOk>,
    /// Ids of acknowledged submissions (not serialized).
    #[serde(skip)]
    pub ids: Vec<String>,
    /// Open loop: latency of the requests scheduled in each [`WINDOW`] of the measured time,
    /// in order, to tell a steady tail from stalls that hit every request in flight at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Window>,
    /// Open loop: the wall-clock time (UTC) the measured part began, from which the timeline's
    /// `at_s` counts, to line windows up with the nodes' logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_from_utc: Option<String>,
}

impl Step {
    /// The failed count with its causes: "0", or "1117 (HTTP 503: 1100, timeout: 17)".
    pub fn failed_summary(&self) -> String {
        if self.failures.is_empty() {
            return self.failed.to_string();
        }
        let causes: Vec<String> = self.failures.iter().map(|(cause, n)| format!("{cause}: {n}")).collect();
        format!("{} ({})", self.failed, causes.join(", "))
    }

    /// The windows whose p99 is over `ms`, and the share of the measured requests they hold.
    pub fn stalls(&self, ms: f64) -> (usize, f64) {
        let (slow, held) = self.timeline.iter().filter(|w| w.p99_ms > ms).fold((0, 0), |(n, ok), w| (n + 1, ok + w.ok));
        (slow, held as f64 / self.ok.max(1) as f64)
    }
}

/// The span of scheduled time a [`Window`] covers.
pub const WINDOW: Duration = Duration::from_millis(250);

/// The acknowledged requests scheduled in one window of an open-loop step.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    /// Seconds from the end of the warm-up to the window's start.
    pub at_s: f64,
    pub ok: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Groups `(scheduled, micros)` samples (scheduled in microseconds from the end of the warm-up)
/// into windows of [`WINDOW`], empty windows included.
fn timeline(samples: &[(u64, u64)]) -> Vec<Window> {
    let width = WINDOW.as_micros() as u64;
    let Some(last) = samples.iter().map(|(at, _)| *at).max() else { return Vec::new() };
    let mut by_window: Vec<Vec<u64>> = vec![Vec::new(); (last / width + 1) as usize];
    for (at, micros) in samples {
        by_window[(at / width) as usize].push(*micros);
    }
    by_window
        .into_iter()
        .enumerate()
        .map(|(i, micros)| {
            let ok = micros.len() as u64;
            let p = Percentiles::of(micros);
            Window { at_s: (i as u64 * width) as f64 / 1e6, ok, p50_ms: p.p50, p99_ms: p.p99, max_ms: p.max }
        })
        .collect()
}

/// Latency percentiles of the acknowledged requests, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut micros: Vec<u64>) -> Percentiles {
        if micros.is_empty() {
            return Percentiles::default();
        }
        micros.sort_unstable();
        let at = |q: f64| micros[((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1] as f64 / 1e3;
        Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: at(1.0) }
    }
}

struct Tally {
    ok: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    micros: Vec<u64>,
    ids: Vec<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally { ok: 0, failed: 0, failures: BTreeMap::new(), micros: Vec::new(), ids: Vec::new() }
    }

    /// One measured request, answered `micros` after it was sent (or scheduled).
    fn record(&mut self, outcome: Result<String, String>, micros: u64, keep_ids: bool) {
        match outcome {
            Ok(id) => {
                self.ok += 1;
                self.micros.push(micros);
                if keep_ids && !id.is_empty() {
                    self.ids.push(id);
                }
            }
            Err(cause) => {
                self.failed += 1;
                *self.failures.entry(cause).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        for (cause, n) in other.failures {
            *self.failures.entry(cause).or_default() += n;
        }
        self.micros.extend(other.micros);
        self.ids.extend(other.ids);
    }

    fn into_step(self, seconds: f64, concurrency: Option<usize>, offered: Option<f64>) -> Step {
        Step {
            concurrency,
            offered_per_s: offered,
            ok: self.ok,
            failed: self.failed,
            failures: self.failures,
            seconds,
            ok_per_s: self.ok as f64 / seconds,
            latency_ms: Percentiles::of(self.micros),
            per_ok: None,
            ids: self.ids,
            timeline: Vec::new(),
            measured_from_utc: None,
        }
    }
}

/// `concurrency` clients, each sending its next request as soon as the last is answered, for
/// `warmup` and then `duration`; only requests sent after the warm-up are counted, so that a
/// step measures the steady state of its own load (the status updates and deletions that
/// submissions cause follow them by seconds). Requests still running at the deadline are
/// waited for and counted.
pub async fn closed(load: &Load, concurrency: usize, warmup: Duration, duration: Duration, keep_ids: bool) -> Step {
    let measured_from = Instant::now() + warmup;
    let deadline = measured_from + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let load = load.clone();
            tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut n = w as u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = load.send(n).await;
                    if sent >= measured_from {
                        tally.record(outcome, sent.elapsed().as_micros() as u64, keep_ids);
                    }
                    n += concurrency as u64;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::new();
    for w in workers {
        total.merge(w.await.expect("a load worker panicked"));
    }
    total.into_step(measured_from.elapsed().as_secs_f64(), Some(concurrency), None)
}

/// Requests at `rate` per second on a fixed schedule for `warmup` and then `duration`, at most
/// `max_in_flight` at once (beyond that, a request waits and its wait counts in its latency).
/// Only requests scheduled after the warm-up are counted.
pub async fn open(load: &Load, rate: f64, warmup: Duration, duration: Duration, max_in_flight: usize) -> Step {
    let start = Instant::now();
    let measured_from = start + warmup;
    let measured_from_utc = chrono::Utc::now() + warmup;
    let total = (rate * (warmup + duration).as_secs_f64()) as u64;
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (load, slots) = (load.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore open");
            let outcome = load.send(n).await;
            (scheduled, outcome, scheduled.elapsed().as_micros() as u64)
        }));
    }
    let mut tally = Tally::new();
    let mut samples = Vec::new();
    for t in tasks {
        let (scheduled, outcome, micros) = t.await.expect("a load task panicked");
        let Some(since_warmup) = scheduled.checked_duration_since(measured_from) else { continue };
        if outcome.is_ok() {
            samples.push((since_warmup.as_micros() as u64, micros));
        }
        tally.record(outcome, micros, false);
    }
    // The rate is over the time from the warm-up's end to the last answer, so that a backlog
    // answered late lowers it.
    let mut step = tally.into_step(measured_from.elapsed().as_secs_f64(), None, Some(rate));
    step.timeline = timeline(&samples);
    step.measured_from_utc = Some(measured_from_utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_cause_across_workers() {
        let mut one = Tally::new();
        one.record(Ok("a".into()), 1000, true);
        one.record(Err("HTTP 503".into()), 1000, true);
        let mut other = Tally::new();
        other.record(Err("HTTP 503".into()), 1000, true);
        other.record(Err("timeout".into()), 1000, true);
        other.record(Ok(String::new()), 1000, true);
        one.merge(other);
        let step = one.into_step(1.0, Some(2), None);
        assert_eq!((step.ok, step.failed), (2, 3));
        assert_eq!(step.ids, ["a"]);
        assert_eq!(step.failed_summary(), "3 (HTTP 503: 2, timeout: 1)");
        assert_eq!(Tally::new().into_step(1.0, None, None).failed_summary(), "0");
    }

    #[test]
    fn refusals_for_one_reason_count_as_one_cause() {
        let unavailable = reqwest::StatusCode::SERVICE_UNAVAILABLE;
        let a = refused(unavailable, Some("no quorum: this leader (node 0) has not heard from a quorum for 6012 ms"));
        let b = refused(unavailable, Some("no quorum: this leader (node 2) has not heard from a quorum for 7 ms"));
        assert_eq!(a, b);
        assert_eq!(a.unwrap_err(), "HTTP 503: no quorum: this leader (node N) has not heard from a quorum for N ms");
        assert_eq!(refused(reqwest::StatusCode::GATEWAY_TIMEOUT, None).unwrap_err(), "HTTP 504");
        assert_eq!(refused(reqwest::StatusCode::CREATED, Some("ignored")), Ok(()));
    }

    #[test]
    fn the_timeline_puts_each_request_in_the_window_it_was_scheduled_in() {
        let ms = |n: u64| n * 1000;
        // Window 0: three quick answers; window 1: none; window 2: one stalled request.
        let samples = [(ms(10), ms(2)), (ms(100), ms(4)), (ms(249), ms(3)), (ms(600), ms(120))];
        let t = timeline(&samples);
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].ok, t[0].p50_ms, t[0].max_ms), (3, 3.0, 4.0));
        assert_eq!(t[1].ok, 0, "an empty window is kept, so gaps show");
        assert_eq!((t[2].at_s, t[2].p99_ms), (0.5, 120.0));
        let step = Step { ok: 4, timeline: t, ..Step::default() };
        assert_eq!(step.stalls(50.0), (1, 0.25), "one window over 50 ms, holding one request of four");
        assert!(timeline(&[]).is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=1000).map(|ms| ms * 1000).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.p999, p.max), (500.0, 900.0, 990.0, 999.0, 1000.0));
        let one = Percentiles::of(vec![2500]);
        assert_eq!((one.p50, one.p999), (2.5, 2.5));
    }
}
