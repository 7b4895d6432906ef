//! The HTTP API over charges: `GET /charges/{order_id}`, over the functions of [`super`].

use axum::{
    Json,
    extract::{Path, State},
};
use sagaway_common::auth::Caller;

use super::{ChargeView, load_view};
use crate::{
    AppState,
    error::{ApiError, ApiResult, validate_id},
};

/// The charge of one of your orders (admins: any), with every attempt and its timestamp. Another
/// user's charge is 404, as if it did not exist.
#[utoipa::path(get, path = "/charges/{order_id}", tag = "charges", params(("order_id" = String, Path, description = "the order's id", min_length = 1, max_length = 160, pattern = "^[A-Za-z0-9_.@:-]+$")),
    responses((status = 200, body = ChargeView), (status = 401, description = "no or invalid bearer token"),
              (status = 404, description = "no charge of yours for this order"),
              (status = 422, description = "malformed order id")),
    security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(order_id): Path<String>) -> ApiResult<Json<ChargeView>> {
    validate_id("order_id", &order_id)?;
    load_view(&app.pool, &caller, &order_id).await?.map(Json).ok_or(ApiError::ChargeNotFound(order_id))
}
