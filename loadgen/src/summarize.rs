//! `summarize DIR`: reads the JSON results of repeated runs (`<name>-run<N>.json`), groups them by
//! name, and prints markdown tables with min / median / max of each figure across runs (and writes
//! the same as `summary.json`).
//!
//! A payments run whose step also left `cpu-<name>-run<N>.json` (the CPU every stack process used
//! during it) gains the figure *CPU-ms per order*: all processes' CPU over the step ÷ its orders.
//! Runs named `sweep-<rate>` (one payments run per offered rate) are also gathered into one table,
//! latency and CPU per order against the rate, written as `sweep.json` for the chart.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde_json::{Value, json};

/// (label, JSON pointer) of the figures shown for each scenario.
fn figures(scenario: &str, v: &Value) -> Vec<(String, String)> {
    let lat = |name: &str, metric: &str| {
        ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
            .iter()
            .map(|q| (format!("{name} {} (ms)", q.trim_end_matches("_ms")), format!("/latency/{metric}/{q}")))
            .collect::<Vec<_>>()
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    match scenario {
        "payments" => {
            let mut f = vec![
                s("started ops/s", "/throughput/started_per_s"),
                s("accepted (202) /s", "/throughput/accepted_per_s"),
                s("terminal orders/s in window", "/throughput/terminal_per_s_in_window"),
                s("COMPLETED orders/s in window", "/throughput/completed_per_s_in_window"),
                s("terminal orders/s overall", "/throughput/terminal_per_s_overall"),
                s("drain after load (s)", "/throughput/drain_after_load_s"),
            ];
            f.extend(lat("POST /payment", "accept"));
            f.extend(lat("reserve", "reserve"));
            f.extend(lat("accepted → terminal", "accepted_to_terminal"));
            for hop in v["hops"].as_object().into_iter().flat_map(|m| m.keys()) {
                let esc = hop.replace('~', "~0").replace('/', "~1");
                for q in ["p50_ms", "p99_ms"] {
                    f.push((format!("step {} {} (ms)", hop.trim_start_matches("hop "), q.trim_end_matches("_ms")), format!("/hops/{esc}/{q}")));
                }
            }
            f.push(s("CPU-ms per order (all processes)", "/cpu_ms_per_order"));
            f.push(s("errors", "/error_total"));
            f.push(s("correctness OK (1 = yes)", "/correctness_ok"));
            f
        }
        "bank" => {
            let mut f = vec![
                s("started requests/s", "/throughput/started_per_s"),
                s("accepted (202/201) /s", "/throughput/accepted_per_s"),
                s("queued ops terminal/s in window", "/throughput/terminal_per_s_in_window"),
                s("drain after load (s)", "/throughput/drain_after_load_s"),
            ];
            f.extend(lat("deposit accept", "accept deposit"));
            f.extend(lat("withdrawal accept", "accept withdrawal"));
            f.extend(lat("instant transfer", "accept transfer"));
            f.extend(lat("queued → APPLIED", "queued_to_applied"));
            f.push(s("net CPU-ms per request", "/cpu/net_cpu_ms_per_request"));
            f.push(s("rate limited (429)", "/rate_limited"));
            f.push(s("errors", "/error_total"));
            f.push(s("correctness OK (1 = yes)", "/correctness_ok"));
            f
        }
        "search" => {
            let mut f = vec![s("queries/s", "/queries_per_s")];
            f.extend(lat("/findAll", "search"));
            f.push(s("errors", "/error_total"));
            f
        }
        "cdc-lag" => {
            let mut f = lat("PATCH → searchable", "visible");
            f.push(s("probes", "/latency/visible/count"));
            f.push(s("errors", "/error_total"));
            f
        }
        "cpu" => v["cpu_seconds"].as_object().into_iter().flat_map(|m| m.keys()).map(|k| (format!("{k} CPU s"), format!("/cpu_seconds/{k}"))).collect(),
        "limits" => {
            let mut f = vec![];
            for (i, m) in v["mariadb"].as_array().into_iter().flatten().enumerate() {
                let c = m["connections"].as_u64().unwrap_or(0);
                f.push((format!("MariaDB commits/s, {c} connection(s)"), format!("/mariadb/{i}/commits_per_s")));
                f.push((format!("MariaDB commit p99 (ms), {c} connection(s)"), format!("/mariadb/{i}/latency/p99_ms")));
            }
            f.push(s("broker produce msgs/s (many in flight)", "/broker/produce_per_s"));
            f.push(s("broker produce msgs/s (one in flight)", "/broker/produce_one_by_one_per_s"));
            f.push(s("broker produce round trip p50 (ms)", "/broker/produce_one_by_one_latency/p50_ms"));
            f.push(s("broker consume msgs/s", "/broker/consume_per_s"));
            for (i, h) in v["http"].as_array().into_iter().flatten().enumerate() {
                let c = h["concurrency"].as_u64().unwrap_or(0);
                f.push((format!("HTTP trivial axum req/s, concurrency {c}"), format!("/http/{i}/requests_per_s")));
            }
            f
        }
        _ => vec![],
    }
}

fn stats(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    (xs[0], median, xs[n - 1])
}

fn fmt(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Adds the derived fields `error_total` and `correctness_ok` the tables use.
fn derive(mut v: Value) -> Value {
    let errors: u64 = v["errors"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    v["error_total"] = json!(errors);
    if let Some(ok) = v["correctness"]["ok"].as_bool() {
        v["correctness_ok"] = json!(if ok { 1 } else { 0 });
    }
    v
}

/// CPU-ms per order of a payments run: every process's CPU seconds during its step ÷ its orders.
fn cpu_ms_per_order(payments: &Value, cpu: &Value) -> Option<f64> {
    let orders = payments["correctness"]["orders"].as_f64().filter(|n| *n > 0.0)?;
    let seconds: f64 = cpu["cpu_seconds"].as_object()?.values().filter_map(Value::as_f64).sum();
    Some(seconds * 1000.0 / orders)
}

/// The results in `dir`, by name (`<name>-run<N>.json` → `name`), each run with its number.
fn read_groups(dir: &Path) -> anyhow::Result<BTreeMap<String, BTreeMap<u32, Value>>> {
    let mut groups: BTreeMap<String, BTreeMap<u32, Value>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.flatten() {
        let p = entry.path();
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let stem = p.file_stem().unwrap_or_default().to_string_lossy().to_string();
        let (name, run) = match stem.rsplit_once("-run") {
            Some((n, r)) => match r.parse::<u32>() {
                Ok(r) => (n.to_string(), r),
                Err(_) => continue,
            },
            None => continue, // summary.json, sweep.json: outputs, not runs
        };
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p)?).with_context(|| format!("parsing {}", p.display()))?;
        groups.entry(name).or_default().insert(run, derive(v));
    }
    // CPU per order, from the step's CPU file of the same run.
    let cpu: BTreeMap<String, BTreeMap<u32, Value>> =
        groups.iter().filter_map(|(n, runs)| Some((n.strip_prefix("cpu-")?.to_string(), runs.clone()))).collect();
    for (name, runs) in groups.iter_mut() {
        for (run, v) in runs.iter_mut() {
            if v["scenario"] == "payments"
                && let Some(per_order) = cpu.get(name).and_then(|c| c.get(run)).and_then(|c| cpu_ms_per_order(v, c))
            {
                v["cpu_ms_per_order"] = json!(per_order);
            }
        }
    }
    Ok(groups)
}

/// One row of the sweep: medians over the runs at one offered rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepRow {
    pub rate: f64,
    pub runs: usize,
    pub accept_p50_ms: Option<f64>,
    pub accept_p99_ms: Option<f64>,
    pub terminal_p50_ms: Option<f64>,
    pub terminal_p99_ms: Option<f64>,
    pub terminal_per_s_overall: Option<f64>,
    pub cpu_ms_per_order: Option<f64>,
    pub all_correct: bool,
}

