//! What a dead letter is to the tools, decided without a database: which compensation step it
//! carries (if any), whether a replay may put it back, and what resolving it does to its order.
//!
//! A **compensation dead letter** is a message that undoes something and was given up on: the
//! reservation's release (`release_reservation` on `product.commands`, given up by the product
//! service), a card refund (`refund` on `payment.commands`, by the payment processor), an
//! account payment's refund or void at the bank (`refund` / `void` on `bank.commands`, by the bank,
//! on `bank.dlq`), or the bank's answer to one (`refunded` / `voided` on `bank.replies`, by the
//! payment processor). Until it is replayed or resolved the order stays COMPENSATING (or, for a
//! void, the customer's money stays held at the bank).
//!
//! Every participant applies each of these at most once per order (the payment processor keeps
//! one refund row per order, the bank one state per payment id, the product service one per
//! reservation), so a replayed compensation — or two dead letters of the same step — moves stock
//! or money once; the dead letter's own PENDING → REPLAYED mark makes each letter replay once.

use sagaway_messaging::topics;

use crate::saga::machine::{Capture, Hold, OrderStatus, SagaState, Settled};

/// The compensation step a dead letter carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensation {
    /// `release_reservation` to the product service.
    ReleaseReservation,
    /// `refund` of a card capture to the payment processor.
    Refund,
    /// `refund` of an account capture at the bank, or the bank's `refunded` to the payment processor.
    BankRefund,
    /// `void` of an account hold at the bank, or the bank's `voided` to the payment processor.
    BankVoid,
}

impl Compensation {
    pub const ALL: [Compensation; 4] = [Self::ReleaseReservation, Self::Refund, Self::BankRefund, Self::BankVoid];

    /// The name stored in `dead_letters.compensation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReleaseReservation => "release_reservation",
            Self::Refund => "refund",
            Self::BankRefund => "bank_refund",
            Self::BankVoid => "bank_void",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The compensation a dead-lettered message carries, from its source topic (any prefix) and
    /// its payload's `type`.
    pub fn of(original_topic: &str, message_type: &str) -> Option<Self> {
        let on = |logical: &str| original_topic.ends_with(logical);
        match message_type {
            "release_reservation" if on(topics::PRODUCT_COMMANDS) => Some(Self::ReleaseReservation),
            "refund" if on(topics::PAYMENT_COMMANDS) => Some(Self::Refund),
            "refund" if on(topics::BANK_COMMANDS) => Some(Self::BankRefund),
            "refunded" if on(topics::BANK_REPLIES) => Some(Self::BankRefund),
            "void" if on(topics::BANK_COMMANDS) => Some(Self::BankVoid),
            "voided" if on(topics::BANK_REPLIES) => Some(Self::BankVoid),
            _ => None,
        }
    }

    /// What of the saga this step finishes: the order waits on a release or a refund; a void at
    /// the bank is not waited on (the payment processor answered the saga when it voided the charge).
    pub fn settles(self) -> Option<Settled> {
        match self {
            Self::ReleaseReservation => Some(Settled::Release),
            Self::Refund | Self::BankRefund => Some(Settled::Refund),
            Self::BankVoid => None,
        }
    }
}

/// Whether the order (as the saga knows it) still waits on `step`.
pub fn awaits(state: &SagaState, step: Settled) -> bool {
    match step {
        Settled::Release => state.hold == Hold::Releasing,
        Settled::Refund => state.capture == Capture::Refunding,
    }
}

/// May compensation letter `c` be replayed for an order in `order` (`None`: no known order)?
/// `Err` says why not. The bank's steps are always replayable: the bank applies each command at
/// most once per payment id, and a late capture's refund is asked by the payment processor
/// without the saga ever hearing of it.
pub fn replay_compensation(c: Compensation, order: Option<&SagaState>) -> Result<(), String> {
    let (Some(state), Some(step), false) = (order, c.settles(), matches!(c, Compensation::BankRefund | Compensation::BankVoid)) else {
        return Ok(());
    };
    if awaits(state, step) {
        return Ok(());
    }
    let what = match step {
        Settled::Release => "a release",
        Settled::Refund => "a refund",
    };
    Err(format!("the order ({}) no longer awaits {what}: nothing to replay", state.status))
}

/// What resolving a PENDING dead letter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Mark it RESOLVED; the order is not touched.
    Mark,
    /// Mark it RESOLVED and tell the saga the step was settled by hand (the order may end COMPENSATED).
    Settle(Settled),
    /// Not resolved: why.
    Refuse(String),
}

