//! Shared by the bank's integration tests: each test spawns its own bank on port 0 with a fresh
//! database (`bank_t_<uuid12>`), a unique topic prefix, its own token issuer and a [`TestClock`];
//! everything runs against the real stack (MariaDB, tansu). Waits poll with deadlines.
#![allow(dead_code)]

use std::{
    future::Future,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use bank::{
    Application, Config,
    clock::TestClock,
    config::InterbankConfig,
    interbank::peers::Peers,
    rules::{
        calendar::parse_holidays,
        interbank_auth::{Directory, DirectoryEntry},
    },
};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use reqwest::{Method, StatusCode};
use sagaway_common::{auth_testing::TestIssuer, config::CommonConfig, config::UserRate};
use serde_json::{Value, json};
use sqlx::{MySql, migrate::MigrateDatabase};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long any one expected outcome may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A local time in the bank's zone (America/Sao_Paulo), as UTC: `local("2026-12-05 10:00:00")`.
pub fn local(s: &str) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = "America/Sao_Paulo".parse().unwrap();
    tz.from_local_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()).unwrap().with_timezone(&Utc)
}

/// Wednesday noon: inside business hours, outside the night window.
pub const WEDNESDAY_NOON: &str = "2026-12-02 12:00:00";

#[derive(Clone)]
pub struct Options {
    pub code: String,
    pub now: DateTime<Utc>,
    pub holidays: String,
    pub db_max_connections: u32,
    /// The token issuer to trust (banks of one network share one); a fresh one when `None`.
    pub issuer: Option<Arc<TestIssuer>>,
}

impl Default for Options {
    fn default() -> Self {
        Self { code: "001".into(), now: local(WEDNESDAY_NOON), holidays: String::new(), db_max_connections: 16, issuer: None }
    }
}

/// One running bank.
pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub issuer: Arc<TestIssuer>,
    /// The running bank's view of the other banks (its directory can be replaced).
    pub peers: Option<Peers>,
    pub clock: TestClock,
    pub config: Config,
    pub prefix: String,
    pub db_url: String,
    producer: FutureProducer,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dropped_db: bool,
}

pub async fn spawn() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    sagaway_common::telemetry::init("bank-test");
    let id = Uuid::new_v4().simple().to_string();
    let prefix = format!("t{}.", &id[..8]);
    let issuer = match opts.issuer.clone() {
        Some(i) => i,
        None => Arc::new(TestIssuer::start().await),
    };
    let common = CommonConfig {
        auth: issuer.auth_config(),
        db_max_connections: opts.db_max_connections,
        fetch_wait_max_ms: 10,
        // The load tests send hundreds of requests per second as one user.
        user_rate: UserRate { per_sec: 100_000.0, burst: 100_000 },
        ..CommonConfig::local(&format!("bank_t_{}", &id[..12]), &prefix)
    };
    let clock = TestClock::at(opts.now);
    let mut config = config_from(common);
    config.code = opts.code.clone();
    config.hours.holidays = parse_holidays(&opts.holidays).unwrap();
    config.clock = Arc::new(clock.clone());
    config.scheduler_interval = Duration::from_millis(100);
    config.interbank = InterbankConfig {
        prepare_timeout: Duration::from_secs(3),
        retry_interval: Duration::from_millis(200),
        inquiry_after: Duration::from_millis(500),
        peer_timeout: Duration::from_secs(1),
        ..InterbankConfig::standalone(&opts.code)
    };
    let db_url = config.common.database_url.clone();
    let mut app = TestApp {
        base_url: String::new(),
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        issuer,
        peers: None,
        clock,
        config,
        prefix,
        db_url,
        producer: sagaway_messaging::kafka::producer(&CommonConfig::local("unused", "").kafka_brokers).unwrap(),
        shutdown: CancellationToken::new(),
        task: None,
        dropped_db: false,
    };
    app.start().await;
    app
}

/// Banks `codes`, each with its own database, trusting one token issuer and listing each other.
pub async fn spawn_network(codes: &[&str]) -> Vec<TestApp> {
    let issuer = Arc::new(TestIssuer::start().await);
    let mut banks = Vec::new();
    for code in codes {
        banks.push(spawn_with(Options { code: code.to_string(), issuer: Some(issuer.clone()), ..Options::default() }).await);
    }
    let directory = Directory::new(banks.iter().map(|b| DirectoryEntry {
        code: b.config.code.clone(),
        url: b.base_url.clone(),
        public_key: b.config.interbank.key.public_key(),
    }));
    for b in &mut banks {
        b.config.interbank.directory = directory.clone();
        b.peers.as_ref().unwrap().set_directory(directory.clone());
    }
    banks
}

/// The service defaults, with `common` for the environment-specific part.
fn config_from(common: CommonConfig) -> Config {
    // The defaults (tests set no BANK_* variables); the clock and the rest are set by the caller.
    let mut c = Config::from_env().expect("defaults parse");
    c.common = common;
    c
}

