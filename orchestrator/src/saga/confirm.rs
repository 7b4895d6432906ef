//! Step 4: the product service answered the confirm. Confirmed → COMPLETED. The hold lapsed or was
//! released before the sale could be confirmed → compensate: refund the capture.

use sagaway_common::{messages::ProductReply, outbox::Outgoing};
use sqlx::MySqlConnection;

use super::{SagaTopics, compensate};
use crate::orders;

pub async fn on_reply(conn: &mut MySqlConnection, t: &SagaTopics, reply: ProductReply) -> sqlx::Result<Vec<Outgoing>> {
    let order_id = match &reply {
        ProductReply::ReservationConfirmed { order_id, .. } | ProductReply::ReservationConfirmFailed { order_id, .. } => order_id.clone(),
        _ => unreachable!("routed by the saga handler"),
    };
    let Some(mut order) = orders::lock(conn, &order_id).await? else { return Ok(vec![]) };
    if order.status != orders::PAID || order.compensating == 1 {
        return Ok(vec![]);
    }
    match reply {
        ProductReply::ReservationConfirmed { .. } => Ok(vec![orders::set_status(conn, &mut order, orders::COMPLETED, None, &t.order_events).await?]),
        ProductReply::ReservationConfirmFailed { reason, .. } => {
            // Nothing is held any more (the hold lapsed or was released), so only the refund remains.
            compensate::begin(conn, t, &mut order, false, &format!("reservation_{reason}")).await
        }
        _ => Ok(vec![]),
    }
}
