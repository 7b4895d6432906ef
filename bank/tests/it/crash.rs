//! The bank and its broker SIGKILLed under load (issue 12's acceptance): 16 clients send 1,000
//! deposits, withdrawals and instant transfers over 20 accounts — retrying with the same
//! Idempotency-Key whenever the bank is down or answers 409/5xx — while the bank binary and a
//! private tansu broker are killed with SIGKILL and restarted, one, the other or both at once.
//! At the end, checked from the API (and the ledger's postings):
//! - every request became exactly one operation or transfer, each applied or rejected exactly once;
//! - each account applied its queued operations in acceptance (`seq`) order;
//! - no available balance was ever negative (the statement replayed oldest first);
//! - money is conserved: Σ applied deposits − Σ applied withdrawals = Σ balances.
//!
//! Both processes are real children (the bank's binary, the `tansu` binary of `scripts/stack`), so a
//! kill is a real crash; the broker gets its own port and SQLite store so killing it disturbs no
//! other test. Modelled on e2e/tests/it/saga_crash.rs.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
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

const ACCOUNTS: usize = 20;
const CLIENTS: usize = 16;
const REQUESTS: usize = 1_000;

/// A child process that can be SIGKILLed and started again with the same command.
pub(crate) struct Proc {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) log: PathBuf,
    pub(crate) child: Option<Child>,
}

impl Proc {
    pub(crate) fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        let child = cmd.stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log)).spawn().expect("starting a child process");
        self.child = Some(child);
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// Whether the child exited on its own (e.g. the bank started while the broker was down).
    pub(crate) fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The broker `scripts/stack` runs (`TANSU_BIN`, else what `scripts/stack broker-bin` names).
