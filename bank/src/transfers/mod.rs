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
//! A transfer to another bank, or from several accounts (`sources`, many-to-one, possibly in
//! several banks), is an inter-bank transfer ([`interbank`]): this bank coordinates its two-phase
//! commit; it answers 202 PROCESSING (or SCHEDULED) and ends SETTLED or FAILED with a reason.

pub mod api;
pub mod decided;
pub mod interbank;
pub mod rows;

use chrono::{DateTime, Utc};
use http::StatusCode;
use rust_decimal::Decimal;
use sagaway_common::{http::plausible_id, auth::Caller};
use sagaway_messaging::outbox::{self, Outgoing};
use sagaway_contract::money;
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;
use utoipa::ToSchema;
use uuid::Uuid;

pub use decided::decided;
pub use interbank::start_scheduled_interbank;
pub use rows::{SELECT_TRANSFER, TransferRow};

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
    /// `12345678-9`.
    pub account_number: String,
}

/// One paying account of a many-to-one transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The bank holding the account (3 digits; this bank or one in its directory).
    pub bank: String,
    /// The account's id at that bank (the caller must hold it).
    pub account_id: String,
    #[serde(deserialize_with = "money::deserialize", serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "10.00")]
    pub amount: Decimal,
}

/// `POST /transfers` body: `from_account` + `amount`, or `sources` (many-to-one; the amount is
/// their sum).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// instant or business_hours.
    pub kind: String,
    /// The paying account's id at this bank (the caller must hold it). Not with `sources`.
    #[serde(default)]
    pub from_account: Option<String>,
    pub to: Destination,
    /// Not with `sources`.
    #[serde(default, deserialize_with = "optional_money")]
    #[schema(value_type = Option<String>, example = "25.00")]
    pub amount: Option<Decimal>,
    /// Several paying accounts, in this bank or others (1 to 15); all are debited or none.
    #[serde(default)]
    pub sources: Option<Vec<Source>>,
    /// Up to 140 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// An amount, or `null`/absent (the `sources` shape has none).
fn optional_money<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    use serde::{Deserialize, de::Error};
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(v) => money::parse(&v).map(Some).map_err(D::Error::custom),
    }
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
    /// Every paying account of an inter-bank transfer (one, or several for many-to-one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Source>>,
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

/// What `POST /transfers` asked for, checked: a transfer within this bank, or an inter-bank one.
#[allow(clippy::large_enum_variant)] // one per request
enum Planned {
    Local(Plan),
    Interbank(interbank::Plan),
}

fn parse_kind(kind: &str) -> ApiResult<Kind> {
    match kind {
        "instant" => Ok(Kind::Instant),
        "business_hours" => Ok(Kind::BusinessHours),
        _ => Err(ApiError::invalid("kind", "must be instant or business_hours")),
    }
}

async fn plan(app: &AppState, caller: &Caller, req: &NewTransfer) -> ApiResult<Planned> {
    let kind = parse_kind(&req.kind)?;
    if !valid_code(&req.to.bank) {
        return Err(ApiError::invalid("to.bank", "must be a 3-digit bank code"));
    }
    let to_number = AccountNumber::parse(&req.to.account_number).map_err(|e| ApiError::invalid("to.account_number", e))?;
    if let Some(d) = &req.description
        && (d.chars().count() > 140 || d.chars().any(char::is_control))
    {
        return Err(ApiError::invalid("description", "at most 140 characters, no control characters"));
    }
    let sources = interbank::sources(app, req)?;
    let local = sources.len() == 1 && req.sources.is_none() && req.to.bank == app.config.code;
    if !local {
        return interbank::plan(app, caller, kind, sources, &req.to.bank, to_number, req.description.clone()).await.map(Planned::Interbank);
    }
    let (from_account, amount) = (sources[0].account_id.clone(), sources[0].amount);
    let from = accounts::operable(&app.pool, caller, &from_account).await?;
    check_amount(app, &from.currency(), amount)?;
    let to = accounts::by_number_in(&app.pool, &to_number)
        .await?
        .ok_or_else(|| ApiError::refused("unknown_account", Some("to.account_number"), "no account with this number in this bank"))?;
    if to.id == from.id {
        return Err(ApiError::invalid("to.account_number", "must be another account than from_account"));
    }
    if to.currency != from.currency {
        return Err(ApiError::refused(
            "currency_mismatch",
            Some("to.account_number"),
            format!("the recipient account is in {}, not {}", to.currency, from.currency),
        ));
    }
    night_limit(app, kind, &from, amount)?;
    Ok(Planned::Local(Plan { kind, from, to, to_number, amount, description: req.description.clone() }))
}

/// Between the night window's ends an individual account moves at most the night limit per instant transfer.
fn night_limit(app: &AppState, kind: Kind, from: &accounts::AccountRow, amount: Decimal) -> ApiResult<()> {
    if kind == Kind::Instant && from.kind == "individual" && !app.config.night.allows(amount, app.config.clock.now()) {
        return Err(ApiError::refused(
            "limit_exceeded",
            Some("amount"),
            format!(
                "between {} and {} an individual account may transfer at most {} at once",
                app.config.night.start.format("%H:%M"),
                app.config.night.end.format("%H:%M"),
                money::format(app.config.night.limit)
            ),
        ));
    }
    Ok(())
}

