//! Shared test harness: spawn the payment service on port 0 against a fresh database and unique
//! topics, produce commands like the orchestrator does, and watch topics with a deadline.
#![allow(dead_code)]

use std::{
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use payment::{
    Config,
    retry_policy::{FixedJitter, RetryPolicy},
};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::{Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use rust_decimal::Decimal;
use sagaway_common::{
    auth_testing::TestIssuer,
    card::{self, CardInput, CardKey, DEV_CARD_KEY},
    config::CommonConfig,
};
use sagaway_messaging::topics;
use sagaway_contract::messages::PaymentCommand;
use serde_json::Value;
use sqlx::{MySql, migrate::MigrateDatabase};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The stack's broker (`SAGAWAY_KAFKA_PORT`, default 9092), as every service test sees it.
pub fn brokers() -> String {
    CommonConfig::local("unused", "").kafka_brokers
}
/// How long any one expected message may take to show up.
pub const DEADLINE: Duration = Duration::from_secs(40);

/// Knobs tests turn; everything else is the service default.
#[derive(Clone, Debug)]
pub struct Options {
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { max_attempts: 5, retry_base_ms: 100, retry_max_ms: 2000 }
    }
}

/// One running payment service with its own database and topics.
pub struct TestApp {
    pub base_url: String,
    /// Sends an admin's bearer token with every request.
    pub http: reqwest::Client,
    pub issuer: TestIssuer,
    pub prefix: String,
    pub db_url: String,
    producer: FutureProducer,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dropped_db: bool,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    sagaway_common::telemetry::init("payment-test");
    let id = Uuid::new_v4().simple().to_string();
    let prefix = format!("t{}.", &id[..8]);
    // Every request of these tests is an admin's (the service's routes are reads and the outage switch).
    let issuer = TestIssuer::start().await;
    let common = CommonConfig {
        auth: issuer.auth_config(),
        db_max_connections: 8,
        fetch_wait_max_ms: 10,
        ..CommonConfig::local(&format!("payment_t_{id}"), &prefix)
    };
    let db_url = common.database_url.clone();
    let config = Config {
        card_key: CardKey::from_hex(DEV_CARD_KEY).unwrap(),
        retry: RetryPolicy {
            base: Duration::from_millis(opts.retry_base_ms),
            cap: Duration::from_millis(opts.retry_max_ms),
            max_attempts: opts.max_attempts,
            // The top of each window: deterministic delays, so gap assertions do not flake.
            jitter: Arc::new(FixedJitter(1.0)),
        },
        commands_group: format!("{prefix}payment-commands"),
        retry_group: format!("{prefix}payment-retry"),
        bank_replies_group: format!("{prefix}payment-bank-replies"),
        common,
    };
    let app = payment::Application::build(config).await.expect("the payment service builds");
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let app = TestApp {
        base_url,
        http: admin_client(&issuer),
        issuer,
        prefix,
        db_url,
        producer: sagaway_messaging::kafka::producer(&brokers()).unwrap(),
        shutdown,
        task: Some(task),
        dropped_db: false,
    };
    app.warm_up_retry_path().await;
    app
}

fn admin_client(issuer: &TestIssuer) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", issuer.admin_token("test-admin")).parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// A charge command for `order_id`, the card sealed as the orchestrator seals it.
pub fn charge(order_id: &str, user_id: &str, amount: &str, number: &str, cvc: &str) -> PaymentCommand {
    let key = CardKey::from_hex(DEV_CARD_KEY).unwrap();
    let input = CardInput { number: number.into(), exp_month: 12, exp_year: 2031, cvc: cvc.into() };
    PaymentCommand::Charge {
        order_id: order_id.parse().unwrap(),
        user_id: user_id.parse().unwrap(),
        amount: amount.parse::<Decimal>().unwrap(),
        currency: "EUR".into(),
        card: Some(card::seal(&key, order_id, &input)),
        account: None,
    }
}

pub fn refund(order_id: &str, user_id: &str) -> PaymentCommand {
    PaymentCommand::Refund { order_id: order_id.parse().unwrap(), user_id: user_id.parse().unwrap(), reason: "compensation".into() }
}

/// An order id as the orchestrator makes them (a UUID: the message contract checks it).
pub fn new_order_id() -> String {
    Uuid::now_v7().to_string()
}

pub fn new_id(kind: &str) -> String {
    format!("{kind}-{}", Uuid::new_v4().simple())
}

impl TestApp {
    pub fn topic(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Produces `command` on payment.commands keyed by its user, with a fresh message id; returns the id.
    pub async fn send(&self, user_id: &str, command: &PaymentCommand) -> String {
        let message_id = Uuid::new_v4().to_string();
        self.send_with_id(user_id, command, &message_id).await;
        message_id
    }

    /// Produces `command` with the given message id (a redelivery reuses it).
    pub async fn send_with_id(&self, user_id: &str, command: &PaymentCommand, message_id: &str) {
        let payload = serde_json::to_string(command).unwrap();
        self.send_raw(user_id, payload.as_bytes(), message_id).await;
    }

    /// Produces arbitrary bytes on payment.commands.
    pub async fn send_raw(&self, key: &str, payload: &[u8], message_id: &str) {
        let topic = self.topic(topics::PAYMENT_COMMANDS);
        let headers = OwnedHeaders::new().insert(Header { key: "message_id", value: Some(message_id) });
        let record = FutureRecord::to(&topic).key(key).payload(payload).headers(headers);
        self.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
    }

    /// Watches payment.replies from its beginning.
    pub fn replies(&self) -> Watcher {
        Watcher::from_start(&self.topic(topics::PAYMENT_REPLIES))
    }

    /// Watches payment_dlq from its beginning.
    pub fn dead_letters(&self) -> Watcher {
        Watcher::from_start(&self.topic(topics::PAYMENT_DLQ))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base_url)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    pub async fn set_outage(&self, enabled: bool) {
        let res = self
            .http
            .post(format!("{}/admin/outage", self.base_url))
            .json(&serde_json::json!({ "enabled": enabled }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    /// The first fetch from a brand-new topic can take a second on tansu; tests that time retries
    /// must not count that. A sentinel on saga.retry meant for another service's topic is skipped
    /// by the forwarder but recorded in the inbox: once it is there, the retry consumer is live.
    async fn warm_up_retry_path(&self) {
        let message_id = format!("warmup-{}", Uuid::new_v4());
        let topic = self.topic(topics::SAGA_RETRY);
        let headers = OwnedHeaders::new()
            .insert(Header { key: "message_id", value: Some(&message_id) })
            .insert(Header { key: "retry.original_topic", value: Some("warmup.elsewhere") })
            .insert(Header { key: "retry.due_at", value: Some("2000-01-01T00:00:00.000Z") });
        let record = FutureRecord::to(&topic).key("warmup").payload("{}").headers(headers);
        self.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
        let pool = sqlx::MySqlPool::connect(&self.db_url).await.unwrap();
        let db_url = self.db_url.clone();
        eventually(|| {
            let (pool, message_id, _) = (pool.clone(), message_id.clone(), &db_url);
            async move {
                let seen: Option<i32> = sqlx::query_scalar("SELECT 1 FROM inbox WHERE message_id = ?")
                    .bind(&message_id)
                    .fetch_optional(&pool)
                    .await
                    .map_err(|e| e.to_string())?;
                seen.map(|_| ()).ok_or_else(|| "the retry consumer has not seen the sentinel yet".to_string())
            }
        })
        .await;
        pool.close().await;
    }

    /// True when `needle` appears in any column of any table of the service's database.
    pub async fn database_contains(&self, needle: &str) -> bool {
        use sqlx::Row;
        let pool = sqlx::MySqlPool::connect(&self.db_url).await.unwrap();
        let columns = sqlx::query(
            "SELECT CAST(table_name AS CHAR) AS t, CAST(column_name AS CHAR) AS c FROM information_schema.columns \
             WHERE table_schema = DATABASE()",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(!columns.is_empty());
        for col in columns {
            let (table, column): (String, String) = (col.get("t"), col.get("c"));
            let sql = format!("SELECT COUNT(*) FROM `{table}` WHERE CAST(`{column}` AS CHAR) LIKE ?");
            let hits: i64 = sqlx::query_scalar(&sql).bind(format!("%{needle}%")).fetch_one(&pool).await.unwrap();
            if hits > 0 {
                return true;
            }
        }
        false
    }

    /// Stops the service and drops its database.
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
    /// A failed test still drops its database (best effort), from a thread with its own runtime.
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

/// One record seen on a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub json: Option<Value>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every byte of the record: key, payload, header names and values.
    pub fn raw_bytes(&self) -> Vec<u8> {
        let mut all = self.key.clone().unwrap_or_default().into_bytes();
        all.extend(&self.payload);
        for (k, v) in &self.headers {
            all.extend(k.as_bytes());
            all.extend(v.as_bytes());
        }
        all
    }
}

/// Reads a topic from the start on a background thread; tests poll what it collected.
pub struct Watcher {
    seen: Arc<Mutex<Vec<Record>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    pub fn from_start(topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
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
                let Some(Ok(msg)) = consumer.poll(Duration::from_millis(20)) else { continue };
                let headers = msg
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let payload = msg.payload().unwrap_or_default().to_vec();
                seen2.lock().unwrap().push(Record {
                    key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    json: serde_json::from_slice(&payload).ok(),
                    payload,
                    headers,
                    partition: msg.partition(),
                    offset: msg.offset(),
                });
            }
        });
        Self { seen, stop }
    }

    /// Everything seen so far.
    pub fn all(&self) -> Vec<Record> {
        self.seen.lock().unwrap().clone()
    }

    /// Records whose JSON has `order_id` = `order_id`.
    pub fn for_order(&self, order_id: &str) -> Vec<Record> {
        self.all().into_iter().filter(|r| r.json.as_ref().and_then(|j| j["order_id"].as_str()) == Some(order_id)).collect()
    }

    /// Waits until `count` records match `pred`, then returns them; panics after [`DEADLINE`].
    pub async fn wait_for_n(&self, count: usize, pred: impl Fn(&Record) -> bool) -> Vec<Record> {
        let started = Instant::now();
        loop {
            let matching: Vec<Record> = self.all().into_iter().filter(|r| pred(r)).collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(started.elapsed() < DEADLINE, "only {} of {count} expected records within {DEADLINE:?}: {:?}", matching.len(), self.all());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the first reply about `order_id`.
    pub async fn reply_for(&self, order_id: &str) -> Value {
        self.replies_for(order_id, 1).await.remove(0)
    }

    /// Waits for `count` replies about `order_id`.
    pub async fn replies_for(&self, order_id: &str, count: usize) -> Vec<Value> {
        self.wait_for_n(count, |r| r.json.as_ref().and_then(|j| j["order_id"].as_str()) == Some(order_id))
            .await
            .into_iter()
            .map(|r| r.json.unwrap())
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Waits until `check` passes (polling), panicking with its last message after [`DEADLINE`].
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if started.elapsed() > DEADLINE => panic!("not within {DEADLINE:?}: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
