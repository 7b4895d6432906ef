//! The per-account operation queue. Its HTTP API (`POST /accounts/{id}/operations`,
//! `GET /operations/{id}`) is [`api`], over the functions here.
//!
//! `POST /accounts/{id}/operations` only *accepts*: in one transaction it takes the account's next
//! sequence number, inserts the operation (QUEUED), its history, its `bank.events` event and its
//! queue message (`bank.operations`, keyed by account id) into the outbox, and stores the
//! Idempotency-Key answer; the 202 is sent after that commit, so an accepted operation is never lost.
//!
//! [`OperationHandler`] runs in the inbox [`sagaway_messaging::inbox::ConsumerLoop`]: for a message
//! about operation `seq` of an account it locks the account and applies every still-QUEUED
//! operation of that account up to `seq`, in `seq` order — the effect on the ledger, the status
//! change and its event in the consumer's transaction, with the inbox entry. So operations apply in
//! acceptance order and exactly once even if the relay published two messages out of order or twice.

pub mod api;

use chrono::{DateTime, Utc};
use http::StatusCode;
use rust_decimal::Decimal;
use sagaway_common::http::plausible_id;
use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::{self, Outgoing}};
use sagaway_contract::{messages::Validate, money};
use serde::{Deserialize, Serialize};
use sqlx::{MySqlConnection, MySqlPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    events::{self, Change, HistoryEntry},
    idempotency, ledger,
    rules::{ledger as legs, states::OperationStatus},
};

/// `POST /accounts/{id}/operations` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperation {
    /// deposit or withdrawal.
    #[serde(rename = "type")]
    pub kind: String,
    /// More than zero, no finer than the account currency's minor unit (string or number).
    #[serde(deserialize_with = "money::deserialize")]
    #[schema(value_type = String, example = "10.00")]
    pub amount: Decimal,
}

/// The answer to an accepted operation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub operation_id: String,
    pub account_id: String,
    /// Acceptance order within the account (1, 2, …): the order operations apply in.
    pub seq: i64,
    /// QUEUED.
    pub status: String,
}

/// An operation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    pub id: String,
    pub account_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "10.00")]
    pub amount: Decimal,
    /// QUEUED, APPLIED or REJECTED.
    pub status: String,
    /// Why it was rejected (`insufficient_funds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, sqlx::FromRow)]
struct OperationRow {
    id: String,
    account_id: String,
    seq: i64,
    kind: String,
    amount: Decimal,
    status: String,
    reason: Option<String>,
    user_id: String,
    created_at: DateTime<Utc>,
}

const SELECT_OPERATION: &str = "SELECT id, account_id, seq, kind, amount, status, reason, user_id, created_at FROM operations";

/// The message on `bank.operations`.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueMessage {
    pub operation_id: String,
    pub account_id: String,
    pub seq: i64,
}

impl Validate for QueueMessage {
    fn validate(&self) -> Result<(), String> {
        if self.operation_id.len() != 36 || Uuid::parse_str(&self.operation_id).is_err() {
            return Err("operation_id must be a UUID".into());
        }
        if self.account_id.is_empty() || self.account_id.len() > 36 {
            return Err("account_id must be 1-36 characters".into());
        }
        if self.seq < 1 {
            return Err("seq must be positive".into());
        }
        Ok(())
    }
}

/// More than zero, no finer than the currency's minor unit, at most the configured maximum.
pub fn check_amount(app: &AppState, currency: &money::Currency, amount: Decimal) -> ApiResult<()> {
    currency.check_price(amount).map_err(|e| ApiError::invalid("amount", e))?;
    if amount > app.config.max_amount {
        return Err(ApiError::invalid("amount", format!("must be at most {}", money::format(app.config.max_amount))));
    }
    Ok(())
}

