//! The HTTP API over the operation queue: `POST /accounts/{id}/operations` (accept, 202) and
//! `GET /operations/{id}`, over the functions of [`super`].

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use sagaway_common::{auth::Caller, http::ApiJson};
use sagaway_contract::money;
use serde_json::json;

use super::{Accepted, NewOperation, Operation, accept, check_amount, find, view};
use crate::{
    AppState, accounts,
    error::{ApiError, ApiResult},
    idempotency,
};

/// Queue a deposit or a withdrawal. Needs an `Idempotency-Key`; answers 202 once the operation is
/// durably queued.
#[utoipa::path(post, path = "/accounts/{id}/operations", request_body = NewOperation, tag = "operations",
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "required; kept 24 h")),
    responses((status = 202, body = Accepted), (status = 404, description = "no such account (or not yours)"),
              (status = 409, description = "Idempotency-Key still in flight"),
              (status = 422, description = "invalid field, or Idempotency-Key reused with another body"),
              (status = 429, description = "per-user rate limit")),
    security(("bearer" = [])))]
pub async fn enqueue(
    State(app): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NewOperation>,
) -> Response {
    if let Err(e) = idempotency::key(&headers) {
        return axum::response::IntoResponse::into_response(e);
    }
    let checked = async {
        let account = accounts::operable(&app.pool, &caller, &account_id).await?;
        let kind = match req.kind.as_str() {
            "deposit" => "deposit",
            "withdrawal" => "withdrawal",
            _ => return Err(ApiError::invalid("type", "must be deposit or withdrawal")),
        };
        check_amount(&app, &account.currency(), req.amount)?;
        Ok((account, kind))
    };
    let (account, kind) = match checked.await {
        Ok(v) => v,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let request = json!({"route": "operations", "account_id": account.id, "type": kind, "amount": money::format(req.amount)});
    let (app2, user) = (app.clone(), caller.user_id.clone());
    idempotency::run(&app, &caller.user_id, &headers, request, |claim| async move {
        let accepted = accept(&app2, &user, &account.id, kind, req.amount, &claim).await?;
        Ok((StatusCode::ACCEPTED, accepted))
    })
    .await
}

/// One operation (holders of its account, or an admin; anyone else 404).
#[utoipa::path(get, path = "/operations/{id}", tag = "operations", params(("id" = String, Path)),
    responses((status = 200, body = Operation), (status = 404, description = "no such operation (or not yours)")), security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Operation>> {
    let row = find(&app.pool, &id).await?.ok_or(ApiError::NotFound("operation"))?;
    accounts::may_see(&app.pool, &caller, &row.account_id).await.map_err(|_| ApiError::NotFound("operation"))?;
    Ok(Json(view(&app.pool, row).await?))
}
