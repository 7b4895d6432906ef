//! Abandon: give up on a dead letter for good. A parked (FAILED) order is compensated — its
//! reservation released, a capture (if any) refunded — and ends COMPENSATED; the dead letter is
//! marked ABANDONED in the same transaction.

use sqlx::MySqlConnection;

use super::{ABANDONED, Outcome, PENDING, store};
use crate::{
    orders,
    saga::{self, SagaContext, machine::{Capture, OrderStatus, SagaEvent}},
};

/// Abandons dead letter `id` in the caller's transaction; returns the outcome and whether it
/// enqueued messages.
pub async fn abandon_one(conn: &mut MySqlConnection, ctx: &SagaContext, id: u64) -> sqlx::Result<(Outcome, bool)> {
    let Some(dl) = store::lock(conn, id).await? else { return Ok((Outcome::new(id, "not_found", "no such dead letter"), false)) };
    if dl.status != PENDING {
        return Ok((Outcome::skipped(id, format!("dead letter is {}; only PENDING ones are abandoned", dl.status)), false));
    }
    if let Some(c) = &dl.compensation {
        // Abandoning it would only hide the step its order (or the bank's hold) still waits on.
        return Ok((Outcome::skipped(id, format!("it carries a {c} (a compensation step): replay it, or resolve it once handled by hand")), false));
    }
    let order = match &dl.order_id {
        Some(order_id) => orders::lock(conn, order_id).await?,
        None => None,
    };
    let (detail, out) = match order {
        None => ("no order to compensate".to_string(), vec![]),
        Some(o) if o.is_terminal() => (format!("order {} is already {}; nothing to compensate", o.id, o.status), vec![]),
        Some(o) if o.compensating == 1 => (format!("order {} is already being compensated (its compensation letters are replayed or resolved)", o.id), vec![]),
        Some(o) if o.status() == Some(OrderStatus::Failed) => {
            let refunds = o.saga_state().is_ok_and(|s| s.capture == Capture::Captured);
            let order_id = o.id.clone();
            let driven = saga::drive(conn, ctx, o, SagaEvent::Abandoned { dead_letter: id }).await?;
            (format!("order {order_id} compensation started (release reservation{})", if refunds { ", refund" } else { "" }), driven.messages)
        }
        Some(o) => {
            return Ok((Outcome::skipped(id, format!("order {} is {}; only a parked (FAILED) order is abandoned", o.id, o.status)), false));
        }
    };
    for m in &out {
        sagaway_messaging::outbox::enqueue(conn, m).await?;
    }
    store::set_status(conn, id, ABANDONED, &detail).await?;
    metrics::counter!("dlq_abandoned_total").increment(1);
    Ok((Outcome::new(id, "abandoned", detail), !out.is_empty()))
}
