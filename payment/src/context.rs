//! What every step of a payment command works with: the topics it answers and forwards on, the
//! card keys and the retry policy. [`crate::commands`] dispatches a command to the step
//! ([`crate::charges`], [`crate::refunds`], [`crate::bank`]) with it; the steps never call back.

use sagaway_common::card::CardKey;
use sagaway_contract::messages::PaymentReply;
use sagaway_messaging::{inbox::Incoming, outbox::Outgoing};

use crate::retry_policy::RetryPolicy;

/// The name this service signs its dead letters with.
pub const SERVICE: &str = "payment";

/// Handles `payment.commands`.
pub struct CommandHandler {
    /// Full topic names (with the configured prefix).
    pub replies_topic: String,
    pub retry_topic: String,
    pub dlq_topic: String,
    /// Where account charges ask the bank (`bank.commands`).
    pub bank_commands_topic: String,
    pub card_key: CardKey,
    pub retry: RetryPolicy,
}

impl CommandHandler {
    /// A reply to the orchestrator, keyed like the command.
    pub fn reply(&self, msg: &Incoming, reply: &PaymentReply) -> Outgoing {
        Outgoing::json(&self.replies_topic, msg.key.clone().unwrap_or_default(), reply.kind(), reply)
    }
}
