//! Orders: their rows and their history. The read API (`GET /orders/{id}`, `GET /orders`) is
//! [`api`], over the queries here.
//!
//! The saga's rules live in [`crate::saga::machine`]; this module only stores what a transition
//! decided: [`Order::saga_state`] reads the row into the machine's [`SagaState`], and [`record`]
//! writes a [`Transition`] back (one UPDATE, the history rows, the `order.events` messages) inside
//! the saga step's transaction.

pub mod api;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_messaging::outbox::Outgoing;
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;
use utoipa::ToSchema;

use sagaway_contract::ids::{OrderId, ReservationId, UserId};

use crate::saga::machine::{Capture, Command, Hold, OrderStatus, SagaState, Transition};

/// An order row (card columns limited to what may be kept). `payment_type` says how it is paid:
/// `card` (the card columns are set) or `account` (`account_bank` and `account_id` are).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Order {
    #[sqlx(try_from = "String")]
    pub id: OrderId,
    #[sqlx(try_from = "String")]
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub reservation_id: ReservationId,
    pub product_id: u64,
    pub quantity: i32,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub hold_state: String,
    pub capture_state: String,
    pub reason: Option<String>,
    /// `card` or `account`.
    pub payment_type: String,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub card_exp_month: Option<u8>,
    pub card_exp_year: Option<u16>,
    pub card_fingerprint: Option<String>,
    /// The sealed card number, until the order is terminal (retries and replays charge it).
    pub card_sealed: Option<String>,
    /// The sealed CVC, until the first charge command carries it away ([`record`]).
    pub card_cvc_sealed: Option<String>,
    /// The paying bank's code and the account's id there (account orders).
    pub account_bank: Option<String>,
    pub account_id: Option<String>,
    pub compensating: i8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT_ORDER: &str = "SELECT id, CAST(user_id AS CHAR) AS user_id, reservation_id, product_id, quantity, amount, currency, status, hold_state, \
    capture_state, reason, payment_type, card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint, card_sealed, \
    card_cvc_sealed, account_bank, account_id, compensating, created_at, updated_at FROM orders";

/// `orders.payment_type` of an order paid by card.
pub const PAID_BY_CARD: &str = "card";
/// `orders.payment_type` of an order paid from a bank account.
pub const PAID_FROM_ACCOUNT: &str = "account";

fn hold_name(h: Hold) -> &'static str {
    match h {
        Hold::Unlocked => "UNLOCKED",
        Hold::Held => "HELD",
        Hold::Releasing => "RELEASING",
        Hold::Gone => "GONE",
        Hold::Sold => "SOLD",
    }
}

fn capture_name(c: Capture) -> &'static str {
    match c {
        Capture::None => "NONE",
        Capture::Captured => "CAPTURED",
        Capture::Refunding => "REFUNDING",
        Capture::Refunded => "REFUNDED",
    }
}

/// A row whose saga columns hold something no version of this service wrote.
#[derive(Debug, thiserror::Error)]
#[error("order {order_id} has an unreadable saga column: {what}")]
pub struct CorruptOrder {
    pub order_id: String,
    pub what: String,
}

impl Order {
    pub fn status(&self) -> Option<OrderStatus> {
        OrderStatus::parse(&self.status)
    }

    pub fn is_terminal(&self) -> bool {
        self.status().is_some_and(OrderStatus::is_terminal)
    }

    /// The bank account an account order is paid from (`None` for card orders).
    pub fn account(&self) -> Option<sagaway_contract::messages::AccountRef> {
        match (self.payment_type.as_str(), &self.account_bank, &self.account_id) {
            (PAID_FROM_ACCOUNT, Some(bank), Some(account_id)) => {
                Some(sagaway_contract::messages::AccountRef { bank: bank.clone(), account_id: account_id.clone() })
            }
            _ => None,
        }
    }

