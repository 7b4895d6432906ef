//! The orchestrator's errors and their HTTP answers (application/problem+json).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use sagaway_common::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    Invalid { field: String, code: &'static str, message: String },
    #[error("order {0} not found")]
    OrderNotFound(String),
    #[error("reservation {0} not found")]
    ReservationNotFound(String),
    #[error("reservation belongs to another user")]
    ReservationNotOwned(String),
    #[error("reservation is {status}")]
    ReservationNotPayable { reservation_id: String, status: String },
    #[error("duplicate payment")]
    DuplicatePayment { original_order_id: String },
    #[error("idempotency key reused with another body")]
    IdempotencyKeyReused,
    #[error("idempotency key in flight")]
    IdempotencyKeyInFlight,
    #[error("product service unavailable: {0}")]
    ProductUnavailable(String),
    /// An answer decided elsewhere (authorization: 403 `user_mismatch`; paging's `limit`, `cursor`).
    #[error("{}", .0.detail)]
    Refused(Box<Problem>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_string(), code: "validation_failed", message: message.into() }
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::Refused(Box::new(p))
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Invalid { field, code, message } => {
                let mut p = Problem::invalid(&field, format!("{field}: {message}"));
                p.code = code.to_string();
                p.kind = format!("/problems/{code}");
                p
            }
            ApiError::OrderNotFound(id) => Problem::not_found("order_not_found", format!("order {id} does not exist")),
            ApiError::ReservationNotFound(id) => {
                Problem::not_found("reservation_not_found", format!("reservation {id} does not exist")).with("reservation_id", id)
            }
            ApiError::ReservationNotOwned(id) => Problem::new(
                StatusCode::FORBIDDEN,
                "reservation_not_owned",
                "the reservation belongs to another user",
            )
            .with("reservation_id", id),
            ApiError::ReservationNotPayable { reservation_id, status } => Problem::new(
                StatusCode::CONFLICT,
                if status == "EXPIRED" { "reservation_expired" } else { "reservation_not_held" },
                format!("reservation {reservation_id} is {status}; only a HELD, unexpired reservation can be paid"),
            )
            .with("reservation_id", reservation_id)
            .with("reservation_status", status),
            ApiError::DuplicatePayment { original_order_id } => Problem::new(
                StatusCode::CONFLICT,
                "duplicate_payment",
                "this user already paid for this product within the duplicate window; see original_order_id",
            )
            .with("original_order_id", original_order_id),
            ApiError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body",
            ),
            ApiError::IdempotencyKeyInFlight => Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ),
            ApiError::ProductUnavailable(e) => {
                tracing::warn!(error = %e, "product service unavailable");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "product_unavailable", "the product service is unavailable; retry shortly")
            }
            ApiError::Refused(p) => *p,
            ApiError::Database(e) => Problem::internal(&e),
            ApiError::Internal(e) => Problem::internal(&format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
