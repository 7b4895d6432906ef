//! The payment service's HTTP errors and their answers (application/problem+json). Bad input is
//! always a 4xx naming what is wrong; internals are logged and never shown.

use axum::response::{IntoResponse, Response};
use sagaway_common::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no charge for order {0}")]
    ChargeNotFound(String),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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
            ApiError::ChargeNotFound(order_id) => {
                Problem::not_found("charge_not_found", format!("no charge for order {order_id}")).with("order_id", order_id)
            }
            ApiError::AccountNotFound(id) => {
                Problem::not_found("account_not_found", format!("account {id} does not exist")).with("account_id", id)
            }
            ApiError::Database(e) => Problem::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// An identifier taken from a path (order id, account id): 1–160 characters of letters, digits and
/// `_ - . @ :`. Anything else is a 422 before any query runs.
pub fn validate_id(field: &'static str, id: &str) -> ApiResult<()> {
    let ok = !id.is_empty() && id.len() <= 160 && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@:".contains(c));
    if ok { Ok(()) } else { Err(ApiError::invalid(field, "must be 1-160 characters of letters, digits and _ - . @ :")) }
}
