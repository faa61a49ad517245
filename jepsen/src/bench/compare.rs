//! `jepsen compare`: two series of bench runs side by side, with an exact rank test per figure.
//!
//! A change to the gateway is judged by alternating short runs of the code before and after it
//! (`bench/README.md`, "What changed"): the machine's speed moves by a third from hour to hour,
//! so one run of each says little. This reads each run's `results.json`, puts every figure of
//! the two series side by side and gives the Mann–Whitney U of the second series against the
//! first, with its exact one-sided p in each direction (every split of the pooled values is
//! counted, ties taking half).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Result directories (or `results.json` files) of the first series, usually the code before.
    #[arg(long = "a", num_args = 1.., required = true)]
    pub a: Vec<PathBuf>,
    /// Result directories (or `results.json` files) of the second series.
    #[arg(long = "b", num_args = 1.., required = true)]
    pub b: Vec<PathBuf>,
}

/// The most splits counted exactly: C(24, 12) is 2.7 million, a second or two.
const MAX_SPLITS: f64 = 3.0e6;

/// One figure of one run, named as the comparison prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: f64,
}

/// The figures of one run's `results.json` that runs are compared by: saturation, the cost per
/// submission there, and for each open-loop step its latency, stalls, cost and log entries.
pub fn figures(results: &Value) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut push = |name: String, value: Option<f64>| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            out.push(Figure { name, value });
        }
    };
    push("saturation /s".into(), results["saturation_per_s"].as_f64());
    let concurrency = results["saturation_concurrency"].as_u64();
    let at_saturation = results["saturation"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["concurrency"].as_u64() == concurrency));
    if let Some(step) = at_saturation {
        let per_ok = &step["per_ok"];
        push("saturation: gateway CPU ms".into(), per_ok["gateway"].as_f64());
        push("saturation: kubesim CPU ms".into(), per_ok["kubesim"].as_f64());
        let ratio = per_ok["gateway"].as_f64().zip(per_ok["kubesim"].as_f64()).map(|(g, k)| g / k);
        push("saturation: gateway ÷ kubesim".into(), ratio);
        push("saturation: log entries".into(), per_ok["log_entries"].as_f64());
    }
    for (i, step) in results["open_loop"].as_array().into_iter().flatten().enumerate() {
        // The first two open-loop steps are at 50 % and 90 % of saturation; the rest are the
        // fixed rates of --open-rates.
        let label = match i {
            0 => "50 %".to_owned(),
            1 => "90 %".to_owned(),
            _ => format!("{:.0}/s", step["offered_per_s"].as_f64().unwrap_or(0.0)),
        };
        let latency = &step["latency_ms"];
        push(format!("{label}: p50 ms"), latency["p50"].as_f64());
        push(format!("{label}: p99 ms"), latency["p99"].as_f64());
        push(format!("{label}: p99.9 ms"), latency["p999"].as_f64());
        if let Some(timeline) = step["timeline"].as_array() {
            let p99s: Vec<f64> = timeline.iter().filter_map(|w| w["p99_ms"].as_f64()).collect();
            push(format!("{label}: windows over 50 ms"), Some(p99s.iter().filter(|p| **p > 50.0).count() as f64));
            push(format!("{label}: worst window p99 ms"), p99s.iter().copied().reduce(f64::max));
        }
        let per_ok = &step["per_ok"];
        push(format!("{label}: gateway CPU ms"), per_ok["gateway"].as_f64());
        push(format!("{label}: log entries"), per_ok["log_entries"].as_f64());
        push(format!("{label}: cores busy"), per_ok["cores_busy"].as_f64());
    }
    out
}

/// The Mann–Whitney statistic of `b` against `a`: the pairs in which `b`'s value is the lower,
/// ties counting half, out of `a.len() × b.len()`.
pub fn u_lower(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .flat_map(|x| {
            b.iter().map(move |y| {
                if y < x {
                    1.0
                } else if y == x {
                    0.5
                } else {
                    0.0
                }
            })
        })
        .sum()
}

