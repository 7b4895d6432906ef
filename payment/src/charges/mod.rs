//! Charges: one row per order (UNIQUE order_id), its attempts, and `GET /charges/{order_id}`
//! (the handler is in [`api`], over [`load_view`]).
//!
//! A charge command, inside the consumer's transaction:
//! 1. locks the order's charge row; a final outcome (succeeded, declined) is re-answered as it was,
//!    so a redelivered or replayed command never charges twice;
//! 2. opens the sealed card (the PAN and CVC live only in local variables of [`handle`]), validates
//!    it (Luhn, expiry, CVC) and asks the simulated [`crate::acquirer`];
//! 3. records the attempt, then: approved → capture (balanced journal entry) + `charged`;
//!    declined → `declined`, no money moves; transient → a copy on `saga.retry` due after the
//!    [`crate::retry_policy`] delay, or, once the budget is spent, a dead letter + `failed`.
//!
//! The CVC is used by the first attempt only (PCI DSS 3.2: it is not kept once an authorization
//! has been attempted). Every copy of a charge this service writes — the retry on `saga.retry`, the
//! dead letter — carries the card without it ([`without_cvc`]: the number resealed alone), so
//! retries and replays are authorized without a CVC.
//!
//! Status: `pending` while retries are in flight, then `succeeded`, `declined` or `failed`. A
//! `failed` charge was dead-lettered: a new charge command for the order (an operator's replay)
//! starts a new round of attempts. `refunded` and `voided` are set by [`crate::refunds`].
//!
//! A charge paid from a bank account (`account` instead of `card`) goes the same way up to step 1;
//! then, instead of the acquirer, [`crate::bank`] records it `pending` and asks the bank for a hold,
//! and the bank's answers carry it on (`bank.replies`).

pub mod api;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use sagaway_common::{auth::Caller, card};
use sagaway_messaging::{inbox::{self, HandleError, Incoming}, outbox::Outgoing};
use sagaway_contract::{
    messages::{CardRef, PaymentCommand, PaymentReply},
    money,
};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    acquirer::{self, Answer},
    context::{CommandHandler, SERVICE},
    request::ChargeRequest,
    ledger,
    lifecycle::{self, ChargeStatus, OnCharge},
    outage,
    retry::{self, RETRY_ATTEMPT},
    retry_policy::{self, Decision},
};

/// The decline reason when an order was refunded (compensated) before it could be charged.
pub const ORDER_CANCELLED: &str = "order_cancelled";

/// The stored charge an attempt works on.
struct Charge {
    id: String,
    user_id: String,
    amount: Decimal,
    currency: String,
    round: u32,
}

/// The opened card. Deliberately not `Debug`: it must never reach a log line or an error.
struct OpenedCard {
    digits: String,
    /// Only in the first charge command of an order.
    cvc: Option<String>,
}

