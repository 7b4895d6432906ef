//! Inter-bank transfers as two-phase commit: the coordinator's and the participant's state machines,
//! the money each step moves (as data), and the clearing positions between banks. No I/O: the
//! adapters (HTTP endpoints, durable log, recovery loop — not built yet, see `docs/banks.md`) load a
//! record, call [`step`] or [`participant_step`], persist the answer, then send what it says.
//!
//! # The transfer
//! A [`Transfer`] is a `tx_id` and its legs: one or more debits (accounts in any banks) and exactly
//! one credit, whose amount is the sum of the debits. One-to-one is a debit and a credit;
//! many-to-one is several debits. Each leg is one participant, addressed by its index: a bank with
//! two legs in a transfer holds two participant records (an adapter may batch their messages).
//! The coordinator's own bank takes part through the same messages (delivered in-process).
//!
//! # Coordinator
//! `PREPARING → COMMITTING → COMMITTED`, or `PREPARING → ABORTING → ABORTED`.
//! - [`Coordinator::begin`] logs the transfer (durably, before any prepare leaves: a participant
//!   asking about it must find it) and sends `prepare` to every leg.
//! - Every leg READY → COMMITTING; any ABORT, or the prepare timeout → ABORTING. The decision is
//!   logged durably *before* phase two ([`Transition::log_first`]), then `commit`/`abort` goes to
//!   every leg that has not acknowledged it; once every leg has acknowledged → COMMITTED / ABORTED.
//! - A duplicate vote or acknowledgement changes nothing; a vote after the decision does not change
//!   it (the decision is resent to that leg if it has not acknowledged it).
//! - [`CoordinatorInput::Restart`] (after a crash, and on each tick of the recovery loop) resends
//!   what is still awaited: `prepare` to legs that have not voted while PREPARING (the prepare
//!   deadline, computed from the logged start, still applies), the decision to legs that have not
//!   acknowledged it while COMMITTING / ABORTING.
//! - [`CoordinatorInput::Inquiry`] is a participant in doubt asking (`GET /interbank/tx/{tx_id}`):
//!   answered with the decision, or nothing while PREPARING (the participant keeps holding and asks
//!   again). A transfer the coordinator has no record of is told apart by its id
//!   ([`answer_unknown`]): one this bank never issued was never begun — abort (presumed abort); one
//!   it issued (the id carries the bank's mark, [`super::interbank_auth::TxIdMark`]) was begun and
//!   its record is lost (a restore from a backup): [`InquiryAnswer::Lost`], never abort — its
//!   other legs may have committed. The leg stays in doubt and an alert asks an operator.
//!
//! # Participant
//! `NONE → PREPARED | REFUSED`, `PREPARED → COMMITTED | ABORTED`, and `NONE → ABORTED` (an abort
//! for a transfer it never saw is recorded, so a late prepare is refused: presumed abort).
//! - A prepare checks the leg ([`AccountView`], [`refusal`]): a debit needs the account, the
//!   currency, `available ≥ amount` and the holding bank's own limits ([`Limits`]: its
//!   `max_amount`, and its night limit for an individual account's instant transfer, judged on its
//!   own clock), whoever coordinates; a credit needs the account and the currency. READY moves money into a
//!   pending state ([`Effect::HoldDebit`] / [`Effect::RecordPendingCredit`]: held, or recorded and
//!   invisible and unspendable) durably *before* the vote is sent.
//! - PREPARED leaves only on the coordinator's decision: it never decides on its own. On a timeout
//!   or a restart it asks the coordinator ([`Reply::Inquire`]) and keeps holding.
//! - `commit` / `abort` repeated are acknowledged again and move nothing.
//!
//! # Money as data
//! Each transition returns the [`Effect`]s to apply, in the same database transaction as the new
//! state. Per leg exactly one opening effect (hold / record pending) and, later, exactly one
//! terminal effect (settle or release / post or drop). [`Effect::postings`] are the double-entry
//! legs ([`super::ledger`]), each entry balanced.
//!
//! # Clearing
//! Each bank has a clearing account per peer bank ([`clearing_account`]). A committed debit at bank
//! D paying into bank C posts `held −a` on the customer and `+a` on D's clearing account for C;
//! the committed credit at C posts `+Σa` on the customer and `−a` on C's clearing account for each
//! D. So D's position for C and C's position for D are opposite, and over all banks the positions
//! net to zero ([`clearing_positions`], [`nets_to_zero`]). A leg in the same bank as the credit uses
//! the bank's clearing account for itself, an internal transit account that nets to zero on its own.

