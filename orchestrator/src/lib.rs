//! The orchestrator: POST /payment, idempotency, the two-minute duplicate rule, and the payment saga.
//!
//! # Layout
//! - [`config`]: settings from the environment (`ORCHESTRATOR_*`, plus the shared `KAFKA_BROKERS`, `TOPIC_PREFIX`).
//! - [`Application`]: builds the service (migrations, topics, HTTP listener) and runs it until shutdown.

pub mod config;

use axum::Router;
use sagaway_common::{http::Readiness, service, topics};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Migrations of the `orchestrator` database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The topics this service produces or consumes (logical names; the prefix is added at creation).
pub const TOPICS: &[&str] = &[topics::ORDER_QUEUE, topics::PRODUCT_COMMANDS, topics::PRODUCT_REPLIES, topics::PAYMENT_COMMANDS, topics::PAYMENT_REPLIES, topics::SAGA_RETRY, topics::PAYMENT_DLQ, topics::ORDER_EVENTS];

/// A built service, bound to its port, not yet serving.
pub struct Application {
    port: u16,
    router: Router,
    readiness: Readiness,
    listener: tokio::net::TcpListener,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let f = service::prepare(&config.common, &MIGRATOR, TOPICS).await?;
        let readiness = Readiness { service: "orchestrator", pool: f.pool.clone(), kafka: f.producer.clone() };
        Ok(Self { port: f.port, router: Router::new(), readiness, listener: f.listener })
    }

    /// The bound port (useful when the configured port was 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests and stops background work.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "orchestrator service listening");
        service::serve(self.listener, self.router, self.readiness, shutdown).await
    }
}

/// The `migrate` command: creates the database and topics, runs migrations, exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    service::migrate(&config.common, &MIGRATOR, TOPICS).await?;
    Ok(())
}
