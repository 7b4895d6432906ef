//! The bank: accounts on a double-entry ledger, a per-account operation queue (deposits and
//! withdrawals applied exactly once, in acceptance order), instant and business-hours transfers
//! with a durable scheduler, and holds for paying orders from an account over Kafka.
//!
//! # Layout
//! - [`rules`]: the pure rules — account numbers (mod-11 check digit), CPF/CNPJ, business hours and
//!   the night limit ([`rules::calendar`]), the ledger's legs, masking, and the lifecycles
//!   ([`rules::states`]: operation, transfer, payment hold). No I/O; unit and property tests.
//! - [`clock`]: the injectable [`clock::Clock`] (system clock; a settable [`clock::TestClock`]).
//! - [`config`]: settings from the environment (`BANK_*`, plus the shared ones).
//! - [`ledger`]: journal + postings in SQL, balances, account locks, the bank's own accounts.
//! - [`accounts`]: account rows, views and queries; [`accounts::api`]: `POST/GET /accounts`,
//!   `GET /accounts/{id}`, statement, lookup, and the invitations that make a user a co-holder of a
//!   joint account ([`accounts::invitations`]: `GET /me/invitations`, accept, decline, revoke).
//! - [`operations`]: accepting and applying operations, and the queue consumer; [`operations::api`]:
//!   `POST /accounts/{id}/operations`, `GET /operations/{id}`.
//! - [`transfers`]: planning, making, canceling and settling transfers; [`transfers::api`]:
//!   `POST /transfers`, `GET/DELETE /transfers/{id}`; [`scheduler`] settles the due ones.
//!
//! SQL stays in those modules, HTTP handlers in their `api` submodules (`lib.rs` and `error.rs`
//! are the only places where both meet).
//! - [`commands`]: `bank.commands` → `bank.replies` (hold / capture / void / refund of order payments).
//! - [`events`]: status history and `bank.events`; [`idempotency`]: `Idempotency-Key`.
//! - [`api_doc`]: the OpenAPI document, its request bodies stated exactly.
//! - [`Application`]: wires it together and runs it until shutdown.

pub mod accounts;
pub mod api_doc;
pub mod clock;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod interbank;
pub mod ledger;
pub mod operations;
pub mod rules;
pub mod scheduler;
pub mod transfers;

use sagaway_common::http::ProblemResponses;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    routing::{get, post},
};
use rdkafka::consumer::Consumer;
use sagaway_common::{auth::BearerAuth, guards::Guards, http::Readiness, service, telemetry};
use sagaway_messaging::{inbox::ConsumerLoop, kafka, outbox::OutboxRelay, topics};
use interbank::api::InterbankAuth;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use config::Config;

/// Migrations of the `bank` database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The topics this service produces or consumes (logical names; the prefix is added at creation).
pub const TOPICS: &[&str] = &[topics::BANK_OPERATIONS, topics::BANK_EVENTS, topics::BANK_COMMANDS, topics::BANK_REPLIES, topics::BANK_DLQ];

/// Full topic names (with the configured prefix).
#[derive(Clone, Debug)]
pub struct TopicNames {
    pub operations: String,
    pub events: String,
    pub commands: String,
    pub replies: String,
    pub dlq: String,
}

