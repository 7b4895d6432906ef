//! Replay: put a dead-lettered message back on its original topic, with its original key, through
//! the outbox — in ONE transaction with the dead letter's REPLAYED mark and, for a parked charge,
//! the order's FAILED → PAYMENT_PENDING transition (with history). The copy carries
//! [`super::REPLAY_OF`] and no `retry.attempt` header, so the consumer treats it as attempt 1 of a
//! fresh budget.
//!
//! Why a replay cannot double-charge: a dead letter is replayed at most once (PENDING → REPLAYED
//! under its row lock); an order that is terminal, being compensated, or not parked is never
//! replayed; and the payment processor keeps one charge per order, re-answering a charge that
//! already succeeded instead of capturing again.
//!
//! A compensation letter ([`super::kind`]: a release, refund or void that was given up on) is
//! replayed while its order still waits on that step — COMPENSATING, or terminal for a late
//! capture's refund and a void at the bank — and finishes it: the participant applies it at most
//! once per order or payment (one refund row per order at the payment processor, one state per
//! payment id at the bank), so no replay refunds twice.

use sagaway_messaging::outbox::{self, MESSAGE_TYPE, Outgoing};
use sqlx::MySqlConnection;

use super::{Outcome, PENDING, REDACTED, REPLAY_OF, REPLAYED, kind::{self, Compensation}, store};
use crate::{
    orders,
    saga::{self, SagaContext, charge_command, machine::{OrderStatus, SagaEvent}},
};

/// Replays dead letter `id` inside the caller's transaction (or, with `dry_run`, says what it
/// would do and writes nothing). Returns the outcome and whether anything was enqueued.
pub async fn replay_one(conn: &mut MySqlConnection, ctx: &SagaContext, id: u64, dry_run: bool) -> sqlx::Result<(Outcome, bool)> {
    let Some(dl) = store::lock(conn, id).await? else { return Ok((Outcome::new(id, "not_found", "no such dead letter"), false)) };
    if dl.status != PENDING {
        return Ok((Outcome::skipped(id, format!("dead letter is {}; only PENDING ones are replayed", dl.status)), false));
    }
    let Some(topic) = dl.original_topic.clone() else {
        return Ok((Outcome::skipped(id, "the dead letter names no original topic"), false));
    };
    let t = &ctx.topics;
    let mut payload = dl.payload.clone().unwrap_or_default();
    let is_charge = topic == t.payment_commands && dl.message_type.as_deref() == Some("charge");
    let mut order = match &dl.order_id {
        Some(order_id) => orders::lock(conn, order_id).await?,
        None => None,
    };
    let compensation = dl.compensation.as_deref().and_then(Compensation::parse);
    if let (Some(o), Some(c)) = (&order, compensation) {
        let state = o.saga_state().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        if let Err(why) = kind::replay_compensation(c, Some(&state)) {
            return Ok((Outcome::skipped(id, format!("order {}: {why}", o.id)), false));
        }
    } else if let Some(o) = &order {
        if o.is_terminal() {
            return Ok((Outcome::skipped(id, format!("order {} is already {}; nothing to replay", o.id, o.status)), false));
        }
        if o.compensating == 1 {
            return Ok((Outcome::skipped(id, format!("order {} is being compensated", o.id)), false));
        }
        if is_charge && o.status() != Some(OrderStatus::Failed) {
            // Its saga is still running (or the `failed` reply is not in yet): a replay would race it.
            return Ok((Outcome::skipped(id, format!("order {} is {}, not parked (FAILED)", o.id, o.status)), false));
        }
        if is_charge && payload.contains(REDACTED) {
            // Redaction can cut into the sealed card or fingerprint; the order still has the
            // command's exact fields, so rebuild it rather than replay a damaged copy.
            match charge_command(o) {
                Some(cmd) => payload = serde_json::to_string(&cmd).expect("commands serialise"),
                None => return Ok((Outcome::skipped(id, format!("order {} no longer holds its sealed card", o.id)), false)),
            }
        }
    }
    if payload.contains(REDACTED) && !(is_charge && order.is_some()) {
        // Digits were cut out of it (a card number, or an id that looked like one): publishing the
        // damaged copy could only fail again, or worse, act on a wrong id.
        return Ok((Outcome::skipped(id, "the payload was redacted and cannot be rebuilt; replay is unsafe — abandon or purge it"), false));
    }
    let key = dl.original_key.clone().unwrap_or_default();
    let moves_order = is_charge && order.as_ref().is_some_and(|o| o.status() == Some(OrderStatus::Failed));
    let what = format!(
        "to {topic} with key {key:?}{}{}",
        if moves_order { format!("; order {} FAILED → PAYMENT_PENDING", dl.order_id.as_deref().unwrap_or_default()) } else { String::new() },
        match (compensation, &dl.order_id) {
            (Some(c), Some(o)) => format!("; finishes the {} of order {o}", c.as_str()),
            (Some(c), None) => format!("; a {}", c.as_str()),
            _ => String::new(),
        }
    );
    if dry_run {
        return Ok((Outcome::new(id, "would_replay", format!("would publish {what}")), false));
    }
    if moves_order && let Some(o) = order.take() {
        let driven = saga::drive(conn, ctx, o, SagaEvent::Replayed { dead_letter: id }).await?;
        outbox::enqueue_all(conn, &driven.messages).await?;
    }
    let mut copy = Outgoing { topic, key, payload, headers: vec![] };
    if let Some(kind) = &dl.message_type {
        copy = copy.header(MESSAGE_TYPE, kind.clone());
    }
    copy = copy.header(REPLAY_OF, id.to_string());
    let message_id = outbox::enqueue(conn, &copy).await?;
    sqlx::query("UPDATE dead_letters SET status = ?, status_reason = ?, replay_message_id = ? WHERE id = ?")
        .bind(REPLAYED)
        .bind(store::truncate(&format!("replayed {what}"), 255))
        .bind(message_id.to_string())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    metrics::counter!("dlq_replayed_total").increment(1);
    Ok((Outcome::new(id, "replayed", format!("published {what} as message {message_id}")), true))
}
