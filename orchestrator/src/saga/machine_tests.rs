//! The saga state machine without any server: every transition, legal and illegal, and a property
//! test that drives it against a simulated product service and payment processor with duplicated,
//! reordered and late replies.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use OrderStatus as S;

const PLAIN: Settings = Settings { risk_check: false };
const RISKY: Settings = Settings { risk_check: true };

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn order() -> SagaState {
    SagaState::accepted(dec("19.99"), "USD")
}

/// Applies events in order, panicking on an illegal one; returns the final transition.
fn run(mut state: SagaState, events: Vec<SagaEvent>, settings: Settings) -> (SagaState, Vec<OrderStatus>, Vec<Command>) {
    let (mut statuses, mut commands) = (vec![], vec![]);
    for e in events {
        let t = step(&state, e.clone(), settings).unwrap_or_else(|err| panic!("{e:?}: {err}"));
        statuses.extend(t.statuses.iter().map(|(s, _)| *s));
        commands.extend(t.commands);
        state = t.state;
    }
    (state, statuses, commands)
}

fn locked() -> SagaEvent {
    SagaEvent::ReservationLocked { amount: dec("19.99") }
}
fn charged() -> SagaEvent {
    SagaEvent::Charged { amount: dec("19.99"), currency: Some("USD".into()) }
}
fn release(reason: &str) -> Command {
    Command::ReleaseReservation { reason: reason.into() }
}
fn refund(reason: &str) -> Command {
    Command::Refund { reason: reason.into() }
}

#[test]
fn happy_path_reaches_completed_through_every_public_status() {
    let (s, statuses, commands) =
        run(order(), vec![SagaEvent::Started, locked(), charged(), SagaEvent::ReservationConfirmed], PLAIN);
    assert_eq!(statuses, [S::ReservationLocked, S::PaymentPending, S::Paid, S::Completed]);
    assert_eq!(commands, [Command::LockReservation, Command::Charge, Command::ConfirmReservation]);
    assert_eq!((s.hold, s.capture, s.compensating), (Hold::Sold, Capture::Captured, false));
}

#[test]
fn risk_step_runs_between_the_lock_and_the_charge_only_when_enabled() {
    let t = step(&order(), locked(), RISKY).unwrap();
    assert_eq!(t.statuses, [(S::ReservationLocked, None)]);
    assert_eq!(t.commands, [Command::AssessRisk]);
    let t = step(&t.state, SagaEvent::RiskAssessed(RiskVerdict::Accept), RISKY).unwrap();
    assert_eq!(t.statuses, [(S::PaymentPending, None)]);
    assert_eq!(t.commands, [Command::Charge]);
    // Disabled, a verdict is not awaited.
    let plain = step(&order(), locked(), PLAIN).unwrap().state;
    assert!(step(&plain, SagaEvent::RiskAssessed(RiskVerdict::Accept), PLAIN).is_err());
}

#[test]
fn risk_rejection_declines_and_releases_the_hold() {
    let (s, statuses, commands) = run(
        order(),
        vec![locked(), SagaEvent::RiskAssessed(RiskVerdict::Reject { rule: "amount over 100".into() }), SagaEvent::ReservationReleased { expired: false }],
        RISKY,
    );
    assert_eq!(statuses, [S::ReservationLocked, S::Declined, S::Compensated]);
    assert_eq!(commands, [Command::AssessRisk, release("risk_rejected")]);
    assert_eq!(s.reason.as_deref(), Some("risk_rejected"));
    assert_eq!(s.capture, Capture::None, "nothing charged");
}

#[test]
fn refused_lock_compensates_at_once_with_nothing_to_undo() {
    let (s, statuses, commands) = run(order(), vec![SagaEvent::ReservationRejected { reason: "expired".into() }], PLAIN);
    assert_eq!(statuses, [S::Compensated]);
    assert!(commands.is_empty());
    assert_eq!(s.reason.as_deref(), Some("reservation_expired"));
}

