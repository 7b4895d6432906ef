//! Step 2: the product service answered the lock. Locked → PAYMENT_PENDING and the charge command
//! (amount from the reservation, card still sealed); refused → COMPENSATED (we hold nothing).

use sagaway_common::{
    messages::{CardRef, PaymentCommand, ProductReply},
    outbox::Outgoing,
};
use sqlx::MySqlConnection;

use super::{SagaTopics, compensate};
use crate::orders::{self, Order};

pub async fn on_reply(conn: &mut MySqlConnection, t: &SagaTopics, reply: ProductReply) -> sqlx::Result<Vec<Outgoing>> {
    let order_id = match &reply {
        ProductReply::ReservationLocked { order_id, .. } | ProductReply::ReservationRejected { order_id, .. } => order_id.clone(),
        _ => unreachable!("routed by the saga handler"),
    };
    let Some(mut order) = orders::lock(conn, &order_id).await? else { return Ok(vec![]) };
    if order.status != orders::ACCEPTED {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    match reply {
        ProductReply::ReservationLocked { amount, .. } => {
            out.push(orders::set_status(conn, &mut order, orders::RESERVATION_LOCKED, None, &t.order_events).await?);
            if amount != order.amount {
                // The hold's total changed under us: never charge a figure the shopper did not accept.
                out.extend(compensate::begin(conn, t, &mut order, true, "amount_mismatch").await?);
                return Ok(out);
            }
            let Some(charge) = charge_command(&order) else {
                out.extend(compensate::begin(conn, t, &mut order, true, "card_unavailable").await?);
                return Ok(out);
            };
            out.push(orders::set_status(conn, &mut order, orders::PAYMENT_PENDING, None, &t.order_events).await?);
            out.push(Outgoing::json(&t.payment_commands, &order.user_id, charge.kind(), &charge));
        }
        ProductReply::ReservationRejected { reason, .. } => {
            out.push(orders::set_status(conn, &mut order, orders::COMPENSATED, Some(&format!("reservation_{reason}")), &t.order_events).await?);
        }
        _ => {}
    }
    Ok(out)
}

/// The charge command for an order, or `None` when its sealed card is gone.
pub fn charge_command(order: &Order) -> Option<PaymentCommand> {
    Some(PaymentCommand::Charge {
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        amount: order.amount,
        currency: order.currency.clone(),
        card: CardRef {
            brand: order.card_brand.clone(),
            last4: order.card_last4.clone(),
            exp_month: order.card_exp_month,
            exp_year: order.card_exp_year,
            fingerprint: order.card_fingerprint.clone(),
            sealed: order.card_sealed.clone()?,
        },
    })
}