/// Applies one charge command; returns the messages to publish.
pub async fn handle(
    h: &CommandHandler,
    conn: &mut MySqlConnection,
    msg: &Incoming,
    req: &ChargeRequest,
) -> Result<Vec<Outgoing>, HandleError> {
    let order_id = req.order_id.as_str();
    let retry_attempt: Option<u32> = msg.header(RETRY_ATTEMPT).and_then(|v| v.parse().ok()).filter(|n| *n >= 1);
    let existing = sqlx::query("SELECT id, CAST(user_id AS CHAR) AS user_id, status, amount, currency, decline_code, round FROM charges WHERE order_id = ? FOR UPDATE")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;

    let charge = existing.as_ref().map(|row| Charge {
        id: row.get("id"),
        user_id: row.get("user_id"),
        amount: row.get("amount"),
        currency: row.get("currency"),
        round: row.get("round"),
    });
    let status = match &existing {
        Some(row) => {
            let raw: String = row.get("status");
            match ChargeStatus::parse(&raw) {
                Some(s) => Some(s),
                None => {
                    tracing::error!(order_id, status = raw, "charge in an unknown status; command ignored");
                    return Ok(vec![]);
                }
            }
        }
        None => None,
    };
    let refunded_before = status.is_none()
        && sqlx::query_scalar::<_, i32>("SELECT 1 FROM refunds WHERE order_id = ?").bind(order_id).fetch_optional(&mut *conn).await?.is_some();
    let attempts = match (&charge, status) {
        (Some(c), Some(ChargeStatus::Pending)) => attempts_in_round(conn, order_id, c.round).await?,
        _ => 0,
    };

    let (charge, attempt_no) = match (lifecycle::on_charge_command(status, refunded_before, retry_attempt, attempts), charge) {
        (OnCharge::Reanswer(ChargeStatus::Succeeded | ChargeStatus::Refunding | ChargeStatus::Refunded), Some(charge)) => {
            tracing::info!(order_id, "charge already captured; re-answering");
            let reply = PaymentReply::Charged {
                order_id: req.order_id.clone(),
                charge_id: charge.id,
                amount: ledger::canonical(charge.amount),
                currency: Some(charge.currency),
            };
            return Ok(vec![h.reply(msg, &reply)]);
        }
        (OnCharge::Reanswer(ChargeStatus::Declined), _) => {
            let reason: Option<String> = existing.as_ref().and_then(|row| row.get("decline_code"));
            let reply = PaymentReply::Declined { order_id: req.order_id.clone(), reason: reason.unwrap_or_else(|| "card_declined".into()) };
            return Ok(vec![h.reply(msg, &reply)]);
        }
        (OnCharge::Reanswer(_) | OnCharge::Cancelled, _) => {
            let reply = PaymentReply::Declined { order_id: req.order_id.clone(), reason: ORDER_CANCELLED.into() };
            return Ok(vec![h.reply(msg, &reply)]);
        }
        (OnCharge::Drop(why), _) => {
            tracing::info!(order_id, attempt = ?retry_attempt, attempts, why, "charge command dropped");
            return Ok(vec![]);
        }
        (OnCharge::Attempt(_) | OnCharge::NewRound, _) if req.card().is_none() => {
            // An account charge has no attempts to retry or replay: the bank's answer carries it on.
            tracing::info!(order_id, "retry or replay of an account charge dropped; the bank's answer settles it");
            return Ok(vec![]);
        }
        (OnCharge::Start, _) if req.card().is_none() => {
            if let Err(problem) = check_request(req) {
                return permanent_failure(h, conn, msg, req, "invalid_command", &problem, None).await;
            }
            return Ok(crate::bank::start(h, conn, req).await?);
        }
        (OnCharge::Attempt(n), Some(charge)) => (charge, n),
        (OnCharge::NewRound, Some(charge)) => {
            sqlx::query("UPDATE charges SET status = 'pending', round = round + 1, failure_reason = NULL WHERE id = ?")
                .bind(&charge.id)
                .execute(&mut *conn)
                .await?;
            tracing::info!(order_id, round = charge.round + 1, "replayed charge: new round of attempts");
            (Charge { round: charge.round + 1, ..charge }, 1)
        }
        (OnCharge::Start, _) => {
            if let Err(problem) = check_request(req) {
                return permanent_failure(h, conn, msg, req, "invalid_command", &problem, None).await;
            }
            let (Some(card), Some(opened)) = (req.card(), open_card(h, req)) else {
                return permanent_failure(h, conn, msg, req, "card_unreadable", UNREADABLE, None).await;
            };
            let id = Uuid::now_v7().to_string();
            let last4 = &opened.digits[opened.digits.len().saturating_sub(4)..];
            sqlx::query(
                "INSERT INTO charges (id, order_id, user_id, amount, currency, status, brand, last4, exp_month, exp_year, fingerprint) \
                 VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(order_id)
            .bind(req.user_id.as_str())
            .bind(req.amount)
            .bind(&req.currency)
            .bind(card::brand(&opened.digits))
            .bind(last4)
            .bind(card.exp_month)
            .bind(card.exp_year)
            .bind(card::fingerprint(&h.card_key, &opened.digits))
            .execute(&mut *conn)
            .await?;
            let charge = Charge { id, user_id: req.user_id.to_string(), amount: req.amount, currency: req.currency.clone(), round: 1 };
            return attempt(h, conn, msg, order_id, req, &charge, 1, opened).await;
        }
        (decision, None) => unreachable!("{decision:?} needs an existing charge"),
    };

    let Some(opened) = open_card(h, req) else {
        return permanent_failure(h, conn, msg, req, "card_unreadable", UNREADABLE, Some(&charge.id)).await;
    };
    attempt(h, conn, msg, order_id, req, &charge, attempt_no, opened).await
}

const UNREADABLE: &str = "the sealed card does not open with this service's card keys (CARD_KEYS) for this order";

fn open_card(h: &CommandHandler, req: &ChargeRequest) -> Option<OpenedCard> {
    // The error says nothing about the card; it is dropped rather than logged all the same.
    card::open(&h.card_key, &req.order_id, req.card()?).ok().map(|(digits, cvc)| OpenedCard { digits, cvc })
}

/// `msg` as a copy of it may be kept or sent on once an authorization has been attempted (retry,
/// dead letter): its card without the CVC — the number resealed alone under the active key. When
/// the card does not open here, its `sealed_cvc` is dropped and a versioned `sealed` (the number
/// alone) kept; an unversioned one (number and CVC together) becomes `[redacted]`, and a replay
/// rebuilds the command from the order.
fn without_cvc(h: &CommandHandler, msg: &Incoming, req: &ChargeRequest) -> Incoming {
    let Some(given) = req.card().filter(|c| card::may_hold_cvc(c)) else {
        return msg.clone();
    };
    let card = card::without_cvc(&h.card_key, &req.order_id, given).unwrap_or_else(|| {
        let sealed = if card::sealed_key_id(&given.sealed).is_some() { given.sealed.clone() } else { "[redacted]".into() };
        CardRef { sealed, sealed_cvc: None, ..given.clone() }
    });
    let command = PaymentCommand::Charge {
        order_id: req.order_id.clone(),
        user_id: req.user_id.clone(),
        amount: req.amount,
        currency: req.currency.clone(),
        card: Some(card),
        account: None,
    };
    Incoming { payload: Some(serde_json::to_string(&command).expect("commands serialise")), ..msg.clone() }
}

/// The command's own fields (not the card): a sender's bug, never the shopper's.
fn check_request(req: &ChargeRequest) -> Result<(), String> {
    let id_ok = |s: &str| !s.is_empty() && s.len() <= 128;
    if !id_ok(&req.order_id) || !id_ok(&req.user_id) {
        return Err("order_id and user_id must be 1-128 characters".into());
    }
    if req.amount <= Decimal::ZERO || req.amount > money::max_amount() || req.amount.normalize().scale() > money::SCALE {
        return Err(format!("amount {} must be positive with at most {} decimals", req.amount, money::SCALE));
    }
    if req.currency.len() != 3 || !req.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err("currency must be a three-letter ISO 4217 code".into());
    }
    Ok(())
}