/// Makes a planned transfer in one transaction: the ledger's legs (paid, or held), its row, its
/// history and events (outbox), and the Idempotency-Key answer (the returned status and body).
async fn execute(app: &AppState, user_id: &str, plan: &Plan, claim: &idempotency::Claimed) -> ApiResult<(StatusCode, String)> {
    let now = app.config.clock.now();
    let id = Uuid::now_v7().to_string();
    let mut tx = app.pool.begin().await?;
    let locked = ledger::lock_found(&mut tx, &[&plan.from.id, &plan.to.id]).await?;
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
        out.push(
            events::record(
                &mut tx,
                &app.topics.events,
                &Change { kind: "transfer", id: &id, account_id: &plan.from.id, user_id, status: s.as_str(), reason: None, at: now },
            )
            .await?,
        );
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
        sources: row.sources.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        currency: row.currency,
        description: row.description,
        execute_at: row.execute_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        history,
    }
}

/// Whether the caller may see the transfer: who made it, a holder of the paying or the receiving
/// account here, or an admin.
async fn visible(app: &AppState, caller: &Caller, row: &TransferRow) -> ApiResult<bool> {
    if caller.is_admin() || row.user_id == caller.user_id || accounts::is_holder(&app.pool, &row.from_account, &caller.user_id).await? {
        return Ok(true);
    }
    Ok(match &row.to_account {
        Some(to) => accounts::is_holder(&app.pool, to, &caller.user_id).await?,
        None => false,
    })
}

/// Transfer `id` as the caller may see it (holders of either account, or an admin; anyone else 404).
async fn load_visible(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Transfer> {
    if !plausible_id(id, 36) {
        return Err(ApiError::NotFound("transfer"));
    }
    let mut conn = app.pool.acquire().await?;
    let row: Option<TransferRow> = sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ?")).bind(id).fetch_optional(&mut *conn).await?;
    let row = row.ok_or(ApiError::NotFound("transfer"))?;
    if !visible(app, caller, &row).await? {
        return Err(ApiError::NotFound("transfer"));
    }
    let history = events::history(&mut *conn, id).await?;
    Ok(view(row, history))
}

/// Cancels a SCHEDULED transfer of the caller's (its maker, or holders of the paying account): the hold is
/// released, in one transaction. Returns the transfer as it is now (CANCELED).
async fn cancel_scheduled(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Transfer> {
    if !plausible_id(id, 36) {
        return Err(ApiError::NotFound("transfer"));
    }
    let now = app.config.clock.now();
    let mut tx = app.pool.begin().await?;
    // Waits for the scheduler if it holds the row (it then finds it SETTLED: 409).
    let row: Option<TransferRow> = sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ? FOR UPDATE")).bind(id).fetch_optional(&mut *tx).await?;
    let row = row.ok_or(ApiError::NotFound("transfer"))?;
    // Who made it, or holds the paying account (an inter-bank one's may be at another bank).
    if row.user_id != caller.user_id && !accounts::is_holder(&mut *tx, &row.from_account, &caller.user_id).await? {
        return Err(ApiError::NotFound("transfer"));
    }
    let status = TransferStatus::parse(&row.status).ok_or_else(|| anyhow::anyhow!("transfer {id} has status {:?}", row.status))?;
    let to = status.move_to(TransferStatus::Canceled).map_err(|_| ApiError::NotCancelable(row.status.clone()))?;
    for (account, amount) in held_here(app, &row) {
        ledger::lock(&mut tx, &[&account]).await?;
        ledger::post(&mut tx, "transfer_release", id, now, &legs::release(&account, amount)).await?;
    }
    sqlx::query("UPDATE transfers SET status = ?, updated_at = ? WHERE id = ?").bind(to.as_str()).bind(now).bind(id).execute(&mut *tx).await?;
    let event = events::record(
        &mut tx,
        &app.topics.events,
        &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: to.as_str(), reason: None, at: now },
    )
    .await?;
    outbox::enqueue(&mut tx, &event).await?;
    let transfer = load_on(&mut tx, id).await?.ok_or(ApiError::NotFound("transfer"))?;
    tx.commit().await?;
    app.relay.notify();
    Ok(transfer)
}

/// What a SCHEDULED transfer holds at this bank: the paying account's amount, or for an inter-bank
/// transfer each source held here.
fn held_here(app: &AppState, row: &TransferRow) -> Vec<(String, Decimal)> {
    if !row.interbank {
        return vec![(row.from_account.clone(), row.amount)];
    }
    let sources: Vec<Source> = row.sources.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    sources.into_iter().filter(|s| s.bank == app.config.code).map(|s| (s.account_id, s.amount)).collect()
}

/// Settles one due business-hours transfer, if it is still due and nobody else holds it:
/// SCHEDULED → PROCESSING → SETTLED (or PROCESSING → SETTLED), the held amount paid to the recipient.
/// Returns whether it settled it.
pub async fn settle_one(conn: &mut MySqlConnection, events_topic: &str, now: DateTime<Utc>, id: &str) -> sqlx::Result<Option<Vec<Outgoing>>> {
    let row: Option<TransferRow> =
        sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ? AND status IN ('SCHEDULED', 'PROCESSING') AND execute_at <= ? FOR UPDATE SKIP LOCKED"))
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
        out.push(
            events::record(
                conn,
                events_topic,
                &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: status.as_str(), reason: None, at: now },
            )
            .await?,
        );
    }
    status = status.move_to(TransferStatus::Settled).map_err(illegal)?;
    ledger::lock(conn, &[&row.from_account, &to_account]).await?;
    ledger::post(conn, "transfer_settle", id, now, &legs::settle_held(&row.from_account, &to_account, row.amount)).await?;
    sqlx::query("UPDATE transfers SET status = ?, updated_at = ? WHERE id = ?").bind(status.as_str()).bind(now).bind(id).execute(&mut *conn).await?;
    out.push(
        events::record(
            conn,
            events_topic,
            &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: status.as_str(), reason: None, at: now },
        )
        .await?,
    );
    Ok(Some(out))
}
