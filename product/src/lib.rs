//! The product service: catalogue, stock, reservations, and product search fed by CDC.
//!
//! # Layout
//! - [`config`]: settings from the environment (`PRODUCT_*`, plus the shared `KAFKA_BROKERS`, `TOPIC_PREFIX`).
//! - [`catalogue`]: products (`POST /`, `POST /products`, `GET/PATCH/DELETE /products/{id}`).
//! - [`hold`]: the hold lifecycle (HELD → CONFIRMED | RELEASED | EXPIRED), pure: what each saga command does.
//! - [`reservations`]: `POST /reserve`, `GET /reservations/{id}`, the reservation rows and the expiry job.
//! - [`idempotency`]: `Idempotency-Key` on `POST /reserve` (Stripe semantics, like `POST /payment`).
//! - [`commands`]: the saga participant (lock / confirm / release over Kafka).
//! - [`search`]: the search backends (tantivy, Elasticsearch) and `/findAll` parameters.
//! - [`indexer`]: Debezium events → search backend; `reindex`.
//! - [`Application`]: wires it together and runs it until shutdown.

pub mod catalogue;
pub mod commands;
pub mod config;
pub mod error;
pub mod hold;
pub mod idempotency;
pub mod indexer;
pub mod reindex_command;
pub mod reservations;
pub mod search;

use sagaway_common::http::ProblemResponses;
use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    routing::{get, patch, post},
};
use sagaway_common::{auth::BearerAuth, guards::Guards, http::{ApiQuery, Readiness}, service};
use sagaway_messaging::{inbox::ConsumerLoop, kafka, outbox::OutboxRelay, topics};
use rdkafka::consumer::Consumer;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;
use config::SearchBackendKind;
use error::{ApiError, ApiResult};
use search::{FindAllAnswer, SearchBackend, SearchQuery, query::FindAllParams};

/// Migrations of the `product` database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The topics this service produces or consumes (logical names; the prefix is added at creation).
pub const TOPICS: &[&str] = &[topics::PRODUCT_COMMANDS, topics::PRODUCT_REPLIES, topics::PAYMENT_DLQ];

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::MySqlPool,
    pub config: Arc<Config>,
    pub search: Arc<dyn SearchBackend>,
    pub index_gate: indexer::IndexGate,
    /// Bearer-token checks and the per-user rate limit.
    pub guards: Guards,
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth, &ProblemResponses),
    info(title = "Sagaway product service", description = "Catalogue, stock reservations and CDC-fed product search."),
    paths(catalogue::api::seed, catalogue::api::create, catalogue::api::get, catalogue::api::patch, catalogue::api::delete,
          reservations::api::reserve, reservations::api::get, find_all, reindex),
    components(schemas(catalogue::Product, catalogue::NewProduct, catalogue::ProductPatch, catalogue::SeedResult,
                       reservations::Reservation, reservations::ReserveRequest, search::FindAllAnswer, search::Found, search::ProductDoc,
                       search::Facets, search::facets::CategoryCount, search::facets::PriceBandCount, search::Highlights,
                       search::highlight::Segment,
                       indexer::ReindexReport))
)]
pub struct ApiDoc;

/// Search the catalogue (served from the CDC-fed index, never from SQL): the page, with
/// `facets=true` the facets (matches per category and per price band) and, for a text query, each
/// item's highlighted words.
/// Words of five letters or more also match with one letter wrong, missing, extra or swapped.
#[utoipa::path(get, path = "/findAll", params(FindAllParams), tag = "search",
    responses((status = 200, body = FindAllAnswer), (status = 422, description = "invalid parameter (problem+json names it)")))]
pub async fn find_all(State(app): State<AppState>, ApiQuery(params): ApiQuery<FindAllParams>) -> ApiResult<Json<FindAllAnswer>> {
    let query = SearchQuery::parse(&params)?;
    let text = query.text.clone();
    let page = app.search.search(query).await.map_err(ApiError::Search)?;
    Ok(Json(FindAllAnswer::new(page, text.as_deref())))
}

/// Rebuild the search index from the CDC topic (clear, then replay from the beginning).
#[utoipa::path(post, path = "/admin/reindex", tag = "search", responses((status = 200, body = indexer::ReindexReport)))]
pub async fn reindex(State(app): State<AppState>) -> ApiResult<Json<indexer::ReindexReport>> {
    let report = indexer::reindex(&app.config.common.kafka_brokers, &app.config.cdc_topic, app.search.clone(), app.index_gate.clone())
        .await
        .map_err(ApiError::Search)?;
    Ok(Json(report))
}

