//! Inter-bank transfers under SIGKILL (issue 13's fault injection): three bank binaries (001–003,
//! each its own database, key and topics, one static directory) take 1,000 transfers — one-to-one
//! between banks, started at the paying bank or at another one, and many-to-one from two or three
//! banks — from 24 clients retrying with the same Idempotency-Key, while random banks are killed
//! with SIGKILL and restarted. A kill lands anywhere: a coordinator before or after logging its
//! decision, a participant after READY, a commit whose answer is lost, a recipient check or a
//! peer that is unreachable for a while. At the end, from the public APIs:
//! - every accepted transfer is SETTLED or FAILED at the bank that took it;
//! - no hold is left and every account holds exactly its opening deposit plus what the SETTLED
//!   transfers moved (so each moved exactly once, and FAILED ones moved nothing);
//! - money is conserved across the banks, and the clearing positions net to zero.
//!
//! `INTERBANK_FAULT_TRANSFERS` sets the count (default 1,000; `scripts/bench` style long runs).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bank::rules::interbank_auth::{BankKeyPair, Directory, DirectoryEntry};
use base64::{Engine, engine::general_purpose::STANDARD};
use rust_decimal::Decimal;
use sagaway_common::{auth_testing::TestIssuer, config::CommonConfig};
use serde_json::{Value, json};
use sqlx::{MySql, migrate::MigrateDatabase};
use uuid::Uuid;

use crate::crash::{Lcg, Proc, dec, free_port, get_json, post_until_answered, wait_ready};

const CODES: [&str; 3] = ["001", "002", "003"];
const USERS: usize = 6;
const CLIENTS: usize = 24;
const OPENING: i64 = 300;

/// One transfer a client made, and what the bank that took it answered.
struct Sent {
    start: usize,
    user: usize,
    status: u16,
    answer: Value,
}

