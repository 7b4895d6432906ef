//! The `payments` scenario: `POST /reserve` then `POST /payment`, a mix of test cards, each
//! operation a new user (so the two-minute duplicate rule never fires), then — after the load —
//! every order followed to a terminal state, latencies read from the orders' history, and the
//! correctness check (all terminal, ledger balanced, stock consistent, nobody charged twice).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    api::{self, Api},
    driver::{self, Driven, Model, Window},
    stats::{self, Latency, Stats},
};

pub const APPROVED_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub products: usize,
    pub stock_per_product: i64,
    /// Share of payments made with the declining test card, in percent.
    pub decline_pct: f64,
    pub idempotency_keys: bool,
    pub terminal_deadline_secs: u64,
    pub check: bool,
}

/// What the load loop keeps about each accepted order.
#[derive(Debug, Clone)]
struct Accepted {
    order_id: String,
    product_id: u64,
    declined_card: bool,
    measured: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Operations started per second of the load window (open model: the offered rate).
    pub started_per_s: f64,
    /// 202s per second of the measured window.
    pub accepted_per_s: f64,
    /// Orders that reached COMPLETED or COMPENSATED inside the measured window, per second.
    pub terminal_per_s_in_window: f64,
    /// The same, COMPLETED only.
    pub completed_per_s_in_window: f64,
    /// All orders ÷ (last terminal time − first acceptance time): the pipeline's rate over the whole run.
    pub terminal_per_s_overall: f64,
    /// Seconds from the end of the load window to the last order reaching a terminal state.
    pub drain_after_load_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct StockLine {
    pub product_id: u64,
    pub before: i64,
    pub now: i64,
    pub sold: i64,
    /// Reservations made but not paid (payment refused or failed): still HELD, so still out of stock.
    pub held_unpaid: i64,
    pub consistent: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Correctness {
    pub orders: usize,
    pub completed: usize,
    pub compensated: usize,
    pub not_terminal: usize,
    pub not_terminal_statuses: BTreeMap<String, usize>,
    /// Approved card but COMPENSATED, or declining card but COMPLETED.
    pub unexpected_outcome: usize,
    pub all_terminal: bool,
    pub ledger_balanced: bool,
    pub captured_delta: String,
    pub refunded_delta: String,
    pub completed_amount_sum: String,
    /// captured − refunded (this run) = Σ amounts of COMPLETED orders.
    pub no_double_charge: bool,
    pub stock_consistent: bool,
    /// Payments whose outcome the client could not learn (transport error on POST /payment): the
    /// stock check cannot account for them, so it is reported as inconclusive when this is not 0.
    pub unknown_payment_outcomes: u64,
    pub stock: Vec<StockLine>,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub model: Model,
    pub settings: Settings,
    pub driven: Driven,
    pub throughput: Throughput,
    /// reserve: POST /reserve; accept: POST /payment (send → 202); op_from_schedule: scheduled time →
    /// 202 (reserve + accept + any generator lateness); accepted_to_terminal / accepted_to_completed:
    /// from the order's history (ACCEPTED entry → terminal entry), server timestamps.
    pub latency: BTreeMap<String, Latency>,
    /// Each step of the saga, from consecutive history entries (server timestamps): where the time goes.
    pub hops: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
    pub correctness: Option<Correctness>,
}

pub async fn run(api: Api, model: Model, window: Window, settings: Settings) -> anyhow::Result<Report> {
    api.check_ready(&["product", "orchestrator", "payment"]).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    eprintln!("[payments] run {run_id}: creating {} products", settings.products);

    // Setup: our own products (so nothing else changes their stock), their stock, the ledger.
    let products: Vec<u64> = stream::iter(0..settings.products)
        .map(|k| {
            let api = api.clone();
            let name = format!("loadgen {run_id} item {k}");
            let price = format!("{}.{:02}", 5 + (k * 37) % 95, (k * 13) % 100);
            let stock = settings.stock_per_product;
            async move { api.create_product(&name, "load generator product", "loadgen", &price, stock).await }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut stock_before = BTreeMap::new();
    for &p in &products {
        let v = api.product(p).await?;
        stock_before.insert(p, v["stock"].as_i64().context("product stock")?);
    }
    let ledger_before = api.ledger().await?;

    let stats = Stats::new();
    let accepted: Arc<Mutex<Vec<Accepted>>> = Arc::default();
    let unpaid: Arc<Mutex<BTreeMap<u64, i64>>> = Arc::default();
    let unknown = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let products = Arc::new(products);
    let progress = stats::progress(stats.clone(), "payments".into(), "accept");
    let driven = {
        let (api, stats, accepted, unpaid, unknown, products, settings) =
            (api.clone(), stats.clone(), accepted.clone(), unpaid.clone(), unknown.clone(), products.clone(), settings.clone());
        driver::run(model, window, stats.clone(), move |op| {
            let (api, stats, accepted, unpaid, unknown, products, settings, run_id) = (
                api.clone(),
                stats.clone(),
                accepted.clone(),
                unpaid.clone(),
                unknown.clone(),
                products.clone(),
                settings.clone(),
                run_id.clone(),
            );
            async move {
                let user = format!("lg-{run_id}-{}", op.seq);
                let product_id = products[(op.seq as usize) % products.len()];
                // A deterministic, evenly spread mix: decline_pct % of operations use the declining card.
                let declined_card = ((op.seq.wrapping_mul(7919)) % 10_000) as f64 / 100.0 < settings.decline_pct;
                let token = api.tokens.user(&user);
                let sent = Instant::now();
                let r = api
                    .http
                    .post(format!("{}/reserve", api.product))
                    .bearer_auth(&token)
                    .json(&json!({"product_id": product_id, "user_id": user, "quantity": 1}))
                    .send()
                    .await;
                let reservation: Value = match r {
                    Ok(r) if r.status().as_u16() == 201 => match r.json().await {
                        Ok(v) => v,
                        Err(e) => {
                            stats.error(api::error_key("reserve", &e));
                            return false;
                        }
                    },
                    Ok(r) => {
                        stats.error(format!("reserve {}", r.status().as_u16()));
                        return false;
                    }
                    Err(e) => {
                        stats.error(api::error_key("reserve", &e));
                        return false;
                    }
                };
                let pay_sent = Instant::now();
                if op.measured {
                    stats.record("reserve", pay_sent - sent);
                }
                let Some(reservation_id) = reservation["id"].as_str() else {
                    stats.error("reserve: no id");
                    return false;
                };
                let card = if declined_card { DECLINED_CARD } else { APPROVED_CARD };
                let mut req = api.http.post(format!("{}/payment", api.orchestrator)).bearer_auth(&token).json(&json!({
                    "reservation_id": reservation_id,
                    "user_id": user,
                    "payment_method": {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}},
                }));
                if settings.idempotency_keys {
                    req = req.header("Idempotency-Key", format!("{user}-pay"));
                }
                match req.send().await {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let done = Instant::now();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        let Some(order_id) = body["order_id"].as_str() else {
                            stats.error("payment 202 without order_id");
                            unknown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return false;
                        };
                        if op.measured {
                            stats.record("accept", done - pay_sent);
                            stats.record("op_from_schedule", done - op.scheduled);
                        }
                        accepted.lock().unwrap().push(Accepted {
                            order_id: order_id.to_string(),
                            product_id,
                            declined_card,
                            measured: op.measured,
                        });
                        true
                    }
                    Ok(r) => {
                        stats.error(format!("payment {}", r.status().as_u16()));
                        *unpaid.lock().unwrap().entry(product_id).or_default() += 1;
                        false
                    }
                    Err(e) => {
                        stats.error(api::error_key("payment", &e));
                        unknown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        false
                    }
                }
            }
        })
        .await
    };
    progress.abort();
    let accepted = accepted.lock().unwrap().clone();
    eprintln!(
        "[payments] load done: {} operations, {} accepted; following every order to a terminal state (deadline {} s)",
        driven.operations,
        accepted.len(),
        settings.terminal_deadline_secs
    );

    // Follow every order to a terminal state (bounded), then read latencies from their history.
    let finals = follow(&api, &accepted, Duration::from_secs(settings.terminal_deadline_secs)).await;
    let mut to_terminal = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut to_completed = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut first_accept: Option<DateTime<Utc>> = None;
    let mut last_terminal: Option<DateTime<Utc>> = None;
    let (mut terminal_in_window, mut completed_in_window) = (0u64, 0u64);
    let mut hops: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for (a, f) in accepted.iter().zip(&finals) {
        let Some(f) = f else { continue };
        if let Some(acc) = f.accepted_at {
            first_accept = Some(first_accept.map_or(acc, |x| x.min(acc)));
        }
        let (Some(acc), Some(term)) = (f.accepted_at, f.terminal_at) else { continue };
        last_terminal = Some(last_terminal.map_or(term, |x| x.max(term)));
        if term >= driven.measured_from && term < driven.ended_at {
            terminal_in_window += 1;
            if f.status == "COMPLETED" {
                completed_in_window += 1;
            }
        }
        if a.measured {
            for w in f.history.windows(2) {
                let hop = format!("hop {} -> {}", w[0].0, w[1].0);
                let us = (w[1].1 - w[0].1).num_microseconds().unwrap_or(0).max(1) as u64;
                hops.entry(hop).or_insert_with(|| Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds")).saturating_record(us);
            }
            let us = (term - acc).num_microseconds().unwrap_or(0).max(1) as u64;
            to_terminal.saturating_record(us);
            if f.status == "COMPLETED" {
                to_completed.saturating_record(us);
            }
        }
    }
    let mut latency = stats.latencies();
    latency.insert("accepted_to_terminal".into(), Latency::of(&to_terminal));
    latency.insert("accepted_to_completed".into(), Latency::of(&to_completed));
    let hops: BTreeMap<String, Latency> = hops.iter().map(|(k, h)| (k.clone(), Latency::of(h))).collect();
    let window_secs = driven.measured_secs.max(1e-9);
    let load_secs = (driven.ended_at - driven.started_at).num_milliseconds() as f64 / 1000.0;
    let terminal_count = finals.iter().flatten().filter(|f| f.terminal_at.is_some()).count();
    let throughput = Throughput {
        started_per_s: driven.operations as f64 / load_secs.max(1e-9),
        accepted_per_s: stats.latency("accept").count as f64 / window_secs,
        terminal_per_s_in_window: terminal_in_window as f64 / window_secs,
        completed_per_s_in_window: completed_in_window as f64 / window_secs,
        terminal_per_s_overall: match (first_accept, last_terminal) {
            (Some(a), Some(b)) if b > a => terminal_count as f64 / ((b - a).num_milliseconds() as f64 / 1000.0),
            _ => 0.0,
        },
        drain_after_load_s: last_terminal.map_or(0.0, |t| (t - driven.ended_at).num_milliseconds() as f64 / 1000.0),
    };

    let correctness = if settings.check {
        let unpaid = unpaid.lock().unwrap().clone();
        let unknown = unknown.load(std::sync::atomic::Ordering::Relaxed);
        Some(check(&api, &accepted, &finals, &stock_before, &unpaid, unknown, &ledger_before).await?)
    } else {
        None
    };
    Ok(Report {
        scenario: "payments",
        model,
        settings,
        driven,
        throughput,
        latency,
        hops,
        errors: stats.errors(),
        correctness,
    })
}

/// An order's final state as `GET /orders/{id}` shows it.
#[derive(Debug, Clone)]
struct Final {
    status: String,
    amount: Decimal,
    accepted_at: Option<DateTime<Utc>>,
    /// When it became COMPLETED/COMPENSATED (None while not terminal).
    terminal_at: Option<DateTime<Utc>>,
    /// (status, at) in history order.
    history: Vec<(String, DateTime<Utc>)>,
}

fn parse_final(v: &Value) -> Option<Final> {
    let status = v["status"].as_str()?.to_string();
    let amount = api::decimal(&v["amount"]).unwrap_or_default();
    let at = |wanted: &dyn Fn(&str) -> bool| {
        v["history"].as_array()?.iter().find(|h| h["status"].as_str().is_some_and(wanted)).and_then(|h| h["at"].as_str()?.parse().ok())
    };
    let accepted_at = at(&|s| s == "ACCEPTED");
    let terminal_at = at(&|s| s == "COMPLETED" || s == "COMPENSATED");
    let history = v["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| Some((e["status"].as_str()?.to_string(), e["at"].as_str()?.parse().ok()?))).collect())
        .unwrap_or_default();
    Some(Final { status, amount, accepted_at, terminal_at, history })
}

/// Polls every order until it is terminal or the deadline passes; one entry per order (None if it
/// could never be read).
async fn follow(api: &Api, orders: &[Accepted], deadline: Duration) -> Vec<Option<Final>> {
    let until = Instant::now() + deadline;
    let mut finals: Vec<Option<Final>> = vec![None; orders.len()];
    let mut pending: Vec<usize> = (0..orders.len()).collect();
    let mut round = 0;
    while !pending.is_empty() {
        // Sweeping every pending order while the saga drains a backlog would load the very services
        // being measured (thousands of GETs per round). The last-accepted pending order is about the
        // last to finish, so poll only it until it is terminal, then sweep. (Latencies come from the
        // orders' own history, so how soon the generator notices changes no figure.)
        if let Some(&last) = pending.last() {
            while Instant::now() < until {
                let f = api.order(&orders[last].order_id).await.ok().flatten();
                if f.as_ref().and_then(parse_final).is_some_and(|f| f.terminal_at.is_some()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        round += 1;
        let results: Vec<(usize, Option<Final>)> = stream::iter(pending.clone())
            .map(|i| {
                let api = api.clone();
                let id = orders[i].order_id.clone();
                async move { (i, api.order(&id).await.ok().flatten().as_ref().and_then(parse_final)) }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        pending.clear();
        for (i, f) in results {
            let terminal = f.as_ref().is_some_and(|f| f.terminal_at.is_some());
            if f.is_some() {
                finals[i] = f;
            }
            if !terminal {
                pending.push(i);
            }
        }
        pending.sort_unstable();
        if pending.is_empty() || Instant::now() >= until {
            break;
        }
        eprintln!("[payments] round {round}: {} orders not terminal yet", pending.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    finals
}

async fn check(
    api: &Api,
    accepted: &[Accepted],
    finals: &[Option<Final>],
    stock_before: &BTreeMap<u64, i64>,
    unpaid: &BTreeMap<u64, i64>,
    unknown: u64,
    ledger_before: &Value,
) -> anyhow::Result<Correctness> {
    let mut c = Correctness { orders: accepted.len(), unknown_payment_outcomes: unknown, ..Default::default() };
    let mut sold: BTreeMap<u64, i64> = BTreeMap::new();
    let mut completed_sum = Decimal::ZERO;
    for (a, f) in accepted.iter().zip(finals) {
        match f.as_ref().map(|f| f.status.as_str()) {
            Some("COMPLETED") => {
                c.completed += 1;
                *sold.entry(a.product_id).or_default() += 1;
                completed_sum += f.as_ref().map(|f| f.amount).unwrap_or_default();
                if a.declined_card {
                    c.unexpected_outcome += 1;
                }
            }
            Some("COMPENSATED") => {
                c.compensated += 1;
                if !a.declined_card {
                    c.unexpected_outcome += 1;
                }
            }
            other => {
                c.not_terminal += 1;
                *c.not_terminal_statuses.entry(other.unwrap_or("unreadable").to_string()).or_default() += 1;
            }
        }
    }
    c.all_terminal = c.not_terminal == 0;

    let ledger_after = api.ledger().await?;
    let d = |v: &Value, k: &str| api::decimal(&v[k]).unwrap_or_default();
    let captured = d(&ledger_after, "captured_total") - d(ledger_before, "captured_total");
    let refunded = d(&ledger_after, "refunded_total") - d(ledger_before, "refunded_total");
    c.ledger_balanced = ledger_after["balanced"].as_bool() == Some(true);
    c.captured_delta = captured.normalize().to_string();
    c.refunded_delta = refunded.normalize().to_string();
    c.completed_amount_sum = completed_sum.normalize().to_string();
    c.no_double_charge = captured - refunded == completed_sum;

    c.stock_consistent = true;
    for (&p, &before) in stock_before {
        let now = api.product(p).await?["stock"].as_i64().context("product stock")?;
        let line = StockLine {
            product_id: p,
            before,
            now,
            sold: sold.get(&p).copied().unwrap_or(0),
            held_unpaid: unpaid.get(&p).copied().unwrap_or(0),
            consistent: false,
        };
        let consistent = line.now + line.sold + line.held_unpaid == line.before;
        c.stock_consistent &= consistent;
        c.stock.push(StockLine { consistent, ..line });
    }
    c.ok = c.all_terminal && c.unexpected_outcome == 0 && c.ledger_balanced && c.no_double_charge && c.stock_consistent && unknown == 0;
    Ok(c)
}

/// The human-readable correctness lines.
pub fn print_check(c: &Correctness) {
    let mark = |ok: bool| if ok { "OK  " } else { "FAIL" };
    println!("correctness:");
    if !c.all_terminal {
        println!("  (orders still in flight at the deadline make the money and stock lines below inconclusive, not wrong)");
    }
    println!(
        "  {} every order terminal: {} orders, {} COMPLETED, {} COMPENSATED, {} not terminal {:?}",
        mark(c.all_terminal),
        c.orders,
        c.completed,
        c.compensated,
        c.not_terminal,
        c.not_terminal_statuses
    );
    println!("  {} outcomes match the cards: {} unexpected", mark(c.unexpected_outcome == 0), c.unexpected_outcome);
    println!("  {} ledger balanced (GET /ledger/summary)", mark(c.ledger_balanced));
    println!(
        "  {} no order charged twice: captured {} − refunded {} = Σ COMPLETED amounts {}",
        mark(c.no_double_charge),
        c.captured_delta,
        c.refunded_delta,
        c.completed_amount_sum
    );
    let bad: Vec<_> = c.stock.iter().filter(|s| !s.consistent).collect();
    let unpaid: i64 = c.stock.iter().map(|s| s.held_unpaid).sum();
    println!(
        "  {} stock consistent on {} products (now + sold + {} held-unpaid = before){}",
        mark(c.stock_consistent),
        c.stock.len(),
        unpaid,
        if bad.is_empty() { String::new() } else { format!(": mismatches {bad:?}") }
    );
    if c.unknown_payment_outcomes > 0 {
        println!("  FAIL {} payments with an unknown outcome (transport errors)", c.unknown_payment_outcomes);
    }
    println!("  => {}", if c.ok { "CORRECT" } else { "NOT CORRECT" });
}
