//! The `dead_letters` table: one row per record of a dead-letter topic (`payment_dlq`, the bank's
//! `bank.dlq`), with the filters and paging operators select them by.

use chrono::{DateTime, Utc};
use sagaway_contract::redact::redact_digit_runs;
use sagaway_messaging::inbox::Incoming;
use serde::{Deserialize, Serialize};
use sqlx::{MySql, MySqlConnection, QueryBuilder};
use utoipa::ToSchema;

use super::{PENDING, PURGED, REDACTED, STATUSES, kind::Compensation};
use crate::error::ApiError;

/// A dead letter as stored (and shown).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct DeadLetter {
    pub id: u64,
    /// The dead letter record's own message id, topic (`payment_dlq`, `bank.dlq`, with the
    /// prefix; absent on letters recorded before the topic was kept: `payment_dlq`) and position.
    pub dlq_message_id: String,
    pub dlq_topic: Option<String>,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub original_key: Option<String>,
    pub original_message_id: Option<String>,
    pub order_id: Option<String>,
    /// The payload's `type` (`charge`, `lock_reservation`, ...) when it has one.
    pub message_type: Option<String>,
    /// The compensation step it carries (`release_reservation`, `refund`, `bank_refund`,
    /// `bank_void`); absent for any other letter. Until it is replayed or resolved, its order
    /// cannot finish compensating.
    pub compensation: Option<String>,
    pub attempts: Option<i32>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub first_failure: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    /// The service that gave up.
    pub service: Option<String>,
    /// The message as dead-lettered (card-number-like digit runs redacted); absent in lists and once purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// PENDING, REPLAYED, ABANDONED, RESOLVED or PURGED.
    pub status: String,
    pub status_reason: Option<String>,
    pub replay_message_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, dlq_message_id, dlq_topic, dlq_partition, dlq_offset, original_topic, original_partition, original_offset, \
    original_key, original_message_id, order_id, message_type, compensation, attempts, error_class, error_message, first_failure, \
    last_failure, service, status, status_reason, replay_message_id, received_at, updated_at";

/// Which dead letters an operation is about. Every field narrows the selection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The order the dead-lettered message was about.
    #[schema(min_length = 1, max_length = 255)]
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub order_id: Option<String>,
    /// `processing_error`, `malformed`, `invalid_command`, `card_unreadable`, ...
    #[schema(min_length = 1, max_length = 255)]
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub error_class: Option<String>,
    /// The source topic, with or without the deployment's topic prefix (`payment.commands`).
    #[schema(min_length = 1, max_length = 255)]
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub topic: Option<String>,
    /// PENDING, REPLAYED, ABANDONED, RESOLVED or PURGED. Lists hide PURGED unless asked for it.
    #[schema(pattern = "^(PENDING|REPLAYED|ABANDONED|RESOLVED|PURGED)$")]
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub status: Option<String>,
    /// The service that gave up (`payment`, `orchestrator`, `product`, `bank`).
    #[schema(min_length = 1, max_length = 255)]
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub service: Option<String>,
    /// `true`: only letters that carry a compensation step; `false`: only the others.
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub compensation: Option<bool>,
    /// Failing at or after this time (its last failure is not earlier), RFC 3339.
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub since: Option<DateTime<Utc>>,
    /// Failing at or before this time (its first failure is not later), RFC 3339.
    #[serde(default, deserialize_with = "sagaway_contract::json::present")]
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(s) = &self.status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(ApiError::invalid("status", format!("must be one of {}", STATUSES.join(", "))));
        }
        // (`since` after `until` is an empty range, not an error: it matches nothing.)
        for (field, value) in [("order_id", &self.order_id), ("error_class", &self.error_class), ("topic", &self.topic), ("service", &self.service)] {
            if value.as_ref().is_some_and(|v| v.is_empty() || v.chars().count() > 255) {
                return Err(ApiError::invalid(field, "must be 1-255 characters"));
            }
        }
        Ok(())
    }

    /// True when no field narrows anything (so an operation on it would mean "everything").
    pub fn is_empty(&self) -> bool {
        self.order_id.is_none()
            && self.error_class.is_none()
            && self.topic.is_none()
            && self.status.is_none()
            && self.service.is_none()
            && self.compensation.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// Appends ` AND ...` for every field; without a status, PURGED rows are left out.
    fn push_where(&self, qb: &mut QueryBuilder<'_, MySql>, topic_prefix: &str) {
        if let Some(v) = &self.order_id {
            qb.push(" AND order_id = ").push_bind(v.clone());
        }
        if let Some(v) = &self.error_class {
            qb.push(" AND error_class = ").push_bind(v.clone());
        }
        if let Some(v) = &self.topic {
            qb.push(" AND (original_topic = ").push_bind(v.clone());
            qb.push(" OR original_topic = ").push_bind(format!("{topic_prefix}{v}")).push(")");
        }
        match &self.status {
            Some(v) => qb.push(" AND status = ").push_bind(v.clone()),
            None => qb.push(" AND status <> ").push_bind(PURGED),
        };
        if let Some(v) = &self.service {
            qb.push(" AND service = ").push_bind(v.clone());
        }
        match self.compensation {
            Some(true) => {
                qb.push(" AND compensation IS NOT NULL");
            }
            Some(false) => {
                qb.push(" AND compensation IS NULL");
            }
            None => {}
        }
        if let Some(v) = self.since {
            qb.push(" AND last_failure >= ").push_bind(v);
        }
        if let Some(v) = self.until {
            qb.push(" AND first_failure <= ").push_bind(v);
        }
    }
}