    /// The row as the state machine sees it.
    pub fn saga_state(&self) -> Result<SagaState, CorruptOrder> {
        let corrupt = |what: String| CorruptOrder { order_id: self.id.to_string(), what };
        let status = self.status().ok_or_else(|| corrupt(format!("status {:?}", self.status)))?;
        let hold = [Hold::Unlocked, Hold::Held, Hold::Releasing, Hold::Gone, Hold::Sold]
            .into_iter()
            .find(|h| hold_name(*h) == self.hold_state)
            .ok_or_else(|| corrupt(format!("hold_state {:?}", self.hold_state)))?;
        let capture = [Capture::None, Capture::Captured, Capture::Refunding, Capture::Refunded]
            .into_iter()
            .find(|c| capture_name(*c) == self.capture_state)
            .ok_or_else(|| corrupt(format!("capture_state {:?}", self.capture_state)))?;
        Ok(SagaState {
            status,
            amount: self.amount,
            currency: self.currency.clone(),
            hold,
            capture,
            compensating: self.compensating == 1,
            reason: self.reason.clone(),
            card_on_file: self.card_sealed.is_some() || self.account().is_some(),
        })
    }
}

pub async fn load(conn: &mut MySqlConnection, id: &str) -> sqlx::Result<Option<Order>> {
    sqlx::query_as::<_, Order>(&format!("{SELECT_ORDER} WHERE id = ?")).bind(id).fetch_optional(conn).await
}

/// Loads and row-locks an order for a saga step.
pub async fn lock(conn: &mut MySqlConnection, id: &str) -> sqlx::Result<Option<Order>> {
    sqlx::query_as::<_, Order>(&format!("{SELECT_ORDER} WHERE id = ? FOR UPDATE")).bind(id).fetch_optional(conn).await
}

/// The status-change event published on `order.events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderEvent {
    pub order_id: String,
    pub user_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// What storing a transition writes to the order's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWrite {
    /// Whether an UPDATE is needed at all.
    pub update: bool,
    /// Erase the sealed card number (the order ended: nothing will charge it again).
    pub erase_card: bool,
    /// Erase the sealed CVC (the order ended, or this transition sends the first charge).
    pub erase_cvc: bool,
}

/// Decides [`RowWrite`] for `t` applied to an order that was `before` and still holds a sealed card
/// (`has_card`) and CVC (`has_cvc`). A transition that sends the charge erases the CVC in its own
/// UPDATE: the command, built before, carries it away (PCI DSS 3.2: no CVC kept once authorization
/// is attempted; retries and replays charge the number alone). One that changes nothing of the row
/// (the saga's start: the lock command is all it decides) writes nothing.
pub fn row_write(before: &SagaState, t: &Transition, has_card: bool, has_cvc: bool) -> RowWrite {
    let erase_card = t.state.status.is_terminal() && (has_card || has_cvc);
    let erase_cvc = has_cvc && (erase_card || t.commands.contains(&Command::Charge));
    RowWrite { update: *before != t.state || erase_card || erase_cvc, erase_card, erase_cvc }
}

/// Stores what `t` decided for `order` (row as [`row_write`] says, history) and returns the
/// `order.events` messages.
pub async fn record(conn: &mut MySqlConnection, order: &mut Order, t: &Transition, events_topic: &str) -> sqlx::Result<Vec<Outgoing>> {
    let s = &t.state;
    let before = order.saga_state().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let RowWrite { update, erase_card, erase_cvc } = row_write(&before, t, order.card_sealed.is_some(), order.card_cvc_sealed.is_some());
    observe_step(order, s.status);
    if update {
        sqlx::query(
            "UPDATE orders SET status = ?, hold_state = ?, capture_state = ?, compensating = ?, reason = ?, \
             card_sealed = IF(?, NULL, card_sealed), card_cvc_sealed = IF(?, NULL, card_cvc_sealed) WHERE id = ?",
        )
        .bind(s.status.as_str())
        .bind(hold_name(s.hold))
        .bind(capture_name(s.capture))
        .bind(s.compensating)
        .bind(s.reason.as_deref().map(|r| truncate(r, 255)))
        .bind(erase_card)
        .bind(erase_cvc)
        .bind(order.id.as_str())
        .execute(&mut *conn)
        .await?;
        order.updated_at = Utc::now(); // as the row's ON UPDATE did: the next step of this batch starts here
    }
    order.status = s.status.as_str().to_string();
    order.hold_state = hold_name(s.hold).to_string();
    order.capture_state = capture_name(s.capture).to_string();
    order.compensating = s.compensating as i8;
    order.reason = s.reason.clone();
    if erase_card {
        order.card_sealed = None;
    }
    if erase_cvc {
        order.card_cvc_sealed = None;
    }
    if t.statuses.is_empty() {
        return Ok(vec![]);
    }
    // One clock for the history rows and the events: a client that merges `order.events` into the
    // history it read (GET /orders/{id}) recognises each entry by its status and time.
    let now = history_time();
    let mut history = sqlx::QueryBuilder::new("INSERT INTO order_history (order_id, status, reason, at) ");
    history.push_values(&t.statuses, |mut row, (status, reason)| {
        row.push_bind(order.id.as_str()).push_bind(status.as_str()).push_bind(reason.as_deref().map(|r| truncate(r, 255))).push_bind(now);
    });
    history.build().execute(&mut *conn).await?;
    Ok(t.statuses
        .iter()
        .map(|(status, reason)| status_event(events_topic, &order.id, &order.user_id, *status, reason.clone(), now))
        .collect())
}