/// The `sweep-<rate>` groups as rows, by offered rate.
fn sweep(groups: &BTreeMap<String, BTreeMap<u32, Value>>) -> Vec<SweepRow> {
    let median = |runs: &BTreeMap<u32, Value>, pointer: &str| {
        let xs: Vec<f64> = runs.values().filter_map(|r| r.pointer(pointer).and_then(Value::as_f64)).collect();
        (!xs.is_empty()).then(|| stats(xs).1)
    };
    let mut rows: Vec<SweepRow> = groups
        .iter()
        .filter_map(|(name, runs)| {
            let rate: f64 = name.strip_prefix("sweep-")?.parse().ok()?;
            Some(SweepRow {
                rate,
                runs: runs.len(),
                accept_p50_ms: median(runs, "/latency/accept/p50_ms"),
                accept_p99_ms: median(runs, "/latency/accept/p99_ms"),
                terminal_p50_ms: median(runs, "/latency/accepted_to_terminal/p50_ms"),
                terminal_p99_ms: median(runs, "/latency/accepted_to_terminal/p99_ms"),
                terminal_per_s_overall: median(runs, "/throughput/terminal_per_s_overall"),
                cpu_ms_per_order: median(runs, "/cpu_ms_per_order"),
                all_correct: runs.values().all(|r| r["correctness_ok"] == 1),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    rows
}

fn sweep_table(rows: &[SweepRow]) -> String {
    let cell = |x: Option<f64>| x.map(fmt).unwrap_or_else(|| "–".into());
    let mut md = String::from(
        "\n#### sweep (payments, open model, one run per rate and suite run; medians)\n\n\
         | offered orders/s | runs | POST /payment p50 / p99 (ms) | accepted → terminal p50 / p99 (ms) | terminal orders/s overall | CPU-ms per order | all correct |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {:.0} | {} | {} / {} | {} / {} | {} | {} | {} |\n",
            r.rate,
            r.runs,
            cell(r.accept_p50_ms),
            cell(r.accept_p99_ms),
            cell(r.terminal_p50_ms),
            cell(r.terminal_p99_ms),
            cell(r.terminal_per_s_overall),
            cell(r.cpu_ms_per_order),
            if r.all_correct { "yes" } else { "NO" }
        ));
    }
    md
}

pub fn run(dir: &Path) -> anyhow::Result<String> {
    let groups = read_groups(dir)?;
    let mut md = String::new();
    let mut summary = serde_json::Map::new();
    for (name, runs) in &groups {
        let runs: Vec<&Value> = runs.values().collect();
        let scenario = runs[0]["scenario"].as_str().unwrap_or("?").to_string();
        let model = match &runs[0]["model"] {
            Value::Null => String::new(),
            m => match m["model"].as_str() {
                Some("open") => format!(", open model at {} ops/s", m["rate"]),
                Some("closed") => format!(", closed model, concurrency {}", m["concurrency"]),
                _ => String::new(),
            },
        };
        md.push_str(&format!("\n#### {name} ({scenario}{model}; {} run(s))\n\n", runs.len()));
        md.push_str("| figure | min | median | max |\n| --- | ---: | ---: | ---: |\n");
        let mut table = serde_json::Map::new();
        for (label, pointer) in figures(&scenario, runs[0]) {
            let xs: Vec<f64> = runs.iter().filter_map(|r| r.pointer(&pointer).and_then(Value::as_f64)).collect();
            if xs.is_empty() {
                continue;
            }
            let (lo, med, hi) = stats(xs.clone());
            md.push_str(&format!("| {label} | {} | {} | {} |\n", fmt(lo), fmt(med), fmt(hi)));
            table.insert(label, json!({"min": lo, "median": med, "max": hi, "runs": xs}));
        }
        summary.insert(name.clone(), Value::Object(table));
    }
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&Value::Object(summary))?)?;
    let rows = sweep(&groups);
    if !rows.is_empty() {
        md.push_str(&sweep_table(&rows));
        std::fs::write(dir.join("sweep.json"), serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: Value) {
        std::fs::write(dir.join(name), v.to_string()).unwrap();
    }

    fn payments(rate: f64, p99: f64, orders: u64, ok: bool) -> Value {
        json!({
            "scenario": "payments", "model": {"model": "open", "rate": rate},
            "latency": {"accept": {"p50_ms": 2.0, "p99_ms": 9.0}, "accepted_to_terminal": {"p50_ms": p99 / 2.0, "p99_ms": p99}},
            "throughput": {"terminal_per_s_overall": rate},
            "errors": {}, "correctness": {"ok": ok, "orders": orders},
        })
    }

    #[test]
    fn the_sweep_takes_medians_per_rate_in_rate_order_with_cpu_per_order() {
        let dir = tempfile::tempdir().unwrap();
        for (run, p99) in [(1, 300.0), (2, 100.0), (3, 200.0)] {
            write(dir.path(), &format!("sweep-200-run{run}.json"), payments(200.0, p99, 2000, true));
            // 2000 orders, 30 CPU-s in all → 15 CPU-ms each (run 3: 10 ms)
            let broker = if run == 3 { 10.0 } else { 20.0 };
            write(dir.path(), &format!("cpu-sweep-200-run{run}.json"), json!({"scenario": "cpu", "cpu_seconds": {"broker": broker, "mariadb": 10.0}}));
        }
        write(dir.path(), "sweep-20-run1.json", payments(20.0, 150.0, 200, false));
        let md = run(dir.path()).unwrap();
        let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(dir.path().join("sweep.json")).unwrap()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["rate"], 20.0);
        assert_eq!(rows[0]["all_correct"], false);
        assert_eq!(rows[0]["cpu_ms_per_order"], Value::Null, "no CPU file for that run");
        assert_eq!(rows[1]["terminal_p99_ms"], 200.0, "the median of 300, 100, 200");
        assert_eq!(rows[1]["cpu_ms_per_order"], 15.0, "median of 15, 15, 10");
        assert_eq!(rows[1]["runs"], 3);
        assert!(md.contains("| 200 | 3 | 2.00 / 9.00 | 100 / 200 | 200 | 15.0 | yes |"), "{md}");
        assert!(md.contains("| 20 | 1 | 2.00 / 9.00 | 75.0 / 150 | 20.0 | – | NO |"), "{md}");
        assert!(md.contains("CPU-ms per order (all processes) | 10.0 | 15.0 | 15.0 |"), "{md}");
    }
}
