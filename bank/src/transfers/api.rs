//! The HTTP API over transfers: `POST /transfers`, `GET /transfers/{id}` and
//! `DELETE /transfers/{id}`, over the functions of [`super`].

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use sagaway_common::{auth::Caller, http::ApiJson};
use sagaway_contract::money;
use serde_json::json;

use super::{NewTransfer, Planned, Transfer, cancel_scheduled, execute, interbank, load_visible, plan};
use crate::{AppState, error::ApiResult, idempotency};

/// Make a transfer. Needs an `Idempotency-Key`.
#[utoipa::path(post, path = "/transfers", request_body = NewTransfer, tag = "transfers",
    params(("Idempotency-Key" = String, Header, description = "required; kept 24 h")),
    responses((status = 201, body = Transfer, description = "instant: SETTLED"),
              (status = 202, body = Transfer, description = "business_hours: PROCESSING or SCHEDULED; to another bank or many-to-one: PROCESSING until the banks decide (poll GET /transfers/{id}: SETTLED or FAILED)"),
              (status = 404, description = "no such from_account (or not yours)"),
              (status = 409, description = "Idempotency-Key still in flight"),
              (status = 422, description = "invalid field; insufficient_funds, limit_exceeded, unknown_bank, unknown_account, currency_mismatch"),
              (status = 503, description = "bank_unavailable: the recipient's bank did not answer the recipient check"),
              (status = 429, description = "per-user rate limit")),
    security(("bearer" = [])))]
pub async fn create(State(app): State<AppState>, caller: Caller, headers: HeaderMap, ApiJson(req): ApiJson<NewTransfer>) -> Response {
    if let Err(e) = idempotency::key(&headers) {
        return e.into_response();
    }
    let plan = match plan(&app, &caller, &req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let request = json!({
        "route": "transfers", "kind": req.kind, "from_account": req.from_account, "to_bank": req.to.bank,
        "to_account": req.to.account_number.replace('-', ""), "amount": req.amount.map(money::format), "description": req.description,
        "sources": req.sources,
    });
    let (app2, user) = (app.clone(), caller.user_id.clone());
    idempotency::run(&app, &caller.user_id, &headers, request, |claim| async move {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &plan {
                Planned::Local(plan) => execute(&app2, &user, plan, &claim).await,
                Planned::Interbank(plan) => interbank::execute(&app2, &user, plan, &claim).await,
            };
            match result {
                Err(e) if e.is_retryable() && attempt < 4 => continue,
                other => return other,
            }
        }
    })
    .await
}

/// One transfer (holders of either account, or an admin; anyone else 404).
#[utoipa::path(get, path = "/transfers/{id}", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Transfer), (status = 404, description = "no such transfer (or not yours)")), security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Transfer>> {
    Ok(Json(load_visible(&app, &caller, &id).await?))
}

/// Cancel a SCHEDULED transfer (its maker, or holders of the paying account): the hold is released.
#[utoipa::path(delete, path = "/transfers/{id}", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = Transfer, description = "CANCELED"), (status = 404, description = "no such transfer (or not yours)"),
              (status = 409, description = "not_cancelable: it is no longer SCHEDULED")), security(("bearer" = [])))]
pub async fn cancel(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Transfer>> {
    Ok(Json(cancel_scheduled(&app, &caller, &id).await?))
}
