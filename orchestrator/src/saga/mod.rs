//! The payment saga, driven by the orchestrator over Kafka.
//!
//! - [`machine`]: the saga itself, pure — the step list [`machine::ORDER_SAGA`], the states, and
//!   `step(state, event) → transition`. Start reading there.
//! - this module: the one adapter around it. [`SagaHandler`] turns a consumed reply into a
//!   [`SagaEvent`], and [`drive`] runs the machine on the order's row (locked) and stores the
//!   transition: row, history, `order.events`, and the commands as outbox messages — all in the
//!   consumer's transaction (inbox + outbox), so a crash anywhere replays the step harmlessly.
//! - [`risk`]: the optional risk-check step's rules (a local participant).
//!
//! A reply that no longer fits the order (a duplicate, a late answer) is an illegal transition:
//! logged, counted, and skipped without changing anything.

pub mod machine;
pub mod risk;

use sagaway_common::config::CommonConfig;
use sagaway_messaging::{inbox::{self, HandleError, Handler, Incoming}, outbox::Outgoing, topics};
use sagaway_contract::ids::{OrderId, UserId};
use sagaway_contract::messages::{CardRef, PaymentCommand, PaymentReply, ProductCommand, ProductReply};
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;

use crate::orders::{self, Order};
use machine::{Command, SagaEvent, Settings};

/// The message on `order_queue` that starts a saga.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: OrderId,
    pub user_id: UserId,
}

impl sagaway_contract::messages::Validate for OrderAccepted {
    /// Nothing beyond its ids, which their types checked as it was parsed.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
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
    pub payment_dlq: String,
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
            payment_dlq: c.topic(topics::PAYMENT_DLQ),
        }
    }

    /// The topics the saga consumes.
    pub fn consumed(&self) -> [&str; 3] {
        [&self.order_queue, &self.product_replies, &self.payment_replies]
    }
}

/// What the adapter needs besides the order: where to send, which optional steps run, and their rules.
#[derive(Debug, Clone)]
pub struct SagaContext {
    pub topics: SagaTopics,
    pub settings: Settings,
    pub risk: risk::RiskPolicy,
}

impl SagaContext {
    pub fn new(config: &crate::Config) -> Self {
        Self { topics: SagaTopics::new(&config.common), settings: Settings { risk_check: config.risk_check }, risk: config.risk.clone() }
    }
}

/// Routes each consumed message to the machine.
pub struct SagaHandler {
    pub ctx: SagaContext,
}

impl Handler for SagaHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let (order_id, event) = decode(&self.ctx.topics, msg)?;
        let Some(order) = orders::lock(conn, &order_id).await? else {
            tracing::warn!(%order_id, event = event.name(), "reply names an unknown order; ignored");
            return Ok(vec![]);
        };
        let driven = drive(conn, &self.ctx, order, event).await?;
        let mut out = driven.messages;
        for alert in driven.alerts {
            // A reply the saga refused to act on: kept as a dead letter for an operator to see.
            tracing::error!(%order_id, alert = %alert, "saga alert; the reply is dead-lettered and the order compensated");
            out.push(alert_letter(&self.ctx.topics.payment_dlq, msg, &order_id, &alert));
        }
        Ok(out)
    }
}

/// The dead letter kept for a reply the saga refused to act on. It names the order in the
/// `dlq.order_id` header, as the payment processor's letters do: the payload's copy can be cut by
/// the card-number redaction (a UUID whose digit groups add up to a PAN's length), and the letter
/// would then name no order (a flaky e2e test found it).
pub fn alert_letter(dlq_topic: &str, msg: &Incoming, order_id: &str, alert: &str) -> Outgoing {
    inbox::dead_letter_message(dlq_topic, "orchestrator", msg, "saga_alert", alert, 1, chrono::Utc::now()).header("dlq.order_id", order_id)
}

