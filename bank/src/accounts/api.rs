//! The HTTP API over accounts: `POST /accounts`, `GET /accounts`, `GET /accounts/{id}`,
//! `GET /accounts/{id}/statement` and `GET /accounts/lookup`, over the functions of [`super`]; and
//! the invitations to hold a joint account ([`super::invitations`]): `GET /me/invitations`,
//! `POST /accounts/{id}/invitations/{user}/accept` and `/decline`, `DELETE /accounts/{id}/invitations/{user}`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use sagaway_common::{
    auth::Caller,
    http::{ApiJson, ApiQuery},
    paging,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    Account, NewAccount, Recipient, Statement, by_number_in,
    invitations::{self, Answer, Invitation},
    load, may_see, of_holder, open, postings, validate,
};
use crate::{
    AppState,
    error::{ApiError, ApiResult},
    rules::{account_number::AccountNumber, mask},
};

/// Open an account. A joint account is the caller's alone at first: every other user in `holders`
/// is invited (`invited`) and becomes a holder only by accepting.
#[utoipa::path(post, path = "/accounts", request_body = NewAccount, tag = "accounts",
    responses((status = 201, body = Account), (status = 403, description = "not_a_holder: the caller is not among the holders"),
              (status = 422, description = "invalid field (problem+json names it)")),
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementParams {
    /// `next_cursor` of the previous page: `posting.<id>`.
    #[param(pattern = r"^(posting\.[0-9]{1,18})?$")]
    pub cursor: Option<String>,
    /// At most this many postings, newest first (1-200, default 50).
    #[param(minimum = 1, maximum = 200)]
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
    let limit = paging::limit(params.limit, 50, 200)?;
    let before = match paging::decode(STATEMENT_CURSOR, params.cursor.as_deref())? {
        None => u64::MAX,
        Some(key) => paging::numeric_key(&key)?,
    };
    // One more than a page: whether there is a next page.
    let rows = postings(&app.pool, &id, before, limit + 1).await?;
    let (items, next_cursor) = paging::page(rows, limit, |e| e.posting_id.to_string(), STATEMENT_CURSOR);
    Ok(Json(Statement { items, next_cursor }))
}

const STATEMENT_CURSOR: &str = "posting";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupParams {
    /// The account number (`12345678-9`).
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

/// The invitations to hold a joint account waiting for the caller's answer, oldest first.
#[utoipa::path(get, path = "/me/invitations", tag = "accounts", responses((status = 200, body = [Invitation])), security(("bearer" = [])))]
pub async fn my_invitations(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Invitation>>> {
    Ok(Json(invitations::pending_for(&app.pool, &app.config.code, &caller.user_id).await?))
}

/// Accept an invitation to hold a joint account: the caller (who must be the invitee) becomes a
/// holder and gets the account. Accepting again answers the same.
#[utoipa::path(post, path = "/accounts/{id}/invitations/{user}/accept", tag = "accounts", params(("id" = String, Path), ("user" = String, Path, description = "the invitee: the caller")),
    responses((status = 200, body = Account), (status = 403, description = "not_the_invitee: only the invited user can accept"),
              (status = 404, description = "no such invitation"), (status = 409, description = "the invitation was declined or revoked")),
    security(("bearer" = [])))]
pub async fn accept(State(app): State<AppState>, caller: Caller, Path((id, user)): Path<(String, String)>) -> ApiResult<Json<Account>> {
    invitations::apply(&app.pool, &app.config.code, &caller.user_id, &id, &user, Answer::Accept, app.config.clock.now()).await?;
    Ok(Json(load(&app.pool, &app.config.code, &id).await?.ok_or(ApiError::NotFound("account"))?))
}

/// Decline an invitation to hold a joint account (the invitee only). Declining again answers the same.
#[utoipa::path(post, path = "/accounts/{id}/invitations/{user}/decline", tag = "accounts", params(("id" = String, Path), ("user" = String, Path, description = "the invitee: the caller")),
    responses((status = 200, body = Invitation), (status = 403, description = "not_the_invitee: only the invited user can decline"),
              (status = 404, description = "no such invitation"), (status = 409, description = "the invitation was accepted or revoked")),
    security(("bearer" = [])))]
pub async fn decline(State(app): State<AppState>, caller: Caller, Path((id, user)): Path<(String, String)>) -> ApiResult<Json<Invitation>> {
    Ok(Json(invitations::apply(&app.pool, &app.config.code, &caller.user_id, &id, &user, Answer::Decline, app.config.clock.now()).await?))
}

/// Withdraw a pending invitation (a holder of the account).
#[utoipa::path(delete, path = "/accounts/{id}/invitations/{user}", tag = "accounts", params(("id" = String, Path), ("user" = String, Path, description = "the invitee")),
    responses((status = 200, body = Invitation), (status = 404, description = "no such account (or not yours), or no such invitation"),
              (status = 409, description = "the invitation was already accepted or declined")),
    security(("bearer" = [])))]
pub async fn revoke(State(app): State<AppState>, caller: Caller, Path((id, user)): Path<(String, String)>) -> ApiResult<Json<Invitation>> {
    Ok(Json(invitations::apply(&app.pool, &app.config.code, &caller.user_id, &id, &user, Answer::Revoke, app.config.clock.now()).await?))
}
