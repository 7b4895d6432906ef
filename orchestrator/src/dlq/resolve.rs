//! Resolve: an operator marks a PENDING dead letter handled (RESOLVED), with a reason that is kept
//! in `status_reason` and the audit trail. Nothing is published. For a compensation letter whose
//! order still waits on its step ([`super::kind::resolution`]), the operator says the step was
//! settled by hand (the stock put back, the money refunded outside Sagaway): the saga marks it
//! done and the order ends COMPENSATED once nothing else is awaited — in the same transaction as
//! the RESOLVED mark. A parked order's charge letter is not resolved (replay or abandon it).

use sqlx::MySqlConnection;

use super::{Outcome, PENDING, RESOLVED, kind::{self, Compensation, Resolution}, store};
use crate::{
    orders,
    saga::{self, SagaContext, machine::{SagaEvent, Settled}},
};

/// Resolves dead letter `id` inside the caller's transaction for `operator` with `reason` (or,
/// with `dry_run`, says what it would do). Returns the outcome and whether it enqueued messages.
pub async fn resolve_one(conn: &mut MySqlConnection, ctx: &SagaContext, id: u64, operator: &str, reason: &str, dry_run: bool) -> sqlx::Result<(Outcome, bool)> {
    let Some(dl) = store::lock(conn, id).await? else { return Ok((Outcome::new(id, "not_found", "no such dead letter"), false)) };
    if dl.status != PENDING {
        return Ok((Outcome::skipped(id, format!("dead letter is {}; only PENDING ones are resolved", dl.status)), false));
    }
    let compensation = dl.compensation.as_deref().and_then(Compensation::parse);
    let is_charge = dl.original_topic.as_deref() == Some(ctx.topics.payment_commands.as_str()) && dl.message_type.as_deref() == Some("charge");
    let order = match &dl.order_id {
        Some(order_id) => orders::lock(conn, order_id).await?,
        None => None,
    };
    let state = order.as_ref().map(|o| o.saga_state()).transpose().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let resolution = kind::resolution(compensation, is_charge, state.as_ref());
    let mut detail = match &resolution {
        Resolution::Refuse(why) => return Ok((Outcome::skipped(id, why.clone()), false)),
        Resolution::Mark => "marked handled; the order is not touched".to_string(),
        Resolution::Settle(step) => {
            let what = match step {
                Settled::Release => "release",
                Settled::Refund => "refund",
            };
            format!("the order's {what} is marked settled by hand")
        }
    };
    if dry_run {
        return Ok((Outcome::new(id, "would_resolve", format!("would resolve: {detail}")), false));
    }
    let mut enqueued = false;
    if let (Resolution::Settle(step), Some(o)) = (resolution, order) {
        let order_id = o.id.clone();
        let driven = saga::drive(conn, ctx, o, SagaEvent::CompensationResolved { dead_letter: id, step }).await?;
        if let Some(refused) = driven.refused {
            // (The row lock makes this unreachable: `resolution` read the same state.)
            return Ok((Outcome::skipped(id, format!("order {order_id}: {refused}")), false));
        }
        if let Some(status) = orders::load(conn, order_id.as_str()).await?.map(|o| o.status) {
            detail.push_str(&format!("; order {order_id} is {status}"));
        }
        enqueued = !driven.messages.is_empty();
        sagaway_messaging::outbox::enqueue_all(conn, &driven.messages).await?;
    }
    store::set_status(conn, id, RESOLVED, &format!("resolved by {operator}: {reason}")).await?;
    metrics::counter!("dlq_resolved_total").increment(1);
    Ok((Outcome::new(id, "resolved", detail), enqueued))
}
