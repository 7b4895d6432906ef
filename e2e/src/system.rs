//! Runs the Sagaway services in-process, each on port 0 with its own fresh database and one topic
//! prefix shared by the three, against the real MariaDB and broker of the local stack. With
//! `SystemOptions { bank: true, .. }` a bank (code `001`) runs beside them, for orders paid from an
//! account.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{StatusCode, header::HeaderMap};
use sagaway_common::{auth::AuthConfig, auth_testing::TestIssuer, config::{CommonConfig, UserRate}};
use sagaway_messaging::kafka;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Knobs a test may turn.
#[derive(Clone, Debug)]
pub struct SystemOptions {
    pub duplicate_window: Duration,
    pub reservation_ttl: Duration,
    /// The payment processor's attempt budget for transient failures.
    pub max_attempts: u32,
    /// First retry delay window (doubles per attempt, capped at 8×).
    pub retry_base: Duration,
    /// A fixed jitter draw in [0, 1] instead of a random one (for tests that compare delays).
    pub fixed_jitter: Option<f64>,
    /// Runs the saga's optional risk-check step with these rules.
    pub risk_check: Option<orchestrator::saga::risk::RiskPolicy>,
    /// The per-user rate limit of `POST /reserve` and `POST /payment` (tests that flood one user
    /// with requests need it high; the default here is).
    pub user_rate: UserRate,
    /// Verify tokens of another issuer (a real identity service) instead of the test issuer's.
    /// The helpers that mint tokens ([`System::token`], …) then do not open anything.
    pub auth: Option<AuthConfig>,
    /// The card keys of the orchestrator and the payment processor, in the `CARD_KEYS` form
    /// (`k2:<64 hex>,k1:<64 hex>`, the first active); `None`: the development key.
    pub card_keys: Option<String>,
    /// Also run a bank (code `001`, its own fresh database, the same topic prefix and token
    /// issuer): orders may then be paid from its accounts. Off by default: the other tests do not
    /// pay for it.
    pub bank: bool,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self { duplicate_window: Duration::from_secs(120), reservation_ttl: Duration::from_secs(900), max_attempts: 5, retry_base: Duration::from_millis(50), fixed_jitter: None, risk_check: None, user_rate: UserRate { per_sec: 100_000.0, burst: 100_000 }, auth: None, card_keys: None, bank: false }
    }
}

impl SystemOptions {
    fn card_key(&self) -> anyhow::Result<sagaway_common::card::CardKey> {
        match &self.card_keys {
            Some(list) => sagaway_common::card::CardKey::from_list(list),
            None => sagaway_common::card::CardKey::from_hex(sagaway_common::card::DEV_CARD_KEY),
        }
    }
}

/// The running services of one test.
pub struct System {
    /// Signs the bearer tokens of this test's requests; every service verifies them against its JWKS.
    pub issuer: TestIssuer,
    pub prefix: String,
    pub product_url: String,
    pub orchestrator_url: String,
    pub payment_url: String,
    pub http: reqwest::Client,
    pub product_db: sqlx::MySqlPool,
    pub orchestrator_db: sqlx::MySqlPool,
    pub payment_db: sqlx::MySqlPool,
    /// The test databases (product, orchestrator, payment, and the bank's when it runs).
    pub databases: Vec<String>,
    /// The bank's base URL (`SystemOptions::bank`; empty without one, or while it is stopped).
    pub bank_url: String,
    id: String,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    bank: Option<BankProcess>,
}

/// The in-process bank: its settings (to start it again on the same database and topics) and, while
/// it runs, its stop switch and task.
struct BankProcess {
    config: bank::Config,
    running: Option<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

impl System {
    pub async fn spawn(opts: SystemOptions) -> anyhow::Result<Self> {
        Self::spawn_as(unique(), opts).await
    }

    /// Stops the three services and starts them again, on new ports but with the same databases
    /// and topics, configured by `opts` (other card keys, say): what a redeploy does.
    pub async fn restart(&mut self, opts: SystemOptions) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let bank = self.bank_task();
        for t in self.tasks.drain(..).chain(bank) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        let mut fresh = Self::spawn_as(self.id.clone(), opts).await?;
        (self.product_url, self.orchestrator_url, self.payment_url) =
            (fresh.product_url.clone(), fresh.orchestrator_url.clone(), fresh.payment_url.clone());
        self.tasks = std::mem::take(&mut fresh.tasks);
        std::mem::swap(&mut self.shutdown, &mut fresh.shutdown);
        std::mem::swap(&mut self.bank, &mut fresh.bank);
        std::mem::swap(&mut self.bank_url, &mut fresh.bank_url);
        // The new services trust the new test issuer: tokens from here on are its.
        std::mem::swap(&mut self.issuer, &mut fresh.issuer);
        Ok(())
    }

