//! The hold lifecycle in one place, pure: HELD → CONFIRMED | RELEASED | EXPIRED, and what each
//! saga command does to a reservation. [`crate::commands`] loads the reservation under its row
//! lock, asks [`decide`], and applies the [`Effect`] with one conditional UPDATE.
//!
//! Every way out of HELD is final; a command that finds the hold gone answers with what it found,
//! so a redelivered or late command is harmless.

pub use sagaway_contract::status::HoldStatus;

/// What a command needs to know of the reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold<'a> {
    pub status: HoldStatus,
    pub user_id: &'a str,
    /// The order it is bound to, once locked.
    pub order_id: Option<&'a str>,
    /// Past its expiry time (the expiry job may not have swept it yet).
    pub lapsed: bool,
}

/// A saga command, as the hold sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCommand<'a> {
    Lock { order_id: &'a str, user_id: &'a str },
    Confirm { order_id: &'a str },
    Release { order_id: &'a str },
    /// The expiry job.
    Expire,
}

/// What to do to the reservation row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Bind it to the order (it stays HELD).
    Bind,
    Confirm,
    /// Leave HELD for RELEASED or EXPIRED and give the stock back.
    End(HoldStatus),
}

/// The answer to the saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Locked,
    /// The lock was refused: `not_found`, `wrong_user`, `expired`, `released`, `confirmed`, `locked_by_other_order`.
    Rejected(String),
    Confirmed,
    ConfirmFailed(String),
    /// The reservation's status after a release (the stock is back unless it is CONFIRMED or another order's HELD).
    Released(HoldStatus),
    /// The expiry job has nothing to say to anyone but the order the hold was bound to.
    Expired,
    Nothing,
}

