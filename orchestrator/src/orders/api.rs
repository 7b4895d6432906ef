//! The read API over orders: `GET /orders/{id}` and `GET /orders`. A customer sees their own
//! orders only (another user's order is 404, as if it did not exist); an admin sees anyone's.

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_common::{auth::{self, Caller}, http::ApiQuery, paging};
use sagaway_contract::money;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{HistoryEntry, Order, history, latest_of_user, load};
use crate::{
    AppState,
    error::{ApiError, ApiResult},
};

/// How an order is paid, as it may be shown: a card's display fields (`type: "card"`), or the
/// bank and account it is paid from (`type: "account"`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentView {
    Card { brand: String, last4: String, exp_month: u8, exp_year: u16 },
    Account { bank: String, account_id: String },
}

impl PaymentView {
    fn of(o: &Order) -> Self {
        match o.account() {
            Some(a) => Self::Account { bank: a.bank, account_id: a.account_id },
            None => Self::Card {
                brand: o.card_brand.clone().unwrap_or_default(),
                last4: o.card_last4.clone().unwrap_or_default(),
                exp_month: o.card_exp_month.unwrap_or_default(),
                exp_year: o.card_exp_year.unwrap_or_default(),
            },
        }
    }
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
    let payment = PaymentView::of(&o);
    OrderView {
        id: o.id.into(),
        status: o.status,
        user_id: o.user_id.into(),
        reservation_id: o.reservation_id.into(),
        product_id: o.product_id,
        quantity: o.quantity,
        amount: o.amount,
        currency: o.currency,
        reason: o.reason,
        payment,
        history,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

/// One of your orders (admins: any) with its full history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    responses((status = 200, body = OrderView), (status = 401, description = "no or invalid bearer token"),
              (status = 404, description = "no such order of yours")),
    security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    let mut conn = app.pool.acquire().await?;
    let order = load(&mut conn, &id).await?.filter(|o| caller.may_see(&o.user_id)).ok_or_else(|| ApiError::OrderNotFound(id.clone()))?;
    let history = history(&mut conn, &order.id).await?;
    Ok(Json(view(order, history)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Whose orders: yours by default; naming another user is for admins only (403 `user_mismatch`).
    #[param(pattern = "^[A-Za-z0-9_.@:-]{0,64}$")]
    pub user_id: Option<String>,
    /// At most this many, newest first (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (see [`sagaway_common::paging`]): `order.<µs>:<id>`.
    #[param(pattern = r"^(order\.[0-9]{1,18}:[A-Za-z0-9_-]{1,36})?$")]
    pub cursor: Option<String>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

const CURSOR: &str = "order";

/// Your orders (admins: any user's, with `user_id`), newest first, a page at a time.
#[utoipa::path(get, path = "/orders", params(ListParams), tag = "orders",
    responses((status = 200, body = OrderPage), (status = 401, description = "no or invalid bearer token"),
              (status = 403, description = "user_id names another user"), (status = 422, description = "invalid limit or cursor")),
    security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>, caller: Caller, ApiQuery(p): ApiQuery<ListParams>) -> ApiResult<Json<OrderPage>> {
    let named = p.user_id.filter(|u| !u.is_empty());
    if named.as_deref().is_some_and(|u| !auth::valid_user_id(u)) {
        return Err(ApiError::invalid("user_id", "a user id is 1-64 letters, digits, _ - . @ :"));
    }
    let user_id = match named {
        Some(other) if caller.is_admin() => other,
        named => auth::acting_user(&caller, named.as_deref()).map_err(ApiError::Refused)?.into(),
    };
    let limit = paging::limit(p.limit, 20, 100)?;
    let after = paging::decode(CURSOR, p.cursor.as_deref())?
        .map(|key| parse_key(&key).ok_or_else(paging::refused))
        .transpose()?;
    let mut conn = app.pool.acquire().await?;
    let orders = latest_of_user(&mut conn, &user_id, after.as_ref(), limit + 1).await?;
    let (orders, next_cursor) = paging::page(orders, limit, |o| format!("{}:{}", o.created_at.timestamp_micros(), o.id), CURSOR);
    let mut items = Vec::with_capacity(orders.len());
    for o in orders {
        let history = history(&mut conn, &o.id).await?;
        items.push(view(o, history));
    }
    Ok(Json(OrderPage { items, next_cursor }))
}

/// An order cursor's key: the last order's creation time (µs) and id.
fn parse_key(key: &str) -> Option<(DateTime<Utc>, String)> {
    let (micros, id) = key.split_once(':')?;
    let at = DateTime::from_timestamp_micros(paging::numeric_key(micros).ok()?.try_into().ok()?)?;
    sagaway_common::http::plausible_id(id, 36).then(|| (at, id.to_string()))
}
