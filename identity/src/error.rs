//! The identity service's errors and their HTTP answers (application/problem+json). A 401 carries
//! `WWW-Authenticate: Bearer`, a 429 `Retry-After`.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sagaway_common::http::Problem;

use crate::users::RuleViolation;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    #[error("username taken")]
    UsernameTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed logins")]
    TooManyAttempts { retry_after: Duration },
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// An audience the issuer does not grant (or, on a refresh, the login was not granted).
    #[error("audience {0:?} not granted")]
    UnknownAudience(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The `WWW-Authenticate` challenge of a refused login.
const CHALLENGE: &str = "Bearer realm=\"sagaway\"";
/// The challenge of a refused refresh token.
const INVALID_TOKEN_CHALLENGE: &str = "Bearer realm=\"sagaway\", error=\"invalid_token\"";

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Rule(v) => {
                let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, v.code(), v.to_string());
                p.field = Some(v.field().to_string());
                p
            }
            ApiError::UsernameTaken => {
                let mut p = Problem::new(StatusCode::CONFLICT, "username_taken", "that username is already taken");
                p.field = Some("username".into());
                p
            }
            ApiError::InvalidCredentials => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "unknown username or wrong password")
            }
            ApiError::TooManyAttempts { retry_after } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed logins for this username from this address; try again in {} s", retry_after.as_secs()),
            )
            .with("retry_after", retry_after.as_secs()),
            ApiError::InvalidRefreshToken => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "the refresh token is unknown, expired or revoked; log in again",
            ),
            ApiError::RefreshTokenReused => Problem::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "the refresh token was already used; every token of this login is now revoked; log in again",
            ),
            ApiError::UnknownAudience(a) => {
                let mut p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_target",
                    format!("the audience {a:?} is not one this issuer grants here"),
                );
                p.field = Some("audience".into());
                p
            }
            ApiError::Database(e) => Problem::internal(&e),
            ApiError::Internal(e) => Problem::internal(&format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let header = match &self {
            ApiError::InvalidCredentials => Some((header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE))),
            ApiError::InvalidRefreshToken | ApiError::RefreshTokenReused => {
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static(INVALID_TOKEN_CHALLENGE)))
            }
            ApiError::TooManyAttempts { retry_after } => Some((header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs()))),
            _ => None,
        };
        let mut res = Problem::from(self).into_response();
        if let Some((name, value)) = header {
            res.headers_mut().insert(name, value);
        }
        res
    }
}
