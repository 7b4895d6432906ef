//! Refunds (the saga's compensation of a capture). One row per order (UNIQUE order_id):
//! - a succeeded charge not yet refunded → a reversing journal entry (merchant → customer), the
//!   refund row, the charge marked `refunded`, and `refunded {amount}`;
//! - anything else → `refunded {amount: "0.00"}`, moving no money. The first such refund still
//!   leaves a zero-amount row behind, and a charge still pending (retries in flight) or parked
//!   (`failed`) is marked `voided`, so a retry or replay arriving after the compensation can never
//!   capture money for an order the saga has already given up.

use rust_decimal::Decimal;
use sagaway_common::messages::PaymentReply;
use sqlx::{MySqlConnection, Row};
use uuid::Uuid;

use crate::ledger;

/// Applies a refund command in `conn`'s transaction and returns the reply.
pub async fn refund(conn: &mut MySqlConnection, order_id: &str, user_id: &str, reason: &str) -> sqlx::Result<PaymentReply> {
    let nothing = || PaymentReply::Refunded { order_id: order_id.into(), amount: Decimal::new(0, 2) };
    let charge = sqlx::query("SELECT id, CAST(user_id AS CHAR) AS user_id, status, amount, currency FROM charges WHERE order_id = ? FOR UPDATE")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
    let already: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM refunds WHERE order_id = ? FOR UPDATE").bind(order_id).fetch_optional(&mut *conn).await?;
    if already.is_some() {
        tracing::info!(order_id, "refund already recorded; nothing more to refund");
        return Ok(nothing());
    }
    let reason: String = reason.chars().take(255).collect();
    let Some(charge) = charge else {
        record(conn, order_id, None, Decimal::ZERO, None, &reason).await?;
        return Ok(nothing());
    };
    let charge_id: String = charge.get("id");
    let status: String = charge.get("status");
    if status != "succeeded" {
        if matches!(status.as_str(), "pending" | "failed") {
            sqlx::query("UPDATE charges SET status = 'voided' WHERE id = ?").bind(&charge_id).execute(&mut *conn).await?;
        }
        record(conn, order_id, Some(&charge_id), Decimal::ZERO, None, &reason).await?;
        return Ok(nothing());
    }
    let amount: Decimal = charge.get("amount");
    let currency: String = charge.get("currency");
    // The capture came from the charge's customer; the refund goes back there whoever asks.
    let customer = ledger::ensure_customer(conn, &charge.get::<String, _>("user_id")).await?;
    if charge.get::<String, _>("user_id") != user_id {
        tracing::warn!(order_id, "refund command names another user than the charge; refunding the charge's customer");
    }
    ledger::transfer(conn, order_id, "refund", &currency, ledger::MERCHANT, &customer, amount).await?;
    record(conn, order_id, Some(&charge_id), amount, Some(&currency), &reason).await?;
    sqlx::query("UPDATE charges SET status = 'refunded' WHERE id = ?").bind(&charge_id).execute(&mut *conn).await?;
    metrics::counter!("payment_refunds_total").increment(1);
    tracing::info!(order_id, "capture refunded");
    Ok(PaymentReply::Refunded { order_id: order_id.into(), amount: ledger::canonical(amount) })
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
