//! The `push` scenario: `--streams` users each hold an event stream open at the gateway
//! (`GET /api/events`, Server-Sent Events) while orders are reserved and paid through the gateway
//! at `--rate`; every order status pushed to its user's stream is timed from its commit (the
//! event's `at`, written in the orchestrator's transaction) to its arrival at the client.
//!
//! Checks (exit 3 on a violation): every accepted order's stream shows ACCEPTED,
//! RESERVATION_LOCKED, PAYMENT_PENDING, PAID, COMPLETED — each once, in that order — and no stream
//! receives an order of another user.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    api::{self, Api},
    bank::{cpu_ticks, rates, read_pids},
    driver::{self, Driven, Model, Window},
    stats::{self, Latency, Stats},
};

const HAPPY_PATH: [&str; 5] = ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "PAID", "COMPLETED"];

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub gateway: String,
    pub streams: usize,
    pub products: usize,
    pub deliver_deadline_secs: u64,
    pub pids_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub driven: Driven,
    pub streams_open: usize,
    pub orders_accepted: usize,
    pub events_received: u64,
    /// Commit (the event's `at`) → received by the client, every status.
    pub push: Latency,
    pub push_by_status: BTreeMap<String, Latency>,
    pub latency: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
    /// The gateway's CPU over the load, per event pushed.
    pub gateway_cpu_ms_per_event: Option<f64>,
    pub violations: Vec<String>,
}

/// What the streams saw: per order, its user and statuses in arrival order; per status, latencies.
#[derive(Default)]
struct Seen {
    orders: HashMap<String, (usize, Vec<String>)>,
    latency: BTreeMap<String, Histogram<u64>>,
    all: Option<Histogram<u64>>,
    foreign: Vec<String>,
    events: u64,
}