use std::{collections::BTreeMap, fmt};

use rust_decimal::Decimal;

use super::ledger::{self, Bucket};

/// A bank's 3-digit code (`BANK_CODE`).
pub type BankCode = String;

/// Whether a leg takes money out of an account or puts it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Side {
    Debit,
    Credit,
}

/// One participant's part of a transfer: an account in a bank, debited or credited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leg {
    pub bank: BankCode,
    pub account: String,
    pub side: Side,
    pub amount: Decimal,
}

/// An inter-bank transfer: its id, its currency and its legs (debits, then or among them one credit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    pub tx_id: String,
    pub currency: String,
    pub legs: Vec<Leg>,
    /// The user who started it ([`Transfer::started_by`]): every debited account must be theirs.
    #[serde(default)]
    pub initiator: String,
    /// A business-hours transfer (started at the opening; no night limit). Absent: instant.
    #[serde(default, skip_serializing_if = "is_false")]
    pub business_hours: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a transfer cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTransfer {
    #[error("a transfer needs at least one debit")]
    NoDebit,
    #[error("a transfer needs exactly one credit, not {0}")]
    CreditCount(usize),
    #[error("leg {0}: amounts must be positive")]
    NotPositive(usize),
    #[error("the credit ({credit}) must equal the sum of the debits ({debits})")]
    Unbalanced { debits: Decimal, credit: Decimal },
    #[error("at most {MAX_LEGS} legs")]
    TooManyLegs,
}

/// The most legs one transfer may have (sources of a many-to-one, plus the credit).
pub const MAX_LEGS: usize = 16;

impl Transfer {
    /// Checks the legs: at least one debit, exactly one credit equal to the sum of the debits,
    /// every amount positive.
    pub fn new(tx_id: impl Into<String>, currency: impl Into<String>, legs: Vec<Leg>) -> Result<Self, InvalidTransfer> {
        if legs.len() > MAX_LEGS {
            return Err(InvalidTransfer::TooManyLegs);
        }
        if let Some(i) = legs.iter().position(|l| l.amount <= Decimal::ZERO) {
            return Err(InvalidTransfer::NotPositive(i));
        }
        let credits: Vec<&Leg> = legs.iter().filter(|l| l.side == Side::Credit).collect();
        if legs.iter().all(|l| l.side != Side::Debit) {
            return Err(InvalidTransfer::NoDebit);
        }
        if credits.len() != 1 {
            return Err(InvalidTransfer::CreditCount(credits.len()));
        }
        let debits: Decimal = legs.iter().filter(|l| l.side == Side::Debit).map(|l| l.amount).sum();
        if debits != credits[0].amount {
            return Err(InvalidTransfer::Unbalanced { debits, credit: credits[0].amount });
        }
        Ok(Self { tx_id: tx_id.into(), currency: currency.into(), legs, initiator: String::new(), business_hours: false })
    }

    /// Names the user who starts the transfer; each debit's bank checks they hold the account.
    pub fn started_by(mut self, user: impl Into<String>) -> Self {
        self.initiator = user.into();
        self
    }

    /// Marks it a business-hours transfer (`false`: instant, the default).
    pub fn in_business_hours(mut self, business_hours: bool) -> Self {
        self.business_hours = business_hours;
        self
    }

    /// The credit leg (exactly one, checked by [`Transfer::new`]).
    pub fn credit(&self) -> &Leg {
        self.legs.iter().find(|l| l.side == Side::Credit).expect("a transfer has one credit")
    }

    /// The amount that moves: the credit, which is the sum of the debits.
    pub fn total(&self) -> Decimal {
        self.credit().amount
    }

