//! The `bank` scenario: deposits and withdrawals through the per-account queue
//! (`POST /accounts/{id}/operations`, 202 QUEUED) and instant transfers between the run's own
//! accounts (`POST /transfers`, 201 SETTLED), then — after the load — every queued operation
//! followed to APPLIED/REJECTED and the exactly-once and conservation checks, all through the API.
//!
//! Setup: `--accounts` simulated users (`lg-bank-<run>-<k>`, tokens signed by loadgen like the
//! payments scenario), each opening one individual BRL account with a valid CPF and funding it with
//! an initial deposit that is waited for (APPLIED). Operation `n` of the load belongs to account
//! `n mod accounts` (round robin), so each user sends `rate / accounts` requests per second: the
//! bank's per-user limit (`USER_RATE_PER_SEC` 20, burst 40 by default) is met only above
//! 20 × accounts operations/s; 429s are counted on their own (`rate_limited`), never hidden.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
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

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub accounts: usize,
    /// Each account's first deposit, in BRL.
    pub initial_deposit: String,
    pub deposit_pct: f64,
    pub withdrawal_pct: f64,
    /// 100 − deposits − withdrawals.
    pub transfer_pct: f64,
    /// Share of withdrawals that ask for far more than any balance (REJECTED insufficient_funds).
    pub oversized_withdrawal_pct: f64,
    /// Accepted requests replayed with their Idempotency-Key after the load (must answer the same).
    pub replays: usize,
    pub terminal_deadline_secs: u64,
    pub check: bool,
    /// Where the stack's `<component>.pid` files are (CPU per operation); empty: not measured.
    pub pids_dir: PathBuf,
    /// Seconds of idle CPU measured before the load (subtracted from the load's CPU).
    pub cpu_idle_secs: f64,
}

/// What an operation of the load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Deposit,
    Withdrawal,
    Transfer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deposit => "deposit",
            Kind::Withdrawal => "withdrawal",
            Kind::Transfer => "transfer",
        }
    }

    fn accept_metric(self) -> &'static str {
        match self {
            Kind::Deposit => "accept deposit",
            Kind::Withdrawal => "accept withdrawal",
            Kind::Transfer => "accept transfer",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested below)

/// splitmix64: a well-mixed hash of `x` (deterministic operation mixes and amounts).
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mod11(digits: &[u32], first_weight: u32) -> u32 {
    let sum: u32 = digits.iter().zip((2..=first_weight).rev()).map(|(d, w)| d * w).sum();
    let r = sum % 11;
    if r < 2 { 0 } else { 11 - r }
}

/// A valid CPF (`123.456.789-09`) for `n`: nine base digits from `n`, then the two mod-11 check
/// digits (weights 10…2, then 11…2). Bases of one repeated digit (valid arithmetic, never issued,
/// refused by the bank) are skipped.
pub fn cpf(n: u64) -> String {
    let mut base = n % 1_000_000_000;
    loop {
        let mut d: Vec<u32> = format!("{base:09}").chars().map(|c| c.to_digit(10).expect("digit")).collect();
        if d.iter().any(|x| *x != d[0]) {
            d.push(mod11(&d, 10));
            d.push(mod11(&d, 11));
            let s: String = d.iter().map(|x| char::from_digit(*x, 10).expect("digit")).collect();
            return format!("{}.{}.{}-{}", &s[0..3], &s[3..6], &s[6..9], &s[9..11]);
        }
        base = (base + 1) % 1_000_000_000;
    }
}

/// Whether `text` is a valid CPF (the bank's rule: 11 digits, not all the same, both check digits).
pub fn cpf_valid(text: &str) -> bool {
    let d: Vec<u32> = text.chars().filter(|c| !matches!(c, '.' | '-')).filter_map(|c| c.to_digit(10)).collect();
    d.len() == 11 && d.iter().any(|x| *x != d[0]) && d[9] == mod11(&d[..9], 10) && d[10] == mod11(&d[..10], 11)
}

/// The kind of operation `seq` (an evenly spread deterministic mix).
pub fn kind_of(seq: u64, deposit_pct: f64, withdrawal_pct: f64) -> Kind {
    let u = (mix(seq ^ 0x6B69_6E64) % 10_000) as f64 / 100.0;
    if u < deposit_pct {
        Kind::Deposit
    } else if u < deposit_pct + withdrawal_pct {
        Kind::Withdrawal
    } else {
        Kind::Transfer
    }
}

/// The amount of operation `seq`, in cents: deposits 1.00–50.00, withdrawals 1.00–60.00 (or
/// 999 999.00 for the oversized share), transfers 0.01–20.00 (far below the bank's night limit of
/// 1 000.00 per instant transfer of an individual account).
pub fn amount_cents(seq: u64, kind: Kind, oversized_withdrawal_pct: f64) -> i64 {
    let h = mix(seq ^ 0x616D_6F75);
    match kind {
        Kind::Deposit => 100 + (h % 4_901) as i64,
        Kind::Withdrawal if ((h >> 32) % 10_000) as f64 / 100.0 < oversized_withdrawal_pct => 99_999_900,
        Kind::Withdrawal => 100 + (h % 5_901) as i64,
        Kind::Transfer => 1 + (h % 2_000) as i64,
    }
}

/// The account a transfer of operation `seq` from account `from` goes to (never `from`; `n` ≥ 2).
pub fn destination(seq: u64, from: usize, n: usize) -> usize {
    (from + 1 + (mix(seq ^ 0x746F) % (n as u64 - 1)) as usize) % n
}

