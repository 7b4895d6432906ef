//! Step 5: compensation. Undo what the saga did, in any order the replies arrive: release the
//! reservation (if we still hold it) and refund the capture (if there was one). When nothing is
//! awaited any more, the order is COMPENSATED.

use rust_decimal::Decimal;
use sagaway_common::{
    messages::{PaymentCommand, ProductCommand},
    outbox::Outgoing,
};
use sqlx::MySqlConnection;

use super::SagaTopics;
use crate::orders::{self, Order};

/// Starts compensating `order` for `reason`: releases its hold when `release`, refunds when it was captured.
pub async fn begin(conn: &mut MySqlConnection, t: &SagaTopics, order: &mut Order, release: bool, reason: &str) -> sqlx::Result<Vec<Outgoing>> {
    let refund = order.captured == 1;
    sqlx::query("UPDATE orders SET compensating = 1, awaiting_release = ?, awaiting_refund = ?, reason = COALESCE(reason, ?) WHERE id = ?")
        .bind(release)
        .bind(refund)
        .bind(reason)
        .bind(&order.id)
        .execute(&mut *conn)
        .await?;
    order.compensating = 1;
    order.awaiting_release = release as i8;
    order.awaiting_refund = refund as i8;
    let mut out = Vec::new();
    if release {
        let cmd = ProductCommand::ReleaseReservation {
            order_id: order.id.clone(),
            reservation_id: order.reservation_id.clone(),
            reason: reason.to_string(),
        };
        out.push(Outgoing::json(&t.product_commands, &order.user_id, cmd.kind(), &cmd));
    }
    if refund {
        out.push(refund_command(t, order, reason));
    }
    out.extend(finish_if_done(conn, t, order, reason).await?);
    Ok(out)
}

/// Refunds a capture outside a running compensation (a late capture after the order moved on).
pub async fn refund(conn: &mut MySqlConnection, t: &SagaTopics, order: &mut Order, reason: &str) -> sqlx::Result<Vec<Outgoing>> {
    sqlx::query("UPDATE orders SET awaiting_refund = 1 WHERE id = ?").bind(&order.id).execute(&mut *conn).await?;
    order.awaiting_refund = 1;
    Ok(vec![refund_command(t, order, reason)])
}

fn refund_command(t: &SagaTopics, order: &Order, reason: &str) -> Outgoing {
    let cmd = PaymentCommand::Refund { order_id: order.id.clone(), user_id: order.user_id.clone(), reason: reason.to_string() };
    Outgoing::json(&t.payment_commands, &order.user_id, cmd.kind(), &cmd)
}

pub async fn on_released(conn: &mut MySqlConnection, t: &SagaTopics, order_id: &str, status: &str) -> sqlx::Result<Vec<Outgoing>> {
    let Some(mut order) = orders::lock(conn, order_id).await? else { return Ok(vec![]) };
    if order.awaiting_release == 0 {
        if status == "EXPIRED" && order.status == orders::FAILED && order.compensating == 0 {
            // The product service says a parked order's hold lapsed: nothing is held any more, so
            // compensate what remains (a refund, if a capture ever landed) → COMPENSATED.
            tracing::info!(order_id, "reservation of a parked order expired; compensating");
            return begin(conn, t, &mut order, false, "reservation_expired").await;
        }
        return Ok(vec![]);
    }
    tracing::info!(order_id, reservation_status = status, "reservation released for compensation");
    sqlx::query("UPDATE orders SET awaiting_release = 0 WHERE id = ?").bind(order_id).execute(&mut *conn).await?;
    order.awaiting_release = 0;
    let reason = order.reason.clone().unwrap_or_default();
    finish_if_done(conn, t, &mut order, &reason).await
}

pub async fn on_refunded(conn: &mut MySqlConnection, t: &SagaTopics, order_id: &str, amount: Decimal) -> sqlx::Result<Vec<Outgoing>> {
    let Some(mut order) = orders::lock(conn, order_id).await? else { return Ok(vec![]) };
    if order.awaiting_refund == 0 {
        return Ok(vec![]);
    }
    tracing::info!(order_id, %amount, "capture refunded");
    sqlx::query("UPDATE orders SET awaiting_refund = 0 WHERE id = ?").bind(order_id).execute(&mut *conn).await?;
    order.awaiting_refund = 0;
    let reason = order.reason.clone().unwrap_or_default();
    finish_if_done(conn, t, &mut order, &reason).await
}

async fn finish_if_done(conn: &mut MySqlConnection, t: &SagaTopics, order: &mut Order, reason: &str) -> sqlx::Result<Vec<Outgoing>> {
    if order.compensating == 1 && order.awaiting_release == 0 && order.awaiting_refund == 0 && order.status != orders::COMPENSATED {
        let reason = (!reason.is_empty()).then_some(reason);
        return Ok(vec![orders::set_status(conn, order, orders::COMPENSATED, reason, &t.order_events).await?]);
    }
    Ok(vec![])
}
