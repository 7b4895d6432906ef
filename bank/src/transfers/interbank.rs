//! Transfers that involve another bank, or several paying accounts (many-to-one), as
//! `POST /transfers` and the scheduler see them: checked here, then carried out by the two-phase
//! commit this bank coordinates ([`crate::interbank::coordinator`]).
//!
//! - instant, or business-hours inside the window: the transfer row and the coordinator's log are
//!   written with the legs held here (their holds placed) in one transaction; if a leg here refuses
//!   (insufficient funds), nothing has left the bank yet and the request is refused (422) with
//!   nothing written. Otherwise 202 PROCESSING, and the coordinator asks the other banks.
//! - business-hours outside the window: SCHEDULED, the sources held here are held at once; at the
//!   opening the scheduler releases those holds and starts the commit in one transaction (the legs
//!   hold them again), so the money is never free in between.
//! - the decision sets the row SETTLED (commit) or FAILED with the reason (abort).
//! - the sources held here are checked against this bank's limits when planned (422 at once); every
//!   bank holding a source checks it again against its *own* limits when it prepares the leg
//!   (`BANK_MAX_AMOUNT`, the night limit of an individual account's instant transfer on its own
//!   clock), and refuses `limit_exceeded`: the transfer FAILS with that reason.

use http::StatusCode;
use rust_decimal::Decimal;
use sagaway_common::{auth::Caller, http::plausible_id};
use sagaway_messaging::outbox;
use sagaway_contract::money;

use super::{Kind, NewTransfer, SELECT_TRANSFER, Source, TransferRow, held_here, load_on, night_limit};
use crate::{
    AppState, accounts,
    config::valid_code,
    error::{ApiError, ApiResult},
    events::{self, Change},
    idempotency,
    interbank::{coordinator, peers::PeerError},
    ledger,
    rules::{
        account_number::AccountNumber,
        interbank::{Decision, Leg, MAX_LEGS, Side, Transfer},
        ledger as legs,
        states::TransferStatus,
    },
};

/// A checked inter-bank transfer.
pub struct Plan {
    kind: Kind,
    transfer: Transfer,
    sources: Vec<Source>,
    to_bank: String,
    to_number: AccountNumber,
    description: Option<String>,
}

/// The paying accounts a request names: `sources`, or `from_account` + `amount` at this bank.
pub(super) fn sources(app: &AppState, req: &NewTransfer) -> ApiResult<Vec<Source>> {
    match (&req.sources, &req.from_account, req.amount) {
        (Some(list), None, None) => {
            if list.is_empty() || list.len() >= MAX_LEGS {
                return Err(ApiError::invalid("sources", format!("1 to {} paying accounts", MAX_LEGS - 1)));
            }
            for (i, s) in list.iter().enumerate() {
                if !valid_code(&s.bank) {
                    return Err(ApiError::invalid("sources", format!("sources[{i}].bank must be a 3-digit bank code")));
                }
                if !plausible_id(&s.account_id, 36) {
                    return Err(ApiError::invalid("sources", format!("sources[{i}].account_id must be 1-36 letters, digits, - or _")));
                }
                if list[..i].iter().any(|o| o.bank == s.bank && o.account_id == s.account_id) {
                    return Err(ApiError::invalid("sources", format!("sources[{i}] repeats an account")));
                }
            }
            Ok(list.clone())
        }
        (Some(_), _, _) => Err(ApiError::invalid("sources", "give either sources, or from_account and amount")),
        (None, Some(from), Some(_)) if !plausible_id(from, 36) => Err(ApiError::invalid("from_account", "must be 1-36 letters, digits, - or _")),
        (None, Some(from), Some(amount)) => Ok(vec![Source { bank: app.config.code.clone(), account_id: from.clone(), amount }]),
        (None, None, _) => Err(ApiError::invalid("from_account", "required (or sources)")),
        (None, Some(_), None) => Err(ApiError::invalid("amount", "required")),
    }
}