/// `cents` as the API's decimal string (`12.34`).
pub fn money(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

/// Sequence numbers that should be 1..=n: (missing, seen more than once).
pub fn seq_gaps(seqs: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let mut seen = BTreeMap::<i64, usize>::new();
    for &s in seqs {
        *seen.entry(s).or_default() += 1;
    }
    let max = seen.keys().next_back().copied().unwrap_or(0).max(seqs.len() as i64);
    let missing = (1..=max).filter(|s| !seen.contains_key(s)).collect();
    let dup = seen.iter().filter(|(_, n)| **n > 1).map(|(s, _)| *s).collect();
    (missing, dup)
}

/// One account's money as the run saw it move (APPLIED operations, SETTLED transfers) and as the
/// bank shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountMoney {
    /// APPLIED deposits, the initial one included.
    pub deposits: Decimal,
    pub withdrawals: Decimal,
    pub transfers_out: Decimal,
    pub transfers_in: Decimal,
    /// `GET /accounts/{id}`: available and held.
    pub available: Decimal,
    pub held: Decimal,
}

impl AccountMoney {
    pub fn expected(&self) -> Decimal {
        self.deposits - self.withdrawals - self.transfers_out + self.transfers_in
    }

    pub fn ledger(&self) -> Decimal {
        self.available + self.held
    }
}

/// The conservation figures: Σ deposits (initial included) − Σ withdrawals must equal Σ balances
/// (transfers only move money between the run's accounts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conservation {
    pub deposits: String,
    pub withdrawals: String,
    pub transfers_out: String,
    pub transfers_in: String,
    pub balances: String,
    pub holds: bool,
}

pub fn conservation(accounts: &[AccountMoney]) -> Conservation {
    let sum = |f: &dyn Fn(&AccountMoney) -> Decimal| accounts.iter().map(f).sum::<Decimal>();
    let (dep, wd, out, inn, bal) = (sum(&|a| a.deposits), sum(&|a| a.withdrawals), sum(&|a| a.transfers_out), sum(&|a| a.transfers_in), sum(&|a| a.ledger()));
    Conservation {
        deposits: dep.normalize().to_string(),
        withdrawals: wd.normalize().to_string(),
        transfers_out: out.normalize().to_string(),
        transfers_in: inn.normalize().to_string(),
        balances: bal.normalize().to_string(),
        holds: dep - wd == bal && out == inn,
    }
}

