//! The charge lifecycle, pure: a charge is `pending` while its attempts run, then `succeeded`,
//! `declined` or `failed` (dead-lettered after its retry budget); a succeeded charge may be
//! `refunded`, a pending or failed one `voided` by a refund that arrives first; an operator's
//! replay starts a new round of a `failed` one. [`on_charge_command`] decides what a charge
//! command does given the order's charge (if any) — the adapter ([`crate::charges::handle`])
//! only reads the row and carries the decision out.
//!
//! A charge paid from a bank account ([`crate::bank`]) has no attempts: it is `pending` from the
//! hold it asks of the bank until the bank's answer, and [`on_bank_reply`] decides what each
//! answer does. Its refund waits for the bank too: `succeeded → refunding → refunded`.

/// A charge's status (the `charges.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeStatus {
    Pending,
    Succeeded,
    Declined,
    Failed,
    Voided,
    /// An account charge's refund was asked of the bank and is not confirmed yet.
    Refunding,
    Refunded,
}

impl ChargeStatus {
    pub const ALL: [ChargeStatus; 7] = [Self::Pending, Self::Succeeded, Self::Declined, Self::Failed, Self::Voided, Self::Refunding, Self::Refunded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Voided => "voided",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The moves a charge may make. Everything else is refused (and would be a bug).
    pub fn may_become(self, next: ChargeStatus) -> bool {
        use ChargeStatus::*;
        matches!(
            (self, next),
            (Pending, Succeeded | Declined | Failed | Voided) | (Failed, Pending | Voided) | (Succeeded, Refunded | Refunding) | (Refunding, Refunded)
        )
    }
}

/// What a charge command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCharge {
    /// No charge yet: validate, open the card, insert it `pending`, attempt 1.
    Start,
    /// The order was refunded (cancelled) before any charge: answer declined `order_cancelled`.
    Cancelled,
    /// Already decided: answer again with the stored outcome, capture nothing.
    Reanswer(ChargeStatus),
    /// The pending chain's next attempt `n`.
    Attempt(u32),
    /// A replay of a dead-lettered charge: a new round with a fresh budget, attempt 1.
    NewRound,
    /// Nothing to do (why, for the log).
    Drop(&'static str),
}

/// Decides a charge command. `retry_attempt` is the retry chain's attempt number (none for a fresh
/// command or a replay); `attempts_in_round` counts the attempts of the current round.
pub fn on_charge_command(existing: Option<ChargeStatus>, refunded_before: bool, retry_attempt: Option<u32>, attempts_in_round: i64) -> OnCharge {
    use ChargeStatus::*;
    match existing {
        None if refunded_before => OnCharge::Cancelled,
        None => OnCharge::Start,
        Some(s @ (Succeeded | Refunding | Refunded | Declined | Voided)) => OnCharge::Reanswer(s),
        // Only the retry chain moves a pending charge on; a fresh command meanwhile would fork a
        // second chain. The chain's outcome answers both.
        Some(Pending) => match retry_attempt {
            None => OnCharge::Drop("charge already in progress; its outcome will answer this command"),
            Some(n) if i64::from(n) == attempts_in_round + 1 => OnCharge::Attempt(n),
            Some(_) => OnCharge::Drop("stale retry"),
        },
        Some(Failed) if retry_attempt.is_some() => OnCharge::Drop("retry of a finished round"),
        Some(Failed) => OnCharge::NewRound,
    }
}

/// An answer of the bank on `bank.replies`, as the lifecycle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankAnswer {
    Held,
    Declined,
    Captured,
    Voided,
    Refunded,
    Rejected,
}

impl BankAnswer {
    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "held" => Self::Held,
            "declined" => Self::Declined,
            "captured" => Self::Captured,
            "voided" => Self::Voided,
            "refunded" => Self::Refunded,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
}

/// What a bank answer does to an account charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBankReply {
    /// The hold is in place: ask the bank to capture it.
    Capture,
    /// The capture landed: the charge succeeded (ledger, `charged`).
    Succeed,
    /// The bank refused the hold: the charge is declined with the bank's reason (`declined`).
    Decline,
    /// A capture landed for a charge voided meanwhile (its order's refund came first): give the
    /// money back at the bank; the saga, already answered, hears nothing more.
    RefundLateCapture,
    /// A hold landed for a charge already declined (the bank had dead-lettered its first hold and
    /// the letter was replayed): release it at the bank; the saga heard its answer long ago.
    VoidLateHold,
    /// The refund landed: the charge is refunded (ledger, `refunded`).
    FinishRefund,
    /// Nothing to do (why, for the log): a duplicate, a late or an unexpected answer.
    Ignore(&'static str),
}