/// Checks an inter-bank transfer: every bank is known, the recipient exists (asked of its bank),
/// the sources held here are the caller's, in the recipient's currency, within the limits.
pub(super) async fn plan(
    app: &AppState,
    caller: &Caller,
    kind: Kind,
    sources: Vec<Source>,
    to_bank: &str,
    to_number: AccountNumber,
    description: Option<String>,
) -> ApiResult<Plan> {
    let code = app.config.code.as_str();
    let field = |many: bool| if many { "sources" } else { "from_account" };
    let many = sources.len() > 1 || sources[0].bank != code;
    for bank in sources.iter().map(|s| s.bank.as_str()).chain([to_bank]) {
        if bank != code && !app.peers.knows(bank) {
            let f = if bank == to_bank { "to.bank" } else { "sources" };
            return Err(ApiError::refused("unknown_bank", Some(f), format!("bank {bank} is not in bank {code}'s directory")));
        }
    }
    let (to_account, currency) = if to_bank == code {
        let row = accounts::by_number_in(&app.pool, &to_number).await?.ok_or_else(|| unknown_recipient(code))?;
        (row.id, row.currency)
    } else {
        match app.peers.recipient(to_bank, &to_number.digits()).await {
            Ok(Some(r)) => (r.account_id, r.currency),
            Ok(None) => return Err(unknown_recipient(to_bank)),
            Err(PeerError::UnknownBank(b)) => {
                return Err(ApiError::refused("unknown_bank", Some("to.bank"), format!("bank {b} is not in the directory")));
            }
            Err(e) => {
                tracing::warn!(bank = to_bank, error = %e, "recipient check failed");
                return Err(ApiError::Unavailable {
                    code: "bank_unavailable",
                    detail: format!("bank {to_bank} did not answer the recipient check; try again"),
                });
            }
        }
    };
    let cur: money::Currency = currency.parse().map_err(|_| anyhow::anyhow!("the recipient account's currency {currency:?} is unknown"))?;
    for (i, s) in sources.iter().enumerate() {
        let amount_field = if many { "sources" } else { "amount" };
        cur.check_price(s.amount).map_err(|e| ApiError::invalid(amount_field, if many { format!("sources[{i}].amount: {e}") } else { e }))?;
        if s.amount > app.config.max_amount {
            return Err(ApiError::invalid(amount_field, format!("must be at most {}", money::format(app.config.max_amount))));
        }
        if s.bank == to_bank && s.account_id == to_account {
            return Err(ApiError::invalid("to.account_number", "must be another account than the paying ones"));
        }
        if s.bank == code {
            let row = accounts::operable(&app.pool, caller, &s.account_id).await?;
            if row.currency != currency {
                return Err(ApiError::refused("currency_mismatch", Some(field(many)), format!("the recipient account is in {currency}, not {}", row.currency)));
            }
            night_limit(app, kind, &row, s.amount)?;
        }
    }
    let total: Decimal = sources.iter().map(|s| s.amount).sum();
    let mut legs: Vec<Leg> = sources.iter().map(|s| Leg { bank: s.bank.clone(), account: s.account_id.clone(), side: Side::Debit, amount: s.amount }).collect();
    legs.push(Leg { bank: to_bank.to_string(), account: to_account, side: Side::Credit, amount: total });
    // The id carries this bank's mark: should the transfer's record ever be lost, a leg asking
    // about it is not told "abort" (docs/banks.md).
    let transfer = Transfer::new(coordinator::new_tx_id(app), currency, legs)
        .map_err(|e| ApiError::invalid("sources", e.to_string()))?
        .started_by(&caller.user_id)
        .in_business_hours(kind == Kind::BusinessHours);
    Ok(Plan { kind, transfer, sources, to_bank: to_bank.to_string(), to_number, description })
}

fn unknown_recipient(bank: &str) -> ApiError {
    ApiError::refused("unknown_account", Some("to.account_number"), format!("no account with this number in bank {bank}"))
}

/// The 422 for a leg held here that refused at once (nothing has left the bank).
fn refusal(reason: Option<&str>) -> ApiError {
    let (code, field) = match reason {
        Some("insufficient_funds") => ("insufficient_funds", "amount"),
        Some("currency_mismatch") => ("currency_mismatch", "to.account_number"),
        Some("unknown_account") => ("unknown_account", "to.account_number"),
        Some("limit_exceeded") => ("limit_exceeded", "amount"),
        _ => ("refused", "sources"),
    };
    ApiError::refused(code, Some(field), format!("the transfer was refused at this bank: {}", reason.unwrap_or("aborted")))
}

