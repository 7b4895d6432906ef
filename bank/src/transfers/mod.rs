//! Transfers between accounts of this bank. Their HTTP API (`POST /transfers`,
//! `GET/DELETE /transfers/{id}`) is [`api`], over the functions here; [`settle_one`] is the
//! scheduler's part.
//!
//! - `instant`: 24/7; debited and credited in one transaction (201 SETTLED). Individual accounts may
//!   move at most the night limit per transfer during the night window.
//! - `business_hours`: the amount is held at once (available → held). Inside the window the transfer
//!   is PROCESSING and the scheduler settles it right away; outside it is SCHEDULED with `execute_at`
//!   = the next opening, and may be canceled (hold released) until the scheduler takes it.
//!
//! A transfer to another bank answers 422 `unknown_bank` for now; the `to_bank` column and the
//! status enum are where inter-bank transfers (2PC, a PREPARED state) will go.

pub mod api;

use chrono::{DateTime, Utc};
use http::StatusCode;
use rust_decimal::Decimal;
use sagaway_common::{
    auth::Caller,
    money,
    outbox::{self, Outgoing},
};
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState, accounts,
    config::valid_code,
    error::{ApiError, ApiResult},
    events::{self, Change, HistoryEntry},
    idempotency, ledger,
    operations::check_amount,
    rules::{account_number, account_number::AccountNumber, ledger as legs, states::TransferStatus},
};

/// Where the money goes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// The recipient's bank code (3 digits; only this bank's code is served for now).
    pub bank: String,
    /// `12345678-5`.
    pub account_number: String,
}

