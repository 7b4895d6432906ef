//! The charge lifecycle, pure: a charge is `pending` while its attempts run, then `succeeded`,
//! `declined` or `failed` (dead-lettered after its retry budget); a succeeded charge may be
//! `refunded`, a pending or failed one `voided` by a refund that arrives first; an operator's
//! replay starts a new round of a `failed` one. [`on_charge_command`] decides what a charge
//! command does given the order's charge (if any) — the adapter ([`crate::charges::handle`])
//! only reads the row and carries the decision out.

/// A charge's status (the `charges.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeStatus {
    Pending,
    Succeeded,
    Declined,
    Failed,
    Voided,
    Refunded,
}

impl ChargeStatus {
    pub const ALL: [ChargeStatus; 6] = [Self::Pending, Self::Succeeded, Self::Declined, Self::Failed, Self::Voided, Self::Refunded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Voided => "voided",
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
            (Pending, Succeeded | Declined | Failed | Voided) | (Failed, Pending | Voided) | (Succeeded, Refunded)
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
        Some(s @ (Succeeded | Refunded | Declined | Voided)) => OnCharge::Reanswer(s),
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
        for s in [Succeeded, Refunded, Declined, Voided] {
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
