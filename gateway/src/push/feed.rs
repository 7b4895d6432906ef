//! The Kafka side of push: the gateway reads the event topics from their end into the [`Hub`] (no
//! consumer group, no committed offsets: every replica sees every event, and a restart
//! starts again at the end — streams that were open resume by their cursor), and [`replay`] reads
//! back a range of offsets for a stream that reconnects with `Last-Event-ID`.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
};
use sagaway_messaging::kafka;
use tokio_util::sync::CancellationToken;

use super::{
    cursor::Cursor,
    hub::{Event, Hub},
};

/// How long one metadata or watermark request to the broker may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

fn reader(brokers: &str) -> rdkafka::ClientConfig {
    let mut cfg = kafka::client_config(brokers);
    cfg.set("group.id", format!("gateway-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "25");
    cfg
}

/// (topic index, partition) and its (low, high) watermarks.
type Watermarks = Vec<((usize, i32), (i64, i64))>;

/// Every partition of `topics` with its watermarks, keyed like a [`Cursor`].
fn watermarks(consumer: &BaseConsumer, topics: &[String]) -> anyhow::Result<Watermarks> {
    let mut out = Vec::new();
    for (t, topic) in topics.iter().enumerate() {
        let meta = consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT).with_context(|| format!("metadata of {topic}"))?;
        let partitions = meta.topics().first().map(|m| m.partitions().iter().map(|p| p.id()).collect::<Vec<_>>()).unwrap_or_default();
        anyhow::ensure!(!partitions.is_empty(), "topic {topic} does not exist yet");
        for p in partitions {
            out.push(((t, p), consumer.fetch_watermarks(topic, p, BROKER_TIMEOUT).with_context(|| format!("watermarks of {topic}/{p}"))?));
        }
    }
    Ok(out)
}

/// Reads `topics` from their current end into `hub` until `shutdown`; retries until the topics
/// exist (the services create them). One consumer per topic: the broker answers a fetch after
/// waiting on every empty partition in it, so the quiet banks' topics would delay order events
/// (measured: 0.87 s mean produce → gateway with four topics in one consumer, 0.28 s with one).
pub async fn run(hub: Arc<Hub>, brokers: String, topics: Vec<String>, shutdown: CancellationToken) {
    let consumers = loop {
        match start(&hub, &brokers, &topics).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "event feed not started yet; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    tracing::info!(topics = ?topics, "event feed reading from the end");
    let mut readers = tokio::task::JoinSet::new();
    for (topic, consumer) in consumers.into_iter().enumerate() {
        readers.spawn(read(hub.clone(), topic, consumer, shutdown.clone()));
    }
    while readers.join_next().await.is_some() {}
}

/// One topic's messages into the hub, in offset order per partition.
async fn read(hub: Arc<Hub>, topic: usize, consumer: StreamConsumer, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "event feed: broker error");
                continue;
            }
        };
        if let Some(ts) = message.timestamp().to_millis() {
            let lag = chrono::Utc::now().timestamp_millis() - ts;
            metrics::histogram!("gateway_push_lag_seconds").record(lag.max(0) as f64 / 1000.0);
        }
        hub.publish(to_event(topic, &message));
    }
}

async fn start(hub: &Hub, brokers: &str, topics: &[String]) -> anyhow::Result<Vec<StreamConsumer>> {
    let (brokers2, topics2) = (brokers.to_string(), topics.to_vec());
    let marks = tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer = reader(&brokers2).create()?;
        watermarks(&probe, &topics2)
    })
    .await??;
    let mut assignments: Vec<TopicPartitionList> = topics.iter().map(|_| TopicPartitionList::new()).collect();
    let mut positions = Cursor::default();
    for ((t, p), (_, high)) in marks {
        assignments[t].add_partition_offset(&topics[t], p, Offset::Offset(high))?;
        positions.0.insert((t, p), high);
    }
    let mut consumers = Vec::new();
    for tpl in assignments {
        let consumer: StreamConsumer = reader(brokers).create().context("creating an event consumer")?;
        consumer.assign(&tpl)?;
        consumers.push(consumer);
    }
    hub.start_at(positions);
    Ok(consumers)
}

/// A message as an event (its key is the user; a payload that is not JSON is kept as a string).
fn to_event(topic: usize, m: &impl Message) -> Event {
    let payload = m.payload().map(|p| serde_json::from_slice(p).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(p).into_owned())));
    Event {
        topic,
        partition: m.partition(),
        offset: m.offset(),
        user: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        payload: payload.unwrap_or(serde_json::Value::Null),
    }
}

/// Why a stream cannot resume exactly: it starts over (`resync`).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the cursor is ahead of the topics, or names a partition that does not exist")]
    Unknown,
    #[error("the events after the cursor are no longer kept")]
    Expired,
    /// More events between the cursor and now than one resume may read back.
    #[error("too_far_behind")]
    TooFar,
    #[error(transparent)]
    Broker(#[from] anyhow::Error),
}

