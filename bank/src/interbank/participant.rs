//! A leg of an inter-bank transfer held at this bank: its record (`interbank_participants`) and the
//! money it moves, written in the caller's transaction. [`participant_step`] decides; this module
//! only loads what it needs (the participant row, the leg's account under its row lock) and persists
//! the answer, so a message applied twice (a resent prepare, a repeated commit) moves money once.

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use crate::Config;

use crate::{
    accounts::{self, CUSTOMER_KINDS},
    ledger,
    rules::{
        account_number::SystemAccount,
        interbank::{
            AccountView, Decision, Effect, Illegal, Limits, Participant, ParticipantInput, ParticipantStatus, PrepareRequest, Reply, Side, clearing_account,
            participant_step,
        },
    },
};

/// [`apply`] in a transaction of its own, committed before it returns (run again on a deadlock or
/// a concurrent first write of the same leg).
pub async fn apply_alone(
    app: &crate::AppState,
    coordinator: &str,
    tx_id: &str,
    leg: usize,
    input: ParticipantInput,
) -> sqlx::Result<Result<Option<Reply>, Illegal>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let now = app.config.clock.now();
        let result = async {
            let mut tx = app.pool.begin().await?;
            let reply = apply(&mut tx, &app.config, coordinator, tx_id, leg, input.clone(), now).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(reply)
        }
        .await;
        match result {
            Err(e) if attempt < 8 && retryable(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..=10u64) * attempt)).await;
            }
            other => return other,
        }
    }
}

/// A deadlock, a lock wait timeout or a duplicate key from a concurrent first write: run it again.
pub fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let m = d.message();
            m.contains("Deadlock") || m.contains("Lock wait timeout") || m.contains("Duplicate entry")
        }
        _ => false,
    }
}

/// One leg's record as stored.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    coordinator: String,
    status: String,
    request: Option<String>,
    reason: Option<String>,
}

/// A PREPARED leg whose coordinator has not told it the outcome yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InDoubt {
    pub tx_id: String,
    pub leg_index: i32,
    pub coordinator: String,
    /// Since when its coordinator says it issued the transfer and has lost its record.
    pub coordinator_lost_at: Option<DateTime<Utc>>,
}

