//! Refunds (the saga's compensation of a capture). One row per order (UNIQUE order_id):
//! - a succeeded charge not yet refunded → a reversing journal entry (merchant → customer), the
//!   refund row, the charge marked `refunded`, and `refunded {amount}`;
//! - anything else → `refunded {amount: "0.00"}`, moving no money. The first such refund still
//!   leaves a zero-amount row behind, and a charge still pending (retries in flight) or parked
//!   (`failed`) is marked `voided`, so a retry or replay arriving after the compensation can never
//!   capture money for an order the saga has already given up.
//!
//! A charge paid from a bank account is refunded by the bank: a succeeded one becomes `refunding`
//! and the bank is asked to refund it; the reply waits for the bank's `refunded`
//! ([`crate::bank::finish_refund`], which then records the refund exactly as above). A pending one
//! is voided here and its hold voided at the bank (sent after the hold, on the same key, so the bank
//! sees them in that order).

use rust_decimal::Decimal;
use sagaway_messaging::{inbox::{HandleError, Incoming}, outbox::Outgoing};
use sagaway_contract::{ids::OrderId, messages::PaymentReply};
use sqlx::{MySqlConnection, Row};
use uuid::Uuid;

use crate::{bank, context::CommandHandler, ledger};

/// Applies a refund command in `conn`'s transaction and returns what to publish: the reply, or,
/// for an account charge the bank must refund, the command to the bank (the reply follows the bank's).
pub async fn refund(h: &CommandHandler, conn: &mut MySqlConnection, msg: &Incoming, order: &OrderId, user_id: &str, reason: &str) -> Result<Vec<Outgoing>, HandleError> {
    let order_id = order.as_str();
    let nothing = |h: &CommandHandler| h.reply(msg, &PaymentReply::Refunded { order_id: order.clone(), amount: Decimal::new(0, 2) });
    let charge = sqlx::query(
        "SELECT id, CAST(user_id AS CHAR) AS user_id, status, method, account_id, amount, currency FROM charges WHERE order_id = ? FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    let already: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM refunds WHERE order_id = ? FOR UPDATE").bind(order_id).fetch_optional(&mut *conn).await?;
    if already.is_some() {
        tracing::info!(order_id, "refund already recorded; nothing more to refund");
        return Ok(vec![nothing(h)]);
    }
    let reason: String = reason.chars().take(255).collect();
    let Some(charge) = charge else {
        record(conn, order_id, None, Decimal::ZERO, None, &reason).await?;
        return Ok(vec![nothing(h)]);
    };
    let charge_id: String = charge.get("id");
    let status: String = charge.get("status");
    let account: Option<String> = charge.get("account_id");
    let by_account = charge.get::<String, _>("method") == bank::METHOD;
    if status == "refunding" {
        // The bank was asked already; its `refunded` answers this command too.
        tracing::info!(order_id, "account refund already asked of the bank; its answer will reply");
        return Ok(vec![]);
    }
    if status != "succeeded" {
        let mut out = Vec::new();
        if matches!(status.as_str(), "pending" | "failed") {
            sqlx::query("UPDATE charges SET status = 'voided' WHERE id = ?").bind(&charge_id).execute(&mut *conn).await?;
            if let (true, Some(account)) = (by_account, &account) {
                // Release the hold; should the capture have got there first, its `captured` is
                // refunded as a late capture ([`crate::lifecycle::on_bank_reply`]).
                out.push(bank::void(h, order_id, account));
            }
        }
        record(conn, order_id, Some(&charge_id), Decimal::ZERO, None, &reason).await?;
        out.push(nothing(h));
        return Ok(out);
    }
    if charge.get::<String, _>("user_id") != user_id {
        tracing::warn!(order_id, "refund command names another user than the charge; refunding the charge's customer");
    }
    if by_account {
        let account = account.ok_or_else(|| HandleError::Transient(anyhow::anyhow!("account charge of order {order_id} has no account")))?;
        sqlx::query("UPDATE charges SET status = 'refunding', refund_reason = ? WHERE id = ?").bind(&reason).bind(&charge_id).execute(&mut *conn).await?;
        tracing::info!(order_id, "asking the bank to refund the account charge");
        return Ok(vec![bank::refund(h, order_id, &account)]);
    }
    let amount: Decimal = charge.get("amount");
    let currency: String = charge.get("currency");
    let reply = settle(conn, order, &charge_id, &charge.get::<String, _>("user_id"), amount, &currency, &reason).await?;
    Ok(vec![h.reply(msg, &reply)])
}

/// Records a refund of a succeeded charge (ledger, refund row, status `refunded`) and returns the
/// reply. The capture came from the charge's customer; the refund goes back there whoever asks.
pub async fn settle(
    conn: &mut MySqlConnection,
    order: &OrderId,
    charge_id: &str,
    user_id: &str,
    amount: Decimal,
    currency: &str,
    reason: &str,
) -> sqlx::Result<PaymentReply> {
    let order_id = order.as_str();
    let customer = ledger::ensure_customer(conn, user_id).await?;
    ledger::transfer(conn, order_id, "refund", currency, ledger::MERCHANT, &customer, amount).await?;
    record(conn, order_id, Some(charge_id), amount, Some(currency), reason).await?;
    sqlx::query("UPDATE charges SET status = 'refunded' WHERE id = ?").bind(charge_id).execute(&mut *conn).await?;
    metrics::counter!("payment_refunds_total").increment(1);
    tracing::info!(order_id, "capture refunded");
    Ok(PaymentReply::Refunded { order_id: order.clone(), amount: ledger::canonical(amount) })
}

async fn record(
    conn: &mut MySqlConnection,
    order_id: &str,
    charge_id: Option<&str>,
    amount: Decimal,
    currency: Option<&str>,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refunds (id, order_id, charge_id, amount, currency, reason) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(Uuid::now_v7().to_string())
        .bind(order_id)
        .bind(charge_id)
        .bind(amount)
        .bind(currency)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}
