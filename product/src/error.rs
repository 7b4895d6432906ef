//! The product service's errors and their HTTP answers (application/problem+json).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use sagaway_common::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("product {0} not found")]
    ProductNotFound(u64),
    #[error("reservation {0} not found")]
    ReservationNotFound(String),
    #[error("insufficient stock")]
    InsufficientStock { product_id: u64, requested: i32, available: i32 },
    #[error("product {0} has reservations still held")]
    ProductHasHeldReservations(u64),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    #[error("idempotency key in flight")]
    IdempotencyKeyInFlight,
    #[error("search unavailable: {0}")]
    Search(anyhow::Error),
    /// An answer decided elsewhere (authorization: 403 `user_mismatch`).
    #[error("{}", .0.detail)]
    Refused(Box<Problem>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Invalid { field, message } => Problem::invalid(field, format!("{field}: {message}")),
            ApiError::ProductNotFound(id) => {
                Problem::not_found("product_not_found", format!("product {id} does not exist")).with("product_id", id)
            }
            ApiError::ReservationNotFound(id) => {
                Problem::not_found("reservation_not_found", format!("reservation {id} does not exist"))
                    .with("reservation_id", id)
            }
            ApiError::InsufficientStock { product_id, requested, available } => Problem::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                format!("product {product_id} has {available} in stock; {requested} requested"),
            )
            .with("product_id", product_id)
            .with("available", available),
            ApiError::ProductHasHeldReservations(id) => Problem::new(
                StatusCode::CONFLICT,
                "product_has_held_reservations",
                format!("product {id} has reservations still held; release them or let them expire first"),
            ),
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
            ApiError::Search(e) => {
                tracing::error!(error = %format!("{e:#}"), "search failed");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "search_unavailable", "search is temporarily unavailable")
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