#[test]
fn a_changed_hold_total_is_never_charged() {
    let (s, statuses, commands) = run(
        order(),
        vec![SagaEvent::ReservationLocked { amount: dec("0.01") }, SagaEvent::ReservationReleased { expired: false }],
        PLAIN,
    );
    assert_eq!(statuses, [S::ReservationLocked, S::Compensated]);
    assert_eq!(commands, [release("amount_mismatch")]);
    assert_eq!(s.hold, Hold::Gone);
}

#[test]
fn decline_releases_the_hold_then_compensates() {
    let (s, statuses, commands) = run(
        order(),
        vec![locked(), SagaEvent::Declined { reason: "card_declined".into() }, SagaEvent::ReservationReleased { expired: false }],
        PLAIN,
    );
    assert_eq!(statuses, [S::ReservationLocked, S::PaymentPending, S::Declined, S::Compensated]);
    assert_eq!(commands, [Command::Charge, release("card_declined")]);
    assert_eq!(s.reason.as_deref(), Some("card_declined"));
}

#[test]
fn a_dead_lettered_charge_parks_the_order_until_replay_or_abandon() {
    let parked = run(order(), vec![locked(), SagaEvent::ChargeFailed { reason: "processing_error after 5 attempts".into() }], PLAIN).0;
    assert_eq!(parked.status, S::Failed);
    assert_eq!(parked.hold, Hold::Held, "the hold stays while parked");
    // Replay: back into the flow, then completes.
    let (s, statuses, _) = run(parked.clone(), vec![SagaEvent::Replayed { dead_letter: 7 }, charged(), SagaEvent::ReservationConfirmed], PLAIN);
    assert_eq!(statuses, [S::PaymentPending, S::Paid, S::Completed]);
    assert_eq!(s.status, S::Completed);
    // Abandon: compensated.
    let (s, statuses, commands) =
        run(parked, vec![SagaEvent::Abandoned { dead_letter: 7 }, SagaEvent::ReservationReleased { expired: false }], PLAIN);
    assert_eq!(statuses, [S::Compensated]);
    assert_eq!(commands, [release("abandoned (dead letter 7)")]);
    assert_eq!(s.status, S::Compensated);
}

/// Defect 1: a hold that expires while the charge is in flight ends the order COMPENSATED; a
/// capture that lands afterwards is refunded exactly once.
#[test]
fn hold_expiring_while_payment_pending_compensates_and_refunds_a_late_capture() {
    let pending = run(order(), vec![locked()], PLAIN).0;
    assert_eq!(pending.status, S::PaymentPending);
    let t = step(&pending, SagaEvent::ReservationReleased { expired: true }, PLAIN).unwrap();
    assert_eq!(t.statuses, [(S::Compensated, Some("reservation_expired".into()))]);
    assert!(t.commands.is_empty(), "the stock is already back: no release");
    let t = step(&t.state, charged(), PLAIN).unwrap();
    assert_eq!(t.commands, [refund("late_capture")]);
    assert!(t.statuses.is_empty(), "terminal absorbs");
    assert!(step(&t.state, charged(), PLAIN).is_err(), "a duplicate capture is not refunded twice");
    let t = step(&t.state, SagaEvent::Refunded { amount: dec("19.99") }, PLAIN).unwrap();
    assert_eq!((t.state.status, t.state.capture), (S::Compensated, Capture::Refunded));
}

#[test]
fn hold_expiring_while_parked_or_paid_compensates() {
    let parked = run(order(), vec![locked(), SagaEvent::ChargeFailed { reason: "x".into() }], PLAIN).0;
    let t = step(&parked, SagaEvent::ReservationReleased { expired: true }, PLAIN).unwrap();
    assert_eq!(t.state.status, S::Compensated);
    let paid = run(order(), vec![locked(), charged()], PLAIN).0;
    let (s, statuses, commands) =
        run(paid, vec![SagaEvent::ReservationReleased { expired: true }, SagaEvent::Refunded { amount: dec("19.99") }], PLAIN);
    assert_eq!(commands, [refund("reservation_expired")]);
    assert_eq!(statuses, [S::Compensated]);
    assert!(step(&s, SagaEvent::ReservationConfirmFailed { reason: "expired".into() }, PLAIN).is_err());
}