    /// Starts the services on the databases and topics of test `id` (created when missing).
    async fn spawn_as(id: String, opts: SystemOptions) -> anyhow::Result<Self> {
        // The services' spans carry the trace context (the subscriber is what makes them real).
        sagaway_common::telemetry::init_with_default("e2e", "warn");
        let prefix = format!("t{id}.");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut databases = Vec::new();

        // Product, with an in-memory index on its own (empty) CDC topic: these tests are about the saga.
        let product_db = format!("product_t_{id}");
        let issuer = TestIssuer::start().await;
        let auth = opts.auth.clone().unwrap_or_else(|| issuer.auth_config());
        let local = |db: &str| CommonConfig { auth: auth.clone(), user_rate: opts.user_rate, ..CommonConfig::local(db, &prefix) };
        let product_common = local(&product_db);
        let cdc_topic = format!("{prefix}cdc.products");
        kafka::ensure_topics(&product_common.kafka_brokers, &[(cdc_topic.clone(), 1)], 1).await?;
        let product_cfg = product::Config {
            common: product_common,
            reservation_ttl: opts.reservation_ttl,
            expiry_interval: Duration::from_millis(200),
            currency: sagaway_contract::money::Currency::USD,
            max_reservation_quantity: 1000,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lock: Duration::from_secs(15),
            cdc_topic,
            indexer_group: format!("{prefix}indexer"),
            index_linger: std::time::Duration::ZERO,
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
            common: local(&orch_db),
            product_url: product_url.clone(),
            duplicate_window: opts.duplicate_window,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lock: Duration::from_secs(60),
            card_key: opts.card_key()?,
            currency: "USD".into(),
            banks: vec!["001".into()],
            risk_check: opts.risk_check.is_some(),
            risk: opts.risk_check.clone().unwrap_or_default(),
        };
        let orch_app = orchestrator::Application::build(orch_cfg).await.context("building orchestrator")?;
        let orchestrator_url = format!("http://127.0.0.1:{}", orch_app.port());
        tasks.push(tokio::spawn(orch_app.run_until_stopped(shutdown.clone())));
        databases.push(orch_db.clone());

        let pay_db = format!("payment_t_{id}");
        let pay_common = local(&pay_db);
        let pay_cfg = payment::Config {
            card_key: opts.card_key()?,
            retry: payment::retry_policy::RetryPolicy {
                base: opts.retry_base,
                cap: opts.retry_base * 8,
                max_attempts: opts.max_attempts,
                jitter: match opts.fixed_jitter {
                    Some(u) => std::sync::Arc::new(payment::retry_policy::FixedJitter(u)),
                    None => std::sync::Arc::new(payment::retry_policy::RandomJitter),
                },
            },
            commands_group: format!("{prefix}payment-commands"),
            retry_group: format!("{prefix}payment-retry"),
            bank_replies_group: format!("{prefix}payment-bank-replies"),
            common: pay_common,
        };
        let pay_app = payment::Application::build(pay_cfg).await.context("building payment")?;
        let payment_url = format!("http://127.0.0.1:{}", pay_app.port());
        tasks.push(tokio::spawn(pay_app.run_until_stopped(shutdown.clone())));
        databases.push(pay_db.clone());

        let mut bank_process = None;
        if opts.bank {
            let bank_db = format!("bank_t_{id}");
            let mut config = bank::Config::from_env().context("the bank's settings")?;
            config.common = local(&bank_db);
            config.code = "001".into();
            bank_process = Some(BankProcess { config, running: None });
            databases.push(bank_db);
        }

        let stack = crate::StackAddr::from_env();
        let mut sys = Self {
            issuer,
            prefix,
            product_url,
            orchestrator_url,
            payment_url,
            http: reqwest::Client::builder().pool_max_idle_per_host(256).build()?,
            product_db: sqlx::MySqlPool::connect(&stack.mysql_url(&product_db)).await?,
            orchestrator_db: sqlx::MySqlPool::connect(&stack.mysql_url(&orch_db)).await?,
            payment_db: sqlx::MySqlPool::connect(&stack.mysql_url(&pay_db)).await?,
            databases,
            bank_url: String::new(),
            id,
            shutdown,
            tasks,
            bank: bank_process,
        };
        if sys.bank.is_some() {
            sys.start_bank().await?;
        }
        Ok(sys)
    }

