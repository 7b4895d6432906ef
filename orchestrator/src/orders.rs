//! Orders: their state, their history, and the read API (`GET /orders/{id}`, `GET /orders?user_id=`).
//!
//! Status flow: ACCEPTED → RESERVATION_LOCKED → PAYMENT_PENDING → PAID → COMPLETED; a decline goes
//! DECLINED → COMPENSATED; a dead-lettered step parks the order as FAILED. Every change is one
//! [`set_status`] call inside the saga step's transaction: it updates the row, appends history and
//! returns the `order.events` message to publish through the outbox.

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::{http::ApiQuery, money, outbox::Outgoing};
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    error::{ApiError, ApiResult},
};

pub const ACCEPTED: &str = "ACCEPTED";
pub const RESERVATION_LOCKED: &str = "RESERVATION_LOCKED";
pub const PAYMENT_PENDING: &str = "PAYMENT_PENDING";
pub const PAID: &str = "PAID";
pub const COMPLETED: &str = "COMPLETED";
pub const DECLINED: &str = "DECLINED";
pub const FAILED: &str = "FAILED";
pub const COMPENSATED: &str = "COMPENSATED";

pub fn is_terminal(status: &str) -> bool {
    status == COMPLETED || status == COMPENSATED
}

/// An order row (card columns limited to what may be kept).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub reservation_id: String,
    pub product_id: u64,
    pub quantity: i32,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub reason: Option<String>,
    pub card_brand: String,
    pub card_last4: String,
    pub card_exp_month: u8,
    pub card_exp_year: u16,
    pub card_fingerprint: String,
    pub card_sealed: Option<String>,
    pub compensating: i8,
    pub awaiting_release: i8,
    pub awaiting_refund: i8,
    pub captured: i8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT_ORDER: &str = "SELECT id, user_id, reservation_id, product_id, quantity, amount, currency, status, reason, \
    card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint, card_sealed, compensating, awaiting_release, \
    awaiting_refund, captured, created_at, updated_at FROM orders";

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

/// Moves `order` to `to` (recording `reason`), appends history, and returns the event to publish.
/// Terminal orders erase their sealed card: nothing will charge them again.
pub async fn set_status(
    conn: &mut MySqlConnection,
    order: &mut Order,
    to: &str,
    reason: Option<&str>,
    events_topic: &str,
) -> sqlx::Result<Outgoing> {
    let erase_card = is_terminal(to);
    sqlx::query(
        "UPDATE orders SET status = ?, reason = COALESCE(?, reason), card_sealed = IF(?, NULL, card_sealed) WHERE id = ?",
    )
    .bind(to)
    .bind(reason)
    .bind(erase_card)
    .bind(&order.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO order_history (order_id, status, reason) VALUES (?, ?, ?)")
        .bind(&order.id)
        .bind(to)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    order.status = to.to_string();
    if reason.is_some() {
        order.reason = reason.map(str::to_string);
    }
    metrics::counter!("order_transitions_total", "to" => to.to_string()).increment(1);
    let event = OrderEvent {
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        status: to.to_string(),
        reason: reason.map(str::to_string),
        at: Utc::now(),
    };
    Ok(Outgoing::json(events_topic, &order.user_id, "order_status_changed", &event))
}

/// One history entry as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Card details an order may show.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
}

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub status: String,
    pub user_id: String,
    pub reservation_id: String,
    pub product_id: u64,
    pub quantity: i32,
    #[serde(serialize_with = "money::serialize", deserialize_with = "money::deserialize")]
    #[schema(value_type = String, example = "19.99")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub payment: PaymentView,
    pub history: Vec<HistoryEntry>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

async fn view(conn: &mut MySqlConnection, o: Order) -> sqlx::Result<OrderView> {
    let history = sqlx::query_as::<_, HistoryEntry>("SELECT status, at, reason FROM order_history WHERE order_id = ? ORDER BY id")
        .bind(&o.id)
        .fetch_all(conn)
        .await?;
    Ok(OrderView {
        id: o.id,
        status: o.status,
        user_id: o.user_id,
        reservation_id: o.reservation_id,
        product_id: o.product_id,
        quantity: o.quantity,
        amount: o.amount,
        currency: o.currency,
        reason: o.reason,
        payment: PaymentView { brand: o.card_brand, last4: o.card_last4, exp_month: o.card_exp_month, exp_year: o.card_exp_year },
        history,
        created_at: o.created_at,
        updated_at: o.updated_at,
    })
}

/// An order with its full history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    responses((status = 200, body = OrderView), (status = 404, description = "no such order")))]
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    let mut conn = app.pool.acquire().await?;
    let order = load(&mut conn, &id).await?.ok_or_else(|| ApiError::OrderNotFound(id.clone()))?;
    Ok(Json(view(&mut conn, order).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Whose orders (required).
    pub user_id: Option<String>,
    /// At most this many, newest first (1–100, default 20).
    pub limit: Option<u32>,
}

/// A user's orders, newest first.
#[utoipa::path(get, path = "/orders", params(ListParams), tag = "orders",
    responses((status = 200, body = [OrderView]), (status = 422, description = "missing or invalid user_id")))]
pub async fn list(State(app): State<AppState>, ApiQuery(p): ApiQuery<ListParams>) -> ApiResult<Json<Vec<OrderView>>> {
    let user_id = p.user_id.filter(|u| !u.trim().is_empty()).ok_or_else(|| ApiError::invalid("user_id", "is required"))?;
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100"));
    }
    let mut conn = app.pool.acquire().await?;
    let orders = sqlx::query_as::<_, Order>(&format!("{SELECT_ORDER} WHERE user_id = ? ORDER BY created_at DESC LIMIT ?"))
        .bind(&user_id)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(orders.len());
    for o in orders {
        out.push(view(&mut conn, o).await?);
    }
    Ok(Json(out))
}