    /// What `prepare` tells leg `leg`: the leg, and the banks on the other side of it (for the
    /// clearing postings on commit).
    pub fn prepare_request(&self, leg: usize) -> PrepareRequest {
        let this = self.legs[leg].clone();
        let counterparts = match this.side {
            Side::Debit => vec![(self.credit().bank.clone(), this.amount)],
            Side::Credit => {
                let mut by_bank: BTreeMap<BankCode, Decimal> = BTreeMap::new();
                for l in self.legs.iter().filter(|l| l.side == Side::Debit) {
                    *by_bank.entry(l.bank.clone()).or_default() += l.amount;
                }
                by_bank.into_iter().collect()
            }
        };
        PrepareRequest {
            tx_id: self.tx_id.clone(),
            leg_index: leg,
            currency: self.currency.clone(),
            leg: this,
            counterparts,
            initiator: self.initiator.clone(),
            business_hours: self.business_hours,
        }
    }
}

/// The body of `POST /interbank/tx/{tx_id}/prepare` for one leg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrepareRequest {
    pub tx_id: String,
    pub leg_index: usize,
    pub currency: String,
    pub leg: Leg,
    /// For a debit: the credit's bank and this leg's amount. For the credit: each debiting bank
    /// and the sum of its debits.
    pub counterparts: Vec<(BankCode, Decimal)>,
    /// The user who started the transfer (a debit's account must be theirs).
    #[serde(default)]
    pub initiator: String,
    /// A business-hours transfer: the night limit does not apply. Absent: instant (it does).
    #[serde(default, skip_serializing_if = "is_false")]
    pub business_hours: bool,
}

/// The outcome of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    Commit,
    Abort,
}

/// A participant's answer to `prepare`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Vote {
    Ready,
    Abort { reason: String },
}

/// An input that does not fit the state: a protocol error. It changes nothing; the adapter logs it
/// and answers 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input} does not apply to a {state} transfer: {why}")]
pub struct Illegal {
    pub state: &'static str,
    pub input: &'static str,
    pub why: &'static str,
}

// ------------------------------------------------------------------------------------------------
// Coordinator
// ------------------------------------------------------------------------------------------------

/// Where a transfer is, at the bank that coordinates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CoordinatorStatus {
    Preparing,
    Committing,
    Committed,
    Aborting,
    Aborted,
}

impl CoordinatorStatus {
    pub const ALL: [CoordinatorStatus; 5] = [Self::Preparing, Self::Committing, Self::Committed, Self::Aborting, Self::Aborted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparing => "PREPARING",
            Self::Committing => "COMMITTING",
            Self::Committed => "COMMITTED",
            Self::Aborting => "ABORTING",
            Self::Aborted => "ABORTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The decision taken, if any (everything after PREPARING).
    pub fn decision(self) -> Option<Decision> {
        match self {
            Self::Preparing => None,
            Self::Committing | Self::Committed => Some(Decision::Commit),
            Self::Aborting | Self::Aborted => Some(Decision::Abort),
        }
    }

    /// COMMITTED and ABORTED: every participant has acknowledged the decision.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Committed | Self::Aborted)
    }
}

impl fmt::Display for CoordinatorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The coordinator's durable record of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Coordinator {
    pub transfer: Transfer,
    pub status: CoordinatorStatus,
    /// Each leg's vote, as first received.
    pub votes: Vec<Option<Vote>>,
    /// Whether each leg has acknowledged the decision (a leg that voted ABORT has aborted already).
    pub acked: Vec<bool>,
    /// Why it aborted (the first ABORT's reason, or `prepare_timeout`).
    pub reason: Option<String>,
}

/// What happens to a coordinated transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorInput {
    /// Leg `leg` answered `prepare`.
    Vote { leg: usize, vote: Vote },
    /// The prepare deadline passed.
    PrepareTimeout,
    /// Leg `leg` acknowledged `decision`.
    Ack { leg: usize, decision: Decision },
    /// Leg `leg` is in doubt and asks for the decision (`GET /interbank/tx/{tx_id}`).
    Inquiry { leg: usize },
    /// The coordinator restarted, or the recovery loop ticks: resend what is awaited.
    Restart,
}

impl CoordinatorInput {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Vote { vote: Vote::Ready, .. } => "vote READY",
            Self::Vote { vote: Vote::Abort { .. }, .. } => "vote ABORT",
            Self::PrepareTimeout => "prepare timeout",
            Self::Ack { decision: Decision::Commit, .. } => "ack COMMIT",
            Self::Ack { decision: Decision::Abort, .. } => "ack ABORT",
            Self::Inquiry { .. } => "inquiry",
            Self::Restart => "restart",
        }
    }
}

