//! Runs the Sagaway services in-process, each on port 0 with its own fresh database and one topic
//! prefix shared by the three, against the real MariaDB and broker of the local stack.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{StatusCode, header::HeaderMap};
use sagaway_common::{config::CommonConfig, kafka};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Knobs a test may turn.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    pub duplicate_window: Duration,
    pub reservation_ttl: Duration,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self { duplicate_window: Duration::from_secs(120), reservation_ttl: Duration::from_secs(900) }
    }
}

/// The running services of one test.
pub struct System {
    pub prefix: String,
    pub product_url: String,
    pub orchestrator_url: String,
    pub http: reqwest::Client,
    pub product_db: sqlx::MySqlPool,
    pub orchestrator_db: sqlx::MySqlPool,
    databases: Vec<String>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

impl System {
    pub async fn spawn(opts: SystemOptions) -> anyhow::Result<Self> {
        let id = unique();
        let prefix = format!("t{id}.");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut databases = Vec::new();

        // Product, with an in-memory index on its own (empty) CDC topic: these tests are about the saga.
        let product_db = format!("product_t_{id}");
        let product_common = CommonConfig::local(&product_db, &prefix);
        let cdc_topic = format!("{prefix}cdc.products");
        kafka::ensure_topics(&product_common.kafka_brokers, &[(cdc_topic.clone(), 1)]).await?;
        let product_cfg = product::Config {
            common: product_common,
            reservation_ttl: opts.reservation_ttl,
            expiry_interval: Duration::from_millis(200),
            max_reservation_quantity: 1000,
            cdc_topic,
            indexer_group: format!("{prefix}indexer"),
            search_backend: product::config::SearchBackendKind::Tantivy,
            index_dir: "memory".into(),
            es_url: String::new(),
            es_index: String::new(),
        };
        let product_app = product::Application::build(product_cfg).await.context("building product")?;
        let product_url = format!("http://127.0.0.1:{}", product_app.port());
        tasks.push(tokio::spawn(product_app.run_until_stopped(shutdown.clone())));
        databases.push(product_db.clone());

        let orch_db = format!("orchestrator_t_{id}");
        let orch_cfg = orchestrator::Config {
            common: CommonConfig::local(&orch_db, &prefix),
            product_url: product_url.clone(),
            duplicate_window: opts.duplicate_window,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lock: Duration::from_secs(60),
            card_key: sagaway_common::card::CardKey::from_hex(sagaway_common::card::DEV_CARD_KEY)?,
            currency: "USD".into(),
        };
        let orch_app = orchestrator::Application::build(orch_cfg).await.context("building orchestrator")?;
        let orchestrator_url = format!("http://127.0.0.1:{}", orch_app.port());
        tasks.push(tokio::spawn(orch_app.run_until_stopped(shutdown.clone())));
        databases.push(orch_db.clone());

        let stack = crate::StackAddr::from_env();
        Ok(Self {
            prefix,
            product_url,
            orchestrator_url,
            http: reqwest::Client::builder().pool_max_idle_per_host(256).build()?,
            product_db: sqlx::MySqlPool::connect(&stack.mysql_url(&product_db)).await?,
            orchestrator_db: sqlx::MySqlPool::connect(&stack.mysql_url(&orch_db)).await?,
            databases,
            shutdown,
            tasks,
        })
    }

    /// Creates a product and returns its id.
    pub async fn create_product(&self, price: &str, stock: i64) -> anyhow::Result<u64> {
        let res = self
            .http
            .post(format!("{}/products", self.product_url))
            .json(&json!({"name": format!("item {}", unique()), "price": price, "stock": stock}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == StatusCode::CREATED, "create product: {}", res.status());
        Ok(res.json::<Value>().await?["id"].as_u64().context("product id")?)
    }

    /// Reserves and returns the reservation JSON.
    pub async fn reserve(&self, product_id: u64, user: &str, quantity: i64) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(format!("{}/reserve", self.product_url))
            .json(&json!({"product_id": product_id, "user_id": user, "quantity": quantity}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == StatusCode::CREATED, "reserve: {}", res.status());
        Ok(res.json().await?)
    }

    /// `POST /payment` with a raw body; returns status, headers and JSON body.
    pub async fn post_payment(&self, body: &Value, idempotency_key: Option<&str>) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        let mut req = self.http.post(format!("{}/payment", self.orchestrator_url)).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req.send().await?;
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, headers, body))
    }

    pub async fn order(&self, order_id: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/orders/{order_id}", self.orchestrator_url)).send().await?.json().await?)
    }

    /// Polls the order until `done` accepts it, or fails after `within`.
    pub async fn wait_order(&self, order_id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let o = self.order(order_id).await?;
            if done(&o) {
                return Ok(o);
            }
            if Instant::now() > deadline {
                bail!("order {order_id} did not reach the expected state within {within:?}; last: {o}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the services and drops their databases.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        let admin = sqlx::MySqlPool::connect(&crate::StackAddr::from_env().mysql_url("mysql")).await;
        if let Ok(admin) = admin {
            for db in &self.databases {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(&admin).await;
            }
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A payment body for `card`.
pub fn payment_body(reservation_id: &str, user: &str, card: &str) -> Value {
    json!({
        "reservation_id": reservation_id,
        "user_id": user,
        "payment_method": {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    })
}
