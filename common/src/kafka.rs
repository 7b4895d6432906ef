//! Kafka clients tuned for the local tansu broker (docs/stack.md): idempotent producer, manual commits,
//! topics created explicitly (tansu does not auto-create them), no transactions.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::StreamConsumer,
    producer::{FutureProducer, Producer},
    types::RDKafkaErrorCode,
};

/// The idempotent producer (acks=all, retries without duplicates or reordering).
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating the Kafka producer")
}

/// A group consumer that never auto-commits: offsets are committed after the DB transaction.
pub fn consumer(brokers: &str, group: &str, fetch_wait_max_ms: u32) -> anyhow::Result<StreamConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", fetch_wait_max_ms.to_string())
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .context("creating the Kafka consumer")
}

/// Creates the topics that do not exist yet; existing topics are left as they are.
pub async fn ensure_topics(brokers: &str, topics: &[(String, i32)]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await.context("CreateTopics")? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// A one-partition topic every service creates and the readiness probe asks about. (Asking for the
/// metadata of ALL topics is slow on a broker holding thousands of test topics.)
pub const PROBE_TOPIC: &str = "sagaway.health";

/// Asks the broker for the probe topic's metadata: the readiness probe for Kafka.
pub async fn ping(producer: Arc<FutureProducer>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(PROBE_TOPIC), Duration::from_secs(2))
            .map(|_| ())
            .context("broker metadata")
    })
    .await
    .context("metadata task")?
}