/// Defect 5: a capture of another amount or currency is refunded, the hold released, and alerted.
#[test]
fn a_charge_for_other_figures_is_compensated_and_alerts() {
    let pending = run(order(), vec![locked()], PLAIN).0;
    for bad in [
        SagaEvent::Charged { amount: dec("1999"), currency: Some("USD".into()) },
        SagaEvent::Charged { amount: dec("19.99"), currency: Some("JPY".into()) },
    ] {
        let t = step(&pending, bad, PLAIN).unwrap();
        assert!(t.alert.as_deref().unwrap().starts_with("charge_mismatch"));
        assert_eq!(t.commands, [release("charge_mismatch"), refund("charge_mismatch")]);
        assert!(!t.statuses.iter().any(|(s, _)| *s == S::Paid));
        let (s, statuses, _) =
            run(t.state, vec![SagaEvent::Refunded { amount: dec("1") }, SagaEvent::ReservationReleased { expired: false }], PLAIN);
        assert_eq!((s.status, statuses), (S::Compensated, vec![S::Compensated]));
    }
}

#[test]
fn failed_confirmation_refunds_then_compensates() {
    let (s, statuses, commands) = run(
        order(),
        vec![locked(), charged(), SagaEvent::ReservationConfirmFailed { reason: "expired".into() }, SagaEvent::Refunded { amount: dec("19.99") }],
        PLAIN,
    );
    assert_eq!(statuses, [S::ReservationLocked, S::PaymentPending, S::Paid, S::Compensated]);
    assert_eq!(commands.last(), Some(&refund("reservation_expired")));
    assert_eq!((s.hold, s.capture), (Hold::Gone, Capture::Refunded));
}

#[test]
fn an_order_whose_card_is_gone_is_never_charged() {
    let mut s = order();
    s.card_on_file = false;
    let t = step(&s, locked(), PLAIN).unwrap();
    assert_eq!(t.commands, [release("card_unavailable")]);
}

#[test]
fn illegal_events_are_refused() {
    let pending = run(order(), vec![locked()], PLAIN).0;
    let completed = run(order(), vec![locked(), charged(), SagaEvent::ReservationConfirmed], PLAIN).0;
    let fresh = order();
    let cases: Vec<(&SagaState, SagaEvent)> = vec![
        (&fresh, SagaEvent::ReservationConfirmed),
        (&fresh, SagaEvent::Replayed { dead_letter: 1 }),
        (&pending, SagaEvent::Started),
        (&pending, locked()),
        (&pending, SagaEvent::ReservationConfirmed),
        (&pending, SagaEvent::Refunded { amount: Decimal::ONE }),
        (&pending, SagaEvent::Abandoned { dead_letter: 1 }),
        (&pending, SagaEvent::ReservationReleased { expired: false }),
        (&completed, SagaEvent::Declined { reason: "x".into() }),
        (&completed, charged()),
        (&completed, SagaEvent::ReservationReleased { expired: true }),
        (&completed, SagaEvent::ChargeFailed { reason: "x".into() }),
    ];
    for (state, event) in cases {
        let name = event.name();
        let err = step(state, event, PLAIN).expect_err(name);
        assert_eq!(err.status, state.status);
    }
}