/// The events of `user` in `[from, to)` of every (topic, partition) of `to`, in offset order per
/// partition, reading at most `max_events` messages (more to read: [`ReplayError::TooFar`], before
/// reading any). Runs on a blocking thread (the plain consumer polls).
pub async fn replay(brokers: &str, topics: &[String], from: &Cursor, to: &Cursor, user: &str, max_events: i64) -> Result<Vec<Event>, ReplayError> {
    let (brokers, topics, from, to, user) = (brokers.to_string(), topics.to_vec(), from.clone(), to.clone(), user.to_string());
    tokio::task::spawn_blocking(move || replay_blocking(&brokers, &topics, &from, &to, &user, max_events)).await.map_err(|e| ReplayError::Broker(e.into()))?
}

/// One partition's range to read back: (topic index, partition), start, end (exclusive).
pub type Range = ((usize, i32), i64, i64);

/// The (topic, partition) ranges a resume from `from` to `to` reads, given each partition's low
/// watermark (pure): `[start, end)` per partition with something to read, or why it cannot resume.
pub fn replay_ranges(from: &Cursor, to: &Cursor, lows: &std::collections::BTreeMap<(usize, i32), i64>, max_events: i64) -> Result<Vec<Range>, ReplayError> {
    if from.0.keys().any(|k| !to.0.contains_key(k)) {
        return Err(ReplayError::Unknown);
    }
    let mut out = Vec::new();
    let mut total: i64 = 0;
    for (&(t, p), &end) in &to.0 {
        let low = lows.get(&(t, p)).copied().unwrap_or(0);
        // A partition the client's cursor does not know yet (it appeared later) is read from its start.
        let start = from.0.get(&(t, p)).copied().unwrap_or(low);
        if start > end {
            return Err(ReplayError::Unknown);
        }
        if start < low {
            return Err(ReplayError::Expired);
        }
        if start < end {
            total = total.saturating_add(end - start);
            out.push(((t, p), start, end));
        }
    }
    if total > max_events {
        return Err(ReplayError::TooFar);
    }
    Ok(out)
}

fn replay_blocking(brokers: &str, topics: &[String], from: &Cursor, to: &Cursor, user: &str, max_events: i64) -> Result<Vec<Event>, ReplayError> {
    if from.0.keys().any(|k| !to.0.contains_key(k)) {
        return Err(ReplayError::Unknown);
    }
    let consumer: BaseConsumer = reader(brokers).create().map_err(anyhow::Error::from)?;
    let lows: std::collections::BTreeMap<(usize, i32), i64> = watermarks(&consumer, topics)?.into_iter().map(|(k, (low, _))| (k, low)).collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = std::collections::BTreeMap::new();
    for ((t, p), start, end) in replay_ranges(from, to, &lows, max_events)? {
        tpl.add_partition_offset(&topics[t], p, Offset::Offset(start)).map_err(anyhow::Error::from)?;
        remaining.insert((t, p), end);
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).map_err(anyhow::Error::from)?;
    let deadline = std::time::Instant::now() + BROKER_TIMEOUT;
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(ReplayError::Broker(anyhow::anyhow!("replay did not reach the end within {BROKER_TIMEOUT:?}")));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message.map_err(anyhow::Error::from)?;
        let Some(t) = topics.iter().position(|x| x == message.topic()) else { continue };
        let key = (t, message.partition());
        let Some(&end) = remaining.get(&key) else { continue };
        if message.offset() >= end {
            remaining.remove(&key);
            continue;
        }
        let event = to_event(t, &message);
        if event.user == user {
            out.push(event);
        }
        if message.offset() + 1 >= end {
            remaining.remove(&key);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_resume_reads_at_most_the_bound_and_refuses_what_it_cannot_serve() {
        let lows: BTreeMap<(usize, i32), i64> = [((0, 0), 0), ((0, 1), 50), ((1, 0), 0)].into();
        let to = Cursor([((0, 0), 100), ((0, 1), 60), ((1, 0), 5)].into());
        let from = Cursor([((0, 0), 95), ((0, 1), 60), ((1, 0), 5)].into());
        assert_eq!(replay_ranges(&from, &to, &lows, 10).unwrap(), vec![((0, 0), 95, 100)]);
        // A forged cursor from offset 0 (or one that names no partition: read from the start)
        // would scan every event of the topics: refused before reading anything.
        let zero = Cursor([((0, 0), 0), ((1, 0), 0)].into());
        assert!(matches!(replay_ranges(&zero, &to, &lows, 10), Err(ReplayError::TooFar)));
        assert!(matches!(replay_ranges(&Cursor::default(), &to, &lows, 10), Err(ReplayError::TooFar)));
        assert_eq!(replay_ranges(&zero, &to, &lows, 1000).unwrap().iter().map(|(_, s, e)| e - s).sum::<i64>(), 100 + 10 + 5);
        assert!(matches!(replay_ranges(&Cursor([((0, 1), 10)].into()), &to, &lows, 1000), Err(ReplayError::Expired)));
        assert!(matches!(replay_ranges(&Cursor([((0, 0), 101)].into()), &to, &lows, 1000), Err(ReplayError::Unknown)));
        assert!(matches!(replay_ranges(&Cursor([((2, 0), 1)].into()), &to, &lows, 1000), Err(ReplayError::Unknown)));
    }
}
