//! The payment saga as a pure state machine: no database, no broker, no HTTP.
//!
//! [`ORDER_SAGA`] is the saga read top-down: each step, the participant that performs it, the
//! status the order waits in, the status it reaches, and the compensation that undoes it.
//! [`step`] applies one [`SagaEvent`] (a participant's reply, or an operator's decision) to an
//! order's [`SagaState`] and returns the [`Transition`]: the new state, the statuses it passed
//! through (history + `order.events`) and the [`Command`]s to send. The adapter
//! ([`super::SagaHandler`]) loads the order under its row lock, calls [`step`], and persists the
//! transition with the outgoing messages in the same transaction.
//!
//! What an order holds is tracked apart from its status, so compensation can be derived instead
//! of remembered in flags: the reservation's [`Hold`] and the card's [`Capture`]. A compensation
//! releases a hold that is still [`Hold::Held`] and refunds a [`Capture::Captured`]; the order is
//! COMPENSATED once nothing is held and nothing is awaited.
//!
//! Replies are delivered at least once and may arrive late: an event that does not fit the order's
//! state is an [`IllegalTransition`], which the adapter logs and skips — it never changes anything.

use std::fmt;

use rust_decimal::Decimal;

pub use sagaway_contract::status::OrderStatus;

/// The order's stock reservation, as the saga knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The lock was asked for and not answered yet: the reservation is not ours.
    Unlocked,
    /// Locked by this order: stock is held for it.
    Held,
    /// A release was sent and not acknowledged yet.
    Releasing,
    /// Nothing held: released, expired, or never granted.
    Gone,
    /// Confirmed: the stock is sold.
    Sold,
}

/// The card's money, as the saga knows it. At most one capture per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    None,
    Captured,
    /// A refund was sent and not acknowledged yet.
    Refunding,
    Refunded,
}

/// Everything [`step`] needs to know of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaState {
    pub status: OrderStatus,
    /// What the shopper accepted: the reservation's total, fixed at intake.
    pub amount: Decimal,
    pub currency: String,
    pub hold: Hold,
    pub capture: Capture,
    /// Compensation has begun: nothing moves forward any more.
    pub compensating: bool,
    /// Why the order left the happy path (the latest status that gave a reason).
    pub reason: Option<String>,
    /// The payment method is still on file: the sealed card (erased when the order ends), or the
    /// bank account of an order paid from one.
    pub card_on_file: bool,
}

impl SagaState {
    /// A freshly accepted order.
    pub fn accepted(amount: Decimal, currency: impl Into<String>) -> Self {
        Self {
            status: OrderStatus::Accepted,
            amount,
            currency: currency.into(),
            hold: Hold::Unlocked,
            capture: Capture::None,
            compensating: false,
            reason: None,
            card_on_file: true,
        }
    }
}

/// What happened to an order: a participant's reply, a local check's verdict, or an operator's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum SagaEvent {
    /// The order was accepted (read back from `order_queue`): start the saga.
    Started,
    /// The product service locked the reservation for this order; `amount` is the hold's total.
    ReservationLocked { amount: Decimal },
    /// The product service refused the lock (`expired`, `released`, `wrong_user`, …).
    ReservationRejected { reason: String },
    /// The risk check's verdict (see [`super::risk`]).
    RiskAssessed(RiskVerdict),
    /// The payment processor captured `amount` in `currency` (`None` from processors that do not say).
    Charged { amount: Decimal, currency: Option<String> },
    /// A permanent refusal of the charge.
    Declined { reason: String },
    /// The charge failed transiently after its retry budget and was dead-lettered.
    ChargeFailed { reason: String },
    ReservationConfirmed,
    /// The hold lapsed or was released before the sale could be confirmed.
    ReservationConfirmFailed { reason: String },
    /// The stock is back; `expired` when the hold lapsed rather than being released on request.
    ReservationReleased { expired: bool },
    Refunded { amount: Decimal },
    /// An operator replays the dead-lettered charge of a parked order.
    Replayed { dead_letter: u64 },
    /// An operator gives up on a parked order.
    Abandoned { dead_letter: u64 },
    /// An operator resolves a dead-lettered compensation step by hand (the stock was released or
    /// the money given back outside the saga): the step the order waits on is marked done.
    CompensationResolved { dead_letter: u64, step: Settled },
}