/// One page of dead letters (oldest first), without payloads, and the total that match.
pub async fn list(conn: &mut MySqlConnection, filter: &Filter, prefix: &str, page: u32, per_page: u32) -> sqlx::Result<(i64, Vec<DeadLetter>)> {
    let mut count = QueryBuilder::<MySql>::new("SELECT COUNT(*) FROM dead_letters WHERE 1 = 1");
    filter.push_where(&mut count, prefix);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;
    let mut q = QueryBuilder::<MySql>::new(format!("SELECT {COLUMNS}, NULL AS payload FROM dead_letters WHERE 1 = 1"));
    filter.push_where(&mut q, prefix);
    q.push(" ORDER BY id LIMIT ").push_bind(per_page).push(" OFFSET ").push_bind(u64::from(page - 1) * u64::from(per_page));
    let items = q.build_query_as::<DeadLetter>().fetch_all(&mut *conn).await?;
    Ok((total, items))
}

/// The ids matching `filter`, oldest first, at most `limit`.
pub async fn select_ids(conn: &mut MySqlConnection, filter: &Filter, prefix: &str, limit: Option<u32>) -> sqlx::Result<Vec<u64>> {
    let mut q = QueryBuilder::<MySql>::new("SELECT id FROM dead_letters WHERE 1 = 1");
    filter.push_where(&mut q, prefix);
    q.push(" ORDER BY id");
    if let Some(limit) = limit {
        q.push(" LIMIT ").push_bind(limit);
    }
    q.build_query_scalar().fetch_all(conn).await
}

/// Sets `dlq_pending` (dead letters no operator has acted on yet: each one may be an order
/// waiting) and `dlq_compensation_pending` (those of them that carry a compensation step: an order
/// that cannot finish compensating, or money held at the bank).
pub async fn sample_pending(pool: &sqlx::MySqlPool) {
    let counted = sqlx::query_as::<_, (i64, i64)>(
        "SELECT COUNT(*), CAST(COALESCE(SUM(compensation IS NOT NULL), 0) AS SIGNED) FROM dead_letters WHERE status = ?",
    )
    .bind(PENDING)
    .fetch_one(pool)
    .await;
    if let Ok((all, compensations)) = counted {
        metrics::gauge!("dlq_pending").set(all as f64);
        metrics::gauge!("dlq_compensation_pending").set(compensations as f64);
    }
}

pub async fn load(conn: &mut MySqlConnection, id: u64) -> sqlx::Result<Option<DeadLetter>> {
    sqlx::query_as(&format!("SELECT {COLUMNS}, payload FROM dead_letters WHERE id = ?")).bind(id).fetch_optional(conn).await
}

