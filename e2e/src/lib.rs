//! Helpers for tests that drive the whole local stack: where it is, and how to watch a topic.
//!
//! - [`system`]: the three services in-process, each with a fresh database, for saga tests.
//!
//! The stack's location comes from the same variables `scripts/stack` reads, with the same defaults.

pub mod system;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    message::Headers,
    consumer::{BaseConsumer, Consumer},
};

/// Ports of one running stack.
#[derive(Clone, Debug)]
pub struct StackAddr {
    pub mysql_port: u16,
    pub kafka_port: u16,
}

impl StackAddr {
    /// The stack described by `SAGAWAY_MYSQL_PORT` / `SAGAWAY_KAFKA_PORT` (defaults 3307 / 9092).
    pub fn from_env() -> Self {
        let port = |k: &str, d: u16| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        Self { mysql_port: port("SAGAWAY_MYSQL_PORT", 3307), kafka_port: port("SAGAWAY_KAFKA_PORT", 9092) }
    }

    pub fn mysql_url(&self, db: &str) -> String {
        format!("mysql://sagaway:sagaway@127.0.0.1:{}/{db}", self.mysql_port)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }
}

/// One record as seen on a topic: the key and value as JSON (`None` value = tombstone), its headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<serde_json::Value>,
    pub value: Option<serde_json::Value>,
    pub headers: Vec<(String, String)>,
    pub received: Instant,
}

impl Record {
    /// The value of header `name`, if the record has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads a topic from a chosen position without joining a consumer group.
pub struct TopicWatcher {
    consumer: BaseConsumer,
}

impl TopicWatcher {
    /// Starts at the current end of every partition: only records produced from now on are seen.
    pub fn from_end(brokers: &str, topic: &str) -> anyhow::Result<Self> {
        Self::open(brokers, topic, true)
    }

    /// Starts at the beginning of every partition.
    pub fn from_start(brokers: &str, topic: &str) -> anyhow::Result<Self> {
        Self::open(brokers, topic, false)
    }

    fn open(brokers: &str, topic: &str, at_end: bool) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("e2e-watch-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = meta
            .topics()
            .first()
            .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            .unwrap_or_default();
        if partitions.is_empty() {
            bail!("topic {topic} has no partitions (does it exist?)");
        }
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            let offset = if at_end {
                let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
                Offset::Offset(high)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(topic, p, offset)?;
        }
        consumer.assign(&tpl)?;
        Ok(Self { consumer })
    }

    /// Polls until `pred` accepts a record or `within` elapses.
    pub fn wait_for(&self, within: Duration, mut pred: impl FnMut(&Record) -> bool) -> anyhow::Result<Record> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let Some(msg) = self.consumer.poll(Duration::from_millis(20)) else { continue };
            let msg = msg.context("consuming")?;
            let parse = |b: Option<&[u8]>| b.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
            let headers = msg
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
                .unwrap_or_default();
            let record = Record { key: parse(msg.key()), value: parse(msg.payload()), headers, received: Instant::now() };
            if pred(&record) {
                return Ok(record);
            }
        }
        bail!("no matching record within {within:?}")
    }
}

/// Builds the service binaries of this checkout when missing or stale, for tests that run them as
/// real processes (to kill them). Always the package set `scripts/stack up` builds: cargo unifies
/// features per invocation, so another set (`-p payment` alone) made separate artifacts and
/// compiled the workspace's crates and dependencies again inside the test (minutes). A no-op after
/// `scripts/stack up`; the binaries land in the target directory beside the test executables.
pub fn build_service_binaries() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "identity", "-p", "product", "-p", "orchestrator", "-p", "payment", "-p", "bank", "-p", "gateway"])
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(built.success(), "cargo build of the service binaries failed");
    Ok(())
}

/// Everything on `topic` right now (keys, values and headers of every record, as text), read from
/// the beginning up to each partition's current end: for scanning topics for data that must not be there.
pub fn dump_topic(brokers: &str, topic: &str) -> anyhow::Result<String> {
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("e2e-dump-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = meta.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    let mut out = String::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m?;
        out.push_str(&String::from_utf8_lossy(m.key().unwrap_or_default()));
        out.push('|');
        out.push_str(&String::from_utf8_lossy(m.payload().unwrap_or_default()));
        if let Some(h) = m.headers() {
            for header in h.iter() {
                out.push_str(&format!("|{}={}", header.key, String::from_utf8_lossy(header.value.unwrap_or_default())));
            }
        }
        out.push('\n');
        if ends.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
            ends.remove(&m.partition());
        }
    }
    anyhow::ensure!(ends.is_empty(), "could not read {topic} to its end");
    Ok(out)
}