impl TestApp {
    async fn start(&mut self) {
        let app = Application::build(self.config.clone()).await.expect("the bank builds");
        app.peers().set_directory(self.config.interbank.directory.clone());
        self.base_url = format!("http://127.0.0.1:{}", app.port());
        // A restart keeps the port, so the other banks' directories stay right.
        self.config.common.http_port = app.port();
        self.peers = Some(app.peers());
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(app.run_until_stopped(self.shutdown.clone())));
    }

    /// Stops the running bank and starts a new one on the same database, topics and clock.
    pub async fn restart(&mut self) {
        self.shutdown_only().await;
        self.start().await;
    }

    /// Stops the running bank, keeping its database (see [`TestApp::start_again`]).
    pub async fn shutdown_only(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }

    /// Starts the bank again on the same port, database, topics, key and directory.
    pub async fn start_again(&mut self) {
        self.start().await;
        if let Some(peers) = &self.peers {
            peers.set_directory(self.config.interbank.directory.clone());
        }
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub async fn call(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let token = if user == "admin" { self.issuer.admin_token("ops") } else { self.issuer.token(user) };
        let mut req = self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req.send().await.expect("the bank answers");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    pub async fn get(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let (s, b, _) = self.call(user, Method::GET, path, None, None).await;
        (s, b)
    }

    pub async fn post(&self, user: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let (s, b, _) = self.call(user, Method::POST, path, Some(body), Some(&Uuid::new_v4().to_string())).await;
        (s, b)
    }

    /// Opens an individual account in BRL for `user` (a valid CPF).
    pub async fn open(&self, user: &str) -> Value {
        self.open_with(user, json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25"})).await
    }

    pub async fn open_with(&self, user: &str, body: Value) -> Value {
        let (s, b) = self.post(user, "/accounts", &body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b
    }

    /// Queues an operation; returns the 202 body.
    pub async fn operate(&self, user: &str, account: &str, kind: &str, amount: &str) -> Value {
        let (s, b) = self.post(user, &format!("/accounts/{account}/operations"), &json!({"type": kind, "amount": amount})).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        b
    }

    /// Waits until the operation left QUEUED; returns it.
    pub async fn settled_operation(&self, user: &str, operation_id: &str) -> Value {
        poll(|| async {
            let (s, b) = self.get(user, &format!("/operations/{operation_id}")).await;
            (s == StatusCode::OK && b["status"] != "QUEUED").then_some(b)
        })
        .await
    }

    /// Deposits and waits until it is applied.
    pub async fn fund(&self, user: &str, account: &str, amount: &str) {
        let op = self.operate(user, account, "deposit", amount).await;
        let done = self.settled_operation(user, op["operation_id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "APPLIED", "{done}");
    }

    pub async fn account(&self, user: &str, id: &str) -> Value {
        let (s, b) = self.get(user, &format!("/accounts/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    /// Every statement entry of an account, newest first (following the cursor).
    pub async fn statement(&self, user: &str, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, b) = self.get(user, &format!("/accounts/{id}/statement?limit=200&cursor={cursor}")).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            out.extend(b["items"].as_array().unwrap().iter().cloned());
            match b["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
    }

    pub async fn transfer(&self, user: &str, body: &Value) -> (StatusCode, Value) {
        self.post(user, "/transfers", body).await
    }

    /// Produces a `bank.commands` message keyed by `key` with a fresh message id.
    pub async fn command(&self, key: &str, command: &Value) {
        let topic = self.topic(sagaway_messaging::topics::BANK_COMMANDS);
        let message_id = Uuid::new_v4().to_string();
        let payload = command.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: "message_id", value: Some(&message_id) });
        let record = FutureRecord::to(&topic).key(key).payload(&payload).headers(headers);
        self.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
    }

    pub fn watch(&self, name: &str) -> Watcher {
        Watcher::from_start(&self.topic(name))
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        let _ = MySql::drop_database(&self.db_url).await;
        self.dropped_db = true;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if self.dropped_db {
            return;
        }
        let url = self.db_url.clone();
        let _ = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _ = rt.block_on(MySql::drop_database(&url));
        })
        .join();
    }
}

/// Calls `probe` until it yields a value; panics after [`DEADLINE`].
pub async fn poll<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < DEADLINE, "condition not met within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A message seen on a topic: its key and its JSON payload.
pub type Seen = (Option<String>, Value);

/// Reads a topic from its beginning on a background thread; tests poll what it collected.
pub struct Watcher {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    pub fn from_start(topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", CommonConfig::local("unused", "").kafka_brokers)
            .set("group.id", format!("test-watch-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in meta.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning).unwrap();
        }
        assert!(tpl.count() > 0, "topic {topic} has no partitions");
        consumer.assign(&tpl).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(Ok(msg)) = consumer.poll(Duration::from_millis(20)) else {
                    continue;
                };
                let json = msg.payload().and_then(|p| serde_json::from_slice(p).ok()).unwrap_or(Value::Null);
                seen2.lock().unwrap().push((msg.key().map(|k| String::from_utf8_lossy(k).into_owned()), json));
            }
        });
        Self { seen, stop }
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `count` messages match `pred`; returns them.
    pub async fn wait_for(&self, count: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let matching: Vec<Value> = self.all().into_iter().map(|(_, v)| v).filter(|v| pred(v)).collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(started.elapsed() < DEADLINE, "only {} of {count} expected messages within {DEADLINE:?}: {:?}", matching.len(), self.all());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
