//! Shared by the product service's integration tests (and `examples/search_bench.rs`): each test
//! spawns its own Application on port 0 with a fresh database, a unique topic prefix, an in-memory
//! index, and — when it needs CDC — its own Debezium connector registered on the local Kafka
//! Connect. Everything runs against the real stack (`scripts/stack up --infra`); nothing is mocked.
#![allow(dead_code)]

pub mod scenarios;

use std::{
    future::Future,
    io::{Read, Write},
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use product::{
    Application, Config,
    config::SearchBackendKind,
    search::{Change, SearchBackend, cdc},
};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use sagaway_common::auth_testing::TestIssuer;
use sagaway_common::config::CommonConfig;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub fn mysql_port() -> u16 {
    std::env::var("SAGAWAY_MYSQL_PORT").ok().and_then(|v| v.parse().ok()).unwrap_or(3307)
}

pub fn brokers() -> String {
    format!("127.0.0.1:{}", std::env::var("SAGAWAY_KAFKA_PORT").ok().and_then(|v| v.parse::<u16>().ok()).unwrap_or(9092))
}

pub fn connect_url() -> String {
    std::env::var("SAGAWAY_CONNECT_URL").unwrap_or_else(|_| "http://127.0.0.1:8083".into())
}

/// What a test wants from its app.
#[derive(Clone, Debug)]
pub struct Options {
    /// Register a Debezium connector for the test's database and feed the index from it.
    pub cdc: bool,
    pub backend: SearchBackendKind,
    /// Elasticsearch URL (noida-db) when `backend` is Elasticsearch.
    pub es_url: Option<String>,
    pub reservation_ttl: Duration,
    pub expiry_interval: Duration,
    pub db_max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cdc: false,
            backend: SearchBackendKind::Tantivy,
            es_url: None,
            reservation_ttl: Duration::from_secs(900),
            expiry_interval: Duration::from_millis(1000),
            // The service's default (PRODUCT_DB_MAX_CONNECTIONS): tests see what production sees.
            db_max_connections: 16,
        }
    }
}

impl Options {
    pub fn cdc() -> Self {
        Self { cdc: true, ..Self::default() }
    }

    pub fn elastic(es_url: &str) -> Self {
        Self { cdc: true, backend: SearchBackendKind::Elasticsearch, es_url: Some(es_url.to_string()), ..Self::default() }
    }
}

/// A running product service of one test. Dropping it stops the app and deletes the connector.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub pool: MySqlPool,
    pub config: Config,
    pub database: String,
    pub search: Arc<dyn SearchBackend>,
    /// Signs the tokens this test's requests carry (the app verifies them against its JWKS).
    pub issuer: TestIssuer,
    shutdown: CancellationToken,
    connector: Option<Connector>,
}

pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub async fn spawn_app(opts: Options) -> anyhow::Result<TestApp> {
    sagaway_common::telemetry::init("product-test");
    let id = unique_id();
    let short = &id[..8];
    let database = format!("product_t_{id}");
    let topic_prefix = format!("t{short}.");
    // Debezium names its topic `<topic.prefix>.<db>.<table>`.
    let cdc_prefix = format!("t{short}cdc");
    let cdc_topic = format!("{cdc_prefix}.{database}.products");
    let issuer = TestIssuer::start().await;
    let config = Config {
        common: CommonConfig {
            http_host: "127.0.0.1".into(),
            http_port: 0,
            database_url: format!("mysql://sagaway:sagaway@127.0.0.1:{}/{database}", mysql_port()),
            db_max_connections: opts.db_max_connections,
            kafka_brokers: brokers(),
            topic_prefix: topic_prefix.clone(),
            fetch_wait_max_ms: 10,
            background_fetch_wait_max_ms: 100,
            consumer_batch_max: 200,
            topic_partitions: 1,
            topic_replicas: 1,
            auth: issuer.auth_config(),
            user_rate: Default::default(),
        },
        reservation_ttl: opts.reservation_ttl,
        expiry_interval: opts.expiry_interval,
        currency: sagaway_contract::money::Currency::USD,
        max_reservation_quantity: 1000,
        idempotency_ttl: Duration::from_secs(24 * 3600),
        idempotency_lock: Duration::from_secs(15),
        cdc_topic: cdc_topic.clone(),
        indexer_group: format!("{topic_prefix}product-indexer"),
        index_linger: std::time::Duration::from_millis(25), // exercises the linger path (the default is 0)
        search_backend: opts.backend.clone(),
        index_dir: PathBuf::from("memory"),
        es_url: opts.es_url.clone().unwrap_or_default(),
        es_index: format!("products_{short}"),
    };
    // The indexer subscribes at start: its topic must exist by then (tansu does not auto-create).
    sagaway_messaging::kafka::ensure_topics(&config.common.kafka_brokers, &[(cdc_topic.clone(), 1)], 1).await?;
    let app = Application::build(config.clone()).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let search = app.search_backend();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let pool = MySqlPool::connect(&config.common.database_url).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let mut test_app = TestApp { address, http, pool, config, database, search, issuer, shutdown, connector: None };
    if opts.cdc {
        test_app.connector = Some(Connector::register(&cdc_prefix, &test_app.database).await?);
        test_app.warm_up_cdc().await?;
    }
    Ok(test_app)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The bearer token a request with `body` carries: the customer the body's `user_id` names
    /// (when it is a valid user id), otherwise an admin (catalogue writes, reads of anything).
    pub fn token_for(&self, body: Option<&Value>) -> String {
        match body.and_then(|b| b["user_id"].as_str()).filter(|u| sagaway_common::auth::valid_user_id(u)) {
            Some(user) => self.issuer.token(user),
            None => self.issuer.admin_token("test-admin"),
        }
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let res = self.http.get(self.url(path)).bearer_auth(self.token_for(None)).send().await?;
        let status = res.status().as_u16();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let res = self.http.post(self.url(path)).bearer_auth(self.token_for(Some(body))).json(body).send().await?;
        let status = res.status().as_u16();
        Ok((status, res.json::<Value>().await.unwrap_or(Value::Null)))
    }

    pub async fn http_patch(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let res = self.http.patch(self.url(path)).bearer_auth(self.token_for(None)).json(body).send().await?;
        let status = res.status().as_u16();
        Ok((status, res.json::<Value>().await.unwrap_or(Value::Null)))
    }

    /// `GET /findAll?<query>`; panics on a non-200 answer (a search must never fail in these tests).
    pub async fn find_all(&self, query: &str) -> anyhow::Result<Value> {
        let (status, body) = self.get_json(&format!("/findAll?{query}")).await?;
        if status != 200 {
            bail!("/findAll?{query} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Every live document, id ascending (relevance without text sorts by id), page by page.
    pub async fn all_docs(&self) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        for page in 1.. {
            let body = self.find_all(&format!("per_page=100&page={page}")).await?;
            let items = body["items"].as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Waits until the connector streams: a probe row must reach the index, and its delete too.
    async fn warm_up_cdc(&self) -> anyhow::Result<()> {
        let token = format!("warmup{}", &unique_id()[..10]);
        let id = sqlx::query("INSERT INTO products (name, description, price, stock) VALUES (?, 'connector warm-up', 1, 0)")
            .bind(&token)
            .execute(&self.pool)
            .await?
            .last_insert_id();
        let q = format!("q={token}");
        poll_until(Duration::from_secs(90), || async {
            self.find_all(&q).await.ok().filter(|b| b["total"] == json!(1)).map(|_| ())
        })
        .await
        .context("the test's Debezium connector did not stream the warm-up row into the index")?;
        sqlx::query("DELETE FROM products WHERE id = ?").bind(id).execute(&self.pool).await?;
        poll_until(Duration::from_secs(30), || async {
            self.find_all(&q).await.ok().filter(|b| b["total"] == json!(0)).map(|_| ())
        })
        .await
        .context("the warm-up row's delete did not reach the index")?;
        Ok(())
    }

    /// Stops the app and the connector, and drops the test database.
    pub async fn cleanup(mut self) {
        self.shutdown.cancel();
        if let Some(c) = self.connector.take() {
            c.delete();
        }
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.database)).execute(&self.pool).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A Debezium connector of one test, deleted on drop (also when the test panics).
pub struct Connector {
    pub name: String,
    history: PathBuf,
}

impl Connector {
    /// Registers a connector like connect-config/product-cdc.properties, scoped to `database`.
    pub async fn register(prefix: &str, database: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}-product-cdc");
        let history = std::env::temp_dir().join(format!("{name}-schema-history.dat"));
        let config = json!({
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            "tasks.max": "1",
            "database.hostname": "127.0.0.1",
            "database.port": mysql_port().to_string(),
            "database.user": "debezium",
            "database.password": "dbz",
            // Unique among the server's replication clients.
            "database.server.id": (100_000 + rand::random::<u32>() % 4_000_000_000).to_string(),
            "topic.prefix": prefix,
            "database.include.list": database,
            "table.include.list": format!("{database}.products"),
            "include.schema.changes": "false",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": history.display().to_string(),
            // Other tests create databases all the time: keep (and parse) only this test's DDL.
            "schema.history.internal.store.only.captured.databases.ddl": "true",
            "schema.history.internal.store.only.captured.tables.ddl": "true",
            "snapshot.mode": "initial",
            // The test database is new and private: no global read lock that would stall other tests.
            "snapshot.locking.mode": "none",
            "tombstones.on.delete": "true",
            "decimal.handling.mode": "string",
            "poll.interval.ms": "50",
            "topic.creation.default.replication.factor": "1",
            "topic.creation.default.partitions": "1",
        });
        let res = reqwest::Client::new()
            .post(format!("{}/connectors", connect_url()))
            .json(&json!({"name": name, "config": config}))
            .send()
            .await
            .context("Kafka Connect REST (is the stack up?)")?;
        if !res.status().is_success() {
            bail!("registering connector {name}: {} {}", res.status(), res.text().await.unwrap_or_default());
        }
        Ok(Self { name, history })
    }

    /// Best-effort DELETE over a plain socket, so it also works from `Drop` outside a runtime.
    pub fn delete(&self) {
        let host = connect_url().trim_start_matches("http://").to_string();
        if let Ok(mut s) = std::net::TcpStream::connect(&host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!("DELETE /connectors/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", self.name);
            if s.write_all(req.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
        let _ = std::fs::remove_file(&self.history);
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Calls `probe` until it yields a value or `within` elapses.
pub async fn poll_until<T, F, Fut>(within: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("condition not met within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event of `topic` from its beginning to its current end, parsed as the indexer parses them.
pub async fn read_changes(topic: &str) -> anyhow::Result<Vec<Change>> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Change>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", format!("product-test-replay-{}", unique_id()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let (low, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(10))?;
        let mut out = Vec::new();
        if high <= low {
            return Ok(out);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(low))?;
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            anyhow::ensure!(Instant::now() < deadline, "reading {topic} timed out");
            let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
            let m = m?;
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            let value = m.payload().map(|p| String::from_utf8_lossy(p).into_owned());
            if let Some(c) = cdc::parse(key.as_deref(), value.as_deref()).map_err(anyhow::Error::msg)? {
                out.push(c);
            }
            if m.offset() + 1 >= high {
                return Ok(out);
            }
        }
    })
    .await?
}

/// One noida-db (Elasticsearch emulator) per test binary, or `None` when it is not installed
/// (`scripts/install-noida`). A watchdog shell kills it by PID when the test process exits.
pub fn noida_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| match start_noida() {
        Ok(url) => Some(url),
        Err(e) => {
            eprintln!("noida-db unavailable: {e:#}");
            None
        }
    })
    .clone()
}

fn start_noida() -> anyhow::Result<String> {
    let cache = std::env::var("SAGAWAY_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/sagaway"));
    let bin = std::env::var("NOIDA_DB_BIN").map(PathBuf::from).unwrap_or_else(|_| cache.join("noida-venv/bin/noida-db"));
    anyhow::ensure!(bin.exists(), "{} does not exist; run scripts/install-noida", bin.display());
    let dir = std::env::temp_dir().join(format!("product-noida-{}", unique_id()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("noida.log");
    let script = format!(
        // `noida-db` is a Python launcher that starts the native server as a child: run it in its own
        // process group (setsid) and signal the whole group, or the server outlives the test.
        "setsid '{bin}' start --data-dir '{data}' --only elasticsearch --elasticsearch-port 0 > '{log}' 2>&1 & child=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -- -$child; sleep 1; kill -9 -- -$child 2>/dev/null; rm -rf '{dir}'",
        bin = bin.display(),
        data = dir.join("data").display(),
        dir = dir.display(),
        log = log.display(),
        parent = std::process::id(),
    );
    std::process::Command::new("sh").arg("-c").arg(script).spawn().context("starting noida-db")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = text.split_whitespace().find(|w| w.starts_with("http://")) {
            return Ok(url.trim_end_matches('/').to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("noida-db printed no URL within 30 s (log: {})", log.display())
}