/// What resolving a letter carrying `compensation` (and whether it is a charge) does to an order
/// in `order`. A parked order's charge letter is its only handle: it is replayed or abandoned,
/// not resolved away.
pub fn resolution(compensation: Option<Compensation>, is_charge: bool, order: Option<&SagaState>) -> Resolution {
    let Some(state) = order else { return Resolution::Mark };
    if let Some(step) = compensation.and_then(Compensation::settles)
        && awaits(state, step)
    {
        return Resolution::Settle(step);
    }
    if is_charge && state.status == OrderStatus::Failed && !state.compensating {
        return Resolution::Refuse("its order is parked (FAILED): replay or abandon it instead".into());
    }
    Resolution::Mark
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn state(status: OrderStatus, hold: Hold, capture: Capture, compensating: bool) -> SagaState {
        SagaState { status, amount: Decimal::ONE, currency: "USD".into(), hold, capture, compensating, reason: None, card_on_file: true }
    }

    #[test]
    fn compensation_steps_are_known_by_topic_and_type_whatever_the_prefix() {
        for prefix in ["", "t1234.", "b002."] {
            let t = |logical: &str| format!("{prefix}{logical}");
            assert_eq!(Compensation::of(&t("product.commands"), "release_reservation"), Some(Compensation::ReleaseReservation));
            assert_eq!(Compensation::of(&t("payment.commands"), "refund"), Some(Compensation::Refund));
            assert_eq!(Compensation::of(&t("bank.commands"), "refund"), Some(Compensation::BankRefund));
            assert_eq!(Compensation::of(&t("bank.commands"), "void"), Some(Compensation::BankVoid));
            assert_eq!(Compensation::of(&t("bank.replies"), "refunded"), Some(Compensation::BankRefund));
            assert_eq!(Compensation::of(&t("bank.replies"), "voided"), Some(Compensation::BankVoid));
            for (topic, kind) in [("payment.commands", "charge"), ("product.commands", "lock_reservation"), ("bank.commands", "hold"), ("bank.commands", "capture"), ("payment.replies", "refunded"), ("bank.operations", "deposit")] {
                assert_eq!(Compensation::of(&t(topic), kind), None, "{topic} {kind}");
            }
        }
        for c in Compensation::ALL {
            assert_eq!(Compensation::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn a_compensation_replays_while_its_order_awaits_it_and_the_banks_always() {
        let refunding = state(OrderStatus::Paid, Hold::Gone, Capture::Refunding, true);
        let releasing = state(OrderStatus::Declined, Hold::Releasing, Capture::None, true);
        let done = state(OrderStatus::Compensated, Hold::Gone, Capture::Refunded, true);
        assert_eq!(replay_compensation(Compensation::Refund, Some(&refunding)), Ok(()));
        assert!(replay_compensation(Compensation::Refund, Some(&releasing)).is_err());
        assert!(replay_compensation(Compensation::Refund, Some(&done)).is_err());
        assert_eq!(replay_compensation(Compensation::ReleaseReservation, Some(&releasing)), Ok(()));
        assert!(replay_compensation(Compensation::ReleaseReservation, Some(&done)).is_err());
        for c in [Compensation::BankRefund, Compensation::BankVoid] {
            for s in [&refunding, &releasing, &done] {
                assert_eq!(replay_compensation(c, Some(s)), Ok(()), "{c:?}");
            }
        }
        for c in Compensation::ALL {
            assert_eq!(replay_compensation(c, None), Ok(()));
        }
    }

    #[test]
    fn resolving_settles_an_awaited_step_refuses_a_parked_charge_and_otherwise_only_marks() {
        let refunding = state(OrderStatus::Paid, Hold::Gone, Capture::Refunding, true);
        let releasing = state(OrderStatus::Declined, Hold::Releasing, Capture::None, true);
        let parked = state(OrderStatus::Failed, Hold::Held, Capture::None, false);
        assert_eq!(resolution(Some(Compensation::Refund), false, Some(&refunding)), Resolution::Settle(Settled::Refund));
        assert_eq!(resolution(Some(Compensation::BankRefund), false, Some(&refunding)), Resolution::Settle(Settled::Refund));
        assert_eq!(resolution(Some(Compensation::ReleaseReservation), false, Some(&releasing)), Resolution::Settle(Settled::Release));
        assert_eq!(resolution(Some(Compensation::Refund), false, Some(&releasing)), Resolution::Mark, "not awaited: only marked");
        assert_eq!(resolution(Some(Compensation::BankVoid), false, Some(&refunding)), Resolution::Mark, "the saga does not wait on a void");
        assert!(matches!(resolution(None, true, Some(&parked)), Resolution::Refuse(_)));
        assert_eq!(resolution(None, false, Some(&parked)), Resolution::Mark);
        assert_eq!(resolution(None, true, None), Resolution::Mark);
    }
}
