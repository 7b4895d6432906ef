//! The CDC indexer: Debezium's `products` topic → the search backend.
//!
//! Events are applied in batches (whatever is waiting, up to 1000) and the consumer offsets are
//! committed only after the backend has made the batch visible. A crash replays the uncommitted
//! tail; the backend's version check turns the replay into a no-op. `reindex` clears the backend
//! and replays the topic from its beginning to its current end, which rebuilds the same index.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use sagaway_messaging::retry::Backoff;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::search::{Applied, Change, SearchBackend, cdc};

const BATCH: usize = 1000;

/// Shared by the incremental indexer and `reindex`, so they never interleave.
pub type IndexGate = Arc<Mutex<()>>;

/// Turns a raw event into a change; malformed events are counted, logged and skipped (the index
/// is a projection: one bad event must not stop it).
fn to_change(key: Option<&[u8]>, payload: Option<&[u8]>, topic: &str, offset: i64) -> Option<Change> {
    let key = key.map(|k| String::from_utf8_lossy(k).into_owned());
    let value = payload.map(|p| String::from_utf8_lossy(p).into_owned());
    match cdc::parse(key.as_deref(), value.as_deref()) {
        Ok(change) => change,
        Err(reason) => {
            metrics::counter!("indexer_malformed_events_total").increment(1);
            tracing::warn!(topic, offset, %reason, "skipping a malformed CDC event");
            None
        }
    }
}

/// Assigns every partition of `topic` to `consumer`, resuming from the group's committed offsets
/// (earliest when none). The indexer does not join the group: under load the local broker's group
/// coordinator misses heartbeats, the session times out, the partition is revoked and indexing
/// stalls until a rejoin that may not come (observed in the 10k-product test). Offsets are still
/// committed under the group id. Each instance with an embedded index needs every partition anyway,
/// so instances must not share `PRODUCT_INDEXER_GROUP`.
pub fn assign_all(consumer: &StreamConsumer, topic: &str) -> anyhow::Result<()> {
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).context("CDC topic metadata")?;
    let mut tpl = TopicPartitionList::new();
    for p in meta.topics().first().map(|t| t.partitions()).unwrap_or_default() {
        tpl.add_partition_offset(topic, p.id(), Offset::Stored)?;
    }
    anyhow::ensure!(tpl.count() > 0, "CDC topic {topic} has no partitions (create it first: `product migrate`)");
    consumer.assign(&tpl).context("assigning the CDC topic")?;
    Ok(())
}

/// Runs the incremental indexer until `shutdown`.
pub async fn run(
    consumer: StreamConsumer,
    backend: Arc<dyn SearchBackend>,
    gate: IndexGate,
    linger: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "indexer: consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut changes = Vec::new();
        let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
        // The record time of the batch's first event: how far behind the database the index is.
        let mut oldest_ms: Option<i64> = None;
        let mut note = |m: &rdkafka::message::BorrowedMessage<'_>, changes: &mut Vec<Change>| {
            next_offsets.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            if let Some(ms) = m.timestamp().to_millis() {
                oldest_ms = Some(oldest_ms.map_or(ms, |o| o.min(ms)));
            }
            if let Some(c) = to_change(m.key(), m.payload(), m.topic(), m.offset()) {
                changes.push(c);
            }
        };
        note(&first, &mut changes);
        // Take whatever else is already waiting, and (with a linger) what arrives until it is over:
        // every batch costs one index commit, whatever its size.
        let gather_until = tokio::time::Instant::now() + linger;
        while changes.len() < BATCH {
            let wait = gather_until.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(1));
            match tokio::time::timeout(wait, consumer.recv()).await {
                Ok(Ok(m)) => note(&m, &mut changes),
                _ => break,
            }
        }
        let _guard = gate.lock().await;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match backend.apply(changes.clone()).await {
                Ok(applied) => {
                    record(&applied);
                    if let Some(ms) = oldest_ms {
                        let lag_ms = (chrono::Utc::now().timestamp_millis() - ms).max(0);
                        metrics::histogram!("cdc_index_lag_seconds").record(lag_ms as f64 / 1e3);
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "indexer: applying a batch failed; retrying");
                    if !backoff.pause(&shutdown).await {
                        return;
                    }
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next_offsets {
            let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "indexer: offset commit failed; events may be replayed (harmless)");
        }
    }
}

fn record(a: &Applied) {
    metrics::counter!("indexer_upserts_total").increment(a.upserted);
    metrics::counter!("indexer_deletes_total").increment(a.deleted);
    metrics::counter!("indexer_stale_events_total").increment(a.stale);
}

/// What a reindex did.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct ReindexReport {
    pub events: u64,
    pub upserted: u64,
    pub deleted: u64,
    pub stale: u64,
    pub took_ms: u64,
}

/// Clears the backend and replays `topic` from the beginning to its current end.
pub async fn reindex(brokers: &str, topic: &str, backend: Arc<dyn SearchBackend>, gate: IndexGate) -> anyhow::Result<ReindexReport> {
    let started = std::time::Instant::now();
    let _guard = gate.lock().await;
    backend.clear().await.context("clearing the index")?;
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Change>>(4);
    // librdkafka's blocking consumer runs on a blocking thread and hands batches over.
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let consumer: BaseConsumer = sagaway_messaging::kafka::client_config(&brokers)
            .set("group.id", format!("product-reindex-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let meta = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        let partitions: Vec<i32> =
            meta.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            if high > low {
                ends.insert(p, high);
                tpl.add_partition_offset(&topic, p, Offset::Offset(low))?;
            }
        }
        if ends.is_empty() {
            return Ok(0);
        }
        consumer.assign(&tpl)?;
        let mut events = 0;
        let mut batch = Vec::new();
        while !ends.is_empty() {
            let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
            let m = m?;
            events += 1;
            if let Some(c) = to_change(m.key(), m.payload(), m.topic(), m.offset()) {
                batch.push(c);
            }
            if ends.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
                ends.remove(&m.partition());
            }
            if batch.len() >= BATCH && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                anyhow::bail!("reindex writer stopped");
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(events)
    });
    let mut report = ReindexReport::default();
    while let Some(batch) = rx.recv().await {
        let a = backend.apply(batch).await?;
        report.upserted += a.upserted;
        report.deleted += a.deleted;
        report.stale += a.stale;
    }
    report.events = reader.await??;
    report.took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(?report, "reindex finished");
    Ok(report)
}
