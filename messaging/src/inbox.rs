//! The consuming side of effectively-once delivery. [`ConsumerLoop`] takes the messages the
//! consumer has ready (up to `max_batch`), and in ONE database transaction, message by message in
//! order: records its id in `inbox` (a duplicate is recognised and skipped), applies the handler's
//! effect, and writes the handler's outgoing messages to the outbox; the consumed positions go into
//! the same transaction. Only after the commit is the Kafka offset committed. A crash anywhere
//! replays the batch, and the inbox turns each replayed message into a no-op.
//!
//! Why batches: one COMMIT (one fsync, one group-commit slot) per batch instead of per message is
//! what lets a backlog drain at the database's statement rate instead of its commit rate
//! (docs/benchmarks.md). If a message of a batch fails, the whole transaction is rolled back; the
//! messages before it are applied again together, it alone is retried or dead-lettered, and the rest
//! form a new batch, so a bad message never takes its neighbours with it.
//!
//! Messages are handled in partition order by a single task, so per-key (per-customer) ordering holds.
//!
//! # Where the position is kept
//! In the default mode (`KAFKA_CONSUMER_MODE=assign`) the loop does not rely on the broker's group
//! coordinator at all: it assigns itself every partition of the topics its consumer was subscribed
//! to and keeps the next offset of each partition in the service's own database (`consumer_offsets`,
//! a table of each consuming service's migrations), written in the same transaction as the effect.
//! A restart — even after kill -9 — resumes exactly where the last committed transaction left off,
//! with no rebalance to wait for. (Measured reason:
//! on the local tansu broker a group whose member was killed never finished rebalancing.) This mode
//! runs ONE instance of each service. `KAFKA_CONSUMER_MODE=group` keeps the subscription and Kafka
//! offset commits instead, for several instances (on tansu with static members:
//! [`crate::kafka::Membership`]).

use std::{future::Future, sync::Arc, time::Duration};

use chrono::{SecondsFormat, Utc};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Headers},
};
use serde::de::DeserializeOwned;
use sqlx::{MySqlConnection, MySqlPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    outbox::{self, MESSAGE_ID, Outgoing, OutboxRelay},
    retry::Backoff,
};

/// A consumed message, detached from the consumer.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The `message_id` header, or `topic:partition:offset` for producers that set none (Debezium).
    pub message_id: String,
}

impl Incoming {
    pub fn from_kafka(msg: &BorrowedMessage<'_>) -> Self {
        let mut headers = Vec::new();
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                let value = header.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                headers.push((header.key.to_string(), value));
            }
        }
        let message_id = headers
            .iter()
            .find(|(k, _)| k == MESSAGE_ID)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("{}:{}:{}", msg.topic(), msg.partition(), msg.offset()));
        Self {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: msg.payload().map(|p| String::from_utf8_lossy(p).into_owned()),
            headers,
            message_id,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Parses the JSON payload; anything unparseable is [`HandleError::Malformed`].
    /// The payload parsed and every field validated ([`sagaway_contract::messages::Validate`]); anything
    /// else is [`HandleError::Malformed`].
    pub fn json<T: DeserializeOwned + sagaway_contract::messages::Validate>(&self) -> Result<T, HandleError> {
        let payload = self.payload.as_deref().ok_or_else(|| HandleError::Malformed("empty payload".into()))?;
        let message: T = serde_json::from_str(payload).map_err(|e| HandleError::Malformed(format!("unparseable payload: {e}")))?;
        message.validate().map_err(|e| HandleError::Malformed(format!("invalid field: {e}")))?;
        Ok(message)
    }
}

/// Why a message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The message can never be processed (unparseable, unknown type): dead-lettered at once, never retried.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A fault that may pass (a database hiccup): the message is retried in place with backoff, up
    /// to [`IN_PLACE_ATTEMPTS`] times while the database answers; then it is dead-lettered.
    #[error("transient failure: {0:#}")]
    Transient(#[from] anyhow::Error),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Transient(e.into())
    }
}