impl SagaEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::ReservationLocked { .. } => "reservation_locked",
            Self::ReservationRejected { .. } => "reservation_rejected",
            Self::RiskAssessed(_) => "risk_assessed",
            Self::Charged { .. } => "charged",
            Self::Declined { .. } => "declined",
            Self::ChargeFailed { .. } => "charge_failed",
            Self::ReservationConfirmed => "reservation_confirmed",
            Self::ReservationConfirmFailed { .. } => "reservation_confirm_failed",
            Self::ReservationReleased { .. } => "reservation_released",
            Self::Refunded { .. } => "refunded",
            Self::Replayed { .. } => "replayed",
            Self::Abandoned { .. } => "abandoned",
            Self::CompensationResolved { .. } => "compensation_resolved",
        }
    }
}

/// A compensation step an operator can settle by hand ([`SagaEvent::CompensationResolved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The reservation's release ([`Hold::Releasing`] → [`Hold::Gone`]).
    Release,
    /// The capture's refund ([`Capture::Refunding`] → [`Capture::Refunded`]).
    Refund,
}

/// The risk check's verdict on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskVerdict {
    Accept,
    /// Refused, with what tripped (for the history; the order's reason is `risk_rejected`).
    Reject { rule: String },
}

/// What the saga asks of a participant. The adapter turns each into a message (or, for a local
/// participant, runs it and feeds the verdict back as the next event in the same transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    LockReservation,
    /// Local: evaluate the risk rules (only when the risk step is enabled).
    AssessRisk,
    Charge,
    ConfirmReservation,
    ReleaseReservation { reason: String },
    Refund { reason: String },
}

/// Who carries out a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Participant {
    Product,
    Payment,
    /// In-process, inside the saga's own transaction.
    Orchestrator,
}

/// One forward step of the saga and the compensation that undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaStep {
    pub name: &'static str,
    pub participant: Participant,
    /// What starting the step sends.
    pub command: Command,
    /// The order's status while this step is in flight.
    pub awaiting: OrderStatus,
    /// The status the order reaches when this step succeeds.
    pub reaches: OrderStatus,
    /// What a refusal by this step does.
    pub on_refusal: &'static str,
    /// The compensation that undoes this step once it has succeeded, if any.
    pub compensation: Option<&'static str>,
    /// Optional steps run only when enabled ([`Settings`]).
    pub optional: bool,
}

/// The saga, top-down (CreateOrderSaga style). `docs/saga.md` carries this table; a test checks it.
pub const ORDER_SAGA: &[SagaStep] = &[
    SagaStep {
        name: "lock_reservation",
        command: Command::LockReservation,
        participant: Participant::Product,
        awaiting: OrderStatus::Accepted,
        reaches: OrderStatus::ReservationLocked,
        on_refusal: "COMPENSATED (nothing held)",
        compensation: Some("release_reservation"),
        optional: false,
    },
    SagaStep {
        name: "assess_risk",
        command: Command::AssessRisk,
        participant: Participant::Orchestrator,
        awaiting: OrderStatus::ReservationLocked,
        reaches: OrderStatus::ReservationLocked,
        on_refusal: "DECLINED risk_rejected → compensate",
        compensation: None,
        optional: true,
    },
    SagaStep {
        name: "charge",
        command: Command::Charge,
        participant: Participant::Payment,
        awaiting: OrderStatus::PaymentPending,
        reaches: OrderStatus::Paid,
        on_refusal: "DECLINED → compensate; dead-lettered → FAILED (parked)",
        compensation: Some("refund"),
        optional: false,
    },
    SagaStep {
        name: "confirm_reservation",
        command: Command::ConfirmReservation,
        participant: Participant::Product,
        awaiting: OrderStatus::Paid,
        reaches: OrderStatus::Completed,
        on_refusal: "compensate (refund; the hold is gone)",
        compensation: None,
        optional: false,
    },
];

/// Index of a step in [`ORDER_SAGA`].
const LOCK: usize = 0;
const RISK: usize = 1;
const CHARGE: usize = 2;
const CONFIRM: usize = 3;

/// Switches for the optional steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub risk_check: bool,
}

impl Settings {
    fn runs(&self, step: &SagaStep) -> bool {
        !step.optional || (step.name == "assess_risk" && self.risk_check)
    }
}

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: SagaState,
    /// Every status entered, in order, with its reason (history rows and `order.events`).
    pub statuses: Vec<(OrderStatus, Option<String>)>,
    pub commands: Vec<Command>,
    /// Something an operator must hear about (logged at error and counted by the adapter).
    pub alert: Option<String>,
}

impl Transition {
    fn from(state: &SagaState) -> Self {
        Self { state: state.clone(), statuses: vec![], commands: vec![], alert: None }
    }

    /// Enters `status`; a reason given with it becomes the order's reason (the latest wins).
    fn enter(&mut self, status: OrderStatus, reason: Option<String>) {
        if let Some(r) = &reason {
            self.state.reason = Some(r.clone());
        }
        self.state.status = status;
        self.statuses.push((status, reason));
    }