/// The order id a consumed message is about, and what it says happened.
fn decode(t: &SagaTopics, msg: &Incoming) -> Result<(OrderId, SagaEvent), HandleError> {
    if msg.topic == t.order_queue {
        let m: OrderAccepted = msg.json()?;
        return Ok((m.order_id, SagaEvent::Started));
    }
    if msg.topic == t.product_replies {
        return Ok(match msg.json::<ProductReply>()? {
            ProductReply::ReservationLocked { order_id, amount, .. } => (order_id, SagaEvent::ReservationLocked { amount }),
            ProductReply::ReservationRejected { order_id, reason, .. } => (order_id, SagaEvent::ReservationRejected { reason }),
            ProductReply::ReservationConfirmed { order_id, .. } => (order_id, SagaEvent::ReservationConfirmed),
            ProductReply::ReservationConfirmFailed { order_id, reason, .. } => (order_id, SagaEvent::ReservationConfirmFailed { reason }),
            ProductReply::ReservationReleased { order_id, status, .. } => {
                (order_id, SagaEvent::ReservationReleased { expired: status == "EXPIRED" })
            }
        });
    }
    if msg.topic == t.payment_replies {
        return Ok(match msg.json::<PaymentReply>()? {
            PaymentReply::Charged { order_id, amount, currency, .. } => (order_id, SagaEvent::Charged { amount, currency }),
            PaymentReply::Declined { order_id, reason } => (order_id, SagaEvent::Declined { reason }),
            PaymentReply::Failed { order_id, error_class, reason, attempts } => {
                (order_id, SagaEvent::ChargeFailed { reason: format!("{error_class} after {attempts} attempts: {reason}") })
            }
            PaymentReply::Refunded { order_id, amount } => (order_id, SagaEvent::Refunded { amount }),
        });
    }
    Err(HandleError::Malformed(format!("unexpected topic {}", msg.topic)))
}

/// What driving the machine produced.
#[derive(Debug, Default)]
pub struct Driven {
    /// Outbox messages: `order.events` and participant commands.
    pub messages: Vec<Outgoing>,
    /// Alerts for an operator (already compensated by the machine).
    pub alerts: Vec<String>,
    /// The event did not apply: nothing was changed.
    pub refused: Option<machine::IllegalTransition>,
}

/// Applies `event` to the (row-locked) `order` and stores the result. Local participants (the
/// risk check) answer at once, so their verdict is applied in the same transaction.
pub async fn drive(conn: &mut MySqlConnection, ctx: &SagaContext, mut order: Order, event: SagaEvent) -> sqlx::Result<Driven> {
    let mut driven = Driven::default();
    let mut next = Some(event);
    while let Some(event) = next.take() {
        let state = order.saga_state().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let name = event.name();
        let t = match machine::step(&state, event, ctx.settings) {
            Ok(t) => t,
            Err(illegal) => {
                tracing::debug!(order_id = %order.id, %illegal, "event skipped");
                metrics::counter!("saga_events_skipped_total", "event" => name).increment(1);
                driven.refused = Some(illegal);
                break;
            }
        };
        // Commands are built from the order as it was: the charge carries the sealed CVC, which
        // `record` then erases in the same UPDATE.
        let commands: Vec<Outgoing> = t.commands.iter().filter_map(|c| message(&ctx.topics, &order, c)).collect();
        driven.messages.extend(orders::record(conn, &mut order, &t, &ctx.topics.order_events).await?);
        driven.messages.extend(commands);
        if let Some(alert) = &t.alert {
            metrics::counter!("saga_alerts_total").increment(1);
            driven.alerts.push(alert.clone());
        }
        if t.commands.contains(&Command::AssessRisk) {
            // A local participant: its verdict is the next event, applied in this transaction.
            next = Some(SagaEvent::RiskAssessed(risk::assess(conn, &ctx.risk, &order).await?));
        }
    }
    Ok(driven)
}