/// Applies one message inside the caller's transaction and returns the messages to publish.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut MySqlConnection,
        msg: &Incoming,
    ) -> impl Future<Output = Result<Vec<Outgoing>, HandleError>> + Send;

    /// Messages to publish when `msg` is dead-lettered, in the dead letter's own transaction — for
    /// a sender waiting on an answer that would otherwise never come (the bank declines a hold it
    /// could not process, so the payment does not wait for the reservation to expire).
    fn on_dead_letter(&self, msg: &Incoming) -> Vec<Outgoing> {
        let _ = msg;
        Vec::new()
    }
}

/// How often each consumer's lag is measured (`consumer_lag`).
pub const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(10);

struct PartitionMarks {
    topic: String,
    partition: i32,
    low: i64,
    high: i64,
    committed: Option<i64>,
}

/// How many times one message is retried in place (backoff from 50 ms, doubling: ≈ 6 s in all)
/// before a failure that is not the database's own is dead-lettered.
pub const IN_PLACE_ATTEMPTS: u32 = 8;

/// One consumer group member running a [`Handler`] over its topics.
pub struct ConsumerLoop {
    pub service: &'static str,
    pub consumer: StreamConsumer,
    pub pool: MySqlPool,
    pub relay: OutboxRelay,
    /// Where messages that can never be processed go (with headers saying why).
    pub dlq_topic: String,
    /// At most this many ready messages are applied in one transaction (1 = one per transaction,
    /// for handlers that wait inside `handle`, such as the retry forwarder).
    pub max_batch: usize,
}

/// Whether positions live in the service's database (`assign`, default) or in Kafka's group coordinator.
fn group_mode() -> bool {
    std::env::var("KAFKA_CONSUMER_MODE").is_ok_and(|m| m.eq_ignore_ascii_case("group"))
}

impl ConsumerLoop {
    /// The topics the caller subscribed the consumer to; the subscription is then dropped (the
    /// loop assigns partitions itself).
    fn take_subscription(&self) -> anyhow::Result<Vec<String>> {
        let topics: std::collections::BTreeSet<String> =
            self.consumer.subscription()?.elements().iter().map(|e| e.topic().to_string()).collect();
        self.consumer.unsubscribe();
        Ok(topics.into_iter().collect())
    }