/// A compensation whose step was dead-lettered waits (COMPENSATING for good, before); an
/// operator who settled the step by hand resolves it, and the order ends COMPENSATED — once: the
/// same resolution again, or the participant's late answer, is refused and changes nothing.
#[test]
fn a_dead_lettered_compensation_step_resolved_by_an_operator_ends_compensated_once() {
    // Paid, then the confirmation failed: only the refund remains, and it was dead-lettered.
    let refunding = run(order(), vec![locked(), charged(), SagaEvent::ReservationConfirmFailed { reason: "expired".into() }], PLAIN).0;
    assert_eq!((refunding.status, refunding.capture, refunding.compensating), (S::Paid, Capture::Refunding, true));
    let t = step(&refunding, SagaEvent::CompensationResolved { dead_letter: 7, step: Settled::Refund }, PLAIN).unwrap();
    assert_eq!((t.state.status, t.state.capture), (S::Compensated, Capture::Refunded));
    assert!(t.commands.is_empty(), "resolving sends nothing: {:?}", t.commands);
    for again in [SagaEvent::CompensationResolved { dead_letter: 7, step: Settled::Refund }, SagaEvent::Refunded { amount: dec("19.99") }] {
        assert!(step(&t.state, again.clone(), PLAIN).is_err(), "{again:?} after the resolution");
    }
    // Declined: only the release remains.
    let releasing = run(order(), vec![locked(), SagaEvent::Declined { reason: "card_declined".into() }], PLAIN).0;
    assert_eq!(releasing.hold, Hold::Releasing);
    assert!(step(&releasing, SagaEvent::CompensationResolved { dead_letter: 8, step: Settled::Refund }, PLAIN).is_err(), "no refund awaited");
    let t = step(&releasing, SagaEvent::CompensationResolved { dead_letter: 8, step: Settled::Release }, PLAIN).unwrap();
    assert_eq!((t.state.status, t.state.hold), (S::Compensated, Hold::Gone));
    assert!(step(&t.state, SagaEvent::ReservationReleased { expired: false }, PLAIN).is_err());
    // Both pending (a charge for other figures): resolving one leaves the order waiting on the other.
    let both = run(order(), vec![locked(), SagaEvent::Charged { amount: dec("20.00"), currency: Some("USD".into()) }], PLAIN).0;
    assert_eq!((both.hold, both.capture), (Hold::Releasing, Capture::Refunding));
    let t = step(&both, SagaEvent::CompensationResolved { dead_letter: 9, step: Settled::Refund }, PLAIN).unwrap();
    assert!(!t.state.status.is_terminal() && t.state.compensating, "{:?}", t.state);
    let t = step(&t.state, SagaEvent::ReservationReleased { expired: false }, PLAIN).unwrap();
    assert_eq!(t.state.status, S::Compensated);
    // A completed order has nothing to resolve.
    let completed = run(order(), vec![locked(), charged(), SagaEvent::ReservationConfirmed], PLAIN).0;
    for step_ in [Settled::Release, Settled::Refund] {
        assert!(step(&completed, SagaEvent::CompensationResolved { dead_letter: 10, step: step_ }, PLAIN).is_err());
    }
}

/// A capture the saga never asked for (no lock) is refunded, never kept.
#[test]
fn a_capture_without_a_lock_is_refunded() {
    let t = step(&order(), charged(), PLAIN).unwrap();
    assert_eq!(t.commands, [refund("late_capture")]);
    assert_eq!(t.state.status, S::Accepted);
}

#[test]
fn statuses_round_trip_through_their_names() {
    for s in OrderStatus::ALL {
        assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(OrderStatus::parse("accepted"), None);
}

#[test]
fn docs_saga_md_carries_the_step_table() {
    let doc = include_str!("../../../docs/saga.md");
    let table = steps_markdown();
    assert!(doc.contains(&table), "docs/saga.md must contain the step table generated from ORDER_SAGA:\n{table}");
}

// ------------------------------------------------------------------ the property test

/// The product service and payment processor as the saga's peers see them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reservation {
    Held { bound: bool },
    Released,
    Expired,
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChargeOutcome {
    Approve,
    Decline,
    DeadLetter,
    /// Captures another amount (a misbehaving processor).
    WrongAmount,
}

#[derive(Debug, Clone)]
enum Action {
    /// Deliver the in-flight message at this index (mod len); keep a copy when `dup`.
    Deliver { at: usize, dup: bool },
    /// The reservation's expiry job runs.
    Expire,
    /// An operator replays (or abandons) a parked order.
    Operate { replay: bool },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (any::<usize>(), prop::bool::weighted(0.25)).prop_map(|(at, dup)| Action::Deliver { at, dup }),
        1 => Just(Action::Expire),
        1 => any::<bool>().prop_map(|replay| Action::Operate { replay }),
    ]
}

