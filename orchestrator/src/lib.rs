//! The orchestrator: `POST /payment`, idempotency, the two-minute duplicate rule, and the payment saga.
//!
//! Follow an order top-down: [`intake`] accepts it (202) and queues it; the saga's steps are the
//! list [`saga::machine::ORDER_SAGA`] (lock → optional risk check → charge → confirm → COMPLETED,
//! or compensation → COMPENSATED), applied by the pure [`saga::machine::step`] through the one
//! adapter in [`saga`].
//!
//! # Layout
//! - [`config`]: settings from the environment (`ORCHESTRATOR_*`, `PRODUCT_URL`, `CARD_KEYS`, shared Kafka ones).
//! - [`intake`]: `POST /payment`.
//! - [`guard`]: the two-minute duplicate rule.
//! - [`idempotency`]: `Idempotency-Key` records.
//! - [`orders`]: order state, history, `GET /orders/{id}`, `GET /orders?user_id=`.
//! - [`saga`]: the saga as a pure state machine ([`saga::machine`]) and its inbox/outbox adapter.
//! - [`product_client`]: reads reservations over the product service's HTTP API.
//! - [`dlq`]: dead-letter tooling: records `payment_dlq`, lists/replays/abandons/purges (`/admin/dlq`, `sagaway dlq` (crate `cli`)).
//! - [`Application`]: wires it together and runs it until shutdown.

pub mod config;
pub mod dlq;
pub mod error;
pub mod guard;
pub mod idempotency;
pub mod intake;
pub mod orders;
pub mod product_client;
pub mod saga;

use sagaway_common::http::ProblemResponses;
use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use rdkafka::consumer::Consumer;
use sagaway_common::{auth::BearerAuth, guards::Guards, http::Readiness, service, telemetry};
use sagaway_messaging::{inbox::ConsumerLoop, kafka, outbox::OutboxRelay, topics};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

/// Migrations of the `orchestrator` database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The topics this service produces or consumes (logical names; the prefix is added at creation).
pub const TOPICS: &[&str] = &[
    topics::ORDER_QUEUE,
    topics::PRODUCT_COMMANDS,
    topics::PRODUCT_REPLIES,
    topics::PAYMENT_COMMANDS,
    topics::PAYMENT_REPLIES,
    topics::SAGA_RETRY,
    topics::PAYMENT_DLQ,
    topics::ORDER_EVENTS,
    // Not consumed or produced by the saga: a dead letter of the payment processor's bank-answer
    // consumer is replayed onto it (the dead-letter tools republish on the original topic).
    topics::BANK_REPLIES,
    // The bank's dead letters are recorded here too (dlq::recorder) and replayed onto the bank's
    // topics: its compensation commands (void, refund) onto `bank.commands`, its queue's onto
    // `bank.operations` (the bank applies each at most once: per payment id, per QUEUED operation).
    topics::BANK_DLQ,
    topics::BANK_COMMANDS,
    topics::BANK_OPERATIONS,
];

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::MySqlPool,
    pub config: Arc<Config>,
    pub product: product_client::ProductClient,
    pub relay: OutboxRelay,
    /// Bearer-token checks and the per-user rate limit.
    pub guards: Guards,
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth, &ProblemResponses),
    info(title = "Sagaway orchestrator", description = "Accepts payments and runs the order-payment saga."),
    paths(intake::create_payment, orders::api::get, orders::api::list,
          dlq::api::list, dlq::api::show, dlq::api::replay, dlq::api::abandon, dlq::api::resolve, dlq::api::purge, dlq::api::audit_log),
    components(schemas(intake::PaymentAccepted,
                       orders::api::OrderView, orders::api::OrderPage, orders::HistoryEntry, orders::api::PaymentView,
                       dlq::store::DeadLetter, dlq::store::Filter, dlq::Outcome, dlq::audit::AuditEntry,
                       dlq::api::DeadLetterPage, dlq::api::AuditPage, dlq::operations::DeadLetterDetail, dlq::operations::OperationRequest, dlq::operations::OperationResult))
)]
pub struct ApiDoc;

/// The document this deployment serves: [`ApiDoc`] with the request bodies utoipa's types cannot
/// state exactly — `POST /payment` for its banks and today's date (a card that expired last month
/// is refused), and the dead-letter operations ([`dlq::api::operation_body_schema`]).
pub fn document(banks: &[String]) -> serde_json::Value {
    use chrono::Datelike;
    let mut doc = sagaway_common::http::document_json(ApiDoc::openapi());
    let now = chrono::Utc::now();
    doc["components"]["schemas"]["PaymentRequest"] = intake::payment_body_schema(banks, (now.year() as u16, now.month() as u8));
    doc["paths"]["/payment"]["post"]["requestBody"]["content"]["application/json"]["schema"] = serde_json::json!({"$ref": "#/components/schemas/PaymentRequest"});
    for operation in ["replay", "abandon", "resolve", "purge"] {
        let body = &mut doc["paths"][format!("/admin/dlq/{operation}")]["post"]["requestBody"]["content"]["application/json"]["schema"];
        *body = dlq::api::operation_body_schema(operation);
    }
    doc
}