/// The decision for `command` on `hold` (`None`: no such reservation).
pub fn decide(hold: Option<&Hold<'_>>, command: HoldCommand<'_>) -> (Option<Effect>, Answer) {
    let Some(h) = hold else {
        return match command {
            HoldCommand::Lock { .. } => (None, Answer::Rejected("not_found".into())),
            HoldCommand::Confirm { .. } => (None, Answer::ConfirmFailed("not_found".into())),
            HoldCommand::Release { .. } | HoldCommand::Expire => (None, Answer::Nothing),
        };
    };
    let held = h.status == HoldStatus::Held;
    let other_order = |order_id: &str| h.order_id.is_some_and(|o| o != order_id);
    match command {
        HoldCommand::Lock { order_id, user_id } => {
            if h.user_id != user_id {
                (None, Answer::Rejected("wrong_user".into()))
            } else if !held {
                (None, Answer::Rejected(h.status.as_str().to_ascii_lowercase()))
            } else if other_order(order_id) {
                (None, Answer::Rejected("locked_by_other_order".into()))
            } else if h.lapsed {
                // Lapsed but not swept yet: expire it now so its stock comes back.
                (Some(Effect::End(HoldStatus::Expired)), Answer::Rejected("expired".into()))
            } else {
                (Some(Effect::Bind), Answer::Locked)
            }
        }
        HoldCommand::Confirm { order_id } => match h.status {
            HoldStatus::Confirmed if h.order_id == Some(order_id) => (None, Answer::Confirmed),
            HoldStatus::Held if other_order(order_id) => (None, Answer::ConfirmFailed("locked_by_other_order".into())),
            HoldStatus::Held if h.lapsed => (Some(Effect::End(HoldStatus::Expired)), Answer::ConfirmFailed("expired".into())),
            HoldStatus::Held => (Some(Effect::Confirm), Answer::Confirmed),
            other => (None, Answer::ConfirmFailed(other.as_str().to_ascii_lowercase())),
        },
        HoldCommand::Release { order_id } => {
            if held && other_order(order_id) {
                // Another order holds it: releasing would take its stock away. Leave it alone.
                (None, Answer::Released(HoldStatus::Held))
            } else if held {
                (Some(Effect::End(HoldStatus::Released)), Answer::Released(HoldStatus::Released))
            } else {
                (None, Answer::Released(h.status)) // already CONFIRMED / RELEASED / EXPIRED
            }
        }
        HoldCommand::Expire if held && h.lapsed => (Some(Effect::End(HoldStatus::Expired)), Answer::Expired),
        HoldCommand::Expire => (None, Answer::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(status: HoldStatus, order_id: Option<&'static str>, lapsed: bool) -> Hold<'static> {
        Hold { status, user_id: "alice", order_id, lapsed }
    }
    const LOCK: HoldCommand<'static> = HoldCommand::Lock { order_id: "o1", user_id: "alice" };

    #[test]
    fn lock_binds_a_live_hold_of_the_same_user() {
        assert_eq!(decide(Some(&hold(HoldStatus::Held, None, false)), LOCK), (Some(Effect::Bind), Answer::Locked));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o1"), false)), LOCK), (Some(Effect::Bind), Answer::Locked), "a redelivered lock");
    }

    #[test]
    fn lock_refuses_other_users_other_orders_ended_and_lapsed_holds() {
        let bob = HoldCommand::Lock { order_id: "o1", user_id: "bob" };
        assert_eq!(decide(Some(&hold(HoldStatus::Held, None, false)), bob).1, Answer::Rejected("wrong_user".into()));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o2"), false)), LOCK).1, Answer::Rejected("locked_by_other_order".into()));
        assert_eq!(decide(Some(&hold(HoldStatus::Released, None, false)), LOCK).1, Answer::Rejected("released".into()));
        assert_eq!(decide(None, LOCK).1, Answer::Rejected("not_found".into()));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, None, true)), LOCK), (Some(Effect::End(HoldStatus::Expired)), Answer::Rejected("expired".into())));
    }

    #[test]
    fn confirm_sells_only_the_orders_own_live_hold_and_is_idempotent() {
        let confirm = HoldCommand::Confirm { order_id: "o1" };
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o1"), false)), confirm), (Some(Effect::Confirm), Answer::Confirmed));
        assert_eq!(decide(Some(&hold(HoldStatus::Confirmed, Some("o1"), false)), confirm), (None, Answer::Confirmed));
        assert_eq!(decide(Some(&hold(HoldStatus::Confirmed, Some("o2"), false)), confirm).1, Answer::ConfirmFailed("confirmed".into()));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o2"), false)), confirm).1, Answer::ConfirmFailed("locked_by_other_order".into()));
        assert_eq!(decide(Some(&hold(HoldStatus::Expired, Some("o1"), true)), confirm).1, Answer::ConfirmFailed("expired".into()));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o1"), true)), confirm).0, Some(Effect::End(HoldStatus::Expired)));
    }

    #[test]
    fn release_gives_stock_back_once_and_never_another_orders() {
        let release = HoldCommand::Release { order_id: "o1" };
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o1"), false)), release), (Some(Effect::End(HoldStatus::Released)), Answer::Released(HoldStatus::Released)));
        assert_eq!(decide(Some(&hold(HoldStatus::Released, Some("o1"), false)), release), (None, Answer::Released(HoldStatus::Released)));
        assert_eq!(decide(Some(&hold(HoldStatus::Expired, Some("o1"), true)), release), (None, Answer::Released(HoldStatus::Expired)));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, Some("o2"), false)), release), (None, Answer::Released(HoldStatus::Held)));
    }

    #[test]
    fn expiry_ends_only_lapsed_holds() {
        assert_eq!(decide(Some(&hold(HoldStatus::Held, None, true)), HoldCommand::Expire).0, Some(Effect::End(HoldStatus::Expired)));
        assert_eq!(decide(Some(&hold(HoldStatus::Held, None, false)), HoldCommand::Expire).0, None);
        assert_eq!(decide(Some(&hold(HoldStatus::Confirmed, None, true)), HoldCommand::Expire).0, None);
    }

    #[test]
    fn every_way_out_of_held_is_final() {
        for end in [HoldStatus::Confirmed, HoldStatus::Released, HoldStatus::Expired] {
            for cmd in [LOCK, HoldCommand::Confirm { order_id: "o1" }, HoldCommand::Release { order_id: "o1" }, HoldCommand::Expire] {
                let (effect, _) = decide(Some(&hold(end, Some("o1"), true)), cmd);
                assert_eq!(effect, None, "{end:?} moved by {cmd:?}");
            }
        }
    }
}
