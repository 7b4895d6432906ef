//! The lifecycles, as enums whose moves are the only way to change status: an illegal move is an
//! error, never a silent overwrite. The adapters persist the status these return.
//!
//! - Operation: `QUEUED → APPLIED | REJECTED`.
//! - Transfer: `PROCESSING → SETTLED`; `SCHEDULED → PROCESSING → SETTLED`; `SCHEDULED → CANCELED`.
//!   An inter-bank transfer may also end `PROCESSING → FAILED` (its two-phase commit aborted; the
//!   reason says why); SETTLED there means the banks decided to commit.
//! - Payment hold (`bank.commands`): `HELD → CAPTURED → REFUNDED`, `HELD → VOIDED`; a hold that could
//!   not be placed is `DECLINED`. [`decide_hold`] says what each command does in each state, so a
//!   command seen twice answers the same.

use std::fmt;

/// A move the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{from} cannot move to {to}")]
pub struct IllegalMove {
    pub from: &'static str,
    pub to: &'static str,
}

macro_rules! status_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum!(OperationStatus { Queued => "QUEUED", Applied => "APPLIED", Rejected => "REJECTED" });
status_enum!(TransferStatus {
    Processing => "PROCESSING",
    Scheduled => "SCHEDULED",
    Settled => "SETTLED",
    Canceled => "CANCELED",
    Failed => "FAILED",
});
status_enum!(HoldStatus { Held => "HELD", Captured => "CAPTURED", Voided => "VOIDED", Refunded => "REFUNDED", Declined => "DECLINED" });

impl OperationStatus {
    /// QUEUED → `to` (APPLIED or REJECTED); anything else is illegal.
    pub fn move_to(self, to: OperationStatus) -> Result<OperationStatus, IllegalMove> {
        match (self, to) {
            (OperationStatus::Queued, OperationStatus::Applied | OperationStatus::Rejected) => Ok(to),
            _ => Err(IllegalMove { from: self.as_str(), to: to.as_str() }),
        }
    }
}

impl TransferStatus {
    pub fn move_to(self, to: TransferStatus) -> Result<TransferStatus, IllegalMove> {
        use TransferStatus::*;
        match (self, to) {
            (Scheduled, Processing) | (Scheduled, Canceled) | (Processing, Settled) | (Processing, Failed) => Ok(to),
            _ => Err(IllegalMove { from: self.as_str(), to: to.as_str() }),
        }
    }

    /// Whether `DELETE /transfers/{id}` may cancel it (only while SCHEDULED).
    pub fn cancelable(self) -> bool {
        self.move_to(TransferStatus::Canceled).is_ok()
    }

    /// Whether money is still held for it (it has not settled nor been canceled).
    pub fn holds_money(self) -> bool {
        matches!(self, TransferStatus::Scheduled | TransferStatus::Processing)
    }
}

/// A command of `bank.commands`, as far as the lifecycle is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCommand {
    Hold,
    Capture,
    Void,
    Refund,
}

/// What a command does to a payment hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldDecision {
    /// Place the hold (no record yet): check the account and funds, then HELD or DECLINED.
    Place,
    /// Move to this status and move the money that goes with it.
    Move(HoldStatus),
    /// Nothing to do: answer as the state says (a repeated command, or one already overtaken).
    Answer(HoldReply),
}

/// The replies on `bank.replies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReply {
    Held,
    /// The hold was declined (the stored reason goes with it).
    Declined,
    Captured,
    Voided,
    Refunded,
    /// The command does not fit the hold's state (capture after void, refund before capture, unknown payment).
    Rejected(&'static str),
}

/// What `command` does to a hold in `state` (`None`: no hold with that payment id yet).
pub fn decide_hold(state: Option<HoldStatus>, command: HoldCommand) -> HoldDecision {
    use HoldCommand as C;
    use HoldDecision::*;
    use HoldStatus as S;
    match (state, command) {
        (None, C::Hold) => Place,
        (None, _) => Answer(HoldReply::Rejected("unknown_payment")),
        // A hold seen again answers what the first answered.
        (Some(S::Declined), C::Hold) => Answer(HoldReply::Declined),
        (Some(_), C::Hold) => Answer(HoldReply::Held),
        (Some(S::Held), C::Capture) => Move(S::Captured),
        (Some(S::Captured | S::Refunded), C::Capture) => Answer(HoldReply::Captured),
        (Some(S::Held), C::Void) => Move(S::Voided),
        (Some(S::Voided), C::Void) => Answer(HoldReply::Voided),
        // Nothing was held: voiding a declined hold has nothing to release.
        (Some(S::Declined), C::Void) => Answer(HoldReply::Voided),
        (Some(S::Captured), C::Refund) => Move(S::Refunded),
        (Some(S::Refunded), C::Refund) => Answer(HoldReply::Refunded),
        (Some(S::Captured | S::Refunded), C::Void) => Answer(HoldReply::Rejected("already_captured")),
        (Some(S::Voided | S::Declined), C::Capture) => Answer(HoldReply::Rejected("not_held")),
        (Some(S::Held | S::Voided | S::Declined), C::Refund) => Answer(HoldReply::Rejected("not_captured")),
    }
}

