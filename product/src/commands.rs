//! The product service's part in the payment saga: it consumes `product.commands` (lock, confirm,
//! release a reservation) and answers on `product.replies`. Each command is applied in the
//! consumer's transaction (inbox + effect + outbox reply), so a redelivered command is a no-op and
//! a reply is never lost. Each operation is also idempotent on its own: replaying a confirm for the
//! order that already confirmed answers "confirmed" again.

use sagaway_common::{
    inbox::{HandleError, Handler, Incoming},
    messages::{ProductCommand, ProductReply},
    outbox::Outgoing,
};
use sqlx::MySqlConnection;

use crate::reservations::{end_hold, is_lapsed, lock_for_update};

pub struct CommandHandler {
    /// Full name of the replies topic (with the configured prefix).
    pub replies_topic: String,
}

impl Handler for CommandHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let command: ProductCommand = msg.json()?;
        let reply = apply(conn, &command).await?;
        let key = msg.key.clone().unwrap_or_default();
        Ok(vec![Outgoing::json(&self.replies_topic, key, reply.kind(), &reply)])
    }
}

/// Applies one saga command in `conn`'s transaction and returns the reply.
pub async fn apply(conn: &mut MySqlConnection, command: &ProductCommand) -> sqlx::Result<ProductReply> {
    match command {
        ProductCommand::LockReservation { order_id, reservation_id, user_id } => {
            lock(conn, order_id, reservation_id, user_id).await
        }
        ProductCommand::ConfirmReservation { order_id, reservation_id } => confirm(conn, order_id, reservation_id).await,
        ProductCommand::ReleaseReservation { order_id, reservation_id, reason } => {
            release(conn, order_id, reservation_id, reason).await
        }
    }
}

async fn lock(conn: &mut MySqlConnection, order_id: &str, reservation_id: &str, user_id: &str) -> sqlx::Result<ProductReply> {
    let rejected = |reason: &str| ProductReply::ReservationRejected {
        order_id: order_id.to_string(),
        reservation_id: reservation_id.to_string(),
        reason: reason.to_string(),
    };
    let Some(r) = lock_for_update(conn, reservation_id).await? else { return Ok(rejected("not_found")) };
    if r.user_id != user_id {
        return Ok(rejected("wrong_user"));
    }
    match r.status.as_str() {
        "HELD" => {}
        other => return Ok(rejected(&other.to_ascii_lowercase())),
    }
    if r.order_id.as_deref().is_some_and(|o| o != order_id) {
        return Ok(rejected("locked_by_other_order"));
    }
    if is_lapsed(conn, reservation_id).await? {
        // Lapsed but not yet swept by the expiry job: expire it now so its stock comes back.
        end_hold(conn, reservation_id, "EXPIRED").await?;
        return Ok(rejected("expired"));
    }
    sqlx::query("UPDATE reservations SET order_id = ? WHERE id = ?").bind(order_id).bind(reservation_id).execute(&mut *conn).await?;
    Ok(ProductReply::ReservationLocked {
        order_id: order_id.to_string(),
        reservation_id: reservation_id.to_string(),
        product_id: r.product_id,
        quantity: r.quantity,
        amount: r.total_price,
    })
}

async fn confirm(conn: &mut MySqlConnection, order_id: &str, reservation_id: &str) -> sqlx::Result<ProductReply> {
    let failed = |reason: &str| ProductReply::ReservationConfirmFailed {
        order_id: order_id.to_string(),
        reservation_id: reservation_id.to_string(),
        reason: reason.to_string(),
    };
    let confirmed =
        || ProductReply::ReservationConfirmed { order_id: order_id.to_string(), reservation_id: reservation_id.to_string() };
    let Some(r) = lock_for_update(conn, reservation_id).await? else { return Ok(failed("not_found")) };
    let ours = r.order_id.as_deref().is_none_or(|o| o == order_id);
    match r.status.as_str() {
        "CONFIRMED" if r.order_id.as_deref() == Some(order_id) => Ok(confirmed()),
        "HELD" if !ours => Ok(failed("locked_by_other_order")),
        "HELD" => {
            if is_lapsed(conn, reservation_id).await? {
                end_hold(conn, reservation_id, "EXPIRED").await?;
                return Ok(failed("expired"));
            }
            sqlx::query("UPDATE reservations SET status = 'CONFIRMED', order_id = ? WHERE id = ? AND status = 'HELD'")
                .bind(order_id)
                .bind(reservation_id)
                .execute(&mut *conn)
                .await?;
            Ok(confirmed())
        }
        other => Ok(failed(&other.to_ascii_lowercase())),
    }
}

async fn release(conn: &mut MySqlConnection, order_id: &str, reservation_id: &str, reason: &str) -> sqlx::Result<ProductReply> {
    let released = |status: &str| ProductReply::ReservationReleased {
        order_id: order_id.to_string(),
        reservation_id: reservation_id.to_string(),
        status: status.to_string(),
    };
    let Some(r) = lock_for_update(conn, reservation_id).await? else { return Ok(released("NOT_FOUND")) };
    if r.status == "HELD" && r.order_id.as_deref().is_some_and(|o| o != order_id) {
        // Another order holds it: releasing would take its stock away. Leave it alone.
        tracing::warn!(order_id, reservation_id, "release refused: reservation is locked by another order");
        return Ok(released("HELD"));
    }
    if r.status == "HELD" {
        end_hold(conn, reservation_id, "RELEASED").await?;
        tracing::info!(order_id, reservation_id, reason, "reservation released");
        return Ok(released("RELEASED"));
    }
    // Already CONFIRMED / RELEASED / EXPIRED: nothing to give back.
    Ok(released(&r.status))
}
