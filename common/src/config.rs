//! Settings from the environment. Every setting has a default that matches the local stack
//! (`scripts/stack up`), so a service started with no environment at all talks to it.

pub use sagaway_messaging::env::{database_url, env_or, env_string};

/// Settings every service shares. Each service prefixes its own variables (`PRODUCT_`, ...) and
/// falls back to the shared ones (`KAFKA_BROKERS`, `TOPIC_PREFIX`).
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Address the HTTP server binds; port 0 picks a free port (tests).
    pub http_host: String,
    pub http_port: u16,
    /// `mysql://user:pass@host:port/db`; the database is created on start when missing.
    pub database_url: String,
    pub db_max_connections: u32,
    pub kafka_brokers: String,
    /// Prepended to every topic name, so tests can run against one broker without sharing topics.
    pub topic_prefix: String,
    /// How long a consumer's fetch may wait on the broker when there is nothing to read (a long
    /// poll). The broker answers as soon as a record arrives (Kafka does; the local tansu with our
    /// patch too, docs/stack.md#the-broker-patch), so this costs no latency; it sets how often an
    /// idle consumer asks. 500 ms (librdkafka's default). The unpatched tansu sleeps it out on
    /// every fetch: `SAGAWAY_BROKER=upstream` runs the services with 25 ms.
    pub fetch_wait_max_ms: u32,
    /// The same for consumers off an order's critical path (the dead-letter recorder, the payment
    /// retry forwarder, whose messages wait seconds anyway): 1 s.
    pub background_fetch_wait_max_ms: u32,
    /// At most this many ready messages a consumer applies in one DB transaction (one commit per
    /// batch instead of per message; see `inbox`).
    pub consumer_batch_max: usize,
    /// Partitions of each keyed topic this service creates (existing topics are left as they are).
    /// 1 on the local stack: tansu answers every fetch by querying SQLite once per partition, so each
    /// partition costs broker CPU at every poll (docs/benchmarks.md), and one consumer per service
    /// reads all partitions anyway. Real Kafka (compose): 4.
    pub topic_partitions: i32,
    /// Replicas of each topic this service creates (`KAFKA_TOPIC_REPLICATION_FACTOR`, 1; compose's
    /// three-broker cluster: 3).
    pub topic_replicas: i32,
    /// How bearer tokens are checked (`AUTH_*`, the service's own audience by default; see [`crate::auth::AuthConfig::for_service`]).
    pub auth: crate::auth::AuthConfig,
    /// Per-user limit on the write routes that start work (`POST /reserve`, `POST /payment`):
    /// `USER_RATE_PER_SEC` (default 20) with bursts of `USER_RATE_BURST` (default 40). Generous:
    /// a person never meets it; a runaway script does.
    pub user_rate: UserRate,
}

/// A per-user token bucket's settings.
#[derive(Clone, Copy, Debug)]
pub struct UserRate {
    pub per_sec: f64,
    pub burst: u32,
}

impl Default for UserRate {
    fn default() -> Self {
        Self { per_sec: 20.0, burst: 40 }
    }
}

impl UserRate {
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        let per_sec: f64 = env_or("USER_RATE_PER_SEC", d.per_sec)?;
        anyhow::ensure!(per_sec.is_finite() && per_sec > 0.0, "USER_RATE_PER_SEC must be a positive number");
        Ok(Self { per_sec, burst: env_or("USER_RATE_BURST", d.burst)? })
    }
}

impl CommonConfig {
    /// `service` is the upper-case prefix (`PRODUCT`), `default_port` its seed port, `default_db` its database.
    pub fn from_env(service: &str, default_port: u16, default_db: &str) -> anyhow::Result<Self> {
        let var = |name: &str| format!("{service}_{name}");
        let default_url = format!("mysql://sagaway:sagaway@127.0.0.1:3307/{default_db}");
        Ok(Self {
            http_host: env_string(&var("HOST"), "127.0.0.1"),
            http_port: env_or(&var("PORT"), default_port)?,
            database_url: database_url(service, &default_url)?,
            db_max_connections: env_or(&var("DB_MAX_CONNECTIONS"), 16)?,
            kafka_brokers: env_string("KAFKA_BROKERS", "127.0.0.1:9092"),
            topic_prefix: env_string("TOPIC_PREFIX", ""),
            fetch_wait_max_ms: env_or("KAFKA_FETCH_WAIT_MAX_MS", 500)?,
            background_fetch_wait_max_ms: env_or("KAFKA_BACKGROUND_FETCH_WAIT_MAX_MS", 1000)?,
            consumer_batch_max: env_or("KAFKA_CONSUMER_BATCH_MAX", 200)?,
            topic_partitions: env_or("KAFKA_TOPIC_PARTITIONS", 1)?,
            topic_replicas: env_or("KAFKA_TOPIC_REPLICATION_FACTOR", 1)?,
            auth: crate::auth::AuthConfig::for_service(service)?,
            user_rate: UserRate::from_env()?,
        })
    }

    /// Settings for one instance on the local stack with its own database and topic prefix, on a
    /// free port: what tests use to run services side by side.
    pub fn local(database: &str, topic_prefix: &str) -> Self {
        Self {
            http_host: "127.0.0.1".into(),
            http_port: 0,
            database_url: format!("mysql://sagaway:sagaway@127.0.0.1:{}/{database}", env_or("SAGAWAY_MYSQL_PORT", 3307u16).unwrap_or(3307)),
            db_max_connections: 20,
            kafka_brokers: format!("127.0.0.1:{}", env_or("SAGAWAY_KAFKA_PORT", 9092u16).unwrap_or(9092)),
            topic_prefix: topic_prefix.into(),
            // 50 ms: each idle consumer polling tansu every 10 ms costs ~18 % of a core (docs/stack.md), and
            // tests run several services side by side.
            fetch_wait_max_ms: 50,
            background_fetch_wait_max_ms: 100,
            consumer_batch_max: 200,
            topic_partitions: 1,
            topic_replicas: 1,
            // Tests that call protected routes point this at their own identity service.
            auth: crate::auth::AuthConfig::local("http://127.0.0.1:3336", "http://127.0.0.1:3336", "sagaway"),
            user_rate: UserRate::default(),
        }
    }

    /// The full name of a logical topic (`order_queue` → `<prefix>order_queue`).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{}", self.topic_prefix, name)
    }
}