/// Accepts a checked operation in one transaction: its `seq`, its row, its history, its event and
/// queue message (outbox), and the Idempotency-Key answer (202 and the returned body).
async fn accept(app: &AppState, user_id: &str, account_id: &str, kind: &str, amount: Decimal, claim: &idempotency::Claimed) -> ApiResult<String> {
    let now = app.config.clock.now();
    let id = Uuid::now_v7().to_string();
    let mut tx = app.pool.begin().await?;
    // The counter row is locked until commit: acceptances of one account are serialised here.
    sqlx::query("UPDATE account_sequences SET next_seq = next_seq + 1 WHERE account_id = ?").bind(account_id).execute(&mut *tx).await?;
    let seq: i64 = sqlx::query_scalar("SELECT next_seq FROM account_sequences WHERE account_id = ?").bind(account_id).fetch_one(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO operations (id, account_id, seq, kind, amount, status, user_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?)",
    )
    .bind(&id)
    .bind(account_id)
    .bind(seq)
    .bind(kind)
    .bind(amount)
    .bind(user_id)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let change = Change { kind: "operation", id: &id, account_id, user_id, status: OperationStatus::Queued.as_str(), reason: None, at: now };
    let event = events::record(&mut tx, &app.topics.events, &change).await?;
    let queued = Outgoing::json(&app.topics.operations, account_id, "operation_queued", &QueueMessage { operation_id: id.clone(), account_id: account_id.into(), seq });
    outbox::enqueue_all(&mut tx, &[queued, event]).await?;
    let body = serde_json::to_string(&Accepted { operation_id: id, account_id: account_id.into(), seq, status: "QUEUED".into() }).map_err(anyhow::Error::from)?;
    if !idempotency::complete(&mut *tx, claim, StatusCode::ACCEPTED, &body).await? {
        return Err(ApiError::IdempotencyKeyInFlight);
    }
    tx.commit().await?;
    app.relay.notify();
    Ok(body)
}

/// An operation's row, if there is one.
async fn find(pool: &MySqlPool, id: &str) -> sqlx::Result<Option<OperationRow>> {
    if !plausible_id(id, 36) {
        return Ok(None);
    }
    sqlx::query_as(&format!("{SELECT_OPERATION} WHERE id = ?")).bind(id).fetch_optional(pool).await
}

/// An operation's view: its row and its history.
async fn view(pool: &MySqlPool, row: OperationRow) -> sqlx::Result<Operation> {
    let history = events::history(pool, &row.id).await?;
    Ok(Operation {
        id: row.id,
        account_id: row.account_id,
        seq: row.seq,
        kind: row.kind,
        amount: row.amount,
        status: row.status,
        reason: row.reason,
        created_at: row.created_at,
        history,
    })
}

/// Applies queued operations (the consumer of `bank.operations`).
pub struct OperationHandler {
    pub events_topic: String,
    pub clock: crate::clock::SharedClock,
}

impl Handler for OperationHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let m: QueueMessage = msg.json()?;
        apply_through(conn, &self.events_topic, self.clock.now(), &m.account_id, m.seq).await.map_err(HandleError::from)
    }
}

/// Applies, in `seq` order, every QUEUED operation of `account_id` up to `seq`; returns their events.
pub async fn apply_through(conn: &mut MySqlConnection, events_topic: &str, now: DateTime<Utc>, account_id: &str, seq: i64) -> sqlx::Result<Vec<Outgoing>> {
    let Some(Some(account)) = ledger::lock_found(conn, &[account_id]).await?.pop() else {
        return Ok(vec![]); // no such account: nothing was ever accepted for it
    };
    let queued: Vec<OperationRow> = sqlx::query_as(&format!("{SELECT_OPERATION} WHERE account_id = ? AND status = 'QUEUED' AND seq <= ? ORDER BY seq"))
        .bind(account_id)
        .bind(seq)
        .fetch_all(&mut *conn)
        .await?;
    let cash = ledger::cash_account(&account.currency);
    let mut available = account.available;
    let mut out = Vec::with_capacity(queued.len());
    for op in queued {
        let (to, reason) = match op.kind.as_str() {
            "deposit" => {
                ledger::post(conn, "deposit", &op.id, now, &legs::deposit(&cash, account_id, op.amount)).await?;
                available += op.amount;
                (OperationStatus::Applied, None)
            }
            _ if available >= op.amount => {
                ledger::post(conn, "withdrawal", &op.id, now, &legs::withdrawal(&cash, account_id, op.amount)).await?;
                available -= op.amount;
                (OperationStatus::Applied, None)
            }
            _ => (OperationStatus::Rejected, Some("insufficient_funds")),
        };
        let from = OperationStatus::parse(&op.status).unwrap_or(OperationStatus::Queued);
        let to = from.move_to(to).map_err(|e| sqlx::Error::Protocol(format!("operation {}: {e}", op.id)))?;
        sqlx::query("UPDATE operations SET status = ?, reason = ?, updated_at = ? WHERE id = ? AND status = 'QUEUED'")
            .bind(to.as_str())
            .bind(reason)
            .bind(now)
            .bind(&op.id)
            .execute(&mut *conn)
            .await?;
        metrics::counter!("bank_operations_total", "kind" => op.kind.clone(), "status" => to.as_str()).increment(1);
        let change = Change { kind: "operation", id: &op.id, account_id, user_id: &op.user_id, status: to.as_str(), reason, at: now };
        out.push(events::record(conn, events_topic, &change).await?);
    }
    Ok(out)
}
