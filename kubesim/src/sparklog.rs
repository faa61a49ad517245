//! Driver and executor logs that read like Spark's: log4j lines, tasks finishing, and for
//! SparkPi the line users look for, `Pi is roughly 3.14…`.

use rand::RngExt;
use rand::rngs::StdRng;

const SPARK_PI: &str = "org.apache.spark.examples.SparkPi";

fn line(level: &str, class: &str, msg: &str) -> String {
    format!("{} {level} {class}: {msg}", crate::clock::log4j_now())
}

/// What the logs need to know about the application.
#[derive(Clone, Debug)]
pub(crate) struct AppInfo {
    pub name: String,
    pub spark_version: String,
    pub app_id: String,
    pub main_class: Option<String>,
    pub main_file: String,
    pub arguments: Vec<String>,
    pub executors: u32,
}

impl AppInfo {
    fn is_spark_pi(&self) -> bool {
        self.main_class.as_deref() == Some(SPARK_PI)
    }

    /// Partitions of the one job (SparkPi's first argument, default 2).
    pub(crate) fn tasks(&self) -> u32 {
        self.arguments.first().and_then(|a| a.parse().ok()).filter(|n| *n > 0).unwrap_or(2).min(1000)
    }
}

pub(crate) fn driver_start(app: &AppInfo) -> Vec<String> {
    let mut out = vec![
        format!(
            "++ id -u\n+ exec /usr/bin/tini -s -- /opt/spark/bin/spark-submit --deploy-mode client {}",
            app.main_file
        ),
        line("INFO", "SparkContext", &format!("Running Spark version {}", app.spark_version)),
        line("INFO", "ResourceUtils", "=============================================================="),
        line("INFO", "ResourceUtils", "No custom resources configured for spark.driver."),
        line("INFO", "SparkContext", &format!("Submitted application: {}", app.name)),
        line("INFO", "Utils", "Successfully started service 'sparkDriver' on port 7078."),
        line("INFO", "SparkUI", "Bound SparkUI to 0.0.0.0, and started at http://spark-ui:4040"),
        line("INFO", "SparkContext", &format!("Added JAR {} at spark://driver:7078/jars", app.main_file)),
        line("INFO", "Utils", &format!("Using initial executors = {}", app.executors)),
        line(
            "INFO",
            "KubernetesClusterSchedulerBackend",
            &format!(
                "SchedulerBackend is ready for scheduling beginning after reached minRegisteredResourcesRatio: 0.8 (app id {})",
                app.app_id
            ),
        ),
    ];
    if app.is_spark_pi() {
        out.push(line("INFO", "SparkContext", "Starting job: reduce at SparkPi.scala:38"));
        out.push(line(
            "INFO",
            "DAGScheduler",
            &format!("Got job 0 (reduce at SparkPi.scala:38) with {} output partitions", app.tasks()),
        ));
    } else {
        out.push(line("INFO", "SparkContext", "Starting job: main"));
    }
    out
}

pub(crate) fn driver_task_done(app: &AppInfo, task: u32, executor: u32) -> String {
    line(
        "INFO",
        "TaskSetManager",
        &format!(
            "Finished task {task}.0 in stage 0.0 (TID {task}) in 412 ms on 10.0.0.{} (executor {executor}) ({}/{})",
            executor + 10,
            task + 1,
            app.tasks()
        ),
    )
}