/// The outbox message that carries `command` to its participant (keyed by user: per-customer order).
fn message(t: &SagaTopics, order: &Order, command: &Command) -> Option<Outgoing> {
    let product = |cmd: ProductCommand| Outgoing::json(&t.product_commands, &order.user_id, cmd.kind(), &cmd);
    let payment = |cmd: PaymentCommand| Outgoing::json(&t.payment_commands, &order.user_id, cmd.kind(), &cmd);
    let (order_id, reservation_id) = (order.id.clone(), order.reservation_id.clone());
    Some(match command {
        Command::LockReservation => product(ProductCommand::LockReservation { order_id, reservation_id, user_id: order.user_id.clone() }),
        Command::ConfirmReservation => product(ProductCommand::ConfirmReservation { order_id, reservation_id }),
        Command::ReleaseReservation { reason } => product(ProductCommand::ReleaseReservation { order_id, reservation_id, reason: reason.clone() }),
        Command::Refund { reason } => payment(PaymentCommand::Refund { order_id, user_id: order.user_id.clone(), reason: reason.clone() }),
        Command::Charge => match charge_command(order) {
            Some(cmd) => payment(cmd),
            None => {
                // The machine never charges without a payment method on file; a row that says otherwise is a bug.
                tracing::error!(order_id = %order.id, "charge without a sealed card or an account; not sent");
                return None;
            }
        },
        Command::AssessRisk => return None,
    })
}

/// The charge command for an order: from its bank account, or from its card — `None` when its
/// sealed card is gone. A card charge carries the sealed CVC only while the order still holds it:
/// the first charge command (then [`orders::record`] erases it).
pub fn charge_command(order: &Order) -> Option<PaymentCommand> {
    let (card, account) = match order.account() {
        Some(account) => (None, Some(account)),
        None => (
            Some(CardRef {
                brand: order.card_brand.clone()?,
                last4: order.card_last4.clone()?,
                exp_month: order.card_exp_month?,
                exp_year: order.card_exp_year?,
                fingerprint: order.card_fingerprint.clone()?,
                sealed: order.card_sealed.clone()?,
                sealed_cvc: order.card_cvc_sealed.clone(),
            }),
            None,
        ),
    };
    Some(PaymentCommand::Charge {
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        amount: order.amount,
        currency: order.currency.clone(),
        card,
        account,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::store::letter_order_id;

    /// The letter as the dead-letter recorder receives it from the broker.
    fn received(letter: &Outgoing) -> Incoming {
        Incoming {
            topic: letter.topic.clone(),
            partition: 0,
            offset: 7,
            key: Some(letter.key.clone()),
            payload: Some(letter.payload.clone()),
            headers: letter.headers.clone(),
            message_id: "payment_dlq:0:7".into(),
        }
    }

    #[test]
    fn an_alert_letter_names_its_order_even_when_redaction_cuts_the_payloads_copy() {
        // Its last two groups are 4 + 12 = 16 digits: a card number's length to the redaction.
        let order_id = "01a2382d-f6fa-720d-8601-810485875774";
        let reply = Incoming {
            topic: "payment.replies".into(),
            partition: 0,
            offset: 41,
            key: Some("user-1".into()),
            payload: Some(format!(r#"{{"type":"charged","order_id":"{order_id}","amount":"20.00","currency":"USD"}}"#)),
            headers: vec![],
            message_id: "m-41".into(),
        };
        let letter = alert_letter("payment_dlq", &reply, order_id, "charged 20.00 USD for an order of 19.99 USD");
        let got = received(&letter);
        let payload = serde_json::from_str::<serde_json::Value>(&sagaway_contract::redact::redact_digit_runs(&letter.payload)).ok();
        assert!(!letter.payload.contains(order_id), "the redaction cut the payload's copy: {}", letter.payload);
        assert_eq!(letter_order_id(&got, payload.as_ref()).as_deref(), Some(order_id));
        // Without the header the letter would name no order: what the e2e test once saw.
        let headerless = Incoming { headers: got.headers.iter().filter(|(k, _)| k != "dlq.order_id").cloned().collect(), ..got };
        assert_eq!(letter_order_id(&headerless, payload.as_ref()), None);
    }
}
