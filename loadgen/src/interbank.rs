//! The `interbank` scenario: transfers between banks (two-phase commit) — one-to-one from a
//! user's account in one bank to another user's account in another bank, and a share of
//! many-to-one transfers from the user's accounts in every bank — then every transfer followed to
//! SETTLED/FAILED and the checks, all through the public APIs: no hold left, money conserved
//! across the banks, clearing positions netting to zero.
//!
//! Setup: `--users` simulated users (`lg-ib-<run>-<k>`), each with one individual BRL account in
//! every bank, funded with `--initial-deposit` (waited for). Transfer `n` is paid by user
//! `n mod users` (round robin) with a small amount, so almost all can settle.
//!
//! Latencies: `accept` (POST /transfers → 202 PROCESSING) on the client, `decide` (PROCESSING →
//! SETTLED/FAILED, the two-phase commit across the banks) from the transfer's server timestamps.

use std::{
    collections::BTreeMap,
    path::PathBuf,
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
    bank::{cpf, cpu_ticks, mix, money, rates, read_pids},
    driver::{self, Driven, Model, Window},
    stats::{self, Latency, Stats},
};

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The banks' base URLs with their codes, `code=url`.
    pub banks: Vec<(String, String)>,
    pub users: usize,
    pub initial_deposit: String,
    pub many_to_one_pct: f64,
    pub decide_deadline_secs: u64,
    pub pids_dir: PathBuf,
    pub cpu_idle_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub driven: Driven,
    pub accepted: u64,
    pub refused: BTreeMap<String, u64>,
    pub settled: u64,
    pub failed: BTreeMap<String, u64>,
    /// Transfers decided (SETTLED) per second over the load window, by their server timestamps.
    pub settled_per_s: f64,
    pub latency: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
    pub cpu_ms_per_transfer: Option<f64>,
    pub cpu_s: BTreeMap<String, f64>,
    pub violations: Vec<String>,
}

struct User {
    token: String,
    /// [bank index] = (account id, number)
    accounts: Vec<(String, String)>,
}

/// (starting bank index, transfer id) of every accepted transfer.
type Accepted = Arc<Mutex<Vec<(usize, usize, String)>>>;