/// Exact one-sided p-values of `b` being lower than `a`, and higher: the share of the ways to
/// split the pooled values into groups of `a.len()` and `b.len()` whose U is at least (at most)
/// the observed one. `None` when there are too many splits to count.
pub fn exact_p(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 || binomial(n + m, m) > MAX_SPLITS {
        return None;
    }
    let observed = u_lower(a, b);
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (mut total, mut at_least, mut at_most) = (0u64, 0u64, 0u64);
    // Every choice of which m pooled values form the second group.
    let mut chosen: Vec<usize> = (0..m).collect();
    loop {
        let second: Vec<f64> = chosen.iter().map(|&i| pooled[i]).collect();
        let first: Vec<f64> = (0..n + m).filter(|i| !chosen.contains(i)).map(|i| pooled[i]).collect();
        let u = u_lower(&first, &second);
        total += 1;
        // U takes half-integer values only, so a small tolerance compares them exactly.
        if u >= observed - 1e-9 {
            at_least += 1;
        }
        if u <= observed + 1e-9 {
            at_most += 1;
        }
        if !next_combination(&mut chosen, n + m) {
            break;
        }
    }
    Some((at_least as f64 / total as f64, at_most as f64 / total as f64))
}

/// Advances `c` (sorted indices below `len`) to the next combination in lexicographic order.
fn next_combination(c: &mut [usize], len: usize) -> bool {
    let k = c.len();
    let mut i = k;
    while i > 0 {
        i -= 1;
        if c[i] < len - k + i {
            c[i] += 1;
            for j in i + 1..k {
                c[j] = c[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

fn read_run(path: &Path) -> anyhow::Result<Value> {
    let file = if path.is_dir() { path.join("results.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a bench run's results.json", file.display()))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// The comparison as a Markdown table: each figure that every run of both series has.
pub fn table(a: &[Value], b: &[Value]) -> String {
    let a_figures: Vec<Vec<Figure>> = a.iter().map(figures).collect();
    let b_figures: Vec<Vec<Figure>> = b.iter().map(figures).collect();
    let values = |runs: &[Vec<Figure>], name: &str| -> Option<Vec<f64>> {
        runs.iter().map(|figs| figs.iter().find(|f| f.name == name).map(|f| f.value)).collect()
    };
    let mut out = String::from(
        "| figure | a | b | median a → b | U (b lower) | p (b lower) | p (b higher) |\n|---|---|---|---|---|---|---|\n",
    );
    let names = a_figures.first().map(|figs| figs.iter().map(|f| f.name.clone()).collect::<Vec<_>>());
    let mut rows = 0;
    for name in names.into_iter().flatten() {
        let (Some(xa), Some(xb)) = (values(&a_figures, &name), values(&b_figures, &name)) else {
            continue;
        };
        let list = |v: &[f64]| v.iter().map(|x| format_value(*x)).collect::<Vec<_>>().join(", ");
        let (lower, higher) = exact_p(&xa, &xb)
            .map_or(("-".to_owned(), "-".to_owned()), |(lo, hi)| (format!("{lo:.3}"), format!("{hi:.3}")));
        out.push_str(&format!(
            "| {name} | {} | {} | {} → {} | {} of {} | {lower} | {higher} |\n",
            list(&xa),
            list(&xb),
            format_value(median(&xa)),
            format_value(median(&xb)),
            u_lower(&xa, &xb),
            xa.len() * xb.len()
        ));
        rows += 1;
    }
    // Each row is a test of its own: among many figures, some pass p < 0.05 by chance alone.
    out.push_str(&format!(
        "\n{rows} figures compared: up to about {:.1} of them could show p < 0.05 in one direction or the other by chance \
         alone; a change is shown by the figures it was meant to move.\n",
        rows as f64 * 0.05 * 2.0
    ));
    out
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let read = |paths: &[PathBuf]| paths.iter().map(|p| read_run(p)).collect::<anyhow::Result<Vec<Value>>>();
    let (a, b) = (read(&args.a)?, read(&args.b)?);
    if binomial(a.len() + b.len(), b.len()) > MAX_SPLITS {
        bail!("{} and {} runs are too many to count every split of; compare at most 12 against 12", a.len(), b.len());
    }
    print!("{}", table(&a, &b));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn four_runs_all_below_four_others_give_one_split_in_seventy() {
        let a = [2.44, 2.49, 2.41, 2.47];
        let b = [2.02, 1.99, 2.00, 2.32];
        assert_eq!(u_lower(&a, &b), 16.0);
        let (lower, higher) = exact_p(&a, &b).unwrap();
        assert!((lower - 1.0 / 70.0).abs() < 1e-12, "{lower}");
        assert_eq!(higher, 1.0);
    }

    #[test]
    fn the_p_value_counts_every_split_at_least_as_extreme() {
        // a = {1, 2, 3}, b = {4, 5}: of the 10 ways to pick b's two values of the five, only
        // {4, 5} puts both above every value of a (U = 0).
        let (lower, higher) = exact_p(&[1.0, 2.0, 3.0], &[4.0, 5.0]).unwrap();
        assert!((higher - 0.1).abs() < 1e-12, "{higher}");
        assert_eq!(lower, 1.0);
        // a = {1, 2, 4}, b = {3, 5}: U = 1 (4 > 3); only {4, 5} (U = 0) and {3, 5} itself are
        // as extreme.
        let (_, higher) = exact_p(&[1.0, 2.0, 4.0], &[3.0, 5.0]).unwrap();
        assert!((higher - 0.2).abs() < 1e-12, "{higher}");
    }

    #[test]
    fn ties_count_half_and_identical_series_show_nothing() {
        assert_eq!(u_lower(&[1.0, 2.0], &[2.0, 0.5]), 2.5);
        let (lower, higher) = exact_p(&[3.0, 3.0, 3.0], &[3.0, 3.0, 3.0]).unwrap();
        assert_eq!((lower, higher), (1.0, 1.0));
    }

    #[test]
    fn too_many_runs_are_refused_rather_than_approximated() {
        let many = vec![1.0; 13];
        assert!(exact_p(&many, &many).is_none());
        let err = compare(CompareArgs { a: vec![PathBuf::from("/nonexistent/a")], b: vec![] }).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/a"), "{err:#}");
    }

    fn run(saturation: f64, p99_at_half: f64, timeline: &[f64]) -> Value {
        json!({
            "saturation_per_s": saturation,
            "saturation_concurrency": 64,
            "saturation": [
                {"concurrency": 8, "per_ok": {"gateway": 9.0, "kubesim": 9.0}},
                {"concurrency": 64, "per_ok": {"gateway": 0.6, "kubesim": 0.5, "log_entries": 0.07}}
            ],
            "open_loop": [
                {"offered_per_s": saturation / 2.0, "latency_ms": {"p50": 10.0, "p99": p99_at_half, "p999": 90.0},
                 "per_ok": {"gateway": 1.2, "log_entries": 0.3, "cores_busy": 0.8},
                 "timeline": timeline.iter().map(|p| json!({"p99_ms": p})).collect::<Vec<_>>()},
                {"offered_per_s": saturation * 0.9, "latency_ms": {"p50": 50.0, "p99": 900.0, "p999": 990.0}},
                {"offered_per_s": 400.0, "latency_ms": {"p50": 12.0, "p99": 40.0, "p999": 60.0}}
            ]
        })
    }

    #[test]
    fn figures_are_read_from_the_saturation_step_and_each_open_loop_step() {
        let figs = figures(&run(1300.0, 61.0, &[20.0, 55.0, 120.0, 30.0]));
        let get = |name: &str| figs.iter().find(|f| f.name == name).map(|f| f.value);
        assert_eq!(get("saturation /s"), Some(1300.0));
        assert_eq!(get("saturation: gateway ÷ kubesim"), Some(0.6 / 0.5), "the step at the saturation concurrency");
        assert_eq!(get("50 %: p99 ms"), Some(61.0));
        assert_eq!(get("50 %: windows over 50 ms"), Some(2.0));
        assert_eq!(get("50 %: worst window p99 ms"), Some(120.0));
        assert_eq!(get("90 %: p99 ms"), Some(900.0));
        assert_eq!(get("400/s: p99 ms"), Some(40.0));
        assert_eq!(get("90 %: gateway CPU ms"), None, "a figure the run lacks is left out");
    }

    #[test]
    fn the_table_has_a_row_per_figure_every_run_has() {
        let a = [run(1300.0, 90.0, &[60.0]), run(1250.0, 80.0, &[70.0])];
        let b = [run(1400.0, 40.0, &[30.0]), run(1350.0, 45.0, &[40.0])];
        let t = table(&a, &b);
        let row = t.lines().find(|l| l.starts_with("| 50 %: p99 ms |")).expect(&t);
        assert_eq!(row, "| 50 %: p99 ms | 90.00, 80.00 | 40.00, 45.00 | 85.00 → 42.50 | 4 of 4 | 0.167 | 1.000 |");
        assert!(!t.contains("90 %: gateway CPU ms"), "{t}");
        let rows = t.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| figure")).count();
        assert!(t.contains(&format!("{rows} figures compared")), "{t}");
    }
}
