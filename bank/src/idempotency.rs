//! `Idempotency-Key` on `POST /accounts/{id}/operations` and `POST /transfers` (required on both; the
//! records: [`sagaway_common::idempotency`]). Keys are per user: the stored key is the caller's id and
//! the SHA-256 of the client's key, so one user's key can never replay another user's answer. The
//! request hash covers the caller, the route and the parsed body.

use std::future::Future;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
pub use sagaway_common::idempotency::{Claim, Claimed, REPLAYED_HEADER, complete, release, run_purge};
use sagaway_common::{
    http::Problem,
    idempotency::{self as records, ClaimError},
};
use sha2::{Digest, Sha256};

use crate::{AppState, error::ApiError};

/// The request's `Idempotency-Key`: required, 1-255 visible ASCII characters. Handlers check it
/// first, so a request without one is refused as such before anything else is looked at.
pub fn key(headers: &HeaderMap) -> Result<String, ApiError> {
    match records::key_from(headers) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(ApiError::invalid("Idempotency-Key", "this request needs an Idempotency-Key header")),
        Err(m) => Err(ApiError::invalid("Idempotency-Key", m)),
    }
}

/// Runs `work` at most once per (caller, key): a repeat with the same request replays the stored
/// answer, with another request answers 422, while the first still runs 409. `work` gets the claim
/// and must store its success answer with [`complete`] inside the transaction of its effect; its
/// failures are stored here (4xx) or released (5xx, so the client may retry).
pub async fn run<F, Fut>(app: &AppState, user_id: &str, headers: &HeaderMap, request: serde_json::Value, work: F) -> Response
where
    F: FnOnce(Claimed) -> Fut,
    Fut: Future<Output = Result<(StatusCode, String), ApiError>>,
{
    let key = match key(headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let stored_key = format!("{user_id}:{}", hex::encode(Sha256::digest(key.as_bytes())));
    let hash = hex::encode(Sha256::digest(serde_json::json!({"user": user_id, "request": request}).to_string().as_bytes()));
    let claim = match records::claim(&app.pool, &stored_key, &hash, app.config.idempotency_ttl, app.config.idempotency_lock).await {
        Ok(Claim::Fresh(c)) => c,
        Ok(Claim::Replay { status, body }) => return respond(status, body, true),
        Err(ClaimError::Reused) => return ApiError::IdempotencyKeyReused.into_response(),
        Err(ClaimError::InFlight) => return ApiError::IdempotencyKeyInFlight.into_response(),
        Err(ClaimError::Database(e)) => return ApiError::from(e).into_response(),
    };
    match work(claim.clone()).await {
        Ok((status, body)) => respond(status, body, false),
        Err(e) => {
            let taken_over = matches!(e, ApiError::IdempotencyKeyInFlight);
            let problem = Problem::from(e);
            let body = serde_json::to_string(&problem).expect("serialises");
            if !taken_over {
                let stored = if problem.status_code().is_server_error() {
                    release(&app.pool, &claim).await
                } else {
                    complete(&app.pool, &claim, problem.status_code(), &body).await
                };
                if let Err(e) = stored {
                    tracing::error!(error = %e, "could not record the idempotent response");
                }
            }
            respond_problem(problem.status_code(), body)
        }
    }
}

fn respond(status: StatusCode, body: String, replayed: bool) -> Response {
    let content_type = if status.is_success() { "application/json" } else { "application/problem+json" };
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if replayed {
        res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}

fn respond_problem(status: StatusCode, body: String) -> Response {
    respond(status, body, false)
}