/// Violations of the money rules: negative balances, an account whose balance is not what its
/// movements make it, the total not conserved.
pub fn money_violations(accounts: &[(String, AccountMoney)]) -> Vec<String> {
    let mut v = Vec::new();
    for (id, a) in accounts {
        if a.available < Decimal::ZERO || a.held < Decimal::ZERO {
            v.push(format!("account {id}: negative balance (available {}, held {})", a.available, a.held));
        }
        if a.held != Decimal::ZERO {
            v.push(format!("account {id}: held {} but this run holds nothing", a.held));
        }
        if a.ledger() != a.expected() {
            v.push(format!(
                "account {id}: balance {} ≠ deposits {} − withdrawals {} − transfers out {} + transfers in {} = {}",
                a.ledger(),
                a.deposits,
                a.withdrawals,
                a.transfers_out,
                a.transfers_in,
                a.expected()
            ));
        }
    }
    let only: Vec<AccountMoney> = accounts.iter().map(|(_, a)| a.clone()).collect();
    let c = conservation(&only);
    if !c.holds {
        v.push(format!(
            "not conserved: deposits {} − withdrawals {} ≠ Σ balances {} (transfers out {}, in {})",
            c.deposits, c.withdrawals, c.balances, c.transfers_out, c.transfers_in
        ));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The run

/// One of the run's accounts.
#[derive(Debug, Clone)]
struct Acct {
    id: String,
    number: String,
    bank: String,
    token: String,
}

/// A queued operation the bank accepted (202).
#[derive(Debug, Clone)]
struct Queued {
    id: String,
    account: usize,
    seq: i64,
    kind: Kind,
    cents: i64,
    measured: bool,
    /// The request, for the idempotent replay check.
    key: String,
    body: Value,
}

/// A transfer the bank settled (201).
#[derive(Debug, Clone)]
struct Settled {
    id: String,
    from: usize,
    to: usize,
    cents: i64,
    status: String,
    key: String,
    body: Value,
}

/// A request whose outcome the client could not learn (transport error, 5xx): resolved after the
/// load by sending it again with the same Idempotency-Key.
#[derive(Debug, Clone)]
struct Unknown {
    seq: u64,
    account: usize,
    to: usize,
    kind: Kind,
    cents: i64,
    key: String,
    body: Value,
}

#[derive(Default)]
struct Outcomes {
    queued: Vec<Queued>,
    settled: Vec<Settled>,
    unknown: Vec<Unknown>,
    refused: BTreeMap<String, u64>,
    rate_limited: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Requests started per second of the load window (open model: the offered rate).
    pub started_per_s: f64,
    /// 202 + 201 answers per second of the measured window.
    pub accepted_per_s: f64,
    pub accepted_per_s_by_kind: BTreeMap<String, f64>,
    /// Queued operations that reached APPLIED/REJECTED inside the measured window, per second.
    pub terminal_per_s_in_window: f64,
    /// Seconds from the end of the load window to the last queued operation becoming terminal.
    pub drain_after_load_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Correctness {
    pub accounts: usize,
    pub operations: usize,
    pub applied: usize,
    pub rejected: usize,
    pub not_terminal: usize,
    pub transfers_settled: usize,
    pub unknown_outcomes_resolved: usize,
    pub unknown_outcomes_unresolved: usize,
    pub replays: usize,
    pub conservation: Conservation,
    pub violations: Vec<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Cpu {
    /// Measured over the load window and the drain (load start → last operation terminal).
    pub seconds: f64,
    /// CPU-seconds of each process in that time.
    pub cpu_s: BTreeMap<String, f64>,
    /// Each process's idle use (cores) measured just before the load.
    pub idle_cores: BTreeMap<String, f64>,
    /// cpu_s − idle_cores × seconds.
    pub net_cpu_s: BTreeMap<String, f64>,
    /// Σ net CPU of the stack processes (loadgen excluded) ÷ accepted requests, in CPU-ms.
    pub net_cpu_ms_per_request: f64,
    pub net_cpu_ms_per_request_by_process: BTreeMap<String, f64>,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub model: Model,
    pub settings: Settings,
    pub driven: Driven,
    pub throughput: Throughput,
    /// accept <kind>: request sent → 202/201; from_schedule: scheduled time → answer (any 2xx);
    /// queued_to_terminal / queued_to_applied: the operation's history (QUEUED → APPLIED/REJECTED, server timestamps).
    pub latency: BTreeMap<String, Latency>,
    /// Transport errors and unexpected statuses (429s are in `rate_limited`, business refusals in `refused`).
    pub errors: BTreeMap<String, u64>,
    /// 422 answers with a business code (e.g. `transfer insufficient_funds`).
    pub refused: BTreeMap<String, u64>,
    /// 429 answers (the per-user rate limit).
    pub rate_limited: u64,
    pub cpu: Option<Cpu>,
    pub correctness: Option<Correctness>,
}

pub async fn run(api: Api, model: Model, window: Window, settings: Settings) -> anyhow::Result<Report> {
    api.check_ready(&["bank"]).await?;
    let n = settings.accounts;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let per_user = match model {
        Model::Open { rate } => format!("{:.1} requests/s per user", rate / n as f64),
        Model::Closed { concurrency } => format!("{concurrency} workers over {n} users"),
    };
    eprintln!("[bank] run {run_id}: opening {n} accounts ({per_user}; the bank's default per-user limit is 20/s, burst 40)");
    let initial_cents = (Decimal::from_str_exact(&settings.initial_deposit).context("--initial-deposit")? * Decimal::from(100)).trunc();
    let initial_cents = i64::try_from(initial_cents).context("--initial-deposit")?;

    // Setup: one user and one individual account each, funded.
    let salt = mix(u64::from_str_radix(&run_id, 16).unwrap_or(0));
    let accts: Vec<Acct> = stream::iter(0..n)
        .map(|k| {
            let api = api.clone();
            let user = format!("lg-bank-{run_id}-{k}");
            let doc = cpf(mix(salt ^ k as u64));
            async move {
                anyhow::ensure!(cpf_valid(&doc), "generated an invalid CPF {doc}");
                let token = api.tokens.user(&user);
                let r = api
                    .http
                    .post(format!("{}/accounts", api.bank))
                    .bearer_auth(&token)
                    .json(&json!({"type": "individual", "currency": "BRL", "document": doc}))
                    .send()
                    .await?;
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                anyhow::ensure!(status.as_u16() == 201, "POST /accounts answered {status}: {body}");
                Ok(Acct {
                    id: body["id"].as_str().context("account id")?.to_string(),
                    number: body["number"].as_str().context("account number")?.to_string(),
                    bank: body["bank"].as_str().unwrap_or("001").to_string(),
                    token,
                })
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let accts = Arc::new(accts);
    let mut initial: Vec<Queued> = Vec::new();
    for (k, a) in accts.iter().enumerate() {
        let key = format!("lg-{run_id}-init-{k}");
        let body = json!({"type": "deposit", "amount": money(initial_cents)});
        let (status, v) = post(&api, &format!("{}/accounts/{}/operations", api.bank, a.id), &a.token, &key, &body).await?;
        anyhow::ensure!(status == 202, "initial deposit answered {status}: {v}");
        initial.push(Queued {
            id: v["operation_id"].as_str().context("operation_id")?.to_string(),
            account: k,
            seq: v["seq"].as_i64().context("seq")?,
            kind: Kind::Deposit,
            cents: initial_cents,
            measured: false,
            key,
            body,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for q in &initial {
        loop {
            let v = operation(&api, &q.id).await?;
            match v.as_ref().and_then(|v| v["status"].as_str()) {
                Some("APPLIED") => break,
                Some("QUEUED") | None => {
                    anyhow::ensure!(Instant::now() < deadline, "initial deposit {} not APPLIED after 60 s", q.id);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(other) => anyhow::bail!("initial deposit {} is {other}", q.id),
            }
        }
    }
    eprintln!("[bank] {n} accounts funded with {} each", money(initial_cents));

    // CPU: idle rates first, then a snapshot at the start of the load.
    let pids = read_pids(&settings.pids_dir);
    let idle = if pids.is_empty() || settings.cpu_idle_secs <= 0.0 {
        None
    } else {
        let a = cpu_ticks(&pids);
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(settings.cpu_idle_secs)).await;
        let b = cpu_ticks(&pids);
        Some(rates(&a, &b, t.elapsed().as_secs_f64()))
    };
    let cpu_start = (cpu_ticks(&pids), Instant::now());

    let stats = Stats::new();
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let progress = stats::progress(stats.clone(), "bank".into(), "from_schedule");
    let driven = {
        let (api, stats, outcomes, accts, settings, run_id) = (api.clone(), stats.clone(), outcomes.clone(), accts.clone(), settings.clone(), run_id.clone());
        driver::run(model, window, stats.clone(), move |op| {
            let (api, stats, outcomes, accts, settings, run_id) = (api.clone(), stats.clone(), outcomes.clone(), accts.clone(), settings.clone(), run_id.clone());
            async move {
                let n = accts.len();
                let k = (op.seq % n as u64) as usize;
                let kind = kind_of(op.seq, settings.deposit_pct, settings.withdrawal_pct);
                let cents = amount_cents(op.seq, kind, settings.oversized_withdrawal_pct);
                let to = destination(op.seq, k, n);
                let key = format!("lg-{run_id}-{}", op.seq);
                let (url, body) = request(&api, &accts, k, to, kind, cents);
                let sent = Instant::now();
                let r = api.http.post(&url).bearer_auth(&accts[k].token).header("Idempotency-Key", &key).json(&body).send().await;
                let (status, v) = match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        (s, r.json::<Value>().await.unwrap_or(Value::Null))
                    }
                    Err(e) => {
                        stats.error(api::error_key(kind.name(), &e));
                        outcomes.lock().unwrap().unknown.push(Unknown { seq: op.seq, account: k, to, kind, cents, key, body });
                        return false;
                    }
                };
                let done = Instant::now();
                let ok = (kind == Kind::Transfer && status == 201) || (kind != Kind::Transfer && status == 202);
                if ok && op.measured {
                    stats.record(kind.accept_metric(), done - sent);
                    stats.record("from_schedule", done - op.scheduled);
                }
                let mut o = outcomes.lock().unwrap();
                match classify(kind, status, &v) {
                    Answer::Queued { id, seq } => {
                        o.queued.push(Queued { id, account: k, seq, kind, cents, measured: op.measured, key, body });
                        true
                    }
                    Answer::Settled { id, status } => {
                        o.settled.push(Settled { id, from: k, to, cents, status, key, body });
                        true
                    }
                    Answer::Refused(code) => {
                        *o.refused.entry(format!("{} {code}", kind.name())).or_default() += 1;
                        true
                    }
                    Answer::RateLimited => {
                        o.rate_limited += 1;
                        false
                    }
                    Answer::Unknown => {
                        stats.error(format!("{} {status}", kind.name()));
                        o.unknown.push(Unknown { seq: op.seq, account: k, to, kind, cents, key, body });
                        false
                    }
                    Answer::Failed => {
                        stats.error(format!("{} {status}", kind.name()));
                        false
                    }
                }
            }
        })
        .await
    };
    progress.abort();
    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    eprintln!(
        "[bank] load done: {} requests, {} queued, {} transfers settled, {} refused, {} rate-limited (429), {} unknown",
        driven.operations,
        outcomes.queued.len(),
        outcomes.settled.len(),
        outcomes.refused.values().sum::<u64>(),
        outcomes.rate_limited,
        outcomes.unknown.len()
    );

    // Unknown outcomes: ask again with the same key (the bank answers what it did, or does it once).
    let unknown = std::mem::take(&mut outcomes.unknown);
    let mut unresolved = 0usize;
    let resolved = unknown.len();
    for u in unknown {
        let url = request(&api, &accts, u.account, u.to, u.kind, u.cents).0;
        let mut answer = Answer::Unknown;
        for _ in 0..5 {
            if let Ok((status, v)) = post(&api, &url, &accts[u.account].token, &u.key, &u.body).await {
                answer = classify(u.kind, status, &v);
                if !matches!(answer, Answer::Unknown | Answer::RateLimited) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match answer {
            Answer::Queued { id, seq } => outcomes.queued.push(Queued {
                id,
                account: u.account,
                seq,
                kind: u.kind,
                cents: u.cents,
                measured: false,
                key: u.key,
                body: u.body,
            }),
            Answer::Settled { id, status } => outcomes.settled.push(Settled { id, from: u.account, to: u.to, cents: u.cents, status, key: u.key, body: u.body }),
            Answer::Refused(_) | Answer::Failed => {}
            Answer::Unknown | Answer::RateLimited => {
                eprintln!("[bank] request {} ({}) still has no answer", u.seq, u.key);
                unresolved += 1;
            }
        }
    }
    let resolved = resolved - unresolved;

    // Follow every queued operation to APPLIED/REJECTED: first only the last accepted one (it is
    // about the last to apply; sweeping thousands while the queue drains would load the bank being
    // measured), then every operation once (and again for those still QUEUED).
    let until = Instant::now() + Duration::from_secs(settings.terminal_deadline_secs);
    if let Some(last) = outcomes.queued.last() {
        while Instant::now() < until {
            let v = operation(&api, &last.id).await.ok().flatten();
            if v.as_ref().and_then(|v| v["status"].as_str()).is_some_and(|s| s != "QUEUED") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let cpu_end = (cpu_ticks(&pids), Instant::now());
    let mut all: Vec<Queued> = initial.clone();
    all.extend(outcomes.queued.iter().cloned());
    let finals = follow(&api, &all, until).await;

    // Latencies from the operations' own history.
    let mut to_terminal = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut to_applied = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut last_terminal: Option<DateTime<Utc>> = None;
    let mut terminal_in_window = 0u64;
    for (q, f) in all.iter().zip(&finals) {
        let Some(f) = f else { continue };
        let (Some(acc), Some(term)) = (f.queued_at, f.terminal_at) else { continue };
        if q.measured {
            let us = (term - acc).num_microseconds().unwrap_or(0).max(1) as u64;
            to_terminal.saturating_record(us);
            if f.status == "APPLIED" {
                to_applied.saturating_record(us);
            }
        }
        if q.key.contains("-init-") {
            continue;
        }
        last_terminal = Some(last_terminal.map_or(term, |x| x.max(term)));
        if term >= driven.measured_from && term < driven.ended_at {
            terminal_in_window += 1;
        }
    }
    let mut latency = stats.latencies();
    latency.insert("queued_to_terminal".into(), Latency::of(&to_terminal));
    latency.insert("queued_to_applied".into(), Latency::of(&to_applied));
    let window_secs = driven.measured_secs.max(1e-9);
    let load_secs = (driven.ended_at - driven.started_at).num_milliseconds() as f64 / 1000.0;
    let by_kind: BTreeMap<String, f64> =
        [Kind::Deposit, Kind::Withdrawal, Kind::Transfer].iter().map(|k| (k.name().to_string(), stats.latency(k.accept_metric()).count as f64 / window_secs)).collect();
    let throughput = Throughput {
        started_per_s: driven.operations as f64 / load_secs.max(1e-9),
        accepted_per_s: by_kind.values().sum(),
        accepted_per_s_by_kind: by_kind,
        terminal_per_s_in_window: terminal_in_window as f64 / window_secs,
        drain_after_load_s: last_terminal.map_or(0.0, |t| (t - driven.ended_at).num_milliseconds() as f64 / 1000.0),
    };

    let requests = (outcomes.queued.len() + outcomes.settled.len()) as u64;
    let cpu = (!pids.is_empty()).then(|| {
        let secs = cpu_end.1.duration_since(cpu_start.1).as_secs_f64();
        let used = rates(&cpu_start.0, &cpu_end.0, 1.0);
        let idle = idle.unwrap_or_default();
        let net: BTreeMap<String, f64> = used.iter().map(|(k, v)| (k.clone(), (v - idle.get(k).copied().unwrap_or(0.0) * secs).max(0.0))).collect();
        let per = |x: f64| if requests == 0 { 0.0 } else { x * 1000.0 / requests as f64 };
        let stack_net: f64 = net.iter().filter(|(k, _)| *k != "loadgen").map(|(_, v)| v).sum();
        Cpu {
            seconds: secs,
            net_cpu_ms_per_request: per(stack_net),
            net_cpu_ms_per_request_by_process: net.iter().map(|(k, v)| (k.clone(), per(*v))).collect(),
            cpu_s: used,
            idle_cores: idle,
            net_cpu_s: net,
            requests,
        }
    });

    let correctness = if settings.check {
        let mut c = check(&api, &accts, &all, &finals, &outcomes.settled, settings.replays).await?;
        c.unknown_outcomes_resolved = resolved;
        c.unknown_outcomes_unresolved = unresolved;
        if unresolved > 0 {
            c.violations.push(format!("{unresolved} requests whose outcome could not be learned (transport errors even on replay)"));
            c.ok = false;
        }
        Some(c)
    } else {
        None
    };
    Ok(Report {
        scenario: "bank",
        model,
        settings,
        driven,
        throughput,
        latency,
        errors: stats.errors(),
        refused: outcomes.refused,
        rate_limited: outcomes.rate_limited,
        cpu,
        correctness,
    })
}

/// The URL and body of operation `kind` on account `k` (to account `to` for a transfer).
fn request(api: &Api, accts: &[Acct], k: usize, to: usize, kind: Kind, cents: i64) -> (String, Value) {
    match kind {
        Kind::Transfer => (
            format!("{}/transfers", api.bank),
            json!({"kind": "instant", "from_account": accts[k].id, "to": {"bank": accts[to].bank, "account_number": accts[to].number}, "amount": money(cents)}),
        ),
        _ => (format!("{}/accounts/{}/operations", api.bank, accts[k].id), json!({"type": kind.name(), "amount": money(cents)})),
    }
}

enum Answer {
    Queued { id: String, seq: i64 },
    Settled { id: String, status: String },
    /// A 422 with a business code (insufficient_funds, limit_exceeded, …).
    Refused(String),
    RateLimited,
    /// No answer we can trust (5xx, or a 2xx without the expected fields): it may have happened.
    Unknown,
    /// A definite refusal that is not a business rule (400, 404, 409, other 4xx): nothing happened.
    Failed,
}

fn classify(kind: Kind, status: u16, v: &Value) -> Answer {
    match (kind, status) {
        (Kind::Transfer, 201) => match v["id"].as_str() {
            Some(id) => Answer::Settled { id: id.to_string(), status: v["status"].as_str().unwrap_or("").to_string() },
            None => Answer::Unknown,
        },
        (Kind::Deposit | Kind::Withdrawal, 202) => match (v["operation_id"].as_str(), v["seq"].as_i64()) {
            (Some(id), Some(seq)) => Answer::Queued { id: id.to_string(), seq },
            _ => Answer::Unknown,
        },
        (_, 422) if v["code"].as_str().is_some_and(|c| c != "validation_failed" && c != "idempotency_key_reused") => {
            Answer::Refused(v["code"].as_str().unwrap_or("").to_string())
        }
        (_, 429) => Answer::RateLimited,
        (_, s) if s >= 500 => Answer::Unknown,
        _ => Answer::Failed,
    }
}

/// POST with a user's token and an Idempotency-Key → (status, body).
async fn post(api: &Api, url: &str, token: &str, key: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = api.http.post(url).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// `GET /operations/{id}` (operator token) → the operation, or None on 404.
async fn operation(api: &Api, id: &str) -> anyhow::Result<Option<Value>> {
    let r = api.http.get(format!("{}/operations/{id}", api.bank)).send().await?;
    if r.status().as_u16() == 404 {
        return Ok(None);
    }
    anyhow::ensure!(r.status().is_success(), "GET /operations/{id} answered {}", r.status());
    Ok(Some(r.json().await?))
}

/// An operation's final state as `GET /operations/{id}` shows it.
#[derive(Debug, Clone)]
struct Final {
    status: String,
    reason: Option<String>,
    seq: i64,
    kind: String,
    amount: Decimal,
    queued_at: Option<DateTime<Utc>>,
    terminal_at: Option<DateTime<Utc>>,
    /// Statuses in history order.
    history: Vec<String>,
}

fn parse_final(v: &Value) -> Option<Final> {
    let entries: Vec<(String, Option<DateTime<Utc>>)> = v["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| Some((e["status"].as_str()?.to_string(), e["at"].as_str().and_then(|s| s.parse().ok())))).collect())
        .unwrap_or_default();
    let at = |want: &dyn Fn(&str) -> bool| entries.iter().find(|(s, _)| want(s)).and_then(|(_, at)| *at);
    Some(Final {
        status: v["status"].as_str()?.to_string(),
        reason: v["reason"].as_str().map(str::to_string),
        seq: v["seq"].as_i64()?,
        kind: v["type"].as_str().unwrap_or("").to_string(),
        amount: api::decimal(&v["amount"]).unwrap_or_default(),
        queued_at: at(&|s| s == "QUEUED"),
        terminal_at: at(&|s| s == "APPLIED" || s == "REJECTED"),
        history: entries.into_iter().map(|(s, _)| s).collect(),
    })
}

/// Reads every operation (8 at a time) until it is terminal or `until` passes.
async fn follow(api: &Api, ops: &[Queued], until: Instant) -> Vec<Option<Final>> {
    let mut finals: Vec<Option<Final>> = vec![None; ops.len()];
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    let mut round = 0;
    while !pending.is_empty() {
        round += 1;
        let results: Vec<(usize, Option<Final>)> = stream::iter(pending.clone())
            .map(|i| {
                let api = api.clone();
                let id = ops[i].id.clone();
                async move { (i, operation(&api, &id).await.ok().flatten().as_ref().and_then(parse_final)) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        pending.clear();
        for (i, f) in results {
            if f.as_ref().is_none_or(|f| f.terminal_at.is_none()) {
                pending.push(i);
            }
            if f.is_some() {
                finals[i] = f;
            }
        }
        pending.sort_unstable();
        if pending.is_empty() || Instant::now() >= until {
            break;
        }
        eprintln!("[bank] round {round}: {} operations not terminal yet", pending.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    finals
}

async fn check(api: &Api, accts: &[Acct], ops: &[Queued], finals: &[Option<Final>], settled: &[Settled], replays: usize) -> anyhow::Result<Correctness> {
    let mut c = Correctness { accounts: accts.len(), operations: ops.len(), transfers_settled: settled.len(), ..Default::default() };
    let mut v: Vec<String> = Vec::new();
    let mut money_of: Vec<AccountMoney> = vec![AccountMoney::default(); accts.len()];

    // Each accepted operation: one id, terminal exactly once, what was asked, in its account's seq order.
    let mut ids = BTreeSet::new();
    for q in ops {
        if !ids.insert(q.id.as_str()) {
            v.push(format!("operation id {} answered for two requests", q.id));
        }
    }
    let mut seqs: Vec<Vec<(i64, Option<DateTime<Utc>>)>> = vec![Vec::new(); accts.len()];
    for (q, f) in ops.iter().zip(finals) {
        let Some(f) = f else {
            c.not_terminal += 1;
            v.push(format!("operation {} (accepted, seq {}) cannot be read", q.id, q.seq));
            continue;
        };
        seqs[q.account].push((q.seq, f.terminal_at));
        if f.seq != q.seq {
            v.push(format!("operation {}: 202 said seq {}, GET says {}", q.id, q.seq, f.seq));
        }
        if f.kind != q.kind.name() || f.amount != Decimal::new(q.cents, 2) {
            v.push(format!("operation {}: asked {} {}, bank has {} {}", q.id, q.kind.name(), money(q.cents), f.kind, f.amount));
        }
        let terminals = f.history.iter().filter(|s| *s == "APPLIED" || *s == "REJECTED").count();
        if f.history.first().map(String::as_str) != Some("QUEUED") || f.history.iter().filter(|s| *s == "QUEUED").count() != 1 {
            v.push(format!("operation {}: history {:?} does not start with one QUEUED", q.id, f.history));
        }
        match f.status.as_str() {
            "APPLIED" => {
                c.applied += 1;
                match q.kind {
                    Kind::Deposit => money_of[q.account].deposits += Decimal::new(q.cents, 2),
                    _ => money_of[q.account].withdrawals += Decimal::new(q.cents, 2),
                }
            }
            "REJECTED" => {
                c.rejected += 1;
                if q.kind != Kind::Withdrawal || f.reason.as_deref() != Some("insufficient_funds") {
                    v.push(format!("operation {}: {} REJECTED ({:?}); only withdrawals may be, for insufficient_funds", q.id, q.kind.name(), f.reason));
                }
            }
            other => {
                c.not_terminal += 1;
                v.push(format!("operation {} (seq {}) is {other}, not APPLIED or REJECTED", q.id, q.seq));
            }
        }
        if f.terminal_at.is_some() && terminals != 1 {
            v.push(format!("operation {}: {terminals} terminal entries in its history {:?}", q.id, f.history));
        }
    }
    for (k, s) in seqs.iter_mut().enumerate() {
        s.sort_by_key(|(seq, _)| *seq);
        let (missing, dup) = seq_gaps(&s.iter().map(|(q, _)| *q).collect::<Vec<_>>());
        if !missing.is_empty() || !dup.is_empty() {
            v.push(format!("account {}: seq not contiguous (missing {missing:?}, duplicated {dup:?})", accts[k].id));
        }
        let mut last: Option<DateTime<Utc>> = None;
        for (seq, at) in s.iter() {
            if let (Some(l), Some(a)) = (last, at)
                && a < &l
            {
                v.push(format!("account {}: seq {seq} applied at {a}, before an earlier seq ({l})", accts[k].id));
            }
            last = at.or(last);
        }
    }

    // Transfers: each 201 SETTLED, distinct ids.
    let mut tids = BTreeSet::new();
    for t in settled {
        if !tids.insert(t.id.as_str()) {
            v.push(format!("transfer id {} answered for two requests", t.id));
        }
        if t.status != "SETTLED" {
            v.push(format!("transfer {}: 201 with status {}", t.id, t.status));
        }
        money_of[t.from].transfers_out += Decimal::new(t.cents, 2);
        money_of[t.to].transfers_in += Decimal::new(t.cents, 2);
    }

    // Replays: the same key and body answer the first answer again and move nothing more.
    let step = (ops.len() + settled.len()).div_ceil(replays.max(1)).max(1);
    let mut replayed = 0;
    let candidates: Vec<(usize, &str, &str, &Value, String)> = ops
        .iter()
        .filter(|q| !q.key.contains("-init-"))
        .map(|q| (q.account, q.id.as_str(), q.key.as_str(), &q.body, request(api, accts, q.account, 0, q.kind, q.cents).0))
        .chain(settled.iter().map(|t| (t.from, t.id.as_str(), t.key.as_str(), &t.body, format!("{}/transfers", api.bank))))
        .step_by(step)
        .take(replays)
        .collect();
    for (k, id, key, body, url) in candidates {
        let r = api.http.post(&url).bearer_auth(&accts[k].token).header("Idempotency-Key", key).json(body).send().await?;
        let replayed_header = r.headers().get("idempotent-replayed").and_then(|h| h.to_str().ok()) == Some("true");
        let status = r.status().as_u16();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        let again = b["operation_id"].as_str().or(b["id"].as_str());
        if !(200..300).contains(&status) || again != Some(id) || !replayed_header {
            v.push(format!("replay of {key}: {status}, id {again:?} (first {id}), Idempotent-Replayed {replayed_header}"));
        }
        replayed += 1;
    }
    c.replays = replayed;

    // Balances, per account and in total.
    let mut lines = Vec::new();
    for (k, a) in accts.iter().enumerate() {
        let r = api.http.get(format!("{}/accounts/{}", api.bank, a.id)).send().await?;
        anyhow::ensure!(r.status().is_success(), "GET /accounts/{} answered {}", a.id, r.status());
        let b: Value = r.json().await?;
        money_of[k].available = api::decimal(&b["available"]).context("available")?;
        money_of[k].held = api::decimal(&b["held"]).context("held")?;
        lines.push((a.id.clone(), money_of[k].clone()));
    }
    c.conservation = conservation(&money_of);
    v.extend(money_violations(&lines));
    c.ok = v.is_empty();
    c.violations = v;
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// CPU of the stack's processes, from /proc (100 ticks per CPU-second on Linux).

pub(crate) fn read_pids(dir: &Path) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    if dir.as_os_str().is_empty() {
        return out;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let (Some(name), Some("pid")) = (p.file_stem().and_then(|s| s.to_str()), p.extension().and_then(|s| s.to_str())) else { continue };
        if let Some(pid) = std::fs::read_to_string(&p).ok().and_then(|s| s.trim().parse().ok())
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            out.insert(name.to_string(), pid);
        }
    }
    if !out.is_empty() {
        out.insert("loadgen".into(), std::process::id());
    }
    out
}

/// utime + stime of `/proc/<pid>/stat` (fields 14 and 15), in ticks.
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn cpu_ticks(pids: &BTreeMap<String, u32>) -> BTreeMap<String, u64> {
    pids.iter().filter_map(|(k, pid)| Some((k.clone(), stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?))).collect()
}

/// CPU-seconds per `secs` between two snapshots.
pub(crate) fn rates(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>, secs: f64) -> BTreeMap<String, f64> {
    b.iter().filter_map(|(k, v)| Some((k.clone(), v.saturating_sub(*a.get(k)?) as f64 / 100.0 / secs.max(1e-9)))).collect()
}

/// The human-readable correctness lines.
pub fn print_check(c: &Correctness) {
    println!("correctness:");
    println!(
        "  {} queued operations ({} APPLIED, {} REJECTED, {} not terminal), {} instant transfers SETTLED, {} accounts",
        c.operations, c.applied, c.rejected, c.not_terminal, c.transfers_settled, c.accounts
    );
    println!("  unknown outcomes resolved by replaying the key: {} (unresolved {}); idempotent replays checked: {}", c.unknown_outcomes_resolved, c.unknown_outcomes_unresolved, c.replays);
    let m = &c.conservation;
    println!(
        "  conservation: deposits {} − withdrawals {} = Σ balances {} ({}); transfers out {} = in {}",
        m.deposits,
        m.withdrawals,
        m.balances,
        if m.holds { "holds" } else { "DOES NOT HOLD" },
        m.transfers_out,
        m.transfers_in
    );
    if c.ok {
        println!("  => CORRECT (every operation terminal exactly once, seq contiguous and applied in order, no negative balance, every account and the total conserved)");
    } else {
        println!("  => NOT CORRECT: {} violation(s)", c.violations.len());
        for x in c.violations.iter().take(50) {
            println!("     - {x}");
        }
        if c.violations.len() > 50 {
            println!("     … and {} more (all in the JSON)", c.violations.len() - 50);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpfs_are_valid_and_distinct() {
        assert!(cpf_valid("529.982.247-25"));
        assert!(!cpf_valid("529.982.247-24"));
        assert!(!cpf_valid("111.111.111-11"));
        assert_eq!(cpf(529_982_247), "529.982.247-25");
        let mut seen = BTreeSet::new();
        for n in 0..5_000u64 {
            let c = cpf(mix(n));
            assert!(cpf_valid(&c), "{c}");
            seen.insert(c);
        }
        assert!(seen.len() > 4_990);
        // A base of one repeated digit is skipped (the bank refuses such documents).
        assert!(cpf_valid(&cpf(111_111_111)));
        assert_ne!(&cpf(111_111_111)[..11], "111.111.111");
        assert!(cpf_valid(&cpf(0)));
    }

    #[test]
    fn the_mix_follows_the_percentages() {
        let mut n = BTreeMap::<&str, u32>::new();
        for seq in 0..100_000 {
            *n.entry(kind_of(seq, 30.0, 30.0).name()).or_default() += 1;
        }
        for (k, want) in [("deposit", 30_000.0), ("withdrawal", 30_000.0), ("transfer", 40_000.0)] {
            let got = n[k] as f64;
            assert!((got - want).abs() < 1_000.0, "{k}: {got}");
        }
        assert!((0..1000).all(|s| kind_of(s, 100.0, 0.0) == Kind::Deposit));
        assert!((0..1000).all(|s| kind_of(s, 0.0, 0.0) == Kind::Transfer));
    }

    #[test]
    fn amounts_stay_in_their_ranges() {
        let mut oversized = 0;
        for seq in 0..50_000 {
            let d = amount_cents(seq, Kind::Deposit, 2.0);
            assert!((100..=5_000).contains(&d));
            let t = amount_cents(seq, Kind::Transfer, 2.0);
            assert!((1..=2_000).contains(&t), "transfers stay far below the night limit");
            match amount_cents(seq, Kind::Withdrawal, 2.0) {
                99_999_900 => oversized += 1,
                w => assert!((100..=6_000).contains(&w)),
            }
        }
        assert!((800..1_200).contains(&oversized), "{oversized}");
        assert!((0..1000).all(|s| amount_cents(s, Kind::Withdrawal, 0.0) != 99_999_900));
        assert_eq!(money(1234), "12.34");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(100_000), "1000.00");
    }

    #[test]
    fn destinations_are_other_accounts() {
        for n in 2..30 {
            for from in 0..n {
                for seq in 0..200 {
                    let to = destination(seq, from, n);
                    assert!(to < n && to != from);
                }
            }
        }
    }

    #[test]
    fn seq_gaps_finds_holes_and_repeats() {
        assert_eq!(seq_gaps(&[1, 2, 3]), (vec![], vec![]));
        assert_eq!(seq_gaps(&[3, 1, 2]), (vec![], vec![]));
        assert_eq!(seq_gaps(&[1, 3]), (vec![2], vec![]));
        assert_eq!(seq_gaps(&[1, 2, 2]), (vec![3], vec![2]));
        assert_eq!(seq_gaps(&[2]), (vec![1], vec![]));
        assert_eq!(seq_gaps(&[]), (vec![], vec![]));
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn conservation_arithmetic() {
        // a: 1000 in, 30 out, sent 50 to b; b: 1000 in, 10 deposit, received 50.
        let a = AccountMoney { deposits: d("1000.00"), withdrawals: d("30.00"), transfers_out: d("50.00"), available: d("920.00"), ..Default::default() };
        let b = AccountMoney { deposits: d("1010.00"), transfers_in: d("50.00"), available: d("1060.00"), ..Default::default() };
        let c = conservation(&[a.clone(), b.clone()]);
        assert!(c.holds);
        assert_eq!(c.balances, "1980");
        assert!(money_violations(&[("a".into(), a.clone()), ("b".into(), b.clone())]).is_empty());

        // A transfer credited twice: b has 50 too much — per account and in total.
        let b2 = AccountMoney { available: d("1110.00"), ..b.clone() };
        let v = money_violations(&[("a".into(), a.clone()), ("b".into(), b2)]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].starts_with("account b: balance 1110.00"));
        assert!(v[1].starts_with("not conserved"));

        // A withdrawal applied twice and an overdraft.
        let a2 = AccountMoney { available: d("-10.00"), ..a.clone() };
        let v = money_violations(&[("a".into(), a2), ("b".into(), b.clone())]);
        assert!(v.iter().any(|x| x.contains("negative balance")), "{v:?}");

        // Money left in held is reported even when the sums match.
        let a3 = AccountMoney { available: d("900.00"), held: d("20.00"), ..a };
        let v = money_violations(&[("a".into(), a3), ("b".into(), b)]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("held 20.00"));
    }

    #[test]
    fn proc_stat_ticks() {
        let s = "7106 (mariadbd) S 1 7106 7106 0 -1 4194560 12345 0 0 0 250 75 0 0 20 0 30 0 1000 8591357472 30965 18446744073709551615";
        assert_eq!(stat_ticks(s), Some(325));
        let odd = "42 (a b) c) R 1 2 3 4 5 6 7 8 9 10 11 12 0 0";
        assert_eq!(stat_ticks(odd), Some(23));
    }
}
