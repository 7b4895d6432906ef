//! The HTTP API over accounts: `POST /accounts`, `GET /accounts`, `GET /accounts/{id}`,
//! `GET /accounts/{id}/statement` and `GET /accounts/lookup`, over the functions of [`super`].

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use sagaway_common::{
    auth::Caller,
    http::{ApiJson, ApiQuery},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Account, NewAccount, Recipient, Statement, by_number_in, load, may_see, of_holder, open, postings, validate};
use crate::{
    AppState,
    error::{ApiError, ApiResult},
    rules::{account_number::AccountNumber, mask},
};

/// Open an account.
#[utoipa::path(post, path = "/accounts", request_body = NewAccount, tag = "accounts",
    responses((status = 201, body = Account), (status = 422, description = "invalid field (problem+json names it)")),
    security(("bearer" = [])))]
pub async fn create(State(app): State<AppState>, caller: Caller, ApiJson(req): ApiJson<NewAccount>) -> ApiResult<(StatusCode, Json<Account>)> {
    let opening = validate(&caller, &req)?;
    let now = app.config.clock.now();
    let id = open(&app.pool, &caller.user_id, &opening, now).await?;
    let account = load(&app.pool, &app.config.code, &id).await?.ok_or(ApiError::NotFound("account"))?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// The caller's accounts (every account they hold), oldest first.
#[utoipa::path(get, path = "/accounts", tag = "accounts", responses((status = 200, body = [Account])), security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Account>>> {
    Ok(Json(of_holder(&app.pool, &app.config.code, &caller.user_id).await?))
}

/// One account (its holders, or an admin; anyone else 404).
#[utoipa::path(get, path = "/accounts/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 200, body = Account), (status = 404, description = "no such account (or not yours)")), security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Account>> {
    may_see(&app.pool, &caller, &id).await?;
    Ok(Json(load(&app.pool, &app.config.code, &id).await?.ok_or(ApiError::NotFound("account"))?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatementParams {
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
}

/// The account's postings, newest first.
#[utoipa::path(get, path = "/accounts/{id}/statement", tag = "accounts", params(("id" = String, Path), StatementParams),
    responses((status = 200, body = Statement), (status = 404, description = "no such account (or not yours)"),
              (status = 422, description = "invalid cursor or limit")), security(("bearer" = [])))]
pub async fn statement(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<StatementParams>,
) -> ApiResult<Json<Statement>> {
    may_see(&app.pool, &caller, &id).await?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let before = match params.cursor.as_deref() {
        None | Some("") => u64::MAX,
        Some(c) => decode_cursor(c).ok_or_else(|| ApiError::invalid("cursor", "not a cursor this API issued"))?,
    };
    // One more than a page: whether there is a next page.
    let mut entries = postings(&app.pool, &id, before, limit + 1).await?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| encode_cursor(e.posting_id))
    } else {
        None
    };
    Ok(Json(Statement { entries, next_cursor }))
}

fn encode_cursor(posting_id: u64) -> String {
    B64.encode(format!("p:{posting_id}"))
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    let text = String::from_utf8(B64.decode(cursor).ok()?).ok()?;
    text.strip_prefix("p:")?.parse().ok()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LookupParams {
    /// The account number (`12345678-5`).
    pub number: String,
}

/// Check a recipient by account number.
#[utoipa::path(get, path = "/accounts/lookup", tag = "accounts", params(LookupParams),
    responses((status = 200, body = Recipient), (status = 404, description = "no such account"),
              (status = 422, description = "not an account number")), security(("bearer" = [])))]
pub async fn lookup(State(app): State<AppState>, _caller: Caller, ApiQuery(params): ApiQuery<LookupParams>) -> ApiResult<Json<Recipient>> {
    let number = AccountNumber::parse(&params.number).map_err(|e| ApiError::invalid("number", e))?;
    let row = by_number_in(&app.pool, &number).await?.ok_or(ApiError::NotFound("account"))?;
    Ok(Json(Recipient { bank: app.config.code.clone(), number: number.display(), kind: row.kind, currency: row.currency, holder: mask::holder(&row.owner_user) }))
}

#[cfg(test)]
mod tests {
    use super::{decode_cursor, encode_cursor};

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("nonsense"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
