//! Charges paid from a bank account: the payment processor asks the bank over Kafka instead of the
//! acquirer, and answers the saga when the bank has answered.
//!
//! | saga command | here | to the bank (`bank.commands`, keyed by account id) | the bank's answer → here → the saga |
//! | --- | --- | --- | --- |
//! | `charge` with `account` | the charge row, `pending`, method `account` | `hold` (payment id = order id) | `held` → `capture`; `declined {reason}` → charge `declined`, `declined {reason}` |
//! | | | `capture` | `captured` → charge `succeeded`, ledger capture, `charged {amount, currency}` |
//! | `refund` of a succeeded charge | `refunding` | `refund` | `refunded` → charge `refunded`, ledger refund, `refunded {amount}` |
//! | `refund` of a pending charge | `voided`, `refunded {0.00}` at once | `void` | a `captured` that got there first → `refund` (a late capture; the saga hears nothing more) |
//!
//! Every step runs in an inbox consumer's transaction with its outbox messages, so a redelivered
//! command or answer is a no-op; what an answer does is decided by the pure
//! [`crate::lifecycle::on_bank_reply`] on the charge's stored status, so a repeated or late answer
//! moves nothing (and the bank is idempotent per payment id on its side). Commands of one account
//! share its key, hence its partition: the bank sees hold, capture, void and refund in the order they
//! were sent. One bank is reachable (the one consuming `bank.commands`); the orchestrator accepts
//! only the bank codes it is configured with.

//!
//! Here: what is sent to the bank. [`replies`]: what its answers do.

pub mod replies;

use sagaway_contract::messages::BankCommand;
use sagaway_messaging::outbox::Outgoing;
use sqlx::MySqlConnection;
use uuid::Uuid;

use crate::{
    context::CommandHandler,
    request::{ChargeRequest, Method},
};

pub use replies::BankReplyHandler;

/// `charges.method` of a charge paid from a bank account.
pub const METHOD: &str = "account";

/// A command to the bank about the payment of order `order_id` from account `account_id`.
pub(crate) fn command(topic: &str, account_id: &str, command: &BankCommand) -> Outgoing {
    metrics::counter!("payment_bank_commands_total", "command" => command.kind()).increment(1);
    Outgoing::json(topic, account_id, command.kind(), command)
}

/// Starts an account charge (no charge for the order yet): records it `pending` and asks the bank
/// for the hold. Nothing answers the saga until the bank has.
pub async fn start(h: &CommandHandler, conn: &mut MySqlConnection, req: &ChargeRequest) -> sqlx::Result<Vec<Outgoing>> {
    let Method::Account(account) = &req.method else {
        return Err(sqlx::Error::Protocol("bank::start is for account charges".into()));
    };
    sqlx::query(
        "INSERT INTO charges (id, order_id, user_id, amount, currency, status, method, account_bank, account_id) \
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(req.order_id.as_str())
    .bind(req.user_id.as_str())
    .bind(req.amount)
    .bind(&req.currency)
    .bind(METHOD)
    .bind(&account.bank)
    .bind(&account.account_id)
    .execute(&mut *conn)
    .await?;
    tracing::info!(order_id = %req.order_id, bank = %account.bank, "account charge: hold asked of the bank");
    let hold = BankCommand::Hold {
        payment_id: req.order_id.to_string(),
        account_id: account.account_id.clone(),
        amount: req.amount,
        currency: req.currency.clone(),
        user_id: req.user_id.to_string(),
    };
    Ok(vec![command(&h.bank_commands_topic, &account.account_id, &hold)])
}

/// The bank's `void` of the hold of order `order_id` (its charge was voided before any capture).
pub fn void(h: &CommandHandler, order_id: &str, account_id: &str) -> Outgoing {
    command(&h.bank_commands_topic, account_id, &BankCommand::Void { payment_id: order_id.into() })
}

/// The bank's `refund` of the capture of order `order_id`.
pub fn refund(h: &CommandHandler, order_id: &str, account_id: &str) -> Outgoing {
    command(&h.bank_commands_topic, account_id, &BankCommand::Refund { payment_id: order_id.into() })
}