    /// Assigns every partition of `topics`, starting at the offsets stored in `consumer_offsets`
    /// (a table of each consuming service's migrations).
    async fn assign_from_db(&self, topics: &[String]) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            let meta = self.consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions: Vec<i32> = meta.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
            anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions (does it exist?)");
            for p in partitions {
                let stored: Option<i64> = sqlx::query_scalar("SELECT next_offset FROM consumer_offsets WHERE topic = ? AND part = ?")
                    .bind(topic)
                    .bind(p)
                    .fetch_optional(&self.pool)
                    .await?;
                tpl.add_partition_offset(topic, p, stored.map(Offset::Offset).unwrap_or(Offset::Beginning))?;
            }
        }
        self.consumer.assign(&tpl)?;
        tracing::info!(service = self.service, ?topics, "consuming with positions kept in the database");
        Ok(())
    }

    /// (Re)assigns until it succeeds or shutdown; false on shutdown.
    async fn ensure_assigned(&self, topics: &[String], shutdown: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        while let Err(e) = self.assign_from_db(topics).await {
            tracing::warn!(service = self.service, error = %format!("{e:#}"), "cannot assign partitions yet; retrying");
            if !backoff.pause(shutdown).await {
                return false;
            }
        }
        true
    }

    pub async fn run<H: Handler>(self, handler: H, shutdown: CancellationToken) {
        Arc::new(self).consume(handler, shutdown).await
    }

    async fn consume<H: Handler>(self: Arc<Self>, handler: H, shutdown: CancellationToken) {
        let in_db = !group_mode();
        let mut topics = Vec::new();
        let mut expected_partitions = 0;
        let mut last_check = std::time::Instant::now();
        if in_db {
            topics = match self.take_subscription() {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(service = self.service, error = %e, "consumer has no subscription; not consuming");
                    return;
                }
            };
            if !self.ensure_assigned(&topics, &shutdown).await {
                return;
            }
            expected_partitions = self.consumer.assignment().map(|a| a.count()).unwrap_or(0);
        }
        let sampling = shutdown.child_token();
        let _stop_sampling = sampling.clone().drop_guard();
        tokio::spawn(self.clone().sample_lag(sampling));
        loop {
            // A group rebalance queued before the subscription was dropped can revoke all or part
            // of our manual assignment when it is finally served: check now and then, put it back.
            if in_db && last_check.elapsed() > Duration::from_secs(2) {
                last_check = std::time::Instant::now();
                if self.consumer.assignment().map(|a| a.count()).unwrap_or(0) < expected_partitions {
                    tracing::warn!(service = self.service, "assignment lost; assigning again");
                    if !self.ensure_assigned(&topics, &shutdown).await {
                        break;
                    }
                }
            }
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = tokio::time::timeout(Duration::from_secs(1), self.consumer.recv()) => match m {
                    Ok(m) => m,
                    Err(_) => continue, // idle: loop round to the assignment check
                },
            };
            let mut batch = match first {
                Ok(m) => vec![Incoming::from_kafka(&m)],
                Err(e) => {
                    tracing::warn!(service = self.service, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            // Whatever else is already fetched joins the batch; nothing waits for more to arrive.
            while batch.len() < self.max_batch.max(1) {
                match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(Incoming::from_kafka(&m)),
                    Ok(Err(e)) => {
                        tracing::warn!(service = self.service, error = %e, "consumer error");
                        break;
                    }
                    Err(_) => break,
                }
            }
            if !self.process_batch(&handler, &batch, &shutdown).await {
                break; // shutting down mid-retry: the offsets stay uncommitted, the messages are redelivered
            }
            if in_db {
                continue; // the positions were stored with the effects
            }
            if let Err(e) = next_offsets(&batch).and_then(|tpl| Ok(self.consumer.commit(&tpl, CommitMode::Async)?)) {
                tracing::warn!(service = self.service, error = %e, "offset commit failed; the messages may be redelivered");
            }
        }
    }

    /// Sets `consumer_lag{service,topic,partition}` every [`LAG_SAMPLE_EVERY`] until `stop`: the
    /// partition's high watermark (asked of the broker) minus the position this service stored
    /// with its effects (the database's `consumer_offsets`, or Kafka's committed offset in group
    /// mode). Asked apart from the consuming loop, so a loop stuck on one message shows a lag
    /// that grows.
    async fn sample_lag(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(LAG_SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Partitions reported last time: one a rebalance took away reads 0 here (its new owner
        // reports it), so dashboards summing the lag do not count it twice.
        let mut reported = std::collections::HashSet::<(String, i32)>::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let this = self.clone();
            let Ok(marks) = tokio::task::spawn_blocking(move || this.broker_positions()).await else { continue };
            let stored: std::collections::HashMap<(String, i32), i64> = if group_mode() {
                marks.iter().filter_map(|m| m.committed.map(|c| ((m.topic.clone(), m.partition), c))).collect()
            } else {
                match sqlx::query_as::<_, (String, i32, i64)>("SELECT topic, part, next_offset FROM consumer_offsets").fetch_all(&self.pool).await {
                    Ok(rows) => rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect(),
                    Err(_) => continue, // the database is away: keep the last figures
                }
            };
            let mut now_reported = std::collections::HashSet::new();
            for m in marks {
                // Nothing stored yet: the loop starts from the beginning (what the log still holds).
                let position = stored.get(&(m.topic.clone(), m.partition)).copied().unwrap_or(m.low).max(m.low);
                metrics::gauge!("consumer_lag", "service" => self.service, "topic" => m.topic.clone(), "partition" => m.partition.to_string())
                    .set((m.high - position).max(0) as f64);
                now_reported.insert((m.topic, m.partition));
            }
            for (topic, partition) in reported.difference(&now_reported) {
                metrics::gauge!("consumer_lag", "service" => self.service, "topic" => topic.clone(), "partition" => partition.to_string()).set(0.0);
            }
            reported = now_reported;
        }
    }

    /// Low and high watermark (and, in group mode, the committed offset) of every assigned
    /// partition, asked of the broker: blocking calls, run on a blocking thread.
    fn broker_positions(&self) -> Vec<PartitionMarks> {
        let Ok(assigned) = self.consumer.assignment() else { return Vec::new() };
        let committed = if group_mode() { self.consumer.committed_offsets(assigned.clone(), Duration::from_secs(5)).ok() } else { None };
        assigned
            .elements()
            .iter()
            .filter_map(|e| {
                let (low, high) = self.consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5)).ok()?;
                let committed = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(e.topic(), e.partition()))
                    .and_then(|p| p.offset().to_raw())
                    .filter(|o| *o >= 0);
                Some(PartitionMarks { topic: e.topic().to_string(), partition: e.partition(), low, high, committed })
            })
            .collect()
    }

    /// Applies `batch` in one transaction. If that fails, the messages before the failing one are
    /// applied together again, the failing one alone (with retries or dead-lettering), and the rest
    /// as a new batch. Returns false only when shutdown interrupted a retry.
    async fn process_batch<H: Handler>(&self, handler: &H, batch: &[Incoming], shutdown: &CancellationToken) -> bool {
        let mut rest = batch;
        while rest.len() > 1 {
            let failed_at = match self.apply(handler, rest).await {
                Ok(()) => {
                    metrics::histogram!("consumer_batch_size", "service" => self.service).record(rest.len() as f64);
                    return true;
                }
                Err((at, e)) => {
                    metrics::counter!("consumer_batch_fallbacks_total", "service" => self.service).increment(1);
                    tracing::info!(service = self.service, size = rest.len(), at, error = %e, "batch rolled back; isolating the failing message");
                    at
                }
            };
            let (good, tail) = rest.split_at(failed_at);
            if !good.is_empty() && self.apply(handler, good).await.is_err() {
                for msg in good {
                    if !self.process(handler, msg, shutdown).await {
                        return false;
                    }
                }
            }
            if !self.process(handler, &tail[0], shutdown).await {
                return false;
            }
            rest = &tail[1..];
        }
        match rest.first() {
            Some(msg) => self.process(handler, msg, shutdown).await,
            None => true,
        }
    }

    /// Applies one message; returns false only when shutdown interrupted a retry.
    async fn process<H: Handler>(&self, handler: &H, msg: &Incoming, shutdown: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        let first_failure = Utc::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.apply(handler, std::slice::from_ref(msg)).await.map_err(|(_, e)| e) {
                Ok(()) => return true,
                Err(HandleError::Malformed(reason)) => {
                    tracing::warn!(service = self.service, topic = %msg.topic, offset = msg.offset, %reason, "dead-lettering a malformed message");
                    match self.dead_letter(handler, msg, "malformed", &reason, attempts, first_failure).await {
                        Ok(()) => return true,
                        Err(e) => tracing::warn!(error = %e, "writing the dead letter failed; retrying"),
                    }
                }
                Err(HandleError::Transient(e)) => {
                    let error = format!("{e:#}");
                    tracing::warn!(service = self.service, topic = %msg.topic, offset = msg.offset, %error, attempts, "transient failure; retrying");
                    if attempts >= IN_PLACE_ATTEMPTS {
                        // A fault that outlasts the retries while the database answers is this
                        // message's own: dead-letter it and let the customers behind it go on.
                        // While the database is down, every message would fail: keep waiting.
                        if sqlx::query("SELECT 1").execute(&self.pool).await.is_ok() {
                            match self.dead_letter(handler, msg, "transient_exhausted", &error, attempts, first_failure).await {
                                Ok(()) => return true,
                                Err(e) => tracing::warn!(error = %e, "writing the dead letter failed; retrying"),
                            }
                        } else {
                            attempts = 0;
                        }
                    }
                }
            }
            if !backoff.pause(shutdown).await {
                return false;
            }
        }
    }

    /// Applies `msgs` in order in ONE transaction: inbox, effects, outbox, positions, one commit.
    /// On failure, says which message failed (0 when the failure was not any one message's).
    ///
    /// The inbox is read once for the whole batch and written with one multi-row INSERT at the end
    /// (plain INSERT, not IGNORE: if another consumer recorded one of these ids meanwhile, the
    /// duplicate key rolls this transaction back and the retry sees the id as done).
    async fn apply<H: Handler>(&self, handler: &H, msgs: &[Incoming]) -> Result<(), (usize, HandleError)> {
        let mut tx = self.pool.begin().await.map_err(|e| (0, e.into()))?;
        let mut done = already_applied(&mut tx, msgs).await.map_err(|e| (0, e.into()))?;
        let mut fresh = Vec::with_capacity(msgs.len());
        let mut outgoing = Vec::new();
        for (i, msg) in msgs.iter().enumerate() {
            if !done.insert(msg.message_id.as_str()) {
                metrics::counter!("inbox_duplicates_total", "service" => self.service).increment(1);
                continue;
            }
            // Each message is handled in a span of the trace it carries (crate::trace).
            let span = tracing::info_span!("message", trace_id = tracing::field::Empty, otel.name = %format!("consume {}", msg.topic), otel.kind = "consumer");
            crate::trace::continue_from(&span, msg.header(crate::trace::TRACEPARENT));
            crate::trace::record_trace_id(&span);
            let mut caused = handler.handle(&mut tx, msg).instrument(span.clone()).await.map_err(|e| (i, e))?;
            // What a message causes carries the id of the request that caused the message, and
            // continues its trace.
            if let Some((_, id)) = msg.headers.iter().find(|(k, _)| k == crate::request_id::KAFKA_HEADER) {
                for out in &mut caused {
                    crate::request_id::stamp(&mut out.headers, id);
                }
            }
            if let Some(tp) = crate::trace::traceparent_of(&span) {
                for out in &mut caused {
                    crate::trace::stamp(&mut out.headers, &tp);
                }
            }
            outgoing.extend(caused);
            fresh.push(msg);
        }
        let recorded = async {
            if !fresh.is_empty() {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO inbox (message_id, topic) ");
                insert.push_values(&fresh, |mut row, msg| {
                    row.push_bind(&msg.message_id).push_bind(&msg.topic);
                });
                insert.build().execute(&mut *tx).await?;
            }
            outbox::enqueue_all(&mut tx, &outgoing).await?;
            store_positions(&mut tx, msgs).await?;
            tx.commit().await
        };
        recorded.await.map_err(|e| (0, e.into()))?;
        if !outgoing.is_empty() {
            self.relay.notify();
        }
        for msg in msgs {
            metrics::counter!("messages_handled_total", "service" => self.service, "topic" => msg.topic.clone()).increment(1);
        }
        Ok(())
    }

    /// Parks `msg` on the dead-letter topic, recording its id so it is dead-lettered once.
    async fn dead_letter<H: Handler>(
        &self,
        handler: &H,
        msg: &Incoming,
        error_class: &str,
        error: &str,
        attempts: u32,
        first_failure: chrono::DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT IGNORE INTO inbox (message_id, topic) VALUES (?, ?)")
            .bind(&msg.message_id)
            .bind(&msg.topic)
            .execute(&mut *tx)
            .await?;
        store_positions(&mut tx, std::slice::from_ref(msg)).await?;
        let dead = dead_letter_message(&self.dlq_topic, self.service, msg, error_class, error, attempts, first_failure);
        outbox::enqueue(&mut tx, &dead).await?;
        for answer in handler.on_dead_letter(msg) {
            outbox::enqueue(&mut tx, &answer).await?;
        }
        tx.commit().await?;
        self.relay.notify();
        metrics::counter!("dead_letters_total", "service" => self.service, "class" => error_class.to_string()).increment(1);
        Ok(())
    }
}