    /// Starts the bank (again: same database, topics and settings, a new port). It picks its
    /// consumers up where they stopped.
    pub async fn start_bank(&mut self) -> anyhow::Result<()> {
        let process = self.bank.as_mut().context("no bank: spawn with SystemOptions { bank: true, .. }")?;
        anyhow::ensure!(process.running.is_none(), "the bank is running");
        let app = bank::Application::build(process.config.clone()).await.context("building the bank")?;
        self.bank_url = format!("http://127.0.0.1:{}", app.port());
        let stop = self.shutdown.child_token();
        process.running = Some((stop.clone(), tokio::spawn(app.run_until_stopped(stop))));
        Ok(())
    }

    /// The running bank's task, taken (to wait for it once it is told to stop).
    fn bank_task(&mut self) -> Option<tokio::task::JoinHandle<anyhow::Result<()>>> {
        self.bank.as_mut()?.running.take().map(|(_, task)| task)
    }

    /// Stops the bank (its database and topics stay): commands to it wait on `bank.commands`.
    pub async fn stop_bank(&mut self) -> anyhow::Result<()> {
        let process = self.bank.as_mut().context("no bank")?;
        let (stop, task) = process.running.take().context("the bank is not running")?;
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        self.bank_url.clear();
        Ok(())
    }

