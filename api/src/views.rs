//! BPG's response shapes computed from a replicated job record (pure): the status of
//! `GET /spark/{id}/status` and the `SubmissionSummary` of the list endpoints.

use bpg_raft::model::Job;
use bpg_router::ClusterConfig;
use serde_json::{Map, Value, json};

/// 12 h: jobs allowed to run longer get a warning in their error message, as in BPG.
const DEFAULT_MAX_RUNNING_MS: u64 = 12 * 60 * 60 * 1000;
/// A FAILED job that ran this close to its limit was probably killed for running too long.
const KILL_MARGIN_MS: u64 = 2 * 60 * 1000;

/// What a view needs besides the job.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViewContext<'a> {
    pub(crate) cluster: Option<&'a ClusterConfig>,
    pub(crate) history_dns: Option<&'a str>,
    pub(crate) now_ms: u64,
}

fn creation_ms(job: &Job) -> u64 {
    job.observed.as_ref().and_then(|o| o.creation_ms).unwrap_or(job.submitted_at_ms)
}

fn live_ui(job: &Job, ctx: &ViewContext<'_>) -> Option<String> {
    let base = ctx.cluster.and_then(|c| c.spark_ui_url.as_deref())?;
    Some(format!("{}/{}/{}", base.trim_end_matches('/'), job.namespace, job.id))
}

/// The fields of BPG's `GetSubmissionStatusResponse` (absent ones omitted).
pub(crate) fn status(job: &Job, ctx: &ViewContext<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    let state = job.application_state().to_owned();
    let created = creation_ms(job);
    let observed = job.observed.as_ref();
    out.insert("creationTime".into(), json!(created));
    if let Some(app_id) = observed.and_then(|o| o.spark_application_id.as_ref()) {
        out.insert("sparkApplicationId".into(), json!(app_id));
    }
    if observed.is_some_and(|o| o.state.is_some()) {
        out.insert("executionAttempts".into(), json!(observed.and_then(|o| o.execution_attempts).unwrap_or(1)));
    }
    let terminated = observed.and_then(|o| o.termination_ms);
    if let Some(t) = terminated {
        out.insert("terminationTime".into(), json!(t));
    }
    let duration = match (terminated, state.as_str()) {
        (Some(t), _) => t.saturating_sub(created),
        (None, "RUNNING" | "SUBMITTED") => ctx.now_ms.saturating_sub(created),
        _ => 0,
    };
    out.insert("duration".into(), json!(duration));
    out.insert("applicationState".into(), json!(state));
    let mut message = job.error_message().map(str::to_owned);
    if job.max_running_millis > DEFAULT_MAX_RUNNING_MS {
        let warning = format!(
            "This application has a custom max running time of {} ms; it may still be killed (e.g. during maintenance).",
            job.max_running_millis
        );
        message = Some(match message {
            Some(m) => format!("{m} {warning}"),
            None => warning,
        });
    }
    if state == "FAILED"
        && let Some(t) = terminated
        && t.saturating_sub(created) + KILL_MARGIN_MS >= job.max_running_millis
    {
        let suffix = "(application might be killed because of running too long)";
        message = Some(match message {
            Some(m) => format!("{m} {suffix}"),
            None => suffix.to_owned(),
        });
    }
    if let Some(m) = message {
        out.insert("applicationErrorMessage".into(), json!(m));
    }
    if state == "RUNNING"
        && let Some(url) = live_ui(job, ctx)
    {
        out.insert("sparkUIUrl".into(), json!(url));
    }
    out
}

/// Spark's `byteStringAsGb`: whole GiB, rounded down (`512m` → 0).
pub(crate) fn gigabytes(memory: &str) -> u64 {
    let split = memory.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(memory.len());
    let n: f64 = memory[..split].parse().unwrap_or(0.0);
    let mib = match memory[split..].trim().to_ascii_lowercase().as_str() {
        "k" | "kb" => n / 1024.0,
        "m" | "mb" => n,
        "g" | "gb" => n * 1024.0,
        "t" | "tb" => n * 1024.0 * 1024.0,
        _ => n / (1024.0 * 1024.0),
    };
    (mib / 1024.0).floor() as u64
}