/// Decides a bank answer for the charge it names (`None`: no such charge here).
pub fn on_bank_reply(charge: Option<ChargeStatus>, answer: BankAnswer) -> OnBankReply {
    use BankAnswer as A;
    use ChargeStatus::*;
    match (charge, answer) {
        (None, _) => OnBankReply::Ignore("no charge for this payment"),
        (Some(Pending), A::Held) => OnBankReply::Capture,
        (Some(Pending), A::Captured) => OnBankReply::Succeed,
        (Some(Pending), A::Declined) => OnBankReply::Decline,
        (Some(Voided), A::Captured) => OnBankReply::RefundLateCapture,
        // Declined here (the bank dead-lettered the hold) yet held later (the dead letter replayed):
        // nothing will capture it, so it is voided.
        (Some(Declined), A::Held) => OnBankReply::VoidLateHold,
        (Some(Refunding), A::Refunded) => OnBankReply::FinishRefund,
        // A void answers `rejected already_captured` when the capture got there first: its
        // `captured` came before it and was refunded as a late capture.
        (Some(_), A::Rejected) => OnBankReply::Ignore("the bank rejected a command that no longer fits the hold"),
        (Some(Voided), A::Held | A::Voided | A::Declined | A::Refunded) => OnBankReply::Ignore("the charge was voided; the bank's hold is voided or refunded"),
        (Some(_), _) => OnBankReply::Ignore("a duplicate or late answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::{ChargeStatus::*, *};

    #[test]
    fn a_first_command_starts_a_charge_unless_the_order_was_cancelled() {
        assert_eq!(on_charge_command(None, false, None, 0), OnCharge::Start);
        assert_eq!(on_charge_command(None, true, None, 0), OnCharge::Cancelled);
    }

    #[test]
    fn a_decided_charge_is_answered_again_never_captured_twice() {
        for s in [Succeeded, Refunding, Refunded, Declined, Voided] {
            assert_eq!(on_charge_command(Some(s), false, None, 3), OnCharge::Reanswer(s));
            assert_eq!(on_charge_command(Some(s), false, Some(2), 1), OnCharge::Reanswer(s), "a late retry of {s:?}");
        }
    }

    #[test]
    fn only_the_retry_chains_next_attempt_moves_a_pending_charge() {
        assert_eq!(on_charge_command(Some(Pending), false, Some(2), 1), OnCharge::Attempt(2));
        assert!(matches!(on_charge_command(Some(Pending), false, Some(2), 2), OnCharge::Drop(_)), "a duplicate retry");
        assert!(matches!(on_charge_command(Some(Pending), false, None, 1), OnCharge::Drop(_)), "a second command would fork a chain");
    }

    #[test]
    fn a_replay_of_a_failed_charge_opens_a_new_round_but_a_stale_retry_does_not() {
        assert_eq!(on_charge_command(Some(Failed), false, None, 5), OnCharge::NewRound);
        assert!(matches!(on_charge_command(Some(Failed), false, Some(6), 5), OnCharge::Drop(_)));
    }

    #[test]
    fn an_account_charge_is_held_then_captured_or_declined_once() {
        use BankAnswer as A;
        assert_eq!(on_bank_reply(Some(Pending), A::Held), OnBankReply::Capture);
        assert_eq!(on_bank_reply(Some(Pending), A::Captured), OnBankReply::Succeed);
        assert_eq!(on_bank_reply(Some(Pending), A::Declined), OnBankReply::Decline);
        for done in [Succeeded, Declined, Refunding, Refunded] {
            for answer in [A::Held, A::Captured, A::Declined] {
                if (done, answer) == (Declined, A::Held) {
                    continue;
                }
                assert!(matches!(on_bank_reply(Some(done), answer), OnBankReply::Ignore(_)), "{answer:?} on a {done:?} charge moves nothing");
            }
        }
        assert!(matches!(on_bank_reply(None, A::Captured), OnBankReply::Ignore(_)));
    }

    #[test]
    fn a_hold_that_lands_after_the_charge_was_declined_is_voided() {
        // The bank declined a hold it dead-lettered (`bank_error`); a replay of the letter holds.
        assert_eq!(on_bank_reply(Some(Declined), BankAnswer::Held), OnBankReply::VoidLateHold);
    }

    #[test]
    fn a_refund_finishes_once_and_a_capture_after_a_void_is_given_back() {
        use BankAnswer as A;
        assert_eq!(on_bank_reply(Some(Refunding), A::Refunded), OnBankReply::FinishRefund);
        assert!(matches!(on_bank_reply(Some(Refunded), A::Refunded), OnBankReply::Ignore(_)), "a duplicate refund answer");
        assert_eq!(on_bank_reply(Some(Voided), A::Captured), OnBankReply::RefundLateCapture);
        assert!(matches!(on_bank_reply(Some(Voided), A::Held), OnBankReply::Ignore(_)), "the void sent after the hold releases it");
        assert!(matches!(on_bank_reply(Some(Voided), A::Rejected), OnBankReply::Ignore(_)));
        assert!(Succeeded.may_become(Refunding) && Refunding.may_become(Refunded) && !Refunding.may_become(Succeeded));
        for s in ["held", "declined", "captured", "voided", "refunded", "rejected"] {
            assert!(BankAnswer::parse(s).is_some(), "{s}");
        }
        assert_eq!(BankAnswer::parse("maybe"), None);
    }

    #[test]
    fn the_lifecycle_moves_only_forward() {
        assert!(Pending.may_become(Succeeded) && Succeeded.may_become(Refunded) && Failed.may_become(Pending));
        for terminal in [Declined, Voided, Refunded] {
            for next in ChargeStatus::ALL {
                assert!(!terminal.may_become(next), "{terminal:?} → {next:?}");
            }
        }
        assert!(!Succeeded.may_become(Pending), "a capture is never retried");
        assert!(!Succeeded.may_become(Voided), "a capture is refunded, not voided");
        for s in ChargeStatus::ALL {
            assert_eq!(ChargeStatus::parse(s.as_str()), Some(s));
        }
    }
}