/// What the coordinator sends to a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Prepare(PrepareRequest),
    Commit,
    Abort,
}

impl Message {
    fn of(decision: Decision) -> Self {
        match decision {
            Decision::Commit => Message::Commit,
            Decision::Abort => Message::Abort,
        }
    }
}

/// One message to one leg at one bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: BankCode,
    pub leg: usize,
    pub message: Message,
}

/// The answer of [`step`]: the new state, and what to send. The adapter always saves the state;
/// when `log_first` is set the save must be durable (committed) before any message leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: Coordinator,
    pub send: Vec<Outgoing>,
    /// The transfer (on begin) or the decision (on entering COMMITTING / ABORTING) must be logged
    /// before the messages are sent.
    pub log_first: bool,
}

impl Transition {
    fn send(&mut self, leg: usize, message: Message) {
        let to = self.state.transfer.legs[leg].bank.clone();
        self.send.push(Outgoing { to, leg, message });
    }

    /// Takes the decision: log it first, then send it to every leg that has not acknowledged it.
    fn decide(&mut self, decision: Decision, reason: Option<String>) {
        self.state.status = match decision {
            Decision::Commit => CoordinatorStatus::Committing,
            Decision::Abort => CoordinatorStatus::Aborting,
        };
        self.state.reason = reason;
        self.log_first = true;
        for leg in 0..self.state.acked.len() {
            if !self.state.acked[leg] {
                self.send(leg, Message::of(decision));
            }
        }
        self.finish_if_acked();
    }

    /// A decided transfer whose every leg acknowledged is COMMITTED / ABORTED.
    fn finish_if_acked(&mut self) {
        if self.state.acked.iter().all(|a| *a) {
            match self.state.status {
                CoordinatorStatus::Committing => self.state.status = CoordinatorStatus::Committed,
                CoordinatorStatus::Aborting => self.state.status = CoordinatorStatus::Aborted,
                _ => {}
            }
        }
    }
}

impl Coordinator {
    /// Starts coordinating `transfer`: PREPARING, logged before `prepare` goes to every leg.
    pub fn begin(transfer: Transfer) -> Transition {
        let n = transfer.legs.len();
        let state = Coordinator { transfer, status: CoordinatorStatus::Preparing, votes: vec![None; n], acked: vec![false; n], reason: None };
        let mut t = Transition { state, send: vec![], log_first: true };
        for leg in 0..n {
            let request = t.state.transfer.prepare_request(leg);
            t.send(leg, Message::Prepare(request));
        }
        t
    }

    /// Whether every leg voted READY.
    pub fn all_ready(&self) -> bool {
        self.votes.iter().all(|v| matches!(v, Some(Vote::Ready)))
    }
}

/// What the coordinator answers a leg in doubt (`GET /interbank/tx/{tx_id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InquiryAnswer {
    Decided(Decision),
    /// Still PREPARING: keep holding, ask again.
    Undecided,
    /// Issued here, but no record of it is left (lost, e.g. restored from a backup): nobody knows
    /// whether its other legs committed. Keep holding; an operator settles it.
    Lost,
}

impl InquiryAnswer {
    /// The answer for a logged transfer in `status`.
    pub fn of(status: CoordinatorStatus) -> Self {
        status.decision().map_or(Self::Undecided, Self::Decided)
    }
}

/// The answer to `GET /interbank/tx/{tx_id}` for a transfer the coordinator has no record of.
/// `issued_here`: the id carries this bank's mark. Then it was begun (its id is made just before
/// it is logged, and the log is committed before any prepare leaves) and its record is lost: never
/// presume abort, whatever its other legs did. Otherwise it was never begun here: abort.
pub fn answer_unknown(issued_here: bool) -> InquiryAnswer {
    if issued_here { InquiryAnswer::Lost } else { InquiryAnswer::Decided(Decision::Abort) }
}

