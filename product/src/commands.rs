//! The product service's part in the payment saga: it consumes `product.commands` (lock, confirm,
//! release a reservation) and answers on `product.replies`. Each command is applied in the
//! consumer's transaction (inbox + effect + outbox reply), so a redelivered command is a no-op and
//! a reply is never lost. Each operation is also idempotent on its own: replaying a confirm for the
//! order that already confirmed answers "confirmed" again.

use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::Outgoing};
use sagaway_contract::{
    ids::{OrderId, ReservationId},
    messages::{ProductCommand, ProductReply},
};
use sqlx::MySqlConnection;

use crate::{
    hold::{self, Answer, Effect, Hold, HoldCommand, HoldStatus},
    reservations::{Reservation, end_hold, lock_for_update},
};

pub struct CommandHandler {
    /// Full name of the replies topic (with the configured prefix).
    pub replies_topic: String,
}

impl Handler for CommandHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let command: ProductCommand = msg.json()?;
        let reply = apply(conn, &command).await?;
        // One line per saga command: with the message span's trace id, an order's path here is findable.
        tracing::info!(command = command.kind(), answer = reply.kind(), "reservation command applied");
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

/// Runs `command` on the reservation (row-locked): [`hold::decide`] says what to do and answer.
async fn on_hold(conn: &mut MySqlConnection, reservation_id: &str, command: HoldCommand<'_>) -> sqlx::Result<(Answer, Option<Reservation>)> {
    let locked = lock_for_update(conn, reservation_id).await?;
    let lapsed = locked.as_ref().is_some_and(|l| l.reservation.status == "HELD" && l.lapsed());
    let r = locked.map(|l| l.reservation);
    let view = match &r {
        Some(r) => Some(Hold {
            status: HoldStatus::parse(&r.status).ok_or_else(|| sqlx::Error::Protocol(format!("reservation {reservation_id} has status {:?}", r.status)))?,
            user_id: &r.user_id,
            order_id: r.order_id.as_deref(),
            lapsed,
        }),
        None => None,
    };
    let (effect, answer) = hold::decide(view.as_ref(), command);
    match (effect, command) {
        (Some(Effect::Bind), HoldCommand::Lock { order_id, .. }) => {
            sqlx::query("UPDATE reservations SET order_id = ? WHERE id = ?").bind(order_id).bind(reservation_id).execute(&mut *conn).await?;
        }
        (Some(Effect::Confirm), HoldCommand::Confirm { order_id }) => {
            sqlx::query("UPDATE reservations SET status = 'CONFIRMED', order_id = ? WHERE id = ? AND status = 'HELD'")
                .bind(order_id)
                .bind(reservation_id)
                .execute(&mut *conn)
                .await?;
        }
        (Some(Effect::End(to)), _) => {
            end_hold(conn, reservation_id, to.as_str()).await?;
        }
        (Some(effect), _) => unreachable!("{effect:?} is never decided for {command:?}"),
        (None, _) => {}
    }
    Ok((answer, r))
}

async fn lock(conn: &mut MySqlConnection, order_id: &OrderId, reservation_id: &ReservationId, user_id: &str) -> sqlx::Result<ProductReply> {
    let (answer, r) = on_hold(conn, reservation_id, HoldCommand::Lock { order_id, user_id }).await?;
    let (order_id, reservation_id) = (order_id.clone(), reservation_id.clone());
    Ok(match (answer, r) {
        (Answer::Locked, Some(r)) => {
            ProductReply::ReservationLocked { order_id, reservation_id, product_id: r.product_id, quantity: r.quantity, amount: r.total_price }
        }
        (Answer::Rejected(reason), _) => ProductReply::ReservationRejected { order_id, reservation_id, reason },
        (other, _) => unreachable!("a lock answers locked or rejected, not {other:?}"),
    })
}

async fn confirm(conn: &mut MySqlConnection, order_id: &OrderId, reservation_id: &ReservationId) -> sqlx::Result<ProductReply> {
    let (answer, _) = on_hold(conn, reservation_id, HoldCommand::Confirm { order_id }).await?;
    let (order_id, reservation_id) = (order_id.clone(), reservation_id.clone());
    Ok(match answer {
        Answer::Confirmed => ProductReply::ReservationConfirmed { order_id, reservation_id },
        Answer::ConfirmFailed(reason) => ProductReply::ReservationConfirmFailed { order_id, reservation_id, reason },
        other => unreachable!("a confirm answers confirmed or failed, not {other:?}"),
    })
}

async fn release(conn: &mut MySqlConnection, order_id: &OrderId, reservation_id: &ReservationId, reason: &str) -> sqlx::Result<ProductReply> {
    let (answer, r) = on_hold(conn, reservation_id, HoldCommand::Release { order_id }).await?;
    let status = match answer {
        _ if r.is_none() => "NOT_FOUND",
        Answer::Released(HoldStatus::Held) => {
            tracing::warn!(%order_id, %reservation_id, "release refused: reservation is locked by another order");
            "HELD"
        }
        Answer::Released(HoldStatus::Released) => {
            tracing::info!(%order_id, %reservation_id, reason, "reservation released");
            "RELEASED"
        }
        Answer::Released(other) => other.as_str(),
        other => unreachable!("a release answers released, not {other:?}"),
    };
    Ok(ProductReply::ReservationReleased { order_id: order_id.clone(), reservation_id: reservation_id.clone(), status: status.to_string() })
}