/// The routes, by who may call them: anyone (browsing the catalogue), a signed-in customer
/// (reservations, rate-limited per user) or an admin (catalogue writes, reindexing).
pub fn router(state: AppState) -> Router {
    let guards = state.guards.clone();
    let public = Router::new()
        .route("/findAll", get(find_all))
        .route("/products/{id}", get(catalogue::api::get))
        .merge(sagaway_common::http::api_reference(|| sagaway_common::http::document_json(ApiDoc::openapi())));
    let customer = guards
        .signed_in_rate_limited(Router::new().route("/reserve", post(reservations::api::reserve)))
        .merge(guards.signed_in(Router::new().route("/reservations/{id}", get(reservations::api::get))));
    let admin = guards.admin(
        Router::new()
            .route("/", post(catalogue::api::seed))
            .route("/products", post(catalogue::api::create))
            .route("/products/{id}", patch(catalogue::api::patch).delete(catalogue::api::delete))
            .route("/admin/reindex", post(reindex)),
    );
    public.merge(customer).merge(admin).with_state(state)
}

/// Opens the configured search backend.
pub async fn open_search(config: &Config) -> anyhow::Result<Arc<dyn SearchBackend>> {
    Ok(match config.search_backend {
        SearchBackendKind::Tantivy => Arc::new(Arc::new(search::tantivy_backend::TantivyBackend::open(&config.index_dir)?)),
        SearchBackendKind::Elasticsearch => Arc::new(search::elastic::ElasticBackend::open(&config.es_url, &config.es_index).await?),
    })
}

/// A built service, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    state: AppState,
    readiness: Readiness,
    listener: tokio::net::TcpListener,
    relay: OutboxRelay,
    producer: Arc<rdkafka::producer::FutureProducer>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let f = service::prepare(&config.common, &MIGRATOR, TOPICS).await?;
        let search = open_search(&config).await?;
        let readiness = f.readiness("product");
        let relay = OutboxRelay::new(f.pool.clone(), f.producer.clone());
        let state = AppState {
            pool: f.pool,
            guards: Guards::new(&config.common),
            config: Arc::new(config),
            search,
            index_gate: Arc::new(tokio::sync::Mutex::new(())),
        };
        Ok(Self { port: f.port, state, readiness, listener: f.listener, relay, producer: f.producer })
    }

    /// The bound port (useful when the configured port was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The search backend the indexer feeds (tests replay events into it directly).
    pub fn search_backend(&self) -> Arc<dyn SearchBackend> {
        self.state.search.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests and stops background work.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = self.state.config.clone();
        let common = &cfg.common;
        let mut tasks = tokio::task::JoinSet::new();

        tasks.spawn(self.relay.clone().run(shutdown.clone()));

        let commands = kafka::consumer(&common.kafka_brokers, &format!("{}product-commands", common.topic_prefix), common.fetch_wait_max_ms)?;
        commands.subscribe(&[&common.topic(topics::PRODUCT_COMMANDS)])?;
        let consumer_loop = ConsumerLoop {
            service: "product",
            consumer: commands,
            pool: self.state.pool.clone(),
            relay: self.relay.clone(),
            dlq_topic: common.topic(topics::PAYMENT_DLQ),
            max_batch: common.consumer_batch_max,
        };
        let handler = commands::CommandHandler { replies_topic: common.topic(topics::PRODUCT_REPLIES) };
        tasks.spawn(consumer_loop.run(handler, shutdown.clone()));

        if self.state.search.needs_rebuild() {
            // A new index layout: fill it from the CDC topic before indexing on from the stored offsets.
            let report = indexer::reindex(&common.kafka_brokers, &cfg.cdc_topic, self.state.search.clone(), self.state.index_gate.clone()).await?;
            tracing::info!(?report, "search index rebuilt for its new layout");
        }
        let cdc = kafka::consumer(&common.kafka_brokers, &cfg.indexer_group, common.fetch_wait_max_ms)?;
        indexer::assign_all(&cdc, &cfg.cdc_topic)?;
        tasks.spawn(indexer::run(cdc, self.state.search.clone(), self.state.index_gate.clone(), cfg.index_linger, shutdown.clone()));

        let notices = reservations::ExpiryNotices { replies_topic: common.topic(topics::PRODUCT_REPLIES), relay: self.relay.clone() };
        tasks.spawn(idempotency::run_purge(self.state.pool.clone(), cfg.idempotency_ttl, Duration::from_secs(600), shutdown.clone()));

        tasks.spawn(reservations::run_expiry(self.state.pool.clone(), cfg.expiry_interval, notices, shutdown.clone()));

        tracing::info!(port = self.port, search = self.state.search.name(), "product service listening");
        let served = sagaway_common::http::serve(self.listener, router(self.state), self.readiness, shutdown.clone()).await;
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} }).await;
        drop(self.producer);
        served
    }
}

/// The `migrate` command: creates the database and topics, runs migrations, exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    service::migrate(&config.common, &MIGRATOR, TOPICS).await?;
    // The CDC topic is Debezium's (never prefixed): created here so it has exactly one partition.
    kafka::ensure_topics(&config.common.kafka_brokers, &[(config.cdc_topic.clone(), 1)], config.common.topic_replicas).await?;
    Ok(())
}