fn outcome() -> impl Strategy<Value = ChargeOutcome> {
    prop_oneof![
        4 => Just(ChargeOutcome::Approve),
        2 => Just(ChargeOutcome::Decline),
        2 => Just(ChargeOutcome::DeadLetter),
        1 => Just(ChargeOutcome::WrongAmount),
    ]
}

struct World {
    state: SagaState,
    settings: Settings,
    reservation: Reservation,
    in_flight: Vec<SagaEvent>,
    outcomes: Vec<ChargeOutcome>,
    risk: Vec<bool>,
    /// What the processor decided for this order (it keeps one charge per order).
    decided: Option<ChargeOutcome>,
    captures: u32,
    refunds: u32,
    lock_granted: bool,
    was_terminal: Option<OrderStatus>,
}

impl World {
    fn apply(&mut self, event: SagaEvent) {
        let Ok(t) = step(&self.state, event, self.settings) else { return };
        if let Some(done) = self.was_terminal {
            assert_eq!(t.state.status, done, "a terminal status never changes");
            assert!(t.statuses.is_empty(), "a terminal order enters no status");
        }
        self.state = t.state;
        if self.state.status.is_terminal() {
            self.was_terminal = Some(self.state.status);
        }
        for c in t.commands {
            self.perform(c);
        }
    }

