//! Step 1: an accepted order asks the product service to lock its reservation for it.

use sagaway_common::{messages::ProductCommand, outbox::Outgoing};
use sqlx::MySqlConnection;

use super::{OrderAccepted, SagaTopics};
use crate::orders;

pub async fn on_accepted(conn: &mut MySqlConnection, t: &SagaTopics, m: &OrderAccepted) -> sqlx::Result<Vec<Outgoing>> {
    let Some(order) = orders::lock(conn, &m.order_id).await? else {
        tracing::warn!(order_id = %m.order_id, "order_queue names an unknown order; ignored");
        return Ok(vec![]);
    };
    if order.status != orders::ACCEPTED {
        return Ok(vec![]); // already under way
    }
    let cmd = ProductCommand::LockReservation {
        order_id: order.id.clone(),
        reservation_id: order.reservation_id.clone(),
        user_id: order.user_id.clone(),
    };
    Ok(vec![Outgoing::json(&t.product_commands, &order.user_id, cmd.kind(), &cmd)])
}