impl HoldStatus {
    /// The legal moves of a payment hold.
    pub fn move_to(self, to: HoldStatus) -> Result<HoldStatus, IllegalMove> {
        use HoldStatus::*;
        match (self, to) {
            (Held, Captured) | (Held, Voided) | (Captured, Refunded) => Ok(to),
            _ => Err(IllegalMove { from: self.as_str(), to: to.as_str() }),
        }
    }

    /// The reply that reports having reached this status.
    pub fn reply(self) -> HoldReply {
        match self {
            HoldStatus::Held => HoldReply::Held,
            HoldStatus::Captured => HoldReply::Captured,
            HoldStatus::Voided => HoldReply::Voided,
            HoldStatus::Refunded => HoldReply::Refunded,
            HoldStatus::Declined => HoldReply::Declined,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn operations_leave_queued_once() {
        assert_eq!(OperationStatus::Queued.move_to(OperationStatus::Applied), Ok(OperationStatus::Applied));
        assert_eq!(OperationStatus::Queued.move_to(OperationStatus::Rejected), Ok(OperationStatus::Rejected));
        assert!(OperationStatus::Applied.move_to(OperationStatus::Rejected).is_err());
        assert!(OperationStatus::Rejected.move_to(OperationStatus::Applied).is_err());
        assert!(OperationStatus::Queued.move_to(OperationStatus::Queued).is_err());
    }

    #[test]
    fn transfers_cancel_only_while_scheduled() {
        assert!(TransferStatus::Scheduled.cancelable());
        for s in [TransferStatus::Processing, TransferStatus::Settled, TransferStatus::Canceled, TransferStatus::Failed] {
            assert!(!s.cancelable(), "{s}");
        }
        assert_eq!(TransferStatus::Processing.move_to(TransferStatus::Failed), Ok(TransferStatus::Failed));
        assert!(TransferStatus::Scheduled.move_to(TransferStatus::Failed).is_err(), "a scheduled transfer starts its commit first");
        assert!(TransferStatus::Failed.move_to(TransferStatus::Settled).is_err());
        assert!(TransferStatus::Settled.move_to(TransferStatus::Failed).is_err());
        assert!(TransferStatus::Settled.move_to(TransferStatus::Processing).is_err());
        assert!(TransferStatus::Canceled.move_to(TransferStatus::Processing).is_err());
        for s in TransferStatus::ALL {
            assert_eq!(TransferStatus::parse(s.as_str()), Some(*s));
        }
    }

    #[test]
    fn holds_answer_repeats_the_same() {
        assert_eq!(decide_hold(None, HoldCommand::Hold), HoldDecision::Place);
        assert_eq!(decide_hold(Some(HoldStatus::Held), HoldCommand::Hold), HoldDecision::Answer(HoldReply::Held));
        assert_eq!(decide_hold(Some(HoldStatus::Declined), HoldCommand::Hold), HoldDecision::Answer(HoldReply::Declined));
        assert_eq!(decide_hold(Some(HoldStatus::Held), HoldCommand::Capture), HoldDecision::Move(HoldStatus::Captured));
        assert_eq!(decide_hold(Some(HoldStatus::Captured), HoldCommand::Capture), HoldDecision::Answer(HoldReply::Captured));
        assert_eq!(decide_hold(Some(HoldStatus::Voided), HoldCommand::Capture), HoldDecision::Answer(HoldReply::Rejected("not_held")));
        assert_eq!(decide_hold(None, HoldCommand::Refund), HoldDecision::Answer(HoldReply::Rejected("unknown_payment")));
    }

    fn status() -> impl Strategy<Value = Option<HoldStatus>> {
        prop_oneof![Just(None), proptest::sample::select(HoldStatus::ALL.to_vec()).prop_map(Some)]
    }

    fn command() -> impl Strategy<Value = HoldCommand> {
        proptest::sample::select(vec![HoldCommand::Hold, HoldCommand::Capture, HoldCommand::Void, HoldCommand::Refund])
    }

    proptest! {
        /// Every move a decision asks for is a legal move, and applying a command twice moves at most once.
        #[test]
        fn decisions_only_make_legal_moves_and_repeat_as_answers(start in status(), cmds in proptest::collection::vec(command(), 1..12)) {
            let mut state = start;
            for cmd in cmds {
                match decide_hold(state, cmd) {
                    HoldDecision::Place => { prop_assert!(state.is_none()); state = Some(HoldStatus::Held); }
                    HoldDecision::Move(to) => {
                        let from = state.expect("a move needs a hold");
                        prop_assert_eq!(from.move_to(to), Ok(to));
                        state = Some(to);
                        // The same command again is a pure answer.
                        prop_assert!(matches!(decide_hold(state, cmd), HoldDecision::Answer(r) if r == to.reply()));
                    }
                    HoldDecision::Answer(_) => {}
                }
            }
        }

        #[test]
        fn a_transfer_walk_never_leaves_a_final_state(moves in proptest::collection::vec(proptest::sample::select(TransferStatus::ALL.to_vec()), 0..10)) {
            let mut s = TransferStatus::Scheduled;
            for to in moves {
                if let Ok(next) = s.move_to(to) {
                    prop_assert!(s.holds_money());
                    s = next;
                }
            }
            if !s.holds_money() {
                for to in TransferStatus::ALL { prop_assert!(s.move_to(*to).is_err()); }
            }
        }
    }
}