    /// A participant carries out a command; its reply goes in flight (the risk check answers inline).
    fn perform(&mut self, c: Command) {
        let reply = match c {
            Command::LockReservation => match self.reservation {
                Reservation::Held { .. } => {
                    self.reservation = Reservation::Held { bound: true };
                    self.lock_granted = true;
                    SagaEvent::ReservationLocked { amount: self.state.amount }
                }
                _ => SagaEvent::ReservationRejected { reason: "expired".into() },
            },
            Command::AssessRisk => {
                let ok = self.risk.pop().unwrap_or(true);
                let verdict = if ok { RiskVerdict::Accept } else { RiskVerdict::Reject { rule: "limit".into() } };
                return self.apply(SagaEvent::RiskAssessed(verdict));
            }
            Command::Charge => {
                assert!(self.lock_granted, "nothing is charged without a lock");
                let outcome = match self.decided {
                    Some(ChargeOutcome::DeadLetter) | None => self.outcomes.pop().unwrap_or(ChargeOutcome::Approve),
                    Some(decided) => decided,
                };
                self.decided = Some(outcome);
                let captured_now = matches!(outcome, ChargeOutcome::Approve | ChargeOutcome::WrongAmount) && self.captures == 0;
                if captured_now {
                    self.captures += 1;
                }
                match outcome {
                    ChargeOutcome::Approve => SagaEvent::Charged { amount: self.state.amount, currency: Some("USD".into()) },
                    ChargeOutcome::WrongAmount => SagaEvent::Charged { amount: self.state.amount + Decimal::ONE, currency: Some("USD".into()) },
                    ChargeOutcome::Decline => SagaEvent::Declined { reason: "card_declined".into() },
                    ChargeOutcome::DeadLetter => SagaEvent::ChargeFailed { reason: "processing_error".into() },
                }
            }
            Command::ConfirmReservation => match self.reservation {
                Reservation::Held { bound: true } | Reservation::Confirmed => {
                    self.reservation = Reservation::Confirmed;
                    SagaEvent::ReservationConfirmed
                }
                _ => SagaEvent::ReservationConfirmFailed { reason: "expired".into() },
            },
            Command::ReleaseReservation { .. } => {
                if let Reservation::Held { .. } = self.reservation {
                    self.reservation = Reservation::Released;
                }
                SagaEvent::ReservationReleased { expired: false }
            }
            Command::Refund { .. } => {
                assert!(self.refunds < self.captures, "a refund is only asked for a capture not yet refunded");
                self.refunds += 1;
                SagaEvent::Refunded { amount: self.state.amount }
            }
        };
        self.in_flight.push(reply);
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Deliver { at, dup } => {
                if self.in_flight.is_empty() {
                    return;
                }
                let mut i = at % self.in_flight.len();
                // Product replies share a partition (keyed by user): an expiry notice never
                // overtakes the lock reply before it. Everything else may arrive in any order.
                if self.in_flight[i] == (SagaEvent::ReservationReleased { expired: true })
                    && let Some(lock) = self.in_flight.iter().position(|e| matches!(e, SagaEvent::ReservationLocked { .. }))
                {
                    i = lock;
                }
                let e = if dup { self.in_flight[i].clone() } else { self.in_flight.remove(i) };
                self.apply(e);
            }
            Action::Expire => {
                if let Reservation::Held { bound } = self.reservation {
                    self.reservation = Reservation::Expired;
                    if bound {
                        self.in_flight.push(SagaEvent::ReservationReleased { expired: true });
                    }
                }
            }
            Action::Operate { replay } => {
                let event = if replay { SagaEvent::Replayed { dead_letter: 1 } } else { SagaEvent::Abandoned { dead_letter: 1 } };
                if step(&self.state, event.clone(), self.settings).is_ok() {
                    self.apply(event);
                    if replay {
                        self.perform(Command::Charge); // the DLQ republishes the charge
                    }
                }
            }
        }
    }

    /// Deliver everything; the expiry job and an operator end whatever is still parked.
    fn settle(&mut self) {
        for _ in 0..100 {
            while !self.in_flight.is_empty() {
                let e = self.in_flight.remove(0);
                self.apply(e);
            }
            if self.state.status.is_terminal() {
                return;
            }
            if self.state.status == OrderStatus::Failed {
                // An operator is only needed while the hold lasts: a parked order whose hold
                // expired has compensated on its own (defect 1).
                assert!(matches!(self.reservation, Reservation::Held { .. }), "parked with an expired hold: {:?}", self.state);
                self.act(Action::Operate { replay: false });
            } else {
                self.act(Action::Expire);
            }
        }
        panic!("the saga never settled: {:?}", self.state);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the order, duplication and timing of replies: the order ends terminal, a terminal
    /// status never changes, nothing is charged without a lock, a capture is refunded at most
    /// once, and the outcome is consistent — COMPLETED keeps exactly one capture and the sale,
    /// COMPENSATED keeps no money and no hold.
    #[test]
    fn the_saga_settles_consistently_under_any_delivery(
        actions in prop::collection::vec(action(), 0..60),
        outcomes in prop::collection::vec(outcome(), 0..4),
        risk in prop::collection::vec(prop::bool::weighted(0.8), 0..3),
        risk_check in any::<bool>(),
    ) {
        let mut w = World {
            state: order(),
            settings: Settings { risk_check },
            reservation: Reservation::Held { bound: false },
            in_flight: vec![],
            outcomes,
            risk,
            decided: None,
            captures: 0,
            refunds: 0,
            lock_granted: false,
            was_terminal: None,
        };
        w.apply(SagaEvent::Started);
        for a in actions {
            w.act(a);
        }
        w.settle();
        prop_assert!(w.refunds <= w.captures && w.captures <= 1);
        match w.state.status {
            OrderStatus::Completed => {
                prop_assert_eq!(w.captures - w.refunds, 1);
                prop_assert_eq!(w.reservation, Reservation::Confirmed);
            }
            OrderStatus::Compensated => {
                prop_assert_eq!(w.captures, w.refunds, "a compensated order keeps no money");
                prop_assert!(!matches!(w.reservation, Reservation::Held { bound: true } | Reservation::Confirmed), "{:?}", w.reservation);
            }
            other => prop_assert!(false, "not terminal: {other}"),
        }
    }
}