/// Applies `input` to the coordinated transfer `state`. Pure.
pub fn step(state: &Coordinator, input: CoordinatorInput) -> Result<Transition, Illegal> {
    use CoordinatorStatus as S;
    let name = input.name();
    let illegal = |why: &'static str| Illegal { state: state.status.as_str(), input: name, why };
    let legs = state.transfer.legs.len();
    let mut t = Transition { state: state.clone(), send: vec![], log_first: false };
    match input {
        CoordinatorInput::Vote { leg, vote } => {
            if leg >= legs {
                return Err(illegal("no such leg"));
            }
            let decision = state.status.decision();
            // A leg cannot take its vote back while it matters. Once aborted it no longer does: a leg
            // that said READY and then aborted answers a late duplicate prepare with ABORT, and the
            // two votes may arrive in either order.
            // (An ABORT vote always decides abort, so before that only READY can be on record.)
            if decision != Some(Decision::Abort) && matches!((&state.votes[leg], &vote), (Some(Vote::Ready), Vote::Abort { .. })) {
                return Err(illegal("a leg that voted READY cannot vote ABORT"));
            }
            if state.votes[leg].is_none() {
                t.state.votes[leg] = Some(vote.clone());
            }
            match decision {
                None => match vote {
                    Vote::Abort { reason } => {
                        t.state.acked[leg] = true;
                        t.decide(Decision::Abort, Some(reason));
                    }
                    Vote::Ready => {
                        if t.state.all_ready() {
                            t.decide(Decision::Commit, None);
                        }
                    }
                },
                // The decision stands. An ABORT after an abort means that leg has aborted.
                Some(d) => {
                    if d == Decision::Abort && matches!(vote, Vote::Abort { .. }) {
                        t.state.acked[leg] = true;
                        t.finish_if_acked();
                    } else if !t.state.acked[leg] {
                        t.send(leg, Message::of(d));
                    }
                }
            }
        }
        CoordinatorInput::PrepareTimeout => {
            // A timer that fires after the decision is a no-op.
            if state.status == S::Preparing {
                t.decide(Decision::Abort, Some("prepare_timeout".into()));
            }
        }
        CoordinatorInput::Ack { leg, decision } => {
            if leg >= legs {
                return Err(illegal("no such leg"));
            }
            match state.status.decision() {
                None => return Err(illegal("no decision has been sent")),
                Some(d) if d != decision => return Err(illegal("acknowledges the other decision")),
                Some(_) => {
                    t.state.acked[leg] = true;
                    t.finish_if_acked();
                }
            }
        }
        CoordinatorInput::Inquiry { leg } => {
            if leg >= legs {
                return Err(illegal("no such leg"));
            }
            // While PREPARING there is nothing to tell: the participant keeps holding and asks again.
            if let Some(d) = state.status.decision() {
                t.send(leg, Message::of(d));
            }
        }
        CoordinatorInput::Restart => match state.status {
            S::Preparing => {
                for leg in 0..legs {
                    if state.votes[leg].is_none() {
                        let request = state.transfer.prepare_request(leg);
                        t.send(leg, Message::Prepare(request));
                    }
                }
            }
            S::Committing | S::Aborting => {
                let d = state.status.decision().expect("decided");
                for leg in 0..legs {
                    if !state.acked[leg] {
                        t.send(leg, Message::of(d));
                    }
                }
            }
            S::Committed | S::Aborted => {}
        },
    }
    Ok(t)
}

// ------------------------------------------------------------------------------------------------
// Participant
// ------------------------------------------------------------------------------------------------

/// Where a leg is, at the bank that holds its account. No record at all is `NONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ParticipantStatus {
    /// READY was answered: the debit is held or the pending credit recorded.
    Prepared,
    /// ABORT was answered: nothing was held.
    Refused,
    Committed,
    Aborted,
}

impl ParticipantStatus {
    pub const ALL: [ParticipantStatus; 4] = [Self::Prepared, Self::Refused, Self::Committed, Self::Aborted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "PREPARED",
            Self::Refused => "REFUSED",
            Self::Committed => "COMMITTED",
            Self::Aborted => "ABORTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Everything but PREPARED is final.
    pub fn is_terminal(self) -> bool {
        self != Self::Prepared
    }

    /// The outcome this status stands for (REFUSED is an abort), `None` while PREPARED.
    pub fn outcome(self) -> Option<Decision> {
        match self {
            Self::Prepared => None,
            Self::Committed => Some(Decision::Commit),
            Self::Refused | Self::Aborted => Some(Decision::Abort),
        }
    }
}

impl fmt::Display for ParticipantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A participant's durable record of one leg.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Participant {
    pub status: ParticipantStatus,
    /// The prepare it answered (`None` for an abort of a transfer it never saw).
    pub request: Option<PrepareRequest>,
    /// Why it refused (the ABORT vote's reason).
    pub reason: Option<String>,
}