/// The ids among `msgs` that the inbox already holds (applied before: a redelivery or a replay).
async fn already_applied<'m>(conn: &mut MySqlConnection, msgs: &'m [Incoming]) -> sqlx::Result<std::collections::HashSet<&'m str>> {
    let mut select = sqlx::QueryBuilder::new("SELECT message_id FROM inbox WHERE message_id IN (");
    let mut ids = select.separated(", ");
    for m in msgs {
        ids.push_bind(&m.message_id);
    }
    select.push(")");
    let found: Vec<String> = select.build_query_scalar().fetch_all(conn).await?;
    Ok(msgs.iter().map(|m| m.message_id.as_str()).filter(|id| found.iter().any(|f| f == id)).collect())
}

/// The highest offset of each (topic, partition) in `msgs`, plus one: where consumption resumes.
fn resume_points(msgs: &[Incoming]) -> std::collections::BTreeMap<(&str, i32), i64> {
    let mut next = std::collections::BTreeMap::new();
    for m in msgs {
        let e = next.entry((m.topic.as_str(), m.partition)).or_insert(m.offset + 1);
        *e = (*e).max(m.offset + 1);
    }
    next
}

/// The offsets to commit to Kafka after `msgs` (group mode).
fn next_offsets(msgs: &[Incoming]) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in resume_points(msgs) {
        tpl.add_partition_offset(topic, partition, Offset::Offset(next))?;
    }
    Ok(tpl)
}

