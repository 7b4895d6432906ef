//! The start-up and shutdown sequence shared by the services: connect and migrate the database,
//! create the topics, bind the HTTP listener, run until a shutdown token fires, then drain.

use std::{future::Future, sync::Arc};

use anyhow::Context;
use axum::Router;
use rdkafka::producer::FutureProducer;
use sqlx::{MySqlPool, migrate::Migrator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{config::CommonConfig, db, http, kafka};

/// What every service holds once its dependencies are reachable.
pub struct Foundation {
    pub pool: MySqlPool,
    pub producer: Arc<FutureProducer>,
    pub listener: TcpListener,
    pub port: u16,
}

/// Runs the migrations, creates `topics` (logical names; the prefix is added here) and binds the port.
pub async fn prepare(cfg: &CommonConfig, migrator: &Migrator, topics: &[&str]) -> anyhow::Result<Foundation> {
    let pool = migrate(cfg, migrator, topics).await?;
    let producer = Arc::new(kafka::producer(&cfg.kafka_brokers)?);
    let listener = TcpListener::bind((cfg.http_host.as_str(), cfg.http_port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.http_host, cfg.http_port))?;
    let port = listener.local_addr()?.port();
    Ok(Foundation { pool, producer, listener, port })
}

/// The `migrate` command: database schema and topics, nothing else.
pub async fn migrate(cfg: &CommonConfig, migrator: &Migrator, topics: &[&str]) -> anyhow::Result<MySqlPool> {
    let pool = db::connect_and_migrate(&cfg.database_url, cfg.db_max_connections, migrator).await?;
    let mut wanted: Vec<(String, i32)> = topics.iter().map(|t| (cfg.topic(t), crate::topics::partitions(t, cfg.topic_partitions))).collect();
    wanted.push((kafka::PROBE_TOPIC.to_string(), 1));
    kafka::ensure_topics(&cfg.kafka_brokers, &wanted, cfg.topic_replicas).await?;
    Ok(pool)
}

/// Serves `router` (with health and metrics added) until `shutdown` is cancelled, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    readiness: http::Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = http::with_operations(router, readiness);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server")
}

/// Cancels `token` when `signal` resolves (SIGTERM / Ctrl-C in `main`, a test's trigger otherwise).
pub fn cancel_on(signal: impl Future<Output = ()> + Send + 'static, token: CancellationToken) {
    tokio::spawn(async move {
        signal.await;
        token.cancel();
    });
}