/// The account of a leg as the participant's bank sees it when the prepare arrives (read under the
/// account's row lock). `None` in [`ParticipantInput::Prepare`]: no such customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub currency: String,
    pub available: Decimal,
    /// What this bank lets one transfer take from the account now.
    pub limits: Limits,
}

/// The holding bank's own limits on one debit from an account, as they stand when the prepare
/// arrives (its configuration, its clock): the same rules it applies to transfers it starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// `BANK_MAX_AMOUNT`: the most one transfer moves (`None`: no limit).
    pub max_amount: Option<Decimal>,
    /// The night limit, set when it is night at this bank and the account is an individual one;
    /// it applies to instant transfers.
    pub night: Option<Decimal>,
}

impl Limits {
    /// Whether a debit of `amount` (an instant transfer unless `business_hours`) is within them.
    pub fn allow(&self, amount: Decimal, business_hours: bool) -> bool {
        self.max_amount.is_none_or(|m| amount <= m) && (business_hours || self.night.is_none_or(|n| amount <= n))
    }
}

/// What happens to a leg at its bank.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // moved once per message; boxing buys nothing here
pub enum ParticipantInput {
    Prepare {
        request: PrepareRequest,
        account: Option<AccountView>,
    },
    Commit,
    Abort,
    /// No decision came within the participant's patience: ask, keep holding.
    Timeout,
    /// The participant's bank restarted (or its recovery loop ticks).
    Restart,
}

impl ParticipantInput {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Prepare { .. } => "prepare",
            Self::Commit => "commit",
            Self::Abort => "abort",
            Self::Timeout => "timeout",
            Self::Restart => "restart",
        }
    }
}

/// What a participant answers the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Vote(Vote),
    Ack(Decision),
    /// `GET /interbank/tx/{tx_id}` on the coordinator: what was decided?
    Inquire,
}

/// A money movement on a leg's account, applied by the adapter in the same transaction as the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Prepare of a debit: `available −a`, `held +a` (conditional on available funds).
    HoldDebit { account: String, amount: Decimal },
    /// Abort of a prepared debit: `held −a`, `available +a`.
    ReleaseHold { account: String, amount: Decimal },
    /// Commit of a prepared debit: `held −a` leaves the account into the clearing account for `to`.
    SettleDebit { account: String, amount: Decimal, to: BankCode },
    /// Prepare of a credit: a pending-credit record; no balance changes (invisible, unspendable).
    RecordPendingCredit { account: String, amount: Decimal },
    /// Commit of a prepared credit: `available +a`, out of the clearing account of each debiting bank.
    PostCredit { account: String, amount: Decimal, from: Vec<(BankCode, Decimal)> },
    /// Abort of a prepared credit: the pending record goes; no balance changes.
    DropPendingCredit { account: String, amount: Decimal },
}

/// A movement on a bank's clearing account for `peer` (signed; positive: this bank owes `peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingPosting {
    pub peer: BankCode,
    pub amount: Decimal,
}

/// The name of a bank's clearing account for `peer` in `currency` in its ledger (`clearing:002:BRL`).
pub fn clearing_account(peer: &str, currency: &str) -> String {
    format!("clearing:{peer}:{currency}")
}

impl Effect {
    /// Whether it opens a leg (hold / pending credit); every opening is later closed by exactly one
    /// terminal effect.
    pub fn opens(&self) -> bool {
        matches!(self, Effect::HoldDebit { .. } | Effect::RecordPendingCredit { .. })
    }

    /// The decision a terminal effect carries out (`None` for an opening).
    pub fn closes(&self) -> Option<Decision> {
        match self {
            Effect::SettleDebit { .. } | Effect::PostCredit { .. } => Some(Decision::Commit),
            Effect::ReleaseHold { .. } | Effect::DropPendingCredit { .. } => Some(Decision::Abort),
            Effect::HoldDebit { .. } | Effect::RecordPendingCredit { .. } => None,
        }
    }