    fn send(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Begins compensating for `reason` (which COMPENSATED will carry): release what is held,
    /// refund what was captured.
    fn compensate(&mut self, reason: &str) {
        self.state.compensating = true;
        self.state.reason = Some(reason.to_string());
        if self.state.hold == Hold::Held {
            self.state.hold = Hold::Releasing;
            self.send(Command::ReleaseReservation { reason: reason.to_string() });
        }
        if self.state.capture == Capture::Captured {
            self.state.capture = Capture::Refunding;
            self.send(Command::Refund { reason: reason.to_string() });
        }
        self.finish_if_done();
    }

    /// A compensating order with nothing held and nothing awaited is COMPENSATED.
    fn finish_if_done(&mut self) {
        let s = &self.state;
        let settled = !matches!(s.hold, Hold::Held | Hold::Releasing) && !matches!(s.capture, Capture::Captured | Capture::Refunding);
        if s.compensating && settled && s.status != OrderStatus::Compensated {
            let reason = s.reason.clone();
            self.enter(OrderStatus::Compensated, reason);
        }
    }

    /// Step `done` of [`ORDER_SAGA`] succeeded: enter what it reaches, then start the next step
    /// that runs (or stop: the last step reaches COMPLETED).
    fn succeed(&mut self, done: usize, settings: Settings) {
        let reached = ORDER_SAGA[done].reaches;
        if self.state.status != reached {
            self.enter(reached, None);
        }
        if let Some(next) = ORDER_SAGA.iter().skip(done + 1).find(|s| settings.runs(s)) {
            self.start(next);
        }
    }

    fn start(&mut self, step: &SagaStep) {
        if step.command == Command::Charge && !self.state.card_on_file {
            self.compensate("card_unavailable");
            return;
        }
        if self.state.status != step.awaiting {
            self.enter(step.awaiting, None);
        }
        self.send(step.command.clone());
    }
}

/// An event that does not fit the order's state: a duplicate, a late reply, or a protocol error.
/// Applying it changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    pub status: OrderStatus,
    pub event: &'static str,
    pub why: &'static str,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} does not apply to a {} order: {}", self.event, self.status, self.why)
    }
}

impl std::error::Error for IllegalTransition {}

