//! The reservation HTTP handlers: `POST /reserve` (with `Idempotency-Key`) and `GET /reservations/{id}`.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sagaway_common::{
    auth::{self, Caller},
    http::{ApiJson, Problem},
};
use serde_json::json;
use uuid::Uuid;

use super::{Hold, Reservation, ReserveRequest, hold, load_on, validate};
use crate::{
    AppState,
    error::{ApiError, ApiResult},
    idempotency::{self, Claim},
};

/// Hold stock for a user. With an `Idempotency-Key`, a retry of the same request replays the first
/// answer (header `Idempotent-Replayed: true`) instead of making a second hold; see [`idempotency`].
#[utoipa::path(post, path = "/reserve", request_body = ReserveRequest, tag = "reservations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Stripe-style idempotency key (kept 24 h)")),
    responses((status = 201, body = Reservation), (status = 404, description = "no such product"),
              (status = 409, description = "insufficient stock, or Idempotency-Key still in flight"),
              (status = 401, description = "no or invalid bearer token"),
              (status = 403, description = "user_id names another user"),
              (status = 422, description = "invalid field, or Idempotency-Key reused with another body"),
              (status = 429, description = "per-user rate limit; see Retry-After")),
    security(("bearer" = [])))]
pub async fn reserve(State(app): State<AppState>, caller: Caller, headers: HeaderMap, ApiJson(req): ApiJson<ReserveRequest>) -> Response {
    let user_id = match auth::acting_user(&caller, req.user_id.as_deref()) {
        Ok(u) => u,
        Err(p) => return (*p).into_response(),
    };
    // Validate before anything is recorded: invalid requests are never stored under a key.
    let quantity = match validate(&app, &req) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let req = Hold { product_id: req.product_id, user_id: &user_id, quantity };
    let key = match idempotency::key_from(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let mut claim = None;
    if let Some(key) = &key {
        let canonical = json!({"product_id": req.product_id, "user_id": req.user_id, "quantity": quantity});
        let hash = idempotency::request_hash(&canonical);
        match idempotency::claim(&app.pool, caller.user_id.as_str(), key, &hash, app.config.idempotency_ttl, app.config.idempotency_lock).await {
            Ok(Claim::Fresh(ours)) => claim = Some(ours),
            Ok(Claim::Replay { status, body }) => return respond(status, body, true),
            Err(e) => return e.into_response(),
        }
    }
    let (status, body) = match hold(&app, &req, claim.as_ref()).await {
        Ok(body) => (StatusCode::CREATED, body),
        Err(e) => {
            let taken_over = matches!(e, ApiError::IdempotencyKeyInFlight);
            let problem = Problem::from(e);
            let body = serde_json::to_string(&problem).expect("serialises");
            if let Some(claim) = claim.as_ref().filter(|_| !taken_over) {
                // (A 201's answer was stored in the reservation's own transaction.)
                let stored = if problem.status_code().is_server_error() {
                    idempotency::release(&app.pool, claim).await
                } else {
                    idempotency::complete(&app.pool, claim, problem.status_code(), &body).await
                };
                match stored {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("the idempotency claim was taken over meanwhile; its new owner answers"),
                    Err(e) => tracing::error!(error = %e, "could not record the idempotent response"),
                }
            }
            (problem.status_code(), body)
        }
    };
    respond(status, body, false)
}

fn respond(status: StatusCode, body: String, replayed: bool) -> Response {
    let content_type = if status.is_success() { "application/json" } else { "application/problem+json" };
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if replayed {
        res.headers_mut().insert(idempotency::REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}

/// Read one of your reservations (admins: any). Another user's reservation is 404, as if it did not exist.
#[utoipa::path(get, path = "/reservations/{id}", tag = "reservations",
    responses((status = 200, body = Reservation), (status = 401, description = "no or invalid bearer token"),
              (status = 404, description = "no such reservation of yours")),
    security(("bearer" = [])))]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Reservation>> {
    if Uuid::parse_str(&id).is_err() {
        return Err(ApiError::ReservationNotFound(id));
    }
    let mut conn = app.pool.acquire().await?;
    load_on(&mut conn, &id).await?.filter(|r| caller.may_see(&r.user_id)).map(Json).ok_or(ApiError::ReservationNotFound(id))
}