    /// The double-entry postings in the transfer's `currency` (one balanced entry; empty for the
    /// pending-credit record).
    pub fn postings(&self, currency: &str) -> Vec<ledger::Leg> {
        let leg = |account: &str, bucket, amount| ledger::Leg { account: account.to_string(), bucket, amount };
        match self {
            Effect::HoldDebit { account, amount } => ledger::hold(account, *amount),
            Effect::ReleaseHold { account, amount } => ledger::release(account, *amount),
            Effect::SettleDebit { account, amount, to } => ledger::settle_held(account, &clearing_account(to, currency), *amount),
            Effect::PostCredit { account, amount, from } => {
                let mut legs: Vec<ledger::Leg> = from.iter().map(|(bank, a)| leg(&clearing_account(bank, currency), Bucket::Available, -*a)).collect();
                legs.push(leg(account, Bucket::Available, *amount));
                legs
            }
            Effect::RecordPendingCredit { .. } | Effect::DropPendingCredit { .. } => vec![],
        }
    }

    /// The clearing-account postings of a committed leg.
    pub fn clearing(&self) -> Vec<ClearingPosting> {
        match self {
            Effect::SettleDebit { amount, to, .. } => vec![ClearingPosting { peer: to.clone(), amount: *amount }],
            Effect::PostCredit { from, .. } => from.iter().map(|(bank, a)| ClearingPosting { peer: bank.clone(), amount: -*a }).collect(),
            _ => vec![],
        }
    }
}

/// The answer of [`participant_step`]: the new record, the money to move with it (same
/// transaction), and the reply to send once both are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantTransition {
    pub state: Participant,
    pub effects: Vec<Effect>,
    pub reply: Option<Reply>,
}

/// Why a prepare is refused (`None`: READY): `unknown_account`, `currency_mismatch`,
/// `limit_exceeded` (over the holding bank's [`Limits`]) or `insufficient_funds`.
pub fn refusal(request: &PrepareRequest, account: Option<&AccountView>) -> Option<&'static str> {
    let Some(account) = account else {
        return Some("unknown_account");
    };
    if account.currency != request.currency {
        return Some("currency_mismatch");
    }
    if request.leg.side == Side::Debit && !account.limits.allow(request.leg.amount, request.business_hours) {
        return Some("limit_exceeded");
    }
    if request.leg.side == Side::Debit && account.available < request.leg.amount {
        return Some("insufficient_funds");
    }
    None
}

fn opening(request: &PrepareRequest) -> Effect {
    let (account, amount) = (request.leg.account.clone(), request.leg.amount);
    match request.leg.side {
        Side::Debit => Effect::HoldDebit { account, amount },
        Side::Credit => Effect::RecordPendingCredit { account, amount },
    }
}

fn terminal(request: &PrepareRequest, decision: Decision) -> Effect {
    let (account, amount) = (request.leg.account.clone(), request.leg.amount);
    match (request.leg.side, decision) {
        (Side::Debit, Decision::Commit) => {
            let to = request.counterparts.first().map(|(b, _)| b.clone()).unwrap_or_default();
            Effect::SettleDebit { account, amount, to }
        }
        (Side::Debit, Decision::Abort) => Effect::ReleaseHold { account, amount },
        (Side::Credit, Decision::Commit) => Effect::PostCredit { account, amount, from: request.counterparts.clone() },
        (Side::Credit, Decision::Abort) => Effect::DropPendingCredit { account, amount },
    }
}

