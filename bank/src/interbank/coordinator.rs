//! The transfers this bank started: their durable log (`interbank_coordinator`) and the driver that
//! carries each to COMMITTED or ABORTED. [`step`] decides; this module persists and sends.
//!
//! Every change of a transfer is one database transaction: lock the log row, apply one input, run
//! the resulting messages to legs held *here* in-process (same transaction: their holds and the
//! coordinator's record commit together), save, commit — and only then send the messages to other
//! banks. So the log is durable before any prepare leaves, and the decision before any commit or
//! abort leaves (`Transition::log_first` always holds).
//!
//! Protocol timers (the prepare deadline, when to resend) run on the system clock; the records and
//! the ledger use the bank's business clock like every other write.

use std::{collections::VecDeque, time::Duration};

use chrono::{DateTime, Utc};
use sagaway_messaging::outbox::{self, Outgoing as OutboxMessage};
use sqlx::MySqlConnection;

use super::participant;
use crate::{
    AppState,
    rules::interbank::{
        Coordinator, CoordinatorInput, CoordinatorStatus, Illegal, InquiryAnswer, Message, Outgoing, ParticipantInput, Reply, Transfer, answer_unknown, step,
    },
    transfers::decided::decided,
};

/// What a change of a transfer left to do after its transaction commits.
#[derive(Debug, Default)]
pub struct Changed {
    pub state: Option<Coordinator>,
    /// Messages for other banks.
    pub send: Vec<Outgoing>,
    /// `bank.events` messages already in the outbox (the relay is to be woken).
    pub events: bool,
}

