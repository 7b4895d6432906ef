//! The dependencies a service's `/health/ready` asks: its database and its broker. Each knows how
//! to ask and answers within about two seconds; why one is down is for the log, never the answer.

use std::{sync::Arc, time::Duration};

use rdkafka::producer::FutureProducer;
use sqlx::MySqlPool;

use crate::kafka;

/// One dependency of a service.
#[derive(Clone)]
pub enum Dependency {
    /// The service's MariaDB database.
    Database(MySqlPool),
    /// The Kafka broker, asked through the service's producer.
    Broker(Arc<FutureProducer>),
}

impl Dependency {
    /// Its name in `/health/ready`'s `checks`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Database(_) => "database",
            Self::Broker(_) => "broker",
        }
    }

    /// `Ok` when it answered; the error text otherwise (for the log).
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Self::Database(pool) => tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(pool))
                .await
                .map_err(|_| "no answer within 2 s".to_string())
                .and_then(|res| res.map(|_| ()).map_err(|e| e.to_string())),
            Self::Broker(producer) => kafka::ping(producer.clone()).await.map_err(|e| format!("{e:#}")),
        }
    }
}