/// Applies `input` to a leg in `state` (`None`: no record of the transfer here). Pure.
pub fn participant_step(state: Option<&Participant>, input: ParticipantInput) -> Result<ParticipantTransition, Illegal> {
    use ParticipantStatus as P;
    let name = input.name();
    let status = state.map_or("NONE", |s| s.status.as_str());
    let illegal = |why: &'static str| Illegal { state: status, input: name, why };
    let answer = |s: &Participant, reply: Option<Reply>| Ok(ParticipantTransition { state: s.clone(), effects: vec![], reply });
    match (state, input) {
        (None, ParticipantInput::Prepare { request, account }) => match refusal(&request, account.as_ref()) {
            None => Ok(ParticipantTransition {
                effects: vec![opening(&request)],
                state: Participant { status: P::Prepared, request: Some(request), reason: None },
                reply: Some(Reply::Vote(Vote::Ready)),
            }),
            Some(reason) => Ok(ParticipantTransition {
                state: Participant { status: P::Refused, request: Some(request), reason: Some(reason.into()) },
                effects: vec![],
                reply: Some(Reply::Vote(Vote::Abort { reason: reason.into() })),
            }),
        },
        // Presumed abort: remember it, so that a prepare arriving later is refused.
        (None, ParticipantInput::Abort) => Ok(ParticipantTransition {
            state: Participant { status: P::Aborted, request: None, reason: Some("aborted".into()) },
            effects: vec![],
            reply: Some(Reply::Ack(Decision::Abort)),
        }),
        (None, ParticipantInput::Commit) => Err(illegal("a commit needs a READY from this leg")),
        (None, ParticipantInput::Timeout | ParticipantInput::Restart) => Err(illegal("no record of the transfer")),

        (Some(s), ParticipantInput::Prepare { request, .. }) => {
            if s.request.as_ref().is_some_and(|r| *r != request) {
                return Err(illegal("a different prepare for the same leg"));
            }
            let vote = match s.status {
                // A repeated prepare is answered as the first was.
                P::Prepared | P::Committed => Vote::Ready,
                P::Refused => Vote::Abort { reason: s.reason.clone().unwrap_or_default() },
                // Late: the transfer was aborted here already.
                P::Aborted => Vote::Abort { reason: "aborted".into() },
            };
            answer(s, Some(Reply::Vote(vote)))
        }

        (Some(s), ParticipantInput::Commit) => match s.status {
            P::Prepared => {
                let request = s.request.as_ref().expect("a prepared leg has its request");
                let mut next = s.clone();
                next.status = P::Committed;
                Ok(ParticipantTransition { effects: vec![terminal(request, Decision::Commit)], state: next, reply: Some(Reply::Ack(Decision::Commit)) })
            }
            P::Committed => answer(s, Some(Reply::Ack(Decision::Commit))),
            P::Refused | P::Aborted => Err(illegal("the leg has aborted: it cannot commit")),
        },

        (Some(s), ParticipantInput::Abort) => match s.status {
            P::Prepared => {
                let request = s.request.as_ref().expect("a prepared leg has its request");
                let mut next = s.clone();
                next.status = P::Aborted;
                Ok(ParticipantTransition { effects: vec![terminal(request, Decision::Abort)], state: next, reply: Some(Reply::Ack(Decision::Abort)) })
            }
            P::Refused | P::Aborted => answer(s, Some(Reply::Ack(Decision::Abort))),
            P::Committed => Err(illegal("the leg has committed: it cannot abort")),
        },

        // In doubt: never decide alone; ask the coordinator and keep holding.
        (Some(s), ParticipantInput::Timeout | ParticipantInput::Restart) => {
            let reply = (s.status == P::Prepared).then_some(Reply::Inquire);
            answer(s, reply)
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Clearing
// ------------------------------------------------------------------------------------------------

/// Each bank's clearing position per peer, `(bank, peer) → balance`, from the effects each bank
/// applied (`(bank, effect)`; only the committed ones post to clearing accounts).
pub fn clearing_positions<'a>(applied: impl IntoIterator<Item = (&'a str, &'a Effect)>) -> BTreeMap<(BankCode, BankCode), Decimal> {
    let mut positions: BTreeMap<(BankCode, BankCode), Decimal> = BTreeMap::new();
    for (bank, effect) in applied {
        for p in effect.clearing() {
            *positions.entry((bank.to_string(), p.peer)).or_default() += p.amount;
        }
    }
    positions
}

/// Whether the positions net to zero: what a bank owes a peer is what the peer is owed by it
/// (`(a, b) = −(b, a)`, so a bank's transit account for itself is zero), and the total is zero.
pub fn nets_to_zero(positions: &BTreeMap<(BankCode, BankCode), Decimal>) -> bool {
    let of = |a: &str, b: &str| positions.get(&(a.to_string(), b.to_string())).copied().unwrap_or_default();
    positions.keys().all(|(a, b)| (of(a, b) + of(b, a)).is_zero()) && positions.values().copied().sum::<Decimal>().is_zero()
}

#[cfg(test)]
#[path = "interbank_tests.rs"]
mod tests;
