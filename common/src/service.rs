//! The start-up sequence shared by the services: connect and migrate the database, create the
//! topics, bind the HTTP listener. Serving it until a shutdown token fires is [`crate::http::serve`].

use std::{future::Future, sync::Arc};

use anyhow::Context;
use rdkafka::producer::FutureProducer;
use sqlx::{MySqlPool, migrate::Migrator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use sagaway_messaging::{db, health::Dependency, kafka};

use crate::{config::CommonConfig, http::Readiness};

/// What every service holds once its dependencies are reachable.
pub struct Foundation {
    pub pool: MySqlPool,
    pub producer: Arc<FutureProducer>,
    pub listener: TcpListener,
    pub port: u16,
}

impl Foundation {
    /// What `/health/ready` checks for a service with a database and a broker.
    pub fn readiness(&self, service: &'static str) -> Readiness {
        Readiness { service, dependencies: vec![Dependency::Database(self.pool.clone()), Dependency::Broker(self.producer.clone())] }
    }
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
    let mut wanted: Vec<(String, i32)> = topics.iter().map(|t| (cfg.topic(t), sagaway_messaging::topics::partitions(t, cfg.topic_partitions))).collect();
    wanted.push((kafka::PROBE_TOPIC.to_string(), 1));
    // Each with the settings of its logical name (payment.commands keeps records for hours only).
    let settings = topics.iter().map(|t| sagaway_messaging::topics::settings(t)).chain([&[][..]]);
    let configured: Vec<(String, i32, &[(&str, &str)])> = wanted.into_iter().zip(settings).map(|((name, n), s)| (name, n, s)).collect();
    kafka::ensure_topics_with(&cfg.kafka_brokers, &configured, cfg.topic_replicas).await?;
    Ok(pool)
}

/// Cancels `token` when `signal` resolves (SIGTERM / Ctrl-C in `main`, a test's trigger otherwise).
pub fn cancel_on(signal: impl Future<Output = ()> + Send + 'static, token: CancellationToken) {
    tokio::spawn(async move {
        signal.await;
        token.cancel();
    });
}