/// Accepts a planned inter-bank transfer (see the module docs); returns the Idempotency-Key answer.
pub async fn execute(app: &AppState, user_id: &str, plan: &Plan, claim: &idempotency::Claimed) -> ApiResult<(StatusCode, String)> {
    let now = app.config.clock.now();
    let id = plan.transfer.tx_id.clone();
    let start_now = plan.kind == Kind::Instant || app.config.hours.is_open(now);
    let status = if start_now { TransferStatus::Processing } else { TransferStatus::Scheduled };
    let execute_at = (plan.kind == Kind::BusinessHours).then(|| if start_now { now } else { app.config.hours.next_opening(now) });
    let mut tx = app.pool.begin().await?;
    sqlx::query(
        "INSERT INTO transfers (id, kind, from_account, to_bank, to_account_number, to_account, amount, currency, description, status, execute_at, user_id, \
         created_at, updated_at, interbank, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
    )
    .bind(&id)
    .bind(if plan.kind == Kind::Instant { "instant" } else { "business_hours" })
    .bind(&plan.sources[0].account_id)
    .bind(&plan.to_bank)
    .bind(plan.to_number.digits())
    .bind(&plan.transfer.credit().account)
    .bind(plan.transfer.total())
    .bind(&plan.transfer.currency)
    .bind(&plan.description)
    .bind(status.as_str())
    .bind(execute_at)
    .bind(user_id)
    .bind(now)
    .bind(now)
    .bind(serde_json::to_string(&plan.sources).map_err(anyhow::Error::from)?)
    .execute(&mut *tx)
    .await?;
    let event = events::record(
        &mut tx,
        &app.topics.events,
        &Change { kind: "transfer", id: &id, account_id: &plan.sources[0].account_id, user_id, status: status.as_str(), reason: None, at: now },
    )
    .await?;
    outbox::enqueue(&mut tx, &event).await?;
    if start_now {
        let state = coordinator::begin(&mut tx, app, plan.transfer.clone(), now).await?;
        if state.status.decision() == Some(Decision::Abort) {
            // A leg held here refused before anything left this bank: roll it all back.
            return Err(refusal(state.reason.as_deref()));
        }
    } else {
        for s in plan.sources.iter().filter(|s| s.bank == app.config.code) {
            let locked = ledger::lock_found(&mut tx, &[&s.account_id]).await?.remove(0).ok_or(ApiError::NotFound("account"))?;
            if locked.available < s.amount {
                return Err(ApiError::refused("insufficient_funds", Some("amount"), format!("available balance is {}", money::format(locked.available))));
            }
            ledger::post(&mut tx, "transfer_hold", &id, now, &legs::hold(&s.account_id, s.amount)).await?;
        }
    }
    let transfer = load_on(&mut tx, &id).await?.ok_or(ApiError::NotFound("transfer"))?;
    let http_status = if transfer.status == TransferStatus::Settled.as_str() { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    let body = serde_json::to_string(&transfer).map_err(anyhow::Error::from)?;
    if !idempotency::complete(&mut *tx, claim, http_status, &body).await? {
        return Err(ApiError::IdempotencyKeyInFlight);
    }
    tx.commit().await?;
    app.relay.notify();
    if start_now {
        tokio::spawn(tracing::Instrument::in_current_span(coordinator::drive(app.clone(), id)));
    }
    Ok((http_status, body))
}

/// Starts a due SCHEDULED inter-bank transfer (the scheduler's part): its holds here released and
/// its commit begun in one transaction. Returns whether it started it (false: taken by another
/// scheduler, canceled, or not due).
pub async fn start_scheduled_interbank(app: &AppState, id: &str) -> anyhow::Result<bool> {
    let now = app.config.clock.now();
    let mut tx = app.pool.begin().await?;
    let row: Option<TransferRow> =
        sqlx::query_as(&format!("{SELECT_TRANSFER} WHERE id = ? AND status = 'SCHEDULED' AND interbank = 1 AND execute_at <= ? FOR UPDATE SKIP LOCKED"))
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(row) = row else { return Ok(false) };
    for (account, amount) in held_here(app, &row) {
        ledger::lock(&mut tx, &[&account]).await?;
        ledger::post(&mut tx, "transfer_release", id, now, &legs::release(&account, amount)).await?;
    }
    let to = TransferStatus::Scheduled.move_to(TransferStatus::Processing)?;
    sqlx::query("UPDATE transfers SET status = ?, updated_at = ? WHERE id = ?").bind(to.as_str()).bind(now).bind(id).execute(&mut *tx).await?;
    let event = events::record(
        &mut tx,
        &app.topics.events,
        &Change { kind: "transfer", id, account_id: &row.from_account, user_id: &row.user_id, status: to.as_str(), reason: None, at: now },
    )
    .await?;
    outbox::enqueue(&mut tx, &event).await?;
    let sources: Vec<Source> = serde_json::from_str(row.sources.as_deref().unwrap_or("[]"))?;
    let mut legs: Vec<Leg> = sources.iter().map(|s| Leg { bank: s.bank.clone(), account: s.account_id.clone(), side: Side::Debit, amount: s.amount }).collect();
    let to_account = row.to_account.clone().ok_or_else(|| anyhow::anyhow!("transfer {id} has no recipient"))?;
    legs.push(Leg { bank: row.to_bank.clone(), account: to_account, side: Side::Credit, amount: row.amount });
    let transfer = Transfer::new(id, row.currency.clone(), legs)?.started_by(&row.user_id).in_business_hours(true);
    coordinator::begin(&mut tx, app, transfer, now).await?;
    tx.commit().await?;
    app.relay.notify();
    tracing::info!(transfer_id = %id, "scheduled inter-bank transfer started");
    Ok(true)
}