#[tokio::test]
async fn a_thousand_interbank_transfers_survive_kill_9_of_random_banks() {
    sagaway_common::telemetry::init("bank-interbank-faults");
    let count: usize = std::env::var("INTERBANK_FAULT_TRANSFERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let issuer = TestIssuer::start().await;
    let run = Uuid::new_v4().simple().to_string();
    let work = std::env::temp_dir().join(format!("interbank-faults-{}", &run[..8]));
    std::fs::create_dir_all(&work).unwrap();

    // Keys, ports and the directory every bank reads.
    let ports: Vec<u16> = CODES.iter().map(|_| free_port()).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let seeds: Vec<[u8; 32]> = CODES.iter().map(|_| rand::random()).collect();
    let directory = Directory::new(CODES.iter().zip(&urls).zip(&seeds).map(|((code, url), seed)| DirectoryEntry {
        code: code.to_string(),
        url: url.clone(),
        public_key: BankKeyPair::from_seed(*code, *seed).public_key(),
    }));
    let directory_file = work.join("directory");
    std::fs::write(&directory_file, directory.render()).unwrap();

    let mut databases = Vec::new();
    let banks: Vec<Arc<Mutex<Proc>>> = CODES
        .iter()
        .enumerate()
        .map(|(i, code)| {
            let local = CommonConfig::local(&format!("bank_t_{}_{code}", &run[..10]), &format!("t{}b{code}.", &run[..6]));
            databases.push(local.database_url.clone());
            Arc::new(Mutex::new(Proc {
                program: PathBuf::from(env!("CARGO_BIN_EXE_bank")),
                args: vec!["serve".into()],
                dir: None,
                env: vec![
                    ("BANK_CODE".into(), code.to_string()),
                    ("BANK_PORT".into(), ports[i].to_string()),
                    ("BANK_DATABASE_URL".into(), local.database_url.clone()),
                    ("KAFKA_BROKERS".into(), local.kafka_brokers.clone()),
                    ("TOPIC_PREFIX".into(), local.topic_prefix.clone()),
                    ("KAFKA_FETCH_WAIT_MAX_MS".into(), "10".into()),
                    ("AUTH_ISSUER".into(), issuer.issuer.clone()),
                    ("AUTH_JWKS_URL".into(), format!("{}/.well-known/jwks.json", issuer.url)),
                    ("AUTH_AUDIENCE".into(), issuer.audience.clone()),
                    ("USER_RATE_PER_SEC".into(), "100000".into()),
                    ("USER_RATE_BURST".into(), "100000".into()),
                    ("BANK_IDEMPOTENCY_LOCK_SECS".into(), "1".into()),
                    ("BANK_SIGNING_KEY".into(), STANDARD.encode(seeds[i])),
                    ("BANK_DIRECTORY_FILE".into(), directory_file.display().to_string()),
                    ("BANK_INTERBANK_PREPARE_TIMEOUT_MS".into(), "2000".into()),
                    ("BANK_INTERBANK_RETRY_MS".into(), "200".into()),
                    ("BANK_INTERBANK_INQUIRY_MS".into(), "500".into()),
                    ("BANK_PEER_TIMEOUT_MS".into(), "1000".into()),
                    ("RUST_LOG".into(), "warn".into()),
                ],
                log: work.join(format!("bank-{code}.log")),
                child: None,
            }))
        })
        .collect();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    for (bank, url) in banks.iter().zip(&urls) {
        bank.lock().unwrap().start();
        wait_ready(&http, url, bank).await;
    }

    // Every user holds one account in every bank, each opened with 300.00.
    let tokens: Vec<String> = (0..USERS).map(|u| issuer.token(&format!("payer-{u}"))).collect();
    let mut accounts: Vec<Vec<(String, String)>> = vec![Vec::new(); USERS]; // [user][bank] = (id, number)
    for (u, token) in tokens.iter().enumerate() {
        for url in &urls {
            let (s, a) = post_until_answered(&http, &format!("{url}/accounts"), token, &Uuid::new_v4().to_string(), &json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25"})).await;
            assert_eq!(s, 201, "{a}");
            let id = a["id"].as_str().unwrap().to_string();
            let (s, op) = post_until_answered(&http, &format!("{url}/accounts/{id}/operations"), token, &Uuid::new_v4().to_string(), &json!({"type": "deposit", "amount": format!("{OPENING}.00")})).await;
            assert_eq!(s, 202, "{op}");
            accounts[u].push((id, a["number"].as_str().unwrap().to_string()));
        }
    }
    for (u, token) in tokens.iter().enumerate() {
        for (b, url) in urls.iter().enumerate() {
            poll_until(Duration::from_secs(60), || async { get_json(&http, format!("{url}/accounts/{}", accounts[u][b].0), token).await.is_some_and(|a| dec(&a["available"]) == Decimal::from(OPENING)) }).await;
        }
    }

    // The killer: a random bank SIGKILLed, down a moment, started again, until the clients finish.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = {
        let (banks, urls, stop, kills, http) = (banks.clone(), urls.clone(), stop.clone(), kills.clone(), http.clone());
        tokio::spawn(async move {
            let mut rng = Lcg(0x5eed);
            while !stop.load(Ordering::Relaxed) && kills.load(Ordering::Relaxed) < 12 {
                tokio::time::sleep(Duration::from_millis(800 + rng.next(800) as u64)).await;
                let b = rng.next(CODES.len());
                banks[b].lock().unwrap().kill9();
                kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200 + rng.next(400) as u64)).await;
                banks[b].lock().unwrap().start();
                wait_ready(&http, &urls[b], &banks[b]).await;
            }
        })
    };

    // The clients.
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, sent, http, urls, tokens, accounts) = (next.clone(), sent.clone(), http.clone(), urls.clone(), tokens.clone(), accounts.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let mut rng = Lcg(0xbad5eed ^ (i as u64) << 7);
                    let user = rng.next(USERS);
                    let payee = (user + 1 + rng.next(USERS - 1)) % USERS;
                    let amount = |rng: &mut Lcg| format!("{}.{:02}", 1 + rng.next(60), rng.next(100));
                    let (start, body) = if rng.next(10) < 7 {
                        let from = rng.next(3);
                        let to = (from + 1 + rng.next(2)) % 3;
                        let to_account = json!({"bank": CODES[to], "account_number": accounts[payee][to].1});
                        if rng.next(2) == 0 {
                            (from, json!({"kind": "instant", "from_account": accounts[user][from].0, "to": to_account, "amount": amount(&mut rng)}))
                        } else {
                            let start = rng.next(3);
                            (start, json!({"kind": "instant", "sources": [{"bank": CODES[from], "account_id": accounts[user][from].0, "amount": amount(&mut rng)}], "to": to_account}))
                        }
                    } else {
                        let first = rng.next(3);
                        let n = 2 + rng.next(2);
                        let sources: Vec<Value> = (0..n).map(|k| (first + k) % 3).map(|b| json!({"bank": CODES[b], "account_id": accounts[user][b].0, "amount": amount(&mut rng)})).collect();
                        let to = rng.next(3);
                        (rng.next(3), json!({"kind": "instant", "sources": sources, "to": {"bank": CODES[to], "account_number": accounts[payee][to].1}}))
                    };
                    let (status, answer) = post_until_answered(&http, &format!("{}/transfers", urls[start]), &tokens[user], &Uuid::new_v4().to_string(), &body).await;
                    sent.lock().unwrap().push(Sent { start, user, status, answer });
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let sending = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    for (bank, url) in banks.iter().zip(&urls) {
        wait_ready(&http, url, bank).await;
    }

    // Every accepted transfer decided; the expected balance of every account from the SETTLED ones.
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    assert_eq!(sent.len(), count);
    let number_of: BTreeMap<(String, String), (usize, usize)> =
        (0..USERS).flat_map(|u| (0..3).map(move |b| (u, b))).map(|(u, b)| ((CODES[b].to_string(), accounts[u][b].1.clone()), (u, b))).collect();
    let index_of: BTreeMap<(String, String), (usize, usize)> =
        (0..USERS).flat_map(|u| (0..3).map(move |b| (u, b))).map(|(u, b)| ((CODES[b].to_string(), accounts[u][b].0.clone()), (u, b))).collect();
    let mut expected = vec![vec![Decimal::from(OPENING); 3]; USERS];
    let (mut settled, mut failed, mut refused) = (0, 0, 0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sent {
        match s.status {
            201 | 202 => {}
            422 => {
                assert_eq!(s.answer["code"], "insufficient_funds", "{}", s.answer);
                refused += 1;
                continue;
            }
            other => panic!("unexpected answer {other}: {}", s.answer),
        }
        let id = s.answer["id"].as_str().unwrap();
        let url = format!("{}/transfers/{id}", urls[s.start]);
        let done = poll_value(Duration::from_secs(120), || async {
            get_json(&http, url.clone(), &tokens[s.user]).await.filter(|t| t["status"] == "SETTLED" || t["status"] == "FAILED")
        })
        .await;
        if done["status"] == "FAILED" {
            failed += 1;
            *reasons.entry(done["reason"].as_str().unwrap_or("?").to_string()).or_insert(0) += 1;
            continue;
        }
        settled += 1;
        for source in done["sources"].as_array().unwrap() {
            let (u, b) = index_of[&(source["bank"].as_str().unwrap().to_string(), source["account_id"].as_str().unwrap().to_string())];
            expected[u][b] -= dec(&source["amount"]);
        }
        let (u, b) = number_of[&(done["to"]["bank"].as_str().unwrap().to_string(), done["to"]["account_number"].as_str().unwrap().to_string())];
        expected[u][b] += dec(&done["amount"]);
    }

    // No hold left anywhere, and each account holds exactly what the settled transfers say.
    let mut total = Decimal::ZERO;
    for (u, token) in tokens.iter().enumerate() {
        for (b, url) in urls.iter().enumerate() {
            assert!(expected[u][b] >= Decimal::ZERO, "a settled plan overdraws user {u} at bank {b}: {}", expected[u][b]);
            let want = expected[u][b];
            let account_url = format!("{url}/accounts/{}", accounts[u][b].0);
            let seen = poll_value(Duration::from_secs(120), || async {
                get_json(&http, account_url.clone(), token).await.filter(|a| dec(&a["held"]).is_zero() && dec(&a["available"]) == want)
            })
            .await;
            total += dec(&seen["available"]);
        }
    }
    assert_eq!(total, Decimal::from(OPENING * (USERS * 3) as i64), "money is conserved across the banks");

    // Clearing positions net to zero across the banks.
    let admin = issuer.admin_token("ops");
    let mut positions: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for (b, url) in urls.iter().enumerate() {
        let list = get_json(&http, format!("{url}/admin/clearing"), &admin).await.expect("clearing positions");
        for p in list.as_array().unwrap() {
            *positions.entry((CODES[b].to_string(), p["peer"].as_str().unwrap().to_string())).or_default() += dec(&p["balance"]);
        }
    }
    for ((a, b), v) in &positions {
        let back = positions.get(&(b.clone(), a.clone())).copied().unwrap_or_default();
        assert!((*v + back).is_zero(), "clearing {a}→{b} {v} vs {b}→{a} {back}");
    }

    let kills = kills.load(Ordering::Relaxed);
    println!(
        "interbank faults: {count} transfers in {:.1} s with {kills} SIGKILLs: {settled} settled, {failed} failed {reasons:?}, {refused} refused at once; clearing {positions:?}",
        sending.as_secs_f64()
    );
    assert!(kills >= 3, "the banks were killed during the run ({kills})");
    assert!(settled >= count / 4, "most transfers could settle ({settled} of {count})");

    for bank in &banks {
        bank.lock().unwrap().kill9();
    }
    for url in databases {
        let _ = MySql::drop_database(&url).await;
    }
    let _ = std::fs::remove_dir_all(&work);
}

async fn poll_until<F, Fut>(deadline: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < deadline, "condition not met within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn poll_value<T, F, Fut>(deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < deadline, "condition not met within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
