//! The payment processor's part in the saga: it consumes `payment.commands` (charge, refund) and
//! answers on `payment.replies`, keyed by user id like the command. [`sagaway_messaging::inbox::ConsumerLoop`]
//! runs [`CommandHandler`] inside one transaction per message (inbox + effect + outbox), so a
//! redelivered message is a no-op; each operation is also idempotent per order on its own, so a
//! *new* message for an order already charged or refunded re-answers instead of moving money again.
//!
//! A charge or refund paid from a bank account is answered later: its command asks the bank
//! (`bank.commands`), and [`crate::bank::BankReplyHandler`] answers the saga when the bank has.

use sagaway_contract::messages::{MethodRef, PaymentCommand, charge_method};
use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::Outgoing};
use sqlx::MySqlConnection;

use crate::{
    charges,
    context::CommandHandler,
    refunds,
    request::{ChargeRequest, Method},
};

impl Handler for CommandHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let command: PaymentCommand = msg.json()?;
        match command {
            PaymentCommand::Charge { order_id, user_id, amount, currency, card, account } => {
                // (`Incoming::json` has validated that exactly one is there.)
                let method = match charge_method(card.as_ref(), account.as_ref()).map_err(HandleError::Malformed)? {
                    MethodRef::Card(c) => Method::Card(c.clone()),
                    MethodRef::Account(a) => Method::Account(a.clone()),
                };
                let request = ChargeRequest { order_id, user_id, amount, currency, method };
                charges::handle(self, conn, msg, &request).await
            }
            PaymentCommand::Refund { order_id, user_id, reason } => refunds::refund(self, conn, msg, &order_id, &user_id, &reason).await,
        }
    }
}