/// `POST /transfers` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// instant or business_hours.
    pub kind: String,
    /// The paying account's id (the caller must hold it).
    pub from_account: String,
    pub to: Destination,
    #[serde(deserialize_with = "money::deserialize")]
    #[schema(value_type = String, example = "25.00")]
    pub amount: Decimal,
    /// Up to 140 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A transfer as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transfer {
    pub id: String,
    pub kind: String,
    /// PROCESSING, SCHEDULED, SETTLED or CANCELED.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub from_account: String,
    pub to: Destination,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "25.00")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When a business-hours transfer settles (the next opening when it was made outside the window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execute_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransferRow {
    pub id: String,
    pub kind: String,
    pub from_account: String,
    pub to_bank: String,
    pub to_account_number: String,
    pub to_account: Option<String>,
    pub amount: Decimal,
    pub currency: String,
    pub description: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub execute_at: Option<DateTime<Utc>>,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const SELECT_TRANSFER: &str = "SELECT id, kind, from_account, to_bank, to_account_number, to_account, amount, currency, description, \
     status, reason, execute_at, user_id, created_at, updated_at FROM transfers";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instant,
    BusinessHours,
}

/// A validated request, the recipient resolved.
struct Plan {
    kind: Kind,
    from: accounts::AccountRow,
    to: accounts::AccountRow,
    to_number: AccountNumber,
    amount: Decimal,
    description: Option<String>,
}

async fn plan(app: &AppState, caller: &Caller, req: &NewTransfer) -> ApiResult<Plan> {
    let kind = match req.kind.as_str() {
        "instant" => Kind::Instant,
        "business_hours" => Kind::BusinessHours,
        _ => return Err(ApiError::invalid("kind", "must be instant or business_hours")),
    };
    if !valid_code(&req.to.bank) {
        return Err(ApiError::invalid("to.bank", "must be a 3-digit bank code"));
    }
    let to_number = AccountNumber::parse(&req.to.account_number).map_err(|e| ApiError::invalid("to.account_number", e))?;
    if let Some(d) = &req.description
        && (d.chars().count() > 140 || d.chars().any(char::is_control))
    {
        return Err(ApiError::invalid("description", "at most 140 characters, no control characters"));
    }
    let from = accounts::operable(&app.pool, caller, &req.from_account).await?;
    check_amount(app, &from.currency(), req.amount)?;
    if req.to.bank != app.config.code {
        return Err(ApiError::refused("unknown_bank", Some("to.bank"), format!("bank {} is not reachable from bank {}", req.to.bank, app.config.code)));
    }
    let to = accounts::by_number_in(&app.pool, &to_number)
        .await?
        .ok_or_else(|| ApiError::refused("unknown_account", Some("to.account_number"), "no account with this number in this bank"))?;
    if to.id == from.id {
        return Err(ApiError::invalid("to.account_number", "must be another account than from_account"));
    }
    if to.currency != from.currency {
        return Err(ApiError::refused("currency_mismatch", Some("to.account_number"), format!("the recipient account is in {}, not {}", to.currency, from.currency)));
    }
    if kind == Kind::Instant && from.kind == "individual" && !app.config.night.allows(req.amount, app.config.clock.now()) {
        return Err(ApiError::refused(
            "limit_exceeded",
            Some("amount"),
            format!("between {} and {} an individual account may transfer at most {} at once", app.config.night.start.format("%H:%M"), app.config.night.end.format("%H:%M"), money::format(app.config.night.limit)),
        ));
    }
    Ok(Plan { kind, from, to, to_number, amount: req.amount, description: req.description.clone() })
}

/// Makes a planned transfer in one transaction: the ledger's legs (paid, or held), its row, its
/// history and events (outbox), and the Idempotency-Key answer (the returned status and body).
async fn execute(app: &AppState, user_id: &str, plan: &Plan, claim: &idempotency::Claimed) -> ApiResult<(StatusCode, String)> {
    let now = app.config.clock.now();
    let id = Uuid::now_v7().to_string();
    let mut tx = app.pool.begin().await?;
    let locked = ledger::lock(&mut tx, &[&plan.from.id, &plan.to.id]).await?;
    let from = locked[0].as_ref().ok_or(ApiError::NotFound("account"))?;
    if from.available < plan.amount {
        return Err(ApiError::refused("insufficient_funds", Some("amount"), format!("available balance is {}", money::format(from.available))));
    }
    let (status, execute_at, http_status, mut path) = match plan.kind {
        Kind::Instant => {
            ledger::post(&mut tx, "transfer", &id, now, &legs::transfer(&plan.from.id, &plan.to.id, plan.amount)).await?;
            (TransferStatus::Settled, None, StatusCode::CREATED, vec![TransferStatus::Processing, TransferStatus::Settled])
        }
        Kind::BusinessHours => {
            ledger::post(&mut tx, "transfer_hold", &id, now, &legs::hold(&plan.from.id, plan.amount)).await?;
            let status = if app.config.hours.is_open(now) { TransferStatus::Processing } else { TransferStatus::Scheduled };
            (status, Some(app.config.hours.next_opening(now)), StatusCode::ACCEPTED, vec![status])
        }
    };
    sqlx::query(
        "INSERT INTO transfers (id, kind, from_account, to_bank, to_account_number, to_account, amount, currency, description, status, execute_at, user_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(if plan.kind == Kind::Instant { "instant" } else { "business_hours" })
    .bind(&plan.from.id)
    .bind(&app.config.code)
    .bind(plan.to_number.digits())
    .bind(&plan.to.id)
    .bind(plan.amount)
    .bind(&plan.from.currency)
    .bind(&plan.description)
    .bind(status.as_str())
    .bind(execute_at)
    .bind(user_id)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for s in path.drain(..) {
        out.push(events::record(&mut tx, &app.topics.events, &Change { kind: "transfer", id: &id, account_id: &plan.from.id, user_id, status: s.as_str(), reason: None, at: now }).await?);
    }
    outbox::enqueue_all(&mut tx, &out).await?;
    let transfer = load_on(&mut tx, &id).await?.ok_or(ApiError::NotFound("transfer"))?;
    let body = serde_json::to_string(&transfer).map_err(anyhow::Error::from)?;
    if !idempotency::complete(&mut *tx, claim, http_status, &body).await? {
        return Err(ApiError::IdempotencyKeyInFlight);
    }
    tx.commit().await?;
    app.relay.notify();
    if status == TransferStatus::Processing {
        app.scheduler_wake.notify_one();
    }
    Ok((http_status, body))
}

/// Loads a transfer's view on `conn`.
pub async fn load_on(conn: &mut MySqlConnection, id: &str) -> sqlx::Result<Option<Transfer>> {
    let row: Option<TransferRow> = sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ?")).bind(id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    let history = events::history(&mut *conn, id).await?;
    Ok(Some(view(row, history)))
}

fn view(row: TransferRow, history: Vec<HistoryEntry>) -> Transfer {
    Transfer {
        id: row.id,
        kind: row.kind,
        status: row.status,
        reason: row.reason,
        from_account: row.from_account,
        to: Destination { bank: row.to_bank, account_number: account_number::display_stored(&row.to_account_number) },
        amount: row.amount,
        currency: row.currency,
        description: row.description,
        execute_at: row.execute_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        history,
    }
}

/// Whether the caller may see the transfer: a holder of the paying or the receiving account, or an admin.
async fn visible(app: &AppState, caller: &Caller, row: &TransferRow) -> ApiResult<bool> {
    if caller.is_admin() || accounts::is_holder(&app.pool, &row.from_account, &caller.user_id).await? {
        return Ok(true);
    }
    Ok(match &row.to_account {
        Some(to) => accounts::is_holder(&app.pool, to, &caller.user_id).await?,
        None => false,
    })
}

/// Transfer `id` as the caller may see it (holders of either account, or an admin; anyone else 404).
async fn load_visible(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Transfer> {
    let mut conn = app.pool.acquire().await?;
    let row: Option<TransferRow> = sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ?")).bind(id).fetch_optional(&mut *conn).await?;
    let row = row.ok_or(ApiError::NotFound("transfer"))?;
    if !visible(app, caller, &row).await? {
        return Err(ApiError::NotFound("transfer"));
    }
    let history = events::history(&mut *conn, id).await?;
    Ok(view(row, history))
}

/// Cancels a SCHEDULED transfer of the caller's (holders of the paying account): the hold is
/// released, in one transaction. Returns the transfer as it is now (CANCELED).
async fn cancel_scheduled(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Transfer> {
    let now = app.config.clock.now();
    let mut tx = app.pool.begin().await?;
    // Waits for the scheduler if it holds the row (it then finds it SETTLED: 409).
    let row: Option<TransferRow> = sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ? FOR UPDATE")).bind(id).fetch_optional(&mut *tx).await?;
    let row = row.ok_or(ApiError::NotFound("transfer"))?;
    if !accounts::is_holder(&mut *tx, &row.from_account, &caller.user_id).await? {
        return Err(ApiError::NotFound("transfer"));
    }
    let status = TransferStatus::parse(&row.status).ok_or_else(|| anyhow::anyhow!("transfer {id} has status {:?}", row.status))?;
    let to = status.move_to(TransferStatus::Canceled).map_err(|_| ApiError::NotCancelable(row.status.clone()))?;
    ledger::lock(&mut tx, &[&row.from_account]).await?;
    ledger::post(&mut tx, "transfer_release", id, now, &legs::release(&row.from_account, row.amount)).await?;
    sqlx::query("UPDATE transfers SET status = ?, updated_at = ? WHERE id = ?").bind(to.as_str()).bind(now).bind(id).execute(&mut *tx).await?;
    let event = events::record(&mut tx, &app.topics.events, &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: to.as_str(), reason: None, at: now }).await?;
    outbox::enqueue(&mut tx, &event).await?;
    let transfer = load_on(&mut tx, id).await?.ok_or(ApiError::NotFound("transfer"))?;
    tx.commit().await?;
    app.relay.notify();
    Ok(transfer)
}

/// Settles one due business-hours transfer, if it is still due and nobody else holds it:
/// SCHEDULED → PROCESSING → SETTLED (or PROCESSING → SETTLED), the held amount paid to the recipient.
/// Returns whether it settled it.
pub async fn settle_one(conn: &mut MySqlConnection, events_topic: &str, now: DateTime<Utc>, id: &str) -> sqlx::Result<Option<Vec<Outgoing>>> {
    let row: Option<TransferRow> = sqlx::query_as(&format!(
        "{SELECT_TRANSFER} WHERE id = ? AND status IN ('SCHEDULED', 'PROCESSING') AND execute_at <= ? FOR UPDATE SKIP LOCKED"
    ))
    .bind(id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let to_account = row.to_account.clone().ok_or_else(|| sqlx::Error::Protocol(format!("transfer {id} has no recipient")))?;
    let mut status = TransferStatus::parse(&row.status).ok_or_else(|| sqlx::Error::Protocol(format!("transfer {id}: status {:?}", row.status)))?;
    let mut out = Vec::new();
    let illegal = |e: crate::rules::states::IllegalMove| sqlx::Error::Protocol(format!("transfer {id}: {e}"));
    if status == TransferStatus::Scheduled {
        status = status.move_to(TransferStatus::Processing).map_err(illegal)?;
        out.push(events::record(conn, events_topic, &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: status.as_str(), reason: None, at: now }).await?);
    }
    status = status.move_to(TransferStatus::Settled).map_err(illegal)?;
    ledger::lock(conn, &[&row.from_account, &to_account]).await?;
    ledger::post(conn, "transfer_settle", id, now, &legs::settle_held(&row.from_account, &to_account, row.amount)).await?;
    sqlx::query("UPDATE transfers SET status = ?, updated_at = ? WHERE id = ?").bind(status.as_str()).bind(now).bind(id).execute(&mut *conn).await?;
    out.push(events::record(conn, events_topic, &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: status.as_str(), reason: None, at: now }).await?);
    Ok(Some(out))
}