impl TopicNames {
    fn new(common: &sagaway_common::config::CommonConfig) -> Self {
        Self {
            operations: common.topic(topics::BANK_OPERATIONS),
            events: common.topic(topics::BANK_EVENTS),
            commands: common.topic(topics::BANK_COMMANDS),
            replies: common.topic(topics::BANK_REPLIES),
            dlq: common.topic(topics::BANK_DLQ),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::MySqlPool,
    pub config: Arc<Config>,
    pub guards: Guards,
    pub relay: OutboxRelay,
    pub topics: TopicNames,
    /// Wakes the scheduler when a transfer is due now.
    pub scheduler_wake: Arc<Notify>,
    /// The other banks (directory, signed client).
    pub peers: interbank::peers::Peers,
    /// Inter-bank transfers being driven by this process (one driver each).
    pub driving: Arc<Mutex<HashSet<String>>>,
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth, &InterbankAuth, &ProblemResponses),
    info(title = "Sagaway bank", description = "Accounts, a per-account operation queue, instant and business-hours transfers, transfers between banks (two-phase commit) and consolidated balances."),
    paths(accounts::api::create, accounts::api::list, accounts::api::get, accounts::api::statement, accounts::api::lookup,
          accounts::api::my_invitations, accounts::api::accept, accounts::api::decline, accounts::api::revoke,
          operations::api::enqueue, operations::api::get, transfers::api::create, transfers::api::get, transfers::api::cancel,
          interbank::api::my_balances, interbank::api::recipient, interbank::api::holder_accounts, interbank::api::prepare, interbank::api::commit, interbank::api::abort, interbank::api::inquiry, interbank::api::clearing),
    components(schemas(accounts::Account, accounts::NewAccount, accounts::invitations::Invitation, accounts::Statement, accounts::StatementEntry, accounts::Recipient,
                       operations::NewOperation, operations::Accepted, operations::Operation, events::HistoryEntry,
                       transfers::NewTransfer, transfers::Destination, transfers::Source, transfers::Transfer,
                       interbank::balances::Balances, interbank::balances::BankAccount, interbank::balances::Total,
                       interbank::api::ClearingPosition, interbank::VoteBody, interbank::LegBody, interbank::AckBody, interbank::DecisionBody, interbank::RecipientBody))
)]
pub struct ApiDoc;

/// Every route needs a signed-in caller; the writes that start work are rate-limited per user.
pub fn router(state: AppState) -> Router {
    let guards = state.guards.clone();
    let (peers, max_amount) = (state.peers.clone(), state.config.max_amount);
    let public = sagaway_common::http::api_reference(move || api_doc::document(&peers.codes(), max_amount));
    let limited = guards.signed_in_rate_limited(
        Router::new().route("/accounts/{id}/operations", post(operations::api::enqueue)).route("/transfers", post(transfers::api::create)),
    );
    let signed_in = guards.signed_in(
        Router::new()
            .route("/me/balances", get(interbank::api::my_balances))
            .route("/accounts", post(accounts::api::create).get(accounts::api::list))
            .route("/accounts/lookup", get(accounts::api::lookup))
            .route("/accounts/{id}", get(accounts::api::get))
            .route("/accounts/{id}/statement", get(accounts::api::statement))
            .route("/me/invitations", get(accounts::api::my_invitations))
            .route("/accounts/{id}/invitations/{user}", axum::routing::delete(accounts::api::revoke))
            .route("/accounts/{id}/invitations/{user}/accept", post(accounts::api::accept))
            .route("/accounts/{id}/invitations/{user}/decline", post(accounts::api::decline))
            .route("/operations/{id}", get(operations::api::get))
            .route("/transfers/{id}", get(transfers::api::get).delete(transfers::api::cancel)),
    );
    // Other banks: signed requests (checked by `interbank::api::signed`), no user token.
    let banks = Router::new()
        .route("/interbank/accounts/{number}", get(interbank::api::recipient))
        .route("/interbank/accounts", get(interbank::api::holder_accounts))
        .route("/interbank/tx/{tx_id}", get(interbank::api::inquiry))
        .route("/interbank/tx/{tx_id}/prepare", post(interbank::api::prepare))
        .route("/interbank/tx/{tx_id}/commit", post(interbank::api::commit))
        .route("/interbank/tx/{tx_id}/abort", post(interbank::api::abort))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), interbank::api::signed));
    let admin = guards.admin(Router::new().route("/admin/clearing", get(interbank::api::clearing)));
    public.merge(limited).merge(signed_in).merge(admin).merge(banks).with_state(state)
}

