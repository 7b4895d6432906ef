//! The bank's errors and their HTTP answers (application/problem+json).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use sagaway_common::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// Missing, or another user's (never told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A business rule refused the request (422 with a stable code: insufficient_funds, limit_exceeded,
    /// unknown_bank, unknown_account, currency_mismatch).
    #[error("{code}: {detail}")]
    Refused { code: &'static str, field: Option<&'static str>, detail: String },
    /// The caller may not do this (403 with a stable code: not_a_holder).
    #[error("{code}: {detail}")]
    Forbidden { code: &'static str, field: Option<&'static str>, detail: String },
    /// Another bank this request needs did not answer (503).
    #[error("{code}: {detail}")]
    Unavailable { code: &'static str, detail: String },
    #[error("transfer is {0}; only a SCHEDULED transfer can be canceled")]
    NotCancelable(String),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    #[error("idempotency key in flight")]
    IdempotencyKeyInFlight,
    /// An answer already made (a shared check's problem, e.g. paging's `limit` or `cursor`).
    #[error("{}", .0.detail)]
    Answered(Box<Problem>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }

    pub fn refused(code: &'static str, field: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self::Refused { code, field, detail: detail.into() }
    }

    /// A deadlock or lock-wait timeout: the transaction may simply be run again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Database(sqlx::Error::Database(e)) => {
                let m = e.message();
                m.contains("Deadlock") || m.contains("Lock wait timeout")
            }
            _ => false,
        }
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self::Answered(Box::new(p))
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Answered(p) => *p,
            ApiError::Invalid { field, message } => Problem::invalid(field, format!("{field}: {message}")),
            ApiError::NotFound(what) => Problem::not_found(&format!("{what}_not_found"), format!("no such {what}")),
            ApiError::Refused { code, field, detail } => {
                let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
                p.field = field.map(str::to_string);
                p
            }
            ApiError::Forbidden { code, field, detail } => {
                let mut p = Problem::new(StatusCode::FORBIDDEN, code, detail);
                p.field = field.map(str::to_string);
                p
            }
            ApiError::Unavailable { code, detail } => Problem::new(StatusCode::SERVICE_UNAVAILABLE, code, detail),
            ApiError::NotCancelable(status) => {
                Problem::new(StatusCode::CONFLICT, "not_cancelable", format!("the transfer is {status}; only a SCHEDULED transfer can be canceled"))
                    .with("status", status)
            }
            ApiError::IdempotencyKeyReused => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
            }
            ApiError::IdempotencyKeyInFlight => {
                Problem::new(StatusCode::CONFLICT, "idempotency_key_in_flight", "a request with this Idempotency-Key is still being processed; retry shortly")
            }
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