    /// A customer's bearer token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.issuer.token(user)
    }

    /// An admin's bearer token (`user` is who the audit trail names).
    pub fn admin_token(&self, user: &str) -> String {
        self.issuer.admin_token(user)
    }

    /// The token a request acting for the body's `user_id` carries (a default customer if none).
    fn token_for_body(&self, body: &Value) -> String {
        self.token(body["user_id"].as_str().filter(|u| sagaway_common::auth::valid_user_id(u)).unwrap_or("e2e-user"))
    }

    /// Creates a product (as an admin) and returns its id.
    pub async fn create_product(&self, price: &str, stock: i64) -> anyhow::Result<u64> {
        let res = self
            .http
            .post(format!("{}/products", self.product_url))
            .bearer_auth(self.admin_token("e2e-admin"))
            .json(&json!({"name": format!("item {}", unique()), "price": price, "stock": stock}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == StatusCode::CREATED, "create product: {}", res.status());
        res.json::<Value>().await?["id"].as_u64().context("product id")
    }

    /// Reserves and returns the reservation JSON.
    pub async fn reserve(&self, product_id: u64, user: &str, quantity: i64) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(format!("{}/reserve", self.product_url))
            .bearer_auth(self.token(user))
            .json(&json!({"product_id": product_id, "user_id": user, "quantity": quantity}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == StatusCode::CREATED, "reserve: {}", res.status());
        Ok(res.json().await?)
    }

    /// `POST /payment` with a raw body, as the user the body names; returns status, headers and JSON body.
    pub async fn post_payment(&self, body: &Value, idempotency_key: Option<&str>) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        self.post_payment_as(&self.token_for_body(body), body, idempotency_key).await
    }

    /// `POST /payment` with a raw body and the bearer `token`.
    pub async fn post_payment_as(&self, token: &str, body: &Value, idempotency_key: Option<&str>) -> anyhow::Result<(StatusCode, HeaderMap, Value)> {
        let mut req = self.http.post(format!("{}/payment", self.orchestrator_url)).bearer_auth(token).json(body);
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

    /// An order, read as an admin.
    pub async fn order(&self, order_id: &str) -> anyhow::Result<Value> {
        self.get_json(format!("{}/orders/{order_id}", self.orchestrator_url)).await
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

    /// `GET url` as an admin.
    pub async fn get_json(&self, url: String) -> anyhow::Result<Value> {
        Ok(self.http.get(url).bearer_auth(self.admin_token("e2e-admin")).send().await?.json().await?)
    }

    /// Stock of a product as the database has it.
    pub async fn stock(&self, product_id: u64) -> anyhow::Result<i64> {
        let p = self.get_json(format!("{}/products/{product_id}", self.product_url)).await?;
        p["stock"].as_i64().context("stock")
    }

    /// Every value of every row of every table of the test databases, as text: for scanning.
    pub async fn dump_tables(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        for (db, pool) in self.databases.iter().zip([&self.product_db, &self.orchestrator_db, &self.payment_db]) {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ?")
                    .bind(db)
                    .fetch_all(pool)
                    .await?;
            for t in tables {
                let cols: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                )
                .bind(db)
                .bind(&t)
                .fetch_all(pool)
                .await?;
                let expr = cols.iter().map(|c| format!("IFNULL(CAST(`{c}` AS CHAR), '')")).collect::<Vec<_>>().join(", '|', ");
                let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CONCAT({expr}) FROM `{t}`")).fetch_all(pool).await?;
                for r in rows {
                    out.push_str(&r);
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }

    /// Stops the services and drops their databases.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let bank = self.bank_task();
        for t in self.tasks.drain(..).chain(bank) {
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

impl System {
    /// Opens an individual account at the bank for `user` in `currency`; returns its id.
    pub async fn open_account(&self, user: &str, currency: &str) -> anyhow::Result<String> {
        let res = self
            .http
            .post(format!("{}/accounts", self.bank_url))
            .bearer_auth(self.token(user))
            .json(&json!({"type": "individual", "currency": currency, "document": "529.982.247-25"}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == StatusCode::CREATED, "open account: {}", res.status());
        Ok(res.json::<Value>().await?["id"].as_str().context("account id")?.to_string())
    }

    /// Deposits `amount` into `user`'s account and waits until the deposit is APPLIED.
    pub async fn deposit(&self, user: &str, account: &str, amount: &str) -> anyhow::Result<()> {
        let res = self
            .http
            .post(format!("{}/accounts/{account}/operations", self.bank_url))
            .bearer_auth(self.token(user))
            .header("Idempotency-Key", unique())
            .json(&json!({"type": "deposit", "amount": amount}))
            .send()
            .await?;
        anyhow::ensure!(res.status() == StatusCode::ACCEPTED, "deposit: {}", res.status());
        let op = res.json::<Value>().await?["operation_id"].as_str().context("operation id")?.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o: Value = self.http.get(format!("{}/operations/{op}", self.bank_url)).bearer_auth(self.token(user)).send().await?.json().await?;
            match o["status"].as_str() {
                Some("APPLIED") => return Ok(()),
                Some("QUEUED") | None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => bail!("deposit {op} did not apply: {o}"),
            }
        }
    }

    /// A bank account (`id`: a customer's, or the bank's own such as `merchant-USD`), read as an admin.
    pub async fn bank_account(&self, id: &str) -> anyhow::Result<Value> {
        self.get_json(format!("{}/accounts/{id}", self.bank_url)).await
    }

    /// Every statement entry of a bank account, newest first, read as an admin.
    pub async fn bank_statement(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        let s = self.get_json(format!("{}/accounts/{id}/statement?limit=200", self.bank_url)).await?;
        Ok(s["items"].as_array().context("statement items")?.clone())
    }

    /// `POST /payment` of reservation `reservation_id` from `user`'s bank account `account_id`.
    pub async fn pay_from_account(&self, reservation_id: &str, user: &str, account_id: &str) -> anyhow::Result<String> {
        let (status, _, b) = self.post_payment(&account_payment_body(reservation_id, user, "001", account_id), None).await?;
        anyhow::ensure!(status == StatusCode::ACCEPTED, "payment not accepted: {status} {b}");
        Ok(b["order_id"].as_str().context("order id")?.to_string())
    }
}

/// A payment body paying from bank `bank`'s account `account_id`.
pub fn account_payment_body(reservation_id: &str, user: &str, bank: &str, account_id: &str) -> Value {
    json!({
        "reservation_id": reservation_id,
        "user_id": user,
        "payment_method": {"type": "account", "bank": bank, "account_id": account_id}
    })
}

/// A payment body for `card`.
pub fn payment_body(reservation_id: &str, user: &str, card: &str) -> Value {
    json!({
        "reservation_id": reservation_id,
        "user_id": user,
        "payment_method": {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    })
}

/// The statuses an order passed through, in order.
pub fn statuses(order: &Value) -> Vec<String> {
    order["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_string()).collect()
}

/// True once the order has stopped moving on its own (terminal, or parked as FAILED).
pub fn settled(order: &Value) -> bool {
    matches!(order["status"].as_str(), Some("COMPLETED" | "COMPENSATED" | "FAILED"))
}

impl System {
    /// Reserves 2 units and pays with `card`; returns (order id, reservation id).
    pub async fn pay(&self, product: u64, user: &str, card: &str) -> anyhow::Result<(String, String)> {
        let r = self.reserve(product, user, 2).await?;
        let rid = r["id"].as_str().context("reservation id")?.to_string();
        let (status, _, b) = self.post_payment(&payment_body(&rid, user, card), None).await?;
        anyhow::ensure!(status == StatusCode::ACCEPTED, "payment not accepted: {status} {b}");
        Ok((b["order_id"].as_str().context("order id")?.to_string(), rid))
    }
}
