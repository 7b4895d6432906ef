//! kill -9 of the bank binary under load: clients keep queueing deposits and withdrawals (retrying
//! with the same Idempotency-Key whenever the bank is down or answers 409/5xx) while the bank is
//! SIGKILLed and restarted several times. At the end every request became exactly one operation,
//! each applied or rejected exactly once, in acceptance order, and the balance adds up.
//! The bank runs as a real child process (its binary), modelled on e2e/tests/saga_crash.rs.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::join_all;
use rust_decimal::Decimal;
use sagaway_common::{auth_testing::TestIssuer, config::CommonConfig};
use serde_json::{Value, json};
use sqlx::{MySql, migrate::MigrateDatabase};
use uuid::Uuid;

struct Proc {
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bank"))
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting the bank binary");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http.get(format!("{url}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bank at {url} did not become ready");
}

/// POSTs until the bank gives a final answer (not a connection error, 409 in flight or 5xx).
async fn post_until_answered(http: &reqwest::Client, url: &str, token: &str, key: &str, body: &Value) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no final answer for key {key}");
        match http.post(url).bearer_auth(token).header("Idempotency-Key", key).json(body).timeout(Duration::from_secs(10)).send().await {
            Ok(res) if res.status().as_u16() != 409 && !res.status().is_server_error() => {
                let status = res.status().as_u16();
                return (status, res.json().await.unwrap_or(Value::Null));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn operations_apply_exactly_once_across_kill_9() {
    sagaway_common::telemetry::init("bank-crash-test");
    let issuer = TestIssuer::start().await;
    let id = Uuid::new_v4().simple().to_string();
    let local = CommonConfig::local(&format!("bank_t_{}", &id[..12]), &format!("t{}.", &id[..8]));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("bank-crash-{}.log", &id[..8]));
    let mut proc = Proc {
        env: vec![
            ("BANK_PORT".into(), port.to_string()),
            ("BANK_DATABASE_URL".into(), local.database_url.clone()),
            ("KAFKA_BROKERS".into(), local.kafka_brokers.clone()),
            ("TOPIC_PREFIX".into(), local.topic_prefix.clone()),
            ("KAFKA_FETCH_WAIT_MAX_MS".into(), "10".into()),
            ("AUTH_ISSUER".into(), issuer.issuer.clone()),
            ("AUTH_JWKS_URL".into(), format!("{}/.well-known/jwks.json", issuer.url)),
            ("AUTH_AUDIENCE".into(), issuer.audience.clone()),
            ("USER_RATE_PER_SEC".into(), "100000".into()),
            ("USER_RATE_BURST".into(), "100000".into()),
            // A claim left in flight by a killed request is taken over after a second.
            ("BANK_IDEMPOTENCY_LOCK_SECS".into(), "1".into()),
            ("RUST_LOG".into(), "warn".into()),
        ],
        log: log.clone(),
        child: None,
    };
    proc.start();
    let http = reqwest::Client::new();
    wait_ready(&http, &url).await;
    let token = issuer.token("alice");
    let (s, account) = {
        let res = http
            .post(format!("{url}/accounts"))
            .bearer_auth(&token)
            .json(&json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25"}))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 201, "{account}");
    let account_id = account["id"].as_str().unwrap().to_string();
    let ops_url = format!("{url}/accounts/{account_id}/operations");

    // 8 clients × 40 operations, each with its own key, while the bank is killed now and then.
    let proc = Arc::new(Mutex::new(proc));
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = {
        let (proc, stop, kills, http, url) = (proc.clone(), stop.clone(), kills.clone(), http.clone(), url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            while !stop.load(Ordering::Relaxed) && kills.load(Ordering::Relaxed) < 4 {
                proc.lock().unwrap().kill9();
                kills.fetch_add(1, Ordering::Relaxed);
                proc.lock().unwrap().start();
                wait_ready(&http, &url).await;
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
        })
    };
    let clients = (0..8).map(|client| {
        let (http, ops_url, token) = (&http, &ops_url, &token);
        async move {
            let mut answers = Vec::new();
            for i in 0..40 {
                let kind = if (client + i) % 3 == 0 { "withdrawal" } else { "deposit" };
                let amount = format!("{}.{:02}", 1 + (client * 7 + i * 3) % 20, (i * 13) % 100);
                let key = format!("c{client}-{i}");
                let (status, body) = post_until_answered(http, ops_url, token, &key, &json!({"type": kind, "amount": amount})).await;
                assert_eq!(status, 202, "{key}: {body}");
                answers.push((key, body));
            }
            answers
        }
    });
    let answers: Vec<(String, Value)> = join_all(clients).await.into_iter().flatten().collect();
    stop.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    assert!(kills.load(Ordering::Relaxed) >= 2, "the bank was killed during the load");

    // One operation per key, sequence numbers 1..n.
    let ids: HashMap<String, String> = answers.iter().map(|(k, b)| (b["operation_id"].as_str().unwrap().to_string(), k.clone())).collect();
    assert_eq!(ids.len(), answers.len(), "each key made exactly one operation");
    let mut seqs: Vec<i64> = answers.iter().map(|(_, b)| b["seq"].as_i64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=answers.len() as i64).collect::<Vec<_>>());
    // A retry after a lost answer got the first answer back, not a second operation.
    let pool = sqlx::MySqlPool::connect(&local.database_url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operations").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, answers.len() as i64);

    // Everything settles, each exactly once, in sequence order.
    let deadline = Instant::now() + Duration::from_secs(90);
    let ops: Vec<Value> = loop {
        let all = join_all(ids.keys().map(|op| {
            let (http, token, url) = (&http, &token, &url);
            async move { http.get(format!("{url}/operations/{op}")).bearer_auth(token).send().await.ok()?.json::<Value>().await.ok() }
        }))
        .await;
        if all.iter().all(|o| o.as_ref().is_some_and(|o| o["status"] == "APPLIED" || o["status"] == "REJECTED")) {
            break all.into_iter().flatten().collect();
        }
        assert!(Instant::now() < deadline, "operations still QUEUED after the restarts");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut expected = Decimal::ZERO;
    let mut by_seq: Vec<&Value> = ops.iter().collect();
    by_seq.sort_by_key(|o| o["seq"].as_i64().unwrap());
    for o in &by_seq {
        let amount: Decimal = o["amount"].as_str().unwrap().parse().unwrap();
        match (o["type"].as_str().unwrap(), o["status"].as_str().unwrap()) {
            ("deposit", "APPLIED") => expected += amount,
            ("withdrawal", "APPLIED") => {
                assert!(expected >= amount, "applied a withdrawal the balance could not cover");
                expected -= amount;
            }
            ("withdrawal", "REJECTED") => assert!(expected < amount, "rejected a withdrawal the balance covered (out of order?)"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let acct: Value = http.get(format!("{url}/accounts/{account_id}")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(acct["available"].as_str().unwrap().parse::<Decimal>().unwrap(), expected, "the balance is the sequential replay");
    let postings: Vec<(String, i64)> =
        sqlx::query_as("SELECT reference, COUNT(*) FROM postings p JOIN journal j ON j.id = p.journal_id WHERE p.account_id = ? GROUP BY reference")
            .bind(&account_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(postings.iter().all(|(_, n)| *n == 1), "an operation posted twice: {postings:?}");
    assert_eq!(postings.len(), ops.iter().filter(|o| o["status"] == "APPLIED").count());

    proc.lock().unwrap().kill9();
    pool.close().await;
    let _ = MySql::drop_database(&local.database_url).await;
    let _ = std::fs::remove_file(&log);
}