/// `saga_step_seconds{from,to}`: how long the order stayed in its status before this move; and
/// `saga_order_seconds{outcome}`, accepted → terminal, when the move ends the saga. (Recorded as
/// the step is decided: a batch that rolls back and is applied again records its steps twice —
/// rare, and it only skews the histogram.)
fn observe_step(order: &Order, to: OrderStatus) {
    if order.status == to.as_str() {
        return;
    }
    let now = Utc::now();
    let seconds = |since: DateTime<Utc>| (now - since).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
    metrics::histogram!("saga_step_seconds", "from" => order.status.clone(), "to" => to.as_str()).record(seconds(order.updated_at));
    if to.is_terminal() {
        metrics::histogram!("saga_order_seconds", "outcome" => to.as_str()).record(seconds(order.created_at));
    }
}

/// What an accepted order is created with (amounts from the reservation, card already sealed).
pub struct NewOrder<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub reservation_id: &'a str,
    pub product_id: u64,
    pub quantity: i32,
    pub amount: Decimal,
    pub currency: &'a str,
    pub method: sagaway_contract::messages::MethodRef<'a>,
}

/// Inserts an ACCEPTED order (then call [`record_accepted`] for its history and event).
pub async fn insert(conn: &mut MySqlConnection, o: &NewOrder<'_>) -> sqlx::Result<()> {
    use sagaway_contract::messages::MethodRef;
    let (card, account) = match o.method {
        MethodRef::Card(c) => (Some(c), None),
        MethodRef::Account(a) => (None, Some(a)),
    };
    sqlx::query(
        "INSERT INTO orders (id, user_id, reservation_id, product_id, quantity, amount, currency, status, payment_type, \
         card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint, card_sealed, card_cvc_sealed, account_bank, account_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(o.id)
    .bind(o.user_id)
    .bind(o.reservation_id)
    .bind(o.product_id)
    .bind(o.quantity)
    .bind(o.amount)
    .bind(o.currency)
    .bind(OrderStatus::Accepted.as_str())
    .bind(if account.is_some() { PAID_FROM_ACCOUNT } else { PAID_BY_CARD })
    .bind(card.map(|c| &c.brand))
    .bind(card.map(|c| &c.last4))
    .bind(card.map(|c| c.exp_month))
    .bind(card.map(|c| c.exp_year))
    .bind(card.map(|c| &c.fingerprint))
    .bind(card.map(|c| &c.sealed))
    .bind(card.and_then(|c| c.sealed_cvc.as_ref()))
    .bind(account.map(|a| &a.bank))
    .bind(account.map(|a| &a.account_id))
    .execute(conn)
    .await?;
    Ok(())
}

/// The history row and `order.events` message of a freshly inserted (ACCEPTED) order.
pub async fn record_accepted(conn: &mut MySqlConnection, order_id: &str, user_id: &str, events_topic: &str) -> sqlx::Result<Outgoing> {
    let status = OrderStatus::Accepted;
    let now = history_time();
    sqlx::query("INSERT INTO order_history (order_id, status, at) VALUES (?, ?, ?)").bind(order_id).bind(status.as_str()).bind(now).execute(&mut *conn).await?;
    Ok(status_event(events_topic, order_id, user_id, status, None, now))
}

/// Now, at the microseconds `order_history.at` (TIMESTAMP(6)) keeps, so the event says exactly what
/// the row does.
fn history_time() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// The `order.events` message for one status entered (keyed by user), counted once here.
fn status_event(events_topic: &str, order_id: &str, user_id: &str, status: OrderStatus, reason: Option<String>, at: DateTime<Utc>) -> Outgoing {
    metrics::counter!("order_transitions_total", "to" => status.as_str()).increment(1);
    let event = OrderEvent { order_id: order_id.into(), user_id: user_id.into(), status: status.as_str().into(), reason, at };
    Outgoing::json(events_topic, user_id, "order_status_changed", &event)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One history entry as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Every status an order passed through, in order.
pub async fn history(conn: &mut MySqlConnection, order_id: &str) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query_as::<_, HistoryEntry>("SELECT status, at, reason FROM order_history WHERE order_id = ? ORDER BY id").bind(order_id).fetch_all(conn).await
}

/// A user's latest `limit` orders, newest first.
pub async fn latest_of_user(
    conn: &mut MySqlConnection,
    user_id: &str,
    after: Option<&(chrono::DateTime<chrono::Utc>, String)>,
    limit: u32,
) -> sqlx::Result<Vec<Order>> {
    // Keyset paging on (created_at, id), newest first: the `orders_user (user_id, created_at)`
    // index holds the primary key too, so a page is one index range whatever its depth.
    match after {
        None => {
            sqlx::query_as::<_, Order>(&format!("{SELECT_ORDER} WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"))
                .bind(user_id)
                .bind(limit)
                .fetch_all(conn)
                .await
        }
        Some((at, id)) => {
            sqlx::query_as::<_, Order>(&format!(
                "{SELECT_ORDER} WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) ORDER BY created_at DESC, id DESC LIMIT ?"
            ))
            .bind(user_id)
            .bind(at)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(conn)
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::saga::machine::{SagaEvent, Settings, step};

    const PLAIN: Settings = Settings { risk_check: false };

    fn accepted() -> SagaState {
        SagaState::accepted(Decimal::new(1999, 2), "USD")
    }

    /// The transition `event` makes from `state`, and the state it leaves.
    fn apply(state: &SagaState, event: SagaEvent) -> Transition {
        step(state, event, PLAIN).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_saga_start_writes_nothing_to_the_row() {
        let t = apply(&accepted(), SagaEvent::Started);
        assert!(t.commands.contains(&Command::LockReservation), "{t:?}");
        assert_eq!(row_write(&accepted(), &t, true, true), RowWrite { update: false, erase_card: false, erase_cvc: false });
    }

    #[test]
    fn the_transition_that_sends_the_charge_erases_the_cvc_in_its_update() {
        let before = accepted();
        let t = apply(&before, SagaEvent::ReservationLocked { amount: before.amount });
        assert!(t.commands.contains(&Command::Charge), "{t:?}");
        assert_eq!(row_write(&before, &t, true, true), RowWrite { update: true, erase_card: false, erase_cvc: true });
        // An account order (no card) or a CVC already gone: nothing to erase, the status still moves.
        assert_eq!(row_write(&before, &t, false, false), RowWrite { update: true, erase_card: false, erase_cvc: false });
    }

    #[test]
    fn an_ended_order_erases_what_is_left_of_its_card_and_a_later_no_op_writes_nothing() {
        let locked = apply(&accepted(), SagaEvent::ReservationLocked { amount: Decimal::new(1999, 2) }).state;
        let declined = apply(&locked, SagaEvent::Declined { reason: "card_declined".into() });
        let released = apply(&declined.state, SagaEvent::ReservationReleased { expired: false });
        assert!(released.state.status.is_terminal(), "{released:?}");
        assert_eq!(row_write(&declined.state, &released, true, false), RowWrite { update: true, erase_card: true, erase_cvc: false });
        assert_eq!(row_write(&declined.state, &released, true, true), RowWrite { update: true, erase_card: true, erase_cvc: true });
        // A status change always writes, card or none.
        assert!(row_write(&locked, &declined, false, false).update);
        // Nothing changed and nothing left to erase: no UPDATE, terminal or not.
        let same = Transition { state: released.state.clone(), statuses: vec![], commands: vec![], alert: None };
        assert!(!row_write(&released.state, &same, false, false).update);
    }
}