/// Applies `event` to an order in `state`. Pure: the same inputs always give the same answer.
pub fn step(state: &SagaState, event: SagaEvent, settings: Settings) -> Result<Transition, IllegalTransition> {
    use OrderStatus as S;
    let illegal = |why: &'static str| IllegalTransition { status: state.status, event: event.name(), why };
    let moving = !state.compensating && !state.status.is_terminal();
    let mut t = Transition::from(state);
    match &event {
        SagaEvent::Started => {
            if !(moving && state.status == S::Accepted && state.hold == Hold::Unlocked) {
                return Err(illegal("the saga is already under way"));
            }
            t.start(&ORDER_SAGA[LOCK]);
        }
        SagaEvent::ReservationLocked { amount } => {
            if !(moving && state.status == S::Accepted && state.hold == Hold::Unlocked) {
                return Err(illegal("not waiting for a lock"));
            }
            t.state.hold = Hold::Held;
            if *amount != state.amount {
                // The hold's total changed under us: never charge a figure the shopper did not accept.
                t.enter(S::ReservationLocked, None);
                t.compensate("amount_mismatch");
            } else {
                t.succeed(LOCK, settings);
            }
        }
        SagaEvent::ReservationRejected { reason } => {
            if !(moving && state.status == S::Accepted && state.hold == Hold::Unlocked) {
                return Err(illegal("not waiting for a lock"));
            }
            t.state.hold = Hold::Gone;
            t.compensate(&format!("reservation_{reason}"));
        }
        SagaEvent::RiskAssessed(verdict) => {
            if !(moving && state.status == S::ReservationLocked && state.hold == Hold::Held) {
                return Err(illegal("not waiting for the risk check"));
            }
            match verdict {
                RiskVerdict::Accept => t.succeed(RISK, settings),
                RiskVerdict::Reject { rule } => {
                    t.enter(S::Declined, Some(format!("risk_rejected: {rule}")));
                    t.compensate("risk_rejected");
                }
            }
        }
        SagaEvent::Charged { amount, currency } => {
            if state.capture != Capture::None {
                return Err(illegal("already captured once"));
            }
            t.state.capture = Capture::Captured;
            let awaited = moving && matches!(state.status, S::PaymentPending | S::Failed) && state.hold == Hold::Held;
            if !awaited {
                // A capture the saga no longer wants (the order moved on, or it never asked):
                // give the money back, whatever the order's status.
                t.state.capture = Capture::Refunding;
                t.send(Command::Refund { reason: "late_capture".into() });
            } else if *amount != state.amount || currency.as_deref().is_some_and(|c| c != state.currency) {
                let got = format!("{amount} {}", currency.as_deref().unwrap_or("?"));
                // Never complete an order on figures it did not ask for: undo it and tell an operator.
                t.alert = Some(format!("charge_mismatch: captured {got}, order is {} {}", state.amount, state.currency));
                t.compensate("charge_mismatch");
            } else {
                t.succeed(CHARGE, settings);
            }
        }
        SagaEvent::Declined { reason } => {
            if !(moving && matches!(state.status, S::PaymentPending | S::Failed) && state.capture == Capture::None) {
                return Err(illegal("not waiting for a charge"));
            }
            t.enter(S::Declined, Some(reason.clone()));
            t.compensate(reason);
        }
        SagaEvent::ChargeFailed { reason } => {
            if !(moving && state.status == S::PaymentPending) {
                return Err(illegal("not waiting for a charge"));
            }
            t.enter(S::Failed, Some(reason.clone()));
        }
        SagaEvent::ReservationConfirmed => {
            if !(moving && state.status == S::Paid && state.hold == Hold::Held) {
                return Err(illegal("not waiting for a confirmation"));
            }
            t.state.hold = Hold::Sold;
            t.succeed(CONFIRM, settings);
        }
        SagaEvent::ReservationConfirmFailed { reason } => {
            if !(moving && state.status == S::Paid && state.hold == Hold::Held) {
                return Err(illegal("not waiting for a confirmation"));
            }
            t.state.hold = Hold::Gone; // nothing to release: only the refund remains
            t.compensate(&format!("reservation_{reason}"));
        }
        SagaEvent::ReservationReleased { expired } => match state.hold {
            Hold::Releasing => {
                t.state.hold = Hold::Gone;
                t.finish_if_done();
            }
            Hold::Held if *expired && !state.status.is_terminal() => {
                // The hold lapsed under a running or parked order (a late payer, an outage, a
                // replay): the stock is already back, so compensate what remains; a capture that
                // lands later is refunded as a late capture.
                t.state.hold = Hold::Gone;
                t.compensate("reservation_expired");
            }
            _ => return Err(illegal("no release awaited")),
        },
        SagaEvent::Refunded { .. } => {
            if state.capture != Capture::Refunding {
                return Err(illegal("no refund awaited"));
            }
            t.state.capture = Capture::Refunded;
            t.finish_if_done();
        }
        SagaEvent::Replayed { dead_letter } => {
            if !(moving && state.status == S::Failed) {
                return Err(illegal("only a parked (FAILED) order is replayed"));
            }
            t.enter(S::PaymentPending, Some(format!("replay of dead letter {dead_letter}")));
        }
        SagaEvent::Abandoned { dead_letter } => {
            if !(moving && state.status == S::Failed) {
                return Err(illegal("only a parked (FAILED) order is abandoned"));
            }
            t.compensate(&format!("abandoned (dead letter {dead_letter})"));
        }
        SagaEvent::CompensationResolved { step: Settled::Release, .. } => {
            if state.hold != Hold::Releasing {
                return Err(illegal("no release awaited"));
            }
            t.state.hold = Hold::Gone;
            t.finish_if_done();
        }
        SagaEvent::CompensationResolved { step: Settled::Refund, .. } => {
            if state.capture != Capture::Refunding {
                return Err(illegal("no refund awaited"));
            }
            t.state.capture = Capture::Refunded;
            t.finish_if_done();
        }
    }
    Ok(t)
}

/// The step table as the markdown `docs/saga.md` carries (checked by a test).
pub fn steps_markdown() -> String {
    let mut md = String::from("| # | step | participant | waits in | reaches | on refusal | compensation |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (i, s) in ORDER_SAGA.iter().enumerate() {
        let participant = match s.participant {
            Participant::Product => "product",
            Participant::Payment => "payment",
            Participant::Orchestrator => "orchestrator (local)",
        };
        md.push_str(&format!(
            "| {} | `{}`{} | {} | {} | {} | {} | {} |\n",
            i + 1,
            s.name,
            if s.optional { " (optional)" } else { "" },
            participant,
            s.awaiting,
            s.reaches,
            s.on_refusal,
            s.compensation.map(|c| format!("`{c}`")).unwrap_or_else(|| "—".into()),
        ));
    }
    md
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