/// Records, in the caller's transaction, that `msgs` are done: consumption resumes after them.
async fn store_positions(conn: &mut MySqlConnection, msgs: &[Incoming]) -> sqlx::Result<()> {
    if group_mode() {
        return Ok(());
    }
    for ((topic, partition), next) in resume_points(msgs) {
        sqlx::query(
            "INSERT INTO consumer_offsets (topic, part, next_offset) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE next_offset = GREATEST(next_offset, VALUES(next_offset))",
        )
        .bind(topic)
        .bind(partition)
        .bind(next)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Builds the dead letter for `msg`: its payload (card-number-like digit runs redacted, no sealed
/// CVC: [`sagaway_contract::redact::drop_sealed_cvcs`]) and headers
/// naming where it came from and why it was given up.
pub fn dead_letter_message(
    dlq_topic: &str,
    service: &str,
    msg: &Incoming,
    error_class: &str,
    error: &str,
    attempts: u32,
    first_failure: chrono::DateTime<Utc>,
) -> Outgoing {
    let now = Utc::now();
    let ts = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    Outgoing {
        topic: dlq_topic.to_string(),
        key: msg.key.clone().unwrap_or_default(),
        payload: sagaway_contract::redact::redact_digit_runs(&sagaway_contract::redact::drop_sealed_cvcs(msg.payload.as_deref().unwrap_or(""))),
        headers: vec![
            ("dlq.original.topic".into(), msg.topic.clone()),
            ("dlq.original.partition".into(), msg.partition.to_string()),
            ("dlq.original.offset".into(), msg.offset.to_string()),
            ("dlq.original.key".into(), msg.key.clone().unwrap_or_default()),
            ("dlq.original.message_id".into(), msg.message_id.clone()),
            ("dlq.attempts".into(), attempts.to_string()),
            ("dlq.error.class".into(), error_class.to_string()),
            ("dlq.error.message".into(), sagaway_contract::redact::redact_digit_runs(error)),
            ("dlq.first_failure".into(), ts(first_failure)),
            ("dlq.last_failure".into(), ts(now)),
            ("dlq.service".into(), service.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::{Incoming, next_offsets, resume_points};

    fn at(topic: &str, partition: i32, offset: i64) -> Incoming {
        Incoming { topic: topic.into(), partition, offset, key: None, payload: None, headers: vec![], message_id: format!("{topic}:{partition}:{offset}") }
    }

    #[test]
    fn a_batch_resumes_after_its_highest_offset_of_each_partition() {
        let batch = [at("a", 0, 7), at("b", 0, 3), at("a", 0, 9), at("a", 1, 2), at("a", 0, 8)];
        let points: Vec<_> = resume_points(&batch).into_iter().collect();
        assert_eq!(points, vec![(("a", 0), 10), (("a", 1), 3), (("b", 0), 4)]);
        let tpl = next_offsets(&batch).unwrap();
        assert_eq!(tpl.count(), 3);
        assert_eq!(tpl.find_partition("a", 0).unwrap().offset(), rdkafka::Offset::Offset(10));
    }
}