fn tansu() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let stack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack");
    let out = std::process::Command::new(stack).arg("broker-bin").output().expect("scripts/stack broker-bin runs");
    assert!(out.status.success(), "scripts/stack broker-bin: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "the broker did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the bank is ready; starts it again if it exited meanwhile (it refuses to start
/// without a broker).
pub(crate) async fn wait_ready(http: &reqwest::Client, url: &str, bank: &Mutex<Proc>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if http.get(format!("{url}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        {
            let mut bank = bank.lock().unwrap();
            if bank.exited() {
                bank.start();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bank at {url} did not become ready");
}

/// POSTs until the bank gives a final answer (not a connection error, 409 in flight or 5xx).
pub(crate) async fn post_until_answered(http: &reqwest::Client, url: &str, token: &str, key: &str, body: &Value) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(180);
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

pub(crate) async fn get_json(http: &reqwest::Client, url: String, token: &str) -> Option<Value> {
    let res = http.get(&url).bearer_auth(token).timeout(Duration::from_secs(10)).send().await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    res.json().await.ok()
}

pub(crate) fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")).parse().unwrap()
}

/// What one client request was, and the final answer it got.
#[derive(Debug)]
enum Done {
    Operation { account: usize, kind: &'static str, amount: Decimal, answer: Value },
    Transfer { from: usize, to: usize, amount: Decimal, status: u16, answer: Value },
}

/// A small deterministic generator (no test should depend on luck).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[tokio::test]
async fn operations_and_transfers_survive_kill_9_of_bank_and_broker() {
    sagaway_common::telemetry::init("bank-crash-test");
    let issuer = TestIssuer::start().await;
    let id = Uuid::new_v4().simple().to_string();
    let local = CommonConfig::local(&format!("bank_t_{}", &id[..12]), &format!("t{}.", &id[..8]));
    let work = std::env::temp_dir().join(format!("bank-crash-{}", &id[..8]));
    std::fs::create_dir_all(&work).unwrap();

    // A private broker (tansu resolves its SQLite path against the working directory).
    let kafka_port = free_port();
    let listener = format!("tcp://127.0.0.1:{kafka_port}");
    let broker = Arc::new(Mutex::new(Proc {
        program: tansu(),
        args: vec![
            "broker".into(),
            "--listener-url".into(),
            listener.clone(),
            "--advertised-listener-url".into(),
            listener,
            "--storage-engine".into(),
            "sqlite://tansu.db".into(),
        ],
        dir: Some(work.clone()),
        env: vec![("RUST_LOG".into(), "warn".into())],
        log: work.join("broker.log"),
        child: None,
    }));
    broker.lock().unwrap().start();
    wait_port(kafka_port).await;

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let bank = Arc::new(Mutex::new(Proc {
        program: PathBuf::from(env!("CARGO_BIN_EXE_bank")),
        args: vec!["serve".into()],
        dir: None,
        env: vec![
            ("BANK_PORT".into(), port.to_string()),
            ("BANK_DATABASE_URL".into(), local.database_url.clone()),
            ("KAFKA_BROKERS".into(), format!("127.0.0.1:{kafka_port}")),
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
        log: work.join("bank.log"),
        child: None,
    }));
    bank.lock().unwrap().start();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    wait_ready(&http, &url, &bank).await;

    // 20 accounts, each held by its own user.
    let tokens: Vec<String> = (0..ACCOUNTS).map(|i| issuer.token(&format!("holder-{i}"))).collect();
    let mut accounts: Vec<(String, String)> = Vec::new(); // (id, number)
    for token in &tokens {
        let res = http
            .post(format!("{url}/accounts"))
            .bearer_auth(token)
            .json(&json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let a: Value = res.json().await.unwrap();
        accounts.push((a["id"].as_str().unwrap().into(), a["number"].as_str().unwrap().into()));
    }

    // The killer: the bank, the broker, or both, SIGKILLed and restarted, until the clients finish.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]); // [bank, broker]
    let killer = {
        let (bank, broker, stop, kills, http, url) = (bank.clone(), broker.clone(), stop.clone(), kills.clone(), http.clone(), url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) && round < 12 {
                let (kill_bank, kill_broker) = match round % 3 {
                    0 => (true, false),
                    1 => (false, true),
                    _ => (true, true),
                };
                if kill_broker {
                    broker.lock().unwrap().kill9();
                    kills[1].fetch_add(1, Ordering::Relaxed);
                }
                if kill_bank {
                    bank.lock().unwrap().kill9();
                    kills[0].fetch_add(1, Ordering::Relaxed);
                }
                // The broker stays down a little: accepting must not need it.
                tokio::time::sleep(Duration::from_millis(400)).await;
                if kill_broker {
                    broker.lock().unwrap().start();
                    wait_port(kafka_port).await;
                }
                if kill_bank {
                    bank.lock().unwrap().start();
                }
                wait_ready(&http, &url, &bank).await;
                tokio::time::sleep(Duration::from_millis(700)).await;
                round += 1;
            }
        })
    };

    // 16 clients; request r of client c is deterministic: a deposit, a withdrawal or an instant
    // transfer between two accounts, with its own Idempotency-Key.
    let clients = (0..CLIENTS).map(|client| {
        let (http, url, tokens, accounts) = (&http, &url, &tokens, &accounts);
        async move {
            let mut rng = Lcg(client as u64 * 7919 + 17);
            let mut done = Vec::new();
            let mut r = client;
            while r < REQUESTS {
                let account = rng.next(ACCOUNTS);
                let amount = Decimal::new(100 + rng.next(4_900) as i64, 2); // 1.00 .. 49.99
                let key = format!("req-{r}");
                match rng.next(10) {
                    0..4 => {
                        let kind = "deposit";
                        let ops_url = format!("{url}/accounts/{}/operations", accounts[account].0);
                        let (status, answer) = post_until_answered(http, &ops_url, &tokens[account], &key, &json!({"type": kind, "amount": amount.to_string()})).await;
                        assert_eq!(status, 202, "{key}: {answer}");
                        done.push(Done::Operation { account, kind, amount, answer });
                    }
                    4..7 => {
                        let kind = "withdrawal";
                        let ops_url = format!("{url}/accounts/{}/operations", accounts[account].0);
                        let (status, answer) = post_until_answered(http, &ops_url, &tokens[account], &key, &json!({"type": kind, "amount": amount.to_string()})).await;
                        assert_eq!(status, 202, "{key}: {answer}");
                        done.push(Done::Operation { account, kind, amount, answer });
                    }
                    _ => {
                        let to = (account + 1 + rng.next(ACCOUNTS - 1)) % ACCOUNTS;
                        let body = json!({"kind": "instant", "from_account": accounts[account].0,
                            "to": {"bank": "001", "account_number": accounts[to].1}, "amount": amount.to_string()});
                        let (status, answer) = post_until_answered(http, &format!("{url}/transfers"), &tokens[account], &key, &body).await;
                        assert!(status == 201 || (status == 422 && answer["code"] == "insufficient_funds"), "{key}: {status} {answer}");
                        done.push(Done::Transfer { from: account, to, amount, status, answer });
                    }
                }
                r += CLIENTS;
            }
            done
        }
    });
    let done: Vec<Done> = join_all(clients).await.into_iter().flatten().collect();
    stop.store(true, Ordering::Relaxed);
    killer.await.unwrap();
    let (bank_kills, broker_kills) = (kills[0].load(Ordering::Relaxed), kills[1].load(Ordering::Relaxed));
    assert_eq!(done.len(), REQUESTS);
    assert!(bank_kills >= 2 && broker_kills >= 2, "the test must crash both (bank {bank_kills}, broker {broker_kills})");

    // Every queued operation leaves QUEUED, each exactly once.
    let ops: Vec<(usize, &'static str, Decimal, String)> = done
        .iter()
        .filter_map(|d| match d {
            Done::Operation { account, kind, amount, answer } => Some((*account, *kind, *amount, answer["operation_id"].as_str().unwrap().to_string())),
            _ => None,
        })
        .collect();
    let distinct: HashSet<&String> = ops.iter().map(|o| &o.3).collect();
    assert_eq!(distinct.len(), ops.len(), "each key made exactly one operation");
    let deadline = Instant::now() + Duration::from_secs(120);
    let settled: Vec<Value> = loop {
        let all = join_all(ops.iter().map(|(account, _, _, op)| get_json(&http, format!("{url}/operations/{op}"), &tokens[*account]))).await;
        if all.iter().all(|o| o.as_ref().is_some_and(|o| o["status"] == "APPLIED" || o["status"] == "REJECTED")) {
            break all.into_iter().flatten().collect();
        }
        assert!(Instant::now() < deadline, "operations still QUEUED after the restarts");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let mut applied_by_account: Vec<BTreeMap<i64, String>> = vec![BTreeMap::new(); ACCOUNTS]; // seq → operation id
    let mut seqs: Vec<Vec<i64>> = vec![Vec::new(); ACCOUNTS];
    let mut deposits = Decimal::ZERO;
    let mut withdrawals = Decimal::ZERO;
    for ((account, kind, amount, op), got) in ops.iter().zip(&settled) {
        assert_eq!(got["id"].as_str(), Some(op.as_str()));
        assert_eq!(dec(&got["amount"]), *amount, "{got}");
        assert_eq!(got["type"].as_str(), Some(*kind));
        let seq = got["seq"].as_i64().unwrap();
        seqs[*account].push(seq);
        match (*kind, got["status"].as_str().unwrap()) {
            ("deposit", "APPLIED") => deposits += amount,
            ("withdrawal", "APPLIED") => withdrawals += amount,
            ("withdrawal", "REJECTED") => {
                assert_eq!(got["reason"], "insufficient_funds", "{got}");
                continue;
            }
            other => panic!("unexpected {other:?}: {got}"),
        }
        applied_by_account[*account].insert(seq, op.clone());
    }
    for (a, s) in seqs.iter_mut().enumerate() {
        s.sort();
        assert_eq!(*s, (1..=s.len() as i64).collect::<Vec<_>>(), "account {a}: sequence numbers are 1..n, one per accepted request");
    }

    // Transfers: a 201 is SETTLED, a 422 moved nothing; each transfer id once.
    let mut settled_transfers: Vec<HashSet<String>> = vec![HashSet::new(); ACCOUNTS];
    let mut transfer_ids = HashSet::new();
    for d in &done {
        if let Done::Transfer { from, to, amount, status: 201, answer } = d {
            assert_eq!(answer["status"], "SETTLED", "{answer}");
            assert_eq!(dec(&answer["amount"]), *amount);
            let id = answer["id"].as_str().unwrap().to_string();
            assert!(transfer_ids.insert(id.clone()), "a transfer id answered twice: {id}");
            settled_transfers[*from].insert(id.clone());
            settled_transfers[*to].insert(id);
        }
    }

    // Each account's statement, replayed oldest first: never negative, queued operations in `seq`
    // order, exactly the applied operations and settled transfers, each once; it ends at the balance.
    let mut total = Decimal::ZERO;
    for (a, (account_id, _)) in accounts.iter().enumerate() {
        let mut entries: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_url = match &cursor {
                Some(c) => format!("{url}/accounts/{account_id}/statement?limit=200&cursor={c}"),
                None => format!("{url}/accounts/{account_id}/statement?limit=200"),
            };
            let page = get_json(&http, page_url, &tokens[a]).await.expect("a statement page");
            entries.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        entries.reverse();
        let seq_of: HashMap<&String, i64> = applied_by_account[a].iter().map(|(s, op)| (op, *s)).collect();
        let mut running = Decimal::ZERO;
        let mut last_seq = 0;
        let mut seen = HashSet::new();
        for e in &entries {
            assert_eq!(e["bucket"], "available", "no holds in this test: {e}");
            running += dec(&e["amount"]);
            assert!(running >= Decimal::ZERO, "account {a} went negative at {e}");
            let reference = e["reference"].as_str().unwrap().to_string();
            assert!(seen.insert(reference.clone()), "account {a}: {reference} posted twice");
            match e["kind"].as_str().unwrap() {
                "deposit" | "withdrawal" => {
                    let seq = *seq_of.get(&reference).unwrap_or_else(|| panic!("account {a}: posting of an operation not applied: {e}"));
                    assert!(seq > last_seq, "account {a}: operation seq {seq} applied after seq {last_seq}");
                    last_seq = seq;
                }
                "transfer" => assert!(settled_transfers[a].contains(&reference), "account {a}: posting of an unknown transfer {e}"),
                other => panic!("unexpected posting kind {other}: {e}"),
            }
        }
        assert_eq!(seen.len(), applied_by_account[a].len() + settled_transfers[a].len(), "account {a}: every applied operation and settled transfer posted");
        let acct = get_json(&http, format!("{url}/accounts/{account_id}"), &tokens[a]).await.unwrap();
        assert_eq!(dec(&acct["available"]), running, "account {a}: the balance is its statement");
        assert_eq!(dec(&acct["held"]), Decimal::ZERO);
        total += running;
    }
    assert_eq!(deposits - withdrawals, total, "money is conserved: Σ deposits − Σ withdrawals = Σ balances");
    println!(
        "{REQUESTS} requests ({} operations, {} transfers settled), bank killed {bank_kills}×, broker {broker_kills}×: conserved {total}",
        ops.len(),
        transfer_ids.len()
    );

    bank.lock().unwrap().kill9();
    broker.lock().unwrap().kill9();
    let _ = MySql::drop_database(&local.database_url).await;
    let _ = std::fs::remove_dir_all(&work);
}
