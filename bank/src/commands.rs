//! Paying orders from an account: the consumer of `bank.commands`, answering on `bank.replies`.
//!
//! | command | effect | reply |
//! | --- | --- | --- |
//! | `{type: hold, payment_id, account_id, amount, currency, user_id}` | available → held | `held`, or `declined {reason: insufficient_funds \| unknown_account \| not_holder \| currency_mismatch}` |
//! | `{type: capture, payment_id}` | held → the bank's merchant account of the currency | `captured` |
//! | `{type: void, payment_id}` | held → available | `voided` |
//! | `{type: refund, payment_id}` | merchant → the account's available | `refunded` |
//!
//! Each is idempotent per `payment_id` ([`crate::rules::states::decide_hold`]): a command seen again
//! answers what the first answered and moves no money; a command that does not fit the hold's state
//! answers `rejected {reason}` (`unknown_payment`, `not_held`, `not_captured`, `already_captured`).
//! Each runs in the inbox consumer's transaction, so the effect and the reply commit together.
//! A hold that cannot be processed at all (dead-lettered) is answered `declined {reason: bank_error}`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::Outgoing};
use sqlx::MySqlConnection;

use crate::{
    accounts,
    clock::SharedClock,
    events::{self, Change},
    ledger,
    rules::{
        ledger as legs,
        states::{HoldCommand, HoldDecision, HoldReply, HoldStatus, decide_hold},
    },
};

/// The messages of `bank.commands` and `bank.replies`: one contract, shared with their sender
/// (the payment processor), in `sagaway_contract::messages`.
pub use sagaway_contract::messages::{BankCommand, BankReply};

/// The lifecycle's view of a command.
fn hold_command(command: &BankCommand) -> HoldCommand {
    match command {
        BankCommand::Hold { .. } => HoldCommand::Hold,
        BankCommand::Capture { .. } => HoldCommand::Capture,
        BankCommand::Void { .. } => HoldCommand::Void,
        BankCommand::Refund { .. } => HoldCommand::Refund,
    }
}

pub struct CommandHandler {
    pub replies_topic: String,
    pub events_topic: String,
    pub clock: SharedClock,
}

impl Handler for CommandHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let command: BankCommand = msg.json()?;
        let (reply, mut out) = apply(conn, &self.events_topic, self.clock.now(), &command).await?;
        let key = msg.key.clone().unwrap_or_else(|| command.payment_id().to_string());
        out.push(Outgoing::json(&self.replies_topic, key, &reply.kind, &reply));
        Ok(out)
    }

    /// A hold the bank could not process is declined (`bank_error`), so the payment is decided at
    /// once instead of waiting for its reservation to expire. Nothing was held: the handler's
    /// transaction rolled back. Should the dead letter be replayed and the hold placed after all,
    /// the payment processor voids a hold that arrives for a declined charge.
    fn on_dead_letter(&self, msg: &Incoming) -> Vec<Outgoing> {
        decline_dead_hold(msg.payload.as_deref())
            .map(|reply| {
                let key = msg.key.clone().unwrap_or_else(|| reply.payment_id.clone());
                Outgoing::json(&self.replies_topic, key, &reply.kind, &reply)
            })
            .into_iter()
            .collect()
    }
}

/// The reply to a dead-lettered command, if it was a hold with a usable payment id.
fn decline_dead_hold(payload: Option<&str>) -> Option<BankReply> {
    let v: serde_json::Value = serde_json::from_str(payload?).ok()?;
    if v["type"] != "hold" {
        return None;
    }
    let reply = BankReply { kind: "declined".into(), payment_id: v["payment_id"].as_str()?.to_string(), reason: Some("bank_error".into()) };
    sagaway_contract::messages::Validate::validate(&reply).is_ok().then_some(reply)
}

#[derive(Debug, sqlx::FromRow)]
struct HoldRow {
    account_id: Option<String>,
    user_id: String,
    amount: Decimal,
    currency: String,
    status: String,
    reason: Option<String>,
}

fn reply(payment_id: &str, r: HoldReply, stored_reason: Option<String>) -> BankReply {
    let (kind, reason) = match r {
        HoldReply::Held => ("held", None),
        HoldReply::Declined => ("declined", stored_reason),
        HoldReply::Captured => ("captured", None),
        HoldReply::Voided => ("voided", None),
        HoldReply::Refunded => ("refunded", None),
        HoldReply::Rejected(why) => ("rejected", Some(why.to_string())),
    };
    BankReply { kind: kind.into(), payment_id: payment_id.into(), reason }
}