pub async fn run(api: Api, model: Model, window: Window, settings: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(settings.streams >= 1 && settings.products >= 1, "--streams and --products must be at least 1");
    let gw = settings.gateway.trim_end_matches('/').to_string();
    let ready = api.http.get(format!("{gw}/health/ready")).send().await.with_context(|| format!("the gateway at {gw}"))?;
    anyhow::ensure!(ready.status().is_success(), "the gateway at {gw} is not ready: {}", ready.status());
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut products = Vec::new();
    for i in 0..settings.products {
        products.push(api.create_product(&format!("push {run_id} {i}"), "push benchmark", "bench", "1.00", 10_000_000).await?);
    }
    let tokens: Vec<String> = (0..settings.streams).map(|k| api.tokens.user(&format!("lg-push-{run_id}-{k}"))).collect();

    // The streams: no overall timeout (they stay open), one task each.
    let streaming = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(4096).build()?;
    let seen: Arc<Mutex<Seen>> = Arc::new(Mutex::new(Seen { all: Some(histogram()), ..Default::default() }));
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (k, token) in tokens.iter().enumerate() {
        let (http, url, token, seen, opened) = (streaming.clone(), format!("{gw}/api/events"), token.clone(), seen.clone(), opened.clone());
        tasks.push(tokio::spawn(async move { read_stream(http, url, token, k, seen, opened).await }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while opened.load(Ordering::Relaxed) < settings.streams {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {} streams opened within 60 s", opened.load(Ordering::Relaxed), settings.streams);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("[push] {} streams open", settings.streams);

    let pids = read_pids(&settings.pids_dir);
    let cpu_start = (cpu_ticks(&pids), Instant::now());
    let stats = Stats::new();
    let accepted: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let progress = stats::progress(stats.clone(), "push".into(), "pay");
    let driven = {
        let (http, gw, tokens, products, stats, accepted) = (api.http.clone(), gw.clone(), Arc::new(tokens.clone()), Arc::new(products), stats.clone(), accepted.clone());
        driver::run(model, window, stats.clone(), move |op| {
            let (http, gw, tokens, products, stats, accepted) = (http.clone(), gw.clone(), tokens.clone(), products.clone(), stats.clone(), accepted.clone());
            async move {
                let user = op.seq as usize % tokens.len();
                let auth = format!("Bearer {}", tokens[user]);
                // A user's k-th order goes to another product than its last ones: the same product again
                // within two minutes would be the duplicate-order rule's 409, not a push measurement.
                let product = products[(user + op.seq as usize / tokens.len()) % products.len()];
                let started = Instant::now();
                let reserve = http
                    .post(format!("{gw}/api/reserve"))
                    .header("authorization", &auth)
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({"product_id": product, "quantity": 1}))
                    .send()
                    .await;
                let rid = match reserve {
                    Ok(r) if r.status().as_u16() == 201 => r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_string)),
                    Ok(r) => {
                        stats.error(format!("reserve {}", r.status().as_u16()));
                        return false;
                    }
                    Err(e) => {
                        stats.error(api::error_key("reserve", &e));
                        return false;
                    }
                };
                let Some(rid) = rid else { return false };
                let body = json!({"reservation_id": rid, "payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}});
                match http.post(format!("{gw}/api/payment")).header("authorization", &auth).header("idempotency-key", uuid::Uuid::new_v4().to_string()).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 202 => {
                        stats.record("pay", started.elapsed());
                        if let Some(id) = r.json::<Value>().await.ok().and_then(|v| v["order_id"].as_str().map(str::to_string)) {
                            accepted.lock().unwrap().push((id, user));
                        }
                        true
                    }
                    Ok(r) => {
                        stats.error(format!("payment {}", r.status().as_u16()));
                        false
                    }
                    Err(e) => {
                        stats.error(api::error_key("payment", &e));
                        false
                    }
                }
            }
        })
        .await
    };
    progress.abort();

    // Every accepted order's statuses delivered (or the deadline).
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    let deadline = Instant::now() + Duration::from_secs(settings.deliver_deadline_secs);
    loop {
        let done = {
            let s = seen.lock().unwrap();
            accepted.iter().all(|(id, _)| s.orders.get(id).is_some_and(|(_, st)| st.last().is_some_and(|l| l == "COMPLETED" || l == "COMPENSATED" || l == "FAILED")))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = rates(&cpu_start.0, &cpu_ticks(&pids), 1.0);
    for t in tasks {
        t.abort();
    }

    let s = seen.lock().unwrap();
    let mut violations: Vec<String> = s.foreign.clone();
    for (id, user) in &accepted {
        match s.orders.get(id) {
            None => violations.push(format!("order {id}: no status pushed")),
            Some((u, _)) if u != user => violations.push(format!("order {id} pushed to stream {u}, its user is {user}")),
            Some((_, statuses)) if statuses.iter().map(String::as_str).ne(HAPPY_PATH) => {
                violations.push(format!("order {id}: pushed {statuses:?}, expected each of {HAPPY_PATH:?} once in order"))
            }
            _ => {}
        }
    }
    let events = s.events;
    Ok(Report {
        driven,
        streams_open: settings.streams,
        orders_accepted: accepted.len(),
        events_received: events,
        push: s.all.as_ref().map(Latency::of).unwrap_or_default(),
        push_by_status: s.latency.iter().map(|(k, h)| (k.clone(), Latency::of(h))).collect(),
        latency: stats.latencies(),
        errors: stats.errors(),
        gateway_cpu_ms_per_event: cpu.get("gateway").filter(|_| events > 0).map(|c| c * 1000.0 / events as f64),
        violations,
        settings,
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// Reads one user's stream until aborted, recording every order status it receives.
async fn read_stream(http: reqwest::Client, url: String, token: String, user: usize, seen: Arc<Mutex<Seen>>, opened: Arc<AtomicUsize>) {
    let Ok(mut res) = http.get(&url).bearer_auth(&token).header("accept", "text/event-stream").send().await else { return };
    if !res.status().is_success() {
        eprintln!("[push] stream {user}: {}", res.status());
        return;
    }
    let mut buf = String::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        let received = Utc::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut event, mut data) = ("", String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = if v.trim() == "order" { "order" } else if v.trim() == "snapshot" { "snapshot" } else { "other" };
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            match event {
                "snapshot" => {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                "order" => {
                    let Ok(v) = serde_json::from_str::<Value>(&data) else { continue };
                    let (Some(id), Some(status)) = (v["order_id"].as_str(), v["status"].as_str()) else { continue };
                    let at = v["at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok());
                    let mut s = seen.lock().unwrap();
                    s.events += 1;
                    if let Some(at) = at {
                        let us = (received - at).num_microseconds().unwrap_or(0).max(1) as u64;
                        s.latency.entry(status.to_string()).or_insert_with(histogram).saturating_record(us);
                        if let Some(h) = s.all.as_mut() {
                            h.saturating_record(us);
                        }
                    }
                    let entry = s.orders.entry(id.to_string()).or_insert_with(|| (user, Vec::new()));
                    if entry.0 != user {
                        let other = entry.0;
                        s.foreign.push(format!("order {id} reached streams {other} and {user}"));
                        continue;
                    }
                    entry.1.push(status.to_string());
                }
                _ => {}
            }
        }
    }
}