/// Applies `input` to leg `leg` of `tx_id`, coordinated by bank `coordinator`, on `conn` (the
/// caller's transaction, committed by the caller before the reply is sent), with this bank's
/// `config` (its limits, its patience). `Ok(Err(_))` is a protocol error: nothing was written.
pub async fn apply(
    conn: &mut MySqlConnection,
    config: &Config,
    coordinator: &str,
    tx_id: &str,
    leg: usize,
    input: ParticipantInput,
    now: DateTime<Utc>,
) -> sqlx::Result<Result<Option<Reply>, Illegal>> {
    let inquiry_after = chrono::Duration::from_std(config.interbank.inquiry_after).unwrap_or_default();
    // A prepare reads the account under its row lock first: the funds it checks are the funds it
    // holds, and the limits are this bank's own, on its own clock, whoever coordinates.
    let account = match &input {
        ParticipantInput::Prepare { request, .. } => view(conn, config, request, now).await?,
        _ => None,
    };
    let input = match input {
        ParticipantInput::Prepare { request, .. } => ParticipantInput::Prepare { request, account },
        other => other,
    };
    // Locked only if it exists: a locking read of a missing row would lock the gap after it (the
    // end of the index, where every new time-ordered tx_id goes), and every concurrent first write
    // would wait on it or deadlock. Two first writes of one leg race to the primary key instead:
    // the loser's transaction fails on the duplicate and is run again ([`retryable`]).
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM interbank_participants WHERE tx_id = ? AND leg_index = ?")
        .bind(tx_id)
        .bind(leg as i32)
        .fetch_optional(&mut *conn)
        .await?;
    let row: Option<Row> = match exists {
        None => None,
        Some(_) => {
            sqlx::query_as("SELECT coordinator, status, request, reason FROM interbank_participants WHERE tx_id = ? AND leg_index = ? FOR UPDATE")
                .bind(tx_id)
                .bind(leg as i32)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let state = row.as_ref().map(parse).transpose()?;
    if let Some(r) = &row
        && r.coordinator != coordinator
    {
        return Ok(Err(Illegal { state: "known", input: "message", why: "another bank coordinates this transfer" }));
    }
    let transition = match participant_step(state.as_ref(), input) {
        Ok(t) => t,
        Err(illegal) => return Ok(Err(illegal)),
    };
    let currency = transition.state.request.as_ref().map(|r| r.currency.clone()).unwrap_or_default();
    for effect in &transition.effects {
        post(conn, tx_id, &currency, effect, now).await?;
    }
    if state.as_ref() != Some(&transition.state) {
        let s = &transition.state;
        if state.is_some() {
            sqlx::query("UPDATE interbank_participants SET status = ?, reason = ?, updated_at = ? WHERE tx_id = ? AND leg_index = ?")
                .bind(s.status.as_str())
                .bind(&s.reason)
                .bind(now)
                .bind(tx_id)
                .bind(leg as i32)
                .execute(&mut *conn)
                .await?;
            return Ok(Ok(transition.reply));
        }
        let request = s.request.as_ref().map(serde_json::to_string).transpose().map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        // A plain INSERT: a concurrent first write of the same leg makes this one fail and run again.
        sqlx::query(
            "INSERT INTO interbank_participants (tx_id, leg_index, coordinator, status, request, reason, account_id, next_inquiry_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tx_id)
        .bind(leg as i32)
        .bind(coordinator)
        .bind(s.status.as_str())
        .bind(request)
        .bind(&s.reason)
        .bind(s.request.as_ref().map(|r| r.leg.account.clone()))
        .bind(Utc::now() + inquiry_after)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Ok(transition.reply))
}

/// This bank's limits on a debit from an account of `kind` at `now`: `BANK_MAX_AMOUNT`, and for an
/// individual account at night the night limit (the rules of a transfer this bank starts).
pub fn limits(config: &Config, kind: &str, now: DateTime<Utc>) -> Limits {
    let night = (kind == "individual" && config.night.is_night(now)).then_some(config.night.limit);
    Limits { max_amount: Some(config.max_amount), night }
}

/// The leg's account as the rules see it: a customer account of this bank, and for a debit one the
/// transfer's initiator holds (anything else is `None`: `unknown_account`, never told apart).
async fn view(conn: &mut MySqlConnection, config: &Config, request: &PrepareRequest, now: DateTime<Utc>) -> sqlx::Result<Option<AccountView>> {
    if request.leg.account.len() > 36 {
        return Ok(None);
    }
    let locked = ledger::lock_found(conn, &[&request.leg.account]).await?.remove(0);
    let Some(account) = locked.filter(|a| CUSTOMER_KINDS.contains(&a.kind.as_str())) else {
        return Ok(None);
    };
    if request.leg.side == Side::Debit && !accounts::is_holder(&mut *conn, &account.id, &request.initiator).await? {
        return Ok(None);
    }
    let limits = limits(config, &account.kind, now);
    Ok(Some(AccountView { currency: account.currency, available: account.available, limits }))
}

fn parse(row: &Row) -> sqlx::Result<Participant> {
    let bad = |what: &str| sqlx::Error::Protocol(format!("interbank_participants: {what}"));
    let status = ParticipantStatus::parse(&row.status).ok_or_else(|| bad("unknown status"))?;
    let request = row.request.as_deref().map(serde_json::from_str::<PrepareRequest>).transpose().map_err(|e| bad(&e.to_string()))?;
    Ok(Participant { status, request, reason: row.reason.clone() })
}

/// Posts one effect on the ledger (the pending-credit record has no postings: it is the row itself).
async fn post(conn: &mut MySqlConnection, tx_id: &str, currency: &str, effect: &Effect, now: DateTime<Utc>) -> sqlx::Result<()> {
    let legs = effect.postings(currency);
    if legs.is_empty() {
        return Ok(());
    }
    for peer in effect.clearing() {
        ensure_clearing_account(conn, &peer.peer, currency, now).await?;
    }
    let ids: Vec<&str> = legs.iter().map(|l| l.account.as_str()).collect();
    ledger::lock(conn, &ids).await?;
    let kind = match effect {
        Effect::HoldDebit { .. } => "interbank_hold",
        Effect::ReleaseHold { .. } => "interbank_release",
        Effect::SettleDebit { .. } => "interbank_debit",
        Effect::PostCredit { .. } => "interbank_credit",
        Effect::RecordPendingCredit { .. } | Effect::DropPendingCredit { .. } => {
            unreachable!("no postings")
        }
    };
    ledger::post(conn, kind, tx_id, now, &legs).await?;
    Ok(())
}

/// Opens this bank's clearing account for `peer` in `currency` if it is not there yet (a `system`
/// account: it may go negative — what the peer owes this bank).
async fn ensure_clearing_account(conn: &mut MySqlConnection, peer: &str, currency: &str, now: DateTime<Utc>) -> sqlx::Result<()> {
    let id = clearing_account(peer, currency);
    // Looked up without a lock first: INSERT IGNORE on an existing row takes a shared lock on it, and
    // two transactions that both then lock the row for update deadlock on the upgrade.
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM accounts WHERE id = ?").bind(&id).fetch_optional(&mut *conn).await?;
    if exists.is_some() {
        return Ok(());
    }
    // A number of its own (a slot per peer and currency, [`SystemAccount`]); an unknown peer code or
    // currency is an error, never the neighbour's number. Should the insert still be ignored, the
    // lock that follows finds no account and the transaction is rolled back.
    let bad = |what: String| sqlx::Error::Protocol(format!("no clearing account for {id}: {what}"));
    let peer_n: u16 = peer.parse().ok().filter(|_| crate::config::valid_code(peer)).ok_or_else(|| bad(format!("bank code {peer:?}")))?;
    let currency_n = ledger::currency_index(currency).ok_or_else(|| bad(format!("currency {currency:?}")))?;
    let number = SystemAccount::Clearing { peer: peer_n, currency: currency_n }.number().ok_or_else(|| bad("no number".into()))?;
    sqlx::query("INSERT IGNORE INTO accounts (id, number, kind, currency, owner_user, created_at) VALUES (?, ?, 'system', ?, 'bank', ?)")
        .bind(&id)
        .bind(number.digits())
        .bind(currency)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// PREPARED legs coordinated by another bank that have waited longer than their patience.
pub async fn in_doubt(pool: &sqlx::MySqlPool, own_code: &str, now: DateTime<Utc>, limit: i64) -> sqlx::Result<Vec<InDoubt>> {
    sqlx::query_as(
        "SELECT tx_id, leg_index, coordinator, coordinator_lost_at FROM interbank_participants \
         WHERE status = ? AND next_inquiry_at <= ? AND coordinator <> ? ORDER BY next_inquiry_at LIMIT ?",
    )
    .bind(ParticipantStatus::Prepared.as_str())
    .bind(now)
    .bind(own_code)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records that the coordinator of a PREPARED leg answered it lost the transfer's record (the first
/// time; the leg stays PREPARED, counted by `bank_interbank_in_doubt_lost`). Returns whether this
/// was the first such answer.
pub async fn mark_lost(pool: &sqlx::MySqlPool, tx_id: &str, leg: usize, at: DateTime<Utc>) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE interbank_participants SET coordinator_lost_at = ? WHERE tx_id = ? AND leg_index = ? AND status = ? AND coordinator_lost_at IS NULL",
    )
    .bind(at)
    .bind(tx_id)
    .bind(leg as i32)
    .bind(ParticipantStatus::Prepared.as_str())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// An operator settles a leg of a transfer whose coordinator lost its record (`bank settle-leg`):
/// applies `decision` to the PREPARED leg `leg` of `tx_id` held here exactly as the coordinator's
/// message would (the same effects, one transaction). Only for a leg whose coordinator answered
/// `transfer_lost` (any other is the coordinator's to decide); a leg already settled that way is
/// left as it is. Returns what was done, for the operator.
pub async fn settle_lost(pool: &sqlx::MySqlPool, config: &Config, tx_id: &str, leg: usize, decision: Decision) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT coordinator, status, coordinator_lost_at FROM interbank_participants WHERE tx_id = ? AND leg_index = ? FOR UPDATE")
            .bind(tx_id)
            .bind(leg as i32)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((coordinator, status, lost_at)) = row else {
        anyhow::bail!("no leg {leg} of transfer {tx_id} is held at this bank");
    };
    let status = ParticipantStatus::parse(&status).ok_or_else(|| anyhow::anyhow!("leg {leg} of {tx_id}: unknown status {status:?}"))?;
    if status != ParticipantStatus::Prepared {
        if status.outcome() == Some(decision) {
            return Ok(format!("leg {leg} of {tx_id} is {status} already; nothing done"));
        }
        anyhow::bail!("leg {leg} of {tx_id} is {status}: it cannot be settled the other way");
    }
    if lost_at.is_none() {
        anyhow::bail!("bank {coordinator} has not said it lost transfer {tx_id}: the decision is its own (it is asked every BANK_INTERBANK_INQUIRY_MS)");
    }
    let input = match decision {
        Decision::Commit => ParticipantInput::Commit,
        Decision::Abort => ParticipantInput::Abort,
    };
    match apply(&mut tx, config, &coordinator, tx_id, leg, input, config.clock.now()).await? {
        Ok(_) => {}
        Err(illegal) => anyhow::bail!("leg {leg} of {tx_id}: {illegal}"),
    }
    tx.commit().await?;
    tracing::warn!(tx_id, leg, coordinator, decision = ?decision, "a leg of a transfer its coordinator lost was settled by an operator");
    Ok(format!("leg {leg} of {tx_id} (coordinated by bank {coordinator}, which lost it): {decision:?} applied"))
}

/// Asks again later (after a failed or undecided inquiry).
pub async fn postpone(pool: &sqlx::MySqlPool, tx_id: &str, leg: usize, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE interbank_participants SET next_inquiry_at = ? WHERE tx_id = ? AND leg_index = ?")
        .bind(at)
        .bind(tx_id)
        .bind(leg as i32)
        .execute(pool)
        .await?;
    Ok(())
}