/// Loads and row-locks a dead letter for an operation (operations on one dead letter serialise).
pub async fn lock(conn: &mut MySqlConnection, id: u64) -> sqlx::Result<Option<DeadLetter>> {
    sqlx::query_as(&format!("SELECT {COLUMNS}, payload FROM dead_letters WHERE id = ? FOR UPDATE")).bind(id).fetch_optional(conn).await
}

pub async fn set_status(conn: &mut MySqlConnection, id: u64, status: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE dead_letters SET status = ?, status_reason = ? WHERE id = ?")
        .bind(status)
        .bind(truncate(reason, 255))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The order a dead letter is about: its `dlq.order_id` header first — redaction can cut into an
/// id in the payload (a UUID whose last digit groups add up to a card number's length looks like
/// one to it) — else the payload's `order_id` (`payload`: the letter's payload as JSON) unless
/// redaction touched it, else a bank command's or answer's `payment_id` when it is an order id
/// (an account payment's id at the bank is its order's id).
pub fn letter_order_id(msg: &Incoming, payload: Option<&serde_json::Value>) -> Option<String> {
    let field = |name: &str| payload?.get(name)?.as_str().filter(|o| !o.contains(REDACTED)).map(str::to_string);
    msg.header("dlq.order_id")
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .or_else(|| field("order_id"))
        .or_else(|| field("payment_id").filter(|p| p.parse::<sagaway_contract::ids::OrderId>().is_ok()))
}

/// Records one record of a dead-letter topic. Whatever it holds (missing or garbled headers, a payload
/// that is not JSON), it is stored: nothing here may fail on content, or the recorder would stall.
pub async fn record(conn: &mut MySqlConnection, msg: &Incoming) -> sqlx::Result<()> {
    let header = |name: &str, max: usize| msg.header(name).filter(|v| !v.is_empty()).map(|v| truncate(v, max));
    let time = |name: &str| msg.header(name).and_then(|v| DateTime::parse_from_rfc3339(v).ok()).map(|t| t.with_timezone(&Utc));
    let payload = redact_digit_runs(msg.payload.as_deref().unwrap_or(""));
    let json = serde_json::from_str::<serde_json::Value>(&payload).ok();
    let field = |name: &str| json.as_ref().and_then(|j| j.get(name)).and_then(|v| v.as_str()).map(str::to_string);
    let order_id = letter_order_id(msg, json.as_ref()).map(|o| truncate(&o, 128));
    let compensation = match (msg.header("dlq.original.topic"), field("type")) {
        (Some(topic), Some(kind)) => Compensation::of(topic, &kind),
        _ => None,
    };
    sqlx::query(
        "INSERT IGNORE INTO dead_letters (dlq_message_id, dlq_topic, dlq_partition, dlq_offset, original_topic, original_partition, \
         original_offset, original_key, original_message_id, order_id, message_type, compensation, attempts, error_class, error_message, \
         first_failure, last_failure, service, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(truncate(&msg.message_id, 128))
    .bind(truncate(&msg.topic, 255))
    .bind(msg.partition)
    .bind(msg.offset)
    .bind(header("dlq.original.topic", 255))
    .bind(msg.header("dlq.original.partition").and_then(|v| v.parse::<i32>().ok()))
    .bind(msg.header("dlq.original.offset").and_then(|v| v.parse::<i64>().ok()))
    .bind(header("dlq.original.key", 255))
    .bind(header("dlq.original.message_id", 128))
    .bind(order_id)
    .bind(field("type").map(|t| truncate(&t, 64)))
    .bind(compensation.map(Compensation::as_str))
    .bind(msg.header("dlq.attempts").and_then(|v| v.parse::<i32>().ok()))
    .bind(header("dlq.error.class", 64))
    .bind(msg.header("dlq.error.message").map(|m| truncate(&redact_digit_runs(m), 4000)))
    .bind(time("dlq.first_failure"))
    .bind(time("dlq.last_failure"))
    .bind(header("dlq.service", 64))
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