/// Calls the acquirer for attempt `n` of the charge's current round and acts on the answer.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    h: &CommandHandler,
    conn: &mut MySqlConnection,
    msg: &Incoming,
    order_id: &str,
    req: &ChargeRequest,
    charge: &Charge,
    n: u32,
    opened: OpenedCard,
) -> Result<Vec<Outgoing>, HandleError> {
    let now = Utc::now();
    let today = (now.year() as u16, now.month() as u8);
    let (exp_month, exp_year) = req.card().map(|c| (c.exp_month, c.exp_year)).unwrap_or_default();
    let answer = match card::validate_stored(&opened.digits, exp_month, exp_year, opened.cvc.as_deref(), today) {
        Err(problem) => Answer::Declined(problem.code),
        Ok(()) => {
            let earlier: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM charge_attempts WHERE order_id = ?").bind(order_id).fetch_one(&mut *conn).await?;
            let down = outage::is_on(conn).await?;
            let attempt_of_order = u32::try_from(earlier).unwrap_or(u32::MAX).saturating_add(1);
            acquirer::authorize(&opened.digits, opened.cvc.as_deref(), attempt_of_order, down)
        }
    };
    drop(opened);

    let (outcome, error) = match answer {
        Answer::Approved => ("approved", None),
        Answer::Declined(code) => ("declined", Some(code)),
        Answer::Transient(code) => ("transient", Some(code)),
    };
    sqlx::query("INSERT INTO charge_attempts (order_id, round, attempt, outcome, error) VALUES (?, ?, ?, ?, ?)")
        .bind(order_id)
        .bind(charge.round)
        .bind(n)
        .bind(outcome)
        .bind(error)
        .execute(&mut *conn)
        .await?;
    metrics::counter!("payment_charge_attempts_total", "outcome" => outcome).increment(1);
    tracing::info!(order_id, round = charge.round, attempt = n, outcome, error, "charge attempt");

    match answer {
        Answer::Approved => {
            let customer = ledger::ensure_customer(conn, &charge.user_id).await?;
            ledger::transfer(conn, order_id, "capture", &charge.currency, &customer, ledger::MERCHANT, charge.amount).await?;
            set_status(conn, &charge.id, "succeeded", None, None).await?;
            let reply = PaymentReply::Charged {
                order_id: req.order_id.clone(),
                charge_id: charge.id.clone(),
                amount: ledger::canonical(charge.amount),
                currency: Some(charge.currency.clone()),
            };
            Ok(vec![h.reply(msg, &reply)])
        }
        Answer::Declined(code) => {
            set_status(conn, &charge.id, "declined", Some(code), None).await?;
            Ok(vec![h.reply(msg, &PaymentReply::Declined { order_id: req.order_id.clone(), reason: code.into() })])
        }
        // Whatever is kept or sent on from here (the retry, the dead letter) carries the card without its CVC.
        Answer::Transient(code) => match (h.retry.decide(n), &without_cvc(h, msg, req)) {
            (Decision::Retry { next_attempt, delay }, msg) => {
                sqlx::query("UPDATE charges SET failure_reason = ? WHERE id = ?").bind(code).bind(&charge.id).execute(&mut *conn).await?;
                let due_at = Utc::now() + delay;
                tracing::info!(order_id, next_attempt, delay_ms = delay.as_millis() as u64, "transient failure; retry scheduled");
                Ok(vec![retry::retry_message(&h.retry_topic, msg, next_attempt, due_at)])
            }
            (Decision::GiveUp, msg) => {
                let reason = format!("{code}: the acquirer failed transiently on all {n} attempts");
                set_status(conn, &charge.id, "failed", None, Some(&reason)).await?;
                let first_failure: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT MIN(at) FROM charge_attempts WHERE order_id = ? AND round = ? AND outcome = 'transient'",
                )
                .bind(order_id)
                .bind(charge.round)
                .fetch_one(&mut *conn)
                .await?;
                let dead = inbox::dead_letter_message(
                    &h.dlq_topic,
                    SERVICE,
                    msg,
                    retry_policy::ERROR_CLASS,
                    &reason,
                    n,
                    first_failure.unwrap_or(now),
                )
                .header("dlq.order_id", order_id);
                metrics::counter!("dead_letters_total", "service" => SERVICE, "class" => retry_policy::ERROR_CLASS).increment(1);
                tracing::warn!(order_id, attempts = n, error = code, "charge dead-lettered after its retry budget");
                let reply = PaymentReply::Failed {
                    order_id: req.order_id.clone(),
                    error_class: retry_policy::ERROR_CLASS.into(),
                    reason,
                    attempts: n,
                };
                Ok(vec![dead, h.reply(msg, &reply)])
            }
        },
    }
}

