//! Every transition of the two machines, legal and illegal, then a randomized simulation of a
//! coordinator and its participants over a lossy network with crashes.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

fn d(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

fn leg(bank: &str, account: &str, side: Side, cents: i64) -> Leg {
    Leg { bank: bank.into(), account: account.into(), side, amount: d(cents) }
}

/// 001:a pays 40.00 to 002:b.
fn one_to_one() -> Transfer {
    Transfer::new("tx1", "BRL", vec![leg("001", "a", Side::Debit, 4000), leg("002", "b", Side::Credit, 4000)]).unwrap()
}

/// 001:a 10.00 + 002:c 20.00 + 003:e 5.00 → 003:f 35.00.
fn many_to_one() -> Transfer {
    Transfer::new(
        "tx2",
        "BRL",
        vec![leg("001", "a", Side::Debit, 1000), leg("002", "c", Side::Debit, 2000), leg("003", "e", Side::Debit, 500), leg("003", "f", Side::Credit, 3500)],
    )
    .unwrap()
}

fn begun(t: Transfer) -> Coordinator {
    Coordinator::begin(t).state
}

fn apply(c: &Coordinator, input: CoordinatorInput) -> Transition {
    step(c, input).expect("legal")
}

fn ready(leg: usize) -> CoordinatorInput {
    CoordinatorInput::Vote { leg, vote: Vote::Ready }
}

fn refuse(leg: usize, reason: &str) -> CoordinatorInput {
    CoordinatorInput::Vote { leg, vote: Vote::Abort { reason: reason.into() } }
}

fn ack(leg: usize, decision: Decision) -> CoordinatorInput {
    CoordinatorInput::Ack { leg, decision }
}

fn kinds(t: &Transition) -> Vec<(usize, &'static str)> {
    t.send
        .iter()
        .map(|o| {
            let k = match o.message {
                Message::Prepare(_) => "prepare",
                Message::Commit => "commit",
                Message::Abort => "abort",
            };
            (o.leg, k)
        })
        .collect()
}

// --- transfers ------------------------------------------------------------------------------------

#[test]
fn transfers_need_debits_one_credit_and_balance() {
    let ok = |legs| Transfer::new("t", "BRL", legs);
    assert_eq!(ok(vec![leg("001", "b", Side::Credit, 100)]), Err(InvalidTransfer::NoDebit));
    assert_eq!(ok(vec![leg("001", "a", Side::Debit, 100)]), Err(InvalidTransfer::CreditCount(0)));
    assert_eq!(
        ok(vec![leg("001", "a", Side::Debit, 200), leg("002", "b", Side::Credit, 100), leg("003", "c", Side::Credit, 100)]),
        Err(InvalidTransfer::CreditCount(2))
    );
    assert_eq!(ok(vec![leg("001", "a", Side::Debit, 0), leg("002", "b", Side::Credit, 0)]), Err(InvalidTransfer::NotPositive(0)));
    assert_eq!(
        ok(vec![leg("001", "a", Side::Debit, 100), leg("002", "b", Side::Credit, 101)]),
        Err(InvalidTransfer::Unbalanced { debits: d(100), credit: d(101) })
    );
    let many: Vec<Leg> = (0..MAX_LEGS).map(|i| leg("001", &format!("a{i}"), Side::Debit, 1)).chain([leg("002", "b", Side::Credit, MAX_LEGS as i64)]).collect();
    assert_eq!(ok(many), Err(InvalidTransfer::TooManyLegs));
    assert_eq!(many_to_one().total(), d(3500));
}

#[test]
fn prepare_requests_name_the_other_side() {
    let t = many_to_one();
    assert_eq!(t.prepare_request(0).counterparts, vec![("003".to_string(), d(1000))]);
    assert_eq!(t.prepare_request(3).counterparts, vec![("001".to_string(), d(1000)), ("002".to_string(), d(2000)), ("003".to_string(), d(500))]);
    assert_eq!(t.prepare_request(1).leg_index, 1);
}

#[test]
fn statuses_round_trip_their_names() {
    for s in CoordinatorStatus::ALL {
        assert_eq!(CoordinatorStatus::parse(s.as_str()), Some(s));
    }
    for s in ParticipantStatus::ALL {
        assert_eq!(ParticipantStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(CoordinatorStatus::parse("NONE"), None);
}

// --- coordinator ----------------------------------------------------------------------------------

#[test]
fn begin_logs_then_prepares_every_leg() {
    let t = Coordinator::begin(many_to_one());
    assert!(t.log_first);
    assert_eq!(t.state.status, CoordinatorStatus::Preparing);
    assert_eq!(kinds(&t), vec![(0, "prepare"), (1, "prepare"), (2, "prepare"), (3, "prepare")]);
    assert_eq!(t.send.iter().map(|o| o.to.as_str()).collect::<Vec<_>>(), vec!["001", "002", "003", "003"]);
}

#[test]
fn every_ready_commits_after_logging_the_decision() {
    let c = begun(one_to_one());
    let t = apply(&c, ready(0));
    assert_eq!(t.state.status, CoordinatorStatus::Preparing);
    assert!(t.send.is_empty() && !t.log_first);
    let t = apply(&t.state, ready(1));
    assert_eq!(t.state.status, CoordinatorStatus::Committing);
    assert!(t.log_first, "the decision is logged before phase two");
    assert_eq!(kinds(&t), vec![(0, "commit"), (1, "commit")]);
    let t = apply(&t.state, ack(1, Decision::Commit));
    assert_eq!(t.state.status, CoordinatorStatus::Committing);
    let t = apply(&t.state, ack(0, Decision::Commit));
    assert_eq!(t.state.status, CoordinatorStatus::Committed);
    assert!(t.send.is_empty() && !t.log_first);
}

#[test]
fn one_abort_vote_aborts_the_others_and_counts_as_acknowledged() {
    let c = begun(many_to_one());
    let t = apply(&c, ready(0));
    let t = apply(&t.state, refuse(1, "insufficient_funds"));
    assert_eq!(t.state.status, CoordinatorStatus::Aborting);
    assert_eq!(t.state.reason.as_deref(), Some("insufficient_funds"));
    assert!(t.log_first);
    assert_eq!(kinds(&t), vec![(0, "abort"), (2, "abort"), (3, "abort")], "not to the leg that refused");
    let mut s = t.state;
    for l in [0, 2, 3] {
        s = apply(&s, ack(l, Decision::Abort)).state;
    }
    assert_eq!(s.status, CoordinatorStatus::Aborted);
}

#[test]
fn the_prepare_timeout_aborts_and_is_a_no_op_once_decided() {
    let c = begun(one_to_one());
    let t = apply(&apply(&c, ready(0)).state, CoordinatorInput::PrepareTimeout);
    assert_eq!(t.state.status, CoordinatorStatus::Aborting);
    assert_eq!(t.state.reason.as_deref(), Some("prepare_timeout"));
    assert_eq!(kinds(&t), vec![(0, "abort"), (1, "abort")]);
    for s in [t.state.clone(), apply(&apply(&c, ready(0)).state, ready(1)).state] {
        let again = apply(&s, CoordinatorInput::PrepareTimeout);
        assert_eq!(again.state, s);
        assert!(again.send.is_empty());
    }
}

#[test]
fn duplicate_votes_and_acks_change_nothing() {
    let c = apply(&begun(one_to_one()), ready(0)).state;
    let t = apply(&c, ready(0));
    assert_eq!(t.state, c);
    assert!(t.send.is_empty());
    let committing = apply(&c, ready(1)).state;
    let acked = apply(&committing, ack(0, Decision::Commit)).state;
    assert_eq!(apply(&acked, ack(0, Decision::Commit)).state, acked);
    let done = apply(&acked, ack(1, Decision::Commit)).state;
    assert_eq!(done.status, CoordinatorStatus::Committed);
    let t = apply(&done, ack(1, Decision::Commit));
    assert_eq!(t.state, done);
    let t = apply(&done, ready(1));
    assert_eq!(t.state, done);
    assert!(t.send.is_empty(), "everyone acknowledged: nothing to resend");
}

#[test]
fn a_vote_after_the_decision_does_not_change_it() {
    // Aborted by timeout; a late READY gets the abort again, a late ABORT counts as acknowledged.
    let aborting = apply(&begun(many_to_one()), CoordinatorInput::PrepareTimeout).state;
    let t = apply(&aborting, ready(0));
    assert_eq!(t.state.status, CoordinatorStatus::Aborting);
    assert_eq!(kinds(&t), vec![(0, "abort")]);
    let t = apply(&t.state, refuse(1, "insufficient_funds"));
    assert!(t.state.acked[1]);
    assert!(t.send.is_empty());
    // A leg whose READY was recorded and which then aborted answers a late duplicate prepare with ABORT.
    let t = apply(&t.state, refuse(0, "aborted"));
    assert!(t.state.acked[0]);
    assert_eq!(t.state.votes[0], Some(Vote::Ready), "the first vote stays on record");
    let t = apply(&apply(&t.state, ack(2, Decision::Abort)).state, ack(3, Decision::Abort));
    assert_eq!(t.state.status, CoordinatorStatus::Aborted);
    // Once aborted, the votes of a leg may arrive in any order.
    let refused = apply(&begun(one_to_one()), refuse(0, "insufficient_funds")).state;
    let t = apply(&refused, ready(0));
    assert_eq!(t.state, refused);
    assert!(t.send.is_empty(), "that leg has aborted already");
    // Committing: a duplicate READY from an unacknowledged leg gets the commit again.
    let committing = apply(&apply(&begun(one_to_one()), ready(0)).state, ready(1)).state;
    let t = apply(&committing, ready(1));
    assert_eq!(t.state, committing);
    assert_eq!(kinds(&t), vec![(1, "commit")]);
}

#[test]
fn coordinator_refuses_what_does_not_fit() {
    let c = begun(one_to_one());
    let preparing_ready = apply(&c, ready(0)).state;
    let committing = apply(&preparing_ready, ready(1)).state;
    let refused = apply(&c, refuse(0, "x")).state;
    let cases: Vec<(&Coordinator, CoordinatorInput, &str)> = vec![
        (&c, ready(7), "no such leg"),
        (&c, ack(7, Decision::Abort), "no such leg"),
        (&c, CoordinatorInput::Inquiry { leg: 7 }, "no such leg"),
        (&c, ack(0, Decision::Commit), "no decision has been sent"),
        (&c, ack(0, Decision::Abort), "no decision has been sent"),
        (&preparing_ready, refuse(0, "x"), "a leg that voted READY cannot vote ABORT"),
        (&committing, refuse(0, "x"), "a leg that voted READY cannot vote ABORT"),
        (&committing, ack(0, Decision::Abort), "acknowledges the other decision"),
        (&refused, ack(1, Decision::Commit), "acknowledges the other decision"),
    ];
    for (state, input, why) in cases {
        let name = input.name();
        let err = step(state, input).expect_err(name);
        assert_eq!(err.why, why, "{name} in {}", state.status);
        assert_eq!(err.state, state.status.as_str());
    }
}

#[test]
fn inquiries_are_answered_with_the_decision_or_not_at_all() {
    let c = apply(&begun(one_to_one()), ready(0)).state;
    assert!(apply(&c, CoordinatorInput::Inquiry { leg: 0 }).send.is_empty(), "in doubt: keep holding");
    let committing = apply(&c, ready(1)).state;
    assert_eq!(kinds(&apply(&committing, CoordinatorInput::Inquiry { leg: 0 })), vec![(0, "commit")]);
    let aborted = apply(&apply(&begun(one_to_one()), refuse(0, "x")).state, ack(1, Decision::Abort)).state;
    assert_eq!(aborted.status, CoordinatorStatus::Aborted);
    assert_eq!(kinds(&apply(&aborted, CoordinatorInput::Inquiry { leg: 1 })), vec![(1, "abort")]);
    assert_eq!(InquiryAnswer::of(c.status), InquiryAnswer::Undecided);
    assert_eq!(InquiryAnswer::of(committing.status), InquiryAnswer::Decided(Decision::Commit));
    assert_eq!(InquiryAnswer::of(aborted.status), InquiryAnswer::Decided(Decision::Abort));
}

#[test]
fn an_unknown_transfer_is_presumed_aborted_only_if_this_bank_never_issued_it() {
    // Never issued here: never begun, so no leg can have committed — abort.
    assert_eq!(answer_unknown(false), InquiryAnswer::Decided(Decision::Abort));
    // Issued here and no record left: lost, not "never begun". Not abort (its credit may have
    // committed); the leg stays in doubt.
    assert_eq!(answer_unknown(true), InquiryAnswer::Lost);
}

#[test]
fn restart_resends_what_is_awaited() {
    let c = apply(&begun(many_to_one()), ready(1)).state;
    let t = apply(&c, CoordinatorInput::Restart);
    assert_eq!(t.state, c);
    assert_eq!(kinds(&t), vec![(0, "prepare"), (2, "prepare"), (3, "prepare")], "only legs without a vote");
    let mut s = c;
    for l in [0, 2, 3] {
        s = apply(&s, ready(l)).state;
    }
    s = apply(&s, ack(2, Decision::Commit)).state;
    assert_eq!(kinds(&apply(&s, CoordinatorInput::Restart)), vec![(0, "commit"), (1, "commit"), (3, "commit")]);
    for l in [0, 1, 3] {
        s = apply(&s, ack(l, Decision::Commit)).state;
    }
    assert_eq!(s.status, CoordinatorStatus::Committed);
    assert!(apply(&s, CoordinatorInput::Restart).send.is_empty());
    let aborting = apply(&apply(&begun(one_to_one()), CoordinatorInput::PrepareTimeout).state, ack(0, Decision::Abort)).state;
    assert_eq!(kinds(&apply(&aborting, CoordinatorInput::Restart)), vec![(1, "abort")]);
}

// --- participant ----------------------------------------------------------------------------------

fn account(cents: i64) -> Option<AccountView> {
    Some(AccountView { currency: "BRL".into(), available: d(cents), limits: Limits::default() })
}

fn limited(cents: i64, limits: Limits) -> Option<AccountView> {
    Some(AccountView { currency: "BRL".into(), available: d(cents), limits })
}

fn prepare(t: &Transfer, leg: usize, acct: Option<AccountView>) -> ParticipantInput {
    ParticipantInput::Prepare { request: t.prepare_request(leg), account: acct }
}

fn p_apply(state: Option<&Participant>, input: ParticipantInput) -> ParticipantTransition {
    participant_step(state, input).expect("legal")
}

#[test]
fn a_debit_with_funds_is_held_and_answers_ready() {
    let t = p_apply(None, prepare(&one_to_one(), 0, account(4000)));
    assert_eq!(t.state.status, ParticipantStatus::Prepared);
    assert_eq!(t.effects, vec![Effect::HoldDebit { account: "a".into(), amount: d(4000) }]);
    assert_eq!(t.reply, Some(Reply::Vote(Vote::Ready)));
}

#[test]
fn a_credit_is_recorded_pending_and_moves_no_balance() {
    let t = p_apply(None, prepare(&one_to_one(), 1, account(0)));
    assert_eq!(t.state.status, ParticipantStatus::Prepared);
    assert_eq!(t.effects, vec![Effect::RecordPendingCredit { account: "b".into(), amount: d(4000) }]);
    assert!(t.effects[0].postings("BRL").is_empty(), "invisible and unspendable until commit");
    assert_eq!(t.reply, Some(Reply::Vote(Vote::Ready)));
}

#[test]
fn prepares_that_cannot_be_honoured_are_refused() {
    let tr = one_to_one();
    let usd = Some(AccountView { currency: "USD".into(), available: d(1_000_000), limits: Limits::default() });
    for (input, reason) in [
        (prepare(&tr, 0, account(3999)), "insufficient_funds"),
        (prepare(&tr, 0, None), "unknown_account"),
        (prepare(&tr, 1, None), "unknown_account"),
        (prepare(&tr, 0, usd.clone()), "currency_mismatch"),
        (prepare(&tr, 1, usd), "currency_mismatch"),
    ] {
        let t = p_apply(None, input);
        assert_eq!(t.state.status, ParticipantStatus::Refused);
        assert!(t.effects.is_empty());
        assert_eq!(t.reply, Some(Reply::Vote(Vote::Abort { reason: reason.into() })));
        // Asked again, it answers the same.
        let again = p_apply(Some(&t.state), ParticipantInput::Prepare { request: t.state.request.clone().unwrap(), account: account(1_000_000) });
        assert_eq!(again.reply, t.reply);
        assert!(again.effects.is_empty());
    }
}

#[test]
fn commit_settles_and_posts_with_the_clearing_postings() {
    let tr = many_to_one();
    let debit = p_apply(None, prepare(&tr, 1, account(5000))).state;
    let t = p_apply(Some(&debit), ParticipantInput::Commit);
    assert_eq!(t.state.status, ParticipantStatus::Committed);
    assert_eq!(t.effects, vec![Effect::SettleDebit { account: "c".into(), amount: d(2000), to: "003".into() }]);
    assert_eq!(t.effects[0].clearing(), vec![ClearingPosting { peer: "003".into(), amount: d(2000) }]);
    assert_eq!(t.reply, Some(Reply::Ack(Decision::Commit)));
    let credit = p_apply(None, prepare(&tr, 3, account(0))).state;
    let t = p_apply(Some(&credit), ParticipantInput::Commit);
    let Effect::PostCredit { amount, from, .. } = &t.effects[0] else { panic!("{:?}", t.effects) };
    assert_eq!(*amount, d(3500));
    assert_eq!(from.len(), 3);
    for e in &t.effects {
        assert!(ledger::balanced(&e.postings("BRL")));
    }
}

#[test]
fn abort_releases_the_hold_or_drops_the_pending_credit() {
    let tr = one_to_one();
    let debit = p_apply(None, prepare(&tr, 0, account(4000))).state;
    let t = p_apply(Some(&debit), ParticipantInput::Abort);
    assert_eq!(t.state.status, ParticipantStatus::Aborted);
    assert_eq!(t.effects, vec![Effect::ReleaseHold { account: "a".into(), amount: d(4000) }]);
    assert_eq!(t.reply, Some(Reply::Ack(Decision::Abort)));
    let credit = p_apply(None, prepare(&tr, 1, account(0))).state;
    let t = p_apply(Some(&credit), ParticipantInput::Abort);
    assert_eq!(t.effects, vec![Effect::DropPendingCredit { account: "b".into(), amount: d(4000) }]);
}

#[test]
fn decisions_repeated_are_acknowledged_and_move_nothing() {
    let tr = one_to_one();
    let prepared = p_apply(None, prepare(&tr, 0, account(4000))).state;
    let committed = p_apply(Some(&prepared), ParticipantInput::Commit).state;
    let t = p_apply(Some(&committed), ParticipantInput::Commit);
    assert_eq!((t.state, t.effects, t.reply), (committed.clone(), vec![], Some(Reply::Ack(Decision::Commit))));
    let aborted = p_apply(Some(&prepared), ParticipantInput::Abort).state;
    let t = p_apply(Some(&aborted), ParticipantInput::Abort);
    assert_eq!((t.state, t.effects, t.reply), (aborted, vec![], Some(Reply::Ack(Decision::Abort))));
    let refused = p_apply(None, prepare(&tr, 0, account(0))).state;
    let t = p_apply(Some(&refused), ParticipantInput::Abort);
    assert_eq!((t.state, t.effects, t.reply), (refused, vec![], Some(Reply::Ack(Decision::Abort))));
    // A duplicate prepare to a prepared or committed leg answers READY again and holds nothing more.
    for s in [&prepared, &committed] {
        let t = p_apply(Some(s), prepare(&tr, 0, account(4000)));
        assert_eq!((t.effects, t.reply), (vec![], Some(Reply::Vote(Vote::Ready))));
    }
}

#[test]
fn an_abort_before_the_prepare_is_remembered_and_the_late_prepare_refused() {
    let tr = one_to_one();
    let t = p_apply(None, ParticipantInput::Abort);
    assert_eq!(t.state.status, ParticipantStatus::Aborted);
    assert!(t.effects.is_empty());
    assert_eq!(t.reply, Some(Reply::Ack(Decision::Abort)));
    let late = p_apply(Some(&t.state), prepare(&tr, 0, account(1_000_000)));
    assert_eq!(late.state.status, ParticipantStatus::Aborted);
    assert!(late.effects.is_empty(), "nothing is held for an aborted transfer");
    assert_eq!(late.reply, Some(Reply::Vote(Vote::Abort { reason: "aborted".into() })));
}

#[test]
fn a_prepared_leg_never_decides_alone() {
    let prepared = p_apply(None, prepare(&one_to_one(), 0, account(4000))).state;
    for input in [ParticipantInput::Timeout, ParticipantInput::Restart] {
        let t = p_apply(Some(&prepared), input);
        assert_eq!(t.state, prepared, "still holding");
        assert!(t.effects.is_empty());
        assert_eq!(t.reply, Some(Reply::Inquire));
    }
    for s in [ParticipantStatus::Refused, ParticipantStatus::Committed, ParticipantStatus::Aborted] {
        let rec = Participant { status: s, ..prepared.clone() };
        let t = p_apply(Some(&rec), ParticipantInput::Timeout);
        assert_eq!((t.state, t.effects, t.reply), (rec, vec![], None));
    }
}

#[test]
fn participant_refuses_what_does_not_fit() {
    let tr = one_to_one();
    let prepared = p_apply(None, prepare(&tr, 0, account(4000))).state;
    let committed = p_apply(Some(&prepared), ParticipantInput::Commit).state;
    let aborted = p_apply(Some(&prepared), ParticipantInput::Abort).state;
    let refused = p_apply(None, prepare(&tr, 0, account(0))).state;
    let cases: Vec<(Option<&Participant>, ParticipantInput, &str)> = vec![
        (None, ParticipantInput::Commit, "a commit needs a READY from this leg"),
        (None, ParticipantInput::Timeout, "no record of the transfer"),
        (None, ParticipantInput::Restart, "no record of the transfer"),
        (Some(&committed), ParticipantInput::Abort, "the leg has committed: it cannot abort"),
        (Some(&aborted), ParticipantInput::Commit, "the leg has aborted: it cannot commit"),
        (Some(&refused), ParticipantInput::Commit, "the leg has aborted: it cannot commit"),
        (Some(&prepared), prepare(&tr, 1, account(0)), "a different prepare for the same leg"),
    ];
    for (state, input, why) in cases {
        let name = input.name();
        assert_eq!(participant_step(state, input).expect_err(name).why, why, "{name}");
    }
}

// --- clearing -------------------------------------------------------------------------------------

/// Prepares and commits every leg of `t`, returning `(bank, effect)` for each effect applied.
fn commit_all(t: &Transfer) -> Vec<(String, Effect)> {
    let mut out = vec![];
    for (i, l) in t.legs.iter().enumerate() {
        let p = p_apply(None, prepare(t, i, account(i64::MAX / 4)));
        let c = p_apply(Some(&p.state), ParticipantInput::Commit);
        out.extend(p.effects.into_iter().chain(c.effects).map(|e| (l.bank.clone(), e)));
    }
    out
}

#[test]
fn clearing_of_a_many_to_one_nets_to_zero() {
    let applied = commit_all(&many_to_one());
    let positions = clearing_positions(applied.iter().map(|(b, e)| (b.as_str(), e)));
    let get = |a: &str, b: &str| positions[&(a.to_string(), b.to_string())];
    assert_eq!(get("001", "003"), d(1000));
    assert_eq!(get("003", "001"), d(-1000));
    assert_eq!(get("002", "003"), d(2000));
    assert_eq!(get("003", "002"), d(-2000));
    assert_eq!(get("003", "003"), Decimal::ZERO, "the same-bank leg goes through the transit account");
    assert!(nets_to_zero(&positions));
    let mut lopsided = positions.clone();
    lopsided.insert(("001".into(), "003".into()), d(999));
    assert!(!nets_to_zero(&lopsided));
}

fn transfer_strategy(id: usize) -> impl Strategy<Value = Transfer> {
    (proptest::collection::vec((0usize..4, 1i64..100_000), 1..4), 0usize..4).prop_map(move |(debits, to)| {
        let bank = |i: usize| format!("00{}", i + 1);
        let mut legs: Vec<Leg> = debits.iter().enumerate().map(|(j, (b, c))| leg(&bank(*b), &format!("s{id}-{j}"), Side::Debit, *c)).collect();
        let total: i64 = debits.iter().map(|(_, c)| c).sum();
        legs.push(leg(&bank(to), &format!("d{id}"), Side::Credit, total));
        Transfer::new(format!("tx{id}"), "BRL", legs).unwrap()
    })
}

proptest! {
    /// Whatever the committed transfers between four banks, the clearing positions net to zero and
    /// customer money is conserved.
    #[test]
    fn clearing_positions_of_committed_transfers_net_to_zero(ts in proptest::collection::vec(any::<u8>(), 1..20).prop_flat_map(|v| {
        v.into_iter().enumerate().map(|(i, _)| transfer_strategy(i)).collect::<Vec<_>>()
    })) {
        let applied: Vec<(String, Effect)> = ts.iter().flat_map(commit_all).collect();
        let positions = clearing_positions(applied.iter().map(|(b, e)| (b.as_str(), e)));
        prop_assert!(nets_to_zero(&positions), "{positions:?}");
        let customers: Decimal = applied.iter().flat_map(|(_, e)| e.postings("BRL")).filter(|p| !p.account.starts_with("clearing:")).map(|p| p.amount).sum();
        prop_assert_eq!(customers, Decimal::ZERO);
        for (_, e) in &applied {
            prop_assert!(ledger::balanced(&e.postings("BRL")));
        }
    }
}

// --- simulation -----------------------------------------------------------------------------------

/// A message in flight.
#[derive(Debug, Clone)]
enum Envelope {
    ToLeg(usize, Message),
    ToCoordinator(usize, Reply),
}

impl Envelope {
    fn touches_leg(&self, leg: usize) -> bool {
        matches!(self, Envelope::ToLeg(l, _) | Envelope::ToCoordinator(l, _) if *l == leg)
    }
}

/// One step of the schedule. Indices are taken modulo what exists.
#[derive(Debug, Clone)]
enum Action {
    /// Deliver a message in flight (any of them: reordering).
    Deliver(usize),
    Duplicate(usize),
    Lose(usize),
    /// A participant's patience runs out: it asks the coordinator.
    ParticipantTimeout(usize),
    /// The coordinator crashes and restarts: its state survives, the messages to and from it are lost, recovery resends.
    CrashCoordinator,
    CrashParticipant(usize),
    /// A tick of the coordinator's recovery loop.
    Recover,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => any::<usize>().prop_map(Action::Deliver),
        2 => any::<usize>().prop_map(Action::Duplicate),
        2 => any::<usize>().prop_map(Action::Lose),
        2 => any::<usize>().prop_map(Action::ParticipantTimeout),
        1 => Just(Action::CrashCoordinator),
        1 => any::<usize>().prop_map(Action::CrashParticipant),
        1 => Just(Action::Recover),
    ]
}

/// A transfer between 2–4 legs in four banks, with each leg's account as the bank sees it.
#[derive(Debug, Clone)]
struct Scenario {
    transfer: Transfer,
    accounts: Vec<Option<AccountView>>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let debit = (0usize..4, 1i64..10_000, 0u8..10);
    (proptest::collection::vec(debit, 1..4), 0usize..4, 0u8..20).prop_map(|(debits, to, credit_roll)| {
        let bank = |i: usize| format!("00{}", i + 1);
        let mut legs = vec![];
        let mut accounts = vec![];
        for (j, (b, cents, roll)) in debits.iter().enumerate() {
            legs.push(leg(&bank(*b), &format!("src{j}"), Side::Debit, *cents));
            // Mostly enough money; sometimes not.
            let available = if *roll == 0 { cents - 1 } else { cents + i64::from(*roll) * 100 };
            accounts.push(account(available));
        }
        let total: i64 = debits.iter().map(|(_, c, _)| c).sum();
        legs.push(leg(&bank(to), "dst", Side::Credit, total));
        accounts.push(if credit_roll == 0 { None } else { account(0) });
        Scenario { transfer: Transfer::new("tx", "BRL", legs).unwrap(), accounts }
    })
}

struct Sim {
    accounts: Vec<Option<AccountView>>,
    coord: Coordinator,
    parts: Vec<Option<Participant>>,
    /// The effects each leg's bank applied, in order.
    effects: Vec<Vec<Effect>>,
    /// Whether each leg ever answered READY.
    voted_ready: Vec<bool>,
    net: Vec<Envelope>,
}

impl Sim {
    fn start(s: &Scenario) -> Self {
        let t = Coordinator::begin(s.transfer.clone());
        let n = s.transfer.legs.len();
        let mut sim = Sim {
            accounts: s.accounts.clone(),
            coord: t.state.clone(),
            parts: vec![None; n],
            effects: vec![vec![]; n],
            voted_ready: vec![false; n],
            net: vec![],
        };
        sim.post(t);
        sim
    }

    fn post(&mut self, t: Transition) {
        let before = self.coord.status;
        if before == CoordinatorStatus::Preparing && t.state.status == CoordinatorStatus::Committing {
            assert!(self.voted_ready.iter().all(|r| *r), "COMMITTING only when every leg voted READY");
        }
        if before.decision().is_none() && t.state.status.decision().is_some() {
            assert!(t.log_first, "the decision is logged before it is sent");
        }
        if let Some(d) = before.decision() {
            assert_eq!(t.state.status.decision(), Some(d), "a decision never changes");
        }
        self.coord = t.state;
        self.net.extend(t.send.into_iter().map(|o| Envelope::ToLeg(o.leg, o.message)));
    }

    fn coordinator(&mut self, input: CoordinatorInput) {
        let t = step(&self.coord, input).unwrap_or_else(|e| panic!("a legal run fed the coordinator something illegal: {e}"));
        self.post(t);
    }

    fn participant(&mut self, leg: usize, input: ParticipantInput) {
        let before = self.parts[leg].as_ref().map(|p| p.status);
        let t = participant_step(self.parts[leg].as_ref(), input).unwrap_or_else(|e| panic!("leg {leg}: {e}"));
        if before == Some(ParticipantStatus::Prepared) && t.state.status != ParticipantStatus::Prepared {
            assert_eq!(t.state.status.outcome(), self.coord.status.decision(), "a prepared leg moves only on the coordinator's decision");
        }
        if before == Some(ParticipantStatus::Committed) {
            assert_eq!(t.state.status, ParticipantStatus::Committed);
        }
        if t.reply == Some(Reply::Vote(Vote::Ready)) {
            self.voted_ready[leg] = true;
        }
        self.effects[leg].extend(t.effects);
        self.parts[leg] = Some(t.state);
        if let Some(reply) = t.reply {
            self.net.push(Envelope::ToCoordinator(leg, reply));
        }
    }

    fn deliver(&mut self, envelope: Envelope) {
        match envelope {
            Envelope::ToLeg(leg, message) => {
                let input = match message {
                    Message::Prepare(request) => ParticipantInput::Prepare { request, account: self.accounts[leg].clone() },
                    Message::Commit => ParticipantInput::Commit,
                    Message::Abort => ParticipantInput::Abort,
                };
                self.participant(leg, input);
            }
            Envelope::ToCoordinator(leg, reply) => {
                let input = match reply {
                    Reply::Vote(vote) => CoordinatorInput::Vote { leg, vote },
                    Reply::Ack(decision) => CoordinatorInput::Ack { leg, decision },
                    Reply::Inquire => CoordinatorInput::Inquiry { leg },
                };
                self.coordinator(input);
            }
        }
    }

    fn nudge(&mut self, leg: usize, input: ParticipantInput) {
        if self.parts[leg].is_some() {
            self.participant(leg, input);
        }
    }

    fn act(&mut self, action: Action) {
        let legs = self.parts.len();
        let pick = |i: usize, len: usize| (len > 0).then(|| i % len);
        match action {
            Action::Deliver(i) => {
                if let Some(i) = pick(i, self.net.len()) {
                    let e = self.net.remove(i);
                    self.deliver(e);
                }
            }
            Action::Duplicate(i) => {
                if let Some(i) = pick(i, self.net.len()) {
                    self.net.push(self.net[i].clone());
                }
            }
            Action::Lose(i) => {
                if let Some(i) = pick(i, self.net.len()) {
                    self.net.remove(i);
                }
            }
            Action::ParticipantTimeout(i) => self.nudge(i % legs, ParticipantInput::Timeout),
            Action::CrashCoordinator => {
                self.net.clear();
                self.coordinator(CoordinatorInput::Restart);
            }
            Action::CrashParticipant(i) => {
                let leg = i % legs;
                self.net.retain(|e| !e.touches_leg(leg));
                self.nudge(leg, ParticipantInput::Restart);
            }
            Action::Recover => self.coordinator(CoordinatorInput::Restart),
        }
    }

    fn quiet(&self) -> bool {
        self.net.is_empty() && self.coord.status.is_terminal() && self.parts.iter().all(|p| p.as_ref().is_some_and(|p| p.status.is_terminal()))
    }

    /// The network heals: messages are delivered in order, the recovery loop and the participants'
    /// timers run, and the prepare deadline eventually passes.
    fn quiesce(&mut self) -> bool {
        for round in 0..8 {
            while !self.net.is_empty() {
                let e = self.net.remove(0);
                self.deliver(e);
            }
            if self.quiet() {
                return true;
            }
            if round >= 2 {
                self.coordinator(CoordinatorInput::PrepareTimeout);
            }
            self.coordinator(CoordinatorInput::Restart);
            for leg in 0..self.parts.len() {
                self.nudge(leg, ParticipantInput::Timeout);
            }
        }
        false
    }
}

/// Each account's change per bucket from the effects applied, `(bank, account, bucket) → Σ`.
fn balances(sim: &Sim, transfer: &Transfer) -> BTreeMap<(String, String, &'static str), Decimal> {
    let mut out = BTreeMap::new();
    for (leg, effects) in sim.effects.iter().enumerate() {
        for p in effects.iter().flat_map(|e| e.postings("BRL")) {
            *out.entry((transfer.legs[leg].bank.clone(), p.account.clone(), p.bucket.as_str())).or_default() += p.amount;
        }
    }
    out
}

fn check_outcome(sim: &Sim, scenario: &Scenario) -> Result<(), TestCaseError> {
    let transfer = &scenario.transfer;
    let decision = sim.coord.status.decision().expect("quiesced");
    for (leg, p) in sim.parts.iter().enumerate() {
        let p = p.as_ref().expect("every leg heard of the transfer");
        prop_assert_eq!(p.status.outcome(), Some(decision), "leg {} agrees with the coordinator", leg);
        // Exactly one opening and one terminal effect per prepared leg, none for the others.
        let effects = &sim.effects[leg];
        let opens = effects.iter().filter(|e| e.opens()).count();
        let closes: Vec<Decision> = effects.iter().filter_map(|e| e.closes()).collect();
        prop_assert!(opens <= 1, "leg {} opened twice: {:?}", leg, effects);
        prop_assert_eq!(closes.len(), opens, "leg {}: one terminal effect per opening: {:?}", leg, effects);
        prop_assert!(closes.iter().all(|c| *c == decision), "leg {}: {:?}", leg, effects);
        prop_assert!(effects.first().is_none_or(|e| e.opens()), "opened before closed");
        if decision == Decision::Commit {
            prop_assert_eq!(opens, 1);
        }
        for e in effects {
            prop_assert!(ledger::balanced(&e.postings("BRL")));
        }
    }
    if decision == Decision::Commit {
        prop_assert!(sim.voted_ready.iter().all(|r| *r), "COMMITTED only if every leg voted READY");
    }
    let moved = balances(sim, transfer);
    let of = |bank: &str, account: &str, bucket: &str| moved.get(&(bank.to_string(), account.to_string(), bucket)).copied().unwrap_or_default();
    match decision {
        Decision::Commit => {
            let mut debits = Decimal::ZERO;
            for (i, l) in transfer.legs.iter().enumerate() {
                prop_assert_eq!(of(&l.bank, &l.account, "held"), Decimal::ZERO, "no hold left behind");
                let expected = if l.side == Side::Debit { -l.amount } else { l.amount };
                prop_assert_eq!(of(&l.bank, &l.account, "available"), expected, "leg {}", i);
                let start = sim.accounts[i].as_ref().map(|a| a.available).unwrap_or_default();
                prop_assert!(start + expected >= Decimal::ZERO, "no negative balance");
                if l.side == Side::Debit {
                    debits += l.amount;
                }
            }
            prop_assert_eq!(debits, transfer.total(), "Σ debits = Σ credits");
            let customers: Decimal = moved.iter().filter(|((_, a, _), _)| !a.starts_with("clearing:")).map(|(_, v)| *v).sum();
            prop_assert_eq!(customers, Decimal::ZERO, "customer money is conserved across banks");
            let applied: Vec<(&str, &Effect)> =
                sim.effects.iter().enumerate().flat_map(|(i, es)| es.iter().map(move |e| (transfer.legs[i].bank.as_str(), e))).collect();
            let positions = clearing_positions(applied);
            prop_assert!(nets_to_zero(&positions), "{:?}", positions);
        }
        Decision::Abort => {
            prop_assert!(moved.values().all(|v| v.is_zero()), "nothing moves on abort: {:?}", moved);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// A coordinator and 2–4 participants over a network that loses, duplicates and reorders
    /// messages, with crashes and restarts on both sides and the prepare deadline at a random
    /// point: every run quiesces once the network heals, all legs end as the coordinator decided,
    /// and money moves exactly once per leg (or not at all).
    #[test]
    fn two_phase_commit_survives_loss_duplication_reordering_and_crashes(
        s in scenario(),
        schedule in proptest::collection::vec(action(), 0..60),
        deadline in proptest::option::of(0usize..60),
    ) {
        let mut sim = Sim::start(&s);
        for (i, a) in schedule.into_iter().enumerate() {
            if deadline == Some(i) {
                sim.coordinator(CoordinatorInput::PrepareTimeout);
            }
            sim.act(a);
            // Between any two steps: a leg outside PREPARED agrees with the coordinator, or has not decided.
            for p in sim.parts.iter().flatten() {
                if let Some(outcome) = p.status.outcome()
                    && p.request.is_some()
                    && p.status != ParticipantStatus::Refused
                {
                    prop_assert_eq!(Some(outcome), sim.coord.status.decision());
                }
            }
        }
        prop_assert!(sim.quiesce(), "the run quiesces once the network heals");
        check_outcome(&sim, &s)?;
    }
}

/// The simulation reaches both outcomes (so the properties above are not vacuous).
#[test]
fn the_simulation_commits_and_aborts() {
    use proptest::{
        strategy::ValueTree,
        test_runner::{Config, TestRunner},
    };
    let mut runner = TestRunner::new(Config::default());
    let (mut commits, mut aborts) = (0, 0);
    let strategy = (scenario(), proptest::collection::vec(action(), 0..60), proptest::option::of(0usize..60));
    for _ in 0..300 {
        let (s, schedule, deadline) = strategy.new_tree(&mut runner).unwrap().current();
        let mut sim = Sim::start(&s);
        for (i, a) in schedule.into_iter().enumerate() {
            if deadline == Some(i) {
                sim.coordinator(CoordinatorInput::PrepareTimeout);
            }
            sim.act(a);
        }
        assert!(sim.quiesce());
        check_outcome(&sim, &s).unwrap();
        match sim.coord.status {
            CoordinatorStatus::Committed => commits += 1,
            _ => aborts += 1,
        }
    }
    assert!(commits > 30 && aborts > 30, "commits {commits}, aborts {aborts}");
}

#[test]
fn the_holding_bank_applies_its_own_limits_to_a_debit_whoever_coordinates() {
    // one_to_one debits 40.00 from leg 0.
    let tr = one_to_one();
    let max = |cents| Limits { max_amount: Some(d(cents)), night: None };
    let night = |cents| Limits { max_amount: None, night: Some(d(cents)) };
    for (limits, business_hours, vote) in [
        (max(3999), false, Vote::Abort { reason: "limit_exceeded".into() }),
        (max(3999), true, Vote::Abort { reason: "limit_exceeded".into() }),
        (max(4000), false, Vote::Ready),
        (night(3999), false, Vote::Abort { reason: "limit_exceeded".into() }),
        (night(4000), false, Vote::Ready),
        // The night limit is for instant transfers; a business-hours one is not held to it.
        (night(3999), true, Vote::Ready),
        (Limits::default(), false, Vote::Ready),
    ] {
        let t = tr.clone().in_business_hours(business_hours);
        let out = p_apply(None, prepare(&t, 0, limited(1_000_000, limits.clone())));
        assert_eq!(out.reply, Some(Reply::Vote(vote.clone())), "{limits:?} business_hours={business_hours}");
        assert_eq!(out.effects.is_empty(), vote != Vote::Ready, "a refused leg holds nothing");
        // The credit leg is never limited by the recipient's bank.
        let credit = p_apply(None, prepare(&t, 1, limited(0, limits.clone())));
        assert_eq!(credit.reply, Some(Reply::Vote(Vote::Ready)));
    }
    // Over the limit and short of funds: the limit is what is said.
    let out = p_apply(None, prepare(&tr, 0, limited(10, max(100))));
    assert_eq!(out.reply, Some(Reply::Vote(Vote::Abort { reason: "limit_exceeded".into() })));
}

proptest! {
    #[test]
    fn a_debit_is_ready_exactly_when_funds_and_every_limit_allow_it(
        amount in 1i64..1_000_000, available in 0i64..1_000_000,
        max in proptest::option::of(1i64..1_000_000), night in proptest::option::of(1i64..1_000_000), business_hours in any::<bool>(),
    ) {
        let legs = vec![
            Leg { bank: "001".into(), account: "a".into(), side: Side::Debit, amount: d(amount) },
            Leg { bank: "002".into(), account: "b".into(), side: Side::Credit, amount: d(amount) },
        ];
        let t = Transfer::new("tx", "BRL", legs).unwrap().in_business_hours(business_hours);
        let limits = Limits { max_amount: max.map(d), night: night.map(d) };
        let out = p_apply(None, prepare(&t, 0, limited(available, limits)));
        let within = max.is_none_or(|m| amount <= m) && (business_hours || night.is_none_or(|n| amount <= n));
        let expected = if !within { Vote::Abort { reason: "limit_exceeded".into() } }
            else if available < amount { Vote::Abort { reason: "insufficient_funds".into() } }
            else { Vote::Ready };
        prop_assert_eq!(out.reply, Some(Reply::Vote(expected)));
    }
}
