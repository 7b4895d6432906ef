//! The transactional outbox. A service never publishes from a request handler or a consumer
//! directly: it writes the message into its `outbox` table inside the same DB transaction as the
//! state change, and [`OutboxRelay`] publishes committed rows in id order with the idempotent
//! producer, deleting them once the broker has acknowledged them. A crash between publish and
//! delete republishes; consumers drop the duplicate through their inbox (same `message_id`).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures::future::join_all;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Header carrying the id consumers deduplicate on.
pub const MESSAGE_ID: &str = "message_id";
/// Header naming the payload's type (`lock_reservation`, ...), for tooling that does not parse bodies.
pub const MESSAGE_TYPE: &str = "message_type";

/// A message to publish once the surrounding transaction commits.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub key: String,
    pub payload: String,
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    /// A JSON message; `kind` goes into the `message_type` header.
    pub fn json(topic: impl Into<String>, key: impl Into<String>, kind: &str, payload: &impl Serialize) -> Self {
        Self {
            topic: topic.into(),
            key: key.into(),
            payload: serde_json::to_string(payload).expect("message types serialise"),
            headers: vec![(MESSAGE_TYPE.to_string(), kind.to_string())],
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Writes `msg` into the outbox on `conn` (which should be inside the caller's transaction) and
/// returns the message id it will carry.
pub async fn enqueue(conn: &mut MySqlConnection, msg: &Outgoing) -> sqlx::Result<Uuid> {
    Ok(enqueue_all(conn, std::slice::from_ref(msg)).await?[0])
}

/// Writes every message of `msgs` into the outbox with ONE multi-row INSERT on `conn` (inside the
/// caller's transaction) and returns their message ids. Row ids follow the slice's order, so the
/// relay publishes them in that order.
pub async fn enqueue_all(conn: &mut MySqlConnection, msgs: &[Outgoing]) -> sqlx::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = msgs.iter().map(|_| Uuid::now_v7()).collect();
    if msgs.is_empty() {
        return Ok(ids);
    }
    // Messages written while serving a request carry its id (crate::request_id) and the trace
    // context of the span writing them (crate::trace), unless they were given their own.
    let request = crate::request_id::current();
    let traceparent = crate::trace::current();
    let headers = |msg: &Outgoing| {
        let mut h = msg.headers.clone();
        if let Some(id) = &request {
            crate::request_id::stamp(&mut h, id);
        }
        if let Some(tp) = &traceparent {
            crate::trace::stamp(&mut h, tp);
        }
        serde_json::to_string(&h).expect("headers serialise")
    };
    let mut insert = sqlx::QueryBuilder::new("INSERT INTO outbox (message_id, topic, msg_key, payload, headers) ");
    insert.push_values(msgs.iter().zip(&ids), |mut row, (msg, id)| {
        row.push_bind(id.to_string()).push_bind(&msg.topic).push_bind(&msg.key).push_bind(&msg.payload).push_bind(headers(msg));
    });
    insert.build().execute(conn).await?;
    Ok(ids)
}

/// How often the relay measures its backlog (`outbox_pending`, `outbox_oldest_age_seconds`).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Publishes committed outbox rows. Writers call [`OutboxRelay::notify`] after commit for low
/// latency; the relay also polls, so rows left by a crash are published after restart.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: MySqlPool,
    producer: Arc<FutureProducer>,
    wake: Arc<Notify>,
    batch: u32,
    poll: Duration,
}

impl OutboxRelay {
    pub fn new(pool: MySqlPool, producer: Arc<FutureProducer>) -> Self {
        Self { pool, producer, wake: Arc::new(Notify::new()), batch: 500, poll: Duration::from_millis(200) }
    }

    /// Wakes the relay: call after committing a transaction that enqueued messages.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`, then publishes what is left (best effort) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut sampled = None::<std::time::Instant>;
        loop {
            if sampled.is_none_or(|at| at.elapsed() >= SAMPLE_EVERY) {
                sampled = Some(std::time::Instant::now());
                self.sample().await;
            }
            match self.drain().await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "outbox relay: publish failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.drain()).await;
    }

    /// Sets `outbox_pending` (rows not yet published) and `outbox_oldest_age_seconds` (0 when
    /// none): a growing age means the relay cannot publish (broker away, a poisoned row).
    async fn sample(&self) {
        let row: sqlx::Result<(i64, Option<i64>)> =
            sqlx::query_as("SELECT COUNT(*), TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) FROM outbox").fetch_one(&self.pool).await;
        if let Ok((pending, age_us)) = row {
            metrics::gauge!("outbox_pending").set(pending as f64);
            metrics::gauge!("outbox_oldest_age_seconds").set(age_us.unwrap_or(0).max(0) as f64 / 1e6);
        }
    }

    /// Publishes every committed row, oldest first, batch by batch.
    pub async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let rows = sqlx::query("SELECT id, message_id, topic, msg_key, payload, headers FROM outbox ORDER BY id LIMIT ?")
                .bind(self.batch)
                .fetch_all(&self.pool)
                .await
                .context("reading the outbox")?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut sends = Vec::with_capacity(rows.len());
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: u64 = row.get("id");
                let message_id: String = row.get("message_id");
                let topic: String = row.get("topic");
                let key: String = row.get("msg_key");
                let payload: String = row.get("payload");
                let extra: Vec<(String, String)> = row
                    .get::<Option<String>, _>("headers")
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or_default();
                let producer = self.producer.clone();
                ids.push(id);
                sends.push(async move {
                    let mut headers = OwnedHeaders::new().insert(Header { key: MESSAGE_ID, value: Some(&message_id) });
                    for (k, v) in &extra {
                        headers = headers.insert(Header { key: k, value: Some(v) });
                    }
                    let record = FutureRecord::to(&topic).key(&key).payload(&payload).headers(headers);
                    producer
                        .send(record, Timeout::After(Duration::from_secs(30)))
                        .await
                        .map(|_| ())
                        .map_err(|(e, _)| anyhow::anyhow!("publishing to {topic}: {e}"))
                });
            }
            // Sends are enqueued in id order; the idempotent producer keeps that order per partition.
            let results = join_all(sends).await;
            let sent: Vec<u64> = ids.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(id, _)| *id).collect();
            if !sent.is_empty() {
                let placeholders = vec!["?"; sent.len()].join(",");
                let sql = format!("DELETE FROM outbox WHERE id IN ({placeholders})");
                let mut q = sqlx::query(&sql);
                for id in &sent {
                    q = q.bind(id);
                }
                q.execute(&self.pool).await.context("deleting published outbox rows")?;
                metrics::counter!("outbox_published_total").increment(sent.len() as u64);
            }
            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                return Err(e);
            }
        }
    }
}
