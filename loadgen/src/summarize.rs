//! `summarize DIR`: reads the JSON results of repeated runs (`<name>-run<N>.json`), groups them by
//! name, and prints markdown tables with min / median / max of each figure across runs (and writes
//! the same as `summary.json`).

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

pub fn run(dir: &Path) -> anyhow::Result<String> {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.file_name().is_some_and(|n| n != "summary.json"))
        .collect();
    files.sort();
    for p in files {
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        let name = match stem.rsplit_once("-run") {
            Some((n, r)) if r.chars().all(|c| c.is_ascii_digit()) => n.to_string(),
            _ => stem.clone(),
        };
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p)?).with_context(|| format!("parsing {}", p.display()))?;
        groups.entry(name).or_default().push(derive(v));
    }
    let mut md = String::new();
    let mut summary = serde_json::Map::new();
    for (name, runs) in &groups {
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
        for (label, pointer) in figures(&scenario, &runs[0]) {
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
    Ok(md)
}
