//! The payment saga, driven by the orchestrator over Kafka. One file per step:
//!
//! 1. [`start`]: an accepted order (from `order_queue`) asks the product service to lock its reservation;
//! 2. [`lock`]: reservation locked → PAYMENT_PENDING and a charge command; refused → COMPENSATED;
//! 3. [`charge`]: charged → PAID and a confirm command; declined → DECLINED and compensation;
//!    failed after the retry budget (dead-lettered) → FAILED, parked for an operator;
//! 4. [`confirm`]: confirmed → COMPLETED; the hold lapsed meanwhile → compensation (refund);
//! 5. [`compensate`]: release the reservation and/or refund the capture; when nothing is awaited
//!    any more → COMPENSATED.
//!
//! Every step runs inside the consumer's transaction (inbox + order row lock + outbox), and every
//! step checks the order's current status first: a reply that no longer fits (a duplicate, a late
//! answer) changes nothing.

pub mod charge;
pub mod compensate;
pub mod confirm;
pub mod lock;
pub mod start;

use sagaway_common::{
    config::CommonConfig,
    inbox::{HandleError, Handler, Incoming},
    messages::{PaymentReply, ProductReply},
    outbox::Outgoing,
    topics,
};
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;

/// The message on `order_queue` that starts a saga.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: String,
    pub user_id: String,
}

/// Full topic names (with the configured prefix).
#[derive(Debug, Clone)]
pub struct SagaTopics {
    pub order_queue: String,
    pub product_commands: String,
    pub product_replies: String,
    pub payment_commands: String,
    pub payment_replies: String,
    pub order_events: String,
}

impl SagaTopics {
    pub fn new(c: &CommonConfig) -> Self {
        Self {
            order_queue: c.topic(topics::ORDER_QUEUE),
            product_commands: c.topic(topics::PRODUCT_COMMANDS),
            product_replies: c.topic(topics::PRODUCT_REPLIES),
            payment_commands: c.topic(topics::PAYMENT_COMMANDS),
            payment_replies: c.topic(topics::PAYMENT_REPLIES),
            order_events: c.topic(topics::ORDER_EVENTS),
        }
    }

    /// The topics the saga consumes.
    pub fn consumed(&self) -> [&str; 3] {
        [&self.order_queue, &self.product_replies, &self.payment_replies]
    }
}

/// Routes each consumed message to its step.
pub struct SagaHandler {
    pub topics: SagaTopics,
}

impl Handler for SagaHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let t = &self.topics;
        let out = if msg.topic == t.order_queue {
            start::on_accepted(conn, t, &msg.json()?).await?
        } else if msg.topic == t.product_replies {
            match msg.json::<ProductReply>()? {
                r @ (ProductReply::ReservationLocked { .. } | ProductReply::ReservationRejected { .. }) => lock::on_reply(conn, t, r).await?,
                r @ (ProductReply::ReservationConfirmed { .. } | ProductReply::ReservationConfirmFailed { .. }) => {
                    confirm::on_reply(conn, t, r).await?
                }
                ProductReply::ReservationReleased { order_id, status, .. } => compensate::on_released(conn, t, &order_id, &status).await?,
            }
        } else if msg.topic == t.payment_replies {
            match msg.json::<PaymentReply>()? {
                PaymentReply::Refunded { order_id, amount } => compensate::on_refunded(conn, t, &order_id, amount).await?,
                other => charge::on_reply(conn, t, other).await?,
            }
        } else {
            return Err(HandleError::Malformed(format!("unexpected topic {}", msg.topic)));
        };
        Ok(out)
    }
}
