//! The HTTP API over the ledger: `GET /ledger/summary` and `GET /accounts/{id}`, over the
//! functions of [`super`].

use axum::{
    Json,
    extract::{Path, State},
};
use sagaway_common::auth::Caller;

use super::{AccountView, LedgerSummary, load_account, load_summary};
use crate::{
    AppState,
    error::{ApiError, ApiResult, validate_id},
};

/// Balances of every account, and whether the books balance.
#[utoipa::path(get, path = "/ledger/summary", tag = "ledger", responses((status = 200, body = LedgerSummary),
    (status = 401, description = "no or invalid bearer token"), (status = 403, description = "admin only")),
    security(("bearer" = [])))]
pub async fn summary(State(app): State<AppState>) -> ApiResult<Json<LedgerSummary>> {
    Ok(Json(load_summary(&app.pool).await?))
}

/// An account with its balances and latest postings (`merchant`, `customer:<user_id>`).
/// Customers see their own account; the merchant account and others' are admin-only (404 otherwise).
#[utoipa::path(get, path = "/accounts/{id}", tag = "ledger", params(("id" = String, Path, description = "account id", min_length = 1, max_length = 160, pattern = "^[A-Za-z0-9_.@:-]+$")),
    responses((status = 200, body = AccountView), (status = 401, description = "no or invalid bearer token"),
              (status = 404, description = "no such account of yours"),
              (status = 422, description = "malformed account id")),
    security(("bearer" = [])))]
pub async fn account(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<AccountView>> {
    validate_id("id", &id)?;
    load_account(&app.pool, &caller, &id).await?.map(Json).ok_or(ApiError::AccountNotFound(id))
}