/// Starts coordinating `transfer`, in the caller's transaction: runs the legs held here (holds
/// placed, pending credits recorded, or refused) and logs the result. Returns the state; the caller
/// commits, then calls [`drive`] (or, when a leg here refused and nothing has left this bank yet,
/// may roll everything back instead).
pub async fn begin(conn: &mut MySqlConnection, app: &AppState, transfer: Transfer, now: DateTime<Utc>) -> sqlx::Result<Coordinator> {
    let transition = Coordinator::begin(transfer);
    let state = pump(conn, app, transition.state, transition.send.into(), now).await?;
    let mut events = Vec::new();
    let timer = Utc::now();
    sqlx::query(
        "INSERT INTO interbank_coordinator (tx_id, status, state, prepare_deadline, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&state.transfer.tx_id)
    .bind(state.status.as_str())
    .bind(to_json(&state)?)
    .bind(timer + app.config.interbank.prepare_timeout)
    .bind(timer + app.config.interbank.retry_interval)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if let Some(decision) = state.status.decision() {
        events.extend(decided(conn, &app.topics.events, &state.transfer.tx_id, decision, state.reason.as_deref(), now).await?);
    }
    outbox::enqueue_all(conn, &events).await?;
    Ok(state)
}

/// Delivers `queue` to the legs held here, in-process on `conn`, feeding each reply back into the
/// coordinator, until only messages to other banks are left (they are recomputed from the final
/// state by the driver). Returns the final state.
async fn pump(
    conn: &mut MySqlConnection,
    app: &AppState,
    mut state: Coordinator,
    mut queue: VecDeque<Outgoing>,
    now: DateTime<Utc>,
) -> sqlx::Result<Coordinator> {
    let code = app.config.code.clone();
    let tx_id = state.transfer.tx_id.clone();
    while let Some(out) = queue.pop_front() {
        if out.to != code {
            continue;
        }
        let input = match out.message {
            Message::Prepare(request) => ParticipantInput::Prepare { request, account: None },
            Message::Commit => ParticipantInput::Commit,
            Message::Abort => ParticipantInput::Abort,
        };
        let reply = match participant::apply(conn, &app.config, &code, &tx_id, out.leg, input, now).await? {
            Ok(Some(reply)) => reply,
            Ok(None) => continue,
            Err(illegal) => {
                tracing::error!(tx_id = %tx_id, leg = out.leg, %illegal, "a leg held here refused its coordinator's message");
                continue;
            }
        };
        let Some(input) = coordinator_input(out.leg, reply) else {
            continue;
        };
        match step(&state, input) {
            Ok(next) => {
                state = next.state;
                queue.extend(next.send);
            }
            Err(illegal) => {
                tracing::error!(tx_id = %tx_id, leg = out.leg, %illegal, "a reply from a leg held here does not fit")
            }
        }
    }
    Ok(state)
}

fn coordinator_input(leg: usize, reply: Reply) -> Option<CoordinatorInput> {
    match reply {
        Reply::Vote(vote) => Some(CoordinatorInput::Vote { leg, vote }),
        Reply::Ack(decision) => Some(CoordinatorInput::Ack { leg, decision }),
        Reply::Inquire => None,
    }
}

fn to_json(state: &Coordinator) -> sqlx::Result<String> {
    serde_json::to_string(state).map_err(|e| sqlx::Error::Protocol(e.to_string()))
}

#[derive(sqlx::FromRow)]
struct Row {
    state: String,
    prepare_deadline: DateTime<Utc>,
}

/// The logged state of `tx_id` (`FOR UPDATE` when `lock`), with its prepare deadline.
async fn load(conn: &mut MySqlConnection, tx_id: &str, lock: bool) -> sqlx::Result<Option<(Coordinator, DateTime<Utc>)>> {
    let sql = if lock {
        "SELECT state, prepare_deadline FROM interbank_coordinator WHERE tx_id = ? FOR UPDATE"
    } else {
        "SELECT state, prepare_deadline FROM interbank_coordinator WHERE tx_id = ?"
    };
    let row: Option<Row> = sqlx::query_as(sql).bind(tx_id).fetch_optional(&mut *conn).await?;
    row.map(|r| {
        serde_json::from_str(&r.state).map(|s| (s, r.prepare_deadline)).map_err(|e| sqlx::Error::Protocol(format!("interbank_coordinator {tx_id}: {e}")))
    })
    .transpose()
}

/// A new transfer id, carrying this bank's mark ([`crate::rules::interbank_auth::TxIdMark`]): with
/// no record of the transfer left, the bank still knows it issued it ([`decision_for`]).
pub fn new_tx_id(app: &AppState) -> String {
    app.config.interbank.key.tx_id_mark().issue(Utc::now().timestamp_millis().max(0) as u64, rand::random())
}

/// What a participant asking about `tx_id` learns: the decision, none yet while PREPARING, or for
/// a transfer with no record here, abort if this bank never issued its id (never begun: presumed
/// abort) and [`InquiryAnswer::Lost`] if it did — its record is gone (a restore from a backup), its
/// other legs may have committed, so it is never presumed aborted: counted in
/// `bank_interbank_lost_inquiries_total` and logged as an error for an operator.
/// `Err` when `leg` is not one of its legs held by `bank`.
pub async fn decision_for(app: &AppState, tx_id: &str, bank: &str, leg: usize) -> sqlx::Result<Result<InquiryAnswer, Illegal>> {
    let mut conn = app.pool.acquire().await?;
    let Some((state, _)) = load(&mut conn, tx_id, false).await? else {
        let answer = answer_unknown(app.config.interbank.key.tx_id_mark().issued(tx_id));
        if answer == InquiryAnswer::Lost {
            metrics::counter!("bank_interbank_lost_inquiries_total").increment(1);
            tracing::error!(tx_id, bank, leg, "a leg asks about a transfer this bank issued and has no record of (restored from a backup?): not presumed aborted; settle it by hand");
        }
        return Ok(Ok(answer));
    };
    if state.transfer.legs.get(leg).is_none_or(|l| l.bank != bank) {
        return Ok(Err(Illegal { state: state.status.as_str(), input: "inquiry", why: "no such leg at the asking bank" }));
    }
    Ok(Ok(InquiryAnswer::of(state.status)))
}

/// Applies one input to `tx_id` in one transaction (lock, step, legs held here, save, events) and
/// returns what to send once it is committed. An illegal input changes nothing. A deadlock (legs
/// held here lock accounts and clearing accounts another transfer may hold) runs it again.
async fn apply(app: &AppState, tx_id: &str, input: impl Fn(&Coordinator, DateTime<Utc>) -> Option<CoordinatorInput>) -> sqlx::Result<Changed> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match apply_once(app, tx_id, &input).await {
            Err(e) if attempt < 8 && participant::retryable(&e) => {
                tokio::time::sleep(Duration::from_millis(rand::random_range(1..=10u64) * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

async fn apply_once(app: &AppState, tx_id: &str, input: &impl Fn(&Coordinator, DateTime<Utc>) -> Option<CoordinatorInput>) -> sqlx::Result<Changed> {
    let now = app.config.clock.now();
    let mut tx = app.pool.begin().await?;
    let Some((state, deadline)) = load(&mut tx, tx_id, true).await? else {
        return Ok(Changed::default());
    };
    let Some(input) = input(&state, deadline) else {
        let send = awaited(app, &state);
        return Ok(Changed { state: Some(state), send, events: false });
    };
    let name = input.name();
    let transition = match step(&state, input) {
        Ok(t) => t,
        Err(illegal) => {
            tracing::warn!(tx_id, input = name, %illegal, "ignored");
            let send = awaited(app, &state);
            return Ok(Changed { state: Some(state), send, events: false });
        }
    };
    let next = pump(&mut tx, app, transition.state, transition.send.into(), now).await?;
    let mut events: Vec<OutboxMessage> = Vec::new();
    if state.status.decision().is_none()
        && let Some(decision) = next.status.decision()
    {
        events = decided(&mut tx, &app.topics.events, tx_id, decision, next.reason.as_deref(), now).await?;
    }
    if next != state {
        sqlx::query("UPDATE interbank_coordinator SET status = ?, state = ?, next_attempt_at = ?, updated_at = ? WHERE tx_id = ?")
            .bind(next.status.as_str())
            .bind(to_json(&next)?)
            .bind(Utc::now() + app.config.interbank.retry_interval)
            .bind(now)
            .bind(tx_id)
            .execute(&mut *tx)
            .await?;
    }
    outbox::enqueue_all(&mut tx, &events).await?;
    tx.commit().await?;
    let send = awaited(app, &next);
    Ok(Changed { state: Some(next), send, events: !events.is_empty() })
}

/// What other banks still owe `state` an answer to: prepares to legs without a vote while
/// PREPARING, the decision to legs that have not acknowledged it.
fn awaited(app: &AppState, state: &Coordinator) -> Vec<Outgoing> {
    if state.status.is_terminal() {
        return Vec::new();
    }
    step(state, CoordinatorInput::Restart).map(|t| t.send).unwrap_or_default().into_iter().filter(|o| o.to != app.config.code).collect()
}

/// Carries `tx_id` as far as the other banks let it now: sends what is awaited, applies the
/// answers, repeats (a few rounds, backing off); what is left the recovery loop drives again.
/// Only one driver per transfer runs in this process; two in two processes are harmless (every
/// step is taken under the log row's lock, and every message is idempotent).
pub async fn drive(app: AppState, tx_id: String) {
    if !app.driving.lock().expect("driving lock").insert(tx_id.clone()) {
        return;
    }
    let result = drive_rounds(&app, &tx_id).await;
    app.driving.lock().expect("driving lock").remove(&tx_id);
    if let Err(e) = result {
        tracing::warn!(tx_id, error = %e, "inter-bank transfer not driven; the recovery loop retries");
    }
}

async fn drive_rounds(app: &AppState, tx_id: &str) -> sqlx::Result<()> {
    // The prepare deadline first: past it, PREPARING aborts.
    let mut changed = apply(app, tx_id, |state, deadline| {
        (state.status == CoordinatorStatus::Preparing && Utc::now() >= deadline).then_some(CoordinatorInput::PrepareTimeout)
    })
    .await?;
    if changed.events {
        app.relay.notify();
    }
    let mut pause = Duration::from_millis(50);
    for _round in 0..4 {
        if changed.send.is_empty() {
            return Ok(());
        }
        let replies = futures::future::join_all(changed.send.iter().map(|out| app.peers.deliver(tx_id, out))).await;
        let mut progressed = false;
        let mut latest = None;
        for (out, reply) in changed.send.iter().zip(replies) {
            match reply {
                Ok(reply) => {
                    let Some(input) = coordinator_input(out.leg, reply) else {
                        continue;
                    };
                    let c = apply(app, tx_id, |_, _| Some(input.clone())).await?;
                    if c.events {
                        app.relay.notify();
                    }
                    progressed = true;
                    latest = Some(c);
                }
                Err(e) => {
                    tracing::debug!(tx_id, leg = out.leg, bank = %out.to, error = %e, "no answer yet")
                }
            }
        }
        changed = match latest {
            Some(c) => c,
            None => {
                apply(app, tx_id, |state, deadline| {
                    (state.status == CoordinatorStatus::Preparing && Utc::now() >= deadline).then_some(CoordinatorInput::PrepareTimeout)
                })
                .await?
            }
        };
        if changed.events {
            app.relay.notify();
        }
        if !progressed {
            tokio::time::sleep(pause).await;
            pause *= 4;
        }
    }
    Ok(())
}

/// Transfers the recovery loop should drive now: unfinished, and not touched for a while.
pub async fn due(pool: &sqlx::MySqlPool, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT tx_id FROM interbank_coordinator WHERE status IN ('PREPARING', 'COMMITTING', 'ABORTING') AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
    )
    .bind(Utc::now())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Pushes `tx_id`'s next recovery attempt out by `after` (so the loop does not pick it again at once).
pub async fn postpone(pool: &sqlx::MySqlPool, tx_id: &str, after: Duration) -> sqlx::Result<()> {
    sqlx::query("UPDATE interbank_coordinator SET next_attempt_at = ?, attempts = attempts + 1 WHERE tx_id = ?")
        .bind(Utc::now() + after)
        .bind(tx_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The state of a transfer this bank coordinates (for `GET /transfers/{id}` and the tests' checks).
pub async fn state_of(pool: &sqlx::MySqlPool, tx_id: &str) -> sqlx::Result<Option<Coordinator>> {
    let mut conn = pool.acquire().await?;
    Ok(load(&mut conn, tx_id, false).await?.map(|(s, _)| s))
}
