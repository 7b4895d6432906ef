//! The read API over orders: `GET /orders/{id}` and `GET /orders?user_id=`.

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::{http::ApiQuery, money};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{HistoryEntry, Order, history, latest_of_user, load};
use crate::{
    AppState,
    error::{ApiError, ApiResult},
};

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

fn view(o: Order, history: Vec<HistoryEntry>) -> OrderView {
    OrderView {
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
    }
}

/// An order with its full history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    responses((status = 200, body = OrderView), (status = 404, description = "no such order")))]
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    let mut conn = app.pool.acquire().await?;
    let order = load(&mut conn, &id).await?.ok_or_else(|| ApiError::OrderNotFound(id.clone()))?;
    let history = history(&mut conn, &order.id).await?;
    Ok(Json(view(order, history)))
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
    let orders = latest_of_user(&mut conn, &user_id, limit).await?;
    let mut out = Vec::with_capacity(orders.len());
    for o in orders {
        let history = history(&mut conn, &o.id).await?;
        out.push(view(o, history));
    }
    Ok(Json(out))
}