async fn attempts_in_round(conn: &mut MySqlConnection, order_id: &str, round: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM charge_attempts WHERE order_id = ? AND round = ?")
        .bind(order_id)
        .bind(round)
        .fetch_one(conn)
        .await
}

async fn set_status(
    conn: &mut MySqlConnection,
    charge_id: &str,
    status: &str,
    decline_code: Option<&str>,
    failure_reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE charges SET status = ?, decline_code = ?, failure_reason = ? WHERE id = ?")
        .bind(status)
        .bind(decline_code)
        .bind(failure_reason)
        .bind(charge_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A command that can never succeed as sent (invalid fields, a card that does not open): parked on
/// the dead-letter topic for an operator, and answered `failed` so the saga does not wait forever.
async fn permanent_failure(
    h: &CommandHandler,
    conn: &mut MySqlConnection,
    msg: &Incoming,
    req: &ChargeRequest,
    error_class: &str,
    reason: &str,
    stored_charge_id: Option<&str>,
) -> Result<Vec<Outgoing>, HandleError> {
    let order_id = req.order_id.as_str();
    let kept = without_cvc(h, msg, req);
    let msg = &kept;
    if let Some(charge_id) = stored_charge_id {
        set_status(conn, charge_id, "failed", None, Some(reason)).await?;
    }
    tracing::warn!(order_id, error_class, reason, "charge command dead-lettered");
    metrics::counter!("dead_letters_total", "service" => SERVICE, "class" => error_class.to_string()).increment(1);
    let dead = inbox::dead_letter_message(&h.dlq_topic, SERVICE, msg, error_class, reason, 1, Utc::now()).header("dlq.order_id", order_id);
    let reply = PaymentReply::Failed { order_id: req.order_id.clone(), error_class: error_class.into(), reason: reason.into(), attempts: 0 };
    Ok(vec![dead, h.reply(msg, &reply)])
}

/// One acquirer call (or validation refusal) as `GET /charges/{order_id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub round: u32,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// `approved`, `declined` or `transient`.
    pub outcome: String,
    pub error: Option<String>,
}

/// The bank account a charge is paid from.
#[derive(Debug, Serialize, ToSchema)]
pub struct BankAccountView {
    /// The bank's 3-digit code.
    pub bank: String,
    pub account_id: String,
}

/// A charge. Card fields are display-only: the PAN and CVC are never stored. A charge paid from a
/// bank account (`method: "account"`) has `account` instead of the card fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeView {
    pub charge_id: String,
    pub order_id: String,
    pub user_id: String,
    /// `pending`, `succeeded`, `declined`, `failed`, `refunding` (account charges), `refunded` or `voided`.
    pub status: String,
    /// `card` or `account`.
    pub method: String,
    #[serde(serialize_with = "money::serialize")]
    #[schema(value_type = String, example = "19.99")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp_month: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp_year: Option<u16>,
    /// Keyed HMAC of the card number: equal cards match, the number cannot be recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<BankAccountView>,
    pub decline_code: Option<String>,
    pub failure_reason: Option<String>,
    /// Amount refunded, when a refund has been recorded.
    #[serde(serialize_with = "serialize_opt_money", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub refunded_amount: Option<Decimal>,
    /// The current round of attempts (a replay of a dead-lettered charge starts a new one).
    pub round: u32,
    pub attempts: Vec<AttemptView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn serialize_opt_money<S: serde::Serializer>(amount: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match amount {
        Some(a) => money::serialize(a, s),
        None => s.serialize_none(),
    }
}

/// The charge of order `order_id` with every attempt, if `caller` may see it (their own; admins:
/// any). `None` when there is none or it is another user's, as if it did not exist.
pub async fn load_view(pool: &MySqlPool, caller: &Caller, order_id: &str) -> sqlx::Result<Option<ChargeView>> {
    let mut conn = pool.acquire().await?;
    let Some(row) = sqlx::query(
        "SELECT c.id, c.order_id, CAST(c.user_id AS CHAR) AS user_id, c.status, c.method, c.amount, c.currency, c.brand, c.last4, c.exp_month, c.exp_year, \
                c.fingerprint, c.account_bank, c.account_id, c.decline_code, c.failure_reason, c.round, c.created_at, c.updated_at, r.amount AS refunded \
         FROM charges c LEFT JOIN refunds r ON r.order_id = c.order_id WHERE c.order_id = ?",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?
    .filter(|row| caller.may_see(row.get::<&str, _>("user_id")))
    else {
        return Ok(None);
    };
    let attempts = sqlx::query("SELECT round, attempt, at, outcome, error FROM charge_attempts WHERE order_id = ? ORDER BY id")
        .bind(order_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| AttemptView { round: r.get("round"), attempt: r.get("attempt"), at: r.get("at"), outcome: r.get("outcome"), error: r.get("error") })
        .collect();
    Ok(Some(ChargeView {
        charge_id: row.get("id"),
        order_id: row.get("order_id"),
        user_id: row.get("user_id"),
        status: row.get("status"),
        method: row.get("method"),
        amount: row.get("amount"),
        currency: row.get("currency"),
        brand: row.get("brand"),
        last4: row.get("last4"),
        exp_month: row.get("exp_month"),
        exp_year: row.get("exp_year"),
        fingerprint: row.get("fingerprint"),
        account: match (row.get::<Option<String>, _>("account_bank"), row.get::<Option<String>, _>("account_id")) {
            (Some(bank), Some(account_id)) => Some(BankAccountView { bank, account_id }),
            _ => None,
        },
        decline_code: row.get("decline_code"),
        failure_reason: row.get("failure_reason"),
        refunded_amount: row.get("refunded"),
        round: row.get("round"),
        attempts,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }))
}