/// The closing lines; for SparkPi the estimate comes from a real Monte Carlo run.
pub(crate) fn driver_end(app: &AppInfo, succeeded: bool, rng: &mut StdRng) -> Vec<String> {
    if !succeeded {
        return vec![
            line("ERROR", "SparkContext", "Error initializing SparkContext."),
            "Exception in thread \"main\" org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 failed 4 times".into(),
            "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2844)".into(),
            "\tat org.apache.spark.deploy.SparkSubmit.main(SparkSubmit.scala)".into(),
            line("INFO", "ShutdownHookManager", "Shutdown hook called"),
        ];
    }
    let mut out = Vec::new();
    if app.is_spark_pi() {
        let n = (100_000u64 * app.tasks() as u64).min(2_000_000);
        out.push(line("INFO", "DAGScheduler", "Job 0 finished: reduce at SparkPi.scala:38, took 1.427 s"));
        out.push(format!("Pi is roughly {}", 4.0 * points_inside(n, rng) as f64 / (n - 1) as f64));
    } else {
        out.push(line("INFO", "DAGScheduler", "Job 0 finished: main, took 2.113 s"));
    }
    out.push(line("INFO", "SparkUI", "Stopped Spark web UI at http://spark-ui:4040"));
    out.push(line("INFO", "KubernetesClusterSchedulerBackend", "Shutting down all executors"));
    out.push(line("INFO", "SparkContext", "Successfully stopped SparkContext"));
    out.push(line("INFO", "ShutdownHookManager", "Shutdown hook called"));
    out
}

/// How many of `n` uniform points in the square fall inside the unit circle, as SparkPi counts
/// them: drawn from the normal approximation of Binomial(n, π/4) (n is at least 100 000), so
/// an estimate costs two random numbers instead of 2n.
fn points_inside(n: u64, rng: &mut StdRng) -> u64 {
    let p = std::f64::consts::FRAC_PI_4;
    let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random_range(0.0..1.0));
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let mean = n as f64 * p;
    (mean + z * (mean * (1.0 - p)).sqrt()).round().clamp(0.0, n as f64) as u64
}

pub(crate) fn executor_start(app: &AppInfo, executor: u32) -> Vec<String> {
    vec![
        line(
            "INFO",
            "CoarseGrainedExecutorBackend",
            &format!("Started daemon with process name: {executor}@{}-exec-{executor}", app.name),
        ),
        line("INFO", "CoarseGrainedExecutorBackend", "Successfully registered with driver"),
        line("INFO", "Executor", &format!("Starting executor ID {executor} on host 10.0.0.{}", executor + 10)),
    ]
}

pub(crate) fn executor_end() -> Vec<String> {
    vec![
        line("INFO", "CoarseGrainedExecutorBackend", "Driver commanded a shutdown"),
        line("INFO", "ShutdownHookManager", "Shutdown hook called"),
    ]
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn spark_pi_prints_an_estimate_of_pi() {
        let app = AppInfo {
            name: "pi".into(),
            spark_version: "3.5.0".into(),
            app_id: "spark-1".into(),
            main_class: Some(SPARK_PI.into()),
            main_file: "local:///opt/spark/examples/jars/spark-examples.jar".into(),
            arguments: vec![],
            executors: 1,
        };
        let lines = driver_end(&app, true, &mut StdRng::seed_from_u64(3));
        let pi_line = lines.iter().find(|l| l.starts_with("Pi is roughly ")).expect("Pi line");
        let pi: f64 = pi_line.trim_start_matches("Pi is roughly ").parse().unwrap();
        // 200 000 samples: the standard error is about 0.004, so 0.03 is over 7 sigma.
        assert!((pi - std::f64::consts::PI).abs() < 0.03, "{pi}");
    }

    #[test]
    fn the_count_inside_the_circle_has_the_binomial_mean_and_spread() {
        // 400 draws of Binomial(10^6, π/4) approximated: the sample mean is within 5 standard
        // errors of nπ/4, and the sample standard deviation within 20 % of sqrt(np(1-p)).
        let (n, p) = (1_000_000u64, std::f64::consts::FRAC_PI_4);
        let mut rng = StdRng::seed_from_u64(11);
        let draws: Vec<f64> = (0..400).map(|_| points_inside(n, &mut rng) as f64).collect();
        let mean = draws.iter().sum::<f64>() / 400.0;
        let sd = (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 399.0).sqrt();
        let want_sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!((mean - n as f64 * p).abs() < 5.0 * want_sd / 20.0, "mean {mean}");
        assert!((sd / want_sd - 1.0).abs() < 0.2, "sd {sd} vs {want_sd}");
    }
}
