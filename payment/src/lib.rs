//! The payment processor: a simulated acquirer and a double-entry ledger, driven by the saga over
//! Kafka (`payment.commands` → `payment.replies`), with non-blocking retries and a dead-letter topic.
//!
//! # Layout
//! - [`config`]: settings from the environment (`PAYMENT_*`, `CARD_KEYS`, plus the shared `KAFKA_BROKERS`, `TOPIC_PREFIX`).
//! - [`commands`]: the saga participant: consumes charge/refund commands (inbox + effect + outbox in one transaction).
//! - [`lifecycle`]: the charge lifecycle, pure: its statuses, their legal moves, and what a charge command does.
//! - [`charges`]: carries a charge command out (validate, acquirer, capture / decline / retry / dead letter);
//!   `GET /charges/{order_id}` in [`charges::api`].
//! - [`refunds`]: compensation of a capture, idempotent per order.
//! - [`bank`]: charges paid from a bank account — hold and capture (or void, refund) asked of the
//!   bank over `bank.commands`, its answers consumed from `bank.replies`.
//! - [`acquirer`]: the simulated acquirer and its test cards.
//! - [`retry_policy`]: which errors are retried, how often and when (the whole policy, one module).
//! - [`retry`]: the `saga.retry` forwarder that puts due retries back on `payment.commands`.
//! - [`ledger`]: accounts, journal entries and postings; `GET /ledger/summary`, `GET /accounts/{id}` in [`ledger::api`].
//! - [`outage`]: the acquirer outage switch; `GET`/`POST /admin/outage` in [`outage::api`].
//! - [`error`]: the HTTP error type (problem+json).
//! - [`Application`]: wires it together and runs it until shutdown.

pub mod acquirer;
pub mod bank;
pub mod charges;
pub mod commands;
pub mod config;
pub mod context;
pub mod error;
pub mod ledger;
pub mod lifecycle;
pub mod outage;
pub mod refunds;
pub mod request;
pub mod retry;
pub mod retry_policy;

use sagaway_common::http::ProblemResponses;
use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    routing::get,
};
use rdkafka::consumer::Consumer;
use sagaway_common::{auth::BearerAuth, guards::Guards, http::Readiness, service};
use sagaway_messaging::{inbox::ConsumerLoop, kafka, outbox::OutboxRelay, topics};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

/// Migrations of the `payment` database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The topics this service produces or consumes (logical names; the prefix is added at creation).
pub const TOPICS: &[&str] = &[
    topics::PAYMENT_COMMANDS,
    topics::PAYMENT_REPLIES,
    topics::SAGA_RETRY,
    topics::PAYMENT_DLQ,
    topics::BANK_COMMANDS,
    topics::BANK_REPLIES,
];

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::MySqlPool,
    pub config: Arc<Config>,
    /// Bearer-token checks.
    pub guards: Guards,
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth, &ProblemResponses),
    info(title = "Sagaway payment processor", description = "Simulated acquirer, double-entry ledger and charge history. \
        Charges and refunds arrive over Kafka (`payment.commands`); this API inspects them and runs the outage switch."),
    paths(charges::api::get, ledger::api::summary, ledger::api::account, outage::api::get, outage::api::set),
    components(schemas(charges::ChargeView, charges::AttemptView, charges::BankAccountView, ledger::LedgerSummary, ledger::AccountBalance,
                       ledger::AccountView, ledger::PostingView, ledger::CurrencyBalance, outage::OutageState, outage::OutageRequest))
)]
pub struct ApiDoc;

/// The routes, by who may call them: a signed-in customer (their charges and account) or an admin
/// (the ledger summary, any account, the outage switch).
pub fn router(state: AppState) -> Router {
    let guards = state.guards.clone();
    let public = sagaway_common::http::api_reference(|| sagaway_common::http::document_json(ApiDoc::openapi()));
    let customer = guards.signed_in(
        Router::new().route("/charges/{order_id}", get(charges::api::get)).route("/accounts/{id}", get(ledger::api::account)),
    );
    let admin = guards.admin(
        Router::new().route("/ledger/summary", get(ledger::api::summary)).route("/admin/outage", get(outage::api::get).post(outage::api::set)),
    );
    public.merge(customer).merge(admin).with_state(state)
}

/// A built service, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    state: AppState,
    readiness: Readiness,
    listener: tokio::net::TcpListener,
    relay: OutboxRelay,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let f = service::prepare(&config.common, &MIGRATOR, TOPICS).await?;
        let readiness = f.readiness("payment");
        let relay = OutboxRelay::new(f.pool.clone(), f.producer);
        let state = AppState { pool: f.pool, guards: Guards::new(&config.common), config: Arc::new(config) };
        Ok(Self { port: f.port, state, readiness, listener: f.listener, relay })
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
        tasks.spawn(self.relay.clone().run(shutdown.clone()));

        let commands_topic = common.topic(topics::PAYMENT_COMMANDS);
        let commands = kafka::consumer(&common.kafka_brokers, &cfg.commands_group, common.fetch_wait_max_ms)?;
        commands.subscribe(&[&commands_topic])?;
        let handler = context::CommandHandler {
            replies_topic: common.topic(topics::PAYMENT_REPLIES),
            retry_topic: common.topic(topics::SAGA_RETRY),
            dlq_topic: common.topic(topics::PAYMENT_DLQ),
            bank_commands_topic: common.topic(topics::BANK_COMMANDS),
            card_key: cfg.card_key.clone(),
            retry: cfg.retry.clone(),
        };
        let commands_loop = ConsumerLoop {
            service: context::SERVICE,
            consumer: commands,
            pool: self.state.pool.clone(),
            relay: self.relay.clone(),
            dlq_topic: common.topic(topics::PAYMENT_DLQ),
            max_batch: common.consumer_batch_max,
        };
        tasks.spawn(commands_loop.run(handler, shutdown.clone()));

        // Its own group and task: waiting for a retry's due time never holds up new commands.
        let retries = kafka::consumer(&common.kafka_brokers, &cfg.retry_group, common.background_fetch_wait_max_ms)?;
        retries.subscribe(&[&common.topic(topics::SAGA_RETRY)])?;
        let retry_loop = ConsumerLoop {
            service: context::SERVICE,
            consumer: retries,
            pool: self.state.pool.clone(),
            relay: self.relay.clone(),
            dlq_topic: common.topic(topics::PAYMENT_DLQ),
            max_batch: 1, // the forwarder waits for due times inside `handle`: never hold a batch open meanwhile
        };
        let forwarder = retry::RetryForwarder { own_topics: vec![commands_topic], shutdown: shutdown.clone() };
        tasks.spawn(retry_loop.run(forwarder, shutdown.clone()));

        // The bank's answers for account charges: a loop of their own, like the commands'.
        let bank_replies = kafka::consumer(&common.kafka_brokers, &cfg.bank_replies_group, common.fetch_wait_max_ms)?;
        bank_replies.subscribe(&[&common.topic(topics::BANK_REPLIES)])?;
        let bank_loop = ConsumerLoop {
            service: context::SERVICE,
            consumer: bank_replies,
            pool: self.state.pool.clone(),
            relay: self.relay.clone(),
            dlq_topic: common.topic(topics::PAYMENT_DLQ),
            max_batch: common.consumer_batch_max,
        };
        let bank_handler = bank::BankReplyHandler {
            replies_topic: common.topic(topics::PAYMENT_REPLIES),
            bank_commands_topic: common.topic(topics::BANK_COMMANDS),
        };
        tasks.spawn(bank_loop.run(bank_handler, shutdown.clone()));

        tracing::info!(port = self.port, "payment service listening");
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
