//! The per-account operation queue.
//!
//! `POST /accounts/{id}/operations` only *accepts*: in one transaction it takes the account's next
//! sequence number, inserts the operation (QUEUED), its history, its `bank.events` event and its
//! queue message (`bank.operations`, keyed by account id) into the outbox, and stores the
//! Idempotency-Key answer; the 202 is sent after that commit, so an accepted operation is never lost.
//!
//! [`OperationHandler`] runs in the inbox [`sagaway_common::inbox::ConsumerLoop`]: for a message
//! about operation `seq` of an account it locks the account and applies every still-QUEUED
//! operation of that account up to `seq`, in `seq` order — the effect on the ledger, the status
//! change and its event in the consumer's transaction, with the inbox entry. So operations apply in
//! acceptance order and exactly once even if the relay published two messages out of order or twice.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::{
    auth::Caller,
    http::ApiJson,
    inbox::{HandleError, Handler, Incoming},
    messages::Validate,
    money,
    outbox::{self, Outgoing},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::MySqlConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState, accounts,
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

/// Queue a deposit or a withdrawal. Needs an `Idempotency-Key`; answers 202 once the operation is
/// durably queued.
#[utoipa::path(post, path = "/accounts/{id}/operations", request_body = NewOperation, tag = "operations",
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required; kept 24 h")),
    responses((status = 202, body = Accepted), (status = 404, description = "no such account (or not yours)"),
              (status = 409, description = "Idempotency-Key still in flight"),
              (status = 422, description = "invalid field, or Idempotency-Key reused with another body"),
              (status = 429, description = "per-user rate limit")),
    security(("bearer" = [])))]
pub async fn enqueue(
    State(app): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NewOperation>,
) -> Response {
    let checked = async {
        let account = accounts::operable(&app.pool, &caller, &account_id).await?;
        let kind = match req.kind.as_str() {
            "deposit" => "deposit",
            "withdrawal" => "withdrawal",
            _ => return Err(ApiError::invalid("type", "must be deposit or withdrawal")),
        };
        check_amount(&app, &account.currency(), req.amount)?;
        Ok((account, kind))
    };
    let (account, kind) = match checked.await {
        Ok(v) => v,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let request = json!({"route": "operations", "account_id": account.id, "type": kind, "amount": money::format(req.amount)});
    let (app2, user) = (app.clone(), caller.user_id.clone());
    idempotency::run(&app, &caller.user_id, &headers, request, |claim| async move {
        let accepted = accept(&app2, &user, &account.id, kind, req.amount, &claim).await?;
        Ok((StatusCode::ACCEPTED, accepted))
    })
    .await
}

/// More than zero, no finer than the currency's minor unit, at most the configured maximum.
pub fn check_amount(app: &AppState, currency: &money::Currency, amount: Decimal) -> ApiResult<()> {
    currency.check_price(amount).map_err(|e| ApiError::invalid("amount", e))?;
    if amount > app.config.max_amount {
        return Err(ApiError::invalid("amount", format!("must be at most {}", money::format(app.config.max_amount))));
    }
    Ok(())
}

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

/// One operation (holders of its account, or an admin; anyone else 404).
#[utoipa::path(get, path = "/operations/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 200, body = Operation), (status = 404, description = "no such operation (or not yours)")), security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Operation>> {
    let row: Option<OperationRow> = sqlx::query_as(&format!("{SELECT_OPERATION} WHERE id = ?")).bind(&id).fetch_optional(&app.pool).await?;
    let row = row.ok_or(ApiError::NotFound("operation"))?;
    accounts::may_see(&app.pool, &caller, &row.account_id).await.map_err(|_| ApiError::NotFound("operation"))?;
    let history = events::history(&app.pool, &row.id).await?;
    Ok(Json(Operation {
        id: row.id,
        account_id: row.account_id,
        seq: row.seq,
        kind: row.kind,
        amount: row.amount,
        status: row.status,
        reason: row.reason,
        created_at: row.created_at,
        history,
    }))
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
    let Some(Some(account)) = ledger::lock(conn, &[account_id]).await?.pop() else {
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
        let change = Change { kind: "operation", id: &op.id, account_id, user_id: &op.user_id, status: to.as_str(), reason, at: now };
        out.push(events::record(conn, events_topic, &change).await?);
    }
    Ok(out)
}
