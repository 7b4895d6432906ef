//! Settings of the product service. Every variable and default is listed in docs/configuration.md.

use std::{path::PathBuf, time::Duration};

use sagaway_common::config::{CommonConfig, env_or, env_string};
use sagaway_contract::money::Currency;

/// Which search backend serves `/findAll` (both are fed by the same CDC indexer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchBackendKind {
    /// tantivy, embedded in the service (default; no server needed).
    Tantivy,
    /// Elasticsearch 8 at `PRODUCT_ES_URL`.
    Elasticsearch,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
    /// How long an unpaid reservation holds stock (`PRODUCT_RESERVATION_TTL_SECS`, default 900).
    pub reservation_ttl: Duration,
    /// How often the expiry job looks for lapsed reservations (`PRODUCT_EXPIRY_INTERVAL_MS`, default 1000).
    pub expiry_interval: Duration,
    /// The currency of every price (`PRODUCT_CURRENCY`, default USD; must match the orchestrator's
    /// `ORCHESTRATOR_CURRENCY`). A price is at least one of its minor units and no finer (2 decimals
    /// for USD/EUR/BRL, 0 for JPY).
    pub currency: Currency,
    /// The largest quantity one reservation may hold (`PRODUCT_MAX_RESERVATION_QUANTITY`, default 1000).
    pub max_reservation_quantity: i32,
    /// How long `POST /reserve` Idempotency-Key records are kept (`PRODUCT_IDEMPOTENCY_TTL_HOURS`,
    /// default 24; at least 24).
    pub idempotency_ttl: Duration,
    /// An in-flight Idempotency-Key older than this is considered abandoned (`PRODUCT_IDEMPOTENCY_LOCK_SECS`,
    /// default 15; a reservation normally answers in milliseconds).
    pub idempotency_lock: Duration,
    /// Debezium's topic for `products` (`PRODUCT_CDC_TOPIC`, default `shop.product.products`; not prefixed).
    pub cdc_topic: String,
    /// Consumer group of the indexer (`PRODUCT_INDEXER_GROUP`, default `product-indexer`).
    pub indexer_group: String,
    /// How long the indexer keeps gathering change events after the first of a batch before it
    /// applies them with one index commit (`PRODUCT_INDEX_LINGER_MS`, default 0: whatever is already
    /// fetched). A linger means fewer, larger commits; at 25 ms it cut the product's CPU at 100
    /// orders/s in a single comparison but the 3-run suite showed no end-to-end gain and a longer
    /// CDC lag (docs/benchmarks.md), so it is off unless set.
    pub index_linger: Duration,
    /// `PRODUCT_SEARCH_BACKEND`: `tantivy` (default) or `elasticsearch`.
    pub search_backend: SearchBackendKind,
    /// Where the tantivy index lives (`PRODUCT_INDEX_DIR`, default `./product-index`); `memory` keeps it in RAM.
    pub index_dir: PathBuf,
    /// Elasticsearch base URL (`PRODUCT_ES_URL`, default `http://127.0.0.1:9200`).
    pub es_url: String,
    /// Elasticsearch index name (`PRODUCT_ES_INDEX`, default `products`).
    pub es_index: String,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env("PRODUCT", 3333, "product")?;
        let search_backend = match env_string("PRODUCT_SEARCH_BACKEND", "tantivy").to_ascii_lowercase().as_str() {
            "tantivy" => SearchBackendKind::Tantivy,
            "elasticsearch" | "es" => SearchBackendKind::Elasticsearch,
            other => anyhow::bail!("PRODUCT_SEARCH_BACKEND={other:?} is invalid; expected tantivy or elasticsearch"),
        };
        Ok(Self {
            common,
            reservation_ttl: Duration::from_secs(env_or("PRODUCT_RESERVATION_TTL_SECS", 900)?),
            expiry_interval: Duration::from_millis(env_or("PRODUCT_EXPIRY_INTERVAL_MS", 1000)?),
            currency: env_or("PRODUCT_CURRENCY", Currency::USD)?,
            max_reservation_quantity: env_or("PRODUCT_MAX_RESERVATION_QUANTITY", 1000)?,
            idempotency_ttl: Duration::from_secs(3600 * env_or::<u64>("PRODUCT_IDEMPOTENCY_TTL_HOURS", 24)?.max(24)),
            idempotency_lock: Duration::from_secs(env_or("PRODUCT_IDEMPOTENCY_LOCK_SECS", 15)?),
            cdc_topic: env_string("PRODUCT_CDC_TOPIC", sagaway_messaging::topics::CDC_PRODUCTS),
            indexer_group: env_string("PRODUCT_INDEXER_GROUP", "product-indexer"),
            index_linger: Duration::from_millis(env_or("PRODUCT_INDEX_LINGER_MS", 0)?),
            search_backend,
            index_dir: PathBuf::from(env_string("PRODUCT_INDEX_DIR", "./product-index")),
            es_url: env_string("PRODUCT_ES_URL", "http://127.0.0.1:9200"),
            es_index: env_string("PRODUCT_ES_INDEX", "products"),
        })
    }
}
