//! The payment processor's part in the saga: it consumes `payment.commands` (charge, refund) and
//! answers on `payment.replies`, keyed by user id like the command. [`sagaway_common::inbox::ConsumerLoop`]
//! runs [`CommandHandler`] inside one transaction per message (inbox + effect + outbox), so a
//! redelivered message is a no-op; each operation is also idempotent per order on its own, so a
//! *new* message for an order already charged or refunded re-answers instead of moving money again.

use sagaway_common::{
    card::CardKey,
    inbox::{HandleError, Handler, Incoming},
    messages::{PaymentCommand, PaymentReply},
    outbox::Outgoing,
};
use sqlx::MySqlConnection;

use crate::{charges, refunds, retry_policy::RetryPolicy};

/// The name this service signs its dead letters with.
pub const SERVICE: &str = "payment";

/// Handles `payment.commands`.
pub struct CommandHandler {
    /// Full topic names (with the configured prefix).
    pub replies_topic: String,
    pub retry_topic: String,
    pub dlq_topic: String,
    pub card_key: CardKey,
    pub retry: RetryPolicy,
}

impl CommandHandler {
    /// A reply to the orchestrator, keyed like the command.
    pub fn reply(&self, msg: &Incoming, reply: &PaymentReply) -> Outgoing {
        Outgoing::json(&self.replies_topic, msg.key.clone().unwrap_or_default(), reply.kind(), reply)
    }
}

impl Handler for CommandHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let command: PaymentCommand = msg.json()?;
        match command {
            PaymentCommand::Charge { order_id, user_id, amount, currency, card } => {
                let request = charges::ChargeRequest { order_id, user_id, amount, currency, card };
                charges::handle(self, conn, msg, &request).await
            }
            PaymentCommand::Refund { order_id, user_id, reason } => {
                let reply = refunds::refund(conn, &order_id, &user_id, &reason).await?;
                Ok(vec![self.reply(msg, &reply)])
            }
        }
    }
}