pub async fn run(api: Api, model: Model, window: Window, settings: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(settings.banks.len() >= 2, "--banks needs at least two banks");
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let initial: Decimal = settings.initial_deposit.parse().context("--initial-deposit")?;
    let http = api.http.clone();
    for (code, url) in &settings.banks {
        let ready = http.get(format!("{url}/health/ready")).send().await.with_context(|| format!("bank {code} at {url}"))?;
        anyhow::ensure!(ready.status().is_success(), "bank {code} at {url} is not ready");
    }

    // Users and their accounts, funded.
    eprintln!("[interbank] run {run_id}: {} users × {} banks", settings.users, settings.banks.len());
    let users: Vec<User> = stream::iter(0..settings.users)
        .map(|k| {
            let (http, banks, token) = (http.clone(), settings.banks.clone(), api.tokens.user(&format!("lg-ib-{run_id}-{k}")));
            let deposit = settings.initial_deposit.clone();
            async move {
                let mut accounts = Vec::new();
                for (_, url) in &banks {
                    let a = post(&http, &format!("{url}/accounts"), &token, &json!({"type": "individual", "currency": "BRL", "document": cpf(mix(k as u64) % 999_999_999)})).await?;
                    let id = a["id"].as_str().context("account id")?.to_string();
                    post(&http, &format!("{url}/accounts/{id}/operations"), &token, &json!({"type": "deposit", "amount": deposit})).await?;
                    accounts.push((id, a["number"].as_str().context("account number")?.to_string()));
                }
                anyhow::Ok(User { token, accounts })
            }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    for u in &users {
        for (b, (id, _)) in u.accounts.iter().enumerate() {
            while balance(&http, &settings.banks[b].1, &u.token, id).await?.0 != initial {
                anyhow::ensure!(Instant::now() < deadline, "the initial deposits were not applied within 120 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let users = Arc::new(users);

    let pids = read_pids(&settings.pids_dir);
    let idle = if pids.is_empty() || settings.cpu_idle_secs <= 0.0 {
        None
    } else {
        let (a, t) = (cpu_ticks(&pids), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(settings.cpu_idle_secs)).await;
        Some(rates(&a, &cpu_ticks(&pids), t.elapsed().as_secs_f64()))
    };
    let cpu_start = (cpu_ticks(&pids), Instant::now());

    let stats = Stats::new();
    let accepted: Accepted = Arc::default();
    let refused: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let progress = stats::progress(stats.clone(), "interbank".into(), "accept");
    let driven = {
        let (users, stats, accepted, refused, settings) = (users.clone(), stats.clone(), accepted.clone(), refused.clone(), settings.clone());
        let http = http.clone();
        driver::run(model, window, stats.clone(), move |op| {
            let (users, stats, accepted, refused, settings, http) = (users.clone(), stats.clone(), accepted.clone(), refused.clone(), settings.clone(), http.clone());
            async move {
                let n = op.seq as usize;
                let banks = settings.banks.len();
                let payer = n % users.len();
                let payee = (payer + 1 + (mix(op.seq) as usize % (users.len() - 1).max(1))) % users.len();
                let cents = 1 + mix(op.seq ^ 0x5a5a) % 100;
                let amount = money(cents as i64);
                let many = (mix(op.seq ^ 0xa5) % 10_000) as f64 / 100.0 < settings.many_to_one_pct;
                let from = n % banks;
                let to = (from + 1 + (mix(op.seq ^ 0x77) as usize % (banks - 1))) % banks;
                let destination = json!({"bank": settings.banks[to].0, "account_number": users[payee].accounts[to].1});
                let body = if many {
                    let sources: Vec<Value> =
                        (0..banks).map(|b| json!({"bank": settings.banks[b].0, "account_id": users[payer].accounts[b].0, "amount": amount})).collect();
                    json!({"kind": "instant", "sources": sources, "to": destination})
                } else {
                    json!({"kind": "instant", "from_account": users[payer].accounts[from].0, "to": destination, "amount": amount})
                };
                let started = Instant::now();
                let res = http
                    .post(format!("{}/transfers", settings.banks[from].1))
                    .header("authorization", format!("Bearer {}", users[payer].token))
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 202 || r.status().as_u16() == 201 => {
                        stats.record("accept", started.elapsed());
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(id) = v["id"].as_str() {
                            accepted.lock().unwrap().push((from, payer, id.to_string()));
                        }
                        true
                    }
                    Ok(r) if r.status().as_u16() == 422 => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        *refused.lock().unwrap().entry(v["code"].as_str().unwrap_or("?").to_string()).or_default() += 1;
                        true
                    }
                    Ok(r) => {
                        stats.error(format!("transfer {}", r.status().as_u16()));
                        false
                    }
                    Err(e) => {
                        stats.error(api::error_key("transfer", &e));
                        false
                    }
                }
            }
        })
        .await
    };
    progress.abort();

    // Every accepted transfer to its decision; the decision latency from its server timestamps.
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    let decided_by = Instant::now() + Duration::from_secs(settings.decide_deadline_secs);
    let mut decide = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut settled, mut failed, mut settled_in_window) = (0u64, BTreeMap::<String, u64>::new(), 0u64);
    let mut violations = Vec::new();
    let mut last_decided: Option<DateTime<Utc>> = None;
    let views: Vec<anyhow::Result<Option<Value>>> = stream::iter(accepted.iter().cloned())
        .map(|(bank, payer, id)| {
            let (http, url, token) = (http.clone(), settings.banks[bank].1.clone(), users[payer].token.clone());
            async move {
                loop {
                    let v: Value = http.get(format!("{url}/transfers/{id}")).header("authorization", format!("Bearer {token}")).send().await?.json().await?;
                    if v["status"] == "SETTLED" || v["status"] == "FAILED" {
                        return Ok(Some(v));
                    }
                    if Instant::now() > decided_by {
                        return Ok(None);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for v in views {
        let Some(v) = v? else {
            violations.push("a transfer was not decided within the deadline".into());
            continue;
        };
        let at = |status: &str| v["history"].as_array().and_then(|h| h.iter().find(|e| e["status"] == status)).and_then(|e| e["at"].as_str()?.parse::<DateTime<Utc>>().ok());
        let (Some(start), Some(end)) = (at("PROCESSING"), at(v["status"].as_str().unwrap_or_default())) else { continue };
        decide.saturating_record(((end - start).num_microseconds().unwrap_or(0).max(1)) as u64);
        last_decided = last_decided.max(Some(end));
        if v["status"] == "SETTLED" {
            settled += 1;
            if end <= driven.ended_at && end >= driven.measured_from {
                settled_in_window += 1;
            }
        } else {
            *failed.entry(v["reason"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
    }
    let cpu_secs = cpu_start.1.elapsed().as_secs_f64();
    let cpu_s = rates(&cpu_start.0, &cpu_ticks(&pids), 1.0);

    // No hold left, money conserved across the banks, clearing nets to zero.
    let mut total = Decimal::ZERO;
    for u in users.iter() {
        for (b, (id, _)) in u.accounts.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (available, held) = balance(&http, &settings.banks[b].1, &u.token, id).await?;
                if held.is_zero() {
                    total += available;
                    break;
                }
                if Instant::now() > deadline {
                    violations.push(format!("account {id} at bank {} still holds {held}", settings.banks[b].0));
                    total += available + held;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let opened = initial * Decimal::from(users.len() * settings.banks.len());
    if total != opened {
        violations.push(format!("money is not conserved: {total} in the accounts, {opened} deposited"));
    }
    let mut positions: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for (code, url) in &settings.banks {
        let list: Value = http.get(format!("{url}/admin/clearing")).send().await?.json().await?;
        for p in list.as_array().into_iter().flatten() {
            let balance: Decimal = p["balance"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
            *positions.entry((code.clone(), p["peer"].as_str().unwrap_or_default().to_string())).or_default() += balance;
        }
    }
    for ((a, b), v) in &positions {
        if !(*v + positions.get(&(b.clone(), a.clone())).copied().unwrap_or_default()).is_zero() {
            violations.push(format!("clearing {a}→{b} does not mirror {b}→{a}"));
        }
    }

    let mut latency = stats.latencies();
    latency.insert("decide".into(), Latency::of(&decide));
    let net: BTreeMap<String, f64> = cpu_s
        .iter()
        .filter(|(k, _)| k.as_str() != "loadgen")
        // A process busier while "idle" than under the load (a broker compacting after an earlier
        // run) would go negative: counted as zero rather than subtracted from the others.
        .map(|(k, v)| (k.clone(), (v - idle.as_ref().and_then(|i| i.get(k)).copied().unwrap_or(0.0) * cpu_secs).max(0.0)))
        .collect();
    let cpu_ms_per_transfer = (!pids.is_empty() && !accepted.is_empty()).then(|| net.values().sum::<f64>() * 1000.0 / accepted.len() as f64);
    Ok(Report {
        driven: driven.clone(),
        accepted: accepted.len() as u64,
        refused: std::mem::take(&mut *refused.lock().unwrap()),
        settled,
        failed,
        settled_per_s: settled_in_window as f64 / driven.measured_secs.max(1e-9),
        latency,
        errors: stats.errors(),
        cpu_ms_per_transfer,
        cpu_s: net,
        violations,
        settings,
    })
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
    let res = http.post(url).header("authorization", format!("Bearer {token}")).header("idempotency-key", uuid::Uuid::new_v4().to_string()).json(body).send().await?;
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "POST {url}: {status} {v}");
    Ok(v)
}

async fn balance(http: &reqwest::Client, url: &str, token: &str, id: &str) -> anyhow::Result<(Decimal, Decimal)> {
    let v: Value = http.get(format!("{url}/accounts/{id}")).header("authorization", format!("Bearer {token}")).send().await?.json().await?;
    let d = |k: &str| v[k].as_str().and_then(|s| s.parse().ok()).with_context(|| format!("account {id}: {v}"));
    Ok((d("available")?, d("held")?))
}