/// Applies one command in `conn`'s transaction; returns the reply and the events to publish.
pub async fn apply(conn: &mut MySqlConnection, events_topic: &str, now: DateTime<Utc>, command: &BankCommand) -> sqlx::Result<(BankReply, Vec<Outgoing>)> {
    let payment_id = command.payment_id();
    let hold: Option<HoldRow> = sqlx::query_as("SELECT account_id, user_id, amount, currency, status, reason FROM payment_holds WHERE payment_id = ? FOR UPDATE")
        .bind(payment_id)
        .fetch_optional(&mut *conn)
        .await?;
    let state = match &hold {
        Some(h) => Some(HoldStatus::parse(&h.status).ok_or_else(|| sqlx::Error::Protocol(format!("payment hold {payment_id}: status {:?}", h.status)))?),
        None => None,
    };
    match decide_hold(state, hold_command(command)) {
        HoldDecision::Answer(r) => Ok((reply(payment_id, r, hold.and_then(|h| h.reason)), vec![])),
        HoldDecision::Place => {
            let BankCommand::Hold { account_id, amount, currency, user_id, .. } = command else {
                return Err(sqlx::Error::Protocol("only a hold places a hold".into()));
            };
            place(conn, events_topic, now, payment_id, account_id, *amount, currency, user_id).await
        }
        HoldDecision::Move(to) => {
            let h = hold.ok_or_else(|| sqlx::Error::Protocol("a move needs a hold".into()))?;
            let account = h.account_id.clone().ok_or_else(|| sqlx::Error::Protocol(format!("payment hold {payment_id} has no account")))?;
            let merchant = ledger::merchant_account(&h.currency);
            let (kind, entry) = match to {
                HoldStatus::Captured => ("payment_capture", legs::settle_held(&account, &merchant, h.amount)),
                HoldStatus::Voided => ("payment_void", legs::release(&account, h.amount)),
                HoldStatus::Refunded => ("payment_refund", legs::transfer(&merchant, &account, h.amount)),
                other => return Err(sqlx::Error::Protocol(format!("no money moves into {other}"))),
            };
            let from = state.expect("a move has a state");
            from.move_to(to).map_err(|e| sqlx::Error::Protocol(format!("payment hold {payment_id}: {e}")))?;
            ledger::lock(conn, &[&account, &merchant]).await?;
            ledger::post(conn, kind, payment_id, now, &entry).await?;
            sqlx::query("UPDATE payment_holds SET status = ?, updated_at = ? WHERE payment_id = ?").bind(to.as_str()).bind(now).bind(payment_id).execute(&mut *conn).await?;
            let event = events::record(conn, events_topic, &Change { kind: "payment", id: payment_id, account_id: &account, user_id: &h.user_id, status: to.as_str(), reason: None, at: now }).await?;
            Ok((reply(payment_id, to.reply(), None), vec![event]))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn place(
    conn: &mut MySqlConnection,
    events_topic: &str,
    now: DateTime<Utc>,
    payment_id: &str,
    account_id: &str,
    amount: Decimal,
    currency: &str,
    user_id: &str,
) -> sqlx::Result<(BankReply, Vec<Outgoing>)> {
    let locked = ledger::lock_found(conn, &[account_id]).await?.pop().flatten().filter(|a| accounts::CUSTOMER_KINDS.contains(&a.kind.as_str()));
    let decline = match &locked {
        None => Some("unknown_account"),
        Some(_) if !accounts::is_holder(&mut *conn, account_id, user_id).await? => Some("not_holder"),
        Some(a) if !a.currency.eq_ignore_ascii_case(currency) => Some("currency_mismatch"),
        Some(a) if a.available < amount => Some("insufficient_funds"),
        Some(_) => None,
    };
    let status = if decline.is_some() { HoldStatus::Declined } else { HoldStatus::Held };
    if decline.is_none() {
        ledger::post(conn, "payment_hold", payment_id, now, &legs::hold(account_id, amount)).await?;
    }
    sqlx::query(
        "INSERT INTO payment_holds (payment_id, account_id, user_id, amount, currency, status, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(payment_id)
    .bind(locked.as_ref().map(|a| a.id.clone()))
    .bind(user_id)
    .bind(amount)
    .bind(currency.to_ascii_uppercase())
    .bind(status.as_str())
    .bind(decline)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let event = events::record(conn, events_topic, &Change { kind: "payment", id: payment_id, account_id, user_id, status: status.as_str(), reason: decline, at: now }).await?;
    Ok((reply(payment_id, status.reply(), decline.map(str::to_string)), vec![event]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_hold_with_a_valid_payment_id_is_declined() {
        let reply = decline_dead_hold(Some(r#"{"type":"hold","payment_id":"p-1","amount":"-1"}"#)).unwrap();
        assert_eq!((reply.kind.as_str(), reply.payment_id.as_str(), reply.reason.as_deref()), ("declined", "p-1", Some("bank_error")));
        assert_eq!(decline_dead_hold(Some(r#"{"type":"capture","payment_id":"p-1"}"#)), None, "only a hold waits on a decline");
        assert_eq!(decline_dead_hold(Some(r#"{"type":"hold"}"#)), None);
        assert_eq!(decline_dead_hold(Some(&format!(r#"{{"type":"hold","payment_id":"{}"}}"#, "x".repeat(65)))), None, "an id too long for a reply");
        assert_eq!(decline_dead_hold(Some("not json")), None);
        assert_eq!(decline_dead_hold(None), None);
    }
}