/// BPG's `SubmissionSummary`.
pub(crate) fn summary(job: &Job, ctx: &ViewContext<'_>) -> Value {
    let mut out = status(job, ctx);
    let r = &job.resources;
    let driver_gb = gigabytes(&r.driver_memory);
    let executor_gb = gigabytes(&r.executor_memory);
    out.insert("submissionId".into(), json!(job.id));
    out.insert("user".into(), json!(job.proxy_user));
    out.insert("queue".into(), json!(format!("root.{}", job.queue)));
    out.insert("dagName".into(), json!(r.dag_name.clone().unwrap_or_default()));
    out.insert("driverCores".into(), json!(r.driver_cores));
    out.insert("driverMemoryGB".into(), json!(driver_gb));
    out.insert("executorInstances".into(), json!(r.executor_instances));
    out.insert("executorCores".into(), json!(r.executor_cores));
    out.insert("executorMemoryGB".into(), json!(executor_gb));
    out.insert(
        "totalCores".into(),
        json!(u64::from(r.executor_instances) * u64::from(r.executor_cores) + u64::from(r.driver_cores)),
    );
    out.insert("totalMemoryGB".into(), json!(u64::from(r.executor_instances) * executor_gb + driver_gb));
    out.insert("sparkVersion".into(), json!(job.spark_version));
    out.insert("applicationName".into(), json!(job.application_name.clone().unwrap_or_default()));
    out.insert("applicationArguments".into(), json!(r.arguments));
    let state = job.application_state();
    let app_id = job.observed.as_ref().and_then(|o| o.spark_application_id.as_deref());
    if let ("COMPLETED" | "FAILED", Some(dns), Some(id)) = (state, ctx.history_dns, app_id) {
        out.insert("sparkUIUrl".into(), json!(format!("https://{dns}/history/{id}")));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use bpg_raft::model::{Dispatch, JobResources, Observed};

    use super::*;

    fn job(state: Option<&str>) -> Job {
        Job {
            id: "c1-abc".into(),
            cluster: "c1".into(),
            namespace: "spark".into(),
            owner: "alice".into(),
            proxy_user: "alice".into(),
            queue: "dev".into(),
            spark_version: "3.5".into(),
            application_name: Some("pi".into()),
            submitted_at_ms: 1_000,
            max_running_millis: DEFAULT_MAX_RUNNING_MS,
            resources: JobResources {
                driver_cores: 1,
                driver_memory: "2g".into(),
                executor_instances: 3,
                executor_cores: 2,
                executor_memory: "1536m".into(),
                arguments: vec!["10".into()],
                dag_name: None,
            },
            dispatch: Dispatch::Created,
            observed: state.map(|s| Observed {
                resource_version: 5,
                creation_ms: Some(2_000),
                state: Some(s.into()),
                spark_application_id: Some("spark-1".into()),
                ..Observed::default()
            }),
            deleted_at_ms: None,
        }
    }

    fn ctx(cluster: Option<&ClusterConfig>) -> ViewContext<'_> {
        ViewContext { cluster, history_dns: Some("history.example"), now_ms: 10_000 }
    }

    #[test]
    fn status_follows_bpg() {
        let none = status(&job(None), &ctx(None));
        assert_eq!(none["applicationState"], "UNKNOWN");
        assert_eq!(none["duration"], 0);
        assert!(none.get("executionAttempts").is_none(), "no status, no attempts");
        assert_eq!(none["creationTime"], 1_000);

        let cluster = ClusterConfig { spark_ui_url: Some("https://ui.example/".into()), ..ClusterConfig::default() };
        let running = status(&job(Some("RUNNING")), &ctx(Some(&cluster)));
        assert_eq!(running["duration"], 8_000);
        assert_eq!(running["executionAttempts"], 1);
        assert_eq!(running["sparkUIUrl"], "https://ui.example/spark/c1-abc");

        let mut failed = job(Some("FAILED"));
        failed.max_running_millis = 100_000;
        failed.observed.as_mut().unwrap().termination_ms = Some(2_000 + 99_000);
        let s = status(&failed, &ctx(None));
        assert_eq!(s["duration"], 99_000);
        assert!(s["applicationErrorMessage"].as_str().unwrap().contains("running too long"));
        assert!(s.get("sparkUIUrl").is_none());

        let mut rejected = job(None);
        rejected.dispatch = Dispatch::Rejected { reason: "spec.type: Unsupported".into() };
        let s = status(&rejected, &ctx(None));
        assert_eq!(
            (s["applicationState"].as_str(), s["applicationErrorMessage"].as_str()),
            (Some("SUBMISSION_FAILED"), Some("spec.type: Unsupported"))
        );
    }

    #[test]
    fn summaries_compute_totals_and_history_links() {
        let s = summary(&job(Some("COMPLETED")), &ctx(None));
        assert_eq!(s["driverMemoryGB"], 2);
        assert_eq!(s["executorMemoryGB"], 1);
        assert_eq!(s["totalCores"], 3 * 2 + 1);
        assert_eq!(s["totalMemoryGB"], 3 + 2);
        assert_eq!(s["queue"], "root.dev");
        assert_eq!(s["sparkUIUrl"], "https://history.example/history/spark-1");
        assert_eq!(gigabytes("512m"), 0);
    }
}