/// The routes, by who may call them: a signed-in customer (paying, rate-limited per user; their
/// orders) or an admin (the dead-letter tools).
pub fn router(state: AppState) -> Router {
    let guards = state.guards.clone();
    let banks = state.config.banks.clone();
    let public = sagaway_common::http::api_reference(move || document(&banks));
    let customer = guards
        .signed_in_rate_limited(Router::new().route("/payment", post(intake::create_payment)))
        .merge(guards.signed_in(Router::new().route("/orders", get(orders::api::list)).route("/orders/{id}", get(orders::api::get))));
    let admin = guards.admin(dlq::api::routes());
    public.merge(customer).merge(admin).with_state(state)
}

/// A built service, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    state: AppState,
    readiness: Readiness,
    listener: tokio::net::TcpListener,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let f = service::prepare(&config.common, &MIGRATOR, TOPICS).await?;
        let readiness = f.readiness("orchestrator");
        let relay = OutboxRelay::new(f.pool.clone(), f.producer.clone());
        let state = AppState {
            pool: f.pool,
            product: product_client::ProductClient::new(&config.product_url),
            guards: Guards::new(&config.common),
            config: Arc::new(config),
            relay,
        };
        Ok(Self { port: f.port, state, readiness, listener: f.listener })
    }

    /// The bound port (useful when the configured port was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests and stops background work.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = self.state.config.clone();
        let common = &cfg.common;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.state.relay.clone().run(shutdown.clone()));
        // Exported at 0 from the start, so the alert on its increase sees the first alert too.
        metrics::counter!("saga_alerts_total").increment(0);

        let saga_topics = saga::SagaTopics::new(common);
        let consumer = kafka::consumer(&common.kafka_brokers, &format!("{}orchestrator-saga", common.topic_prefix), common.fetch_wait_max_ms)?;
        consumer.subscribe(&saga_topics.consumed())?;
        let saga_loop = ConsumerLoop {
            service: "orchestrator",
            consumer,
            pool: self.state.pool.clone(),
            relay: self.state.relay.clone(),
            dlq_topic: common.topic(topics::PAYMENT_DLQ),
            max_batch: common.consumer_batch_max,
        };
        tasks.spawn(saga_loop.run(saga::SagaHandler { ctx: saga::SagaContext::new(&cfg) }, shutdown.clone()));

        // Dead letters are recorded by a loop of their own, so a stalled saga never hides them:
        // every service's (payment_dlq, bank.dlq, and those of other deployments' banks).
        let dlq_topic = common.topic(topics::PAYMENT_DLQ);
        let recorded = dlq::recorder::topics(common).await?;
        let dlq_consumer = kafka::consumer(&common.kafka_brokers, &format!("{}orchestrator-dlq", common.topic_prefix), common.background_fetch_wait_max_ms)?;
        dlq_consumer.subscribe(&recorded.iter().map(String::as_str).collect::<Vec<_>>())?;
        let dlq_loop = ConsumerLoop {
            service: "orchestrator",
            consumer: dlq_consumer,
            pool: self.state.pool.clone(),
            relay: self.state.relay.clone(),
            dlq_topic,
            max_batch: common.consumer_batch_max,
        };
        tasks.spawn(dlq_loop.run(dlq::recorder::DeadLetterRecorder, shutdown.clone()));
        tasks.spawn(idempotency::run_purge(self.state.pool.clone(), cfg.idempotency_ttl, Duration::from_secs(60), shutdown.clone()));
        let pool = self.state.pool.clone();
        tasks.spawn(telemetry::sample_every(telemetry::GAUGE_SAMPLE_EVERY, shutdown.clone(), move || {
            let pool = pool.clone();
            async move { dlq::store::sample_pending(&pool).await }
        }));

        tracing::info!(port = self.port, "orchestrator listening");
        let served = sagaway_common::http::serve(self.listener, router(self.state), self.readiness, shutdown.clone()).await;
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} }).await;
        served
    }
}

/// The `migrate` command: creates the database and topics, runs migrations, exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    service::migrate(&config.common, &MIGRATOR, TOPICS).await?;
    Ok(())
}
