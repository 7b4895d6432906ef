//! Step 3: the payment processor answered the charge.
//! Charged → PAID and confirm the sale; declined → DECLINED and compensate (release the hold);
//! failed after its retry budget (dead-lettered) → FAILED, parked: the hold stays until an
//! operator replays or abandons it, or it expires.

use sagaway_common::{
    messages::{PaymentReply, ProductCommand},
    outbox::Outgoing,
};
use sqlx::MySqlConnection;

use super::{SagaTopics, compensate};
use crate::orders;

pub async fn on_reply(conn: &mut MySqlConnection, t: &SagaTopics, reply: PaymentReply) -> sqlx::Result<Vec<Outgoing>> {
    let order_id = match &reply {
        PaymentReply::Charged { order_id, .. } | PaymentReply::Declined { order_id, .. } | PaymentReply::Failed { order_id, .. } => {
            order_id.clone()
        }
        PaymentReply::Refunded { .. } => unreachable!("routed by the saga handler"),
    };
    let Some(mut order) = orders::lock(conn, &order_id).await? else { return Ok(vec![]) };
    // FAILED orders may be replayed by an operator, so their charge can still answer.
    let awaiting_charge = order.status == orders::PAYMENT_PENDING || order.status == orders::FAILED;
    let mut out = Vec::new();
    match reply {
        PaymentReply::Charged { .. } if awaiting_charge => {
            sqlx::query("UPDATE orders SET captured = 1 WHERE id = ?").bind(&order.id).execute(&mut *conn).await?;
            out.push(orders::set_status(conn, &mut order, orders::PAID, None, &t.order_events).await?);
            let cmd = ProductCommand::ConfirmReservation { order_id: order.id.clone(), reservation_id: order.reservation_id.clone() };
            out.push(Outgoing::json(&t.product_commands, &order.user_id, cmd.kind(), &cmd));
        }
        PaymentReply::Charged { .. } if order.captured == 0 => {
            // A capture the saga no longer wanted (the order was abandoned or compensated first):
            // give the money back.
            tracing::warn!(order_id = %order.id, status = %order.status, "late capture; refunding it");
            sqlx::query("UPDATE orders SET captured = 1 WHERE id = ?").bind(&order.id).execute(&mut *conn).await?;
            order.captured = 1;
            out.extend(compensate::refund(conn, t, &mut order, "late_capture").await?);
        }
        PaymentReply::Declined { reason, .. } if awaiting_charge => {
            out.push(orders::set_status(conn, &mut order, orders::DECLINED, Some(&reason), &t.order_events).await?);
            out.extend(compensate::begin(conn, t, &mut order, true, &reason).await?);
        }
        PaymentReply::Failed { error_class, reason, attempts, .. } if order.status == orders::PAYMENT_PENDING => {
            let why = format!("{error_class} after {attempts} attempts: {reason}");
            out.push(orders::set_status(conn, &mut order, orders::FAILED, Some(&why), &t.order_events).await?);
        }
        _ => {} // a duplicate or late answer: the order has moved on
    }
    Ok(out)
}