/// A built service, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    state: AppState,
    readiness: Readiness,
    listener: tokio::net::TcpListener,
    producer: Arc<rdkafka::producer::FutureProducer>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        anyhow::ensure!(config::valid_code(&config.code), "the bank code must be 3 digits");
        let f = service::prepare(&config.common, &MIGRATOR, TOPICS).await?;
        ledger::ensure_bank_accounts(&f.pool, config.clock.now()).await?;
        let readiness = f.readiness("bank");
        let relay = OutboxRelay::new(f.pool.clone(), f.producer.clone());
        let state = AppState {
            pool: f.pool,
            guards: Guards::new(&config.common),
            topics: TopicNames::new(&config.common),
            relay,
            scheduler_wake: Arc::new(Notify::new()),
            peers: interbank::peers::Peers::new(config.interbank.key.clone(), config.interbank.directory.clone(), config.interbank.peer_timeout),
            driving: Arc::default(),
            config: Arc::new(config),
        };
        Ok(Self { port: f.port, state, readiness, listener: f.listener, producer: f.producer })
    }

    /// The bound port (useful when the configured port was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This bank's public key (for the other banks' directory).
    pub fn public_key(&self) -> rules::interbank_auth::PublicKey {
        self.state.config.interbank.key.public_key()
    }

    /// The other banks as this one reaches them; [`interbank::peers::Peers::set_directory`] tells
    /// it where they are (tests start banks on port 0 first).
    pub fn peers(&self) -> interbank::peers::Peers {
        self.state.peers.clone()
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests and stops background work.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = self.state.config.clone();
        let common = &cfg.common;
        let topics = self.state.topics.clone();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.state.relay.clone().run(shutdown.clone()));

        let consumer_loop = |name: &str, topic: &str| -> anyhow::Result<ConsumerLoop> {
            let consumer = kafka::consumer(&common.kafka_brokers, &format!("{}bank-{name}", common.topic_prefix), common.fetch_wait_max_ms)?;
            consumer.subscribe(&[topic])?;
            Ok(ConsumerLoop {
                service: "bank",
                consumer,
                pool: self.state.pool.clone(),
                relay: self.state.relay.clone(),
                dlq_topic: topics.dlq.clone(),
                max_batch: common.consumer_batch_max,
            })
        };
        let operations = operations::OperationHandler { events_topic: topics.events.clone(), clock: cfg.clock.clone() };
        tasks.spawn(consumer_loop("operations", &topics.operations)?.run(operations, shutdown.clone()));
        let commands = commands::CommandHandler { replies_topic: topics.replies.clone(), events_topic: topics.events.clone(), clock: cfg.clock.clone() };
        tasks.spawn(consumer_loop("commands", &topics.commands)?.run(commands, shutdown.clone()));

        let scheduler = scheduler::Scheduler { app: self.state.clone(), interval: cfg.scheduler_interval, wake: self.state.scheduler_wake.clone() };
        tasks.spawn(scheduler.run(shutdown.clone()));
        tasks.spawn(interbank::recovery::run(self.state.clone(), shutdown.clone()));
        let pool = self.state.pool.clone();
        tasks.spawn(telemetry::sample_every(telemetry::GAUGE_SAMPLE_EVERY, shutdown.clone(), move || {
            let pool = pool.clone();
            async move { interbank::recovery::sample_backlog(&pool).await }
        }));
        tasks.spawn(idempotency::run_purge(self.state.pool.clone(), cfg.idempotency_ttl, Duration::from_secs(600), shutdown.clone()));

        tracing::info!(port = self.port, bank = %cfg.code, "bank listening");
        let served = sagaway_common::http::serve(self.listener, router(self.state), self.readiness, shutdown.clone()).await;
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} }).await;
        drop(self.producer);
        served
    }
}

/// The `migrate` command: creates the database and topics, runs migrations, opens the bank's own accounts, exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = service::migrate(&config.common, &MIGRATOR, TOPICS).await?;
    ledger::ensure_bank_accounts(&pool, config.clock.now()).await?;
    Ok(())
}

/// The `keygen` command: a signing key in `path` (created, owner-only, unless it exists), and its
/// public key (base64) for the directory.
pub fn keygen(path: &std::path::Path) -> anyhow::Result<String> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    if !path.exists() {
        let seed: [u8; 32] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(path)?, STANDARD.encode(seed).as_bytes())?;
    }
    let text = std::fs::read_to_string(path)?;
    let key = config::parse_seed("000", &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(key.public_key().to_base64())
}
